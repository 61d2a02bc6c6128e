//! One-off questions about this host's own addresses, for finding its main IP:
//! which source address the kernel would use towards a destination
//! ([`route_source`]), and an interface's primary address ([`primary_address`]).
//! Each call opens a `NETLINK_ROUTE` socket of its own and closes it on return:
//! they are asked rarely and off the daemon's loop, so nothing is kept between
//! calls. The choices on the kernel's answers ([`source_of`], [`primary_of`]) are
//! pure functions.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::net::NetError;

/// The source address the kernel would use for a packet to `dst`: the
/// `RTA_PREFSRC` of its answer to an `RTM_GETROUTE` (as `ip route get DST` shows
/// it). Nothing is sent to `dst`; the kernel only resolves the route. `Ok(None)`
/// when the kernel answers without one (no address it could use, such as a route
/// out of an interface when no interface has an IPv4 address). For IPv6 the kernel
/// applies its source address selection (RFC 6724) and, when no global address
/// exists, answers with a link-local address or even `::1`: the answer is the
/// kernel's, callers that need a global address check it. No route to `dst` is an
/// error with the kernel's errno: `ENETUNREACH`, or `EHOSTUNREACH`, `EACCES`,
/// `EINVAL` for an unreachable, prohibit or blackhole route.
pub fn route_source(dst: IpAddr) -> Result<Option<IpAddr>, NetError> {
    let mut kernel = Kernel::open_for_lookups()?;
    let route = kernel.route(dst)?;
    source_of(&route).map_err(|errno| {
        NetError::with_text(
            format!("look up the route to {dst}"),
            errno,
            format!("the kernel answers with {} route", kind_name(route.kind)),
        )
    })
}

/// The primary address of interface `ifname` in one family (IPv6 when `v6`), as
/// [`primary_of`] picks it from one `RTM_GETADDR` dump of the interface's
/// addresses; `exclude` (the VIP, which may sit on the same interface) is never
/// the answer. `Ok(None)` when the interface has no such address; an error naming
/// the interface when there is no interface of that name (`ENODEV`) or the name
/// cannot be one (`EINVAL`).
pub fn primary_address(
    ifname: &str,
    v6: bool,
    exclude: IpAddr,
) -> Result<Option<IpAddr>, NetError> {
    let family = if v6 { FAMILY_INET6 } else { FAMILY_INET };
    let mut kernel = Kernel::open_for_lookups()?;
    let Some(link) = kernel.read_link(ifname)? else {
        let ip = if v6 { "IPv6" } else { "IPv4" };
        return Err(NetError::with_text(
            format!("find the primary {ip} address of interface {ifname:?}"),
            libc::ENODEV,
            "no such interface",
        ));
    };
    let addrs = kernel.addresses(family, link.index)?;
    Ok(primary_of(&addrs, link.index, family, exclude))
}

/// The source address of the kernel's answer `route` to an `RTM_GETROUTE`, or
/// the errno the kernel gives for a route of its type that leads nowhere: an
/// unreachable, prohibit, blackhole or throw route. The kernel answers a look-up
/// that ends in such a route with that error itself; a route of such a type in an
/// answer all the same leads nowhere either, whatever source it names.
pub fn source_of(route: &RouteMsg) -> Result<Option<IpAddr>, i32> {
    // The errors of <net/ipv4/fib_semantics.c>'s fib_props for these types.
    match route.kind {
        RTN_UNREACHABLE => Err(libc::EHOSTUNREACH),
        RTN_PROHIBIT => Err(libc::EACCES),
        RTN_BLACKHOLE => Err(libc::EINVAL),
        RTN_THROW => Err(libc::EAGAIN),
        _ => Ok(route.prefsrc),
    }
}

/// The primary address of `family` on interface `ifindex` among `addrs`: the
/// first, in the order given (the kernel's dump order), that is usable as this
/// host's own address, and is not `exclude`. Usable means:
/// - not `IFA_F_SECONDARY` (an IPv4 address in the subnet of an earlier one; for
///   IPv6 the same bit marks a temporary privacy address);
/// - not `IFA_F_TENTATIVE`, `IFA_F_DEPRECATED` or `IFA_F_DADFAILED` (still in or
///   failed duplicate address detection, or no longer to be used for new
///   connections);
/// - of global scope (`RT_SCOPE_UNIVERSE`), and not link-local (fe80::/10,
///   169.254.0.0/16) whatever its scope says.
///
/// IPv4 primaries come in the order they were added (for one scope); the kernel
/// lists an interface's IPv6 addresses of one scope newest first.
pub fn primary_of(addrs: &[AddrMsg], ifindex: u32, family: u8, exclude: IpAddr) -> Option<IpAddr> {
    const UNUSABLE: u32 = IFA_F_SECONDARY | IFA_F_TENTATIVE | IFA_F_DEPRECATED | IFA_F_DADFAILED;
    addrs
        .iter()
        .filter(|a| a.ifindex == ifindex && a.family == family)
        .filter(|a| a.flags & UNUSABLE == 0 && a.scope == RT_SCOPE_UNIVERSE)
        .filter_map(|a| a.address)
        .find(|&ip| ip != exclude && !is_link_local(ip))
}

/// The name of a route type that [`source_of`] refuses, for its error.
fn kind_name(kind: u8) -> &'static str {
    match kind {
        RTN_UNREACHABLE => "an unreachable",
        RTN_PROHIBIT => "a prohibit",
        RTN_BLACKHOLE => "a blackhole",
        RTN_THROW => "a throw",
        _ => "a",
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => Ipv4Addr::is_link_local(&v4),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

#[cfg(test)]
mod tests;

//! Building rtnetlink requests: address add, refresh and delete, address dumps, link
//! and route look-ups, each into a reused buffer, byte for byte as iproute2 sends
//! them.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::net::Vip;

/// Starts a message in `buf` (cleared first): a header whose length
/// [`finish`] fills in, with port id 0 (the kernel fills in the sender's).
pub(super) fn begin(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    buf.clear();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

/// Appends one attribute, padded to 4 bytes. Only called with short, fixed-size
/// data (addresses, a 15-byte name), so its length always fits a `u16`.
pub(super) fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = (4 + data.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

/// Writes the message length into the header [`begin`] wrote.
pub(super) fn finish(buf: &mut [u8]) {
    let len = u32::try_from(buf.len()).unwrap_or(u32::MAX).to_ne_bytes();
    if let Some(field) = buf.get_mut(..4) {
        field.copy_from_slice(&len);
    }
}

/// Appends an `ifaddrmsg`.
fn push_ifaddrmsg(buf: &mut Vec<u8>, family: u8, prefix_len: u8, flags: u8, ifindex: u32) {
    buf.extend_from_slice(&[family, prefix_len, flags, RT_SCOPE_UNIVERSE]);
    buf.extend_from_slice(&ifindex.to_ne_bytes());
}

/// Whether an address request adds or removes the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrChange {
    /// `RTM_NEWADDR` with `NLM_F_REQUEST|NLM_F_ACK|NLM_F_EXCL|NLM_F_CREATE`
    /// (`ip addr add`): an address already there fails with `EEXIST`.
    Add,
    /// `RTM_NEWADDR` with `NLM_F_REQUEST|NLM_F_ACK|NLM_F_CREATE|NLM_F_REPLACE`
    /// (`ip addr replace`): the address gets the lifetime asked for, whether it was
    /// there or not. Same header, flags and attributes as the add, so an address
    /// the refresh has to create again comes back exactly as the add made it.
    Refresh,
    /// `RTM_DELADDR` with `NLM_F_REQUEST|NLM_F_ACK` (`ip addr del`): an absent
    /// address fails with `EADDRNOTAVAIL`.
    Del,
}

/// Optional properties of an added address: an IPv4 label and `noprefixroute`.
/// The default is neither (a plain `ip addr add`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrOptions {
    label: Option<String>,
    /// `IFA_F_NOPREFIXROUTE` (`ip addr add ... noprefixroute`, Linux 3.14 for IPv6,
    /// 4.4 for IPv4): the kernel adds no route for the address's subnet, so a VIP
    /// with a prefix length below 32/128 brings no extra subnet route with it.
    pub noprefixroute: bool,
}

impl AddrOptions {
    /// With the label `label` (`ip addr add ... label LABEL`): shown by `ip addr` and
    /// `ifconfig` as the address's interface alias, e.g. `eth0:vip`. 1 to 15 bytes
    /// without NUL, like an interface name. Linux keeps labels for IPv4 addresses
    /// only; for an IPv6 VIP it is not sent.
    pub fn with_label(mut self, label: &str) -> Result<AddrOptions, BadLinkName> {
        if_name(label)?;
        self.label = Some(label.to_string());
        Ok(self)
    }

    /// The label, if one is set.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
}

/// Builds into `buf` the request `ip addr add|del ADDR/PREFIX_LEN dev IFINDEX`
/// sends for `vip`: `ifaddrmsg{family, prefix_len, flags, RT_SCOPE_UNIVERSE,
/// ifindex}` then `IFA_LOCAL` and `IFA_ADDRESS`, both = the address. For an IPv6 add
/// the header flags carry `IFA_F_NODAD` (as `ip -6 addr add ... nodad`), so the VIP
/// is usable at once instead of tentative during duplicate address detection.
///
/// An add with `options` has iproute2's layout (`ip addr add ... label LABEL
/// noprefixroute`): `IFA_LOCAL`, then `IFA_LABEL` (IPv4 only), then, when a flag
/// does not fit the header's 8 bits, every flag in `IFA_FLAGS` (and none in the
/// header), then `IFA_ADDRESS`. A delete ignores `options`: the kernel finds the
/// address by address and prefix length alone.
///
/// `lifetime` (add and refresh only) is sent last as `IFA_CACHEINFO` (`ip addr add
/// ... valid_lft S preferred_lft S`), preferred = valid, in whole seconds rounded
/// up ([`lifetime_secs`]). `None` means permanent: an add then sends no
/// `IFA_CACHEINFO` (the kernel's default is permanent), a refresh sends
/// `INFINITY_LIFE_TIME` to make an address that had a lifetime permanent again.
pub fn addr_request(
    buf: &mut Vec<u8>,
    change: AddrChange,
    seq: u32,
    ifindex: u32,
    vip: Vip,
    options: &AddrOptions,
    lifetime: Option<Duration>,
) {
    let (kind, flags) = match change {
        AddrChange::Add => (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
        ),
        AddrChange::Refresh => (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        ),
        AddrChange::Del => (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK),
    };
    let adding = change != AddrChange::Del;
    let cacheinfo = match (change, lifetime) {
        (AddrChange::Del, _) | (AddrChange::Add, None) => None,
        (_, Some(lifetime)) => Some(lifetime_secs(lifetime)),
        (AddrChange::Refresh, None) => Some(INFINITY_LIFE_TIME),
    };
    let mut ifa_flags = 0;
    if adding && vip.addr.is_ipv6() {
        ifa_flags |= IFA_F_NODAD;
    }
    if adding && options.noprefixroute {
        ifa_flags |= IFA_F_NOPREFIXROUTE;
    }
    let (header_flags, flags_attr) = match u8::try_from(ifa_flags) {
        Ok(fits) => (fits, None),
        Err(_) => (0, Some(ifa_flags)),
    };
    let label = match (adding, vip.addr, options.label()) {
        (true, IpAddr::V4(_), Some(label)) => Some(label),
        _ => None,
    };
    let octets: &[u8] = match &vip.addr {
        IpAddr::V4(a) => &a.octets(),
        IpAddr::V6(a) => &a.octets(),
    };
    let family = family_of(vip.addr);
    begin(buf, kind, flags, seq);
    push_ifaddrmsg(buf, family, vip.prefix_len, header_flags, ifindex);
    push_attr(buf, IFA_LOCAL, octets);
    if let Some(label) = label {
        push_name(buf, IFA_LABEL, label.as_bytes());
    }
    if let Some(all) = flags_attr {
        push_attr(buf, IFA_FLAGS, &all.to_ne_bytes());
    }
    push_attr(buf, IFA_ADDRESS, octets);
    if let Some(secs) = cacheinfo {
        // ifa_prefered, ifa_valid, cstamp, tstamp.
        let mut info = [0u8; 16];
        info[..4].copy_from_slice(&secs.to_ne_bytes());
        info[4..8].copy_from_slice(&secs.to_ne_bytes());
        push_attr(buf, IFA_CACHEINFO, &info);
    }
    finish(buf);
}

/// A lifetime in the whole seconds `ifa_cacheinfo` counts, rounded up so the kernel
/// never keeps the address for less than asked (and never 0, which it refuses),
/// and kept below `INFINITY_LIFE_TIME`, which would mean "forever".
pub fn lifetime_secs(lifetime: Duration) -> u32 {
    let secs = lifetime
        .as_secs()
        .saturating_add(u64::from(lifetime.subsec_nanos() > 0));
    u32::try_from(secs.max(1))
        .unwrap_or(INFINITY_LIFE_TIME - 1)
        .min(INFINITY_LIFE_TIME - 1)
}

/// Builds into `buf` an `RTM_GETADDR` dump request (`NLM_F_REQUEST|NLM_F_DUMP`) for
/// addresses of `family` ([`FAMILY_INET`], [`FAMILY_INET6`] or [`FAMILY_UNSPEC`]) on
/// interface `ifindex` (0: all), as `ip -4 addr show dev NAME` sends it. The kernel
/// filters by interface only on sockets with `NETLINK_GET_STRICT_CHK`; callers
/// filter the replies themselves.
pub fn addr_dump_request(buf: &mut Vec<u8>, seq: u32, family: u8, ifindex: u32) {
    begin(buf, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
    push_ifaddrmsg(buf, family, 0, 0, ifindex);
    finish(buf);
}

/// Why an interface name cannot be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLinkName;

impl fmt::Display for BadLinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interface names are 1 to 15 bytes without NUL")
    }
}

/// Builds into `buf` an `RTM_GETLINK` request (`NLM_F_REQUEST`) for the interface
/// called `name`: an empty `ifinfomsg`, `IFLA_EXT_MASK` = `RTEXT_FILTER_SKIP_STATS`
/// and `IFLA_IFNAME`. The kernel answers with one `RTM_NEWLINK`, or an error
/// (`ENODEV` when there is no such interface). iproute2 also sets
/// `RTEXT_FILTER_VF`; vipd needs no SR-IOV details, which can make the reply large.
pub fn link_request(buf: &mut Vec<u8>, seq: u32, name: &str) -> Result<(), BadLinkName> {
    let name = if_name(name)?;
    begin(buf, RTM_GETLINK, NLM_F_REQUEST, seq);
    buf.extend_from_slice(&[0u8; 16]); // ifinfomsg: AF_UNSPEC, type, index, flags, change
    push_attr(buf, IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    push_name(buf, IFLA_IFNAME, name);
    finish(buf);
    Ok(())
}

/// Builds into `buf` the `RTM_GETROUTE` request (`NLM_F_REQUEST`, not a dump)
/// `ip route get DST` sends: `rtmsg{family, dst_len = 32 or 128, src_len 0, tos 0,
/// table 0, protocol 0, scope 0, type 0, flags}` then `RTA_DST`. The flags are
/// `RTM_F_LOOKUP_TABLE` for IPv4 and 0 for IPv6, whose strict checking refuses
/// any but `RTM_F_FIB_MATCH` (which would answer with the table's entry, not the
/// resolved route). The kernel resolves the route as for a packet it would send to
/// `dst` (sending none) and answers with one `RTM_NEWROUTE`, whose `RTA_PREFSRC` is
/// the source address it would pick, or with an error (`ENETUNREACH` when no route
/// leads there).
pub fn route_request(buf: &mut Vec<u8>, seq: u32, dst: IpAddr) {
    let (family, dst_len, flags, octets): (u8, u8, u32, &[u8]) = match &dst {
        IpAddr::V4(a) => (FAMILY_INET, 32, RTM_F_LOOKUP_TABLE, &a.octets()),
        IpAddr::V6(a) => (FAMILY_INET6, 128, 0, &a.octets()),
    };
    begin(buf, RTM_GETROUTE, NLM_F_REQUEST, seq);
    buf.extend_from_slice(&[family, dst_len, 0, 0, 0, 0, RT_SCOPE_UNIVERSE, 0]);
    buf.extend_from_slice(&flags.to_ne_bytes());
    push_attr(buf, RTA_DST, octets);
    finish(buf);
}

/// The bytes of `name` if it can name an interface (or label an address): 1 to 15
/// bytes without NUL.
fn if_name(name: &str) -> Result<&[u8], BadLinkName> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
        return Err(BadLinkName);
    }
    Ok(bytes)
}

/// Appends attribute `kind` holding `name` (checked by [`if_name`]) and a NUL.
fn push_name(buf: &mut Vec<u8>, kind: u16, name: &[u8]) {
    let len = name.len().min(IFNAMSIZ - 1);
    let mut name_z = [0u8; IFNAMSIZ];
    name_z[..len].copy_from_slice(&name[..len]);
    push_attr(buf, kind, &name_z[..=len]);
}

#[cfg(test)]
mod tests;

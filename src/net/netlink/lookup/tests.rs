//! The choices on the kernel's answers, made on the captured ones and on made-up
//! addresses for the cases the captures do not hold.

use super::*;
use crate::net::netlink::captures::*;
use crate::net::netlink::reply::Payload;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The messages of every reply `ip` read on socket 3 in `capture`.
fn replies(capture: &str) -> Vec<Payload> {
    calls(capture)
        .iter()
        .filter(|c| c.line.starts_with("recvmsg(3"))
        .flat_map(|c| parse_all(&c.bytes).unwrap())
        .map(|m| m.payload)
        .collect()
}

fn routes_in(capture: &str) -> Vec<RouteMsg> {
    let routes = replies(capture).into_iter().filter_map(|p| match p {
        Payload::NewRoute(r) => Some(r),
        _ => None,
    });
    routes.collect()
}

#[test]
fn the_source_is_the_preferred_source_of_the_kernels_route() {
    let [v4] = routes_in(ROUTE_GET)[..] else {
        panic!("not one route");
    };
    assert_eq!(source_of(&v4), Ok(Some(ip("192.0.2.50"))));
    let [v6] = routes_in(ROUTE6_GET)[..] else {
        panic!("not one route");
    };
    assert_eq!(source_of(&v6), Ok(Some(ip("2001:db8::50"))));
    // A route the kernel gives without one: no source, not an error.
    let bare = RouteMsg {
        prefsrc: None,
        gateway: None,
        ..v4
    };
    assert_eq!(source_of(&bare), Ok(None));
    // A local destination (RTN_LOCAL) is its own source.
    let local = RouteMsg {
        kind: 2,
        prefsrc: Some(ip("192.0.2.50")),
        ..bare
    };
    assert_eq!(source_of(&local), Ok(Some(ip("192.0.2.50"))));
}

#[test]
fn routes_that_lead_nowhere_are_the_kernels_errors() {
    let [v6] = routes_in(ROUTE6_GET)[..] else {
        panic!("not one route");
    };
    // Even with a source in them, as older kernels sent for IPv6.
    for (kind, errno) in [
        (RTN_UNREACHABLE, libc::EHOSTUNREACH),
        (RTN_PROHIBIT, libc::EACCES),
        (RTN_BLACKHOLE, libc::EINVAL),
        (RTN_THROW, libc::EAGAIN),
    ] {
        let route = RouteMsg { kind, ..v6 };
        assert_eq!(source_of(&route), Err(errno), "type {kind}");
    }
    // With no route at all the kernel answers with an error, not a route.
    let errors: Vec<Payload> = replies(ROUTE_GET_UNREACHABLE);
    assert_eq!(
        errors,
        [Payload::Error {
            errno: libc::ENETUNREACH,
            extack: None
        }]
    );
}

/// The addresses of `ip addr show dev eth1` in the flags capture, in dump order.
fn captured_addrs() -> Vec<AddrMsg> {
    let addrs = replies(SHOW_FLAGS).into_iter().filter_map(|p| match p {
        Payload::NewAddr(a) => Some(a),
        _ => None,
    });
    addrs.collect()
}

#[test]
fn the_primary_address_passes_over_what_a_host_does_not_send_from() {
    let addrs = captured_addrs();
    let eth1 = eth1_index(SHOW_FLAGS);
    let none = ip("192.0.2.99");
    // IPv4: 203.0.113.130/25 (scope link) comes first, 198.51.100.51 is secondary.
    assert_eq!(
        primary_of(&addrs, eth1, FAMILY_INET, none),
        Some(ip("198.51.100.50"))
    );
    assert_eq!(
        primary_of(&addrs, eth1, FAMILY_INET, ip("198.51.100.50")),
        None,
        "the excluded VIP is no answer, nor the secondary behind it"
    );
    // IPv6: ::70 is tentative and ::60 deprecated, both listed before ::50; the
    // link-local addresses come last.
    assert_eq!(
        primary_of(&addrs, eth1, FAMILY_INET6, none),
        Some(ip("2001:db8:1::50"))
    );
    assert_eq!(
        primary_of(&addrs, eth1, FAMILY_INET6, ip("2001:db8:1::50")),
        None
    );
    // Another interface's addresses do not count.
    assert_eq!(primary_of(&addrs, eth1 + 1, FAMILY_INET, none), None);
    assert_eq!(primary_of(&[], eth1, FAMILY_INET, none), None);
}

/// A made-up address on interface 4.
fn addr(address: &str, flags: u32, scope: u8) -> AddrMsg {
    let address = ip(address);
    AddrMsg {
        family: family_of(address),
        prefix_len: 24,
        ifindex: 4,
        address: Some(address),
        flags,
        scope,
    }
}

#[test]
fn the_primary_address_is_the_first_usable_one_but_the_vip() {
    let vip = ip("203.0.113.10");
    // The VIP, added first, then the host's address.
    let addrs = [addr("203.0.113.10", 0, 0), addr("198.51.100.2", 0, 0)];
    assert_eq!(
        primary_of(&addrs, 4, FAMILY_INET, vip),
        Some(ip("198.51.100.2"))
    );
    let other = ip("192.0.2.99");
    assert_eq!(primary_of(&addrs, 4, FAMILY_INET, other), Some(vip));
    // Each reason to pass over an address, alone.
    for skipped in [
        addr("198.51.100.3", IFA_F_SECONDARY, 0),
        addr("198.51.100.3", IFA_F_DADFAILED, 0),
        addr("198.51.100.3", 0, 200), // RT_SCOPE_SITE
        addr("198.51.100.3", 0, 254), // RT_SCOPE_HOST
        addr("169.254.0.3", 0, 0),
        addr("2001:db8::3", IFA_F_TENTATIVE, 0),
        addr("2001:db8::3", IFA_F_DEPRECATED, 0),
        addr("2001:db8::3", IFA_F_SECONDARY, 0), // IFA_F_TEMPORARY
        addr("fe80::3", 0, 0),
        addr("febf::3", 0, 0),
        AddrMsg {
            address: None,
            ..addr("198.51.100.3", 0, 0)
        },
    ] {
        let family = skipped.family;
        let after = match family {
            FAMILY_INET => addr("198.51.100.4", IFA_F_NODAD, 0),
            _ => addr("2001:db8::4", IFA_F_NODAD, 0),
        };
        let want = after.address;
        assert_eq!(
            primary_of(&[skipped, after], 4, family, vip),
            want,
            "{skipped:?}"
        );
        assert_eq!(primary_of(&[skipped], 4, family, vip), None, "{skipped:?}");
    }
    // fec0::/10 (site-local, deprecated) is not link-local; the family must match.
    let site = [addr("fec0::3", 0, 0)];
    assert_eq!(primary_of(&site, 4, FAMILY_INET6, vip), Some(ip("fec0::3")));
    assert_eq!(primary_of(&site, 4, FAMILY_INET, vip), None);
}

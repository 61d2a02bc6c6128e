//! `route_source` and `primary_address` against the real kernel, inside a network
//! namespace of the lab (a veth pair eth0/eth1, documentation addresses only), the
//! look-ups made from a thread that entered it. Needs root; without it the tests
//! fail unless VIPD_ALLOW_SKIP=1.

use std::net::IpAddr;

use crate::common::{Netns, in_netns, lab_id};
use vipd::net::{NetError, primary_address, route_source};

/// A namespace with IPv6 on and a veth pair eth0/eth1, both up, without automatic
/// link-local addresses (the tests add the ones they need).
fn namespace(role: &str) -> Netns {
    let ns = Netns::new(&lab_id(), role);
    ns.sysctl(&[
        "net.ipv6.conf.all.disable_ipv6=0",
        "net.ipv6.conf.default.disable_ipv6=0",
    ]);
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    for dev in ["eth0", "eth1"] {
        ns.ip(&["link", "set", dev, "addrgenmode", "none"]);
        ns.ip(&["link", "set", dev, "up"]);
    }
    ns
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `route_source(dst)` asked from inside `ns`.
fn source(ns: &Netns, dst: &str) -> Result<Option<IpAddr>, NetError> {
    let dst = ip(dst);
    in_netns(&ns.name, || route_source(dst))
}

/// `primary_address(ifname, v6, exclude)` asked from inside `ns`.
fn primary(ns: &Netns, ifname: &str, v6: bool, exclude: &str) -> Result<Option<IpAddr>, NetError> {
    let exclude = ip(exclude);
    in_netns(&ns.name, || primary_address(ifname, v6, exclude))
}

/// The errno of a look-up that must fail, after checking that its message names `dst`.
fn errno_towards(ns: &Netns, dst: &str) -> i32 {
    let err = source(ns, dst).expect_err(dst);
    assert!(err.to_string().contains(dst), "{err}");
    err.errno
}

#[test]
fn route_source_is_the_kernels_choice_of_source_address() {
    gate!(Root);
    let ns = namespace("rs");

    // A route out of eth0 while no interface has an IPv4 address to send from
    // (127.0.0.1 is of host scope): the kernel answers without a source.
    ns.ip(&["route", "add", "203.0.113.0/24", "dev", "eth0"]);
    assert_eq!(source(&ns, "203.0.113.7").unwrap(), None);
    ns.ip(&["route", "del", "203.0.113.0/24", "dev", "eth0"]);

    ns.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"]);
    ns.ip(&["addr", "add", "198.51.100.3/24", "dev", "eth0"]);
    ns.ip(&["addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad"]);
    assert!(
        ns.ip(&["-4", "addr", "show", "dev", "eth0"])
            .contains("198.51.100.3/24 scope global secondary")
    );

    // No route beyond the subnet yet.
    assert_eq!(errno_towards(&ns, "203.0.113.7"), libc::ENETUNREACH);
    assert_eq!(errno_towards(&ns, "2001:db8:9::7"), libc::ENETUNREACH);

    // On the link, and to the host's own addresses.
    let main4 = Some(ip("198.51.100.2"));
    let main6 = Some(ip("2001:db8:1::2"));
    assert_eq!(source(&ns, "198.51.100.77").unwrap(), main4);
    assert_eq!(source(&ns, "2001:db8:1::77").unwrap(), main6);
    // The kernel's local route to a secondary address has the primary as its source
    // (`ip route get 198.51.100.3` says so too).
    assert_eq!(source(&ns, "198.51.100.3").unwrap(), main4);
    assert_eq!(source(&ns, "2001:db8:1::2").unwrap(), main6);

    // Via the default routes.
    ns.ip(&["route", "add", "default", "via", "198.51.100.1"]);
    ns.ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"]);
    assert_eq!(source(&ns, "203.0.113.7").unwrap(), main4);
    assert_eq!(source(&ns, "2001:db8:9::7").unwrap(), main6);

    // A route that names its source: the kernel's choice, not the primary address.
    ns.ip(&[
        "route",
        "add",
        "192.0.2.0/24",
        "via",
        "198.51.100.1",
        "src",
        "198.51.100.3",
    ]);
    assert_eq!(source(&ns, "192.0.2.9").unwrap(), Some(ip("198.51.100.3")));

    // Routes that lead nowhere, more specific than the default routes.
    ns.ip(&["route", "add", "unreachable", "203.0.113.0/25"]);
    ns.ip(&["-6", "route", "add", "prohibit", "2001:db8:9::/48"]);
    assert_eq!(errno_towards(&ns, "203.0.113.7"), libc::EHOSTUNREACH);
    assert_eq!(errno_towards(&ns, "2001:db8:9::7"), libc::EACCES);
    assert_eq!(source(&ns, "203.0.113.200").unwrap(), main4);

    // Only looked up: nothing was sent, so no neighbour was ever resolved, neither
    // the gateways nor the destination on the link.
    for neighbour in [
        "198.51.100.1",
        "198.51.100.77",
        "2001:db8:1::1",
        "2001:db8:1::77",
    ] {
        assert_eq!(ns.neigh(neighbour), None, "{neighbour}");
    }
}

#[test]
fn primary_address_is_the_first_usable_global_address_but_the_vip() {
    gate!(Root);
    let ns = namespace("pa");
    // Duplicate address detection on eth0 takes 60 s, so an address added without
    // nodad stays tentative throughout the test.
    ns.sysctl(&["net.ipv6.neigh.eth0.retrans_time_ms=60000"]);

    // IPv4, in the kernel's order: primaries by scope, each scope in the order added,
    // then the secondaries.
    ns.ip(&[
        "addr",
        "add",
        "192.0.2.130/25",
        "dev",
        "eth0",
        "scope",
        "link",
    ]);
    ns.ip(&["addr", "add", "203.0.113.10/32", "dev", "eth0"]);
    ns.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"]);
    ns.ip(&["addr", "add", "198.51.100.3/24", "dev", "eth0"]);
    let shown = ns.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]);
    let order: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    let want = [
        "192.0.2.130/25",
        "203.0.113.10/32",
        "198.51.100.2/24",
        "198.51.100.3/24",
    ];
    assert_eq!(order, want, "{shown}");
    let vip = "203.0.113.10";
    let unrelated = "192.0.2.99";
    assert_eq!(
        primary(&ns, "eth0", false, vip).unwrap(),
        Some(ip("198.51.100.2"))
    );
    assert_eq!(
        primary(&ns, "eth0", false, unrelated).unwrap(),
        Some(ip(vip))
    );

    // The VIP first in its subnet, the host's address a secondary behind it: none.
    ns.ip(&["addr", "add", "192.0.2.10/24", "dev", "eth1"]);
    ns.ip(&["addr", "add", "192.0.2.11/24", "dev", "eth1"]);
    assert_eq!(primary(&ns, "eth1", false, "192.0.2.10").unwrap(), None);
    assert_eq!(
        primary(&ns, "eth1", false, unrelated).unwrap(),
        Some(ip("192.0.2.10"))
    );

    // IPv6, listed newest first: tentative ::20, the VIP ::10, deprecated ::9, then
    // ::2, then the link-local address.
    let v6vip = "2001:db8:1::10";
    ns.ip(&["-6", "addr", "add", "fe80::2/64", "dev", "eth0", "nodad"]);
    ns.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:1::2/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    ns.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:1::9/64",
        "dev",
        "eth0",
        "nodad",
        "preferred_lft",
        "0",
    ]);
    ns.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:1::10/128",
        "dev",
        "eth0",
        "nodad",
    ]);
    ns.ip(&["-6", "addr", "add", "2001:db8:1::20/64", "dev", "eth0"]);
    assert_eq!(
        primary(&ns, "eth0", true, v6vip).unwrap(),
        Some(ip("2001:db8:1::2"))
    );
    assert_eq!(
        primary(&ns, "eth0", true, unrelated).unwrap(),
        Some(ip(v6vip))
    );
    let shown = ns.ip(&["-6", "-o", "addr", "show", "dev", "eth0"]);
    let flags_of = |addr: &str| {
        let line = shown.lines().find(|l| l.contains(&format!(" {addr}/")));
        line.unwrap_or_else(|| panic!("no {addr} in {shown}"))
            .to_string()
    };
    assert!(flags_of("2001:db8:1::20").contains("tentative"), "{shown}");
    assert!(flags_of("2001:db8:1::9").contains("deprecated"), "{shown}");
    // The families apart: eth0's IPv4 answer is unchanged.
    assert_eq!(
        primary(&ns, "eth0", false, vip).unwrap(),
        Some(ip("198.51.100.2"))
    );

    // Only a link-local address, only host-scope addresses, no address: none.
    ns.ip(&["-6", "addr", "add", "fe80::1/64", "dev", "eth1", "nodad"]);
    assert_eq!(primary(&ns, "eth1", true, unrelated).unwrap(), None);
    assert_eq!(primary(&ns, "lo", false, unrelated).unwrap(), None);
    assert_eq!(primary(&ns, "lo", true, unrelated).unwrap(), None);
    ns.ip(&["addr", "flush", "dev", "eth1"]);
    assert_eq!(primary(&ns, "eth1", false, unrelated).unwrap(), None);

    // No such interface, or no such name: errors that name it.
    let err = primary(&ns, "nosuch0", false, unrelated).unwrap_err();
    assert_eq!(err.errno, libc::ENODEV, "{err}");
    assert!(err.to_string().contains("\"nosuch0\""), "{err}");
    let err = primary(&ns, "a-name-too-long-", true, unrelated).unwrap_err();
    assert_eq!(err.errno, libc::EINVAL, "{err}");
    assert!(err.to_string().contains("\"a-name-too-long-\""), "{err}");
}

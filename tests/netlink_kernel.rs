//! `Kernel` against the real kernel: add, list and delete addresses and announce with
//! gratuitous ARP inside a network namespace of the lab (a veth pair eth0/eth1,
//! documentation addresses only), removed again even when the test fails. Needs root;
//! without it the test fails unless VIPD_ALLOW_SKIP=1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::common::{Netns, Proc, args, in_netns, lab_id, ms, tool, wait_until};
use vipd::net::netlink::FAMILY_INET;
use vipd::net::{AddrBackend, AnnounceMode, Kernel, Vip};

const MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x01]; // RFC 7042 documentation MAC
const MAC_TEXT: &str = "00:00:5e:00:53:01";
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));
const LOOKALIKE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x50));

/// A namespace with IPv6 on (the kernel's default) and a veth pair; see [`veth_pair`].
fn namespace() -> Netns {
    let ns = Netns::new(&lab_id(), "nl");
    ns.sysctl(&[
        "net.ipv6.conf.all.disable_ipv6=0",
        "net.ipv6.conf.default.disable_ipv6=0",
    ]);
    veth_pair(&ns);
    ns
}

/// A veth pair eth0 (with the documentation MAC) / eth1, both up, without IPv6 link-local
/// addresses: their duplicate address detection ends at a time of its own, with a
/// notification that would make an idle look read.
fn veth_pair(ns: &Netns) {
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    ns.ip(&["link", "set", "eth0", "address", MAC_TEXT]);
    for dev in ["eth0", "eth1"] {
        ns.ip(&["link", "set", dev, "addrgenmode", "none"]);
        ns.ip(&["link", "set", dev, "up"]);
    }
}

/// The interface index of `dev`, from `ip -o link show`.
fn index_of(ns: &Netns, dev: &str) -> u32 {
    let shown = ns.ip(&["-o", "link", "show", dev]);
    let index = shown.split(':').next().and_then(|i| i.trim().parse().ok());
    index.unwrap_or_else(|| panic!("{dev}'s index in {shown}"))
}

/// The kernel backend opened inside `ns`: its sockets stay in the namespace whatever
/// thread uses them.
fn kernel_in(ns: &Netns) -> Kernel {
    in_netns(&ns.name, || Kernel::open().expect("open"))
}

/// Looks ten times with `look` and checks that the kernel was not read meanwhile.
fn assert_idle(k: &mut Kernel, mut look: impl FnMut(&mut Kernel)) {
    let idle = k.reads();
    for _ in 0..10 {
        look(k);
    }
    assert_eq!(k.reads(), idle, "nothing changed, nothing read");
}

fn v4(vip: IpAddr, prefix_len: u8) -> Vip {
    Vip {
        addr: vip,
        prefix_len,
    }
}

#[test]
fn kernel_adds_lists_deletes_and_announces_in_a_namespace() {
    gate!(Root);
    let ns = namespace();
    let eth0 = index_of(&ns, "eth0");
    let eth1 = index_of(&ns, "eth1");
    let addrs_of = |dev: &str, family: &str| ns.ip(&[family, "-o", "addr", "show", "dev", dev]);

    let mut k = kernel_in(&ns);

    // Links.
    let link = k.link("eth0").unwrap().expect("eth0 exists");
    assert_eq!(link.index, eth0);
    assert_eq!(link.mac, MAC);
    assert!(link.up);
    assert_eq!(k.link("nosuch0").unwrap(), None);
    let err = k.link("a-name-too-long-").unwrap_err();
    assert_eq!(err.errno, libc::EINVAL);
    ns.ip(&["link", "set", "eth1", "down"]);
    let down = k.link("eth0").unwrap().unwrap();
    assert!(!down.up, "no carrier with the peer down");
    ns.ip(&["link", "set", "eth1", "up"]);

    // Add, idempotently, at two prefix lengths, beside a look-alike address.
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [] as [u8; 0]);
    k.add(eth0, v4(VIP, 24), None).unwrap();
    assert!(addrs_of("eth0", "-4").contains("inet 192.0.2.50/24 "));
    k.add(eth0, v4(VIP, 24), None).expect("EEXIST is success");
    k.add(eth0, v4(VIP, 32), None).unwrap();
    k.add(eth0, v4(LOOKALIKE, 24), None).unwrap();
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [24, 32]);
    assert_eq!(k.vip_prefixes(eth0, LOOKALIKE).unwrap(), [24]);
    assert_eq!(k.vip_prefixes(eth1, VIP).unwrap(), [] as [u8; 0]);
    assert_eq!(k.vip_prefixes(999_999, VIP).unwrap(), [] as [u8; 0]);
    let listed = k.addresses(FAMILY_INET, eth0).unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");

    // Kernel errors come back with errno, op and (where the kernel gives it) text.
    let err = k.add(999_999, v4(VIP, 24), None).unwrap_err();
    assert_eq!(err.errno, libc::ENODEV, "{err}");
    assert!(err.op.contains("192.0.2.50/24"), "{err}");
    let err = k.add(eth0, v4(LOOKALIKE, 33), None).unwrap_err();
    assert_eq!(err.errno, libc::EINVAL, "{err}");
    eprintln!("kernel errors as reported: {err}");

    // Announce: the peer sees a request then a reply, both gratuitous.
    let tcpdump = args("-i eth1 -n -e -t -l -c 2 arp");
    let tcpdump = Proc::spawn_in(&ns.name, &tool("tcpdump"), &tcpdump, true);
    // tcpdump says "listening on eth1" once capturing (after a line or two of notes).
    let listening = || tcpdump.stderr().contains("listening on");
    let said = wait_until(Duration::from_secs(10), ms(10), listening);
    assert!(said.is_some(), "tcpdump: {}", tcpdump.log());
    let started = Instant::now();
    k.announce(&link, v4(VIP, 24), AnnounceMode::Both).unwrap();
    let seen = tcpdump.finish(Duration::from_secs(10)).stdout;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "tcpdump timed out: {seen}");
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 2, "{seen}");
    assert!(lines[0].starts_with(&format!("{MAC_TEXT} > ff:ff:ff:ff:ff:ff, ethertype ARP")));
    let request = lines[0].contains("Request who-has 192.0.2.50 tell 192.0.2.50");
    assert!(request, "{seen}");
    let reply = lines[1].contains(&format!("Reply 192.0.2.50 is-at {MAC_TEXT}"));
    assert!(reply, "{seen}");
    // IPv6 announcements (unsolicited NAs) are checked in tests/ipv6.rs.

    // Delete, idempotently, every copy.
    k.del(eth0, VIP, 24).unwrap();
    k.del(eth0, VIP, 24).expect("EADDRNOTAVAIL is success");
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [32]);
    k.del(eth0, VIP, 32).unwrap();
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [] as [u8; 0]);
    assert!(!addrs_of("eth0", "-4").contains("192.0.2.50/"));

    // IPv6: added without duplicate address detection, so never tentative.
    k.add(eth0, v4(VIP6, 64), None).unwrap();
    k.add(eth0, v4(VIP6, 64), None).expect("EEXIST is success");
    assert_eq!(k.vip_prefixes(eth0, VIP6).unwrap(), [64]);
    let shown = addrs_of("eth0", "-6");
    let line = shown
        .lines()
        .find(|l| l.contains("2001:db8::50/64"))
        .unwrap_or_else(|| panic!("no VIP in {shown}"));
    assert!(!line.contains("tentative"), "{line}");
    k.del(eth0, VIP6, 64).unwrap();
    k.del(eth0, VIP6, 64).expect("EADDRNOTAVAIL is success");
    assert_eq!(k.vip_prefixes(eth0, VIP6).unwrap(), [] as [u8; 0]);
}

/// `Kernel::link` and `Kernel::vip_prefixes` ask the kernel only when a
/// notification says something may have changed, and then answer what `ip` shows:
/// every kind of change (carrier, admin state, hardware address, a flap between two
/// looks, removal, re-creation, rename; an address added or deleted by hand, by
/// vipd, or at another prefix length) is seen at the next look, and nothing is read
/// while nothing changed.
#[test]
fn kernel_answers_follow_every_change_and_cost_nothing_while_idle() {
    gate!(Root);
    let ns = namespace();
    let mut k = kernel_in(&ns);

    let first = k.link("eth0").unwrap().expect("eth0 exists");
    assert!(first.up);
    assert_eq!(first.index, index_of(&ns, "eth0"));
    let eth0 = first.index;
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [] as [u8; 0]);
    assert_idle(&mut k, |k| {
        assert_eq!(k.link("eth0").unwrap(), Some(first));
        assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [] as [u8; 0]);
    });

    // Addresses: added and deleted by vipd, by hand, at another prefix length, and
    // on another interface; link answers stay valid throughout.
    k.add(eth0, v4(VIP, 24), None).unwrap();
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [24]);
    ns.ip(&["addr", "add", "192.0.2.50/32", "dev", "eth0"]);
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [24, 32]);
    ns.ip(&["addr", "del", "192.0.2.50/24", "dev", "eth0"]);
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [32]);
    ns.ip(&["addr", "add", "192.0.2.50/24", "dev", "eth1"]);
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [32]);
    assert_eq!(k.vip_prefixes(index_of(&ns, "eth1"), VIP).unwrap(), [24]);
    k.del(eth0, VIP, 32).unwrap();
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [] as [u8; 0]);
    ns.ip(&["addr", "add", "2001:db8::50/64", "dev", "eth0", "nodad"]);
    assert_eq!(k.vip_prefixes(eth0, VIP6).unwrap(), [64]);
    ns.ip(&["addr", "del", "2001:db8::50/64", "dev", "eth0"]);
    assert_eq!(k.vip_prefixes(eth0, VIP6).unwrap(), [] as [u8; 0]);
    assert_eq!(k.link("eth0").unwrap(), Some(first));
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [] as [u8; 0]);
    assert_idle(&mut k, |k| {
        assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [] as [u8; 0]);
    });

    // Carrier lost (the peer goes down), then back.
    ns.ip(&["link", "set", "eth1", "down"]);
    let down = k.link("eth0").unwrap().unwrap();
    assert!(!down.up, "no carrier with the peer down");
    ns.ip(&["link", "set", "eth1", "up"]);
    let back = k.link("eth0").unwrap().unwrap();
    assert!(back.up);
    assert!(back.carrier_changes > first.carrier_changes);

    // A flap between two looks: up both times, but the count moved.
    ns.ip(&["link", "set", "eth0", "down"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    let flapped = k.link("eth0").unwrap().unwrap();
    let counted = flapped.carrier_changes > back.carrier_changes;
    assert!(counted, "{flapped:?}");

    // A new hardware address.
    ns.ip(&["link", "set", "eth0", "address", "00:00:5e:00:53:02"]);
    let moved = k.link("eth0").unwrap().unwrap();
    assert_eq!(moved.mac, [0x00, 0x00, 0x5e, 0x00, 0x53, 0x02]);

    // Renamed away, gone with its addresses, made again (a new index), and idle.
    k.add(eth0, v4(VIP, 24), None).unwrap();
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [24]);
    ns.ip(&["link", "set", "eth0", "name", "eth9"]);
    assert_eq!(k.link("eth0").unwrap(), None);
    assert_eq!(k.link("eth9").unwrap().map(|l| l.index), Some(eth0));
    ns.ip(&["link", "del", "eth9"]);
    assert_eq!(k.link("eth9").unwrap(), None);
    assert_eq!(k.vip_prefixes(eth0, VIP).unwrap(), [] as [u8; 0]);
    veth_pair(&ns);
    let again = k.link("eth0").unwrap().expect("eth0 again");
    assert_eq!(again.index, index_of(&ns, "eth0"));
    assert_ne!(again.index, eth0);
    assert_eq!(k.vip_prefixes(again.index, VIP).unwrap(), [] as [u8; 0]);
    assert_idle(&mut k, |k| {
        assert_eq!(k.link("eth0").unwrap(), Some(again));
        assert_eq!(k.vip_prefixes(again.index, VIP).unwrap(), [] as [u8; 0]);
    });
}

//! A second holder of the VIP, against the real kernel in namespaces of the lab
//! (documentation addresses and MACs only): the conflict listener queues nothing but
//! claims to the VIP however much other ARP and neighbour discovery traffic passes,
//! skips what this host sends, and its probes make a silent holder (an address added
//! by hand, which announces nothing) answer, for IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use crate::common::*;
use vipd::net::arp::{ArpOp, ETH_P_ARP, PacketSocket, garp_frame};
use vipd::net::conflict::Listener;
use vipd::net::ndisc::{ETH_P_IPV6, na_frame};

/// A MAC another machine claims the VIP with (RFC 7042 documentation range).
const FORGED_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x99];
const VIP6: &str = "2001:db8::50";

/// The interface index of `dev` in `ns`, from `ip -o link show`.
fn index_of(ns: &Netns, dev: &str) -> u32 {
    let shown = ns.ip(&["-o", "link", "show", dev]);
    let index = shown.split(':').next().and_then(|i| i.trim().parse().ok());
    index.unwrap_or_else(|| panic!("{dev}'s index in {shown}"))
}

/// Whether `fd` is readable within `ms` milliseconds.
fn readable(fd: RawFd, ms: i32) -> bool {
    let mut fds = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    vipd::net::sys::poll(&mut fds, ms).expect("poll") > 0
}

/// What the listener has queued now, after waiting up to `ms` for the first frame.
fn claims(l: &mut Listener, own: [u8; 6], ms: i32) -> Vec<[u8; 6]> {
    let mut out = Vec::new();
    if readable(l.fd(), ms) {
        l.drain(own, &mut out);
    }
    out
}

/// IPv6 on for `ifname` in `ns` without link-local addresses (no DAD of their own), and
/// no unsolicited NAs from the kernel (`ndisc_notify` 0: an address added by hand
/// announces nothing).
fn enable_ipv6(ns: &Netns, ifname: &str) {
    ns.ip(&["link", "set", ifname, "addrgenmode", "none"]);
    let conf = |key: &str, value: &str| format!("net.ipv6.conf.{ifname}.{key}={value}");
    ns.sysctl(&[
        "net.ipv6.conf.all.disable_ipv6=0",
        &conf("disable_ipv6", "0"),
        &conf("router_solicitations", "0"),
        &conf("ndisc_notify", "0"),
    ]);
}

#[test]
fn conflict_listener_queues_only_claims_and_probes_find_a_silent_holder() {
    gate!(Root);
    let lab = NodeLab::new();
    let vip4 = IpAddr::V4(vip());
    let (node_mac, peer_mac) = (lab.node_mac(), lab.peer.mac(PEER_IF));
    let node_if = index_of(&lab.node, NODE_IF);
    let peer_if = index_of(&lab.peer, PEER_IF);
    let mut listener = in_netns(&lab.node.name, || Listener::open(node_if, vip4)).expect("open");
    let peer_sock = in_netns(&lab.peer.name, PacketSocket::open).expect("peer socket");
    let node_sock = in_netns(&lab.node.name, PacketSocket::open).expect("node socket");

    // A thousand ARP packets for other addresses, requests asking for the VIP, and the
    // peer's kernel resolving the node: none is a claim, none is queued.
    for i in 0..1000u32 {
        let other = Ipv4Addr::new(192, 0, 2, 60 + (i % 100) as u8);
        let op = if i % 2 == 0 {
            ArpOp::Request
        } else {
            ArpOp::Reply
        };
        let garp = garp_frame(FORGED_MAC, other, op);
        peer_sock
            .send_frame(&garp, peer_if, ETH_P_ARP)
            .expect("send");
        let mut asking = garp;
        asking[38..42].copy_from_slice(&vip().octets());
        peer_sock
            .send_frame(&asking, peer_if, ETH_P_ARP)
            .expect("send");
    }
    let ping = lab
        .peer
        .exec(&tool("ping"), &["-c", "1", "-W", "1", "192.0.2.11"]);
    ping.expect(0, "ping from the peer");
    assert!(!readable(listener.fd(), 200), "unrelated ARP was queued");

    // What this host sends itself is skipped, even with a foreign sender MAC.
    let own = garp_frame(FORGED_MAC, vip(), ArpOp::Request);
    node_sock
        .send_frame(&own, node_if, ETH_P_ARP)
        .expect("send");
    assert_eq!(claims(&mut listener, node_mac, 300), Vec::<[u8; 6]>::new());

    // A forged gratuitous ARP is a claim; one naming our own MAC is not.
    peer_sock
        .send_frame(&own, peer_if, ETH_P_ARP)
        .expect("send");
    assert_eq!(claims(&mut listener, node_mac, 2000), vec![FORGED_MAC]);
    let ours = garp_frame(node_mac, vip(), ArpOp::Reply);
    peer_sock
        .send_frame(&ours, peer_if, ETH_P_ARP)
        .expect("send");
    assert_eq!(claims(&mut listener, node_mac, 300), Vec::<[u8; 6]>::new());

    // The peer takes the VIP by hand: Linux announces nothing for it...
    lab.peer
        .ip(&["addr", "add", "192.0.2.50/24", "dev", PEER_IF]);
    assert!(
        !readable(listener.fd(), 500),
        "`ip addr add` sent an ARP for the VIP"
    );
    // ...but answers the probe, with its own MAC.
    listener.probe(node_mac).expect("probe");
    assert_eq!(claims(&mut listener, node_mac, 2000), vec![peer_mac]);
}

#[test]
fn conflict_listener_finds_a_silent_ipv6_holder() {
    gate!(Root);
    let lab = NodeLab::new();
    enable_ipv6(&lab.node, NODE_IF);
    enable_ipv6(&lab.peer, PEER_IF);
    let vip6: Ipv6Addr = VIP6.parse().expect("VIP6");
    let (node_mac, peer_mac) = (lab.node_mac(), lab.peer.mac(PEER_IF));
    let node_if = index_of(&lab.node, NODE_IF);
    let peer_if = index_of(&lab.peer, PEER_IF);
    let open = || Listener::open(node_if, IpAddr::V6(vip6));
    let mut listener = in_netns(&lab.node.name, open).expect("open");
    let peer_sock = in_netns(&lab.peer.name, PacketSocket::open).expect("peer socket");

    // NAs for other targets are not queued; one for the VIP is a claim.
    for i in 0..200u16 {
        let other = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i);
        let na = na_frame(FORGED_MAC, other);
        peer_sock
            .send_frame(&na, peer_if, ETH_P_IPV6)
            .expect("send");
    }
    assert!(
        !readable(listener.fd(), 200),
        "NAs for other targets were queued"
    );
    let na = na_frame(FORGED_MAC, vip6);
    peer_sock
        .send_frame(&na, peer_if, ETH_P_IPV6)
        .expect("send");
    assert_eq!(claims(&mut listener, node_mac, 2000), vec![FORGED_MAC]);

    // A silent holder (no DAD, no unsolicited NA) answers the NS from `::`.
    let cidr = format!("{VIP6}/64");
    lab.peer
        .ip(&["addr", "add", &cidr, "dev", PEER_IF, "nodad"]);
    assert!(
        !readable(listener.fd(), 500),
        "the hand-made address announced itself"
    );
    listener.probe(node_mac).expect("probe");
    let found = claims(&mut listener, node_mac, 2000);
    assert_eq!(found, vec![peer_mac], "the holder's NA");
    // Bounded: nothing else arrives for it.
    assert!(!readable(listener.fd(), 300));
}

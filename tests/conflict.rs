//! A second holder of the VIP, against the real kernel in namespaces of the lab
//! (documentation addresses and MACs only): the conflict listener queues nothing but
//! claims to the VIP however much other ARP and neighbour discovery traffic passes,
//! skips what this host sends, and its probes make a silent holder (an address added
//! by hand, which announces nothing) answer, for IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::time::Duration;

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

/// A namespace `role` joined to the lab's bridge like the nodes (eth0 with `cidr`).
fn join(lab: &TwoNodes, role: &str, cidr: &str) -> Netns {
    let ns = Netns::new(&lab.lab, role);
    let port = format!("p-{role}");
    let link = [
        "link", "add", &port, "type", "veth", "peer", "name", HOST_IF,
    ];
    lab.sw.ip(&[&link[..], &["netns", &ns.name]].concat());
    lab.sw.ip(&["link", "set", &port, "master", "br0"]);
    lab.sw.ip(&["link", "set", &port, "up"]);
    ns.ip(&["addr", "add", cidr, "dev", HOST_IF]);
    ns.ip(&["link", "set", HOST_IF, "up"]);
    ns
}

/// The lines of `log` that report a conflict.
fn conflict_lines(log: &str) -> Vec<String> {
    let lines = log.lines().filter(|l| l.contains("conflict:"));
    lines.map(String::from).collect()
}

/// Waits (bounded) until `vipd` has logged a conflict; its lines.
fn wait_conflict(vipd: &Proc, bound: Duration) -> Vec<String> {
    wait_until(bound, POLL, || !conflict_lines(&vipd.output()).is_empty());
    conflict_lines(&vipd.output())
}

#[test]
fn conflict_forged_garps_are_logged_once_and_answered() {
    gate!(Etcd);
    let lab = TwoNodes::new();
    let x = join(&lab, "x", "192.0.2.13/24");
    lab.etcd.put(KEY, "n1");
    let holder = lab.vipd(&vipd_bin(), &lab.n1, "n1", "");
    let follower = lab.vipd(&vipd_bin(), &lab.n2, "n2", "");
    wait_vip(|| lab.n1.has_vip(HOST_IF), &holder, "n1");
    let n1_mac = lab.n1.mac(HOST_IF);
    let ping = lab.c.exec(&tool("ping"), &["-c", "1", "-W", "2", VIP]);
    ping.expect(0, "ping of the VIP from the client");
    assert_eq!(lab.c.neigh(VIP).and_then(|n| n.0), Some(n1_mac));
    // After the add's burst (3 announcements, 1 s apart), so that the rate limit lets
    // the answer out at once.
    std::thread::sleep(Duration::from_millis(2500));
    let cap = Capture::start(&lab.c, HOST_IF, "arp");
    let x_if = index_of(&x, HOST_IF);
    let sock = in_netns(&x.name, PacketSocket::open).expect("socket in x");
    let forged = garp_frame(FORGED_MAC, vip(), ArpOp::Request);
    for _ in 0..3 {
        sock.send_frame(&forged, x_if, ETH_P_ARP)
            .expect("forged GARP");
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = || format!("{}\n{}\n{}", holder.log(), follower.log(), cap.log());
    // The client took the forged MAC (a gratuitous ARP overrides its entry), then the
    // holder's answer put it back.
    within(Duration::from_secs(3), "the holder answers", &logs, || {
        let arps = cap.arps();
        let forged_at = arps.iter().find(|(_, a)| a.sha == FORGED_MAC).map(|a| a.0);
        forged_at.is_some_and(|t| {
            arps.iter()
                .any(|(at, a)| *at >= t && a.is_garp_request(vip(), n1_mac))
        })
    });
    within(
        Duration::from_secs(3),
        "the client's entry is back",
        &logs,
        || lab.c.neigh(VIP).and_then(|n| n.0) == Some(n1_mac),
    );
    std::thread::sleep(Duration::from_millis(500));
    let lines = conflict_lines(&holder.output());
    check!(holder, lines.len() == 1, "one conflict line, not {lines:?}");
    check!(
        holder,
        lines[0].contains(&fmt_mac(&FORGED_MAC)) && lines[0].contains(VIP),
        "the line names the MAC and the VIP: {}",
        lines[0]
    );
    // The follower heard the holder's announcements and the forged ones: it holds
    // nothing, so it listens to nothing.
    let quiet = conflict_lines(&follower.output());
    check!(follower, quiet.is_empty(), "the follower logged {quiet:?}");
}

#[test]
fn conflict_probe_finds_a_silent_ipv4_holder() {
    gate!(Etcd);
    let lab = TwoNodes::new();
    let x = join(&lab, "x", "192.0.2.13/24");
    lab.etcd.put(KEY, "n1");
    let holder = lab.vipd(&vipd_bin(), &lab.n1, "n1", "--conflict-probe-interval 1000");
    wait_vip(|| lab.n1.has_vip(HOST_IF), &holder, "n1");
    std::thread::sleep(Duration::from_millis(1500));
    check!(
        holder,
        conflict_lines(&holder.output()).is_empty(),
        "no conflict yet"
    );
    // Linux sends no ARP for an IPv4 address added by hand: only the probe finds it.
    x.ip(&["addr", "add", "192.0.2.50/24", "dev", HOST_IF]);
    let added = std::time::Instant::now();
    let lines = wait_conflict(&holder, Duration::from_millis(1000) + SLACK);
    check!(holder, lines.len() == 1, "one conflict line: {lines:?}");
    check!(
        holder,
        lines[0].contains(&fmt_mac(&x.mac(HOST_IF))),
        "names x's MAC: {}",
        lines[0]
    );
    eprintln!(
        "silent IPv4 holder found {} ms after it took the VIP",
        added.elapsed().as_millis()
    );
}

#[test]
fn conflict_probe_finds_a_silent_ipv6_holder() {
    gate!(Etcd);
    let lab = TwoNodes::new();
    // Every frame for the VIP's solicited-node group reaches every port.
    lab.sw.ip(&[
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);
    let x = join(&lab, "x", "192.0.2.13/24");
    enable_ipv6(&lab.n1, HOST_IF);
    enable_ipv6(&x, HOST_IF);
    lab.etcd.put(KEY, "n1");
    let args = args(&format!(
        "--ip {VIP6} --netmask 64 --interface {HOST_IF} --trigger-key {KEY} \
         --trigger-value n1 --dcs-endpoints {} --conflict-probe-interval 1000",
        lab.etcd.endpoint
    ));
    let holder = Proc::spawn_in(&lab.n1.name, &vipd_bin(), &args, true);
    let held = || {
        lab.n1
            .ip(&["-6", "addr", "show", "dev", HOST_IF])
            .contains(VIP6)
    };
    wait_vip(held, &holder, "n1");
    std::thread::sleep(Duration::from_millis(1500));
    check!(
        holder,
        conflict_lines(&holder.output()).is_empty(),
        "no conflict yet"
    );
    let cidr = format!("{VIP6}/64");
    x.ip(&["addr", "add", &cidr, "dev", HOST_IF, "nodad"]);
    let lines = wait_conflict(&holder, Duration::from_millis(1000) + SLACK);
    check!(holder, lines.len() == 1, "one conflict line: {lines:?}");
    check!(
        holder,
        lines[0].contains(&fmt_mac(&x.mac(HOST_IF))) && lines[0].contains(VIP6),
        "names x's MAC and the VIP: {}",
        lines[0]
    );
}

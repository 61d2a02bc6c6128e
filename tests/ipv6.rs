//! IPv6 VIPs against the real kernel and a real etcd, in network namespaces made by the
//! lab (tests/common), with documentation addresses (2001:db8::/32) only: the VIP is
//! added without duplicate address detection (never tentative), announced with
//! unsolicited neighbour advertisements that tcpdump checks independently, moved
//! between two nodes with a client's neighbour entry following by the NAs alone, and
//! brought back and announced after a link down/up removed it.
//!
//! Every test is gated (root, and etcd where used): see `common::gate`.
//! The lab turns IPv6 off in its namespaces; these tests turn it on for the interfaces
//! they use.

use std::net::{IpAddr, Ipv6Addr};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use vipd::net::ndisc::{ALL_NODES, ALL_NODES_MAC, na_frame};
use vipd::net::netlink::AddrOptions;
use vipd::net::{AddrBackend, AnnounceMode, Kernel, Vip};

/// The IPv6 VIP and its prefix length.
const VIP6: &str = "2001:db8::50";
const VIP6_LEN: u8 = 64;
/// The client's own address in the two-node test.
const CLIENT6: &str = "2001:db8::100/64";
/// vipd's defaults, which these tests run with: `announce-count`, `announce-interval`
/// and `interval`.
const ANNOUNCE_COUNT: usize = 3;
const ANNOUNCE_INTERVAL: Duration = Duration::from_millis(1000);
const INTERVAL: Duration = Duration::from_millis(1000);
/// How far apart two announcements of a burst may be from `ANNOUNCE_INTERVAL`.
const SPACING_TOLERANCE: Duration = Duration::from_millis(300);
/// ICMPv6 types seen on the wire besides NAs: MLDv2 reports (143) and MLDv1 (131).
const ICMPV6_MLD_TYPES: [u8; 2] = [143, 131];

fn vip6() -> Ipv6Addr {
    VIP6.parse().expect("VIP6 is an IPv6 address")
}

/// The arguments of a vipd managing the IPv6 VIP on `ifname` as node `node`.
fn vipd6_args(ifname: &str, node: &str, endpoint: &str) -> Vec<String> {
    args(&format!(
        "--ip {VIP6} --netmask {VIP6_LEN} --interface {ifname} --trigger-key {KEY} \
         --trigger-value {node} --dcs-endpoints {endpoint}"
    ))
}

/// Turns IPv6 on for `ifname` in `ns` (the lab turns it off). With `dad` false the
/// interface's own addresses skip duplicate address detection; with it true (the
/// kernel's default, used on the vipd nodes) only `IFA_F_NODAD` keeps an address from
/// being tentative. IPv6 addresses are removed on link down (`keep_addr_on_down` 0),
/// no router solicitations are sent, and the kernel sends no neighbour advertisements
/// of its own (`ndisc_notify` 0): every unsolicited NA on the wire is vipd's.
fn enable_ipv6(ns: &Netns, ifname: &str, dad: bool) {
    let conf = |key: &str, value: &str| format!("net.ipv6.conf.{ifname}.{key}={value}");
    ns.sysctl(&[
        "net.ipv6.conf.all.disable_ipv6=0",
        "net.ipv6.conf.default.disable_ipv6=0",
        &conf("disable_ipv6", "0"),
        &conf("accept_dad", if dad { "1" } else { "0" }),
        &conf("keep_addr_on_down", "0"),
        &conf("router_solicitations", "0"),
        &conf("ndisc_notify", "0"),
    ]);
}

/// One IPv6 address of an interface, as `ip -j -6 addr show` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Addr6 {
    addr: Ipv6Addr,
    prefix_len: u8,
    tentative: bool,
    nodad: bool,
    dadfailed: bool,
}

fn addrs6(ns: &Netns, ifname: &str) -> Vec<Addr6> {
    let json = ns.ip(&["-j", "-6", "addr", "show", "dev", ifname]);
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("ip -j -6 addr: {e}: {json}"));
    let flag = |info: &serde_json::Value, name: &str| info[name].as_bool() == Some(true);
    let mut found = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            let (Some(local), Some(len)) = (info["local"].as_str(), info["prefixlen"].as_u64())
            else {
                panic!("address without local or prefixlen in {json}");
            };
            found.push(Addr6 {
                addr: local.parse().unwrap_or_else(|e| panic!("{local}: {e}")),
                prefix_len: u8::try_from(len).expect("prefix length fits u8"),
                tentative: flag(info, "tentative"),
                nodad: flag(info, "nodad"),
                dadfailed: flag(info, "dadfailed"),
            });
        }
    }
    found
}

/// The VIP's entries on `ifname` (any prefix length).
fn vip6_on(ns: &Netns, ifname: &str) -> Vec<Addr6> {
    addrs6(ns, ifname)
        .into_iter()
        .filter(|a| a.addr == vip6())
        .collect()
}

fn has_vip6(ns: &Netns, ifname: &str) -> bool {
    !vip6_on(ns, ifname).is_empty()
}

/// The VIP is on `ifname` once, at the configured prefix length, added with
/// `IFA_F_NODAD` and usable: not tentative, DAD not failed.
fn assert_vip6_usable(ns: &Netns, ifname: &str, logs: &str) {
    let (on, ns) = (vip6_on(ns, ifname), &ns.name);
    assert_eq!(on.len(), 1, "VIP entries on {ifname} in {ns}: {on:?}");
    let a = &on[0];
    assert_eq!(a.prefix_len, VIP6_LEN, "{a:?}");
    assert!(a.nodad, "VIP added without IFA_F_NODAD: {a:?}\n{logs}");
    let usable = !a.tentative && !a.dadfailed;
    assert!(usable, "VIP not usable: {a:?}\n{logs}");
}

/// The ICMPv6 type of an untagged Ethernet frame carrying ICMPv6 right after a fixed
/// IPv6 header (no extension headers, as neighbour discovery sends), else None.
fn icmp6_type(f: &[u8]) -> Option<u8> {
    (f.len() >= 58 && f[12..14] == [0x86, 0xdd] && f[20] == 58).then(|| f[54])
}

/// Why the ICMPv6 frame `f` is not the unsolicited NA RFC 4861 §7.2.6 asks for,
/// announcing the VIP at `mac`; `None` when it is.
fn na_fault(f: &[u8], mac: [u8; 6]) -> Option<String> {
    let b = &f[54..];
    let checks: [(bool, &str); 13] = [
        (
            f[0..6] == ALL_NODES_MAC,
            "Ethernet destination 33:33:00:00:00:01",
        ),
        (f[6..12] == mac, "Ethernet source = the node's MAC"),
        (f[14] >> 4 == 6, "IP version 6"),
        (
            usize::from(u16::from_be_bytes([f[18], f[19]])) == b.len(),
            "payload length = the message",
        ),
        (f[21] == 255, "hop limit 255"),
        (f[22..38] == vip6().octets(), "IPv6 source = the VIP"),
        (f[38..54] == ALL_NODES.octets(), "IPv6 destination ff02::1"),
        ((f[54], f[55]) == (136, 0), "ICMPv6 type 136 code 0"),
        (b.len() == 32, "NA (24 bytes) and one 8-byte option"),
        (b.get(4) == Some(&0x20), "flags R=0 S=0 O=1"),
        (b.get(5..8) == Some(&[0, 0, 0][..]), "reserved bits zero"),
        (
            b.get(8..24) == Some(&vip6().octets()[..]),
            "target = the VIP",
        ),
        (
            b.get(24..26) == Some(&[2, 1][..]) && b.get(26..32) == Some(&mac[..]),
            "target link-layer address option with the MAC",
        ),
    ];
    let failed: Vec<&str> = checks.iter().filter(|c| !c.0).map(|c| c.1).collect();
    (!failed.is_empty()).then(|| format!("{failed:?} not met by {f:02x?}"))
}

/// The multicast NAs captured from `mac` at or after `since`, with their times. Each
/// must be a correct unsolicited NA of the VIP.
fn nas_from(cap: &Capture, mac: [u8; 6], since: SystemTime) -> Vec<(SystemTime, Vec<u8>)> {
    let mut nas = Vec::new();
    for f in cap.frames() {
        if f.ts < since || f.eth_src() != Some(mac) {
            continue;
        }
        if icmp6_type(&f.data) != Some(136) || f.data[0..6] != ALL_NODES_MAC {
            continue;
        }
        if let Some(fault) = na_fault(&f.data, mac) {
            panic!("{}: bad unsolicited NA: {fault}", cap.what);
        }
        nas.push((f.ts, f.data));
    }
    nas
}

/// Waits (bounded) for `n` NAs from `mac` since `since`; returns all seen by then.
fn wait_nas(
    cap: &Capture,
    mac: [u8; 6],
    since: SystemTime,
    n: usize,
    timeout: Duration,
) -> Vec<(SystemTime, Vec<u8>)> {
    wait_until(timeout, POLL, || nas_from(cap, mac, since).len() >= n);
    nas_from(cap, mac, since)
}

fn describe(nas: &[(SystemTime, Vec<u8>)]) -> String {
    describe_timed(nas, |_| "NA".to_string())
}

/// Checks a burst seen since `since`: exactly `ANNOUNCE_COUNT` NAs from `mac`,
/// `ANNOUNCE_INTERVAL` apart, and no more in the interval after the last one. Returns
/// the NAs.
fn check_burst(
    cap: &Capture,
    mac: [u8; 6],
    since: SystemTime,
    who: &str,
    logs: &dyn Fn() -> String,
) -> Vec<(SystemTime, Vec<u8>)> {
    let burst = ANNOUNCE_INTERVAL * (ANNOUNCE_COUNT as u32) + Duration::from_secs(3);
    let nas = wait_nas(cap, mac, since, ANNOUNCE_COUNT, burst);
    assert!(
        nas.len() >= ANNOUNCE_COUNT,
        "{who}: {} NAs within {burst:?}, want {ANNOUNCE_COUNT}:\n{}{}",
        nas.len(),
        describe(&nas),
        logs()
    );
    // Nothing more for an interval and a half after the last one.
    let quiet_until = nas[ANNOUNCE_COUNT - 1].0 + ANNOUNCE_INTERVAL + ANNOUNCE_INTERVAL / 2;
    if let Ok(d) = quiet_until.duration_since(SystemTime::now()) {
        thread::sleep(d.min(Duration::from_secs(3)));
    }
    let nas = nas_from(cap, mac, since);
    assert_eq!(
        nas.len(),
        ANNOUNCE_COUNT,
        "{who}: want exactly announce-count NAs:\n{}{}",
        describe(&nas),
        logs()
    );
    for pair in nas.windows(2) {
        let gap = pair[1].0.duration_since(pair[0].0).unwrap_or_default();
        assert!(
            gap.abs_diff(ANNOUNCE_INTERVAL) <= SPACING_TOLERANCE,
            "{who}: NAs {gap:?} apart, want {ANNOUNCE_INTERVAL:?}:\n{}",
            describe(&nas)
        );
    }
    nas
}

/// Has tcpdump read `nas` (written to a pcap file) with `-vv`, and checks that it finds
/// each to be a neighbour advertisement of the VIP with the override flag and a correct
/// ICMPv6 checksum (`[icmp6 sum ok]`): an independent check of our frames.
fn assert_tcpdump_sums_ok(lab: &str, nas: &[(SystemTime, Vec<u8>)]) {
    let dir = TempDir::new(lab, "pcap");
    let path = dir.write("nas.pcap", pcap_of(nas));
    let out = run(&tool("tcpdump"), &["-n", "-vv", "-r", &path]);
    assert!(out.status.success(), "tcpdump -r: {}", out.stderr);
    let text = out.stdout;
    let count = |needle: &str| text.matches(needle).count();
    let want = nas.len();
    let (target, to_all) = (
        format!("tgt is {VIP6}, Flags [override]"),
        format!("{VIP6} > ff02::1"),
    );
    for needle in [
        "[icmp6 sum ok]",
        "neighbor advertisement",
        &target,
        &to_all,
        "hlim 255",
    ] {
        assert_eq!(count(needle), want, "{needle:?} in tcpdump -vv:\n{text}");
    }
    // tcpdump flags a wrong checksum as "[bad icmp6 cksum ...]" (not just "bad": a
    // random MAC address in the hex dump may read "4bad").
    assert!(!text.contains("[bad "), "{text}");
    eprintln!("tcpdump -vv on {want} NAs:\n{text}");
}

/// The kernel backend opened inside `ns` (the sockets stay in the namespace whichever
/// thread uses them).
fn kernel_in(ns: &Netns) -> Kernel {
    in_netns(&ns.name, || Kernel::open().expect("Kernel::open"))
}

fn vip_of(addr: IpAddr, prefix_len: u8) -> Vip {
    Vip { addr, prefix_len }
}

/// `Kernel::add` with a label and `noprefixroute`, for both families: `ip addr` shows
/// the label (IPv4) and the flag, and the kernel adds no subnet route, unlike a plain
/// add; `vip_prefixes` and `del` work on such addresses as on any.
#[test]
fn kernel_adds_with_label_and_noprefixroute() {
    gate!(Root);
    let lab = NodeLab::bare();
    let node = &lab.node;
    enable_ipv6(node, NODE_IF, true);
    lab.up();
    let mut k = kernel_in(node);
    let ifindex = k.link("veth0").unwrap().expect("veth0").index;
    let v4 = vip_of(VIP.parse().unwrap(), 24);
    let v6 = vip_of(vip6().into(), VIP6_LEN);
    let routes = |family: &str| node.ip(&[family, "route", "show", "dev", "veth0"]);
    let subnet = |family: &str| {
        if family == "-4" {
            "192.0.2.0/24"
        } else {
            "2001:db8::/64"
        }
    };
    let routed = |family: &str| routes(family).contains(subnet(family));

    // Plain adds bring their subnet routes: the control.
    for (vip, family) in [(v4, "-4"), (v6, "-6")] {
        k.add(ifindex, vip, None).unwrap();
        assert!(routed(family), "{}", routes(family));
        k.del(ifindex, vip.addr, vip.prefix_len).unwrap();
        assert!(!routed(family), "{}", routes(family));
    }

    let mut options = AddrOptions::default().with_label("veth0:vip").unwrap();
    options.noprefixroute = true;
    k.set_addr_options(options);
    for (vip, family) in [(v4, "-4"), (v6, "-6")] {
        k.add(ifindex, vip, None).unwrap();
        k.add(ifindex, vip, None).expect("EEXIST is success");
        assert_eq!(k.vip_prefixes(ifindex, vip.addr).unwrap(), [vip.prefix_len]);
        let shown = node.ip(&[family, "-o", "addr", "show", "dev", "veth0"]);
        let line = shown
            .lines()
            .find(|l| l.contains(&vip.to_string()))
            .unwrap_or_else(|| panic!("{vip} not in {shown}"));
        assert!(line.contains("noprefixroute"), "{line}");
        if family == "-4" {
            assert!(line.contains("veth0:vip"), "label missing: {line}");
        } else {
            let nodad = line.contains("nodad") && !line.contains("tentative");
            assert!(nodad, "{line}");
        }
        assert!(!routed(family), "noprefixroute, yet: {}", routes(family));
        k.del(ifindex, vip.addr, vip.prefix_len).unwrap();
        assert_eq!(k.vip_prefixes(ifindex, vip.addr).unwrap(), [] as [u8; 0]);
    }
}

/// `Kernel::announce` of an IPv6 VIP sends exactly one unsolicited NA (whatever the
/// ARP mode), byte for byte `na_frame`, which tcpdump finds correct. No etcd needed.
#[test]
fn kernel_announces_an_ipv6_vip_with_one_unsolicited_na() {
    gate!(Root);
    let lab = NodeLab::bare();
    lab.up();
    let mac = lab.node_mac();
    let cap = Capture::start(&lab.peer, PEER_IF, "ip6");

    let mut k = kernel_in(&lab.node);
    let link = k.link("veth0").unwrap().expect("veth0");
    let vip = vip_of(vip6().into(), VIP6_LEN);
    let since = SystemTime::now();
    k.announce(&link, vip, AnnounceMode::Both)
        .expect("announce");
    let nas = wait_nas(&cap, mac, since, 1, Duration::from_secs(5));
    thread::sleep(ms(300));
    let nas_later = nas_from(&cap, mac, since);
    assert_eq!(nas_later.len(), 1, "one NA per announce: {nas_later:?}");
    assert_eq!(nas[0].1, na_frame(mac, vip6()), "the frame on the wire");
    assert_tcpdump_sums_ok(&lab.lab, &nas);
}

/// Two vipd on one bridge with one etcd, an IPv6 VIP: each holder announces it with
/// exactly announce-count unsolicited NAs 1 s apart (tcpdump: checksums correct); the
/// VIP is never tentative; a client whose neighbour entry held n1's MAC shows n2's
/// within 1 s of the key moving, without sending anything itself.
#[test]
fn ipv6_vip_moves_between_nodes_and_the_client_follows_the_nas() {
    gate!(Etcd);
    let lab = TwoNodes::new();
    enable_ipv6(&lab.n1, HOST_IF, true);
    enable_ipv6(&lab.n2, HOST_IF, true);
    enable_ipv6(&lab.c, HOST_IF, false);
    lab.c
        .ip(&["-6", "addr", "add", CLIENT6, "dev", HOST_IF, "nodad"]);
    let (mac1, mac2, macc) = (lab.n1.mac(HOST_IF), lab.n2.mac(HOST_IF), lab.c.mac(HOST_IF));
    let cap = Capture::start(&lab.c, HOST_IF, "ip6");

    lab.etcd.put(KEY, "n1");
    let start = SystemTime::now();
    let spawn = |ns: &Netns, node: &str| ns.vipd(&vipd6_args(HOST_IF, node, &lab.etcd.endpoint));
    let v1 = spawn(&lab.n1, "n1");
    let v2 = spawn(&lab.n2, "n2");
    let logs = || format!("{}\n{}", v1.log(), v2.log());
    let ten_s = Duration::from_secs(10);
    within(ten_s, "VIP on n1", &logs, || has_vip6(&lab.n1, HOST_IF));
    assert_vip6_usable(&lab.n1, HOST_IF, &logs());
    let mut all_nas = check_burst(&cap, mac1, start, "n1 taking the VIP", &logs);
    assert!(!has_vip6(&lab.n2, HOST_IF), "VIP on n2 too\n{}", logs());

    // One connection attempt from the client resolves the VIP to n1's MAC (n1 answers
    // the SYN with a RST: nothing listens on port 9).
    let bash = tool("bash").to_string_lossy().into_owned();
    let tcp = format!("exec 3<>/dev/tcp/{VIP6}/9");
    let connect = lab.c.exec(&tool("timeout"), &["3", &bash, "-c", &tcp]);
    let entry = lab.c.neigh(VIP6);
    assert!(
        matches!(entry, Some((Some(m), _)) if m == mac1),
        "client's neighbour entry for {VIP6} is {entry:?}, want n1's MAC {} (connect: {})",
        fmt_mac(&mac1),
        connect.stderr.trim()
    );
    eprintln!("client's entry before the move: {entry:?}");
    thread::sleep(ms(1100));

    let t_move = Instant::now();
    let moved_at = SystemTime::now();
    lab.etcd.put(KEY, "n2");
    let followed = wait_until(
        Duration::from_secs(1).saturating_sub(t_move.elapsed()),
        ms(10),
        || matches!(lab.c.neigh(VIP6), Some((Some(m), _)) if m == mac2),
    );
    let took = t_move.elapsed();
    let entry = lab.c.neigh(VIP6);
    assert!(
        followed.is_some(),
        "client's neighbour entry is {entry:?} {took:?} after the move, want n2's MAC {} \
         within 1 s\nNAs from n2:\n{}{}",
        fmt_mac(&mac2),
        describe(&nas_from(&cap, mac2, moved_at)),
        logs()
    );
    eprintln!("client's entry followed after {took:?}: {entry:?}");
    let (on1, on2) = (|| vip6_on(&lab.n1, HOST_IF), || vip6_on(&lab.n2, HOST_IF));
    let state = || format!("VIP on n1: {:?}, on n2: {:?}\n{}", on1(), on2(), logs());
    let moved = || !on2().is_empty() && on1().is_empty();
    within(INTERVAL + SLACK, "VIP moved to n2", &state, moved);
    assert_vip6_usable(&lab.n2, HOST_IF, &logs());
    all_nas.extend(check_burst(&cap, mac2, moved_at, "n2 taking", &logs));
    let late = nas_from(&cap, mac1, moved_at);
    assert!(late.is_empty(), "n1 announced after losing the VIP");

    // The client sent nothing since the move but, possibly, MLD reports.
    let from_client: Vec<Vec<u8>> = cap
        .frames()
        .into_iter()
        .filter(|f| f.ts >= moved_at && f.eth_src() == Some(macc))
        .filter(|f| !icmp6_type(&f.data).is_some_and(|t| ICMPV6_MLD_TYPES.contains(&t)))
        .map(|f| f.data)
        .collect();
    let sent = from_client.len();
    assert_eq!(
        sent, 0,
        "frames the client sent after the move: {from_client:02x?}"
    );
    assert_tcpdump_sums_ok(&lab.lab, &all_nas);
}

/// IPv6 addresses vanish when their link goes down (`keep_addr_on_down` 0). After the
/// link comes back up the VIP is there again, not tentative, and announced within one
/// interval, with a full burst of NAs.
#[test]
fn ipv6_vip_is_back_and_announced_after_link_down_up() {
    gate!(Etcd);
    let lab = SingleNode::new();
    enable_ipv6(&lab.node, NODE_IF, true);
    let mac = lab.node_mac();
    let cap = Capture::start(&lab.peer, PEER_IF, "ip6");
    lab.etcd.put(KEY, NODE_NAME);
    let start = SystemTime::now();
    let vipd = lab
        .node
        .vipd(&vipd6_args(NODE_IF, NODE_NAME, &lab.etcd.endpoint));
    let logs = || vipd.log();
    let has = || has_vip6(&lab.node, NODE_IF);
    within(Duration::from_secs(10), "VIP added", &logs, has);
    assert_vip6_usable(&lab.node, NODE_IF, &logs());
    let mut all_nas = check_burst(&cap, mac, start, "first add", &logs);

    // Watch the kernel's address events, to see it remove the VIP at link down
    // (vipd may add it back while the link is still down).
    let monitor = args("-o -6 monitor address");
    let monitor = Proc::spawn_in(&lab.node.name, &tool("ip"), &monitor, true);
    thread::sleep(ms(300));
    lab.node.ip(&["link", "set", NODE_IF, "down"]);
    let deleted = |text: &str| {
        text.lines()
            .any(|l| l.starts_with("Deleted") && l.contains(&format!("{VIP6}/{VIP6_LEN}")))
    };
    let said = || format!("ip monitor:\n{}", monitor.stdout());
    let two_s = Duration::from_secs(2);
    let removed = || deleted(&monitor.stdout());
    within(two_s, "VIP removed at link down", &said, removed);
    // Down for more than one turn.
    thread::sleep(INTERVAL + INTERVAL / 2);

    let up_at = SystemTime::now();
    lab.node.ip(&["link", "set", NODE_IF, "up"]);
    within(INTERVAL + SLACK, "VIP back after link-up", &logs, has);
    assert_vip6_usable(&lab.node, NODE_IF, &logs());
    let first = wait_nas(&cap, mac, up_at, 1, INTERVAL + SLACK);
    let Some((first_at, _)) = first.first() else {
        panic!("no NA within {:?} of link-up\n{}", INTERVAL + SLACK, logs());
    };
    let after = first_at.duration_since(up_at).unwrap_or_default();
    eprintln!("first NA {after:?} after link-up");
    assert!(
        after <= INTERVAL + SLACK,
        "first NA {after:?} after link-up"
    );
    all_nas.extend(check_burst(&cap, mac, up_at, "after link-up", &logs));
    assert_tcpdump_sums_ok(&lab.lab, &all_nas);
}

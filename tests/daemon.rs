//! The running daemon against the real kernel and a real etcd, in network namespaces made by
//! the lab (tests/common). Every test is gated: it needs root and Debian's etcd; see
//! `common::gate`.

use crate::common::*;
use std::thread;
use std::time::{Duration, SystemTime};

/// The first announcement at or after `since`: a gratuitous ARP request for the VIP from
/// `mac`, captured within `bound` of `since`. Returns how long after `since` it came.
fn check_reannounced(
    cap: &Capture,
    before: usize,
    since: SystemTime,
    mac: [u8; 6],
    bound: Duration,
    vipd: &Proc,
    what: &str,
) -> i128 {
    let arps = cap.wait_arps(before + 1, bound + ms(200));
    let new: Vec<_> = arps.iter().filter(|(t, _)| *t >= since).collect();
    let describe = || format!("{}{}", describe_arps(&arps), vipd.log());
    assert!(!new.is_empty(), "{what}: no announcement:\n{}", describe());
    let first = &new[0].1;
    assert!(first.is_garp_request(vip(), mac), "not a GARP: {first}");
    let after = millis_between(since, new[0].0);
    assert!(
        after <= bound.as_millis() as i128,
        "{what}: announced {after} ms after, want within {bound:?}\n{}",
        describe()
    );
    after
}

fn sleep_until(t: SystemTime, at_most: Duration) {
    if let Ok(d) = t.duration_since(SystemTime::now()) {
        thread::sleep(d.min(at_most));
    }
}

/// Waits for the VIP, then checks the peer saw exactly `count` gratuitous ARP requests from the
/// node, `spacing` apart, the first at once, nothing before them and nothing in the 10 s after.
fn check_announce_burst(
    lab: &SingleNode,
    cap: &Capture,
    vipd: &mut Proc,
    count: usize,
    spacing: Duration,
) {
    let mac = lab.node_mac();
    wait_vip(|| lab.has_vip(), vipd, "start");
    let seen = SystemTime::now();
    let burst = spacing * (count as u32) + Duration::from_secs(3);
    let arps = cap.wait_arps(count, burst);
    assert!(
        arps.len() >= count,
        "peer captured {} ARP packets within {burst:?}, want {count}:\n{}{}",
        arps.len(),
        describe_arps(&arps),
        vipd.log()
    );
    // Nothing more for 10 s after the last announcement (+ delivery margin).
    let last = arps[count - 1].0;
    sleep_until(last + ms(10_300), Duration::from_secs(12));
    let arps = cap.arps();
    assert_eq!(
        arps.len(),
        count,
        "want exactly {count} ARP packets on the wire (the announcements: none from the peer \
         before them, none in the 10 s after), got:\n{}{}",
        describe_arps(&arps),
        vipd.log()
    );
    for (_, a) in &arps {
        assert!(
            a.is_garp_request(vip(), mac),
            "not a gratuitous ARP request for {VIP} from {}: {a}",
            fmt_mac(&mac)
        );
    }
    let described = describe_arps(&arps);
    let first = millis_between(seen, arps[0].0);
    assert!(
        first <= 300,
        "first announcement {first} ms after the VIP; want it at once\n{described}"
    );
    let lo = spacing.as_millis() as i128 - 60;
    let hi = spacing.as_millis() as i128 + 300;
    for w in arps.windows(2) {
        let gap = millis_between(w[0].0, w[1].0);
        let want = format!("want {spacing:?} ({lo}..={hi} ms)");
        assert!(
            (lo..=hi).contains(&gap),
            "announcements {gap} ms apart, {want}:\n{described}"
        );
    }
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
    assert!(lab.has_vip(), "VIP gone again\n{}", vipd.log());
}

#[test]
fn leader_here_adds_vip_and_announces_count_garps() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut vipd = lab.vipd("--interval 500 --announce-count 3 --announce-interval 300");
    check_announce_burst(&lab, &cap, &mut vipd, 3, ms(300));
}

#[test]
fn leader_here_default_announcements_are_three_one_second_apart() {
    gate!(Etcd);
    let lab = SingleNode::new();
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut vipd = lab.vipd("");
    // No leader yet: nothing happens.
    thread::sleep(ms(700));
    let log = vipd.log();
    assert!(!lab.has_vip(), "VIP added without a leader key\n{log}");
    lab.etcd.put(KEY, NODE_NAME);
    check_announce_burst(&lab, &cap, &mut vipd, 3, ms(1000));
}

#[test]
fn leader_elsewhere_removes_and_deleted_key_releases() {
    gate!(Etcd);
    let lab = SingleNode::new();
    let interval = ms(500);
    lab.etcd.put(KEY, "node2");
    let mut vipd = lab.vipd("--interval 500 --announce-count 1");
    thread::sleep(ms(1500));
    let log = vipd.log();
    assert!(!lab.has_vip(), "VIP added while the leader is node2\n{log}");

    let steps = [
        (Some(NODE_NAME), true, "leader = node1: VIP added"),
        (Some("node2"), false, "leader = node2: VIP removed"),
        (Some(NODE_NAME), true, "leader = node1 again: VIP added"),
        (None, false, "key deleted: VIP released"),
    ];
    for (i, (leader, present, what)) in steps.into_iter().enumerate() {
        match leader {
            Some(leader) => lab.etcd.put(KEY, leader),
            None => lab.etcd.del(KEY),
        }
        let bound = interval + SLACK;
        within(bound, what, &|| vipd.log(), || lab.has_vip() == present);
        if i > 0 {
            continue;
        }
        // A state change is logged once, not every turn: nothing new while nothing changes.
        thread::sleep(ms(700));
        let logged = vipd.stderr().lines().count();
        thread::sleep(interval * 4);
        let log = vipd.stderr();
        assert_eq!(
            log.lines().count(),
            logged,
            "vipd kept logging in a steady state (4 intervals):\n{}",
            log.lines().skip(logged).collect::<Vec<_>>().join("\n")
        );
    }

    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
    let own = lab.node.prefixes_of(NODE_IF, "192.0.2.11".parse().unwrap());
    assert_eq!(own, [24], "the node's own address was touched");
}

/// A node leading with vipd at interval 500 and two announcements 200 ms apart, a capture
/// on the peer, and the first announcements over.
fn leading_and_captured() -> (SingleNode, Capture, Proc) {
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    let vipd = lab.vipd("--interval 500 --announce-count 2 --announce-interval 200");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    cap.wait_arps(2, Duration::from_secs(3));
    thread::sleep(ms(400));
    (lab, cap, vipd)
}

#[test]
fn vip_deleted_by_hand_comes_back_within_one_interval_and_is_announced() {
    gate!(Etcd);
    let (lab, cap, mut vipd) = leading_and_captured();
    let (bound, mac) = (ms(500) + SLACK, lab.node_mac());

    for round in 1..=2 {
        let before = cap.arps().len();
        let t0 = SystemTime::now();
        lab.del_addr("192.0.2.50/24");
        let what = format!("round {round}: VIP deleted by hand back");
        within(bound, &what, &|| vipd.log(), || lab.has_vip());
        let what = format!("round {round}: after the delete");
        let after = check_reannounced(&cap, before, t0, mac, bound, &vipd, &what);
        // Let this round's announcements finish.
        thread::sleep(ms(600));
        eprintln!("round {round}: announced {after} ms after the delete");
    }
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

#[test]
fn link_down_up_vip_present_and_reannounced_within_one_interval() {
    gate!(Etcd);
    let (lab, cap, mut vipd) = leading_and_captured();
    let (bound, mac) = (ms(500) + SLACK, lab.node_mac());

    lab.node.ip(&["link", "set", NODE_IF, "down"]);
    thread::sleep(ms(1500));
    assert!(
        vipd.is_running(),
        "vipd exited while the link was down\n{}",
        vipd.log()
    );
    let before = cap.arps().len();
    let t_up = SystemTime::now();
    lab.node.ip(&["link", "set", NODE_IF, "up"]);
    let back = || lab.has_vip();
    within(bound, "VIP back after link-up", &|| vipd.log(), back);
    let after = check_reannounced(&cap, before, t_up, mac, bound, &vipd, "after link-up");
    eprintln!("re-announced {after} ms after link-up");
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

#[test]
fn release_removes_vip_at_every_prefix_and_exact_match_only() {
    gate!(Etcd);
    let lab = SingleNode::new();
    let interval = ms(500);
    // 192.0.2.5 must not count as 192.0.2.50.
    lab.add_addr("192.0.2.5/24");
    lab.etcd.put(KEY, NODE_NAME);
    let mut vipd = lab.vipd("--interval 500 --announce-count 1");
    wait_vip(
        || lab.has_vip(),
        &vipd,
        "192.0.2.5 present (substring match?)",
    );
    assert_eq!(lab.node.prefixes_of(NODE_IF, vip()), vec![VIP_LEN]);

    // A second copy at /32, added by hand, counts as present and is removed on release too.
    lab.add_addr("192.0.2.50/32");
    thread::sleep(ms(700));
    let mut prefixes = lab.node.prefixes_of(NODE_IF, vip());
    prefixes.sort_unstable();
    assert_eq!(prefixes, vec![24, 32], "{}", vipd.log());

    lab.etcd.put(KEY, "node2");
    let released = || lab.node.prefixes_of(NODE_IF, vip()).is_empty();
    let bound = interval + SLACK;
    within(bound, "all copies released", &|| vipd.log(), released);
    let addrs = lab.node.addrs(NODE_IF);
    for keep in ["192.0.2.11", "192.0.2.5"] {
        let kept = addrs.iter().any(|(a, l)| a.to_string() == keep && *l == 24);
        assert!(kept, "{keep}/24 was removed with the VIP: {addrs:?}");
    }
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

#[test]
fn sighup_is_ignored_and_sigterm_sigint_release_and_exit_0() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let extra = "--interval 500 --announce-count 1";

    let mut vipd = lab.vipd(extra);
    wait_vip(|| lab.has_vip(), &vipd, "start");
    vipd.signal("HUP");
    thread::sleep(ms(700));
    let status = vipd.try_status();
    assert!(
        vipd.is_running(),
        "SIGHUP killed vipd: {status:?}\n{}",
        vipd.log()
    );
    assert!(lab.has_vip(), "SIGHUP released the VIP\n{}", vipd.log());

    for sig in ["TERM", "INT"] {
        if !lab.has_vip() {
            vipd = lab.vipd(extra);
            wait_vip(|| lab.has_vip(), &vipd, "start");
        }
        let sent = std::time::Instant::now();
        vipd.signal(sig);
        let status = vipd.wait_timeout(Duration::from_secs(5));
        eprintln!("SIG{sig}: {status:?} {:?} after the signal", sent.elapsed());
        let (code, log) = (status.map(|s| s.code()), vipd.log());
        assert_eq!(code, Some(Some(0)), "SIG{sig}: exit {status:?}\n{log}");
        assert!(
            !lab.has_vip(),
            "SIG{sig}: vipd exited leaving the VIP\n{log}"
        );
    }
}

#[test]
fn keep_on_exit_leaves_vip_after_sigterm() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let mut vipd = lab.vipd("--interval 500 --announce-count 1 --keep-on-exit");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    vipd.signal("TERM");
    let status = vipd.wait_timeout(Duration::from_secs(5));
    let (code, log) = (status.map(|s| s.code()), vipd.log());
    assert_eq!(code, Some(Some(0)), "SIGTERM: exit {status:?}\n{log}");
    thread::sleep(ms(300));
    assert!(lab.has_vip(), "--keep-on-exit: VIP removed\n{}", vipd.log());
}

/// Two vipd on one bridge and one etcd: moving the key moves the VIP, and the client's
/// neighbour entry follows by the gratuitous ARP alone (the client sends nothing).
#[test]
fn moving_key_moves_vip_and_client_neighbour_entry_without_client_traffic() {
    gate!(Etcd);
    let lab = TwoNodes::new();
    let interval = ms(500);
    let (mac1, mac2, macc) = (lab.n1.mac(HOST_IF), lab.n2.mac(HOST_IF), lab.c.mac(HOST_IF));
    lab.etcd.put(KEY, "n1");
    let extra = "--interval 500 --announce-count 2 --announce-interval 200";
    let mut v1 = lab.vipd(&vipd_bin(), &lab.n1, "n1", extra);
    let mut v2 = lab.vipd(&vipd_bin(), &lab.n2, "n2", extra);
    let logs = |v1: &Proc, v2: &Proc| format!("{}\n{}", v1.log(), v2.log());
    wait_vip(|| lab.n1.has_vip(HOST_IF), &v1, "n1");
    thread::sleep(ms(600));
    let on_n2 = lab.n2.has_vip(HOST_IF);
    assert!(!on_n2, "VIP on n2 as well\n{}", logs(&v1, &v2));

    // One connection attempt from the client resolves the VIP to n1's MAC (n1 answers the
    // SYN with a RST: nothing listens on port 9).
    let bash = tool("bash").to_string_lossy().into_owned();
    let tcp = format!("exec 3<>/dev/tcp/{VIP}/9");
    let connect = lab.c.exec(&tool("timeout"), &["3", &bash, "-c", &tcp]);
    let entry = lab.c.neigh(VIP);
    assert!(
        matches!(entry, Some((Some(m), _)) if m == mac1),
        "client's neighbour entry for {VIP} is {entry:?}, want n1's MAC {} (connect: {})",
        fmt_mac(&mac1),
        connect.stderr.trim()
    );

    let mut moves = 0;
    for (to, to_ns, to_mac, from_ns) in [
        ("n2", &lab.n2, mac2, &lab.n1),
        ("n1", &lab.n1, mac1, &lab.n2),
    ] {
        moves += 1;
        let cap = Capture::start(&lab.c, HOST_IF, "");
        // Past the neighbour locktime (1 s) since the last update of the entry.
        thread::sleep(ms(1100));
        let t_move = std::time::Instant::now();
        let t_move_wall = SystemTime::now();
        lab.etcd.put(KEY, to);
        let followed = wait_until(
            Duration::from_secs(1).saturating_sub(t_move.elapsed()),
            ms(10),
            || matches!(lab.c.neigh(VIP), Some((Some(m), _)) if m == to_mac),
        );
        let took = t_move.elapsed();
        let entry = lab.c.neigh(VIP);
        assert!(
            followed.is_some(),
            "move {moves} to {to}: client's neighbour entry is {entry:?} {took:?} after the move, \
             want {to}'s MAC {} within 1 s\ncaptured on the client:\n{}{}",
            fmt_mac(&to_mac),
            describe_arps(&cap.arps()),
            logs(&v1, &v2)
        );
        eprintln!("move {moves} to {to}: client's neighbour entry followed after {took:?}");
        let moved = || to_ns.has_vip(HOST_IF) && !from_ns.has_vip(HOST_IF);
        let what = format!("move {moves}: VIP on {to} only");
        within(interval + SLACK, &what, &|| logs(&v1, &v2), moved);
        thread::sleep(ms(200));
        let frames = cap.frames();
        let sent = frames.iter().find(|f| f.eth_src() == Some(macc));
        assert!(sent.is_none(), "move {moves}: the client sent {sent:02x?}");
        let arps = cap.arps();
        let garp =
            |(t, a): &(SystemTime, Arp)| *t >= t_move_wall && a.is_garp_request(vip(), to_mac);
        let (n, described) = (frames.len(), describe_arps(&arps));
        let what = format!("move {moves}: no gratuitous ARP from {to} among {n} frames");
        assert!(arps.iter().any(garp), "{what}:\n{described}{}", cap.log());
    }
    let running = v1.is_running() && v2.is_running();
    assert!(running, "a vipd exited\n{}", logs(&v1, &v2));
}

#[test]
fn etcd_unreachable_keeps_vip_for_the_grace_period_then_releases() {
    gate!(Etcd);
    let mut lab = SingleNode::new();
    let interval = ms(500);
    let grace = ms(2000);
    lab.etcd.put(KEY, NODE_NAME);
    let mut vipd = lab.vipd("--interval 500 --announce-count 1 --dcs-grace 2000");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let stopped = std::time::Instant::now();
    lab.etcd.stop();
    // Kept through the grace period…
    let early = wait_until(grace - ms(300), POLL, || !lab.has_vip());
    let log = vipd.log();
    assert!(
        early.is_none(),
        "VIP released {early:?} after etcd stopped, before the grace period\n{log}"
    );
    // …then released.
    let bound = grace + interval + SLACK;
    let what = format!("VIP released after etcd stopped (grace {grace:?})");
    let left = bound.saturating_sub(stopped.elapsed());
    within(left, &what, &|| vipd.log(), || !lab.has_vip());
    eprintln!("released {:?} after etcd stopped", stopped.elapsed());
    let log = vipd.log();
    assert!(vipd.is_running(), "vipd exited while etcd was down\n{log}");
}

#[test]
fn dead_stderr_pipe_does_not_stop_the_daemon() {
    gate!(Etcd);
    let lab = SingleNode::new();
    let interval = ms(500);
    lab.etcd.put(KEY, NODE_NAME);
    // stderr's read end is closed at once: every log line vipd writes fails with EPIPE.
    let extra = "--interval 500 --announce-count 1 -v";
    let args = vipd_args(NODE_IF, NODE_NAME, &lab.etcd.endpoint, extra);
    let mut vipd = Proc::spawn_in(&lab.node.name, &vipd_bin(), &args, false);
    wait_vip(|| lab.has_vip(), &vipd, "dead stderr");
    for (leader, present) in [("node2", false), (NODE_NAME, true), ("node2", false)] {
        lab.etcd.put(KEY, leader);
        let t = wait_until(interval + SLACK, POLL, || lab.has_vip() == present);
        assert!(
            t.is_some(),
            "leader {leader}: VIP present = {}, want {present} (vipd status {:?})",
            lab.has_vip(),
            vipd.try_status()
        );
    }
    let status = vipd.try_status();
    assert!(vipd.is_running(), "vipd died: {status:?}");
    let code = vipd.terminate(Duration::from_secs(5));
    assert_eq!(code, Some(0), "exit after SIGTERM: {code:?}");
}

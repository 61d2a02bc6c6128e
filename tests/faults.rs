//! Fault injection: what a production cluster throws at vipd, against the real etcd (one
//! member, or three), the real kernel and misbehaving servers, in network namespaces made by
//! the lab (tests/common). Every test is gated (root, and etcd where it uses one).
//!
//! Scenarios: DCS outage shorter and longer than the grace period; lost quorum;
//! compaction, a new data dir, endpoint failover; interface faults; hostile DCS replies; a
//! flapping leader key; SIGTERM at awkward moments; least privilege. The soak (1,000 moves)
//! is in tests/faults_soak.rs, the fuzz inputs in tests/faults_fuzz_inputs.rs.

use crate::common::*;
use crate::fakes::etcd::{FakeEtcd, Mode};
use crate::fakes::etcd_proxy::EtcdProxy;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Lines of what `p` logged that contain `pat`.
fn logged(p: &Proc, pat: &str) -> Vec<String> {
    p.stderr()
        .lines()
        .filter(|l| l.contains(pat))
        .map(String::from)
        .collect()
}

/// Waits (at most `timeout`) until `p` logged at least `n` lines containing `pat`.
fn wait_logged(p: &Proc, pat: &str, n: usize, timeout: Duration) -> bool {
    wait_until(timeout, POLL, || logged(p, pat).len() >= n).is_some()
}

/// The clusters' election timing: heartbeat 100 ms, election timeout 1 s.
const ELECTIONS: &str = "--heartbeat-interval 100 --election-timeout 1000";

/// The binary for the memory bounds: `VIPD_RELEASE_BIN` (`make soak` sets it to the release
/// build, whose VmHWM must stay under 4 MiB) or the test build (whose text alone is larger:
/// then only the growth is bounded).
fn memory_bin() -> (std::path::PathBuf, bool) {
    match std::env::var_os("VIPD_RELEASE_BIN").filter(|p| !p.is_empty()) {
        Some(p) => (p.into(), true),
        None => (vipd_bin(), false),
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

// ---------------------------------------------------------------------------------------------
// The DCS goes away.

/// etcd stops for less than the grace period while this node holds the VIP: the VIP
/// stays, and when etcd is back nothing moves (no delete, no re-add: `ip monitor` sees every
/// change).
#[test]
fn dcs_outage_shorter_than_grace_keeps_the_vip_without_a_flap() {
    gate!(Etcd);
    let mut lab = SingleNode::new();
    let grace = ms(5000);
    lab.etcd.put(KEY, NODE_NAME);
    let mut vipd = lab.vipd("--interval 200 --announce-count 1 --dcs-grace 5000");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    thread::sleep(ms(400));

    let stopped = Instant::now();
    lab.etcd.stop();
    assert!(
        wait_logged(&vipd, "DCS unreachable", 1, ms(1500)),
        "vipd did not notice etcd stopping\n{}",
        vipd.log()
    );
    thread::sleep(ms(800));
    lab.etcd.restart();
    let outage = stopped.elapsed();
    assert!(
        outage + ms(1000) < grace,
        "the lab is too slow: etcd took {outage:?} to come back, the test needs well under \
         the {grace:?} grace\n{}",
        lab.etcd.log()
    );
    // vipd reads the key again (a new "leader is" line), then nothing may change.
    assert!(
        wait_logged(&vipd, "leader is \"node1\"", 2, ms(200) + SLACK + ms(1000)),
        "vipd did not read the key again after etcd came back\n{}",
        vipd.log()
    );
    thread::sleep(ms(600));
    let events = mon.events();
    assert!(
        events.is_empty(),
        "the VIP moved during a {outage:?} outage (grace {grace:?}):\n{}{}",
        mon.describe(stopped),
        vipd.log()
    );
    assert!(lab.has_vip(), "VIP gone\n{}", vipd.log());
    assert_eq!(
        logged(&vipd, "DCS unreachable").len(),
        1,
        "one line for the outage\n{}",
        vipd.log()
    );
    assert!(
        logged(&vipd, "removed").is_empty() && logged(&vipd, "releasing").is_empty(),
        "{}",
        vipd.log()
    );
    eprintln!(
        "outage {outage:?}: VIP kept, no address event, {} log lines",
        vipd.stderr().lines().count()
    );
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

/// etcd stops for longer than the grace period: the VIP is released once, at grace
/// expiry (± one interval from the last read), not re-added during the outage, and back within one
/// interval of etcd returning with this node still the leader.
#[test]
fn dcs_outage_longer_than_grace_releases_once_at_expiry_and_comes_back() {
    gate!(Etcd);
    let mut lab = SingleNode::new();
    let interval = ms(200);
    let grace = ms(1500);
    lab.etcd.put(KEY, NODE_NAME);
    let mut vipd = lab.vipd("--interval 200 --announce-count 1 --dcs-grace 1500");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    thread::sleep(ms(400));

    let stop_called = Instant::now();
    lab.etcd.stop();
    let stop_done = Instant::now();
    let bound = grace + interval + SLACK;
    let released = wait_until(bound + ms(500), ms(5), || {
        mon.events().iter().any(|e| !e.added)
    });
    assert!(
        released.is_some(),
        "VIP not released {:?} after etcd stopped (grace {grace:?})\n{}{}",
        stop_called.elapsed(),
        mon.describe(stop_called),
        vipd.log()
    );
    let events = mon.events();
    let at = events[0].at;
    let lo = stop_called + grace - interval;
    let hi = stop_done + grace + interval + SLACK;
    assert!(
        !events[0].added && at >= lo && at <= hi,
        "released {} ms after etcd stopped; want grace ± one interval ({}..={} ms)\n{}{}",
        millis(at - stop_called),
        millis(lo - stop_called),
        millis(hi - stop_called),
        mon.describe(stop_called),
        vipd.log()
    );
    // Released once: nothing more while etcd is down.
    thread::sleep(ms(1000));
    assert_eq!(
        mon.events().len(),
        1,
        "want one delete during the outage\n{}{}",
        mon.describe(stop_called),
        vipd.log()
    );
    assert!(!lab.has_vip(), "VIP present during the outage");

    lab.etcd.restart();
    let back = Instant::now();
    let t = wait_until(interval + SLACK, POLL, || lab.has_vip());
    assert!(
        t.is_some(),
        "VIP not back within {:?} of etcd being healthy again\n{}{}",
        interval + SLACK,
        mon.describe(stop_called),
        vipd.log()
    );
    thread::sleep(ms(500));
    let events = mon.events();
    assert!(
        events.len() == 2 && events[1].added,
        "want exactly: delete at grace expiry, add after etcd is back\n{}{}",
        mon.describe(stop_called),
        vipd.log()
    );
    assert_eq!(
        logged(&vipd, "longer than the grace period").len(),
        1,
        "{}",
        vipd.log()
    );
    eprintln!(
        "released {} ms after etcd stopped (grace {} ms); back {} ms after etcd was healthy",
        millis(at - stop_called),
        millis(grace),
        millis(events[1].at.saturating_duration_since(back))
    );
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

// ---------------------------------------------------------------------------------------------
// Quorum, history, endpoints.

/// Three members, two stopped: the remaining member has no leader. vipd must take that
/// as unknown within seconds ("no leader", not the stale value a serializable read would give),
/// keep the VIP for the grace period and release it once.
#[test]
fn lost_quorum_is_unknown_within_seconds_and_grace_applies() {
    gate!(Etcd);
    let lab = NodeLab::new();
    let mut cluster = EtcdCluster::start(&lab.node, &lab.lab, 3, ELECTIONS);
    let interval = ms(300);
    let grace = ms(2500);
    cluster.members[0].put(KEY, NODE_NAME);
    let mut vipd = lab.vipd(
        &cluster.endpoints(),
        "--interval 300 --announce-count 1 --dcs-grace 2500 -v",
    );
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    thread::sleep(ms(600));

    let stop_called = Instant::now();
    cluster.members[1].stop();
    cluster.members[2].stop();
    let stop_done = Instant::now();
    assert!(
        wait_logged(&vipd, "DCS unreachable", 1, ms(4000)),
        "no quorum not recognised within {:?} of stopping two of three members\n{}",
        stop_done.elapsed(),
        vipd.log()
    );
    let recognised = Instant::now();
    let line = logged(&vipd, "DCS unreachable").remove(0);
    // The first failed read may time out (the member still believes in the old leader until
    // its election timeout); then the member answers "no leader" at once (hasleader).
    assert!(
        wait_logged(&vipd, "no leader", 1, ms(3000)),
        "the surviving member never answered \"no leader\"\n{}",
        vipd.log()
    );
    let no_leader = stop_called.elapsed();
    assert!(
        lab.has_vip(),
        "VIP dropped at once, grace ignored\n{}",
        vipd.log()
    );
    let released = wait_until(grace + interval + SLACK + ms(500), ms(5), || {
        mon.events().iter().any(|e| !e.added)
    });
    assert!(
        released.is_some(),
        "VIP kept {:?} after quorum was lost (grace {grace:?}): a stale leader?\n{}{}",
        stop_called.elapsed(),
        mon.describe(stop_called),
        vipd.log()
    );
    let at = mon.events()[0].at;
    let lo = stop_called + grace - interval;
    let hi = recognised + grace + interval + SLACK;
    assert!(
        at >= lo && at <= hi,
        "released {} ms after the stop, want {}..={} ms (grace from the last answer)\n{}{}",
        millis(at - stop_called),
        millis(lo - stop_called),
        millis(hi - stop_called),
        mon.describe(stop_called),
        vipd.log()
    );
    thread::sleep(ms(800));
    assert_eq!(
        mon.events().len(),
        1,
        "released once\n{}{}",
        mon.describe(stop_called),
        vipd.log()
    );
    eprintln!(
        "quorum lost: unknown after {} ms ({line}); \"no leader\" by {} ms; released after {} \
         ms (grace {} ms)",
        millis(recognised - stop_called),
        millis(no_leader),
        millis(at - stop_called),
        millis(grace)
    );
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

/// the watch's start revision is compacted away before the watch is created (a
/// proxy holds vipd's first watch request while the test writes and compacts): etcd cancels
/// the watch, and vipd must read the key afresh at once and watch from there, so a change
/// right after is seen through the new watch, long before the next periodic read (interval
/// 5 s).
#[test]
fn compacted_watch_revision_is_followed_by_a_fresh_read() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let proxy = EtcdProxy::start(&lab.node.name, "127.0.0.2", "127.0.0.1:2379");
    proxy.hold_next_watch();
    let extra = "--interval 5000 --announce-count 1 --dcs-grace 20000 -v";
    let mut vipd = lab.net.vipd(&proxy.endpoint, extra);
    wait_vip(|| lab.has_vip(), &vipd, "start");
    assert!(
        proxy.wait_held(ms(3000)),
        "vipd never asked for a watch\n{}",
        vipd.log()
    );
    let held = Instant::now();
    // Two writes to another key and a compaction up to the last one: the revision vipd read
    // before asking for the watch (R) is now below the compacted revision R+2.
    let endpoint = lab.etcd.endpoint.clone();
    let compacted = in_netns(&lab.node.name, move || {
        let etcd = EtcdHttp::new(&endpoint);
        etcd.put("/service/demo/other", "x")?;
        let rev = etcd.put("/service/demo/other", "y")?;
        etcd.compact(rev)?;
        Ok::<i64, String>(rev)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    proxy.release();
    assert!(
        wait_logged(&vipd, "start revision compacted", 1, ms(2000)),
        "vipd's watch was not cancelled for the compacted revision {compacted}\n{}",
        vipd.log()
    );
    // The fresh read and the new watch take a few milliseconds.
    thread::sleep(ms(300));
    let put = Instant::now();
    assert!(
        put < held + ms(3500),
        "the lab is too slow: the change would meet the periodic read"
    );
    lab.etcd.put(KEY, "node2");
    let released = wait_until(ms(1000), ms(5), || !lab.has_vip());
    assert!(
        released.is_some(),
        "after a compacted watch, a change was not seen within 1 s (interval 5 s): no fresh \
         read and watch?\n{}",
        vipd.log()
    );
    eprintln!(
        "compacted at {compacted}; the change after it seen in {:?}",
        put.elapsed()
    );
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

/// etcd restarted with a new data dir: revisions start again from 1, far below the one
/// vipd last read. vipd must read afresh and watch from the new store's revision, so a change
/// in the new store is seen at once (not only at the next periodic read, interval 3 s).
#[test]
fn etcd_with_a_new_data_dir_is_read_afresh() {
    gate!(Etcd);
    let mut lab = SingleNode::new();
    let endpoint = lab.etcd.endpoint.clone();
    let old = in_netns(&lab.node.name, move || {
        let etcd = EtcdHttp::new(&endpoint);
        for i in 0..60 {
            etcd.put("/service/demo/other", &i.to_string())?;
        }
        etcd.put(KEY, NODE_NAME)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut vipd = lab.vipd("--interval 3000 --announce-count 1 --dcs-grace 20000");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let before = logged(&vipd, "leader is \"node1\"").len();

    lab.etcd.restart_empty();
    lab.etcd.put(KEY, NODE_NAME);
    let new = lab.etcd.revision();
    assert!(new < old, "new store at revision {new}, old at {old}");
    assert!(
        wait_logged(
            &vipd,
            "leader is \"node1\"",
            before + 1,
            ms(3000) + SLACK + ms(2000)
        ),
        "vipd did not read the new store\n{}",
        vipd.log()
    );
    assert!(
        lab.has_vip(),
        "VIP missing after the re-read\n{}",
        vipd.log()
    );
    // Let the watch on the new store start.
    thread::sleep(ms(300));
    let put = Instant::now();
    lab.etcd.put(KEY, "node2");
    let released = wait_until(ms(1000), ms(5), || !lab.has_vip());
    assert!(
        released.is_some(),
        "a change in the new store (revision {}) not seen within 1 s: watching from the old \
         revision {old}?\n{}",
        new + 1,
        vipd.log()
    );
    eprintln!(
        "old revision {old}, new {new}: change seen in {:?}",
        put.elapsed()
    );
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

/// Endpoint failover: of three members, the one vipd reads from stops (twice, one
/// after the other): vipd goes on with the next member without dropping or re-adding the VIP, and
/// watches there from that member's fresh read, so changes are seen at once (interval 3 s).
#[test]
fn endpoint_failover_reads_afresh_from_the_next_member() {
    gate!(Etcd);
    let lab = NodeLab::new();
    let mut cluster = EtcdCluster::start(&lab.node, &lab.lab, 3, ELECTIONS);
    cluster.members[0].put(KEY, NODE_NAME);
    let mut vipd = lab.vipd(
        &cluster.endpoints(),
        "--interval 3000 --announce-count 1 --dcs-grace 20000",
    );
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    let mut t0 = Instant::now();
    thread::sleep(ms(300));

    for (down, up) in [(0usize, None), (1, Some(0usize))] {
        if let Some(up) = up {
            cluster.members[up].restart();
        }
        cluster.members[down].stop();
        // The open watch breaks; vipd re-reads from the next member. No address change.
        thread::sleep(ms(1000));
        assert!(
            mon.events_since(t0).is_empty() && lab.has_vip(),
            "member m{} stopped: the VIP moved\n{}{}",
            down + 1,
            mon.describe(t0),
            vipd.log()
        );
        for (leader, present) in [("node2", false), (NODE_NAME, true)] {
            let put = Instant::now();
            cluster.live().put(KEY, leader);
            let seen = wait_until(ms(1000), ms(5), || lab.has_vip() == present);
            assert!(
                seen.is_some(),
                "m{} down: leader {leader} not acted on within 1 s (interval 3 s): no watch \
                 on the member that answered?\n{}",
                down + 1,
                vipd.log()
            );
            eprintln!(
                "m{} down: leader {leader} acted on after {:?}",
                down + 1,
                put.elapsed()
            );
        }
        thread::sleep(ms(300));
        // Exactly the two changes the test made.
        let events = mon.events_since(t0);
        assert!(
            events.len() == 2 && !events[0].added && events[1].added,
            "{}{}",
            mon.describe(t0),
            vipd.log()
        );
        // The next round counts from here.
        t0 = Instant::now();
    }
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

// ---------------------------------------------------------------------------------------------
// Interface faults (link flap and a VIP deleted by hand: tests/daemon.rs).

/// The interface's primary address is deleted while the VIP (in the same /24) is a
/// secondary address: with promote_secondaries off the kernel deletes the VIP with it. vipd
/// must put it back within one interval and announce it.
#[test]
fn deleting_the_primary_address_takes_the_vip_and_vipd_puts_it_back() {
    gate!(Etcd);
    let lab = SingleNode::new();
    let interval = ms(300);
    let mac = lab.node_mac();
    let sysctl = tool("sysctl");
    let out = lab.node.exec(
        &sysctl,
        &[
            "-w",
            &format!("net.ipv4.conf.{NODE_IF}.promote_secondaries=0"),
        ],
    );
    assert!(out.status.success(), "sysctl: {}", out.stderr);
    lab.etcd.put(KEY, NODE_NAME);
    let cap = Capture::start(&lab.peer, PEER_IF, "arp");
    let mut vipd = lab.vipd("--interval 300 --announce-count 1");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    cap.wait_arps(1, ms(2000));
    let shown = lab.node.ip(&["-4", "-o", "addr", "show", "dev", NODE_IF]);
    assert!(
        shown
            .lines()
            .any(|l| l.contains(&format!("{VIP}/24")) && l.contains("secondary")),
        "the VIP should be a secondary address here:\n{shown}"
    );
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    // Past the announcement rate limit of the first announcement (1 per second here).
    thread::sleep(ms(1100));
    let before = cap.arps().len();
    let t0 = Instant::now();
    lab.del_addr("192.0.2.11/24");
    // The kernel took the VIP with the primary…
    let gone = wait_until(ms(1000), ms(2), || mon.events().iter().any(|e| !e.added));
    assert!(
        gone.is_some(),
        "the kernel did not delete the secondary VIP with the primary (promote_secondaries \
         on?)\n{}",
        mon.describe(t0)
    );
    // …and vipd puts it back within one interval, announcing it.
    let back = wait_until(interval + SLACK, POLL, || lab.has_vip());
    assert!(
        back.is_some(),
        "VIP not back within {:?} of the primary's delete\n{}{}",
        interval + SLACK,
        mon.describe(t0),
        vipd.log()
    );
    let arps = cap.wait_arps(before + 1, interval + SLACK);
    assert!(
        arps.len() > before && arps[before].1.is_garp_request(vip(), mac),
        "VIP re-added but not announced:\n{}{}",
        describe_arps(&arps),
        vipd.log()
    );
    eprintln!(
        "primary deleted: VIP back after {:?}, announced {} ms after the delete",
        back.unwrap_or_default() + gone.unwrap_or_default(),
        millis_between(SystemTime::now() - t0.elapsed(), arps[before].0)
    );
    // The primary comes back: nothing else changes.
    lab.add_addr("192.0.2.11/24");
    thread::sleep(ms(700));
    assert!(lab.has_vip(), "{}", vipd.log());
    let events = mon.events();
    assert_eq!(
        events.len(),
        2,
        "want: kernel delete, vipd add\n{}",
        mon.describe(t0)
    );
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

/// The interface does not exist at start: vipd says so once, waits (does not exit) and
/// uses it when it appears; the same when it is deleted and created again later.
#[test]
fn missing_interface_at_start_is_waited_for_and_used_when_it_appears() {
    gate!(Etcd);
    let lab = SingleNode::new();
    let interval = ms(300);
    let iface = "late0";
    lab.etcd.put(KEY, NODE_NAME);
    let extra = "--interval 300 --announce-count 1";
    let mut vipd = lab
        .node
        .vipd(&vipd_args(iface, NODE_NAME, &lab.etcd.endpoint, extra));
    let waiting = format!("interface \"{iface}\" not found; waiting for it to appear");
    assert!(
        wait_logged(&vipd, &waiting, 1, ms(3000)),
        "no clear line about the missing interface\n{}",
        vipd.log()
    );
    thread::sleep(interval * 5);
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
    assert_eq!(
        logged(&vipd, "not found").len(),
        1,
        "logged once, not every turn\n{}",
        vipd.log()
    );

    for round in 1..=2 {
        lab.node.ip(&[
            "link",
            "add",
            iface,
            "type",
            "veth",
            "peer",
            "name",
            "late1",
            "netns",
            &lab.peer.name,
        ]);
        lab.node.ip(&["link", "set", iface, "up"]);
        lab.peer.ip(&["link", "set", "late1", "up"]);
        let created = Instant::now();
        let t = wait_until(interval + SLACK, POLL, || lab.node.has_vip(iface));
        assert!(
            t.is_some(),
            "round {round}: VIP not on {iface} within {:?} of its creation\n{}",
            interval + SLACK,
            vipd.log()
        );
        assert!(
            wait_logged(
                &vipd,
                &format!("interface \"{iface}\" found"),
                round,
                ms(500)
            ),
            "{}",
            vipd.log()
        );
        eprintln!(
            "round {round}: VIP on {iface} {:?} after it appeared",
            created.elapsed()
        );
        // Deleted again: waited for again, said once more.
        lab.node.ip(&["link", "del", iface]);
        assert!(
            wait_logged(&vipd, "not found", round + 1, ms(2000)),
            "round {round}: deleted interface not reported\n{}",
            vipd.log()
        );
        thread::sleep(interval * 3);
        assert_eq!(
            logged(&vipd, "not found").len(),
            round + 1,
            "{}",
            vipd.log()
        );
        assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile or broken DCS replies.

/// A misbehaving server as the only endpoint, switched from good answers to one fault
/// at a time: each fault is unknown with one log line (the VIP is kept: grace), the loop keeps its
/// interval (the server sees one read per interval, no stall, no spin), and vipd's memory stays
/// bounded after 1 GiB bodies (VmHWM under 4 MiB).
#[test]
fn hostile_dcs_replies_are_unknown_with_one_line_bounded_memory_and_steady_interval() {
    gate!(Root);
    let lab = NodeLab::new();
    let server = FakeEtcd::start(&lab.node.name, "127.0.0.2", NODE_NAME);
    let interval = ms(300);
    let (bin, release) = memory_bin();
    let extra = "--interval 300 --announce-count 1 --dcs-grace 60000";
    let args = vipd_args(NODE_IF, NODE_NAME, &server.endpoint, extra);
    let mut vipd = Proc::spawn_in(&lab.node.name, &bin, &args, true);
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let pid = vipd.pid();
    thread::sleep(interval * 2);
    let hwm_start = proc_status_kib(pid, "VmHWM").expect("VmHWM of vipd");
    let faults = [
        (Mode::InvalidJson, "invalid JSON"),
        (Mode::HugeBody, "larger than"),
        (Mode::EndlessBody, "timed out"),
        (Mode::Silent, "timed out"),
        (Mode::WrongShape, "kvs is not a list"),
        (Mode::BadBase64, "value:"),
    ];
    let mut report = Vec::new();
    for (mode, says) in faults {
        server.set_mode(Mode::Good);
        let good = logged(&vipd, "leader is \"node1\"").len();
        let lines = vipd.stderr().lines().count();
        if lines > 0 && !logged(&vipd, "DCS unreachable").is_empty() {
            assert!(
                wait_logged(&vipd, "leader is \"node1\"", good + 1, interval * 2 + SLACK),
                "{mode:?}: not back to good\n{}",
                vipd.log()
            );
        }
        thread::sleep(interval * 2);
        let before = vipd.stderr().lines().count();
        let unknown_before = logged(&vipd, "DCS unreachable").len();
        server.set_mode(mode);
        let t0 = Instant::now();
        let window = interval * 8;
        thread::sleep(window);
        let t1 = Instant::now();
        // Memory first: a reply read whole would show here before anything else.
        let hwm = proc_status_kib(pid, "VmHWM").expect("VmHWM of vipd");
        assert!(
            hwm < hwm_start + 512,
            "{mode:?}: vipd's VmHWM grew from {hwm_start} kB to {hwm} kB"
        );
        let new: Vec<String> = vipd
            .stderr()
            .lines()
            .skip(before)
            .map(String::from)
            .collect();
        let unknown: Vec<&String> = new
            .iter()
            .filter(|l| l.contains("DCS unreachable"))
            .collect();
        assert_eq!(
            unknown.len(),
            1,
            "{mode:?}: want one \"DCS unreachable\" line, got:\n{}\n{}",
            new.join("\n"),
            vipd.log()
        );
        assert_eq!(logged(&vipd, "DCS unreachable").len(), unknown_before + 1);
        assert!(
            unknown[0].contains(says),
            "{mode:?}: the line should say {says:?}: {}",
            unknown[0]
        );
        assert!(
            new.len() <= 2,
            "{mode:?}: more than the unknown and the grace line in {window:?}:\n{}",
            new.join("\n")
        );
        assert!(
            lab.has_vip(),
            "{mode:?}: VIP dropped within grace\n{}",
            vipd.log()
        );
        // The cadence: reads that started in the window, the first one after t0.
        let reads: Vec<Instant> = server
            .ranges_since(t0)
            .iter()
            .map(|(at, _)| *at)
            .filter(|&at| at < t1)
            .collect();
        let mut gaps: Vec<Duration> = reads.windows(2).map(|w| w[1] - w[0]).collect();
        if let Some(first) = reads.first() {
            gaps.push(*first - t0);
        }
        let max_gap = gaps.iter().max().copied().unwrap_or(window);
        let expected = window.as_millis() / interval.as_millis();
        assert!(
            reads.len() as u128 + 2 >= expected && reads.len() as u128 <= expected * 2 + 2,
            "{mode:?}: {} reads in {window:?} at interval {interval:?}: a stall or a spin",
            reads.len()
        );
        assert!(
            max_gap <= interval + ms(250),
            "{mode:?}: {max_gap:?} between reads (interval {interval:?}): the loop stalled"
        );
        report.push(format!(
            "{mode:?}: {} reads in {} ms, largest gap {} ms; {}",
            reads.len(),
            window.as_millis(),
            max_gap.as_millis(),
            unknown[0].split("DCS unreachable").nth(1).unwrap_or("")
        ));
    }
    // A 1 GiB line in the watch stream: ranges are good, so this is not even unknown; the
    // watch gives up at its line bound and the reads keep their interval.
    server.set_mode(Mode::Good);
    assert!(
        wait_logged(&vipd, "leader is \"node1\"", 2, interval * 3 + SLACK),
        "{}",
        vipd.log()
    );
    let unknown_before = logged(&vipd, "DCS unreachable").len();
    let sent_before = server.huge_sent();
    let lines_before = server.huge_lines();
    server.set_mode(Mode::HugeWatchLine);
    thread::sleep(interval * 6);
    // The open stream gets a 1 GiB line, then every new watch after a fresh read.
    let watches = server.huge_lines() - lines_before;
    assert!(
        watches >= 2,
        "only {watches} watch streams got a 1 GiB line: no fresh read and watch after one?"
    );
    assert_eq!(
        logged(&vipd, "DCS unreachable").len(),
        unknown_before,
        "good ranges with a broken watch are not unknown\n{}",
        vipd.log()
    );
    server.set_mode(Mode::Good);
    thread::sleep(interval * 2);

    let hwm = proc_status_kib(pid, "VmHWM").expect("VmHWM of vipd");
    let rss = proc_status_kib(pid, "VmRSS").expect("VmRSS of vipd");
    let anon = proc_status_kib(pid, "RssAnon").expect("RssAnon of vipd");
    let offered = server.huge_sent() as f64 / (1u64 << 20) as f64;
    eprintln!(
        "{}\nhuge bodies: {offered:.1} MiB written before vipd hung up (of 1 GiB each; the \
         {watches} watch streams got a 1 GiB line, {:.1} MiB); {} binary: VmHWM {hwm_start} kB \
         before the faults, {hwm} kB after; VmRSS {rss} kB, RssAnon {anon} kB",
        report.join("\n"),
        (server.huge_sent() - sent_before) as f64 / (1u64 << 20) as f64,
        if release { "release" } else { "debug" }
    );
    assert!(
        hwm < hwm_start + 512,
        "vipd's VmHWM grew from {hwm_start} kB to {hwm} kB with the 1 GiB bodies"
    );
    assert!(
        anon < 1024,
        "vipd's RssAnon is {anon} kB after 1 GiB bodies"
    );
    if release {
        assert!(
            hwm < 4096,
            "vipd's VmHWM is {hwm} kB after 1 GiB bodies; want under 4 MiB"
        );
    }
    assert!(lab.has_vip(), "{}", vipd.log());
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

// ---------------------------------------------------------------------------------------------
// A flapping leader key.

/// Counts per sliding window: the largest number of `times` within any `window` (half-open,
/// starting at each one).
fn max_in_window(times: &[std::time::SystemTime], window: Duration) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.duration_since(times[i]).unwrap_or_default() < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The leader key flaps between this node and another hundreds of times a second for a
/// few seconds: vipd ends in the state of the last value, and never sends more than announce-count
/// announcements in any second.
#[test]
fn flapping_leader_key_ends_in_the_last_state_within_the_announce_limit() {
    gate!(Etcd);
    let lab = SingleNode::new();
    let interval = ms(500);
    let count = 3;
    lab.etcd.put(KEY, "node2");
    let cap = Capture::start(&lab.peer, PEER_IF, "arp");
    let mut vipd = lab.vipd("--interval 500 --announce-count 3 --announce-interval 200");
    thread::sleep(ms(500));
    for (round, last) in [(1, NODE_NAME), (2, "node2"), (3, NODE_NAME)] {
        let endpoint = lab.etcd.endpoint.clone();
        let last_value = last.to_string();
        let (writes, took) = in_netns(&lab.node.name, move || {
            let etcd = EtcdHttp::new(&endpoint);
            let start = Instant::now();
            let mut n = 0u32;
            // 2.5 s of alternating writes (bounded: 20,000 at most), then the last value.
            while start.elapsed() < ms(2500) && n < 20_000 {
                let v = if n % 2 == 0 { NODE_NAME } else { "node2" };
                etcd.put(KEY, v)?;
                n += 1;
            }
            etcd.put(KEY, &last_value)?;
            Ok::<_, String>((n + 1, start.elapsed()))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let rate = f64::from(writes) / took.as_secs_f64();
        assert!(
            rate >= 100.0,
            "the lab is too slow: {writes} writes in {took:?} ({rate:.0}/s), want hundreds a second"
        );
        let want = last == NODE_NAME;
        let settled = wait_until(interval + SLACK, POLL, || lab.has_vip() == want);
        assert!(
            settled.is_some(),
            "round {round}: last value {last}, VIP present = {}\n{}",
            lab.has_vip(),
            vipd.log()
        );
        // And stays so.
        thread::sleep(interval * 2);
        assert_eq!(lab.has_vip(), want, "round {round}\n{}", vipd.log());
        eprintln!(
            "round {round}: {writes} writes in {took:?} ({rate:.0}/s), ended {} as {last}",
            if want { "present" } else { "absent" }
        );
    }
    thread::sleep(ms(1200));
    let arps = cap.arps();
    let times: Vec<_> = arps.iter().map(|(t, _)| *t).collect();
    // Capture timestamps jitter by well under 20 ms: windows of 980 ms.
    let most = max_in_window(&times, ms(980));
    assert!(
        most <= count,
        "{most} announcements within one second (announce-count {count}):\n{}",
        describe_arps(&arps)
    );
    assert!(
        !arps.is_empty(),
        "no announcement at all while flapping\n{}",
        vipd.log()
    );
    eprintln!(
        "{} announcements in all, at most {most} in any second",
        arps.len()
    );
    assert!(vipd.is_running(), "vipd exited\n{}", vipd.log());
}

// ---------------------------------------------------------------------------------------------
// Signals (SIGHUP reload: tests/reload.rs).

/// SIGTERM in the middle of an announcement burst: the VIP is released, vipd exits 0 at
/// once, and no announcement follows.
#[test]
fn sigterm_during_an_announcement_burst_releases_and_exits_0() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let cap = Capture::start(&lab.peer, PEER_IF, "arp");
    let mut vipd = lab.vipd("--interval 500 --announce-count 6 --announce-interval 400");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let arps = cap.wait_arps(2, ms(2000));
    assert!(arps.len() >= 2, "{}", describe_arps(&arps));
    let sent = Instant::now();
    vipd.signal("TERM");
    let status = vipd.wait_timeout(ms(1000));
    let took = sent.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit after SIGTERM in a burst: {status:?} after {took:?}\n{}",
        vipd.log()
    );
    assert!(!lab.has_vip(), "VIP left behind\n{}", vipd.log());
    let at_exit = cap.arps().len();
    thread::sleep(ms(1000));
    let arps = cap.arps();
    assert_eq!(
        arps.len(),
        at_exit,
        "announcements after exit:\n{}",
        describe_arps(&arps)
    );
    assert!(
        arps.len() < 6,
        "the burst ran to its end before the exit:\n{}",
        describe_arps(&arps)
    );
    eprintln!(
        "SIGTERM after {} of 6 announcements: exit 0 after {took:?}",
        arps.len()
    );
}

/// SIGTERM while a read of the DCS hangs (the server accepted and never answers): the
/// VIP is released and vipd exits 0, at the latest when the read gives up at the turn's deadline
/// (one interval: a read with a timeout is not interrupted by the signal; the watch is).
#[test]
fn sigterm_during_a_dcs_timeout_releases_and_exits_0() {
    gate!(Root);
    let lab = NodeLab::new();
    let server = FakeEtcd::start(&lab.node.name, "127.0.0.2", NODE_NAME);
    let mut vipd = lab.vipd(
        &server.endpoint,
        "--interval 2000 --announce-count 1 --dcs-grace 60000 --no-watch",
    );
    wait_vip(|| lab.has_vip(), &vipd, "start");
    server.set_mode(Mode::Silent);
    let switched = Instant::now();
    let hanging = wait_until(ms(5000), POLL, || {
        server
            .ranges_since(switched)
            .iter()
            .any(|(_, mode)| *mode == Mode::Silent)
    });
    assert!(hanging.is_some(), "vipd never read from the silent server");
    thread::sleep(ms(500));
    let sent = Instant::now();
    vipd.signal("TERM");
    let status = vipd.wait_timeout(ms(5000));
    let took = sent.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit after SIGTERM during a hanging read: {status:?}\n{}",
        vipd.log()
    );
    assert!(!lab.has_vip(), "VIP left behind\n{}", vipd.log());
    assert!(
        took < ms(2000) + SLACK,
        "exit took {took:?} after SIGTERM, more than one interval (2 s)\n{}",
        vipd.log()
    );
    eprintln!("SIGTERM during a hanging read: exit 0 after {took:?}");
}

/// SIGTERM twice in a row: one clean release, exit 0 (the second signal does not
/// kill). The second one follows the first after 0 µs to 3 ms, so that in some round it lands
/// while the first is being handled (release and exit take about a millisecond).
#[test]
fn sigterm_twice_releases_and_exits_0() {
    gate!(Etcd);
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    for gap_us in [0u64, 100, 300, 600, 1000, 2000, 3000] {
        let mut vipd = lab.vipd("--interval 500 --announce-count 1");
        wait_vip(|| lab.has_vip(), &vipd, "start");
        thread::sleep(ms(100));
        let pid = Pid::from_raw(vipd.pid() as i32);
        let gap = Duration::from_micros(gap_us);
        kill(pid, Signal::SIGTERM).expect("first SIGTERM");
        let first = Instant::now();
        while first.elapsed() < gap {
            std::hint::spin_loop();
        }
        // ESRCH when it is gone already: fine (reaped only by wait_timeout below).
        let second = kill(pid, Signal::SIGTERM);
        let status = vipd.wait_timeout(ms(3000));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "second SIGTERM {gap_us} µs after the first ({second:?}): exit {status:?}\n{}",
            vipd.log()
        );
        assert!(!lab.has_vip(), "gap {gap_us} µs: VIP left\n{}", vipd.log());
        assert_eq!(
            logged(&vipd, "SIGTERM").len(),
            1,
            "gap {gap_us} µs: one release\n{}",
            vipd.log()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Least privilege.

/// After start-up vipd keeps only CAP_NET_ADMIN and CAP_NET_RAW (effective, permitted and
/// bounding sets) and has no_new_privs set; it still adds, removes and announces.
#[test]
fn capabilities_after_start_are_net_admin_and_net_raw_only() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let cap = Capture::start(&lab.peer, PEER_IF, "arp");
    let mut vipd = lab.vipd("--interval 300 --announce-count 1");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let pid = vipd.pid();
    let field = |f: &str| proc_status(pid, f).unwrap_or_else(|| panic!("no {f} for {pid}"));
    for f in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            field(f),
            "0000000000003000",
            "{f} of vipd (want CAP_NET_ADMIN|CAP_NET_RAW)\n{}",
            vipd.log()
        );
    }
    assert_eq!(field("CapInh"), "0000000000000000");
    assert_eq!(field("CapAmb"), "0000000000000000");
    assert_eq!(field("NoNewPrivs"), "1");
    // Still able to do its job: announce, remove, add again.
    assert!(!cap.wait_arps(1, ms(2000)).is_empty(), "no announcement");
    lab.etcd.put(KEY, "node2");
    assert!(
        wait_until(ms(300) + SLACK, POLL, || !lab.has_vip()).is_some(),
        "cannot remove after dropping capabilities\n{}",
        vipd.log()
    );
    lab.etcd.put(KEY, NODE_NAME);
    assert!(
        wait_until(ms(300) + SLACK, POLL, || lab.has_vip()).is_some(),
        "cannot add after dropping capabilities\n{}",
        vipd.log()
    );
    assert!(
        cap.wait_arps(2, ms(2000)).len() >= 2,
        "cannot announce after dropping capabilities\n{}",
        vipd.log()
    );
    eprintln!(
        "CapEff {} CapPrm {} CapBnd {} NoNewPrivs {}",
        field("CapEff"),
        field("CapPrm"),
        field("CapBnd"),
        field("NoNewPrivs")
    );
    assert_eq!(vipd.terminate(ms(3000)), Some(0), "{}", vipd.log());
    assert!(!lab.has_vip(), "not released at exit\n{}", vipd.log());
}

/// Least privilege for an unprivileged user: vipd run as uid 65534 with only the two
/// capabilities, ambient (what systemd's `User=` with `AmbientCapabilities=` gives; file
/// capabilities from `setcap cap_net_admin,cap_net_raw=ep` give the same sets) does its job,
/// keeps exactly those two and sets no_new_privs. Without CAP_SETPCAP it cannot narrow the
/// bounding set, and must not fail for that.
#[test]
fn unprivileged_user_with_the_two_capabilities_runs_and_keeps_only_them() {
    gate!(Etcd);
    use std::os::unix::fs::PermissionsExt;
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    // A copy that uid 65534 can execute whatever the permissions of the build directory.
    let dir = TempDir::new(&lab.lab, "unprivileged");
    let bin = dir.path.join("vipd");
    std::fs::copy(vipd_bin(), &bin).expect("copy vipd");
    for (p, mode) in [(&dir.path, 0o755), (&bin, 0o755)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let mut args = args(&format!(
        "--reuid=65534 --regid=65534 --clear-groups --inh-caps=+net_admin,+net_raw \
         --ambient-caps=+net_admin,+net_raw {}",
        bin.display()
    ));
    let extra = "--interval 300 --announce-count 1 -v";
    args.extend(vipd_args(NODE_IF, NODE_NAME, &lab.etcd.endpoint, extra));
    let cap = Capture::start(&lab.peer, PEER_IF, "arp");
    let mut vipd = Proc::spawn_in(&lab.node.name, &tool("setpriv"), &args, true);
    wait_vip(|| lab.has_vip(), &vipd, "start as uid 65534");
    let pid = vipd.pid();
    let field = |f: &str| proc_status(pid, f).unwrap_or_else(|| panic!("no {f} for {pid}"));
    assert!(field("Uid").starts_with("65534"), "Uid {}", field("Uid"));
    for f in ["CapEff", "CapPrm"] {
        assert_eq!(field(f), "0000000000003000", "{f}\n{}", vipd.log());
    }
    assert_eq!(field("CapAmb"), "0000000000000000", "{}", vipd.log());
    assert_eq!(field("NoNewPrivs"), "1", "{}", vipd.log());
    assert!(
        logged(&vipd, "cannot drop capabilities").is_empty(),
        "{}",
        vipd.log()
    );
    assert!(!cap.wait_arps(1, ms(2000)).is_empty(), "no announcement");
    lab.etcd.put(KEY, "node2");
    assert!(
        wait_until(ms(300) + SLACK, POLL, || !lab.has_vip()).is_some(),
        "cannot remove as uid 65534\n{}",
        vipd.log()
    );
    lab.etcd.put(KEY, NODE_NAME);
    assert!(
        wait_until(ms(300) + SLACK, POLL, || lab.has_vip()).is_some(),
        "cannot add again as uid 65534\n{}",
        vipd.log()
    );
    eprintln!(
        "uid 65534: CapEff {} CapPrm {} CapBnd {} NoNewPrivs {}",
        field("CapEff"),
        field("CapPrm"),
        field("CapBnd"),
        field("NoNewPrivs")
    );
    assert_eq!(vipd.terminate(ms(3000)), Some(0), "{}", vipd.log());
    assert!(!lab.has_vip(), "not released at exit\n{}", vipd.log());
}

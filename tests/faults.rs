//! Fault injection: what a production cluster throws at vipd, against the real etcd (one
//! member, or three), the real kernel and misbehaving servers, in network namespaces made by
//! the lab (tests/common). Every test is gated (root, and etcd where it uses one).
//!
//! Scenarios: DCS outage shorter and longer than the grace period; a silent etcd (stopped,
//! or a path that drops every packet); lost quorum;
//! compaction, a new data dir, endpoint failover; interface faults; hostile DCS replies; a
//! flapping leader key; SIGTERM at awkward moments; least privilege. The soak (1,500 moves)
//! is in tests/faults_soak.rs, the fuzz inputs in tests/faults_fuzz_inputs.rs.

use crate::common::*;
use crate::fakes::etcd::{FakeEtcd, Mode};
use crate::fakes::etcd_proxy::EtcdProxy;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// `assert!` with what vipd logged after the message: `check!(vipd, cond, "format", args…)`.
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

/// Waits (at most `timeout`) for `cond`.
fn within(timeout: Duration, cond: impl FnMut() -> bool) -> bool {
    wait_until(timeout, POLL, cond).is_some()
}

/// The clusters' election timing: heartbeat 100 ms, election timeout 1 s.
const ELECTIONS: &str = "--heartbeat-interval 100 --election-timeout 1000";

const LEADER_IS_NODE1: &str = "leader is \"node1\"";

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
    let noticed = wait_logged(&vipd, "DCS unreachable", 1, ms(1500));
    check!(vipd, noticed, "vipd did not notice etcd stopping");
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
    let again = wait_logged(&vipd, LEADER_IS_NODE1, 2, ms(200) + SLACK + ms(1000));
    check!(vipd, again, "no re-read after etcd came back");
    thread::sleep(ms(600));
    check!(
        vipd,
        mon.events().is_empty(),
        "the VIP moved during a {outage:?} outage (grace {grace:?}):\n{}",
        mon.describe(stopped)
    );
    check!(vipd, lab.has_vip(), "VIP gone");
    let lines = logged(&vipd, "DCS unreachable").len();
    check!(vipd, lines == 1, "{lines} lines for the outage, want one");
    let released = logged(&vipd, "removed").len() + logged(&vipd, "releasing").len();
    check!(vipd, released == 0, "released during the outage");
    let lines = vipd.stderr().lines().count();
    eprintln!("outage {outage:?}: VIP kept, no address event, {lines} log lines");
    check!(vipd, vipd.is_running(), "vipd exited");
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
    // A check every turn: grace counts from etcd's last answer, here at most one interval old.
    let extra = "--interval 200 --dcs-check-interval 200 --announce-count 1 --dcs-grace 1500";
    let mut vipd = lab.vipd(extra);
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    thread::sleep(ms(400));

    let stop_called = Instant::now();
    lab.etcd.stop();
    let stop_done = Instant::now();
    let hi = stop_done + grace + interval + SLACK;
    let window = (stop_called + grace - interval, hi);
    let what = format!("etcd stopped (grace {grace:?})");
    // Released once: nothing more while etcd is down.
    let at = expect_one_release(&mon, &vipd, stop_called, window, ms(1000), &what);
    assert!(!lab.has_vip(), "VIP present during the outage");

    lab.etcd.restart();
    let back = Instant::now();
    check!(
        vipd,
        within(interval + SLACK, || lab.has_vip()),
        "VIP not back within {:?} of etcd being healthy again\n{}",
        interval + SLACK,
        mon.describe(stop_called)
    );
    thread::sleep(ms(500));
    let events = mon.events();
    check!(
        vipd,
        events.len() == 2 && events[1].added,
        "want exactly: delete at grace expiry, add after etcd is back\n{}",
        mon.describe(stop_called)
    );
    let lines = logged(&vipd, "longer than the grace period").len();
    check!(vipd, lines == 1, "{lines} lines about the grace period");
    eprintln!(
        "released {} ms after etcd stopped (grace {} ms); back {} ms after etcd was healthy",
        millis(at - stop_called),
        millis(grace),
        millis(events[1].at.saturating_duration_since(back))
    );
    check!(vipd, vipd.is_running(), "vipd exited");
}

/// Waits for the VIP's release, the first address event, which must come within `window`
/// (grace ± one interval); then `quiet` long nothing else may happen. `t0`: the DCS stopped;
/// `what` names the outage. Returns when the release came.
#[track_caller]
fn expect_one_release(
    mon: &AddrMonitor,
    vipd: &Proc,
    t0: Instant,
    (lo, hi): (Instant, Instant),
    quiet: Duration,
    what: &str,
) -> Instant {
    let deadline = hi.saturating_duration_since(Instant::now()) + ms(500);
    let released = wait_until(deadline, ms(5), || mon.events().iter().any(|e| !e.added));
    let shown = format!("{:?} after the stop\n{}", t0.elapsed(), mon.describe(t0));
    check!(vipd, released.is_some(), "{what}: VIP kept {shown}");
    let first = &mon.events()[0];
    let at = first.at;
    check!(
        vipd,
        !first.added && at >= lo && at <= hi,
        "{what}: released {} ms after the stop, want {}..={} ms\n{}",
        millis(at - t0),
        millis(lo - t0),
        millis(hi - t0),
        mon.describe(t0)
    );
    thread::sleep(quiet);
    let n = mon.events().len();
    let shown = mon.describe(t0);
    check!(vipd, n == 1, "{what}: {n} events, want one delete\n{shown}");
    at
}

/// Runs its closure when dropped: a fault is undone even when the test fails.
struct Undo<F: FnMut()>(F);

impl<F: FnMut()> Drop for Undo<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// etcd, in the peer namespace, falls silent while the watch is open and this node holds the
/// VIP: no FIN, no RST, so only vipd's own timeouts can tell. `cut` silences it and returns
/// the guard whose drop ends the fault. vipd (interval 1 s, grace 8 s) must report the DCS
/// unknown within 5 s, keep the VIP through the grace period, release it once after, and be
/// back within one interval (+ 1.5 s) of the fault's end.
fn silent_etcd_is_unknown_then_grace_then_back<G>(what: &str, cut: impl FnOnce(&SingleNode) -> G) {
    let net = NodeLab::new();
    // etcd's own gateway talks to it over its client address: in another namespace than
    // vipd's, a rule there touches nothing but vipd's traffic.
    let etcd = Etcd::start(&net.peer, &net.lab, "192.0.2.12");
    let lab = SingleNode { etcd, net };
    let (interval, grace, bound) = (ms(1000), ms(8000), ms(5000));
    // The default dcs-check-interval: how old etcd's last answer may be when it falls silent.
    let check = ms(3000);
    lab.etcd.put(KEY, NODE_NAME);
    let mut vipd = lab.vipd("--announce-count 1 --dcs-grace 8000");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    // A few turns with the watch open.
    thread::sleep(ms(2500));

    let t0 = Instant::now();
    let fault = cut(&lab);
    let unknown = wait_logged(&vipd, "DCS unreachable", 1, bound);
    let detected = t0.elapsed();
    check!(vipd, unknown, "{what}: not unknown within {bound:?}");
    check!(
        vipd,
        lab.has_vip(),
        "{what}: VIP dropped at once, grace ignored"
    );
    // Grace runs from the last answer: at most one check interval before the fault, at the
    // latest when the fault was noticed.
    let window = (t0 + grace - check, t0 + detected + grace + interval + SLACK);
    let what = format!("{what} (grace {grace:?})");
    let released = expect_one_release(&mon, &vipd, t0, window, ms(500), &what);
    for (line, n) in [("keeping", 1), ("longer than the grace period", 1)] {
        let got = logged(&vipd, line).len();
        check!(vipd, got == n, "{what}: {got} lines {line:?}, want {n}");
    }

    drop(fault);
    let ended = Instant::now();
    let back = within(interval + ms(1500), || {
        lab.has_vip() && logged(&vipd, LEADER_IS_NODE1).len() == 2
    });
    let took = ended.elapsed();
    check!(
        vipd,
        back,
        "{what}: not back {took:?} after the fault ended\n{}",
        mon.describe(t0)
    );
    eprintln!(
        "{what}: unknown after {} ms, released after {} ms, back {} ms after the fault ended",
        millis(detected),
        millis(released - t0),
        millis(took)
    );
    check!(vipd, vipd.is_running(), "vipd exited");
}

/// etcd SIGSTOPped: its kernel still holds the connections open, nothing answers.
#[test]
fn etcd_sigstopped_under_an_open_watch_is_unknown_then_grace_then_back() {
    gate!(Etcd);
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    silent_etcd_is_unknown_then_grace_then_back("etcd SIGSTOPped", |lab| {
        let pid = Pid::from_raw(lab.etcd.pid() as i32);
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP etcd");
        Undo(move || {
            let _ = kill(pid, Signal::SIGCONT);
        })
    });
}

/// Every packet to and from etcd's client port dropped on vipd's side (nftables in its
/// namespace): a black-holed path.
#[test]
fn a_path_dropping_every_packet_to_etcd_is_unknown_then_grace_then_back() {
    let nft = gate!(Etcd, "nft").remove(0);
    silent_etcd_is_unknown_then_grace_then_back("packets to etcd dropped", |lab| {
        let rules = "add table inet vipdt; \
            add chain inet vipdt out { type filter hook output priority 0; }; \
            add chain inet vipdt in { type filter hook input priority 0; }; \
            add rule inet vipdt out ip daddr 192.0.2.12 tcp dport 2379 drop; \
            add rule inet vipdt in ip saddr 192.0.2.12 tcp sport 2379 drop";
        lab.node
            .exec(&nft, &[rules])
            .expect(0, "nft: the drop rules");
        let ns = lab.node.name.clone();
        Undo(move || {
            // The namespace, deleted at the end, takes the table with it anyway.
            let nft = nft.to_string_lossy();
            let out = run(
                &tool("ip"),
                &["netns", "exec", &ns, &nft, "delete table inet vipdt"],
            );
            if !thread::panicking() {
                out.expect(0, "nft: deleting the drop rules");
            }
        })
    });
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
    // A check every turn; only the watch, cancelled by etcd, can tell that quorum is lost.
    let extra = "--interval 300 --dcs-check-interval 300 --announce-count 1 --dcs-grace 2500 -v";
    let mut vipd = lab.vipd(&cluster.endpoints(), extra);
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    thread::sleep(ms(600));

    let stop_called = Instant::now();
    cluster.members[1].stop();
    cluster.members[2].stop();
    let stop_done = Instant::now();
    check!(
        vipd,
        wait_logged(&vipd, "DCS unreachable", 1, ms(4000)),
        "no quorum not recognised within {:?} of stopping two of three members",
        stop_done.elapsed()
    );
    let recognised = Instant::now();
    let line = logged(&vipd, "DCS unreachable").remove(0);
    // The first failed read may time out (the member still believes in the old leader until
    // its election timeout); then the member answers "no leader" at once (hasleader).
    let no_leader = wait_logged(&vipd, "no leader", 1, ms(3000));
    check!(vipd, no_leader, "never answered \"no leader\"");
    let no_leader = stop_called.elapsed();
    check!(vipd, lab.has_vip(), "VIP dropped at once, grace ignored");
    // Grace counts from the last answer.
    let window = (
        stop_called + grace - interval,
        recognised + grace + interval + SLACK,
    );
    let what = format!("quorum lost (grace {grace:?}; a stale leader?)");
    let at = expect_one_release(&mon, &vipd, stop_called, window, ms(800), &what);
    eprintln!(
        "quorum lost: unknown after {} ms ({line}); \"no leader\" by {} ms; released after {} \
         ms (grace {} ms)",
        millis(recognised - stop_called),
        millis(no_leader),
        millis(at - stop_called),
        millis(grace)
    );
    check!(vipd, vipd.is_running(), "vipd exited");
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
    check!(vipd, proxy.wait_held(ms(3000)), "never asked for a watch");
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
    check!(
        vipd,
        wait_logged(&vipd, "start revision compacted", 1, ms(2000)),
        "vipd's watch was not cancelled for the compacted revision {compacted}"
    );
    // The fresh read and the new watch take a few milliseconds.
    thread::sleep(ms(300));
    let put = Instant::now();
    assert!(
        put < held + ms(3500),
        "the lab is too slow: the change would meet the periodic read"
    );
    lab.etcd.put(KEY, "node2");
    check!(
        vipd,
        wait_until(ms(1000), ms(5), || !lab.has_vip()).is_some(),
        "after a compacted watch, a change was not seen within 1 s (interval 5 s): no fresh \
         read and watch?"
    );
    let took = put.elapsed();
    eprintln!("compacted at {compacted}; the change after it seen in {took:?}");
    check!(vipd, vipd.is_running(), "vipd exited");
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
    let before = logged(&vipd, LEADER_IS_NODE1).len();

    lab.etcd.restart_empty();
    lab.etcd.put(KEY, NODE_NAME);
    let new = lab.etcd.revision();
    assert!(new < old, "new store at revision {new}, old at {old}");
    let reread = wait_logged(&vipd, LEADER_IS_NODE1, before + 1, ms(5000) + SLACK);
    check!(vipd, reread, "vipd did not read the new store");
    check!(vipd, lab.has_vip(), "VIP missing after the re-read");
    // Let the watch on the new store start.
    thread::sleep(ms(300));
    let put = Instant::now();
    lab.etcd.put(KEY, "node2");
    check!(
        vipd,
        wait_until(ms(1000), ms(5), || !lab.has_vip()).is_some(),
        "a change in the new store (revision {}) not seen within 1 s: watching from the old \
         revision {old}?",
        new + 1
    );
    let took = put.elapsed();
    eprintln!("old revision {old}, new {new}: change seen in {took:?}");
    check!(vipd, vipd.is_running(), "vipd exited");
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
    let extra = "--interval 3000 --announce-count 1 --dcs-grace 20000";
    let mut vipd = lab.vipd(&cluster.endpoints(), extra);
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    let mut t0 = Instant::now();
    thread::sleep(ms(300));

    for (down, up) in [(0usize, None), (1, Some(0usize))] {
        if let Some(up) = up {
            cluster.members[up].restart();
        }
        cluster.members[down].stop();
        let m = down + 1;
        // The open watch breaks; vipd re-reads from the next member. No address change.
        thread::sleep(ms(1000));
        check!(
            vipd,
            mon.events_since(t0).is_empty() && lab.has_vip(),
            "member m{m} stopped: the VIP moved\n{}",
            mon.describe(t0)
        );
        for (leader, present) in [("node2", false), (NODE_NAME, true)] {
            let put = Instant::now();
            cluster.live().put(KEY, leader);
            check!(
                vipd,
                wait_until(ms(1000), ms(5), || lab.has_vip() == present).is_some(),
                "m{m} down: leader {leader} not acted on within 1 s (interval 3 s): no watch \
                 on the member that answered?"
            );
            let took = put.elapsed();
            eprintln!("m{m} down: leader {leader} acted on after {took:?}");
        }
        thread::sleep(ms(300));
        // Exactly the two changes the test made.
        let events = mon.events_since(t0);
        let shown = mon.describe(t0);
        let [del, add] = &events[..] else {
            panic!("{} events, want two\n{shown}{}", events.len(), vipd.log())
        };
        check!(vipd, !del.added && add.added, "{shown}");
        // The next round counts from here.
        t0 = Instant::now();
    }
    check!(vipd, vipd.is_running(), "vipd exited");
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
    lab.node
        .sysctl(&[&format!("net.ipv4.conf.{NODE_IF}.promote_secondaries=0")]);
    lab.etcd.put(KEY, NODE_NAME);
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut vipd = lab.vipd("--interval 300 --announce-count 1");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    cap.wait_arps(1, ms(2000));
    let shown = lab.node.ip(&["-4", "-o", "addr", "show", "dev", NODE_IF]);
    let secondary = |l: &str| l.contains(&format!("{VIP}/24")) && l.contains("secondary");
    assert!(
        shown.lines().any(secondary),
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
    check!(
        vipd,
        back.is_some(),
        "VIP not back within {:?} of the primary's delete\n{}",
        interval + SLACK,
        mon.describe(t0)
    );
    let arps = cap.wait_arps(before + 1, interval + SLACK);
    check!(
        vipd,
        arps.len() > before && arps[before].1.is_garp_request(vip(), mac),
        "VIP re-added but not announced:\n{}",
        describe_arps(&arps)
    );
    eprintln!(
        "primary deleted: VIP back after {:?}, announced {} ms after the delete",
        back.unwrap_or_default() + gone.unwrap_or_default(),
        millis_between(SystemTime::now() - t0.elapsed(), arps[before].0)
    );
    // The primary comes back: nothing else changes.
    lab.add_addr("192.0.2.11/24");
    thread::sleep(ms(700));
    check!(vipd, lab.has_vip(), "VIP gone after the primary came back");
    let n = mon.events().len();
    assert_eq!(n, 2, "want: kernel delete, vipd add\n{}", mon.describe(t0));
    check!(vipd, vipd.is_running(), "vipd exited");
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
    let said = wait_logged(&vipd, &waiting, 1, ms(3000));
    check!(vipd, said, "no clear line about the missing interface");
    thread::sleep(interval * 5);
    check!(vipd, vipd.is_running(), "vipd exited");
    let n = logged(&vipd, "not found").len();
    check!(vipd, n == 1, "logged {n} times: want once, not every turn");

    let link = format!(
        "link add {iface} type veth peer name late1 netns {}",
        lab.peer.name
    );
    let link: Vec<&str> = link.split_whitespace().collect();
    for round in 1..=2 {
        lab.node.ip(&link);
        lab.node.ip(&["link", "set", iface, "up"]);
        lab.peer.ip(&["link", "set", "late1", "up"]);
        let created = Instant::now();
        check!(
            vipd,
            within(interval + SLACK, || lab.node.has_vip(iface)),
            "round {round}: VIP not on {iface} within {:?} of its creation",
            interval + SLACK
        );
        let found = format!("interface \"{iface}\" found");
        let said = wait_logged(&vipd, &found, round, ms(500));
        check!(vipd, said, "round {round}: no line {found:?}");
        let took = created.elapsed();
        eprintln!("round {round}: VIP on {iface} {took:?} after it appeared");
        // Deleted again: waited for again, said once more.
        lab.node.ip(&["link", "del", iface]);
        let said = wait_logged(&vipd, "not found", round + 1, ms(2000));
        check!(vipd, said, "round {round}: deleted interface not reported");
        thread::sleep(interval * 3);
        let n = logged(&vipd, "not found").len();
        check!(vipd, n == round + 1, "round {round}: {n} \"not found\"");
        check!(vipd, vipd.is_running(), "vipd exited");
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile or broken DCS replies.

/// VmHWM of `pid`, in KiB.
fn hwm_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM").expect("VmHWM of vipd")
}

/// A misbehaving server as the only endpoint, switched from good answers to one fault
/// at a time (range reads without a watch, then the watch stream): each fault is unknown with one log line (the VIP is kept: grace), the loop keeps its
/// interval (the server sees one read per interval, no stall, no spin), and vipd's memory stays
/// bounded after 1 GiB bodies (VmHWM under 4 MiB in the release build, which `make soak` passes
/// as `VIPD_RELEASE_BIN`; the test build's text alone is larger: then only the growth is
/// bounded).
#[test]
fn hostile_dcs_replies_are_unknown_with_one_line_bounded_memory_and_steady_interval() {
    gate!(Root);
    let lab = NodeLab::new();
    let server = FakeEtcd::start(&lab.node.name, "127.0.0.2", NODE_NAME);
    let interval = ms(300);
    let (bin, release) = soak_bin();
    // First without a watch: a range read every turn, so that a fault in its reply
    // shows at the next turn (a healthy watch reads only every tenth check).
    let start = |extra: &str| {
        let args = vipd_args(NODE_IF, NODE_NAME, &server.endpoint, extra);
        let vipd = Proc::spawn_in(&lab.node.name, &bin, &args, true);
        wait_vip(|| lab.has_vip(), &vipd, "start");
        thread::sleep(interval * 2);
        let hwm_start = hwm_kib(vipd.pid());
        (vipd, hwm_start)
    };
    let (mut vipd, hwm_start) =
        start("--interval 300 --no-watch --announce-count 1 --dcs-grace 60000");
    let pid = vipd.pid();
    let bounded = |hwm: u64, hwm_start: u64, when: &str| {
        let grew = format!("vipd's VmHWM grew from {hwm_start} kB to {hwm} kB");
        assert!(hwm < hwm_start + 512, "{when}: {grew}");
    };
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
        let good = logged(&vipd, LEADER_IS_NODE1).len();
        let lines = vipd.stderr().lines().count();
        if lines > 0 && !logged(&vipd, "DCS unreachable").is_empty() {
            let back = wait_logged(&vipd, LEADER_IS_NODE1, good + 1, interval * 2 + SLACK);
            check!(vipd, back, "{mode:?}: not back to good");
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
        bounded(hwm_kib(pid), hwm_start, &format!("{mode:?}"));
        let stderr = vipd.stderr();
        let new: Vec<&str> = stderr.lines().skip(before).collect();
        let unknown: Vec<&str> = new
            .iter()
            .copied()
            .filter(|l| l.contains("DCS unreachable"))
            .collect();
        check!(
            vipd,
            unknown.len() == 1,
            "{mode:?}: want one \"DCS unreachable\" line, got:\n{}",
            new.join("\n")
        );
        assert_eq!(logged(&vipd, "DCS unreachable").len(), unknown_before + 1);
        let line = unknown[0];
        assert!(line.contains(says), "{mode:?}: want {says:?} in {line}");
        assert!(
            new.len() <= 2,
            "{mode:?}: more than the unknown and the grace line in {window:?}:\n{}",
            new.join("\n")
        );
        check!(vipd, lab.has_vip(), "{mode:?}: VIP dropped within grace");
        // The cadence: reads that started in the window, the first one after t0.
        let reads = server.ranges_since(t0).into_iter().map(|(at, _)| at);
        let reads: Vec<Instant> = reads.filter(|&at| at < t1).collect();
        let first = reads.first().map(|&r| r - t0);
        let gaps = reads.windows(2).map(|w| w[1] - w[0]).chain(first);
        let max_gap = gaps.max().unwrap_or(window);
        let expected = window.as_millis() / interval.as_millis();
        let n = reads.len() as u128;
        assert!(
            n + 2 >= expected && n <= expected * 2 + 2,
            "{mode:?}: {n} reads in {window:?} at interval {interval:?}: a stall or a spin"
        );
        assert!(
            max_gap <= interval + ms(250),
            "{mode:?}: {max_gap:?} between reads (interval {interval:?}): the loop stalled"
        );
        report.push(format!(
            "{mode:?}: {n} reads in {} ms, largest gap {} ms; {}",
            window.as_millis(),
            max_gap.as_millis(),
            line.split("DCS unreachable").nth(1).unwrap_or("")
        ));
    }
    // A 1 GiB line in the watch stream, now with the watch: ranges are good, so this is
    // not even unknown; the watch gives up at its line bound and the reads keep their
    // interval.
    server.set_mode(Mode::Good);
    let good = wait_logged(&vipd, LEADER_IS_NODE1, 2, interval * 3 + SLACK);
    check!(vipd, good, "not back to good before the watch fault");
    let hwm_reads = hwm_kib(pid);
    bounded(hwm_reads, hwm_start, "after the 1 GiB bodies");
    let status = vipd.terminate(SLACK);
    check!(
        vipd,
        status == Some(0),
        "vipd without a watch: exit {status:?}"
    );
    let (mut vipd, hwm_start) = start("--interval 300 --announce-count 1 --dcs-grace 60000");
    let pid = vipd.pid();
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
    let unknown = logged(&vipd, "DCS unreachable").len();
    let what = "good ranges with a broken watch are not unknown";
    check!(vipd, unknown == unknown_before, "{what}: {unknown} lines");
    server.set_mode(Mode::Good);
    thread::sleep(interval * 2);

    let hwm = hwm_kib(pid);
    let rss = proc_status_kib(pid, "VmRSS").expect("VmRSS of vipd");
    let anon = proc_status_kib(pid, "RssAnon").expect("RssAnon of vipd");
    let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
    eprintln!(
        "{}\nhuge bodies: {:.1} MiB written before vipd hung up (of 1 GiB each; the \
         {watches} watch streams got a 1 GiB line, {:.1} MiB); {} binary: VmHWM {hwm_start} kB \
         before the faults, {hwm} kB after; VmRSS {rss} kB, RssAnon {anon} kB",
        report.join("\n"),
        mib(server.huge_sent()),
        mib(server.huge_sent() - sent_before),
        if release { "release" } else { "debug" }
    );
    bounded(hwm, hwm_start, "after the 1 GiB watch lines");
    assert!(anon < 1024, "RssAnon {anon} kB after 1 GiB bodies");
    if release {
        assert!(
            hwm.max(hwm_reads) < 4096,
            "VmHWM {hwm_reads} and {hwm} kB after 1 GiB bodies and lines, want < 4 MiB"
        );
    }
    check!(vipd, lab.has_vip(), "VIP dropped");
    check!(vipd, vipd.is_running(), "vipd exited");
}

// ---------------------------------------------------------------------------------------------
// A flapping leader key.

/// Counts per sliding window: the largest number of `times` within any `window` (half-open,
/// starting at each one).
fn max_in_window(times: &[SystemTime], window: Duration) -> usize {
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
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut vipd = lab.vipd("--interval 500 --announce-count 3 --announce-interval 200");
    thread::sleep(ms(500));
    for (round, last) in [(1, NODE_NAME), (2, "node2"), (3, NODE_NAME)] {
        let endpoint = lab.etcd.endpoint.clone();
        let (writes, took) = in_netns(&lab.node.name, move || {
            let etcd = EtcdHttp::new(&endpoint);
            let start = Instant::now();
            let mut n = 0u32;
            // 2.5 s of alternating writes (bounded: 20,000 at most), then the last value.
            while start.elapsed() < ms(2500) && n < 20_000 {
                etcd.put(KEY, [NODE_NAME, "node2"][n as usize % 2])?;
                n += 1;
            }
            etcd.put(KEY, last)?;
            Ok::<_, String>((n + 1, start.elapsed()))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let rate = f64::from(writes) / took.as_secs_f64();
        assert!(
            rate >= 100.0,
            "the lab is too slow: {writes} writes in {took:?} ({rate:.0}/s), want hundreds a second"
        );
        let want = last == NODE_NAME;
        check!(
            vipd,
            within(interval + SLACK, || lab.has_vip() == want),
            "round {round}: last value {last}, VIP present = {}",
            lab.has_vip()
        );
        // And stays so.
        thread::sleep(interval * 2);
        check!(vipd, lab.has_vip() == want, "round {round}: changed");
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
    check!(vipd, !arps.is_empty(), "no announcement while flapping");
    let n = arps.len();
    eprintln!("{n} announcements in all, at most {most} in any second");
    check!(vipd, vipd.is_running(), "vipd exited");
}

// ---------------------------------------------------------------------------------------------
// Signals (SIGHUP reload: tests/reload.rs).

/// Waits at most `timeout` for vipd to exit, which must be with status 0 and the VIP
/// released (`what` names the case); returns the time since `sent`.
#[track_caller]
fn expect_clean_exit(
    lab: &NodeLab,
    vipd: &mut Proc,
    sent: Instant,
    timeout: Duration,
    what: &str,
) -> Duration {
    let status = vipd.wait_timeout(timeout);
    let took = sent.elapsed();
    let code = status.and_then(|s| s.code());
    check!(vipd, code == Some(0), "{what}: {status:?} after {took:?}");
    check!(vipd, !lab.has_vip(), "{what}: VIP left behind");
    took
}

/// SIGTERM in the middle of an announcement burst: the VIP is released, vipd exits 0 at
/// once, and no announcement follows.
#[test]
fn sigterm_during_an_announcement_burst_releases_and_exits_0() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut vipd = lab.vipd("--interval 500 --announce-count 6 --announce-interval 400");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let arps = cap.wait_arps(2, ms(2000));
    assert!(arps.len() >= 2, "{}", describe_arps(&arps));
    let sent = Instant::now();
    vipd.signal("TERM");
    let took = expect_clean_exit(&lab, &mut vipd, sent, ms(1000), "SIGTERM in a burst");
    let at_exit = cap.arps().len();
    thread::sleep(ms(1000));
    let arps = cap.arps();
    let shown = describe_arps(&arps);
    assert_eq!(arps.len(), at_exit, "announcements after exit:\n{shown}");
    assert!(arps.len() < 6, "the burst ended before the exit:\n{shown}");
    let n = arps.len();
    eprintln!("SIGTERM after {n} of 6 announcements: exit 0 after {took:?}");
}

/// SIGTERM while a read of the DCS hangs (the server accepted and never answers): the
/// VIP is released and vipd exits 0, at the latest when the read gives up at the turn's deadline
/// (one interval: a read with a timeout is not interrupted by the signal; the watch is).
#[test]
fn sigterm_during_a_dcs_timeout_releases_and_exits_0() {
    gate!(Root);
    let lab = NodeLab::new();
    let server = FakeEtcd::start(&lab.node.name, "127.0.0.2", NODE_NAME);
    let extra = "--interval 2000 --announce-count 1 --dcs-grace 60000 --no-watch";
    let mut vipd = lab.vipd(&server.endpoint, extra);
    wait_vip(|| lab.has_vip(), &vipd, "start");
    server.set_mode(Mode::Silent);
    let switched = Instant::now();
    let silent = |r: &(Instant, Mode)| r.1 == Mode::Silent;
    let hanging = within(ms(5000), || {
        server.ranges_since(switched).iter().any(silent)
    });
    assert!(hanging, "vipd never read from the silent server");
    thread::sleep(ms(500));
    let sent = Instant::now();
    vipd.signal("TERM");
    let took = expect_clean_exit(&lab, &mut vipd, sent, ms(5000), "SIGTERM in a hanging read");
    check!(
        vipd,
        took < ms(2000) + SLACK,
        "exit took {took:?} after SIGTERM, more than one interval (2 s)"
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
        let what = format!("second SIGTERM {gap_us} µs after the first ({second:?})");
        expect_clean_exit(&lab, &mut vipd, first, ms(3000), &what);
        let n = logged(&vipd, "SIGTERM").len();
        check!(vipd, n == 1, "gap {gap_us} µs: {n} releases, want one");
    }
}

// ---------------------------------------------------------------------------------------------
// Least privilege.

/// A field of vipd's `/proc/PID/status`, which must be there.
fn status_field(vipd: &Proc, field: &str) -> String {
    let pid = vipd.pid();
    proc_status(pid, field).unwrap_or_else(|| panic!("no {field} for {pid}"))
}

/// Panics unless vipd's `/proc/PID/status` has the fields of `want` (`Field value` lines);
/// 3000 in a capability set is CAP_NET_ADMIN|CAP_NET_RAW.
#[track_caller]
fn expect_status(vipd: &Proc, want: &str) {
    for (f, want) in want.lines().filter_map(|l| l.trim().split_once(' ')) {
        let got = status_field(vipd, f);
        check!(vipd, got == want, "{f} is {got}, want {want}");
    }
}

/// After dropping privileges vipd still does its job (`who` says as whom): it removes the
/// VIP and adds it again.
fn removes_and_adds(lab: &SingleNode, vipd: &Proc, who: &str) {
    for (leader, present, act) in [("node2", false, "remove"), (NODE_NAME, true, "add")] {
        lab.etcd.put(KEY, leader);
        let done = within(ms(300) + SLACK, || lab.has_vip() == present);
        check!(vipd, done, "cannot {act} {who}");
    }
}

/// Shows vipd's capability sets, then stops it: exit 0, the VIP released.
fn show_caps_and_stop(lab: &SingleNode, vipd: &mut Proc, who: &str) {
    let sets = ["CapEff", "CapPrm", "CapBnd", "NoNewPrivs"];
    let sets = sets.map(|f| format!("{f} {}", status_field(vipd, f)));
    eprintln!("{who}: {}", sets.join(" "));
    assert_eq!(vipd.terminate(ms(3000)), Some(0), "{}", vipd.log());
    check!(vipd, !lab.has_vip(), "not released at exit");
}

/// After start-up vipd keeps only CAP_NET_ADMIN and CAP_NET_RAW (effective, permitted and
/// bounding sets) and has no_new_privs set; it still adds, removes and announces.
#[test]
fn capabilities_after_start_are_net_admin_and_net_raw_only() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut vipd = lab.vipd("--interval 300 --announce-count 1");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    expect_status(
        &vipd,
        "CapEff 0000000000003000
         CapPrm 0000000000003000
         CapBnd 0000000000003000
         CapInh 0000000000000000
         CapAmb 0000000000000000
         NoNewPrivs 1",
    );
    // Still able to do its job: announce, remove, add again.
    assert!(!cap.wait_arps(1, ms(2000)).is_empty(), "no announcement");
    let who = "after dropping capabilities";
    removes_and_adds(&lab, &vipd, who);
    let announced = cap.wait_arps(2, ms(2000)).len() >= 2;
    check!(vipd, announced, "cannot announce {who}");
    show_caps_and_stop(&lab, &mut vipd, "vipd");
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
    for p in [&dir.path, &bin] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut args = args(&format!(
        "--reuid=65534 --regid=65534 --clear-groups --inh-caps=+net_admin,+net_raw \
         --ambient-caps=+net_admin,+net_raw {}",
        bin.display()
    ));
    let extra = "--interval 300 --announce-count 1 -v";
    args.extend(vipd_args(NODE_IF, NODE_NAME, &lab.etcd.endpoint, extra));
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut vipd = Proc::spawn_in(&lab.node.name, &tool("setpriv"), &args, true);
    wait_vip(|| lab.has_vip(), &vipd, "start as uid 65534");
    let uid = status_field(&vipd, "Uid");
    assert!(uid.starts_with("65534"), "Uid {uid}");
    expect_status(
        &vipd,
        "CapEff 0000000000003000
         CapPrm 0000000000003000
         CapAmb 0000000000000000
         NoNewPrivs 1",
    );
    let failed = logged(&vipd, "cannot drop capabilities");
    check!(vipd, failed.is_empty(), "{failed:?}");
    assert!(!cap.wait_arps(1, ms(2000)).is_empty(), "no announcement");
    removes_and_adds(&lab, &vipd, "as uid 65534");
    show_caps_and_stop(&lab, &mut vipd, "uid 65534");
}

//! Fencing with this node's Patroni, in a network namespace with the real etcd and a
//! faithful fake of Patroni's REST API (tests/fakes: the `GET /patroni` bodies captured
//! from a real Patroni 3.0.2 cluster, tests/fixtures/patroni/): who decides while etcd
//! is silent, and the VIP waiting for a writable primary when the key newly names this
//! node.

use std::thread;
use std::time::Instant;

use crate::common::*;
use crate::fakes::{FakePatroni, patroni_fixture, patroni_standby_leader};

/// The fake Patroni on the node's 127.0.0.1:8008, answering the captured body `name`.
fn patroni(lab: &SingleNode, name: &str) -> FakePatroni {
    let p = in_netns(&lab.node.name, || FakePatroni::start(8008, 200));
    p.set_body(patroni_fixture(name));
    p
}

/// The running primary, and a new leader still in recovery (role replica), as
/// Patroni 3.0.2 answered during a real switchover.
const PRIMARY: &str = "primary-running";
const IN_RECOVERY: &str = "new-leader-still-in-recovery";

fn lines(p: &Proc, pat: &str) -> usize {
    p.stderr().lines().filter(|l| l.contains(pat)).count()
}

const PATRONI: &str = "--patroni-url http://127.0.0.1:8008";

/// etcd stopped while this node holds the VIP (grace 1 s): a running primary keeps it
/// far past the grace; when Patroni says replica it goes within one interval; without
/// an answer from Patroni the grace applies again.
#[test]
fn while_etcd_is_silent_patroni_keeps_or_releases_and_silence_leaves_it_to_grace() {
    gate!(Etcd);
    let mut lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let fake = patroni(&lab, PRIMARY);
    let (interval, grace) = (ms(200), ms(1000));
    let extra = format!("--interval 200 --dcs-grace 1000 --announce-count 1 {PATRONI} -v");
    let mut vipd = lab.vipd(&extra);
    wait_vip(|| lab.has_vip(), &vipd, "start");

    lab.etcd.stop();
    let stopped = Instant::now();
    thread::sleep(grace * 3);
    check!(
        vipd,
        lab.has_vip(),
        "VIP dropped although Patroni says primary"
    );
    check!(
        vipd,
        lines(&vipd, "DCS unreachable") == 1,
        "one line for the outage"
    );

    fake.set_body(patroni_fixture(IN_RECOVERY));
    let told = Instant::now();
    within(
        interval + SLACK,
        "released after Patroni said replica",
        &|| vipd.log(),
        || !lab.has_vip(),
    );
    eprintln!(
        "kept {} ms past a {} ms grace while Patroni said primary; released {} ms after it \
         said replica",
        (told - stopped).as_millis(),
        grace.as_millis(),
        told.elapsed().as_millis()
    );

    // etcd back, Patroni primary again: the VIP returns. Then Patroni gone too: the
    // grace decides, counted from etcd's last answer.
    fake.set_body(patroni_fixture(PRIMARY));
    lab.etcd.restart();
    within(ms(5000), "VIP back with etcd", &|| vipd.log(), || {
        lab.has_vip()
    });
    // etcd's last answer came at the earliest now (the read that brought the VIP back)
    // and at the latest when it stopped (stopping takes a while, with the fake's end).
    let back = Instant::now();
    drop(fake);
    lab.etcd.stop();
    within(
        grace + interval * 2 + SLACK,
        "released after the grace",
        &|| vipd.log(),
        || !lab.has_vip(),
    );
    let took = back.elapsed();
    check!(
        vipd,
        took + interval >= grace,
        "released {took:?} after etcd's last answer at the earliest, before the grace"
    );
    check!(vipd, vipd.is_running(), "vipd exited");
}

/// The key moves to this node while Patroni still says replica (as a new leader does
/// before its promotion), then master after 800 ms: the VIP never appears before the
/// first master answer, and soon after it; the log says how long the wait was.
#[test]
fn a_new_leader_gets_the_vip_only_once_patroni_says_primary() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, "node2");
    let fake = patroni(&lab, IN_RECOVERY);
    let mut vipd = lab.vipd(&format!("--interval 1000 --announce-count 1 {PATRONI}"));
    thread::sleep(ms(500));

    lab.etcd.put(KEY, NODE_NAME);
    let moved = Instant::now();
    // Polled every 20 ms for 800 ms: never there while Patroni says replica.
    while moved.elapsed() < ms(800) {
        check!(vipd, !lab.has_vip(), "VIP added while Patroni says replica");
        thread::sleep(POLL);
    }
    fake.set_body(patroni_fixture(PRIMARY));
    let primary = Instant::now();
    within(
        ms(1000),
        "VIP added after Patroni said master",
        &|| vipd.log(),
        || lab.has_vip(),
    );
    let took = primary.elapsed();
    let said = lines(&vipd, "Patroni says this node is a running primary after");
    check!(vipd, said == 1, "no line saying how long the wait was");
    eprintln!("VIP {} ms after Patroni said master", took.as_millis());

    // Patroni says replica again: the VIP stays while the key names this node (the
    // gate is for a new leadership only), and a hand deletion is repaired at once.
    fake.set_body(patroni_fixture(IN_RECOVERY));
    lab.del_addr("192.0.2.50/24");
    within(
        ms(1000) + SLACK,
        "re-added without waiting",
        &|| vipd.log(),
        || lab.has_vip(),
    );
    check!(vipd, vipd.is_running(), "vipd exited");
}

/// The key names this node and moves away before Patroni says primary: nothing is
/// added. A standby cluster's leader is ready. Patroni refusing connections adds the
/// VIP with a warning: a REST API outage must not become a database outage.
#[test]
fn the_wait_ends_with_the_key_standby_leaders_are_ready_and_no_answer_adds() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, "node2");
    let fake = patroni(&lab, IN_RECOVERY);
    let mut vipd = lab.vipd(&format!("--interval 200 --announce-count 1 {PATRONI}"));
    thread::sleep(ms(400));
    lab.etcd.put(KEY, NODE_NAME);
    thread::sleep(ms(300));
    lab.etcd.put(KEY, "node2");
    let moved = Instant::now();
    fake.set_body(patroni_fixture(PRIMARY));
    while moved.elapsed() < ms(1000) {
        check!(vipd, !lab.has_vip(), "VIP added after the key moved away");
        thread::sleep(POLL);
    }

    fake.set_body(patroni_standby_leader());
    lab.etcd.put(KEY, NODE_NAME);
    within(ms(1000), "VIP for a standby leader", &|| vipd.log(), || {
        lab.has_vip()
    });

    lab.etcd.put(KEY, "node2");
    within(ms(1000), "VIP released", &|| vipd.log(), || !lab.has_vip());
    drop(fake);
    lab.etcd.put(KEY, NODE_NAME);
    within(
        ms(1500),
        "VIP added without Patroni",
        &|| vipd.log(),
        || lab.has_vip(),
    );
    let warned = lines(&vipd, "gives no answer: adding the VIP without waiting");
    check!(
        vipd,
        warned == 1,
        "{warned} warnings about Patroni's silence"
    );
    check!(vipd, vipd.is_running(), "vipd exited");
}

/// etcd falls silent and Patroni gives no answer, with a grace of a minute: the VIP is
/// released when the leader key's lease may have run out (here a lease of 4 s that
/// nobody renews), not a minute later; for a v3 key (lease/timetolive) and a v2 key
/// (its ttl).
#[test]
fn a_grace_is_cut_by_the_leader_keys_lease_v3_and_v2() {
    gate!(Etcd);
    for api in ["etcd3", "etcd2"] {
        let net = NodeLab::new();
        let mut etcd = Etcd::start_with(
            &net.node,
            &net.lab,
            "http://127.0.0.1:2379",
            "--enable-v2",
            &[],
        );
        let put = Instant::now();
        if api == "etcd3" {
            let granted = etcd.etcdctl_ok(&["lease", "grant", "4"]);
            let id = granted.split_whitespace().nth(1).expect("a lease id");
            etcd.etcdctl_ok(&["put", KEY, NODE_NAME, &format!("--lease={id}")]);
        } else {
            etcd.v2(&["set", "--ttl", "4", KEY, NODE_NAME]);
        }
        // No Patroni listens at this URL: it gives no answer.
        let extra = format!(
            "--dcs-type {api} --interval 200 --dcs-grace 60000 --announce-count 1 {PATRONI} \
             --primary-check=false"
        );
        let mut vipd = net.vipd(&etcd.endpoint, &extra);
        wait_vip(|| net.has_vip(), &vipd, api);
        thread::sleep(ms(400));
        etcd.stop();
        // The lease ends at most 4 s after the put (3 s as far as vipd can tell: etcd
        // rounds the seconds left up).
        within(
            ms(4000) + SLACK,
            "released at the lease's end",
            &|| vipd.log(),
            || !net.has_vip(),
        );
        let took = put.elapsed();
        let cut = lines(&vipd, "its last known expiry passed");
        check!(vipd, cut == 1, "{api}: {cut} lines about the lease");
        check!(
            vipd,
            took >= ms(2000),
            "{api}: released {took:?} after the put"
        );
        eprintln!(
            "{api}: a 4 s lease cut a 60 s grace: released {} ms after the put",
            took.as_millis()
        );
        check!(vipd, vipd.is_running(), "vipd exited");
    }
}

/// vipd SIGSTOPped for longer than its loop can take and than the VIP's lifetime, the
/// key moved away and back in the meantime: the kernel removes the VIP during the
/// pause; after SIGCONT vipd says so once, reads etcd afresh (a range read, counted by
/// etcd) before acting, and adds the VIP again, since it still leads.
#[test]
fn after_a_pause_vipd_reads_afresh_before_acting() {
    gate!(Etcd);
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let mut vipd = lab.vipd("--interval 200 --announce-count 1 --vip-lifetime 1000");
    wait_vip(|| lab.has_vip(), &vipd, "start");
    thread::sleep(ms(600));
    let pid = Pid::from_raw(vipd.pid() as i32);
    let reads = || {
        lab.etcd
            .metric("grpc_server_started_total", &["grpc_method=\"Range\""])
    };
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP vipd");
    lab.etcd.put(KEY, "node2");
    lab.etcd.put(KEY, NODE_NAME);
    thread::sleep(ms(3500));
    check!(
        vipd,
        !lab.has_vip(),
        "the kernel kept a VIP nobody refreshed"
    );
    let before = reads();
    kill(pid, Signal::SIGCONT).expect("SIGCONT vipd");
    let fresh = || reads() > before;
    within(
        ms(1500),
        "a fresh read after the pause",
        &|| vipd.log(),
        fresh,
    );
    let back = || lab.has_vip();
    within(
        ms(1000),
        "the VIP back after the pause",
        &|| vipd.log(),
        back,
    );
    let paused = lines(&vipd, "did not run for");
    check!(vipd, paused == 1, "{paused} lines about the pause");
    check!(vipd, vipd.is_running(), "vipd exited");
}

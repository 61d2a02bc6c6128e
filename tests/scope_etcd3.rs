//! A replica VIP through etcd's v3 API against Debian's real etcd (3.4), started by each
//! test on the loopback of a network namespace the test makes: the whole scope is read
//! as a prefix range and followed by a watch of that range. Patroni's records are
//! written as Patroni 3.0 writes them (members/<name>, leader, status), through etcd's
//! JSON gateway and etcdctl.
//!
//! Every test needs root and etcd (the lab's gate: it fails without them, unless
//! VIPD_ALLOW_SKIP=1).

use std::time::{Duration, Instant};

use crate::common::scope::{MAX_LAG, POS, member, replica_rules, replicas_by_weight};
use crate::common::*;
use vipd::dcs::etcd::{Etcd as Client, Settings};
use vipd::dcs::http::{MAX_SCOPE_REPLY, Tls};
use vipd::dcs::scope::{Fallback, Scope};
use vipd::dcs::{Dcs, Observation, Wait};

const LEADER_KEY: &str = "/service/lab/leader";
const VIP: &str = "192.0.2.100";

/// A client of the scope of /service/lab/ for node2, with a watch or without.
fn client(endpoint: &str, watch: bool) -> Client {
    Client::new(&Settings {
        endpoints: vec![endpoint.into()],
        key: LEADER_KEY.into(),
        credentials: None,
        interval: Duration::from_millis(500),
        watch,
        check_interval: Duration::from_secs(5),
        tls: Tls::default(),
        scope: Some(Scope::new(
            replica_rules(VIP, Fallback::Primary),
            LEADER_KEY,
            "node2",
        )),
    })
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(3)
}

fn key(rel: &str) -> String {
    format!("/service/lab/{rel}")
}

fn leader(name: &str) -> Observation {
    Observation::Leader(name.into())
}

/// A lab with etcd on the node's 127.0.0.1:2379 and the scope of a healthy cluster:
/// node1 leads, node2 and node3 replicate with no lag; node2's record is held by a
/// lease of 30 s (Patroni's TTL), as Patroni keeps it.
fn scope_lab() -> (NodeLab, Etcd) {
    let lab = NodeLab::new();
    let extra = FAST_ELECTIONS.to_string();
    let etcd = Etcd::start_with(&lab.node, &lab.lab, "http://127.0.0.1:2379", &extra, &[]);
    let granted = etcd.etcdctl_ok(&["lease", "grant", "30"]);
    // "lease 694d7f5d1c3a2b04 granted with TTL(30s)"
    let lease = granted
        .split_whitespace()
        .nth(1)
        .expect("a lease id")
        .to_string();
    etcd.etcdctl_ok(&[
        "put",
        &key("members/node2"),
        &member(2, "replica", POS),
        &format!("--lease={lease}"),
    ]);
    etcd.put(&key("members/node1"), &member(1, "master", POS));
    etcd.put(&key("members/node3"), &member(3, "replica", POS));
    etcd.put(LEADER_KEY, "node1");
    etcd.put(
        &key("status"),
        &format!(r#"{{"optime":{POS},"slots":{{}}}}"#),
    );
    (lab, etcd)
}

/// Wait on the watch until it reports a change (at most 3 s): the change, and how long
/// it took. A broken watch fails the test: nothing here should break it.
fn next_change(e: &mut Client) -> (Observation, Duration) {
    let start = Instant::now();
    for _ in 0..30 {
        match e.wait_for_change(Instant::now() + ms(200)) {
            Some(Wait::Changed(obs)) => return (obs, start.elapsed()),
            Some(Wait::Deadline) => {}
            other => panic!("the watch ended: {other:?}"),
        }
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    panic!("no change within {:?}", start.elapsed());
}

/// A write's change is reported within this time (the watch delivers it in
/// milliseconds; the rest is slack for a loaded machine).
const PROMPTLY: Duration = Duration::from_millis(1500);

#[test]
fn a_scope_read_names_the_replica_holder_and_its_lease() {
    gate!(Etcd);
    let (lab, etcd) = scope_lab();
    let (heavier, _) = replicas_by_weight(VIP);
    in_netns(&lab.node.name, || {
        for watch in [false, true] {
            let mut e = client(&etcd.endpoint, watch);
            assert_eq!(e.observe(soon()), leader(heavier), "watch {watch}");
            assert!(e.last_fact().is_some());
            // The lease followed is node2's member record's (the leader key has none):
            // etcd tells how long it lasts.
            e.ask_lease(soon());
            let bound = e.lease_bound().expect("node2's lease is known");
            let left = bound.saturating_duration_since(Instant::now());
            assert!(
                left > Duration::from_secs(20) && left <= Duration::from_secs(30),
                "{left:?}"
            );
        }
        // No record of this node: no lease to follow.
        let mut other = Client::new(&Settings {
            scope: Some(Scope::new(
                replica_rules(VIP, Fallback::Primary),
                LEADER_KEY,
                "node3",
            )),
            ..settings_of(&etcd.endpoint)
        });
        assert_eq!(other.observe(soon()), leader(heavier));
        other.ask_lease(soon());
        assert_eq!(other.lease_bound(), None);
    });
}

fn settings_of(endpoint: &str) -> Settings {
    Settings {
        endpoints: vec![endpoint.into()],
        key: LEADER_KEY.into(),
        credentials: None,
        interval: Duration::from_millis(500),
        watch: false,
        check_interval: Duration::from_secs(5),
        tls: Tls::default(),
        scope: None,
    }
}

#[test]
fn a_scope_watch_follows_lag_and_deleted_members() {
    gate!(Etcd);
    let (lab, etcd) = scope_lab();
    let (heavier, lighter) = replicas_by_weight(VIP);
    let n = |name: &str| name.as_bytes()[4] - b'0';
    in_netns(&lab.node.name, || {
        let gateway = EtcdHttp::new(&etcd.endpoint);
        let mut e = client(&etcd.endpoint, true);
        assert_eq!(e.observe(soon()), leader(heavier));
        // Nothing changes: the watch is quiet.
        assert_eq!(
            e.wait_for_change(Instant::now() + ms(300)),
            Some(Wait::Deadline)
        );

        // The holder falls behind by more than replica-max-lag: the other replica.
        let behind = POS - 2 * MAX_LAG;
        let lagging = member(n(heavier), "replica", behind);
        gateway
            .put(&key(&format!("members/{heavier}")), &lagging)
            .unwrap();
        let (obs, took) = next_change(&mut e);
        assert_eq!(obs, leader(lighter));
        assert!(took < PROMPTLY, "{took:?}");
        // A turn without events remembers the same choice.
        assert_eq!(e.observe(soon()), leader(lighter));

        // Caught up (no settle period): back to the heavier one.
        let caught_up = member(n(heavier), "replica", POS);
        gateway
            .put(&key(&format!("members/{heavier}")), &caught_up)
            .unwrap();
        assert_eq!(next_change(&mut e).0, leader(heavier));

        // The leader moves on: both replicas lag, none is eligible, and the VIP falls
        // back to the leader. The heavier one catches up and takes it back.
        let ahead = format!(r#"{{"optime":{},"slots":{{}}}}"#, POS + 2 * MAX_LAG);
        gateway.put(&key("status"), &ahead).unwrap();
        assert_eq!(next_change(&mut e).0, leader("node1"));
        let caught_up = member(n(heavier), "replica", POS + 2 * MAX_LAG);
        gateway
            .put(&key(&format!("members/{heavier}")), &caught_up)
            .unwrap();
        assert_eq!(next_change(&mut e).0, leader(heavier));
        // Its record deleted (its Patroni stopped): the leader again, the other replica
        // still lagging.
        let start = Instant::now();
        etcd.del(&key(&format!("members/{heavier}")));
        let (obs, _) = next_change(&mut e);
        assert_eq!(obs, leader("node1"), "no eligible replica: the leader");
        // etcdctl's own start-up counts in here.
        assert!(start.elapsed() < PROMPTLY + Duration::from_secs(2));

        // The lighter one catches up: it holds the VIP.
        let caught_up = member(n(lighter), "replica", POS + 2 * MAX_LAG);
        gateway
            .put(&key(&format!("members/{lighter}")), &caught_up)
            .unwrap();
        assert_eq!(next_change(&mut e).0, leader(lighter));
        // Keys the choice does not need change nothing, but are events of the scope;
        // keys outside it are not seen at all.
        gateway.put("/service/other/leader", "x").unwrap();
        gateway.put(&key("config"), r#"{"ttl":30}"#).unwrap();
        assert_eq!(next_change(&mut e).0, leader(lighter));
        assert_eq!(
            e.wait_for_change(Instant::now() + ms(300)),
            Some(Wait::Deadline)
        );
        // A fresh read agrees with what the watch built.
        let mut fresh = client(&etcd.endpoint, false);
        assert_eq!(fresh.observe(soon()), leader(lighter));
    });
}

/// `len` bytes of JSON text, as Patroni's `history` of many failovers.
fn history(len: usize) -> String {
    let entry =
        r#"[1,25165984,"no recovery target specified","2024-01-01T00:00:00+00:00","node1"],"#;
    let mut text = String::from("[");
    while text.len() + entry.len() < len {
        text.push_str(entry);
    }
    text.pop();
    text.push(']');
    text
}

#[test]
fn a_large_history_is_read_and_an_oversized_scope_is_unknown() {
    gate!(Etcd);
    let (lab, etcd) = scope_lab();
    let (heavier, _) = replicas_by_weight(VIP);
    in_netns(&lab.node.name, || {
        let gateway = EtcdHttp::new(&etcd.endpoint);
        let mut watching = client(&etcd.endpoint, true);
        assert_eq!(watching.observe(soon()), leader(heavier));

        // A 200 KB `history` (over the 64 KiB of a leader key's reply): read and
        // watched, and the choice stands.
        let big = history(200 * 1024);
        gateway.put(&key("history"), &big).unwrap();
        assert_eq!(next_change(&mut watching).0, leader(heavier));
        let mut reading = client(&etcd.endpoint, false);
        assert_eq!(reading.observe(soon()), leader(heavier));

        // More than MAX_SCOPE_REPLY under the prefix: unknown, not a crash; the watch
        // of single events carries on.
        let copies = MAX_SCOPE_REPLY / big.len() + 1;
        for i in 0..copies {
            gateway.put(&key(&format!("history{i}")), &big).unwrap();
        }
        match reading.observe(soon()) {
            Observation::Unknown(why) => assert!(why.contains("larger than"), "{why}"),
            other => panic!("{copies} copies of history: {other}"),
        }
        for _ in 0..copies {
            assert_eq!(next_change(&mut watching).0, leader(heavier));
        }
        // A watch broken now reads the scope afresh: unknown too.
        watching.forget();
        assert!(matches!(watching.observe(soon()), Observation::Unknown(_)));

        // Smaller again: known again.
        for i in 0..copies {
            etcd.del(&key(&format!("history{i}")));
        }
        assert_eq!(reading.observe(soon()), leader(heavier));
        assert_eq!(watching.observe(soon()), leader(heavier));
    });
}

#[test]
fn a_watched_scope_is_confirmed_by_one_read_that_agrees() {
    gate!(Etcd);
    let (lab, etcd) = scope_lab();
    let (heavier, _) = replicas_by_weight(VIP);
    let ranges = || etcd.metric("grpc_server_started_total", &["grpc_method=\"Range\""]);
    in_netns(&lab.node.name, || {
        // Checked every turn of 100 ms: the scope itself is read again after 1 s.
        let mut e = Client::new(&Settings {
            interval: ms(100),
            check_interval: ms(100),
            watch: true,
            scope: Some(Scope::new(
                replica_rules(VIP, Fallback::Primary),
                LEADER_KEY,
                "node2",
            )),
            ..settings_of(&etcd.endpoint)
        });
        assert_eq!(e.observe(soon()), leader(heavier));
        // The watch is open from here on.
        assert_eq!(
            e.wait_for_change(Instant::now() + ms(100)),
            Some(Wait::Deadline)
        );
        let before = ranges();
        let start = Instant::now();
        let mut turns = 0;
        while start.elapsed() < ms(1500) && turns < 100 {
            assert_eq!(e.observe(soon()), leader(heavier), "turn {turns}");
            let wait = e.wait_for_change(Instant::now() + ms(100));
            assert_eq!(wait, Some(Wait::Deadline), "turn {turns}");
            turns += 1;
        }
        // One serializable read that found what the watch had built: no fresh read
        // after it (a disagreeing one would have been followed by a second).
        assert_eq!(ranges() - before, 1.0, "range reads in {turns} turns");
    });
}

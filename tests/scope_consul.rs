//! A replica VIP with Consul: the client reads Patroni's whole scope
//! (`GET /v1/kv/service/lab/?recurse&consistent`) from the fake Consul of tests/fakes and
//! blocks on the prefix. Loopback only.

use std::time::{Duration, Instant};

use crate::common::scope::{MAX_LAG, POS, member, replica_rules, replicas_by_weight};
use crate::fakes::FakeConsul;
use vipd::dcs::consul::{Consul, Settings};
use vipd::dcs::http::Tls;
use vipd::dcs::scope::{Fallback, Scope};
use vipd::dcs::{Dcs, Observation, Wait};

const VIP: &str = "192.0.2.50";
const LEADER_KEY: &str = "/service/lab/leader";
const SESSION: &str = "adf4238a-882b-9ddc-4a9d-5b6758e4159e";

fn key(rel: &str) -> String {
    format!("service/lab/{rel}")
}

/// A scope: node1 leads, node2 and node3 replicate without lag.
fn patroni_scope(consul: &FakeConsul) {
    consul.put(
        &key("members/node1"),
        &member(1, "master", POS),
        Some(SESSION),
    );
    consul.put(
        &key("members/node2"),
        &member(2, "replica", POS),
        Some(SESSION),
    );
    consul.put(
        &key("members/node3"),
        &member(3, "replica", POS),
        Some(SESSION),
    );
    consul.put(&key("leader"), "node1", Some(SESSION));
    consul.put(&key("status"), r#"{"optime":50331808,"slots":{}}"#, None);
}

fn client(consul: &FakeConsul, me: &str) -> Consul {
    let rules = replica_rules(VIP, Fallback::None);
    Consul::new(&Settings {
        endpoints: vec![consul.url()],
        key: LEADER_KEY.into(),
        token: None,
        interval: Duration::from_millis(1000),
        watch: true,
        tls: Tls::default(),
        scope: Some(Scope::new(rules, LEADER_KEY, me)),
    })
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(2)
}

/// Waits (at most 4 bounded waits, 3 s) until a wait reports a change.
fn next_change(c: &mut Consul) -> Option<Observation> {
    let end = Instant::now() + Duration::from_secs(3);
    for _ in 0..4 {
        match c.wait_for_change(end) {
            Some(Wait::Changed(obs)) => return Some(obs),
            Some(Wait::Reread) => panic!("the blocking query broke"),
            _ if Instant::now() >= end => return None,
            _ => {}
        }
    }
    None
}

#[test]
fn observe_names_the_rendezvous_holder() {
    let consul = FakeConsul::start(0);
    let mut c = client(&consul, "node1");
    // No scope yet: 404, nobody.
    assert_eq!(c.observe(soon()), Observation::NoLeader);
    patroni_scope(&consul);
    let (holder, _) = replicas_by_weight(VIP);
    assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));
    let reqs = consul.requests();
    let last = reqs.last().unwrap();
    assert_eq!(last.path(), "/v1/kv/service/lab/");
    assert_eq!(last.query("recurse"), Some(""));
    assert_eq!(last.query("consistent"), Some(""));
    assert_eq!(last.query("index"), None);
}

#[test]
fn a_wait_sees_the_holder_fall_behind() {
    let consul = FakeConsul::start(0);
    patroni_scope(&consul);
    let (holder, other) = replicas_by_weight(VIP);
    let n = holder.as_bytes()[4] - b'0';
    let mut c = client(&consul, "node1");
    assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));
    // Written while the query blocks.
    let change = std::thread::scope(|t| {
        t.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            let record = member(n, "replica", POS - 2 * MAX_LAG);
            consul.put(&key(&format!("members/{holder}")), &record, Some(SESSION));
        });
        next_change(&mut c)
    });
    assert_eq!(change, Some(Observation::Leader(other.into())));
    // The query blocked on the prefix's index.
    let reqs = consul.requests();
    let last = reqs.last().unwrap();
    assert_eq!(last.path(), "/v1/kv/service/lab/");
    assert!(
        last.query("index").is_some_and(|i| i != "0"),
        "{}",
        last.target
    );
    assert_eq!(last.query("recurse"), Some(""));
}

#[test]
fn the_same_records_written_again_are_no_change() {
    let consul = FakeConsul::start(0);
    patroni_scope(&consul);
    consul.set_jitter(false);
    let (holder, _) = replicas_by_weight(VIP);
    let mut c = client(&consul, "node1");
    assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));
    let before = consul.requests().len();
    // Patroni rewrites its member record every loop: the index moves, the records not.
    consul.put(
        &key("members/node3"),
        &member(3, "replica", POS),
        Some(SESSION),
    );
    let end = Instant::now() + Duration::from_millis(600);
    assert_eq!(c.wait_for_change(end), Some(Wait::Deadline));
    let queries = consul.requests().len() - before;
    assert!(
        queries >= 2,
        "the return was followed by another query ({queries})"
    );
}

#[test]
fn a_deleted_member_record_moves_the_vip() {
    let consul = FakeConsul::start(0);
    patroni_scope(&consul);
    let (holder, other) = replicas_by_weight(VIP);
    let mut c = client(&consul, other);
    assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));
    consul.delete(&key(&format!("members/{holder}")));
    assert_eq!(next_change(&mut c), Some(Observation::Leader(other.into())));
    // Then the other's too: no replica left, and no fallback.
    consul.delete(&key(&format!("members/{other}")));
    assert_eq!(next_change(&mut c), Some(Observation::NoLeader));
    assert_eq!(c.observe(soon()), Observation::NoLeader);
}

#[test]
fn a_large_history_does_not_make_it_unknown() {
    let consul = FakeConsul::start(0);
    patroni_scope(&consul);
    // Patroni's failover history: years of switchovers, far over a key read's bound.
    let entry =
        r#"[1,50331808,"no recovery target specified","2026-12-03T12:00:00+00:00","node1"]"#;
    let history = format!("[{}]", vec![entry; 4000].join(","));
    assert!(
        history.len() > vipd::dcs::http::MAX_REPLY,
        "{}",
        history.len()
    );
    consul.put(&key("history"), &history, None);
    let (holder, other) = replicas_by_weight(VIP);
    let mut c = client(&consul, "node1");
    assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));
    // And a blocking query's answer carries it too.
    consul.delete(&key(&format!("members/{holder}")));
    assert_eq!(next_change(&mut c), Some(Observation::Leader(other.into())));
}

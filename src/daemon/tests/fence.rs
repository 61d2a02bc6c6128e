//! The daemon's fencing against a scripted Patroni: who decides while the DCS is
//! silent, and write-ready gating of a new leadership's add.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use super::*;
use serde_json::Value;

/// Patroni's scripted answers (the last one repeats), and how often it was asked.
#[derive(Clone, Default)]
struct Script(Rc<RefCell<(VecDeque<PatroniSays>, usize)>>);

impl Script {
    fn new(answers: &[PatroniSays]) -> Script {
        Script(Rc::new(RefCell::new((
            answers.iter().cloned().collect(),
            0,
        ))))
    }
    fn asked(&self) -> usize {
        self.0.borrow().1
    }
}

impl AskPatroni for Script {
    fn ask(&mut self, _: Instant) -> PatroniSays {
        let mut s = self.0.borrow_mut();
        s.1 += 1;
        match s.0.len() {
            0 => PatroniSays::NoAnswer,
            1 => s.0[0].clone(),
            _ => s.0.pop_front().unwrap_or(PatroniSays::NoAnswer),
        }
    }
}

fn replica() -> PatroniSays {
    PatroniSays::NotServing("role replica, state running".into())
}

fn with(answers: &[PatroniSays], primary_check: bool) -> (Daemon<FakeDcs, FakeNet>, Script) {
    let script = Script::new(answers);
    let mut d = daemon().with_patroni(Some(Box::new(script.clone())));
    d.cfg.patroni_url = Some("http://192.0.2.11:8008".into());
    d.cfg.primary_check = primary_check;
    (d, script)
}

fn unknown() -> Observation {
    Observation::Unknown("connection refused".into())
}

#[test]
fn while_the_dcs_is_silent_patroni_decides() {
    let t0 = Instant::now();
    // A running primary keeps the VIP far past the grace (10 s).
    let (mut d, asked) = with(&[PatroniSays::Serves], false);
    step(&mut d, t0, 0, leader("pg1"));
    assert_eq!(asked.asked(), 0, "not asked while the DCS answers");
    let r = step(&mut d, t0, 60_000, unknown());
    assert_eq!((r.reason, r.action), (Reason::PatroniServes, Action::None));
    assert_eq!(d.patroni_said, Some(PatroniSays::Serves));
    // Anything else releases at once, within the grace.
    let (mut d, _) = with(&[replica()], false);
    step(&mut d, t0, 0, leader("pg1"));
    let r = step(&mut d, t0, 1000, unknown());
    assert_eq!(
        (r.reason, r.action),
        (Reason::PatroniNotServing, Action::Removed(1))
    );
    // No answer: the grace applies.
    let (mut d, _) = with(&[PatroniSays::NoAnswer], false);
    step(&mut d, t0, 0, leader("pg1"));
    assert_eq!(
        step(&mut d, t0, 9000, unknown()).reason,
        Reason::GraceHolding
    );
    let r = step(&mut d, t0, 10_000, unknown());
    assert_eq!(
        (r.reason, r.action),
        (Reason::GraceExpired, Action::Removed(1))
    );
}

#[test]
fn a_new_leadership_waits_for_the_primary() {
    let t0 = Instant::now();
    let (mut d, asked) = with(
        &[replica(), replica(), replica(), PatroniSays::Serves],
        true,
    );
    for at in [0, 100, 200] {
        let r = step(&mut d, t0, at, leader("pg1"));
        assert_eq!(
            (r.desired, r.reason),
            (Desired::Unchanged, Reason::AwaitingPrimary)
        );
        assert!(d.net.addrs.is_empty(), "no VIP before Patroni says primary");
    }
    let r = step(&mut d, t0, 300, leader("pg1"));
    assert_eq!((r.reason, r.action), (Reason::ThisNodeLeads, Action::Added));
    assert_eq!(asked.asked(), 4);
    // Deleted by hand while leading: back at once, Patroni not asked again.
    d.net.addrs.clear();
    assert_eq!(step(&mut d, t0, 400, leader("pg1")).action, Action::Added);
    assert_eq!(asked.asked(), 4);
    // Another node leads, then this one again: the gate is closed again.
    assert_eq!(
        step(&mut d, t0, 500, leader("pg2")).action,
        Action::Removed(1)
    );
    let r = step(&mut d, t0, 600, leader("pg1"));
    assert_eq!((r.reason, r.action), (Reason::ThisNodeLeads, Action::Added));
    assert_eq!(asked.asked(), 5);
}

#[test]
fn the_key_moving_away_ends_the_wait_and_removal_is_never_delayed() {
    let t0 = Instant::now();
    let (mut d, _) = with(&[replica()], true);
    assert_eq!(
        step(&mut d, t0, 0, leader("pg1")).reason,
        Reason::AwaitingPrimary
    );
    let r = step(&mut d, t0, 100, leader("pg2"));
    assert_eq!((r.desired, r.action), (Desired::Absent, Action::None));
    assert!(d.net.addrs.is_empty());
    // A VIP already here when a new leadership is gated stays (nothing is removed by
    // the wait); another leader removes it at once.
    d.net.addrs.push((d.cfg.vip.addr, d.cfg.vip.prefix_len));
    assert_eq!(step(&mut d, t0, 200, leader("pg1")).action, Action::None);
    assert_eq!(
        step(&mut d, t0, 300, leader("pg2")).action,
        Action::Removed(1)
    );
}

#[test]
fn no_answer_from_patroni_adds_as_without_gating() {
    let t0 = Instant::now();
    let (mut d, asked) = with(&[PatroniSays::NoAnswer], true);
    let r = step(&mut d, t0, 0, leader("pg1"));
    assert_eq!((r.reason, r.action), (Reason::ThisNodeLeads, Action::Added));
    assert_eq!(asked.asked(), 1);
    // Off: Patroni is not asked for an add.
    let (mut d, asked) = with(&[replica()], false);
    assert_eq!(step(&mut d, t0, 0, leader("pg1")).action, Action::Added);
    assert_eq!(asked.asked(), 0);
}

/// A DCS that knows when the key's lease ends, and counts the questions about it.
struct LeaseDcs {
    bound: Option<Instant>,
    asked: usize,
}

impl Dcs for LeaseDcs {
    fn observe(&mut self, _: Instant) -> Observation {
        unreachable!("the tests decide on given observations")
    }
    fn lease_bound(&self) -> Option<Instant> {
        self.bound
    }
    fn ask_lease(&mut self, _: Instant) {
        self.asked += 1;
    }
}

fn lease_step(d: &mut Daemon<LeaseDcs, FakeNet>, now: Instant, obs: Observation) -> Report {
    let decision = d.decide_now(&obs, now, now);
    if decision.1 == Reason::ThisNodeLeads {
        d.keep_lease_bound(now, now);
    }
    d.reconcile(obs, decision, now, false)
}

#[test]
fn the_lease_cuts_the_grace_and_is_asked_only_when_it_could() {
    let t0 = Instant::now();
    let s = |n: u64| t0 + std::time::Duration::from_secs(n);
    let dcs = LeaseDcs {
        bound: None,
        asked: 0,
    };
    let mut d = Daemon::new(Config::example(), dcs, FakeNet::new());
    // Leading with no known bound: asked; with one beyond the grace (10 s): not.
    lease_step(&mut d, s(0), leader("pg1"));
    assert_eq!(d.dcs.asked, 1);
    d.dcs.bound = Some(s(25));
    lease_step(&mut d, s(1), leader("pg1"));
    assert_eq!(d.dcs.asked, 1, "a bound 24 s ahead needs no question");
    lease_step(&mut d, s(16), leader("pg1"));
    assert_eq!(d.dcs.asked, 2, "a bound 9 s ahead is asked again");
    // The answer: the lease ends at 20 s (its holder stopped renewing it). etcd falls
    // silent at 16 s: the VIP is kept until the lease may have run out, before the
    // grace (until 26 s) ends.
    d.dcs.bound = Some(s(20));
    assert_eq!(
        lease_step(&mut d, s(19), unknown()).reason,
        Reason::GraceHolding
    );
    let r = lease_step(&mut d, s(20), unknown());
    assert_eq!(
        (r.reason, r.action),
        (Reason::LeaseExpired, Action::Removed(1))
    );
    // Not asked while another node leads.
    let asked = d.dcs.asked;
    lease_step(&mut d, s(30), leader("pg2"));
    assert_eq!(d.dcs.asked, asked);
}

#[test]
fn the_json_state_names_the_rule_and_patronis_answer() {
    let t0 = Instant::now();
    let (mut d, _) = with(&[replica()], true);
    let r = step(&mut d, t0, 0, leader("pg1"));
    let v = d.status(&r);
    assert_eq!(v["rule"], "awaiting-primary", "{v}");
    assert_eq!(
        v["patroni"], "not primary: role replica, state running",
        "{v}"
    );
    let (mut d, _) = with(&[PatroniSays::Serves], false);
    let r = step(&mut d, t0, 0, leader("pg1"));
    let v = d.status(&r);
    assert_eq!(
        (&v["rule"], &v["patroni"]),
        (&"this-node-leads".into(), &Value::Null)
    );
    d.patroni_said = None;
    let r = step(&mut d, t0, 60_000, unknown());
    assert_eq!(d.status(&r)["rule"], "patroni-primary");
    assert_eq!(d.status(&r)["patroni"], "primary");
}

#[test]
fn the_json_state_says_what_is_left_of_the_vips_lifetime() {
    let t0 = Instant::now();
    let mut d = daemon();
    let r = step(&mut d, t0, 0, leader("pg2"));
    assert_eq!(d.status(&r)["lifetime_left_ms"], Value::Null, "no VIP here");
    let r = step(&mut d, t0, 0, leader("pg1"));
    let left = d.status(&r)["lifetime_left_ms"]
        .as_u64()
        .expect("a lifetime");
    assert!((9_000..=10_000).contains(&left), "{left} ms of 10 s");
    d.cfg.vip_lifetime = None;
    assert_eq!(d.status(&r)["lifetime_left_ms"], Value::Null, "forever");
}

/// A replica VIP's daemon: the observation names its holder.
fn replica_vip(answers: &[PatroniSays]) -> Daemon<FakeDcs, FakeNet> {
    use crate::dcs::scope::{Fallback, Role, Rules};
    let (mut d, _) = with(answers, false);
    d.cfg.replica = Some(Rules {
        role: Role::Replica,
        vip: d.cfg.vip.addr.to_string(),
        max_lag: None,
        settle: Duration::from_secs(30),
        fallback: Fallback::Primary,
        skip_nofailover: false,
    });
    d
}

#[test]
fn a_replica_vip_is_kept_through_an_outage_only_while_patroni_says_replica() {
    let t0 = Instant::now();
    let mut d = replica_vip(&[PatroniSays::Serves]);
    let r = step(&mut d, t0, 0, leader("pg1"));
    assert_eq!(
        (r.reason, r.action.clone()),
        (Reason::ThisNodeLeads, Action::Added)
    );
    let r = step(&mut d, t0, 60_000, unknown());
    assert_eq!(
        (r.reason, r.action.clone()),
        (Reason::PatroniServes, Action::None)
    );
    let v = d.status(&r);
    assert_eq!(
        (&v["rule"], &v["patroni"]),
        (&"patroni-replica".into(), &"replica".into())
    );
    // Every replica serves: one that did not hold the VIP does not take it.
    let mut d = replica_vip(&[PatroniSays::Serves]);
    step(&mut d, t0, 0, leader("pg2"));
    let r = step(&mut d, t0, 60_000, unknown());
    assert_eq!(
        (r.desired, r.action.clone()),
        (Desired::Absent, Action::None)
    );
    // Promoted, or stopped, during the outage: released at once.
    let mut d = replica_vip(&[PatroniSays::NotServing("role master, state running".into())]);
    step(&mut d, t0, 0, leader("pg1"));
    let r = step(&mut d, t0, 1000, unknown());
    assert_eq!(
        (r.reason, r.action.clone()),
        (Reason::PatroniNotServing, Action::Removed(1))
    );
    assert_eq!(
        d.status(&r)["patroni"],
        "not replica: role master, state running"
    );
}

#[test]
fn a_replica_vips_state_names_the_role_and_the_holder() {
    let t0 = Instant::now();
    let mut d = replica_vip(&[]);
    let r = step(&mut d, t0, 0, leader("pg2"));
    let v = d.status(&r);
    assert_eq!(
        (&v["role"], &v["holder"], &v["leader"]),
        (&"replica".into(), &"pg2".into(), &Value::Null),
        "{v}"
    );
    let line = d.summary(&r);
    assert!(
        line.starts_with("role=replica holder=\"pg2\" node=\"pg1\" desired=absent"),
        "{line}"
    );
    // The primary VIP's state as before, with its role.
    let (mut d, _) = with(&[], false);
    let r = step(&mut d, t0, 0, leader("pg2"));
    let v = d.status(&r);
    assert_eq!(
        (&v["role"], &v["holder"], &v["leader"]),
        (&"primary".into(), &"pg2".into(), &"pg2".into())
    );
    assert!(d.summary(&r).starts_with("leader=\"pg2\" node=\"pg1\""));
}

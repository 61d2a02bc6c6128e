//! The daemon against a fake kernel and a scripted DCS: turns, announcements, grace
//! and `--once` exit statuses.

use super::*;
use crate::decide::Grace;
use crate::net::{AnnounceMode, LinkInfo, NetError, Vip};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Add(u8),
    /// A refresh at this prefix length, with this lifetime (`None`: permanent).
    Refresh(u8, Option<Duration>),
    Del(u8),
    Announce,
}

/// A kernel with one interface (index 7), its link state and address list.
pub(super) struct FakeNet {
    exists: bool,
    up: bool,
    pub(super) addrs: Vec<(IpAddr, u8)>,
    ops: Vec<Op>,
    fail_add: bool,
    carrier_changes: u32,
    /// The lifetime of the last add or refresh.
    lifetime: Option<Duration>,
}

impl FakeNet {
    pub(super) fn new() -> Self {
        FakeNet {
            exists: true,
            up: true,
            addrs: Vec::new(),
            ops: Vec::new(),
            fail_add: false,
            carrier_changes: 1,
            lifetime: None,
        }
    }
    fn announcements(&self) -> usize {
        self.ops.iter().filter(|o| **o == Op::Announce).count()
    }
}

impl AddrBackend for FakeNet {
    fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, NetError> {
        assert_eq!(name, "eth0");
        Ok(self.exists.then_some(link(self.up, self.carrier_changes)))
    }
    fn vip_prefixes(&mut self, ifindex: u32, addr: IpAddr) -> Result<Vec<u8>, NetError> {
        assert_eq!(ifindex, 7);
        Ok(self
            .addrs
            .iter()
            .filter(|(a, _)| *a == addr)
            .map(|(_, l)| *l)
            .collect())
    }
    fn add(&mut self, _: u32, vip: Vip, lifetime: Option<Duration>) -> Result<(), NetError> {
        if self.fail_add {
            return Err(NetError::new("add", libc::EPERM));
        }
        self.lifetime = lifetime;
        self.ops.push(Op::Add(vip.prefix_len));
        self.addrs.push((vip.addr, vip.prefix_len));
        Ok(())
    }
    fn refresh(&mut self, _: u32, vip: Vip, lifetime: Option<Duration>) -> Result<(), NetError> {
        if self.fail_add {
            return Err(NetError::new("refresh", libc::EPERM));
        }
        self.lifetime = lifetime;
        self.ops.push(Op::Refresh(vip.prefix_len, lifetime));
        if !self.addrs.contains(&(vip.addr, vip.prefix_len)) {
            self.addrs.push((vip.addr, vip.prefix_len));
        }
        Ok(())
    }
    fn del(&mut self, _: u32, addr: IpAddr, len: u8) -> Result<(), NetError> {
        self.ops.push(Op::Del(len));
        self.addrs.retain(|a| *a != (addr, len));
        Ok(())
    }
    fn announce(&mut self, link: &LinkInfo, _: Vip, _: AnnounceMode) -> Result<(), NetError> {
        assert!(link.up);
        self.ops.push(Op::Announce);
        Ok(())
    }
}

/// The fake kernel's interface (index 7) in this state.
pub(super) fn link(up: bool, carrier_changes: u32) -> LinkInfo {
    LinkInfo {
        index: 7,
        up,
        mac: [2, 0, 0, 0, 0, 1],
        carrier_changes,
    }
}

/// Scripted observations, and when the DCS last really answered (`None`: now).
pub(super) struct FakeDcs(VecDeque<Observation>, Option<Instant>);
impl Dcs for FakeDcs {
    fn observe(&mut self, _: Instant) -> Observation {
        self.0
            .pop_front()
            .unwrap_or(Observation::Unknown("script ended".into()))
    }
    fn last_fact(&self) -> Option<Instant> {
        self.1
    }
}

pub(super) fn daemon() -> Daemon<FakeDcs, FakeNet> {
    Daemon::new(
        Config::example(),
        FakeDcs(VecDeque::new(), None),
        FakeNet::new(),
    )
}

pub(super) fn leader(name: &str) -> Observation {
    Observation::Leader(name.into())
}

/// Observe `obs` at `t0 + at_ms` and reconcile.
pub(super) fn step(
    d: &mut Daemon<FakeDcs, FakeNet>,
    t0: Instant,
    at_ms: u64,
    obs: Observation,
) -> Report {
    let now = t0 + Duration::from_millis(at_ms);
    let decision = d.decide_now(&obs, now, now);
    d.reconcile(obs, decision, now, false)
}

#[test]
fn becoming_leader_adds_and_announces_at_once_then_on_schedule() {
    let mut d = daemon();
    let t0 = Instant::now();
    let r = step(&mut d, t0, 0, leader("pg1"));
    assert_eq!(r.action, Action::Added);
    assert_eq!(r.present_before, Some(false));
    assert_eq!(d.net.ops, [Op::Add(24), Op::Announce]);
    assert_eq!(
        d.next_announcement(),
        Some(t0 + Duration::from_millis(1000))
    );
    d.announce_due(t0 + Duration::from_millis(999), None);
    assert_eq!(d.net.announcements(), 1, "not due yet");
    d.announce_due(t0 + Duration::from_millis(1000), None);
    d.announce_due(t0 + Duration::from_millis(2000), None);
    d.announce_due(t0 + Duration::from_millis(3000), None);
    assert_eq!(d.net.announcements(), 3, "exactly announce-count");
    assert_eq!(d.next_announcement(), None);
    // Still leader, and a third of the lifetime (10 s) not yet over: nothing more
    // happens.
    let r = step(&mut d, t0, 3333, leader("pg1"));
    assert_eq!(r.action, Action::None);
    assert_eq!(d.net.ops.len(), 4);
}

#[test]
fn another_leader_removes_every_copy() {
    let mut d = daemon();
    let vip: IpAddr = "192.0.2.50".parse().unwrap();
    d.net.addrs = vec![(vip, 24), (vip, 32), ("192.0.2.5".parse().unwrap(), 24)];
    let r = step(&mut d, Instant::now(), 0, leader("pg2"));
    assert_eq!(r.action, Action::Removed(2));
    assert_eq!(d.net.ops, [Op::Del(24), Op::Del(32)]);
    assert_eq!(d.net.addrs.len(), 1, "other addresses untouched");
}

#[test]
fn no_leader_releases_and_cancels_the_burst() {
    let mut d = daemon();
    let t0 = Instant::now();
    step(&mut d, t0, 0, leader("pg1"));
    let r = step(&mut d, t0, 100, Observation::NoLeader);
    assert_eq!(r.action, Action::Removed(1));
    assert_eq!(d.next_announcement(), None);
    d.announce_due(t0 + Duration::from_secs(5), None);
    assert_eq!(d.net.announcements(), 1);
}

#[test]
fn address_deleted_by_hand_comes_back_next_turn() {
    let mut d = daemon();
    let t0 = Instant::now();
    step(&mut d, t0, 0, leader("pg1"));
    d.net.addrs.clear();
    let r = step(&mut d, t0, 1000, leader("pg1"));
    assert_eq!(r.action, Action::Added);
    assert_eq!(d.net.addrs.len(), 1);
}

#[test]
fn grace_keeps_then_releases_once() {
    let mut d = daemon();
    let t0 = Instant::now();
    step(&mut d, t0, 0, leader("pg1"));
    let unknown = || Observation::Unknown("connection refused".into());
    for at in [1000, 5000, 9999] {
        let r = step(&mut d, t0, at, unknown());
        assert_eq!(
            (r.desired, r.action),
            (Desired::Present, Action::None),
            "at {at} ms"
        );
    }
    // Deleted by hand during the outage: still repaired while in grace.
    d.net.addrs.clear();
    assert_eq!(step(&mut d, t0, 9999, unknown()).action, Action::Added);
    let r = step(&mut d, t0, 10_000, unknown());
    assert_eq!(
        (r.reason, r.action),
        (Reason::GraceExpired, Action::Removed(1))
    );
    let r = step(&mut d, t0, 11_000, unknown());
    assert_eq!(r.action, Action::None, "released once");
    // The DCS is back and this node still leads: added again.
    assert_eq!(
        step(&mut d, t0, 12_000, leader("pg1")).action,
        Action::Added
    );
}

#[test]
fn link_down_then_up_reannounces() {
    let mut d = daemon();
    let t0 = Instant::now();
    step(&mut d, t0, 0, leader("pg1"));
    d.net.up = false;
    // The burst's next announcement falls while the link is down: dropped.
    d.announce_due(t0 + Duration::from_millis(1000), None);
    assert_eq!(step(&mut d, t0, 1000, leader("pg1")).action, Action::None);
    d.net.up = true;
    let r = step(&mut d, t0, 2000, leader("pg1"));
    assert_eq!(r.action, Action::Reannounced);
    assert_eq!(d.net.announcements(), 2);
    assert!(d.next_announcement().is_some());
}

#[test]
fn a_flapping_key_never_announces_more_than_count_in_a_second() {
    // Leader here and elsewhere every 10 ms for 3 s: 150 adds, each a new burst.
    let t0 = Instant::now();
    let mut d = daemon();
    d.cfg.announce_interval = Duration::from_millis(100);
    let mut sent = Vec::new();
    let mut at = 0;
    while at < 3000 {
        let name = if (at / 10) % 2 == 0 { "pg1" } else { "pg2" };
        let before = d.net.announcements();
        step(&mut d, t0, at, leader(name));
        d.announce_due(t0 + Duration::from_millis(at + 5), None);
        for _ in before..d.net.announcements() {
            sent.push(at);
        }
        at += 10;
    }
    assert!(sent.len() >= 3, "still announcing: {sent:?}");
    for (i, &t) in sent.iter().enumerate() {
        let in_window = sent[i..].iter().take_while(|&&u| u < t + 1000).count();
        assert!(
            in_window <= 3,
            "{in_window} announcements from {t} ms: {sent:?}"
        );
    }
    // A single move afterwards is announced at once again.
    let mut d = daemon();
    step(&mut d, t0, 0, leader("pg1"));
    assert_eq!(d.net.announcements(), 1);
}

#[test]
fn a_flap_between_two_turns_reannounces() {
    let mut d = daemon();
    let t0 = Instant::now();
    step(&mut d, t0, 0, leader("pg1"));
    // Down and up again between turns: the link looks up both times.
    d.net.carrier_changes += 2;
    assert_eq!(
        step(&mut d, t0, 1000, leader("pg1")).action,
        Action::Reannounced
    );
    assert_eq!(step(&mut d, t0, 2000, leader("pg1")).action, Action::None);
}

#[test]
fn missing_interface_is_reported_and_waited_for() {
    let mut d = daemon();
    d.net.exists = false;
    let t0 = Instant::now();
    assert_eq!(
        step(&mut d, t0, 0, leader("pg1")).action,
        Action::InterfaceMissing
    );
    d.net.exists = true;
    assert_eq!(step(&mut d, t0, 1000, leader("pg1")).action, Action::Added);
}

#[test]
fn kernel_errors_are_reported_not_fatal() {
    let mut d = daemon();
    d.net.fail_add = true;
    let r = step(&mut d, Instant::now(), 0, leader("pg1"));
    assert!(matches!(
        r.action,
        Action::Failed(NetError {
            errno: libc::EPERM,
            ..
        })
    ));
    assert_eq!(d.next_announcement(), None);
}

#[test]
fn grace_counts_from_the_dcs_last_real_answer() {
    let mut d = daemon();
    let answered = Instant::now() - Duration::from_secs(4);
    d.dcs = FakeDcs(VecDeque::from([leader("pg1")]), Some(answered));
    // A remembered observation: a fact of when the DCS answered, not of this turn.
    assert_eq!(d.turn(None, Instant::now()).action, Action::Added);
    assert_eq!(d.last_fact, Some((true, answered)));
    let ok = SystemTime::now().duration_since(d.last_dcs_ok.unwrap());
    let ok = ok.unwrap().as_millis();
    assert!((4000..5000).contains(&ok), "last_dcs_success {ok} ms ago");
    let unknown = || Observation::Unknown("timed out".into());
    assert_eq!(
        step(&mut d, answered, 9_999, unknown()).action,
        Action::None
    );
    assert_eq!(
        step(&mut d, answered, 10_000, unknown()).reason,
        Reason::GraceExpired
    );
    // A change the watch reported is a fact of the turn that acts on it.
    let before = Instant::now();
    d.turn(Some(leader("pg1")), Instant::now());
    assert!(
        d.last_fact
            .is_some_and(|(leading, at)| leading && at >= before)
    );
}

#[test]
fn dry_run_changes_nothing() {
    let mut d = daemon();
    let now = Instant::now();
    let obs = leader("pg1");
    let decision = d.decide_now(&obs, now, now);
    let r = d.reconcile(obs, decision, now, true);
    assert_eq!(r.action, Action::WouldAdd);
    assert!(d.net.ops.is_empty());
}

#[test]
fn once_exit_statuses() {
    let run = |obs: Observation, addrs: Vec<(IpAddr, u8)>, dry: bool| {
        let mut cfg = Config::example();
        cfg.announce_count = 1;
        cfg.dcs_grace = Grace::After(Duration::ZERO);
        let mut net = FakeNet::new();
        net.addrs = addrs;
        let d = Daemon::new(cfg, FakeDcs(VecDeque::from([obs]), None), net);
        d.once(dry, false)
    };
    let vip = vec![("192.0.2.50".parse().unwrap(), 24)];
    let (code, line) = run(leader("pg1"), vec![], false);
    assert_eq!(code, 0);
    assert_eq!(
        line,
        r#"leader="pg1" node="pg1" desired=present actual=absent action=added vip=192.0.2.50/24 interface=eth0"#
    );
    assert_eq!(run(leader("pg1"), vec![], true).0, 3);
    assert_eq!(run(leader("pg1"), vip.clone(), true).0, 0);
    assert_eq!(run(leader("pg2"), vip.clone(), true).0, 3);
    assert_eq!(run(Observation::NoLeader, vec![], true).0, 0);
    // Unknown: exit 1, and the VIP is left alone even with grace 0.
    let (code, line) = run(
        Observation::Unknown("connection refused".into()),
        vip.clone(),
        false,
    );
    assert_eq!(code, 1);
    assert!(
        line.contains("leader=unknown") && line.contains("action=none"),
        "{line}"
    );
    assert!(line.ends_with(r#"error="connection refused""#), "{line}");
}

mod conflict;
mod fence;
mod hosted;
mod lifetime;

//! The conflict policy against a fake listener: listening only while the VIP is held,
//! the probe timer, and what a claim leads to (a count, one warning per MAC a minute,
//! one announcement within the rate limit, none while the DCS is silent).

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use super::*;
use crate::net::conflict::Claims;

const THEIRS: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x99];
const OTHER: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x98];

/// What the fake listener saw and holds, shared with the test.
#[derive(Default)]
struct Wire {
    /// Claims the next drain returns (the MACs as heard, our own among them).
    queued: Vec<[u8; 6]>,
    /// Probes sent, with their MAC.
    probes: Vec<[u8; 6]>,
    /// (ifindex, vip) of each opening.
    opened: Vec<(u32, IpAddr)>,
    /// A listener exists now.
    open: bool,
}

struct FakeClaims(Rc<RefCell<Wire>>);

impl Claims for FakeClaims {
    fn fd(&self) -> RawFd {
        -1
    }
    fn drain(&mut self, own: [u8; 6], out: &mut Vec<[u8; 6]>) {
        let queued = std::mem::take(&mut self.0.borrow_mut().queued);
        out.extend(queued.into_iter().filter(|m| *m != own));
    }
    fn probe(&self, mac: [u8; 6]) -> io::Result<()> {
        self.0.borrow_mut().probes.push(mac);
        Ok(())
    }
}

impl Drop for FakeClaims {
    fn drop(&mut self) {
        self.0.borrow_mut().open = false;
    }
}

/// [`FakeNet`] that can listen for claims.
struct ClaimNet {
    net: FakeNet,
    wire: Rc<RefCell<Wire>>,
}

impl AddrBackend for ClaimNet {
    fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, NetError> {
        self.net.link(name)
    }
    fn vip_prefixes(&mut self, ifindex: u32, addr: IpAddr) -> Result<Vec<u8>, NetError> {
        self.net.vip_prefixes(ifindex, addr)
    }
    fn add(&mut self, i: u32, vip: Vip, l: Option<Duration>) -> Result<(), NetError> {
        self.net.add(i, vip, l)
    }
    fn refresh(&mut self, i: u32, vip: Vip, l: Option<Duration>) -> Result<(), NetError> {
        self.net.refresh(i, vip, l)
    }
    fn del(&mut self, i: u32, addr: IpAddr, len: u8) -> Result<(), NetError> {
        self.net.del(i, addr, len)
    }
    fn announce(&mut self, link: &LinkInfo, vip: Vip, m: AnnounceMode) -> Result<(), NetError> {
        self.net.announce(link, vip, m)
    }
    fn listen_claims(
        &mut self,
        ifindex: u32,
        vip: IpAddr,
    ) -> Result<Option<Box<dyn Claims>>, NetError> {
        let mut wire = self.wire.borrow_mut();
        assert!(!wire.open, "one listener at a time");
        wire.opened.push((ifindex, vip));
        wire.open = true;
        Ok(Some(Box::new(FakeClaims(Rc::clone(&self.wire)))))
    }
}

type D = Daemon<FakeDcs, ClaimNet>;

fn claim_daemon(probe_ms: Option<u64>) -> (D, Rc<RefCell<Wire>>) {
    let wire = Rc::new(RefCell::new(Wire::default()));
    let mut cfg = Config::example();
    cfg.conflict_probe_interval = probe_ms.map(Duration::from_millis);
    let net = ClaimNet {
        net: FakeNet::new(),
        wire: Rc::clone(&wire),
    };
    let d = Daemon::new(cfg, FakeDcs(VecDeque::new(), None), net);
    (d, wire)
}

/// A turn at `t0 + at_ms` that observes `obs`, then the sources' pass after it.
fn turn_at(d: &mut D, t0: Instant, at_ms: u64, obs: Observation) {
    let now = t0 + Duration::from_millis(at_ms);
    let decision = d.decide_now(&obs, now, now);
    let report = d.reconcile(obs, decision, now, false);
    d.account(&report, None);
    d.conflict_step(now, true);
}

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

#[test]
fn listens_once_held_and_probes_only_while_holding() {
    let (mut d, wire) = claim_daemon(Some(10_000));
    let t0 = Instant::now();
    turn_at(&mut d, t0, 0, leader("pg2"));
    assert!(wire.borrow().opened.is_empty(), "not held: nothing opened");
    turn_at(&mut d, t0, 100, leader("pg1"));
    let vip: IpAddr = "192.0.2.50".parse().unwrap();
    assert_eq!(wire.borrow().opened, [(7, vip)]);
    let mut interest = crate::wake::Interest::default();
    d.conflict_interest(&mut interest);
    assert_eq!(interest.fds.len(), 1);
    assert_eq!(
        interest.deadline(),
        Some(at(t0, 1100)),
        "first probe a second in"
    );
    d.conflict_step(at(t0, 1099), true);
    assert!(wire.borrow().probes.is_empty());
    d.conflict_step(at(t0, 1100), true);
    assert_eq!(wire.borrow().probes, [link(true, 1).mac]);
    // A late wake probes once, and the next stays on the 10 s steps.
    d.conflict_step(at(t0, 11_400), true);
    d.conflict_step(at(t0, 11_500), true);
    assert_eq!(wire.borrow().probes.len(), 2);
    let mut interest = crate::wake::Interest::default();
    d.conflict_interest(&mut interest);
    assert_eq!(interest.deadline(), Some(at(t0, 21_100)));
    // Still held at the next turn: the same listener.
    turn_at(&mut d, t0, 12_000, leader("pg1"));
    assert_eq!(wire.borrow().opened.len(), 1);
    // Released: kept open (closing would wait for an RCU grace period), no probe due.
    turn_at(&mut d, t0, 13_000, leader("pg2"));
    assert!(wire.borrow().open);
    let mut interest = crate::wake::Interest::default();
    d.conflict_interest(&mut interest);
    assert_eq!(interest.fds.len(), 1);
    assert!(interest.deadline().is_none(), "no probe while not holding");
    // The new holder's announcements are read and ignored.
    wire.borrow_mut().queued.push(THEIRS);
    d.conflict_step(at(t0, 14_000), true);
    assert_eq!(d.metrics.conflicts, 0);
    assert_eq!(wire.borrow().probes.len(), 2);
    // Held again: the same listener, probing a second in.
    turn_at(&mut d, t0, 15_000, leader("pg1"));
    assert_eq!(wire.borrow().opened.len(), 1);
    let mut interest = crate::wake::Interest::default();
    d.conflict_interest(&mut interest);
    assert_eq!(interest.deadline(), Some(at(t0, 16_000)));
}

#[test]
fn probes_off_still_listens() {
    let (mut d, wire) = claim_daemon(None);
    let t0 = Instant::now();
    turn_at(&mut d, t0, 0, leader("pg1"));
    assert!(wire.borrow().open);
    let mut interest = crate::wake::Interest::default();
    d.conflict_interest(&mut interest);
    assert_eq!(interest.deadline(), None, "no probe timer");
    d.conflict_step(at(t0, 60_000), true);
    assert!(wire.borrow().probes.is_empty());
    wire.borrow_mut().queued.push(THEIRS);
    d.conflict_step(at(t0, 60_001), true);
    assert_eq!(d.metrics.conflicts, 1);
}

#[test]
fn a_claim_is_counted_warned_once_a_minute_and_answered_within_the_rate_limit() {
    let (mut d, wire) = claim_daemon(Some(10_000));
    let t0 = Instant::now();
    turn_at(&mut d, t0, 0, leader("pg1"));
    // Let the add's burst of three end.
    for ms in [1000, 2000] {
        d.announce_due(at(t0, ms), None);
    }
    assert_eq!(d.net.net.announcements(), 3);
    assert_eq!(d.next_announcement(), None);
    std::thread::sleep(Duration::from_millis(1100));
    let now = Instant::now();
    // Our own MAC is no claim.
    wire.borrow_mut().queued.push(link(true, 1).mac);
    d.conflict_step(now, true);
    assert_eq!(d.metrics.conflicts, 0);
    assert_eq!(d.net.net.announcements(), 3);
    // Another's: counted, and announced again at once once a fresh read of the DCS
    // still names this node.
    d.dcs.0.extend(std::iter::repeat_n(leader("pg1"), 10));
    wire.borrow_mut().queued.extend([THEIRS, THEIRS]);
    d.conflict_step(now, true);
    assert_eq!(d.metrics.conflicts, 2);
    assert_eq!(
        d.net.net.announcements(),
        4,
        "one announcement for one wake"
    );
    assert_eq!(d.conflicts.warned.len(), 1, "one warning for that MAC");
    // A flood of claims: the rate limit (3 a second) holds the answers back.
    for _ in 0..5 {
        wire.borrow_mut().queued.push(THEIRS);
        d.conflict_step(Instant::now(), true);
    }
    assert_eq!(d.metrics.conflicts, 7);
    assert!(
        d.net.net.announcements() <= 6,
        "{}",
        d.net.net.announcements()
    );
    // Once a minute per MAC; another MAC is warned about at once.
    let warned = |d: &D| {
        d.conflicts
            .warned
            .iter()
            .map(|(m, _)| *m)
            .collect::<Vec<_>>()
    };
    assert_eq!(warned(&d), [THEIRS]);
    wire.borrow_mut().queued.push(OTHER);
    d.conflict_step(Instant::now(), true);
    assert_eq!(warned(&d), [THEIRS, OTHER]);
    let later = Instant::now() + Duration::from_secs(61);
    assert!(d.conflicts.first_in_a_while(THEIRS, later));
    assert!(!d.conflicts.first_in_a_while(THEIRS, later));
}

/// A claim that is the new leader's first announcement, a moment before this node's
/// watch reports the switchover: the fresh read names the other node, so the VIP is
/// not announced again (that would pull the clients back), and the loop turns at once.
#[test]
fn a_claim_from_the_new_leader_is_not_answered() {
    let (mut d, wire) = claim_daemon(Some(10_000));
    let t0 = Instant::now();
    turn_at(&mut d, t0, 0, leader("pg1"));
    for ms in [1000, 2000] {
        d.announce_due(at(t0, ms), None);
    }
    std::thread::sleep(Duration::from_millis(1100));
    let sent = d.net.net.announcements();
    d.dcs.0.push_back(leader("pg2"));
    wire.borrow_mut().queued.push(THEIRS);
    d.conflict_step(Instant::now(), true);
    assert_eq!(d.metrics.conflicts, 1, "counted all the same");
    assert_eq!(d.net.net.announcements(), sent, "not announced again");
    assert!(d.turn_now, "the loop turns at once on what the read said");
}

#[test]
fn no_announcement_while_the_dcs_is_silent() {
    let (mut d, wire) = claim_daemon(Some(10_000));
    let t0 = Instant::now();
    turn_at(&mut d, t0, 0, leader("pg1"));
    for ms in [1000, 2000] {
        d.announce_due(at(t0, ms), None);
    }
    // The DCS goes silent; the grace keeps the VIP (and the listener).
    turn_at(&mut d, t0, 3000, Observation::Unknown("timeout".into()));
    assert!(wire.borrow().open);
    std::thread::sleep(Duration::from_millis(1100));
    wire.borrow_mut().queued.push(THEIRS);
    d.conflict_step(Instant::now(), true);
    assert_eq!(d.metrics.conflicts, 1);
    assert_eq!(
        d.net.net.announcements(),
        3,
        "the other may be the new leader"
    );
}

#[test]
fn remembered_macs_are_bounded() {
    let mut c = super::super::conflict::Conflicts::default();
    let now = Instant::now();
    for i in 0..200u8 {
        assert!(c.first_in_a_while([2, 0, 0, 0, 0, i], now));
    }
    assert_eq!(c.warned.len(), 64);
}

//! The VIP's lifetime: added with it, refreshed every third of it while held and
//! only then, every copy found, and a reload's new lifetime applied at once.

use super::*;

const TEN_S: Option<Duration> = Some(Duration::from_secs(10));

/// The refreshes among the fake kernel's operations since the last look, which
/// clears them.
fn refreshes(d: &mut Daemon<FakeDcs, FakeNet>) -> Vec<Op> {
    let ops = std::mem::take(&mut d.net.ops);
    ops.into_iter()
        .filter(|o| matches!(o, Op::Refresh(..)))
        .collect()
}

#[test]
fn the_vip_is_refreshed_every_third_of_its_lifetime_while_held() {
    let mut d = daemon();
    let t0 = Instant::now();
    assert_eq!(step(&mut d, t0, 0, leader("pg1")).action, Action::Added);
    assert_eq!(d.net.lifetime, TEN_S, "added with the lifetime");
    assert_eq!(refreshes(&mut d), []);
    step(&mut d, t0, 3333, leader("pg1"));
    assert_eq!(refreshes(&mut d), [], "not due before a third of 10 s");
    assert_eq!(step(&mut d, t0, 3334, leader("pg1")).action, Action::None);
    assert_eq!(refreshes(&mut d), [Op::Refresh(24, TEN_S)]);
    // Counted from the refresh.
    step(&mut d, t0, 6667, leader("pg1"));
    assert_eq!(refreshes(&mut d), []);
    step(&mut d, t0, 6668, leader("pg1"));
    assert_eq!(refreshes(&mut d), [Op::Refresh(24, TEN_S)]);
    // A failed refresh is reported, and tried again at the next turn.
    d.net.fail_add = true;
    let r = step(&mut d, t0, 10_002, leader("pg1"));
    assert!(matches!(r.action, Action::Failed(_)), "{r:?}");
    d.net.fail_add = false;
    step(&mut d, t0, 10_003, leader("pg1"));
    assert_eq!(refreshes(&mut d), [Op::Refresh(24, TEN_S)]);
    // Grace after the DCS went: still held, still refreshed.
    let unknown = || Observation::Unknown("timed out".into());
    assert_eq!(
        step(&mut d, t0, 13_337, unknown()).desired,
        Desired::Present
    );
    assert_eq!(refreshes(&mut d), [Op::Refresh(24, TEN_S)]);
    // Another leader: removed, and never refreshed again.
    let r = step(&mut d, t0, 14_000, leader("pg2"));
    assert_eq!(r.action, Action::Removed(1));
    for at in [20_000, 30_000] {
        step(&mut d, t0, at, leader("pg2"));
        assert_eq!(refreshes(&mut d), []);
    }
}

#[test]
fn a_vip_found_present_gets_the_lifetime_at_the_first_turn_that_wants_it() {
    let vip: IpAddr = "192.0.2.50".parse().unwrap();
    let mut d = daemon();
    d.net.addrs = vec![(vip, 24), (vip, 32)];
    let t0 = Instant::now();
    // Without the DCS's word (no history): left alone, to run out.
    let r = step(&mut d, t0, 0, Observation::Unknown("down".into()));
    assert_eq!(r.desired, Desired::Unchanged);
    assert_eq!(refreshes(&mut d), []);
    // Leader: every copy, at its own prefix length, gets the lifetime.
    step(&mut d, t0, 100, leader("pg1"));
    let want = [Op::Refresh(24, TEN_S), Op::Refresh(32, TEN_S)];
    assert_eq!(refreshes(&mut d), want);
    // `forever`: a copy with a lifetime is made permanent, once.
    let mut d = daemon();
    d.cfg.vip_lifetime = None;
    d.net.addrs = vec![(vip, 24)];
    step(&mut d, t0, 0, leader("pg1"));
    assert_eq!(refreshes(&mut d), [Op::Refresh(24, None)]);
    for at in [10_000, 100_000] {
        step(&mut d, t0, at, leader("pg1"));
        assert_eq!(refreshes(&mut d), []);
    }
}

#[test]
fn a_reload_that_changes_the_lifetime_applies_it_at_the_next_turn() {
    let mut d = daemon();
    let t0 = Instant::now();
    step(&mut d, t0, 0, leader("pg1"));
    let same = d.cfg.clone();
    d.take_reloaded(
        Reloaded {
            config: same,
            dcs: None,
            patroni: None,
            metrics_server: None,
            hosted: None,
        },
        t0,
    );
    step(&mut d, t0, 100, leader("pg1"));
    assert_eq!(refreshes(&mut d), [], "unchanged: nothing to apply");
    let minute = Some(Duration::from_secs(60));
    let changed = Config {
        vip_lifetime: minute,
        ..d.cfg.clone()
    };
    d.take_reloaded(
        Reloaded {
            config: changed,
            dcs: None,
            patroni: None,
            metrics_server: None,
            hosted: None,
        },
        t0,
    );
    step(&mut d, t0, 200, leader("pg1"));
    assert_eq!(refreshes(&mut d), [Op::Refresh(24, minute)]);
    step(&mut d, t0, 20_199, leader("pg1"));
    assert_eq!(refreshes(&mut d), [], "a third of the new lifetime");
    step(&mut d, t0, 20_200, leader("pg1"));
    assert_eq!(refreshes(&mut d), [Op::Refresh(24, minute)]);
}

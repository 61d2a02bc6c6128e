//! A hosted failover IP in the loop: the route is moved only on the DCS's word, and a
//! routed Robot IP without a local address leaves the interface alone.

use std::sync::{Arc, Mutex};

use super::*;
use crate::hosted::{Api, Failure, Hosted, Provider, RobotSettings, Route, ServerIp, Settings};

/// A provider that counts calls and always routes elsewhere.
#[derive(Clone, Default)]
struct Counting(Arc<Mutex<u32>>);

impl Api for Counting {
    fn read(&mut self, _: Instant) -> Result<Route, Failure> {
        *self.0.lock().unwrap() += 1;
        Ok(Route::Elsewhere("198.51.100.2".into()))
    }
    fn claim(&mut self, _: Instant) -> Result<Option<Route>, Failure> {
        *self.0.lock().unwrap() += 1;
        Ok(Some(Route::Here))
    }
}

fn robot_daemon(api: Counting) -> Daemon<FakeDcs, FakeNet> {
    let settings = Settings {
        provider: Provider::Robot(RobotSettings {
            api_url: "https://192.0.2.1".into(),
            user: "u".into(),
            password: crate::dcs::Secret("p".into()),
            server_ip: ServerIp::Given("198.51.100.1".parse().unwrap()),
            local_address: false,
        }),
        ca_file: None,
        recheck: Duration::from_secs(60),
    };
    let cfg = Config {
        hosted: Some(settings.clone()),
        ..Config::example()
    };
    let vip = cfg.vip.addr;
    let hosted = Hosted::with_api(settings, vip, Box::new(api)).unwrap();
    Daemon::new(cfg, FakeDcs(VecDeque::new(), None), FakeNet::new()).with_hosted(Some(hosted))
}

fn due(d: &Daemon<FakeDcs, FakeNet>) -> Option<Instant> {
    d.hosted.as_ref().and_then(Hosted::deadline)
}

/// Let the worker carry out what is due at `now` (bounded: 1 s).
fn settle(d: &mut Daemon<FakeDcs, FakeNet>, now: Instant) {
    let h = d.hosted.as_mut().unwrap();
    h.step(now, true).unwrap();
    for _ in 0..500 {
        if !h.in_flight() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
        h.step(now, true).unwrap();
    }
    panic!("the worker did not answer");
}

#[test]
fn only_the_dcss_word_moves_the_route_and_the_interface_is_left_alone() {
    let api = Counting::default();
    let calls = || *api.0.lock().unwrap();
    let mut d = robot_daemon(api.clone());
    let t0 = Instant::now();
    settle(&mut d, t0);
    assert_eq!(calls(), 1, "the start-up read");
    let r = step(&mut d, t0, 0, leader("pg1"));
    assert_eq!(
        (r.desired, r.reason),
        (Desired::Present, Reason::ThisNodeLeads)
    );
    settle(&mut d, t0);
    assert_eq!(calls(), 3, "a read and a move");
    assert_eq!(
        due(&d),
        Some(t0 + crate::hosted::AFTER_MOVE),
        "a move is confirmed"
    );
    // The DCS goes silent: the grace keeps the VIP, but never by a call.
    let r = step(&mut d, t0, 1000, Observation::Unknown("down".into()));
    assert_eq!(
        (r.desired, r.reason),
        (Desired::Present, Reason::GraceHolding)
    );
    assert_eq!(due(&d), None, "no call while the DCS is silent");
    settle(&mut d, t0 + Duration::from_secs(600));
    // Back, and another node leads: still no call.
    step(&mut d, t0, 2000, leader("pg2"));
    settle(&mut d, t0 + Duration::from_secs(1200));
    assert_eq!((calls(), due(&d)), (3, None));
    // A routed IP: nothing was done to the interface, and nothing announced.
    assert_eq!(d.net.ops, []);
    assert_eq!(d.release(), Ok(0));
}

#[test]
fn a_dry_run_or_a_follower_once_only_reads() {
    for (obs, dry_run, calls, status) in [
        (leader("pg1"), true, 1, 3),
        (leader("pg2"), false, 1, 0),
        (leader("pg1"), false, 2, 0),
    ] {
        let api = Counting::default();
        let mut d = robot_daemon(api.clone());
        d.dcs.0.push_back(obs.clone());
        let (got, line) = d.once(dry_run, false);
        assert_eq!(got, status, "{obs:?} dry run {dry_run}: {line}");
        assert_eq!(*api.0.lock().unwrap(), calls, "{line}");
    }
}

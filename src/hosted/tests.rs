use std::sync::{Arc, Mutex};

use super::*;

/// A provider in memory: where the VIP routes, what the next calls answer, and every
/// call made.
#[derive(Default)]
struct Fake {
    route: Option<Route>,
    /// Failures the next calls answer, first first.
    failures: Vec<Failure>,
    calls: Vec<&'static str>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Fake>>);

impl Shared {
    fn with(route: Route) -> Shared {
        let s = Shared::default();
        s.0.lock().unwrap().route = Some(route);
        s
    }
    fn calls(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().calls.clone()
    }
    fn fail_next(&self, f: Failure) {
        self.0.lock().unwrap().failures.push(f);
    }
}

impl Api for Shared {
    fn read(&mut self, _: Instant) -> Result<Route, Failure> {
        let mut f = self.0.lock().unwrap();
        f.calls.push("read");
        if !f.failures.is_empty() {
            return Err(f.failures.remove(0));
        }
        Ok(f.route.clone().unwrap_or(Route::Unrouted))
    }
    fn claim(&mut self, _: Instant) -> Result<Option<Route>, Failure> {
        let mut f = self.0.lock().unwrap();
        f.calls.push("claim");
        if !f.failures.is_empty() {
            return Err(f.failures.remove(0));
        }
        f.route = Some(Route::Here);
        Ok(None)
    }
}

fn settings() -> Settings {
    Settings {
        provider: Provider::Cloud(CloudSettings {
            api_url: "https://192.0.2.1/v1".into(),
            token: Secret("t".into()),
            floating_ip_id: 1,
            server_id: 2,
        }),
        ca_file: None,
        recheck: Duration::from_secs(60),
    }
}

fn vip() -> IpAddr {
    "203.0.113.20".parse().unwrap()
}

#[test]
fn a_read_moves_nothing_and_an_ensure_moves_only_from_elsewhere() {
    let cases = [
        (Route::Here, Job::Ensure, vec!["read"], None),
        (
            Route::Elsewhere("server 3".into()),
            Job::Ensure,
            vec!["read", "claim", "read"],
            Some(Route::Elsewhere("server 3".into())),
        ),
        (
            Route::Unrouted,
            Job::Ensure,
            vec!["read", "claim", "read"],
            Some(Route::Unrouted),
        ),
        (Route::Elsewhere("x".into()), Job::Read, vec!["read"], None),
    ];
    for (route, job, calls, moved_from) in cases {
        let mut api = Shared::with(route.clone());
        let done = carry_out(&mut api, job).unwrap();
        assert_eq!(api.calls(), calls, "{route:?} {job:?}");
        assert_eq!(done.moved_from, moved_from);
    }
}

/// Step `h` until its job is answered (bounded).
fn settle(h: &mut Hosted, now: Instant) -> Result<(), Failure> {
    h.step(now, true)?;
    for _ in 0..500 {
        if !h.in_flight() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
        h.step(now, true)?;
    }
    panic!("the worker did not answer within 1 s");
}

#[test]
fn a_follower_checks_once_at_start_and_never_again() {
    let api = Shared::with(Route::Elsewhere("198.51.100.2".into()));
    let mut h = Hosted::with_api(settings(), vip(), Box::new(api.clone())).unwrap();
    let t0 = Instant::now();
    h.lead(false, t0);
    settle(&mut h, t0).unwrap();
    assert_eq!(api.calls(), ["read"]);
    assert_eq!(h.route(), Some(&Route::Elsewhere("198.51.100.2".into())));
    assert_eq!(h.deadline(), None);
    // Hours later, still nothing.
    settle(&mut h, t0 + Duration::from_secs(7200)).unwrap();
    assert_eq!(api.calls(), ["read"]);
}

#[test]
fn the_leader_moves_once_then_rechecks_on_the_cadence() {
    let api = Shared::with(Route::Elsewhere("198.51.100.2".into()));
    let mut h = Hosted::with_api(settings(), vip(), Box::new(api.clone())).unwrap();
    let t0 = Instant::now();
    h.lead(true, t0);
    settle(&mut h, t0).unwrap();
    assert_eq!(api.calls(), ["read", "claim", "read"]);
    assert_eq!(h.route(), Some(&Route::Here));
    // A move is confirmed soon, then the route is read on the cadence.
    assert_eq!(h.deadline(), Some(t0 + AFTER_MOVE));
    settle(&mut h, t0 + AFTER_MOVE).unwrap();
    assert_eq!(api.calls().len(), 4);
    let t1 = t0 + AFTER_MOVE;
    assert_eq!(h.deadline(), Some(t1 + Duration::from_secs(60)));
    // Not due yet: no call.
    settle(&mut h, t1 + Duration::from_secs(59)).unwrap();
    assert_eq!(api.calls().len(), 4);
    settle(&mut h, t1 + Duration::from_secs(60)).unwrap();
    assert_eq!(api.calls(), ["read", "claim", "read", "read", "read"]);
    // Losing the lead: no more calls.
    h.lead(false, t1 + Duration::from_secs(61));
    assert_eq!(h.deadline(), None);
    settle(&mut h, t0 + Duration::from_secs(3600)).unwrap();
    assert_eq!(api.calls().len(), 5);
}

#[test]
fn taking_the_lead_while_the_start_up_read_is_in_flight_moves_right_after_it() {
    let api = Shared::with(Route::Elsewhere("198.51.100.2".into()));
    let mut h = Hosted::with_api(settings(), vip(), Box::new(api.clone())).unwrap();
    let t0 = Instant::now();
    h.step(t0, true).unwrap();
    assert!(h.in_flight());
    h.lead(true, t0);
    // The read's answer makes the move due at once: the same step hands it over.
    settle(&mut h, t0).unwrap();
    assert_eq!(api.calls(), ["read", "read", "claim", "read"]);
    assert_eq!(h.route(), Some(&Route::Here));
}

#[test]
fn failures_back_off_and_a_refusal_at_start_is_fatal() {
    let busy = Failure::new(FailureKind::Busy, "POST: 409 FAILOVER_LOCKED");
    let api = Shared::with(Route::Elsewhere("198.51.100.2".into()));
    let mut h = Hosted::with_api(settings(), vip(), Box::new(api.clone())).unwrap();
    let t0 = Instant::now();
    h.lead(true, t0);
    // Three attempts in a row are refused as locked; the fourth moves the route.
    api.0
        .lock()
        .unwrap()
        .failures
        .extend([busy.clone(), busy.clone(), busy]);
    settle(&mut h, t0).unwrap();
    assert_eq!(h.deadline(), Some(t0 + Duration::from_secs(2)));
    settle(&mut h, t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(h.deadline(), Some(t0 + Duration::from_secs(2 + 4)));
    settle(&mut h, t0 + Duration::from_secs(6)).unwrap();
    assert_eq!(h.deadline(), Some(t0 + Duration::from_secs(6 + 8)));
    settle(&mut h, t0 + Duration::from_secs(14)).unwrap();
    assert_eq!(h.route(), Some(&Route::Here));
    assert_eq!(
        h.deadline(),
        Some(t0 + Duration::from_secs(14) + AFTER_MOVE)
    );

    // Credentials refused at the first call: fatal; later: retried.
    let rejected = Failure::new(FailureKind::Rejected, "GET: 401 UNAUTHORIZED");
    let api = Shared::with(Route::Here);
    api.fail_next(rejected.clone());
    let mut h = Hosted::with_api(settings(), vip(), Box::new(api.clone())).unwrap();
    assert_eq!(settle(&mut h, Instant::now()), Err(rejected.clone()));
    let api = Shared::with(Route::Here);
    let mut h = Hosted::with_api(settings(), vip(), Box::new(api.clone())).unwrap();
    h.lead(true, t0);
    settle(&mut h, t0).unwrap();
    api.fail_next(rejected);
    settle(&mut h, t0 + Duration::from_secs(60)).unwrap();
    assert_eq!(h.route(), None);
    assert_eq!(h.deadline(), Some(t0 + Duration::from_secs(62)));
}

#[test]
fn a_limit_wait_beats_a_shorter_backoff() {
    let t0 = Instant::now();
    let api = Shared::with(Route::Here);
    let mut h = Hosted::with_api(settings(), vip(), Box::new(api.clone())).unwrap();
    h.lead(true, t0);
    api.fail_next(Failure {
        retry_at: Some(t0 + Duration::from_secs(900)),
        ..Failure::new(FailureKind::Busy, "held back")
    });
    settle(&mut h, t0).unwrap();
    assert_eq!(h.deadline(), Some(t0 + Duration::from_secs(900)));
}

#[test]
fn the_once_words() {
    assert_eq!(Route::Here.word(), "routed-here");
    assert_eq!(
        Route::Elsewhere("198.51.100.2".into()).word(),
        "routed-elsewhere:198.51.100.2"
    );
    assert_eq!(
        Route::Elsewhere("server 43".into()).word(),
        "routed-elsewhere:server-43"
    );
    assert_eq!(Route::Unrouted.word(), "unrouted");
}

#[test]
fn both_apis_error_objects() {
    let robot = br#"{"error":{"status":409,"code":"FAILOVER_LOCKED","message":"locked"}}"#;
    assert_eq!(
        error_object(robot),
        Some(("FAILOVER_LOCKED".into(), "locked".into()))
    );
    let cloud = br#"{"error":{"code":"locked","message":"","details":{}}}"#;
    assert_eq!(error_object(cloud), Some(("locked".into(), String::new())));
    assert_eq!(
        error_object(b"{\"error\":1}"),
        Some((String::new(), String::new()))
    );
    assert_eq!(error_object(b"<html>"), None);
}

//! vipd with Consul, against the fake Consul of tests/fakes (a real Consul server is not
//! available: it is not open source and not packaged).
//!
//! The client tests need nothing but loopback. The daemon tests run vipd and the fake
//! in a network namespace the test makes (root; skipped only with VIPD_ALLOW_SKIP=1).

use std::time::{Duration, Instant};

use crate::common::{NodeLab, in_netns, ms, pg1_args, wait_until, within};
use crate::fakes::{FakeConsul, free_port, go_duration};
use vipd::config::Secret;
use vipd::dcs::consul::{Consul, Settings};
use vipd::dcs::http::Tls;
use vipd::dcs::{Dcs, Observation, Wait};

const KEY: &str = "service/demo/leader";
const TOKEN: &str = "4fa0c3b2-vipd-test-token";

/// A client of `endpoints` for `key`, watching.
fn client_of(endpoints: Vec<String>, key: String, interval_ms: u64, token: Option<&str>) -> Consul {
    Consul::new(&Settings {
        endpoints,
        key,
        token: token.map(|t| Secret(t.into())),
        interval: Duration::from_millis(interval_ms),
        watch: true,
        tls: Tls::default(),
        scope: None,
    })
}

/// A client of `url` for the key with a leading slash, as vip-manager's users write it.
fn client(url: &str, interval_ms: u64, token: Option<&str>) -> Consul {
    client_of(vec![url.to_string()], format!("/{KEY}"), interval_ms, token)
}

/// The unknown observation of a reply with `status` and `text` from `consul`.
fn refused(consul: &FakeConsul, status: u16, text: &str) -> Observation {
    Observation::Unknown(format!("{}: HTTP {status}: {text}", consul.url()))
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(2)
}

#[test]
fn fake_parses_go_durations() {
    assert_eq!(go_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(go_duration("7"), Some(Duration::from_secs(7)));
    assert_eq!(go_duration("x"), None);
}

#[test]
fn reads_leader_and_absence() {
    let consul = FakeConsul::start(0);
    let mut c = client(&consul.url(), 1000, None);
    assert_eq!(c.observe(soon()), Observation::NoLeader);
    consul.put(KEY, "pg1", Some("adf4238a-882b-9ddc-4a9d-5b6758e4159e"));
    assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
    // The leading slash is stripped; the read is consistent and does not block.
    let reqs = consul.requests();
    let last = reqs.last().unwrap();
    assert_eq!(last.path(), format!("/v1/kv/{KEY}"));
    assert_eq!(last.query("consistent"), Some(""));
    assert_eq!(last.query("index"), None);
}

#[test]
fn token_goes_in_the_header_only() {
    let consul = FakeConsul::start(0);
    consul.put(KEY, "pg1", None);
    consul.require_token(Some(TOKEN));
    let mut c = client(&consul.url(), 300, Some(TOKEN));
    assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
    // A blocking query too.
    let deadline = Instant::now() + Duration::from_millis(300);
    assert_eq!(c.wait_for_change(deadline), Some(Wait::Deadline));
    let reqs = consul.requests();
    assert!(reqs.len() >= 2, "{reqs:?}");
    for r in &reqs {
        assert_eq!(r.header("x-consul-token"), Some(TOKEN));
        assert!(!r.target.contains(TOKEN), "token in the URL: {}", r.target);
        assert_eq!(r.query("token"), None);
    }
    // Without the token, or with another: 403 with Consul's text, unknown.
    let mut anonymous = client(&consul.url(), 300, None);
    let want = refused(&consul, 403, "Permission denied");
    assert_eq!(anonymous.observe(soon()), want);
    let mut wrong = client(&consul.url(), 300, Some("0000-wrong"));
    let want = refused(&consul, 403, "ACL not found");
    assert_eq!(wrong.observe(soon()), want);
}

#[test]
fn no_cluster_leader_is_unknown() {
    let consul = FakeConsul::start(0);
    consul.put(KEY, "pg1", None);
    consul.set_no_leader(true);
    let mut c = client(&consul.url(), 300, None);
    let want = refused(&consul, 500, "No cluster leader");
    assert_eq!(c.observe(soon()), want);
    // Nothing to block on after a failed read (index 0).
    assert_eq!(c.wait_for_change(soon()), None);
    consul.set_no_leader(false);
    assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
}

#[test]
fn a_dead_endpoint_is_skipped() {
    let consul = FakeConsul::start(0);
    consul.put(KEY, "pg1", None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut c = client_of(vec![dead, consul.url()], KEY.into(), 300, None);
    assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
    // And the one that answered is kept.
    assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
    assert_eq!(consul.requests().len(), 2);
}

/// A change is seen through the blocking query within milliseconds, not at the next
/// poll, with a long interval.
#[test]
fn blocking_query_sees_a_delete_at_once() {
    let consul = FakeConsul::start(0);
    consul.put(KEY, "pg1", Some("s1"));
    let mut c = client(&consul.url(), 5000, None);
    assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
    let deleted_at = std::thread::scope(|s| {
        let deleter = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            consul.delete(KEY);
            Instant::now()
        });
        let wait = c.wait_for_change(Instant::now() + Duration::from_secs(5));
        let seen_at = Instant::now();
        assert_eq!(wait, Some(Wait::Changed(Observation::NoLeader)));
        let deleted_at = deleter.join().unwrap();
        let lag = seen_at.saturating_duration_since(deleted_at);
        assert!(
            lag < Duration::from_millis(200),
            "seen {lag:?} after the delete"
        );
        deleted_at
    });
    // One read and one blocking query, with the index of the read.
    let reqs = consul.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs[1].at < deleted_at);
    assert_eq!(reqs[1].query("index"), Some("2"));
    let wait = go_duration(reqs[1].query("wait").unwrap()).unwrap();
    assert!(wait > Duration::from_millis(4500) && wait <= Duration::from_secs(5));
    // The next turn's read is the blocking query's answer: no request.
    assert_eq!(c.observe(soon()), Observation::NoLeader);
    assert_eq!(consul.requests().len(), 2);
}

/// While nothing changes, one request per turn: the blocking query, whose answer is
/// the next turn's observation.
#[test]
fn idle_turns_send_one_request_each() {
    let consul = FakeConsul::start(0);
    consul.put(KEY, "pg1", Some("s1"));
    let interval = Duration::from_millis(400);
    let mut c = client(&consul.url(), 400, None);
    let start = Instant::now();
    let turns = 5;
    for turn in 0..turns {
        let deadline = start + interval * (turn + 1);
        assert_eq!(c.observe(deadline), Observation::Leader("pg1".into()));
        // As the loop does: wait until the deadline, then sleep what is left.
        match c.wait_for_change(deadline) {
            Some(Wait::Deadline) | None => {}
            other => panic!("turn {turn}: {other:?}"),
        }
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
    let (reqs, most) = (consul.requests(), turns as usize + 1);
    assert!(reqs.len() <= most, "{turns} idle turns: {reqs:?}");
    // Consul's jitter may make a turn end late, by at most wait/16.
    let took = start.elapsed();
    assert!(took < interval * turns + interval * turns / 16 + Duration::from_millis(300));
}

/// A return without a change (another key written while ours is missing) is no
/// change; a backwards index resets to 0, and 0 never blocks.
#[test]
fn index_rules() {
    let consul = FakeConsul::start(0);
    consul.set_jitter(false);
    let mut c = client(&consul.url(), 2000, None);
    assert_eq!(c.observe(soon()), Observation::NoLeader);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            // Bumps the KV table index that a missing key's query reports.
            consul.put("service/demo/members/pg2", "{}", None);
            std::thread::sleep(Duration::from_millis(100));
            consul.put(KEY, "pg2", None);
        });
        let wait = c.wait_for_change(Instant::now() + Duration::from_secs(2));
        assert_eq!(wait, Some(Wait::Changed(Observation::Leader("pg2".into()))));
    });
    let reqs = consul.requests();
    let indexes: Vec<_> = reqs.iter().map(|r| r.query("index")).collect();
    // The read, a query that returned on the other key, one re-armed with the new index.
    assert_eq!(indexes, vec![None, Some("1"), Some("2")], "{reqs:?}");

    // Backwards: the query returns at once with a lower index; the client resets and
    // does not block again with index 0 (the caller sleeps; the next read re-arms).
    consul.override_index(Some(1));
    let before = consul.requests().len();
    let wait = c.wait_for_change(Instant::now() + Duration::from_secs(1));
    assert_eq!(wait, Some(Wait::Deadline));
    let wait = c.wait_for_change(Instant::now() + Duration::from_secs(1));
    assert_eq!(wait, None);
    let after = consul.requests();
    assert_eq!(after.len(), before + 1);
    assert!(after.iter().all(|r| r.query("index") != Some("0")));
    consul.override_index(None);
    assert_eq!(c.observe(soon()), Observation::Leader("pg2".into()));
}

// --- the daemon ------------------------------------------------------------------

/// A lab with the fake Consul on the node's loopback, port 8500 (vipd's default).
fn lab() -> (NodeLab, FakeConsul) {
    let lab = NodeLab::new();
    let consul = in_netns(&lab.node.name, || FakeConsul::start(8500));
    (lab, consul)
}

#[test]
fn daemon_follows_the_leader_key_with_blocking_queries() {
    gate!(Root);
    let (lab, consul) = lab();
    consul.require_token(Some(TOKEN));
    consul.put(KEY, "pg1", Some("s1"));
    let dir = lab.dir("consul");
    let token_file = dir.write("token", format!("{TOKEN}\n"));
    let mut vipd = lab.node.vipd(&pg1_args(&format!(
        "--dcs-type consul --trigger-key /service/demo/leader --consul-token-file {token_file} \
         --interval 5000 --announce-count=1 --verbose"
    )));
    within(ms(5000), "VIP added", &|| vipd.output(), || lab.has_vip());
    // Idle for two intervals: at most one request per interval (plus the first read).
    let idle_from = consul.requests().len();
    std::thread::sleep(Duration::from_millis(10_500));
    let idle = consul.requests().len() - idle_from;
    assert!(
        idle <= 3,
        "{idle} requests in 10.5 s of idle at interval 5000"
    );

    // Patroni's session expires: the key is deleted; the VIP goes within 200 ms.
    consul.delete(KEY);
    let deleted = Instant::now();
    let gone = || !lab.has_vip();
    within(ms(1000), "VIP released", &|| vipd.output(), gone);
    let lag = deleted.elapsed();
    assert!(lag < Duration::from_millis(200), "released after {lag:?}");

    // SIGTERM interrupts the blocking query: vipd exits at once.
    let asked = Instant::now();
    assert_eq!(vipd.terminate(Duration::from_secs(3)), Some(0));
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(1000), "{took:?}");
    let out = vipd.output();
    assert!(!out.contains(TOKEN), "token in the output:\n{out}");
    for r in consul.requests() {
        assert_eq!(r.header("x-consul-token"), Some(TOKEN));
        assert!(!r.target.contains(TOKEN));
    }
}

#[test]
fn daemon_releases_after_the_grace_period_on_acl_denial() {
    gate!(Root);
    let (lab, consul) = lab();
    consul.require_token(Some(TOKEN));
    consul.put(KEY, "pg1", Some("s1"));
    let mut vipd = lab.node.vipd(&pg1_args(&format!(
        "--dcs-type=consul --trigger-key=service/demo/leader --consul-token={TOKEN} \
         --interval=200 --dcs-grace=1500 -v"
    )));
    assert!(wait_until(ms(5000), ms(10), || lab.has_vip()).is_some());
    // The token is revoked: 403 → unknown, kept through the grace period, then released.
    consul.require_token(Some("another-token"));
    let revoked = Instant::now();
    let gone = || !lab.has_vip();
    within(ms(5000), "VIP released", &|| vipd.output(), gone);
    let after = revoked.elapsed();
    let in_time = after >= ms(1300) && after < ms(3000);
    assert!(in_time, "released {after:?} after the revocation");
    let out = vipd.output();
    assert!(out.contains("HTTP 403: ACL not found"), "{out}");
    assert_eq!(vipd.terminate(Duration::from_secs(2)), Some(0));
    assert!(!vipd.output().contains(TOKEN));
}

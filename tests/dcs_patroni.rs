//! vipd with `dcs-type patroni`, against a fake Patroni REST API (tests/fakes) that
//! answers `GET /leader` with 200 or 503. Client tests need only loopback; the daemon
//! test runs in a network namespace the test makes (root; skipped only with
//! VIPD_ALLOW_SKIP=1).

use std::time::{Duration, Instant};

use crate::common::{NODE_IF, NodeLab, in_netns, ms, vip_args, wait_until};
use crate::fakes::{FakeConsul, FakePatroni, free_port};
use vipd::dcs::http::Tls;
use vipd::dcs::patroni::{Patroni, Settings};
use vipd::dcs::{Dcs, Observation};

/// How vipd names the Patroni of the node's loopback in its errors.
const LOCAL_API: &str = "Patroni REST API at http://127.0.0.1:8008";

fn client(endpoint: &str) -> Patroni {
    Patroni::new(&Settings {
        endpoint: endpoint.to_string(),
        path: "/leader".into(),
        interval: Duration::from_millis(500),
        tls: Tls::default(),
        scope: None,
    })
}

fn soon() -> Instant {
    Instant::now() + Duration::from_millis(500)
}

#[test]
fn status_codes_are_the_observation() {
    let patroni = FakePatroni::start(0, 200);
    let mut c = client(&patroni.url());
    assert_eq!(c.observe(soon()), Observation::Leader("200".into()));
    patroni.set_status(503);
    assert_eq!(c.observe(soon()), Observation::Leader("503".into()));
    let reqs = patroni.http.requests();
    assert_eq!(reqs.len(), 2);
    let leader_gets = reqs
        .iter()
        .all(|r| r.method == "GET" && r.target == "/leader");
    assert!(leader_gets, "{reqs:?}");
    // Polling only: nothing to block on.
    assert_eq!(c.wait_for_change(soon()), None);
}

#[test]
fn connection_errors_are_unknown_and_name_the_endpoint() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut c = client(&endpoint);
    let Observation::Unknown(why) = c.observe(soon()) else {
        panic!("not unknown");
    };
    let api = format!("Patroni REST API at {endpoint}");
    assert!(why.contains(&api), "{why}");
    assert!(why.contains("not 127.0.0.1"), "{why}");
}

#[test]
fn once_compares_the_status_with_the_trigger_value() {
    gate!(Root);
    let lab = NodeLab::new();
    let patroni = in_netns(&lab.node.name, || FakePatroni::start(8008, 200));
    // Defaults: endpoint http://127.0.0.1:8008, trigger-key /leader, trigger-value 200.
    let base = vip_args(NODE_IF, "--once --dry-run --dcs-type patroni");
    let out = lab.node.vipd_once(&base);
    assert_eq!(out.code(), Some(3), "{out:?}");
    let line = "leader=\"200\" node=\"200\" desired=present";
    assert!(out.stdout.contains(line), "{out:?}");
    patroni.set_status(503);
    let out = lab.node.vipd_once(&base);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("desired=absent"), "{out:?}");
    drop(patroni);
    let out = lab.node.vipd_once(&base);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains(LOCAL_API), "{out:?}");
}

#[test]
fn daemon_holds_the_vip_while_patroni_says_200() {
    gate!(Root);
    let lab = NodeLab::new();
    let patroni = in_netns(&lab.node.name, || FakePatroni::start(8008, 200));
    let args = "--dcs-type patroni --interval 100 --dcs-grace 800 -v";
    let mut vipd = lab.node.vipd(&vip_args(NODE_IF, args));
    let within =
        |secs: u64, present| wait_until(ms(secs * 1000), ms(10), || lab.has_vip() == present);
    assert!(within(5, true).is_some(), "{}", vipd.output());
    // A replica: released at the next poll.
    patroni.set_status(503);
    assert!(within(2, false).is_some());
    patroni.set_status(200);
    assert!(within(2, true).is_some());
    // Patroni down: unknown, kept through the grace period, then released.
    drop(patroni);
    let down = Instant::now();
    assert!(within(5, false).is_some(), "{}", vipd.output());
    let after = down.elapsed();
    assert!(
        after >= Duration::from_millis(600),
        "released after {after:?}"
    );
    let out = vipd.output();
    assert!(out.contains(LOCAL_API), "{out}");
    assert_eq!(vipd.terminate(Duration::from_secs(2)), Some(0));
}

/// SIGHUP with another DCS type in the file: a new client, of that type, takes over.
#[test]
fn sighup_switches_to_another_dcs_type() {
    gate!(Root);
    let lab = NodeLab::new();
    let dir = lab.dir("patroni");
    // Consul says another node leads; this node's Patroni says it leads.
    let consul = in_netns(&lab.node.name, || FakeConsul::start(8500));
    consul.put("service/demo/leader", "pg2", Some("s1"));
    let patroni = in_netns(&lab.node.name, || FakePatroni::start(8008, 200));
    let base = format!("ip: 192.0.2.50\nnetmask: 24\ninterface: {NODE_IF}\ninterval: 100\n");
    let file = dir.write(
        "vipd.yml",
        format!("{base}dcs-type: consul\ntrigger-key: /service/demo/leader\ntrigger-value: pg1\n"),
    );
    let mut vipd = lab.node.vipd(&["--config".to_string(), file]);
    let said = |what: &str| vipd.output().contains(what);
    let leader_pg2 = wait_until(ms(3000), ms(10), || said("leader is \"pg2\""));
    assert!(leader_pg2.is_some(), "{}", vipd.output());
    assert!(!lab.has_vip());
    assert!(patroni.http.requests().is_empty());
    dir.write("vipd.yml", format!("{base}dcs-type: patroni\n"));
    vipd.signal("HUP");
    let added = wait_until(ms(3000), ms(10), || lab.has_vip());
    assert!(added.is_some(), "{}", vipd.output());
    assert!(!patroni.http.requests().is_empty());
    assert_eq!(vipd.terminate(Duration::from_secs(2)), Some(0));
}

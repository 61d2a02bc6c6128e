//! vipd with `dcs-type patroni`, against a fake Patroni REST API (tests/fakes) that
//! answers `GET /leader` with 200 or 503. Client tests need only loopback; the daemon
//! test runs in a network namespace the test makes (root; skipped only with
//! VIPD_ALLOW_SKIP=1).

use std::time::{Duration, Instant};

use crate::dcs_lab::*;
use crate::fakes::FakePatroni;
use vipd::dcs::http::Tls;
use vipd::dcs::patroni::{Patroni, Settings};
use vipd::dcs::{Dcs, Observation};

fn client(endpoint: &str) -> Patroni {
    Patroni::new(&Settings {
        endpoint: endpoint.to_string(),
        path: "/leader".into(),
        interval: Duration::from_millis(500),
        tls: Tls::default(),
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
    assert!(
        reqs.iter()
            .all(|r| r.method == "GET" && r.target == "/leader")
    );
    // Polling only: nothing to block on.
    assert_eq!(c.wait_for_change(soon()), None);
}

#[test]
fn connection_errors_are_unknown_and_name_the_endpoint() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut c = client(&endpoint);
    match c.observe(soon()) {
        Observation::Unknown(why) => {
            assert!(
                why.contains(&format!("Patroni REST API at {endpoint}")),
                "{why}"
            );
            assert!(why.contains("not 127.0.0.1"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn once_compares_the_status_with_the_trigger_value() {
    if !crate::common::require_root("once_compares_the_status_with_the_trigger_value") {
        return;
    }
    let lab = Lab::new("patroni");
    let ns = lab.netns();
    let patroni = inside(&ns, || FakePatroni::start(8008, 200));
    // Defaults: endpoint http://127.0.0.1:8008, trigger-key /leader, trigger-value 200.
    let base: Vec<String> = [
        "--once",
        "--dry-run",
        "--ip",
        "192.0.2.50",
        "--netmask",
        "24",
        "--interface",
        "eth0",
        "--dcs-type",
        "patroni",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = vipd_once(&ns, &base);
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert!(
        out.stdout
            .contains("leader=\"200\" node=\"200\" desired=present"),
        "{out:?}"
    );
    patroni.set_status(503);
    let out = vipd_once(&ns, &base);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("desired=absent"), "{out:?}");
    drop(patroni);
    let out = vipd_once(&ns, &base);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        format!("{}{}", out.stdout, out.stderr)
            .contains("Patroni REST API at http://127.0.0.1:8008"),
        "{out:?}"
    );
}

#[test]
fn daemon_holds_the_vip_while_patroni_says_200() {
    if !crate::common::require_root("daemon_holds_the_vip_while_patroni_says_200") {
        return;
    }
    let lab = Lab::new("patroni");
    let ns = lab.netns();
    let patroni = inside(&ns, || FakePatroni::start(8008, 200));
    let args: Vec<String> = [
        "--ip",
        "192.0.2.50",
        "--netmask",
        "24",
        "--interface",
        "eth0",
        "--dcs-type",
        "patroni",
        "--interval",
        "100",
        "--dcs-grace",
        "800",
        "-v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut vipd = vipd(&ns, &args);
    assert!(
        wait_until(Duration::from_secs(5), || has_vip(&ns)),
        "{}",
        output(&vipd)
    );
    // A replica: released at the next poll.
    patroni.set_status(503);
    assert!(wait_until(Duration::from_secs(2), || !has_vip(&ns)));
    patroni.set_status(200);
    assert!(wait_until(Duration::from_secs(2), || has_vip(&ns)));
    // Patroni down: unknown, kept through the grace period, then released.
    drop(patroni);
    let down = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || !has_vip(&ns)),
        "{}",
        output(&vipd)
    );
    let after = down.elapsed();
    assert!(
        after >= Duration::from_millis(600),
        "released after {after:?}"
    );
    assert!(output(&vipd).contains("Patroni REST API at http://127.0.0.1:8008"));
    assert_eq!(terminate(&mut vipd, Duration::from_secs(2)), Some(0));
}

/// SIGHUP with another DCS type in the file: a new client, of that type, takes over.
#[test]
fn sighup_switches_to_another_dcs_type() {
    if !crate::common::require_root("sighup_switches_to_another_dcs_type") {
        return;
    }
    let lab = Lab::new("patroni");
    let ns = lab.netns();
    // Consul says another node leads; this node's Patroni says it leads.
    let consul = inside(&ns, || crate::fakes::FakeConsul::start(8500));
    consul.put("service/demo/leader", "pg2", Some("s1"));
    let patroni = inside(&ns, || FakePatroni::start(8008, 200));
    let base = "ip: 192.0.2.50\nnetmask: 24\ninterface: eth0\ninterval: 100\n";
    let file = lab.write(
        "vipd.yml",
        format!("{base}dcs-type: consul\ntrigger-key: /service/demo/leader\ntrigger-value: pg1\n")
            .as_bytes(),
    );
    let mut vipd = vipd(&ns, &["--config".to_string(), file.clone()]);
    assert!(
        wait_until(Duration::from_secs(3), || output(&vipd)
            .contains("leader is \"pg2\"")),
        "{}",
        output(&vipd)
    );
    assert!(!has_vip(&ns));
    assert!(patroni.http.requests().is_empty());
    lab.write("vipd.yml", format!("{base}dcs-type: patroni\n").as_bytes());
    vipd.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(3), || has_vip(&ns)),
        "{}",
        output(&vipd)
    );
    assert!(!patroni.http.requests().is_empty());
    assert_eq!(terminate(&mut vipd, Duration::from_secs(2)), Some(0));
}

//! The metrics server of a running vipd: `promtool check metrics` on a real scrape, a real
//! Prometheus (Debian's) scraping it inside the lab's namespace while the leader key moves,
//! clients that never send holding no more than their slots, and the alert rules shipped in
//! packaging/prometheus, checked and unit-tested with promtool.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where vipd serves its metrics, on the node namespace's own loopback.
const METRICS: &str = "127.0.0.1:9617";
/// Where the test's Prometheus answers, in the same namespace.
const PROMETHEUS: &str = "127.0.0.1:9090";

fn alert_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/prometheus/vipd-alerts.yml")
}

/// A connection to `addr` opened inside namespace `ns` (it stays there).
fn connect_in(ns: &Netns, addr: &str) -> Option<TcpStream> {
    let addr: SocketAddr = addr.parse().ok()?;
    in_netns(&ns.name, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()
    })
}

/// `GET path` (HTTP/1.0, so the reply is neither chunked nor kept alive) on `addr` inside
/// `ns`: the status and the body; `None` without a whole reply within 5 s.
fn get(ns: &Netns, addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = connect_in(ns, addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8(out).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The value of the sample `series` (name and labels as rendered) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?
        .parse()
        .ok()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus's answer to the instant query `q`: each series' labels and value.
fn query(ns: &Netns, q: &str) -> Vec<(serde_json::Value, f64)> {
    let path = format!("/api/v1/query?query={}", percent_encode(q));
    let Some((200, body)) = get(ns, PROMETHEUS, &path) else {
        return Vec::new();
    };
    let reply = json(&body);
    let Some(results) = reply["data"]["result"].as_array() else {
        return Vec::new();
    };
    results
        .iter()
        .filter_map(|r| {
            let value = r["value"][1].as_str()?.parse().ok()?;
            Some((r["metric"].clone(), value))
        })
        .collect()
}

/// The one value of `q`, when Prometheus has exactly one series for it.
fn one(ns: &Netns, q: &str) -> Option<f64> {
    match query(ns, q).as_slice() {
        [(_, v)] => Some(*v),
        _ => None,
    }
}

/// `promtool ARGS…` with `stdin`, bounded by timeout(1): exit code, stdout, stderr.
fn promtool(promtool: &Path, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(tool("timeout"))
        .arg("20")
        .arg(promtool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("promtool's stdin");
    }
    let out = child.wait_with_output().expect("promtool's output");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

#[test]
fn promtool_accepts_a_real_scrape_and_silent_clients_do_not_hold_the_loop() {
    let tools = gate!(Etcd, "promtool");
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let vipd = lab.vipd(&format!("--interval 500 --metrics-listen {METRICS}"));
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let configured = format!("vipd_vip_configured{{vip=\"{VIP}\",interface=\"{NODE_IF}\"}}");
    let mut scrape = String::new();
    within(
        ms(5000),
        "a scrape with the VIP configured",
        &|| vipd.log(),
        || match get(&lab.node, METRICS, "/metrics?ignored=1") {
            Some((200, body)) if sample(&body, &configured) == Some(1.0) => {
                scrape = body;
                true
            }
            _ => false,
        },
    );
    let (code, out, err) = promtool(&tools[0], &["check", "metrics"], &scrape);
    assert_eq!(
        code,
        Some(0),
        "promtool check metrics:\n{out}{err}\n{scrape}"
    );
    assert_eq!(
        format!("{out}{err}"),
        "",
        "promtool found problems:\n{scrape}"
    );
    assert_eq!(sample(&scrape, "vipd_dcs_up"), Some(1.0), "{scrape}");
    assert_eq!(
        sample(&scrape, "vipd_transitions_total{action=\"added\"}"),
        Some(1.0)
    );
    // The add was timed: one reaction, well under the interval.
    assert_eq!(
        sample(&scrape, "vipd_reaction_seconds_count"),
        Some(1.0),
        "{scrape}"
    );
    let reaction = sample(&scrape, "vipd_reaction_seconds_sum").unwrap_or(f64::NAN);
    eprintln!(
        "reaction to the leader key at start: {:.0} µs",
        reaction * 1e6
    );
    assert!(reaction < 0.5, "{scrape}");
    let last = sample(&scrape, "vipd_dcs_last_success_timestamp_seconds").unwrap_or(0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    assert!(
        (now - last).abs() < 60.0,
        "last DCS success {last}, now {now}"
    );
    assert_eq!(get(&lab.node, METRICS, "/").map(|r| r.0), Some(404));
    // A scrape wakes the loop: it is answered at once, not at the next turn (500 ms).
    let mut took: Vec<Duration> = (0..20)
        .map(|_| {
            let t = std::time::Instant::now();
            assert!(matches!(
                get(&lab.node, METRICS, "/metrics"),
                Some((200, _))
            ));
            t.elapsed()
        })
        .collect();
    took.sort();
    eprintln!(
        "scrape of {} bytes: median {:?}, max {:?}",
        scrape.len(),
        took[10],
        took[19]
    );
    assert!(took[10] < ms(50), "median scrape {:?}: {took:?}", took[10]);

    // Clients that connect and never send take every slot; the loop goes on regardless,
    // and a scrape waiting behind them is served once they are dropped (2 s).
    let silent: Vec<TcpStream> = (0..5)
        .filter_map(|_| connect_in(&lab.node, METRICS))
        .collect();
    assert_eq!(silent.len(), 5, "connections to {METRICS}");
    std::thread::sleep(ms(200));
    lab.etcd.put(KEY, "node2");
    within(
        ms(1500),
        "VIP removed while the metrics slots are held",
        &|| vipd.log(),
        || !lab.has_vip(),
    );
    let removed = "vipd_transitions_total{action=\"removed\"}";
    match get(&lab.node, METRICS, "/metrics") {
        Some((200, body)) => {
            assert_eq!(sample(&body, &configured), Some(0.0), "{body}");
            assert_eq!(sample(&body, removed), Some(1.0), "{body}");
        }
        other => panic!("scrape behind silent clients: {other:?}\n{}", vipd.log()),
    }
    drop(silent);
}

/// Prometheus's configuration: scrape vipd every second, evaluate the shipped rules.
fn prometheus_config(rules: &Path) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: vipd\n    static_configs:\n      - targets: ['{METRICS}']\n",
        rules.display()
    )
}

#[test]
fn prometheus_scrapes_vipd_and_follows_the_leader_key() {
    let tools = gate!(Etcd, "prometheus");
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let vipd = lab.vipd(&format!(
        "--interval 500 --announce-count 1 --metrics-listen {METRICS}"
    ));
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let dir = lab.dir("prometheus");
    let config = dir.write("prometheus.yml", prometheus_config(&alert_rules()));
    let prom_args = [
        format!("--config.file={config}"),
        format!("--storage.tsdb.path={}", dir.file("data")),
        format!("--web.listen-address={PROMETHEUS}"),
    ];
    let prom = Proc::spawn_in(&lab.node.name, &tools[0], &prom_args, true);
    let logs = || format!("{}\n--- prometheus:\n{}", vipd.log(), prom.log());
    let ns = &lab.node;
    within(
        ms(30_000),
        "Prometheus: vipd up, VIP configured",
        &logs,
        || one(ns, "up{job=\"vipd\"}") == Some(1.0) && one(ns, "vipd_vip_configured") == Some(1.0),
    );
    let series = query(ns, "vipd_vip_configured");
    let labels = &series[0].0;
    assert_eq!(labels["vip"], VIP, "{series:?}");
    assert_eq!(labels["interface"], NODE_IF, "{series:?}");
    assert_eq!(labels["instance"], METRICS, "{series:?}");
    assert_eq!(one(ns, "vipd_vip_desired"), Some(1.0));
    assert_eq!(
        one(ns, "vipd_transitions_total{action=\"removed\"}"),
        Some(0.0)
    );
    // The shipped alert rules load and evaluate.
    let rules =
        get(ns, PROMETHEUS, "/api/v1/rules").map_or(serde_json::Value::Null, |r| json(&r.1));
    let health: Vec<String> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| format!("{} {}", r["name"], r["health"]))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        health,
        ["\"VipdVipMissing\" \"ok\"", "\"VipdDcsDown\" \"ok\""],
        "{rules}"
    );

    lab.etcd.put(KEY, "node2");
    within(
        ms(15_000),
        "Prometheus: VIP not configured, one removal",
        &logs,
        || {
            one(ns, "vipd_vip_configured") == Some(0.0)
                && one(ns, "vipd_transitions_total{action=\"removed\"}") == Some(1.0)
        },
    );
    assert!(!lab.has_vip(), "{}", logs());
    assert_eq!(one(ns, "vipd_vip_desired"), Some(0.0));
    assert_eq!(one(ns, "up{job=\"vipd\"}"), Some(1.0));
}

/// A promtool unit test of the alert rules: 30 s of a wanted but missing VIP fires
/// `VipdVipMissing`, 30 s without the DCS `VipdDcsDown`, nothing before.
const RULE_TESTS: &str = r#"
evaluation_interval: 1s
tests:
  - interval: 5s
    input_series:
      - series: 'vipd_vip_desired{vip="192.0.2.50",interface="eth0",instance="n1:9617",job="vipd"}'
        values: '1x20'
      - series: 'vipd_vip_configured{vip="192.0.2.50",interface="eth0",instance="n1:9617",job="vipd"}'
        values: '1 1 0x18'
      - series: 'vipd_dcs_up{instance="n1:9617",job="vipd"}'
        values: '1 1 1 1 0x16'
    alert_rule_test:
      - eval_time: 35s
        alertname: VipdVipMissing
      - eval_time: 45s
        alertname: VipdVipMissing
        exp_alerts:
          - exp_labels:
              severity: critical
              vip: 192.0.2.50
              interface: eth0
              instance: n1:9617
              job: vipd
            exp_annotations:
              summary: 192.0.2.50 is not on eth0 of n1:9617
              description: vipd wants the VIP on this node but it has not been configured for 30 s.
      - eval_time: 45s
        alertname: VipdDcsDown
      - eval_time: 55s
        alertname: VipdDcsDown
        exp_alerts:
          - exp_labels:
              severity: warning
              instance: n1:9617
              job: vipd
            exp_annotations:
              summary: vipd on n1:9617 cannot reach its DCS
              description: No answer from the DCS for 30 s; vipd_dcs_last_success_timestamp_seconds tells since when.
"#;

#[test]
fn alert_rules_check_and_fire_after_30_s() {
    let tools = gate!(Tools, "promtool");
    let rules = alert_rules();
    let rules = rules.to_string_lossy();
    let (code, out, err) = promtool(&tools[0], &["check", "rules", &rules], "");
    assert_eq!(code, Some(0), "promtool check rules:\n{out}{err}");
    assert!(out.contains("SUCCESS: 2 rules found"), "{out}{err}");
    let dir = TempDir::new(&lab_id(), "rules");
    let test = dir.write(
        "vipd-alerts.test.yml",
        format!("rule_files:\n  - {rules}\n{RULE_TESTS}"),
    );
    let (code, out, err) = promtool(&tools[0], &["test", "rules", &test], "");
    assert_eq!(code, Some(0), "promtool test rules:\n{out}{err}");
}

//! SIGHUP reloads the configuration file: a bad file is reported and the running
//! configuration kept; a changed VIP or interface moves the address cleanly. Real
//! etcd and kernel, in the lab's namespaces (tests/common); gated like every lab test.

use crate::common::*;
use std::fs;
use std::path::Path;
use std::time::Duration;

fn write_config(path: &Path, ip: &str, interface: &str, endpoint: &str) {
    let text = format!(
        "# written by tests/reload.rs\n\
         ip: {ip}\n\
         netmask: 24\n\
         interface: {interface}\n\
         trigger-key: {KEY}\n\
         trigger-value: {NODE_NAME}\n\
         dcs-endpoints: [{endpoint}]\n\
         interval: 200\n\
         announce-count: 1\n"
    );
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn sighup_keeps_the_old_configuration_on_error_and_moves_a_changed_vip_and_interface() {
    gate!(Etcd);
    let lab = SingleNode::new();
    // A second interface for the move.
    lab.node.ip(&[
        "link", "add", "veth2", "type", "veth", "peer", "name", "veth3",
    ]);
    lab.node.ip(&["link", "set", "veth2", "up"]);
    lab.node.ip(&["link", "set", "veth3", "up"]);
    let dir = lab.dir("reload");
    let file = dir.path.join("vipd.yml");
    write_config(&file, VIP, NODE_IF, &lab.etcd.endpoint);
    lab.etcd.put(KEY, NODE_NAME);
    let args = vec!["--config".to_string(), file.display().to_string()];
    let mut vipd = lab.node.vipd(&args);
    let wait = Duration::from_secs(5);
    let on = |ifname: &str, ip: &str| {
        lab.node
            .addrs(ifname)
            .iter()
            .any(|(a, _)| a.to_string() == ip)
    };
    within(wait, "VIP added", &|| vipd.log(), || on(NODE_IF, VIP));

    // A bad file: reported in one line, the old configuration (and the VIP) kept.
    fs::write(&file, "ip: 10.0.0.300\ninterface: veth0\ntrigger-key: /k\n").unwrap();
    vipd.signal("HUP");
    let reported = wait_until(wait, POLL, || {
        vipd.stderr().contains("keeping the running configuration")
    });
    assert!(reported.is_some(), "bad file not reported\n{}", vipd.log());
    let line = vipd
        .stderr()
        .lines()
        .find(|l| l.contains("keeping the running configuration"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("10.0.0.300") && line.contains(":1:"),
        "the error names the value and file:line: {line}"
    );
    std::thread::sleep(ms(600));
    let log = vipd.log();
    assert!(vipd.is_running(), "vipd died on a bad reload\n{log}");
    assert!(on(NODE_IF, VIP), "VIP lost on a bad reload\n{log}");

    // A new VIP: the old address goes, the new one comes.
    write_config(&file, "192.0.2.51", NODE_IF, &lab.etcd.endpoint);
    vipd.signal("HUP");
    let moved = || !on(NODE_IF, VIP) && on(NODE_IF, "192.0.2.51");
    within(wait, "VIP moved to 192.0.2.51", &|| vipd.log(), moved);

    // A new interface: off veth0, onto veth2.
    write_config(&file, "192.0.2.51", "veth2", &lab.etcd.endpoint);
    vipd.signal("HUP");
    let moved = || !on(NODE_IF, "192.0.2.51") && on("veth2", "192.0.2.51");
    within(wait, "VIP moved to veth2", &|| vipd.log(), moved);
    let log = vipd.log();
    assert!(!on(NODE_IF, VIP), "old VIP came back\n{log}");

    let code = vipd.terminate(wait);
    let log = vipd.log();
    assert_eq!(code, Some(0), "exit status\n{log}");
    assert!(!on("veth2", "192.0.2.51"), "VIP left behind on exit\n{log}");
}

/// The lines of `vipd`'s stderr that contain `text`.
fn lines_with(vipd: &Proc, text: &str) -> Vec<String> {
    let err = vipd.stderr();
    err.lines()
        .filter(|l| l.contains(text))
        .map(str::to_string)
        .collect()
}

/// `metrics-listen` on an address that cannot be bound and `on-change` naming a missing
/// program: exit 2 with one line at start-up; on SIGHUP, one line and the running
/// configuration kept (its metrics server still answering).
#[test]
fn unbindable_metrics_and_missing_hooks_exit_2_or_keep_the_running_configuration() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    // A port taken in the node's namespace.
    let taken = in_netns(&lab.node.name, || {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port in the node")
    });
    let port = taken.local_addr().expect("local address").port();

    let out = lab.once(&format!("--once --metrics-listen 127.0.0.1:{port}"));
    // --once serves no metrics: the option does not stop it.
    assert_ne!(out.code(), Some(2), "{out:?}");
    let vipd = lab.vipd(&format!("--metrics-listen 127.0.0.1:{port}"));
    let out = vipd.finish(Duration::from_secs(10));
    assert_eq!(out.code(), Some(2), "{out:?}");
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{out:?}");
    assert!(errors[0].contains(&format!(
        "metrics-listen: cannot listen on 127.0.0.1:{port}"
    )));
    let out = lab.node.vipd_once(&vipd_args(
        NODE_IF,
        NODE_NAME,
        &lab.etcd.endpoint,
        "--once --on-change /nonexistent/hook",
    ));
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("\"/nonexistent/hook\""), "{out:?}");

    // Running with a metrics server, then two bad reloads.
    let dir = lab.dir("reload-ops");
    let file = dir.path.join("vipd.yml");
    write_config(&file, VIP, NODE_IF, &lab.etcd.endpoint);
    let good = format!(
        "{}metrics-listen: 127.0.0.1:9617\n",
        fs::read_to_string(&file).unwrap()
    );
    fs::write(&file, &good).unwrap();
    let args = vec!["--config".to_string(), file.display().to_string()];
    let mut vipd = lab.node.vipd(&args);
    let wait = Duration::from_secs(5);
    within(wait, "VIP added", &|| vipd.log(), || lab.has_vip());
    let bad = [
        format!("{good}metrics-listen: 127.0.0.1:{port}\n")
            .replace("metrics-listen: 127.0.0.1:9617\n", ""),
        format!("{good}on-change: /nonexistent/hook\n"),
    ];
    for (i, text) in bad.iter().enumerate() {
        fs::write(&file, text).unwrap();
        vipd.signal("HUP");
        let kept = || lines_with(&vipd, "keeping the running configuration").len() == i + 1;
        within(wait, "bad reload reported", &|| vipd.log(), kept);
    }
    let kept = lines_with(&vipd, "keeping the running configuration");
    assert!(
        kept[0].contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{kept:?}"
    );
    assert!(kept[1].contains("/nonexistent/hook"), "{kept:?}");
    assert!(vipd.is_running() && lab.has_vip(), "{}", vipd.log());
    // The running metrics server still answers.
    let scrape = in_netns(&lab.node.name, || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect("127.0.0.1:9617").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text)
    });
    let scrape = scrape.unwrap_or_default();
    assert!(scrape.contains("vipd_vip_configured"), "{scrape}");
    drop(taken);
}

//! `vipd --once` and `--once --dry-run` against a real etcd in a namespace (gated: root and
//! etcd), configuration errors (exit 2, no root needed), and self-tests of the lab's pcap
//! reader and ARP decoder.

use crate::common::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};
use vipd::net::arp::{ArpOp, garp_frame};

/// The one line `--once` prints, as key=value fields (quotes removed).
fn once_fields(out: &Outcome) -> HashMap<String, String> {
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "--once must print exactly one line on stdout, got {:?} (exit {:?}, stderr: {})",
        out.stdout,
        out.code(),
        out.stderr
    );
    lines[0]
        .split_whitespace()
        .filter_map(|tok| tok.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Checks the `--once` line has every field of `want` ("key=value key=value …").
fn expect_fields(out: &Outcome, want: &str) {
    let f = once_fields(out);
    let line = out.stdout.trim();
    for (k, v) in want.split_whitespace().filter_map(|kv| kv.split_once('=')) {
        let got = f.get(k).map(String::as_str);
        assert_eq!(got, Some(v), "--once line {line:?}: want {k}={v}");
    }
    assert!(
        line.contains(VIP),
        "--once line does not name the VIP: {line:?}"
    );
}

#[test]
fn once_adds_when_leader_and_then_does_nothing() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let start = Instant::now();
    let out = lab.once("--once");
    let took = start.elapsed();
    out.expect(0, "--once, leader = this node");
    expect_fields(
        &out,
        "leader=node1 node=node1 desired=present actual=absent action=added",
    );
    let prefixes = lab.node.prefixes_of(NODE_IF, vip());
    assert_eq!(prefixes, [VIP_LEN], "{}", out.stderr);
    assert!(took < Duration::from_secs(10), "--once took {took:?}");

    let out = lab.once("--once");
    out.expect(0, "--once again, VIP present");
    expect_fields(&out, "desired=present actual=present action=none");
    assert_eq!(lab.node.prefixes_of(NODE_IF, vip()), vec![VIP_LEN]);
}

#[test]
fn once_leader_elsewhere_removes_every_copy_and_nothing_else() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.add_addr("192.0.2.50/24");
    lab.add_addr("192.0.2.50/32");
    lab.add_addr("192.0.2.5/24");
    lab.etcd.put(KEY, "node2");
    let out = lab.once("--once");
    out.expect(0, "--once, leader = node2");
    expect_fields(
        &out,
        "leader=node2 node=node1 desired=absent actual=present action=removed",
    );
    let addrs = lab.node.addrs(NODE_IF);
    let left = lab.node.prefixes_of(NODE_IF, vip());
    assert!(left.is_empty(), "VIP left behind: {addrs:?}");
    for keep in [Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 5)] {
        let prefixes = lab.node.prefixes_of(NODE_IF, keep);
        assert_eq!(prefixes, [24], "{keep} touched: {addrs:?}");
    }
}

#[test]
fn once_dry_run_exits_3_when_a_change_is_needed_and_changes_nothing() {
    gate!(Etcd);
    let lab = SingleNode::new();
    let dry = "--once --dry-run";

    lab.etcd.put(KEY, NODE_NAME);
    let out = lab.once(dry);
    out.expect(3, "dry run, leader here, VIP absent");
    expect_fields(
        &out,
        "leader=node1 desired=present actual=absent action=would-add",
    );
    assert!(!lab.has_vip(), "--dry-run added the VIP");

    lab.add_addr("192.0.2.50/24");
    let out = lab.once(dry);
    out.expect(0, "dry run, leader here, VIP present");
    expect_fields(&out, "actual=present action=none");

    lab.etcd.put(KEY, "node2");
    let out = lab.once(dry);
    out.expect(3, "dry run, leader node2, VIP present");
    expect_fields(
        &out,
        "leader=node2 desired=absent actual=present action=would-remove",
    );
    assert!(lab.has_vip(), "--dry-run removed the VIP");

    lab.etcd.del(KEY);
    let out = lab.once(dry);
    out.expect(3, "dry run, no leader, VIP present");
    expect_fields(&out, "leader=none desired=absent action=would-remove");
    assert!(lab.has_vip(), "--dry-run removed the VIP");

    lab.del_addr("192.0.2.50/24");
    let out = lab.once(dry);
    out.expect(0, "dry run, no leader, VIP absent");
    expect_fields(&out, "leader=none actual=absent action=none");
    assert!(!lab.has_vip());
}

#[test]
fn once_exact_address_match_and_any_prefix_counts_as_present() {
    gate!(Etcd);
    let lab = SingleNode::new();
    let dry = "--once --dry-run";
    lab.etcd.put(KEY, NODE_NAME);
    lab.add_addr("192.0.2.5/24");
    let out = lab.once(dry);
    out.expect(3, "192.0.2.5 present (not the VIP 192.0.2.50)");
    expect_fields(&out, "actual=absent action=would-add");

    lab.add_addr("192.0.2.50/32");
    let out = lab.once(dry);
    out.expect(0, "VIP present at /32 (asked for /24)");
    expect_fields(&out, "actual=present action=none");
}

#[test]
fn once_exits_1_when_etcd_is_unreachable_and_keeps_the_vip() {
    gate!(Etcd);
    let mut lab = SingleNode::new();
    lab.add_addr("192.0.2.50/24");
    // Were the key read, node2 would mean "remove": unreachable must not be read as that.
    lab.etcd.put(KEY, "node2");
    let unreachable = [
        ("connection refused", "http://127.0.0.1:1"),
        ("no such host on the link", "http://192.0.2.99:2379"),
    ];
    for (what, endpoint) in unreachable {
        for extra in ["--once", "--once --dry-run"] {
            let args = vipd_args(NODE_IF, NODE_NAME, endpoint, extra);
            let start = Instant::now();
            let out = lab.node.vipd_once(&args);
            let took = start.elapsed();
            let what = format!("{what} ({endpoint}) {extra:?}");
            out.expect(1, &what);
            assert!(lab.has_vip(), "{what}: the VIP was removed\n{}", out.stderr);
            assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
        }
    }
    lab.etcd.stop();
    let out = lab.once("--once");
    out.expect(1, "etcd stopped");
    assert!(
        lab.has_vip(),
        "etcd stopped: the VIP was removed\n{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration errors: exit 2 and one stderr line naming the key. No root needed; --once
// --dry-run against a closed loopback port, so even a missed error changes nothing.

const UNREACHABLE: &str = "http://127.0.0.1:1";

/// The base the error cases start from, without the flags named in `without`.
fn base_args(without: &str) -> Vec<String> {
    let all = [
        ("--ip", VIP),
        ("--netmask", "24"),
        ("--interface", "lo"),
        ("--trigger-key", KEY),
        ("--trigger-value", "node1"),
        ("--dcs-endpoints", UNREACHABLE),
    ];
    let mut args = vec!["--once".to_string(), "--dry-run".to_string()];
    for (flag, value) in all {
        if !without.split_whitespace().any(|w| w == flag) {
            args.push(flag.to_string());
            args.push(value.to_string());
        }
    }
    args
}

fn run_vipd(args: &[String], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(vipd_bin());
    cmd.args(args);
    scrub_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn("vipd", cmd, true).finish(Duration::from_secs(20))
}

/// Whether `text` names `key` as a word: `ip`, `--ip`, `VIP_IP`, `dcs_endpoints`, …
fn names_key(text: &str, key: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(|w| {
            let w = w.to_ascii_lowercase().replace('_', "-");
            let w = w.trim_start_matches('-').to_string();
            w.strip_prefix("vip-").map(str::to_string).unwrap_or(w)
        })
        .any(|w| w == key)
}

/// Checks exit 2 and exactly one stderr line naming `key` (and `value` when given).
fn config_error(out: &Outcome, key: &str, value: Option<&str>) -> Result<(), String> {
    let lines = out.stderr.lines().filter(|l| !l.trim().is_empty()).count();
    let mut problems = Vec::new();
    if out.code() != Some(2) {
        problems.push(format!("{}, want exit status 2", out.status));
    }
    if lines != 1 {
        problems.push(format!("{lines} stderr lines, want 1"));
    }
    if !names_key(&out.stderr, key) {
        problems.push(format!("stderr does not name the key {key}"));
    }
    if let Some(v) = value {
        if !out.stderr.contains(v) {
            problems.push(format!("stderr does not show the value {v:?}"));
        }
    }
    let (stderr, stdout) = (&out.stderr, &out.stdout);
    let problems = problems.join("; ");
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{problems} (stderr: {stderr:?}, stdout: {stdout:?})"
        )),
    }
}

#[test]
fn valid_base_configuration_is_not_a_config_error() {
    // The base the error cases start from: only the closed etcd port makes it fail (exit 1).
    run_vipd(&base_args(""), &[]).expect(1, "the base configuration, etcd unreachable");
}

#[test]
fn config_errors_exit_2_with_one_line_naming_the_key() {
    // What | flags left out of the base | flags added | environment | key named | value shown
    let cases = "\
        netmask out of range | --netmask | --netmask 40 | | netmask | 40
        malformed IP | --ip | --ip 192.0.2.300 | | ip | 192.0.2.300
        endpoint, no scheme | --dcs-endpoints | --dcs-endpoints 127.0.0.1:2379 | | dcs-endpoints | 127.0.0.1:2379
        unknown dcs-type | | --dcs-type zookeeper | | dcs-type | zookeeper
        interval not a number | | --interval soon | | interval | soon
        unknown announce-mode | | --announce-mode shout | | announce-mode | shout
        missing ip | --ip | | | ip |
        empty interface means unset: missing | --interface | --interface= | | interface |
        missing trigger-key | --trigger-key | | | trigger-key |
        unknown flag | | --frobnicate 1 | | frobnicate |
        netmask from the environment | --netmask | | VIP_NETMASK=40 | netmask | 40
        --key=value form | --netmask | --netmask=33 | | netmask | 33";
    let mut failures = Vec::new();
    for case in cases.lines() {
        let columns: Vec<&str> = case.split('|').map(str::trim).collect();
        let [what, without, add, env, key, value] = columns[..] else {
            panic!("a case of six columns: {case:?}");
        };
        let mut args = base_args(without);
        args.extend(crate::common::args(add));
        let env: Vec<(&str, &str)> = env.split(' ').filter_map(|v| v.split_once('=')).collect();
        let out = run_vipd(&args, &env);
        let value = Some(value).filter(|v| !v.is_empty());
        if let Err(e) = config_error(&out, key, value) {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "config errors:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn config_file_error_exits_2_naming_file_line_and_key() {
    let dir = TempDir::new(&lab_id(), "cfg");
    let file = dir.path.join("vipd.yml");
    std::fs::write(&file, "ip: 192.0.2.50\nnetmask: 40\ninterface: lo\n").unwrap();
    let mut args = base_args("--ip --netmask --interface");
    args.push("--config".to_string());
    args.push(file.to_string_lossy().into_owned());
    let out = run_vipd(&args, &[]);
    let place = format!("{}:2", file.display());
    let mut problems = Vec::new();
    if let Err(e) = config_error(&out, "netmask", Some("40")) {
        problems.push(e);
    }
    if !out.stderr.contains(&place) {
        problems.push(format!("stderr does not name {place}: {:?}", out.stderr));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The lab's own pcap reader and ARP decoder.

#[test]
fn lab_pcap_reader_and_arp_decoder() {
    let mac = [0x02, 0, 0x5e, 0x10, 0x20, 0x30];
    let vip = Ipv4Addr::new(192, 0, 2, 50);
    let frame = garp_frame(mac, vip, ArpOp::Request).to_vec();
    let other = [0u8; 60];
    for (big_endian, magic, frac_unit) in [
        (false, 0xa1b2_c3d4, 1000),
        (true, 0xa1b2_c3d4, 1000),
        (false, 0xa1b2_3c4d, 1),
    ] {
        let frac = 250_000 * 1000 / frac_unit;
        let bytes = pcap(
            big_endian,
            magic,
            &[(1_700_000_000, frac, &frame), (1_700_000_001, 0, &other)],
        );
        let mut r = PcapReader::new(&bytes[..]).expect("header");
        let f1 = r.next_frame().expect("record 1").expect("frame 1");
        let f2 = r.next_frame().expect("record 2").expect("frame 2");
        assert!(r.next_frame().expect("clean end").is_none());
        let t1 = f1.ts.duration_since(std::time::UNIX_EPOCH).unwrap();
        let want = Duration::new(1_700_000_000, 250_000_000);
        assert_eq!(t1, want, "be={big_endian} magic={magic:#x}");
        assert_eq!(f1.data, frame);
        assert_eq!(f2.data.len(), 60);
        let a = Arp::parse(&f1.data).expect("ARP");
        assert!(a.is_garp_request(vip, mac), "{a}");
        assert!(!a.is_garp_request(Ipv4Addr::new(192, 0, 2, 5), mac));
        assert!(!a.is_garp_request(vip, [2, 0, 0, 0, 0, 1]));
        assert_eq!(Arp::parse(&f2.data), None, "not ARP (ethertype 0)");
    }
    // A reply, a truncated stream, a bad magic.
    let mut reply = frame.clone();
    reply[21] = 2;
    let reply = Arp::parse(&reply).expect("a reply is ARP");
    assert_eq!(reply.op, 2);
    assert!(!reply.is_garp_request(vip, mac));
    let bytes = pcap(false, 0xa1b2_c3d4, &[(1, 0, &frame)]);
    let mut r = PcapReader::new(&bytes[..bytes.len() - 5]).unwrap();
    assert!(r.next_frame().is_err(), "truncated record accepted");
    let bad_magic = PcapReader::new(&[0u8; 24][..]);
    assert!(bad_magic.is_err(), "bad magic accepted");
    assert!(parse_mac("02:00:5e:10:20:30") == Some(mac) && parse_mac("02:00:5e:10:20").is_none());
    let addrs = parse_addrs(
        r#"[{"ifindex":2,"ifname":"veth0","addr_info":[{"family":"inet","local":"192.0.2.11","prefixlen":24},{"family":"inet","local":"192.0.2.50","prefixlen":32},{"family":"inet6","local":"2001:db8::1","prefixlen":64}]}]"#,
    )
    .unwrap();
    assert_eq!(addrs, [(Ipv4Addr::new(192, 0, 2, 11), 24), (vip, 32)]);
}

#[test]
fn once_json_and_the_daemons_status_file_describe_the_state() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, "node2");
    let out = lab.once("--once --dry-run --json");
    out.expect(0, "--once --dry-run --json, another node leads");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("--json printed no JSON object ({e}): {:?}", out.stdout));
    let vip = format!("{VIP}/{VIP_LEN}");
    let want = [
        ("leader", "node2"),
        ("dcs", "leader"),
        ("node", NODE_NAME),
        ("vip", &vip),
    ];
    let states = [
        ("desired", "absent"),
        ("actual", "absent"),
        ("action", "none"),
    ];
    for (k, want) in want.into_iter().chain(states) {
        assert_eq!(v[k].as_str(), Some(want), "{k} in {v}");
    }
    assert!(v["error"].is_null(), "{v}");

    // The daemon keeps the state in the status file and rewrites it on a change.
    let dir = lab.dir("status");
    let file = dir.path.join("vipd.json");
    let path = file.display();
    let mut vipd = lab.vipd(&format!(
        "--interval 200 --announce-count 1 --status-file {path}"
    ));
    let read = || fs_json(&file);
    let seen = wait_until(Duration::from_secs(5), POLL, || {
        read().is_some_and(|v| v["leader"] == "node2")
    });
    assert!(seen.is_some(), "status file not written\n{}", vipd.log());
    lab.etcd.put(KEY, NODE_NAME);
    let seen = wait_until(Duration::from_secs(5), POLL, || {
        read().is_some_and(|v| {
            v["leader"] == NODE_NAME && v["desired"] == "present" && v["actual"] == "present"
        })
    });
    assert!(
        seen.is_some(),
        "status file not rewritten after the move: {:?}\n{}",
        read(),
        vipd.log()
    );
    let v = read().unwrap();
    let last_success = v["last_dcs_success"].as_str();
    assert!(last_success.is_some_and(|t| t.ends_with('Z')), "{v}");
    assert!(lab.has_vip());
    let code = vipd.terminate(Duration::from_secs(5));
    assert_eq!(code, Some(0), "{}", vipd.log());
}

fn fs_json(path: &std::path::Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

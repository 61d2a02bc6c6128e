//! `on-change` hooks run by the real daemon against a real etcd: in the order of the
//! changes, none lost but those the log counts as dropped, with a clean environment.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// Writes an executable script `name` into `dir`; its path.
fn script(dir: &TempDir, name: &str, body: &str) -> String {
    let path = dir.write(name, format!("#!/bin/sh\n{body}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {path}: {e}"));
    path
}

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The VIP changes vipd logged, in order: "added" or "removed".
fn logged_changes(log: &str) -> Vec<&'static str> {
    let (added, removed) = (format!(" added {VIP}/"), format!(" removed {VIP} from "));
    log.lines()
        .filter_map(|l| {
            if l.contains(&added) {
                Some("added")
            } else if l.contains(&removed) {
                Some("removed")
            } else {
                None
            }
        })
        .collect()
}

/// The events dropped from a full queue, as the log counts them.
fn logged_drops(log: &str) -> usize {
    log.lines()
        .filter_map(|l| {
            l.split_once("on-change: ")?
                .1
                .strip_suffix(" events dropped (queue full)")
        })
        .map(|n| n.parse::<usize>().unwrap_or_else(|e| panic!("{n:?}: {e}")))
        .sum()
}

/// Whether `small` is `big` with some items left out, the order kept.
fn is_subsequence(small: &[String], big: &[&str]) -> bool {
    let mut rest = big.iter();
    small.iter().all(|s| rest.any(|b| b == s))
}

#[test]
fn hooks_follow_a_flapping_key_in_order() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, "node2");
    let dir = lab.dir("hooks");
    let events = dir.file("events");
    let hook = script(
        &dir,
        "hook.sh",
        &format!("echo \"$VIPD_EVENT\" >> {events}\n"),
    );
    let mut vipd = lab.vipd(&format!(
        "--interval 200 --announce-count 0 --on-change {hook}"
    ));
    std::thread::sleep(ms(600));
    check!(vipd, !lab.has_vip(), "VIP added while node2 leads");

    // 100 changes of leader 20 ms apart, node1 first and node2 last.
    let endpoint = lab.etcd.endpoint.clone();
    let flapped = in_netns(&lab.node.name, move || {
        let etcd = EtcdHttp::new(&endpoint);
        let start = Instant::now();
        for i in 0..100u32 {
            let leader = if i % 2 == 0 { NODE_NAME } else { "node2" };
            etcd.put(KEY, leader)?;
            let next = start + ms(20) * (i + 1);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok::<_, String>(start.elapsed())
    });
    let took = flapped.unwrap_or_else(|e| panic!("etcd put: {e}"));
    // Settled: the VIP gone, and the hooks' file unchanged for a second.
    within(
        Duration::from_secs(5),
        "VIP removed at the end",
        &|| vipd.log(),
        || !lab.has_vip(),
    );
    let mut last = (lines(&events).len(), Instant::now());
    let t0 = Instant::now();
    while last.1.elapsed() < Duration::from_secs(1) && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(ms(50));
        let n = lines(&events).len();
        if n != last.0 {
            last = (n, Instant::now());
        }
    }
    let code = vipd.terminate(Duration::from_secs(5));
    let log = vipd.log();
    assert_eq!(code, Some(0), "{log}");

    let changes = logged_changes(&log);
    let drops = logged_drops(&log);
    let ran = lines(&events);
    eprintln!(
        "flapped 100 times in {} ms: vipd made {} changes, {} hooks ran, {drops} dropped",
        took.as_millis(),
        changes.len(),
        ran.len()
    );
    assert!(changes.len() >= 10, "few changes seen:\n{log}");
    for (i, w) in changes.windows(2).enumerate() {
        assert_ne!(w[0], w[1], "change {i} and the next are alike:\n{log}");
    }
    assert_eq!(changes[0], "added", "{log}");
    assert_eq!(ran.len() + drops, changes.len(), "{ran:?}\n{log}");
    if drops == 0 {
        assert_eq!(ran, changes, "{log}");
    } else {
        assert!(is_subsequence(&ran, &changes), "{ran:?}\n{log}");
    }
    assert!(
        !log.contains("on-change["),
        "a hook failed or wrote:\n{log}"
    );
}

/// A hook that writes, for the test to read: its environment (`OUT.EVENT.env`), its
/// capabilities (`OUT.caps`), its first argument (`OUT.arg`) and how many sockets or
/// anonymous inodes it holds (`OUT.sockets`).
fn env_hook(dir: &TempDir, out: &str) -> String {
    // /proc/$$/environ is the environment the hook was started with, exactly; $1
    // shows that the YAML list's arguments arrive unsplit.
    script(
        dir,
        "hook.sh",
        &format!(
            "tr '\\0' '\\n' < /proc/$$/environ > {out}.$VIPD_EVENT.env\n\
             grep -E '^(Cap(Inh|Prm|Eff|Amb)|NoNewPrivs):' /proc/$$/status > {out}.caps\n\
             echo \"$1\" > {out}.arg\n\
             ls -l /proc/$$/fd/ | grep -cE 'socket:|anon_inode:' > {out}.sockets\n\
             echo hook output\n"
        ),
    )
}

/// vipd with `config`, an etcd user and `secret` as its password and in another
/// variable. etcd runs without authentication: vipd then reads without a token, but
/// holds the password all along.
fn vipd_with_secrets(lab: &SingleNode, config: &str, secret: &str) -> Proc {
    let mut cmd = Command::new(tool("ip"));
    scrub_env(&mut cmd);
    cmd.args(["netns", "exec", &lab.node.name])
        .arg(vipd_bin())
        .args(vipd_args(
            NODE_IF,
            NODE_NAME,
            &lab.etcd.endpoint,
            &format!("--config {config} --interval 200 --announce-count 0 -v"),
        ))
        .env("VIP_ETCD_PASSWORD", secret)
        .env("VIPD_SECRET_TOKEN", secret);
    Proc::spawn("vipd", cmd, true)
}

#[test]
fn hooks_get_no_secret_and_only_vipd_capabilities() {
    gate!(Etcd);
    const PASSWORD: &str = "Hook-Must-Not-See-This-9";
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let dir = lab.dir("hook-env");
    let out = dir.file("out");
    let hook = env_hook(&dir, &out);
    let config = dir.write(
        "vipd.yml",
        format!("on-change: [\"{hook}\", \"two words\"]\netcd-user: patroni\n"),
    );
    let mut vipd = vipd_with_secrets(&lab, &config, PASSWORD);
    wait_vip(|| lab.has_vip(), &vipd, "start");
    let env_file = format!("{out}.added.env");
    within(
        Duration::from_secs(5),
        "the hook ran",
        &|| vipd.log(),
        || vipd.log().contains("on-change[added]: hook output"),
    );
    let code = vipd.terminate(Duration::from_secs(5));
    let log = vipd.log();
    assert_eq!(code, Some(0), "{log}");

    let mut env = lines(&env_file);
    env.sort();
    let path = env.iter().find(|v| v.starts_with("PATH=")).cloned();
    assert!(path.is_some(), "{env:?}");
    let want = [
        path.unwrap_or_default(),
        "VIPD_EVENT=added".into(),
        format!("VIPD_INTERFACE={NODE_IF}"),
        format!("VIPD_LEADER={NODE_NAME}"),
        format!("VIPD_NODE={NODE_NAME}"),
        format!("VIPD_VIP={VIP}"),
    ];
    assert_eq!(env, want, "{log}");
    assert_eq!(lines(&format!("{out}.arg")), ["two words"]);
    // None of vipd's sockets (netlink, packet, etcd) or pidfds leaked into the hook.
    assert_eq!(lines(&format!("{out}.sockets")), ["0"]);
    let caps = lines(&format!("{out}.caps"));
    eprintln!("the hook's capabilities: {caps:?}");
    assert_eq!(
        caps,
        [
            "CapInh:\t0000000000000000",
            "CapPrm:\t0000000000003000",
            "CapEff:\t0000000000003000",
            "CapAmb:\t0000000000000000",
            "NoNewPrivs:\t1",
        ],
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
    let removed = lines(&format!("{out}.removed.env"));
    assert!(
        removed.contains(&"VIPD_EVENT=removed".to_string()),
        "{removed:?}"
    );
    assert_eq!(removed.len(), want.len(), "{removed:?}");
    // The release at exit is a change too: its hook ran before vipd exited.
    assert!(log.contains("on-change[removed]: hook output"), "{log}");
}

/// The DCS going silent and coming back, through the running daemon: `dcs-lost` and
/// `dcs-back` hooks in that order after the `added`, with the leader in the environment
/// while it is known, and the VIP kept by the grace meanwhile.
#[test]
fn hooks_tell_the_dcs_lost_and_back() {
    gate!(Etcd);
    let mut lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let dir = lab.dir("hooks-dcs");
    let events = dir.file("events");
    let hook = script(
        &dir,
        "hook.sh",
        &format!("echo \"$VIPD_EVENT $VIPD_LEADER\" >> {events}\n"),
    );
    let mut vipd = lab.vipd(&format!(
        "--interval 200 --dcs-grace 60000 --announce-count 0 --on-change {hook}"
    ));
    let has_events = |n: usize| lines(&events).len() >= n;
    within(Duration::from_secs(5), "added hook", &|| vipd.log(), || {
        has_events(1)
    });
    lab.etcd.stop();
    within(
        Duration::from_secs(10),
        "dcs-lost hook",
        &|| vipd.log(),
        || has_events(2),
    );
    check!(vipd, lab.has_vip(), "VIP lost within the grace");
    lab.etcd.restart();
    within(
        Duration::from_secs(20),
        "dcs-back hook",
        &|| vipd.log(),
        || has_events(3),
    );
    assert_eq!(
        vipd.terminate(Duration::from_secs(5)),
        Some(0),
        "{}",
        vipd.log()
    );
    let ran = lines(&events);
    assert_eq!(
        ran[..3],
        [
            format!("added {NODE_NAME}"),
            "dcs-lost ".to_string(),
            format!("dcs-back {NODE_NAME}"),
        ],
        "{}",
        vipd.log()
    );
    // The release at exit comes last.
    assert_eq!(
        ran.last().map(String::as_str),
        Some(&*format!("removed {NODE_NAME}"))
    );
}

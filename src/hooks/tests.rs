//! Hooks with real child processes (`/bin/sh` scripts as the hook) and vipd's log
//! captured per test thread.

use std::path::PathBuf;
use std::sync::{Mutex, Once};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::*;

/// Every record logged, with the thread that logged it (tests run in parallel).
static RECORDS: Mutex<Vec<(ThreadId, Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        let entry = (
            std::thread::current().id(),
            record.level(),
            record.args().to_string(),
        );
        RECORDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
    }
    fn flush(&self) {}
}

fn capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = log::set_logger(&Capture);
        log::set_max_level(LevelFilter::Debug);
    });
}

/// What this thread logged.
fn logged() -> Vec<(Level, String)> {
    let me = std::thread::current().id();
    let records = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    records
        .iter()
        .filter(|r| r.0 == me)
        .map(|r| (r.1, r.2.clone()))
        .collect()
}

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vipd-hooks-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `/bin/sh -c script` as the hook (run through sh, not executed from a file just
/// written, which a fork in a parallel test could make "text file busy").
fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn ev(kind: Kind, vip: &str) -> Event {
    Event {
        kind,
        vip: vip.into(),
        interface: "eth0".into(),
        leader: "node1".into(),
        node: "node1".into(),
    }
}

/// Turn the hooks as the loop does (poll the interest until the deadline, step)
/// until idle; bounded in turns and time. Returns how long it took.
fn drive(h: &mut Hooks, limit: Duration) -> Duration {
    let t0 = Instant::now();
    for _ in 0..100_000 {
        h.step(Instant::now());
        if !h.busy() || t0.elapsed() > limit {
            break;
        }
        let mut fds = Vec::new();
        h.interest(&mut fds);
        let wait = h
            .deadline()
            .map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(100));
        let ms = i32::try_from(wait.as_millis()).unwrap_or(100).max(1);
        let _ = crate::net::sys::poll(&mut fds, ms);
    }
    t0.elapsed()
}

fn read_lines(p: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_hundred_events_run_in_their_order_one_at_a_time() {
    let d = dir("order");
    let file = d.join("events");
    // A hook that sees another still running (the lock dir exists) records it.
    let script = format!(
        "mkdir {0}/lock || echo OVERLAP >> {1}; echo \"$VIPD_EVENT $VIPD_VIP\" >> {1}; \
         rmdir {0}/lock",
        d.display(),
        file.display()
    );
    let mut h = Hooks::new(sh(&script), Duration::from_secs(5));
    let mut want = Vec::new();
    for i in 0..100 {
        let kind = if i % 2 == 0 {
            Kind::Added
        } else {
            Kind::Removed
        };
        let vip = format!("192.0.2.{i}");
        want.push(format!("{} {vip}", kind.name()));
        h.push(ev(kind, &vip));
        h.step(Instant::now());
        // Keep the queue from overflowing: this test is about order.
        if h.queued() >= QUEUE - 4 {
            let t0 = Instant::now();
            while h.queued() > QUEUE / 2 && t0.elapsed() < Duration::from_secs(20) {
                let mut fds = Vec::new();
                h.interest(&mut fds);
                let _ = crate::net::sys::poll(&mut fds, 50);
                h.step(Instant::now());
            }
        }
    }
    drive(&mut h, Duration::from_secs(30));
    assert!(!h.busy());
    assert_eq!(read_lines(&file), want);
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_exactly() {
    capture();
    let d = dir("overflow");
    let file = d.join("events");
    let mut h = Hooks::new(
        sh(&format!("echo \"$VIPD_VIP\" >> {}", file.display())),
        Duration::from_secs(5),
    );
    for i in 0..100 {
        h.push(ev(Kind::Added, &format!("192.0.2.{i}")));
    }
    assert_eq!(h.queued(), QUEUE);
    drive(&mut h, Duration::from_secs(30));
    let want: Vec<String> = (100 - QUEUE..100).map(|i| format!("192.0.2.{i}")).collect();
    assert_eq!(read_lines(&file), want);
    let drops: Vec<_> = logged()
        .into_iter()
        .filter(|(_, m)| m.contains("dropped"))
        .collect();
    assert_eq!(
        drops,
        [(
            Level::Warn,
            format!("on-change: {} events dropped (queue full)", 100 - QUEUE)
        )]
    );
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it runs no more).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_timeout_kills_the_hook_and_what_it_started() {
    capture();
    let d = dir("timeout");
    let pids = d.join("pids");
    let script = format!(
        "sleep 60 & echo $$ $! > {}; wait; echo not reached",
        pids.display()
    );
    let mut h = Hooks::new(sh(&script), Duration::from_millis(300));
    h.push(ev(Kind::Removed, "192.0.2.7"));
    let took = drive(&mut h, Duration::from_secs(10));
    assert!(!h.busy());
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let pids = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<&str> = pids.split_whitespace().collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    // The sleep is not ours to reap: give its reaper a moment (bounded).
    let t0 = Instant::now();
    while !pids.iter().all(|p| gone(p)) && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gone(pids[0]), "the hook {} runs", pids[0]);
    assert!(gone(pids[1]), "its sleep {} runs", pids[1]);
    let log = logged();
    let kills: Vec<_> = log.iter().filter(|(_, m)| m.contains("killed")).collect();
    assert_eq!(kills.len(), 1, "{log:?}");
    assert!(
        kills[0]
            .1
            .starts_with("on-change[removed]: killed (with its process group) after 3")
            && kills[0].1.ends_with(" ms: on-change-timeout"),
        "{}",
        kills[0].1
    );
    assert!(!log.iter().any(|(_, m)| m.contains("not reached")));
}

#[test]
fn the_environment_holds_only_path_and_the_event() {
    capture();
    let mut h = Hooks::new(vec!["/usr/bin/env".into()], Duration::from_secs(5));
    h.push(Event {
        kind: Kind::DcsLost,
        vip: "2001:db8::7".into(),
        interface: "bond0".into(),
        leader: String::new(),
        node: "pg-2".into(),
    });
    drive(&mut h, Duration::from_secs(5));
    let log = logged();
    assert!(!log.iter().any(|(l, _)| *l <= Level::Warn), "{log:?}");
    let mut env: Vec<String> = log
        .into_iter()
        .filter(|(l, _)| *l == Level::Info)
        .filter_map(|(_, m)| m.strip_prefix("on-change[dcs-lost]: ").map(String::from))
        .collect();
    env.sort();
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into());
    assert_eq!(
        env,
        [
            format!("PATH={path}"),
            "VIPD_EVENT=dcs-lost".into(),
            "VIPD_INTERFACE=bond0".into(),
            "VIPD_LEADER=".into(),
            "VIPD_NODE=pg-2".into(),
            "VIPD_VIP=2001:db8::7".into(),
        ]
    );
}

#[test]
fn output_reaches_the_log_and_a_failure_is_one_warning() {
    capture();
    let script = "echo out one; echo err one >&2; printf 'x%.0s' $(seq 3000); echo; \
                  printf 'tab\\there\\033[31m no newline'; cat; exit 3";
    let mut h = Hooks::new(sh(script), Duration::from_secs(5));
    h.push(ev(Kind::Conflict, "192.0.2.9"));
    drive(&mut h, Duration::from_secs(5));
    let log = logged();
    let long = format!("on-change[conflict]: {}...", "x".repeat(MAX_LINE));
    for want in [
        (Level::Info, "on-change[conflict]: out one"),
        (Level::Warn, "on-change[conflict]: err one"),
        (Level::Info, long.as_str()),
        (
            Level::Info,
            "on-change[conflict]: tab\there?[31m no newline",
        ),
    ] {
        assert!(
            log.iter().any(|(l, m)| (*l, m.as_str()) == want),
            "{want:?} not in {log:?}"
        );
    }
    let exits: Vec<_> = log.iter().filter(|(_, m)| m.contains("exited")).collect();
    assert_eq!(exits.len(), 1, "{log:?}");
    assert_eq!(exits[0].0, Level::Warn);
    assert!(
        exits[0]
            .1
            .starts_with("on-change[conflict]: exited with status 3 after ")
    );
    assert_eq!(
        log.len(),
        5,
        "nothing else, the cut line's rest neither: {log:?}"
    );
}

#[test]
fn a_missing_program_is_one_line_per_event_and_the_next_goes_on() {
    capture();
    let mut h = Hooks::new(
        vec!["/nonexistent/vipd-hook".into()],
        Duration::from_secs(1),
    );
    h.push(ev(Kind::Added, "192.0.2.1"));
    h.push(ev(Kind::Removed, "192.0.2.1"));
    h.step(Instant::now());
    assert!(!h.busy());
    let log = logged();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log[0]
            .1
            .starts_with("on-change[added]: cannot run /nonexistent/vipd-hook: ")
    );
    assert!(log[1].1.starts_with("on-change[removed]: cannot run"));
}

#[test]
fn shutdown_gives_all_hooks_one_timeout_in_all() {
    capture();
    let d = dir("shutdown");
    let file = d.join("events");
    let script = format!(
        "echo \"start $VIPD_VIP\" >> {}; sleep 0.2; [ \"$VIPD_VIP\" != 192.0.2.3 ] || sleep 60",
        file.display()
    );
    let mut h = Hooks::new(sh(&script), Duration::from_secs(10));
    for i in 1..=5 {
        h.push(ev(Kind::Added, &format!("192.0.2.{i}")));
    }
    let t0 = Instant::now();
    h.shutdown(Duration::from_millis(1000));
    let took = t0.elapsed();
    assert!(!h.busy());
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(1300),
        "{took:?}"
    );
    // Two hooks ended, the third hung and was killed, two never started.
    assert_eq!(
        read_lines(&file),
        ["start 192.0.2.1", "start 192.0.2.2", "start 192.0.2.3"]
    );
    let log = logged();
    assert_eq!(
        log.iter()
            .filter(|(l, _)| matches!(l, Level::Error | Level::Info))
            .count(),
        0,
        "{log:?}"
    );
    let warn: Vec<_> = log.iter().filter(|(l, _)| *l == Level::Warn).collect();
    assert_eq!(warn.len(), 1, "{log:?}");
    assert_eq!(
        warn[0].1,
        "on-change: exiting: killed the hook for added after 1000 ms in all, 2 events not run"
    );
}

#[test]
fn an_idle_shutdown_returns_at_once() {
    let mut h = Hooks::new(sh("exit 0"), Duration::from_secs(10));
    let t0 = Instant::now();
    h.shutdown(Duration::from_secs(10));
    assert!(t0.elapsed() < Duration::from_millis(50));
    assert_eq!(h.deadline(), None);
}

#[test]
fn lines_are_cut_bounded_and_cleaned() {
    let mut out = Vec::new();
    let mut l = Lines::default();
    l.feed(b"a\r\nb", &mut |s| out.push(s));
    l.feed(b"c\n\n", &mut |s| out.push(s));
    assert_eq!(out, ["a", "bc", ""]);
    out.clear();
    l.feed(&vec![b'y'; MAX_LINE * 3], &mut |s| out.push(s));
    l.feed(b"yy\nz\xff\x1b", &mut |s| out.push(s));
    l.finish(&mut |s| out.push(s));
    assert_eq!(
        out,
        [format!("{}...", "y".repeat(MAX_LINE)), "z\u{fffd}?".into()]
    );
    out.clear();
    l.feed(&vec![b'w'; MAX_LINE], &mut |s| out.push(s));
    l.feed(b"\n", &mut |s| out.push(s));
    assert_eq!(out, ["w".repeat(MAX_LINE)], "exactly the bound: whole");
}

#[test]
fn events_are_named_as_the_environment_says() {
    let names = [
        Kind::Added,
        Kind::Removed,
        Kind::Conflict,
        Kind::DcsLost,
        Kind::DcsBack,
    ]
    .map(Kind::name);
    assert_eq!(
        names,
        ["added", "removed", "conflict", "dcs-lost", "dcs-back"]
    );
}

#[test]
fn no_program_means_no_hooks() {
    let mut h = Hooks::new(Vec::new(), Duration::from_secs(1));
    h.push(ev(Kind::Added, "192.0.2.1"));
    assert!(!h.busy());
}

#[test]
fn a_new_program_runs_the_events_after_the_running_one() {
    let d = dir("reload");
    let file = d.join("events");
    let line = |tag: &str| sh(&format!("echo {tag} $VIPD_EVENT >> {}", file.display()));
    let mut h = Hooks::new(line("old"), Duration::from_secs(5));
    h.push(ev(Kind::Added, "192.0.2.1"));
    h.push(ev(Kind::Removed, "192.0.2.1"));
    h.step(Instant::now());
    h.set_program(line("new"), Duration::from_secs(5));
    drive(&mut h, Duration::from_secs(5));
    assert_eq!(read_lines(&file), ["old added", "new removed"]);
    h.push(ev(Kind::Added, "192.0.2.1"));
    h.set_program(Vec::new(), Duration::from_secs(5));
    assert!(!h.busy(), "no program: nothing waits");
}

#[test]
fn a_flood_of_short_lines_is_logged_bounded_and_counted() {
    capture();
    let mut h = Hooks::new(sh("seq 1000"), Duration::from_secs(5));
    h.push(ev(Kind::DcsBack, "192.0.2.4"));
    drive(&mut h, Duration::from_secs(5));
    let log = logged();
    let shown = log
        .iter()
        .filter(|(l, m)| *l == Level::Info && m.starts_with("on-change[dcs-back]: "))
        .count();
    let skipped: usize = log
        .iter()
        .filter_map(|(_, m)| {
            let n = m.strip_prefix("on-change[dcs-back]: ")?;
            n.strip_suffix(" more lines not logged (too much output at once)")?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(skipped > 0, "{log:?}");
    assert_eq!(shown + skipped, 1000, "{log:?}");
}

#[test]
fn without_a_pidfd_a_tick_notices_the_end() {
    // The hook closes its output at once: only the tick can tell its end.
    let mut h = Hooks::new(
        sh("exec >/dev/null 2>&1; sleep 0.3"),
        Duration::from_secs(5),
    );
    h.push(ev(Kind::Added, "192.0.2.5"));
    let t0 = Instant::now();
    h.step(t0);
    if let Some(r) = h.running.as_mut() {
        r.forget_pidfd();
    }
    std::thread::sleep(Duration::from_millis(50));
    h.step(Instant::now());
    let mut fds = Vec::new();
    h.interest(&mut fds);
    assert!(
        fds.is_empty(),
        "pipes at their end, no pidfd: {}",
        fds.len()
    );
    let tick = h
        .deadline()
        .map(|d| d.saturating_duration_since(Instant::now()));
    assert!(tick.is_some_and(|t| t <= TICK), "{tick:?}");
    drive(&mut h, Duration::from_secs(5));
    let took = t0.elapsed();
    assert!(!h.busy());
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(300) + TICK * 4,
        "{took:?}"
    );
}

//! The etcd clients' watches against a scripted etcd on loopback (no root, no etcd
//! needed): the stream is kept across turns (one watch request, not one per turn),
//! events already reflected in a read are skipped, a cancelled or ended stream leads to
//! a fresh read, and a healthy v3 watch is checked with probes and an occasional read.
//! The same for v2's streaming wait. The real etcd is exercised by the lab tests; this
//! fake only serves the calls the clients make, in the shapes etcd 3.4.23 sends (see
//! the captures in src/dcs/etcd/tests.rs and src/dcs/etcd2/tests.rs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::lock;
use crate::fakes::etcd::VERSION;
use crate::fakes::{Reply, Request, Server};
use vipd::base64;
use vipd::dcs::etcd::{Etcd, Settings};
use vipd::dcs::{Dcs, Observation, Wait};

const KEY: &str = "/service/demo/leader";

/// What the fake serves: the key's value and revision, and the watch lines to send.
struct Fake {
    value: Mutex<(String, i64)>,
    watch_requests: AtomicUsize,
    /// Range reads and version probes served; the status probes get.
    ranges: AtomicUsize,
    versions: AtomicUsize,
    version_status: AtomicUsize,
    lines: Mutex<Option<Receiver<String>>>,
}

fn range_body(value: &str, revision: i64) -> String {
    format!(
        r#"{{"header":{{"revision":"{revision}"}},"kvs":[{{"key":"{}","mod_revision":"{revision}","value":"{}"}}],"count":"1"}}"#,
        base64::encode(KEY.as_bytes()),
        base64::encode(value.as_bytes())
    )
}

/// A watch event line for `value` at `revision`.
fn event(value: &str, revision: i64) -> String {
    format!(
        r#"{{"result":{{"header":{{"revision":"{revision}"}},"events":[{{"kv":{{"key":"{}","mod_revision":"{revision}","value":"{}"}}}}]}}}}"#,
        base64::encode(KEY.as_bytes()),
        base64::encode(value.as_bytes())
    )
}

fn answer(fake: &Fake, request: &Request) -> Reply {
    match request.path() {
        "/version" => {
            // The first GET /version finds the API prefix; the rest are probes.
            fake.versions.fetch_add(1, Ordering::SeqCst);
            let status = fake.version_status.load(Ordering::SeqCst) as u16;
            Reply::json(status, VERSION)
        }
        "/v3/kv/range" => {
            fake.ranges.fetch_add(1, Ordering::SeqCst);
            let (value, revision) = lock(&fake.value).clone();
            Reply::json(200, range_body(&value, revision))
        }
        "/v3/watch" => {
            fake.watch_requests.fetch_add(1, Ordering::SeqCst);
            // The scripted lines are served once: a later watch is closed unanswered.
            let lines = lock(&fake.lines).take();
            Reply::raw(move |conn| {
                let Some(lines) = lines else { return Ok(()) };
                let json = "Content-Type: application/json\r\n";
                conn.head(200, &format!("{json}Transfer-Encoding: chunked\r\n"))?;
                let created = r#"{"result":{"header":{"revision":"1"},"created":true}}"#;
                for line in std::iter::once(created.to_string()).chain(lines.iter()) {
                    conn.chunk(format!("{line}\n").as_bytes())?;
                }
                conn.write(b"0\r\n\r\n")
            })
        }
        _ => Reply::raw(|_| Ok(())),
    }
}

impl Fake {
    /// node1 at revision 5, the watch lines to come from `lines`.
    fn new(lines: Receiver<String>) -> Arc<Fake> {
        Arc::new(Fake {
            value: Mutex::new(("node1".into(), 5)),
            watch_requests: AtomicUsize::new(0),
            ranges: AtomicUsize::new(0),
            versions: AtomicUsize::new(0),
            version_status: AtomicUsize::new(200),
            lines: Mutex::new(Some(lines)),
        })
    }
}

fn start() -> (Arc<Fake>, Sender<String>, Server) {
    let (tx, rx) = mpsc::channel();
    let fake = Fake::new(rx);
    let f = fake.clone();
    let server = Server::start("127.0.0.1:0", move |request| answer(&f, request));
    (fake, tx, server)
}

fn settings(server: &Server, check_interval_ms: u64) -> Settings {
    Settings {
        endpoints: vec![server.url()],
        key: KEY.into(),
        credentials: None,
        interval: Duration::from_millis(200),
        watch: true,
        check_interval: Duration::from_millis(check_interval_ms),
        tls: Default::default(),
        scope: None,
    }
}

fn client(server: &Server, check_interval_ms: u64) -> Etcd {
    Etcd::new(&settings(server, check_interval_ms))
}

fn turn() -> Instant {
    Instant::now() + Duration::from_millis(200)
}

#[test]
fn the_watch_stream_is_kept_across_turns_and_stale_events_are_skipped() {
    let (fake, lines, server) = start();
    // Ten checks fit in one turn: each turn confirms with a read, which the stale
    // event below needs before it.
    let mut etcd = client(&server, 20);

    assert_eq!(etcd.observe(turn()), Observation::Leader("node1".into()));
    // Quiet turns: the same stream each time.
    for _ in 0..3 {
        assert_eq!(etcd.wait_for_change(turn()), Some(Wait::Deadline));
        assert_eq!(etcd.observe(turn()), Observation::Leader("node1".into()));
    }
    assert_eq!(
        fake.watch_requests.load(Ordering::SeqCst),
        1,
        "one watch for all turns"
    );

    // The store moves to node2 at revision 6 and the range read sees it before the
    // watch delivers the event: that event is stale and must be skipped; the next one
    // (node3 at 7) is news.
    *lock(&fake.value) = ("node2".into(), 6);
    assert_eq!(etcd.wait_for_change(turn()), Some(Wait::Deadline));
    assert_eq!(etcd.observe(turn()), Observation::Leader("node2".into()));
    lines.send(event("node2", 6)).unwrap();
    lines.send(event("node3", 7)).unwrap();
    let started = Instant::now();
    assert_eq!(
        etcd.wait_for_change(turn()),
        Some(Wait::Changed(Observation::Leader("node3".into())))
    );
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "the event ends the wait at once"
    );

    // The server ends the stream (as on compaction): read afresh, then a new watch.
    lines
        .send(
            r#"{"result":{"header":{"revision":"8"},"canceled":true,"compact_revision":"8"}}"#
                .into(),
        )
        .unwrap();
    *lock(&fake.value) = ("node3".into(), 7);
    assert_eq!(etcd.observe(turn()), Observation::Leader("node3".into()));
    assert_eq!(etcd.wait_for_change(turn()), Some(Wait::Reread));
    assert_eq!(fake.watch_requests.load(Ordering::SeqCst), 1);
    assert_eq!(etcd.observe(turn()), Observation::Leader("node3".into()));
    // The fake serves its scripted lines once: the second watch request gets no reply
    // body and counts as broken; what matters is that a new watch was asked for.
    let _ = etcd.wait_for_change(turn());
    assert_eq!(
        fake.watch_requests.load(Ordering::SeqCst),
        2,
        "a new watch after the cancel"
    );
}

#[test]
fn a_healthy_watch_costs_a_probe_per_check_and_a_read_per_ten_checks() {
    let (fake, lines, server) = start();
    let mut etcd = client(&server, 200);
    let count = |c: &AtomicUsize| c.load(Ordering::SeqCst);
    assert_eq!(etcd.observe(turn()), Observation::Leader("node1".into()));
    assert_eq!((count(&fake.ranges), count(&fake.versions)), (1, 1));
    // 25 idle turns of one check interval each: a probe each, a read at every tenth.
    let mut facts = Vec::new();
    for _ in 0..25 {
        assert_eq!(etcd.wait_for_change(turn()), Some(Wait::Deadline));
        assert_eq!(etcd.observe(turn()), Observation::Leader("node1".into()));
        facts.push(etcd.last_fact().expect("a fact"));
    }
    let (ranges, probes) = (count(&fake.ranges) - 1, count(&fake.versions) - 1);
    assert!((2..=3).contains(&ranges), "{ranges} reads in 25 turns");
    assert_eq!(ranges + probes, 25, "{probes} probes, {ranges} reads");
    assert!(
        facts.windows(2).all(|w| w[1] > w[0]),
        "every check is a fact"
    );
    assert_eq!(count(&fake.watch_requests), 1);

    // An event is a fact too: the turn after it needs no check.
    lines.send(event("node2", 6)).unwrap();
    assert_eq!(
        etcd.wait_for_change(turn()),
        Some(Wait::Changed(Observation::Leader("node2".into())))
    );
    let before = (count(&fake.ranges), count(&fake.versions));
    assert_eq!(etcd.observe(turn()), Observation::Leader("node2".into()));
    assert_eq!(before, (count(&fake.ranges), count(&fake.versions)));

    // A probe that fails is doubt: the key is read afresh at once, and the watch is
    // given up (the fake closes a second one unanswered).
    fake.version_status.store(503, Ordering::SeqCst);
    *lock(&fake.value) = ("node3".into(), 7);
    let _ = etcd.wait_for_change(turn());
    let before = count(&fake.ranges);
    assert_eq!(etcd.observe(turn()), Observation::Leader("node3".into()));
    assert_eq!(
        count(&fake.ranges),
        before + 1,
        "a fresh read after the failed probe"
    );
    let _ = etcd.wait_for_change(turn());
    assert_eq!(
        count(&fake.watch_requests),
        2,
        "a new watch after the doubt"
    );
}

// --- etcd's v2 streaming wait ----------------------------------------------------------

/// A v2 reply or event line for the key at `index`.
fn v2_node(action: &str, value: &str, index: u64) -> String {
    format!(
        r#"{{"action":"{action}","node":{{"key":"{KEY}","value":"{value}","modifiedIndex":{index},"createdIndex":2}}}}"#
    )
}

#[test]
fn the_v2_wait_is_one_stream_across_turns_and_stale_events_are_skipped() {
    use vipd::dcs::etcd2::Etcd2;
    let (tx, rx) = mpsc::channel::<String>();
    let fake = Fake::new(rx);
    let f = fake.clone();
    let server = Server::start("127.0.0.1:0", move |request| {
        if request.query("wait") != Some("true") {
            f.ranges.fetch_add(1, Ordering::SeqCst);
            let (value, index) = lock(&f.value).clone();
            return Reply::json(200, v2_node("get", &value, index as u64))
                .header("X-Etcd-Index", index);
        }
        // Only a streaming wait from the read's next index is served, with the scripted
        // lines, once; a later one is closed unanswered.
        assert_eq!(request.query("stream"), Some("true"));
        f.watch_requests.fetch_add(1, Ordering::SeqCst);
        let lines = lock(&f.lines).take();
        Reply::raw(move |conn| {
            let Some(lines) = lines else { return Ok(()) };
            conn.head(
                200,
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
            )?;
            for line in lines.iter() {
                conn.chunk(format!("{line}\n").as_bytes())?;
            }
            conn.write(b"0\r\n\r\n")
        })
    });
    let mut etcd = Etcd2::new(&settings(&server, 200));
    let count = |c: &AtomicUsize| c.load(Ordering::SeqCst);
    // Every turn reads (quorum), and all of them share one wait.
    for turn_no in 1..=4 {
        assert_eq!(etcd.observe(turn()), Observation::Leader("node1".into()));
        assert_eq!(etcd.wait_for_change(turn()), Some(Wait::Deadline));
        assert_eq!(count(&fake.ranges), turn_no);
    }
    assert_eq!(count(&fake.watch_requests), 1, "one wait for all turns");
    // The read sees node2 at 6 before the stream sends it: that event is stale and
    // skipped; node3 at 7 is news and ends the wait at once.
    *lock(&fake.value) = ("node2".into(), 6);
    assert_eq!(etcd.observe(turn()), Observation::Leader("node2".into()));
    tx.send(v2_node("set", "node2", 6)).unwrap();
    tx.send(v2_node("set", "node3", 7)).unwrap();
    let started = Instant::now();
    assert_eq!(
        etcd.wait_for_change(turn()),
        Some(Wait::Changed(Observation::Leader("node3".into())))
    );
    assert!(started.elapsed() < Duration::from_millis(150));
    // A delete, then the server ends the stream: a fresh read and a new wait.
    tx.send(v2_node("delete", "", 8)).unwrap();
    assert_eq!(
        etcd.wait_for_change(turn()),
        Some(Wait::Changed(Observation::NoLeader))
    );
    drop(tx);
    assert_eq!(etcd.wait_for_change(turn()), Some(Wait::Reread));
    *lock(&fake.value) = ("node3".into(), 9);
    assert_eq!(etcd.observe(turn()), Observation::Leader("node3".into()));
    let _ = etcd.wait_for_change(turn());
    assert_eq!(
        count(&fake.watch_requests),
        2,
        "a new wait after the stream ended"
    );
}

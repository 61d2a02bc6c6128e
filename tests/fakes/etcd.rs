//! A misbehaving etcd: the fake server on a loopback address inside a test's namespace,
//! answering vipd's requests well (like etcd 3.4's JSON gateway) or, switched at any time,
//! with one fault: invalid JSON, a 1 GiB body, a body that never ends, no answer at all, a
//! reply of the wrong shape, a base64 error, or a 1 GiB line in the watch stream.
//!
//! Every range read is recorded (time, mode) so tests can check the loop's cadence; every
//! wait and every loop here is bounded in time, and Drop stops the server and its
//! connections. Every reply closes its connection.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{Conn, HOLD, Reply, Request, Server};
use crate::common::{KEY, in_netns, lock};

/// What etcd 3.4.23 answers to `GET /version`.
pub const VERSION: &str = r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#;

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Like etcd: the key holds the configured leader; watches stay open and silent.
    Good,
    /// A range reply that is not JSON.
    InvalidJson,
    /// A range reply with `Content-Length: 1 GiB`, sent until the client hangs up.
    HugeBody,
    /// A range reply whose chunked body never ends (one byte every 50 ms).
    EndlessBody,
    /// Reads the request and never answers.
    Silent,
    /// Valid JSON, not a range reply (`kvs` is an object).
    WrongShape,
    /// A range reply whose value is not base64.
    BadBase64,
    /// Ranges are good; the watch stream sends one 1 GiB line.
    HugeWatchLine,
}

/// The body bound for the 1 GiB replies.
const HUGE: u64 = 1 << 30;

struct Shared {
    mode: Mutex<Mode>,
    leader: Mutex<String>,
    /// The range reads: when, and in which mode.
    reads: Mutex<Vec<(Instant, Mode)>>,
    /// Bytes of 1 GiB bodies written before the client hung up.
    huge_sent: AtomicU64,
    /// 1 GiB watch lines started (on new or on open watch streams).
    huge_lines: AtomicU64,
    revision: AtomicU64,
}

pub struct FakeEtcd {
    shared: Arc<Shared>,
    /// `http://<ip>:2379`
    pub endpoint: String,
    _server: Server,
}

impl FakeEtcd {
    /// Listens on `ip`:2379 inside namespace `ns`, answering in `Mode::Good` with `leader`.
    pub fn start(ns: &str, ip: &str, leader: &str) -> FakeEtcd {
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Good),
            leader: Mutex::new(leader.to_string()),
            reads: Mutex::new(Vec::new()),
            huge_sent: AtomicU64::new(0),
            huge_lines: AtomicU64::new(0),
            revision: AtomicU64::new(10),
        });
        let s = Arc::clone(&shared);
        let addr = format!("{ip}:2379");
        let server = in_netns(ns, || Server::start(&addr, move |req| answer(&s, req)));
        FakeEtcd {
            shared,
            endpoint: server.url(),
            _server: server,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// The range reads at or after `since`: when, and in which mode.
    pub fn ranges_since(&self, since: Instant) -> Vec<(Instant, Mode)> {
        let reads = lock(&self.shared.reads);
        reads
            .iter()
            .filter(|(at, _)| *at >= since)
            .copied()
            .collect()
    }

    /// Bytes of 1 GiB bodies written so far (the client hangs up long before).
    pub fn huge_sent(&self) -> u64 {
        self.shared.huge_sent.load(Ordering::SeqCst)
    }

    /// 1 GiB watch lines started so far.
    pub fn huge_lines(&self) -> u64 {
        self.shared.huge_lines.load(Ordering::SeqCst)
    }
}

fn b64(s: &str) -> String {
    vipd::base64::encode(s.as_bytes())
}

/// The head of a streamed reply: chunked, or with the length of a 1 GiB body.
fn stream_head(conn: &mut Conn, chunked: bool) -> io::Result<()> {
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {HUGE}")
    };
    let headers = format!("Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n");
    conn.head(200, &headers)
}

/// Writes up to HUGE bytes after `prefix` (chunked or not), until the client hangs up, the
/// server stops or HOLD passes.
fn stream_huge(conn: &mut Conn, shared: &Shared, prefix: &[u8], chunked: bool) -> io::Result<()> {
    let block = vec![b'A'; 64 * 1024];
    let started = Instant::now();
    let mut sent = 0u64;
    let mut data = prefix;
    let result = loop {
        if sent >= HUGE || started.elapsed() >= HOLD || conn.stopped() {
            break Ok(());
        }
        if let Err(e) = if chunked {
            conn.chunk(data)
        } else {
            conn.write(data)
        } {
            break Err(e);
        }
        sent += data.len() as u64;
        data = &block[..block.len().min((HUGE - sent) as usize)];
    };
    shared.huge_sent.fetch_add(sent, Ordering::SeqCst);
    result
}

fn answer(s: &Arc<Shared>, req: &Request) -> Reply {
    let mode = *lock(&s.mode);
    if req.path() == "/v3/kv/range" {
        lock(&s.reads).push((req.at, mode));
    }
    let revision = s.revision.load(Ordering::SeqCst);
    let header = format!(
        r#""header":{{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"{revision}","raft_term":"2"}}"#
    );
    let reply = |status, body: String| Reply::json(status, body).header("Connection", "close");
    let s = Arc::clone(s);
    match (mode, req.method.as_str(), req.path()) {
        (Mode::Silent, ..) => Reply::raw(|conn| {
            conn.hold(|| false);
            Ok(())
        }),
        (_, "GET", "/version") => reply(200, VERSION.into()),
        (_, "POST", "/v3/kv/range") => {
            let leader = lock(&s.leader).clone();
            let good = format!(
                r#"{{{header},"kvs":[{{"key":"{}","create_revision":"2","mod_revision":"{revision}","version":"1","value":"{}"}}],"count":"1"}}"#,
                b64(KEY),
                b64(&leader)
            );
            let key = b64(KEY);
            match mode {
                Mode::InvalidJson => reply(200, good[..good.len() / 2].into()),
                Mode::WrongShape => reply(200, format!(r#"{{{header},"kvs":{{"key":"{key}"}}}}"#)),
                Mode::BadBase64 => reply(
                    200,
                    format!(
                        r#"{{{header},"kvs":[{{"key":"{key}","value":"@@ not base64 @@"}}],"count":"1"}}"#
                    ),
                ),
                Mode::HugeBody => Reply::raw(move |conn| {
                    stream_head(conn, false)?;
                    let prefix = format!(r#"{{{header},"kvs":[{{"key":""#);
                    stream_huge(conn, &s, prefix.as_bytes(), false)
                }),
                Mode::EndlessBody => Reply::raw(|conn| {
                    stream_head(conn, true)?;
                    conn.chunk(b"{")?;
                    let started = Instant::now();
                    while started.elapsed() < HOLD && !conn.stopped() {
                        conn.chunk(b" ")?;
                        thread::sleep(Duration::from_millis(50));
                    }
                    Ok(())
                }),
                _ => reply(200, good),
            }
        }
        (_, "POST", "/v3/watch") => Reply::raw(move |conn| {
            stream_head(conn, true)?;
            conn.chunk(format!("{{\"result\":{{{header},\"created\":true}}}}\n").as_bytes())?;
            // An open watch stream (kept across turns) turns bad when the mode switches.
            let bad = || *lock(&s.mode) == Mode::HugeWatchLine;
            if mode != Mode::HugeWatchLine && !conn.hold(bad) {
                return Ok(());
            }
            s.huge_lines.fetch_add(1, Ordering::SeqCst);
            let prefix = format!(r#"{{"result":{{{header},"events":[{{"kv":{{"value":""#);
            stream_huge(conn, &s, prefix.as_bytes(), true)
        }),
        _ => reply(404, r#"{"error":"Not Found","code":5}"#.into()),
    }
}

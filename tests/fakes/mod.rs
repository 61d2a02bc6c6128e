//! Fake DCS servers for the tests: a small HTTP/1.1 server on a loopback port (or inside
//! a test's network namespace), and on top of it
//!
//! - [`FakeConsul`], Consul's KV read API as HashiCorp documents it
//!   (developer.hashicorp.com/consul/api-docs/kv, …/api-docs/features/blocking,
//!   …/api-docs/features/consistency, …/api-docs/api-structure#authentication), since
//!   Consul itself is neither open source nor packaged: `GET /v1/kv/<key>` answers a
//!   JSON array (`Key`, base64 `Value`, `Flags`, `Session`, `LockIndex`, `CreateIndex`,
//!   `ModifyIndex`), or 404 with an empty body; `X-Consul-Index` on every reply (the
//!   key's `ModifyIndex`, or for a missing key the KV table's index); blocking queries
//!   (`?index=N&wait=D`, Go durations, default 5 min, at most 10 min, plus up to
//!   wait/16 of jitter) that return when the index moves past N or the wait ends; a
//!   missing key's query also returns when another key changes (a return is no proof
//!   of change); ACLs (`X-Consul-Token`; none → 403 "Permission denied", an unknown
//!   one → 403 "ACL not found"); and no Raft leader → 500 "No cluster leader".
//! - [`FakePatroni`], Patroni's `GET /leader`: 200 on the leader, 503 elsewhere.
//!
//! Every request is recorded (request line and headers) for the tests to inspect.
//! Every wait is bounded; the servers stop when dropped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// When the request had been read.
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The value of query parameter `name` (`Some("")` for a bare flag).
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .find_map(|pair| match pair.split_once('=') {
                Some((k, v)) if k == name => Some(v),
                None if pair == name => Some(""),
                _ => None,
            })
    }
}

/// A reply: status, reason, extra headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: impl ToString) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A tiny threaded HTTP/1.1 server with keep-alive.
pub struct FakeHttp {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Request>>>,
    acceptor: Option<JoinHandle<()>>,
}

const MAX_HEAD: usize = 16 * 1024;

impl FakeHttp {
    /// Listen on 127.0.0.1 (of the calling thread's network namespace) at `port` (0:
    /// any free port).
    pub fn start(port: u16, handler: Arc<Handler>) -> FakeHttp {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind fake server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (stop, requests, handler) =
                                (stop.clone(), requests.clone(), handler.clone());
                            std::thread::spawn(move || {
                                serve(stream, &stop, &requests, &*handler);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        FakeHttp {
            addr,
            stop,
            requests,
            acceptor: Some(acceptor),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.requests).clone()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serve one connection until the client closes it, an error, or the stop flag.
fn serve(stream: TcpStream, stop: &AtomicBool, requests: &Mutex<Vec<Request>>, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut idle_since = Instant::now();
    loop {
        // A busy client never lets a read time out: look at the flag before each request.
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut head = Vec::new();
        // Read the head line by line, bounded; idle connections are closed on stop or
        // after 60 s.
        loop {
            let mut line = Vec::new();
            match reader
                .by_ref()
                .take(MAX_HEAD as u64)
                .read_until(b'\n', &mut line)
            {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    if stop.load(Ordering::Relaxed)
                        || idle_since.elapsed() > Duration::from_secs(60)
                    {
                        return;
                    }
                    head.extend_from_slice(&line);
                    continue;
                }
                Err(_) => return,
            }
            head.extend_from_slice(&line);
            if head.len() > MAX_HEAD {
                return;
            }
            if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        // Bodies are not expected (GET); skip one if announced.
        if let Some(len) = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<u64>().ok())
        {
            let _ = std::io::copy(&mut reader.by_ref().take(len), &mut std::io::sink());
        }
        let request = Request {
            method,
            target,
            headers,
            at: Instant::now(),
        };
        lock(requests).push(request.clone());
        let reply = handler(&request);
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n",
            reply.status,
            reason(reply.status),
            reply.body.len()
        );
        for (n, v) in &reply.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        if writer.write_all(out.as_bytes()).is_err() || writer.write_all(&reply.body).is_err() {
            return;
        }
        let _ = writer.flush();
        idle_since = Instant::now();
    }
}

// --- Consul ------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    create_index: u64,
    modify_index: u64,
    session: Option<String>,
}

#[derive(Debug, Default)]
struct ConsulState {
    kv: BTreeMap<String, Entry>,
    /// The Raft index of the last KV write (the KV table's index, tombstones included).
    index: u64,
    /// `Some(token)`: ACLs on, this token may read.
    acl_token: Option<String>,
    no_leader: bool,
    /// Answer this index instead (to make it go backwards).
    index_override: Option<u64>,
    jitter: bool,
    seed: u64,
}

/// A fake Consul agent (see the module documentation).
pub struct FakeConsul {
    pub http: FakeHttp,
    state: Arc<(Mutex<ConsulState>, Condvar)>,
}

/// Consul's maximum blocking wait and default.
const MAX_WAIT: Duration = Duration::from_secs(600);
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// A Go duration as Consul's `wait` takes it ("250ms", "5s", "1m30s"); bare numbers are
/// seconds.
pub fn go_duration(text: &str) -> Option<Duration> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return None,
        };
    }
    Some(total)
}

fn base64(data: &[u8]) -> String {
    vipd::base64::encode(data)
}

impl ConsulState {
    /// The reply index and entry for `key` (Consul's KVS.Get).
    fn lookup(&self, key: &str) -> (u64, Option<&Entry>) {
        let index = self.index_override.unwrap_or(self.index);
        match self.kv.get(key) {
            Some(e) => (self.index_override.unwrap_or(e.modify_index), Some(e)),
            // "Must provide non-zero index to prevent blocking."
            None => (index.max(1), None),
        }
    }

    fn jitter(&mut self, wait: Duration) -> Duration {
        if !self.jitter {
            return Duration::ZERO;
        }
        // A small LCG: deterministic per server, different per request.
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let frac = (self.seed >> 33) as u32 % 1000;
        wait / 16 * frac / 1000
    }
}

impl FakeConsul {
    /// Start on 127.0.0.1:`port` (0: any) of the calling thread's namespace.
    pub fn start(port: u16) -> FakeConsul {
        let state = Arc::new((
            Mutex::new(ConsulState {
                index: 1,
                jitter: true,
                seed: 0x5eed,
                ..ConsulState::default()
            }),
            Condvar::new(),
        ));
        let handler_state = state.clone();
        let handler: Arc<Handler> = Arc::new(move |req: &Request| handle(&handler_state, req));
        FakeConsul {
            http: FakeHttp::start(port, handler),
            state,
        }
    }

    pub fn url(&self) -> String {
        self.http.url()
    }

    fn change(&self, f: impl FnOnce(&mut ConsulState)) {
        let (m, cv) = &*self.state;
        f(&mut lock(m));
        cv.notify_all();
    }

    /// `PUT /v1/kv/<key>` (with `?acquire=<session>` when a session is given).
    pub fn put(&self, key: &str, value: &str, session: Option<&str>) {
        self.change(|s| {
            s.index += 1;
            let index = s.index;
            let entry = s.kv.entry(key.to_string()).or_insert(Entry {
                value: Vec::new(),
                create_index: index,
                modify_index: index,
                session: None,
            });
            entry.value = value.as_bytes().to_vec();
            entry.modify_index = index;
            entry.session = session.map(str::to_string);
        });
    }

    /// `DELETE /v1/kv/<key>`, or a session with `behavior=delete` expiring.
    pub fn delete(&self, key: &str) {
        self.change(|s| {
            s.index += 1;
            s.kv.remove(key);
        });
    }

    /// Turn ACLs on (default policy deny) with one token allowed to read.
    pub fn require_token(&self, token: Option<&str>) {
        self.change(|s| s.acl_token = token.map(str::to_string));
    }

    /// Lose (or regain) the Raft leader.
    pub fn set_no_leader(&self, no_leader: bool) {
        self.change(|s| s.no_leader = no_leader);
    }

    /// Answer this index from now on (to make it go backwards), or stop doing so.
    pub fn override_index(&self, index: Option<u64>) {
        self.change(|s| s.index_override = index);
    }

    pub fn set_jitter(&self, on: bool) {
        self.change(|s| s.jitter = on);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }
}

fn kv_reply(state: &ConsulState, key: &str) -> Reply {
    let (index, entry) = state.lookup(key);
    let reply = match entry {
        None => Reply::new(404, Vec::new()),
        Some(e) => {
            let mut obj = serde_json::json!({
                "LockIndex": if e.session.is_some() { 1 } else { 0 },
                "Key": key,
                "Flags": 0,
                "Value": if e.value.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(base64(&e.value))
                },
                "CreateIndex": e.create_index,
                "ModifyIndex": e.modify_index,
            });
            if let Some(session) = &e.session {
                obj["Session"] = serde_json::Value::String(session.clone());
            }
            Reply::new(200, serde_json::json!([obj]).to_string())
                .header("Content-Type", "application/json")
        }
    };
    reply
        .header("X-Consul-Index", index)
        .header("X-Consul-Knownleader", "true")
        .header("X-Consul-Lastcontact", 0)
}

fn handle(state: &(Mutex<ConsulState>, Condvar), req: &Request) -> Reply {
    let (m, cv) = state;
    let Some(key) = req.path().strip_prefix("/v1/kv/") else {
        return Reply::new(404, "404 page not found\n");
    };
    if req.method != "GET" {
        return Reply::new(405, "method not allowed in this fake\n");
    }
    let key = key.to_string();
    let mut s = lock(m);
    if let Some(required) = &s.acl_token {
        match req.header("x-consul-token") {
            None => return Reply::new(403, "Permission denied"),
            Some(t) if t != required => return Reply::new(403, "ACL not found"),
            Some(_) => {}
        }
    }
    if s.no_leader {
        return Reply::new(500, "No cluster leader");
    }
    let min_index: u64 = req.query("index").and_then(|v| v.parse().ok()).unwrap_or(0);
    if min_index == 0 {
        return kv_reply(&s, &key);
    }
    let wait = req
        .query("wait")
        .and_then(go_duration)
        .unwrap_or(DEFAULT_WAIT)
        .min(MAX_WAIT);
    let wait = wait + s.jitter(wait);
    let until = Instant::now() + wait;
    loop {
        let (index, _) = s.lookup(&key);
        if index > min_index || index < min_index && s.index_override.is_some() {
            return kv_reply(&s, &key);
        }
        let now = Instant::now();
        if now >= until {
            return kv_reply(&s, &key);
        }
        s = cv
            .wait_timeout(s, until - now)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
        if s.no_leader {
            return Reply::new(500, "No cluster leader");
        }
    }
}

// --- Patroni -----------------------------------------------------------------------

/// A fake Patroni REST API: `GET /leader` answers the configured status.
pub struct FakePatroni {
    pub http: FakeHttp,
    status: Arc<Mutex<u16>>,
}

impl FakePatroni {
    pub fn start(port: u16, status: u16) -> FakePatroni {
        let shared = Arc::new(Mutex::new(status));
        let s = shared.clone();
        let handler: Arc<Handler> = Arc::new(move |req: &Request| {
            if req.path() != "/leader" {
                return Reply::new(404, "");
            }
            let status = *lock(&s);
            // Patroni answers with its status JSON either way.
            let role = if status == 200 { "master" } else { "replica" };
            Reply::new(
                status,
                format!(
                    r#"{{"state": "running", "role": "{role}", "patroni": {{"scope": "demo"}}}}"#
                ),
            )
            .header("Content-Type", "application/json")
        });
        FakePatroni {
            http: FakeHttp::start(port, handler),
            status: shared,
        }
    }

    pub fn set_status(&self, status: u16) {
        *lock(&self.status) = status;
    }

    pub fn url(&self) -> String {
        self.http.url()
    }
}

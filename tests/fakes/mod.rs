//! Fake servers for the tests: one small HTTP/1.1 server ([`Server`]) on an address of the
//! calling thread's network namespace, and on top of it
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
//!   `?recurse` lists every key under the prefix in key order (404 when none), its
//!   `X-Consul-Index` the highest `ModifyIndex` or deletion under the prefix (Consul's
//!   `kvsListTxn`: entries and tombstones; the table's index when there are neither),
//!   and blocking queries on it follow the same rules.
//! - [`FakePatroni`], Patroni's `GET /leader`: 200 on the leader, 503 elsewhere.
//! - [`etcd::FakeEtcd`], an etcd that answers well or with one fault at a time, and
//!   [`etcd_proxy::EtcdProxy`], which holds a real etcd's watch requests on demand.
//! - [`hetzner::FakeRobot`] and [`hetzner::FakeCloud`], Hetzner's Robot failover API and
//!   Cloud floating-IP API, over https with a CA the test makes ([`hetzner::TestPki`]).
//!
//! [`Server::serve_tls`] serves https with rustls (the server side of the crate vipd's
//! client uses), for fakes of services only reachable over TLS.
//!
//! Every request is recorded (request line and headers) for the tests to inspect.
//! Every wait is bounded; the servers stop when dropped.

pub mod etcd;
pub mod etcd_proxy;
#[cfg(feature = "tls")]
pub mod hetzner;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::{join_bounded, lock};

/// The largest request head and body read.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1 << 20;
/// How long a connection waits for a request at most.
const IDLE: Duration = Duration::from_secs(60);
/// How long [`Conn::hold`] holds a connection at most.
pub const HOLD: Duration = Duration::from_secs(30);

/// A free TCP port on the calling thread's 127.0.0.1 (free when asked).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("local address").port()
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The request as read (head and body), for a proxy to forward.
    pub raw: Vec<u8>,
    /// When the request had been read.
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let header = self.headers.iter().find(|(n, _)| n == name);
        header.map(|(_, v)| v.as_str())
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

type Writer = Box<dyn FnOnce(&mut Conn) -> io::Result<()> + Send>;

/// A reply: status, headers, body; or a function that writes the whole answer itself
/// (a stream, nothing at all), after which the connection is closed.
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    raw: Option<Writer>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            raw: None,
        }
    }

    /// With `Content-Type: application/json`.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(status, body).header("Content-Type", "application/json")
    }

    /// The answer `write` writes (head included).
    pub fn raw(write: impl FnOnce(&mut Conn) -> io::Result<()> + Send + 'static) -> Reply {
        Reply {
            raw: Some(Box::new(write)),
            ..Reply::new(0, "")
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
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        423 => "Locked",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn timed_out(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), WouldBlock | TimedOut | Interrupted)
}

/// A connection's bytes: plain, or through a TLS session (the handshake happens at the
/// first read; a failed one ends the connection like a hang-up).
enum Io {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Io::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Io::Tls(s) => s.flush(),
        }
    }
}

/// One client connection (reads time out every 100 ms, so that every wait sees the stop).
pub struct Conn {
    /// Reads are buffered; writes go straight to the stream below.
    reader: BufReader<Io>,
    /// The TCP socket under it all (TLS or not).
    socket: TcpStream,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Conn {
    /// The next request (recorded), or None when the client hangs up, the server stops, no
    /// request comes for a minute, or the head is too large.
    pub fn next_request(&mut self) -> Option<Request> {
        let started = Instant::now();
        let mut raw = Vec::new();
        while !raw.ends_with(b"\r\n\r\n") {
            if self.stopped() || started.elapsed() > IDLE || raw.len() > MAX_HEAD {
                return None;
            }
            match self.reader.read_until(b'\n', &mut raw) {
                Ok(0) => return None,
                Err(e) if !timed_out(&e) => return None,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let mut lines = text.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length = headers.iter().find(|(n, _)| n == "content-length");
        let length = length.and_then(|(_, v)| v.parse().ok()).unwrap_or(0usize);
        let end = raw.len() + length.min(MAX_BODY);
        let mut chunk = [0u8; 16 * 1024];
        while raw.len() < end {
            if self.stopped() || started.elapsed() > IDLE {
                return None;
            }
            let want = chunk.len().min(end - raw.len());
            match self.reader.read(&mut chunk[..want]) {
                Ok(0) => return None,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
                Err(e) if !timed_out(&e) => return None,
                Err(_) => {}
            }
        }
        let request = Request {
            method,
            target,
            headers,
            raw,
            at: Instant::now(),
        };
        lock(&self.requests).push(request.clone());
        Some(request)
    }

    /// Writes `reply`; false when the connection is to be closed after it.
    fn send(&mut self, reply: Reply) -> bool {
        if let Some(write) = reply.raw {
            let _ = write(self);
            return false;
        }
        let close = reply
            .headers
            .iter()
            .any(|(n, v)| n == "Connection" && v == "close");
        let mut head = format!("Content-Length: {}\r\n", reply.body.len());
        for (n, v) in &reply.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        let sent = self
            .head(reply.status, &head)
            .and_then(|_| self.write(&reply.body));
        sent.is_ok() && !close
    }

    /// Writes a status line and `headers` (lines ending in CRLF), then the blank line.
    pub fn head(&mut self, status: u16, headers: &str) -> io::Result<()> {
        let reason = reason(status);
        self.write(format!("HTTP/1.1 {status} {reason}\r\n{headers}\r\n").as_bytes())
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(data)?;
        stream.flush()
    }

    /// One chunk of a chunked body.
    pub fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(&[format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat())
    }

    /// Another handle on the connection's TCP socket (for a plain proxy's replies).
    pub fn socket(&self) -> io::Result<TcpStream> {
        self.socket.try_clone()
    }

    /// Whether the server is stopping.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits until the client hangs up, the server stops or [`HOLD`] passes (false), or
    /// until `until` holds (true). What the client sends meanwhile is read and dropped.
    pub fn hold(&mut self, until: impl Fn() -> bool) -> bool {
        let started = Instant::now();
        let mut chunk = [0u8; 1024];
        while started.elapsed() < HOLD && !self.stopped() {
            if until() {
                return true;
            }
            match self.reader.read(&mut chunk) {
                Ok(0) => return false,
                Err(e) if !timed_out(&e) => return false,
                _ => {}
            }
        }
        false
    }
}

/// The server side of TLS, when a server has one.
#[cfg(feature = "tls")]
type TlsConfig = Option<Arc<rustls::ServerConfig>>;
#[cfg(not(feature = "tls"))]
type TlsConfig = Option<std::convert::Infallible>;

/// A tiny threaded HTTP/1.1 server: one thread per connection.
pub struct Server {
    pub addr: SocketAddr,
    https: bool,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Request>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` (of the calling thread's network namespace; port 0: any free port)
    /// and answers every request with `handler`'s reply, keeping connections alive.
    pub fn start(
        addr: &str,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        Server::serve(addr, move |mut conn| {
            while let Some(request) = conn.next_request() {
                if !conn.send(handler(&request)) {
                    break;
                }
            }
        })
    }

    /// Listens on `addr` and hands every connection to `serve`, on a thread of its own.
    pub fn serve(addr: &str, serve: impl Fn(Conn) + Send + Sync + 'static) -> Server {
        Server::listen(addr, None, serve)
    }

    /// Like [`Server::serve`], every connection over TLS with `config`.
    #[cfg(feature = "tls")]
    pub fn serve_tls(
        addr: &str,
        config: Arc<rustls::ServerConfig>,
        serve: impl Fn(Conn) + Send + Sync + 'static,
    ) -> Server {
        Server::listen(addr, Some(config), serve)
    }

    fn listen(addr: &str, tls: TlsConfig, serve: impl Fn(Conn) + Send + Sync + 'static) -> Server {
        let https = tls.is_some();
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s, r, serve) = (stop.clone(), requests.clone(), Arc::new(serve));
        let acceptor = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let conn = stream.set_nonblocking(false).and_then(|_| {
                    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
                    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
                    let io = match &tls {
                        None => Io::Plain(stream.try_clone()?),
                        #[cfg(feature = "tls")]
                        Some(config) => {
                            // A reply's head and body go as two TLS records: without
                            // this, Nagle holds the second until the client's delayed ACK.
                            stream.set_nodelay(true)?;
                            let session = rustls::ServerConnection::new(config.clone())
                                .map_err(io::Error::other)?;
                            let sock = stream.try_clone()?;
                            Io::Tls(Box::new(rustls::StreamOwned::new(session, sock)))
                        }
                        #[cfg(not(feature = "tls"))]
                        Some(never) => match *never {},
                    };
                    Ok(Conn {
                        reader: BufReader::new(io),
                        socket: stream,
                        stop: s.clone(),
                        requests: r.clone(),
                    })
                });
                let serve = serve.clone();
                // Threads started here are in the listener's namespace too.
                thread::spawn(move || conn.map(|c| serve(c)));
            }
        });
        Server {
            addr,
            https,
            stop,
            requests,
            acceptor: Some(acceptor),
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.requests).clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        join_bounded(self.acceptor.take());
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
    /// Deleted keys and the index of their deletion (Consul's tombstones, never reaped
    /// here).
    tombstones: BTreeMap<String, u64>,
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
    pub http: Server,
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

    /// The reply index and entries for a recursive read of `prefix` (Consul's
    /// KVS.List): the highest index of an entry or a tombstone under the prefix, else
    /// the table's.
    fn list(&self, prefix: &str) -> (u64, Vec<(&String, &Entry)>) {
        let under = |k: &&String| k.starts_with(prefix);
        let entries: Vec<(&String, &Entry)> = self.kv.iter().filter(|(k, _)| under(k)).collect();
        let live = entries.iter().map(|(_, e)| e.modify_index).max();
        let dead = self
            .tombstones
            .iter()
            .filter(|(k, _)| under(k))
            .map(|(_, i)| *i)
            .max();
        let index = match live.max(dead) {
            Some(i) if i > 0 => i,
            _ => self.index,
        };
        (self.index_override.unwrap_or(index).max(1), entries)
    }

    /// The reply index of a read of `key`, recursive or not.
    fn index_of(&self, key: &str, recurse: bool) -> u64 {
        match recurse {
            true => self.list(key).0,
            false => self.lookup(key).0,
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
        let addr = format!("127.0.0.1:{port}");
        FakeConsul {
            http: Server::start(&addr, move |req| handle(&handler_state, req)),
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
            if s.kv.remove(key).is_some() {
                s.tombstones.insert(key.to_string(), s.index);
            }
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

/// One entry as Consul lists it.
fn entry_json(key: &str, e: &Entry) -> serde_json::Value {
    let mut obj = serde_json::json!({
        "LockIndex": if e.session.is_some() { 1 } else { 0 },
        "Key": key,
        "Flags": 0,
        "Value": if e.value.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::Value::String(vipd::base64::encode(&e.value))
        },
        "CreateIndex": e.create_index,
        "ModifyIndex": e.modify_index,
    });
    if let Some(session) = &e.session {
        obj["Session"] = serde_json::Value::String(session.clone());
    }
    obj
}

fn kv_reply(state: &ConsulState, key: &str, recurse: bool) -> Reply {
    let (index, list) = match recurse {
        true => state.list(key),
        false => {
            let (index, entry) = state.lookup(key);
            let key = &key.to_string();
            let list = entry.map(|e| entry_json(key, e)).into_iter().collect();
            return with_meta(list_reply(list), index);
        }
    };
    let list = list.into_iter().map(|(k, e)| entry_json(k, e)).collect();
    with_meta(list_reply(list), index)
}

/// A list of entries, or 404 with an empty body for none.
fn list_reply(list: Vec<serde_json::Value>) -> Reply {
    match list.is_empty() {
        true => Reply::new(404, Vec::new()),
        false => Reply::json(200, serde_json::Value::Array(list).to_string()),
    }
}

fn with_meta(reply: Reply, index: u64) -> Reply {
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
    let recurse = req.query("recurse").is_some();
    let min_index: u64 = req.query("index").and_then(|v| v.parse().ok()).unwrap_or(0);
    if min_index == 0 {
        return kv_reply(&s, &key, recurse);
    }
    let wait = req
        .query("wait")
        .and_then(go_duration)
        .unwrap_or(DEFAULT_WAIT)
        .min(MAX_WAIT);
    let wait = wait + s.jitter(wait);
    let until = Instant::now() + wait;
    loop {
        let index = s.index_of(&key, recurse);
        if index > min_index || index < min_index && s.index_override.is_some() {
            return kv_reply(&s, &key, recurse);
        }
        let now = Instant::now();
        if now >= until {
            return kv_reply(&s, &key, recurse);
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

/// A fake Patroni REST API: `GET /leader` answers the configured status; `GET
/// /patroni` answers 200 with the configured body (see [`patroni_fixture`]).
pub struct FakePatroni {
    pub http: Server,
    status: Arc<Mutex<u16>>,
    body: Arc<Mutex<String>>,
}

/// A body Patroni 3.0.2 sent for `GET /patroni`, captured from a real cluster
/// (`tests/fixtures/patroni/NAME.json`, see its README).
pub fn patroni_fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/patroni/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A standby cluster's leader: no standby cluster was captured, so the primary's
/// captured body with the role Patroni reports for one.
pub fn patroni_standby_leader() -> String {
    patroni_fixture("primary-running").replace(r#""role": "master""#, r#""role": "standby_leader""#)
}

impl FakePatroni {
    pub fn start(port: u16, status: u16) -> FakePatroni {
        let shared = Arc::new(Mutex::new(status));
        let body = Arc::new(Mutex::new(patroni_fixture("primary-running")));
        let (s, b) = (shared.clone(), body.clone());
        let handler = move |req: &Request| {
            if req.path() == "/patroni" {
                return Reply::json(200, lock(&b).clone());
            }
            if req.path() != "/leader" {
                return Reply::new(404, "");
            }
            let status = *lock(&s);
            // Patroni answers with its status JSON either way.
            let role = if status == 200 { "master" } else { "replica" };
            let scope = r#""patroni": {"scope": "demo"}"#;
            Reply::json(
                status,
                format!(r#"{{"state": "running", "role": "{role}", {scope}}}"#),
            )
        };
        FakePatroni {
            http: Server::start(&format!("127.0.0.1:{port}"), handler),
            status: shared,
            body,
        }
    }

    /// What `GET /patroni` answers from now on.
    pub fn set_body(&self, body: String) {
        *lock(&self.body) = body;
    }

    pub fn set_status(&self, status: u16) {
        *lock(&self.status) = status;
    }

    pub fn url(&self) -> String {
        self.http.url()
    }
}

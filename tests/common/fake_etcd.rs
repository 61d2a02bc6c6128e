//! A misbehaving etcd: a small HTTP/1.1 server on a thread inside a test's namespace that
//! answers vipd's requests well (like etcd 3.4's JSON gateway) or, switched at any time, with
//! one fault: invalid JSON, a 1 GiB body, a body that never ends, no answer at all, a reply of
//! the wrong shape, a base64 error, or a 1 GiB line in the watch stream.
//!
//! Every request is recorded (time, path, mode) so tests can check the loop's cadence; every
//! wait and every loop here is bounded in time, and Drop stops the server and its connections.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{KEY, lock, spawn_in_netns};

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

/// One request the server read.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub mode: Mode,
}

/// The body bound for the 1 GiB replies.
pub const HUGE: u64 = 1 << 30;
/// How long a connection is held at most (silent mode, open watches, endless bodies).
const HOLD: Duration = Duration::from_secs(30);

struct Shared {
    mode: Mutex<Mode>,
    leader: Mutex<String>,
    requests: Mutex<Vec<Request>>,
    stop: AtomicBool,
    /// Bytes of 1 GiB bodies written before the client hung up.
    huge_sent: AtomicU64,
    /// 1 GiB watch lines started (on new or on open watch streams).
    huge_lines: AtomicU64,
    revision: AtomicU64,
}

pub struct FakeEtcd {
    shared: Arc<Shared>,
    /// `http://127.0.0.2:2379`
    pub endpoint: String,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeEtcd {
    /// Listens on `ip`:2379 inside namespace `ns`, answering in `Mode::Good` with `leader`.
    pub fn start(ns: &str, ip: &str, leader: &str) -> FakeEtcd {
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Good),
            leader: Mutex::new(leader.to_string()),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            huge_sent: AtomicU64::new(0),
            huge_lines: AtomicU64::new(0),
            revision: AtomicU64::new(10),
        });
        let addr = format!("{ip}:2379");
        let (tx, rx) = std::sync::mpsc::channel();
        let acceptor = {
            let shared = Arc::clone(&shared);
            let addr = addr.clone();
            spawn_in_netns(ns, move || {
                let listener = match TcpListener::bind(&addr) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = listener.set_nonblocking(true);
                let _ = tx.send(Ok(()));
                accept_loop(listener, shared);
            })
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("fake etcd cannot listen on {addr} in {ns}: {e}"),
            Err(e) => panic!("fake etcd on {addr} in {ns} did not start: {e}"),
        }
        FakeEtcd {
            shared,
            endpoint: format!("http://{addr}"),
            acceptor: Some(acceptor),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    pub fn set_leader(&self, leader: &str) {
        *lock(&self.shared.leader) = leader.to_string();
        self.shared.revision.fetch_add(1, Ordering::SeqCst);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// The range requests at or after `since`.
    pub fn ranges_since(&self, since: Instant) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.at >= since && r.path.ends_with("/kv/range"))
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

impl Drop for FakeEtcd {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !a.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if a.is_finished() {
                let _ = a.join();
            }
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(&shared);
                // Each connection on its own thread; each ends within HOLD or at stop.
                thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Reads one request (head and Content-Length body); None when the client went away.
fn read_request(stream: &mut TcpStream, shared: &Shared) -> io::Result<Option<(String, String)>> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 || started.elapsed() > HOLD || shared.stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut first = head.lines().next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length.min(64 * 1024) {
        if started.elapsed() > HOLD || shared.stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some((method, path)))
}

/// Waits until the client hangs up, the server stops, HOLD passes or (when `until` is given)
/// the server is switched to that mode; true in the last case.
fn hold_until(stream: &mut TcpStream, shared: &Shared, until: Option<Mode>) -> bool {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    while started.elapsed() < HOLD && !shared.stop.load(Ordering::SeqCst) {
        if until.is_some() && Some(*lock(&shared.mode)) == until {
            return true;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Waits until the client hangs up, the server stops or HOLD passes.
fn hold(stream: &mut TcpStream, shared: &Shared) {
    hold_until(stream, shared, None);
}

fn reply(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn chunk(stream: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    write!(stream, "{:x}\r\n", data.len())?;
    stream.write_all(data)?;
    stream.write_all(b"\r\n")
}

fn b64(s: &str) -> String {
    vipd::base64::encode(s.as_bytes())
}

/// Writes up to HUGE bytes of `fill` after `prefix` (chunked or not), until the client hangs
/// up, the server stops or HOLD passes.
fn stream_huge(
    stream: &mut TcpStream,
    shared: &Shared,
    prefix: &[u8],
    chunked: bool,
) -> io::Result<()> {
    let block = vec![b'A'; 64 * 1024];
    let started = Instant::now();
    let mut sent = 0u64;
    let send = |stream: &mut TcpStream, data: &[u8]| {
        if chunked {
            chunk(stream, data)
        } else {
            stream.write_all(data)
        }
    };
    send(stream, prefix)?;
    sent += prefix.len() as u64;
    while sent < HUGE && started.elapsed() < HOLD && !shared.stop.load(Ordering::SeqCst) {
        let n = block.len().min((HUGE - sent) as usize);
        if let Err(e) = send(stream, &block[..n]) {
            shared.huge_sent.fetch_add(sent, Ordering::SeqCst);
            return Err(e);
        }
        sent += n as u64;
    }
    shared.huge_sent.fetch_add(sent, Ordering::SeqCst);
    Ok(())
}

fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let Some((method, path)) = read_request(&mut stream, shared)? else {
        return Ok(());
    };
    let mode = *lock(&shared.mode);
    lock(&shared.requests).push(Request {
        at: Instant::now(),
        method: method.clone(),
        path: path.clone(),
        mode,
    });
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let revision = shared.revision.load(Ordering::SeqCst);
    let header = format!(
        r#""header":{{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"{revision}","raft_term":"2"}}"#
    );
    if mode == Mode::Silent {
        hold(&mut stream, shared);
        return Ok(());
    }
    match (method.as_str(), path.as_str()) {
        ("GET", "/version") => reply(
            &mut stream,
            "200 OK",
            r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#,
        ),
        ("POST", "/v3/kv/range") => {
            let leader = lock(&shared.leader).clone();
            let good = format!(
                r#"{{{header},"kvs":[{{"key":"{}","create_revision":"2","mod_revision":"{revision}","version":"1","value":"{}"}}],"count":"1"}}"#,
                b64(KEY),
                b64(&leader)
            );
            match mode {
                Mode::Good | Mode::HugeWatchLine => reply(&mut stream, "200 OK", &good),
                Mode::InvalidJson => reply(&mut stream, "200 OK", &good[..good.len() / 2]),
                Mode::WrongShape => reply(
                    &mut stream,
                    "200 OK",
                    &format!(r#"{{{header},"kvs":{{"key":"{}"}}}}"#, b64(KEY)),
                ),
                Mode::BadBase64 => reply(
                    &mut stream,
                    "200 OK",
                    &format!(
                        r#"{{{header},"kvs":[{{"key":"{}","value":"@@ not base64 @@"}}],"count":"1"}}"#,
                        b64(KEY)
                    ),
                ),
                Mode::HugeBody => {
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {HUGE}\r\nConnection: close\r\n\r\n"
                    )?;
                    let prefix = format!(r#"{{{header},"kvs":[{{"key":""#);
                    stream_huge(&mut stream, shared, prefix.as_bytes(), false)
                }
                Mode::EndlessBody => {
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    )?;
                    chunk(&mut stream, b"{")?;
                    let started = Instant::now();
                    while started.elapsed() < HOLD && !shared.stop.load(Ordering::SeqCst) {
                        chunk(&mut stream, b" ")?;
                        thread::sleep(Duration::from_millis(50));
                    }
                    Ok(())
                }
                Mode::Silent => Ok(()),
            }
        }
        ("POST", "/v3/watch") => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )?;
            let created = format!(r#"{{"result":{{{header},"created":true}}}}"#) + "\n";
            chunk(&mut stream, created.as_bytes())?;
            stream.flush()?;
            // An open watch stream (kept across turns) turns bad when the mode switches.
            if mode == Mode::HugeWatchLine
                || hold_until(&mut stream, shared, Some(Mode::HugeWatchLine))
            {
                shared.huge_lines.fetch_add(1, Ordering::SeqCst);
                let prefix = format!(r#"{{"result":{{{header},"events":[{{"kv":{{"value":""#);
                stream_huge(&mut stream, shared, prefix.as_bytes(), true)
            } else {
                Ok(())
            }
        }
        _ => reply(
            &mut stream,
            "404 Not Found",
            r#"{"error":"Not Found","code":5}"#,
        ),
    }
}

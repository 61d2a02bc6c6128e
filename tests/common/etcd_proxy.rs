//! A TCP proxy in front of a real etcd, on a thread inside a test's namespace: it forwards
//! every byte both ways, reading the client's HTTP requests one by one (they carry a
//! Content-Length), and on request holds the next watch request until the test releases it,
//! so that the test can change the store (compact the revision the watch starts from) at a
//! known moment. Every wait is bounded; Drop stops the proxy and its connections.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::spawn_in_netns;

/// How long a held request waits for [`EtcdProxy::release`] at most.
const HOLD: Duration = Duration::from_secs(10);
/// How long a connection lives at most.
const LIFE: Duration = Duration::from_secs(120);

struct Shared {
    stop: AtomicBool,
    hold_next_watch: AtomicBool,
    release: AtomicBool,
    /// Watch requests held so far.
    held: AtomicU32,
}

pub struct EtcdProxy {
    shared: Arc<Shared>,
    /// `http://<ip>:2379`
    pub endpoint: String,
    acceptor: Option<JoinHandle<()>>,
}

impl EtcdProxy {
    /// Listens on `ip`:2379 inside namespace `ns` and forwards to `upstream` (`host:port`, as
    /// reached from that namespace).
    pub fn start(ns: &str, ip: &str, upstream: &str) -> EtcdProxy {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            hold_next_watch: AtomicBool::new(false),
            release: AtomicBool::new(false),
            held: AtomicU32::new(0),
        });
        let addr = format!("{ip}:2379");
        let (tx, rx) = std::sync::mpsc::channel();
        let acceptor = {
            let shared = Arc::clone(&shared);
            let addr = addr.clone();
            let upstream = upstream.to_string();
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
                while !shared.stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let shared = Arc::clone(&shared);
                            let upstream = upstream.clone();
                            // Threads started here are in the namespace too.
                            thread::spawn(move || {
                                let _ = proxy(client, &upstream, &shared);
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(2));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("etcd proxy cannot listen on {addr} in {ns}: {e}"),
            Err(e) => panic!("etcd proxy on {addr} in {ns} did not start: {e}"),
        }
        EtcdProxy {
            shared,
            endpoint: format!("http://{addr}"),
            acceptor: Some(acceptor),
        }
    }

    /// Hold the next watch request (`POST …/watch`) until [`EtcdProxy::release`].
    pub fn hold_next_watch(&self) {
        self.shared.release.store(false, Ordering::SeqCst);
        self.shared.hold_next_watch.store(true, Ordering::SeqCst);
    }

    /// Waits (at most `timeout`) until a watch request is held.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        super::wait_until(timeout, Duration::from_millis(5), || {
            self.shared.held.load(Ordering::SeqCst) > 0
        })
        .is_some()
    }

    /// Forward the held request.
    pub fn release(&self) {
        self.shared.release.store(true, Ordering::SeqCst);
    }
}

impl Drop for EtcdProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.release.store(true, Ordering::SeqCst);
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

fn timeout_kind(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Copies `from` to `to` until EOF, an error, stop or LIFE.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let started = Instant::now();
    let mut buf = [0u8; 16 * 1024];
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    while !shared.stop.load(Ordering::SeqCst) && started.elapsed() < LIFE {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if timeout_kind(&e) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Forwards one client connection: replies are copied as they come, requests one at a time.
fn proxy(client: TcpStream, upstream: &str, shared: &Arc<Shared>) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    // Replies: raw bytes, on their own thread (a watch reply never ends); it ends at EOF from
    // etcd, at stop, or when the request side below shuts the sockets.
    let (from, to) = (server.try_clone()?, client.try_clone()?);
    let replies = Arc::clone(shared);
    thread::spawn(move || pump(from, to, &replies));
    let result = requests(client.try_clone()?, server.try_clone()?, shared);
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
    result
}

/// Reads the client's requests (head, then Content-Length bytes of body) and forwards each,
/// holding a watch request when asked to.
fn requests(mut client: TcpStream, mut server: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_millis(100)))?;
    let started = Instant::now();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // One request: its head…
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if shared.stop.load(Ordering::SeqCst) || started.elapsed() > LIFE {
                return Ok(());
            }
            match client.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if timeout_kind(&e) => {}
                Err(e) => return Err(e),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let path = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        // …and its body.
        while buf.len() < head_end + length {
            if shared.stop.load(Ordering::SeqCst) || started.elapsed() > LIFE {
                return Ok(());
            }
            match client.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if timeout_kind(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if path.ends_with("/watch") && shared.hold_next_watch.swap(false, Ordering::SeqCst) {
            shared.held.fetch_add(1, Ordering::SeqCst);
            let held = Instant::now();
            while !shared.release.load(Ordering::SeqCst) && held.elapsed() < HOLD {
                thread::sleep(Duration::from_millis(2));
            }
        }
        server.write_all(&buf[..head_end + length])?;
        buf.drain(..head_end + length);
    }
}

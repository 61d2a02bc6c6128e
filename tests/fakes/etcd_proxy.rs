//! A TCP proxy in front of a real etcd, inside a test's namespace: it forwards every byte both
//! ways, reading the client's HTTP requests one by one, and on request holds the next watch
//! request until the test releases it, so that the test can change the store (compact the
//! revision the watch starts from) at a known moment. Every wait is bounded; Drop stops the
//! proxy and its connections.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{Conn, Server};
use crate::common::{in_netns, wait_until};

/// How long a held request waits for [`EtcdProxy::release`] at most.
const HOLD: Duration = Duration::from_secs(10);
/// How long a connection's replies are copied at most.
const LIFE: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Shared {
    hold_next_watch: AtomicBool,
    release: AtomicBool,
    /// Watch requests held so far.
    held: AtomicU32,
}

pub struct EtcdProxy {
    shared: Arc<Shared>,
    /// `http://<ip>:2379`
    pub endpoint: String,
    _server: Server,
}

impl EtcdProxy {
    /// Listens on `ip`:2379 inside namespace `ns` and forwards to `upstream` (`host:port`, as
    /// reached from that namespace).
    pub fn start(ns: &str, ip: &str, upstream: &str) -> EtcdProxy {
        let shared = Arc::new(Shared::default());
        let (s, upstream) = (Arc::clone(&shared), upstream.to_string());
        let addr = format!("{ip}:2379");
        let server = in_netns(ns, || {
            Server::serve(&addr, move |conn| {
                let _ = proxy(conn, &upstream, &s);
            })
        });
        EtcdProxy {
            shared,
            endpoint: server.url(),
            _server: server,
        }
    }

    /// Hold the next watch request (`POST …/watch`) until [`EtcdProxy::release`].
    pub fn hold_next_watch(&self) {
        self.shared.release.store(false, Ordering::SeqCst);
        self.shared.hold_next_watch.store(true, Ordering::SeqCst);
    }

    /// Waits (at most `timeout`) until a watch request is held.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        let held = || self.shared.held.load(Ordering::SeqCst) > 0;
        wait_until(timeout, Duration::from_millis(5), held).is_some()
    }

    /// Forward the held request.
    pub fn release(&self) {
        self.shared.release.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until EOF, an error, `stop` or LIFE.
fn pump(mut from: TcpStream, mut to: TcpStream, stop: impl Fn() -> bool) {
    let started = Instant::now();
    let mut buf = [0u8; 16 * 1024];
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    while !stop() && started.elapsed() < LIFE {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if to.write_all(&buf[..n]).is_err() => break,
            Err(e)
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            _ => {}
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Forwards one client connection: replies are copied as they come (a watch reply never
/// ends), requests one at a time, a watch request held when asked to.
fn proxy(mut conn: Conn, upstream: &str, shared: &Shared) -> io::Result<()> {
    let mut server = TcpStream::connect(upstream)?;
    let (from, client) = (server.try_clone()?, conn.socket()?);
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    thread::spawn(move || pump(from, client, move || d.load(Ordering::SeqCst)));
    let mut result = Ok(());
    while let Some(request) = conn.next_request().filter(|_| result.is_ok()) {
        if request.path().ends_with("/watch")
            && shared.hold_next_watch.swap(false, Ordering::SeqCst)
        {
            shared.held.fetch_add(1, Ordering::SeqCst);
            let held = Instant::now();
            while !shared.release.load(Ordering::SeqCst) && !conn.stopped() && held.elapsed() < HOLD
            {
                thread::sleep(Duration::from_millis(2));
            }
        }
        result = server.write_all(&request.raw);
    }
    done.store(true, Ordering::SeqCst);
    let _ = server.shutdown(Shutdown::Both);
    let _ = conn.socket().map(|s| s.shutdown(Shutdown::Both));
    result
}

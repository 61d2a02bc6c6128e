//! A tiny HTTP/1.x server for `GET /metrics`, stepped by the daemon's loop.
//!
//! Hand-written because what it must do is small and what it must not do matters more:
//! it runs inside the one synchronous loop, so it never blocks, never starts a thread and
//! holds at most [`MAX_CONNECTIONS`] connections, each for at most [`HEAD_TIMEOUT`] to
//! send its request head (at most [`MAX_HEAD`] bytes) and [`WRITE_TIMEOUT`] to take the
//! reply. The HTTP crates either need an async runtime or a thread per connection, and
//! none bound a slow or hostile client this tightly.
//!
//! While every slot is taken the listener is not polled and nothing more is accepted: a
//! further client waits in the kernel's backlog and is served as soon as a slot frees
//! (within the two timeouts), instead of getting a closed connection it would count as a
//! failed scrape. The backlog itself is bounded by the kernel.
//!
//! Every reply closes the connection (`Connection: close`): no keep-alive state to
//! bound, and Prometheus reconnects per scrape without complaint. `HEAD /metrics` gets
//! the headers of the `GET` reply, without a body.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4;
/// The most a request head (request line and headers) may take.
pub const MAX_HEAD: usize = 4096;
/// The time a client has to send its whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// The time a client has to take the whole reply.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the listener is left alone after accept failed (out of descriptors): the
/// waiting connection keeps it readable, and polling it at once would spin the loop.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

enum Phase {
    /// Receiving the head: `len` bytes of `head` so far.
    Reading {
        head: Box<[u8; MAX_HEAD]>,
        len: usize,
    },
    /// Sending `out` from `sent` on.
    Writing { out: Vec<u8>, sent: usize },
}

struct Conn {
    stream: TcpStream,
    phase: Phase,
    /// When the connection is dropped if its phase has not ended.
    deadline: Instant,
}

/// What a connection's step came to.
enum Next {
    Keep,
    Close,
}

pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    conns: [Option<Conn>; MAX_CONNECTIONS],
    /// The rendered body, kept to reuse its allocation from scrape to scrape.
    body: String,
    /// Until when accepting is paused after a failure ([`ACCEPT_PAUSE`]).
    accept_paused: Option<Instant>,
}

impl Server {
    /// Listen on `addr` (non-blocking; std opens sockets close-on-exec).
    pub fn bind(addr: SocketAddr) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(Server {
            listener,
            addr,
            conns: Default::default(),
            body: String::new(),
            accept_paused: None,
        })
    }

    /// The address listened on (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections being served.
    pub fn connections(&self) -> usize {
        self.conns.iter().flatten().count()
    }

    /// The listener while a slot is free, and each connection for what it waits for.
    pub fn interest(&self, out: &mut Vec<libc::pollfd>) {
        if self.connections() < MAX_CONNECTIONS && self.accept_paused.is_none() {
            out.push(pollfd(self.listener.as_raw_fd(), libc::POLLIN));
        }
        for c in self.conns.iter().flatten() {
            let events = match c.phase {
                Phase::Reading { .. } => libc::POLLIN,
                Phase::Writing { .. } => libc::POLLOUT,
            };
            out.push(pollfd(c.stream.as_raw_fd(), events));
        }
    }

    /// The earliest time a connection must be dropped or accepting resumes.
    pub fn deadline(&self) -> Option<Instant> {
        let conns = self.conns.iter().flatten().map(|c| c.deadline);
        conns.chain(self.accept_paused).min()
    }

    /// Accept what fits, read heads, write replies, drop what is done or too slow.
    /// Non-blocking throughout; `body` renders the metrics, only for a complete valid
    /// `GET` or `HEAD /metrics`.
    pub fn step(&mut self, now: Instant, body: &mut dyn FnMut(&mut String)) {
        self.accept(now);
        for i in 0..MAX_CONNECTIONS {
            let Some(conn) = self.conns[i].as_mut() else {
                continue;
            };
            let next = if now >= conn.deadline {
                Next::Close
            } else {
                conn.step(now, &mut self.body, body)
            };
            if let Next::Close = next {
                if let Some(c) = self.conns[i].take() {
                    c.close();
                }
            }
        }
        // A slot freed above may let a waiting client in at once.
        self.accept(now);
    }

    fn accept(&mut self, now: Instant) {
        if self.accept_paused.is_some_and(|until| now < until) {
            return;
        }
        self.accept_paused = None;
        for slot in self.conns.iter_mut().filter(|c| c.is_none()) {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // Reset before it was accepted, or a signal: the next one may be fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionAborted | ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    log::debug!("metrics: accept: {e}");
                    self.accept_paused = Some(now + ACCEPT_PAUSE);
                    return;
                }
            };
            if let Err(e) = stream.set_nonblocking(true) {
                log::debug!("metrics: {e}");
                continue;
            }
            *slot = Some(Conn {
                stream,
                phase: Phase::Reading {
                    head: Box::new([0; MAX_HEAD]),
                    len: 0,
                },
                deadline: now + HEAD_TIMEOUT,
            });
        }
    }
}

impl Conn {
    fn step(
        &mut self,
        now: Instant,
        scratch: &mut String,
        body: &mut dyn FnMut(&mut String),
    ) -> Next {
        if let Phase::Reading { head, len } = &mut self.phase {
            let reply = match read_head(&mut self.stream, head, len) {
                Ok(Some(reply)) => reply,
                Ok(None) => return Next::Keep,
                Err(()) => return Next::Close,
            };
            let out = reply.bytes(scratch, body);
            self.phase = Phase::Writing { out, sent: 0 };
            self.deadline = now + WRITE_TIMEOUT;
        }
        let Phase::Writing { out, sent } = &mut self.phase else {
            return Next::Keep;
        };
        while *sent < out.len() {
            match self.stream.write(&out[*sent..]) {
                Ok(0) => return Next::Close,
                Ok(n) => *sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        Next::Close
    }

    /// End the reply with a FIN; what the client sent beyond its head is read away first,
    /// since closing with unread data would reset the connection (and could lose the
    /// reply's tail at the client).
    fn close(mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 512];
        for _ in 0..8 {
            match self.stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// Read what is there. `Ok(Some)`: the head is complete (or can never be valid) and
/// this is the reply; `Ok(None)`: wait for more; `Err`: the client is gone.
fn read_head(
    stream: &mut TcpStream,
    head: &mut [u8; MAX_HEAD],
    len: &mut usize,
) -> Result<Option<Reply>, ()> {
    loop {
        if let Some(end) = head_end(&head[..*len]) {
            return Ok(Some(Reply::to(&head[..end])));
        }
        if *len == MAX_HEAD {
            return Ok(Some(Reply::Status(431, "Request Header Fields Too Large")));
        }
        match stream.read(&mut head[*len..]) {
            Ok(0) => return Err(()),
            Ok(n) => *len += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
}

/// Where the head ends (after its blank line); a bare `\n` line end is taken too.
fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// What a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Metrics { with_body: bool },
    Status(u16, &'static str),
}

impl Reply {
    /// The reply to a complete head.
    fn to(head: &[u8]) -> Reply {
        let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
        let line = String::from_utf8_lossy(&head[..line_end]);
        let mut parts = line.trim_end_matches('\r').split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Reply::Status(400, "Bad Request");
        };
        if !version.starts_with("HTTP/1.") || method.is_empty() {
            return Reply::Status(400, "Bad Request");
        }
        let path = target.split('?').next().unwrap_or(target);
        match (path, method) {
            ("/metrics", "GET") => Reply::Metrics { with_body: true },
            ("/metrics", "HEAD") => Reply::Metrics { with_body: false },
            ("/metrics", _) => Reply::Status(405, "Method Not Allowed"),
            _ => Reply::Status(404, "Not Found"),
        }
    }

    /// The reply's bytes; the metrics are rendered into `scratch` by `body`.
    fn bytes(self, scratch: &mut String, body: &mut dyn FnMut(&mut String)) -> Vec<u8> {
        let (status, reason, content_type, with_body, extra) = match self {
            Reply::Metrics { with_body } => {
                scratch.clear();
                body(scratch);
                (200, "OK", CONTENT_TYPE, with_body, "")
            }
            Reply::Status(code, reason) => {
                scratch.clear();
                scratch.push_str(reason);
                scratch.push('\n');
                let allow = if code == 405 {
                    "Allow: GET, HEAD\r\n"
                } else {
                    ""
                };
                (code, reason, "text/plain; charset=utf-8", true, allow)
            }
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            scratch.len()
        );
        let mut out = Vec::with_capacity(head.len() + if with_body { scratch.len() } else { 0 });
        out.extend_from_slice(head.as_bytes());
        if with_body {
            out.extend_from_slice(scratch.as_bytes());
        }
        out
    }
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

#[cfg(test)]
mod tests;

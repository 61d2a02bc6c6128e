//! One kept-alive HTTP/1.1 connection to one DCS endpoint, over plain TCP or TLS
//! ([`Transport`]): the client of every DCS type, `http://` and `https://` alike, and the
//! long reply stream of etcd's watch ([`Stream`]).
//!
//! Every wait ends at the turn's deadline (see [`super::transport`]): the connect (also
//! bounded by the connect timeout), the TLS handshake, the request and the reply. A wait
//! meant to last (a blocking query, a watch: [`Request::wake`], [`Stream::read_into`])
//! shares its `poll` with the loop's other sources ([`crate::wake`]) and ends when one of
//! them is ready or a signal arrives, keeping the request in flight
//! ([`Connection::resume`]) or the stream open; a short one polls on. Names in endpoints (IP literals are the
//! norm) are looked up on a short-lived thread that the connect waits for no longer than
//! its deadline. The idle path costs a `write`, a `poll` and, as a rule, one `read` per
//! request.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

pub use super::transport::Transport;
use super::wire::{self, Reply};
use super::{MAX_REPLY, Tls};
use crate::wake::Wake;

/// A request may always take this long, even when the turn is already late.
const FLOOR: Duration = Duration::from_millis(50);

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The deadline passed.
    TimedOut,
    /// A signal or another source of the loop ended a wait for a change.
    Interrupted,
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::TimedOut => f.write_str("timed out"),
            Error::Interrupted => f.write_str("interrupted by a signal"),
            Error::Failed(why) => f.write_str(why),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::TimedOut,
            io::ErrorKind::Interrupted => Error::Interrupted,
            _ => Error::Failed(e.to_string()),
        }
    }
}

impl From<String> for Error {
    fn from(why: String) -> Error {
        Error::Failed(why)
    }
}

/// Where an endpoint URL (`http[s]://host[:port][/path]`) points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    /// The host without IPv6 brackets: looked up, and the name TLS verifies.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// The path (and query) after the authority, without a trailing `/`; requests go below.
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let bad = || format!("endpoint {url:?} is not an http:// or https:// URL");
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(bad()),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                (host, Some(port.parse::<u16>().map_err(|_| bad())?))
            }
            _ => (authority, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Target {
            https,
            host: host.to_string(),
            port: port.unwrap_or(if https { 443 } else { 80 }),
            authority: authority.to_string(),
            path: path.trim_end_matches('/').to_string(),
        })
    }
}

/// One request. The endpoint's own path goes before `path`, written piece by piece.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a [&'a str],
    pub headers: &'a [(&'a str, &'a str)],
    /// A body, sent as JSON unless `headers` name its Content-Type.
    pub body: Option<&'a str>,
    /// A wait for a change: a signal or a ready descriptor of the loop ends the wait for
    /// the reply, which stays in flight; `None`: a read, which polls on.
    pub wake: Option<Wake<'a>>,
}

impl<'a> Request<'a> {
    pub fn get(path: &'a [&'a str], headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            method: "GET",
            path,
            headers,
            body: None,
            wake: None,
        }
    }

    pub fn post(
        path: &'a [&'a str],
        headers: &'a [(&'a str, &'a str)],
        body: &'a str,
    ) -> Request<'a> {
        Request {
            method: "POST",
            body: Some(body),
            ..Request::get(path, headers)
        }
    }
}

/// The addresses of `host`: an IP literal at once; a name looked up on a thread of its
/// own, waited for until `deadline` (a stuck resolver must not stall the loop; the thread
/// finishes on its own).
fn resolve(host: &str, port: u16, deadline: Instant) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("vipd-resolve".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
        })?;
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(io::Error::other(format!("{host}: no address"))),
        Ok(Err(e)) => Err(io::Error::other(format!("{host}: {e}"))),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("looking up {host} timed out"),
        )),
    }
}

/// `req`'s bytes in `out` (emptied first), below the endpoint's own path.
fn encode(target: &Result<Target, String>, req: &Request, out: &mut Vec<u8>) -> Result<(), Error> {
    let target = target.as_ref().map_err(|e| Error::Failed(e.clone()))?;
    out.clear();
    let path = (target.path.as_str(), req.path);
    wire::write_request(
        out,
        req.method,
        &target.authority,
        path,
        req.headers,
        req.body,
    );
    Ok(())
}

/// One endpoint's connection, opened when needed and kept alive between requests.
pub struct Connection {
    target: Result<Target, String>,
    connect_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    transport: Option<Transport>,
    /// The reply being read, and the request being sent: kept to be reused.
    buf: Vec<u8>,
    /// A request was sent and a wake ended the wait for its reply: `buf` holds what
    /// came so far, [`Connection::resume`] reads on.
    in_flight: bool,
    request: Vec<u8>,
    /// The largest reply body (and stream) accepted: [`MAX_REPLY`] unless
    /// [`Connection::set_limit`] says otherwise.
    limit: usize,
}

impl Connection {
    /// A connection to `url`, with the connect timeout of the loop's `interval` and the
    /// TLS configuration of `tls` for an `https://` URL.
    pub fn new(url: &str, interval: Duration, tls: &Tls) -> Connection {
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        Connection {
            target: Target::parse(url),
            connect_timeout: (interval / 3)
                .clamp(Duration::from_millis(100), Duration::from_secs(2)),
            #[cfg(feature = "tls")]
            tls: tls.client_config(),
            transport: None,
            in_flight: false,
            buf: Vec::with_capacity(2048),
            request: Vec::with_capacity(512),
            limit: MAX_REPLY,
        }
    }

    /// Accept replies of up to `limit` bytes (a whole scope's records rather than one
    /// key).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The open connection, if any (see the module's contract for polling it).
    pub fn transport(&self) -> Option<&Transport> {
        self.transport.as_ref()
    }

    /// Send `req` and read the reply (at most [`MAX_REPLY`] bytes of body), until
    /// `deadline` (or a little later when the turn is already late). A kept-alive
    /// connection the server closed while idle is replaced once.
    ///
    /// A request whose wait a wake ended ([`Error::Interrupted`]) stays in flight for
    /// [`Connection::resume`]; any other request first drops it (with its connection:
    /// its reply must never be taken for the new one's).
    pub fn request(&mut self, req: &Request, deadline: Instant) -> Result<Reply, Error> {
        encode(&self.target, req, &mut self.request)?;
        if std::mem::take(&mut self.in_flight) {
            self.transport = None;
        }
        let deadline = deadline.max(Instant::now() + FLOOR);
        let reused = self.transport.is_some();
        let mut result = self.exchange(deadline, req.wake);
        if reused && matches!(result, Err(Retry::Fresh)) {
            self.transport = None;
            result = self.exchange(deadline, req.wake);
        }
        self.settle(result, req.wake.is_some())
    }

    /// Whether a request waits for its reply ([`Connection::resume`]).
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Drop the request in flight, with its connection (its reply may still come).
    pub fn abandon(&mut self) {
        if std::mem::take(&mut self.in_flight) {
            self.transport = None;
        }
    }

    /// Read on the reply of the request in flight, until `deadline` or the next wake.
    pub fn resume(&mut self, deadline: Instant, wake: Wake<'_>) -> Result<Reply, Error> {
        if !std::mem::take(&mut self.in_flight) || self.transport.is_none() {
            return Err(Error::Failed("no request in flight".into()));
        }
        let result = self.receive(deadline, Some(wake));
        self.settle(result, true)
    }

    /// Keep the connection for the next request (a complete reply without `close`), or
    /// for the rest of a wait's reply when a wake or the caller's deadline ended the
    /// wait (`waiting`: the caller resumes or abandons it); drop it otherwise.
    fn settle(&mut self, result: Result<Reply, Retry>, waiting: bool) -> Result<Reply, Error> {
        match &result {
            Err(Retry::Error(Error::Interrupted | Error::TimedOut)) if waiting => {
                self.in_flight = true
            }
            Ok(reply) if !reply.close => {}
            _ => self.transport = None,
        }
        result.map_err(Retry::into_error)
    }

    fn exchange(&mut self, deadline: Instant, wake: Option<Wake<'_>>) -> Result<Reply, Retry> {
        let transport = match self.transport.take() {
            Some(open) => open,
            None => self.connect(deadline)?,
        };
        let transport = self.transport.insert(transport);
        transport
            .write_all(&self.request, deadline)
            .map_err(Retry::first)?;
        self.buf.clear();
        self.receive(deadline, wake)
    }

    /// Read the reply into `buf` (which may hold its start already) until complete.
    fn receive(&mut self, deadline: Instant, wake: Option<Wake<'_>>) -> Result<Reply, Retry> {
        let Some(transport) = self.transport.as_mut() else {
            return Err(Retry::text("no connection".into()));
        };
        let mut chunk = [0u8; 4096];
        loop {
            let n = match transport.read(&mut chunk, deadline, wake) {
                Ok(0) if self.buf.is_empty() => return Err(Retry::Fresh),
                Ok(n) => n,
                Err(e) if self.buf.is_empty() => return Err(Retry::first(e)),
                Err(e) => return Err(Retry::Error(e.into())),
            };
            if wire::over_limit(self.buf.len() + n, self.limit) {
                return Err(Retry::Error(Error::Failed(wire::too_large(self.limit))));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let eof = n == 0;
            if let Some(reply) =
                wire::parse_reply(&self.buf, eof, self.limit).map_err(Retry::text)?
            {
                return Ok(reply);
            }
            if eof {
                return Err(Retry::text("connection closed mid-reply".into()));
            }
        }
    }

    /// A new connection (and TLS session), until `deadline` and the connect timeout.
    fn connect(&self, deadline: Instant) -> io::Result<Transport> {
        let target = self
            .target
            .as_ref()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.clone()))?;
        let until = deadline.min(Instant::now() + self.connect_timeout);
        let mut last = io::Error::from(io::ErrorKind::TimedOut);
        let mut sock = None;
        for addr in resolve(&target.host, target.port, until)? {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let sock = sock.ok_or(last)?;
        sock.set_nodelay(true)?;
        // A path that dies silently (packets dropped, no FIN or RST) fails the socket
        // after about 4 s of silence, even under a watch that sends nothing; the probes
        // cost the server's kernel, not its process.
        crate::net::sys::set_tcp_keepalive(sock.as_fd(), 2, 1, 2)?;
        sock.set_nonblocking(true)?;
        if !target.https {
            return Ok(Transport::Plain(sock));
        }
        #[cfg(feature = "tls")]
        if let Some(config) = &self.tls {
            return super::transport::tls(sock, config.clone(), &target.host, deadline);
        }
        Err(io::Error::other("https:// without a TLS configuration"))
    }

    /// Send `req` on a connection of its own and read the reply's head: the reply is a
    /// chunked stream that goes on for as long as the server likes (etcd's watch).
    pub fn open_stream(&self, req: &Request, deadline: Instant) -> Result<Stream, Error> {
        let mut request = Vec::with_capacity(256);
        encode(&self.target, req, &mut request)?;
        let deadline = deadline.max(Instant::now() + FLOOR);
        let mut transport = self.connect(deadline)?;
        transport.write_all(&request, deadline)?;
        let mut raw = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        let head = loop {
            let n = transport.read(&mut chunk, deadline, req.wake)?;
            if n == 0 {
                return Err(Error::Failed("connection closed before the reply".into()));
            }
            raw.extend_from_slice(&chunk[..n]);
            if let Some(head) = wire::parse_head(&raw)? {
                break head;
            }
        };
        if head.status != 200 {
            return Err(Error::Failed(format!("HTTP {}", head.status)));
        }
        if head.framing != wire::Framing::Chunked {
            return Err(Error::Failed("the stream is not chunked".into()));
        }
        raw.drain(..head.len);
        Ok(Stream {
            transport,
            raw,
            limit: self.limit,
        })
    }
}

/// Why an exchange failed, and whether a fresh connection may help.
enum Retry {
    /// The kept-alive connection was closed by the server before any reply.
    Fresh,
    Error(Error),
}

impl Retry {
    /// A failure before any byte of the reply: a connection the server closed (or reset)
    /// is worth one more try on a new one.
    fn first(e: io::Error) -> Retry {
        match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Retry::Fresh,
            _ => Retry::Error(e.into()),
        }
    }

    fn text(why: String) -> Retry {
        Retry::Error(Error::Failed(why))
    }

    fn into_error(self) -> Error {
        match self {
            Retry::Fresh => Error::Failed("connection closed by the server".into()),
            Retry::Error(e) => e,
        }
    }
}

impl From<io::Error> for Retry {
    fn from(e: io::Error) -> Retry {
        Retry::Error(e.into())
    }
}

/// The body of a chunked reply that goes on for as long as the server likes, read in
/// pieces as they come. A read that reaches its deadline leaves the stream usable.
pub struct Stream {
    transport: Transport,
    /// Received bytes not yet decoded (a chunk header or a chunk not yet complete).
    raw: Vec<u8>,
    limit: usize,
}

/// How reading a stream ended without data.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The deadline passed; the stream is still usable.
    Deadline,
    /// A signal or another source of the loop ended the wait; the stream is still usable.
    Interrupted,
    /// The server ended the stream, or it broke: not usable any more.
    Closed(String),
}

impl Stream {
    /// The stream's connection (see the module's contract for polling it).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The next complete line at the front of `buf` (its length, without the `\n`),
    /// reading until there is one or `deadline`; bytes after it stay in `buf` for the
    /// next call. The caller parses `buf[..len]`, then drains `..=len`. More than
    /// `max` bytes without a line break end the stream.
    pub fn next_line(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
        deadline: Instant,
        wake: Wake<'_>,
    ) -> Result<usize, StreamEnd> {
        loop {
            if let Some(len) = buf.iter().position(|&b| b == b'\n') {
                return Ok(len);
            }
            if buf.len() > max {
                return Err(StreamEnd::Closed(format!("a line longer than {max} bytes")));
            }
            self.read_into(buf, deadline, wake)?;
        }
    }

    /// Append the next decoded body bytes to `out`, waiting until `deadline` or a wake
    /// ([`StreamEnd::Interrupted`]). An idle turn ends in one `poll`.
    pub fn read_into(
        &mut self,
        out: &mut Vec<u8>,
        deadline: Instant,
        wake: Wake<'_>,
    ) -> Result<(), StreamEnd> {
        let mut chunk = [0u8; 4096];
        loop {
            if wire::decode_chunks(&mut self.raw, out, self.limit).map_err(StreamEnd::Closed)? {
                return Ok(());
            }
            let n = match self.transport.read(&mut chunk, deadline, Some(wake)) {
                Ok(0) => return Err(StreamEnd::Closed("closed by the server".into())),
                Ok(n) => n,
                Err(e) => {
                    return Err(match Error::from(e) {
                        Error::TimedOut => StreamEnd::Deadline,
                        Error::Interrupted => StreamEnd::Interrupted,
                        Error::Failed(why) => StreamEnd::Closed(why),
                    });
                }
            };
            if self.raw.len() + n > self.limit {
                return Err(StreamEnd::Closed(format!(
                    "chunk larger than {} bytes",
                    self.limit
                )));
            }
            self.raw.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests;

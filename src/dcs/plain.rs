//! A lean HTTP/1.1 client for the one request vipd makes every turn: a small POST
//! to a plain `http://` endpoint over a kept-alive connection.
//!
//! Why not ureq here: the idle loop's cost is dominated by system calls, and ureq
//! spends about a dozen per request on a pooled connection (a liveness probe before
//! and after, a socket timeout per read and write, headers and body written apart).
//! This client writes the request in one `write`, reads the reply in one `read` as a
//! rule, and sets its socket timeout once per connection: two system calls per turn.
//! Everything else (TLS, the watch stream, `GET /version`) stays with ureq.
//!
//! Replies are parsed by [`parse_head`] and [`Body`], pure functions tested without
//! sockets; bodies with `Content-Length` or chunked encoding, bounded in size.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

/// The largest reply head (status line and headers) accepted.
const MAX_HEAD: usize = 8 * 1024;

/// How the body of a reply is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// A parsed reply head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    /// The connection cannot be used again (`Connection: close`, HTTP/1.0).
    pub close: bool,
    /// Bytes taken by the head, including the blank line.
    pub len: usize,
}

/// Parse a reply head from the start of `buf`: `Ok(None)` when it is not complete yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = blank_line(buf) else {
        return if buf.len() > MAX_HEAD {
            Err("reply head too large".into())
        } else {
            Ok(None)
        };
    };
    let text =
        std::str::from_utf8(&buf[..end]).map_err(|_| "reply head is not text".to_string())?;
    // CRLF ends a line; a bare LF is taken as one too (RFC 9112 §2.2 allows it).
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| {
            format!(
                "bad status line {:?}",
                status_line.chars().take(60).collect::<String>()
            )
        })?;
    if !version.starts_with("HTTP/1.") {
        return Err(format!(
            "not HTTP/1.x: {:?}",
            version.chars().take(20).collect::<String>()
        ));
    }
    let mut close = version == "HTTP/1.0";
    let mut framing = Framing::Close;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("malformed header line".into());
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(format!("unsupported Transfer-Encoding {value:?}"));
            }
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if framing == Framing::Close {
        close = true;
    }
    Ok(Some(Head {
        status,
        framing,
        close,
        len: end + 4,
    }))
}

/// Where the first `\r\n\r\n` in `buf` starts (a scan for line feeds, which the
/// idle loop runs on every reply).
fn blank_line(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf.get(from..)?.iter().position(|&b| b == b'\n') {
        let at = from + i;
        if at >= 3 && buf.get(at - 3..=at) == Some(b"\r\n\r\n") {
            return Some(at - 3);
        }
        from = at + 1;
    }
    None
}

/// Decode a chunked body from `buf`: `Ok(None)` when it is not complete yet,
/// else the body and the bytes the encoding took.
pub fn dechunk(buf: &[u8], limit: usize) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return if buf.len() - at > 32 {
                Err("malformed chunk size".into())
            } else {
                Ok(None)
            };
        };
        let size_text = std::str::from_utf8(&buf[at..at + eol])
            .map_err(|_| "malformed chunk size".to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| "malformed chunk size".to_string())?;
        let data = at + eol + 2;
        if size == 0 {
            // Trailer fields (the gRPC gateway sends its status there on errors) up
            // to an empty line; they are not needed and skipped.
            let rest = &buf[data..];
            if rest.starts_with(b"\r\n") {
                return Ok(Some((body, data + 2)));
            }
            return match blank_line(rest) {
                Some(end) => Ok(Some((body, data + end + 4))),
                None if rest.len() > MAX_HEAD => Err("chunk trailers too large".into()),
                None => Ok(None),
            };
        }
        if body.len() + size > limit {
            return Err(format!("reply larger than {limit} bytes refused"));
        }
        let Some(chunk) = buf.get(data..data + size) else {
            return Ok(None);
        };
        match buf.get(data + size..data + size + 2) {
            Some(b"\r\n") => {}
            Some(_) => return Err("malformed chunk".into()),
            None => return Ok(None),
        }
        body.extend_from_slice(chunk);
        at = data + size + 2;
    }
}

/// A POST request with a JSON `body`; `path` is written piece by piece (an API prefix
/// and a method) so that the caller need not allocate it.
fn write_request(
    out: &mut Vec<u8>,
    host: &str,
    path: &[&str],
    headers: &[(&str, &str)],
    body: &str,
) {
    out.extend_from_slice(b"POST ");
    for piece in path {
        out.extend_from_slice(piece.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(
        concat!(
            "\r\nUser-Agent: vipd/",
            env!("CARGO_PKG_VERSION"),
            "\r\nContent-Type: application/json\r\nContent-Length: "
        )
        .as_bytes(),
    );
    push_decimal(out, body.len());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// Appends `n` in decimal (without the formatting machinery: this runs every turn).
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// One endpoint's kept-alive connection.
pub struct Plain {
    addr: SocketAddr,
    host: String,
    conn: Option<TcpStream>,
    /// Socket timeouts, set once per connection: one read waits no longer, and the
    /// exchange gives up at the first read that ends after its deadline.
    timeout: Duration,
    buf: Vec<u8>,
    request: Vec<u8>,
    limit: usize,
}

impl Plain {
    /// A client for `http://host:port` (`host` as written in the URL, for the `Host`
    /// header), at `addr`; replies over `limit` bytes are refused.
    pub fn new(addr: SocketAddr, host: &str, timeout: Duration, limit: usize) -> Plain {
        Plain {
            addr,
            host: host.to_string(),
            conn: None,
            timeout,
            buf: Vec::with_capacity(2048),
            request: Vec::with_capacity(512),
            limit,
        }
    }

    /// POST `body` to `path` with the extra `headers`; the status and the body.
    /// A connection the server closed while idle is replaced once.
    pub fn post(
        &mut self,
        path: &[&str],
        headers: &[(&str, &str)],
        body: &str,
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), String> {
        self.request.clear();
        write_request(&mut self.request, &self.host, path, headers, body);
        let reused = self.conn.is_some();
        match self.exchange(deadline) {
            Err(Retry::Fresh) if reused => {
                self.conn = None;
                self.exchange(deadline).map_err(Retry::into_text)
            }
            other => other.map_err(Retry::into_text),
        }
    }

    fn exchange(&mut self, deadline: Instant) -> Result<(u16, Vec<u8>), Retry> {
        let result = self.exchange_once(deadline);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange_once(&mut self, deadline: Instant) -> Result<(u16, Vec<u8>), Retry> {
        if self.conn.is_none() {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(50));
            let conn = TcpStream::connect_timeout(&self.addr, left.min(self.timeout))
                .map_err(Retry::io)?;
            conn.set_nodelay(true).map_err(Retry::io)?;
            conn.set_read_timeout(Some(self.timeout))
                .map_err(Retry::io)?;
            conn.set_write_timeout(Some(self.timeout))
                .map_err(Retry::io)?;
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Retry::Text("no connection".into()));
        };
        conn.write_all(&self.request).map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                Retry::Fresh
            } else {
                Retry::io(e)
            }
        })?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let mut head = None;
        loop {
            let n = match conn.read(&mut chunk) {
                Ok(0) if self.buf.is_empty() => return Err(Retry::Fresh),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset && self.buf.is_empty() => {
                    return Err(Retry::Fresh);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Retry::io(e)),
            };
            let eof = n == 0;
            if self.buf.len() + n > self.limit + MAX_HEAD {
                return Err(Retry::Text(format!(
                    "reply larger than {} bytes refused",
                    self.limit
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if head.is_none() {
                head = parse_head(&self.buf).map_err(Retry::Text)?;
            }
            if let Some(h) = head {
                let rest = &self.buf[h.len..];
                let done = match h.framing {
                    Framing::Length(len) if len > self.limit => {
                        return Err(Retry::Text(format!(
                            "reply larger than {} bytes refused",
                            self.limit
                        )));
                    }
                    Framing::Length(len) if rest.len() >= len => Some(rest[..len].to_vec()),
                    Framing::Length(_) => None,
                    Framing::Chunked => dechunk(rest, self.limit)
                        .map_err(Retry::Text)?
                        .map(|(body, _)| body),
                    Framing::Close if eof => Some(rest.to_vec()),
                    Framing::Close => None,
                };
                if let Some(body) = done {
                    if h.close {
                        self.conn = None;
                    }
                    return Ok((h.status, body));
                }
            }
            if eof {
                return Err(Retry::Text("connection closed mid-reply".into()));
            }
            // A reply that trickles in must not hold the turn past its deadline.
            if Instant::now() > deadline {
                return Err(Retry::Text("timed out".into()));
            }
        }
    }
}

impl Plain {
    /// Send a POST whose reply is a long chunked stream (etcd's watch) on a
    /// connection of its own, and read the reply head; the stream reads the body.
    pub fn open_stream(
        &self,
        path: &[&str],
        headers: &[(&str, &str)],
        body: &str,
        deadline: Instant,
    ) -> Result<Stream, String> {
        let mut request = Vec::with_capacity(256 + body.len());
        write_request(&mut request, &self.host, path, headers, body);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(50));
        let mut conn = TcpStream::connect_timeout(&self.addr, left.min(self.timeout))
            .map_err(|e| e.to_string())?;
        conn.set_nodelay(true).map_err(|e| e.to_string())?;
        conn.set_write_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(left.min(self.timeout)))
            .map_err(|e| e.to_string())?;
        conn.write_all(&request).map_err(|e| e.to_string())?;
        let mut raw = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        let head = loop {
            let n = conn
                .read(&mut chunk)
                .map_err(|e| Retry::io(e).into_text())?;
            if n == 0 {
                return Err("connection closed before the reply".into());
            }
            raw.extend_from_slice(&chunk[..n]);
            if let Some(head) = parse_head(&raw)? {
                break head;
            }
        };
        if head.status != 200 {
            return Err(format!("HTTP {}", head.status));
        }
        if head.framing != Framing::Chunked {
            return Err("the stream is not chunked".into());
        }
        raw.drain(..head.len);
        Ok(Stream {
            conn,
            raw,
            limit: self.limit,
        })
    }
}

/// The body of a chunked reply that goes on for as long as the server likes, read
/// in pieces as they come. A read that times out leaves the stream usable.
pub struct Stream {
    conn: TcpStream,
    /// Received bytes not yet decoded (a chunk header or a chunk not yet complete).
    raw: Vec<u8>,
    limit: usize,
}

/// How reading a stream ended without data.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The deadline passed; the stream is still usable.
    Deadline,
    /// A signal interrupted the read; the stream is still usable.
    Interrupted,
    /// The server ended the stream, or it broke: not usable any more.
    Closed(String),
}

impl Stream {
    /// Append the next decoded body bytes to `out`, waiting until `deadline`.
    pub fn read_into(&mut self, out: &mut Vec<u8>, deadline: Instant) -> Result<(), StreamEnd> {
        let mut chunk = [0u8; 4096];
        loop {
            if self.decode(out)? {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(1) {
                return Err(StreamEnd::Deadline);
            }
            // Wait with poll(2): an idle turn ends in this one system call (a socket
            // timeout would cost a setsockopt and a failed read). Rounded up to the
            // millisecond so that the wait never ends before the deadline.
            let ms = left.as_micros().div_ceil(1000).min(86_400_000) as u32;
            let mut fds = [PollFd::new(self.conn.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => return Err(StreamEnd::Deadline),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Err(StreamEnd::Interrupted),
                Err(e) => return Err(StreamEnd::Closed(e.to_string())),
            }
            match self.conn.read(&mut chunk) {
                Ok(0) => return Err(StreamEnd::Closed("closed by the server".into())),
                Ok(n) => {
                    if self.raw.len() + n > self.limit {
                        return Err(StreamEnd::Closed(format!(
                            "chunk larger than {} bytes",
                            self.limit
                        )));
                    }
                    self.raw.extend_from_slice(&chunk[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(StreamEnd::Deadline);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    return Err(StreamEnd::Interrupted);
                }
                Err(e) => return Err(StreamEnd::Closed(e.to_string())),
            }
        }
    }

    /// Move every complete chunk from `raw` to `out`; whether any data moved.
    fn decode(&mut self, out: &mut Vec<u8>) -> Result<bool, StreamEnd> {
        let mut moved = false;
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                if self.raw.len() > 32 {
                    return Err(StreamEnd::Closed("malformed chunk size".into()));
                }
                return Ok(moved);
            };
            let size = std::str::from_utf8(&self.raw[..eol])
                .ok()
                .and_then(|t| {
                    usize::from_str_radix(t.split(';').next().unwrap_or_default().trim(), 16).ok()
                })
                .ok_or_else(|| StreamEnd::Closed("malformed chunk size".into()))?;
            if size == 0 {
                return Err(StreamEnd::Closed("the server ended the stream".into()));
            }
            if size > self.limit {
                return Err(StreamEnd::Closed(format!(
                    "chunk larger than {} bytes",
                    self.limit
                )));
            }
            let data = eol + 2;
            if self.raw.len() < data + size + 2 {
                return Ok(moved);
            }
            if &self.raw[data + size..data + size + 2] != b"\r\n" {
                return Err(StreamEnd::Closed("malformed chunk".into()));
            }
            out.extend_from_slice(&self.raw[data..data + size]);
            self.raw.drain(..data + size + 2);
            moved = true;
        }
    }
}

/// Why an exchange failed, and whether a fresh connection may help.
enum Retry {
    /// The kept-alive connection was closed by the server before any reply.
    Fresh,
    Text(String),
}

impl Retry {
    fn io(e: io::Error) -> Retry {
        Retry::Text(match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
            _ => e.to_string(),
        })
    }

    fn into_text(self) -> String {
        match self {
            Retry::Fresh => "connection closed by the server".into(),
            Retry::Text(t) => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn heads() {
        // As etcd 3.4.23's gateway answers a range (captured with curl -i).
        let etcd = b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Headers: accept, content-type, authorization\r\nContent-Type: application/json\r\nGrpc-Metadata-Content-Type: application/grpc\r\nDate: Thu, 26 Nov 2026 12:08:04 GMT\r\nContent-Length: 246\r\n\r\n{";
        let h = parse_head(etcd).unwrap().unwrap();
        assert_eq!(
            (h.status, h.framing, h.close),
            (200, Framing::Length(246), false)
        );
        assert_eq!(&etcd[h.len..], b"{");
        let h =
            parse_head(b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!((h.status, h.framing), (503, Framing::Chunked));
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.close), (Framing::Close, true));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_head(&vec![b'x'; MAX_HEAD + 1]).is_err());
    }

    #[test]
    fn request_bytes() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            "192.0.2.1:2379",
            &["/v3", "/kv/range"],
            &[
                ("Grpc-Metadata-hasleader", "true"),
                ("Authorization", "tok"),
            ],
            r#"{"key":"a2V5"}"#,
        );
        let want = format!(
            "POST /v3/kv/range HTTP/1.1\r\nHost: 192.0.2.1:2379\r\nUser-Agent: vipd/{}\r\n\
             Content-Type: application/json\r\nContent-Length: 14\r\n\
             Grpc-Metadata-hasleader: true\r\nAuthorization: tok\r\n\r\n{{\"key\":\"a2V5\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
        for n in [0, 7, 10, 246, 1000, 65_535, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn blank_lines() {
        assert_eq!(blank_line(b""), None);
        assert_eq!(blank_line(b"\n\n\n"), None);
        assert_eq!(blank_line(b"\r\n\r\n"), Some(0));
        assert_eq!(blank_line(b"a\r\n\r\nb\r\n\r\n"), Some(1));
        assert_eq!(blank_line(b"a\r\n\r\r\n\r\n"), Some(4));
        assert_eq!(blank_line(b"a\r\nb\r\n\r"), None);
        // A bare LF ends a header line too.
        let h = parse_head(b"HTTP/1.1 200 OK\nContent-Length: 3\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.framing, h.close),
            (200, Framing::Length(3), true)
        );
    }

    #[test]
    fn chunks() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n", 100).unwrap(),
            Some((b"Wikipedia".to_vec(), 28))
        );
        assert_eq!(dechunk(b"4\r\nWiki\r\n", 100).unwrap(), None);
        assert_eq!(dechunk(b"4\r\nWi", 100).unwrap(), None);
        assert_eq!(dechunk(b"0\r\n", 100).unwrap(), None);
        assert!(dechunk(b"zz\r\n", 100).is_err());
        assert!(dechunk(b"4\r\nWikiXX", 100).is_err());
        assert!(dechunk(b"10\r\n", 8).is_err(), "over the limit");
        // The gRPC gateway's error replies end with trailers.
        let with_trailers = b"3\r\nabc\r\n0\r\nGrpc-Trailer-Content-Type: application/grpc\r\n\r\n";
        assert_eq!(
            dechunk(with_trailers, 100).unwrap(),
            Some((b"abc".to_vec(), with_trailers.len()))
        );
        assert_eq!(dechunk(b"0\r\nGrpc-Trailer-X: y\r\n", 100).unwrap(), None);
    }

    /// A server answering each request on a connection with `reply(n)`, counting
    /// connections; it closes a connection after `per_conn` requests.
    fn server(per_conn: usize, reply: fn(usize) -> Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().take(20).enumerate() {
                let Ok(mut s) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                for i in 0..per_conn {
                    let mut buf = [0u8; 4096];
                    let mut got = Vec::new();
                    // One request: head and the small body arrive together or soon.
                    loop {
                        let Ok(k) = s.read(&mut buf) else { return };
                        if k == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..k]);
                        if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&got[..p]).to_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if got.len() >= p + 4 + len {
                                break;
                            }
                        }
                    }
                    if got.is_empty() {
                        break;
                    }
                    let _ = s.write_all(&reply(n * 100 + i));
                }
            }
        });
        (addr, conns)
    }

    fn client(addr: SocketAddr) -> Plain {
        Plain::new(addr, "192.0.2.1:2379", Duration::from_secs(2), 1024)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(2)
    }

    #[test]
    fn keeps_one_connection_alive() {
        let (addr, conns) = server(100, |i| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{i}",
                i.to_string().len()
            )
            .into_bytes()
        });
        let mut c = client(addr);
        for i in 0..5 {
            let (status, body) = c
                .post(
                    &["/v3/kv/range"],
                    &[("Grpc-Metadata-hasleader", "true")],
                    "{}",
                    soon(),
                )
                .unwrap();
            assert_eq!((status, body), (200, i.to_string().into_bytes()));
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn replaces_a_connection_the_server_closed() {
        let (addr, conns) = server(1, |_| {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
        });
        let mut c = client(addr);
        for _ in 0..3 {
            assert_eq!(
                c.post(&["/"], &[], "", soon()).unwrap(),
                (200, b"ok".to_vec())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(conns.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn chunked_and_close_delimited_replies() {
        let (addr, _) = server(100, |_| {
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno \r\n6\r\nleader\r\n0\r\n\r\n".to_vec()
        });
        assert_eq!(
            client(addr).post(&["/"], &[], "", soon()).unwrap(),
            (503, b"no leader".to_vec())
        );
        let (addr, _) = server(1, |_| b"HTTP/1.0 200 OK\r\n\r\nold".to_vec());
        assert_eq!(
            client(addr).post(&["/"], &[], "", soon()).unwrap(),
            (200, b"old".to_vec())
        );
    }

    #[test]
    fn refuses_large_and_malformed_replies() {
        let (addr, _) = server(100, |_| {
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec()
        });
        assert!(
            client(addr)
                .post(&["/"], &[], "", soon())
                .unwrap_err()
                .contains("larger than 1024")
        );
        let (addr, _) = server(100, |_| b"garbage\r\n\r\n".to_vec());
        assert!(
            client(addr)
                .post(&["/"], &[], "", soon())
                .unwrap_err()
                .contains("bad status line")
        );
    }

    #[test]
    fn a_stream_outlives_its_deadlines() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<&'static [u8]>();
        std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for piece in rx {
                let _ = s.write_all(piece);
            }
        });
        let c = client(addr);
        let mut stream = c.open_stream(&["/v3/watch"], &[], "{}", soon()).unwrap();
        let mut out = Vec::new();
        let short = || Instant::now() + Duration::from_millis(50);
        assert_eq!(
            stream.read_into(&mut out, short()),
            Err(StreamEnd::Deadline)
        );
        tx.send(b"6\r\nline1\n\r\n4\r\nli").unwrap();
        stream.read_into(&mut out, soon()).unwrap();
        assert_eq!(out, b"line1\n");
        assert_eq!(
            stream.read_into(&mut out, short()),
            Err(StreamEnd::Deadline),
            "half a chunk waits"
        );
        tx.send(b"ne\r\n").unwrap();
        stream.read_into(&mut out, soon()).unwrap();
        assert_eq!(out, b"line1\nline");
        tx.send(b"0\r\n\r\n").unwrap();
        assert!(matches!(
            stream.read_into(&mut out, soon()),
            Err(StreamEnd::Closed(_))
        ));
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Plain::new(addr, "x", Duration::from_millis(200), 1024);
        let t = Instant::now();
        let err = c
            .post(&["/"], &[], "", Instant::now() + Duration::from_millis(100))
            .unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}

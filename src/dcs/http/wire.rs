//! HTTP/1.1 on the wire, without sockets: the request bytes ([`write_request`]) and the
//! reply parser ([`parse_reply`]: head, then a body delimited by `Content-Length`, chunked
//! encoding or the end of the connection, bounded in size), and the decoder of a chunked
//! body that goes on for as long as the server likes ([`decode_chunks`], etcd's watch).
//! Pure functions, unit-tested here and fuzzed (fuzz/fuzz_targets/http_reply.rs).

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
    /// The store's index sent with the reply (`X-Consul-Index`, `X-Etcd-Index`).
    pub index: Option<u64>,
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
        .ok_or_else(|| format!("bad status line {}", quoted(status_line, 60)))?;
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not HTTP/1.x: {}", quoted(version, 20)));
    }
    let mut close = version == "HTTP/1.0";
    let mut framing = Framing::Close;
    let mut index = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("malformed header line".into());
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| format!("bad Content-Length {}", quoted(value, 40)))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(format!(
                    "unsupported Transfer-Encoding {}",
                    quoted(value, 40)
                ));
            }
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("x-consul-index")
            || name.eq_ignore_ascii_case("x-etcd-index")
        {
            index = value.parse().ok();
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
        index,
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
        let Some((size, data)) = chunk_head(&buf[at..])? else {
            return Ok(None);
        };
        let data = at + data;
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
        if size > limit - body.len() {
            return Err(too_large(limit));
        }
        let Some(chunk) = chunk_data(buf, data, size)? else {
            return Ok(None);
        };
        body.extend_from_slice(chunk);
        at = data + size + 2;
    }
}

/// The size of the chunk at the start of `buf` (extensions after `;` ignored) and where
/// its data starts: `None` while its size line is incomplete.
fn chunk_head(buf: &[u8]) -> Result<Option<(usize, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() > 32 {
            Err("malformed chunk size".into())
        } else {
            Ok(None)
        };
    };
    let size = std::str::from_utf8(&buf[..eol])
        .ok()
        .and_then(|t| {
            usize::from_str_radix(t.split(';').next().unwrap_or_default().trim(), 16).ok()
        })
        .ok_or_else(|| "malformed chunk size".to_string())?;
    Ok(Some((size, eol + 2)))
}

/// The `size` bytes of a chunk's data at `data`, once they and their line end arrived.
fn chunk_data(buf: &[u8], data: usize, size: usize) -> Result<Option<&[u8]>, String> {
    match buf.get(data + size..data + size + 2) {
        Some(b"\r\n") => Ok(Some(&buf[data..data + size])),
        Some(_) => Err("malformed chunk".into()),
        None => Ok(None),
    }
}

/// A complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The store's index sent with the reply, if any (see [`Head::index`]).
    pub index: Option<u64>,
    pub body: Vec<u8>,
    /// The connection cannot be used again.
    pub close: bool,
}

/// Parse the reply received so far into `buf` (`eof`: the server closed the connection
/// after it): `Ok(None)` while it is not complete. A body over `limit` bytes is refused.
pub fn parse_reply(buf: &[u8], eof: bool, limit: usize) -> Result<Option<Reply>, String> {
    let Some(head) = parse_head(buf)? else {
        return Ok(None);
    };
    let rest = &buf[head.len..];
    let body = match head.framing {
        Framing::Length(len) if len > limit => return Err(too_large(limit)),
        Framing::Length(len) => rest.get(..len).map(<[u8]>::to_vec),
        Framing::Chunked => dechunk(rest, limit)?.map(|(body, _)| body),
        Framing::Close if rest.len() > limit => return Err(too_large(limit)),
        Framing::Close => eof.then(|| rest.to_vec()),
    };
    Ok(body.map(|body| Reply {
        status: head.status,
        index: head.index,
        body,
        close: head.close,
    }))
}

/// Whether `received` bytes of one reply are more than a reply may take.
pub fn over_limit(received: usize, limit: usize) -> bool {
    received > limit + MAX_HEAD
}

pub fn too_large(limit: usize) -> String {
    format!("reply larger than {limit} bytes refused")
}

/// Move every complete chunk of a chunked body from `raw` to `out`: whether any data
/// moved. The end of the body (a zero-size chunk) is an error: the stream was meant to
/// go on.
pub fn decode_chunks(raw: &mut Vec<u8>, out: &mut Vec<u8>, limit: usize) -> Result<bool, String> {
    let mut moved = false;
    while let Some((size, data)) = chunk_head(raw)? {
        if size == 0 {
            return Err("the server ended the stream".into());
        }
        if size > limit {
            return Err(format!("chunk larger than {limit} bytes"));
        }
        let Some(chunk) = chunk_data(raw, data, size)? else {
            break;
        };
        out.extend_from_slice(chunk);
        raw.drain(..data + size + 2);
        moved = true;
    }
    Ok(moved)
}

/// A request for `prefix` (the endpoint's own path) followed by `path`, written piece by
/// piece (an API prefix and a method) so that the caller need not allocate it. A `body`
/// is sent as JSON.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    host: &str,
    (prefix, path): (&str, &[&str]),
    headers: &[(&str, &str)],
    body: Option<&str>,
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(prefix.as_bytes());
    for piece in path {
        out.extend_from_slice(piece.as_bytes());
    }
    if prefix.is_empty() && path.iter().all(|p| p.is_empty()) {
        out.push(b'/');
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(concat!("\r\nUser-Agent: vipd/", env!("CARGO_PKG_VERSION")).as_bytes());
    if let Some(body) = body {
        // JSON unless the caller names the type (a form, for Hetzner's Robot): a second
        // Content-Type would make the request invalid.
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            out.extend_from_slice(b"\r\nContent-Type: application/json");
        }
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_decimal(out, body.len());
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.unwrap_or_default().as_bytes());
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

/// At most `max` characters of a server's text, quoted, for an error line.
fn quoted(text: &str, max: usize) -> String {
    format!("{:?}", text.chars().take(max).collect::<String>())
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

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
            "POST",
            "192.0.2.1:2379",
            ("/v3", &["/kv/range"]),
            &[
                ("Grpc-Metadata-hasleader", "true"),
                ("Authorization", "tok"),
            ],
            Some(r#"{"key":"a2V5"}"#),
        );
        let want = format!(
            "POST /v3/kv/range HTTP/1.1\r\nHost: 192.0.2.1:2379\r\nUser-Agent: vipd/{}\r\n\
             Content-Type: application/json\r\nContent-Length: 14\r\n\
             Grpc-Metadata-hasleader: true\r\nAuthorization: tok\r\n\r\n{{\"key\":\"a2V5\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        write_request(
            &mut out,
            "GET",
            "h:1",
            ("", &["/v1/kv/k", "?consistent"]),
            &[],
            None,
        );
        let want = format!(
            "GET /v1/kv/k?consistent HTTP/1.1\r\nHost: h:1\r\nUser-Agent: vipd/{}\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        write_request(&mut out, "POST", "h", ("", &["/f"]), &[form], Some("a=1"));
        let want = format!(
            "POST /f HTTP/1.1\r\nHost: h\r\nUser-Agent: vipd/{}\r\nContent-Length: 3\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\r\na=1",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(out).unwrap(), want, "one Content-Type");
        let mut out = Vec::new();
        write_request(&mut out, "GET", "h:1", ("", &[]), &[], None);
        assert!(out.starts_with(b"GET / HTTP/1.1\r\n"), "an empty path is /");
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
        assert!(
            dechunk(b"1\r\na\r\nffffffffffffffff\r\n", 8).is_err(),
            "no overflow"
        );
        // The gRPC gateway's error replies end with trailers.
        let with_trailers = b"3\r\nabc\r\n0\r\nGrpc-Trailer-Content-Type: application/grpc\r\n\r\n";
        assert_eq!(
            dechunk(with_trailers, 100).unwrap(),
            Some((b"abc".to_vec(), with_trailers.len()))
        );
        assert_eq!(dechunk(b"0\r\nGrpc-Trailer-X: y\r\n", 100).unwrap(), None);
    }

    #[test]
    fn replies() {
        let ok = b"HTTP/1.1 200 OK\r\nX-Consul-Index: 42\r\nContent-Length: 2\r\n\r\nok";
        for end in 0..ok.len() {
            assert_eq!(parse_reply(&ok[..end], false, 100), Ok(None), "{end}");
        }
        let reply = parse_reply(ok, false, 100).unwrap().unwrap();
        assert_eq!((reply.status, reply.index), (200, Some(42)));
        assert_eq!((reply.body.as_slice(), reply.close), (&b"ok"[..], false));
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno \r\n6\r\nleader\r\n0\r\n\r\n";
        let reply = parse_reply(chunked, false, 100).unwrap().unwrap();
        assert_eq!((reply.status, reply.body), (503, b"no leader".to_vec()));
        // Until the server closes the connection.
        let old = b"HTTP/1.0 200 OK\r\n\r\nold";
        assert_eq!(parse_reply(old, false, 100), Ok(None));
        let reply = parse_reply(old, true, 100).unwrap().unwrap();
        assert_eq!((reply.body.as_slice(), reply.close), (&b"old"[..], true));
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
                false,
                1024
            ),
            Err("reply larger than 1024 bytes refused".into())
        );
        assert!(parse_reply(b"HTTP/1.0 200 OK\r\n\r\nxxxx", false, 3).is_err());
        assert!(
            parse_reply(b"garbage\r\n\r\n", false, 10)
                .unwrap_err()
                .contains("bad status line")
        );
        assert!(over_limit(1024 + MAX_HEAD + 1, 1024) && !over_limit(1024 + MAX_HEAD, 1024));
    }

    #[test]
    fn stream_chunks() {
        let mut raw = b"6\r\nline1\n\r\n4\r\nli".to_vec();
        let mut out = Vec::new();
        assert_eq!(decode_chunks(&mut raw, &mut out, 100), Ok(true));
        assert_eq!(
            (out.as_slice(), raw.as_slice()),
            (&b"line1\n"[..], &b"4\r\nli"[..])
        );
        assert_eq!(
            decode_chunks(&mut raw, &mut out, 100),
            Ok(false),
            "half a chunk waits"
        );
        raw.extend_from_slice(b"ne\r\n");
        assert_eq!(decode_chunks(&mut raw, &mut out, 100), Ok(true));
        assert_eq!(out, b"line1\nline");
        raw.extend_from_slice(b"0\r\n\r\n");
        assert!(decode_chunks(&mut raw, &mut out, 100).is_err(), "the end");
        for bad in [&b"zz\r\n"[..], b"3\r\nabcXX", b"65\r\n", &[b'1'; 40]] {
            assert!(
                decode_chunks(&mut bad.to_vec(), &mut out, 100).is_err(),
                "{bad:?}"
            );
        }
    }
}

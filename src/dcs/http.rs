//! What every DCS client shares: the ureq agent's configuration, bounded replies,
//! secret-free error texts and path encoding.

use std::time::{Duration, Instant};

pub use super::tls::{Tls, TlsFiles};

/// Replies larger than this are refused (a leader key reply is a few hundred bytes).
pub const MAX_REPLY: u64 = 64 * 1024;

/// The longest server text quoted in a log line.
const MAX_TEXT: usize = 200;

/// The agent every DCS client uses: status codes are replies (not errors), no
/// redirects, no proxy from the environment (the DCS is a local service; vip-manager
/// did not proxy either), a connect timeout derived from the loop's interval, small
/// buffers, and IP literals resolved without ureq's resolver thread
/// ([`super::resolve`]).
pub fn agent(interval: Duration, tls: &Tls) -> ureq::Agent {
    let connect = (interval / 3).clamp(Duration::from_millis(100), Duration::from_secs(2));
    let builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(connect))
        .max_redirects(0)
        .proxy(None)
        // ureq's 128 KiB defaults are mmap'ed and unmapped with every new connection
        // (the watch makes one per turn); the DCS replies need far less.
        .input_buffer_size(16 * 1024)
        .output_buffer_size(4 * 1024)
        .max_response_header_size(8 * 1024)
        .user_agent(concat!("vipd/", env!("CARGO_PKG_VERSION")));
    #[cfg(feature = "tls")]
    let builder = match tls.ureq_config() {
        Some(config) => builder.tls_config(config.clone()),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    super::resolve::agent(builder.build())
}

/// Time left until `deadline`, never less than a small floor so that a request can
/// still be made when the turn is already late.
pub fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(50))
}

/// A short, secret-free description of a transport error (ureq's errors name neither
/// headers nor bodies; the URLs vipd builds hold no secret).
pub fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t:?})"),
        ureq::Error::BodyExceedsLimit(n) => format!("reply larger than {n} bytes refused"),
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// Read a reply's body, at most [`MAX_REPLY`] bytes.
pub fn read_body(resp: &mut ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, String> {
    resp.body_mut()
        .with_config()
        .limit(MAX_REPLY)
        .read_to_vec()
        .map_err(|e| describe(&e))
}

/// Read a reply's body, at most [`MAX_REPLY`] bytes, letting a signal interrupt the
/// read (`ErrorKind::Interrupted`): a long poll whose server sends the headers at once
/// and the body at the event (etcd's v2 wait) blocks here, and `read_to_end` would
/// retry an interrupted read.
pub fn read_body_interruptible(
    resp: &mut ureq::http::Response<ureq::Body>,
) -> Result<Vec<u8>, ureq::Error> {
    let mut reader = resp.body_mut().as_reader();
    let mut body = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = std::io::Read::read(&mut reader, &mut chunk)?;
        if n == 0 {
            return Ok(body);
        }
        if (body.len() + n) as u64 > MAX_REPLY {
            return Err(ureq::Error::BodyExceedsLimit(MAX_REPLY));
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

/// A response header as a number (`X-Consul-Index`, `X-Etcd-Index`).
pub fn header_u64(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<u64> {
    resp.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A server's reply text for a log line: the first line, control characters dropped,
/// at most 200 characters.
pub fn server_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.trim().lines().next().unwrap_or("").trim();
    let mut out: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect();
    if out.is_empty() {
        out.push_str("(empty reply)");
    } else if line.chars().count() > MAX_TEXT {
        out.push('…');
    }
    out
}

/// Percent-encode a key for a URL path: `/` stays, as do RFC 3986's unreserved
/// characters; everything else (blanks, `?`, `#`, `%`, non-ASCII) is escaped.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;

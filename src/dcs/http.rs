//! The one HTTP client of every DCS type ([`conn`]: [`wire`] over [`transport`]), the endpoints of one
//! DCS asked in turn ([`Endpoints`]), bounded replies, secret-free error texts and path
//! encoding.

pub mod conn;
pub mod transport;
pub mod wire;

use std::time::{Duration, Instant};

use conn::{Connection, Error, Request};
use wire::Reply;

use crate::wake::Wake;

pub use super::tls::{Tls, TlsFiles};

/// Replies larger than this are refused (a leader key reply is a few hundred bytes).
pub const MAX_REPLY: usize = 64 * 1024;

/// Replies with a whole scope's records (a replica VIP's reads) may be this large:
/// hundreds of members, or Patroni's `history` of many failovers, which a prefix read
/// carries along.
pub const MAX_SCOPE_REPLY: usize = 1024 * 1024;

/// The longest server text quoted in a log line.
const MAX_TEXT: usize = 200;

/// One endpoint: its URL as configured (for messages) and its connection.
pub struct Endpoint {
    pub url: String,
    pub conn: Connection,
}

/// The endpoints of one DCS, asked in turn: a failed one is skipped and asked again
/// later.
pub struct Endpoints {
    pub list: Vec<Endpoint>,
    /// The one asked first (the last that answered).
    pub current: usize,
}

impl Endpoints {
    pub fn new(urls: &[String], interval: Duration, tls: &Tls) -> Endpoints {
        let list = urls
            .iter()
            .map(|url| {
                let url = url.trim_end_matches('/');
                Endpoint {
                    url: url.to_string(),
                    conn: Connection::new(url, interval, tls),
                }
            })
            .collect();
        Endpoints { list, current: 0 }
    }

    /// Accept replies of up to `limit` bytes on every endpoint.
    pub fn set_limit(&mut self, limit: usize) {
        for e in &mut self.list {
            e.conn.set_limit(limit);
        }
    }

    /// The order to ask them in this time: each once, from the current one.
    pub fn order(&self) -> impl Iterator<Item = usize> + use<> {
        let (n, first) = (self.list.len(), self.current);
        (0..n).map(move |k| (first + k) % n)
    }

    /// Endpoint `i` failed: the next turn starts after it; the reason, named by the
    /// endpoint, joins `errors`.
    pub fn failed(&mut self, i: usize, why: impl std::fmt::Display, errors: &mut Vec<String>) {
        errors.push(format!("{}: {why}", self.list[i].url));
        self.current = (i + 1) % self.list.len();
    }

    /// GET `path` (pieces: path, query) on endpoint `i` with at most one extra header
    /// (a token), until `deadline`; with `wake` for a wait for a change.
    pub fn get(
        &mut self,
        i: usize,
        path: &[&str],
        header: Option<(&str, &str)>,
        deadline: Instant,
        wake: Option<Wake<'_>>,
    ) -> Result<Reply, Error> {
        let req = Request {
            wake,
            ..Request::get(path, header.as_slice())
        };
        self.list[i].conn.request(&req, deadline)
    }
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

//! The providers' HTTPS client: vipd's own HTTP/1.1 connection ([`Connection`], over
//! rustls with verification always on), one per API, kept alive between calls on the
//! worker thread. Error texts name the API's URL and what went wrong, never a header.

use std::time::{Duration, Instant};

use crate::dcs::http::conn::{Connection, Error, Request};
use crate::dcs::http::wire::Reply;
use crate::dcs::http::{MAX_REPLY, Tls};

use super::{Failure, FailureKind};

pub struct Client {
    url: String,
    conn: Connection,
    /// The `Authorization` header's value.
    auth: String,
}

/// The connect timeout is a third of this, at most 2 s (see [`Connection::new`]).
const CONNECT_BASIS: Duration = Duration::from_secs(6);

impl Client {
    pub fn new(url: &str, tls: &Tls, auth: String) -> Client {
        let mut conn = Connection::new(url, CONNECT_BASIS, tls);
        conn.set_limit(MAX_REPLY);
        Client {
            url: url.trim_end_matches('/').to_string(),
            conn,
            auth,
        }
    }

    /// One call; `body` is its content type and text. A reply of any status is `Ok`;
    /// no reply (unreachable, too slow, too large, not HTTP) is a failure.
    pub fn call(
        &mut self,
        method: &str,
        path: &[&str],
        body: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        let mut headers = vec![
            ("Authorization", self.auth.as_str()),
            ("Accept", "application/json"),
        ];
        if let Some((content_type, _)) = body {
            headers.push(("Content-Type", content_type));
        }
        let req = Request {
            method,
            body: body.map(|(_, text)| text),
            ..Request::get(path, &headers)
        };
        self.conn
            .request(&req, Instant::now() + timeout)
            .map_err(|e| {
                let text = match e {
                    Error::TimedOut => {
                        format!("{}: no answer within {} s", self.url, timeout.as_secs())
                    }
                    Error::Interrupted => format!("{}: interrupted", self.url),
                    Error::Failed(why) => format!("{}: {why}", self.url),
                };
                Failure::new(FailureKind::Failed, text)
            })
    }
}

//! Patroni's REST API: `GET <endpoint><trigger-key>` (default `/leader`), whose HTTP
//! status (200 on the leader, 503 elsewhere) as a string is compared with the trigger
//! value (default `200`), as vip-manager does. The endpoint is this node's Patroni
//! (`restapi.listen`; Debian's template listens on the host's address, not loopback).
//!
//! A replica VIP reads `GET <endpoint>/cluster` instead ([`super::scope`]): every member
//! with its role, state, tags and lag, as this node's Patroni last read them from the
//! DCS. A reply that is not Patroni's (or over the scope bound) is unknown.
//!
//! Every status is an answer (`Leader("503")` is "not this node"); only a failed
//! connection or a timeout is unknown. There is nothing to block on: the loop polls once
//! per interval.

use std::time::{Duration, Instant};

use super::http::conn::{Connection, Request};
use super::http::{self, Tls};
use super::scope::Scope;
use super::{Dcs, Observation};

/// Everything [`Patroni`] needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's Patroni API, e.g. `http://192.0.2.10:8008`. Only the first endpoint
    /// of the configuration is used (another node's `/leader` says nothing about this
    /// one).
    pub endpoint: String,
    /// The path, e.g. `/leader` (a missing leading `/` is added).
    pub path: String,
    pub interval: Duration,
    pub tls: Tls,
    /// A replica VIP's reader of `GET /cluster`; `None`: the status of `path`.
    pub scope: Option<Scope>,
}

/// The observation of a reply: its status code as text.
pub fn observation(status: u16) -> Observation {
    Observation::Leader(status.to_string())
}

/// The URL of the check. The trigger key may carry a query, as Patroni's health
/// checks take one (`/replica?lag=16MB`): it is kept, with only the characters a URL
/// cannot hold escaped.
pub fn url(endpoint: &str, trigger_key: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    let (path, query) = match trigger_key.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (trigger_key, None),
    };
    let slash = if path.starts_with('/') { "" } else { "/" };
    let mut url = format!("{endpoint}{slash}{}", http::encode_path(path));
    if let Some(query) = query {
        url.push('?');
        for b in query.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~=&%+,;:@/?".contains(&b) {
                url.push(char::from(b));
            } else {
                url.push_str(&format!("%{b:02X}"));
            }
        }
    }
    url
}

/// The Patroni REST client.
pub struct Patroni {
    endpoint: String,
    /// Connected to the check's URL: its path is the request's.
    conn: Connection,
    /// A replica VIP's reader of `/cluster`.
    scope: Option<Scope>,
}

impl Patroni {
    pub fn new(settings: &Settings) -> Patroni {
        let url = url(&settings.endpoint, &settings.path);
        let mut conn = Connection::new(&url, settings.interval, &settings.tls);
        if settings.scope.is_some() {
            conn.set_limit(http::MAX_SCOPE_REPLY);
        }
        Patroni {
            endpoint: settings.endpoint.trim_end_matches('/').to_string(),
            conn,
            scope: settings.scope.clone(),
        }
    }
}

impl Dcs for Patroni {
    fn observe(&mut self, deadline: Instant) -> Observation {
        // The body (read, bounded, so that the connection can be reused) is not needed.
        match self.conn.request(&Request::get(&[], &[]), deadline) {
            Ok(reply) => match &mut self.scope {
                None => observation(reply.status),
                Some(_) if reply.status != 200 => Observation::Unknown(format!(
                    "Patroni REST API at {}: GET /cluster: HTTP {}",
                    self.endpoint, reply.status
                )),
                Some(scope) => match scope.load_cluster(&reply.body) {
                    Ok(()) => scope.observe(Instant::now()),
                    Err(e) => Observation::Unknown(format!("{}: {e}", self.endpoint)),
                },
            },
            Err(e) => Observation::Unknown(format!(
                "Patroni REST API at {}: {e} (is restapi.listen this address? Debian's \
                 template listens on the host's address, not 127.0.0.1)",
                self.endpoint
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_value() {
        assert_eq!(observation(200), Observation::Leader("200".into()));
        assert_eq!(observation(503), Observation::Leader("503".into()));
    }

    #[test]
    fn urls() {
        assert_eq!(
            url("http://192.0.2.10:8008/", "/leader"),
            "http://192.0.2.10:8008/leader"
        );
        assert_eq!(
            url("http://192.0.2.10:8008", "leader"),
            "http://192.0.2.10:8008/leader"
        );
        assert_eq!(
            url("https://[2001:db8::1]:8008", "/replica?lag=16MB&tag_x=a b"),
            "https://[2001:db8::1]:8008/replica?lag=16MB&tag_x=a%20b"
        );
        assert_eq!(url("http://h:1", "/a b#c"), "http://h:1/a%20b%23c");
    }
}

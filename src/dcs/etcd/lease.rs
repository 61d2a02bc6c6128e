//! The leader key's lease (etcd v3): the latest moment the key is known to exist
//! until, so that a grace kept while etcd is silent never runs past the moment the key
//! could have expired and a new leader been elected elsewhere.
//!
//! `POST <prefix>/lease/timetolive` with the kv's lease id, without `keys: true`
//! (newer etcd releases tie that to read permission on every key of the lease). Its
//! `TTL` is whole seconds: etcd 3.4.23 truncates (29 right after a grant of 30),
//! other releases may round up, so the bound is the request's start plus the TTL
//! minus one second, safe either way; `-1` means the lease is gone. Renewals only push the expiry
//! later, so the last answer is a safe bound. It is asked only by the node the key
//! names, and only when the bound it knows comes within the grace (measured: every
//! 10 s with a 30 s lease renewed every 10 s, Patroni's defaults): the other nodes of
//! a fleet cost etcd only the probes and the reads.

use std::time::{Duration, Instant};

use super::reply::{ReplyError, int64, json, malformed};
use super::{Etcd, with_headers};
use crate::dcs::http::conn::Request;

/// How soon a failed question is asked again.
const RETRY: Duration = Duration::from_secs(3);

/// The `TTL` of a `lease/timetolive` reply: whole seconds left; -1 when gone.
pub fn parse_ttl(body: &[u8]) -> Result<i64, ReplyError> {
    let v = json(body)?;
    int64(v.get("TTL")).ok_or_else(|| malformed("no TTL"))
}

/// The latest moment a lease with `ttl` seconds left, asked at `asked`, is known to
/// last until (`ttl` may be rounded up: one second less).
pub fn bound(asked: Instant, ttl: i64) -> Instant {
    let secs = u64::try_from(ttl.saturating_sub(1)).unwrap_or(0);
    asked + Duration::from_secs(secs)
}

impl Etcd {
    /// The key's lease as a read or an event showed it: a different lease (a new
    /// leader, or none) makes the known bound unknown.
    pub(super) fn lease_seen(&mut self, lease: i64) {
        if lease != self.lease {
            self.lease = lease;
            self.lease_bound = None;
            self.lease_asked = None;
        }
    }

    /// Ask etcd how long the key's lease lasts (nothing without a lease, or soon after
    /// a failed question).
    pub(super) fn query_lease(&mut self, deadline: Instant) {
        let now = Instant::now();
        let recently = self.lease_asked.is_some_and(|at| now < at + RETRY);
        if self.lease == 0 || recently {
            return;
        }
        self.lease_asked = Some(now);
        let i = self.endpoints.current;
        let prefix = self.prefixes[i].unwrap_or("/v3");
        let body = format!("{{\"ID\":\"{}\"}}", self.lease);
        let conn = &mut self.endpoints.list[i].conn;
        let reply = with_headers(&self.token, |headers| {
            conn.request(
                &Request::post(&[prefix, "/lease/timetolive"], headers, &body),
                deadline,
            )
        });
        match reply
            .map_err(|e| e.to_string())
            .and_then(|r| parse_ttl(&r.body).map_err(|e| format!("HTTP {}: {e}", r.status)))
        {
            Ok(ttl) => self.lease_bound = Some(bound(now, ttl)),
            Err(e) => log::debug!("lease {:x}: {e}", self.lease),
        }
    }
}

//! Consul's KV store: `GET <endpoint>/v1/kv/<key>?consistent`, the key without its
//! leading `/` (Patroni writes `service/<scope>/leader`), held by a session with
//! `behavior=delete`, so an expired leader's key is gone (404).
//!
//! The reply handling is pure ([`parse_kv`], [`next_index`]) and unit-tested on the
//! shapes Consul's HTTP API documents; [`Consul`] is the thin HTTP shell. Changes are
//! awaited with blocking queries (`&index=N&wait=…`) under Consul's rules: never block
//! with index 0, reset the index to 0 when it goes backwards, and treat a return as a
//! hint, not a change (the value is compared). The ACL token travels only in the
//! `X-Consul-Token` header.
//!
//! A blocking query asks Consul to wait until the loop's deadline; Consul may add up to
//! 1/16 of that, so the turn can end that much late. In exchange its answer is the next
//! turn's observation: while nothing changes, vipd sends one request per interval.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Secret;
use super::http::conn::Error;
use super::http::{self, Endpoints, Tls};
use super::scope::Scope;
use super::{Dcs, Observation, Wait};
use crate::base64;
use crate::wake::Wake;

/// Everything [`Consul`] needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoints: Vec<String>,
    /// The trigger key; leading `/` are stripped.
    pub key: String,
    pub token: Option<Secret>,
    /// The loop's interval: timeouts are derived from it.
    pub interval: Duration,
    /// Wait for changes with blocking queries (`no-watch` turns it off).
    pub watch: bool,
    pub tls: Tls,
    /// A replica VIP's reader of the whole scope (`?recurse`); `None`: the key alone.
    pub scope: Option<Scope>,
}

/// The key as Consul names it: without leading `/`.
pub fn consul_key(key: &str) -> &str {
    key.trim_start_matches('/')
}

/// What a KV read said: the key's value (`None`: no such key), or why it cannot be
/// trusted (the text names the HTTP status and quotes the server).
pub fn parse_kv(status: u16, body: &[u8], key: &str) -> Result<Option<String>, String> {
    match status {
        200 => {}
        404 => return Ok(None),
        _ => return Err(format!("HTTP {status}: {}", http::server_text(body))),
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("malformed reply: invalid JSON: {e}"))?;
    let entries = v
        .as_array()
        .ok_or_else(|| "malformed reply: not a list".to_string())?;
    let Some(entry) = entries.first() else {
        return Ok(None);
    };
    if entries.len() > 1 {
        return Err("malformed reply: more than one entry".into());
    }
    let got_key = entry
        .get("Key")
        .and_then(Value::as_str)
        .ok_or_else(|| "malformed reply: entry without Key".to_string())?;
    if got_key != key {
        return Err("malformed reply: the entry is for another key".into());
    }
    let value = match entry.get("Value") {
        // An empty value is null.
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => {
            base64::decode(s).map_err(|e| format!("malformed reply: Value: {e}"))?
        }
        Some(_) => return Err("malformed reply: Value is not a string".into()),
    };
    String::from_utf8(value)
        .map(Some)
        .map_err(|_| "malformed reply: Value is not UTF-8".into())
}

/// The index to block on after a reply carrying `reply` (`X-Consul-Index`), when the
/// last one was `previous`: 0 (do not block) when the header is missing or zero, or
/// when it went backwards (a restored snapshot, another server's view).
pub fn next_index(previous: u64, reply: Option<u64>) -> u64 {
    match reply {
        Some(n) if n >= previous => n,
        _ => 0,
    }
}

/// The `wait` Consul is asked for, given the time left: at most Consul's 10 minutes.
pub fn wait_param(left: Duration) -> String {
    format!("{}ms", left.min(Duration::from_secs(600)).as_millis())
}

/// How long a blocking query's answer stands in for the next turn's read.
const FRESH: Duration = Duration::from_millis(200);
/// No blocking query for less than this: the loop sleeps out the rest.
const MIN_BLOCK: Duration = Duration::from_millis(20);
/// Returns without a change (index bumps from other keys) tolerated in one wait.
const MAX_RETURNS: u32 = 16;

/// The Consul KV client: several endpoints, a failed one skipped.
pub struct Consul {
    endpoints: Endpoints,
    key: String,
    /// `/v1/kv/service/pg/leader`, percent-encoded.
    path: String,
    token: Option<Secret>,
    watch: bool,
    /// The last `X-Consul-Index` (0: none, or reset).
    index: u64,
    /// What the last answer said, to tell a real change from a return.
    last: Option<Observation>,
    /// A blocking query's answer, and when it came.
    fresh: Option<(Instant, Observation)>,
    /// A blocking query whose wait a wake ended: its reply is read on.
    pending: Option<Query>,
}

/// A blocking query in flight: where, and until when its reply may take.
#[derive(Debug, Clone, Copy)]
struct Query {
    endpoint: usize,
    until: Instant,
}

impl Consul {
    pub fn new(settings: &Settings) -> Consul {
        let key = consul_key(&settings.key).to_string();
        Consul {
            endpoints: Endpoints::new(&settings.endpoints, settings.interval, &settings.tls),
            path: format!("/v1/kv/{}", http::encode_path(&key)),
            key,
            token: settings.token.clone(),
            watch: settings.watch,
            index: 0,
            last: None,
            fresh: None,
            pending: None,
        }
    }

    /// GET the key on endpoint `i` with `query`, until `deadline` (a blocking query
    /// with `wake`).
    fn get(
        &mut self,
        i: usize,
        query: &str,
        deadline: Instant,
        wake: Option<Wake<'_>>,
    ) -> Result<http::wire::Reply, Error> {
        let token = self
            .token
            .as_ref()
            .map(|t| ("X-Consul-Token", t.0.as_str()));
        self.endpoints
            .get(i, &[&self.path, "?", query], token, deadline, wake)
    }

    /// One consistent read, trying each endpoint at most once from the current one.
    fn read(&mut self, deadline: Instant) -> Result<(Option<String>, Option<u64>), String> {
        let mut errors = Vec::new();
        for i in self.endpoints.order() {
            let outcome = self
                .get(i, "consistent", deadline, None)
                .map_err(|e| e.to_string())
                .and_then(|reply| {
                    parse_kv(reply.status, &reply.body, &self.key).map(|v| (v, reply.index))
                });
            match outcome {
                Ok(read) => return Ok(read),
                Err(e) => self.endpoints.failed(i, e, &mut errors),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(errors.join("; "))
    }

    fn observation(value: Option<String>) -> Observation {
        match value {
            Some(v) => Observation::Leader(v),
            None => Observation::NoLeader,
        }
    }
}

impl Dcs for Consul {
    fn observe(&mut self, deadline: Instant) -> Observation {
        self.finish_pending();
        if let Some((at, obs)) = self.fresh.take() {
            if at.elapsed() < FRESH {
                return obs;
            }
        }
        match self.read(deadline) {
            Ok((value, index)) => {
                self.index = next_index(0, index);
                let obs = Consul::observation(value);
                self.last = Some(obs.clone());
                obs
            }
            Err(e) => {
                self.index = 0;
                self.last = None;
                Observation::Unknown(e)
            }
        }
    }

    fn forget(&mut self) {
        self.fresh = None;
        self.abandon();
    }

    fn wait(&mut self, deadline: Instant, wake: Wake<'_>) -> Option<Wait> {
        if !self.watch || self.index == 0 || self.last.is_none() {
            self.abandon();
            return None;
        }
        for _ in 0..MAX_RETURNS {
            let (query, reply) = match self.pending.take() {
                Some(q) => {
                    let conn = &mut self.endpoints.list[q.endpoint].conn;
                    (q, conn.resume(deadline.min(q.until), wake))
                }
                None => {
                    // Until the turn, even when the loop wakes earlier: the query stays
                    // in flight across those wakes.
                    let block = wake.turn().map_or(deadline, |t| t.max(deadline));
                    let left = block.saturating_duration_since(Instant::now());
                    if deadline.saturating_duration_since(Instant::now()) < MIN_BLOCK {
                        // Too short to be worth a request: the caller waits it out.
                        return Some(Wait::Deadline);
                    }
                    let i = self.endpoints.current;
                    let text = format!("consistent&index={}&wait={}", self.index, wait_param(left));
                    // Consul may add up to wait/16; a little more for the network.
                    let until = Instant::now() + left + left / 16 + Duration::from_millis(250);
                    let q = Query { endpoint: i, until };
                    (q, self.get(i, &text, deadline.min(until), Some(wake)))
                }
            };
            let (status, index, body) = match reply {
                Ok(reply) => (reply.status, reply.index, reply.body),
                // Woken, or the loop's own deadline before the query's: the query stays
                // in flight, and the next wait or the turn's observation reads its reply.
                Err(Error::Interrupted | Error::TimedOut) if Instant::now() < query.until => {
                    self.pending = Some(query);
                    return Some(Wait::Deadline);
                }
                Err(Error::Interrupted | Error::TimedOut) => {
                    self.abandon_query(query);
                    return Some(Wait::Deadline);
                }
                Err(e) => {
                    let url = &self.endpoints.list[query.endpoint].url;
                    log::debug!("blocking query on {url}: {e}");
                    return Some(Wait::Reread);
                }
            };
            if let Some(wait) = self.returned(status, index, &body, query.endpoint) {
                return Some(wait);
            }
        }
        Some(Wait::Deadline)
    }
}

impl Consul {
    /// A blocking query returned: the change it saw, or `None` when it only returned
    /// (another key's index moved) and the wait goes on.
    fn returned(&mut self, status: u16, index: Option<u64>, body: &[u8], i: usize) -> Option<Wait> {
        let value = match parse_kv(status, body, &self.key) {
            Ok(value) => value,
            Err(e) => {
                log::debug!("blocking query on {}: {e}", self.endpoints.list[i].url);
                self.index = 0;
                return Some(Wait::Reread);
            }
        };
        self.index = next_index(self.index, index);
        let obs = Consul::observation(value);
        self.fresh = Some((Instant::now(), obs.clone()));
        if self.last.as_ref() != Some(&obs) {
            self.last = Some(obs.clone());
            return Some(Wait::Changed(obs));
        }
        if self.index == 0 {
            // Reset: the next read starts the blocking loop afresh.
            self.fresh = None;
            return Some(Wait::Deadline);
        }
        None
    }

    /// The turn came while a blocking query is in flight: its reply (Consul answers it
    /// at the wait it was given, a little later at most) is this turn's observation,
    /// as it would have been had the wait gone on.
    fn finish_pending(&mut self) {
        let Some(query) = self.pending.take() else {
            return;
        };
        let conn = &mut self.endpoints.list[query.endpoint].conn;
        match conn.resume(query.until, Wake::SIGNALS) {
            Ok(reply) => {
                let _ = self.returned(reply.status, reply.index, &reply.body, query.endpoint);
            }
            Err(e) => {
                log::debug!("blocking query: {e}");
                self.abandon_query(query);
            }
        }
    }

    /// Drop a blocking query in flight (its connection with it).
    fn abandon(&mut self) {
        if let Some(query) = self.pending.take() {
            self.abandon_query(query);
        }
    }

    fn abandon_query(&mut self, query: Query) {
        self.endpoints.list[query.endpoint].conn.abandon();
    }
}

#[cfg(test)]
mod tests;

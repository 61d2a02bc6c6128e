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
//!
//! A replica VIP reads the whole scope instead: `GET /v1/kv/<scope>/?recurse&consistent`
//! ([`parse_list`]; 404: no keys), with blocking queries on the prefix under the same
//! rules (the `X-Consul-Index` of a recursive read covers the prefix). Each answer
//! replaces the records; a return whose records are the same is no change.

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
    let entries = entries(status, body)?;
    let Some(entry) = entries.first() else {
        return Ok(None);
    };
    if entries.len() > 1 {
        return Err("malformed reply: more than one entry".into());
    }
    if entry_key(entry)? != key {
        return Err("malformed reply: the entry is for another key".into());
    }
    let value = entry_value(entry)?;
    String::from_utf8(value)
        .map(Some)
        .map_err(|_| "malformed reply: Value is not UTF-8".into())
}

/// The entries of a KV reply: none for 404 (no such key), the list for 200, else the
/// error naming the status and quoting the server.
fn entries(status: u16, body: &[u8]) -> Result<Vec<Value>, String> {
    match status {
        200 => {}
        404 => return Ok(Vec::new()),
        _ => return Err(format!("HTTP {status}: {}", http::server_text(body))),
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("malformed reply: invalid JSON: {e}"))?;
    match v {
        Value::Array(entries) => Ok(entries),
        _ => Err("malformed reply: not a list".into()),
    }
}

/// An entry's `Key`.
fn entry_key(entry: &Value) -> Result<&str, String> {
    entry
        .get("Key")
        .and_then(Value::as_str)
        .ok_or_else(|| "malformed reply: entry without Key".to_string())
}

/// An entry's `Value`, base64 in the reply; an empty value is null.
fn entry_value(entry: &Value) -> Result<Vec<u8>, String> {
    match entry.get("Value") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => {
            base64::decode(s).map_err(|e| format!("malformed reply: Value: {e}"))
        }
        Some(_) => Err("malformed reply: Value is not a string".into()),
    }
}

/// Entries in a recursive read beyond this make it untrustworthy (far more than
/// [`super::scope::MAX_MEMBERS`] member records and Patroni's other keys).
pub const MAX_ENTRIES: usize = 4096;

/// What a recursive read of `prefix` said: its keys and values (none: no key), or why
/// it cannot be trusted.
pub fn parse_list(
    status: u16,
    body: &[u8],
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let entries = entries(status, body)?;
    if entries.len() > MAX_ENTRIES {
        return Err(format!("more than {MAX_ENTRIES} keys under {prefix}"));
    }
    let mut out = Vec::with_capacity(entries.len());
    for entry in &entries {
        let key = entry_key(entry)?;
        if !key.starts_with(prefix) {
            return Err("malformed reply: an entry outside the prefix".into());
        }
        out.push((key.to_string(), entry_value(entry)?));
    }
    Ok(out)
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
    /// The trigger key, or a replica VIP's scope prefix (`service/pg/`).
    key: String,
    /// `/v1/kv/service/pg/leader` (`/v1/kv/service/pg/`), percent-encoded.
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
    /// A replica VIP's records; `None`: the trigger key alone.
    scope: Option<Scope>,
    /// The records' digest as last read, to tell a real change from a return.
    digest: Option<String>,
}

/// A read's answer: the key's value, or a replica VIP's scope's keys.
enum Answer {
    Key(Option<String>),
    Scope(Vec<(String, Vec<u8>)>),
}

/// A blocking query in flight: where, and until when its reply may take.
#[derive(Debug, Clone, Copy)]
struct Query {
    endpoint: usize,
    until: Instant,
}

impl Consul {
    pub fn new(settings: &Settings) -> Consul {
        let scope = settings.scope.clone();
        let key = match &scope {
            Some(scope) => scope.prefix(false),
            None => consul_key(&settings.key).to_string(),
        };
        let mut endpoints = Endpoints::new(&settings.endpoints, settings.interval, &settings.tls);
        if scope.is_some() {
            endpoints.set_limit(http::MAX_SCOPE_REPLY);
        }
        Consul {
            endpoints,
            path: format!("/v1/kv/{}", http::encode_path(&key)),
            key,
            token: settings.token.clone(),
            watch: settings.watch,
            index: 0,
            last: None,
            fresh: None,
            pending: None,
            scope,
            digest: None,
        }
    }

    /// The query's parameters besides the blocking ones.
    fn consistent(&self) -> &'static str {
        match self.scope {
            Some(_) => "recurse&consistent",
            None => "consistent",
        }
    }

    /// Parse a reply to a read or a blocking query.
    fn parse(&self, status: u16, body: &[u8]) -> Result<Answer, String> {
        match self.scope {
            Some(_) => parse_list(status, body, &self.key).map(Answer::Scope),
            None => parse_kv(status, body, &self.key).map(Answer::Key),
        }
    }

    /// What an answer says now, and whether it differs from the last one (for a
    /// scope: its records; for the key: its value).
    fn take(&mut self, answer: Answer) -> (Observation, bool) {
        match (answer, self.scope.as_mut()) {
            (Answer::Scope(entries), Some(scope)) => {
                scope.clear();
                for (key, value) in &entries {
                    scope.put(key, value, 0);
                }
                let digest = scope.digest();
                let obs = scope.observe(Instant::now());
                let changed = self.digest.as_ref() != Some(&digest);
                self.digest = Some(digest);
                (obs, changed)
            }
            (Answer::Key(value), _) => {
                let obs = Consul::observation(value);
                let changed = self.last.as_ref() != Some(&obs);
                (obs, changed)
            }
            (Answer::Scope(_), None) => (Observation::Unknown("no scope".into()), true),
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
    fn read(&mut self, deadline: Instant) -> Result<(Answer, Option<u64>), String> {
        let mut errors = Vec::new();
        for i in self.endpoints.order() {
            let outcome = self
                .get(i, self.consistent(), deadline, None)
                .map_err(|e| e.to_string())
                .and_then(|reply| {
                    self.parse(reply.status, &reply.body)
                        .map(|v| (v, reply.index))
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
                // The scope's choice depends on time too (replica-settle).
                return match self.scope.as_mut() {
                    Some(scope) => scope.observe(Instant::now()),
                    None => obs,
                };
            }
        }
        match self.read(deadline) {
            Ok((answer, index)) => {
                self.index = next_index(0, index);
                let (obs, _) = self.take(answer);
                self.last = Some(obs.clone());
                obs
            }
            Err(e) => {
                self.index = 0;
                (self.last, self.digest) = (None, None);
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
                    let text = format!(
                        "{}&index={}&wait={}",
                        self.consistent(),
                        self.index,
                        wait_param(left)
                    );
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
        let answer = match self.parse(status, body) {
            Ok(answer) => answer,
            Err(e) => {
                log::debug!("blocking query on {}: {e}", self.endpoints.list[i].url);
                self.index = 0;
                return Some(Wait::Reread);
            }
        };
        self.index = next_index(self.index, index);
        let (obs, changed) = self.take(answer);
        self.fresh = Some((Instant::now(), obs.clone()));
        if changed {
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

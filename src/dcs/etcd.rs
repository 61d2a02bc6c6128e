//! etcd through its v3 JSON gateway (grpc-gateway): `POST <prefix>/kv/range`, changes
//! awaited on a watch stream ([`watch`]), authentication with a token when credentials
//! are set.
//!
//! Without a watch (`no-watch`) the key is read every turn. With one, the watch is the
//! fact while its stream is healthy, and etcd is only checked now and then (`check`:
//! what a healthy watch leaves in doubt, and why a cheap probe answers it). After any
//! doubt (no stream yet, a broken or cancelled one, a failed check or a contradicting
//! read) the key is read afresh, linearizably.
//!
//! A replica VIP (`Settings::scope`) reads and watches the whole scope instead, as the
//! range of keys under its prefix: each read replaces the scope's records, each event
//! updates them, and the observation is the holder chosen from them at that moment.
//!
//! The reply handling is pure ([`reply`]: [`parse_range`], [`parse_scope_range`],
//! [`api_prefix`], [`parse_auth`]; [`parse_watch_line`], [`parse_scope_watch_line`]) and
//! unit-tested on the byte shapes etcd 3.4 sends; [`Etcd`] is the thin HTTP shell.

mod check;
pub mod lease;
pub mod reply;
pub mod watch;

use std::time::{Duration, Instant};

use serde_json::Value;

pub use check::{CHECKS_PER_READ, Look, next_look};
pub use reply::{
    CODE_FAILED_PRECONDITION, CODE_INVALID_ARGUMENT, CODE_UNAUTHENTICATED, Range, ReplyError,
    ScopeKv, ScopeRange, api_prefix, parse_auth, parse_range, parse_scope_range, status_error,
};
pub use watch::{MAX_WATCH_LINE, WatchLine, parse_scope_watch_line, parse_watch_line};

use super::Secret;
use super::http::conn::{Error, Request};
use super::http::wire::Reply;
use super::http::{Endpoints, MAX_SCOPE_REPLY, Tls};
use super::scope::Scope;
use super::{Dcs, Observation, Wait};
use crate::wake::Wake;

/// Credentials for etcd's authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

/// Everything [`Etcd`] needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoints: Vec<String>,
    pub key: String,
    pub credentials: Option<Credentials>,
    /// The loop's interval: timeouts are derived from it.
    pub interval: Duration,
    /// Wait for changes with a watch between range reads (`no-watch` turns it off).
    pub watch: bool,
    /// With a healthy watch: the longest time between two reads of the key.
    pub check_interval: Duration,
    /// CA and client certificate for https:// endpoints.
    pub tls: Tls,
    /// A replica VIP's reader of the whole scope; `None`: the key alone.
    pub scope: Option<Scope>,
}

/// Run `f` with the headers of every etcd request: `Grpc-Metadata-hasleader` (so a
/// member without quorum fails fast) and the auth token when there is one.
fn with_headers<R>(token: &Option<String>, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
    const HASLEADER: (&str, &str) = ("Grpc-Metadata-hasleader", "true");
    match token {
        Some(token) => f(&[HASLEADER, ("Authorization", token.as_str())]),
        None => f(&[HASLEADER]),
    }
}

/// Why a request to one endpoint failed.
enum Failure {
    /// The endpoint could not be used; try another.
    Transport(String),
    /// The endpoint answered with an etcd error.
    Reply(ReplyError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(why) => f.write_str(why),
            Failure::Reply(e) => e.fmt(f),
        }
    }
}

/// Credentials the server refused: at start-up this is a configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

/// The etcd v3 client: several endpoints, each with its kept-alive connection; a failed
/// endpoint is skipped and tried again later.
pub struct Etcd {
    endpoints: Endpoints,
    /// Each endpoint's API prefix, once `GET /version` told it.
    prefixes: Vec<Option<&'static str>>,
    /// The key read and watched: the trigger key, or a replica VIP's scope prefix.
    key: Vec<u8>,
    /// A replica VIP's scope, read and watched as the range from `key` to `range_end`;
    /// `None`: the trigger key alone.
    scope: Option<Scope>,
    range_end: Option<Vec<u8>>,
    /// The longest watch line accepted (a scope's events carry whole records).
    max_line: usize,
    /// The bodies of a linearizable and of a serializable range read of the key.
    range_body: String,
    confirm_body: String,
    credentials: Option<Credentials>,
    token: Option<String>,
    /// The server said authentication is not enabled: read without a token (as etcd's
    /// Go client does) until a reply asks for one.
    auth_not_enabled: bool,
    watch: bool,
    interval: Duration,
    check_interval: Duration,
    /// The revision of the last successful range read, or of a later watch event.
    revision: Option<i64>,
    /// The key's state as last read, updated by the watch's events; `None` after a
    /// failed read.
    known: Option<Observation>,
    /// When the last successful read started, and when etcd last answered (a read or a
    /// watch event).
    last_read: Option<Instant>,
    last_fact: Option<Instant>,
    /// The key's lease id (0: none; a scope's: this node's member record's), the latest
    /// moment it is known to last until, and when it was last asked.
    lease: i64,
    lease_bound: Option<Instant>,
    lease_asked: Option<Instant>,
    /// The watch stream, kept open across turns while it is healthy.
    stream: Option<watch::WatchStream>,
    line: Vec<u8>,
    /// The last range reply, parsed, kept until the next one is: musl's allocator
    /// gives an emptied group of slots back to the kernel at once, and the maps of
    /// the only parse tree alive cost an `mmap`, a page fault and a `munmap` on
    /// every idle turn when they were dropped at the end of it.
    last_reply: Value,
}

impl Etcd {
    /// With a replica VIP's scope: whether it exists in this API (`None`: the key
    /// alone is read).
    pub fn scope_exists(&self) -> Option<bool> {
        self.scope.as_ref().map(|s| s.exists())
    }

    pub fn new(settings: &Settings) -> Etcd {
        let mut endpoints = Endpoints::new(&settings.endpoints, settings.interval, &settings.tls);
        let scope = settings.scope.clone();
        let (key, range_end, max_line) = match &scope {
            Some(scope) => {
                // A prefix range carries every record of the scope (and `history`).
                endpoints.set_limit(MAX_SCOPE_REPLY);
                let prefix = scope.prefix(true).into_bytes();
                let end = reply::prefix_end(&prefix);
                (prefix, Some(end), MAX_SCOPE_REPLY)
            }
            None => (settings.key.as_bytes().to_vec(), None, MAX_WATCH_LINE),
        };
        let body = |serializable| match &range_end {
            Some(_) => reply::prefix_body(&key, serializable),
            None => reply::key_body(&key, serializable),
        };
        let (range_body, confirm_body) = (body(false), body(true));
        Etcd {
            endpoints,
            prefixes: vec![None; settings.endpoints.len()],
            key,
            scope,
            range_end,
            max_line,
            range_body,
            confirm_body,
            credentials: settings.credentials.clone(),
            token: None,
            auth_not_enabled: false,
            watch: settings.watch,
            interval: settings.interval,
            check_interval: settings.check_interval,
            revision: None,
            known: None,
            last_read: None,
            last_fact: None,
            lease: 0,
            lease_bound: None,
            lease_asked: None,
            stream: None,
            line: Vec::with_capacity(1024),
            last_reply: Value::Null,
        }
    }

    /// POST `body` to `path` below the API prefix on endpoint `i`, with the common
    /// headers.
    fn post(
        &mut self,
        i: usize,
        path: &str,
        body: &str,
        deadline: Instant,
    ) -> Result<Reply, Error> {
        let prefix = self.prefixes[i].unwrap_or("/v3");
        let conn = &mut self.endpoints.list[i].conn;
        with_headers(&self.token, |headers| {
            conn.request(&Request::post(&[prefix, path], headers, body), deadline)
        })
    }

    /// Find the API prefix of endpoint `i` once (`GET /version`).
    fn detect_prefix(&mut self, i: usize, deadline: Instant) -> Result<(), String> {
        if self.prefixes[i].is_some() {
            return Ok(());
        }
        let reply = self
            .endpoints
            .get(i, &["/version"], None, deadline, None)
            .map_err(|e| e.to_string())?;
        if reply.status != 200 {
            return Err(format!("GET /version: HTTP {}", reply.status));
        }
        let prefix = api_prefix(&reply.body)
            .ok_or_else(|| "GET /version: not an etcd v3 server".to_string())?;
        log::debug!("{}: etcd API prefix {prefix}", self.endpoints.list[i].url);
        self.prefixes[i] = Some(prefix);
        Ok(())
    }

    /// Authenticate on endpoint `i`. `Err(Ok(Rejected))` when the server refused the
    /// credentials, `Err(Err(text))` when it could not be asked.
    fn authenticate(
        &mut self,
        i: usize,
        deadline: Instant,
    ) -> Result<(), Result<Rejected, String>> {
        let Some(cred) = self.credentials.clone() else {
            return Ok(());
        };
        let body = serde_json::json!({"name": cred.user, "password": cred.password.0}).to_string();
        self.token = None;
        let reply = self
            .post(i, "/auth/authenticate", &body, deadline)
            .map_err(|e| Err(e.to_string()))?;
        match parse_auth(&reply.body) {
            Ok(token) => {
                self.token = Some(token);
                self.auth_not_enabled = false;
                Ok(())
            }
            Err(ReplyError::Etcd {
                code: CODE_FAILED_PRECONDITION,
                ..
            }) => {
                if !self.auth_not_enabled {
                    log::warn!(
                        "{}: etcd-user {:?} is set, but the server has authentication \
                         disabled; reading without a token",
                        self.endpoints.list[i].url,
                        cred.user
                    );
                }
                self.auth_not_enabled = true;
                Ok(())
            }
            Err(ReplyError::Etcd {
                code: CODE_INVALID_ARGUMENT,
                message,
                ..
            }) => Err(Ok(Rejected(format!(
                "etcd-user {:?}: {message}",
                cred.user
            )))),
            Err(e) => Err(Err(format!(
                "authenticate: {}",
                status_error(reply.status, &reply.body, &e)
            ))),
        }
    }

    /// One range read on endpoint `i` (`serializable`: from the member's own state, no
    /// round through the leader), authenticating (again) when needed. A scope's read
    /// replaces the scope's records ([`load_scope`]).
    fn range_on(
        &mut self,
        i: usize,
        deadline: Instant,
        serializable: bool,
    ) -> Result<Range, Failure> {
        self.detect_prefix(i, deadline)
            .map_err(Failure::Transport)?;
        if self.credentials.is_some() && self.token.is_none() && !self.auth_not_enabled {
            self.authenticate(i, deadline)
                .map_err(|e| Failure::Transport(rejected_text(e)))?;
        }
        let mut reauthenticated = false;
        loop {
            // Lent out for the call, which needs the client mutably.
            let body = match serializable {
                true => &mut self.confirm_body,
                false => &mut self.range_body,
            };
            let request = std::mem::take(body);
            let reply = self.post(i, "/kv/range", &request, deadline);
            match serializable {
                true => self.confirm_body = request,
                false => self.range_body = request,
            }
            let Reply { status, body, .. } =
                reply.map_err(|e| Failure::Transport(e.to_string()))?;
            let parsed = reply::json(&body).and_then(|v| {
                let range = match &mut self.scope {
                    Some(scope) => reply::parse_scope_range_json(&v, &self.key)
                        .map(|range| load_scope(scope, range)),
                    None => reply::parse_range_json(&v, &self.key),
                };
                self.last_reply = v;
                range
            });
            match parsed {
                Ok(range) => return Ok(range),
                // An expired token (16), or no token where one is now needed
                // ("user name is empty", 3, after authentication was enabled).
                Err(ReplyError::Etcd { code, .. })
                    if self.credentials.is_some()
                        && !reauthenticated
                        && (code == CODE_UNAUTHENTICATED
                            || (code == CODE_INVALID_ARGUMENT && self.token.is_none())) =>
                {
                    self.auth_not_enabled = false;
                    reauthenticated = true;
                    self.authenticate(i, deadline)
                        .map_err(|e| Failure::Transport(rejected_text(e)))?;
                }
                Err(e) if status == 404 => {
                    // Wrong API prefix (an upgraded server?): detect again next time.
                    self.prefixes[i] = None;
                    return Err(Failure::Transport(status_error(status, &body, &e)));
                }
                Err(e @ ReplyError::Malformed(_)) if status != 200 => {
                    return Err(Failure::Transport(status_error(status, &body, &e)));
                }
                Err(e) => return Err(Failure::Reply(e)),
            }
        }
    }

    /// One range read, trying each endpoint at most once from the current one.
    pub fn range(&mut self, deadline: Instant) -> Result<Range, String> {
        let mut errors = Vec::new();
        for i in self.endpoints.order() {
            match self.range_on(i, deadline, false) {
                Ok(range) => return Ok(range),
                Err(e) => self.endpoints.failed(i, e, &mut errors),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(errors.join("; "))
    }

    /// At start-up: authenticate once if credentials are set, so that rejected
    /// credentials are a configuration error (exit 2) rather than a retry loop.
    /// An unreachable server is not an error here: the loop retries.
    pub fn check_credentials(&mut self, deadline: Instant) -> Result<(), Rejected> {
        if self.credentials.is_none() {
            return Ok(());
        }
        for i in 0..self.endpoints.list.len() {
            if self.detect_prefix(i, deadline).is_err() {
                continue;
            }
            match self.authenticate(i, deadline) {
                Ok(()) => return Ok(()),
                Err(Ok(rejected)) => return Err(rejected),
                Err(Err(_)) => continue,
            }
        }
        Ok(())
    }
}

/// Put a successful read of a scope into it, replacing what it held: the range left
/// for the caller carries the store's revision and the lease of this node's member
/// record (no value: the scope's records are the state).
fn load_scope(scope: &mut Scope, range: reply::ScopeRange) -> Range {
    scope.clear();
    for kv in &range.kvs {
        scope.put(&kv.key, kv.value.as_deref().unwrap_or_default(), kv.lease);
    }
    Range {
        revision: range.revision,
        value: None,
        lease: scope.my_lease(),
    }
}

fn rejected_text(e: Result<Rejected, String>) -> String {
    match e {
        Ok(Rejected(text)) => format!("credentials rejected: {text}"),
        Err(text) => text,
    }
}

impl Dcs for Etcd {
    fn observe(&mut self, deadline: Instant) -> Observation {
        let at = Instant::now();
        let healthy =
            self.watch && self.known.is_some() && self.stream.as_ref().is_some_and(|s| s.created);
        let checked = match next_look(
            healthy,
            self.last_read,
            self.last_fact,
            at,
            self.check_interval,
            self.interval,
        ) {
            Look::Remembered => self.remembered(at).ok_or(None),
            Look::Probe => self.probe(at, deadline),
            Look::Confirm => self.confirm(at, deadline),
            Look::Read => Err(None),
        };
        match checked {
            Ok(obs) => return obs,
            Err(Some(why)) => return Observation::Unknown(why),
            Err(None) => {}
        }
        let at = Instant::now();
        match self.range(deadline) {
            Ok(range) => {
                // Another endpoint answered: a watch on the one that failed is in doubt.
                if self
                    .stream
                    .as_ref()
                    .is_some_and(|s| s.endpoint != self.endpoints.current)
                {
                    self.stream = None;
                }
                self.read_done(at, range)
            }
            Err(e) => {
                (self.revision, self.known) = (None, None);
                Observation::Unknown(e)
            }
        }
    }

    fn wait(&mut self, deadline: Instant, wake: Wake<'_>) -> Option<Wait> {
        self.watch(deadline, wake)
    }

    fn last_fact(&self) -> Option<Instant> {
        self.last_fact
    }

    fn lease_bound(&self) -> Option<Instant> {
        self.lease_bound
    }

    fn ask_lease(&mut self, deadline: Instant) {
        self.query_lease(deadline)
    }

    fn forget(&mut self) {
        (self.revision, self.known, self.stream) = (None, None, None);
    }
}

#[cfg(test)]
mod tests;

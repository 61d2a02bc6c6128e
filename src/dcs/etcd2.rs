//! etcd's v2 keys API: `GET <endpoint>/v2/keys<key>`, which Patroni's `etcd:` section
//! writes (etcd 3.4 serves it only with `--enable-v2`; 3.6 removed it). A v2 key is
//! invisible to the v3 API and vice versa.
//!
//! The reply handling is pure ([`parse_reply`]) and unit-tested on bodies etcd 3.4.23
//! sent; [`Etcd2`] is the thin HTTP shell. Every turn reads the key with a quorum read:
//! the v2 API has no equivalent of v3's `hasleader`, so only a read that goes through
//! the leader tells a member without quorum from a healthy one. Changes are awaited on
//! one streaming wait (`?wait=true&stream=true&waitIndex=N`, N one past the read's
//! `X-Etcd-Index`) kept open across turns: a wait opened per turn and given up at the
//! turn's end cost etcd a connection and a watcher each time, as much as the read
//! (measured on etcd 3.4.23: 270–310 µs each). Events the last read already reflects
//! are skipped. Credentials go in HTTP basic authentication, as Patroni's v2 client
//! sends them.
//!
//! A replica VIP reads the whole scope instead ([`recursive`]): the directory with
//! `recursive=true`, changes awaited on a recursive stream on it, under the same index
//! rules, a new stream after each event (see `wait` for why). Its bound on the VIP's
//! grace is this node's own member record's `ttl`.

pub mod recursive;

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub use super::etcd::ReplyError;
use super::etcd::lease::bound;
use super::etcd::reply::{json, malformed};
use super::etcd::{Credentials, MAX_WATCH_LINE, Rejected, Settings, status_error};
use super::http::conn::{Error, Request, Stream, StreamEnd};
use super::http::{self, Endpoints};
use super::scope::Scope;
use super::{Dcs, Observation, Wait};
use crate::base64;
use crate::wake::Wake;

/// v2 error code: the key does not exist.
pub const CODE_KEY_NOT_FOUND: i64 = 100;
/// v2 error code: the request requires user authentication (wrong credentials or no
/// permission to read the key).
pub const CODE_UNAUTHORIZED: i64 = 110;
/// v2 error code: the wait index is older than the event history kept (1000 events).
pub const CODE_EVENT_INDEX_CLEARED: i64 = 401;

pub use recursive::{Change, Event, Leaf, Listing, MAX_LEAVES, apply, parse_event, parse_listing};

/// The key's state in a v2 reply (a read, or the event a wait returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The value, or `None` when the key does not exist (error 100) or the event
    /// removed it (`delete`, `expire`, `compareAndDelete`).
    pub value: Option<String>,
    /// The index of the node (`modifiedIndex`), or the store's index of an error reply.
    pub index: Option<u64>,
    /// Seconds the key has left (`ttl`, rounded up by etcd; `None` without a TTL).
    pub ttl: Option<i64>,
}

/// A key as etcd's v2 store names it: one leading `/`, no empty segments, no trailing
/// `/` (etcd cleans the path the same way).
pub fn clean_key(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// The error of an error reply (one with `errorCode`): `Ok` with the store's index for
/// "key not found", the error otherwise; `None` for a reply that is no error.
fn error_reply(obj: &Map<String, Value>) -> Option<Result<Option<u64>, ReplyError>> {
    let code = obj.get("errorCode")?;
    let Some(code) = code.as_i64() else {
        return Some(Err(malformed("errorCode is not a number")));
    };
    if code == CODE_KEY_NOT_FOUND {
        return Some(Ok(obj.get("index").and_then(Value::as_u64)));
    }
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)");
    let message = match obj.get("cause").and_then(Value::as_str) {
        Some(cause) if !cause.is_empty() => format!("{message} ({cause})"),
        _ => message.to_string(),
    };
    Some(Err(ReplyError::Etcd {
        code,
        message: http::server_text(message.as_bytes()),
        v2: true,
    }))
}

/// Parse a v2 keys reply (to a read or a wait) for the key `key`.
pub fn parse_reply(body: &[u8], key: &str) -> Result<Node, ReplyError> {
    let v = json(body)?;
    let obj = v.as_object().ok_or_else(|| malformed("not an object"))?;
    if let Some(error) = error_reply(obj) {
        return error.map(|index| Node {
            value: None,
            index,
            ttl: None,
        });
    }
    let action = obj
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no action"))?;
    let node = obj.get("node").ok_or_else(|| malformed("no node"))?;
    let got_key = node
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("node without key"))?;
    if clean_key(got_key) != clean_key(key) {
        return Err(malformed("reply is for another key"));
    }
    let index = node.get("modifiedIndex").and_then(Value::as_u64);
    let ttl = node.get("ttl").and_then(Value::as_i64);
    match action {
        "delete" | "expire" | "compareAndDelete" => Ok(Node {
            value: None,
            index,
            ttl: None,
        }),
        _ => {
            if node.get("dir").and_then(Value::as_bool) == Some(true) {
                return Err(malformed("the trigger key is a directory"));
            }
            match node.get("value") {
                Some(Value::String(s)) => Ok(Node {
                    value: Some(s.clone()),
                    index,
                    ttl,
                }),
                None | Some(Value::Null) => Err(malformed("node without value")),
                Some(_) => Err(malformed("value is not a string")),
            }
        }
    }
}

/// Why a request to one endpoint failed.
enum Failure {
    /// The endpoint could not be used; try another.
    Transport(String),
    /// The endpoint refused the credentials (HTTP 401, error 110).
    Rejected(String),
    /// The endpoint answered with an error.
    Reply(ReplyError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(why) | Failure::Reply(ReplyError::Malformed(why)) => {
                f.write_str(why)
            }
            Failure::Rejected(why) => write!(f, "credentials rejected: {why}"),
            Failure::Reply(e) => e.fmt(f),
        }
    }
}

/// The etcd v2 keys client: several endpoints, a failed one skipped.
pub struct Etcd2 {
    endpoints: Endpoints,
    /// The trigger key, or a replica VIP's scope directory (`/service/pg`).
    key: String,
    /// `/v2/keys/service/pg/leader` (`/v2/keys/service/pg`), percent-encoded.
    path: String,
    /// The `Authorization: Basic …` value (a secret: never logged).
    authorization: Option<String>,
    user: Option<String>,
    watch: bool,
    /// The `X-Etcd-Index` of this turn's successful read (or of a later event).
    index: Option<u64>,
    /// The streaming wait, kept open across turns while it is healthy.
    stream: Option<WaitStream>,
    /// Bytes of the stream not yet parsed (at most one event line and a part).
    line: Vec<u8>,
    /// The latest moment the key is known to exist until, from its `ttl` in the last
    /// read or event (Patroni's v2 leader key carries one).
    lease_bound: Option<Instant>,
    /// A replica VIP's records; `None`: the trigger key alone.
    scope: Option<Scope>,
    /// The longest event line (a scope's events carry any of its keys, `history` too).
    line_limit: usize,
    /// The origin of the expiries the scope keeps as its records' leases.
    epoch: Instant,
}

/// A read's answer: the key, or a replica VIP's whole scope.
enum Answer {
    Key(Node),
    Scope(Listing),
}

/// An open streaming wait: its connection, endpoint, and the index it started from.
struct WaitStream {
    stream: Stream,
    endpoint: usize,
    from: u64,
}

fn basic_auth(cred: &Credentials) -> String {
    let pair = format!("{}:{}", cred.user, cred.password.0);
    format!("Basic {}", base64::encode(pair.as_bytes()))
}

impl Etcd2 {
    /// With a replica VIP's scope: whether it exists in this API (`None`: the key
    /// alone is read).
    pub fn scope_exists(&self) -> Option<bool> {
        self.scope.as_ref().map(|s| s.exists())
    }

    pub fn new(settings: &Settings) -> Etcd2 {
        let scope = settings.scope.clone();
        let key = match &scope {
            Some(scope) => clean_key(&scope.prefix(true)),
            None => clean_key(&settings.key),
        };
        let mut endpoints = Endpoints::new(&settings.endpoints, settings.interval, &settings.tls);
        let mut line_limit = MAX_WATCH_LINE;
        if scope.is_some() {
            endpoints.set_limit(http::MAX_SCOPE_REPLY);
            line_limit = http::MAX_SCOPE_REPLY;
        }
        Etcd2 {
            endpoints,
            path: format!("/v2/keys{}", http::encode_path(&key)),
            key,
            authorization: settings.credentials.as_ref().map(basic_auth),
            user: settings.credentials.as_ref().map(|c| c.user.clone()),
            watch: settings.watch,
            index: None,
            stream: None,
            line: Vec::new(),
            lease_bound: None,
            scope,
            line_limit,
            epoch: Instant::now(),
        }
    }

    /// A record's expiry as the scope keeps it (its lease): milliseconds after
    /// `epoch`, plus one (0 is "none").
    fn expiry_code(&self, at: Instant, ttl: Option<i64>) -> i64 {
        let Some(ttl) = ttl else {
            return 0;
        };
        let ms = bound(at, ttl)
            .saturating_duration_since(self.epoch)
            .as_millis();
        i64::try_from(ms).unwrap_or(i64::MAX - 1) + 1
    }

    /// The bound of this node's own member record (its expiry), once the scope changed.
    fn scope_lease(&self) -> Option<Instant> {
        let code = self.scope.as_ref()?.my_lease();
        let ms = u64::try_from(code.checked_sub(1)?).ok()?;
        Some(self.epoch + Duration::from_millis(ms))
    }

    /// A scope read into the records, observed now.
    fn take_listing(&mut self, listing: Listing, asked: Instant) -> Observation {
        let codes: Vec<i64> = (listing.leaves.iter())
            .map(|l| self.expiry_code(asked, l.ttl))
            .collect();
        let Some(scope) = self.scope.as_mut() else {
            return Observation::Unknown("no scope".into());
        };
        scope.clear();
        for (leaf, code) in listing.leaves.iter().zip(codes) {
            scope.put(&leaf.key, leaf.value.as_bytes(), code);
        }
        let obs = scope.observe(Instant::now());
        self.lease_bound = self.scope_lease();
        obs
    }

    /// A wait's event applied to the records, observed now.
    fn take_event(&mut self, change: Change) -> Observation {
        let now = Instant::now();
        let code = match &change {
            Change::Put(leaf) => self.expiry_code(now, leaf.ttl),
            Change::Delete { .. } => 0,
        };
        let Some(scope) = self.scope.as_mut() else {
            return Observation::Unknown("no scope".into());
        };
        recursive::apply(scope, &change, &self.key, code);
        let obs = scope.observe(now);
        self.lease_bound = self.scope_lease();
        obs
    }

    /// GET `query` on endpoint `i` until `deadline`.
    fn get(
        &mut self,
        i: usize,
        query: &str,
        deadline: Instant,
    ) -> Result<http::wire::Reply, Error> {
        let auth = self.authorization.as_deref().map(|a| ("Authorization", a));
        self.endpoints
            .get(i, &[&self.path, "?", query], auth, deadline, None)
    }

    /// Interpret a reply, `parsed` from `body`: what it says, or why not.
    fn judge<T>(
        &self,
        status: u16,
        body: &[u8],
        parsed: Result<T, ReplyError>,
    ) -> Result<T, Failure> {
        match parsed {
            Ok(answer) => Ok(answer),
            Err(ReplyError::Etcd {
                code: CODE_UNAUTHORIZED,
                message,
                ..
            }) => Err(Failure::Rejected(match &self.user {
                Some(user) => format!("etcd-user {user:?}: {message}"),
                None => format!("{message} (etcd-user is not set)"),
            })),
            Err(ReplyError::Malformed(_)) if status == 404 => Err(Failure::Transport(
                "HTTP 404: no v2 keys API here (etcd 3.4 serves it only with --enable-v2; \
                 3.6 removed it)"
                    .into(),
            )),
            Err(e @ ReplyError::Malformed(_)) if status != 200 => {
                Err(Failure::Transport(status_error(status, body, &e)))
            }
            Err(e) => Err(Failure::Reply(e)),
        }
    }

    /// One quorum read on endpoint `i` (of the key, or recursive of the scope).
    fn read_on(&mut self, i: usize, deadline: Instant) -> Result<(Answer, Option<u64>), Failure> {
        let query = match self.scope {
            Some(_) => "recursive=true&quorum=true",
            None => "quorum=true",
        };
        let reply = self
            .get(i, query, deadline)
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let (status, body) = (reply.status, &reply.body);
        // Wait from the store's index at the read (X-Etcd-Index), else the body's.
        let (answer, index) = match self.scope {
            Some(_) => {
                let listing = self.judge(status, body, parse_listing(body, &self.key))?;
                let index = listing.index;
                (Answer::Scope(listing), index)
            }
            None => {
                let node = self.judge(status, body, parse_reply(body, &self.key))?;
                let index = node.index;
                (Answer::Key(node), index)
            }
        };
        Ok((answer, reply.index.or(index)))
    }

    /// One read, trying each endpoint at most once from the current one.
    fn read(&mut self, deadline: Instant) -> Result<(Answer, Option<u64>), String> {
        let mut errors = Vec::new();
        for i in self.endpoints.order() {
            match self.read_on(i, deadline) {
                Ok(read) => return Ok(read),
                Err(e) => self.endpoints.failed(i, e, &mut errors),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(errors.join("; "))
    }

    /// At start-up, with credentials: read the key once so that rejected credentials
    /// are a configuration error (exit 2). An unreachable server is not an error here.
    pub fn check_credentials(&mut self, deadline: Instant) -> Result<(), Rejected> {
        if self.authorization.is_none() {
            return Ok(());
        }
        for i in 0..self.endpoints.list.len() {
            match self.read_on(i, deadline) {
                Err(Failure::Rejected(text)) => return Err(Rejected(text)),
                Err(Failure::Transport(_)) => continue,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Open a streaming wait for changes after `index` on the endpoint that answered
    /// this turn's read.
    fn open_wait(&mut self, index: u64, deadline: Instant) -> Result<WaitStream, Wait> {
        let i = self.endpoints.current;
        let from = index.saturating_add(1);
        let recursive = if self.scope.is_some() {
            "recursive=true&"
        } else {
            ""
        };
        let query = format!("wait=true&{recursive}stream=true&waitIndex={from}");
        let auth = self.authorization.as_deref().map(|a| ("Authorization", a));
        let headers: &[(&str, &str)] = match &auth {
            Some(h) => std::slice::from_ref(h),
            None => &[],
        };
        let endpoint = &self.endpoints.list[i];
        let path = [self.path.as_str(), "?", &query];
        let req = Request {
            wake: Some(Wake::SIGNALS),
            ..Request::get(&path, headers)
        };
        let stream = endpoint.conn.open_stream(&req, deadline).map_err(|e| {
            // Error 401 (the history no longer reaches back to the index) lands here
            // too: the next turn reads afresh and waits from there.
            log::debug!("v2 wait on {}: {e}", endpoint.url);
            Wait::Reread
        })?;
        self.line.clear();
        Ok(WaitStream {
            stream,
            endpoint: i,
            from,
        })
    }

    /// Read the stream until a change after `index` (the turn's read), a broken stream,
    /// or `deadline` (a signal such as SIGTERM ends the wait too).
    fn read_wait(
        &mut self,
        stream: &mut WaitStream,
        index: u64,
        deadline: Instant,
        wake: Wake<'_>,
    ) -> Wait {
        loop {
            let len = match stream
                .stream
                .next_line(&mut self.line, self.line_limit, deadline, wake)
            {
                Ok(len) => len,
                Err(StreamEnd::Deadline | StreamEnd::Interrupted) => return Wait::Deadline,
                Err(StreamEnd::Closed(why)) => {
                    log::debug!("v2 wait: {why}");
                    return Wait::Reread;
                }
            };
            if self.scope.is_some() {
                let event = parse_event(&self.line[..len], &self.key);
                self.line.drain(..=len);
                match event {
                    Ok(Event {
                        index: Some(at), ..
                    }) if at <= index => {}
                    Ok(event) => {
                        if let Some(at) = event.index {
                            self.index = Some(at);
                        }
                        return Wait::Changed(self.take_event(event.change));
                    }
                    Err(e) => {
                        log::debug!("v2 wait: {e}");
                        return Wait::Reread;
                    }
                }
                continue;
            }
            let event = parse_reply(&self.line[..len], &self.key);
            let event = self.judge(200, &self.line[..len], event);
            self.line.drain(..=len);
            match event {
                Ok(Node {
                    index: Some(at), ..
                }) if at <= index => {}
                Ok(node) => {
                    if let Some(at) = node.index {
                        self.index = Some(at);
                    }
                    self.lease_bound = node.ttl.map(|t| bound(Instant::now(), t));
                    return Wait::Changed(match node.value {
                        Some(v) => Observation::Leader(v),
                        None => Observation::NoLeader,
                    });
                }
                Err(e) => {
                    log::debug!("v2 wait: {e}");
                    return Wait::Reread;
                }
            }
        }
    }
}

impl Dcs for Etcd2 {
    fn observe(&mut self, deadline: Instant) -> Observation {
        self.index = None;
        let asked = Instant::now();
        match self.read(deadline) {
            Ok((answer, index)) => {
                self.index = index;
                // Another endpoint answered: a wait on the one that failed is in doubt.
                if self
                    .stream
                    .as_ref()
                    .is_some_and(|s| s.endpoint != self.endpoints.current)
                {
                    self.stream = None;
                }
                match answer {
                    Answer::Scope(listing) => self.take_listing(listing, asked),
                    Answer::Key(node) => {
                        self.lease_bound = node.ttl.map(|t| bound(asked, t));
                        match node.value {
                            Some(v) => Observation::Leader(v),
                            None => Observation::NoLeader,
                        }
                    }
                }
            }
            Err(e) => Observation::Unknown(e),
        }
    }

    fn lease_bound(&self) -> Option<Instant> {
        self.lease_bound
    }

    fn forget(&mut self) {
        (self.index, self.stream) = (None, None);
    }

    fn wait(&mut self, deadline: Instant, wake: Wake<'_>) -> Option<Wait> {
        if !self.watch {
            return None;
        }
        let index = self.index?;
        let stream = match self.stream.take() {
            // A stream from ahead of the store (etcd rebuilt behind the same address)
            // would miss changes: start again from this read.
            Some(s) if s.from > index.saturating_add(1) => None,
            other => other,
        };
        let mut stream = match stream {
            Some(s) => s,
            None => match self.open_wait(index, deadline) {
                Ok(s) => s,
                Err(wait) => return Some(wait),
            },
        };
        let wait = self.read_wait(&mut stream, index, deadline, wake);
        // Keep a healthy stream for the next turns; a broken one is dropped. So is a
        // scope's stream that delivered an event: etcd (3.4.23 measured) answers a
        // stream whose waitIndex its history already holds with that one event and
        // never registers it for later ones, and which one it was cannot be told. The
        // scope's events are frequent (every member's refresh); a key's stream that
        // went silent costs at most a turn, whose read sees the key.
        let keep = match wait {
            Wait::Deadline => true,
            Wait::Changed(_) => self.scope.is_none(),
            Wait::Reread => false,
        };
        if keep {
            self.stream = Some(stream);
        }
        Some(wait)
    }
}

#[cfg(test)]
mod tests;

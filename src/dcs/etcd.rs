//! etcd through its v3 JSON gateway (grpc-gateway): `POST <prefix>/kv/range`.
//!
//! The reply handling is pure ([`parse_range`], [`api_prefix`], [`parse_auth`]) and
//! unit-tested on the byte shapes etcd 3.4 sends; [`Etcd`] is the thin HTTP shell.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Secret;
use super::http::{self, Tls, describe, remaining};
use super::{Dcs, Observation, Wait};
use crate::base64;

/// Replies larger than this are refused (a leader key reply is a few hundred bytes).
pub const MAX_REPLY: u64 = http::MAX_REPLY;

/// What a range read of the trigger key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The store's revision when it answered (`header.revision`).
    pub revision: i64,
    /// The key's value, or `None` when the key does not exist.
    pub value: Option<String>,
}

/// A reply that is not a range result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// An etcd error object: gRPC code and message.
    Etcd { code: i64, message: String },
    /// Not what etcd sends: the text says what was wrong.
    Malformed(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Etcd { code, message } => write!(f, "etcd error {code}: {message}"),
            ReplyError::Malformed(why) => write!(f, "malformed reply: {why}"),
        }
    }
}

/// gRPC code etcd uses for an expired or invalid auth token.
pub const CODE_UNAUTHENTICATED: i64 = 16;
/// gRPC code for "authentication failed, invalid user ID or password".
pub const CODE_INVALID_ARGUMENT: i64 = 3;
/// gRPC code of "authentication is not enabled" (HTTP 412) from `auth/authenticate`.
pub const CODE_FAILED_PRECONDITION: i64 = 9;

fn int64(v: Option<&Value>) -> Option<i64> {
    // The gateway encodes int64 as JSON strings; accept plain numbers too.
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The error object of a unary reply (`{"error":…,"code":N,"message":…}`), if any.
fn error_object(v: &Value) -> Option<ReplyError> {
    let obj = v.as_object()?;
    if !obj.contains_key("error") && !obj.contains_key("code") {
        return None;
    }
    let code = int64(obj.get("code")).unwrap_or(-1);
    let message = obj
        .get("message")
        .or_else(|| obj.get("error"))
        .and_then(Value::as_str)
        .unwrap_or("(no message)");
    Some(ReplyError::Etcd {
        code,
        message: message.chars().take(200).collect(),
    })
}

fn malformed(why: &str) -> ReplyError {
    ReplyError::Malformed(why.to_string())
}

/// Parse the body of a `kv/range` reply for the single key `key`.
pub fn parse_range(body: &[u8], key: &[u8]) -> Result<Range, ReplyError> {
    parse_range_json(&json(body)?, key)
}

fn json(body: &[u8]) -> Result<Value, ReplyError> {
    serde_json::from_slice(body).map_err(|e| ReplyError::Malformed(format!("invalid JSON: {e}")))
}

/// [`parse_range`] of a reply already parsed as JSON.
fn parse_range_json(v: &Value, key: &[u8]) -> Result<Range, ReplyError> {
    if let Some(err) = error_object(v) {
        return Err(err);
    }
    let header = v.get("header").ok_or_else(|| malformed("no header"))?;
    let revision = int64(header.get("revision")).ok_or_else(|| malformed("no header.revision"))?;
    let kvs = match v.get("kvs") {
        None | Some(Value::Null) => {
            return Ok(Range {
                revision,
                value: None,
            });
        }
        Some(Value::Array(kvs)) => kvs,
        Some(_) => return Err(malformed("kvs is not a list")),
    };
    let Some(kv) = kvs.first() else {
        return Ok(Range {
            revision,
            value: None,
        });
    };
    let got_key = kv
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("kv without key"))?;
    let got_key =
        base64::decode(got_key).map_err(|e| ReplyError::Malformed(format!("key: {e}")))?;
    if got_key != key {
        return Err(malformed("reply is for another key"));
    }
    // An empty value is omitted by the gateway.
    let value = match kv.get("value") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => {
            base64::decode(s).map_err(|e| ReplyError::Malformed(format!("value: {e}")))?
        }
        Some(_) => return Err(malformed("value is not a string")),
    };
    let value = String::from_utf8(value).map_err(|_| malformed("value is not UTF-8"))?;
    Ok(Range {
        revision,
        value: Some(value),
    })
}

/// The gateway's path prefix for a server version (`GET /version` →
/// `{"etcdserver":"3.4.23",…}`): `/v3` from 3.4 on, `/v3beta` on 3.3, `/v3alpha` before.
pub fn api_prefix(version_body: &[u8]) -> Option<&'static str> {
    let v: Value = serde_json::from_slice(version_body).ok()?;
    let server = v.get("etcdserver")?.as_str()?;
    let mut parts = server.split('.').map(|p| p.parse::<u32>());
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return None;
    };
    Some(match (major, minor) {
        (0..=2, _) => return None,
        (3, 0..=2) => "/v3alpha",
        (3, 3) => "/v3beta",
        _ => "/v3",
    })
}

/// The token of an `auth/authenticate` reply.
pub fn parse_auth(body: &[u8]) -> Result<String, ReplyError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ReplyError::Malformed(format!("invalid JSON: {e}")))?;
    if let Some(err) = error_object(&v) {
        return Err(err);
    }
    match v.get("token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err(malformed("no token")),
    }
}

/// One line of a watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchLine {
    /// The watch is set up.
    Created,
    /// Events arrived: the key's state after the last of them (`None`: deleted) and
    /// that event's `mod_revision` (`i64::MAX` when the server left it out).
    Changed {
        value: Option<String>,
        revision: i64,
    },
    /// The server ended the watch (compacted start revision, or another reason).
    Canceled(String),
    /// An error object in the stream.
    Error(String),
    /// Anything else that is well-formed (progress notifications).
    Other,
}

/// Parse one line of a `watch` reply stream for the key `key`.
pub fn parse_watch_line(line: &[u8], key: &[u8]) -> Result<WatchLine, ReplyError> {
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| ReplyError::Malformed(format!("invalid JSON: {e}")))?;
    if let Some(err) = v.get("error") {
        // Stream errors: {"error":{"grpc_code":14,"http_code":503,"message":…}}; a
        // unary-shaped error (string + code) may come from a failed create.
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| err.as_str())
            .unwrap_or("(no message)");
        return Ok(WatchLine::Error(message.chars().take(200).collect()));
    }
    let result = v.get("result").ok_or_else(|| malformed("no result"))?;
    if result.get("canceled").and_then(Value::as_bool) == Some(true) {
        let why = match (
            int64(result.get("compact_revision")),
            result.get("cancel_reason").and_then(Value::as_str),
        ) {
            (Some(rev), _) => format!("start revision compacted (compact_revision {rev})"),
            (None, Some(reason)) => reason.chars().take(200).collect(),
            (None, None) => "canceled by the server".to_string(),
        };
        return Ok(WatchLine::Canceled(why));
    }
    if let Some(events) = result.get("events") {
        let events = events
            .as_array()
            .ok_or_else(|| malformed("events is not a list"))?;
        let mut state = None;
        let mut revision = i64::MAX;
        for ev in events {
            let kv = ev.get("kv").ok_or_else(|| malformed("event without kv"))?;
            let got_key = kv
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("kv without key"))?;
            if base64::decode(got_key).map_err(|e| ReplyError::Malformed(format!("key: {e}")))?
                != key
            {
                continue;
            }
            let deleted = ev.get("type").and_then(Value::as_str) == Some("DELETE");
            revision = int64(kv.get("mod_revision")).unwrap_or(i64::MAX);
            state = Some(if deleted {
                None
            } else {
                let value = match kv.get("value") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::String(s)) => base64::decode(s)
                        .map_err(|e| ReplyError::Malformed(format!("value: {e}")))?,
                    Some(_) => return Err(malformed("value is not a string")),
                };
                Some(String::from_utf8(value).map_err(|_| malformed("value is not UTF-8"))?)
            });
        }
        return Ok(match state {
            Some(value) => WatchLine::Changed { value, revision },
            None => WatchLine::Other,
        });
    }
    if result.get("created").and_then(Value::as_bool) == Some(true) {
        return Ok(WatchLine::Created);
    }
    Ok(WatchLine::Other)
}

/// The longest watch line accepted (one event for one small key is far below it).
pub const MAX_WATCH_LINE: usize = 64 * 1024;

/// The JSON body naming `key` for range and watch requests.
fn key_body(key: &[u8]) -> String {
    format!("{{\"key\":\"{}\"}}", base64::encode(key))
}

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
    /// CA and client certificate for https:// endpoints.
    pub tls: Tls,
}

struct Endpoint {
    base: String,
    prefix: Option<&'static str>,
    /// The lean keep-alive client for a plain `http://` endpoint given as an IP
    /// address (nearly always): the per-turn range read costs two system calls.
    plain: Option<super::plain::Plain>,
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

/// The lean client for `base` when it is `http://<IP literal>[:port]` without a path.
fn plain_client(base: &str, interval: Duration) -> Option<super::plain::Plain> {
    let uri: ureq::http::Uri = base.parse().ok()?;
    if uri.scheme_str() != Some("http") || !matches!(uri.path(), "" | "/") {
        return None;
    }
    let addr = super::resolve::literal_addr(&uri)?;
    let host = uri.authority()?.as_str();
    // One read waits at most an interval (a read starts with its turn, so a silent
    // server ends near the turn's deadline); the exchange also stops at the deadline.
    let timeout = interval.clamp(Duration::from_millis(100), Duration::from_secs(2));
    Some(super::plain::Plain::new(
        addr,
        host,
        timeout,
        MAX_REPLY as usize,
    ))
}

/// Why a request to one endpoint failed.
enum Failure {
    /// The endpoint could not be used; try another.
    Transport(String),
    /// The endpoint answered with an etcd error.
    Reply(ReplyError),
}

/// Credentials the server refused: at start-up this is a configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

/// The etcd v3 client: one agent (keep-alive), several endpoints; a failed endpoint
/// is skipped and tried again later.
pub struct Etcd {
    agent: ureq::Agent,
    endpoints: Vec<Endpoint>,
    current: usize,
    key: Vec<u8>,
    range_body: String,
    credentials: Option<Credentials>,
    token: Option<String>,
    /// The server said authentication is not enabled: read without a token (as etcd's
    /// Go client does) until a reply asks for one.
    auth_not_enabled: bool,
    watch: bool,
    /// The revision of this turn's successful range read.
    revision: Option<i64>,
    /// The watch stream, kept open across turns while it is healthy.
    stream: Option<WatchStream>,
    line: Vec<u8>,
    /// The last range reply, parsed, kept until the next one is: musl's allocator
    /// gives an emptied group of slots back to the kernel at once, and the maps of
    /// the only parse tree alive cost an `mmap`, a page fault and a `munmap` on
    /// every idle turn when they were dropped at the end of it.
    last_reply: Value,
}

impl Etcd {
    pub fn new(settings: &Settings) -> Etcd {
        Etcd {
            agent: http::agent(settings.interval, &settings.tls),
            endpoints: settings
                .endpoints
                .iter()
                .map(|e| Endpoint {
                    base: e.trim_end_matches('/').to_string(),
                    prefix: None,
                    plain: plain_client(e.trim_end_matches('/'), settings.interval),
                })
                .collect(),
            current: 0,
            key: settings.key.as_bytes().to_vec(),
            range_body: key_body(settings.key.as_bytes()),
            credentials: settings.credentials.clone(),
            token: None,
            auth_not_enabled: false,
            watch: settings.watch,
            revision: None,
            stream: None,
            line: Vec::with_capacity(1024),
            last_reply: Value::Null,
        }
    }

    /// A POST to `path` on endpoint `i` with the common headers, bounded by
    /// `deadline`; `None` leaves it unbounded for a caller that armed an alarm (see
    /// [`crate::signals::alarm_at`]): ureq lets a signal interrupt only untimed reads.
    fn request(
        &self,
        i: usize,
        path: &str,
        deadline: Option<Instant>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let ep = &self.endpoints[i];
        let url = format!("{}{}{}", ep.base, ep.prefix.unwrap_or("/v3"), path);
        let config = self.agent.post(&url).config();
        let config = match deadline {
            Some(deadline) => config.timeout_global(Some(remaining(deadline))),
            None => config.timeout_global(None).timeout_connect(None),
        };
        let req = config
            .build()
            .header("Content-Type", "application/json")
            .header("Grpc-Metadata-hasleader", "true");
        match &self.token {
            Some(token) => req.header("Authorization", token.as_str()),
            None => req,
        }
    }

    /// POST `body` to `path` on endpoint `i`, returning status and (bounded) body.
    fn post(
        &mut self,
        i: usize,
        path: &str,
        body: &str,
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), String> {
        let ep = &mut self.endpoints[i];
        if let Some(plain) = ep.plain.as_mut() {
            let prefix = ep.prefix.unwrap_or("/v3");
            return with_headers(&self.token, |headers| {
                plain.post(&[prefix, path], headers, body, deadline)
            });
        }
        let mut resp = self
            .request(i, path, Some(deadline))
            .send(body)
            .map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        Ok((status, http::read_body(&mut resp)?))
    }

    /// Find the API prefix of endpoint `i` once (`GET /version`).
    fn detect_prefix(&mut self, i: usize, deadline: Instant) -> Result<(), String> {
        if self.endpoints[i].prefix.is_some() {
            return Ok(());
        }
        let url = format!("{}/version", self.endpoints[i].base);
        let mut resp = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(remaining(deadline)))
            .build()
            .call()
            .map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        let body = http::read_body(&mut resp)?;
        if status != 200 {
            return Err(format!("GET /version: HTTP {status}"));
        }
        let prefix =
            api_prefix(&body).ok_or_else(|| "GET /version: not an etcd v3 server".to_string())?;
        log::debug!("{}: etcd API prefix {prefix}", self.endpoints[i].base);
        self.endpoints[i].prefix = Some(prefix);
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
        let (status, reply) = self
            .post(i, "/auth/authenticate", &body, deadline)
            .map_err(Err)?;
        match parse_auth(&reply) {
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
                        self.endpoints[i].base,
                        cred.user
                    );
                }
                self.auth_not_enabled = true;
                Ok(())
            }
            Err(ReplyError::Etcd {
                code: CODE_INVALID_ARGUMENT,
                message,
            }) => Err(Ok(Rejected(format!(
                "etcd-user {:?}: {message}",
                cred.user
            )))),
            Err(e) => Err(Err(format!("authenticate: HTTP {status}: {e}"))),
        }
    }

    /// One range read on endpoint `i`, authenticating (again) when needed.
    fn range_on(&mut self, i: usize, deadline: Instant) -> Result<Range, Failure> {
        self.detect_prefix(i, deadline)
            .map_err(Failure::Transport)?;
        if self.credentials.is_some() && self.token.is_none() && !self.auth_not_enabled {
            self.authenticate(i, deadline)
                .map_err(|e| Failure::Transport(rejected_text(e)))?;
        }
        let mut reauthenticated = false;
        loop {
            // Lent out for the call, which needs the client mutably.
            let request = std::mem::take(&mut self.range_body);
            let reply = self.post(i, "/kv/range", &request, deadline);
            self.range_body = request;
            let (status, body) = reply.map_err(Failure::Transport)?;
            let parsed = json(&body).and_then(|v| {
                let range = parse_range_json(&v, &self.key);
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
                    self.endpoints[i].prefix = None;
                    return Err(Failure::Transport(format!("HTTP 404: {e}")));
                }
                Err(e) => return Err(Failure::Reply(e)),
            }
        }
    }

    /// One range read, trying each endpoint at most once from the current one.
    pub fn range(&mut self, deadline: Instant) -> Result<Range, String> {
        let n = self.endpoints.len();
        let mut errors = Vec::new();
        for _ in 0..n {
            let i = self.current;
            let e = match self.range_on(i, deadline) {
                Ok(range) => return Ok(range),
                Err(Failure::Transport(e)) => e,
                Err(Failure::Reply(e)) => e.to_string(),
            };
            errors.push(format!("{}: {e}", self.endpoints[i].base));
            self.current = (i + 1) % n;
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
        for i in 0..self.endpoints.len() {
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

fn rejected_text(e: Result<Rejected, String>) -> String {
    match e {
        Ok(Rejected(text)) => format!("credentials rejected: {text}"),
        Err(text) => text,
    }
}

/// An open watch stream: the reply body of `POST <prefix>/watch`, kept across turns.
struct WatchStream {
    source: Source,
    /// The revision it was created from (a range revision + 1).
    from: i64,
    /// Whether it has a timeout of its own (no alarm available): it then dies at the
    /// first deadline and cannot be kept.
    bounded: bool,
}

/// Where a watch stream's bytes come from.
enum Source {
    /// ureq's reply body (https endpoints): its reads are ended by the alarm.
    Ureq(ureq::BodyReader<'static>),
    /// The lean client's stream (plain http): its reads end at the deadline by a
    /// socket timeout, no alarm needed.
    Plain(super::plain::Stream),
}

impl Etcd {
    /// Open a watch of the key from `from` on the endpoint that answered this turn's
    /// range read.
    fn open_watch(
        &mut self,
        from: i64,
        deadline: Instant,
        alarmed: bool,
    ) -> Result<WatchStream, Wait> {
        let i = self.current;
        let body = format!(
            "{{\"create_request\":{{\"key\":\"{}\",\"start_revision\":\"{from}\"}}}}",
            base64::encode(&self.key)
        );
        if let Some(plain) = &self.endpoints[i].plain {
            let prefix = self.endpoints[i].prefix.unwrap_or("/v3");
            let stream = with_headers(&self.token, |headers| {
                plain.open_stream(&[prefix, "/watch"], headers, &body, deadline)
            })
            .map_err(|e| {
                log::debug!("watch on {}: {e}", self.endpoints[i].base);
                Wait::Reread
            })?;
            self.line.clear();
            return Ok(WatchStream {
                source: Source::Plain(stream),
                from,
                bounded: false,
            });
        }
        // With an alarm the stream has no timeout (a signal interrupts its reads and
        // it lives on); without one it is bounded by this turn's deadline.
        let bound = (!alarmed).then_some(deadline);
        let resp = match self.request(i, "/watch", bound).send(&body) {
            Ok(resp) => resp,
            Err(ureq::Error::Timeout(_)) => return Err(Wait::Deadline),
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                return Err(Wait::Deadline);
            }
            Err(e) => {
                log::debug!("watch on {}: {}", self.endpoints[i].base, describe(&e));
                return Err(Wait::Reread);
            }
        };
        if resp.status().as_u16() != 200 {
            log::debug!(
                "watch on {}: HTTP {}",
                self.endpoints[i].base,
                resp.status().as_u16()
            );
            return Err(Wait::Reread);
        }
        self.line.clear();
        Ok(WatchStream {
            source: Source::Ureq(resp.into_body().into_reader()),
            from,
            bounded: bound.is_some(),
        })
    }

    /// Read the open stream until a change newer than `revision` (this turn's range
    /// read), a broken stream, or the deadline (the alarm interrupts the read; a
    /// signal such as SIGTERM does too). Events at or below `revision` are already
    /// reflected in the range read and skipped: never act on a stale value.
    fn read_watch(&mut self, stream: &mut WatchStream, revision: i64, deadline: Instant) -> Wait {
        let mut chunk = [0u8; 4096];
        loop {
            // Complete lines first: bytes after a returned event stay for the next call.
            while let Some(pos) = self.line.iter().position(|&b| b == b'\n') {
                let outcome = parse_watch_line(&self.line[..pos], &self.key);
                self.line.drain(..=pos);
                match outcome {
                    Ok(WatchLine::Changed { revision: r, .. }) if r <= revision => {}
                    Ok(WatchLine::Changed { value: Some(v), .. }) => {
                        return Wait::Changed(Observation::Leader(v));
                    }
                    Ok(WatchLine::Changed { value: None, .. }) => {
                        return Wait::Changed(Observation::NoLeader);
                    }
                    Ok(WatchLine::Created | WatchLine::Other) => {}
                    Ok(WatchLine::Canceled(why) | WatchLine::Error(why)) => {
                        log::debug!("watch ended: {why}");
                        return Wait::Reread;
                    }
                    Err(e) => {
                        log::debug!("watch: {e}");
                        return Wait::Reread;
                    }
                }
            }
            if self.line.len() > MAX_WATCH_LINE {
                log::debug!("watch line longer than {MAX_WATCH_LINE} bytes");
                return Wait::Reread;
            }
            match &mut stream.source {
                Source::Ureq(reader) => match std::io::Read::read(reader, &mut chunk) {
                    Ok(0) => return Wait::Reread,
                    Ok(n) => self.line.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Wait::Deadline,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        // Its own timeout ran out: the stream is finished.
                        stream.bounded = true;
                        return Wait::Deadline;
                    }
                    Err(e) => {
                        log::debug!("watch stream: {e}");
                        return Wait::Reread;
                    }
                },
                Source::Plain(plain) => match plain.read_into(&mut self.line, deadline) {
                    Ok(()) => {}
                    Err(
                        super::plain::StreamEnd::Deadline | super::plain::StreamEnd::Interrupted,
                    ) => {
                        return Wait::Deadline;
                    }
                    Err(super::plain::StreamEnd::Closed(why)) => {
                        log::debug!("watch stream: {why}");
                        return Wait::Reread;
                    }
                },
            }
        }
    }
}

impl Dcs for Etcd {
    fn observe(&mut self, deadline: Instant) -> Observation {
        self.revision = None;
        match self.range(deadline) {
            Ok(Range { revision, value }) => {
                self.revision = Some(revision);
                match value {
                    Some(v) => Observation::Leader(v),
                    None => Observation::NoLeader,
                }
            }
            Err(e) => Observation::Unknown(e),
        }
    }

    fn wait_for_change(&mut self, deadline: Instant) -> Option<Wait> {
        if !self.watch {
            return None;
        }
        // Without a successful range read this turn there is nothing to compare with.
        let revision = self.revision?;
        let mut stream = match self.stream.take() {
            // A stream from ahead of the store (etcd restored or rebuilt behind the same
            // connection) would miss changes: start again from this read.
            Some(s) if s.from > revision + 1 => None,
            other => other,
        };
        // Only ureq's stream needs the alarm; the lean client's ends its reads at the
        // deadline with a socket timeout (and a signal still interrupts it).
        let ureq_stream = match &stream {
            Some(s) => matches!(s.source, Source::Ureq(_)),
            None => self.endpoints[self.current].plain.is_none(),
        };
        let alarm = ureq_stream.then(|| crate::signals::alarm_at(deadline));
        let armed = alarm.as_ref().is_some_and(|a| a.armed());
        if stream.is_none() {
            match self.open_watch(revision + 1, deadline, armed) {
                Ok(s) => stream = Some(s),
                Err(wait) => return Some(wait),
            }
        }
        let mut stream = stream?;
        let wait = self.read_watch(&mut stream, revision, deadline);
        drop(alarm);
        // Keep a healthy stream for the next turns: one connection, no new watch per
        // turn. A broken one (or one that had its own timeout) is dropped.
        if wait != Wait::Reread && !stream.bounded {
            self.stream = Some(stream);
        }
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"/service/demo/leader";

    // Bodies as Debian's etcd 3.4.23 sent them, captured with
    // `curl -s -XPOST http://127.0.0.1:23790/v3/kv/range -d '{"key":"L3Nl…"}'` after
    // `etcdctl put /service/demo/leader node1` and after `etcdctl del …`.
    const RANGE_HIT: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE="}],"count":"1"}"#;
    const RANGE_MISS: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"3","raft_term":"2"}}"#;
    // The shape DESIGN.md records for a member without quorum (with hasleader).
    const NO_LEADER: &str =
        r#"{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}"#;

    #[test]
    fn range_with_value() {
        let r = parse_range(RANGE_HIT.as_bytes(), KEY).unwrap();
        assert_eq!(
            r,
            Range {
                revision: 2,
                value: Some("node1".into())
            }
        );
    }

    #[test]
    fn range_of_missing_key_is_no_value() {
        let r = parse_range(RANGE_MISS.as_bytes(), KEY).unwrap();
        assert_eq!(
            r,
            Range {
                revision: 3,
                value: None
            }
        );
        let empty_list = r#"{"header":{"revision":"7"},"kvs":[]}"#;
        assert_eq!(parse_range(empty_list.as_bytes(), KEY).unwrap().value, None);
    }

    #[test]
    fn empty_value_is_omitted_by_the_gateway() {
        let body = r#"{"header":{"revision":"9"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","mod_revision":"9"}],"count":"1"}"#;
        assert_eq!(
            parse_range(body.as_bytes(), KEY).unwrap().value,
            Some(String::new())
        );
    }

    #[test]
    fn etcd_errors() {
        assert_eq!(
            parse_range(NO_LEADER.as_bytes(), KEY),
            Err(ReplyError::Etcd {
                code: 14,
                message: "etcdserver: no leader".into()
            })
        );
        // Captured: a range with `Authorization: Bearer <token>` (3.4 wants the raw token).
        let unauth = r#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#;
        assert!(matches!(
            parse_range(unauth.as_bytes(), KEY),
            Err(ReplyError::Etcd { code: 16, .. })
        ));
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let cases = [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"header":{}}"#,
            r#"{"header":{"revision":"x"}}"#,
            r#"{"header":{"revision":"1"},"kvs":{}}"#,
            r#"{"header":{"revision":"1"},"kvs":[{}]}"#,
            r#"{"header":{"revision":"1"},"kvs":[{"key":"!!!!","value":"bm9kZTE="}]}"#,
            r#"{"header":{"revision":"1"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","value":"bm9kZTE"}]}"#,
            r#"{"header":{"revision":"1"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","value":7}]}"#,
            r#"{"header":{"revision":"1"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","value":"//79"}]}"#,
            r#"{"header":{"revision":"1"},"kvs":[{"key":"b3RoZXI=","value":"bm9kZTE="}]}"#,
        ];
        for body in cases {
            assert!(
                matches!(
                    parse_range(body.as_bytes(), KEY),
                    Err(ReplyError::Malformed(_))
                ),
                "body {body:?}"
            );
        }
    }

    #[test]
    fn api_prefix_by_version() {
        let v = |s: &str| {
            api_prefix(format!(r#"{{"etcdserver":"{s}","etcdcluster":"3.4.0"}}"#).as_bytes())
        };
        assert_eq!(v("3.4.23"), Some("/v3"));
        assert_eq!(v("3.5.9"), Some("/v3"));
        assert_eq!(v("3.6.0"), Some("/v3"));
        assert_eq!(v("3.3.27"), Some("/v3beta"));
        assert_eq!(v("3.2.32"), Some("/v3alpha"));
        assert_eq!(v("2.3.8"), None);
        assert_eq!(v("garbage"), None);
        assert_eq!(api_prefix(b"{}"), None);
    }

    #[test]
    fn auth_token() {
        // Captured from etcd 3.4.23 with auth enabled.
        let good = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"3","raft_term":"2"},"token":"BbaDiwEqrmZmPfGo.12"}"#;
        assert_eq!(
            parse_auth(good.as_bytes()),
            Ok("BbaDiwEqrmZmPfGo.12".into())
        );
        let bad = r#"{"error":"etcdserver: authentication failed, invalid user ID or password","message":"etcdserver: authentication failed, invalid user ID or password","code":3}"#;
        assert!(matches!(
            parse_auth(bad.as_bytes()),
            Err(ReplyError::Etcd { code: 3, .. })
        ));
        assert!(parse_auth(b"{}").is_err());
    }

    // The stream etcd 3.4.23 sent for `curl -N -XPOST …/v3/watch -d
    // '{"create_request":{"key":…,"start_revision":"3"}}'` after puts of node1..node3
    // and a delete, then for a start revision below `etcdctl compact 4`.
    const WATCH_CREATED: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"4","raft_term":"2"},"created":true}}"#;
    const WATCH_PUTS: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"4","raft_term":"2"},"events":[{"kv":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","create_revision":"2","mod_revision":"3","version":"2","value":"bm9kZTI="}},{"kv":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","create_revision":"2","mod_revision":"4","version":"3","value":"bm9kZTM="}}]}}"#;
    const WATCH_DELETE: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"5","raft_term":"2"},"events":[{"type":"DELETE","kv":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","mod_revision":"5"}}]}}"#;
    const WATCH_COMPACTED: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","raft_term":"2"},"canceled":true,"compact_revision":"4"}}"#;

    #[test]
    fn watch_lines() {
        let p = |l: &str| parse_watch_line(l.as_bytes(), KEY).unwrap();
        assert_eq!(p(WATCH_CREATED), WatchLine::Created);
        assert_eq!(
            p(WATCH_PUTS),
            WatchLine::Changed {
                value: Some("node3".into()),
                revision: 4
            },
            "the last event wins"
        );
        assert_eq!(
            p(WATCH_DELETE),
            WatchLine::Changed {
                value: None,
                revision: 5
            }
        );
        assert!(
            matches!(p(WATCH_COMPACTED), WatchLine::Canceled(why) if why.contains("compact_revision 4"))
        );
        let err = r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#;
        assert_eq!(p(err), WatchLine::Error("etcdserver: no leader".into()));
        let unary = r#"{"error":"illegal base64 data at input byte 0","message":"illegal base64 data at input byte 0","code":2}"#;
        assert_eq!(
            p(unary),
            WatchLine::Error("illegal base64 data at input byte 0".into())
        );
        let other_key = r#"{"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"b3RoZXI=","value":"eA=="}}]}}"#;
        assert_eq!(p(other_key), WatchLine::Other);
    }

    #[test]
    fn malformed_watch_lines_are_errors() {
        for line in [
            "",
            "{",
            "[]",
            r#"{"result":{"events":{}}}"#,
            r#"{"result":{"events":[{}]}}"#,
            r#"{"result":{"events":[{"kv":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","value":"***"}}]}}"#,
        ] {
            assert!(parse_watch_line(line.as_bytes(), KEY).is_err(), "{line:?}");
        }
    }

    #[test]
    fn range_body_names_the_key() {
        assert_eq!(key_body(KEY), r#"{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI="}"#);
    }
}

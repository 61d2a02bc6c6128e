//! etcd's v2 keys API: `GET <endpoint>/v2/keys<key>`, which Patroni's `etcd:` section
//! writes (etcd 3.4 serves it only with `--enable-v2`; 3.6 removed it). A v2 key is
//! invisible to the v3 API and vice versa.
//!
//! The reply handling is pure ([`parse_reply`]) and unit-tested on bodies etcd 3.4.23
//! sent; [`Etcd2`] is the thin HTTP shell. Reads are quorum reads; changes are awaited
//! with `?wait=true&waitIndex=N`, N one past the `X-Etcd-Index` of this turn's read,
//! bounded by the loop's deadline. Credentials go in HTTP basic authentication, as
//! Patroni's v2 client sends them.

use std::time::Instant;

use serde_json::Value;

use super::etcd::{Credentials, Rejected, Settings};
use super::http;
use super::{Dcs, Observation, Wait};
use crate::base64;

/// v2 error code: the key does not exist.
pub const CODE_KEY_NOT_FOUND: i64 = 100;
/// v2 error code: the request requires user authentication (wrong credentials or no
/// permission to read the key).
pub const CODE_UNAUTHORIZED: i64 = 110;
/// v2 error code: the wait index is older than the event history kept (1000 events).
pub const CODE_EVENT_INDEX_CLEARED: i64 = 401;

/// The key's state in a v2 reply (a read, or the event a wait returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The value, or `None` when the key does not exist (error 100) or the event
    /// removed it (`delete`, `expire`, `compareAndDelete`).
    pub value: Option<String>,
    /// The index of the node (`modifiedIndex`), or the store's index of an error reply.
    pub index: Option<u64>,
}

/// A reply that does not say what the key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A v2 error object: `errorCode`, `message` and `cause`.
    Etcd { code: i64, message: String },
    /// Not what etcd sends.
    Malformed(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Etcd { code, message } => write!(f, "etcd v2 error {code}: {message}"),
            ReplyError::Malformed(why) => write!(f, "malformed reply: {why}"),
        }
    }
}

fn malformed(why: &str) -> ReplyError {
    ReplyError::Malformed(why.to_string())
}

/// A key as etcd's v2 store names it: one leading `/`, no empty segments, no trailing
/// `/` (etcd cleans the path the same way).
pub fn clean_key(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Parse a v2 keys reply (to a read or a wait) for the key `key`.
pub fn parse_reply(body: &[u8], key: &str) -> Result<Node, ReplyError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ReplyError::Malformed(format!("invalid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| malformed("not an object"))?;
    if let Some(code) = obj.get("errorCode") {
        let code = code
            .as_i64()
            .ok_or_else(|| malformed("errorCode is not a number"))?;
        let index = obj.get("index").and_then(Value::as_u64);
        if code == CODE_KEY_NOT_FOUND {
            return Ok(Node { value: None, index });
        }
        let message = obj
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)");
        let message = match obj.get("cause").and_then(Value::as_str) {
            Some(cause) if !cause.is_empty() => format!("{message} ({cause})"),
            _ => message.to_string(),
        };
        return Err(ReplyError::Etcd {
            code,
            message: http::server_text(message.as_bytes()),
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
    match action {
        "delete" | "expire" | "compareAndDelete" => Ok(Node { value: None, index }),
        _ => {
            if node.get("dir").and_then(Value::as_bool) == Some(true) {
                return Err(malformed("the trigger key is a directory"));
            }
            match node.get("value") {
                Some(Value::String(s)) => Ok(Node {
                    value: Some(s.clone()),
                    index,
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

/// The etcd v2 keys client: one agent, several endpoints, a failed one skipped.
pub struct Etcd2 {
    agent: ureq::Agent,
    endpoints: Vec<String>,
    current: usize,
    key: String,
    /// `/v2/keys/service/pg/leader`, percent-encoded.
    path: String,
    /// The `Authorization: Basic …` value (a secret: never logged).
    authorization: Option<String>,
    user: Option<String>,
    watch: bool,
    /// The `X-Etcd-Index` of this turn's successful read, consumed by the wait.
    index: Option<u64>,
}

fn basic_auth(cred: &Credentials) -> String {
    let pair = format!("{}:{}", cred.user, cred.password.0);
    format!("Basic {}", base64::encode(pair.as_bytes()))
}

impl Etcd2 {
    pub fn new(settings: &Settings) -> Etcd2 {
        let key = clean_key(&settings.key);
        Etcd2 {
            agent: http::agent(settings.interval, &settings.tls),
            endpoints: settings
                .endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            current: 0,
            path: format!("/v2/keys{}", http::encode_path(&key)),
            key,
            authorization: settings.credentials.as_ref().map(basic_auth),
            user: settings.credentials.as_ref().map(|c| c.user.clone()),
            watch: settings.watch,
            index: None,
        }
    }

    /// GET `query` on endpoint `i` until `deadline` (`None`: unbounded, for a caller
    /// that armed an alarm, see [`crate::signals::alarm_at`]): status, `X-Etcd-Index`,
    /// body.
    fn get(
        &self,
        i: usize,
        query: &str,
        deadline: Option<Instant>,
    ) -> Result<(u16, Option<u64>, Vec<u8>), ureq::Error> {
        let url = format!("{}{}?{query}", self.endpoints[i], self.path);
        let config = self.agent.get(&url).config();
        let config = match deadline {
            Some(deadline) => config.timeout_global(Some(http::remaining(deadline))),
            None => config.timeout_global(None).timeout_connect(None),
        };
        let req = config.build();
        let req = match &self.authorization {
            Some(auth) => req.header("Authorization", auth.as_str()),
            None => req,
        };
        let mut resp = req.call()?;
        let status = resp.status().as_u16();
        let index = http::header_u64(&resp, "X-Etcd-Index");
        // A wait gets its headers at once and its body at the event: a signal must be
        // able to end that read.
        let body = http::read_body_interruptible(&mut resp)?;
        Ok((status, index, body))
    }

    /// Interpret a reply: the node, or why not.
    fn judge(&self, status: u16, body: &[u8]) -> Result<Node, Failure> {
        match parse_reply(body, &self.key) {
            Ok(node) => Ok(node),
            Err(ReplyError::Etcd {
                code: CODE_UNAUTHORIZED,
                message,
            }) => Err(Failure::Rejected(match &self.user {
                Some(user) => format!("etcd-user {user:?}: {message}"),
                None => format!("{message} (etcd-user is not set)"),
            })),
            Err(ReplyError::Malformed(_)) if status == 404 => Err(Failure::Transport(
                "HTTP 404: no v2 keys API here (etcd 3.4 serves it only with --enable-v2; \
                 3.6 removed it)"
                    .into(),
            )),
            Err(ReplyError::Malformed(why)) if status != 200 => Err(Failure::Transport(format!(
                "HTTP {status}: {}",
                if why.starts_with("invalid JSON") {
                    http::server_text(body)
                } else {
                    why
                }
            ))),
            Err(e) => Err(Failure::Reply(e)),
        }
    }

    /// One quorum read on endpoint `i`.
    fn read_on(&self, i: usize, deadline: Instant) -> Result<(Node, Option<u64>), Failure> {
        let (status, index, body) = self
            .get(i, "quorum=true", Some(deadline))
            .map_err(|e| Failure::Transport(http::describe(&e)))?;
        let node = self.judge(status, &body)?;
        // Wait from the store's index at the read (X-Etcd-Index), else the node's.
        let index = index.or(node.index);
        Ok((node, index))
    }

    /// One read, trying each endpoint at most once from the current one.
    pub fn read(&mut self, deadline: Instant) -> Result<(Node, Option<u64>), String> {
        let n = self.endpoints.len();
        let mut errors = Vec::new();
        for _ in 0..n {
            let i = self.current;
            let base = &self.endpoints[i];
            match self.read_on(i, deadline) {
                Ok(read) => return Ok(read),
                Err(Failure::Transport(e) | Failure::Reply(ReplyError::Malformed(e))) => {
                    errors.push(format!("{base}: {e}"))
                }
                Err(Failure::Rejected(e)) => {
                    errors.push(format!("{base}: credentials rejected: {e}"))
                }
                Err(Failure::Reply(e)) => errors.push(format!("{base}: {e}")),
            }
            self.current = (i + 1) % n.max(1);
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
        for i in 0..self.endpoints.len() {
            match self.read_on(i, deadline) {
                Err(Failure::Rejected(text)) => return Err(Rejected(text)),
                Err(Failure::Transport(_)) => continue,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Wait on the endpoint that answered this turn's read for the first change after
    /// `index`, until `deadline`.
    fn wait(&mut self, index: u64, deadline: Instant) -> Wait {
        let i = self.current;
        let query = format!("wait=true&waitIndex={}", index.saturating_add(1));
        // The alarm (or, without one, a timeout) ends the wait at the deadline; a
        // signal such as SIGTERM ends it at once.
        let alarm = crate::signals::alarm_at(deadline);
        let bound = (!alarm.armed()).then_some(deadline);
        let reply = self.get(i, &query, bound);
        drop(alarm);
        let (status, body) = match reply {
            Ok((status, _, body)) => (status, body),
            Err(ureq::Error::Timeout(_)) => return Wait::Deadline,
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                return Wait::Deadline;
            }
            Err(e) => {
                if Instant::now() >= deadline {
                    return Wait::Deadline;
                }
                log::debug!("v2 wait on {}: {}", self.endpoints[i], http::describe(&e));
                return Wait::Reread;
            }
        };
        match self.judge(status, &body) {
            Ok(Node { value: Some(v), .. }) => Wait::Changed(Observation::Leader(v)),
            Ok(Node { value: None, .. }) => Wait::Changed(Observation::NoLeader),
            Err(Failure::Transport(e) | Failure::Rejected(e)) => {
                log::debug!("v2 wait on {}: {e}", self.endpoints[i]);
                Wait::Reread
            }
            Err(Failure::Reply(e)) => {
                // Error 401: the history no longer reaches back to the index.
                log::debug!("v2 wait on {}: {e}", self.endpoints[i]);
                Wait::Reread
            }
        }
    }
}

impl Dcs for Etcd2 {
    fn observe(&mut self, deadline: Instant) -> Observation {
        self.index = None;
        match self.read(deadline) {
            Ok((node, index)) => {
                self.index = index;
                match node.value {
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
        let index = self.index?;
        let wait = self.wait(index, deadline);
        if wait != Wait::Deadline {
            // The next wait must start from a fresh read.
            self.index = None;
        }
        Some(wait)
    }
}

#[cfg(test)]
mod tests;

//! What etcd answers, parsed without sockets: range and auth replies of the v3 JSON
//! gateway, `GET /version`, and the error shapes etcd's v3 and v2 APIs share
//! ([`ReplyError`], [`status_error`]). Unit-tested on the byte shapes etcd 3.4 sends
//! (super::tests) and fuzzed.

use serde_json::Value;

use crate::base64;
use crate::dcs::http::server_text;

/// What a range read of the trigger key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The store's revision when it answered (`header.revision`).
    pub revision: i64,
    /// The key's value, or `None` when the key does not exist.
    pub value: Option<String>,
    /// The key's lease id (0: none, or no key).
    pub lease: i64,
}

/// A reply that is not what was asked for (etcd v3's and v2's alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// An etcd error object: the v3 gateway's gRPC code and message, or a v2 keys
    /// `errorCode` with its message and cause (`v2`).
    Etcd {
        code: i64,
        message: String,
        v2: bool,
    },
    /// Not what etcd sends: the text says what was wrong.
    Malformed(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Etcd { code, message, v2 } => {
                let api = if *v2 { " v2" } else { "" };
                write!(f, "etcd{api} error {code}: {message}")
            }
            ReplyError::Malformed(why) => write!(f, "malformed reply: {why}"),
        }
    }
}

/// What a body that is not JSON at all is called in [`ReplyError::Malformed`].
const NOT_JSON: &str = "invalid JSON";

/// The text for a reply with the error status `status` that says no more than `e`: the
/// server's own words when the body is not JSON (a plain-text error of etcd or of a
/// proxy), else what was wrong with it.
pub fn status_error(status: u16, body: &[u8], e: &ReplyError) -> String {
    match e {
        ReplyError::Malformed(why) if why.starts_with(NOT_JSON) => {
            let text = server_text(body);
            let hint = if text.starts_with(GATEWAY_COMMON_NAME) {
                " (with authentication on, etcd's JSON gateway refuses every client \
                 certificate that has a CommonName: use a client certificate without a \
                 CommonName, or password authentication without client certificates)"
            } else {
                ""
            };
            format!("HTTP {status}: {text:?}{hint}")
        }
        _ => format!("HTTP {status}: {e}"),
    }
}

/// What etcd's JSON gateway answers, in plain text, to a client certificate with a
/// CommonName while authentication is on (etcd's `embed/serve.go`).
const GATEWAY_COMMON_NAME: &str = "CommonName of client sending a request against gateway";

/// The body as JSON.
pub fn json(body: &[u8]) -> Result<Value, ReplyError> {
    serde_json::from_slice(body).map_err(|e| ReplyError::Malformed(format!("{NOT_JSON}: {e}")))
}

/// gRPC code etcd uses for an expired or invalid auth token.
pub const CODE_UNAUTHENTICATED: i64 = 16;
/// gRPC code for "authentication failed, invalid user ID or password".
pub const CODE_INVALID_ARGUMENT: i64 = 3;
/// gRPC code of "authentication is not enabled" (HTTP 412) from `auth/authenticate`.
pub const CODE_FAILED_PRECONDITION: i64 = 9;

pub fn int64(v: Option<&Value>) -> Option<i64> {
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
        v2: false,
    })
}

pub fn malformed(why: &str) -> ReplyError {
    ReplyError::Malformed(why.to_string())
}

/// Parse the body of a `kv/range` reply for the single key `key`.
pub fn parse_range(body: &[u8], key: &[u8]) -> Result<Range, ReplyError> {
    parse_range_json(&json(body)?, key)
}

/// A range reply's revision and key-value objects (none when the gateway left `kvs` out),
/// or its error object.
fn range_kvs(v: &Value) -> Result<(i64, &[Value]), ReplyError> {
    if let Some(err) = error_object(v) {
        return Err(err);
    }
    let header = v.get("header").ok_or_else(|| malformed("no header"))?;
    let revision = int64(header.get("revision")).ok_or_else(|| malformed("no header.revision"))?;
    match v.get("kvs") {
        None | Some(Value::Null) => Ok((revision, &[])),
        Some(Value::Array(kvs)) => Ok((revision, kvs)),
        Some(_) => Err(malformed("kvs is not a list")),
    }
}

/// [`parse_range`] of a reply already parsed as JSON.
pub fn parse_range_json(v: &Value, key: &[u8]) -> Result<Range, ReplyError> {
    let (revision, kvs) = range_kvs(v)?;
    let Some(kv) = kvs.first() else {
        return Ok(Range {
            revision,
            value: None,
            lease: 0,
        });
    };
    if kv_key(kv)? != key {
        return Err(malformed("reply is for another key"));
    }
    Ok(Range {
        revision,
        value: Some(kv_value(kv)?),
        lease: kv_lease(kv),
    })
}

/// The lease id of a key-value object (0, which the gateway leaves out, for none).
pub fn kv_lease(kv: &Value) -> i64 {
    int64(kv.get("lease")).unwrap_or(0)
}

/// The key of a key-value object (base64 in JSON).
pub fn kv_key(kv: &Value) -> Result<Vec<u8>, ReplyError> {
    let key = kv
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("kv without key"))?;
    base64::decode(key).map_err(|e| ReplyError::Malformed(format!("key: {e}")))
}

/// The value of a key-value object as text; an empty value is omitted by the gateway.
pub fn kv_value(kv: &Value) -> Result<String, ReplyError> {
    String::from_utf8(kv_bytes(kv)?).map_err(|_| malformed("value is not UTF-8"))
}

/// The value of a key-value object as bytes (a scope's records need not be text).
pub fn kv_bytes(kv: &Value) -> Result<Vec<u8>, ReplyError> {
    match kv.get("value") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => {
            base64::decode(s).map_err(|e| ReplyError::Malformed(format!("value: {e}")))
        }
        Some(_) => Err(malformed("value is not a string")),
    }
}

/// One key of a scope as a range read or a watch event showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeKv {
    pub key: String,
    /// `None`: the key was deleted (a watch event).
    pub value: Option<Vec<u8>>,
    /// The lease id (0: none).
    pub lease: i64,
    /// Its `mod_revision` (`i64::MAX` when the server left it out).
    pub revision: i64,
}

/// What a range read of a scope's prefix found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRange {
    /// The store's revision when it answered (`header.revision`).
    pub revision: i64,
    /// Every key under the prefix, in etcd's (key) order.
    pub kvs: Vec<ScopeKv>,
}

/// The key of a key-value object under `prefix` as text; `None` for a key outside it
/// (or one that is not UTF-8, which no Patroni record is).
pub fn kv_scope_key(kv: &Value, prefix: &[u8]) -> Result<Option<String>, ReplyError> {
    let key = kv_key(kv)?;
    if !key.starts_with(prefix) {
        return Ok(None);
    }
    Ok(String::from_utf8(key).ok())
}

/// Parse the body of a `kv/range` reply for the keys under `prefix`.
pub fn parse_scope_range(body: &[u8], prefix: &[u8]) -> Result<ScopeRange, ReplyError> {
    parse_scope_range_json(&json(body)?, prefix)
}

/// [`parse_scope_range`] of a reply already parsed as JSON. A key outside the prefix
/// means the reply is not for this read: malformed.
pub fn parse_scope_range_json(v: &Value, prefix: &[u8]) -> Result<ScopeRange, ReplyError> {
    let (revision, list) = range_kvs(v)?;
    let mut kvs = Vec::with_capacity(list.len());
    for kv in list {
        let key = kv_key(kv)?;
        if !key.starts_with(prefix) {
            return Err(malformed("reply has a key outside the scope"));
        }
        // No Patroni record has a key that is not UTF-8: nothing the scope keeps.
        let Ok(key) = String::from_utf8(key) else {
            continue;
        };
        kvs.push(ScopeKv {
            key,
            value: Some(kv_bytes(kv)?),
            lease: kv_lease(kv),
            revision: int64(kv.get("mod_revision")).unwrap_or(i64::MAX),
        });
    }
    Ok(ScopeRange { revision, kvs })
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
    let v = json(body)?;
    if let Some(err) = error_object(&v) {
        return Err(err);
    }
    match v.get("token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err(malformed("no token")),
    }
}

/// The end of the range of every key that starts with `prefix` (etcd's `range_end`):
/// the prefix with its last byte that is not 0xff incremented and the rest cut; a
/// single zero byte (every key from `prefix` on) when there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The JSON body of a range read of every key under `prefix`, as [`key_body`].
pub fn prefix_body(prefix: &[u8], serializable: bool) -> String {
    let extra = if serializable {
        ",\"serializable\":true"
    } else {
        ""
    };
    format!(
        "{{\"key\":\"{}\",\"range_end\":\"{}\"{extra}}}",
        base64::encode(prefix),
        base64::encode(&prefix_end(prefix))
    )
}

/// The JSON body of a range read of `key`; a `serializable` one is answered from the
/// member's own state, without a round through the leader.
pub fn key_body(key: &[u8], serializable: bool) -> String {
    let extra = if serializable {
        ",\"serializable\":true"
    } else {
        ""
    };
    format!("{{\"key\":\"{}\"{extra}}}", base64::encode(key))
}

//! etcd's watch: the reply stream of `POST <prefix>/watch` is kept open across turns and
//! read until a change newer than the last range read, its end, or the deadline; each
//! change updates the state the client remembers (a replica VIP's: the scope's records,
//! event by event). [`parse_watch_line`] and [`parse_scope_watch_line`] are pure,
//! unit-tested (super::tests) and fuzzed.

use std::time::Instant;

use serde_json::Value;

use super::reply::{
    ReplyError, ScopeKv, int64, json, kv_bytes, kv_key, kv_lease, kv_scope_key, kv_value, malformed,
};
use super::{Etcd, with_headers};
use crate::base64;
use crate::dcs::http::conn::{Request, Stream, StreamEnd};
use crate::dcs::{Observation, Wait};
use crate::wake::Wake;

/// One line of a watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchLine {
    /// The watch is set up.
    Created,
    /// Events arrived: the key's state after the last of them (`None`: deleted),
    /// that event's `mod_revision` (`i64::MAX` when the server left it out) and the
    /// key's lease id (0: none).
    Changed {
        value: Option<String>,
        revision: i64,
        lease: i64,
    },
    /// A scope watch's events under its prefix, in order ([`parse_scope_watch_line`]).
    Events(Vec<ScopeKv>),
    /// The server ended the watch (compacted start revision, or another reason).
    Canceled(String),
    /// An error object in the stream.
    Error(String),
    /// Anything else that is well-formed (progress notifications).
    Other,
}

/// A line's meaning as far as it does not depend on which keys are watched: a finished
/// [`WatchLine`], or the events to look at.
enum Shape<'v> {
    Done(WatchLine),
    Events(&'v [Value]),
}

fn shape(v: &Value) -> Result<Shape<'_>, ReplyError> {
    if let Some(err) = v.get("error") {
        // Stream errors: {"error":{"grpc_code":14,"http_code":503,"message":…}}; a
        // unary-shaped error (string + code) may come from a failed create.
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| err.as_str())
            .unwrap_or("(no message)");
        return Ok(Shape::Done(WatchLine::Error(
            message.chars().take(200).collect(),
        )));
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
        return Ok(Shape::Done(WatchLine::Canceled(why)));
    }
    if let Some(events) = result.get("events") {
        let events = events
            .as_array()
            .ok_or_else(|| malformed("events is not a list"))?;
        return Ok(Shape::Events(events));
    }
    if result.get("created").and_then(Value::as_bool) == Some(true) {
        return Ok(Shape::Done(WatchLine::Created));
    }
    Ok(Shape::Done(WatchLine::Other))
}

/// Parse one line of a `watch` reply stream for the key `key`.
pub fn parse_watch_line(line: &[u8], key: &[u8]) -> Result<WatchLine, ReplyError> {
    let v = json(line)?;
    let events = match shape(&v)? {
        Shape::Done(line) => return Ok(line),
        Shape::Events(events) => events,
    };
    let mut state = None;
    let (mut revision, mut lease) = (i64::MAX, 0);
    for ev in events {
        let kv = ev.get("kv").ok_or_else(|| malformed("event without kv"))?;
        if kv_key(kv)? != key {
            continue;
        }
        let deleted = ev.get("type").and_then(Value::as_str) == Some("DELETE");
        revision = int64(kv.get("mod_revision")).unwrap_or(i64::MAX);
        lease = if deleted { 0 } else { kv_lease(kv) };
        state = Some(if deleted { None } else { Some(kv_value(kv)?) });
    }
    Ok(match state {
        Some(value) => WatchLine::Changed {
            value,
            revision,
            lease,
        },
        None => WatchLine::Other,
    })
}

/// Parse one line of a `watch` reply stream for every key under `prefix`: its events
/// under the prefix in order ([`WatchLine::Events`]), values as bytes; a line without
/// any is [`WatchLine::Other`].
pub fn parse_scope_watch_line(line: &[u8], prefix: &[u8]) -> Result<WatchLine, ReplyError> {
    let v = json(line)?;
    let events = match shape(&v)? {
        Shape::Done(line) => return Ok(line),
        Shape::Events(events) => events,
    };
    let mut out = Vec::new();
    for ev in events {
        let kv = ev.get("kv").ok_or_else(|| malformed("event without kv"))?;
        let Some(key) = kv_scope_key(kv, prefix)? else {
            continue;
        };
        let deleted = ev.get("type").and_then(Value::as_str) == Some("DELETE");
        out.push(ScopeKv {
            key,
            value: if deleted { None } else { Some(kv_bytes(kv)?) },
            lease: if deleted { 0 } else { kv_lease(kv) },
            revision: int64(kv.get("mod_revision")).unwrap_or(i64::MAX),
        });
    }
    Ok(match out.is_empty() {
        true => WatchLine::Other,
        false => WatchLine::Events(out),
    })
}

/// The longest watch line accepted (one event for one small key is far below it).
pub const MAX_WATCH_LINE: usize = 64 * 1024;

/// An open watch stream, kept across turns.
pub(super) struct WatchStream {
    stream: Stream,
    /// The revision it was created from (a range revision + 1).
    from: i64,
    /// The endpoint it is open on.
    pub(super) endpoint: usize,
    /// etcd said the watch is set up, and nothing went wrong since.
    pub(super) created: bool,
}

impl Etcd {
    /// Open a watch of the key (or of the scope's range) from `from` on the endpoint
    /// that answered this turn's range read.
    fn open_watch(&mut self, from: i64, deadline: Instant) -> Result<WatchStream, Wait> {
        let i = self.endpoints.current;
        let range_end = match &self.range_end {
            Some(end) => format!(",\"range_end\":\"{}\"", base64::encode(end)),
            None => String::new(),
        };
        let body = format!(
            "{{\"create_request\":{{\"key\":\"{}\"{range_end},\"start_revision\":\"{from}\"}}}}",
            base64::encode(&self.key)
        );
        let prefix = self.prefixes[i].unwrap_or("/v3");
        let endpoint = &self.endpoints.list[i];
        let stream = with_headers(&self.token, |headers| {
            endpoint.conn.open_stream(
                &Request::post(&[prefix, "/watch"], headers, &body),
                deadline,
            )
        })
        .map_err(|e| {
            log::debug!("watch on {}: {e}", endpoint.url);
            Wait::Reread
        })?;
        self.line.clear();
        Ok(WatchStream {
            stream,
            from,
            endpoint: i,
            created: false,
        })
    }

    /// Read the open stream until a change newer than `revision` (the last range read
    /// or event), a broken stream, or the deadline (a signal such as SIGTERM ends the
    /// wait too). Events at or below `revision` are already reflected in what is known
    /// and skipped: never act on a stale value.
    fn read_watch(
        &mut self,
        stream: &mut WatchStream,
        revision: i64,
        deadline: Instant,
        wake: Wake<'_>,
    ) -> Wait {
        loop {
            let len = match stream
                .stream
                .next_line(&mut self.line, self.max_line, deadline, wake)
            {
                Ok(len) => len,
                Err(StreamEnd::Deadline | StreamEnd::Interrupted) => return Wait::Deadline,
                Err(StreamEnd::Closed(why)) => {
                    log::debug!("watch stream: {why}");
                    return Wait::Reread;
                }
            };
            let line = &self.line[..len];
            let outcome = match self.scope {
                Some(_) => parse_scope_watch_line(line, &self.key),
                None => parse_watch_line(line, &self.key),
            };
            self.line.drain(..=len);
            match outcome {
                Ok(WatchLine::Changed { revision: r, .. }) if r <= revision => {}
                Ok(WatchLine::Changed {
                    value,
                    revision: r,
                    lease,
                }) => {
                    let obs = super::check::observation(value);
                    self.lease_seen(lease);
                    self.known = Some(obs.clone());
                    self.last_fact = Some(Instant::now());
                    // A revision the server left out skips nothing later.
                    if r != i64::MAX {
                        self.revision = Some(r);
                    }
                    return Wait::Changed(obs);
                }
                Ok(WatchLine::Events(events)) => {
                    if let Some(obs) = self.scope_events(&events, revision) {
                        return Wait::Changed(obs);
                    }
                }
                Ok(WatchLine::Created) => stream.created = true,
                Ok(WatchLine::Other) => {}
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
    }

    /// Apply a scope watch's events newer than `revision` to the scope, in order: the
    /// holder chosen after them, or `None` when every event was already known.
    pub(super) fn scope_events(
        &mut self,
        events: &[ScopeKv],
        revision: i64,
    ) -> Option<Observation> {
        let scope = self.scope.as_mut()?;
        let (mut applied, mut latest) = (false, None);
        for ev in events.iter().filter(|ev| ev.revision > revision) {
            match &ev.value {
                Some(value) => scope.put(&ev.key, value, ev.lease),
                None => scope.delete(&ev.key, false),
            }
            applied = true;
            // A revision the server left out skips nothing later.
            if ev.revision != i64::MAX {
                latest = latest.max(Some(ev.revision));
            }
        }
        if !applied {
            return None;
        }
        let now = Instant::now();
        let obs = scope.observe(now);
        let lease = scope.my_lease();
        self.lease_seen(lease);
        self.known = Some(obs.clone());
        self.last_fact = Some(now);
        if latest.is_some() {
            self.revision = latest;
        }
        Some(obs)
    }

    /// [`crate::dcs::Dcs::wait`]: on the watch stream, opened when needed.
    pub(super) fn watch(&mut self, deadline: Instant, wake: Wake<'_>) -> Option<Wait> {
        if !self.watch {
            return None;
        }
        // Without a successful range read there is nothing to compare with.
        let revision = self.revision?;
        let stream = match self.stream.take() {
            // A stream from ahead of the store (etcd restored or rebuilt behind the same
            // connection) would miss changes: start again from this read.
            Some(s) if s.from > revision + 1 => None,
            other => other,
        };
        let mut stream = match stream {
            Some(s) => s,
            None => match self.open_watch(revision + 1, deadline) {
                Ok(s) => s,
                Err(wait) => return Some(wait),
            },
        };
        let wait = self.read_watch(&mut stream, revision, deadline, wake);
        // Keep a healthy stream for the next turns: one connection, no new watch per
        // turn. A broken one is dropped.
        if wait != Wait::Reread {
            self.stream = Some(stream);
        }
        Some(wait)
    }
}

//! A replica VIP's view of the whole scope through the v2 keys API: one recursive
//! quorum read of the scope's directory (`?recursive=true`), flattened into its keys,
//! and the events of a recursive wait on that directory. Pure, and unit-tested on the
//! bodies etcd 3.4.23 (`--enable-v2`) sent.

use serde_json::Value;

use super::{ReplyError, clean_key, error_reply};
use crate::dcs::etcd::reply::{json, malformed};
use crate::dcs::scope::Scope;

/// More keys than this under the scope make a read untrustworthy (far more than
/// [`crate::dcs::scope::MAX_MEMBERS`] member records and Patroni's other keys).
pub const MAX_LEAVES: usize = 4096;
/// Directories below the scope are followed this deep: no key the choice needs is
/// deeper (`members/<name>`, `optime/leader`), deeper ones are not read.
const MAX_DEPTH: usize = 2;

/// One key with a value, as a read or an event shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub key: String,
    pub value: String,
    /// Seconds the key has left (`ttl`; `None` without a TTL).
    pub ttl: Option<i64>,
}

/// A recursive read of the scope: its keys (none when the directory does not exist)
/// and the store's index it reflects, when the body tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub leaves: Vec<Leaf>,
    /// The error's `index` for a missing directory, else the highest `modifiedIndex`
    /// seen (the `X-Etcd-Index` header, when sent, is the better one).
    pub index: Option<u64>,
}

/// What one event of a recursive wait does to the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Leaf),
    /// A key or (`dir`) a directory with its keys removed.
    Delete {
        key: String,
        dir: bool,
    },
}

/// One event of a recursive wait, and its index (`modifiedIndex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub change: Change,
    pub index: Option<u64>,
}

/// Whether `key` is the directory `dir` or below it (both cleaned).
fn within(key: &str, dir: &str) -> bool {
    dir == "/"
        || key == dir
        || key
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A node's `modifiedIndex`.
fn modified(node: &Value) -> Option<u64> {
    node.get("modifiedIndex").and_then(Value::as_u64)
}

fn is_dir(node: &Value) -> bool {
    node.get("dir").and_then(Value::as_bool) == Some(true)
}

/// A key's node as a [`Leaf`].
fn leaf(node: &Value, key: &str) -> Result<Leaf, ReplyError> {
    let value = match node.get("value") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(malformed("node without value")),
        Some(_) => return Err(malformed("value is not a string")),
    };
    Ok(Leaf {
        key: key.to_string(),
        value,
        ttl: node.get("ttl").and_then(Value::as_i64),
    })
}

/// Parse a recursive read of the directory `dir` (the scope without its trailing `/`).
pub fn parse_listing(body: &[u8], dir: &str) -> Result<Listing, ReplyError> {
    let v = json(body)?;
    let obj = v.as_object().ok_or_else(|| malformed("not an object"))?;
    if let Some(error) = error_reply(obj) {
        return error.map(|index| Listing {
            leaves: Vec::new(),
            index,
        });
    }
    let node = obj.get("node").ok_or_else(|| malformed("no node"))?;
    let dir = clean_key(dir);
    // etcd names every node but the root.
    let got = match node.get("key") {
        Some(Value::String(k)) => clean_key(k),
        None if dir == "/" => dir.clone(),
        _ => return Err(malformed("node without key")),
    };
    if got != dir {
        return Err(malformed("reply is for another key"));
    }
    if !is_dir(node) {
        return Err(malformed("the scope is not a directory"));
    }
    let mut listing = Listing {
        leaves: Vec::new(),
        index: modified(node),
    };
    flatten(node, 0, &mut listing)?;
    Ok(listing)
}

/// Append the keys below the directory `node` (at `depth` below the scope).
fn flatten(node: &Value, depth: usize, out: &mut Listing) -> Result<(), ReplyError> {
    let Some(nodes) = node.get("nodes") else {
        // An empty directory.
        return Ok(());
    };
    let nodes = nodes
        .as_array()
        .ok_or_else(|| malformed("nodes is not a list"))?;
    for child in nodes {
        out.index = out.index.max(modified(child));
        if is_dir(child) {
            if depth + 1 < MAX_DEPTH {
                flatten(child, depth + 1, out)?;
            }
            continue;
        }
        if out.leaves.len() >= MAX_LEAVES {
            return Err(malformed(&format!(
                "more than {MAX_LEAVES} keys in the scope"
            )));
        }
        let key = child
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("node without key"))?;
        out.leaves.push(leaf(child, key)?);
    }
    Ok(())
}

/// Parse one event of a recursive wait on the directory `dir`.
pub fn parse_event(body: &[u8], dir: &str) -> Result<Event, ReplyError> {
    let v = json(body)?;
    let obj = v.as_object().ok_or_else(|| malformed("not an object"))?;
    if let Some(error) = error_reply(obj) {
        // A wait answers no "not found": any error ends it.
        error?;
        return Err(malformed("a wait answered key not found"));
    }
    let action = obj
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no action"))?;
    let node = obj.get("node").ok_or_else(|| malformed("no node"))?;
    let key = node
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("node without key"))?;
    if !within(&clean_key(key), &clean_key(dir)) {
        return Err(malformed("event for a key outside the scope"));
    }
    // etcd marks a removed directory in the node, and always in the previous one.
    let dir_node = is_dir(node) || obj.get("prevNode").is_some_and(is_dir);
    let change = match action {
        "delete" | "expire" | "compareAndDelete" => Change::Delete {
            key: key.to_string(),
            dir: dir_node,
        },
        "set" | "update" | "create" | "compareAndSwap" if is_dir(node) => {
            // A directory carries no value; one set where a key was replaces it.
            Change::Delete {
                key: key.to_string(),
                dir: false,
            }
        }
        "set" | "update" | "create" | "compareAndSwap" => Change::Put(leaf(node, key)?),
        _ => return Err(malformed("unknown action")),
    };
    Ok(Event {
        change,
        index: modified(node),
    })
}

/// Apply an event's change to the records of the scope whose directory is `dir` (a
/// put with `lease`, the record's expiry as the caller encodes it).
pub fn apply(scope: &mut Scope, change: &Change, dir: &str, lease: i64) {
    match change {
        Change::Put(leaf) => scope.put(&leaf.key, leaf.value.as_bytes(), lease),
        // The scope's own directory (named without its trailing `/`): everything goes.
        Change::Delete { key, dir: true } if clean_key(key) == clean_key(dir) => scope.clear(),
        Change::Delete { key, dir } => scope.delete(key, *dir),
    }
}

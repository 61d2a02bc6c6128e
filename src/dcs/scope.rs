//! Read-only VIPs: which member holds a `replica` or `sync` VIP, decided from the
//! records Patroni keeps under its scope (`<namespace>/<scope>/`), alike on every node.
//!
//! The DCS clients read the whole scope (a prefix range, a recursive read, a recursive
//! blocking query, Patroni's `GET /cluster`) into a [`Scope`], which keeps only the keys
//! the choice needs (`leader`, `status`, `optime/leader`, `sync`, `members/*`, each
//! bounded in size and count) and turns them into an [`Observation`]: the holder's
//! member name, so the rest of the loop works as for the leader key (the VIP is here
//! exactly when the holder is this node).
//!
//! # The rules
//!
//! A member is eligible when the leader key does not name it (whatever its own record
//! still says), its role is a replica's, its state `running` or `streaming`, it has no
//! `noloadbalance` tag (nor `nofailover` with `replica-skip-nofailover`), and its lag —
//! the leader's position minus its `xlog_location`, negative clamped to 0 — is at most
//! `replica-max-lag` (no limit by default; with a limit, a lag that cannot be computed
//! is ineligible). A member that stopped being eligible (or whose record vanished) is
//! eligible again only after `replica-settle` of continuous eligibility; one seen for
//! the first time since start is eligible at once, so that a restarted vipd reaches the
//! answer the others hold. For `sync` the candidates are the members the `sync` key
//! names (its `sync_standby`, comma-separated), for `replica` every member; being
//! named there is Patroni's choice, not health, and starts no settle period.
//!
//! # Why every node agrees without talking
//!
//! The holder is the eligible member with the highest rendezvous weight
//! ([`weight`]: a fixed hash of the VIP and the member's name). The weight depends on
//! nothing but those two strings, so every node that reads the same records picks the
//! same holder, a restarted one too, and the VIP moves only when the holder stops being
//! eligible or a member that outweighs it becomes eligible — never on lag noise, which
//! `replica-settle` absorbs. Two nodes can disagree only while their reads differ (one
//! watch event apart) or while one of them is inside a settle period the other, just
//! restarted, does not know of: at most `replica-settle`. With no eligible member the
//! holder is the leader (`replica-fallback primary`) or nobody (`none`).
//!
//! # Patroni's versions
//!
//! The parser was written against the records of Patroni 3.0.2 on etcd v3 and v2
//! (tests/fixtures/scope/). What differs between versions, and how it is read:
//! - the leader's position: the `status` key's `optime` from 2.1 on; `optime/leader` (a
//!   plain number) before, and while a member older than 2.1 runs; either is used;
//! - the leader's own `role`: `master` up to 3.x, `primary` in 4 (never eligible anyway:
//!   the leader key names it); a replica's: `replica`, and in 4 possibly
//!   `sync_standby` or `quorum_standby`, all accepted;
//! - a replica's `state`: `running` up to 3.0, `streaming` (or `in archive recovery`,
//!   not accepted) from 3.1 on;
//! - `sync`: `sync_standby` a single name up to 2.x, a comma-separated list with
//!   `synchronous_node_count` > 1 later; 4's quorum mode writes `quorum` beside it, which
//!   is not read;
//! - `GET /cluster`'s `lag`: a number, or `"unknown"`; later versions add `lsn`
//!   fields, which are not read.
//!
//! # Bounds
//!
//! A record over [`MAX_RECORD`] bytes or one that is not what Patroni writes makes that
//! member ineligible with one log line; more than [`MAX_MEMBERS`] member records make
//! the whole observation unknown, as an oversized reply does. Other keys (`history`,
//! `config`, …) are never kept.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Observation;

/// Which member a VIP follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The leader (the trigger key's value): the behaviour without `vip-role`.
    Primary,
    /// A healthy replica, the same one on every node.
    Replica,
    /// The synchronous standby the `sync` key names.
    Sync,
}

impl Role {
    /// What every log line of an instance with this role starts with.
    pub fn log_tag(self) -> &'static str {
        match self {
            Role::Primary => "",
            Role::Replica => "replica VIP: ",
            Role::Sync => "sync VIP: ",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Sync => "sync",
        }
    }
}

/// Where a replica VIP goes when no member is eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// To the leader.
    Primary,
    /// Nowhere.
    None,
}

/// The eligibility rules of a `replica` or `sync` VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub role: Role,
    /// The VIP as text: the rendezvous hash's other input.
    pub vip: String,
    /// The largest lag in bytes (`replica-max-lag`); `None`: no limit.
    pub max_lag: Option<u64>,
    /// How long a member that was ineligible must stay eligible (`replica-settle`).
    pub settle: Duration,
    pub fallback: Fallback,
    /// A `nofailover` tag makes a member ineligible too (`replica-skip-nofailover`).
    pub skip_nofailover: bool,
}

/// More member records than this make the observation unknown.
pub const MAX_MEMBERS: usize = 256;
/// A record longer than this (bytes) is not read: its member is ineligible.
pub const MAX_RECORD: usize = 64 * 1024;
/// The longest leader name kept (a longer one names no member anyway).
const MAX_NAME: usize = 1024;
/// Members remembered as having been ineligible, beyond those with a record.
const MAX_REMEMBERED: usize = 1024;

/// The roles a replica's record carries (Patroni 2.1–3 write `replica`; 4 may write
/// `sync_standby` or `quorum_standby`).
const REPLICA_ROLES: &[&str] = &["replica", "sync_standby", "quorum_standby"];
/// The states of a replica that serves reads (`streaming`: Patroni 3.1 on, whose
/// `running` then means in archive recovery; both serve reads).
const SERVING_STATES: &[&str] = &["running", "streaming"];

/// What one member's record says, as far as the choice needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub role: String,
    pub state: String,
    pub noloadbalance: bool,
    pub nofailover: bool,
    pub lag: Lag,
}

/// How far a member is behind the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// Its WAL position (`xlog_location`): the lag is the leader's position minus it.
    Position(u64),
    /// The lag itself in bytes, as Patroni's `GET /cluster` reports it.
    Bytes(u64),
    /// Not known (no position in the record, `"unknown"` from `/cluster`).
    Unknown,
}

/// A record's value: the member, or why it cannot be used.
type Record = Result<Member, String>;

/// Whether a member counts as eligible across observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Eligible and settled (or eligible since first seen).
    Settled,
    /// Eligible again since then, after having been ineligible.
    Since(Instant),
    /// Not eligible at the last observation.
    Ineligible,
}

/// The scope's records as last read, and what the choice remembers across reads.
#[derive(Debug, Clone)]
pub struct Scope {
    rules: Rules,
    /// This node's member name (the trigger value).
    me: String,
    /// The scope's prefix without leading `/`, with a trailing one (`service/lab/`).
    prefix: String,
    /// The leader key's name relative to the scope (`leader`).
    leader_key: String,
    leader: Option<String>,
    /// The leader's WAL position: `status`'s `optime` (Patroni 2.1 on) and the older
    /// `optime/leader`.
    status_pos: Option<u64>,
    optime_pos: Option<u64>,
    sync: Vec<String>,
    members: BTreeMap<String, (Record, i64)>,
    /// More member keys were offered than [`MAX_MEMBERS`].
    overflow: bool,
    settle: BTreeMap<String, Settle>,
    /// Why each member was last found ineligible, logged once per change.
    told: BTreeMap<String, String>,
}

impl Scope {
    /// The reader for the scope of `trigger_key` (`/service/lab/leader`: the scope is
    /// `/service/lab/`, the leader key `leader`), choosing for the node named `me`.
    pub fn new(rules: Rules, trigger_key: &str, me: &str) -> Scope {
        let key = trigger_key.trim_start_matches('/');
        let (prefix, leader_key) = match key.rsplit_once('/') {
            Some((scope, leader)) => (format!("{scope}/"), leader.to_string()),
            None => (String::new(), key.to_string()),
        };
        Scope {
            rules,
            me: me.to_string(),
            prefix,
            leader_key,
            leader: None,
            status_pos: None,
            optime_pos: None,
            sync: Vec::new(),
            members: BTreeMap::new(),
            overflow: false,
            settle: BTreeMap::new(),
            told: BTreeMap::new(),
        }
    }

    /// The scope's prefix as the DCS spells keys: with a leading `/` for etcd
    /// (`/service/lab/`), without for Consul (`service/lab/`).
    pub fn prefix(&self, leading_slash: bool) -> String {
        match leading_slash {
            true => format!("/{}", self.prefix),
            false => self.prefix.clone(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Forget the records (before a full read is put in).
    pub fn clear(&mut self) {
        self.leader = None;
        (self.status_pos, self.optime_pos) = (None, None);
        self.sync.clear();
        self.members.clear();
        self.overflow = false;
    }

    /// The key relative to the scope, for a key as the DCS spells it (with or
    /// without a leading `/`); `None` for a key outside the scope.
    fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.trim_start_matches('/')
            .strip_prefix(self.prefix.as_str())
    }

    /// A key's value as read or as a watch event reports it (`lease`: etcd v3's lease
    /// id, etcd v2's expiry as the caller encodes it, 0 for none). Keys the choice does
    /// not need are dropped.
    pub fn put(&mut self, key: &str, value: &[u8], lease: i64) {
        let Some(rel) = self.relative(key) else {
            return;
        };
        if rel == self.leader_key {
            let value = &value[..value.len().min(MAX_NAME)];
            self.leader = Some(String::from_utf8_lossy(value).into_owned());
        } else if rel == "status" {
            self.status_pos = status_position(value);
        } else if rel == "optime/leader" {
            self.optime_pos = number_text(value);
        } else if rel == "sync" {
            self.sync = sync_standbys(value);
        } else if let Some(name) = rel.strip_prefix("members/") {
            if name.is_empty() || name.contains('/') {
                return;
            }
            if !self.members.contains_key(name) && self.members.len() >= MAX_MEMBERS {
                self.overflow = true;
                return;
            }
            let record = parse_member(value);
            self.members.insert(name.to_string(), (record, lease));
        }
    }

    /// A key deleted (or expired); a `dir` deletion (etcd v2) takes its keys with it.
    pub fn delete(&mut self, key: &str, dir: bool) {
        // The scope's own directory, as etcd v2 names it (without the trailing `/`).
        if dir && key.trim_start_matches('/') == self.prefix.trim_end_matches('/') {
            self.clear();
            return;
        }
        let Some(rel) = self.relative(key) else {
            return;
        };
        let rel = rel.trim_end_matches('/');
        if dir {
            if rel.is_empty() {
                self.clear();
            } else if rel == "members" {
                self.members.clear();
            } else if rel == "optime" {
                self.optime_pos = None;
            }
            return;
        }
        if rel == self.leader_key {
            self.leader = None;
        } else if rel == "status" {
            self.status_pos = None;
        } else if rel == "optime/leader" {
            self.optime_pos = None;
        } else if rel == "sync" {
            self.sync.clear();
        } else if let Some(name) = rel.strip_prefix("members/") {
            self.members.remove(name);
        }
    }

    /// Read Patroni's `GET /cluster` reply into the scope: the leader (role `leader` or
    /// `standby_leader`), the synchronous standbys (`sync_standby`, `quorum_standby`),
    /// and every member with its ready-made `lag`. `Err` when the reply is not what
    /// Patroni sends (the observation is then unknown).
    pub fn load_cluster(&mut self, body: &[u8]) -> Result<(), String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("GET /cluster: invalid JSON: {e}"))?;
        let list = v
            .get("members")
            .and_then(Value::as_array)
            .ok_or("GET /cluster: no members list")?;
        self.clear();
        if list.len() > MAX_MEMBERS {
            self.overflow = true;
            return Ok(());
        }
        for m in list {
            let Some(name) = m.get("name").and_then(Value::as_str) else {
                continue;
            };
            let role = m.get("role").and_then(Value::as_str).unwrap_or("");
            match role {
                "leader" | "standby_leader" => self.leader = Some(name.to_string()),
                "sync_standby" | "quorum_standby" => self.sync.push(name.to_string()),
                _ => {}
            }
            let record = member_from(m, true).map(|mut member| {
                if REPLICA_ROLES.contains(&member.role.as_str()) {
                    member.role = "replica".into();
                }
                member
            });
            self.members.insert(name.to_string(), (record, 0));
        }
        Ok(())
    }

    /// Whether the scope exists at all (a leader key or a member record): what decides
    /// which of etcd's APIs holds it, whether or not the VIP has a holder.
    pub fn exists(&self) -> bool {
        self.leader.is_some() || !self.members.is_empty()
    }

    /// The lease of this node's own member record (etcd v3: its lease id; 0: none),
    /// the bound a replica VIP's grace is cut at.
    pub fn my_lease(&self) -> i64 {
        self.members.get(&self.me).map_or(0, |(_, lease)| *lease)
    }

    /// A comparable summary of the records, to tell whether two reads agree.
    pub fn digest(&self) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {}",
            self.leader, self.status_pos, self.optime_pos, self.sync, self.members, self.overflow
        )
    }

    /// The holder chosen at `now` from the records last put in: `Leader(name)` of the
    /// member that holds the VIP, `NoLeader` when nobody does.
    pub fn observe(&mut self, now: Instant) -> Observation {
        if self.overflow {
            return Observation::Unknown(format!(
                "more than {MAX_MEMBERS} member records under {}",
                self.prefix(true)
            ));
        }
        let leader_pos = self.status_pos.or(self.optime_pos);
        // Split borrows: the verdicts read the records while the settle and log state
        // change, with no copy of the names on a turn where nothing changes.
        let Scope {
            rules,
            leader,
            sync,
            members,
            settle,
            told,
            ..
        } = self;
        let mut best: Option<(u64, &str)> = None;
        for (name, (record, _)) in members.iter() {
            let verdict = eligible(rules, leader.as_deref(), name, record, leader_pos);
            // Being named in `sync` is Patroni's choice, not health: it filters the
            // candidates without restarting anyone's settle period.
            let candidate = rules.role != Role::Sync || sync.iter().any(|s| s == name);
            if settled(settle, rules.settle, name, verdict.is_ok(), now) && candidate {
                let w = weight(&rules.vip, name);
                if best.is_none_or(|(bw, bn)| (w, name.as_str()) > (bw, bn)) {
                    best = Some((w, name.as_str()));
                }
            }
            tell(told, name, &verdict);
        }
        // Members remembered but without a record now are not eligible.
        for (name, state) in settle.iter_mut() {
            if !members.contains_key(name) {
                *state = Settle::Ineligible;
                tell(told, name, &Err(Cow::Borrowed("no member record")));
            }
        }
        let holder = best.map(|(_, name)| name.to_string());
        self.forget_old();
        match (holder, self.rules.fallback, &self.leader) {
            (Some(name), _, _) => Observation::Leader(name),
            (None, Fallback::Primary, Some(leader)) => Observation::Leader(leader.clone()),
            (None, _, _) => Observation::NoLeader,
        }
    }

    /// Keep the memory bounded: settled members without a record need no memory (the
    /// next sight of them is a first one), and past [`MAX_REMEMBERED`] the oldest
    /// knowledge of vanished members goes.
    fn forget_old(&mut self) {
        let members = &self.members;
        self.settle
            .retain(|name, s| members.contains_key(name) || *s != Settle::Settled);
        if self.settle.len() > MAX_REMEMBERED + members.len() {
            self.settle.retain(|name, _| members.contains_key(name));
        }
        self.told
            .retain(|name, _| members.contains_key(name) || self.settle.contains_key(name));
    }
}

/// Whether `name` may hold the VIP now under `rules`, `leader` naming the leader; `Err`
/// says why not (borrowed where the reason is fixed, so a steady turn allocates nothing).
fn eligible<'r>(
    rules: &Rules,
    leader: Option<&str>,
    name: &str,
    record: &'r Record,
    leader_pos: Option<u64>,
) -> Result<(), Cow<'r, str>> {
    let m = record.as_ref().map_err(|e| Cow::Borrowed(e.as_str()))?;
    if leader == Some(name) {
        return Err("it holds the leader key".into());
    }
    if !REPLICA_ROLES.contains(&m.role.as_str()) {
        return Err(format!("role {:?}", m.role).into());
    }
    if !SERVING_STATES.contains(&m.state.as_str()) {
        return Err(format!("state {:?}", m.state).into());
    }
    if m.noloadbalance {
        return Err("tag noloadbalance".into());
    }
    if m.nofailover && rules.skip_nofailover {
        return Err("tag nofailover".into());
    }
    let Some(max) = rules.max_lag else {
        return Ok(());
    };
    let lag = match (m.lag, leader_pos) {
        (Lag::Bytes(lag), _) => lag,
        (Lag::Position(pos), Some(leader)) => leader.saturating_sub(pos),
        (Lag::Position(_), None) => return Err("the leader's position is unknown".into()),
        (Lag::Unknown, _) => return Err("its lag is unknown".into()),
    };
    if lag > max {
        return Err(format!("lag {lag} bytes over replica-max-lag {max}").into());
    }
    Ok(())
}

/// Apply `replica-settle` (`period`): whether a member eligible now (`ok`) counts as
/// such, its state in `settle` updated.
fn settled(
    settle: &mut BTreeMap<String, Settle>,
    period: Duration,
    name: &str,
    ok: bool,
    now: Instant,
) -> bool {
    let state = settle.get(name).copied();
    let (next, counts) = match (ok, state) {
        (false, _) => (Settle::Ineligible, false),
        (true, None | Some(Settle::Settled)) => (Settle::Settled, true),
        (true, Some(Settle::Ineligible)) if period.is_zero() => (Settle::Settled, true),
        (true, Some(Settle::Ineligible)) => (Settle::Since(now), false),
        (true, Some(Settle::Since(t))) if now.saturating_duration_since(t) >= period => {
            (Settle::Settled, true)
        }
        (true, Some(s @ Settle::Since(_))) => (s, false),
    };
    if state != Some(next) {
        settle.insert(name.to_string(), next);
    }
    counts
}

/// One log line when a member's eligibility changes (`told`: the reasons last logged).
fn tell(told: &mut BTreeMap<String, String>, name: &str, verdict: &Result<(), Cow<'_, str>>) {
    match verdict {
        Ok(()) => {
            if told.remove(name).is_some() {
                log::info!("member {name:?} is eligible");
            }
        }
        Err(why) => {
            if told.get(name).map(String::as_str) != Some(why.as_ref()) {
                log::info!("member {name:?} is not eligible: {why}");
                told.insert(name.to_string(), why.to_string());
            }
        }
    }
}

/// The rendezvous weight of `member` for `vip`: FNV-1a over the VIP, a zero byte and the
/// name, finished with splitmix64's mixer. Fixed forever: nodes running different vipd
/// versions must still agree.
pub fn weight(vip: &str, member: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in vip.bytes().chain([0]).chain(member.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A member record (`members/<name>`'s JSON value).
pub fn parse_member(value: &[u8]) -> Record {
    if value.len() > MAX_RECORD {
        return Err(format!("record of {} bytes is too large", value.len()));
    }
    let v: Value = serde_json::from_slice(value).map_err(|_| "record is not JSON".to_string())?;
    member_from(&v, false)
}

/// The fields of a member object: a DCS record (`xlog_location`) or a `/cluster` entry
/// (`lag`, `cluster`).
fn member_from(v: &Value, cluster: bool) -> Record {
    let obj = v.as_object().ok_or("record is not an object")?;
    let text = |field: &str| -> Result<String, String> {
        match obj.get(field) {
            Some(Value::String(s)) if s.len() <= 64 => Ok(s.clone()),
            Some(Value::String(_)) => Err(format!("{field} is too long")),
            Some(_) => Err(format!("{field} is not a string")),
            None => Err(format!("no {field}")),
        }
    };
    let (role, state) = (text("role")?, text("state")?);
    let tag = |name: &str| -> bool {
        obj.get("tags")
            .and_then(|t| t.get(name))
            .is_some_and(truthy)
    };
    let lag = if cluster {
        match obj.get("lag") {
            Some(Value::Number(n)) => match n.as_u64() {
                Some(lag) => Lag::Bytes(lag),
                None => Lag::Unknown,
            },
            _ => Lag::Unknown,
        }
    } else {
        match obj.get("xlog_location") {
            Some(Value::Number(n)) => match n.as_u64() {
                Some(pos) => Lag::Position(pos),
                None => return Err("xlog_location is not a position".into()),
            },
            None | Some(Value::Null) => Lag::Unknown,
            Some(_) => return Err("xlog_location is not a number".into()),
        }
    };
    Ok(Member {
        role,
        state,
        noloadbalance: tag("noloadbalance"),
        nofailover: tag("nofailover"),
        lag,
    })
}

/// Patroni's tags are YAML values: `true`, but also `"true"`, `1`, `yes`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "yes" | "on" | "1" | "y"
        ),
        _ => false,
    }
}

/// The leader's position from the `status` key (`{"optime": N, "slots": …}`).
fn status_position(value: &[u8]) -> Option<u64> {
    if value.len() > MAX_RECORD {
        return None;
    }
    let v: Value = serde_json::from_slice(value).ok()?;
    v.get("optime")?.as_u64()
}

/// A plain number (`optime/leader`).
fn number_text(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The synchronous standbys of the `sync` key (`{"leader": …, "sync_standby":
/// "a,b"}`; `null` or missing: none).
fn sync_standbys(value: &[u8]) -> Vec<String> {
    if value.len() > MAX_RECORD {
        return Vec::new();
    }
    let Ok(v) = serde_json::from_slice::<Value>(value) else {
        return Vec::new();
    };
    match v.get("sync_standby") {
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .take(MAX_MEMBERS)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// `replica-max-lag` in Patroni's `?lag=` style: bytes, or a number with a unit
/// (`kB`, `MB`, `GB`, `TB`, powers of 1024, as PostgreSQL reads them; `B` too).
pub fn parse_lag(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        "tb" | "t" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests;

//! The distributed consensus store (DCS) holding Patroni's leader key.

pub mod etcd;
pub mod resolve;

use std::fmt;
use std::time::Instant;

/// What one look at the leader key found. Only `Leader` and `NoLeader` are facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The key holds this value (Patroni: the leader's member name).
    Leader(String),
    /// The DCS answered that the key does not exist: nobody leads.
    NoLeader,
    /// No answer, or one that cannot be trusted; the text says why.
    Unknown(String),
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::Leader(name) => write!(f, "leader {name:?}"),
            Observation::NoLeader => f.write_str("no leader"),
            Observation::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// How waiting for a change of the leader key ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The key changed after the last observation; this is its new state.
    Changed(Observation),
    /// The watch broke (cancelled, compacted, stream error): read the key afresh now.
    Reread,
    /// Nothing happened until the deadline.
    Deadline,
}

/// A source of leader observations.
pub trait Dcs {
    /// Look at the leader key, returning no later than `deadline` (approximately: a
    /// request already on the wire may overrun it by its own timeout).
    fn observe(&mut self, deadline: Instant) -> Observation;

    /// Block until the key changes after the last [`Dcs::observe`], or until
    /// `deadline`. `None` when this DCS (or its configuration) cannot wait for changes:
    /// the caller then sleeps until the deadline itself.
    fn wait_for_change(&mut self, deadline: Instant) -> Option<Wait> {
        let _ = deadline;
        None
    }
}

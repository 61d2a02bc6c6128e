//! How a turn with a healthy watch checks what it remembers ([`next_look`]): the watch
//! is the fact; etcd is asked again once `check_interval` has passed since it last
//! answered, with a `GET /version` (alive and reachable) and at every
//! [`CHECKS_PER_READ`] checks with a serializable read of the key itself.
//!
//! Why a probe suffices between reads: etcd cancels a watch made with `hasleader` when
//! its member has lost the leader, and a live member with an open watch has sent every
//! change it applied. What a healthy stream leaves in doubt is whether the member and
//! the path to it still work (a SIGSTOPped etcd keeps its sockets open; a black-holed
//! path sends no FIN): the probe answers that, and `last_fact` lets `dcs-grace` count
//! from its answer. The periodic read guards against a watch that stopped delivering
//! although etcd answers; a read that disagrees is doubt, and the key is read afresh.
//! Cost to etcd 3.4.23, measured on loopback with one kept-alive connection: `GET
//! /version` 90 µs, a serializable range read 450–460 µs, a linearizable one 510–520 µs.

use std::time::{Duration, Instant};

use super::{Etcd, Failure, Range};
use crate::dcs::Observation;
use crate::dcs::scope::Scope;

/// With a healthy watch the key itself is read again at every tenth check: the watch
/// is the fact, this read a cheap cross-check of it (30 s at the defaults).
pub const CHECKS_PER_READ: u32 = 10;

/// What a turn does with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Report the state last read, updated by the watch: no request.
    Remembered,
    /// `GET /version` on the watch's endpoint: the member still answers.
    Probe,
    /// A serializable read on the watch's endpoint, to confirm the remembered state.
    Confirm,
    /// A linearizable read, from scratch.
    Read,
}

/// What a turn at `now` does with the key. With a `healthy` watch (created, no error
/// since the last successful read, which started at `last_read`): remember until
/// `check_interval` has passed since etcd last answered (`last_fact`: a read, a probe or
/// an event), then probe; confirm with a read every [`CHECKS_PER_READ`] checks. Without
/// one, read. A quarter `interval` of slack keeps a turn that comes a little early from
/// putting a check off by a whole turn.
pub fn next_look(
    healthy: bool,
    last_read: Option<Instant>,
    last_fact: Option<Instant>,
    now: Instant,
    check_interval: Duration,
    interval: Duration,
) -> Look {
    let (Some(read), Some(fact), true) = (last_read, last_fact, healthy) else {
        return Look::Read;
    };
    let soon = now + interval / 4;
    if soon >= read + check_interval * CHECKS_PER_READ {
        Look::Confirm
    } else if soon >= fact + check_interval {
        Look::Probe
    } else {
        Look::Remembered
    }
}

pub(super) fn observation(value: Option<String>) -> Observation {
    match value {
        Some(v) => Observation::Leader(v),
        None => Observation::NoLeader,
    }
}

impl Etcd {
    /// A successful read that started at `at`.
    pub(super) fn read_done(&mut self, at: Instant, range: Range) -> Observation {
        let obs = match &mut self.scope {
            Some(scope) => scope.observe(Instant::now()),
            None => observation(range.value),
        };
        self.lease_seen(range.lease);
        self.revision = Some(range.revision);
        self.known = Some(obs.clone());
        (self.last_read, self.last_fact) = (Some(at), Some(at));
        obs
    }

    /// The state last read, updated by the watch: `None` when nothing is known. A
    /// scope's holder is chosen again at `now`, since `replica-settle` makes the choice
    /// depend on time as well as on the records.
    pub(super) fn remembered(&mut self, now: Instant) -> Option<Observation> {
        self.known.as_ref()?;
        if let Some(scope) = &mut self.scope {
            self.known = Some(scope.observe(now));
        }
        self.known.clone()
    }

    /// The endpoint the watch is open on.
    fn watch_endpoint(&self) -> usize {
        self.stream
            .as_ref()
            .map_or(self.endpoints.current, |s| s.endpoint)
    }

    /// Confirm the remembered state with a serializable read on the watch's endpoint:
    /// `Ok` with the state when it agrees; `Err(Some(text))` when the read failed and
    /// the turn's time is up, `Err(None)` when a fresh read should follow now (after a
    /// failure, without the watch: it may be the next endpoint that answers).
    pub(super) fn confirm(
        &mut self,
        at: Instant,
        deadline: Instant,
    ) -> Result<Observation, Option<String>> {
        let i = self.watch_endpoint();
        // The read replaces a scope's records: what it held is compared afterwards.
        let before = self.scope.as_ref().map(Scope::digest);
        let outcome = self.range_on(i, deadline, true);
        match before {
            None => self.doubt_unless_agrees(i, at, deadline, outcome),
            Some(before) => {
                let after = self.scope.as_ref().map(Scope::digest);
                let agrees = self.known.is_some() && after.as_ref() == Some(&before);
                self.checked(i, at, deadline, outcome, agrees)
            }
        }
    }

    /// Ask the watch's endpoint for its version, the cheapest request etcd answers (no
    /// gRPC round inside it): an answer proves that the member is alive and reachable,
    /// which is all a healthy watch leaves in doubt, since etcd cancels it when the
    /// member loses its leader. Failures as for [`Etcd::confirm`].
    pub(super) fn probe(
        &mut self,
        at: Instant,
        deadline: Instant,
    ) -> Result<Observation, Option<String>> {
        let i = self.watch_endpoint();
        let outcome = match self.endpoints.get(i, &["/version"], None, deadline, None) {
            Ok(reply) if reply.status == 200 => Ok(()),
            Ok(reply) => Err(Failure::Transport(format!(
                "GET /version: HTTP {}",
                reply.status
            ))),
            Err(e) => Err(Failure::Transport(e.to_string())),
        };
        match outcome.map(|()| self.remembered(at)) {
            Ok(Some(known)) => {
                self.last_fact = Some(at);
                Ok(known)
            }
            Ok(None) => Err(None),
            Err(e) => Err(self.doubted(i, e, deadline)),
        }
    }

    /// A check on endpoint `i` failed: forget the state and the watch, and say why when
    /// the turn's time is up (otherwise a fresh read follows at once).
    fn doubted(&mut self, i: usize, e: Failure, deadline: Instant) -> Option<String> {
        let text = format!("{}: {e}", self.endpoints.list[i].url);
        log::debug!("check of the watched state: {text}");
        self.endpoints.failed(i, e, &mut Vec::new());
        (self.revision, self.known, self.stream) = (None, None, None);
        (Instant::now() >= deadline).then_some(text)
    }

    pub(super) fn doubt_unless_agrees(
        &mut self,
        i: usize,
        at: Instant,
        deadline: Instant,
        outcome: Result<Range, Failure>,
    ) -> Result<Observation, Option<String>> {
        let agrees = match &outcome {
            Ok(range) => self.known.as_ref() == Some(&observation(range.value.clone())),
            Err(_) => false,
        };
        self.checked(i, at, deadline, outcome, agrees)
    }

    /// The outcome of a confirming read on endpoint `i`, which `agrees` or not with
    /// the state remembered before it.
    fn checked(
        &mut self,
        i: usize,
        at: Instant,
        deadline: Instant,
        outcome: Result<Range, Failure>,
        agrees: bool,
    ) -> Result<Observation, Option<String>> {
        let url = &self.endpoints.list[i].url;
        match outcome {
            Ok(range) if agrees => Ok(self.read_done(at, range)),
            // Most likely the event is on its way; the fresh read's revision makes the
            // stream skip it.
            Ok(_) => {
                log::debug!("{url}: the key changed before its watch event; reading it afresh");
                self.known = None;
                Err(None)
            }
            Err(e) => Err(self.doubted(i, e, deadline)),
        }
    }
}

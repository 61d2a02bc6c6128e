//! Fencing beyond the DCS: this node's Patroni ([`patroni`]) and write-ready gating.
//!
//! The leader key moves before the new primary can write: Patroni takes the key
//! first and promotes PostgreSQL afterwards (seconds, sometimes much longer). A VIP
//! added at the key's change sends clients to a database still in recovery. With
//! `primary-check`, when the key **newly** names this node the VIP waits until Patroni
//! says `role` primary with `state` running, asked at once and then every
//! [`GATE_POLL`]; the key moving away ends the wait. What the gate may never do:
//! - delay a removal (it only holds back an add);
//! - turn a REST API outage into a database outage: no HTTP answer at all adds the
//!   VIP as without gating, with a warning at most once a minute;
//! - hold back a re-add while this node already leads (a hand deletion, a link
//!   flap): the gate stays open until a fact says another node leads, or none.

pub mod patroni;

use std::time::{Duration, Instant};

use crate::decide::PatroniSays;

/// How often Patroni is asked while the VIP waits for the primary.
pub const GATE_POLL: Duration = Duration::from_millis(100);
/// The longest a single question to Patroni may take.
pub const ASK_TIMEOUT: Duration = Duration::from_millis(1000);
/// At most one "no answer" warning this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The gate's state for the current leadership of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// The next leadership is gated (also at start).
    #[default]
    Closed,
    /// The key names this node; Patroni has not said primary since `since`.
    Waiting { since: Instant },
    /// This leadership passed: add and re-add freely.
    Open,
}

/// Write-ready gating (see the module).
#[derive(Debug, Default)]
pub struct Gate {
    state: State,
    warned: Option<Instant>,
}

/// What the gate says about adding the VIP now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Patroni said primary; `waited`: how long the VIP waited for it.
    Pass { waited: Duration },
    /// Not yet; `first`: the wait starts now (log it once).
    Wait { first: bool },
    /// Patroni gave no answer: add anyway; `warn`: say so (at most once a minute).
    PassUnanswered { warn: bool },
}

impl Gate {
    /// Whether this leadership already passed (nothing to ask).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// A fact that another node leads, or none: the next leadership is gated.
    pub fn close(&mut self) {
        self.state = State::Closed;
    }

    /// Patroni's answer at `now`, while the key names this node and the gate is not
    /// open.
    pub fn answer(&mut self, says: &PatroniSays, now: Instant) -> Step {
        let since = match self.state {
            State::Waiting { since } => Some(since),
            _ => None,
        };
        match says {
            PatroniSays::Serves => {
                self.state = State::Open;
                let waited = since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
                Step::Pass { waited }
            }
            PatroniSays::NotServing(_) => {
                self.state = State::Waiting {
                    since: since.unwrap_or(now),
                };
                Step::Wait {
                    first: since.is_none(),
                }
            }
            PatroniSays::NoAnswer => {
                self.state = State::Open;
                let warn = self
                    .warned
                    .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
                if warn {
                    self.warned = Some(now);
                }
                Step::PassUnanswered { warn }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_through_a_leadership() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let replica = PatroniSays::NotServing("role replica, state running".into());
        let mut gate = Gate::default();
        assert!(!gate.is_open(), "closed at start");
        assert_eq!(gate.answer(&replica, ms(0)), Step::Wait { first: true });
        assert_eq!(gate.answer(&replica, ms(100)), Step::Wait { first: false });
        let waited = Duration::from_millis(800);
        assert_eq!(
            gate.answer(&PatroniSays::Serves, ms(800)),
            Step::Pass { waited }
        );
        assert!(gate.is_open(), "open for the rest of this leadership");
        // Another node leads: the next leadership waits again, counted afresh.
        gate.close();
        assert!(!gate.is_open());
        assert_eq!(
            gate.answer(&PatroniSays::Serves, ms(900)),
            Step::Pass {
                waited: Duration::ZERO
            }
        );
    }

    #[test]
    fn no_answer_passes_with_a_warning_at_most_once_a_minute() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut gate = Gate::default();
        let no = PatroniSays::NoAnswer;
        assert_eq!(gate.answer(&no, s(0)), Step::PassUnanswered { warn: true });
        assert!(gate.is_open());
        gate.close();
        assert_eq!(
            gate.answer(&no, s(30)),
            Step::PassUnanswered { warn: false }
        );
        gate.close();
        assert_eq!(gate.answer(&no, s(60)), Step::PassUnanswered { warn: true });
    }
}

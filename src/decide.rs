//! The desired state of the VIP: a pure function of what the DCS said, when it last
//! said something, and the DCS-loss policy. No I/O here.

use std::time::Duration;

use crate::dcs::Observation;

/// How long the VIP is kept while the DCS cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    /// Keep it this long after the last fact (`Duration::ZERO`: drop at once).
    After(Duration),
    /// Keep it until the DCS says otherwise (Patroni `failsafe_mode`).
    Never,
}

/// The last fact the DCS told us: whether this node led, and how long ago that was
/// last confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastFact {
    pub leading: bool,
    pub age: Duration,
}

/// The wanted state of the VIP on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    Present,
    Absent,
    /// Leave the kernel as it is (no fact yet, grace not over).
    Unchanged,
}

/// Why the decision was taken, for the one log line per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ThisNodeLeads,
    OtherNodeLeads,
    NoLeader,
    /// DCS unknown; within the grace period after this node last led.
    GraceHolding,
    /// DCS unknown for longer than the grace period; the VIP goes.
    GraceExpired,
    /// DCS unknown; this node did not lead at the last fact.
    UnknownNotLeading,
    /// DCS unknown and never known since start; within grace from start.
    UnknownNoHistory,
}

/// Decide the wanted state.
///
/// * `last`: the last fact before this observation, or `None` when the DCS has not
///   answered since start. For an observation with no history, `since_start` stands
///   in for the fact's age, so a daemon restarted during a DCS outage neither drops
///   a VIP at once nor keeps it forever.
pub fn decide(
    obs: &Observation,
    trigger_value: &str,
    last: Option<LastFact>,
    since_start: Duration,
    grace: Grace,
) -> (Desired, Reason) {
    let within = |age: Duration| match grace {
        Grace::Never => true,
        Grace::After(g) => age < g,
    };
    match obs {
        Observation::Leader(name) if name == trigger_value => {
            (Desired::Present, Reason::ThisNodeLeads)
        }
        Observation::Leader(_) => (Desired::Absent, Reason::OtherNodeLeads),
        Observation::NoLeader => (Desired::Absent, Reason::NoLeader),
        Observation::Unknown(_) => match last {
            Some(LastFact { leading: true, age }) if within(age) => {
                (Desired::Present, Reason::GraceHolding)
            }
            Some(LastFact { leading: true, .. }) => (Desired::Absent, Reason::GraceExpired),
            Some(LastFact { leading: false, .. }) => (Desired::Absent, Reason::UnknownNotLeading),
            None if within(since_start) => (Desired::Unchanged, Reason::UnknownNoHistory),
            None => (Desired::Absent, Reason::GraceExpired),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "pg1";
    const S: Duration = Duration::from_secs(1);

    fn unknown() -> Observation {
        Observation::Unknown("connection refused".into())
    }
    fn fact(leading: bool, secs: u64) -> Option<LastFact> {
        Some(LastFact {
            leading,
            age: Duration::from_secs(secs),
        })
    }
    fn grace10() -> Grace {
        Grace::After(10 * S)
    }

    #[test]
    fn each_observation_and_history() {
        use Desired::*;
        use Reason::*;
        let leader = Observation::Leader(ME.into());
        let no_leader = Observation::NoLeader;
        let (u, year) = (unknown(), 86_400 * 365);
        let (g10, never, zero) = (grace10(), Grace::Never, Grace::After(Duration::ZERO));
        // (observation, last fact, time since start, grace, decision)
        let cases = [
            (&leader, None, S, g10, (Present, ThisNodeLeads)),
            // No leader: released at once, even with a grace that never ends.
            (&no_leader, fact(true, 0), S, g10, (Absent, NoLeader)),
            (&no_leader, fact(true, 0), S, never, (Absent, NoLeader)),
            (&no_leader, fact(true, 0), S, zero, (Absent, NoLeader)),
            // Unknown after leading: kept within grace, released after it.
            (&u, fact(true, 9), S, g10, (Present, GraceHolding)),
            (&u, fact(true, 10), S, g10, (Absent, GraceExpired)),
            (&u, fact(true, 0), S, zero, (Absent, GraceExpired)),
            (&u, fact(true, year), S, never, (Present, GraceHolding)),
            // Unknown when not leading: stays absent.
            (&u, fact(false, 0), S, g10, (Absent, UnknownNotLeading)),
            (&u, fact(false, 0), S, never, (Absent, UnknownNotLeading)),
            // Unknown since start: the kernel is left alone during grace from start.
            (&u, None, 3 * S, g10, (Unchanged, UnknownNoHistory)),
            (&u, None, 3 * S, never, (Unchanged, UnknownNoHistory)),
            (&u, None, 10 * S, g10, (Absent, GraceExpired)),
        ];
        for (obs, last, since_start, grace, want) in cases {
            let got = decide(obs, ME, last, since_start, grace);
            assert_eq!(got, want, "{obs:?} {last:?} {since_start:?} {grace:?}");
        }
    }

    #[test]
    fn leader_match_is_exact() {
        for other in ["pg10", "pg", "PG1", " pg1", "pg1\n", ""] {
            let obs = Observation::Leader(other.into());
            let d = decide(&obs, ME, fact(true, 0), S, grace10());
            assert_eq!(d, (Desired::Absent, Reason::OtherNodeLeads), "{other:?}");
        }
    }

    #[test]
    fn flapping_follows_each_fact() {
        // A key flapping between this node and another: each observation is decided on
        // its own; the last one wins.
        let seq = ["pg1", "pg2", "pg1", "pg2", "pg1"];
        let mut last = None;
        let mut out = Vec::new();
        for name in seq {
            let (d, _) = decide(&Observation::Leader(name.into()), ME, last, S, grace10());
            last = Some(LastFact {
                leading: d == Desired::Present,
                age: Duration::ZERO,
            });
            out.push(d);
        }
        use Desired::*;
        assert_eq!(out, [Present, Absent, Present, Absent, Present]);
        // An error right after the flap ends on "leading" holds the VIP.
        let d = decide(&unknown(), ME, last, S, grace10());
        assert_eq!(d.0, Present);
    }
}

//! The desired state of the VIP: a pure function of what the DCS said, when it last
//! said something, the DCS-loss policy, and — while the DCS is silent — this node's
//! Patroni and the leader key's lease. No I/O here.
//!
//! # While the DCS cannot be read
//!
//! A known DCS decides alone: the VIP is here exactly when the key names this node.
//! While it is unknown, the first of these rules that applies decides:
//!
//! | Patroni (`GET /patroni`) | `dcs-grace` | lease of the key | the VIP |
//! | --- | --- | --- | --- |
//! | `role` primary (`master`, `primary`, `standby_leader`), `state` `running` | any | any | kept (added) |
//! | any other role or state | any | any | released at once |
//! | no answer, or no `patroni-url` | `0` | any | released at once |
//! | no answer, or no `patroni-url` | finite | known | kept until the grace or the lease ends, whichever is first |
//! | no answer, or no `patroni-url` | finite | unknown | kept until the grace ends |
//! | no answer, or no `patroni-url` | `never` | any | kept |
//!
//! The grace rows apply only when this node led at the last fact; a node that did not
//! lead stays without the VIP, and one with no fact since start leaves the kernel
//! alone until the grace from start ends.
//!
//! A `replica` or `sync` VIP reads the same table with its own question: the
//! observation names the member that holds it (see [`crate::dcs::scope`]), Patroni's
//! "primary" rows read "a running replica" (so a node promoted or stopped during the
//! outage lets it go) only for the node that held it at the last fact (every replica
//! serves; a node that did not hold it stays without, and one with no fact since start
//! follows the grace rows), and the lease is that of this node's own member record.
//!
//! Why: Patroni itself is the authority on whether this node's PostgreSQL accepts
//! writes, and it answers while the DCS does not (its `failsafe_mode` keeps a primary
//! running without the DCS); a Patroni that says anything but a running primary means
//! that clients through the VIP would reach a database that cannot write, or one about
//! to be fenced. Without Patroni, the lease is the latest moment at which the leader
//! key could still exist as far as this node knows (renewals only push it later), so a
//! VIP kept past it could face a new leader elected elsewhere. `never` is the
//! operator's explicit choice for `failsafe_mode` without `patroni-url` and is not
//! cut.

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
    /// DCS unknown; this node's Patroni says it serves this VIP's role (a writable
    /// primary; for a replica VIP, a running replica).
    PatroniServes,
    /// DCS unknown; this node's Patroni says it does not.
    PatroniNotServing,
    /// DCS unknown, within grace, but the leader key's lease may have run out.
    LeaseExpired,
    /// The key newly names this node; the VIP waits for Patroni to say primary.
    AwaitingPrimary,
}

/// Whether a decision lets this node move a hosted failover IP's route here: only the
/// DCS's own word that this node leads. A VIP kept while the DCS is silent (a grace,
/// Patroni's word) stays where it is routed; the API is not called, so a node cut off
/// from the DCS never pulls the route back from a new leader.
pub fn may_move(desired: Desired, reason: Reason) -> bool {
    desired == Desired::Present && reason == Reason::ThisNodeLeads
}

/// What this node's Patroni said while the DCS was silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatroniSays {
    /// It serves this VIP's role: a primary VIP's `role` master, primary or
    /// standby_leader with `state` running; a replica VIP's `role` replica with `state`
    /// running or streaming.
    Serves,
    /// Anything else it answered (role and state, or why the body is unreadable).
    NotServing(String),
    /// No HTTP answer at all (refused, timed out), or no `patroni-url`.
    NoAnswer,
}

/// What the fencing rules know beyond the DCS: Patroni's answer and how long the
/// leader key's lease may still last (`None`: not known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub patroni: PatroniSays,
    pub lease_left: Option<Duration>,
    /// Patroni's [`PatroniSays::Serves`] only keeps a VIP this node held at the last
    /// fact (a replica VIP: every replica serves, but one holds it).
    pub keep_only: bool,
}

impl Fence {
    /// Nothing beyond the DCS.
    pub const NONE: Fence = Fence {
        patroni: PatroniSays::NoAnswer,
        lease_left: None,
        keep_only: false,
    };
}

/// Decide the wanted state (the rules and their reasons: the module's table).
///
/// * `last`: the last fact before this observation, or `None` when the DCS has not
///   answered since start. For an observation with no history, `since_start` stands
///   in for the fact's age, so a daemon restarted during a DCS outage neither drops
///   a VIP at once nor keeps it forever.
/// * `fence`: consulted only while the DCS is unknown.
pub fn decide(
    obs: &Observation,
    trigger_value: &str,
    last: Option<LastFact>,
    since_start: Duration,
    grace: Grace,
    fence: &Fence,
) -> (Desired, Reason) {
    let within = |age: Duration| match grace {
        Grace::Never => true,
        Grace::After(g) => age < g,
    };
    match obs {
        Observation::Leader(name) if name == trigger_value => {
            return (Desired::Present, Reason::ThisNodeLeads);
        }
        Observation::Leader(_) => return (Desired::Absent, Reason::OtherNodeLeads),
        Observation::NoLeader => return (Desired::Absent, Reason::NoLeader),
        Observation::Unknown(_) => {}
    }
    match fence.patroni {
        // Every replica serves reads; only the one that held the VIP keeps it, and a
        // node with no fact since start leaves it to the grace rows below.
        PatroniSays::Serves if fence.keep_only => match last {
            Some(LastFact { leading: true, .. }) => {
                return (Desired::Present, Reason::PatroniServes);
            }
            Some(LastFact { leading: false, .. }) => {
                return (Desired::Absent, Reason::UnknownNotLeading);
            }
            None => {}
        },
        PatroniSays::Serves => return (Desired::Present, Reason::PatroniServes),
        PatroniSays::NotServing(_) => return (Desired::Absent, Reason::PatroniNotServing),
        PatroniSays::NoAnswer => {}
    }
    match last {
        Some(LastFact { leading: true, age }) if within(age) => {
            let lease_over = fence.lease_left == Some(Duration::ZERO);
            match (grace, lease_over) {
                (Grace::After(_), true) => (Desired::Absent, Reason::LeaseExpired),
                _ => (Desired::Present, Reason::GraceHolding),
            }
        }
        Some(LastFact { leading: true, .. }) => (Desired::Absent, Reason::GraceExpired),
        Some(LastFact { leading: false, .. }) => (Desired::Absent, Reason::UnknownNotLeading),
        None if within(since_start) => (Desired::Unchanged, Reason::UnknownNoHistory),
        None => (Desired::Absent, Reason::GraceExpired),
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
            let got = decide(obs, ME, last, since_start, grace, &Fence::NONE);
            assert_eq!(got, want, "{obs:?} {last:?} {since_start:?} {grace:?}");
        }
    }

    #[test]
    fn leader_match_is_exact() {
        for other in ["pg10", "pg", "PG1", " pg1", "pg1\n", ""] {
            let obs = Observation::Leader(other.into());
            let d = decide(&obs, ME, fact(true, 0), S, grace10(), &Fence::NONE);
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
            let obs = Observation::Leader(name.into());
            let (d, _) = decide(&obs, ME, last, S, grace10(), &Fence::NONE);
            last = Some(LastFact {
                leading: d == Desired::Present,
                age: Duration::ZERO,
            });
            out.push(d);
        }
        use Desired::*;
        assert_eq!(out, [Present, Absent, Present, Absent, Present]);
        // An error right after the flap ends on "leading" holds the VIP.
        let d = decide(&unknown(), ME, last, S, grace10(), &Fence::NONE);
        assert_eq!(d.0, Present);
    }

    /// Every cell of the module's table: Patroni × grace × lease, after this node led
    /// (4 s ago, within the finite grace of 10 s).
    #[test]
    fn the_fencing_table_cell_by_cell() {
        use Desired::*;
        use Reason::*;
        let not = PatroniSays::NotServing("role replica, state running".into());
        let patroni = [PatroniSays::Serves, not, PatroniSays::NoAnswer];
        let graces = [Grace::After(Duration::ZERO), grace10(), Grace::Never];
        // Known and still running, known and run out, unknown.
        let leases = [Some(3 * S), Some(Duration::ZERO), None];
        for p in &patroni {
            for &grace in &graces {
                for lease_left in leases {
                    let fence = Fence {
                        patroni: p.clone(),
                        lease_left,
                        keep_only: false,
                    };
                    let got = decide(&unknown(), ME, fact(true, 4), S, grace, &fence);
                    let want = match (p, grace, lease_left) {
                        (PatroniSays::Serves, ..) => (Present, PatroniServes),
                        (PatroniSays::NotServing(_), ..) => (Absent, PatroniNotServing),
                        (_, Grace::After(Duration::ZERO), _) => (Absent, GraceExpired),
                        (_, Grace::Never, _) => (Present, GraceHolding),
                        (_, _, Some(Duration::ZERO)) => (Absent, LeaseExpired),
                        _ => (Present, GraceHolding),
                    };
                    assert_eq!(got, want, "{p:?} {grace:?} {lease_left:?}");
                }
            }
        }
        // Past the grace, a running lease does not extend it.
        let fence = Fence {
            patroni: PatroniSays::NoAnswer,
            lease_left: Some(60 * S),
            keep_only: false,
        };
        let got = decide(&unknown(), ME, fact(true, 10), S, grace10(), &fence);
        assert_eq!(got, (Absent, GraceExpired));
        // Patroni decides even without history or after another node led; a known DCS
        // is never overruled by it.
        let primary = Fence {
            patroni: PatroniSays::Serves,
            lease_left: None,
            keep_only: false,
        };
        for last in [None, fact(false, 0)] {
            let got = decide(&unknown(), ME, last, S, grace10(), &primary);
            assert_eq!(got, (Present, PatroniServes), "{last:?}");
        }
        let other = Observation::Leader("pg2".into());
        let got = decide(&other, ME, fact(true, 0), S, grace10(), &primary);
        assert_eq!(got, (Absent, OtherNodeLeads));
    }

    /// A replica VIP: Patroni's "running replica" keeps it only on the node that held it
    /// at the last fact; with no fact since start the grace rows decide.
    #[test]
    fn a_replica_vip_is_kept_only_by_its_holder() {
        use Desired::*;
        use Reason::*;
        let fence = Fence {
            patroni: PatroniSays::Serves,
            lease_left: None,
            keep_only: true,
        };
        let cases = [
            (fact(true, 60), (Present, PatroniServes)),
            (fact(false, 0), (Absent, UnknownNotLeading)),
            (None, (Unchanged, UnknownNoHistory)),
        ];
        for (last, want) in cases {
            assert_eq!(
                decide(&unknown(), ME, last, S, grace10(), &fence),
                want,
                "{last:?}"
            );
        }
        let not = Fence {
            patroni: PatroniSays::NotServing("role master, state running".into()),
            ..fence
        };
        let got = decide(&unknown(), ME, fact(true, 0), S, grace10(), &not);
        assert_eq!(got, (Absent, PatroniNotServing));
    }
}

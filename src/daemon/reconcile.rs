//! Reconciling the kernel with the decision: read what the interface holds, plan the
//! change (a pure function), then apply the plan — or, in a dry run, only report it.

use std::time::Instant;

use super::{Daemon, Report};
use crate::dcs::{Dcs, Observation};
use crate::decide::{Desired, Reason};
use crate::net::{AddrBackend, LinkInfo, NetError};

/// What reconciling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    Added,
    /// Removed this many copies (prefix lengths) of the VIP.
    Removed(usize),
    /// The link came back up with the VIP on it: announcing again.
    Reannounced,
    WouldAdd,
    WouldRemove,
    InterfaceMissing,
    Failed(NetError),
}

/// What the kernel holds: the interface, and the prefix lengths the VIP has on it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Actual {
    link: LinkInfo,
    prefixes: Vec<u8>,
}

/// What to do to make the kernel match the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// The interface does not exist: wait for it.
    WaitForInterface,
    /// The kernel already matches.
    Keep,
    /// The kernel already matches, and no VIP is wanted here: stop announcing.
    StopAnnouncing,
    Add(LinkInfo),
    /// The link came back up with the VIP on it: announce it again.
    Reannounce(LinkInfo),
    /// Remove every copy (these prefix lengths) of the VIP from the interface.
    Remove {
        ifindex: u32,
        prefixes: Vec<u8>,
    },
}

/// Plan the change from the decision, the kernel's state (`None`: no such interface)
/// and the link as it was at the previous turn.
fn plan(desired: Desired, actual: Option<&Actual>, seen: Option<LinkInfo>) -> Plan {
    let Some(Actual { link, prefixes }) = actual else {
        return Plan::WaitForInterface;
    };
    let present = !prefixes.is_empty();
    // Up now, and down at the last turn or flapped since (the carrier count moved).
    let came_up =
        link.up && seen.is_some_and(|s| !s.up || s.carrier_changes != link.carrier_changes);
    match desired {
        Desired::Present if !present => Plan::Add(*link),
        Desired::Present if came_up => Plan::Reannounce(*link),
        Desired::Absent if present => Plan::Remove {
            ifindex: link.index,
            prefixes: prefixes.clone(),
        },
        Desired::Absent => Plan::StopAnnouncing,
        _ => Plan::Keep,
    }
}

impl Plan {
    /// What a dry run reports for this plan (nothing is changed).
    fn preview(&self) -> Action {
        match self {
            Plan::WaitForInterface => Action::InterfaceMissing,
            Plan::Add(_) => Action::WouldAdd,
            Plan::Remove { .. } => Action::WouldRemove,
            Plan::Keep | Plan::StopAnnouncing | Plan::Reannounce(_) => Action::None,
        }
    }
}

impl<D: Dcs, B: AddrBackend> Daemon<D, B> {
    /// Reconcile the kernel with `desired`; the first announcement after an add is sent
    /// here, before anything is logged.
    pub(super) fn reconcile(
        &mut self,
        observation: Observation,
        (desired, reason): (Desired, Reason),
        now: Instant,
        dry_run: bool,
    ) -> Report {
        let (present_before, action) = match self.read_kernel() {
            Err(e) => (None, Action::Failed(e)),
            Ok(actual) => {
                let present = actual.as_ref().map(|a| !a.prefixes.is_empty());
                let plan = plan(desired, actual.as_ref(), self.link_seen);
                if dry_run {
                    (present, plan.preview())
                } else {
                    self.link_seen = actual.map(|a| a.link);
                    (present, self.apply(plan, now))
                }
            }
        };
        Report {
            observation,
            desired,
            reason,
            present_before,
            action,
        }
    }

    /// The interface and the VIP's prefix lengths on it (`None`: no such interface).
    fn read_kernel(&mut self) -> Result<Option<Actual>, NetError> {
        let Some(link) = self.net.link(&self.cfg.interface)? else {
            return Ok(None);
        };
        let prefixes = self.net.vip_prefixes(link.index, self.cfg.vip.addr)?;
        Ok(Some(Actual { link, prefixes }))
    }

    /// Carry out the plan: change the kernel, start or stop the announcements.
    fn apply(&mut self, plan: Plan, now: Instant) -> Action {
        match plan {
            Plan::WaitForInterface => Action::InterfaceMissing,
            Plan::Keep => Action::None,
            Plan::StopAnnouncing => {
                self.pacing.stop();
                Action::None
            }
            Plan::Add(link) => match self.net.add(link.index, self.cfg.vip) {
                Ok(()) => {
                    self.start_announcing(now, &link);
                    Action::Added
                }
                Err(e) => Action::Failed(e),
            },
            Plan::Reannounce(link) => {
                self.start_announcing(now, &link);
                Action::Reannounced
            }
            Plan::Remove { ifindex, prefixes } => {
                self.pacing.stop();
                match self.remove(ifindex, &prefixes) {
                    Ok(n) => Action::Removed(n),
                    Err(e) => Action::Failed(e),
                }
            }
        }
    }

    fn remove(&mut self, ifindex: u32, prefixes: &[u8]) -> Result<usize, NetError> {
        for &len in prefixes {
            self.net.del(ifindex, self.cfg.vip.addr, len)?;
        }
        Ok(prefixes.len())
    }

    /// Remove the VIP from the interface, wherever it is: how many copies went.
    pub(super) fn release(&mut self) -> Result<usize, NetError> {
        match self.read_kernel()? {
            Some(Actual { link, prefixes }) => self.remove(link.index, &prefixes),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::tests::link;

    #[test]
    fn the_plan_for_each_decision_and_kernel_state() {
        use Desired::{Absent, Present, Unchanged};
        let (up, down, flapped) = (link(true, 1), link(false, 1), link(true, 0));
        let on = |link, prefixes: &[u8]| {
            Some(Actual {
                link,
                prefixes: prefixes.to_vec(),
            })
        };
        let remove = Plan::Remove {
            ifindex: 7,
            prefixes: vec![24, 32],
        };
        // (wanted, the kernel now, the link at the last turn, the plan)
        let cases = [
            (Present, None, Some(up), Plan::WaitForInterface),
            (Absent, None, Some(up), Plan::WaitForInterface),
            (Unchanged, None, None, Plan::WaitForInterface),
            (Present, on(up, &[]), None, Plan::Add(up)),
            // Added even on a link that is down: announcements wait for it to be up.
            (Present, on(down, &[]), None, Plan::Add(down)),
            (Present, on(up, &[24]), None, Plan::Keep),
            (Present, on(up, &[24]), Some(up), Plan::Keep),
            // Up again since the last turn, or flapped (the carrier count moved).
            (Present, on(up, &[24]), Some(down), Plan::Reannounce(up)),
            (Present, on(up, &[24]), Some(flapped), Plan::Reannounce(up)),
            // Still down: nothing to announce on.
            (Present, on(down, &[24]), Some(link(false, 0)), Plan::Keep),
            (Absent, on(up, &[24, 32]), None, remove),
            (Absent, on(up, &[]), None, Plan::StopAnnouncing),
            (Unchanged, on(up, &[]), Some(down), Plan::Keep),
            (Unchanged, on(up, &[24]), Some(down), Plan::Keep),
        ];
        for (desired, actual, seen, want) in cases {
            let got = plan(desired, actual.as_ref(), seen);
            assert_eq!(got, want, "{desired:?} {actual:?} {seen:?}");
        }
    }

    #[test]
    fn a_dry_run_reports_only_changes_to_the_addresses() {
        let remove = Plan::Remove {
            ifindex: 7,
            prefixes: vec![24],
        };
        let cases = [
            (Plan::WaitForInterface, Action::InterfaceMissing),
            (Plan::Keep, Action::None),
            (Plan::StopAnnouncing, Action::None),
            (Plan::Add(link(true, 1)), Action::WouldAdd),
            (Plan::Reannounce(link(true, 1)), Action::None),
            (remove, Action::WouldRemove),
        ];
        for (plan, action) in cases {
            assert_eq!(plan.preview(), action, "{plan:?}");
        }
    }
}

//! Reconciling the kernel with the decision: read what the interface holds, plan the
//! change (a pure function), then apply the plan — or, in a dry run, only report it.
//!
//! The VIP is added with a lifetime (`vip-lifetime`) and refreshed every third of it
//! while this node should hold it, so the kernel itself removes it once vipd stops
//! refreshing: killed, stopped, hung, or not reaching the kernel. What may never
//! happen is a refresh when the decision is not [`Desired::Present`]: a node that
//! lost the DCS's word (and so holds the VIP only as [`Desired::Unchanged`], left
//! from before) lets it run out. Every copy of the VIP is refreshed, at its own
//! prefix length, so one left at another prefix length (by hand, by an older
//! configuration) cannot outlive this node's right to it either. The first turn
//! that wants the VIP refreshes it whatever it had (an address from `--once`, a
//! restart or by hand gets the lifetime; with `forever` one with a lifetime becomes
//! permanent), and so does the first after a reload that changed the lifetime.

use std::time::{Duration, Instant};

use super::{Daemon, Report};
use crate::dcs::{Dcs, Observation};
use crate::decide::{Desired, Reason};
use crate::net::{AddrBackend, LinkInfo, NetError, Vip};

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
    /// Give every copy of the VIP (these prefix lengths) its lifetime again, and
    /// announce it again if the link came back up.
    Refresh {
        link: LinkInfo,
        prefixes: Vec<u8>,
        reannounce: bool,
    },
    /// Remove every copy (these prefix lengths) of the VIP from the interface.
    Remove {
        ifindex: u32,
        prefixes: Vec<u8>,
    },
}

/// Plan the change from the decision, the kernel's state (`None`: no such interface),
/// the link as it was at the previous turn and whether the VIP's lifetime is due a
/// refresh.
fn plan(
    desired: Desired,
    actual: Option<&Actual>,
    seen: Option<LinkInfo>,
    refresh_due: bool,
) -> Plan {
    let Some(Actual { link, prefixes }) = actual else {
        return Plan::WaitForInterface;
    };
    let present = !prefixes.is_empty();
    // Up now, and down at the last turn or flapped since (the carrier count moved).
    let came_up =
        link.up && seen.is_some_and(|s| !s.up || s.carrier_changes != link.carrier_changes);
    match desired {
        Desired::Present if !present => Plan::Add(*link),
        Desired::Present if refresh_due => Plan::Refresh {
            link: *link,
            prefixes: prefixes.clone(),
            reannounce: came_up,
        },
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
            Plan::Keep | Plan::StopAnnouncing | Plan::Reannounce(_) | Plan::Refresh { .. } => {
                Action::None
            }
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
        if let Some(h) = self.hosted.as_mut().filter(|_| !dry_run) {
            h.lead(crate::decide::may_move(desired, reason), now);
        }
        if !self.cfg.local_address() {
            // A routed Robot failover IP alone: nothing on this server's interfaces.
            return Report {
                observation,
                desired,
                reason,
                present_before: None,
                action: Action::None,
            };
        }
        let (present_before, action) = match self.read_kernel() {
            Err(e) => (None, Action::Failed(e)),
            Ok(actual) => {
                let present = actual.as_ref().map(|a| !a.prefixes.is_empty());
                let due = self.refresh_due(now);
                let plan = plan(desired, actual.as_ref(), self.link_seen, due);
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
        if matches!(
            plan,
            Plan::Add(_) | Plan::Refresh { .. } | Plan::Remove { .. }
        ) {
            self.touched_kernel = true;
        }
        match plan {
            Plan::WaitForInterface => Action::InterfaceMissing,
            Plan::Keep => Action::None,
            Plan::StopAnnouncing => {
                self.pacing.stop();
                Action::None
            }
            Plan::Add(link) => match self
                .net
                .add(link.index, self.cfg.vip, self.cfg.vip_lifetime)
            {
                Ok(()) => {
                    self.refreshed = Some(now);
                    self.start_announcing(now, &link);
                    Action::Added
                }
                Err(e) => Action::Failed(e),
            },
            Plan::Refresh {
                link,
                prefixes,
                reannounce,
            } => {
                let refreshed = self.refresh(link.index, &prefixes);
                if reannounce {
                    self.start_announcing(now, &link);
                }
                match refreshed {
                    Err(e) => Action::Failed(e),
                    Ok(()) => {
                        self.refreshed = Some(now);
                        if reannounce {
                            Action::Reannounced
                        } else {
                            Action::None
                        }
                    }
                }
            }
            Plan::Reannounce(link) => {
                self.start_announcing(now, &link);
                Action::Reannounced
            }
            Plan::Remove { ifindex, prefixes } => {
                self.pacing.stop();
                self.refreshed = None;
                match self.remove(ifindex, &prefixes) {
                    Ok(n) => Action::Removed(n),
                    Err(e) => Action::Failed(e),
                }
            }
        }
    }

    /// Whether the VIP's lifetime is due a refresh at `now`: a third of it has passed
    /// since the last add or refresh, or none was made with the current lifetime.
    fn refresh_due(&self, now: Instant) -> bool {
        match (self.refreshed, self.cfg.vip_lifetime) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(at), Some(lifetime)) => now.saturating_duration_since(at) >= lifetime / 3,
        }
    }

    /// Give each copy of the VIP the configured lifetime from now.
    fn refresh(&mut self, ifindex: u32, prefixes: &[u8]) -> Result<(), NetError> {
        let (addr, lifetime): (_, Option<Duration>) = (self.cfg.vip.addr, self.cfg.vip_lifetime);
        for &prefix_len in prefixes {
            self.net
                .refresh(ifindex, Vip { addr, prefix_len }, lifetime)?;
        }
        Ok(())
    }

    fn remove(&mut self, ifindex: u32, prefixes: &[u8]) -> Result<usize, NetError> {
        for &len in prefixes {
            self.net.del(ifindex, self.cfg.vip.addr, len)?;
        }
        Ok(prefixes.len())
    }

    /// Remove the VIP from the interface, wherever it is: how many copies went.
    pub(super) fn release(&mut self) -> Result<usize, NetError> {
        self.refreshed = None;
        if !self.cfg.local_address() {
            return Ok(0);
        }
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
        let refresh = |link, prefixes: &[u8], reannounce| Plan::Refresh {
            link,
            prefixes: prefixes.to_vec(),
            reannounce,
        };
        // (wanted, the kernel now, the link at the last turn, the plan without and
        // with a refresh due)
        let cases = [
            (Present, None, Some(up), Plan::WaitForInterface, None),
            (Absent, None, Some(up), Plan::WaitForInterface, None),
            (Unchanged, None, None, Plan::WaitForInterface, None),
            (Present, on(up, &[]), None, Plan::Add(up), None),
            // Added even on a link that is down: announcements wait for it to be up.
            (Present, on(down, &[]), None, Plan::Add(down), None),
            (
                Present,
                on(up, &[24]),
                None,
                Plan::Keep,
                Some(refresh(up, &[24], false)),
            ),
            (
                Present,
                on(up, &[24]),
                Some(up),
                Plan::Keep,
                Some(refresh(up, &[24], false)),
            ),
            // Every copy, at its own prefix length, gets the lifetime.
            (
                Present,
                on(up, &[24, 32]),
                Some(up),
                Plan::Keep,
                Some(refresh(up, &[24, 32], false)),
            ),
            // Up again since the last turn, or flapped (the carrier count moved).
            (
                Present,
                on(up, &[24]),
                Some(down),
                Plan::Reannounce(up),
                Some(refresh(up, &[24], true)),
            ),
            (
                Present,
                on(up, &[24]),
                Some(flapped),
                Plan::Reannounce(up),
                Some(refresh(up, &[24], true)),
            ),
            // Still down: nothing to announce on, but the address keeps its lifetime.
            (
                Present,
                on(down, &[24]),
                Some(link(false, 0)),
                Plan::Keep,
                Some(refresh(down, &[24], false)),
            ),
            (Absent, on(up, &[24, 32]), None, remove, None),
            (Absent, on(up, &[]), None, Plan::StopAnnouncing, None),
            // Never a refresh without the DCS's word: a VIP left from before runs out.
            (Unchanged, on(up, &[]), Some(down), Plan::Keep, None),
            (Unchanged, on(up, &[24]), Some(down), Plan::Keep, None),
        ];
        for (desired, actual, seen, want, want_due) in cases {
            let got = plan(desired, actual.as_ref(), seen, false);
            assert_eq!(got, want, "{desired:?} {actual:?} {seen:?}");
            let got = plan(desired, actual.as_ref(), seen, true);
            let want = want_due.unwrap_or(want);
            assert_eq!(got, want, "{desired:?} {actual:?} {seen:?}, refresh due");
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
            (
                Plan::Refresh {
                    link: link(true, 1),
                    prefixes: vec![24],
                    reannounce: false,
                },
                Action::None,
            ),
            (remove, Action::WouldRemove),
        ];
        for (plan, action) in cases {
            assert_eq!(plan.preview(), action, "{plan:?}");
        }
    }
}

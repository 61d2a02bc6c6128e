//! The loop's sources besides the DCS, in its one wait ([`crate::wake`]): the kernel's
//! link and address reports, the metrics server and the hooks. Each names its
//! descriptors and deadline before the wait and does its non-blocking work after it.
//!
//! A kernel report between turns (an address deleted by hand, a link back up) is acted
//! on at once with the decision of the last turn: the one the loop holds until its next
//! turn anyway, so acting on it sooner changes nothing the DCS said. Only a decision
//! taken from a fact, [`Desired::Present`] or [`Desired::Absent`], is enforced that
//! way; one that keeps things as they are (a silent DCS, a grace) changes nothing. A
//! change of the leader key ready in the same wait is served first: the DCS client's
//! socket comes before the loop's descriptors in the `poll`, and its event is turned
//! before the kernel report is looked at.

use std::time::Instant;

use super::Daemon;
use crate::dcs::{Dcs, Observation};
use crate::decide::{Desired, Reason};
use crate::hooks::{Event, Kind};
use crate::metrics::{Gauges, render};
use crate::net::AddrBackend;
use crate::wake::Interest;

/// What the last turn decided, for a reconcile between turns.
#[derive(Debug, Clone)]
pub(super) struct LastTurn {
    pub observation: Observation,
    pub decision: (Desired, Reason),
    /// Whether the VIP is on the interface after that turn.
    pub configured: bool,
}

impl<D: Dcs, B: AddrBackend> Daemon<D, B> {
    /// What the sources wait for, and until when.
    pub(super) fn interest(&self, interest: &mut Interest) {
        if let Some(fd) = self.net.events_fd() {
            interest.fd(fd, libc::POLLIN);
        }
        self.conflict_interest(interest);
        if let Some(server) = &self.metrics_server {
            server.interest(&mut interest.fds);
            interest.until(server.deadline());
        }
        if let Some(hooks) = &self.hooks {
            hooks.interest(&mut interest.fds);
            interest.until(hooks.deadline());
        }
        if let Some(hosted) = &self.hosted {
            interest.fd(hosted.fd(), libc::POLLIN);
            interest.until(hosted.deadline());
        }
    }

    /// After a wait: the kernel's reports (they may change the VIP; a turn that is due
    /// reads the kernel afresh itself), then the others.
    pub(super) fn serve_kernel(&mut self, turn_due: bool, ready: &Interest) {
        if self.net.events_fd().is_some_and(|fd| !ready.is_ready(fd)) {
            return;
        }
        if self.net.take_events() && !turn_due {
            self.kernel_changed();
        }
    }

    /// After a turn that changed an address: read the kernel's reports now (the kernel
    /// queued them before it acknowledged the change), so that a refresh every third
    /// of the lifetime does not wake the loop again; anything else they say is acted
    /// on as after a wait.
    pub(super) fn serve_own_reports(&mut self) {
        if std::mem::take(&mut self.touched_kernel) && self.net.take_events() {
            self.kernel_changed();
        }
    }

    /// The conflict listener, the hooks and a scrape: after a wait, those whose
    /// descriptors `ready` says are ready or whose deadline came; after a turn (`None`),
    /// what the turn may have changed (holding the VIP, hooks queued).
    pub(super) fn serve_sources(&mut self, mut ready: Option<&mut Interest>) {
        let now = Instant::now();
        // First, so that a conflict's hook starts in this same pass.
        let readable = self
            .conflict_fd()
            .is_some_and(|fd| ready.as_ref().is_some_and(|r| r.is_ready(fd)));
        self.conflict_step(now, readable);
        if let Some(hooks) = self.hooks.as_mut() {
            hooks.step(now);
        }
        // The worker's answers are taken whether its descriptor or a deadline woke the
        // loop: taking them never waits.
        if let Some(hosted) = self.hosted.as_mut() {
            let rang = ready.as_ref().is_some_and(|r| r.is_ready(hosted.fd()));
            if let Err(refused) = hosted.step(now, rang) {
                self.refused_at_start = Some(refused);
            }
        }
        if let Some(mut server) = self.metrics_server.take() {
            let due = server.deadline().is_some_and(|d| d <= now)
                || ready
                    .as_mut()
                    .is_some_and(|r| r.any_ready(|fds| server.interest(fds)));
            if due {
                server.step(now, &mut |out| self.render_metrics(out));
            }
            self.metrics_server = Some(server);
        }
    }

    /// The kernel reported a change between turns: reconcile with the last turn's
    /// decision (see the module documentation).
    fn kernel_changed(&mut self) {
        let Some(last) = self.last_turn.clone() else {
            return;
        };
        if last.decision.0 == Desired::Unchanged {
            return;
        }
        let report = self.reconcile(last.observation, last.decision, Instant::now(), false);
        self.log_report(&report);
        self.account(&report, None);
        self.write_status(&report);
    }

    /// Count a turn's outcome, remember it for a reconcile between turns, and queue
    /// the hooks it calls for. `seen`: when the new leader value was seen, for the
    /// reaction histogram.
    pub(super) fn account(&mut self, r: &super::Report, seen: Option<Instant>) {
        use super::reconcile::Action;
        let before = r.present_before.unwrap_or(false);
        let configured = match r.action {
            Action::Added => true,
            Action::Removed(_) => false,
            _ => before,
        };
        match r.action {
            Action::Added => {
                self.metrics.added += 1;
                if let Some(seen) = seen {
                    self.metrics.observe_reaction(seen.elapsed());
                }
                self.hook(Kind::Added, &r.observation);
            }
            Action::Removed(_) => {
                self.metrics.removed += 1;
                self.hook(Kind::Removed, &r.observation);
            }
            _ => {}
        }
        let unknown = matches!(r.observation, Observation::Unknown(_));
        if unknown {
            self.metrics.dcs_errors += 1;
        }
        match (self.dcs_lost, unknown) {
            (false, true) if self.last_turn.is_some() => {
                self.dcs_lost = true;
                self.hook(Kind::DcsLost, &r.observation);
            }
            (true, false) => {
                self.dcs_lost = false;
                self.hook(Kind::DcsBack, &r.observation);
            }
            _ => {}
        }
        self.last_turn = Some(LastTurn {
            observation: r.observation.clone(),
            decision: (r.desired, r.reason),
            configured,
        });
    }

    /// Queue a hook for `kind`, when one is configured.
    pub(super) fn hook(&mut self, kind: Kind, obs: &Observation) {
        let Some(hooks) = self.hooks.as_mut().filter(|_| self.cfg.on_change.is_some()) else {
            return;
        };
        let leader = match obs {
            Observation::Leader(name) => name.clone(),
            _ => String::new(),
        };
        hooks.push(Event {
            kind,
            vip: self.cfg.vip.addr.to_string(),
            interface: self.cfg.interface.clone(),
            leader,
            node: self.cfg.trigger_value.clone(),
        });
    }

    /// The text exposition of the metrics, as of now.
    fn render_metrics(&self, out: &mut String) {
        let (configured, desired) = match &self.last_turn {
            Some(t) => (
                t.configured,
                t.decision.0 == Desired::Present
                    || (t.decision.0 == Desired::Unchanged && t.configured),
            ),
            None => (false, false),
        };
        // A routed failover IP without a local address is "configured" where it routes.
        let configured = match &self.hosted {
            Some(h) if !self.cfg.local_address() => h.route() == Some(&crate::hosted::Route::Here),
            _ => configured,
        };
        let vip = self.cfg.vip.addr.to_string();
        let gauges = Gauges {
            version: env!("CARGO_PKG_VERSION"),
            vip: &vip,
            interface: &self.cfg.interface,
            configured,
            desired,
            dcs_up: self
                .last_turn
                .as_ref()
                .is_some_and(|t| !matches!(t.observation, Observation::Unknown(_))),
            dcs_last_success: self.last_dcs_ok,
        };
        render(&self.metrics, &gauges, out);
    }
}

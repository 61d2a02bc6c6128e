//! A turn's outcome and how it is told: log lines (each change logged once, not at
//! every turn), the `--once` line, the `--once --json` document and the status file.

use std::time::SystemTime;

use serde_json::Value;

use super::{Action, Daemon};
use crate::dcs::scope::Role;
use crate::dcs::{Dcs, Observation};
use crate::decide::{Desired, Grace, PatroniSays, Reason};
use crate::net::AddrBackend;

/// One turn's outcome, for the log and for `--once`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub observation: Observation,
    pub desired: Desired,
    pub reason: Reason,
    /// Whether the VIP was on the interface before acting (`None`: could not tell).
    pub present_before: Option<bool>,
    pub action: Action,
}

/// What was last logged, so each state change is logged once, not every tick.
#[derive(Default)]
pub(super) struct Logged {
    leader: Option<Observation>,
    decision: Option<(Desired, Reason)>,
    error: Option<String>,
    interface_missing: bool,
}

impl<D: Dcs, B: AddrBackend> Daemon<D, B> {
    pub(super) fn log_report(&mut self, r: &Report) {
        // Actions first: they are what changed on this host.
        self.log_action(r);
        self.log_observation(&r.observation);
        self.log_decision(r);
    }

    fn log_action(&mut self, r: &Report) {
        let vip = self.cfg.vip;
        let iface = &self.cfg.interface;
        let reason = reason_text(r.reason, self.cfg.role());
        match &r.action {
            Action::Added => log::info!("added {vip} to {iface} ({reason}); announcing"),
            Action::Removed(n) => {
                log::info!("removed {} from {iface} ({n} removed; {reason})", vip.addr)
            }
            Action::Reannounced => log::info!("{iface} is up again with {vip}: announcing"),
            Action::Failed(e) => {
                let text = e.to_string();
                if self.logged.error.as_ref() != Some(&text) {
                    let every = self.cfg.interval.as_millis();
                    log::error!("{text}; retrying every {every} ms");
                    self.logged.error = Some(text);
                }
            }
            Action::InterfaceMissing => {
                if !self.logged.interface_missing {
                    log::warn!("interface {iface:?} not found; waiting for it to appear");
                    self.logged.interface_missing = true;
                }
            }
            Action::None | Action::WouldAdd | Action::WouldRemove => {}
        }
        if !matches!(r.action, Action::Failed(_)) {
            self.logged.error = None;
        }
        if r.action != Action::InterfaceMissing && self.logged.interface_missing {
            log::info!("interface {iface:?} found");
            self.logged.interface_missing = false;
        }
    }

    /// What the DCS says, once per change.
    fn log_observation(&mut self, obs: &Observation) {
        let changed = match (&self.logged.leader, obs) {
            (Some(Observation::Unknown(_)), Observation::Unknown(_)) => false,
            (prev, now) => prev.as_ref() != Some(now),
        };
        if !changed {
            if let Observation::Unknown(e) = obs {
                log::debug!("DCS still unreachable: {e}");
            }
            return;
        }
        let me = &self.cfg.trigger_value;
        match (obs, self.cfg.role()) {
            (Observation::Leader(name), Role::Primary) => {
                log::info!("leader is {name:?} (this node is {me:?})")
            }
            (Observation::Leader(name), role) => {
                log::info!(
                    "the {} VIP's holder is {name:?} (this node is {me:?})",
                    role.name()
                )
            }
            (Observation::NoLeader, Role::Primary) => {
                log::info!("no leader: key {} is absent", self.cfg.trigger_key)
            }
            (Observation::NoLeader, role) => log::info!(
                "no member holds the {} VIP (none is eligible, and replica-fallback \
                 does not apply)",
                role.name()
            ),
            (Observation::Unknown(e), _) => log::warn!("DCS unreachable: {e}"),
        }
        self.logged.leader = Some(obs.clone());
    }

    /// The grace policy's decisions, once per change.
    fn log_decision(&mut self, r: &Report) {
        if self.logged.decision == Some((r.desired, r.reason)) {
            return;
        }
        let addr = self.cfg.vip.addr;
        let grace = grace_text(self.cfg.dcs_grace);
        match r.reason {
            Reason::GraceHolding => {
                log::warn!("keeping {addr} while the DCS is unreachable ({grace})")
            }
            Reason::GraceExpired if r.present_before == Some(true) => log::warn!(
                "DCS unreachable for longer than the grace period ({grace}): releasing {addr}"
            ),
            Reason::LeaseExpired if r.present_before == Some(true) => log::warn!(
                "DCS unreachable and the leader key's lease may have run out (its last known \
                 expiry passed): releasing {addr} before the grace period ({grace}) ends"
            ),
            Reason::PatroniServes => log::warn!(
                "keeping {addr} while the DCS is unreachable: Patroni says this node is a \
                 running {}",
                serving(self.cfg.role())
            ),
            Reason::PatroniNotServing => {
                if let Some(PatroniSays::NotServing(why)) = &self.patroni_said {
                    log::warn!(
                        "DCS unreachable and Patroni says this node is not a running {} \
                         ({why}): no VIP here",
                        serving(self.cfg.role())
                    );
                }
            }
            _ => {}
        }
        self.logged.decision = Some((r.desired, r.reason));
    }

    /// The state of a turn as JSON: what `--once --json` prints and the status file
    /// holds.
    pub(super) fn status(&self, r: &Report) -> Value {
        let (leader, dcs) = match &r.observation {
            Observation::Leader(name) => (Value::from(name.as_str()), "leader"),
            Observation::NoLeader => (Value::Null, "no-leader"),
            Observation::Unknown(_) => (Value::Null, "unknown"),
        };
        let (desired, actual, action) = state_words(r);
        let role = self.cfg.role();
        // A replica VIP's observation names its holder, not the leader.
        let (leader, holder) = match role {
            Role::Primary => (leader.clone(), leader),
            _ => (Value::Null, leader),
        };
        let route = self.route_words();
        let mut doc = serde_json::json!({
            "role": role.name(),
            "leader": leader,
            "holder": holder,
            "dcs": dcs,
            "node": self.cfg.trigger_value,
            "vip": self.cfg.vip.to_string(),
            "interface": self.cfg.interface,
            "desired": desired,
            "actual": actual,
            "action": action,
            "lifetime_left_ms": self.lifetime_left(),
            "rule": rule_word(r.reason, role),
            "patroni": self.patroni_said.as_ref().map(|s| patroni_word(s, role)),
            "error": self.error_text(r),
        });
        if let Some((route, route_action, error)) = route {
            // The route is what "actual" means for a hosted failover IP; the address on
            // the interface, when there is one, is told apart.
            doc["manager"] = self.cfg.manager_type().into();
            doc["address"] = if self.cfg.local_address() {
                doc["actual"].take()
            } else {
                Value::Null
            };
            doc["actual"] = route.into();
            if let Some(a) = route_action {
                doc["action"] = a.into();
            }
            if error.is_some() {
                doc["error"] = error.into();
            }
        }
        doc
    }

    /// A hosted failover IP's route (`routed-here`, … or `unknown`), what was done to
    /// it (`--once`: `moved`, `would-move`) and the API's error, if any; `None` for
    /// `manager-type basic`.
    fn route_words(&self) -> Option<(String, Option<&'static str>, Option<String>)> {
        let hosted = self.hosted.as_ref()?;
        Some(match &self.once_route {
            Some((Ok(done), would_move)) => {
                let action = match (&done.moved_from, would_move) {
                    (Some(_), _) => Some("moved"),
                    (None, true) => Some("would-move"),
                    (None, false) => None,
                };
                (done.route.word(), action, None)
            }
            Some((Err(f), _)) => ("unknown".into(), Some("failed"), Some(f.text.clone())),
            None => (
                hosted.route().map_or("unknown".into(), |r| r.word()),
                None,
                None,
            ),
        })
    }

    /// What is left of the lifetime vipd last gave the VIP (an add or a refresh), in
    /// milliseconds; `None` when it gave none: `vip-lifetime forever`, or no VIP here.
    fn lifetime_left(&self) -> Option<u64> {
        let (at, lifetime) = (self.refreshed?, self.cfg.vip_lifetime?);
        let left = (at + lifetime).saturating_duration_since(std::time::Instant::now());
        Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
    }

    /// The `--once` line: `leader="pg1" node="pg1" desired=present actual=absent action=added …`.
    pub(super) fn summary(&self, r: &Report) -> String {
        let leader = match &r.observation {
            Observation::Leader(name) => format!("{name:?}"),
            Observation::NoLeader => "none".into(),
            Observation::Unknown(_) => "unknown".into(),
        };
        let (desired, actual, action) = state_words(r);
        let mut line = match self.cfg.role() {
            Role::Primary => format!("leader={leader}"),
            role => format!("role={} holder={leader}", role.name()),
        };
        let mut error = self.error_text(r);
        let (actual, action) = match self.route_words() {
            None => (actual.to_string(), action),
            Some((route, route_action, route_error)) => {
                error = route_error.or(error);
                let actual = match self.cfg.local_address() {
                    true => format!("{route} address={actual}"),
                    false => route,
                };
                (actual, route_action.unwrap_or(action))
            }
        };
        line += &format!(
            " node={:?} desired={desired} actual={actual} action={action} vip={}",
            self.cfg.trigger_value, self.cfg.vip
        );
        if self.cfg.local_address() || !self.cfg.interface.is_empty() {
            line += &format!(" interface={}", self.cfg.interface);
        }
        if self.hosted.is_some() {
            line += &format!(" manager={}", self.cfg.manager_type());
        }
        if let Some(e) = error {
            line.push_str(&format!(" error={e:?}"));
        }
        line
    }

    /// The error of a turn, if any: kernel, missing interface or DCS.
    fn error_text(&self, r: &Report) -> Option<String> {
        match (&r.observation, &r.action) {
            (_, Action::Failed(e)) => Some(e.to_string()),
            (_, Action::InterfaceMissing) => {
                Some(format!("interface {:?} not found", self.cfg.interface))
            }
            (Observation::Unknown(e), _) => Some(e.clone()),
            _ => None,
        }
    }

    /// Rewrite the status file (temporary file, then rename) when the state changed.
    pub(super) fn write_status(&mut self, r: &Report) {
        let Some(path) = self.cfg.status_file.clone() else {
            return;
        };
        let mut state = self.status(r);
        // Changes every turn: written with the rest, as of `updated`, but not itself a
        // reason to rewrite the file.
        let left = state["lifetime_left_ms"].take();
        if self.status_written.as_ref() == Some(&state) {
            return;
        }
        let mut doc = state.clone();
        doc["lifetime_left_ms"] = left;
        doc["last_dcs_success"] = self.last_dcs_ok.map(crate::logger::timestamp).into();
        doc["updated"] = crate::logger::timestamp(SystemTime::now()).into();
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let written =
            std::fs::write(&tmp, format!("{doc}\n")).and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => self.status_written = Some(state),
            Err(e) => log::warn!("status-file {}: {e}", path.display()),
        }
    }
}

/// The words for a turn's desired state, actual state before acting, and action.
fn state_words(r: &Report) -> (&'static str, &'static str, &'static str) {
    let desired = match r.desired {
        Desired::Present => "present",
        Desired::Absent => "absent",
        Desired::Unchanged => "unchanged",
    };
    let actual = match r.present_before {
        Some(true) => "present",
        Some(false) => "absent",
        None => "unknown",
    };
    let action = match &r.action {
        Action::None | Action::InterfaceMissing => "none",
        Action::Added => "added",
        Action::Removed(_) => "removed",
        Action::Reannounced => "announced",
        Action::WouldAdd => "would-add",
        Action::WouldRemove => "would-remove",
        Action::Failed(_) => "failed",
    };
    (desired, actual, action)
}

/// What Patroni must say this node runs to keep a VIP of `role`.
fn serving(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Replica | Role::Sync => "replica",
    }
}

/// Which rule decided, for the JSON state (the fencing table's rows among them).
fn rule_word(r: Reason, role: Role) -> &'static str {
    match (r, role) {
        (Reason::PatroniServes, Role::Replica | Role::Sync) => return "patroni-replica",
        (Reason::PatroniNotServing, Role::Replica | Role::Sync) => return "patroni-not-replica",
        _ => {}
    }
    match r {
        Reason::ThisNodeLeads => "this-node-leads",
        Reason::OtherNodeLeads => "another-node-leads",
        Reason::NoLeader => "no-leader",
        Reason::GraceHolding => "grace",
        Reason::GraceExpired => "grace-expired",
        Reason::UnknownNotLeading => "unknown-not-leading",
        Reason::UnknownNoHistory => "unknown-since-start",
        Reason::PatroniServes => "patroni-primary",
        Reason::PatroniNotServing => "patroni-not-primary",
        Reason::LeaseExpired => "lease-expired",
        Reason::AwaitingPrimary => "awaiting-primary",
    }
}

/// What Patroni said at this turn, for the JSON state.
fn patroni_word(s: &PatroniSays, role: Role) -> String {
    match s {
        PatroniSays::Serves => serving(role).into(),
        PatroniSays::NotServing(why) => format!("not {}: {why}", serving(role)),
        PatroniSays::NoAnswer => "no answer".into(),
    }
}

fn reason_text(r: Reason, role: Role) -> &'static str {
    match (r, role) {
        (Reason::ThisNodeLeads, Role::Replica | Role::Sync) => return "this node holds it",
        (Reason::OtherNodeLeads, Role::Replica | Role::Sync) => return "another member holds it",
        (Reason::NoLeader, Role::Replica | Role::Sync) => return "no member holds it",
        (Reason::PatroniServes, Role::Replica | Role::Sync) => {
            return "DCS unreachable, Patroni says this node is a running replica";
        }
        (Reason::PatroniNotServing, Role::Replica | Role::Sync) => {
            return "DCS unreachable, Patroni says this node is not a running replica";
        }
        _ => {}
    }
    match r {
        Reason::ThisNodeLeads => "this node leads",
        Reason::OtherNodeLeads => "another node leads",
        Reason::NoLeader => "no leader",
        Reason::GraceHolding => "DCS unreachable, within grace",
        Reason::GraceExpired => "DCS unreachable, grace expired",
        Reason::UnknownNotLeading => "DCS unreachable, this node did not lead",
        Reason::UnknownNoHistory => "DCS unreachable since start",
        Reason::PatroniServes => "DCS unreachable, Patroni says this node is a running primary",
        Reason::PatroniNotServing => {
            "DCS unreachable, Patroni says this node is not a running primary"
        }
        Reason::LeaseExpired => "DCS unreachable, the leader key's lease may have run out",
        Reason::AwaitingPrimary => "this node leads; waiting for Patroni to say primary",
    }
}

fn grace_text(g: Grace) -> String {
    match g {
        Grace::Never => "dcs-grace never".into(),
        Grace::After(d) => format!("dcs-grace {} ms", d.as_millis()),
    }
}

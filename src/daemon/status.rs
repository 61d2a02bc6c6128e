//! The state of a turn for readers outside the daemon: the `--once` line, the
//! `--once --json` document and the status file.

use std::time::SystemTime;

use serde_json::Value;

use super::{Action, Daemon, Report};
use crate::dcs::{Dcs, Observation};
use crate::decide::Desired;
use crate::net::AddrBackend;

/// The words for a turn's desired state, actual state before acting, and action.
struct StateWords {
    desired: &'static str,
    actual: &'static str,
    action: &'static str,
}

impl StateWords {
    fn of(r: &Report) -> Self {
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
        StateWords {
            desired,
            actual,
            action,
        }
    }
}

impl<D: Dcs, B: AddrBackend> Daemon<D, B> {
    /// The state of a turn as JSON: what `--once --json` prints and the status file
    /// holds.
    pub(super) fn status(&self, r: &Report) -> Value {
        let (leader, dcs) = match &r.observation {
            Observation::Leader(name) => (Value::from(name.as_str()), "leader"),
            Observation::NoLeader => (Value::Null, "no-leader"),
            Observation::Unknown(_) => (Value::Null, "unknown"),
        };
        let words = StateWords::of(r);
        serde_json::json!({
            "leader": leader,
            "dcs": dcs,
            "node": self.cfg.trigger_value,
            "vip": self.cfg.vip.to_string(),
            "interface": self.cfg.interface,
            "desired": words.desired,
            "actual": words.actual,
            "action": words.action,
            "error": self.error_text(r),
        })
    }

    /// The `--once` line: `leader="pg1" node="pg1" desired=present actual=absent action=added …`.
    pub(super) fn summary(&self, r: &Report) -> String {
        let leader = match &r.observation {
            Observation::Leader(name) => format!("{name:?}"),
            Observation::NoLeader => "none".into(),
            Observation::Unknown(_) => "unknown".into(),
        };
        let words = StateWords::of(r);
        let mut line = format!(
            "leader={leader} node={:?} desired={} actual={} action={} vip={} interface={}",
            self.cfg.trigger_value,
            words.desired,
            words.actual,
            words.action,
            self.cfg.vip,
            self.cfg.interface
        );
        if let Some(e) = self.error_text(r) {
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
        let state = self.status(r);
        if self.status_written.as_ref() == Some(&state) {
            return;
        }
        let mut doc = state.clone();
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

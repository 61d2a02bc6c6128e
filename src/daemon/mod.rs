//! The daemon: observe → decide → reconcile, turn after turn. The loop and reloads
//! live in `run`, kernel changes in `reconcile`, announcement pacing in `announce`,
//! and log lines, the `--once` output and the status file in `report`.

mod announce;
mod reconcile;
mod report;
mod run;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::dcs::{Dcs, Observation};
use crate::decide::{Desired, LastFact, Reason, decide};
use crate::net::{AddrBackend, LinkInfo};
use announce::Pacing;
use reconcile::Action;
use report::Logged;
use report::Report;

/// A configuration read again on SIGHUP, with a new DCS client when the DCS
/// settings changed (`None`: keep the current one).
pub struct Reloaded<D> {
    pub config: Config,
    pub dcs: Option<D>,
}

/// Reads the configuration again, given the running one.
pub type Reload<'a, D> = dyn FnMut(&Config) -> Result<Reloaded<D>, String> + 'a;

pub struct Daemon<D: Dcs, B: AddrBackend> {
    cfg: Config,
    dcs: D,
    net: B,
    started: Instant,
    /// Whether this node led at the last fact, and when that fact was seen.
    last_fact: Option<(bool, Instant)>,
    pacing: Pacing,
    /// The link at the last turn, to see it come up again or flap.
    link_seen: Option<LinkInfo>,
    /// When the VIP last got the configured lifetime (an add or a refresh); `None`:
    /// not since start, the last removal or a change of the lifetime.
    refreshed: Option<Instant>,
    logged: Logged,
    /// When the DCS last answered (for the status file).
    last_dcs_ok: Option<SystemTime>,
    /// The state last written to the status file (without its times).
    status_written: Option<serde_json::Value>,
}

impl<D: Dcs, B: AddrBackend> Daemon<D, B> {
    pub fn new(cfg: Config, dcs: D, net: B) -> Self {
        Daemon {
            cfg,
            dcs,
            net,
            started: Instant::now(),
            last_fact: None,
            pacing: Pacing::default(),
            link_seen: None,
            refreshed: None,
            logged: Logged::default(),
            last_dcs_ok: None,
            status_written: None,
        }
    }

    /// Decide with the daemon's history (grace runs from the last fact, or from start);
    /// a fact in `obs` was seen at `fact_at`.
    fn decide_now(
        &mut self,
        obs: &Observation,
        now: Instant,
        fact_at: Instant,
    ) -> (Desired, Reason) {
        let last = self.last_fact.map(|(leading, at)| LastFact {
            leading,
            age: now.saturating_duration_since(at),
        });
        let since_start = now.saturating_duration_since(self.started);
        let decision = decide(
            obs,
            &self.cfg.trigger_value,
            last,
            since_start,
            self.cfg.dcs_grace,
        );
        if !matches!(obs, Observation::Unknown(_)) {
            self.last_fact = Some((decision.0 == Desired::Present, fact_at));
        }
        decision
    }

    /// One full turn: observe until `deadline` (unless the watch already saw the
    /// change), decide, reconcile, log. A remembered observation counts from when
    /// the DCS last really answered ([`Dcs::last_fact`]).
    fn turn(&mut self, seen: Option<Observation>, deadline: Instant) -> Report {
        let (obs, fact_at) = match seen {
            Some(obs) => (obs, None),
            None => (self.dcs.observe(deadline), self.dcs.last_fact()),
        };
        let now = Instant::now();
        let fact_at = fact_at.map_or(now, |at| at.min(now));
        let decision = self.decide_now(&obs, now, fact_at);
        let report = self.reconcile(obs, decision, now, false);
        self.log_report(&report);
        if !matches!(report.observation, Observation::Unknown(_)) {
            let age = now.duration_since(fact_at);
            self.last_dcs_ok = Some(SystemTime::now() - age.min(Duration::from_secs(86_400)));
        }
        self.write_status(&report);
        report
    }

    /// `--once`: one observation and reconcile; the one-line summary (or the JSON
    /// state) and the exit status. An unknown DCS never removes the VIP here (there
    /// is no grace history).
    pub fn once(mut self, dry_run: bool, json: bool) -> (i32, String) {
        let now = Instant::now();
        let obs = self.dcs.observe(now + self.cfg.interval);
        let decision = match obs {
            Observation::Unknown(_) => (Desired::Unchanged, Reason::UnknownNoHistory),
            _ => self.decide_now(&obs, now, now),
        };
        let report = self.reconcile(obs, decision, Instant::now(), dry_run);
        if report.action == Action::Added {
            // Send the rest of the burst before exiting (bounded: announce-count).
            while let Some(next) = self.next_announcement() {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                self.announce_due(Instant::now(), None);
            }
        }
        let status = match (&report.observation, &report.action) {
            (_, Action::Failed(_) | Action::InterfaceMissing) => 1,
            (Observation::Unknown(_), _) => 1,
            (_, Action::WouldAdd | Action::WouldRemove) => 3,
            _ => 0,
        };
        let text = if json {
            self.status(&report).to_string()
        } else {
            self.summary(&report)
        };
        (status, text)
    }
}

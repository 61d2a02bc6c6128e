//! The daemon: observe → decide → reconcile, turn after turn. The loop and reloads
//! live in `run`, kernel changes in `reconcile`, announcement pacing in `announce`,
//! and log lines, the `--once` output and the status file in `report`.

mod announce;
mod conflict;
mod pause;
mod reconcile;
mod report;
mod run;
mod sources;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::dcs::{Dcs, Observation};
use crate::decide::{Desired, Fence, Grace, LastFact, PatroniSays, Reason, decide};
use crate::fence::patroni::AskPatroni;
use crate::fence::{ASK_TIMEOUT, Gate, Step};
use crate::hooks::Hooks;
use crate::hosted::Hosted;
use crate::metrics::Metrics;
use crate::metrics::server::Server;
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
    /// The client of the new configuration's `patroni-url`.
    pub patroni: Option<Box<dyn AskPatroni>>,
    /// The metrics server on the new `metrics-listen`, bound when it changed.
    pub metrics_server: Option<Server>,
    /// The provider's side for the new configuration's hosted failover IP, started
    /// when its settings changed.
    pub hosted: Option<Hosted>,
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
    /// This node's Patroni (`patroni-url`).
    patroni: Option<Box<dyn AskPatroni>>,
    /// What Patroni said at this turn, if it was asked.
    patroni_said: Option<PatroniSays>,
    gate: Gate,
    metrics: Metrics,
    metrics_server: Option<Server>,
    hooks: Option<Hooks>,
    /// The conflict listener while the VIP is held, and what it found.
    conflicts: conflict::Conflicts,
    /// The last turn's outcome, for a reconcile between turns and the metrics.
    last_turn: Option<sources::LastTurn>,
    /// The DCS went silent after having answered (a `dcs-lost` hook was queued).
    dcs_lost: bool,
    /// When the watch saw the change the next turn acts on.
    seen_at: Option<Instant>,
    /// Turn at once (a source asked the DCS itself and dropped the watch).
    turn_now: bool,
    /// This turn changed an address: the kernel's report of it is queued already.
    touched_kernel: bool,
    /// The provider's side of a hosted failover IP (`manager-type` other than basic).
    hosted: Option<Hosted>,
    /// The provider refused the credentials or the address at the first call: vipd
    /// exits with status 2, as for credentials the DCS refuses.
    refused_at_start: Option<crate::hosted::Failure>,
    /// `--once` with a hosted failover IP: what the provider's API said, and whether a
    /// dry run found a move to make.
    once_route: Option<(Result<crate::hosted::Done, crate::hosted::Failure>, bool)>,
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
            patroni: None,
            patroni_said: None,
            gate: Gate::default(),
            metrics: Metrics::new(),
            metrics_server: None,
            hooks: None,
            conflicts: conflict::Conflicts::default(),
            last_turn: None,
            dcs_lost: false,
            seen_at: None,
            turn_now: false,
            touched_kernel: false,
            hosted: None,
            refused_at_start: None,
            once_route: None,
        }
    }

    /// Route a hosted failover IP through `hosted` (the provider's API).
    pub fn with_hosted(mut self, hosted: Option<Hosted>) -> Self {
        self.hosted = hosted;
        self
    }

    /// Serve metrics on `server` (`metrics-listen`).
    pub fn with_metrics_server(mut self, server: Option<Server>) -> Self {
        self.metrics_server = server;
        self
    }

    /// Run the `on-change` program of the configuration on each state change.
    pub fn with_hooks(mut self) -> Self {
        self.hooks = self
            .cfg
            .on_change
            .clone()
            .map(|argv| Hooks::new(argv, self.cfg.on_change_timeout));
        self
    }

    /// Ask `patroni` (this node's Patroni REST API) while the DCS is silent, and before
    /// adding the VIP for a new leadership (`primary-check`).
    pub fn with_patroni(mut self, patroni: Option<Box<dyn AskPatroni>>) -> Self {
        self.patroni = patroni;
        self
    }

    /// Ask Patroni, when there is one (remembered for the report).
    fn ask_patroni(&mut self, now: Instant) -> PatroniSays {
        let says = match self.patroni.as_mut() {
            Some(p) => p.ask(now + ASK_TIMEOUT.min(self.cfg.interval)),
            None => PatroniSays::NoAnswer,
        };
        self.patroni_said = self.patroni.is_some().then(|| says.clone());
        says
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
        // Patroni is asked only while the DCS is silent.
        let fence = match obs {
            Observation::Unknown(_) => Fence {
                patroni: self.ask_patroni(now),
                lease_left: self
                    .dcs
                    .lease_bound()
                    .map(|b| b.saturating_duration_since(now)),
                keep_only: self.cfg.replica.is_some(),
            },
            _ => Fence::NONE,
        };
        let decision = decide(
            obs,
            &self.cfg.trigger_value,
            last,
            since_start,
            self.cfg.dcs_grace,
            &fence,
        );
        if !matches!(obs, Observation::Unknown(_)) {
            self.last_fact = Some((decision.0 == Desired::Present, fact_at));
        }
        self.gated(decision, now)
    }

    /// Write-ready gating ([`crate::fence`]): a new leadership's add waits for Patroni
    /// to say primary; a fact that another node leads, or none, closes the gate.
    fn gated(&mut self, (desired, reason): (Desired, Reason), now: Instant) -> (Desired, Reason) {
        match reason {
            Reason::OtherNodeLeads | Reason::NoLeader => self.gate.close(),
            Reason::ThisNodeLeads if self.cfg.primary_check && !self.gate.is_open() => {
                let says = self.ask_patroni(now);
                match self.gate.answer(&says, now) {
                    Step::Pass { waited } if waited > Duration::ZERO => log::info!(
                        "Patroni says this node is a running primary after {} ms",
                        waited.as_millis()
                    ),
                    Step::Pass { .. } => {}
                    Step::Wait { first } => {
                        if let (true, PatroniSays::NotServing(why)) = (first, &says) {
                            log::info!(
                                "the key names this node; waiting for Patroni to say primary \
                                 (now {why})"
                            );
                        }
                        return (Desired::Unchanged, Reason::AwaitingPrimary);
                    }
                    Step::PassUnanswered { warn: true } => log::warn!(
                        "Patroni at {} gives no answer: adding the VIP without waiting for \
                         a primary",
                        self.cfg.patroni_url.as_deref().unwrap_or("?")
                    ),
                    Step::PassUnanswered { .. } => {}
                }
            }
            _ => {}
        }
        (desired, reason)
    }

    /// One full turn: observe until `deadline` (unless the watch already saw the
    /// change), decide, reconcile, log. A remembered observation counts from when
    /// the DCS last really answered ([`Dcs::last_fact`]).
    fn turn(&mut self, seen: Option<Observation>, deadline: Instant) -> Report {
        self.patroni_said = None;
        let seen_at = self.seen_at.take().unwrap_or_else(Instant::now);
        let (obs, fact_at) = match seen {
            Some(obs) => (obs, None),
            None => (self.dcs.observe(deadline), self.dcs.last_fact()),
        };
        let now = Instant::now();
        let fact_at = fact_at.map_or(now, |at| at.min(now));
        let decision = self.decide_now(&obs, now, fact_at);
        if decision.1 == Reason::ThisNodeLeads {
            self.keep_lease_bound(now, deadline);
        }
        let report = self.reconcile(obs, decision, now, false);
        self.log_report(&report);
        self.account(&report, Some(seen_at));
        if !matches!(report.observation, Observation::Unknown(_)) {
            let age = now.duration_since(fact_at);
            self.last_dcs_ok = Some(SystemTime::now() - age.min(Duration::from_secs(86_400)));
        }
        self.write_status(&report);
        report
    }

    /// While this node leads with a finite grace: keep the bound on the key's lease
    /// further ahead than the grace, so that a grace kept while the DCS is silent is
    /// cut only when the lease may really run out (asked only when the bound comes
    /// within the grace: a few times a minute, by the leader only).
    fn keep_lease_bound(&mut self, now: Instant, deadline: Instant) {
        let Grace::After(grace) = self.cfg.dcs_grace else {
            return;
        };
        if grace > Duration::ZERO && self.dcs.lease_bound().is_none_or(|b| b < now + grace) {
            self.dcs.ask_lease(deadline);
        }
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
        self.once_route(&report, dry_run);
        let status = match (&report.observation, &report.action, &self.once_route) {
            (_, _, Some((Err(f), _))) if f.fatal_at_start() => 2,
            (_, _, Some((Err(_), _))) => 1,
            (_, Action::Failed(_) | Action::InterfaceMissing, _) => 1,
            (Observation::Unknown(_), _, _) => 1,
            (_, Action::WouldAdd | Action::WouldRemove, _) => 3,
            (_, _, Some((Ok(_), true))) => 3,
            _ => 0,
        };
        let text = if json {
            self.status(&report).to_string()
        } else {
            self.summary(&report)
        };
        (status, text)
    }

    /// `--once` with a hosted failover IP: read the route and, when this node should
    /// hold it and this is no dry run, move it here. Waited for (a move answers when
    /// it is done), but never longer than a bound.
    fn once_route(&mut self, report: &Report, dry_run: bool) {
        use crate::hosted::{Job, Route};
        let Some(hosted) = self.hosted.as_mut() else {
            return;
        };
        let lead = crate::decide::may_move(report.desired, report.reason);
        let job = if lead && !dry_run {
            Job::Ensure
        } else {
            Job::Read
        };
        let bound = Duration::from_secs(if job == Job::Ensure { 200 } else { 40 });
        let result = hosted.run_once(job, bound);
        let would_move = dry_run && lead && result.as_ref().is_ok_and(|d| d.route != Route::Here);
        if let Err(f) = &result {
            log::error!("{}: {f}", self.cfg.manager_type());
        }
        self.once_route = Some((result, would_move));
    }
}

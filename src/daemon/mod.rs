//! The loop: observe → decide → reconcile, announcements by deadline, signals.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::dcs::{Dcs, Observation, Wait};
use crate::decide::{Desired, Grace, LastFact, Reason, decide};
use crate::net::{AddrBackend, LinkInfo, NetError};
use crate::signals::{Signal, Signals};

/// A configuration read again on SIGHUP, with a new DCS client when the DCS
/// settings changed (`None`: keep the current one).
pub struct Reloaded<D> {
    pub config: Config,
    pub dcs: Option<D>,
}

/// Reads the configuration again, given the running one.
pub type Reload<'a, D> = dyn FnMut(&Config) -> Result<Reloaded<D>, String> + 'a;

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

/// The window of the announcement rate limit: at most `announce-count` per window.
const ANNOUNCE_RATE_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Burst {
    remaining: u32,
    next: Instant,
}

/// What was last logged, so each state change is logged once, not every tick.
#[derive(Default)]
struct Logged {
    leader: Option<Observation>,
    decision: Option<(Desired, Reason)>,
    error: Option<String>,
    interface_missing: bool,
}

pub struct Daemon<D: Dcs, B: AddrBackend> {
    cfg: Config,
    dcs: D,
    net: B,
    started: Instant,
    /// Whether this node led at the last fact, and when that fact was seen.
    last_fact: Option<(bool, Instant)>,
    burst: Option<Burst>,
    /// When the last announcements went out (at most `announce_count`): never more
    /// than `announce_count` in any second, however fast the leader key flaps.
    announced: VecDeque<Instant>,
    /// The link's state at the last turn: up, and its carrier-change count.
    link_seen: Option<(bool, u32)>,
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
            burst: None,
            announced: VecDeque::new(),
            link_seen: None,
            logged: Logged::default(),
            last_dcs_ok: None,
            status_written: None,
        }
    }

    /// The backend, for tests.
    pub fn net(&self) -> &B {
        &self.net
    }

    /// Decide with the daemon's history (grace runs from the last fact, or from start).
    pub fn decide_now(&mut self, obs: &Observation, now: Instant) -> (Desired, Reason) {
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
            self.last_fact = Some((decision.0 == Desired::Present, now));
        }
        decision
    }

    /// Reconcile the kernel with `desired`; the first announcement after an add is sent
    /// here, before anything is logged.
    pub fn reconcile(
        &mut self,
        obs: Observation,
        (desired, reason): (Desired, Reason),
        now: Instant,
        dry_run: bool,
    ) -> Report {
        let mut report = Report {
            observation: obs,
            desired,
            reason,
            present_before: None,
            action: Action::None,
        };
        let link = match self.net.link(&self.cfg.interface) {
            Ok(Some(link)) => link,
            Ok(None) => {
                report.action = Action::InterfaceMissing;
                self.link_seen = None;
                return report;
            }
            Err(e) => {
                report.action = Action::Failed(e);
                return report;
            }
        };
        let prefixes = match self.net.vip_prefixes(link.index, self.cfg.vip.addr) {
            Ok(p) => p,
            Err(e) => {
                report.action = Action::Failed(e);
                return report;
            }
        };
        let present = !prefixes.is_empty();
        report.present_before = Some(present);
        // Up now, and down at the last turn or flapped since (the carrier count moved).
        let came_up = link.up
            && matches!(self.link_seen, Some((was_up, changes)) if !was_up || changes != link.carrier_changes);
        if !dry_run {
            self.link_seen = Some((link.up, link.carrier_changes));
        }
        report.action = match desired {
            Desired::Present if !present => {
                if dry_run {
                    Action::WouldAdd
                } else {
                    match self.net.add(link.index, self.cfg.vip) {
                        Ok(()) => {
                            self.start_burst(now, &link);
                            Action::Added
                        }
                        Err(e) => Action::Failed(e),
                    }
                }
            }
            Desired::Present if came_up && !dry_run => {
                self.start_burst(now, &link);
                Action::Reannounced
            }
            Desired::Absent if present => {
                if dry_run {
                    Action::WouldRemove
                } else {
                    self.burst = None;
                    match self.remove(link.index, &prefixes) {
                        Ok(n) => Action::Removed(n),
                        Err(e) => Action::Failed(e),
                    }
                }
            }
            _ => Action::None,
        };
        if desired == Desired::Absent {
            self.burst = None;
        }
        report
    }

    fn remove(&mut self, ifindex: u32, prefixes: &[u8]) -> Result<usize, NetError> {
        for &len in prefixes {
            self.net.del(ifindex, self.cfg.vip.addr, len)?;
        }
        Ok(prefixes.len())
    }

    /// Start a burst of announcements: the first one now.
    fn start_burst(&mut self, now: Instant, link: &LinkInfo) {
        self.burst = (self.cfg.announce_count > 0).then_some(Burst {
            remaining: self.cfg.announce_count,
            next: now,
        });
        self.announce_due(now, Some(link));
    }

    /// When the next announcement is due, if one is.
    pub fn next_announcement(&self) -> Option<Instant> {
        self.burst.map(|b| b.next)
    }

    /// Send the announcement that is due at `now`, if any. `link` saves a lookup when
    /// the caller has just read it. A link that is down postpones the burst (it is
    /// started again when the link comes up).
    pub fn announce_due(&mut self, now: Instant, link: Option<&LinkInfo>) {
        let Some(mut burst) = self.burst else { return };
        if now < burst.next {
            return;
        }
        let link = match link {
            Some(l) => *l,
            None => match self.net.link(&self.cfg.interface) {
                Ok(Some(l)) => l,
                Ok(None) => {
                    // Gone: the turn reports it; a new burst starts when it is back.
                    self.burst = None;
                    return;
                }
                Err(e) => {
                    log::warn!("announcing {}: {e}", self.cfg.vip.addr);
                    self.burst = None;
                    return;
                }
            },
        };
        if !link.up {
            log::debug!(
                "{} is down: announcements stop until it is up",
                self.cfg.interface
            );
            self.burst = None;
            return;
        }
        // At most announce-count announcements in any second: a flapping leader key
        // restarts the burst on every add, so postpone this one if needed.
        let count = self.cfg.announce_count as usize;
        if let Some(&oldest) = self.announced.front() {
            let allowed = oldest + ANNOUNCE_RATE_WINDOW;
            if self.announced.len() >= count && now < allowed {
                burst.next = allowed;
                self.burst = Some(burst);
                return;
            }
        }
        match self
            .net
            .announce(&link, self.cfg.vip, self.cfg.announce_mode)
        {
            Ok(()) => log::debug!(
                "announced {} ({} left)",
                self.cfg.vip.addr,
                burst.remaining - 1
            ),
            Err(e) => log::warn!("announcing {}: {e}", self.cfg.vip.addr),
        }
        // The send time, never earlier than the clock: a caller's `now` taken before
        // a slow turn must not let one more announcement into the window.
        self.announced.push_back(now.max(Instant::now()));
        while self.announced.len() > count {
            self.announced.pop_front();
        }
        burst.remaining -= 1;
        // Fixed deadlines from the first announcement, so the spacing does not drift
        // by the loop's lateness; never in the past, so a late loop does not burst.
        burst.next = (burst.next + self.cfg.announce_interval).max(now);
        self.burst = (burst.remaining > 0).then_some(burst);
    }

    /// One full turn: observe until `deadline` (unless the watch already saw the
    /// change), decide, reconcile, log.
    pub fn turn(&mut self, seen: Option<Observation>, deadline: Instant) -> Report {
        let obs = match seen {
            Some(obs) => obs,
            None => self.dcs.observe(deadline),
        };
        let now = Instant::now();
        let decision = self.decide_now(&obs, now);
        let report = self.reconcile(obs, decision, now, false);
        self.log_report(&report);
        if !matches!(report.observation, Observation::Unknown(_)) {
            self.last_dcs_ok = Some(SystemTime::now());
        }
        self.write_status(&report);
        report
    }

    /// The state of a turn as JSON: what `--once --json` prints and the status file
    /// holds.
    pub fn status(&self, r: &Report) -> serde_json::Value {
        let (leader, dcs) = match &r.observation {
            Observation::Leader(name) => (serde_json::Value::from(name.as_str()), "leader"),
            Observation::NoLeader => (serde_json::Value::Null, "no-leader"),
            Observation::Unknown(_) => (serde_json::Value::Null, "unknown"),
        };
        let (desired, actual, action) = self.words(r);
        serde_json::json!({
            "leader": leader,
            "dcs": dcs,
            "node": self.cfg.trigger_value,
            "vip": self.cfg.vip.to_string(),
            "interface": self.cfg.interface,
            "desired": desired,
            "actual": actual,
            "action": action,
            "error": self.error_text(r),
        })
    }

    /// Rewrite the status file (temporary file, then rename) when the state changed.
    fn write_status(&mut self, r: &Report) {
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

    /// Run until SIGTERM or SIGINT; returns the exit status. On SIGHUP, `reload`
    /// reads the configuration again ([`Reloaded`]); an error keeps the old one.
    pub fn run(mut self, signals: &Signals, reload: &mut Reload<'_, D>) -> i32 {
        log::info!(
            "vipd {} managing {} on {} for {:?} (key {}, interval {} ms)",
            env!("CARGO_PKG_VERSION"),
            self.cfg.vip,
            self.cfg.interface,
            self.cfg.trigger_value,
            self.cfg.trigger_key,
            self.cfg.interval.as_millis()
        );
        let mut next_turn = Instant::now();
        // A change seen by the watch, acted on before anything else.
        let mut event: Option<Observation> = None;
        // Watches that broke in a row; after one, wait for the deadline instead of
        // re-reading at once, so a broken watch cannot spin the loop.
        let mut broken_watches = 0u32;
        loop {
            let now = Instant::now();
            if event.is_some() || now >= next_turn {
                let from_watch = event.is_some();
                self.turn(event.take(), now + self.cfg.interval);
                // After an event, read the key again at once to re-arm the watch from
                // a fresh revision; otherwise keep the cadence.
                // A wait that ends a little late (timers have a granularity) must not
                // push every later turn back: keep the cadence unless far behind.
                let cadence = next_turn + self.cfg.interval;
                next_turn = if from_watch {
                    Instant::now()
                } else if cadence > now {
                    cadence
                } else {
                    now + self.cfg.interval
                };
            } else {
                self.announce_due(now, None);
            }
            let wake = self
                .next_announcement()
                .map_or(next_turn, |a| a.min(next_turn));
            let now = Instant::now();
            let mut sleep = wake.saturating_duration_since(now);
            // A watch is worth starting only for a real wait (a few ms at least).
            if wake > now + Duration::from_millis(5) {
                match self.dcs.wait_for_change(wake) {
                    Some(Wait::Changed(obs)) => {
                        event = Some(obs);
                        broken_watches = 0;
                        sleep = Duration::ZERO;
                    }
                    Some(Wait::Reread) if broken_watches == 0 => {
                        broken_watches += 1;
                        next_turn = Instant::now();
                        sleep = Duration::ZERO;
                    }
                    Some(Wait::Reread) => sleep = wake.saturating_duration_since(Instant::now()),
                    Some(Wait::Deadline) => {
                        broken_watches = 0;
                        sleep = Duration::ZERO;
                    }
                    None => {}
                }
            }
            match signals.wait(sleep) {
                None => {}
                Some(Signal::Hup) => match reload(&self.cfg) {
                    Ok(new) => {
                        self.apply(new, Instant::now());
                        event = None;
                        next_turn = Instant::now();
                    }
                    Err(e) => log::error!("SIGHUP: {e}; keeping the running configuration"),
                },
                Some(sig) => return self.shutdown(sig),
            }
        }
    }

    /// Take a reloaded configuration: a VIP or interface that changed is released
    /// from the old place first (the next turn adds it at the new one); a new DCS
    /// client replaces the old; facts about another key or node name are forgotten.
    pub fn apply(&mut self, new: Reloaded<D>, now: Instant) {
        let Reloaded { config, dcs } = new;
        if config == self.cfg && dcs.is_none() {
            log::info!("SIGHUP: configuration unchanged");
            return;
        }
        if config.vip != self.cfg.vip || config.interface != self.cfg.interface {
            match self.release() {
                Ok(0) => {}
                Ok(n) => log::info!(
                    "SIGHUP: released {} from {} ({n} removed) for the new configuration",
                    self.cfg.vip.addr,
                    self.cfg.interface
                ),
                Err(e) => log::error!(
                    "SIGHUP: releasing {} from {}: {e}",
                    self.cfg.vip.addr,
                    self.cfg.interface
                ),
            }
            self.burst = None;
            self.link_seen = None;
        }
        let forget = dcs.is_some()
            || config.trigger_key != self.cfg.trigger_key
            || config.trigger_value != self.cfg.trigger_value;
        if forget {
            self.last_fact = None;
            self.started = now;
            self.logged = Logged::default();
        }
        if let Some(dcs) = dcs {
            self.dcs = dcs;
        }
        crate::logger::set_verbose(config.verbose);
        self.cfg = config;
        log::info!(
            "SIGHUP: configuration reloaded: {} on {} for {:?} (key {}, interval {} ms)",
            self.cfg.vip,
            self.cfg.interface,
            self.cfg.trigger_value,
            self.cfg.trigger_key,
            self.cfg.interval.as_millis()
        );
    }

    /// Release the VIP (unless keep-on-exit) and say how it went.
    fn shutdown(&mut self, sig: Signal) -> i32 {
        if self.cfg.keep_on_exit {
            log::info!(
                "{}: exiting, keeping {} (keep-on-exit)",
                sig.name(),
                self.cfg.vip
            );
            return 0;
        }
        let mut last_err = None;
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            match self.release() {
                Ok(0) => {
                    log::info!(
                        "{}: exiting; {} was not configured",
                        sig.name(),
                        self.cfg.vip.addr
                    );
                    return 0;
                }
                Ok(n) => {
                    log::info!(
                        "{}: released {} from {} ({n} removed); exiting",
                        sig.name(),
                        self.cfg.vip.addr,
                        self.cfg.interface
                    );
                    return 0;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            log::error!(
                "{}: could not release {}: {e}; exiting",
                sig.name(),
                self.cfg.vip.addr
            );
        }
        1
    }

    fn release(&mut self) -> Result<usize, NetError> {
        let Some(link) = self.net.link(&self.cfg.interface)? else {
            return Ok(0);
        };
        let prefixes = self.net.vip_prefixes(link.index, self.cfg.vip.addr)?;
        self.remove(link.index, &prefixes)
    }

    /// `--once`: one observation and reconcile; the one-line summary and exit status.
    /// An unknown DCS never removes the VIP here (there is no grace history).
    pub fn once(mut self, dry_run: bool, json: bool) -> (i32, String) {
        let now = Instant::now();
        let obs = self.dcs.observe(now + self.cfg.interval);
        let decision = match obs {
            Observation::Unknown(_) => (Desired::Unchanged, Reason::UnknownNoHistory),
            _ => self.decide_now(&obs, now),
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

    /// The words for desired state, actual state before acting, and action.
    fn words(&self, r: &Report) -> (&'static str, &'static str, &'static str) {
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

    /// The `--once` line: `leader="pg1" node="pg1" desired=present actual=absent action=added …`.
    pub fn summary(&self, r: &Report) -> String {
        let leader = match &r.observation {
            Observation::Leader(name) => format!("{name:?}"),
            Observation::NoLeader => "none".into(),
            Observation::Unknown(_) => "unknown".into(),
        };
        let (desired, actual, action) = self.words(r);
        let mut line = format!(
            "leader={leader} node={:?} desired={desired} actual={actual} action={action} vip={} interface={}",
            self.cfg.trigger_value, self.cfg.vip, self.cfg.interface
        );
        if let Some(e) = self.error_text(r) {
            line.push_str(&format!(" error={e:?}"));
        }
        line
    }

    fn log_report(&mut self, r: &Report) {
        let vip = self.cfg.vip;
        let iface = &self.cfg.interface;
        // Actions first: they are what changed on this host.
        match &r.action {
            Action::Added => log::info!(
                "added {vip} to {iface} ({}); announcing",
                reason_text(r.reason)
            ),
            Action::Removed(n) => log::info!(
                "removed {} from {iface} ({n} removed; {})",
                vip.addr,
                reason_text(r.reason)
            ),
            Action::Reannounced => log::info!("{iface} is up again with {vip}: announcing"),
            Action::Failed(e) => {
                let text = e.to_string();
                if self.logged.error.as_ref() != Some(&text) {
                    log::error!(
                        "{text}; retrying every {} ms",
                        self.cfg.interval.as_millis()
                    );
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
        // What the DCS says, once per change.
        let changed = match (&self.logged.leader, &r.observation) {
            (Some(Observation::Unknown(_)), Observation::Unknown(_)) => false,
            (prev, now) => prev.as_ref() != Some(now),
        };
        if changed {
            match &r.observation {
                Observation::Leader(name) => log::info!(
                    "leader is {name:?} (this node is {:?})",
                    self.cfg.trigger_value
                ),
                Observation::NoLeader => {
                    log::info!("no leader: key {} is absent", self.cfg.trigger_key)
                }
                Observation::Unknown(e) => log::warn!("DCS unreachable: {e}"),
            }
            self.logged.leader = Some(r.observation.clone());
        } else if let Observation::Unknown(e) = &r.observation {
            log::debug!("DCS still unreachable: {e}");
        }
        // The grace policy's decisions, once per change.
        if self.logged.decision != Some((r.desired, r.reason)) {
            match r.reason {
                Reason::GraceHolding => log::warn!(
                    "keeping {} while the DCS is unreachable ({})",
                    vip.addr,
                    grace_text(self.cfg.dcs_grace)
                ),
                Reason::GraceExpired if r.present_before == Some(true) => {
                    log::warn!(
                        "DCS unreachable for longer than the grace period ({}): releasing {}",
                        grace_text(self.cfg.dcs_grace),
                        vip.addr
                    )
                }
                _ => {}
            }
            self.logged.decision = Some((r.desired, r.reason));
        }
    }
}

fn reason_text(r: Reason) -> &'static str {
    match r {
        Reason::ThisNodeLeads => "this node leads",
        Reason::OtherNodeLeads => "another node leads",
        Reason::NoLeader => "no leader",
        Reason::GraceHolding => "DCS unreachable, within grace",
        Reason::GraceExpired => "DCS unreachable, grace expired",
        Reason::UnknownNotLeading => "DCS unreachable, this node did not lead",
        Reason::UnknownNoHistory => "DCS unreachable since start",
    }
}

fn grace_text(g: Grace) -> String {
    match g {
        Grace::Never => "dcs-grace never".into(),
        Grace::After(d) => format!("dcs-grace {} ms", d.as_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{AnnounceMode, Vip};
    use std::collections::VecDeque;
    use std::net::IpAddr;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Op {
        Add(u8),
        Del(u8),
        Announce,
    }

    /// A kernel with one interface (index 7), its link state and address list.
    struct FakeNet {
        exists: bool,
        up: bool,
        addrs: Vec<(IpAddr, u8)>,
        ops: Vec<Op>,
        fail_add: bool,
        carrier_changes: u32,
    }

    impl FakeNet {
        fn new() -> Self {
            FakeNet {
                exists: true,
                up: true,
                addrs: Vec::new(),
                ops: Vec::new(),
                fail_add: false,
                carrier_changes: 1,
            }
        }
        fn announcements(&self) -> usize {
            self.ops.iter().filter(|o| **o == Op::Announce).count()
        }
    }

    impl AddrBackend for FakeNet {
        fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, NetError> {
            assert_eq!(name, "eth0");
            Ok(self.exists.then_some(LinkInfo {
                index: 7,
                up: self.up,
                mac: [2, 0, 0, 0, 0, 1],
                carrier_changes: self.carrier_changes,
            }))
        }
        fn vip_prefixes(&mut self, ifindex: u32, addr: IpAddr) -> Result<Vec<u8>, NetError> {
            assert_eq!(ifindex, 7);
            Ok(self
                .addrs
                .iter()
                .filter(|(a, _)| *a == addr)
                .map(|(_, l)| *l)
                .collect())
        }
        fn add(&mut self, _: u32, vip: Vip) -> Result<(), NetError> {
            if self.fail_add {
                return Err(NetError::new("add", libc::EPERM));
            }
            self.ops.push(Op::Add(vip.prefix_len));
            self.addrs.push((vip.addr, vip.prefix_len));
            Ok(())
        }
        fn del(&mut self, _: u32, addr: IpAddr, len: u8) -> Result<(), NetError> {
            self.ops.push(Op::Del(len));
            self.addrs.retain(|a| *a != (addr, len));
            Ok(())
        }
        fn announce(&mut self, link: &LinkInfo, _: Vip, _: AnnounceMode) -> Result<(), NetError> {
            assert!(link.up);
            self.ops.push(Op::Announce);
            Ok(())
        }
    }

    struct FakeDcs(VecDeque<Observation>);
    impl Dcs for FakeDcs {
        fn observe(&mut self, _: Instant) -> Observation {
            self.0
                .pop_front()
                .unwrap_or(Observation::Unknown("script ended".into()))
        }
    }

    fn config() -> Config {
        Config::example()
    }

    fn daemon() -> Daemon<FakeDcs, FakeNet> {
        Daemon::new(config(), FakeDcs(VecDeque::new()), FakeNet::new())
    }

    fn leader(name: &str) -> Observation {
        Observation::Leader(name.into())
    }

    /// Observe `obs` at `t0 + at_ms` and reconcile.
    fn step(d: &mut Daemon<FakeDcs, FakeNet>, t0: Instant, at_ms: u64, obs: Observation) -> Report {
        let now = t0 + Duration::from_millis(at_ms);
        let decision = d.decide_now(&obs, now);
        d.reconcile(obs, decision, now, false)
    }

    #[test]
    fn becoming_leader_adds_and_announces_at_once_then_on_schedule() {
        let mut d = daemon();
        let t0 = Instant::now();
        let r = step(&mut d, t0, 0, leader("pg1"));
        assert_eq!(r.action, Action::Added);
        assert_eq!(r.present_before, Some(false));
        assert_eq!(d.net.ops, [Op::Add(24), Op::Announce]);
        assert_eq!(
            d.next_announcement(),
            Some(t0 + Duration::from_millis(1000))
        );
        d.announce_due(t0 + Duration::from_millis(999), None);
        assert_eq!(d.net.announcements(), 1, "not due yet");
        d.announce_due(t0 + Duration::from_millis(1000), None);
        d.announce_due(t0 + Duration::from_millis(2000), None);
        d.announce_due(t0 + Duration::from_millis(3000), None);
        assert_eq!(d.net.announcements(), 3, "exactly announce-count");
        assert_eq!(d.next_announcement(), None);
        // Still leader: nothing more happens.
        let r = step(&mut d, t0, 3500, leader("pg1"));
        assert_eq!(r.action, Action::None);
        assert_eq!(d.net.ops.len(), 4);
    }

    #[test]
    fn another_leader_removes_every_copy() {
        let mut d = daemon();
        let vip: IpAddr = "192.0.2.50".parse().unwrap();
        d.net.addrs = vec![(vip, 24), (vip, 32), ("192.0.2.5".parse().unwrap(), 24)];
        let r = step(&mut d, Instant::now(), 0, leader("pg2"));
        assert_eq!(r.action, Action::Removed(2));
        assert_eq!(d.net.ops, [Op::Del(24), Op::Del(32)]);
        assert_eq!(d.net.addrs.len(), 1, "other addresses untouched");
    }

    #[test]
    fn no_leader_releases_and_cancels_the_burst() {
        let mut d = daemon();
        let t0 = Instant::now();
        step(&mut d, t0, 0, leader("pg1"));
        let r = step(&mut d, t0, 100, Observation::NoLeader);
        assert_eq!(r.action, Action::Removed(1));
        assert_eq!(d.next_announcement(), None);
        d.announce_due(t0 + Duration::from_secs(5), None);
        assert_eq!(d.net.announcements(), 1);
    }

    #[test]
    fn address_deleted_by_hand_comes_back_next_turn() {
        let mut d = daemon();
        let t0 = Instant::now();
        step(&mut d, t0, 0, leader("pg1"));
        d.net.addrs.clear();
        let r = step(&mut d, t0, 1000, leader("pg1"));
        assert_eq!(r.action, Action::Added);
        assert_eq!(d.net.addrs.len(), 1);
    }

    #[test]
    fn grace_keeps_then_releases_once() {
        let mut d = daemon();
        let t0 = Instant::now();
        step(&mut d, t0, 0, leader("pg1"));
        let unknown = || Observation::Unknown("connection refused".into());
        for at in [1000, 5000, 9999] {
            let r = step(&mut d, t0, at, unknown());
            assert_eq!(
                (r.desired, r.action),
                (Desired::Present, Action::None),
                "at {at} ms"
            );
        }
        // Deleted by hand during the outage: still repaired while in grace.
        d.net.addrs.clear();
        assert_eq!(step(&mut d, t0, 9999, unknown()).action, Action::Added);
        let r = step(&mut d, t0, 10_000, unknown());
        assert_eq!(
            (r.reason, r.action),
            (Reason::GraceExpired, Action::Removed(1))
        );
        let r = step(&mut d, t0, 11_000, unknown());
        assert_eq!(r.action, Action::None, "released once");
        // The DCS is back and this node still leads: added again.
        assert_eq!(
            step(&mut d, t0, 12_000, leader("pg1")).action,
            Action::Added
        );
    }

    #[test]
    fn link_down_then_up_reannounces() {
        let mut d = daemon();
        let t0 = Instant::now();
        step(&mut d, t0, 0, leader("pg1"));
        d.net.up = false;
        // The burst's next announcement falls while the link is down: dropped.
        d.announce_due(t0 + Duration::from_millis(1000), None);
        assert_eq!(step(&mut d, t0, 1000, leader("pg1")).action, Action::None);
        d.net.up = true;
        let r = step(&mut d, t0, 2000, leader("pg1"));
        assert_eq!(r.action, Action::Reannounced);
        assert_eq!(d.net.announcements(), 2);
        assert!(d.next_announcement().is_some());
    }

    #[test]
    fn a_flapping_key_never_announces_more_than_count_in_a_second() {
        // Leader here and elsewhere every 10 ms for 3 s: 150 adds, each a new burst.
        let t0 = Instant::now();
        let mut d = daemon();
        d.cfg.announce_interval = Duration::from_millis(100);
        let mut sent = Vec::new();
        let mut at = 0;
        while at < 3000 {
            let name = if (at / 10) % 2 == 0 { "pg1" } else { "pg2" };
            let before = d.net.announcements();
            step(&mut d, t0, at, leader(name));
            d.announce_due(t0 + Duration::from_millis(at + 5), None);
            for _ in before..d.net.announcements() {
                sent.push(at);
            }
            at += 10;
        }
        assert!(sent.len() >= 3, "still announcing: {sent:?}");
        for (i, &t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|&&u| u < t + 1000).count();
            assert!(
                in_window <= 3,
                "{in_window} announcements from {t} ms: {sent:?}"
            );
        }
        // A single move afterwards is announced at once again.
        let mut d = daemon();
        step(&mut d, t0, 0, leader("pg1"));
        assert_eq!(d.net.announcements(), 1);
    }

    #[test]
    fn a_flap_between_two_turns_reannounces() {
        let mut d = daemon();
        let t0 = Instant::now();
        step(&mut d, t0, 0, leader("pg1"));
        // Down and up again between turns: the link looks up both times.
        d.net.carrier_changes += 2;
        assert_eq!(
            step(&mut d, t0, 1000, leader("pg1")).action,
            Action::Reannounced
        );
        assert_eq!(step(&mut d, t0, 2000, leader("pg1")).action, Action::None);
    }

    #[test]
    fn missing_interface_is_reported_and_waited_for() {
        let mut d = daemon();
        d.net.exists = false;
        let t0 = Instant::now();
        assert_eq!(
            step(&mut d, t0, 0, leader("pg1")).action,
            Action::InterfaceMissing
        );
        d.net.exists = true;
        assert_eq!(step(&mut d, t0, 1000, leader("pg1")).action, Action::Added);
    }

    #[test]
    fn kernel_errors_are_reported_not_fatal() {
        let mut d = daemon();
        d.net.fail_add = true;
        let r = step(&mut d, Instant::now(), 0, leader("pg1"));
        assert!(matches!(
            r.action,
            Action::Failed(NetError {
                errno: libc::EPERM,
                ..
            })
        ));
        assert_eq!(d.next_announcement(), None);
    }

    #[test]
    fn dry_run_changes_nothing() {
        let mut d = daemon();
        let now = Instant::now();
        let obs = leader("pg1");
        let decision = d.decide_now(&obs, now);
        let r = d.reconcile(obs, decision, now, true);
        assert_eq!(r.action, Action::WouldAdd);
        assert!(d.net.ops.is_empty());
    }

    #[test]
    fn once_exit_statuses() {
        let run = |obs: Observation, addrs: Vec<(IpAddr, u8)>, dry: bool| {
            let mut cfg = config();
            cfg.announce_count = 1;
            cfg.dcs_grace = Grace::After(Duration::ZERO);
            let mut net = FakeNet::new();
            net.addrs = addrs;
            let d = Daemon::new(cfg, FakeDcs(VecDeque::from([obs])), net);
            d.once(dry, false)
        };
        let vip = vec![("192.0.2.50".parse().unwrap(), 24)];
        let (code, line) = run(leader("pg1"), vec![], false);
        assert_eq!(code, 0);
        assert_eq!(
            line,
            r#"leader="pg1" node="pg1" desired=present actual=absent action=added vip=192.0.2.50/24 interface=eth0"#
        );
        assert_eq!(run(leader("pg1"), vec![], true).0, 3);
        assert_eq!(run(leader("pg1"), vip.clone(), true).0, 0);
        assert_eq!(run(leader("pg2"), vip.clone(), true).0, 3);
        assert_eq!(run(Observation::NoLeader, vec![], true).0, 0);
        // Unknown: exit 1, and the VIP is left alone even with grace 0.
        let (code, line) = run(
            Observation::Unknown("connection refused".into()),
            vip.clone(),
            false,
        );
        assert_eq!(code, 1);
        assert!(
            line.contains("leader=unknown") && line.contains("action=none"),
            "{line}"
        );
        assert!(line.ends_with(r#"error="connection refused""#), "{line}");
    }
}

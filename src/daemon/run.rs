//! The long-running loop: turns on a cadence or on a change the watch saw,
//! announcements between turns, SIGHUP reloads and the release on exit. Between turns
//! the loop waits once for everything at the same time ([`crate::wake`]): the DCS, the
//! signal pipe, the kernel's reports and the sources of [`super::sources`].

use std::time::{Duration, Instant};

use super::{Daemon, Logged, Reload, Reloaded, pause};
use crate::config::Config;
use crate::dcs::{Dcs, Observation, Wait};
use crate::decide::Reason;
use crate::fence::GATE_POLL;
use crate::hooks::Hooks;
use crate::net::AddrBackend;
use crate::signals::{Signal, Signals};
use crate::wake::{self, Interest};

/// When the loop turns next.
struct Schedule {
    next_turn: Instant,
    /// A change seen by the watch, acted on before anything else.
    event: Option<Observation>,
    /// Watches that broke in a row; after one, wait for the deadline instead of
    /// re-reading at once, so a broken watch cannot spin the loop.
    broken_watches: u32,
}

/// What the daemon manages, for the start and reload lines.
fn managed_summary(cfg: &Config) -> String {
    let lifetime = cfg
        .vip_lifetime
        .map_or("forever".to_string(), |l| format!("{} ms", l.as_millis()));
    let follows = match &cfg.replica {
        None => format!("key {}", cfg.trigger_key),
        Some(r) => {
            let lag = r
                .max_lag
                .map_or("no limit".to_string(), |b| format!("{b} bytes"));
            let fallback = match r.fallback {
                crate::dcs::scope::Fallback::Primary => "primary",
                crate::dcs::scope::Fallback::None => "none",
            };
            format!(
                "vip-role {}, scope of {}, replica-max-lag {lag}, replica-settle {} ms, \
                 replica-fallback {fallback}",
                r.role.name(),
                cfg.trigger_key,
                r.settle.as_millis()
            )
        }
    };
    let place = match &cfg.hosted {
        None => format!("on {}", cfg.interface),
        Some(h) => {
            let local = match (cfg.local_address(), cfg.announces()) {
                (false, _) => "no local address".to_string(),
                (true, false) => format!("also on {}, not announced", cfg.interface),
                (true, true) => format!("also on {}", cfg.interface),
            };
            format!(
                "as a {} failover IP through {} ({local}; recheck {} ms)",
                h.manager_type(),
                h.api_url(),
                h.recheck.as_millis()
            )
        }
    };
    format!(
        "{} {place} for {:?} ({follows}, interval {} ms, vip-lifetime {lifetime})",
        cfg.vip,
        cfg.trigger_value,
        cfg.interval.as_millis()
    )
}

impl<D: Dcs, B: AddrBackend> Daemon<D, B> {
    /// Run until SIGTERM or SIGINT; returns the exit status. On SIGHUP, `reload`
    /// reads the configuration again ([`Reloaded`]); an error keeps the old one.
    pub fn run(mut self, signals: &Signals, reload: &mut Reload<'_, D>) -> i32 {
        let version = env!("CARGO_PKG_VERSION");
        log::info!("vipd {version} managing {}", managed_summary(&self.cfg));
        let mut schedule = Schedule {
            next_turn: Instant::now(),
            event: None,
            broken_watches: 0,
        };
        let mut pauses = pause::PauseWatch::new();
        let mut interest = Interest::default();
        loop {
            crate::logger::flush_pending();
            // A loop iteration is at most a turn and a wait, each bounded by interval,
            // and a question to Patroni (at most a second).
            if let Some(p) = pauses.look(self.cfg.interval * 3 + Duration::from_secs(2)) {
                self.resume_after(p, &mut schedule);
            }
            if std::mem::take(&mut self.turn_now) {
                schedule.next_turn = Instant::now();
            }
            self.turn_or_announce(&mut schedule);
            self.serve_own_reports();
            // Hooks queued by the turn start now, not after the wait.
            self.serve_sources(None);
            interest.clear();
            interest.fd(signals.fd(), libc::POLLIN);
            self.interest(&mut interest);
            self.wait(&mut schedule, &mut interest);
            interest.poll_ready();
            let signal = interest.is_ready(signals.fd()).then(|| signals.pending());
            match signal.flatten() {
                None => {}
                Some(Signal::Hup) => match reload(&self.cfg) {
                    Ok(new) => {
                        self.take_reloaded(new, Instant::now());
                        schedule.event = None;
                        schedule.next_turn = Instant::now();
                    }
                    Err(e) => log::error!("SIGHUP: {e}; keeping the running configuration"),
                },
                Some(sig) => return self.shutdown(sig),
            }
            let turn_due = schedule.event.is_some() || Instant::now() >= schedule.next_turn;
            self.serve_kernel(turn_due, &interest);
            self.serve_sources(Some(&mut interest));
            if let Some(refused) = self.refused_at_start.take() {
                return self.refused(&refused);
            }
        }
    }

    /// The provider refused the credentials or the address at start-up: release what
    /// this node holds and exit with status 2, as for a configuration error.
    fn refused(&mut self, refused: &crate::hosted::Failure) -> i32 {
        log::error!("{}: {refused}", self.cfg.manager_type());
        if let Err(e) = self.release() {
            log::error!("releasing {}: {e}", self.cfg.vip.addr);
        }
        2
    }

    /// After a pause ([`pause`]): forget what the DCS client remembers and what the
    /// watch saw, turn at once (which reads afresh), and age the last fact by the time
    /// the machine slept (which `Instant` did not count).
    fn resume_after(&mut self, p: pause::Pause, s: &mut Schedule) {
        log::warn!(
            "vipd did not run for {} ms (stopped or suspended): reading the DCS afresh",
            p.total.as_millis()
        );
        self.dcs.forget();
        s.event = None;
        s.next_turn = Instant::now();
        if let Some((leading, at)) = self.last_fact {
            let at = at.checked_sub(p.suspended).unwrap_or(self.started);
            self.last_fact = Some((leading, at));
        }
    }

    /// A turn when one is due or the watch saw a change; otherwise the announcement
    /// that is due, if any.
    fn turn_or_announce(&mut self, s: &mut Schedule) {
        let now = Instant::now();
        if s.event.is_none() && now < s.next_turn {
            self.announce_due(now, None);
            return;
        }
        let from_watch = s.event.is_some();
        let report = self.turn(s.event.take(), now + self.cfg.interval);
        if report.reason == Reason::AwaitingPrimary {
            // Ask Patroni again soon; a change of the key ends the wait sooner.
            s.next_turn = Instant::now() + GATE_POLL;
            return;
        }
        // After an event, read the key again at once to re-arm the watch from a fresh
        // revision; otherwise keep the cadence. A wait that ends a little late (timers
        // have a granularity) must not push every later turn back: keep the cadence
        // unless far behind.
        let cadence = s.next_turn + self.cfg.interval;
        s.next_turn = if from_watch {
            Instant::now()
        } else if cadence > now {
            cadence
        } else {
            now + self.cfg.interval
        };
    }

    /// The one wait: until the next turn, announcement or source deadline, a change of
    /// the key, or a ready descriptor of `interest` (a signal among them). The DCS
    /// client waits when it has a watch or a query to wait on, with the loop's
    /// descriptors in its `poll`; otherwise the loop waits on them alone.
    fn wait(&mut self, s: &mut Schedule, interest: &mut Interest) {
        let mut until = self
            .next_announcement()
            .map_or(s.next_turn, |a| a.min(s.next_turn));
        if let Some(at) = interest.deadline() {
            until = until.min(at);
        }
        let now = Instant::now();
        // A watch is worth starting only for a real wait (a few ms at least).
        if until > now + Duration::from_millis(5) {
            match self
                .dcs
                .wait(until, interest.wake().until_turn(s.next_turn))
            {
                Some(Wait::Changed(obs)) => {
                    s.event = Some(obs);
                    self.seen_at = Some(Instant::now());
                    s.broken_watches = 0;
                    return;
                }
                Some(Wait::Reread) if s.broken_watches == 0 => {
                    s.broken_watches += 1;
                    s.next_turn = Instant::now();
                    return;
                }
                Some(Wait::Reread) | None => {}
                Some(Wait::Deadline) => {
                    s.broken_watches = 0;
                    return;
                }
            }
        }
        wake::wait_until(interest, until);
    }

    /// Take a reloaded configuration: a VIP or interface that changed is released
    /// from the old place first (the next turn adds it at the new one); a new DCS
    /// client replaces the old; facts about another key or node name are forgotten.
    pub(super) fn take_reloaded(&mut self, new: Reloaded<D>, now: Instant) {
        let Reloaded {
            config,
            dcs,
            patroni,
            metrics_server,
            hosted,
        } = new;
        self.patroni = patroni;
        if config.metrics_listen != self.cfg.metrics_listen {
            // Bound by the reload when there is a new address; none: metrics off.
            self.metrics_server = metrics_server;
        }
        match (&config.on_change, self.hooks.as_mut()) {
            (Some(argv), Some(hooks)) => hooks.set_program(argv.clone(), config.on_change_timeout),
            (Some(argv), None) => {
                self.hooks = Some(Hooks::new(argv.clone(), config.on_change_timeout));
            }
            // Hooks already queued still run; no new ones are queued.
            (None, _) => {}
        }
        if config == self.cfg && dcs.is_none() {
            log::info!("SIGHUP: configuration unchanged");
            return;
        }
        // A new manager type is taken up only once the old one let go: its local
        // address removed (a routed IP needs no call: the next leader routes it).
        let manager_changed = config.manager_type() != self.cfg.manager_type()
            || config.local_address() != self.cfg.local_address();
        if config.vip != self.cfg.vip || config.interface != self.cfg.interface || manager_changed {
            let (addr, iface) = (self.cfg.vip.addr, self.cfg.interface.clone());
            match self.release() {
                Ok(0) => {}
                Ok(n) => log::info!(
                    "SIGHUP: released {addr} from {iface} ({n} removed) for the new configuration \
                     (manager-type {})",
                    self.cfg.manager_type()
                ),
                Err(e) => log::error!("SIGHUP: releasing {addr} from {iface}: {e}"),
            }
            self.pacing.stop();
            self.link_seen = None;
        }
        if config.hosted_changed(&self.cfg) {
            // The old worker is dropped: a call in flight finishes unread.
            self.hosted = hosted;
        }
        if config.vip_lifetime != self.cfg.vip_lifetime {
            // The next turn gives the VIP the new lifetime, if it is held.
            self.refreshed = None;
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
        crate::logger::set_tag(config.role().log_tag());
        self.cfg = config;
        log::info!(
            "SIGHUP: configuration reloaded: {}",
            managed_summary(&self.cfg)
        );
    }

    /// Release the VIP (unless keep-on-exit), then give the queued hooks what is left
    /// of one `on-change-timeout`.
    fn shutdown(&mut self, sig: Signal) -> i32 {
        let status = self.release_at_exit(sig);
        if let Some(hooks) = self.hooks.as_mut().filter(|h| h.busy()) {
            hooks.shutdown(self.cfg.on_change_timeout);
        }
        status
    }

    /// Release the VIP (unless keep-on-exit, trying three times) and say how it went.
    fn release_at_exit(&mut self, sig: Signal) -> i32 {
        let (sig, vip) = (sig.name(), self.cfg.vip);
        if self.cfg.keep_on_exit {
            log::info!("{sig}: exiting, keeping {vip} (keep-on-exit)");
            return 0;
        }
        let mut released = self.release();
        for _ in 1..3 {
            if released.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            released = self.release();
        }
        match released {
            Ok(0) if !self.cfg.local_address() => log::info!(
                "{sig}: exiting; {} stays routed where it is (the next leader moves it)",
                vip.addr
            ),
            Ok(0) => log::info!("{sig}: exiting; {} was not configured", vip.addr),
            Ok(n) => {
                log::info!(
                    "{sig}: released {} from {} ({n} removed); exiting",
                    vip.addr,
                    self.cfg.interface
                );
                let leader = self.last_turn.as_ref().map(|t| t.observation.clone());
                self.hook(
                    crate::hooks::Kind::Removed,
                    &leader.unwrap_or(crate::dcs::Observation::NoLeader),
                );
            }
            Err(e) => {
                log::error!("{sig}: could not release {}: {e}; exiting", vip.addr);
                return 1;
            }
        }
        0
    }
}

//! On-change hooks: a program (`on-change`) run on each state change of the VIP or
//! the DCS, one at a time, in the order of the events.
//!
//! **After the change, never before it.** The loop pushes an event once the change is
//! made (the VIP added or removed, the DCS seen lost or back), and starting a hook is
//! left to the next [`Hooks::step`]: a slow, hung or missing hook can delay only later
//! hooks, never the VIP. A hook is told what happened; it cannot veto or delay it.
//!
//! **In order, one at a time.** A hook that sees `added` and then `removed` must be
//! able to trust that the VIP's last state is the last event it saw, so hooks never
//! overlap: the next starts when the last has ended (or was killed at its timeout).
//! Events wait in a queue of at most [`QUEUE`]; beyond it the oldest is dropped, since
//! the newest state is the one a hook must act on, and the drops are counted and
//! logged when the next hook starts.
//!
//! **No shell, little environment.** `argv` is run as given. The environment is
//! cleared and holds only `PATH` and the `VIPD_*` variables, so no secret of vipd's
//! (`VIP_ETCD_PASSWORD`, a token) reaches a hook. stdin is `/dev/null`; stdout and
//! stderr are pipes whose lines go to vipd's log. Each hook runs in its own process
//! group, so that at its timeout SIGKILL reaches whatever it started too.
//!
//! **Capabilities.** A hook inherits what vipd kept after dropping privileges
//! ([`crate::caps`]): at most `CAP_NET_ADMIN` and `CAP_NET_RAW`, under
//! `no_new_privs` (a set-uid program gains nothing). Run as root, a hook thus has
//! those two and root's file ownership, but not `CAP_DAC_OVERRIDE`; run as its own
//! user with file capabilities, vipd passes none (the ambient and inheritable sets
//! are empty).
//!
//! The loop polls [`Hooks::interest`] (the pipes and a pidfd for the exit; without
//! pidfds a 50 ms tick) until [`Hooks::deadline`], and calls [`Hooks::step`] after
//! every wake: it reads, reaps, kills and starts without waiting.

mod child;
mod output;
#[allow(unsafe_code)]
mod sys;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::process::Child;
use std::time::{Duration, Instant};

use child::{Running, State};
pub use output::{Lines, MAX_LINE};

/// The most events waiting for their hook (the running one not counted).
pub const QUEUE: usize = 64;
/// How often a running hook is looked at where no pidfd tells its exit.
pub const TICK: Duration = Duration::from_millis(50);
/// `PATH` for hooks when vipd has none.
pub const DEFAULT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Added,
    Removed,
    Conflict,
    DcsLost,
    DcsBack,
}

impl Kind {
    /// `VIPD_EVENT`'s value.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Removed => "removed",
            Kind::Conflict => "conflict",
            Kind::DcsLost => "dcs-lost",
            Kind::DcsBack => "dcs-back",
        }
    }
}

/// One change, as a hook sees it in its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    /// `VIPD_VIP`: the address, as configured.
    pub vip: String,
    /// `VIPD_INTERFACE`.
    pub interface: String,
    /// `VIPD_LEADER`: the leader key's value; empty when there is none or it is
    /// unknown.
    pub leader: String,
    /// `VIPD_NODE`: this node's name (`trigger-value`).
    pub node: String,
}

/// The hook, its queue and the one that runs.
#[derive(Debug)]
pub struct Hooks {
    argv: Vec<String>,
    timeout: Duration,
    path: String,
    queue: VecDeque<Event>,
    /// Events dropped from a full queue and not yet logged.
    dropped: u64,
    running: Option<Running>,
    /// Hooks killed at their timeout and not yet reaped.
    dying: Vec<Child>,
    /// The next look where no pidfd says when to look.
    tick: Option<Instant>,
    /// Set by [`Hooks::shutdown`]: no hook may run past it.
    cap: Option<Instant>,
}

impl Hooks {
    /// Hooks running `argv` (`argv[0]` the program; empty: no hook), each killed
    /// after `timeout`.
    pub fn new(argv: Vec<String>, timeout: Duration) -> Hooks {
        let path = std::env::var("PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        Hooks {
            argv,
            timeout,
            path,
            queue: VecDeque::new(),
            dropped: 0,
            running: None,
            dying: Vec::new(),
            tick: None,
            cap: None,
        }
    }

    /// A new program and timeout (a reload): hooks started from now on use them; a
    /// running hook keeps its own. An empty `argv` drops the queued events.
    pub fn set_program(&mut self, argv: Vec<String>, timeout: Duration) {
        if argv.is_empty() {
            self.queue.clear();
            self.dropped = 0;
        }
        self.argv = argv;
        self.timeout = timeout;
    }

    /// Queue `ev` for the hook; never blocks (the hook starts at the next step).
    /// When [`QUEUE`] events wait already, the oldest is dropped and counted.
    pub fn push(&mut self, ev: Event) {
        if self.argv.is_empty() {
            return;
        }
        while self.queue.len() >= QUEUE {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(ev);
    }

    /// The running hook's pipes and pidfd, for `POLLIN`.
    pub fn interest(&self, out: &mut Vec<libc::pollfd>) {
        if let Some(r) = &self.running {
            r.interest(out);
        }
    }

    /// When [`Hooks::step`] must run even if nothing is readable: the running hook's
    /// timeout, the tick, or now when an event waits and no hook runs.
    pub fn deadline(&self) -> Option<Instant> {
        let start = match &self.running {
            None if !self.queue.is_empty() => Some(Instant::now()),
            _ => None,
        };
        [
            self.running.as_ref().map(|r| r.timeout_at),
            self.tick,
            start,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Without waiting: log the running hook's output, notice its end, kill its
    /// group at its timeout, reap killed ones, and start the next queued event.
    pub fn step(&mut self, now: Instant) {
        self.dying.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        if let Some(mut r) = self.running.take() {
            match r.step() {
                State::Running if now >= r.timeout_at => self.kill_at_timeout(r, now),
                State::Running => self.running = Some(r),
                State::Exited(status) => log_exit(&r, status, now),
                State::Lost(e) => {
                    log::warn!("on-change[{}]: its end was lost: {e}", r.kind.name())
                }
            }
        }
        if self.running.is_none() {
            self.start_next(now);
        }
        let look = self.running.as_ref().is_some_and(|r| !r.has_pidfd());
        self.tick = (look || !self.dying.is_empty()).then_some(now + TICK);
    }

    /// A hook runs or an event waits for one.
    pub fn busy(&self) -> bool {
        self.running.is_some() || !self.queue.is_empty()
    }

    /// Events waiting (the running hook not counted).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// At exit: the running and queued hooks get what is left of one `timeout` in
    /// all (waiting here is fine: the VIP is already released or kept); then the
    /// running one is killed and the rest dropped, in one log line.
    pub fn shutdown(&mut self, timeout: Duration) {
        let end = Instant::now() + timeout;
        self.cap = Some(end);
        if let Some(r) = &mut self.running {
            r.timeout_at = r.timeout_at.min(end);
        }
        for _ in 0..100_000 {
            let now = Instant::now();
            if now >= end {
                break;
            }
            self.step(now);
            if !self.busy() {
                break;
            }
            let wake = self.deadline().map_or(end, |d| d.min(end));
            let mut fds = Vec::new();
            self.interest(&mut fds);
            let ms = wake.saturating_duration_since(Instant::now()).as_micros();
            let ms = i32::try_from(ms.div_ceil(1000)).unwrap_or(i32::MAX);
            // An error (a signal) only ends this wait early; the bound is `end`.
            let _ = crate::net::sys::poll(&mut fds, ms);
        }
        self.give_up(timeout);
    }

    /// The end of [`Hooks::shutdown`]: kill the running hook, drop the queue, say so
    /// in one line, and reap (briefly: a killed process ends at once).
    fn give_up(&mut self, timeout: Duration) {
        let queued = std::mem::take(&mut self.queue).len() as u64 + self.dropped;
        self.dropped = 0;
        let killed = self.running.take().map(|r| {
            let kind = r.kind;
            self.dying.push(r.kill());
            kind
        });
        match (killed, queued) {
            (None, 0) => {}
            (Some(k), n) => log::warn!(
                "on-change: exiting: killed the hook for {} after {} ms in all, {n} \
                 events not run",
                k.name(),
                timeout.as_millis()
            ),
            (None, n) => log::warn!("on-change: exiting: {n} events not run"),
        }
        for _ in 0..20 {
            self.dying.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            if self.dying.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill_at_timeout(&mut self, r: Running, now: Instant) {
        log::warn!(
            "on-change[{}]: killed (with its process group) after {} ms: on-change-timeout",
            r.kind.name(),
            r.ran(now).as_millis()
        );
        self.dying.push(r.kill());
    }

    /// Start the oldest queued event's hook; one that cannot start is logged and
    /// the next is tried.
    fn start_next(&mut self, now: Instant) {
        while let Some(ev) = self.queue.pop_front() {
            if self.dropped > 0 {
                log::warn!(
                    "on-change: {} events dropped (queue full)",
                    std::mem::take(&mut self.dropped)
                );
            }
            let timeout_at = self
                .cap
                .map_or(now + self.timeout, |c| c.min(now + self.timeout));
            match Running::spawn(&self.argv, &self.path, &ev, now, timeout_at) {
                Ok(r) => {
                    self.running = Some(r);
                    return;
                }
                Err(e) => log::error!(
                    "on-change[{}]: cannot run {}: {e}",
                    ev.kind.name(),
                    self.argv.first().map_or("", String::as_str)
                ),
            }
        }
    }
}

/// One line for a hook that failed; a debug line for one that succeeded.
fn log_exit(r: &Running, status: std::process::ExitStatus, now: Instant) {
    use std::os::unix::process::ExitStatusExt;
    let (kind, ms) = (r.kind.name(), r.ran(now).as_millis());
    match (status.code(), status.signal()) {
        (Some(0), _) => log::debug!("on-change[{kind}]: done in {ms} ms"),
        (Some(code), _) => log::warn!("on-change[{kind}]: exited with status {code} after {ms} ms"),
        (None, Some(sig)) => log::warn!("on-change[{kind}]: killed by signal {sig} after {ms} ms"),
        (None, None) => log::warn!("on-change[{kind}]: ended ({status}) after {ms} ms"),
    }
}

//! `on-change` hooks (placeholder: the interface; running them follows).

use std::time::{Duration, Instant};

/// What happened (`VIPD_EVENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Added,
    Removed,
    Conflict,
    DcsLost,
    DcsBack,
}

/// One state change, as the hook's environment tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub vip: String,
    pub interface: String,
    pub leader: String,
    pub node: String,
}

pub struct Hooks {
    argv: Vec<String>,
    timeout: Duration,
}

impl Hooks {
    pub fn new(argv: Vec<String>, timeout: Duration) -> Hooks {
        Hooks { argv, timeout }
    }

    /// Hooks started from now on run `argv`, bounded by `timeout`.
    pub fn set_program(&mut self, argv: Vec<String>, timeout: Duration) {
        (self.argv, self.timeout) = (argv, timeout);
    }

    pub fn push(&mut self, ev: Event) {
        let _ = ev;
    }

    pub fn interest(&self, out: &mut Vec<libc::pollfd>) {
        let _ = out;
    }

    pub fn deadline(&self) -> Option<Instant> {
        None
    }

    pub fn step(&mut self, now: Instant) {
        let _ = now;
    }

    pub fn busy(&self) -> bool {
        false
    }

    pub fn shutdown(&mut self, timeout: Duration) {
        let _ = timeout;
    }
}

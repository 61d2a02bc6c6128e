//! Prometheus metrics (placeholder: the registry's interface; the exposition follows).

pub mod server;

use std::time::{Duration, SystemTime};

/// The counters and the reaction histogram.
#[derive(Debug, Default)]
pub struct Metrics {
    pub added: u64,
    pub removed: u64,
    pub announcements: u64,
    pub conflicts: u64,
    pub dcs_errors: u64,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe_reaction(&mut self, d: Duration) {
        let _ = d;
    }
}

/// The state shown as gauges, read when a scrape comes.
pub struct Gauges<'a> {
    pub version: &'a str,
    pub vip: &'a str,
    pub interface: &'a str,
    pub configured: bool,
    pub desired: bool,
    pub dcs_up: bool,
    pub dcs_last_success: Option<SystemTime>,
}

pub fn render(m: &Metrics, g: &Gauges, out: &mut String) {
    let _ = (m, g, out);
}

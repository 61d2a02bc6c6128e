//! Prometheus metrics: the counters and the reaction histogram the loop keeps, and their
//! text exposition (format 0.0.4), served by [`server`].
//!
//! The registry is a handful of plain integers and one fixed array of buckets: updating it
//! costs an addition, and it never allocates. Rendering writes into a caller's `String`, so
//! a scrape reuses one buffer.

pub mod server;

use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// The upper bounds of `vipd_reaction_seconds`, in seconds. A reaction is a few hundred
/// microseconds on an idle host, so the buckets start well below a millisecond; the
/// last ones catch a loop held up by a slow DCS or kernel.
pub const REACTION_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A histogram with fixed buckets: per-bucket counts (not cumulative; the exposition sums
/// them), the count and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations in each bucket of [`REACTION_BUCKETS`], and above the last (`+Inf`).
    buckets: [u64; REACTION_BUCKETS.len() + 1],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = REACTION_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(REACTION_BUCKETS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += secs;
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The counters the loop updates as it goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// The VIP added to the interface.
    pub added: u64,
    /// The VIP removed from the interface.
    pub removed: u64,
    /// Gratuitous ARPs or unsolicited neighbour advertisements sent.
    pub announcements: u64,
    /// Another host seen answering for the VIP.
    pub conflicts: u64,
    /// Turns whose DCS answer was unknown (unreachable, no quorum, a bad reply).
    pub dcs_errors: u64,
    reaction: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// From the turn that saw a new leader value to the address being in the kernel.
    pub fn observe_reaction(&mut self, d: Duration) {
        self.reaction.observe(d);
    }

    pub fn reaction(&self) -> &Histogram {
        &self.reaction
    }
}

/// The state at scrape time, read from the daemon rather than counted.
#[derive(Debug, Clone)]
pub struct Gauges<'a> {
    pub version: &'a str,
    /// The address only, e.g. `192.0.2.50`.
    pub vip: &'a str,
    pub interface: &'a str,
    /// The VIP is on the interface.
    pub configured: bool,
    /// The last decision wants the VIP here.
    pub desired: bool,
    /// The DCS answered at the last turn.
    pub dcs_up: bool,
    pub dcs_last_success: Option<SystemTime>,
}

/// Append the exposition of `m` and `g` to `out`.
pub fn render(m: &Metrics, g: &Gauges, out: &mut String) {
    let vip_labels = format_labels(&[("vip", g.vip), ("interface", g.interface)]);
    header(out, "vipd_build_info", "gauge", "vipd's version; always 1.");
    sample(
        out,
        "vipd_build_info",
        &format_labels(&[("version", g.version)]),
        1,
    );
    header(
        out,
        "vipd_vip_configured",
        "gauge",
        "1 when the VIP is on the interface.",
    );
    sample(
        out,
        "vipd_vip_configured",
        &vip_labels,
        u64::from(g.configured),
    );
    header(
        out,
        "vipd_vip_desired",
        "gauge",
        "1 when the last decision wants the VIP on this node.",
    );
    sample(out, "vipd_vip_desired", &vip_labels, u64::from(g.desired));
    header(
        out,
        "vipd_dcs_up",
        "gauge",
        "1 when the DCS answered at the last turn.",
    );
    sample(out, "vipd_dcs_up", "", u64::from(g.dcs_up));
    let last = g
        .dcs_last_success
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    header(
        out,
        "vipd_dcs_last_success_timestamp_seconds",
        "gauge",
        "When the DCS last answered, in Unix seconds; 0 when it never did.",
    );
    let _ = writeln!(out, "vipd_dcs_last_success_timestamp_seconds {last:.3}");
    header(
        out,
        "vipd_transitions_total",
        "counter",
        "Changes made to the interface: the VIP added or removed.",
    );
    sample(out, "vipd_transitions_total", "{action=\"added\"}", m.added);
    sample(
        out,
        "vipd_transitions_total",
        "{action=\"removed\"}",
        m.removed,
    );
    let counters = [
        (
            "vipd_announcements_total",
            "Gratuitous ARPs and unsolicited neighbour advertisements sent.",
            m.announcements,
        ),
        (
            "vipd_conflicts_total",
            "Times another host was seen answering for the VIP.",
            m.conflicts,
        ),
        (
            "vipd_dcs_errors_total",
            "Turns whose DCS answer was unknown (unreachable, no quorum, a bad reply).",
            m.dcs_errors,
        ),
    ];
    for (name, help, value) in counters {
        header(out, name, "counter", help);
        sample(out, name, "", value);
    }
    render_histogram(out, &m.reaction);
}

fn render_histogram(out: &mut String, h: &Histogram) {
    const NAME: &str = "vipd_reaction_seconds";
    header(
        out,
        NAME,
        "histogram",
        "From the turn that saw a new leader value to the VIP being in the kernel.",
    );
    let mut cumulative = 0;
    for (le, n) in REACTION_BUCKETS.iter().zip(h.buckets) {
        cumulative += n;
        let _ = writeln!(out, "{NAME}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{NAME}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{NAME}_sum {}", h.sum);
    let _ = writeln!(out, "{NAME}_count {}", h.count);
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: u64) {
    let _ = writeln!(out, "{name}{labels} {value}");
}

/// `{a="x",b="y"}`, the values escaped as the text format wants: `\`, `"` and a line
/// feed are written `\\`, `\"` and `\n` (an interface name or version is not trusted to
/// be plain).
fn format_labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("{");
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(name);
        s.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests;

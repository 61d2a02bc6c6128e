use std::time::{Duration, SystemTime};

use super::*;

fn gauges() -> Gauges<'static> {
    Gauges {
        version: "1.2.3",
        vip: "192.0.2.50",
        interface: "eth0",
        configured: true,
        desired: true,
        dcs_up: false,
        dcs_last_success: None,
    }
}

fn rendered(m: &Metrics, g: &Gauges) -> String {
    let mut out = String::new();
    render(m, g, &mut out);
    out
}

/// The value of the sample whose name and labels are `series`.
fn value<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
}

#[test]
fn every_sample_follows_its_help_and_type() {
    let text = rendered(&Metrics::new(), &gauges());
    let mut described: Vec<(String, String)> = Vec::new();
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(!help.is_empty(), "{line}");
            described.push((name.to_string(), String::new()));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            let last = described.last_mut().expect("TYPE after HELP");
            assert_eq!(last.0, name, "TYPE follows its own HELP");
            last.1 = kind.to_string();
        } else {
            samples += 1;
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let (family, kind) = described.last().expect("a sample after HELP/TYPE");
            let base = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name),
                _ => name,
            };
            assert_eq!(base, family, "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
        }
    }
    let families: Vec<&str> = described.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        families,
        [
            "vipd_build_info",
            "vipd_vip_configured",
            "vipd_vip_desired",
            "vipd_dcs_up",
            "vipd_dcs_last_success_timestamp_seconds",
            "vipd_transitions_total",
            "vipd_announcements_total",
            "vipd_conflicts_total",
            "vipd_dcs_errors_total",
            "vipd_reaction_seconds",
        ]
    );
    // 8 single samples, 2 transitions, 15 buckets, _sum and _count.
    assert_eq!(samples, 8 + 2 + 15 + 2);
    assert!(text.ends_with('\n'));
}

#[test]
fn values_and_labels() {
    let mut m = Metrics::new();
    m.added = 3;
    m.removed = 2;
    m.announcements = 9;
    m.conflicts = 1;
    m.dcs_errors = 7;
    let mut g = gauges();
    g.desired = false;
    g.dcs_last_success = Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
    let text = rendered(&m, &g);
    let vip = "{vip=\"192.0.2.50\",interface=\"eth0\"}";
    assert_eq!(
        value(&text, "vipd_build_info{version=\"1.2.3\"}"),
        Some("1")
    );
    assert_eq!(
        value(&text, &format!("vipd_vip_configured{vip}")),
        Some("1")
    );
    assert_eq!(value(&text, &format!("vipd_vip_desired{vip}")), Some("0"));
    assert_eq!(value(&text, "vipd_dcs_up"), Some("0"));
    assert_eq!(
        value(&text, "vipd_dcs_last_success_timestamp_seconds"),
        Some("1700000000.500")
    );
    assert_eq!(
        value(&text, "vipd_transitions_total{action=\"added\"}"),
        Some("3")
    );
    assert_eq!(
        value(&text, "vipd_transitions_total{action=\"removed\"}"),
        Some("2")
    );
    assert_eq!(value(&text, "vipd_announcements_total"), Some("9"));
    assert_eq!(value(&text, "vipd_conflicts_total"), Some("1"));
    assert_eq!(value(&text, "vipd_dcs_errors_total"), Some("7"));
    // Never answered: 0, not the epoch formatted oddly or a missing sample.
    let never = rendered(&m, &gauges());
    assert_eq!(
        value(&never, "vipd_dcs_last_success_timestamp_seconds"),
        Some("0.000")
    );
}

#[test]
fn label_values_are_escaped() {
    let mut g = gauges();
    g.interface = "a\"b\\c\nd";
    g.version = "x\\";
    let text = rendered(&Metrics::new(), &g);
    assert!(
        text.contains("vipd_vip_configured{vip=\"192.0.2.50\",interface=\"a\\\"b\\\\c\\nd\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("vipd_build_info{version=\"x\\\\\"} 1\n"),
        "{text}"
    );
    // The raw line feed never reaches the output: every line is a comment or a sample.
    assert!(
        text.lines()
            .all(|l| l.starts_with('#') || l.starts_with("vipd_"))
    );
}

#[test]
fn histogram_is_cumulative() {
    let mut m = Metrics::new();
    for us in [50, 100, 300, 3_000, 10_000_000] {
        m.observe_reaction(Duration::from_micros(us));
    }
    let text = rendered(&m, &gauges());
    let bucket = |le: &str| {
        value(
            &text,
            &format!("vipd_reaction_seconds_bucket{{le=\"{le}\"}}"),
        )
    };
    // 100 µs is on the bound and belongs to it (`le`: less or equal).
    assert_eq!(bucket("0.0001"), Some("2"));
    assert_eq!(bucket("0.00025"), Some("2"));
    assert_eq!(bucket("0.0005"), Some("3"));
    assert_eq!(bucket("0.001"), Some("3"));
    assert_eq!(bucket("0.0025"), Some("3"));
    assert_eq!(bucket("0.005"), Some("4"));
    assert_eq!(bucket("1"), Some("4"));
    assert_eq!(bucket("2.5"), Some("4"));
    assert_eq!(bucket("+Inf"), Some("5"));
    assert_eq!(value(&text, "vipd_reaction_seconds_count"), Some("5"));
    let sum: f64 = value(&text, "vipd_reaction_seconds_sum")
        .and_then(|v| v.parse().ok())
        .expect("a float sum");
    assert!((sum - 10.00345).abs() < 1e-9, "{sum}");
    // Never decreasing, bucket after bucket.
    let counts: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("vipd_reaction_seconds_bucket"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(counts.len(), REACTION_BUCKETS.len() + 1);
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
}

#[test]
fn rendering_appends_and_reuses_the_buffer() {
    let mut out = String::new();
    render(&Metrics::new(), &gauges(), &mut out);
    let once = out.len();
    let capacity = out.capacity();
    out.clear();
    render(&Metrics::new(), &gauges(), &mut out);
    assert_eq!(out.len(), once);
    assert_eq!(out.capacity(), capacity);
}

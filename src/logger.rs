//! A minimal `log` backend: one line per record on stderr, UTC timestamp first.
//!
//! Written here rather than taken from `simple_logger` because a log write must never
//! abort the daemon: `eprintln!` (which simple_logger uses) panics when stderr is a
//! dead pipe, and with `panic = "abort"` that panic would be an outage. Here a failed
//! write is dropped.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Whether debug records are written (`verbose`; changed by a reload).
static VERBOSE: AtomicBool = AtomicBool::new(false);

struct StderrLogger;

impl StderrLogger {
    fn level() -> LevelFilter {
        if VERBOSE.load(Ordering::Relaxed) {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        }
    }
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Libraries (rustls) log at debug level on every connection: keep their warnings
        // and errors, and vipd's own records at the chosen level.
        let level = if metadata.target().starts_with("vipd") {
            Self::level()
        } else {
            LevelFilter::Warn
        };
        metadata.level() <= level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let line = format!(
            "{} {level} {}\n",
            timestamp(SystemTime::now()),
            record.args()
        );
        // One write per line so concurrent writers to the same pipe do not interleave;
        // an error (EPIPE, EIO, a full disk) is deliberately ignored.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Install the logger; `verbose` enables debug records.
pub fn init(verbose: bool) {
    if log::set_boxed_logger(Box::new(StderrLogger)).is_ok() {
        set_verbose(verbose);
    }
}

/// Turn debug records on or off (at start, and on SIGHUP with a changed `verbose`).
pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
    log::set_max_level(StderrLogger::level());
}

/// `2026-11-26T10:34:16.123Z` for `t` (UTC; civil-from-days after H. Hinnant).
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        let at = |s: u64, ms: u64| timestamp(UNIX_EPOCH + Duration::from_millis(s * 1000 + ms));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_689_256, 123), "2026-11-26T10:34:16.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }
}

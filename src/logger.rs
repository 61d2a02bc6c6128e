//! A minimal `log` backend: one line per record on stderr, UTC timestamp first, and a
//! write that never blocks the daemon's loop.
//!
//! Written here rather than taken from `simple_logger` because a log write must never
//! abort or stall the daemon: `eprintln!` (which simple_logger uses) panics when stderr
//! is a dead pipe, and with `panic = "abort"` that panic would be an outage. Here a
//! failed write is dropped.
//!
//! **A log write never blocks the loop.** stderr is often a pipe to a log collector
//! (svlogd, a shell pipeline). When nobody reads it, a plain write blocks once the
//! pipe's buffer is full, and with it the single-threaded loop: the VIP's refresh, the
//! DCS reads, everything. stderr cannot be made non-blocking: `O_NONBLOCK` belongs to
//! the open file description, which the parent shell or the collector's other writers
//! share, and would change their behaviour. Instead every line is written only after
//! `poll(2)` with a zero timeout reports stderr writable (`POLLOUT`):
//!
//! - A pipe reports `POLLOUT` only while at least one of its buffer pages is free, at
//!   least `PIPE_BUF` (4096) bytes. A write of at most `PIPE_BUF` bytes to a pipe is
//!   atomic: it is taken whole or waits. Every line is therefore capped at
//!   [`MAX_LINE`] = `PIPE_BUF` bytes (longer ones are cut and end in `...`), so a line
//!   written after `POLLOUT` fits and returns at once. Without the cap, a longer write
//!   could fill the pipe part-way and then wait for the reader.
//! - A regular file always reports `POLLOUT`; a write to it does not wait for a reader.
//!   A Unix stream socket (the journal's) reports it while its send buffer is at most a
//!   quarter used, far more than a line.
//! - `POLLERR`, `POLLHUP` or `POLLNVAL` (no reader left, stderr closed) mean the write
//!   fails at once rather than waits: it is made, and its error ignored.
//!
//! What remains: another process writing to the same pipe between the poll and the
//! write could take the free page; vipd writes to its stderr only from here, and one
//! thread. A terminal stopped with ^S can also hold a write; a terminal has a person
//! in front of it.
//!
//! A line that finds stderr not writable waits in a bounded queue ([`Pending`]: at
//! most [`QUEUE_LINES`] lines and [`QUEUE_BYTES`] bytes; when full the oldest line is
//! dropped and counted). The next log call, or [`flush_pending`] which the loop calls
//! once a turn, writes what it can, first a line saying how many were dropped.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::net::sys;

/// The longest line written, newline included: `PIPE_BUF`, the most a pipe takes whole.
pub const MAX_LINE: usize = 4096;
/// The most lines kept while stderr is not writable.
pub const QUEUE_LINES: usize = 64;
/// The most bytes kept while stderr is not writable.
pub const QUEUE_BYTES: usize = 16 * 1024;

/// Whether debug records are written (`verbose`; changed by a reload).
static VERBOSE: AtomicBool = AtomicBool::new(false);
/// Written before every message: which VIP role this instance serves (empty for the
/// primary VIP), so that a replica instance's lines stand apart from the primary's in
/// a shared log.
static TAG: Mutex<&'static str> = Mutex::new("");

/// The lines not yet written, for every log call and [`flush_pending`].
static PENDING: Mutex<Pending> = Mutex::new(Pending::new());

/// Lines waiting for stderr to become writable, oldest first, and how many were
/// dropped to keep the queue within its bounds.
#[derive(Debug, Default)]
pub struct Pending {
    lines: VecDeque<String>,
    bytes: usize,
    dropped: u64,
}

impl Pending {
    pub const fn new() -> Pending {
        Pending {
            lines: VecDeque::new(),
            bytes: 0,
            dropped: 0,
        }
    }

    /// Queue `line` (capped at [`MAX_LINE`]), dropping the oldest lines while the
    /// queue would exceed [`QUEUE_LINES`] or [`QUEUE_BYTES`].
    pub fn push(&mut self, line: String) {
        let line = capped(line);
        while self.lines.len() >= QUEUE_LINES
            || (!self.lines.is_empty() && self.bytes + line.len() > QUEUE_BYTES)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len();
                self.dropped += 1;
            }
        }
        self.bytes += line.len();
        self.lines.push_back(line);
    }

    /// Write the queued lines, the count of dropped ones first, each only while
    /// `writable()` says a line can be written without waiting; stops at the first
    /// "no" and keeps the rest. `now` stamps the dropped-lines line.
    pub fn flush(
        &mut self,
        mut writable: impl FnMut() -> bool,
        mut write: impl FnMut(&[u8]),
        now: SystemTime,
    ) {
        if self.dropped > 0 {
            if !writable() {
                return;
            }
            let n = std::mem::take(&mut self.dropped);
            write(dropped_line(n, now).as_bytes());
        }
        while let Some(line) = self.lines.front() {
            if !writable() {
                return;
            }
            write(line.as_bytes());
            if let Some(done) = self.lines.pop_front() {
                self.bytes -= done.len();
            }
        }
    }

    /// Lines queued.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Nothing queued (lines are dropped only to make room for a newer one, so a
    /// drop count is never left without a line).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Lines dropped since the last dropped-lines line.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// `line` cut to at most [`MAX_LINE`] bytes at a character boundary, ending in
/// `...` and a newline when cut.
fn capped(mut line: String) -> String {
    if line.len() <= MAX_LINE {
        return line;
    }
    let mut cut = MAX_LINE - "...\n".len();
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    line.push_str("...\n");
    line
}

/// The line that stands for `n` lines dropped from the queue.
fn dropped_line(n: u64, now: SystemTime) -> String {
    format!(
        "{} WARN  {n} log lines dropped: stderr was not writable\n",
        timestamp(now)
    )
}

/// Whether a line of at most [`MAX_LINE`] bytes can be written to stderr now without
/// waiting (see the module documentation). An error, or an error condition, means
/// the write fails at once rather than waits: also "yes". A failed poll: "no".
fn stderr_writable() -> bool {
    let mut fds = [libc::pollfd {
        fd: libc::STDERR_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    }];
    matches!(sys::poll(&mut fds, 0), Ok(1)) && fds[0].revents != 0
}

/// Write what the queue holds while stderr is writable; errors (EPIPE, EIO, a full
/// disk) are deliberately ignored. One write per line, so that concurrent writers
/// to the same pipe do not interleave.
fn flush_locked(pending: &mut Pending) {
    let write = |line: &[u8]| {
        let _ = std::io::stderr().lock().write_all(line);
    };
    pending.flush(stderr_writable, write, SystemTime::now());
}

/// Write the lines that waited for stderr to become writable, if it is now. The
/// daemon's loop calls this once a turn, so a queue is written out even when no
/// further record comes.
pub fn flush_pending() {
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if !pending.is_empty() {
        flush_locked(&mut pending);
    }
}

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
        let tag = *TAG.lock().unwrap_or_else(|e| e.into_inner());
        let line = format!(
            "{} {level} {tag}{}\n",
            timestamp(SystemTime::now()),
            record.args()
        );
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        pending.push(line);
        flush_locked(&mut pending);
    }

    fn flush(&self) {
        flush_pending();
    }
}

/// Install the logger; `verbose` enables debug records.
pub fn init(verbose: bool) {
    if log::set_boxed_logger(Box::new(StderrLogger)).is_ok() {
        set_verbose(verbose);
    }
}

/// The text written before every message from now on (at start, and on SIGHUP).
pub fn set_tag(tag: &'static str) {
    *TAG.lock().unwrap_or_else(|e| e.into_inner()) = tag;
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

    /// A line as the logger formats it, `n` bytes long with its newline.
    fn line(tag: &str, n: usize) -> String {
        let mut s = format!("{tag} ");
        s.push_str(&"x".repeat(n - s.len() - 1));
        s.push('\n');
        s
    }

    /// Flush `p` into a Vec while `room` says yes (`None`: always).
    fn flush_into(p: &mut Pending, mut room: Option<usize>) -> Vec<String> {
        let mut out = Vec::new();
        let writable = || match room.as_mut() {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        };
        p.flush(
            writable,
            |b| out.push(String::from_utf8(b.to_vec()).unwrap()),
            UNIX_EPOCH,
        );
        out
    }

    #[test]
    fn a_writable_stderr_gets_every_line_in_order() {
        let mut p = Pending::new();
        p.push(line("a", 50));
        p.push(line("b", 50));
        assert_eq!(flush_into(&mut p, None), [line("a", 50), line("b", 50)]);
        assert!(p.is_empty());
        assert!(flush_into(&mut p, None).is_empty());
    }

    #[test]
    fn lines_wait_while_stderr_is_not_writable() {
        let mut p = Pending::new();
        p.push(line("a", 50));
        assert!(
            flush_into(&mut p, Some(0)).is_empty(),
            "no room: nothing written"
        );
        p.push(line("b", 50));
        p.push(line("c", 50));
        assert_eq!(flush_into(&mut p, Some(1)), [line("a", 50)], "room for one");
        assert_eq!(p.len(), 2);
        assert_eq!(flush_into(&mut p, None), [line("b", 50), line("c", 50)]);
        assert_eq!(p.dropped(), 0);
    }

    #[test]
    fn the_queue_keeps_the_newest_lines_within_its_line_bound() {
        let mut p = Pending::new();
        for i in 0..QUEUE_LINES + 10 {
            p.push(line(&i.to_string(), 40));
            assert!(p.len() <= QUEUE_LINES);
        }
        assert_eq!((p.len(), p.dropped()), (QUEUE_LINES, 10));
        let out = flush_into(&mut p, None);
        assert_eq!(out.len(), QUEUE_LINES + 1);
        assert_eq!(
            out[0],
            "1970-01-01T00:00:00.000Z WARN  10 log lines dropped: stderr was not writable\n"
        );
        assert_eq!(out[1], line("10", 40), "the oldest ten went");
        assert_eq!(out[QUEUE_LINES], line(&(QUEUE_LINES + 9).to_string(), 40));
        assert_eq!((p.len(), p.dropped()), (0, 0));
        p.push(line("z", 40));
        assert_eq!(
            flush_into(&mut p, None),
            [line("z", 40)],
            "the count is said once"
        );
    }

    #[test]
    fn the_queue_keeps_within_its_byte_bound() {
        let mut p = Pending::new();
        for i in 0..20 {
            p.push(line(&i.to_string(), 1000));
            assert!(p.bytes <= QUEUE_BYTES, "{} bytes", p.bytes);
        }
        assert_eq!(p.len(), QUEUE_BYTES / 1000);
        assert_eq!(p.dropped(), 20 - p.len() as u64);
        // A line of the longest length always fits, however full the queue was.
        p.push("y".repeat(3 * MAX_LINE));
        assert!(p.bytes <= QUEUE_BYTES);
        assert_eq!(p.lines.back().map(String::len), Some(MAX_LINE));
    }

    #[test]
    fn the_dropped_count_waits_for_room_too() {
        let mut p = Pending::new();
        for i in 0..QUEUE_LINES + 1 {
            p.push(line(&i.to_string(), 40));
        }
        assert!(flush_into(&mut p, Some(0)).is_empty());
        let out = flush_into(&mut p, Some(1));
        assert_eq!(out.len(), 1);
        assert!(out[0].contains(" 1 log lines dropped"), "{}", out[0]);
        assert_eq!((p.len(), p.dropped()), (QUEUE_LINES, 0));
        assert_eq!(flush_into(&mut p, None)[0], line("1", 40));
    }

    #[test]
    fn long_lines_are_cut_to_one_atomic_pipe_write() {
        assert_eq!(
            capped(line("a", MAX_LINE)),
            line("a", MAX_LINE),
            "fits: kept"
        );
        let cut = capped(line("b", MAX_LINE + 1));
        assert_eq!(cut.len(), MAX_LINE);
        assert!(cut.starts_with("b x") && cut.ends_with("x...\n"), "{cut}");
        // Cut at a character boundary: 'é' is two bytes.
        let cut = capped("é".repeat(MAX_LINE));
        assert!(cut.len() <= MAX_LINE && cut.ends_with("é...\n"));
    }

    #[test]
    fn timestamps() {
        let at = |s: u64, ms: u64| timestamp(UNIX_EPOCH + Duration::from_millis(s * 1000 + ms));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_689_256, 123), "2026-11-26T10:34:16.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }
}

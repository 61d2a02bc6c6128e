//! Logging never holds up the loop: the real vipd, logging every turn, with stderr a pipe
//! that is full and not read for 10 s, keeps turning at its interval; once the pipe is read
//! it says how many lines it dropped, and every line arrives whole.
//!
//! The loop's pace is counted without touching vipd: its DCS endpoint is a listener in the
//! test's namespace that accepts each connection and closes it, so every turn connects once
//! (and logs that the DCS is unreachable). The pipe is filled before vipd starts: a shell
//! in front of it waits for a line on stdin, sent once the pipe is full, then execs vipd.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, ChildStderr, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::*;
use vipd::logger::QUEUE_LINES;

/// The daemon's interval: a turn, a connection and a log line this often.
const INTERVAL_MS: u64 = 50;
/// How long the full pipe is left unread.
const UNREAD: Duration = Duration::from_secs(10);
/// The longest gap between two turns allowed while the pipe is unread: many intervals
/// (a shared, busy machine), far less than the stall a blocking write would cause.
const MAX_GAP: Duration = Duration::from_millis(1000);
/// A filler line the test writes into the pipe to fill it (64 bytes, newline included).
const FILLER: &str = "filler ------------------------------------------------------- \n";

/// A child killed and reaped on Drop, also when the test fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Accepts connections on `listener` (non-blocking) and records when, until `stop` or a
/// minute has passed; each connection is closed at once.
fn count_accepts(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    times: Arc<Mutex<Vec<Instant>>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
            match listener.accept() {
                Ok((conn, _)) => {
                    lock(&times).push(Instant::now());
                    drop(conn);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(ms(2)),
                Err(e) => panic!("accept: {e}"),
            }
        }
    })
}

/// Fills the pipe whose read end is `stderr` through a second, non-blocking write end of
/// the same pipe (opened through /proc; vipd's own end stays blocking). Whole filler
/// lines only: a write of at most PIPE_BUF bytes to a pipe is taken whole or not at all.
/// Returns the bytes written.
fn fill(stderr: &ChildStderr) -> usize {
    let path = format!("/proc/self/fd/{}", stderr.as_raw_fd());
    let mut end = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {path} for writing: {e}"));
    let mut written = 0;
    // Bounded: no pipe is larger than fs.pipe-max-size, 1 MiB by default.
    for _ in 0..(2 << 20) / FILLER.len() {
        match end.write(FILLER.as_bytes()) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return written,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
    panic!("the pipe took {written} bytes and is still not full");
}

/// The largest gap in `times` within `from..to`, the window's edges included.
fn largest_gap(times: &[Instant], from: Instant, to: Instant) -> Duration {
    let inside = times.iter().copied().filter(|t| (from..to).contains(t));
    let edges = std::iter::once(from)
        .chain(inside)
        .chain(std::iter::once(to));
    let edges: Vec<Instant> = edges.collect();
    let gaps = edges.windows(2).map(|w| w[1] - w[0]);
    gaps.max().unwrap_or_default()
}

/// Whether `line` is one whole log line: timestamp, level, text, newline.
fn whole_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    let stamp = b.len() > 30
        && b[4] == b'-'
        && b[10] == b'T'
        && b[23] == b'Z'
        && b[..4].iter().all(u8::is_ascii_digit);
    let level = ["ERROR ", "WARN  ", "INFO  ", "DEBUG "]
        .iter()
        .any(|l| line.get(25..31) == Some(l));
    stamp && level && line.ends_with('\n') && line.matches('\n').count() == 1
}

/// A namespace with the counting listener, and vipd started there with its stderr a pipe
/// the test filled first.
struct Lab {
    vipd: Reaped,
    stderr: Option<ChildStderr>,
    /// Bytes of filler in the pipe.
    filled: usize,
    times: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    _ns: Netns,
}

impl Lab {
    /// vipd with options `extra`, started once its stderr pipe is full.
    fn start(extra: &str) -> Lab {
        let ns = Netns::new(&lab_id(), "log");
        let listener = in_netns(&ns.name, || TcpListener::bind("127.0.0.1:0").expect("bind"));
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let (stop, times) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let acceptor = count_accepts(listener, Arc::clone(&stop), Arc::clone(&times));

        let endpoint = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(tool("ip"));
        cmd.args([
            "netns",
            "exec",
            &ns.name,
            "sh",
            "-c",
            "read -r _ && exec \"$@\"",
            "sh",
        ])
        .arg(vipd_bin())
        .args(vipd_args("lo", "pg1", &endpoint, extra));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        scrub_env(&mut cmd);
        let mut vipd = Reaped(cmd.spawn().expect("start sh and vipd"));
        let stderr = vipd.0.stderr.take().expect("vipd's stderr");
        let filled = fill(&stderr);
        let mut go: ChildStdin = vipd.0.stdin.take().expect("the shell's stdin");
        go.write_all(b"go\n").expect("start vipd");
        Lab {
            vipd,
            stderr: Some(stderr),
            filled,
            times,
            stop,
            acceptor: Some(acceptor),
            _ns: ns,
        }
    }

    /// Turns (connections) in `from..to`, and the largest gap between them.
    fn pace(&self, from: Instant, to: Instant) -> (usize, Duration) {
        let times = lock(&self.times);
        let turns = times.iter().filter(|t| (from..to).contains(t)).count();
        (turns, largest_gap(&times, from, to))
    }

    fn running(&mut self) -> bool {
        matches!(self.vipd.0.try_wait(), Ok(None))
    }

    /// Start reading the pipe: everything read lands in the returned buffer.
    fn read(&mut self) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
        let mut stderr = self.stderr.take().expect("read once");
        let out = Arc::new(Mutex::new(Vec::new()));
        let buf = Arc::clone(&out);
        let reader = thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut chunk) {
                lock(&buf).extend_from_slice(&chunk[..n]);
            }
        });
        (out, reader)
    }

    /// SIGTERM; vipd's exit code (at most 5 s), and its stderr read to the end.
    fn terminate(&mut self, reader: JoinHandle<()>) -> Option<i32> {
        let pid = self.vipd.0.id().to_string();
        run(&tool("kill"), &["-s", "TERM", &pid]).expect(0, "kill -s TERM vipd");
        wait_until(Duration::from_secs(5), POLL, || !self.running());
        wait_until(Duration::from_secs(2), POLL, || reader.is_finished());
        assert!(
            reader.is_finished(),
            "vipd's stderr still open after SIGTERM"
        );
        self.vipd.0.try_wait().ok().flatten().and_then(|s| s.code())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        join_bounded(self.acceptor.take());
    }
}

/// `buf` as lines, each with its newline; the text must end in one.
fn lines_of(buf: &Mutex<Vec<u8>>) -> Vec<String> {
    let text = String::from_utf8_lossy(&lock(buf)).into_owned();
    assert!(text.ends_with('\n'), "a cut last line: {text:?}");
    text.split_inclusive('\n').map(String::from).collect()
}

/// The last lines of `lines`, for failure messages.
fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(80)..].concat()
}

/// Every line whole: the filler first, `filled` bytes of it, then one log line each.
fn assert_whole(lines: &[String], filled: usize) {
    let fillers = lines.iter().take_while(|l| *l == FILLER).count();
    assert_eq!(
        fillers * FILLER.len(),
        filled,
        "the filler arrived whole, first"
    );
    let broken: Vec<&String> = lines
        .iter()
        .skip(fillers)
        .filter(|l| !whole_log_line(l))
        .collect();
    assert!(broken.is_empty(), "lines not whole: {broken:?}");
}

/// The counts of the dropped-lines lines.
fn dropped_counts(lines: &[String]) -> Vec<usize> {
    let notices = lines
        .iter()
        .filter(|l| l.ends_with(" log lines dropped: stderr was not writable\n"));
    let count = |l: &String| l.get(31..)?.split(' ').next()?.parse().ok();
    notices
        .map(|l| count(l).unwrap_or_else(|| panic!("no count in {l:?}")))
        .collect()
}

#[test]
fn a_full_unread_stderr_pipe_does_not_slow_the_loop() {
    gate!(Root);
    let mut lab = Lab::start(&format!(
        "--interval {INTERVAL_MS} --dcs-grace never --verbose"
    ));
    let from = Instant::now();
    thread::sleep(UNREAD);
    let to = Instant::now();
    let (turns, gap) = lab.pace(from, to);
    assert!(lab.running(), "vipd exited while its stderr was full");

    // Read the pipe now: the daemon writes what it kept; then it exits on SIGTERM.
    let (out, reader) = lab.read();
    thread::sleep(Duration::from_secs(1));
    let code = lab.terminate(reader);
    let lines = lines_of(&out);
    assert!(
        turns as u64 >= UNREAD.as_millis() as u64 / INTERVAL_MS / 2,
        "only {turns} turns in {UNREAD:?} at an interval of {INTERVAL_MS} ms\n{}",
        tail(&lines)
    );
    assert!(
        gap <= MAX_GAP,
        "the loop stood still for {gap:?} while stderr was full ({turns} turns)\n{}",
        tail(&lines)
    );
    assert_eq!(code, Some(0), "vipd's exit status\n{}", tail(&lines));
    assert_whole(&lines, lab.filled);

    // Said once how many were dropped: all the turns' lines but the queue's.
    let dropped = dropped_counts(&lines);
    assert_eq!(dropped.len(), 1, "one dropped-lines line\n{}", tail(&lines));
    assert!(
        dropped[0] + QUEUE_LINES + 2 >= turns,
        "{} dropped and {QUEUE_LINES} kept, of {turns} turns' lines",
        dropped[0]
    );
    eprintln!(
        "logging: {turns} turns in {UNREAD:?} unread, largest gap {gap:?}, {} lines \
         dropped, {} filler bytes",
        dropped[0], lab.filled
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("SIGTERM: exiting")),
        "the lines after the pipe was read arrive\n{}",
        tail(&lines)
    );
}

#[test]
fn kept_lines_are_written_within_a_turn_though_nothing_more_is_logged() {
    gate!(Root);
    // Without --verbose, vipd logs its start and the unreachable DCS once, then nothing.
    let mut lab = Lab::start(&format!("--interval {INTERVAL_MS} --dcs-grace never"));
    let from = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let (turns, gap) = lab.pace(from, Instant::now());
    assert!(
        turns >= 10 && gap <= MAX_GAP,
        "{turns} turns, a gap of {gap:?}"
    );
    assert!(lab.running(), "vipd exited while its stderr was full");

    let (out, reader) = lab.read();
    let said = |what: &str| String::from_utf8_lossy(&lock(&out)).contains(what);
    let arrived = wait_until(Duration::from_secs(2), POLL, || said("DCS unreachable"));
    let running = lab.running();
    let code = lab.terminate(reader);
    let lines = lines_of(&out);
    assert!(
        arrived.is_some() && running,
        "the kept lines were not written while vipd ran\n{}",
        tail(&lines)
    );
    assert_eq!(code, Some(0), "vipd's exit status\n{}", tail(&lines));
    assert_whole(&lines, lab.filled);
    let own: Vec<&String> = lines.iter().filter(|l| *l != FILLER).collect();
    assert!(
        own.first()
            .is_some_and(|l| l.contains("managing 192.0.2.50/24 on lo")),
        "the kept lines in order, none lost: {own:?}"
    );
    assert!(
        dropped_counts(&lines).is_empty(),
        "nothing dropped: {own:?}"
    );
}

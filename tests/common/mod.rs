//! The integration test lab: the gate, child processes, network namespaces, veth pairs, a
//! bridge, a real etcd ([`etcd`]), captures with tcpdump and `ip monitor` ([`capture`]), and
//! guards that clean all of it up, also when a test panics.
//!
//! Only std, ureq and serde_json are used here; the lab runs `ip`, `etcd`, `etcdctl`, `tcpdump`,
//! `kill` and `sysctl` as child processes (the daemon itself never does).
//!
//! Every namespace is named `vipdt-<pid>-<n>-<role>` (n: a counter of the test binary), so tests
//! running in parallel threads never collide. Interfaces are created directly inside their
//! namespaces, so their short fixed names (`veth0`, `eth0`, `br0`, …) never meet in one
//! namespace.
//!
//! Tests that need root, etcd or tools call [`gate!`] first; see [`gate`] for the skip rule
//! and the report file `make test` counts.

mod capture;
mod etcd;
pub mod scope;

pub use capture::*;
pub use etcd::*;

use std::env;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{self, Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The virtual IP every test manages.
pub const VIP: &str = "192.0.2.50";
/// Its prefix length.
pub const VIP_LEN: u8 = 24;
/// Patroni's leader key the tests write.
/// `assert!` that shows the process's log (`$vipd`: a [`Proc`]) on failure.
macro_rules! check {
    ($vipd:expr, $cond:expr, $($msg:tt)+) => {
        assert!($cond, "{}\n{}", format_args!($($msg)+), $vipd.log())
    };
}

pub const KEY: &str = "/service/demo/leader";
/// Extra time allowed on top of "within one interval" (process start-up, `ip` polling, scheduling).
pub const SLACK: Duration = Duration::from_millis(700);
/// How often the lab polls for a state (addresses, neighbours).
pub const POLL: Duration = Duration::from_millis(20);

/// The vipd binary cargo built for these tests.
pub fn vipd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vipd"))
}

pub fn vip() -> Ipv4Addr {
    VIP.parse().expect("VIP constant is an IPv4 address")
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A command line's words (split at whitespace; no value here contains any).
pub fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

// ---------------------------------------------------------------------------------------------
// The gate: root, etcd and tools, or fail (skip only with VIPD_ALLOW_SKIP=1).

/// What a gated test needs besides the tools it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Tools,
    /// Root: network namespaces, and the lab's tools.
    Root,
    /// Root and Debian's etcd.
    Etcd,
}

/// Where the tools come from, for the messages.
const PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("kill", "procps"),
    ("sysctl", "procps"),
    ("timeout", "coreutils"),
    ("md5sum", "coreutils"),
    ("etcdctl", "etcd-client"),
    ("nft", "nftables"),
    ("dpkg-deb", "dpkg"),
    ("start-stop-daemon", "dpkg"),
    ("systemd-analyze", "systemd"),
    ("deb-systemd-helper", "init-system-helpers"),
    ("runsv", "runit"),
    ("sv", "runit"),
    ("svlogd", "runit"),
    ("promtool", "prometheus"),
    ("prometheus", "prometheus"),
];

/// Whether the calling test may run; call it through [`gate!`].
///
/// Returns the paths of `tools`. When something is missing (root, `/usr/bin/etcd`, a tool) the
/// test FAILS with a message naming it, unless the environment has `VIPD_ALLOW_SKIP=1`: then
/// it returns `None` and the test returns early. For tests that need root, when
/// `VIPD_TEST_REPORT` names a file, one line `ran <test>` or `skipped <test>` is appended to
/// it; `make test` counts those lines (a test needing tools only appends its skips).
pub fn gate(test: &str, need: Need, tools: &[&str]) -> Option<Vec<PathBuf>> {
    let mut missing = Vec::new();
    if need != Need::Tools {
        match effective_uid() {
            Some(0) => {}
            Some(uid) => missing.push(format!("root (running as uid {uid})")),
            None => missing.push("root (cannot read the uid from /proc/self/status)".into()),
        }
    }
    if need == Need::Etcd && !Path::new("/usr/bin/etcd").is_file() {
        missing.push("/usr/bin/etcd (apt-get install etcd-server)".into());
    }
    let lab_tools: &[&str] = match need {
        Need::Tools => &[],
        Need::Root => &["ip", "tcpdump", "kill", "sysctl", "timeout", "bash"],
        Need::Etcd => &[
            "ip", "tcpdump", "kill", "sysctl", "timeout", "bash", "etcdctl",
        ],
    };
    let mut found = Vec::new();
    for (i, name) in lab_tools.iter().chain(tools).enumerate() {
        match find_tool(name) {
            Some(path) if i >= lab_tools.len() => found.push(path),
            Some(_) => {}
            None => {
                let package = PACKAGES
                    .iter()
                    .find(|(t, _)| t == name)
                    .map_or(*name, |p| p.1);
                missing.push(format!("{name} (apt-get install {package})"));
            }
        }
    }
    if missing.is_empty() {
        if need != Need::Tools {
            record("ran", test);
            static CLEAN_STALE: Once = Once::new();
            CLEAN_STALE.call_once(remove_stale_labs);
        }
        return Some(found);
    }
    let what = missing.join(", ");
    if env::var("VIPD_ALLOW_SKIP").as_deref() == Ok("1") {
        record("skipped", test);
        eprintln!("SKIPPED {test}: missing {what} (VIPD_ALLOW_SKIP=1)");
        return None;
    }
    panic!(
        "{test} needs {what}. Run it as root with etcd-server, etcd-client, iproute2, tcpdump \
         and procps installed (e.g. `sudo env PATH=\"$PATH\" make test`), or set \
         VIPD_ALLOW_SKIP=1 to skip it."
    );
}

/// Returns from the calling test unless [`gate`] lets it run (the test's name is the calling
/// function's); evaluates to the paths of the tools named after what it needs:
/// `gate!(Etcd)`, `gate!(Root)`, `let t = gate!(Tools, "mandoc")`.
macro_rules! gate {
    ($need:ident $(, $tool:literal)*) => {{
        fn f() {}
        let path = std::any::type_name_of_val(&f).trim_end_matches("::f");
        let name = path.rsplit("::").next().unwrap_or(path);
        match $crate::common::gate(name, $crate::common::Need::$need, &[$($tool),*]) {
            Some(tools) => tools,
            None => return,
        }
    }};
}

fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Uid: real effective saved fs
    line.split_whitespace().nth(2)?.parse().ok()
}

fn record(kind: &str, test: &str) {
    let Some(path) = env::var_os("VIPD_TEST_REPORT").filter(|p| !p.is_empty()) else {
        return;
    };
    // One write(2) per line: tests running at once append whole lines (O_APPEND).
    let line = format!("{kind} {test}\n");
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        let path = Path::new(&path).display();
        panic!("cannot append to VIPD_TEST_REPORT {path}: {e}");
    }
}

/// Finds a tool in PATH, then in the sbin directories a user's PATH (kept through
/// `sudo env PATH=$PATH`) often lacks.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    let sbin = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from);
    env::split_paths(&path)
        .chain(sbin)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Like [`find_tool`], panicking with a clear message when it is missing.
pub fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| panic!("tool `{name}` not found in PATH or /usr/sbin"))
}

// ---------------------------------------------------------------------------------------------
// Running commands.

/// The result of a finished command.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics unless the exit status is `code`, showing what the command said.
    pub fn expect(&self, code: i32, what: &str) -> &Outcome {
        assert_eq!(
            self.code(),
            Some(code),
            "{what}: {}, want exit status {code}\nstdout: {}stderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs a short command to completion (bounded: killed after 30 s) and returns what it said.
pub fn run(program: &Path, args: &[&str]) -> Outcome {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let what = format!("{} {}", program.display(), args.join(" "));
    Proc::spawn(&what, cmd, true).finish(Duration::from_secs(30))
}

/// `ip ARGS…`, which must succeed; its stdout.
pub fn ip(args: &[&str]) -> String {
    let out = run(&tool("ip"), args);
    out.expect(0, &format!("ip {}", args.join(" ")));
    out.stdout
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Joins `thread` if it ends within 2 s; a stuck one is left behind.
pub fn join_bounded<T>(thread: Option<JoinHandle<T>>) {
    if let Some(t) = thread {
        wait_until(Duration::from_secs(2), ms(5), || t.is_finished());
        if t.is_finished() {
            let _ = t.join();
        }
    }
}

fn drain<R: Read + Send + 'static>(mut r: R, buf: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => lock(&buf).extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })
}

/// A child process guard: stdout/stderr drained into buffers by threads; on Drop the process
/// gets SIGTERM, then SIGKILL after 3 s, and is reaped.
pub struct Proc {
    what: String,
    child: Child,
    status: Option<ExitStatus>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Spawns `cmd` with stdin from /dev/null and piped output. With `collect_stdout` false,
    /// stdout stays in the child for [`Proc::take_stdout`].
    pub fn spawn(what: &str, cmd: Command, collect_stdout: bool) -> Proc {
        Proc::spawn_with(what, cmd, collect_stdout, true)
    }

    /// Like [`Proc::spawn`]; with `collect_stderr` false the read end of the stderr pipe is
    /// closed at once, so every write the child makes to stderr fails with EPIPE.
    pub fn spawn_with(
        what: &str,
        mut cmd: Command,
        collect_stdout: bool,
        collect_stderr: bool,
    ) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(s) = child.stdout.take_if(|_| collect_stdout) {
            readers.push(drain(s, Arc::clone(&out)));
        }
        if let Some(s) = child.stderr.take() {
            if collect_stderr {
                readers.push(drain(s, Arc::clone(&err)));
            }
        }
        Proc {
            what: what.to_string(),
            child,
            status: None,
            out,
            err,
            readers,
        }
    }

    /// Runs `program ARGS…` inside network namespace `ns` (`ip netns exec` execs it, so the
    /// pid is the program's own), with the stderr choice of [`Proc::spawn_with`]. VIP_*
    /// variables of the caller's environment are not passed.
    pub fn spawn_in(ns: &str, program: &Path, args: &[String], collect_stderr: bool) -> Proc {
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", ns]).arg(program).args(args);
        scrub_env(&mut cmd);
        let name = program.file_name().unwrap_or_default().to_string_lossy();
        Proc::spawn_with(&format!("{name} in {ns}"), cmd, true, collect_stderr)
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&lock(&self.out)).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&lock(&self.err)).into_owned()
    }

    /// stderr, then stdout.
    pub fn output(&self) -> String {
        self.stderr() + &self.stdout()
    }

    /// Everything the process said, for failure messages.
    pub fn log(&self) -> String {
        format!(
            "--- {} stderr ---\n{}--- stdout ---\n{}---",
            self.what,
            self.stderr(),
            self.stdout()
        )
    }

    /// The exit status if the process has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits at most `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, ms(10), || !self.is_running());
        self.try_status()
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, …) with kill(1), if still running.
    ///
    /// To vipd, the signal goes only once vipd catches it (at most 5 s later): sent
    /// earlier, before `ip netns exec` has exec'd it or its handlers are in place, the
    /// default action would kill it, which is a race of the test, not vipd's behaviour.
    pub fn signal(&mut self, sig: &str) {
        if !self.is_running() {
            return;
        }
        if self.what.starts_with("vipd") {
            if let Some(n) = signal_number(sig) {
                let pid = self.pid();
                wait_until(ms(5000), ms(2), || catches(pid, n) || !alive(pid));
            }
        }
        let pid = self.pid().to_string();
        let out = run(&tool("kill"), &["-s", sig, &pid]);
        if !out.status.success() && self.is_running() {
            panic!("kill -s {sig} {pid} ({}) failed: {}", self.what, out.stderr);
        }
    }

    /// SIGTERM, and the exit code (waiting at most `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        self.signal("TERM");
        self.wait_timeout(timeout).and_then(|s| s.code())
    }

    /// SIGTERM, up to 3 s grace, then SIGKILL; reaps the process and collects its output.
    pub fn stop(&mut self) {
        if self.is_running() {
            self.signal("TERM");
            if self.wait_timeout(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                self.status = self.child.wait().ok();
            }
        }
        self.join_readers();
    }

    fn join_readers(&mut self) {
        // The pipes close when the process exits; bounded anyway.
        for r in std::mem::take(&mut self.readers) {
            join_bounded(Some(r));
        }
    }

    /// Waits at most `timeout` for the exit (else kills it and panics) and returns the outcome.
    pub fn finish(mut self, timeout: Duration) -> Outcome {
        let Some(status) = self.wait_timeout(timeout) else {
            self.stop();
            panic!(
                "{} did not exit within {timeout:?}\n{}",
                self.what,
                self.log()
            );
        };
        self.join_readers();
        Outcome {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes the caller's VIP_* variables so they cannot change what vipd is told.
/// The number of a signal the tests send to vipd, by kill(1)'s name.
fn signal_number(name: &str) -> Option<u32> {
    match name {
        "HUP" => Some(1),
        "INT" => Some(2),
        "TERM" => Some(15),
        _ => None,
    }
}

/// Whether process `pid` has a handler for signal `n` (the `SigCgt` mask of its
/// /proc status, in hex, bit n-1).
fn catches(pid: u32, n: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (n - 1)) != 0)
}

pub fn scrub_env(cmd: &mut Command) {
    for (k, _) in env::vars_os() {
        if k.to_string_lossy().starts_with("VIP_") {
            cmd.env_remove(&k);
        }
    }
}

/// Bounded polling: calls `cond` every `poll` until it is true (returns the time it took) or
/// `timeout` has passed (returns None).
pub fn wait_until(
    timeout: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return None;
        }
        thread::sleep(poll.min(timeout - elapsed));
    }
}

// ---------------------------------------------------------------------------------------------
// Namespaces.

static COUNTER: AtomicUsize = AtomicUsize::new(0);
const NS_PREFIX: &str = "vipdt-";

/// A unique prefix for one lab: `vipdt-<pid>-<n>`.
pub fn lab_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{NS_PREFIX}{}-{n}", process::id())
}

/// Runs `f` on a thread that first enters network namespace `ns` (by name) and returns its
/// result; sockets it opens stay in that namespace whichever thread uses them later, and
/// threads it starts are in the namespace too.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsFd;
    let path = format!("/run/netns/{ns}");
    thread::scope(|s| {
        s.spawn(|| {
            let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            vipd::net::sys::enter_netns(file.as_fd())
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// A network namespace, deleted on Drop (after killing anything still running in it; deleting
/// it then destroys its veths and bridge).
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `<lab>-<role>` with loopback up and IPv6 off (no DAD, router solicitations or
    /// MLD reports that would put noise on the wire).
    pub fn new(lab: &str, role: &str) -> Netns {
        let name = format!("{lab}-{role}");
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        // Not fatal: a kernel booted with ipv6.disable=1 has no such keys (and no IPv6 noise).
        let off = ["all", "default"].map(|i| format!("net.ipv6.conf.{i}.disable_ipv6=1"));
        let _ = ns.exec(&tool("sysctl"), &["-q", "-w", &off[0], &off[1]]);
        ns
    }

    /// `ip -n NS ARGS…`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `program ARGS…` in this namespace to completion (bounded).
    pub fn exec(&self, program: &Path, args: &[&str]) -> Outcome {
        let prog = program.to_string_lossy();
        let mut all = vec!["netns", "exec", self.name.as_str(), prog.as_ref()];
        all.extend_from_slice(args);
        run(&tool("ip"), &all)
    }

    /// `sysctl -q -w SETTINGS…` in this namespace, which must succeed.
    pub fn sysctl(&self, settings: &[&str]) {
        let mut args = vec!["-q", "-w"];
        args.extend_from_slice(settings);
        let what = format!("sysctl {settings:?} in {}", self.name);
        self.exec(&tool("sysctl"), &args).expect(0, &what);
    }

    /// vipd in this namespace with `args`.
    pub fn vipd(&self, args: &[String]) -> Proc {
        Proc::spawn_in(&self.name, &vipd_bin(), args, true)
    }

    /// vipd to completion (bounded).
    pub fn vipd_once(&self, args: &[String]) -> Outcome {
        self.vipd(args).finish(Duration::from_secs(30))
    }

    /// IPv4 addresses on `ifname` with their prefix lengths.
    pub fn addrs(&self, ifname: &str) -> Vec<(Ipv4Addr, u8)> {
        let json = self.ip(&["-j", "-4", "addr", "show", "dev", ifname]);
        parse_addrs(&json).unwrap_or_else(|e| {
            panic!(
                "cannot parse `ip -j addr show dev {ifname}` in {}: {e}: {json}",
                self.name
            )
        })
    }

    /// Prefix lengths at which `addr` sits on `ifname` (exact address match).
    pub fn prefixes_of(&self, ifname: &str, addr: Ipv4Addr) -> Vec<u8> {
        let addrs = self.addrs(ifname).into_iter();
        addrs.filter(|(a, _)| *a == addr).map(|(_, l)| l).collect()
    }

    /// Whether the VIP is on `ifname` at any prefix length.
    pub fn has_vip(&self, ifname: &str) -> bool {
        !self.prefixes_of(ifname, vip()).is_empty()
    }

    /// MAC address of `ifname`.
    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let v = json(&self.ip(&["-j", "link", "show", "dev", ifname]));
        let s = v[0]["address"].as_str();
        s.and_then(parse_mac)
            .unwrap_or_else(|| panic!("no MAC of {ifname} in {v}"))
    }

    /// The neighbour entry for `addr` (IPv4 or IPv6): (lladdr, states), if any.
    pub fn neigh(&self, addr: &str) -> Option<(Option<[u8; 6]>, Vec<String>)> {
        let want: std::net::IpAddr = addr.parse().expect("an IP address");
        let v = json(&self.ip(&["-j", "neigh", "show", addr]));
        let entry = v
            .as_array()?
            .iter()
            .find(|e| e["dst"].as_str().and_then(|d| d.parse().ok()) == Some(want))?;
        let lladdr = entry["lladdr"].as_str().and_then(parse_mac);
        let states = entry["state"].as_array().into_iter().flatten();
        let states = states.filter_map(|s| s.as_str().map(String::from));
        Some((lladdr, states.collect()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_pids_in(&self.name);
        let out = run(&tool("ip"), &["netns", "del", &self.name]);
        if !out.status.success() {
            eprintln!("warning: ip netns del {}: {}", self.name, out.stderr.trim());
        }
    }
}

/// `text` as JSON, which it must be.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn kill_pids_in(ns: &str) {
    let pids = run(&tool("ip"), &["netns", "pids", ns]).stdout;
    let pids: Vec<&str> = pids.split_whitespace().collect();
    if pids.is_empty() {
        return;
    }
    let mut args = vec!["-s", "KILL"];
    args.extend_from_slice(&pids);
    let _ = run(&tool("kill"), &args);
    // Bounded wait for them to go.
    wait_until(Duration::from_secs(2), ms(20), || {
        pids.iter().all(|p| !alive(p))
    });
}

/// Whether a process exists and is not a zombie (an orphan whose reaper has not reaped it
/// yet is dead for our purposes).
pub fn alive(pid: impl std::fmt::Display) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // pid (comm) state …; comm may contain spaces and parentheses: take the last ')'.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Parses `ip -j addr show` output into (address, prefix length) for IPv4.
pub fn parse_addrs(json: &str) -> Result<Vec<(Ipv4Addr, u8)>, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for link in v.as_array().ok_or("not an array")? {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            if info["family"].as_str() != Some("inet") {
                continue;
            }
            let local = info["local"].as_str().ok_or("addr_info without local")?;
            let addr: Ipv4Addr = local.parse().map_err(|e| format!("{local}: {e}"))?;
            let len = info["prefixlen"]
                .as_u64()
                .and_then(|l| u8::try_from(l).ok());
            found.push((addr, len.ok_or("addr_info without prefixlen")?));
        }
    }
    Ok(found)
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

pub fn fmt_mac(m: &[u8; 6]) -> String {
    let bytes: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    bytes.join(":")
}

/// Deletes namespaces (and temp dirs) left by test processes that no longer exist, e.g. after
/// the suite was interrupted with Ctrl-C. Only names `vipdt-<dead pid>-…` are touched.
fn remove_stale_labs() {
    let is_stale = |name: &str| -> bool {
        name.strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| pid != process::id() && !alive(pid))
    };
    let list = run(&tool("ip"), &["netns", "list"]).stdout;
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if is_stale(name) {
            eprintln!("removing stale test namespace {name}");
            kill_pids_in(name);
            let _ = run(&tool("ip"), &["netns", "del", name]);
        }
    }
    for e in fs::read_dir(scratch_base()).into_iter().flatten().flatten() {
        if is_stale(&e.file_name().to_string_lossy()) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scratch directories.

fn scratch_base() -> PathBuf {
    // tmpfs: etcd's fsyncs cost nothing there.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        env::temp_dir()
    }
}

/// A temporary directory removed on Drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(lab: &str, what: &str) -> TempDir {
        let path = scratch_base().join(format!("{lab}-{what}"));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The path of `name` in the directory, as a string.
    pub fn file(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }

    /// Writes `content` to `name` in the directory; its path.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        let path = self.file(name);
        fs::write(&path, content).unwrap_or_else(|e| panic!("{path}: {e}"));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Topologies.

/// The VIP 192.0.2.50/24 on `ifname`, then the options of `extra`.
pub fn vip_args(ifname: &str, extra: &str) -> Vec<String> {
    args(&format!(
        "--ip {VIP} --netmask {VIP_LEN} --interface {ifname} {extra}"
    ))
}

/// [`vip_args`] on veth0 for node "pg1" (the DCS tests' node), then the options of `extra`.
pub fn pg1_args(extra: &str) -> Vec<String> {
    vip_args(NODE_IF, &format!("--trigger-value pg1 {extra}"))
}

/// Arguments every vipd in the lab gets: the VIP on `ifname`, this node's name, the leader key
/// and the etcd endpoint; then the options of `extra`.
pub fn vipd_args(ifname: &str, node: &str, endpoint: &str, extra: &str) -> Vec<String> {
    let dcs = format!("--trigger-key {KEY} --trigger-value {node} --dcs-endpoints {endpoint}");
    vip_args(ifname, &format!("{dcs} {extra}"))
}

/// Waits (at most 10 s) until `has` is true; panics with `vipd`'s log otherwise.
pub fn wait_vip(has: impl Fn() -> bool, vipd: &Proc, what: &str) {
    assert!(
        wait_until(Duration::from_secs(10), POLL, &has).is_some(),
        "{what}: VIP never appeared\n{}",
        vipd.log()
    );
}

/// Asserts that `cond` holds within `bound`; the failure names `what`, with `logs`.
pub fn within(bound: Duration, what: &str, logs: &dyn Fn() -> String, cond: impl FnMut() -> bool) {
    let held = wait_until(bound, POLL, cond).is_some();
    assert!(held, "{what} within {bound:?}\n{}", logs());
}

pub const NODE_IF: &str = "veth0";
pub const PEER_IF: &str = "veth1";
pub const NODE_NAME: &str = "node1";
pub const HOST_IF: &str = "eth0";

/// Topology (c): namespace "node" with veth0 (192.0.2.11/24) paired with veth1 (192.0.2.12/24)
/// in namespace "peer", where captures run; the test brings its DCS.
pub struct NodeLab {
    pub node: Netns,
    pub peer: Netns,
    pub lab: String,
}

impl NodeLab {
    pub fn new() -> NodeLab {
        let lab = NodeLab::bare();
        lab.node
            .ip(&["addr", "add", "192.0.2.11/24", "dev", NODE_IF]);
        lab.peer
            .ip(&["addr", "add", "192.0.2.12/24", "dev", PEER_IF]);
        lab.up();
        lab
    }

    /// The namespaces and the veth pair, without addresses, links down.
    pub fn bare() -> NodeLab {
        let lab = lab_id();
        let node = Netns::new(&lab, "node");
        let peer = Netns::new(&lab, "peer");
        let link = [
            "link", "add", NODE_IF, "type", "veth", "peer", "name", PEER_IF,
        ];
        node.ip(&[&link[..], &["netns", &peer.name]].concat());
        NodeLab { node, peer, lab }
    }

    /// Both ends of the veth pair up.
    pub fn up(&self) {
        self.node.ip(&["link", "set", NODE_IF, "up"]);
        self.peer.ip(&["link", "set", PEER_IF, "up"]);
    }

    /// vipd for "node1" on veth0 against `endpoints` with the options of `extra`.
    pub fn vipd(&self, endpoints: &str, extra: &str) -> Proc {
        self.node
            .vipd(&vipd_args(NODE_IF, NODE_NAME, endpoints, extra))
    }

    /// A scratch directory of this lab.
    pub fn dir(&self, what: &str) -> TempDir {
        TempDir::new(&self.lab, what)
    }

    pub fn has_vip(&self) -> bool {
        self.node.has_vip(NODE_IF)
    }

    pub fn node_mac(&self) -> [u8; 6] {
        self.node.mac(NODE_IF)
    }

    /// Adds an address to veth0 by hand (`ip -n node addr add CIDR dev veth0`).
    pub fn add_addr(&self, cidr: &str) {
        self.node.ip(&["addr", "add", cidr, "dev", NODE_IF]);
    }

    /// Deletes an address from veth0 by hand.
    pub fn del_addr(&self, cidr: &str) {
        self.node.ip(&["addr", "del", cidr, "dev", NODE_IF]);
    }
}

/// Topology (a): [`NodeLab`] with etcd on the node's own 127.0.0.1. The veth carries nothing
/// but what vipd sends.
pub struct SingleNode {
    // Field order is drop order: etcd first, then the namespaces.
    pub etcd: Etcd,
    pub net: NodeLab,
}

impl Deref for SingleNode {
    type Target = NodeLab;
    fn deref(&self) -> &NodeLab {
        &self.net
    }
}

impl SingleNode {
    pub fn new() -> SingleNode {
        let net = NodeLab::new();
        let etcd = Etcd::start(&net.node, &net.lab, "127.0.0.1");
        SingleNode { etcd, net }
    }

    /// vipd for node "node1" on veth0 with the options of `extra`.
    pub fn vipd(&self, extra: &str) -> Proc {
        self.net.vipd(&self.etcd.endpoint, extra)
    }

    /// `vipd --once …` to completion (bounded), with the options of `extra`.
    pub fn once(&self, extra: &str) -> Outcome {
        let args = vipd_args(NODE_IF, NODE_NAME, &self.etcd.endpoint, extra);
        self.node.vipd_once(&args)
    }
}

/// Topology (b): namespace "sw" with bridge br0 (192.0.2.1/24) and etcd on 192.0.2.1; node
/// namespaces n1 (192.0.2.11/24) and n2 (.12) and client c (.100), each joined to br0 by a veth
/// (eth0 inside, p-<role> on the bridge).
pub struct TwoNodes {
    pub etcd: Etcd,
    pub n1: Netns,
    pub n2: Netns,
    pub c: Netns,
    pub sw: Netns,
    pub lab: String,
}

impl TwoNodes {
    pub fn new() -> TwoNodes {
        let lab = lab_id();
        let sw = Netns::new(&lab, "sw");
        sw.ip(&["link", "add", "br0", "type", "bridge"]);
        sw.ip(&["addr", "add", "192.0.2.1/24", "dev", "br0"]);
        sw.ip(&["link", "set", "br0", "up"]);
        let join = |role: &str, cidr: &str| -> Netns {
            let ns = Netns::new(&lab, role);
            let port = format!("p-{role}");
            let link = [
                "link", "add", &port, "type", "veth", "peer", "name", HOST_IF,
            ];
            sw.ip(&[&link[..], &["netns", &ns.name]].concat());
            sw.ip(&["link", "set", &port, "master", "br0"]);
            sw.ip(&["link", "set", &port, "up"]);
            ns.ip(&["addr", "add", cidr, "dev", HOST_IF]);
            ns.ip(&["link", "set", HOST_IF, "up"]);
            ns
        };
        let n1 = join("n1", "192.0.2.11/24");
        let n2 = join("n2", "192.0.2.12/24");
        let c = join("c", "192.0.2.100/24");
        let etcd = Etcd::start(&sw, &lab, "192.0.2.1");
        TwoNodes {
            etcd,
            n1,
            n2,
            c,
            sw,
            lab,
        }
    }

    /// vipd (`bin`) in `ns` (n1 or n2) with node name = the namespace role ("n1"/"n2").
    pub fn vipd(&self, bin: &Path, ns: &Netns, node: &str, extra: &str) -> Proc {
        let args = vipd_args(HOST_IF, node, &self.etcd.endpoint, extra);
        Proc::spawn_in(&ns.name, bin, &args, true)
    }
}

// ---------------------------------------------------------------------------------------------
// /proc.

/// A field of `/proc/PID/status` (the text after the colon, trimmed).
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// A `/proc/PID/status` size field (`VmRSS`, `VmHWM`, …) in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    proc_status(pid, field)?
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// The number of open file descriptors of `pid` (`/proc/PID/fd`).
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
}

/// The binary for the memory bounds of the fault tests and the soak: `VIPD_RELEASE_BIN`
/// (`make soak` sets it to the release build) or the test build; and whether it is the former.
pub fn soak_bin() -> (PathBuf, bool) {
    match env::var_os("VIPD_RELEASE_BIN").filter(|p| !p.is_empty()) {
        Some(p) => (p.into(), true),
        None => (vipd_bin(), false),
    }
}

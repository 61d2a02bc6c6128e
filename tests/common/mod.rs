//! The integration test lab: network namespaces, veth pairs, a bridge, a real etcd, ARP capture
//! with tcpdump, and guards that clean all of it up, also when a test panics.
//!
//! Only std, ureq and serde_json are used here; the lab runs `ip`, `etcd`, `etcdctl`, `tcpdump`,
//! `kill` and `sysctl` as child processes (the daemon itself never does).
//!
//! Every namespace is named `vipdt-<pid>-<n>-<role>` (n: a process-wide counter), so tests running
//! in parallel threads, and test binaries running one after the other, never collide. Interfaces
//! are created directly inside their namespaces, so their short fixed names (`veth0`, `eth0`,
//! `br0`, …) never meet in one namespace.
//!
//! Gated tests call [`require_root_and_etcd`] first; see there for the skip rule and the report
//! file `make test` counts.

#![allow(dead_code)]

use std::env;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{self, Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The virtual IP every test manages.
pub const VIP: &str = "192.0.2.50";
/// Its prefix length.
pub const VIP_LEN: u8 = 24;
/// Patroni's leader key the tests write.
pub const KEY: &str = "/service/demo/leader";
/// Extra time allowed on top of "within one interval" (process start-up, `ip` polling, scheduling).
pub const SLACK: Duration = Duration::from_millis(700);
/// How often the lab polls for a state (addresses, neighbours).
pub const POLL: Duration = Duration::from_millis(20);

pub const BROADCAST: [u8; 6] = [0xff; 6];

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

// ---------------------------------------------------------------------------------------------
// The gate: root and etcd, or fail (skip only with VIPD_ALLOW_SKIP=1).

/// Call first in every test that needs root, network namespaces or etcd.
///
/// Returns `true` when the test may run. When something is missing (not root, no
/// `/usr/bin/etcd`, no `etcdctl`, `ip`, `tcpdump`, …) the test FAILS with a message naming what
/// is missing, unless the environment has `VIPD_ALLOW_SKIP=1`: then it returns `false` and the
/// test returns early. Either way, when `VIPD_TEST_REPORT` names a file, one line
/// `ran <test>` or `skipped <test>` is appended to it; `make test` counts those lines.
pub fn require_root_and_etcd(test: &str) -> bool {
    gate(test, true)
}

/// Like [`require_root_and_etcd`] for tests that need root (namespaces) but not etcd.
pub fn require_root(test: &str) -> bool {
    gate(test, false)
}

fn gate(test: &str, etcd: bool) -> bool {
    let missing = missing_requirements(etcd);
    if missing.is_empty() {
        record("ran", test);
        static CLEAN_STALE: Once = Once::new();
        CLEAN_STALE.call_once(remove_stale_labs);
        return true;
    }
    let what = missing.join(", ");
    if env::var("VIPD_ALLOW_SKIP").as_deref() == Ok("1") {
        record("skipped", test);
        eprintln!("SKIPPED {test}: missing {what} (VIPD_ALLOW_SKIP=1)");
        return false;
    }
    panic!(
        "{test} needs root{} but found missing: {what}. Run it as root with \
         etcd-server, etcd-client, iproute2, tcpdump and procps installed (e.g. `sudo env \
         PATH=\"$PATH\" make test`), or set VIPD_ALLOW_SKIP=1 to skip it.",
        if etcd { " and Debian's etcd" } else { "" }
    );
}

fn missing_requirements(etcd: bool) -> Vec<String> {
    let mut missing = Vec::new();
    match effective_uid() {
        Some(0) => {}
        Some(uid) => missing.push(format!("root (running as uid {uid})")),
        None => missing.push("root (cannot read the uid from /proc/self/status)".to_string()),
    }
    if etcd && !Path::new("/usr/bin/etcd").is_file() {
        missing.push("/usr/bin/etcd (apt-get install etcd-server)".to_string());
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("tcpdump", "tcpdump"),
        ("kill", "procps"),
        ("sysctl", "procps"),
        ("timeout", "coreutils"),
        ("bash", "bash"),
    ] {
        if find_tool(tool).is_none() {
            missing.push(format!("{tool} (apt-get install {package})"));
        }
    }
    if etcd && find_tool("etcdctl").is_none() {
        missing.push("etcdctl (apt-get install etcd-client)".to_string());
    }
    missing
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
    let line = format!("{kind} {test}\n");
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!(
            "cannot append to VIPD_TEST_REPORT {}: {e}",
            Path::new(&path).display()
        );
    }
}

/// Finds a tool in PATH, then in the sbin directories a user's PATH (kept through
/// `sudo env PATH=$PATH`) often lacks.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
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
}

/// Runs a short command to completion (bounded: killed after 30 s) and returns what it said.
pub fn run(program: &Path, args: &[&str]) -> Outcome {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let what = format!("{} {}", program.display(), args.join(" "));
    Proc::spawn(&what, cmd, true).finish(Duration::from_secs(30))
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = run(program, args);
    if !out.status.success() {
        panic!(
            "`{} {}` failed ({}): {}",
            program.display(),
            args.join(" "),
            out.status,
            out.stderr.trim()
        );
    }
    out.stdout
}

/// `ip ARGS…`, which must succeed.
pub fn ip(args: &[&str]) -> String {
    run_ok(&tool("ip"), args)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        if collect_stdout {
            if let Some(s) = child.stdout.take() {
                readers.push(drain(s, Arc::clone(&out)));
            }
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
    /// pid is the program's own). VIP_* variables of the caller's environment are not passed.
    pub fn spawn_in(ns: &str, program: &Path, args: &[String]) -> Proc {
        Proc::spawn_in_with(ns, program, args, true)
    }

    /// [`Proc::spawn_in`] with the stderr choice of [`Proc::spawn_with`].
    pub fn spawn_in_with(ns: &str, program: &Path, args: &[String], collect_stderr: bool) -> Proc {
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", ns]).arg(program).args(args);
        scrub_env(&mut cmd);
        let name = program
            .file_name()
            .unwrap_or(OsStr::new("?"))
            .to_string_lossy()
            .into_owned();
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
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
            }
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits at most `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            thread::sleep(ms(10));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, …) with kill(1), if still running.
    pub fn signal(&mut self, sig: &str) {
        if !self.is_running() {
            return;
        }
        let pid = self.pid().to_string();
        let out = run(&tool("kill"), &["-s", sig, &pid]);
        if !out.status.success() && self.is_running() {
            panic!("kill -s {sig} {pid} ({}) failed: {}", self.what, out.stderr);
        }
    }

    /// SIGTERM, up to 3 s grace, then SIGKILL; reaps the process and collects its output.
    pub fn stop(&mut self) {
        if self.is_running() {
            self.signal("TERM");
            if self.wait_timeout(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                if let Ok(s) = self.child.wait() {
                    self.status = Some(s);
                }
            }
        }
        self.join_readers();
    }

    fn join_readers(&mut self) {
        // The pipes close when the process exits; bounded anyway, a stuck reader is left behind.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            thread::sleep(ms(5));
        }
        for r in std::mem::take(&mut self.readers) {
            if r.is_finished() {
                let _ = r.join();
            }
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
    format!(
        "{NS_PREFIX}{}-{}",
        process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
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
        let _ = run(
            &tool("ip"),
            &[
                "netns",
                "exec",
                &ns.name,
                &tool("sysctl").to_string_lossy(),
                "-q",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
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
        self.addrs(ifname)
            .into_iter()
            .filter(|(a, _)| *a == addr)
            .map(|(_, l)| l)
            .collect()
    }

    /// Whether the VIP is on `ifname` at any prefix length.
    pub fn has_vip(&self, ifname: &str) -> bool {
        !self.prefixes_of(ifname, vip()).is_empty()
    }

    /// MAC address of `ifname`.
    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let json = self.ip(&["-j", "link", "show", "dev", ifname]);
        let v: serde_json::Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("bad JSON from ip link show: {e}: {json}"));
        let s = v[0]["address"]
            .as_str()
            .unwrap_or_else(|| panic!("no address in {json}"));
        parse_mac(s).unwrap_or_else(|| panic!("bad MAC {s:?}"))
    }

    /// The neighbour entry for `addr`: (lladdr, states), if any.
    pub fn neigh(&self, addr: &str) -> Option<(Option<[u8; 6]>, Vec<String>)> {
        let json = self.ip(&["-j", "-4", "neigh", "show", addr]);
        let v: serde_json::Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("bad JSON from ip neigh show: {e}: {json}"));
        let entry = v
            .as_array()?
            .iter()
            .find(|e| e["dst"].as_str() == Some(addr))?;
        let lladdr = entry["lladdr"].as_str().and_then(parse_mac);
        let states = entry["state"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Some((lladdr, states))
    }

    fn kill_all_inside(&self) {
        kill_pids_in(&self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all_inside();
        let out = run(&tool("ip"), &["netns", "del", &self.name]);
        if !out.status.success() {
            eprintln!("warning: ip netns del {}: {}", self.name, out.stderr.trim());
        }
    }
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
fn alive(pid: &str) -> bool {
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
        let Some(infos) = link["addr_info"].as_array() else {
            continue;
        };
        for info in infos {
            if info["family"].as_str() != Some("inet") {
                continue;
            }
            let local = info["local"].as_str().ok_or("addr_info without local")?;
            let addr: Ipv4Addr = local.parse().map_err(|e| format!("{local}: {e}"))?;
            let len = info["prefixlen"]
                .as_u64()
                .and_then(|l| u8::try_from(l).ok())
                .ok_or("addr_info without prefixlen")?;
            found.push((addr, len));
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
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Deletes namespaces (and temp dirs) left by test processes that no longer exist, e.g. after
/// the suite was interrupted with Ctrl-C. Only names `vipdt-<dead pid>-…` are touched.
fn remove_stale_labs() {
    let is_stale = |name: &str| -> bool {
        name.strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| pid != process::id() && !alive(&pid.to_string()))
    };
    let list = run(&tool("ip"), &["netns", "list"]).stdout;
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if is_stale(name) {
            eprintln!("removing stale test namespace {name}");
            kill_pids_in(name);
            let _ = run(&tool("ip"), &["netns", "del", name]);
        }
    }
    if let Ok(entries) = fs::read_dir(scratch_base()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if is_stale(&name) {
                let _ = fs::remove_dir_all(e.path());
            }
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
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// etcd.

/// Debian's etcd 3.4 running inside a namespace with a temporary data dir; killed and removed
/// on Drop.
pub struct Etcd {
    proc: Option<Proc>,
    ns: String,
    /// `http://<ip>:2379`
    pub endpoint: String,
    /// The command line, for [`Etcd::restart`].
    args: Vec<String>,
    /// The data directory (inside `_dir`).
    data: PathBuf,
    _dir: TempDir,
}

impl Etcd {
    /// Starts etcd in `ns`, clients on `ip`:2379, peers on 127.0.0.1:2380 of that namespace,
    /// and waits (at most 20 s) until it is healthy.
    pub fn start(ns: &Netns, lab: &str, ip: &str) -> Etcd {
        let mut etcd = Etcd::spawn_member(
            ns,
            lab,
            "lab",
            ip,
            "127.0.0.1",
            "lab=http://127.0.0.1:2380",
            &[],
        );
        etcd.wait_healthy(Duration::from_secs(20));
        etcd
    }

    /// Starts (does not wait for) etcd member `name` in `ns`: clients on `ip`:2379, peers on
    /// `peer_ip`:2380, `initial_cluster` as etcd's `--initial-cluster`, `extra` arguments after.
    /// Its data dir is `<scratch>/<lab>-etcd-<name>` (`<lab>-etcd` for the name "lab").
    pub fn spawn_member(
        ns: &Netns,
        lab: &str,
        name: &str,
        ip: &str,
        peer_ip: &str,
        initial_cluster: &str,
        extra: &[&str],
    ) -> Etcd {
        let dir = if name == "lab" {
            TempDir::new(lab, "etcd")
        } else {
            TempDir::new(lab, &format!("etcd-{name}"))
        };
        let data = dir.path.join("data");
        let endpoint = format!("http://{ip}:2379");
        let peer = format!("http://{peer_ip}:2380");
        let mut args: Vec<String> = [
            "--name",
            name,
            "--data-dir",
            &data.to_string_lossy(),
            "--listen-client-urls",
            &endpoint,
            "--advertise-client-urls",
            &endpoint,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-state",
            "new",
            "--logger",
            "zap",
            "--log-level",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut etcd = Etcd {
            proc: None,
            ns: ns.name.clone(),
            endpoint,
            args,
            data,
            _dir: dir,
        };
        etcd.spawn();
        etcd
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &self.ns, "/usr/bin/etcd"])
            .args(&self.args);
        for (k, _) in env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(&k);
            }
        }
        self.proc = Some(Proc::spawn(
            &format!("etcd {} in {}", self.endpoint, self.ns),
            cmd,
            true,
        ));
    }

    /// Waits (at most `timeout`) until `etcdctl endpoint health` succeeds; panics otherwise.
    pub fn wait_healthy(&mut self, timeout: Duration) {
        let healthy = wait_until(timeout, ms(100), || {
            if let Some(p) = self.proc.as_mut() {
                if !p.is_running() {
                    return false;
                }
            }
            self.etcdctl(&["endpoint", "health"]).status.success()
        });
        if healthy.is_none() {
            let log = self.proc.as_ref().map(Proc::log).unwrap_or_default();
            panic!(
                "etcd {} in {} did not become healthy within {timeout:?}\n{log}",
                self.endpoint, self.ns
            );
        }
    }

    /// Starts etcd again after [`Etcd::stop`] with the same data, and waits until healthy.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        self.wait_healthy(Duration::from_secs(20));
    }

    /// Starts etcd again with an empty data dir (a new cluster: revisions from 1 again), and
    /// waits until healthy.
    pub fn restart_empty(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.data);
        self.spawn();
        self.wait_healthy(Duration::from_secs(20));
    }

    /// Whether the etcd process is running.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// The store's current revision (`etcdctl endpoint status`).
    pub fn revision(&self) -> i64 {
        let out = self.etcdctl_ok(&["endpoint", "status", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("etcdctl endpoint status: {e}: {out}"));
        v[0]["Status"]["header"]["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("no revision in {out}"))
    }

    /// What etcd said so far, for failure messages.
    pub fn log(&self) -> String {
        self.proc.as_ref().map(Proc::log).unwrap_or_default()
    }

    /// `etcdctl ARGS…` (API v3) inside the namespace.
    pub fn etcdctl(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &self.ns])
            .arg(tool("etcdctl"))
            .arg(format!("--endpoints={}", self.endpoint))
            .args(["--dial-timeout=2s", "--command-timeout=5s"])
            .args(args)
            .env("ETCDCTL_API", "3");
        Proc::spawn("etcdctl", cmd, true).finish(Duration::from_secs(15))
    }

    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args);
        if !out.status.success() {
            panic!(
                "etcdctl {} failed: {}{}",
                args.join(" "),
                out.stdout,
                out.stderr
            );
        }
        out.stdout
    }

    pub fn put(&self, key: &str, value: &str) {
        self.etcdctl_ok(&["put", key, value]);
    }

    pub fn del(&self, key: &str) {
        self.etcdctl_ok(&["del", key]);
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.etcdctl_ok(&["get", "--print-value-only", key]);
        let v = out.trim_end_matches('\n');
        (!v.is_empty()).then(|| v.to_string())
    }

    /// Stops etcd now (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Capture with tcpdump, pcap reader, ARP decoding.

/// One captured frame with its capture time.
#[derive(Debug, Clone)]
pub struct Frame {
    pub ts: SystemTime,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn eth_src(&self) -> Option<[u8; 6]> {
        self.data.get(6..12).and_then(|s| s.try_into().ok())
    }
    pub fn eth_dst(&self) -> Option<[u8; 6]> {
        self.data.get(0..6).and_then(|s| s.try_into().ok())
    }
    pub fn ethertype(&self) -> Option<u16> {
        self.data
            .get(12..14)
            .map(|s| u16::from_be_bytes([s[0], s[1]]))
    }
}

/// Reads the classic pcap format from a stream: a 24-byte global header, then records with a
/// 16-byte header (ts_sec, ts_usec or ts_nsec, incl_len, orig_len). Either byte order,
/// microsecond or nanosecond magic; Ethernet link type only.
pub struct PcapReader<R> {
    inner: R,
    big_endian: bool,
    nanos: bool,
}

const PCAP_MAX_RECORD: u32 = 262_144;

impl<R: Read> PcapReader<R> {
    pub fn new(mut inner: R) -> io::Result<Self> {
        let mut hdr = [0u8; 24];
        if !read_full(&mut inner, &mut hdr)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "no pcap header",
            ));
        }
        let magic = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let (big_endian, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not a pcap stream (magic {magic:#010x})"),
                ));
            }
        };
        let r = PcapReader {
            inner,
            big_endian,
            nanos,
        };
        let linktype = r.u32_at(&hdr, 20);
        if linktype != 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("pcap link type {linktype}, want 1 (Ethernet)"),
            ));
        }
        Ok(r)
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    }

    /// The next frame, or None at a clean end of stream.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let mut rec = [0u8; 16];
        if !read_full(&mut self.inner, &mut rec)? {
            return Ok(None);
        }
        let sec = self.u32_at(&rec, 0);
        let frac = self.u32_at(&rec, 4);
        let incl = self.u32_at(&rec, 8);
        if incl > PCAP_MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("pcap record of {incl} bytes"),
            ));
        }
        let nanos = if self.nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        };
        let mut data = vec![0u8; incl as usize];
        if !read_full(&mut self.inner, &mut data)? && incl > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated record",
            ));
        }
        let ts = UNIX_EPOCH + Duration::new(u64::from(sec), nanos.min(999_999_999));
        Ok(Some(Frame { ts, data }))
    }
}

/// Fills `buf`; Ok(false) on EOF before the first byte, an error on EOF in the middle.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// An ARP packet in an Ethernet frame, every field decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arp {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub htype: u16,
    pub ptype: u16,
    pub hlen: u8,
    pub plen: u8,
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
}

impl Arp {
    /// Decodes an Ethernet frame with ethertype 0x0806 (no VLAN tag); None for anything else or
    /// a frame too short for IPv4-over-Ethernet ARP.
    pub fn parse(frame: &[u8]) -> Option<Arp> {
        if frame.len() < 42 || frame[12..14] != [0x08, 0x06] {
            return None;
        }
        let a = &frame[14..];
        let mac = |s: &[u8]| -> [u8; 6] { [s[0], s[1], s[2], s[3], s[4], s[5]] };
        let be16 = |s: &[u8]| u16::from_be_bytes([s[0], s[1]]);
        Some(Arp {
            eth_dst: mac(&frame[0..6]),
            eth_src: mac(&frame[6..12]),
            htype: be16(&a[0..2]),
            ptype: be16(&a[2..4]),
            hlen: a[4],
            plen: a[5],
            op: be16(&a[6..8]),
            sha: mac(&a[8..14]),
            spa: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
            tha: mac(&a[18..24]),
            tpa: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
        })
    }

    /// A gratuitous ARP request for `vip` from `mac`, as RFC 5227 §3 and the issue describe.
    pub fn is_garp_request(&self, vip: Ipv4Addr, mac: [u8; 6]) -> bool {
        self.eth_dst == BROADCAST
            && self.eth_src == mac
            && self.htype == 1
            && self.ptype == 0x0800
            && self.hlen == 6
            && self.plen == 4
            && self.op == 1
            && self.sha == mac
            && self.spa == vip
            && self.tpa == vip
            && self.tha == [0; 6]
    }
}

impl std::fmt::Display for Arp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} > {} op {} sha {} spa {} tha {} tpa {} (htype {} ptype {:#06x} hlen {} plen {})",
            fmt_mac(&self.eth_src),
            fmt_mac(&self.eth_dst),
            self.op,
            fmt_mac(&self.sha),
            self.spa,
            fmt_mac(&self.tha),
            self.tpa,
            self.htype,
            self.ptype,
            self.hlen,
            self.plen
        )
    }
}

/// A running `tcpdump --immediate-mode -U -w -` inside a namespace (immediate: no ring-buffer
/// block delay before frames reach us), its pcap stream parsed live by a thread.
pub struct Capture {
    frames: Arc<Mutex<Vec<Frame>>>,
    reader_error: Arc<Mutex<Option<String>>>,
    proc: Proc,
    reader: Option<JoinHandle<()>>,
    pub what: String,
}

impl Capture {
    /// Starts capturing on `ifname` in `ns` with the tcpdump `filter` (e.g. "arp"; "" for all)
    /// and returns once tcpdump is really capturing ("listening on" on its stderr; at most 10 s).
    pub fn start(ns: &Netns, ifname: &str, filter: &str) -> Capture {
        let what = format!("tcpdump on {ifname} in {}", ns.name);
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &ns.name])
            .arg(tool("tcpdump"))
            .args([
                "-i",
                ifname,
                "-n",
                "--immediate-mode",
                "-U",
                "-s",
                "0",
                "-w",
                "-",
            ]);
        if !filter.is_empty() {
            cmd.arg(filter);
        }
        let mut proc = Proc::spawn(&what, cmd, false);
        let stdout = proc
            .take_stdout()
            .unwrap_or_else(|| panic!("{what}: no stdout"));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let reader_error = Arc::new(Mutex::new(None));
        let reader = {
            let frames = Arc::clone(&frames);
            let reader_error = Arc::clone(&reader_error);
            thread::spawn(move || {
                let result = PcapReader::new(stdout).and_then(|mut r| {
                    while let Some(f) = r.next_frame()? {
                        lock(&frames).push(f);
                    }
                    Ok(())
                });
                if let Err(e) = result {
                    if e.kind() != io::ErrorKind::UnexpectedEof || !lock(&frames).is_empty() {
                        *lock(&reader_error) = Some(e.to_string());
                    }
                }
            })
        };
        let listening = wait_until(Duration::from_secs(10), ms(10), || {
            proc.stderr().contains("listening on") || !proc.is_running()
        });
        if listening.is_none() || !proc.is_running() {
            panic!("{what} did not start capturing\n{}", proc.log());
        }
        Capture {
            frames,
            reader_error,
            proc,
            reader: Some(reader),
            what,
        }
    }

    /// Every frame captured so far.
    pub fn frames(&self) -> Vec<Frame> {
        if let Some(e) = lock(&self.reader_error).as_ref() {
            panic!("{}: pcap stream error: {e}", self.what);
        }
        lock(&self.frames).clone()
    }

    /// Every ARP packet captured so far, with its capture time.
    pub fn arps(&self) -> Vec<(SystemTime, Arp)> {
        self.frames()
            .iter()
            .filter(|f| f.ethertype() == Some(0x0806))
            .map(|f| {
                let arp = Arp::parse(&f.data).unwrap_or_else(|| {
                    panic!("{}: undecodable ARP frame {:02x?}", self.what, f.data)
                });
                (f.ts, arp)
            })
            .collect()
    }

    /// Waits (at most `timeout`) until at least `n` ARP packets are captured; returns them all.
    pub fn wait_arps(&self, n: usize, timeout: Duration) -> Vec<(SystemTime, Arp)> {
        wait_until(timeout, POLL, || self.arps().len() >= n);
        self.arps()
    }

    /// What tcpdump said, for failure messages.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Stops tcpdump; the frames stay readable.
    pub fn stop(&mut self) {
        self.proc.stop();
        if let Some(r) = self.reader.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !r.is_finished() && Instant::now() < deadline {
                thread::sleep(ms(5));
            }
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One line per ARP packet, for failure messages.
pub fn describe_arps(arps: &[(SystemTime, Arp)]) -> String {
    let t0 = arps.first().map(|(t, _)| *t);
    arps.iter()
        .map(|(t, a)| {
            let rel = t0
                .and_then(|t0| t.duration_since(t0).ok())
                .unwrap_or_default();
            format!("  +{:>6} ms  {a}\n", rel.as_millis())
        })
        .collect()
}

/// How far `b` is after `a` (negative when before), in milliseconds.
pub fn millis_between(a: SystemTime, b: SystemTime) -> i128 {
    match b.duration_since(a) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    }
}

// ---------------------------------------------------------------------------------------------
// Topologies.

/// Arguments every vipd in the lab gets: the VIP 192.0.2.50/24 on `ifname`, this node's name,
/// the leader key and the etcd endpoint.
pub fn vipd_args(ifname: &str, node: &str, endpoint: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--ip",
        VIP,
        "--netmask",
        "24",
        "--interface",
        ifname,
        "--trigger-key",
        KEY,
        "--trigger-value",
        node,
        "--dcs-endpoints",
        endpoint,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Topology (a): namespace "node" holds etcd on its own 127.0.0.1 and veth0 (192.0.2.11/24),
/// paired with veth1 (192.0.2.12/24) in namespace "peer", where captures run. The veth carries
/// nothing but what vipd sends.
pub struct SingleNode {
    // Field order is drop order: etcd first, then the namespaces.
    pub etcd: Etcd,
    pub node: Netns,
    pub peer: Netns,
    pub lab: String,
}

pub const NODE_IF: &str = "veth0";
pub const PEER_IF: &str = "veth1";
pub const NODE_NAME: &str = "node1";

impl SingleNode {
    pub fn new() -> SingleNode {
        let lab = lab_id();
        let node = Netns::new(&lab, "node");
        let peer = Netns::new(&lab, "peer");
        node.ip(&[
            "link", "add", NODE_IF, "type", "veth", "peer", "name", PEER_IF, "netns", &peer.name,
        ]);
        node.ip(&["addr", "add", "192.0.2.11/24", "dev", NODE_IF]);
        peer.ip(&["addr", "add", "192.0.2.12/24", "dev", PEER_IF]);
        node.ip(&["link", "set", NODE_IF, "up"]);
        peer.ip(&["link", "set", PEER_IF, "up"]);
        let etcd = Etcd::start(&node, &lab, "127.0.0.1");
        SingleNode {
            etcd,
            node,
            peer,
            lab,
        }
    }

    /// vipd for node "node1" on veth0 with the extra options.
    pub fn vipd(&self, extra: &[&str]) -> Proc {
        let args = vipd_args(NODE_IF, NODE_NAME, &self.etcd.endpoint, extra);
        Proc::spawn_in(&self.node.name, &vipd_bin(), &args)
    }

    /// `vipd --once …` to completion (bounded), with the extra options.
    pub fn once(&self, extra: &[&str]) -> Outcome {
        let args = vipd_args(NODE_IF, NODE_NAME, &self.etcd.endpoint, extra);
        self.once_with(&args)
    }

    /// `vipd ARGS` (complete argument list) to completion (bounded).
    pub fn once_with(&self, args: &[String]) -> Outcome {
        Proc::spawn_in(&self.node.name, &vipd_bin(), args).finish(Duration::from_secs(30))
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

pub const HOST_IF: &str = "eth0";

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
            sw.ip(&[
                "link", "add", &port, "type", "veth", "peer", "name", HOST_IF, "netns", &ns.name,
            ]);
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

    /// vipd in `ns` (n1 or n2) with node name = the namespace role ("n1"/"n2").
    pub fn vipd(&self, ns: &Netns, node: &str, extra: &[&str]) -> Proc {
        let args = vipd_args(HOST_IF, node, &self.etcd.endpoint, extra);
        Proc::spawn_in(&ns.name, &vipd_bin(), &args)
    }
}

// ---------------------------------------------------------------------------------------------
// Fault injection (tests/faults*.rs): threads inside namespaces, address monitors, /proc.

pub mod etcd_proxy;
pub mod fake_etcd;

/// Runs `f` on a new thread that first enters network namespace `ns` (by name); sockets it
/// opens belong to that namespace whichever thread uses them later.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    use std::os::fd::AsFd;
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        vipd::net::sys::enter_netns(file.as_fd()).unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
}

/// Runs `f` inside namespace `ns` on a helper thread and returns its result.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(ns, f)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Topology (c): namespace "node" with veth0 (192.0.2.11/24) paired with veth1 (192.0.2.12/24)
/// in namespace "peer", like [`SingleNode`] but without etcd (the test brings its own DCS).
pub struct NodeLab {
    pub node: Netns,
    pub peer: Netns,
    pub lab: String,
}

impl NodeLab {
    pub fn new() -> NodeLab {
        let lab = lab_id();
        let node = Netns::new(&lab, "node");
        let peer = Netns::new(&lab, "peer");
        node.ip(&[
            "link", "add", NODE_IF, "type", "veth", "peer", "name", PEER_IF, "netns", &peer.name,
        ]);
        node.ip(&["addr", "add", "192.0.2.11/24", "dev", NODE_IF]);
        peer.ip(&["addr", "add", "192.0.2.12/24", "dev", PEER_IF]);
        node.ip(&["link", "set", NODE_IF, "up"]);
        peer.ip(&["link", "set", PEER_IF, "up"]);
        NodeLab { node, peer, lab }
    }

    /// vipd for "node1" on veth0 against `endpoints` with the extra options.
    pub fn vipd(&self, endpoints: &str, extra: &[&str]) -> Proc {
        let args = vipd_args(NODE_IF, NODE_NAME, endpoints, extra);
        Proc::spawn_in(&self.node.name, &vipd_bin(), &args)
    }

    pub fn has_vip(&self) -> bool {
        self.node.has_vip(NODE_IF)
    }
}

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

/// One change of the VIP seen by [`AddrMonitor`].
#[derive(Debug, Clone)]
pub struct AddrEvent {
    pub at: Instant,
    /// Added (true) or deleted (false).
    pub added: bool,
    pub line: String,
}

/// `ip -o monitor address` inside a namespace: every add and delete of the VIP on one
/// interface, with the time it was read. Unlike polling, it sees a delete followed at once by
/// an add (a flap).
pub struct AddrMonitor {
    events: Arc<Mutex<Vec<AddrEvent>>>,
    proc: Proc,
    reader: Option<JoinHandle<()>>,
    ifname: String,
    ns: String,
}

impl AddrMonitor {
    /// Starts the monitor and returns once it is seen listening (a marker address added to
    /// and deleted from `lo` shows up in its output; at most 10 s).
    pub fn start(ns: &Netns, ifname: &str) -> AddrMonitor {
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["-n", &ns.name, "-o", "monitor", "address"]);
        let what = format!("ip monitor address in {}", ns.name);
        let mut proc = Proc::spawn(&what, cmd, false);
        let stdout = proc
            .take_stdout()
            .unwrap_or_else(|| panic!("{what}: no stdout"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let marker = Arc::new(AtomicUsize::new(0));
        let reader = {
            let events = Arc::clone(&events);
            let marker = Arc::clone(&marker);
            let ifname = ifname.to_string();
            thread::spawn(move || {
                let vip = format!("inet {VIP}/");
                let mut lines = io::BufReader::new(stdout);
                let mut line = String::new();
                loop {
                    line.clear();
                    match io::BufRead::read_line(&mut lines, &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let at = Instant::now();
                    if line.contains("inet 198.51.100.254/32") {
                        marker.fetch_add(1, Ordering::SeqCst);
                    }
                    let on_if = line.split_whitespace().nth(1) == Some(ifname.as_str())
                        || line.split_whitespace().nth(2) == Some(ifname.as_str());
                    if line.contains(&vip) && on_if {
                        lock(&events).push(AddrEvent {
                            at,
                            added: !line.starts_with("Deleted"),
                            line: line.trim_end().to_string(),
                        });
                    }
                }
            })
        };
        let m = AddrMonitor {
            events,
            proc,
            reader: Some(reader),
            ifname: ifname.to_string(),
            ns: ns.name.clone(),
        };
        let listening = wait_until(Duration::from_secs(10), ms(50), || {
            let _ = run(
                &tool("ip"),
                &[
                    "-n",
                    &ns.name,
                    "addr",
                    "add",
                    "198.51.100.254/32",
                    "dev",
                    "lo",
                ],
            );
            let _ = run(
                &tool("ip"),
                &[
                    "-n",
                    &ns.name,
                    "addr",
                    "del",
                    "198.51.100.254/32",
                    "dev",
                    "lo",
                ],
            );
            marker.load(Ordering::SeqCst) > 0
        });
        if listening.is_none() {
            panic!("{} did not start\n{}", m.ns, m.proc.log());
        }
        m
    }

    /// Every add and delete of the VIP on the interface so far.
    pub fn events(&self) -> Vec<AddrEvent> {
        lock(&self.events).clone()
    }

    /// The events at or after `since`.
    pub fn events_since(&self, since: Instant) -> Vec<AddrEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.at >= since)
            .collect()
    }

    /// One line per event relative to `t0`, for failure messages.
    pub fn describe(&self, t0: Instant) -> String {
        self.events()
            .iter()
            .map(|e| {
                let rel = e.at.saturating_duration_since(t0).as_millis() as i128
                    - t0.saturating_duration_since(e.at).as_millis() as i128;
                format!("  {rel:>+7} ms  {}\n", e.line)
            })
            .collect::<String>()
            + &format!("  (interface {})\n", self.ifname)
    }
}

impl Drop for AddrMonitor {
    fn drop(&mut self) {
        self.proc.stop();
        if let Some(r) = self.reader.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !r.is_finished() && Instant::now() < deadline {
                thread::sleep(ms(5));
            }
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }
}

/// An etcd v3 JSON-gateway client for fast writes from a thread inside the etcd's namespace
/// (see [`spawn_in_netns`]): a keep-alive connection, no process per write.
pub struct EtcdHttp {
    agent: ureq::Agent,
    endpoint: String,
}

impl EtcdHttp {
    pub fn new(endpoint: &str) -> EtcdHttp {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build();
        EtcdHttp {
            agent: ureq::Agent::new_with_config(config),
            endpoint: endpoint.to_string(),
        }
    }

    /// POST `body` to `/v3/<path>`; the reply as JSON.
    pub fn call(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        let url = format!("{}/v3/{path}", self.endpoint);
        let mut resp = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("POST {url}: reading the reply: {e}"))?;
        if status != 200 {
            return Err(format!("POST {url}: HTTP {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("POST {url}: {e}: {text}"))
    }

    /// Puts `key` = `value`; returns the new revision.
    pub fn put(&self, key: &str, value: &str) -> Result<i64, String> {
        let b64 = |s: &str| vipd::base64::encode(s.as_bytes());
        let reply = self.call(
            "kv/put",
            &serde_json::json!({"key": b64(key), "value": b64(value)}),
        )?;
        reply["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| format!("put: no revision in {reply}"))
    }

    /// Compacts the store's history up to `revision`.
    pub fn compact(&self, revision: i64) -> Result<(), String> {
        self.call(
            "kv/compaction",
            &serde_json::json!({"revision": revision.to_string(), "physical": true}),
        )
        .map(|_| ())
    }
}

/// A cluster of etcd members m1, m2, … in one namespace: member i serves clients on
/// 127.0.0.i:2379 and peers on 127.0.0.i:2380 (fast elections: heartbeat 100 ms, election
/// timeout 1 s).
pub struct EtcdCluster {
    pub members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Starts `n` members and waits (at most 30 s each) until every one is healthy.
    pub fn start(ns: &Netns, lab: &str, n: usize) -> EtcdCluster {
        let ip = |i: usize| format!("127.0.0.{}", i + 1);
        let cluster = (0..n)
            .map(|i| format!("m{}=http://{}:2380", i + 1, ip(i)))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Etcd> = (0..n)
            .map(|i| {
                Etcd::spawn_member(
                    ns,
                    lab,
                    &format!("m{}", i + 1),
                    &ip(i),
                    &ip(i),
                    &cluster,
                    &["--heartbeat-interval", "100", "--election-timeout", "1000"],
                )
            })
            .collect();
        for m in &mut members {
            m.wait_healthy(Duration::from_secs(30));
        }
        EtcdCluster { members }
    }

    /// Every member's endpoint, comma-separated, in member order.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.endpoint.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A running member, for etcdctl.
    pub fn live(&mut self) -> &Etcd {
        let i = (0..self.members.len())
            .find(|&i| self.members[i].is_running())
            .expect("no etcd member is running");
        &self.members[i]
    }
}

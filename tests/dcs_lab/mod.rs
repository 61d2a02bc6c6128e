//! What the DCS tests add to the common lab (tests/common): etcd members with any options
//! (`--enable-v2`, TLS, several members in one cluster), on the host's loopback or in a
//! namespace; a namespace with a veth pair eth0/eth1 for the VIP; vipd runs.
//!
//! The gate, namespaces, processes and scratch directories are the common lab's, so
//! leftovers of an interrupted run are cleaned up the same way and `make test` counts
//! these tests too. Every wait is bounded.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::{self, Netns, Outcome, Proc, TempDir, ms, tool, vipd_bin};

/// Poll every 10 ms until `f` holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    common::wait_until(timeout, ms(10), f).is_some()
}

/// The common gate (root and etcd), plus the tools named here (`openssl`).
pub fn gate(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| common::find_tool(t).is_none())
        .collect();
    if !missing.is_empty() {
        if std::env::var("VIPD_ALLOW_SKIP").as_deref() == Ok("1") {
            eprintln!(
                "SKIPPED {test}: missing {} (VIPD_ALLOW_SKIP=1)",
                missing.join(", ")
            );
            return false;
        }
        panic!(
            "{test} needs {} (apt-get install it), or set VIPD_ALLOW_SKIP=1 to skip it",
            missing.join(", ")
        );
    }
    common::require_root_and_etcd(test)
}

/// A free TCP port on the host's 127.0.0.1 (free when asked).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One lab: an id, a scratch directory.
pub struct Lab {
    pub id: String,
    pub dir: TempDir,
}

impl Lab {
    pub fn new(what: &str) -> Lab {
        let id = common::lab_id();
        let dir = TempDir::new(&id, what);
        Lab { id, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }

    pub fn write(&self, name: &str, content: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, content).expect("write scratch file");
        path.to_string_lossy().into_owned()
    }

    /// A namespace with a veth pair eth0/eth1 (both up) for the VIP.
    pub fn netns(&self) -> Netns {
        let ns = Netns::new(&self.id, "node");
        ns.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["link", "set", "eth1", "up"]);
        ns
    }
}

/// How to start etcd.
#[derive(Clone, Default)]
pub struct EtcdOptions {
    /// `--enable-v2`.
    pub v2: bool,
    /// Extra arguments (TLS).
    pub extra: Vec<String>,
    /// `https` for the client URL.
    pub client_scheme: Option<&'static str>,
}

/// One etcd member, stopped on drop.
pub struct Etcd {
    pub name: String,
    pub client_url: String,
    proc: Option<Proc>,
    ns: Option<String>,
    /// etcdctl's TLS flags, if the member wants them.
    tls_flags: Vec<String>,
}

impl Etcd {
    /// Start member `name` (client and peer ports on 127.0.0.1) in `ns` or on the host,
    /// in the cluster `initial_cluster` (`name=peer_url,…`; `None`: alone). Not waited for.
    pub fn start(
        lab: &Lab,
        ns: Option<&Netns>,
        name: &str,
        client_port: u16,
        peer_port: u16,
        initial_cluster: Option<&str>,
        opts: &EtcdOptions,
    ) -> Etcd {
        let scheme = opts.client_scheme.unwrap_or("http");
        let client_url = format!("{scheme}://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let data = lab.path(&format!("{name}.etcd"));
        let cluster = initial_cluster
            .map(str::to_string)
            .unwrap_or_else(|| format!("{name}={peer_url}"));
        let mut args: Vec<String> = [
            "--name",
            name,
            "--data-dir",
            &data.to_string_lossy(),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &cluster,
            // The members of one lab share the token.
            "--initial-cluster-token",
            &lab.id,
            "--initial-cluster-state",
            "new",
            // Fast elections for the tests.
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--logger",
            "zap",
            "--log-level",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if opts.v2 {
            args.push("--enable-v2".into());
        }
        args.extend(opts.extra.iter().cloned());
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new(tool("ip"));
                c.args(["netns", "exec", &ns.name, "/usr/bin/etcd"]);
                c
            }
            None => Command::new("/usr/bin/etcd"),
        };
        cmd.args(&args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(&k);
            }
        }
        Etcd {
            name: name.into(),
            client_url,
            proc: Some(Proc::spawn(&format!("etcd {name}"), cmd, true)),
            ns: ns.map(|n| n.name.clone()),
            tls_flags: Vec::new(),
        }
    }

    /// A single member on free host ports, ready.
    pub fn single(lab: &Lab, opts: &EtcdOptions) -> Etcd {
        let etcd = Etcd::start(lab, None, "e1", free_port(), free_port(), None, opts);
        etcd.wait_ready();
        etcd
    }

    /// etcdctl's flags for a TLS member (`--cacert`, `--cert`, `--key`).
    pub fn with_tls_flags(mut self, flags: Vec<String>) -> Etcd {
        self.tls_flags = flags;
        self
    }

    /// `etcdctl ARGS` to completion (bounded); v3, or v2 with `v2`.
    pub fn ctl(&self, v2: bool, args: &[&str]) -> Outcome {
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new(tool("ip"));
                c.args(["netns", "exec", ns]).arg(tool("etcdctl"));
                c
            }
            None => Command::new(tool("etcdctl")),
        };
        cmd.env("ETCDCTL_API", if v2 { "2" } else { "3" })
            .arg(format!("--endpoints={}", self.client_url));
        if !v2 {
            cmd.args(["--dial-timeout=2s", "--command-timeout=5s"]);
            cmd.args(&self.tls_flags);
        }
        cmd.args(args);
        Proc::spawn("etcdctl", cmd, true).finish(Duration::from_secs(15))
    }

    /// `etcdctl ARGS`, which must succeed; its stdout.
    pub fn ctl_ok(&self, v2: bool, args: &[&str]) -> String {
        let out = self.ctl(v2, args);
        assert!(
            out.status.success(),
            "etcdctl {}: {}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// `sh -c SCRIPT` where this member runs (the host or its namespace), bounded.
    pub fn sh(&self, script: &str) -> Outcome {
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new(tool("ip"));
                c.args(["netns", "exec", ns, "sh", "-c", script]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", script]);
                c
            }
        };
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        Proc::spawn("sh", cmd, true).finish(Duration::from_secs(15))
    }

    /// Wait (at most 20 s) until the member answers a linearizable read.
    pub fn wait_ready(&self) {
        let ok = wait_until(Duration::from_secs(20), || {
            self.ctl(false, &["get", "/vipd-test-ready"])
                .status
                .success()
        });
        assert!(ok, "etcd {} not ready:\n{}", self.name, self.log());
    }

    pub fn log(&self) -> String {
        self.proc.as_ref().map(Proc::log).unwrap_or_default()
    }

    /// Stop this member now.
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

/// The vipd arguments for the VIP 192.0.2.50/24 on eth0, node "pg1", and `extra`.
pub fn vip_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--ip",
        "192.0.2.50",
        "--netmask",
        "24",
        "--interface",
        "eth0",
        "--trigger-value",
        "pg1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// vipd as a daemon in `ns` (VIP_* variables of the caller are not passed).
pub fn vipd(ns: &Netns, args: &[String]) -> Proc {
    Proc::spawn_in(&ns.name, &vipd_bin(), args)
}

/// vipd to completion in `ns` (bounded).
pub fn vipd_once(ns: &Netns, args: &[String]) -> Outcome {
    vipd(ns, args).finish(Duration::from_secs(30))
}

/// Everything vipd said.
pub fn output(p: &Proc) -> String {
    format!("{}{}", p.stderr(), p.stdout())
}

/// SIGTERM, and the exit code (waiting at most `timeout`).
pub fn terminate(p: &mut Proc, timeout: Duration) -> Option<i32> {
    p.signal("TERM");
    p.wait_timeout(timeout).and_then(|s| s.code())
}

/// Whether the VIP is on eth0 of `ns`.
pub fn has_vip(ns: &Netns) -> bool {
    ns.has_vip("eth0")
}

/// Run `f` on a thread inside `ns` (sockets it opens, like a fake server's listener,
/// belong to the namespace).
pub fn inside<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsFd;
    let path = format!("/run/netns/{}", ns.name);
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            vipd::net::sys::enter_netns(file.as_fd()).expect("setns");
            f()
        })
        .join()
        .expect("thread inside the namespace")
    })
}

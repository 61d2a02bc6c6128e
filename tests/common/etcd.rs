//! Debian's etcd (3.4) in the lab's namespaces: one member or a cluster, with any options
//! (`--enable-v2`, TLS), driven by etcdctl; and a JSON-gateway client for fast writes.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{Netns, Outcome, Proc, TempDir, args, in_netns, json, ms, tool, wait_until};

/// Fast elections (the DCS tests): heartbeat 50 ms, election timeout 500 ms.
pub const FAST_ELECTIONS: &str = "--heartbeat-interval 50 --election-timeout 500";

/// etcd running inside a namespace with a temporary data dir; killed and removed on Drop.
pub struct Etcd {
    proc: Option<Proc>,
    ns: String,
    /// `http://<ip>:2379` (or `https://…`)
    pub endpoint: String,
    /// The command line, for [`Etcd::restart`].
    args: Vec<String>,
    /// The data directory (inside `_dir`).
    data: PathBuf,
    /// etcdctl's TLS flags (`--cacert=…`, `--cert=…`, `--key=…`), if the member wants them.
    ctl_flags: Vec<String>,
    _dir: TempDir,
}

impl Etcd {
    /// Starts etcd alone in `ns`, clients on `ip`:2379, peers on 127.0.0.1:2380 of that
    /// namespace, and waits (at most 20 s) until it is healthy.
    pub fn start(ns: &Netns, lab: &str, ip: &str) -> Etcd {
        Etcd::start_with(ns, lab, &format!("http://{ip}:2379"), "", &[])
    }

    /// Like [`Etcd::start`] with clients at the URL `client`, the arguments of `extra` after
    /// the lab's, and `ctl_flags` for etcdctl.
    pub fn start_with(
        ns: &Netns,
        lab: &str,
        client: &str,
        extra: &str,
        ctl_flags: &[String],
    ) -> Etcd {
        let peer = "http://127.0.0.1:2380";
        let mut etcd =
            Etcd::spawn_member(ns, lab, "lab", client, peer, &format!("lab={peer}"), extra);
        etcd.ctl_flags = ctl_flags.to_vec();
        etcd.wait_healthy(Duration::from_secs(20));
        etcd
    }

    /// Starts (does not wait for) etcd member `name` in `ns`: clients at the URL `client`,
    /// peers at the URL `peer`, `cluster` as etcd's `--initial-cluster`, the arguments of
    /// `extra` after. Its data dir is `<scratch>/<lab>-etcd-<name>`.
    pub fn spawn_member(
        ns: &Netns,
        lab: &str,
        name: &str,
        client: &str,
        peer: &str,
        cluster: &str,
        extra: &str,
    ) -> Etcd {
        let dir = TempDir::new(lab, &format!("etcd-{name}"));
        let data = dir.path.join("data");
        let args = args(&format!(
            "--name {name} --data-dir {} --listen-client-urls {client} --advertise-client-urls \
             {client} --listen-peer-urls {peer} --initial-advertise-peer-urls {peer} \
             --initial-cluster {cluster} --initial-cluster-token {lab} --initial-cluster-state \
             new --logger zap --log-level warn {extra}",
            data.display()
        ));
        let mut etcd = Etcd {
            proc: None,
            ns: ns.name.clone(),
            endpoint: client.to_string(),
            args,
            data,
            ctl_flags: Vec::new(),
            _dir: dir,
        };
        etcd.spawn();
        etcd
    }

    /// `program` run inside the namespace, with the ETCD* variables of the caller removed.
    fn command(&self, program: PathBuf) -> Command {
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &self.ns]).arg(program);
        for (k, _) in env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(&k);
            }
        }
        cmd
    }

    fn spawn(&mut self) {
        let mut cmd = self.command(PathBuf::from("/usr/bin/etcd"));
        cmd.args(&self.args);
        let what = format!("etcd {} in {}", self.endpoint, self.ns);
        self.proc = Some(Proc::spawn(&what, cmd, true));
    }

    /// Waits (at most `timeout`) until `etcdctl endpoint health` succeeds; panics otherwise.
    pub fn wait_healthy(&mut self, timeout: Duration) {
        let healthy = wait_until(timeout, ms(100), || {
            self.is_running() && self.etcdctl(&["endpoint", "health"]).status.success()
        });
        if healthy.is_none() {
            panic!(
                "etcd {} in {} did not become healthy within {timeout:?}\n{}",
                self.endpoint,
                self.ns,
                self.log()
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
        self.restart();
    }

    /// The etcd process's pid (`ip netns exec` execs etcd), for signals.
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("etcd is not running").pid()
    }

    /// Whether the etcd process is running.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// The store's current revision (`etcdctl endpoint status`).
    pub fn revision(&self) -> i64 {
        let v = json(&self.etcdctl_ok(&["endpoint", "status", "-w", "json"]));
        let revision = v[0]["Status"]["header"]["revision"].as_i64();
        revision.unwrap_or_else(|| panic!("no revision in {v}"))
    }

    /// What etcd said so far, for failure messages.
    pub fn log(&self) -> String {
        self.proc.as_ref().map(Proc::log).unwrap_or_default()
    }

    /// `etcdctl ARGS…` with API `api` (2 or 3) inside the namespace, to completion (bounded).
    fn ctl(&self, api: u8, args: &[&str]) -> Outcome {
        let mut cmd = self.command(tool("etcdctl"));
        cmd.arg(format!("--endpoints={}", self.endpoint))
            .env("ETCDCTL_API", api.to_string());
        if api == 3 {
            cmd.args(["--dial-timeout=2s", "--command-timeout=5s"])
                .args(&self.ctl_flags);
        }
        cmd.args(args);
        Proc::spawn("etcdctl", cmd, true).finish(Duration::from_secs(15))
    }

    /// `etcdctl ARGS…` (API v3).
    /// The sum of etcd's Prometheus samples named `name` whose labels contain every one
    /// of `labels` (such as `grpc_method="Range"`), read from its `/metrics`.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let url = format!("{}/metrics", self.endpoint);
        let text = in_netns(&self.ns, || {
            let mut reply = ureq::get(&url).call().expect("GET /metrics");
            reply.body_mut().read_to_string().expect("the metrics")
        });
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn etcdctl(&self, args: &[&str]) -> Outcome {
        self.ctl(3, args)
    }

    /// `etcdctl ARGS…` (API v3), which must succeed; its stdout.
    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args);
        out.expect(0, &format!("etcdctl {}", args.join(" ")));
        out.stdout
    }

    /// `etcdctl ARGS…` with the v2 API, which must succeed.
    pub fn v2(&self, args: &[&str]) {
        self.ctl(2, args)
            .expect(0, &format!("ETCDCTL_API=2 etcdctl {}", args.join(" ")));
    }

    pub fn put(&self, key: &str, value: &str) {
        self.etcdctl_ok(&["put", key, value]);
    }

    pub fn del(&self, key: &str) {
        self.etcdctl_ok(&["del", key]);
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

/// A cluster of etcd members m1, m2, … in one namespace: member i serves clients on
/// 127.0.0.i:2379 and peers on 127.0.0.i:2380.
pub struct EtcdCluster {
    pub members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Starts `n` members with the arguments of `extra` (election timing) and waits (at most
    /// 30 s each) until every one is healthy.
    pub fn start(ns: &Netns, lab: &str, n: usize, extra: &str) -> EtcdCluster {
        let url = |i: usize, port: u16| format!("http://127.0.0.{}:{port}", i + 1);
        let cluster: Vec<String> = (0..n)
            .map(|i| format!("m{}={}", i + 1, url(i, 2380)))
            .collect();
        let cluster = cluster.join(",");
        let mut members: Vec<Etcd> = (0..n)
            .map(|i| {
                let name = format!("m{}", i + 1);
                Etcd::spawn_member(
                    ns,
                    lab,
                    &name,
                    &url(i, 2379),
                    &url(i, 2380),
                    &cluster,
                    extra,
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
        let all: Vec<&str> = self.members.iter().map(|m| m.endpoint.as_str()).collect();
        all.join(",")
    }

    /// A running member, for etcdctl.
    pub fn live(&mut self) -> &Etcd {
        let i = (0..self.members.len())
            .find(|&i| self.members[i].is_running())
            .expect("no etcd member is running");
        &self.members[i]
    }
}

/// An etcd v3 JSON-gateway client for fast writes from a thread inside the etcd's namespace
/// (see [`super::in_netns`]): a keep-alive connection, no process per write.
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
    fn call(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
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
        let body = serde_json::json!({"key": b64(key), "value": b64(value)});
        let reply = self.call("kv/put", &body)?;
        reply["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| format!("put: no revision in {reply}"))
    }

    /// Compacts the store's history up to `revision`.
    pub fn compact(&self, revision: i64) -> Result<(), String> {
        let body = serde_json::json!({"revision": revision.to_string(), "physical": true});
        self.call("kv/compaction", &body).map(|_| ())
    }
}

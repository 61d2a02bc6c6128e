//! Read-only VIPs on a three-node cluster, for each DCS type: the test plays Patroni and
//! writes the scope's records in the shape Patroni 3.0.2 writes them (captured in
//! tests/fixtures/scope/), and a vipd per node and VIP follows them.
//!
//! One network namespace holds the lab: the DCS on its 127.0.0.1 (the real etcd for etcd
//! v3 and v2; the faithful fakes of Consul's KV API and of Patroni's `GET /cluster` for
//! the others), and three veth pairs n1/p1, n2/p2, n3/p3 standing for the nodes'
//! interfaces. Every node runs a primary VIP (192.0.2.50, except with `dcs-type patroni`,
//! whose primary VIP asks each node's own `/leader`), a replica VIP (192.0.2.60), a
//! replica VIP with `replica-fallback none` (192.0.2.61) and a sync VIP (192.0.2.62).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vipd::dcs::scope::weight;

use crate::common::*;
use crate::fakes::{Reply, Server};

const SCOPE: &str = "/service/lab";
const NODES: [&str; 3] = ["node1", "node2", "node3"];
const PRIMARY_VIP: &str = "192.0.2.50";
const REPLICA_VIP: &str = "192.0.2.60";
const NONE_VIP: &str = "192.0.2.61";
const SYNC_VIP: &str = "192.0.2.62";
/// The leader's WAL position, and a lag over the limit (1 MiB) the replicas may have.
const POS: u64 = 0x3000_0000;
const FAR_BEHIND: u64 = POS - (64 << 20);
const SETTLE_MS: u64 = 2000;
/// How long a move may take in a test (the bench measures how long it does take).
const MOVE: Duration = Duration::from_secs(4);

/// Where the test writes the scope's records.
trait Store: Send + Sync {
    /// Write `value` at the key `rel` under the scope (`leader`, `members/node2`, …).
    fn put(&self, rel: &str, value: &str);
    fn del(&self, rel: &str);
    /// The vipd options that read this store.
    fn dcs_args(&self) -> String;
    /// The trigger key: the scope's leader key, or Patroni's `/cluster`.
    fn trigger_key(&self) -> String {
        format!("{SCOPE}/leader")
    }
    /// Whether the primary VIP can be run against it.
    fn has_primary_vip(&self) -> bool {
        true
    }
}

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build();
    ureq::Agent::new_with_config(config)
}

/// etcd's v3 API through its JSON gateway, reached from inside the lab's namespace
/// (`ns`): each request is made on a thread that entered it.
struct Etcd3 {
    etcd: Etcd,
    http: ureq::Agent,
    ns: String,
}

impl Etcd3 {
    fn call(&self, path: &str, body: Value) {
        let url = format!("{}/v3/kv/{path}", self.etcd.endpoint);
        in_netns(&self.ns, || {
            let mut resp = self
                .http
                .post(&url)
                .send(body.to_string())
                .unwrap_or_else(|e| panic!("POST {url}: {e}"));
            let status = resp.status();
            let text = resp.body_mut().read_to_string();
            assert_eq!(status, 200, "POST {url}: {text:?}");
        });
    }
}

impl Store for Etcd3 {
    fn put(&self, rel: &str, value: &str) {
        let key = b64(&format!("{SCOPE}/{rel}"));
        self.call("put", json!({"key": key, "value": b64(value)}));
    }
    fn del(&self, rel: &str) {
        let key = b64(&format!("{SCOPE}/{rel}"));
        self.call("deleterange", json!({"key": key}));
    }
    fn dcs_args(&self) -> String {
        format!("--dcs-type etcd3 --dcs-endpoints {}", self.etcd.endpoint)
    }
}

/// etcd's v2 keys API (Patroni's `etcd:` section), reached as [`Etcd3`] is.
struct Etcd2 {
    etcd: Etcd,
    http: ureq::Agent,
    ns: String,
}

impl Store for Etcd2 {
    fn put(&self, rel: &str, value: &str) {
        let url = format!("{}/v2/keys{SCOPE}/{rel}", self.etcd.endpoint);
        let body = format!("value={}", form(value));
        in_netns(&self.ns, || {
            let resp = self
                .http
                .put(&url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(body)
                .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
            let status = resp.status().as_u16();
            assert!(matches!(status, 200 | 201), "PUT {url}: {status}");
        });
    }
    fn del(&self, rel: &str) {
        let url = format!("{}/v2/keys{SCOPE}/{rel}", self.etcd.endpoint);
        in_netns(&self.ns, || {
            let resp = self.http.delete(&url).call();
            let resp = resp.unwrap_or_else(|e| panic!("DELETE {url}: {e}"));
            assert!(matches!(resp.status().as_u16(), 200 | 404), "DELETE {url}");
        });
    }
    fn dcs_args(&self) -> String {
        format!("--dcs-type etcd2 --dcs-endpoints {}", self.etcd.endpoint)
    }
}

/// The fake of Consul's KV API.
struct Consul {
    fake: crate::fakes::FakeConsul,
}

impl Store for Consul {
    fn put(&self, rel: &str, value: &str) {
        let key = format!("{SCOPE}/{rel}");
        self.fake.put(key.trim_start_matches('/'), value, None);
    }
    fn del(&self, rel: &str) {
        let key = format!("{SCOPE}/{rel}");
        self.fake.delete(key.trim_start_matches('/'));
    }
    fn dcs_args(&self) -> String {
        format!("--dcs-type consul --dcs-endpoints {}", self.fake.url())
    }
}

/// A fake of Patroni's `GET /cluster`, rendered from the records the test writes as
/// Patroni 3.0.2 renders them (tests/fixtures/scope/cluster.json): the leader's role
/// `leader`, the synchronous standby's `sync_standby`, the others `replica`, each
/// replica's `lag` the leader's position minus its own (`"unknown"` without one).
struct PatroniCluster {
    records: Arc<Mutex<BTreeMap<String, String>>>,
    http: Server,
}

impl PatroniCluster {
    fn start() -> PatroniCluster {
        let records: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let shared = records.clone();
        let http = Server::start("127.0.0.1:0", move |req| match req.path() {
            "/cluster" => Reply::json(200, render_cluster(&lock(&shared))),
            _ => Reply::new(404, ""),
        });
        PatroniCluster { records, http }
    }
}

fn render_cluster(records: &BTreeMap<String, String>) -> String {
    let leader = records.get("leader").cloned();
    let parse = |k: &str| -> Value {
        records
            .get(k)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or(Value::Null)
    };
    let pos = parse("status")["optime"].as_u64();
    let sync = parse("sync")["sync_standby"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut members = Vec::new();
    for (key, value) in records {
        let Some(name) = key.strip_prefix("members/") else {
            continue;
        };
        let Ok(m) = serde_json::from_str::<Value>(value) else {
            continue;
        };
        let host = m["conn_url"]
            .as_str()
            .and_then(|u| u.split("//").nth(1))
            .and_then(|h| h.split(':').next())
            .unwrap_or("");
        let mut entry = json!({
            "name": name,
            "role": "replica",
            "state": m["state"],
            "api_url": m["api_url"],
            "host": host,
            "port": 5432,
            "timeline": m["timeline"],
        });
        if let Some(tags) = m.get("tags") {
            entry["tags"] = tags.clone();
        }
        if leader.as_deref() == Some(name) {
            entry["role"] = "leader".into();
        } else {
            if sync.split(',').any(|s| s == name) {
                entry["role"] = "sync_standby".into();
            }
            entry["lag"] = match (pos, m["xlog_location"].as_u64()) {
                (Some(p), Some(x)) => p.saturating_sub(x).into(),
                _ => "unknown".into(),
            };
        }
        members.push(entry);
    }
    json!({ "members": members }).to_string()
}

impl Store for PatroniCluster {
    fn put(&self, rel: &str, value: &str) {
        lock(&self.records).insert(rel.to_string(), value.to_string());
    }
    fn del(&self, rel: &str) {
        lock(&self.records).remove(rel);
    }
    fn dcs_args(&self) -> String {
        format!("--dcs-type patroni --dcs-endpoints {}", self.http.url())
    }
    fn has_primary_vip(&self) -> bool {
        false
    }
    fn trigger_key(&self) -> String {
        "/cluster".into()
    }
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn form(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A member record as Patroni 3.0.2 writes it, fields in its order
/// (tests/fixtures/scope/etcd3/members/*).
fn record(node: &str, role: &str, state: &str, pos: u64, tags: Option<Value>) -> String {
    let i = node.trim_start_matches("node");
    let tags = tags.map_or(String::new(), |t| format!(",\"tags\":{t}"));
    format!(
        "{{\"conn_url\":\"postgres://192.0.2.1{i}:5432/postgres\",\
         \"api_url\":\"http://192.0.2.1{i}:8008/patroni\",\"state\":\"{state}\",\
         \"role\":\"{role}\",\"version\":\"3.0.2\"{tags},\"xlog_location\":{pos},\
         \"timeline\":1}}"
    )
}

/// The lab: one namespace with the three nodes' interfaces and the DCS.
struct Cluster {
    ns: Netns,
    lab: String,
    /// Running vipds by (node index, VIP).
    vipds: BTreeMap<(usize, &'static str), Proc>,
}

impl Cluster {
    fn new() -> Cluster {
        let lab = lab_id();
        let ns = Netns::new(&lab, "c");
        for i in 1..=3 {
            let (n, p) = (format!("n{i}"), format!("p{i}"));
            ns.ip(&["link", "add", &n, "type", "veth", "peer", "name", &p]);
            ns.ip(&["link", "set", &n, "up"]);
            ns.ip(&["link", "set", &p, "up"]);
        }
        ns.ip(&["link", "set", "lo", "up"]);
        Cluster {
            ns,
            lab,
            vipds: BTreeMap::new(),
        }
    }

    fn start(&mut self, store: &dyn Store, node: usize, vip: &'static str) {
        let rules = format!("--replica-max-lag 1MB --replica-settle {SETTLE_MS}");
        let role = match vip {
            PRIMARY_VIP => String::new(),
            SYNC_VIP => format!("--vip-role sync {rules}"),
            NONE_VIP => format!("--vip-role replica {rules} --replica-fallback none"),
            _ => format!("--vip-role replica {rules}"),
        };
        let line = format!(
            "--ip {vip} --netmask 24 --interface n{node} --trigger-key {} \
             --trigger-value node{node} {} {role} --interval 100 --announce-count 1 \
             --conflict-probe-interval 0 -v",
            store.trigger_key(),
            store.dcs_args()
        );
        let proc = self.ns.vipd(&args(&line));
        self.vipds.insert((node, vip), proc);
    }

    fn start_all(&mut self, store: &dyn Store) {
        for node in 1..=3 {
            for vip in [PRIMARY_VIP, REPLICA_VIP, NONE_VIP, SYNC_VIP] {
                if vip != PRIMARY_VIP || store.has_primary_vip() {
                    self.start(store, node, vip);
                }
            }
        }
    }

    fn stop(&mut self, vip: &str) {
        let keys: Vec<_> = self
            .vipds
            .keys()
            .filter(|(_, v)| *v == vip)
            .copied()
            .collect();
        for key in keys {
            if let Some(mut p) = self.vipds.remove(&key) {
                p.stop();
            }
        }
    }

    /// The nodes whose interface holds `vip`.
    fn holders(&self, vip: &str) -> Vec<usize> {
        let want: Ipv4Addr = vip.parse().unwrap();
        (1..=3)
            .filter(|i| {
                self.ns
                    .addrs(&format!("n{i}"))
                    .iter()
                    .any(|(a, _)| *a == want)
            })
            .collect()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for ((node, vip), p) in &self.vipds {
            out += &format!("--- node{node} {vip}\n{}\n", p.log());
        }
        out
    }

    /// `vip` is on exactly `want` (one node, or none) within [`MOVE`].
    fn expect(&self, vip: &str, want: Option<usize>, what: &str) {
        let target: Vec<usize> = want.into_iter().collect();
        within(
            MOVE,
            &format!("{what}: {vip} on {target:?}"),
            &|| format!("{}\nholders now: {:?}", self.logs(), self.holders(vip)),
            || self.holders(vip) == target,
        );
    }

    /// `vip` stays on `want` for `time`.
    fn stays(&self, vip: &str, want: Option<usize>, time: Duration, what: &str) {
        let target: Vec<usize> = want.into_iter().collect();
        let start = Instant::now();
        // Bounded by time and, should polling stall, by count.
        for _ in 0..10_000 {
            let now = self.holders(vip);
            assert_eq!(now, target, "{what}: {vip} moved\n{}", self.logs());
            if start.elapsed() >= time {
                break;
            }
            thread::sleep(POLL);
        }
    }
}

/// The replicas of `leader` ordered by their weight for `vip`, heaviest first.
fn by_weight(vip: &str, candidates: &[usize]) -> Vec<usize> {
    let mut v = candidates.to_vec();
    v.sort_by_key(|&i| std::cmp::Reverse(weight(vip, NODES[i - 1])));
    v
}

fn healthy(store: &dyn Store, leader: usize) {
    store.put("status", &json!({"optime": POS, "slots": {}}).to_string());
    for i in 1..=3 {
        let name = NODES[i - 1];
        let role = if i == leader { "master" } else { "replica" };
        store.put(
            &format!("members/{name}"),
            &record(name, role, "running", POS, None),
        );
    }
    store.put("leader", NODES[leader - 1]);
}

/// Every scenario the read-only VIPs must pass, on one store (its server in `c`'s
/// namespace).
fn scenario(mut c: Cluster, store: &dyn Store) {
    let primary = store.has_primary_vip();
    healthy(store, 1);
    store.put(
        "sync",
        &json!({"leader": "node1", "sync_standby": "node3"}).to_string(),
    );
    c.start_all(store);
    let order = by_weight(REPLICA_VIP, &[2, 3]);
    let (first, second) = (order[0], order[1]);

    // The replica VIP on the preferred eligible replica, the primary VIP on the leader.
    c.expect(REPLICA_VIP, Some(first), "start");
    c.expect(NONE_VIP, Some(by_weight(NONE_VIP, &[2, 3])[0]), "start");
    c.expect(SYNC_VIP, Some(3), "start: the sync key names node3");
    if primary {
        c.expect(PRIMARY_VIP, Some(1), "start");
    }

    // The holder falls behind: the VIP moves to the other replica; the primary stays.
    let holder = NODES[first - 1];
    let key = format!("members/{holder}");
    store.put(
        &key,
        &record(holder, "replica", "running", FAR_BEHIND, None),
    );
    c.expect(REPLICA_VIP, Some(second), "holder over replica-max-lag");
    if primary {
        c.stays(PRIMARY_VIP, Some(1), Duration::from_millis(200), "lag");
    }
    // Back within the limit: it returns, the hash preferring it, only after the settle.
    store.put(&key, &record(holder, "replica", "running", POS, None));
    c.stays(
        REPLICA_VIP,
        Some(second),
        Duration::from_millis(SETTLE_MS - 500),
        "settling",
    );
    c.expect(
        REPLICA_VIP,
        Some(first),
        "settled: back on the preferred replica",
    );

    // A noloadbalance tag on the holder moves it.
    let tags = Some(json!({"noloadbalance": true}));
    store.put(&key, &record(holder, "replica", "running", POS, tags));
    c.expect(REPLICA_VIP, Some(second), "noloadbalance");
    store.put(&key, &record(holder, "replica", "running", POS, None));
    c.expect(REPLICA_VIP, Some(first), "tag removed, settled");

    // Restarting every replica vipd gives the same holder. A stopped vipd removes its
    // VIP, so the restarted ones first take it, then keep it.
    c.stop(REPLICA_VIP);
    for node in 1..=3 {
        c.start(store, node, REPLICA_VIP);
    }
    c.expect(REPLICA_VIP, Some(first), "after a restart");
    c.stays(
        REPLICA_VIP,
        Some(first),
        Duration::from_millis(1000),
        "after a restart",
    );

    // All replicas stopped: on the primary (fallback primary), nowhere (none); back on a
    // replica when one recovers (after its settle).
    for i in [2, 3] {
        let name = NODES[i - 1];
        store.put(
            &format!("members/{name}"),
            &record(name, "replica", "stopped", POS, None),
        );
    }
    c.expect(
        REPLICA_VIP,
        Some(1),
        "no eligible replica: fallback primary",
    );
    c.expect(NONE_VIP, None, "no eligible replica: fallback none");
    let name = NODES[second - 1];
    store.put(
        &format!("members/{name}"),
        &record(name, "replica", "running", POS, None),
    );
    c.expect(REPLICA_VIP, Some(second), "a replica recovered");
    c.expect(NONE_VIP, Some(second), "a replica recovered (none)");

    // Switchover to the preferred replica: it loses the replica VIP to the remaining
    // replica (node1, once its record says a running replica), the primary VIP follows
    // the leader key, and the sync VIP the sync key.
    let name = NODES[first - 1];
    store.put(
        &format!("members/{name}"),
        &record(name, "replica", "running", POS, None),
    );
    store.put("leader", NODES[first - 1]);
    store.put(
        &format!("members/{name}"),
        &record(name, "master", "running", POS, None),
    );
    store.put(
        "members/node1",
        &record("node1", "replica", "running", POS, None),
    );
    store.put(
        "sync",
        &json!({"leader": name, "sync_standby": format!("node{second}")}).to_string(),
    );
    if primary {
        c.expect(PRIMARY_VIP, Some(first), "switchover: primary VIP");
    }
    c.expect(SYNC_VIP, Some(second), "switchover: the sync key moved");
    // node1 was the leader (ineligible) and settles; `second` holds it meanwhile.
    let after = by_weight(REPLICA_VIP, &[1, second]);
    c.expect(REPLICA_VIP, Some(second), "switchover: off the new leader");
    if after[0] == 1 {
        c.expect(REPLICA_VIP, Some(1), "the old leader, settled, outweighs");
    }

    // The sync key gone: the sync VIP falls back to the leader.
    store.del("sync");
    c.expect(SYNC_VIP, Some(first), "no sync standby: fallback primary");
}

#[test]
fn replica_vips_etcd3() {
    gate!(Etcd);
    let c = Cluster::new();
    let etcd = Etcd::start(&c.ns, &c.lab, "127.0.0.1");
    let store = Etcd3 {
        ns: c.ns.name.clone(),
        etcd,
        http: agent(),
    };
    scenario(c, &store);
}

#[test]
fn replica_vips_etcd2() {
    gate!(Etcd);
    let c = Cluster::new();
    let etcd = Etcd::start_with(&c.ns, &c.lab, "http://127.0.0.1:2379", "--enable-v2", &[]);
    let store = Etcd2 {
        ns: c.ns.name.clone(),
        etcd,
        http: agent(),
    };
    scenario(c, &store);
}

#[test]
fn replica_vips_consul() {
    gate!(Root);
    let c = Cluster::new();
    let fake = in_netns(&c.ns.name, || crate::fakes::FakeConsul::start(0));
    let store = Consul { fake };
    scenario(c, &store);
}

#[test]
fn replica_vips_patroni_cluster() {
    gate!(Root);
    let c = Cluster::new();
    let store = in_netns(&c.ns.name, PatroniCluster::start);
    scenario(c, &store);
}

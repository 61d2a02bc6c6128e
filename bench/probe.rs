//! failover-probe: measures VIP moves in the benchmark lab with one clock.
//!
//! Run by `bench/failover.sh` (not by hand): it builds the lab (demo/lab.sh) and
//! starts the agents, then this program, as root, joins the lab's namespaces from
//! threads (`setns`), one clock (`Instant`, CLOCK_MONOTONIC) for everything:
//!
//! * one thread per node namespace listens to rtnetlink's IPv4 address group and
//!   stamps every add and removal of the VIP;
//! * one thread in the client namespace reads ARP frames on an AF_PACKET socket and
//!   stamps each gratuitous ARP for the VIP (sender IP = target IP = VIP);
//! * the main thread, in the switch namespace, writes the leader key with a direct
//!   HTTP request on a kept-alive connection, taking t0 just before sending.
//!
//! Per move it prints the delays from t0 to: the VIP on the new node, the VIP gone
//! from the old one, the first gratuitous ARP from the new node's MAC; and the
//! windows with the VIP on two nodes or on none. Raw numbers go to `--out` as CSV.

#[path = "disturb.rs"]
mod disturb;

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use vipd::base64;
use vipd::net::AddrBackend;
use vipd::net::netlink::{self, Kernel, Payload};
use vipd::net::sys::{self, Socket};

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Added,
    Removed,
    /// The kernel reports the node's link up with carrier (`--disturb link`).
    LinkUp,
    Garp([u8; 6]),
}

#[derive(Debug, Clone, Copy)]
struct Event {
    node: usize,
    kind: Kind,
    at: Instant,
}

struct Args {
    sw: String,
    nodes: Vec<String>,
    names: Vec<String>,
    client: String,
    ifname: String,
    vip: Ipv4Addr,
    etcd: String,
    key: String,
    moves: usize,
    api: String,
    spacing: Duration,
    out: Option<String>,
    label: String,
    /// Instead of moves: disturb the first node's VIP or link ([`disturb`]).
    disturb: Option<disturb::Disturb>,
    /// A replica VIP: the scope's prefix (`/service/bench/`) whose records the probe
    /// writes, as Patroni would, to move the VIP between the replicas `--nodes`.
    scope: Option<String>,
    /// With `--scope`: the leader's member name (not one of `--names`).
    leader: String,
    /// With `--scope`, after the moves: rewrite every member record (each with a new
    /// position, one after another) every `--rewrite-every-ms`, as Patroni's members do
    /// every `loop_wait`, for this many seconds.
    rewrite_for: Duration,
    rewrite_every: Duration,
}

fn args() -> Result<Args, String> {
    let mut a = pico_args::Arguments::from_env();
    let list = |s: String| s.split(',').map(str::to_string).collect::<Vec<_>>();
    let get = |a: &mut pico_args::Arguments, k: &'static str| {
        a.value_from_str::<_, String>(k)
            .map_err(|e| format!("{k}: {e}"))
    };
    let parsed = Args {
        sw: get(&mut a, "--sw")?,
        nodes: list(get(&mut a, "--nodes")?),
        names: list(get(&mut a, "--names")?),
        client: get(&mut a, "--client")?,
        ifname: a
            .opt_value_from_str("--ifname")
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| "eth0".into()),
        vip: get(&mut a, "--vip")?
            .parse()
            .map_err(|e| format!("--vip: {e}"))?,
        etcd: get(&mut a, "--etcd")?,
        key: get(&mut a, "--key")?,
        moves: a
            .opt_value_from_str("--moves")
            .map_err(|e| e.to_string())?
            .unwrap_or(20),
        api: a
            .opt_value_from_str("--api")
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| "v3".into()),
        spacing: Duration::from_millis(
            a.opt_value_from_str("--spacing-ms")
                .map_err(|e| e.to_string())?
                .unwrap_or(1000),
        ),
        out: a.opt_value_from_str("--out").map_err(|e| e.to_string())?,
        label: a
            .opt_value_from_str("--label")
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| "vipd".into()),
        disturb: a
            .opt_value_from_str::<_, String>("--disturb")
            .map_err(|e| e.to_string())?
            .map(|s| disturb::Disturb::parse(&s))
            .transpose()?,
        scope: a.opt_value_from_str("--scope").map_err(|e| e.to_string())?,
        leader: a
            .opt_value_from_str("--leader")
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| "node1".into()),
        rewrite_for: Duration::from_secs(
            a.opt_value_from_str("--rewrite-for")
                .map_err(|e| e.to_string())?
                .unwrap_or(0),
        ),
        rewrite_every: Duration::from_millis(
            a.opt_value_from_str("--rewrite-every-ms")
                .map_err(|e| e.to_string())?
                .unwrap_or(10_000),
        ),
    };
    if parsed.nodes.len() != parsed.names.len() || parsed.nodes.len() < 2 {
        return Err(
            "--nodes and --names: the same number (at least 2) of comma-separated items".into(),
        );
    }
    Ok(parsed)
}

fn enter(ns: &str) -> Result<(), String> {
    let f = File::open(format!("/run/netns/{ns}")).map_err(|e| format!("netns {ns}: {e}"))?;
    sys::enter_netns(f.as_fd()).map_err(|e| format!("setns {ns}: {e}"))
}

/// Stamp every add and removal of `vip` in namespace `ns`; the node's MAC goes back
/// once on `mac_tx` when the listener is ready.
fn watch_node(
    node: usize,
    ns: String,
    ifname: String,
    vip: Ipv4Addr,
    tx: mpsc::Sender<Event>,
    mac_tx: mpsc::Sender<(usize, [u8; 6])>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    enter(&ns)?;
    let mac = Kernel::open_without_announce()
        .and_then(|mut k| k.link(&ifname))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{ifname} not found in {ns}"))?
        .mac;
    let sock = Socket::new(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
        .map_err(|e| e.to_string())?;
    sock.bind_netlink_groups(0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR)
        .map_err(|e| e.to_string())?;
    sock.set_recv_timeout(Duration::from_millis(100))
        .map_err(|e| e.to_string())?;
    let _ = mac_tx.send((node, mac));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.to_string()),
        };
        let at = Instant::now();
        for msg in netlink::parse(&buf[..n.min(buf.len())]).flatten() {
            let (kind, addr) = match msg.payload {
                Payload::NewAddr(a) => (Kind::Added, a),
                Payload::DelAddr(a) => (Kind::Removed, a),
                Payload::NewLink(l) if l.is_up() => {
                    let _ = tx.send(Event {
                        node,
                        kind: Kind::LinkUp,
                        at,
                    });
                    continue;
                }
                _ => continue,
            };
            if addr.address == Some(IpAddr::V4(vip)) {
                let _ = tx.send(Event { node, kind, at });
            }
        }
    }
    Ok(())
}

/// Stamp every gratuitous ARP for `vip` seen in namespace `ns`.
fn watch_client(
    ns: String,
    vip: Ipv4Addr,
    tx: mpsc::Sender<Event>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    enter(&ns)?;
    let proto = i32::from((libc::ETH_P_ARP as u16).to_be());
    let sock = Socket::new(libc::AF_PACKET, libc::SOCK_RAW, proto).map_err(|e| e.to_string())?;
    sock.set_recv_timeout(Duration::from_millis(100))
        .map_err(|e| e.to_string())?;
    let mut frame = [0u8; 2048];
    let vip = vip.octets();
    while !stop.load(Ordering::Relaxed) {
        let n = match sock.recv(&mut frame) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.to_string()),
        };
        let at = Instant::now();
        if n < 42 || frame[12..14] != [0x08, 0x06] {
            continue;
        }
        let (spa, tpa) = (&frame[28..32], &frame[38..42]);
        if spa == vip && tpa == vip {
            let mut sha = [0u8; 6];
            sha.copy_from_slice(&frame[22..28]);
            let _ = tx.send(Event {
                node: usize::MAX,
                kind: Kind::Garp(sha),
                at,
            });
        }
    }
    Ok(())
}

/// Writes keys to the DCS the agents read: etcd's v3 gateway, its v2 keys API, or
/// Consul's KV API (`--api v3|v2|consul`, `--etcd` being the base URL of either).
struct Writer {
    agent: ureq::Agent,
    base: String,
    api: String,
    key: String,
}

impl Writer {
    fn request(&self, key: &str, value: &str) -> (String, String, &'static str) {
        match self.api.as_str() {
            "v2" => (
                format!("{}/v2/keys{key}", self.base),
                format!("value={}", form(value)),
                "application/x-www-form-urlencoded",
            ),
            "consul" => (
                format!("{}/v1/kv/{}", self.base, key.trim_start_matches('/')),
                value.to_string(),
                "application/octet-stream",
            ),
            _ => (
                format!("{}/v3/kv/put", self.base),
                format!(
                    "{{\"key\":\"{}\",\"value\":\"{}\"}}",
                    base64::encode(key.as_bytes()),
                    base64::encode(value.as_bytes())
                ),
                "application/json",
            ),
        }
    }

    /// Write the trigger key; the returned instant is taken just before the request is
    /// sent.
    fn put(&self, value: &str) -> Result<Instant, String> {
        self.put_at(&self.key.clone(), value)
    }

    /// Write `key`, as [`Writer::put`].
    fn put_at(&self, key: &str, value: &str) -> Result<Instant, String> {
        let (url, body, ctype) = self.request(key, value);
        let req = match self.api.as_str() {
            "v3" => self.agent.post(&url),
            _ => self.agent.put(&url),
        };
        let req = req.header("Content-Type", ctype);
        let t0 = Instant::now();
        let mut resp = req.send(&body).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let _ = resp.body_mut().read_to_vec();
        if !(200..300).contains(&status) {
            return Err(format!("write: HTTP {status}"));
        }
        Ok(t0)
    }
}

#[derive(Debug, Default, Clone)]
struct Move {
    from: usize,
    to: usize,
    add_ms: Option<f64>,
    del_ms: Option<f64>,
    garp_ms: Option<f64>,
    two_ms: f64,
    none_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(label: &str, xs: &[f64]) -> String {
    if xs.is_empty() {
        return format!("{label:<34} (no samples)");
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    format!(
        "{label:<34} median {median:8.2} ms   max {:8.2} ms   (n={})",
        v[v.len() - 1],
        v.len()
    )
}

fn run() -> Result<(), String> {
    let a = args()?;
    let (tx, rx) = mpsc::channel::<Event>();
    let (mac_tx, mac_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, ns) in a.nodes.iter().enumerate() {
        let (ns, ifname, tx, mac_tx, stop) = (
            ns.clone(),
            a.ifname.clone(),
            tx.clone(),
            mac_tx.clone(),
            stop.clone(),
        );
        let vip = a.vip;
        threads.push(thread::spawn(move || {
            watch_node(i, ns, ifname, vip, tx, mac_tx, stop)
        }));
    }
    {
        let (ns, tx, stop, vip) = (a.client.clone(), tx.clone(), stop.clone(), a.vip);
        threads.push(thread::spawn(move || watch_client(ns, vip, tx, stop)));
    }
    let mut macs = vec![[0u8; 6]; a.nodes.len()];
    for _ in 0..a.nodes.len() {
        let (i, mac) = mac_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "a node listener did not start".to_string())?;
        macs[i] = mac;
    }
    thread::sleep(Duration::from_millis(200));

    enter(&a.sw)?;
    let writer = Writer {
        agent: ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into(),
        base: a.etcd.clone(),
        api: a.api.clone(),
        key: a.key.clone(),
    };
    if let Some(scope) = &a.scope {
        let moves = scope_moves(&a, scope, &writer, &rx, &macs)?;
        stop.store(true, Ordering::Relaxed);
        if !moves.is_empty() {
            report(&a, &moves)?;
        }
        return rewrite(&a, scope, &writer);
    }
    // Start on node 0 and let the burst of announcements end.
    writer.put(&a.names[0])?;
    let settle = Instant::now() + Duration::from_secs(5);
    let mut on0 = false;
    while Instant::now() < settle && !on0 {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
            on0 = ev.node == 0 && matches!(ev.kind, Kind::Added);
        }
    }
    thread::sleep(Duration::from_millis(3500));
    if let Some(what) = a.disturb {
        let rounds = disturb::Rounds {
            what,
            ns: &a.nodes[0],
            ifname: &a.ifname,
            vip: a.vip,
            mac: macs[0],
            count: a.moves,
            spacing: a.spacing,
            label: &a.label,
        };
        let result = disturb::run(&rounds, &rx);
        stop.store(true, Ordering::Relaxed);
        return result;
    }

    let mut seed: u64 = Instant::now().elapsed().as_nanos() as u64
        ^ u64::from(std::process::id())
        ^ 0x9e37_79b9_7f4a_7c15;
    let mut rand_ms = |max: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % max.max(1)
    };
    let mut moves = Vec::new();
    let mut current = 0usize;
    for m in 0..a.moves {
        let to = (current + 1) % a.nodes.len();
        // A random phase against the agents' intervals.
        thread::sleep(Duration::from_millis(rand_ms(a.spacing.as_millis() as u64)));
        while rx.try_recv().is_ok() {}
        let t0 = writer.put(&a.names[to])?;
        let mut mv = Move {
            from: current,
            to,
            ..Move::default()
        };
        let (mut add, mut del, mut garp) = (None, None, None);
        let end = t0 + Duration::from_secs(5);
        while (add.is_none() || del.is_none() || garp.is_none()) && Instant::now() < end {
            let Ok(ev) = rx.recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            if ev.at < t0 {
                continue;
            }
            match ev.kind {
                Kind::Added if ev.node == to && add.is_none() => add = Some(ev.at),
                Kind::Removed if ev.node == current && del.is_none() => del = Some(ev.at),
                Kind::Garp(mac) if mac == macs[to] && garp.is_none() => garp = Some(ev.at),
                _ => {}
            }
        }
        mv.add_ms = add.map(|t| ms(t - t0));
        mv.del_ms = del.map(|t| ms(t - t0));
        mv.garp_ms = garp.map(|t| ms(t - t0));
        if let (Some(ad), Some(de)) = (add, del) {
            if ad < de {
                mv.two_ms = ms(de - ad);
            } else {
                mv.none_ms = ms(ad - de);
            }
        }
        print_move(&a, m, &mv);
        moves.push(mv);
        current = to;
        // Let the new leader's announcement burst run its course before the next move.
        thread::sleep(a.spacing);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        if let Ok(Err(e)) = t.join() {
            eprintln!("listener: {e}");
        }
    }
    report(&a, &moves)
}

/// The leader's WAL position in the records the probe writes, and a replica's position
/// far over any `replica-max-lag` the bench sets.
const POS: u64 = 0x3000_0000;
const LAGGING: u64 = POS - (64 << 20);

/// A member record in Patroni 3.0.2's shape (tests/fixtures/scope/etcd3/members/*).
fn member_record(name: &str, role: &str, pos: u64) -> String {
    format!(
        "{{\"conn_url\":\"postgres://{name}:5432/postgres\",\"api_url\":\"http://{name}:8008/patroni\",\
         \"state\":\"running\",\"role\":\"{role}\",\"version\":\"3.0.2\",\"xlog_location\":{pos},\
         \"timeline\":1}}"
    )
}

/// `application/x-www-form-urlencoded` escaping of a value.
fn form(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Replica VIP moves: the scope written once as Patroni would (leader, status, every
/// member a running replica in step with it), then per move the holder's record falls
/// over `replica-max-lag` (t0 just before that write) and the VIP moves to another
/// replica; the record is healed at once, and the spacing (longer than the agents'
/// `replica-settle`) lets the VIP settle wherever the hash puts it before the next move.
fn scope_moves(
    a: &Args,
    scope: &str,
    w: &Writer,
    rx: &mpsc::Receiver<Event>,
    macs: &[[u8; 6]],
) -> Result<Vec<Move>, String> {
    let key = |rel: &str| format!("{scope}{rel}");
    w.put_at(
        &key("status"),
        &format!("{{\"optime\":{POS},\"slots\":{{}}}}"),
    )?;
    w.put_at(
        &key(&format!("members/{}", a.leader)),
        &member_record(&a.leader, "master", POS),
    )?;
    for name in &a.names {
        w.put_at(
            &key(&format!("members/{name}")),
            &member_record(name, "replica", POS),
        )?;
    }
    w.put_at(&key("leader"), &a.leader)?;
    // Follow the holder from the nodes' address events.
    let mut holder: Option<usize> = None;
    let follow = |until: Instant, holder: &mut Option<usize>| {
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if let Ok(Event {
                kind: Kind::Added,
                node,
                ..
            }) = rx.recv_timeout(left.min(Duration::from_millis(50)))
            {
                *holder = Some(node);
            }
        }
    };
    follow(Instant::now() + Duration::from_secs(5), &mut holder);
    let mut moves = Vec::new();
    for m in 0..a.moves {
        let Some(from) = holder else {
            return Err("no node holds the replica VIP".into());
        };
        let name = &a.names[from];
        let t0 = w.put_at(
            &key(&format!("members/{name}")),
            &member_record(name, "replica", LAGGING),
        )?;
        let (mut add, mut del, mut garps) = (None::<(usize, Instant)>, None, Vec::new());
        let end = t0 + Duration::from_secs(5);
        while (add.is_none() || del.is_none() || garps.is_empty()) && Instant::now() < end {
            let Ok(ev) = rx.recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            match ev.kind {
                Kind::Added if ev.node != from && add.is_none() => add = Some((ev.node, ev.at)),
                Kind::Removed if ev.node == from && del.is_none() => del = Some(ev.at),
                Kind::Garp(mac) if mac != macs[from] => garps.push((mac, ev.at)),
                _ => {}
            }
        }
        let to = add.map_or(from, |(node, _)| node);
        let garp = garps
            .iter()
            .find(|(mac, _)| *mac == macs[to])
            .map(|(_, at)| *at);
        let add = add.map(|(_, at)| at);
        let mut mv = Move {
            from,
            to,
            add_ms: add.map(|t| ms(t - t0)),
            del_ms: del.map(|t| ms(t - t0)),
            garp_ms: garp.map(|t| ms(t - t0)),
            ..Move::default()
        };
        if let (Some(ad), Some(de)) = (add, del) {
            if ad < de {
                mv.two_ms = ms(de - ad);
            } else {
                mv.none_ms = ms(ad - de);
            }
        }
        print_move(a, m, &mv);
        moves.push(mv);
        holder = Some(to);
        w.put_at(
            &key(&format!("members/{name}")),
            &member_record(name, "replica", POS),
        )?;
        follow(Instant::now() + a.spacing, &mut holder);
    }
    Ok(moves)
}

/// Rewrite every member record every `--rewrite-every-ms` for `--rewrite-for`, spread
/// over the period, each write a new position in step with a new leader position (as a
/// cluster taking writes looks): what an idle replica VIP's agents see.
fn rewrite(a: &Args, scope: &str, w: &Writer) -> Result<(), String> {
    if a.rewrite_for.is_zero() {
        return Ok(());
    }
    let members: Vec<(&str, &str)> = std::iter::once((a.leader.as_str(), "master"))
        .chain(a.names.iter().map(|n| (n.as_str(), "replica")))
        .collect();
    let step = a.rewrite_every / members.len() as u32;
    let end = Instant::now() + a.rewrite_for;
    let (mut pos, mut writes) = (POS, 0u64);
    while Instant::now() < end {
        pos += 4096;
        w.put_at(
            &format!("{scope}status"),
            &format!("{{\"optime\":{pos},\"slots\":{{}}}}"),
        )?;
        for (name, role) in &members {
            let key = format!("{scope}members/{name}");
            w.put_at(&key, &member_record(name, role, pos))?;
            writes += 1;
            thread::sleep(step.min(end.saturating_duration_since(Instant::now())));
        }
    }
    println!(
        "{}: {writes} member record writes in {:?}",
        a.label, a.rewrite_for
    );
    Ok(())
}

/// One move's line.
fn print_move(a: &Args, m: usize, mv: &Move) {
    let f = |x: Option<f64>| x.map_or("   -   ".to_string(), |v| format!("{v:7.2}"));
    println!(
        "{} move {:>2}: {} -> {}  vip-on-new {} ms  gone-from-old {} ms  first-garp {} ms  two-nodes {:7.2} ms  no-node {:7.2} ms",
        a.label,
        m + 1,
        a.names[mv.from],
        a.names[mv.to],
        f(mv.add_ms),
        f(mv.del_ms),
        f(mv.garp_ms),
        mv.two_ms,
        mv.none_ms
    );
}

/// The summary of `moves`, and the raw numbers to `--out`.
fn report(a: &Args, moves: &[Move]) -> Result<(), String> {
    let col = |f: fn(&Move) -> Option<f64>| moves.iter().filter_map(f).collect::<Vec<_>>();
    println!(
        "{}",
        stats(
            &format!("{} write -> VIP on new node", a.label),
            &col(|m| m.add_ms)
        )
    );
    println!(
        "{}",
        stats(
            &format!("{} write -> first GARP", a.label),
            &col(|m| m.garp_ms)
        )
    );
    println!(
        "{}",
        stats(
            &format!("{} write -> VIP gone from old", a.label),
            &col(|m| m.del_ms)
        )
    );
    println!(
        "{}",
        stats(
            &format!("{} VIP on two nodes", a.label),
            &col(|m| Some(m.two_ms))
        )
    );
    println!(
        "{}",
        stats(
            &format!("{} VIP on no node", a.label),
            &col(|m| Some(m.none_ms))
        )
    );
    let missing = moves
        .iter()
        .filter(|m| m.add_ms.is_none() || m.del_ms.is_none() || m.garp_ms.is_none())
        .count();
    if missing > 0 {
        println!(
            "{}: {missing} of {} moves missed an event within 5 s",
            a.label,
            moves.len()
        );
    }
    if let Some(path) = &a.out {
        let mut f = File::create(path).map_err(|e| format!("{path}: {e}"))?;
        let _ = writeln!(
            f,
            "agent,move,from,to,vip_on_new_ms,gone_from_old_ms,first_garp_ms,two_nodes_ms,no_node_ms"
        );
        let o = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.3}"));
        for (i, m) in moves.iter().enumerate() {
            let _ = writeln!(
                f,
                "{},{},{},{},{},{},{},{:.3},{:.3}",
                a.label,
                i + 1,
                a.names[m.from],
                a.names[m.to],
                o(m.add_ms),
                o(m.del_ms),
                o(m.garp_ms),
                m.two_ms,
                m.none_ms
            );
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("failover-probe: {e}");
        std::process::exit(1);
    }
}

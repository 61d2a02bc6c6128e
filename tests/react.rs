//! Reactions between turns: the loop's one wait covers the kernel's reports whatever the
//! DCS does meanwhile — an etcd v3 watch over http:// and https://, an etcd v2 streaming
//! wait, a Consul blocking query (the faithful fake), or no wait at all (Patroni's REST
//! API, through its fake). Turns are 10 s apart here, so a VIP deleted by hand or a link
//! taken down and up, acted on within a second, was acted on between turns, not at one.

use std::thread;
use std::time::{Duration, SystemTime};

use crate::common::*;
use crate::dcs_etcd::tls::{Pki, tls_etcd};
use crate::fakes::{FakeConsul, FakePatroni};

/// A turn every 10 s, one announcement per add or link-up.
const SLOW_TURNS: &str = "--interval 10000 --announce-count 1";
/// Far below the 10 s between turns, far above the few milliseconds it takes.
const BETWEEN_TURNS: Duration = Duration::from_millis(1500);

/// The first gratuitous ARP for the VIP from `mac` after `since`, within the bound.
fn announced_after(cap: &Capture, before: usize, since: SystemTime, mac: [u8; 6], vipd: &Proc) {
    let arps = cap.wait_arps(before + 1, BETWEEN_TURNS);
    let first = arps.iter().find(|(t, _)| *t >= since);
    let Some((at, arp)) = first else {
        panic!(
            "no announcement within {BETWEEN_TURNS:?}:\n{}{}",
            describe_arps(&arps),
            vipd.log()
        );
    };
    assert!(arp.is_garp_request(vip(), mac), "not a GARP: {arp}");
    let after = millis_between(since, *at);
    assert!(
        after <= BETWEEN_TURNS.as_millis() as i128,
        "{after} ms\n{}",
        vipd.log()
    );
}

/// With `vipd` holding the VIP on the node: delete it by hand, then take the link down
/// and up; each time the VIP is back and announced between two turns.
fn reacts_between_turns(lab: &NodeLab, mut vipd: Proc, what: &str) {
    let has = || lab.node.has_vip(NODE_IF);
    wait_vip(has, &vipd, what);
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    // The first turn's announcement is over; the next turn is ~10 s away.
    thread::sleep(ms(500));
    let mac = lab.node.mac(NODE_IF);

    let before = cap.arps().len();
    let t0 = SystemTime::now();
    lab.node
        .ip(&["addr", "del", &format!("{VIP}/{VIP_LEN}"), "dev", NODE_IF]);
    within(
        BETWEEN_TURNS,
        &format!("{what}: VIP back"),
        &|| vipd.log(),
        has,
    );
    announced_after(&cap, before, t0, mac, &vipd);

    lab.node.ip(&["link", "set", NODE_IF, "down"]);
    thread::sleep(ms(300));
    let before = cap.arps().len();
    let t0 = SystemTime::now();
    lab.node.ip(&["link", "set", NODE_IF, "up"]);
    announced_after(&cap, before, t0, mac, &vipd);
    assert!(vipd.is_running(), "{what}: vipd exited\n{}", vipd.log());
    assert_eq!(
        vipd.terminate(Duration::from_secs(5)),
        Some(0),
        "{}",
        vipd.log()
    );
}

fn args(dcs: &str, endpoint: &str) -> Vec<String> {
    pg1_args(&format!(
        "--trigger-key {KEY} --dcs-type {dcs} --dcs-endpoints {endpoint} {SLOW_TURNS}"
    ))
}

#[test]
fn etcd3_watch_over_http() {
    gate!(Etcd);
    let lab = NodeLab::new();
    let etcd = Etcd::start(&lab.node, &lab.lab, "127.0.0.1");
    etcd.put(KEY, "pg1");
    let vipd = lab.node.vipd(&args("etcd3", &etcd.endpoint));
    reacts_between_turns(&lab, vipd, "etcd3 http");
}

#[cfg(feature = "tls")]
#[test]
fn etcd3_watch_over_https() {
    gate!(Etcd, "openssl");
    let lab = NodeLab::new();
    let pki = Pki::new(&lab);
    let _etcd = tls_etcd(&lab, &pki);
    let mut a = args("etcd3", "https://127.0.0.1:2379");
    for (flag, file) in [
        ("--etcd-ca-file", "ca.crt"),
        ("--etcd-cert-file", "client.crt"),
        ("--etcd-key-file", "client.key"),
    ] {
        a.extend([flag.to_string(), pki.path(file)]);
    }
    let vipd = lab.node.vipd(&a);
    reacts_between_turns(&lab, vipd, "etcd3 https");
}

#[test]
fn etcd2_streaming_wait() {
    gate!(Etcd);
    let lab = NodeLab::new();
    let etcd = Etcd::start_with(
        &lab.node,
        &lab.lab,
        "http://127.0.0.1:2379",
        "--enable-v2",
        &[],
    );
    etcd.v2(&["set", KEY, "pg1"]);
    let vipd = lab.node.vipd(&args("etcd2", &etcd.endpoint));
    reacts_between_turns(&lab, vipd, "etcd2");
}

#[test]
fn consul_blocking_query() {
    gate!(Root);
    let lab = NodeLab::new();
    let consul = in_netns(&lab.node.name, || FakeConsul::start(8500));
    consul.put(KEY.trim_start_matches('/'), "pg1", Some("session-1"));
    let vipd = lab.node.vipd(&args("consul", &consul.url()));
    reacts_between_turns(&lab, vipd, "consul");
    // The blocking query in flight survived the wakes: about one request per turn, not
    // one per wake.
    let requests = consul.requests().len();
    assert!(requests <= 8, "{requests} requests to Consul");
}

#[test]
fn patroni_rest_without_a_wait() {
    gate!(Root);
    let lab = NodeLab::new();
    let _patroni = in_netns(&lab.node.name, || FakePatroni::start(8008, 200));
    let a = vip_args(
        NODE_IF,
        &format!("--dcs-type patroni --dcs-endpoints http://127.0.0.1:8008 {SLOW_TURNS}"),
    );
    let vipd = lab.node.vipd(&a);
    reacts_between_turns(&lab, vipd, "patroni");
}

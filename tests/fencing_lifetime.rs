//! The VIP's kernel lifetime (`vip-lifetime`), the dead-man's switch that keeps the VIP
//! from outliving vipd: against the real kernel (`Kernel` adds and refreshes with a
//! lifetime, IPv4 and IPv6, and idle looks stay free of reads after its own refresh)
//! and a real etcd (a SIGKILLed holder loses the VIP within the lifetime and the kernel's
//! ~1 s expiry granularity; a healthy one never does; `forever`, SIGHUP, `--once`,
//! keep-on-exit and copies left at other prefix lengths). All in the lab's namespaces
//! with documentation addresses; gated like every lab test.

use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use vipd::net::{AddrBackend, Kernel, Vip};

/// `INFINITY_LIFE_TIME`, as `ip -j` shows `forever`.
const FOREVER: u64 = u32::MAX as u64;
const VIP6: &str = "2001:db8::50";
/// The lifetime the daemon tests use, with `--interval 200`.
const LIFETIME: Duration = Duration::from_millis(2000);
/// The kernel looks for expired addresses on whole-second timers (`round_jiffies_up`),
/// and the lab polls: the removal may come this much after the lifetime.
const EXPIRY_SLACK: Duration = Duration::from_millis(1500);

/// Each copy of `addr` on `ifname`: (prefix length, valid_lft, preferred_lft) in seconds,
/// as `ip -j addr show` reports them ([`FOREVER`] for a permanent address).
fn lifetimes(ns: &Netns, ifname: &str, addr: &str) -> Vec<(u8, u64, u64)> {
    let text = ns.ip(&["-j", "addr", "show", "dev", ifname]);
    let v = json(&text);
    let infos = v[0]["addr_info"].as_array().cloned().unwrap_or_default();
    let num = |i: &serde_json::Value, k: &str| i[k].as_u64().unwrap_or_else(|| panic!("{k}: {i}"));
    infos
        .iter()
        .filter(|i| i["local"].as_str() == Some(addr))
        .map(|i| {
            let len = num(i, "prefixlen") as u8;
            (
                len,
                num(i, "valid_life_time"),
                num(i, "preferred_life_time"),
            )
        })
        .collect()
}

/// Turns IPv6 on in `ns` (the lab turns it off), with no duplicate address detection on
/// `ifname` and no link-local addresses, whose DAD would notify at a time of its own.
fn enable_ipv6(ns: &Netns, ifname: &str) {
    let conf = |key: &str| format!("net.ipv6.conf.{ifname}.{key}");
    ns.sysctl(&[
        "net.ipv6.conf.all.disable_ipv6=0",
        "net.ipv6.conf.default.disable_ipv6=0",
        &format!("{}=0", conf("disable_ipv6")),
        &format!("{}=0", conf("accept_dad")),
        &format!("{}=0", conf("router_solicitations")),
    ]);
    ns.ip(&["link", "set", ifname, "addrgenmode", "none"]);
}

fn index_of(ns: &Netns, dev: &str) -> u32 {
    let shown = ns.ip(&["-o", "link", "show", dev]);
    let index = shown.split(':').next().and_then(|i| i.trim().parse().ok());
    index.unwrap_or_else(|| panic!("{dev}'s index in {shown}"))
}

/// Asserts that the only copy of `addr` has a finite lifetime in `range` (seconds),
/// preferred = valid.
#[track_caller]
fn assert_lifetime(ns: &Netns, addr: &str, len: u8, range: std::ops::RangeInclusive<u64>) {
    let got = lifetimes(ns, NODE_IF, addr);
    assert_eq!(got.len(), 1, "{addr}: {got:?}");
    let (l, valid, preferred) = got[0];
    assert_eq!(l, len, "{addr}: {got:?}");
    assert!(
        range.contains(&valid),
        "{addr}: valid_lft {valid}, want {range:?}"
    );
    assert_eq!(preferred, valid, "{addr}: preferred = valid");
}

#[test]
fn kernel_adds_and_refreshes_the_vip_with_a_lifetime() {
    gate!(Root);
    let lab = NodeLab::bare();
    enable_ipv6(&lab.node, NODE_IF);
    lab.up();
    let ns = &lab.node;
    let ifindex = index_of(ns, NODE_IF);
    let mut k = in_netns(&ns.name, || Kernel::open().expect("open"));
    let secs = |s| Some(Duration::from_secs(s));
    for (text, len) in [(VIP, VIP_LEN), (VIP6, 64)] {
        let addr: IpAddr = text.parse().unwrap();
        let vip = Vip {
            addr,
            prefix_len: len,
        };
        // Added with 10 s: `ip` shows at most that, counting down.
        k.add(ifindex, vip, secs(10)).unwrap();
        assert_lifetime(ns, text, len, 9..=10);
        thread::sleep(ms(1100));
        assert_lifetime(ns, text, len, 0..=9);
        // A refresh starts the count again, with the lifetime it names.
        k.refresh(ifindex, vip, secs(30)).unwrap();
        assert_lifetime(ns, text, len, 29..=30);
        // Idle after its own refresh: the notification it caused is no change.
        assert_eq!(k.vip_prefixes(ifindex, addr).unwrap(), [len]);
        let before = k.reads();
        k.refresh(ifindex, vip, secs(20)).unwrap();
        for _ in 0..5 {
            assert_eq!(k.vip_prefixes(ifindex, addr).unwrap(), [len]);
        }
        assert_eq!(
            k.reads(),
            before,
            "a refresh of a listed address costs no read"
        );
        // Permanent again.
        k.refresh(ifindex, vip, None).unwrap();
        assert_lifetime(ns, text, len, FOREVER..=FOREVER);
        // A permanent address added by hand: an add finds it and gives it the lifetime.
        k.del(ifindex, addr, len).unwrap();
        ns.ip(&[
            "addr",
            "add",
            &format!("{text}/{len}"),
            "dev",
            NODE_IF,
            "nodad",
        ]);
        k.add(ifindex, vip, secs(10)).expect("EEXIST is success");
        assert_lifetime(ns, text, len, 9..=10);
        // A refresh of an address that went makes it again.
        k.del(ifindex, addr, len).unwrap();
        k.refresh(ifindex, vip, secs(10)).unwrap();
        assert_lifetime(ns, text, len, 9..=10);
        // And the kernel removes it by itself when no refresh comes: the switch.
        k.refresh(ifindex, vip, secs(1)).unwrap();
        let start = Instant::now();
        let gone = wait_until(ms(1000) + EXPIRY_SLACK, POLL, || {
            lifetimes(ns, NODE_IF, text).is_empty()
        });
        assert!(
            gone.is_some(),
            "{text} still there after {:?}",
            start.elapsed()
        );
        assert_eq!(k.vip_prefixes(ifindex, addr).unwrap(), [] as [u8; 0]);
        eprintln!(
            "{text}: removed by the kernel {:?} after a 1 s refresh",
            start.elapsed()
        );
    }
}

/// The arguments of a vipd for node1 holding `ip`/`len` on veth0, then `extra`.
fn args_for(lab: &SingleNode, ip: &str, len: u8, extra: &str) -> Vec<String> {
    args(&format!(
        "--ip {ip} --netmask {len} --interface {NODE_IF} --trigger-key {KEY} \
         --trigger-value {NODE_NAME} --dcs-endpoints {} --announce-count 1 {extra}",
        lab.etcd.endpoint
    ))
}

/// SIGKILLs `vipd` and returns how long the kernel took to remove `ip` (panics after
/// the lifetime and the expiry slack).
fn kill_and_time_removal(lab: &SingleNode, vipd: &mut Proc, ip: &str) -> Duration {
    vipd.signal("KILL");
    let killed = Instant::now();
    let gone = wait_until(LIFETIME + EXPIRY_SLACK, POLL, || {
        lifetimes(&lab.node, NODE_IF, ip).is_empty()
    });
    assert!(
        gone.is_some(),
        "{ip} still there {:?} after SIGKILL: {:?}\n{}",
        killed.elapsed(),
        lifetimes(&lab.node, NODE_IF, ip),
        vipd.log()
    );
    killed.elapsed()
}

#[test]
fn a_healthy_holder_keeps_the_vip_and_a_killed_one_loses_it() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let mut vipd = lab.node.vipd(&args_for(
        &lab,
        VIP,
        VIP_LEN,
        "--interval 200 --vip-lifetime 2000",
    ));
    wait_vip(|| lab.has_vip(), &vipd, "start");
    assert_lifetime(&lab.node, VIP, VIP_LEN, 1..=2);
    // Healthy: 5 × the lifetime without a deletion, refreshed all along.
    let mon = AddrMonitor::start(&lab.node, NODE_IF);
    let t0 = Instant::now();
    let mut lowest = FOREVER;
    while t0.elapsed() < 5 * LIFETIME {
        let copies = lifetimes(&lab.node, NODE_IF, VIP);
        assert_eq!(copies.len(), 1, "{copies:?}\n{}", vipd.log());
        lowest = lowest.min(copies[0].1);
        thread::sleep(ms(100));
    }
    let events = mon.events();
    let what = "added or deleted while held";
    assert!(events.is_empty(), "{what}:\n{}", mon.describe(t0));
    let refreshes = mon.refreshes();
    assert!(
        refreshes >= 10,
        "{refreshes} refreshes in {:?}",
        5 * LIFETIME
    );
    assert!(vipd.is_running(), "{}", vipd.log());
    // Killed: the kernel removes it within the lifetime (+ its granularity).
    let took = kill_and_time_removal(&lab, &mut vipd, VIP);
    eprintln!(
        "IPv4: {refreshes} refreshes in {:?} (lowest valid_lft seen {lowest} s); removed \
         {took:?} after SIGKILL (lifetime {LIFETIME:?})",
        5 * LIFETIME
    );
}

#[test]
fn a_killed_ipv6_holder_loses_the_vip() {
    gate!(Etcd);
    let lab = SingleNode::new();
    enable_ipv6(&lab.node, NODE_IF);
    lab.etcd.put(KEY, NODE_NAME);
    let extra = "--interval 200 --vip-lifetime 2000";
    let mut vipd = lab.node.vipd(&args_for(&lab, VIP6, 64, extra));
    let has = || !lifetimes(&lab.node, NODE_IF, VIP6).is_empty();
    wait_vip(has, &vipd, "start");
    assert_lifetime(&lab.node, VIP6, 64, 1..=2);
    // Held past the lifetime by refreshes.
    thread::sleep(LIFETIME + ms(1000));
    assert!(has(), "IPv6 VIP expired while held\n{}", vipd.log());
    let took = kill_and_time_removal(&lab, &mut vipd, VIP6);
    eprintln!("IPv6: removed {took:?} after SIGKILL (lifetime {LIFETIME:?})");
}

#[test]
fn forever_keeps_a_killed_holders_vip() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let extra = "--interval 200 --vip-lifetime forever";
    let mut vipd = lab.node.vipd(&args_for(&lab, VIP, VIP_LEN, extra));
    wait_vip(|| lab.has_vip(), &vipd, "start");
    assert_lifetime(&lab.node, VIP, VIP_LEN, FOREVER..=FOREVER);
    vipd.signal("KILL");
    thread::sleep(LIFETIME + EXPIRY_SLACK);
    assert_lifetime(&lab.node, VIP, VIP_LEN, FOREVER..=FOREVER);
}

#[test]
fn copies_left_behind_get_the_lifetime_and_keep_on_exit_leaves_what_remains() {
    gate!(Etcd);
    let lab = SingleNode::new();
    // Left by hand (or an older configuration), permanent, at two prefix lengths.
    lab.add_addr(&format!("{VIP}/{VIP_LEN}"));
    lab.add_addr(&format!("{VIP}/32"));
    lab.etcd.put(KEY, NODE_NAME);
    let extra = "--interval 200 --vip-lifetime 2000 --keep-on-exit";
    let mut vipd = lab.node.vipd(&args_for(&lab, VIP, VIP_LEN, extra));
    let finite = || {
        let copies = lifetimes(&lab.node, NODE_IF, VIP);
        copies.len() == 2 && copies.iter().all(|c| c.1 <= 2)
    };
    within(
        ms(3000),
        "both copies got the lifetime",
        &|| vipd.log(),
        finite,
    );
    // keep-on-exit: the address stays, with what is left of its lifetime, then goes.
    let code = vipd.terminate(ms(5000));
    assert_eq!(code, Some(0), "{}", vipd.log());
    let stopped = Instant::now();
    assert!(
        finite(),
        "kept on exit: {:?}",
        lifetimes(&lab.node, NODE_IF, VIP)
    );
    let gone = wait_until(LIFETIME + EXPIRY_SLACK, POLL, || !lab.has_vip());
    assert!(
        gone.is_some(),
        "still there {:?} after exit",
        stopped.elapsed()
    );
}

#[test]
fn sighup_applies_a_changed_lifetime_at_once() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let dir = lab.dir("lifetime");
    let file = dir.path.join("vipd.yml");
    let write = |lifetime: &str| {
        let text = format!(
            "ip: {VIP}\nnetmask: {VIP_LEN}\ninterface: {NODE_IF}\ntrigger-key: {KEY}\n\
             trigger-value: {NODE_NAME}\ndcs-endpoints: [{}]\ninterval: 200\n\
             announce-count: 1\nvip-lifetime: {lifetime}\n",
            lab.etcd.endpoint
        );
        std::fs::write(&file, text).unwrap();
    };
    write("20000");
    let mut vipd = lab
        .node
        .vipd(&args(&format!("--config {}", file.display())));
    wait_vip(|| lab.has_vip(), &vipd, "start");
    assert_lifetime(&lab.node, VIP, VIP_LEN, 19..=20);
    let valid = || lifetimes(&lab.node, NODE_IF, VIP).first().map(|c| c.1);
    // Each reload is applied within a turn or two, not at the next refresh (in 6 s).
    for (lifetime, want) in [
        ("600000", 599..=600),
        ("forever", FOREVER..=FOREVER),
        ("3000", 2..=3),
    ] {
        write(lifetime);
        vipd.signal("HUP");
        let applied = || valid().is_some_and(|v| want.contains(&v));
        within(
            ms(1500),
            &format!("vip-lifetime {lifetime} applied"),
            &|| vipd.log(),
            applied,
        );
    }
    let code = vipd.terminate(ms(5000));
    assert_eq!(code, Some(0), "{}", vipd.log());
}

#[test]
fn once_adds_a_permanent_vip_unless_vip_lifetime_is_set() {
    gate!(Etcd);
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    lab.once("--once").expect(0, "--once");
    assert_lifetime(&lab.node, VIP, VIP_LEN, FOREVER..=FOREVER);
    // Explicit: the existing address gets it.
    lab.once("--once --vip-lifetime 60000")
        .expect(0, "--once with a lifetime");
    assert_lifetime(&lab.node, VIP, VIP_LEN, 59..=60);
    // From the environment too, on a fresh add.
    lab.del_addr(&format!("{VIP}/{VIP_LEN}"));
    let bin = vipd_bin();
    let once = args_for(&lab, VIP, VIP_LEN, "--once");
    let mut all = vec!["VIP_VIP_LIFETIME=30000", bin.to_str().expect("UTF-8 path")];
    all.extend(once.iter().map(String::as_str));
    let out = lab.node.exec(&tool("env"), &all);
    out.expect(0, "--once with VIP_VIP_LIFETIME");
    assert_lifetime(&lab.node, VIP, VIP_LEN, 29..=30);
    // Without: a cron-driven --once makes an address with a lifetime permanent again.
    lab.once("--once").expect(0, "--once again");
    assert_lifetime(&lab.node, VIP, VIP_LEN, FOREVER..=FOREVER);
}

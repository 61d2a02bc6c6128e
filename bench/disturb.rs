//! The probe's `--disturb` rounds: with the leader key stable on the first node, take
//! the VIP from under its agent (`delete`: the address removed over rtnetlink, as
//! `ip addr del` would) or take its link down and up again (`link`), and measure from
//! that moment (t0, just before the request that makes the change) to the VIP being
//! back on the node (`delete`) and to the first gratuitous ARP from the node's MAC
//! seen in the client namespace. For `link` the announcement is also timed from the
//! kernel's report that the link is up with carrier: the kernel's link watch may delay
//! the carrier by up to a second after the link is set up, and until then the link is
//! not up for anyone.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vipd::net::AddrBackend;
use vipd::net::netlink::Kernel;
use vipd::net::sys::Socket;

use super::{Event, Kind, enter, ms, stats};

/// What a round does to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disturb {
    Delete,
    Link,
}

impl Disturb {
    pub fn parse(s: &str) -> Result<Disturb, String> {
        match s {
            "delete" => Ok(Disturb::Delete),
            "link" => Ok(Disturb::Link),
            _ => Err(format!("--disturb: {s:?} is not delete or link")),
        }
    }
}

/// Set `ifindex` administratively up or down (RTM_NEWLINK with IFF_UP in the change
/// mask), waiting for the kernel's ack.
fn set_link(sock: &Socket, ifindex: u32, up: bool) -> Result<(), String> {
    let mut msg = Vec::with_capacity(32);
    let len: u32 = 32;
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
    // struct ifinfomsg: family, pad, type, index, flags, change
    msg.extend_from_slice(&[0, 0]);
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    let iff_up = libc::IFF_UP as u32;
    msg.extend_from_slice(&(if up { iff_up } else { 0 }).to_ne_bytes());
    msg.extend_from_slice(&iff_up.to_ne_bytes());
    sock.send_to_kernel(&msg).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).map_err(|e| e.to_string())?;
    // NLMSG_ERROR: the header, then the errno (0: ack).
    let errno = i32::from_ne_bytes(buf[16..20].try_into().map_err(|_| "short ack")?);
    if n < 20 || errno != 0 {
        return Err(format!("set link {ifindex} up={up}: errno {}", -errno));
    }
    Ok(())
}

/// The rounds to run: `count` disturbances of the node in namespace `ns` (the leader,
/// MAC `mac`), `spacing` apart.
pub struct Rounds<'a> {
    pub what: Disturb,
    pub ns: &'a str,
    pub ifname: &'a str,
    pub vip: Ipv4Addr,
    pub mac: [u8; 6],
    pub count: usize,
    pub spacing: Duration,
    pub label: &'a str,
}

/// Run the rounds, reading the listeners' events from `rx`. Prints a line per round
/// and the statistics.
pub fn run(r: &Rounds<'_>, rx: &mpsc::Receiver<Event>) -> Result<(), String> {
    let Rounds {
        what,
        ns,
        ifname,
        vip,
        mac,
        count: rounds,
        spacing,
        label,
    } = *r;
    enter(ns)?;
    let mut kernel = Kernel::open_without_announce().map_err(|e| e.to_string())?;
    let link = kernel
        .link(ifname)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{ifname} not found in {ns}"))?;
    let sock = Socket::new(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
        .map_err(|e| e.to_string())?;
    sock.set_recv_timeout(Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    let (mut back, mut garp, mut from_up) = (Vec::new(), Vec::new(), Vec::new());
    let mut missed = 0;
    for r in 1..=rounds {
        std::thread::sleep(spacing);
        if what == Disturb::Link {
            set_link(&sock, link.index, false)?;
            std::thread::sleep(Duration::from_millis(200));
        }
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        match what {
            Disturb::Delete => kernel
                .del(link.index, IpAddr::V4(vip), 24)
                .map_err(|e| e.to_string())?,
            Disturb::Link => set_link(&sock, link.index, true)?,
        }
        let (mut added, mut garped, mut up) = (None, None, None);
        let end = t0 + Duration::from_secs(5);
        let want_add = what == Disturb::Delete;
        while (garped.is_none() || (want_add && added.is_none())) && Instant::now() < end {
            let Ok(ev) = rx.recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            match ev.kind {
                _ if ev.at < t0 => {}
                Kind::Added if ev.node == 0 && added.is_none() => added = Some(ev.at - t0),
                Kind::LinkUp if ev.node == 0 && up.is_none() => up = Some(ev.at - t0),
                Kind::Garp(m) if m == mac && garped.is_none() => garped = Some(ev.at - t0),
                _ => {}
            }
        }
        let f = |d: Option<Duration>| d.map_or("   -   ".into(), |d| format!("{:7.2}", ms(d)));
        let after_up = garped.zip(up).map(|(g, u)| g.saturating_sub(u));
        println!(
            "{label} {what:?} {r:>2}: vip-back {} ms  first-garp {} ms  link-up {} ms  garp-after-up {} ms",
            f(added),
            f(garped),
            f(up),
            f(after_up)
        );
        back.extend(added.map(ms));
        garp.extend(garped.map(ms));
        from_up.extend(after_up.map(ms));
        missed += usize::from(garped.is_none() || (want_add && added.is_none()));
    }
    if what == Disturb::Delete {
        println!("{}", stats(&format!("{label} delete -> VIP back"), &back));
    }
    println!(
        "{}",
        stats(&format!("{label} {what:?} -> first GARP"), &garp)
    );
    if what == Disturb::Link {
        let text = format!("{label} link up (kernel) -> first GARP");
        println!("{}", stats(&text, &from_up));
    }
    if missed > 0 {
        println!("{label}: {missed} of {rounds} rounds missed an event within 5 s");
    }
    Ok(())
}

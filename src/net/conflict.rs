//! Noticing a second holder of the VIP: a listener for other machines' claims to the
//! address, and the probes that make a silent holder answer.
//!
//! A claim is an ARP packet (request or reply) whose sender IP is the VIP, or a
//! neighbour advertisement whose target is the VIP; one that names another MAC than
//! this interface's means another machine has the address too (a stale holder, an
//! address added by hand, a cloned VM). A stale holder's kernel only answers, and its
//! unicast answers to others never reach us on a switched segment, so the holder also
//! probes: an ARP probe (RFC 5227 §2.1.1: sender IP 0.0.0.0, target IP the VIP) or a
//! neighbour solicitation from `::` (RFC 4862 §5.4.2, as for duplicate address
//! detection). Any host that has the address answers either one (Linux: a unicast ARP
//! reply from the VIP; an NA to ff02::1).
//!
//! The socket carries a classic BPF filter built from the VIP, so the kernel queues
//! nothing but claims: other ARP and IPv6 traffic, however much of it, costs vipd no
//! wake-up. The frame checks ([`claim`]) and the probe frames are pure functions.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};

use super::arp::{ArpOp, ETH_P_ARP};
use super::ndisc::{
    ETH_P_IPV6, HOP_LIMIT, ICMPV6_NEIGHBOR_ADVERTISEMENT, NEXT_HEADER_ICMPV6, OPT_TARGET_LL_ADDR,
    icmpv6_checksum,
};
use super::sys::Socket;

/// ICMPv6 type of a neighbour solicitation.
const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
/// Where the IPv6 header and the ICMPv6 message start in an Ethernet frame.
const IP6_AT: usize = 14;
const ICMP_AT: usize = IP6_AT + 40;
/// An NA without options: the ICMPv6 header, flags and target (24 bytes).
const NA_MIN_LEN: usize = 24;
/// Length of an ARP probe frame (Ethernet 14, ARP 28).
pub const ARP_PROBE_LEN: usize = 42;
/// Length of an NS probe frame: Ethernet 14, IPv6 40, NS 24 (no option: RFC 4861
/// §4.3 forbids the source link-layer address option when the source is `::`).
pub const NS_PROBE_LEN: usize = ICMP_AT + 24;
/// Bytes of each frame the filter keeps: every field a claim is judged by, and room
/// for several ND options, while a queued frame stays small.
const SNAP_LEN: u32 = 256;
/// At most this many frames are read per [`Listener::drain`], so a flood of claims
/// cannot hold the loop; the rest waits for the next wake.
const DRAIN_MAX: usize = 64;
/// The receive buffer: claims are rare, and a flood beyond this is dropped by the
/// kernel rather than held in memory.
const RCVBUF: libc::c_int = 64 * 1024;
/// `PACKET_OUTGOING` (linux/if_packet.h): a frame this host sent, looped back to
/// packet sockets; libc does not export it for every target.
const PACKET_OUTGOING: u8 = 4;

/// Classic BPF opcodes (linux/filter.h), as the program below uses them.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_LD_H_ABS: u16 = 0x28;
const BPF_LD_B_ABS: u16 = 0x30;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;

/// The width of a load in a filter check.
#[derive(Debug, Clone, Copy)]
enum Width {
    Byte,
    Half,
    Word,
}

/// The classic BPF program that passes only claims to `vip` (the first [`SNAP_LEN`]
/// bytes of them) and drops everything else. Offsets count from the Ethernet header,
/// which frames on an `AF_PACKET`/`SOCK_RAW` socket start with; a load beyond a
/// frame's end drops it.
///
/// - IPv4: ethertype ARP (12), hardware type Ethernet (14), protocol IPv4 (16),
///   address lengths 6 and 4 (18), sender IP = `vip` (28..32);
/// - IPv6: ethertype IPv6 (12), next header ICMPv6 (20), ICMPv6 type 136 (54),
///   target = `vip` (62..78).
pub fn filter(vip: IpAddr) -> Vec<libc::sock_filter> {
    let checks: Vec<(Width, u32, u32)> = match vip {
        IpAddr::V4(ip) => vec![
            (Width::Half, 12, u32::from(ETH_P_ARP)),
            (Width::Half, 14, 1),
            (Width::Half, 16, 0x0800),
            (Width::Half, 18, 0x0604),
            (Width::Word, 28, u32::from(ip)),
        ],
        IpAddr::V6(ip) => {
            let mut checks = vec![
                (Width::Half, 12, u32::from(ETH_P_IPV6)),
                (Width::Byte, 20, u32::from(NEXT_HEADER_ICMPV6)),
                (Width::Byte, 54, u32::from(ICMPV6_NEIGHBOR_ADVERTISEMENT)),
            ];
            let words = ip.octets();
            for (i, w) in words.chunks_exact(4).enumerate() {
                let word = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                checks.push((Width::Word, 62 + 4 * i as u32, word));
            }
            checks
        }
    };
    // Each check is a load and a jump: on to the next check if equal, else to the
    // final "drop". The program ends "accept", "drop".
    let n = checks.len();
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut prog = Vec::with_capacity(2 * n + 2);
    for (i, (width, at, value)) in checks.into_iter().enumerate() {
        let load = match width {
            Width::Byte => BPF_LD_B_ABS,
            Width::Half => BPF_LD_H_ABS,
            Width::Word => BPF_LD_W_ABS,
        };
        prog.push(insn(load, 0, 0, at));
        // From the jump at 2i+1, "drop" (at 2n+1) is 2n-2i-1 instructions ahead;
        // at most 15 checks fit a u8, and there are 7 at most.
        let to_drop = u8::try_from(2 * (n - i) - 1).unwrap_or(u8::MAX);
        prog.push(insn(BPF_JEQ_K, 0, to_drop, value));
    }
    prog.push(insn(BPF_RET_K, 0, 0, SNAP_LEN));
    prog.push(insn(BPF_RET_K, 0, 0, 0));
    prog
}

/// The MAC that `frame` (a whole Ethernet frame, perhaps cut after [`SNAP_LEN`]
/// bytes) claims `vip` for, if it is a claim: for IPv4 an ARP request or reply with
/// sender IP `vip` (its sender MAC); for IPv6 a well-formed neighbour advertisement
/// (hop limit 255, code 0, a correct checksum when whole) with target `vip` (its
/// target link-layer address option, or without one the Ethernet source).
pub fn claim(frame: &[u8], vip: IpAddr) -> Option<[u8; 6]> {
    match vip {
        IpAddr::V4(ip) => arp_claim(frame, ip),
        IpAddr::V6(ip) => na_claim(frame, ip),
    }
}

fn mac_at(frame: &[u8], at: usize) -> Option<[u8; 6]> {
    frame.get(at..at + 6)?.try_into().ok()
}

fn arp_claim(f: &[u8], vip: Ipv4Addr) -> Option<[u8; 6]> {
    let header = f.get(12..22)?;
    let ok = header[0..2] == ETH_P_ARP.to_be_bytes()
        && header[2..4] == [0, 1]
        && header[4..6] == [0x08, 0x00]
        && header[6..8] == [6, 4]
        && matches!(header[8..10], [0, 1] | [0, 2]);
    (ok && f.get(28..32)? == vip.octets()).then_some(())?;
    mac_at(f, 22)
}

fn na_claim(f: &[u8], vip: Ipv6Addr) -> Option<[u8; 6]> {
    let ip = f.get(IP6_AT..ICMP_AT)?;
    let ok = f[12..14] == ETH_P_IPV6.to_be_bytes()
        && ip[0] >> 4 == 6
        && ip[6] == NEXT_HEADER_ICMPV6
        && ip[7] == HOP_LIMIT;
    let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let na = f.get(ICMP_AT..)?;
    let ok = ok
        && payload >= NA_MIN_LEN
        && na.get(0..2)? == [ICMPV6_NEIGHBOR_ADVERTISEMENT, 0]
        && na.get(8..24)? == vip.octets();
    ok.then_some(())?;
    // The checksum is checked when the whole message is here (the filter's snap
    // length cuts only messages with unusually many options).
    if let Some(msg) = na.get(..payload) {
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?);
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?);
        (icmpv6_checksum(src, dst, msg) == 0).then_some(())?;
    }
    let options = &na[NA_MIN_LEN..payload.min(na.len())];
    match target_ll_option(options)? {
        Some(mac) => Some(mac),
        None => mac_at(f, 6),
    }
}

/// The target link-layer address in ND `options`: `Some(None)` when there is none,
/// `None` when the options are malformed (a zero length: RFC 4861 §4.6 says to drop
/// the message). Options cut short by the snap length end the walk.
fn target_ll_option(mut options: &[u8]) -> Option<Option<[u8; 6]>> {
    while let [kind, len, ..] = *options {
        let len = usize::from(len) * 8;
        if len == 0 {
            return None;
        }
        if kind == OPT_TARGET_LL_ADDR && len == 8 {
            return Some(mac_at(options, 2));
        }
        options = options.get(len..).unwrap_or_default();
    }
    Some(None)
}

/// The ARP probe for `ip` from `mac` (RFC 5227 §2.1.1): Ethernet broadcast; ARP
/// request, sender MAC `mac`, sender IP 0.0.0.0, target MAC zero, target IP `ip`.
pub fn arp_probe_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; ARP_PROBE_LEN] {
    super::arp::arp_frame(ArpOp::Request, mac, Ipv4Addr::UNSPECIFIED, [0; 6], ip)
}

/// The solicited-node multicast address of `ip` (RFC 4291 §2.7.1): ff02::1:ff00:0/104
/// and the last 24 bits of `ip`.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    let mut s = [0u8; 16];
    s[0] = 0xff;
    s[1] = 0x02;
    s[11] = 0x01;
    s[12] = 0xff;
    s[13..16].copy_from_slice(&o[13..16]);
    Ipv6Addr::from(s)
}

/// The neighbour solicitation probing for `target` from `mac`, as duplicate address
/// detection sends it (RFC 4862 §5.4.2): IPv6 source `::`, destination the target's
/// solicited-node address (Ethernet 33:33 and its last 32 bits), hop limit 255; NS
/// with the target and no option.
pub fn ns_probe_frame(mac: [u8; 6], target: Ipv6Addr) -> [u8; NS_PROBE_LEN] {
    let dst = solicited_node(target);
    let mut f = [0u8; NS_PROBE_LEN];
    f[0..2].copy_from_slice(&[0x33, 0x33]);
    f[2..6].copy_from_slice(&dst.octets()[12..16]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    f[14] = 0x60;
    f[18..20].copy_from_slice(&24u16.to_be_bytes());
    f[20] = NEXT_HEADER_ICMPV6;
    f[21] = HOP_LIMIT;
    // Source (22..38) stays `::`.
    f[38..54].copy_from_slice(&dst.octets());
    let ns = &mut f[ICMP_AT..];
    ns[0] = ICMPV6_NEIGHBOR_SOLICITATION;
    ns[8..24].copy_from_slice(&target.octets());
    let sum = icmpv6_checksum(Ipv6Addr::UNSPECIFIED, dst, ns);
    ns[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// A source of claims to the VIP as the daemon uses it: a [`Listener`], or a fake in
/// tests. See [`Listener`]'s methods.
pub trait Claims {
    fn fd(&self) -> RawFd;
    fn drain(&mut self, own_mac: [u8; 6], out: &mut Vec<[u8; 6]>);
    fn probe(&self, mac: [u8; 6]) -> io::Result<()>;
}

impl Claims for Listener {
    fn fd(&self) -> RawFd {
        Listener::fd(self)
    }
    fn drain(&mut self, own_mac: [u8; 6], out: &mut Vec<[u8; 6]>) {
        Listener::drain(self, own_mac, out);
    }
    fn probe(&self, mac: [u8; 6]) -> io::Result<()> {
        Listener::probe(self, mac)
    }
}

/// An `AF_PACKET` socket on one interface that receives only claims to one VIP
/// (see [`filter`]) and sends the probes for it.
#[derive(Debug)]
pub struct Listener {
    sock: Socket,
    ifindex: u32,
    vip: IpAddr,
}

impl Listener {
    /// An `AF_PACKET` socket bound to `ifindex` with the classic BPF filter of
    /// [`filter`] (`SO_ATTACH_FILTER`), so nothing but claims to `vip` is ever queued,
    /// and a small receive buffer. Non-blocking, close-on-exec. Needs `CAP_NET_RAW`.
    pub fn open(ifindex: u32, vip: IpAddr) -> io::Result<Listener> {
        // Protocol 0 receives nothing until the bind below, which comes after the
        // filter: no unfiltered frame is queued in between.
        let sock = Socket::new(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)?;
        sock.attach_filter(&filter(vip))?;
        sock.set_int_option(libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF)?;
        let protocol = match vip {
            IpAddr::V4(_) => ETH_P_ARP,
            IpAddr::V6(_) => ETH_P_IPV6,
        };
        sock.bind_link(ifindex, protocol)?;
        Ok(Listener { sock, ifindex, vip })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Reads what is queued without waiting (at most [`DRAIN_MAX`] frames) and
    /// appends to `out` the MAC of every claim that names another MAC than `own_mac`.
    /// Frames this host sent (`PACKET_OUTGOING`) are skipped. A socket error (the
    /// interface went down: `ENETDOWN`) is read and so cleared; it ends the call.
    pub fn drain(&mut self, own_mac: [u8; 6], out: &mut Vec<[u8; 6]>) {
        let mut buf = [0u8; SNAP_LEN as usize];
        for _ in 0..DRAIN_MAX {
            let Ok((len, pkttype)) = self.sock.recv_link(&mut buf) else {
                return;
            };
            if pkttype == PACKET_OUTGOING {
                continue;
            }
            let frame = &buf[..len.min(buf.len())];
            if let Some(mac) = claim(frame, self.vip).filter(|m| *m != own_mac) {
                out.push(mac);
            }
        }
    }

    /// Sends one probe for the VIP from `mac` on the bound interface: an ARP probe
    /// ([`arp_probe_frame`]) or a neighbour solicitation from `::`
    /// ([`ns_probe_frame`]).
    pub fn probe(&self, mac: [u8; 6]) -> io::Result<()> {
        match self.vip {
            IpAddr::V4(ip) => {
                let frame = arp_probe_frame(mac, ip);
                self.sock.send_to_link(&frame, self.ifindex, ETH_P_ARP)
            }
            IpAddr::V6(ip) => {
                let frame = ns_probe_frame(mac, ip);
                self.sock.send_to_link(&frame, self.ifindex, ETH_P_IPV6)
            }
        }
    }
}

#[cfg(test)]
mod tests;

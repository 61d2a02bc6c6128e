//! Gratuitous ARP: the frame (a pure function) and the `AF_PACKET` socket it is sent on.
//!
//! A gratuitous ARP tells the hosts on the segment that the VIP now lives at this
//! interface's MAC. The frame is an Ethernet broadcast carrying an ARP packet whose
//! sender and target protocol addresses are both the VIP (RFC 5227 §3 prefers the
//! request form; some switches and hosts only act on replies, hence
//! [`AnnounceMode::Reply`] and [`AnnounceMode::Both`]).

use std::io;
use std::net::Ipv4Addr;

use super::AnnounceMode;
use super::sys::Socket;

/// The Ethernet protocol number of ARP (`ETH_P_ARP`).
pub const ETH_P_ARP: u16 = 0x0806;
/// Length of a gratuitous ARP frame: 14 bytes of Ethernet header, 28 of ARP.
pub const FRAME_LEN: usize = 42;

/// The ARP operation of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// `ARPOP_REQUEST` (1): target hardware address zero.
    Request = 1,
    /// `ARPOP_REPLY` (2): target hardware address = our own MAC.
    Reply = 2,
}

impl ArpOp {
    /// The operations an announcement in `mode` sends, in order.
    pub fn for_mode(mode: AnnounceMode) -> &'static [ArpOp] {
        match mode {
            AnnounceMode::Request => &[ArpOp::Request],
            AnnounceMode::Reply => &[ArpOp::Reply],
            AnnounceMode::Both => &[ArpOp::Request, ArpOp::Reply],
        }
    }
}

/// The gratuitous ARP frame announcing `ip` at `mac`:
/// Ethernet dst ff:ff:ff:ff:ff:ff, src `mac`, type 0x0806; ARP htype 1 (Ethernet),
/// ptype 0x0800 (IPv4), hlen 6, plen 4, `op`; SHA = `mac`, SPA = TPA = `ip`;
/// THA zero for a request, `mac` for a reply.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr, op: ArpOp) -> [u8; FRAME_LEN] {
    let tha = match op {
        ArpOp::Request => [0; 6],
        ArpOp::Reply => mac,
    };
    arp_frame(op, mac, ip, tha, ip)
}

/// A broadcast ARP frame from `sha`: operation `op`, sender `sha`/`spa`, target
/// `tha`/`tpa` (the gratuitous ARP above, the conflict probe of [`super::conflict`]).
pub fn arp_frame(
    op: ArpOp,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) -> [u8; FRAME_LEN] {
    let mac = sha;
    let mut f = [0u8; FRAME_LEN];
    // Ethernet header.
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // ARP header.
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // ETH_P_IP
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&(op as u16).to_be_bytes());
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&spa.octets());
    f[32..38].copy_from_slice(&tha);
    f[38..42].copy_from_slice(&tpa.octets());
    f
}

/// An `AF_PACKET`/`SOCK_RAW` socket for sending whole Ethernet frames; opening it
/// needs `CAP_NET_RAW`, sending does not, so it is opened once at start-up.
///
/// It is opened with protocol 0, which packet(7) documents as "no packets are
/// received": the socket only ever sends, so it must not queue a copy of every ARP
/// packet on the host as a socket opened with `htons(ETH_P_ARP)` would. The frames'
/// protocol is given per send (`sll_protocol = htons(ETH_P_ARP)`, or
/// `htons(ETH_P_IPV6)` for the neighbour advertisements of [`super::ndisc`]).
#[derive(Debug)]
pub struct PacketSocket {
    sock: Socket,
}

impl PacketSocket {
    /// `socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)`.
    pub fn open() -> io::Result<PacketSocket> {
        let sock = Socket::new(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        Ok(PacketSocket { sock })
    }

    /// `sendto(2)` one complete Ethernet frame out of interface `ifindex`, with
    /// `protocol` (host byte order: `ETH_P_ARP`, `ETH_P_IPV6`) as `sll_protocol` and
    /// the frame's own destination as `sll_addr`.
    pub fn send_frame(&self, frame: &[u8], ifindex: u32, protocol: u16) -> io::Result<()> {
        self.sock.send_to_link(frame, ifindex, protocol)
    }

    /// One announcement of `ip` from interface `ifindex`: a request, a reply, or
    /// (`Both`) a request then a reply, each a `sendto(2)` of one gratuitous ARP
    /// frame (`sockaddr_ll{AF_PACKET, htons(ETH_P_ARP), ifindex, halen 6,
    /// ff:ff:ff:ff:ff:ff}`).
    pub fn announce(
        &self,
        ifindex: u32,
        mac: [u8; 6],
        ip: Ipv4Addr,
        mode: AnnounceMode,
    ) -> io::Result<()> {
        for &op in ArpOp::for_mode(mode) {
            self.send_frame(&garp_frame(mac, ip, op), ifindex, ETH_P_ARP)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

    #[test]
    fn request_frame_bytes() {
        // Checked by hand against RFC 826 / RFC 5227 §3 field by field.
        #[rustfmt::skip]
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination: broadcast
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // Ethernet source: our MAC
            0x08, 0x06,                         // EtherType ARP
            0x00, 0x01,                         // htype Ethernet
            0x08, 0x00,                         // ptype IPv4
            0x06, 0x04,                         // hlen, plen
            0x00, 0x01,                         // op request
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // SHA
            192, 0, 2, 50,                      // SPA
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // THA zero
            192, 0, 2, 50,                      // TPA
        ];
        assert_eq!(garp_frame(MAC, VIP, ArpOp::Request), want);
    }

    #[test]
    fn reply_frame_bytes() {
        #[rustfmt::skip]
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
            0x08, 0x06,
            0x00, 0x01,
            0x08, 0x00,
            0x06, 0x04,
            0x00, 0x02,                         // op reply
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // SHA
            192, 0, 2, 50,                      // SPA
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // THA = our MAC
            192, 0, 2, 50,                      // TPA
        ];
        assert_eq!(garp_frame(MAC, VIP, ArpOp::Reply), want);
    }

    #[test]
    fn modes_map_to_operations_in_order() {
        assert_eq!(ArpOp::for_mode(AnnounceMode::Request), [ArpOp::Request]);
        assert_eq!(ArpOp::for_mode(AnnounceMode::Reply), [ArpOp::Reply]);
        assert_eq!(
            ArpOp::for_mode(AnnounceMode::Both),
            [ArpOp::Request, ArpOp::Reply]
        );
    }
}

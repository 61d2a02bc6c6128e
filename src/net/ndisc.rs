//! Unsolicited neighbour advertisements (RFC 4861 §7.2.6): the frame (a pure
//! function), the ICMPv6 checksum, and the thin send over the `AF_PACKET` socket.
//!
//! An unsolicited NA is the IPv6 counterpart of a gratuitous ARP: sent to all nodes
//! (ff02::1, Ethernet 33:33:00:00:00:01) with the Override flag set and Solicited
//! clear, it makes every neighbour that has an entry for the VIP replace the entry's
//! link-layer address with ours at once (RFC 4861 §7.2.5; the entry becomes STALE, so
//! it is confirmed at the next use). RFC 4861 §7.2.6 allows up to
//! `MAX_NEIGHBOR_ADVERTISEMENT` = 3 of them for one change, at least `RetransTimer`
//! (1 s by default) apart: the defaults `announce-count` 3 and `announce-interval`
//! 1000 ms keep to both.

use std::io;
use std::net::Ipv6Addr;

use super::arp::PacketSocket;

/// The Ethernet protocol number of IPv6 (`ETH_P_IPV6`).
pub const ETH_P_IPV6: u16 = 0x86dd;
/// The all-nodes multicast address (RFC 4291 §2.7.1), the destination of an
/// unsolicited NA.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The Ethernet address of [`ALL_NODES`]: 33:33 and its last 32 bits (RFC 2464 §7).
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
/// Length of the NA frame: Ethernet header 14, IPv6 header 40, NA 24 (type, code,
/// checksum, flags, reserved, target), target link-layer address option 8.
pub const FRAME_LEN: usize = 14 + IPV6_HEADER_LEN + NA_LEN;

const IPV6_HEADER_LEN: usize = 40;
/// The ICMPv6 message: NA header and target (24) plus the option (8).
const NA_LEN: usize = 32;
/// Where the ICMPv6 message starts in the frame.
const ICMP_AT: usize = 14 + IPV6_HEADER_LEN;
/// IPv6 next header value of ICMPv6.
pub(super) const NEXT_HEADER_ICMPV6: u8 = 58;
/// Neighbour discovery messages must carry hop limit 255 (RFC 4861 §7.1.2): a
/// receiver drops any other, so they cannot come from off-link.
pub(super) const HOP_LIMIT: u8 = 255;
/// ICMPv6 type of a neighbour advertisement.
pub const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// NA flags (the first byte after the checksum): Router, Solicited, Override.
pub const NA_FLAG_ROUTER: u8 = 0x80;
pub const NA_FLAG_SOLICITED: u8 = 0x40;
pub const NA_FLAG_OVERRIDE: u8 = 0x20;
/// ND option type "target link-layer address" (RFC 4861 §4.6.1).
pub(super) const OPT_TARGET_LL_ADDR: u8 = 2;

/// The one's-complement sum (RFC 1071) of `data` as big-endian 16-bit words, a
/// trailing odd byte padded with a zero byte, added to `sum`, folded to 16 bits.
fn ones_complement_sum(mut sum: u32, data: &[u8]) -> u16 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum = fold_once(sum + u32::from(u16::from_be_bytes([w[0], w[1]])));
    }
    if let [last] = words.remainder() {
        sum = fold_once(sum + (u32::from(*last) << 8));
    }
    fold_once(fold_once(sum)) as u16
}

/// Adds the carries above 16 bits back into the low 16 bits (end-around carry).
fn fold_once(sum: u32) -> u32 {
    (sum & 0xffff) + (sum >> 16)
}

/// The ICMPv6 checksum (RFC 4443 §2.3, RFC 8200 §8.1) of the message `icmp` sent
/// from `src` to `dst`: the one's complement of the one's-complement sum of the
/// pseudo-header (source, destination, upper-layer length as 32 bits, three zero
/// bytes, next header 58) and the message. Computed over a message whose checksum
/// field is zero it is the value to put there; over a message with a correct
/// checksum in place it is zero.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    // Messages are far shorter than 4 GiB; saturate rather than wrap if not.
    let len = u32::try_from(icmp.len()).unwrap_or(u32::MAX);
    let mut pseudo = [0u8; 40];
    pseudo[0..16].copy_from_slice(&src.octets());
    pseudo[16..32].copy_from_slice(&dst.octets());
    pseudo[32..36].copy_from_slice(&len.to_be_bytes());
    pseudo[39] = NEXT_HEADER_ICMPV6;
    let sum = ones_complement_sum(0, &pseudo);
    !ones_complement_sum(u32::from(sum), icmp)
}

/// The unsolicited neighbour advertisement announcing `target` at `mac`
/// (RFC 4861 §4.4 and §7.2.6):
///
/// - Ethernet: destination 33:33:00:00:00:01, source `mac`, type 0x86dd;
/// - IPv6: version 6, traffic class and flow label 0, payload length 32, next
///   header 58, hop limit 255, source `target`, destination ff02::1;
/// - ICMPv6: type 136, code 0, checksum over the pseudo-header, flags R=0 S=0 O=1,
///   target `target`, then option 2 (target link-layer address), length 1 (8
///   bytes), `mac`.
///
/// It is byte for byte what Linux sends when `ndisc_notify` is set (see
/// `tests/fixtures/ndisc/`).
pub fn na_frame(mac: [u8; 6], target: Ipv6Addr) -> [u8; FRAME_LEN] {
    let ip = target.octets();
    let mut f = [0u8; FRAME_LEN];
    // Ethernet header.
    f[0..6].copy_from_slice(&ALL_NODES_MAC);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    // IPv6 header: version 6, traffic class 0, flow label 0.
    f[14] = 0x60;
    f[18..20].copy_from_slice(&(NA_LEN as u16).to_be_bytes());
    f[20] = NEXT_HEADER_ICMPV6;
    f[21] = HOP_LIMIT;
    f[22..38].copy_from_slice(&ip);
    f[38..54].copy_from_slice(&ALL_NODES.octets());
    // ICMPv6 neighbour advertisement; the checksum (bytes 2..4) is filled in last.
    let na = &mut f[ICMP_AT..];
    na[0] = ICMPV6_NEIGHBOR_ADVERTISEMENT;
    na[1] = 0; // code
    na[4] = NA_FLAG_OVERRIDE; // R=0 S=0 O=1, then 29 reserved bits of zero
    na[8..24].copy_from_slice(&ip);
    na[24] = OPT_TARGET_LL_ADDR;
    na[25] = 1; // option length in units of 8 bytes
    na[26..32].copy_from_slice(&mac);
    let sum = icmpv6_checksum(target, ALL_NODES, na);
    na[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

impl PacketSocket {
    /// `sendto(2)` one unsolicited neighbour advertisement of `target` ([`na_frame`])
    /// out of interface `ifindex`
    /// (`sockaddr_ll{AF_PACKET, htons(ETH_P_IPV6), ifindex, halen 6, 33:33:00:00:00:01}`).
    pub fn send_na(&self, ifindex: u32, mac: [u8; 6], target: Ipv6Addr) -> io::Result<()> {
        let frame = na_frame(mac, target);
        self.send_frame(&frame, ifindex, ETH_P_IPV6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's own unsolicited NA for 2001:db8::50 from 00:00:5e:00:53:01
    /// (classic pcap; see tests/fixtures/ndisc/README.md).
    const KERNEL_NA_PCAP: &[u8] = include_bytes!("../../tests/fixtures/ndisc/kernel-na.pcap");
    const KERNEL_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x01];
    const KERNEL_VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x50);

    /// The frames in a classic pcap file of either byte order.
    fn pcap_frames(file: &[u8]) -> Vec<&[u8]> {
        let magic = file.get(0..4).expect("pcap global header");
        let u32_at = |at: usize| -> usize {
            let b: [u8; 4] = file[at..at + 4].try_into().unwrap();
            match magic {
                [0xd4, 0xc3, 0xb2, 0xa1] => u32::from_le_bytes(b) as usize,
                [0xa1, 0xb2, 0xc3, 0xd4] => u32::from_be_bytes(b) as usize,
                _ => panic!("not a classic microsecond pcap: magic {magic:02x?}"),
            }
        };
        assert_eq!(u32_at(20), 1, "link type Ethernet");
        let mut frames = Vec::new();
        let mut at = 24;
        while at < file.len() {
            let (captured, original) = (u32_at(at + 8), u32_at(at + 12));
            assert_eq!(captured, original, "frame cut by the snapshot length");
            frames.push(&file[at + 16..at + 16 + captured]);
            at += 16 + captured;
        }
        frames
    }

    fn kernel_frame() -> &'static [u8] {
        let frames = pcap_frames(KERNEL_NA_PCAP);
        assert_eq!(frames.len(), 1);
        frames[0]
    }

    #[test]
    fn frame_equals_the_kernels_own_unsolicited_na() {
        let kernel = kernel_frame();
        assert_eq!(kernel.len(), FRAME_LEN);
        assert_eq!(na_frame(KERNEL_MAC, KERNEL_VIP)[..], *kernel);
    }

    #[test]
    fn kernel_capture_has_the_fields_rfc_4861_asks_for() {
        // Field by field, so a re-capture that differs says where (and the
        // equality test above is not just comparing two wrong frames).
        let f = kernel_frame();
        assert_eq!(f[0..6], ALL_NODES_MAC);
        assert_eq!(f[6..12], KERNEL_MAC);
        assert_eq!(f[12..14], [0x86, 0xdd]);
        assert_eq!(f[14] >> 4, 6, "IP version");
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 32, "payload length");
        assert_eq!(f[20], 58, "next header ICMPv6");
        assert_eq!(f[21], 255, "hop limit");
        assert_eq!(f[22..38], KERNEL_VIP.octets(), "source = the address");
        assert_eq!(f[38..54], ALL_NODES.octets());
        let na = &f[ICMP_AT..];
        assert_eq!((na[0], na[1]), (136, 0), "type, code");
        assert_eq!(na[4], NA_FLAG_OVERRIDE, "R=0 S=0 O=1");
        assert_eq!(na[5..8], [0, 0, 0], "reserved");
        assert_eq!(na[8..24], KERNEL_VIP.octets(), "target");
        assert_eq!(
            na[24..26],
            [2, 1],
            "target link-layer address option, 8 bytes"
        );
        assert_eq!(na[26..32], KERNEL_MAC);
    }

    #[test]
    fn checksum_recomputed_over_the_capture_and_ours() {
        let kernel = kernel_frame();
        for frame in [kernel, &na_frame(KERNEL_MAC, KERNEL_VIP)[..]] {
            let na = &frame[ICMP_AT..];
            // A correct checksum in place sums to zero...
            assert_eq!(icmpv6_checksum(KERNEL_VIP, ALL_NODES, na), 0);
            // ...and with the field zeroed, recomputing gives the stored value.
            let mut zeroed = na.to_vec();
            zeroed[2..4].fill(0);
            let stored = u16::from_be_bytes([na[2], na[3]]);
            assert_eq!(icmpv6_checksum(KERNEL_VIP, ALL_NODES, &zeroed), stored);
        }
    }

    #[test]
    fn other_addresses_get_their_own_fields_and_a_valid_checksum() {
        let mac = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
        for vip in [
            Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0xffff, 0xffff),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0x200, 0x5eff, 0xfe10, 0x2030),
        ] {
            let f = na_frame(mac, vip);
            assert_eq!(f[6..12], mac);
            assert_eq!(f[22..38], vip.octets());
            assert_eq!(f[ICMP_AT + 8..ICMP_AT + 24], vip.octets());
            assert_eq!(f[ICMP_AT + 26..], mac);
            assert_eq!(icmpv6_checksum(vip, ALL_NODES, &f[ICMP_AT..]), 0, "{vip}");
            // Any change to an address covered by the pseudo-header breaks it.
            let other = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x51);
            assert_ne!(icmpv6_checksum(other, ALL_NODES, &f[ICMP_AT..]), 0);
        }
    }

    #[test]
    fn ones_complement_sum_matches_rfc_1071() {
        // RFC 1071 §3's worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_complement_sum(0, &data), 0xddf2);
        // The sum is independent of byte pairs' order (RFC 1071 §2 (B)).
        let swapped = [0xf6, 0xf7, 0xf4, 0xf5, 0xf2, 0x03, 0x00, 0x01];
        assert_eq!(ones_complement_sum(0, &swapped), 0xddf2);
        // An odd trailing byte counts as the high byte of a word.
        assert_eq!(ones_complement_sum(0, &[0x12]), 0x1200);
        assert_eq!(ones_complement_sum(0, &[0x00, 0x01, 0x12]), 0x1201);
        // End-around carry: ffff + 0001 = 0001 (not 0000).
        assert_eq!(ones_complement_sum(0, &[0xff, 0xff, 0x00, 0x01]), 0x0001);
        assert_eq!(ones_complement_sum(0, &[0xff; 64]), 0xffff);
        assert_eq!(ones_complement_sum(0, &[]), 0);
    }
}

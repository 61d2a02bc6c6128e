use super::*;
use crate::net::arp::{ArpOp, garp_frame};
use crate::net::ndisc::{ALL_NODES, na_frame};

const OURS: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x01];
const THEIRS: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x53, 0x02];
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const OTHER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 51);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x50);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 0x50);

/// Runs a classic BPF program of the instructions [`filter`] uses, as the kernel
/// would: what it returns for `frame` (a load past the end returns 0).
fn run(prog: &[libc::sock_filter], frame: &[u8]) -> u32 {
    let mut acc = 0u32;
    let mut pc = 0usize;
    for _ in 0..=prog.len() {
        let i = prog[pc];
        let at = i.k as usize;
        let load = |n: usize| -> Option<u32> {
            let b = frame.get(at..at + n)?;
            Some(b.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x)))
        };
        pc += 1;
        match i.code {
            BPF_LD_W_ABS | BPF_LD_H_ABS | BPF_LD_B_ABS => {
                let n = match i.code {
                    BPF_LD_W_ABS => 4,
                    BPF_LD_H_ABS => 2,
                    _ => 1,
                };
                match load(n) {
                    Some(v) => acc = v,
                    None => return 0,
                }
            }
            BPF_JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
            BPF_RET_K => return i.k,
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
    panic!("the program does not end")
}

/// A copy of `frame` with the byte at `at` changed.
fn with(frame: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[at] = value;
    f
}

/// Recomputes the ICMPv6 checksum of a whole frame after a change.
fn fix_checksum(f: &mut [u8]) {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
    f[ICMP_AT + 2..ICMP_AT + 4].fill(0);
    let sum = icmpv6_checksum(src, dst, &f[ICMP_AT..]);
    f[ICMP_AT + 2..ICMP_AT + 4].copy_from_slice(&sum.to_be_bytes());
}

/// An NA for `target` from `mac` without the target link-layer option (payload 24).
fn na_without_option(mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let mut f = na_frame(mac, target)[..ICMP_AT + NA_MIN_LEN].to_vec();
    f[18..20].copy_from_slice(&24u16.to_be_bytes());
    fix_checksum(&mut f);
    f
}

#[test]
fn ipv4_filter_passes_only_arp_from_the_vip() {
    let prog = filter(IpAddr::V4(VIP4));
    for op in [ArpOp::Request, ArpOp::Reply] {
        let garp = garp_frame(THEIRS, VIP4, op);
        assert_eq!(run(&prog, &garp), SNAP_LEN, "{op:?} from the VIP");
        assert_eq!(run(&prog, &garp_frame(THEIRS, OTHER4, op)), 0);
    }
    // A request from another host asking for the VIP: sender IP is not the VIP.
    let mut asking = garp_frame(THEIRS, OTHER4, ArpOp::Request);
    asking[38..42].copy_from_slice(&VIP4.octets());
    assert_eq!(run(&prog, &asking), 0);
    // Our own probe (sender IP 0.0.0.0) is no claim.
    assert_eq!(run(&prog, &arp_probe_frame(OURS, VIP4)), 0);
    let garp = garp_frame(THEIRS, VIP4, ArpOp::Request);
    assert_eq!(run(&prog, &garp[..31]), 0, "cut before the sender IP");
    assert_eq!(run(&prog, &with(&garp, 13, 0x00)), 0, "ethertype IPv4");
    assert_eq!(run(&prog, &with(&garp, 17, 0xdd)), 0, "protocol not IPv4");
    assert_eq!(run(&prog, &with(&garp, 19, 16)), 0, "address length 16");
    // IPv6 traffic, even an NA, never passes the IPv4 filter.
    assert_eq!(run(&prog, &na_frame(THEIRS, VIP6)), 0);
}

#[test]
fn ipv6_filter_passes_only_nas_for_the_vip() {
    let prog = filter(IpAddr::V6(VIP6));
    assert_eq!(prog.len(), 16);
    assert_eq!(run(&prog, &na_frame(THEIRS, VIP6)), SNAP_LEN);
    assert_eq!(run(&prog, &na_without_option(THEIRS, VIP6)), SNAP_LEN);
    assert_eq!(run(&prog, &na_frame(THEIRS, OTHER6)), 0);
    // Each word of the target counts.
    let na = na_frame(THEIRS, VIP6);
    for at in [62, 66, 70, 77] {
        assert_eq!(
            run(&prog, &with(&na, at, na[at] ^ 1)),
            0,
            "target byte {at}"
        );
    }
    // A solicitation for the VIP (our own probe, or another host's DAD).
    assert_eq!(run(&prog, &ns_probe_frame(OURS, VIP6)), 0);
    assert_eq!(run(&prog, &with(&na, 20, 17)), 0, "UDP");
    assert_eq!(run(&prog, &na[..70]), 0, "cut in the target");
    assert_eq!(run(&prog, &garp_frame(THEIRS, VIP4, ArpOp::Request)), 0);
}

#[test]
fn arp_claims_name_the_sender_mac() {
    let vip = IpAddr::V4(VIP4);
    for op in [ArpOp::Request, ArpOp::Reply] {
        assert_eq!(claim(&garp_frame(THEIRS, VIP4, op), vip), Some(THEIRS));
    }
    // A Linux answer to our probe: a unicast reply from the VIP to our MAC.
    let mut reply = garp_frame(THEIRS, VIP4, ArpOp::Reply);
    reply[0..6].copy_from_slice(&OURS);
    reply[32..38].copy_from_slice(&OURS);
    reply[38..42].fill(0);
    assert_eq!(claim(&reply, vip), Some(THEIRS));
    assert_eq!(claim(&garp_frame(THEIRS, OTHER4, ArpOp::Reply), vip), None);
    assert_eq!(claim(&arp_probe_frame(THEIRS, VIP4), vip), None);
    let garp = garp_frame(THEIRS, VIP4, ArpOp::Request);
    assert_eq!(claim(&with(&garp, 21, 3), vip), None, "RARP request");
    assert_eq!(claim(&garp[..27], vip), None, "cut");
    assert_eq!(claim(&[], vip), None);
    // The family of the VIP decides what is looked for.
    assert_eq!(claim(&garp, IpAddr::V6(VIP6)), None);
}

#[test]
fn na_claims_name_the_option_or_the_ethernet_source() {
    let vip = IpAddr::V6(VIP6);
    assert_eq!(claim(&na_frame(THEIRS, VIP6), vip), Some(THEIRS));
    assert_eq!(claim(&na_without_option(THEIRS, VIP6), vip), Some(THEIRS));
    // The option wins over the Ethernet source (a proxy or a bridge may differ).
    let mut proxied = na_frame(THEIRS, VIP6);
    proxied[6..12].copy_from_slice(&OURS);
    assert_eq!(claim(&proxied, vip), Some(THEIRS));
    // A source link-layer option (type 1) before the target's is skipped.
    let mut two = na_frame(THEIRS, VIP6).to_vec();
    two.splice(ICMP_AT + 24..ICMP_AT + 24, [1, 1, 9, 9, 9, 9, 9, 9]);
    two[18..20].copy_from_slice(&40u16.to_be_bytes());
    fix_checksum(&mut two);
    assert_eq!(claim(&two, vip), Some(THEIRS));
    assert_eq!(claim(&na_frame(THEIRS, OTHER6), vip), None);
}

#[test]
fn malformed_nas_are_no_claims() {
    let vip = IpAddr::V6(VIP6);
    let na = na_frame(THEIRS, VIP6);
    assert_eq!(
        claim(&with(&na, ICMP_AT + 2, na[ICMP_AT + 2] ^ 1), vip),
        None,
        "checksum"
    );
    let mut hops = with(&na, 21, 254);
    fix_checksum(&mut hops);
    assert_eq!(
        claim(&hops, vip),
        None,
        "hop limit below 255: from off-link"
    );
    let mut code = with(&na, ICMP_AT + 1, 1);
    fix_checksum(&mut code);
    assert_eq!(claim(&code, vip), None, "code 1");
    let mut zero_len = with(&na, ICMP_AT + 25, 0);
    fix_checksum(&mut zero_len);
    assert_eq!(claim(&zero_len, vip), None, "an option of length 0");
    let mut short = na.to_vec();
    short[18..20].copy_from_slice(&16u16.to_be_bytes());
    assert_eq!(claim(&short, vip), None, "payload shorter than an NA");
    assert_eq!(claim(&na[..60], vip), None, "cut before the target");
    assert_eq!(
        claim(&ns_probe_frame(THEIRS, VIP6), vip),
        None,
        "a solicitation"
    );
}

#[test]
fn a_claim_cut_by_the_snap_length_still_counts() {
    // Options beyond the snap length: no checksum to check, the option is read.
    let mut long = na_frame(THEIRS, VIP6).to_vec();
    let pad: Vec<u8> = [14u8, 30].into_iter().chain([0; 238]).collect();
    long.extend_from_slice(&pad);
    long[18..20].copy_from_slice(&(32u16 + 240).to_be_bytes());
    fix_checksum(&mut long);
    assert!(long.len() > SNAP_LEN as usize);
    let cut = &long[..SNAP_LEN as usize];
    assert_eq!(claim(cut, IpAddr::V6(VIP6)), Some(THEIRS));
}

#[test]
fn arp_probe_bytes() {
    // RFC 5227 §2.1.1, field by field.
    #[rustfmt::skip]
    let want: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // our MAC
        0x08, 0x06,                         // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // Ethernet, IPv4, 6, 4
        0x00, 0x01,                         // request
        0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // sender MAC: ours
        0, 0, 0, 0,                         // sender IP: 0.0.0.0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC: zero
        192, 0, 2, 50,                      // target IP: the VIP
    ];
    assert_eq!(arp_probe_frame(OURS, VIP4), want);
}

#[test]
fn ns_probe_fields_and_checksum() {
    let f = ns_probe_frame(OURS, VIP6);
    let group = solicited_node(VIP6);
    assert_eq!(group, "ff02::1:ff00:50".parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        solicited_node("2001:db8::abcd:ef12:3456".parse().unwrap()),
        "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(f[0..6], [0x33, 0x33, 0xff, 0x00, 0x00, 0x50]);
    assert_eq!(f[6..12], OURS);
    assert_eq!(f[12..14], [0x86, 0xdd]);
    assert_eq!(f[14], 0x60);
    assert_eq!(u16::from_be_bytes([f[18], f[19]]), 24, "no option");
    assert_eq!((f[20], f[21]), (58, 255));
    assert_eq!(f[22..38], [0; 16], "source ::");
    assert_eq!(f[38..54], group.octets());
    assert_eq!((f[54], f[55]), (135, 0));
    assert_eq!(f[58..62], [0; 4], "reserved");
    assert_eq!(f[62..78], VIP6.octets());
    let unspecified = Ipv6Addr::UNSPECIFIED;
    assert_eq!(icmpv6_checksum(unspecified, group, &f[ICMP_AT..]), 0);
    assert_ne!(icmpv6_checksum(unspecified, ALL_NODES, &f[ICMP_AT..]), 0);
}

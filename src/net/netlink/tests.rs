//! Requests are compared with, and replies parsed from, captures of iproute2 made
//! by `tests/fixtures/netlink/capture.sh` (strace hex dumps of what `ip` sent and
//! received in a throwaway network namespace).

use super::*;

const ADD: &str = include_str!("../../../tests/fixtures/netlink/ip-addr-add.strace");
const ADD_EEXIST: &str = include_str!("../../../tests/fixtures/netlink/ip-addr-add-eexist.strace");
const DEL: &str = include_str!("../../../tests/fixtures/netlink/ip-addr-del.strace");
const DEL_ABSENT: &str = include_str!("../../../tests/fixtures/netlink/ip-addr-del-absent.strace");
const ADD6: &str = include_str!("../../../tests/fixtures/netlink/ip-6-addr-add.strace");
const DEL6: &str = include_str!("../../../tests/fixtures/netlink/ip-6-addr-del.strace");
const ADD_LABEL: &str =
    include_str!("../../../tests/fixtures/netlink/ip-addr-add-label-noprefixroute.strace");
const DEL_LABEL: &str = include_str!("../../../tests/fixtures/netlink/ip-addr-del-label.strace");
const ADD6_NOPREFIXROUTE: &str =
    include_str!("../../../tests/fixtures/netlink/ip-6-addr-add-noprefixroute.strace");
const LINK: &str = include_str!("../../../tests/fixtures/netlink/ip-link-show.strace");
const LINK_ABSENT: &str =
    include_str!("../../../tests/fixtures/netlink/ip-link-show-absent.strace");
const SHOW: &str = include_str!("../../../tests/fixtures/netlink/ip-4-addr-show.strace");
const SHOW_DEV: &str = include_str!("../../../tests/fixtures/netlink/ip-4-addr-show-dev.strace");

const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x50));
/// The MAC capture.sh gives eth0.
const ETH0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// One system call from a capture: strace's decoded line and the bytes of its
/// hex dump (`-e write=all` / `-e read=all`).
#[derive(Debug)]
struct Call {
    line: String,
    bytes: Vec<u8>,
}

/// The calls in a capture that carried data, in order.
fn calls(capture: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    for line in capture.lines() {
        if ["sendmsg(", "sendto(", "recvmsg(", "recvfrom("]
            .iter()
            .any(|p| line.starts_with(p))
        {
            calls.push(Call {
                line: line.to_string(),
                bytes: Vec::new(),
            });
        } else if let Some(dump) = line.strip_prefix(" | ") {
            // " | 00000  4c 00 ... 00  ascii |": offset (5), two spaces, then 16 bytes
            // in two groups of eight, 48 columns in all.
            let hex = dump.get(7..55).expect("hex dump line too short");
            let call = calls.last_mut().expect("hex dump before any call");
            for byte in hex.split_whitespace() {
                call.bytes
                    .push(u8::from_str_radix(byte, 16).expect("hex byte"));
            }
        }
    }
    calls.retain(|c| !c.bytes.is_empty());
    calls
}

/// The one call whose decoded line starts with `call` and mentions `needle`.
fn call<'a>(calls: &'a [Call], call: &str, needle: &str) -> &'a Call {
    let mut found = calls
        .iter()
        .filter(|c| c.line.starts_with(call) && c.line.contains(needle));
    let first = found
        .next()
        .unwrap_or_else(|| panic!("no {call} with {needle}"));
    assert!(found.next().is_none(), "several {call} with {needle}");
    first
}

/// eth0's interface index at capture time, from the capture's header.
fn eth0_index(capture: &str) -> u32 {
    capture
        .lines()
        .find_map(|l| l.strip_prefix("# eth0 ifindex: "))
        .expect("capture header names eth0's index")
        .trim()
        .parse()
        .expect("ifindex")
}

/// The first message of `bytes` (`nlmsg_len` long) with its sequence number and
/// port id zeroed.
fn masked(bytes: &[u8]) -> Vec<u8> {
    let len = u32_at(bytes, 0).expect("nlmsg_len") as usize;
    let mut m = bytes[..len].to_vec();
    m[8..16].fill(0);
    m
}

fn seq_of(bytes: &[u8]) -> u32 {
    u32_at(bytes, 8).expect("seq")
}

fn parse_all(buf: &[u8]) -> Result<Vec<Message>, ParseError> {
    parse(buf).collect()
}

fn built_addr(change: AddrChange, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    addr_request(&mut buf, change, 0, ifindex, addr, prefix_len);
    buf
}

#[test]
fn fixture_reader_reads_whole_dumps() {
    let c = calls(ADD);
    let req = call(&c, "sendmsg(3", "RTM_NEWADDR");
    assert_eq!(req.bytes.len(), 40, "strace says 40 bytes in buffer 0");
    assert!(req.line.contains("nlmsg_len=40"));
}

#[test]
fn add_request_matches_ip_addr_add() {
    let c = calls(ADD);
    let captured = &call(&c, "sendmsg(3", "RTM_NEWADDR").bytes;
    let built = built_addr(AddrChange::Add, eth0_index(ADD), VIP4, 24);
    assert_eq!(built, masked(captured));
    assert_eq!(built.len(), captured.len());
}

#[test]
fn del_request_matches_ip_addr_del() {
    let c = calls(DEL);
    let captured = &call(&c, "sendmsg(3", "RTM_DELADDR").bytes;
    let built = built_addr(AddrChange::Del, eth0_index(DEL), VIP4, 24);
    assert_eq!(built, masked(captured));
    assert_eq!(built.len(), captured.len());
}

#[test]
fn ipv6_add_request_matches_ip_addr_add_nodad() {
    let c = calls(ADD6);
    let captured = &call(&c, "sendmsg(3", "RTM_NEWADDR").bytes;
    assert!(
        call(&c, "sendmsg(3", "RTM_NEWADDR")
            .line
            .contains("IFA_F_NODAD")
    );
    let built = built_addr(AddrChange::Add, eth0_index(ADD6), VIP6, 64);
    assert_eq!(built, masked(captured));
}

#[test]
fn ipv6_del_request_matches_ip_addr_del() {
    let c = calls(DEL6);
    let captured = &call(&c, "sendmsg(3", "RTM_DELADDR").bytes;
    let built = built_addr(AddrChange::Del, eth0_index(DEL6), VIP6, 64);
    assert_eq!(built, masked(captured));
}

#[test]
fn only_ipv6_adds_skip_duplicate_address_detection() {
    // ifaddrmsg follows the 16-byte header: family, prefix length, flags, scope.
    let flags = |change, addr| u32::from(built_addr(change, 2, addr, 64)[18]);
    assert_eq!(flags(AddrChange::Add, VIP6), IFA_F_NODAD);
    assert_eq!(flags(AddrChange::Del, VIP6), 0);
    assert_eq!(flags(AddrChange::Add, VIP4), 0);
    assert_eq!(flags(AddrChange::Del, VIP4), 0);
    let add6 = built_addr(AddrChange::Add, 2, VIP6, 64);
    assert_eq!((add6[16], add6[17]), (FAMILY_INET6, 64));
    // IFA_LOCAL and IFA_ADDRESS each carry the 16-byte address.
    assert_eq!(add6.len(), NLMSG_HDRLEN + 8 + 2 * (4 + 16));
}

fn built_with(change: AddrChange, ifindex: u32, addr: IpAddr, len: u8, o: &AddrOptions) -> Vec<u8> {
    let mut buf = Vec::new();
    addr_request_with(&mut buf, change, 0, ifindex, addr, len, o);
    buf
}

#[test]
fn add_with_label_and_noprefixroute_matches_ip_addr_add() {
    let c = calls(ADD_LABEL);
    let sent = call(&c, "sendmsg(3", "RTM_NEWADDR");
    assert!(sent.line.contains("IFA_LABEL") && sent.line.contains("IFA_F_NOPREFIXROUTE"));
    let mut options = AddrOptions::default().with_label("eth0:vip").unwrap();
    options.noprefixroute = true;
    let built = built_with(AddrChange::Add, eth0_index(ADD_LABEL), VIP4, 24, &options);
    assert_eq!(built, masked(&sent.bytes));
    // The kernel acknowledged it.
    let acks: Vec<_> = c
        .iter()
        .filter(|c| c.line.starts_with("recvmsg(3"))
        .flat_map(|c| parse_all(&c.bytes).unwrap())
        .filter(|m| m.payload == Payload::Ack)
        .collect();
    assert_eq!(acks.len(), 1);
}

#[test]
fn ipv6_add_with_noprefixroute_moves_every_flag_to_ifa_flags() {
    let c = calls(ADD6_NOPREFIXROUTE);
    let sent = call(&c, "sendmsg(3", "RTM_NEWADDR");
    assert!(sent.line.contains("IFA_F_NODAD|IFA_F_NOPREFIXROUTE"));
    // A label is not sent for IPv6: Linux keeps none.
    let mut options = AddrOptions::default().with_label("eth0:vip").unwrap();
    options.noprefixroute = true;
    let built = built_with(
        AddrChange::Add,
        eth0_index(ADD6_NOPREFIXROUTE),
        VIP6,
        64,
        &options,
    );
    assert_eq!(built, masked(&sent.bytes));
    assert_eq!(built[18], 0, "no flags in the 8-bit header field");
}

#[test]
fn delete_ignores_the_options() {
    // `ip addr del` of the labelled address names no label, and the kernel deletes it.
    let c = calls(DEL_LABEL);
    let sent = &call(&c, "sendmsg(3", "RTM_DELADDR").bytes;
    let mut options = AddrOptions::default().with_label("eth0:vip").unwrap();
    options.noprefixroute = true;
    for (addr, len) in [(VIP4, 24), (VIP6, 64)] {
        assert_eq!(
            built_with(AddrChange::Del, 3, addr, len, &options),
            built_addr(AddrChange::Del, 3, addr, len)
        );
    }
    assert_eq!(
        built_with(AddrChange::Del, eth0_index(DEL_LABEL), VIP4, 24, &options),
        masked(sent)
    );
}

#[test]
fn labels_are_checked_like_interface_names() {
    let ok = AddrOptions::default()
        .with_label("eth0:vip-15byte")
        .unwrap();
    assert_eq!(ok.label(), Some("eth0:vip-15byte"));
    for bad in ["", "eth0:vip-16bytes", "eth0\0vip", "eth0:vïp-15byte"] {
        assert_eq!(
            AddrOptions::default().with_label(bad),
            Err(BadLinkName),
            "{bad:?}"
        );
    }
    // Without options an add is exactly the plain request.
    assert_eq!(
        built_with(AddrChange::Add, 3, VIP4, 24, &AddrOptions::default()),
        built_addr(AddrChange::Add, 3, VIP4, 24)
    );
}

#[test]
fn dump_request_matches_ip_addr_show_dev() {
    let c = calls(SHOW_DEV);
    // iproute2 sends its whole request buffer; the message is the first nlmsg_len bytes.
    let captured = &call(&c, "sendto(3", "RTM_GETADDR").bytes;
    let mut built = Vec::new();
    addr_dump_request(&mut built, 0, FAMILY_INET, eth0_index(SHOW_DEV));
    assert_eq!(built, masked(captured));
}

#[test]
fn link_request_matches_ip_name_lookup_but_for_the_vf_filter() {
    // `ip addr add ... dev eth0` first looks the name up with this request.
    let c = calls(ADD);
    let mut captured = masked(&call(&c, "sendmsg(4", "RTM_GETLINK").bytes);
    // IFLA_EXT_MASK's value sits after the header (16), ifinfomsg (16) and the
    // attribute header (4). iproute2 asks for RTEXT_FILTER_VF | SKIP_STATS; we
    // leave out the VF details.
    assert_eq!(u32_at(&captured, 36), Some(1 | RTEXT_FILTER_SKIP_STATS));
    captured[36..40].copy_from_slice(&RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    let mut built = Vec::new();
    link_request(&mut built, 0, "eth0").unwrap();
    assert_eq!(built, captured);
}

#[test]
fn link_request_refuses_bad_names() {
    let mut buf = Vec::new();
    assert_eq!(link_request(&mut buf, 1, ""), Err(BadLinkName));
    assert_eq!(link_request(&mut buf, 1, "eth0\0x"), Err(BadLinkName));
    assert_eq!(
        link_request(&mut buf, 1, "a-name-16-bytes!"),
        Err(BadLinkName)
    );
    link_request(&mut buf, 1, "a-name-15-bytes").unwrap();
    // header 16 + ifinfomsg 16 + ext mask 8 + name attribute 4 + 16 (15 + NUL)
    assert_eq!(buf.len(), 60);
    assert_eq!(u32_at(&buf, 0), Some(60));
}

#[test]
fn requests_carry_the_sequence_number_and_reuse_the_buffer() {
    let mut buf = Vec::with_capacity(64);
    addr_request(&mut buf, AddrChange::Add, 0xdead_beef, 7, VIP4, 24);
    assert_eq!(seq_of(&buf), 0xdead_beef);
    addr_request(&mut buf, AddrChange::Del, 5, 7, VIP4, 24);
    assert_eq!(seq_of(&buf), 5);
    assert_eq!(buf.len(), 40, "the old request is cleared, not appended to");
}

#[test]
fn parses_the_ack_of_ip_addr_add() {
    let c = calls(ADD);
    let req = call(&c, "sendmsg(3", "RTM_NEWADDR");
    let reply = call(&c, "recvmsg(3", "NLMSG_ERROR");
    let msgs = parse_all(&reply.bytes).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].payload, Payload::Ack);
    assert_eq!(msgs[0].header.seq, seq_of(&req.bytes));
    assert_eq!(msgs[0].header.kind, NLMSG_ERROR);
}

#[test]
fn parses_eexist_with_extack() {
    let c = calls(ADD_EEXIST);
    let req = call(&c, "sendmsg(3", "RTM_NEWADDR");
    let reply = call(&c, "recvmsg(3", "NLMSG_ERROR");
    let msgs = parse_all(&reply.bytes).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].header.seq, seq_of(&req.bytes));
    assert_eq!(
        msgs[0].payload,
        Payload::Error {
            errno: libc::EEXIST,
            extack: Some("ipv4: Address already assigned".to_string()),
        }
    );
    // The command's output shows the same text (iproute2 adds a full stop).
    assert!(ADD_EEXIST.contains("Error: ipv4: Address already assigned."));
}

#[test]
fn parses_eaddrnotavail_with_extack() {
    let c = calls(DEL_ABSENT);
    let reply = call(&c, "recvmsg(3", "NLMSG_ERROR");
    let msgs = parse_all(&reply.bytes).unwrap();
    assert_eq!(
        msgs[0].payload,
        Payload::Error {
            errno: libc::EADDRNOTAVAIL,
            extack: Some("ipv4: Address not found".to_string()),
        }
    );
}

#[test]
fn parses_enodev_without_extack() {
    let c = calls(LINK_ABSENT);
    let reply = call(&c, "recvmsg(4", "NLMSG_ERROR");
    let msgs = parse_all(&reply.bytes).unwrap();
    assert_eq!(
        msgs[0].payload,
        Payload::Error {
            errno: libc::ENODEV,
            extack: None,
        }
    );
}

#[test]
fn parses_the_link_of_ip_link_show() {
    // The reply to the name lookup `ip addr add` makes, and the (larger) one to
    // `ip link show dev eth0` itself.
    let add = calls(ADD);
    let link = calls(LINK);
    let req = call(&add, "sendmsg(4", "RTM_GETLINK");
    let replies = [
        call(&add, "recvmsg(4", "RTM_NEWLINK"),
        call(&link, "recvmsg(3", "ifi_type=ARPHRD_ETHER"),
    ];
    assert_eq!(seq_of(&replies[0].bytes), seq_of(&req.bytes));
    for reply in replies {
        let msgs = parse_all(&reply.bytes).unwrap();
        assert_eq!(msgs.len(), 1);
        let Payload::NewLink(link) = msgs[0].payload else {
            panic!("not a link: {:?}", msgs[0]);
        };
        assert_eq!(link.index, eth0_index(LINK));
        assert_eq!(link.mac, Some(ETH0_MAC));
        assert!(link.is_up(), "flags {:#x}", link.flags);
    }
    assert!(LINK.contains("link/ether 02:00:00:00:00:01"));
}

/// The messages answering the `RTM_GETADDR` dump in `capture`, over every datagram.
fn dump_reply(capture: &str) -> Vec<Message> {
    let c = calls(capture);
    let seq = seq_of(&call(&c, "sendto(3", "RTM_GETADDR").bytes);
    let mut msgs = Vec::new();
    for reply in c.iter().filter(|c| c.line.starts_with("recvmsg(3")) {
        msgs.extend(parse_all(&reply.bytes).unwrap());
    }
    msgs.retain(|m| m.header.seq == seq);
    msgs
}

#[test]
fn parses_a_multipart_dump_ending_in_done() {
    let msgs = dump_reply(SHOW);
    let addrs: Vec<AddrMsg> = msgs
        .iter()
        .filter_map(|m| match m.payload {
            Payload::NewAddr(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(msgs.len(), addrs.len() + 1);
    assert_eq!(msgs.last().unwrap().payload, Payload::Done);
    let v4 = |a, b, c, d| Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
    let eth0 = eth0_index(SHOW);
    let want = [
        (1, v4(127, 0, 0, 1), 8),
        (2, v4(198, 51, 100, 50), 24),
        (eth0, v4(192, 0, 2, 50), 24),
        (eth0, v4(192, 0, 2, 50), 32),
        (eth0, v4(192, 0, 2, 5), 24),
    ];
    let got: Vec<_> = addrs
        .iter()
        .map(|a| (a.ifindex, a.address, a.prefix_len))
        .collect();
    assert_eq!(got, want);
    assert!(addrs.iter().all(|a| a.family == FAMILY_INET));
    // Every message of a dump is multipart (NLM_F_MULTI).
    assert!(msgs.iter().all(|m| m.header.flags & 0x2 != 0));
}

#[test]
fn prefixes_match_address_and_interface_exactly() {
    let addrs: Vec<AddrMsg> = dump_reply(SHOW)
        .iter()
        .filter_map(|m| match m.payload {
            Payload::NewAddr(a) => Some(a),
            _ => None,
        })
        .collect();
    let eth0 = eth0_index(SHOW);
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    assert_eq!(prefixes_of(&addrs, eth0, VIP4), [24, 32]);
    // 192.0.2.5 is a string prefix of 192.0.2.50, and neither matches the other.
    assert_eq!(prefixes_of(&addrs, eth0, v4(192, 0, 2, 5)), [24]);
    assert_eq!(prefixes_of(&addrs, eth0, v4(192, 0, 2, 51)), [] as [u8; 0]);
    // The right address on another interface does not count.
    assert_eq!(prefixes_of(&addrs, 2, VIP4), [] as [u8; 0]);
    assert_eq!(prefixes_of(&addrs, 2, v4(198, 51, 100, 50)), [24]);
    assert_eq!(prefixes_of(&addrs, eth0, VIP6), [] as [u8; 0]);
}

/// Every reply captured in the fixtures, one datagram each.
fn all_replies() -> Vec<Vec<u8>> {
    [
        ADD,
        ADD_EEXIST,
        DEL,
        DEL_ABSENT,
        ADD6,
        DEL6,
        LINK,
        LINK_ABSENT,
        SHOW,
        SHOW_DEV,
    ]
    .iter()
    .flat_map(|f| calls(f))
    .filter(|c| c.line.starts_with("recvmsg("))
    .map(|c| c.bytes)
    .collect()
}

#[test]
fn truncated_replies_are_errors_not_panics() {
    let replies = all_replies();
    assert!(replies.len() >= 15, "{} replies", replies.len());
    for reply in &replies {
        let whole = parse_all(reply).unwrap();
        for cut in 1..reply.len() {
            let part = &reply[..cut];
            match parse_all(part) {
                // A cut exactly between messages (or in the last one's padding)
                // leaves whole messages only: the same ones, fewer or equal.
                Ok(msgs) => {
                    assert!(msgs.len() <= whole.len());
                    assert_eq!(msgs[..], whole[..msgs.len()]);
                }
                Err(e) => assert!(e.offset < cut, "{e} in {cut} bytes"),
            }
        }
    }
}

#[test]
fn a_cut_inside_a_message_is_reported_with_its_offset() {
    let c = calls(SHOW);
    let dump = &call(&c, "recvmsg(3", "RTM_NEWADDR").bytes;
    // The second message starts at 0x4c; cut it in its attributes.
    let err = parse_all(&dump[..0x4c + 30]).unwrap_err();
    assert_eq!(err.offset, 0x4c);
    assert_eq!(err.what, "message length beyond the buffer");
    assert_eq!(
        parse_all(&dump[..10]).unwrap_err().what,
        "truncated message header"
    );
}

/// A small deterministic generator (xorshift32) for garbage input.
fn xorshift(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

#[test]
fn garbage_and_corrupted_replies_never_panic() {
    let mut state = 0x1234_5678;
    let mut errors = 0;
    // Random bytes, some with a plausible length field up front.
    for round in 0..2000 {
        let len = (xorshift(&mut state) % 96) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
        if round % 2 == 0 && len >= 4 {
            buf[..4].copy_from_slice(&(len as u32).to_ne_bytes());
        }
        if parse(&buf).any(|m| m.is_err()) {
            errors += 1;
        }
    }
    // Real replies with bytes overwritten at random places.
    for reply in all_replies() {
        for _ in 0..200 {
            let mut buf = reply.clone();
            for _ in 0..4 {
                let at = xorshift(&mut state) as usize % buf.len();
                buf[at] = xorshift(&mut state) as u8;
            }
            // Whatever comes out, iteration ends.
            assert!(parse(&buf).take(10_000).count() < 10_000);
        }
    }
    assert!(errors > 1000, "most random buffers are malformed: {errors}");
}

/// A message of type `kind` with `flags`, sequence 9, port 77 and `payload`.
fn message(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&9u32.to_ne_bytes());
    m.extend_from_slice(&77u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m
}

#[test]
fn parses_a_capped_error_with_extack() {
    // Layout from Documentation/userspace-api/netlink/intro.rst: with
    // NETLINK_CAP_ACK the echoed request is cut to its header (NLM_F_CAPPED).
    let mut payload = Vec::new();
    payload.extend_from_slice(&(-libc::EINVAL).to_ne_bytes());
    payload.extend_from_slice(&message(RTM_NEWADDR, 0x605, &[])); // echoed header
    let text = b"ipv4: Invalid prefix length\0";
    push_attr(&mut payload, NLMSGERR_ATTR_MSG, text);
    push_attr(&mut payload, 2, &40u32.to_ne_bytes()); // NLMSGERR_ATTR_OFFS
    let buf = message(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload);
    let msgs = parse_all(&buf).unwrap();
    assert_eq!(msgs[0].header.seq, 9);
    assert_eq!(msgs[0].header.port, 77);
    assert_eq!(
        msgs[0].payload,
        Payload::Error {
            errno: libc::EINVAL,
            extack: Some("ipv4: Invalid prefix length".to_string()),
        }
    );
}

#[test]
fn an_ack_may_carry_tlvs_and_is_still_an_ack() {
    let mut payload = Vec::new();
    payload.extend_from_slice(&0i32.to_ne_bytes());
    payload.extend_from_slice(&message(RTM_DELADDR, 0x5, &[]));
    push_attr(&mut payload, NLMSGERR_ATTR_MSG, b"a warning\0");
    let buf = message(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload);
    assert_eq!(parse_all(&buf).unwrap()[0].payload, Payload::Ack);
}

#[test]
fn a_failed_dump_ends_in_done_with_an_error() {
    let mut payload = Vec::new();
    payload.extend_from_slice(&(-libc::ENODEV).to_ne_bytes());
    push_attr(&mut payload, NLMSGERR_ATTR_MSG, b"Device not found\0");
    let failed = message(NLMSG_DONE, 0x2 | NLM_F_ACK_TLVS, &payload);
    assert_eq!(
        parse_all(&failed).unwrap()[0].payload,
        Payload::Error {
            errno: libc::ENODEV,
            extack: Some("Device not found".to_string()),
        }
    );
    let ok = message(NLMSG_DONE, 0x2, &0i32.to_ne_bytes());
    assert_eq!(parse_all(&ok).unwrap()[0].payload, Payload::Done);
    let bare = message(NLMSG_DONE, 0x2, &[]);
    assert_eq!(parse_all(&bare).unwrap()[0].payload, Payload::Done);
}

#[test]
fn malformed_payloads_are_errors() {
    // An error too short for its error code.
    let e = parse_all(&message(NLMSG_ERROR, 0, &[1, 2])).unwrap_err();
    assert_eq!((e.offset, e.what), (16, "truncated NLMSG_ERROR payload"));
    // An address message too short for its ifaddrmsg.
    let e = parse_all(&message(RTM_NEWADDR, 0, &[2, 24, 0])).unwrap_err();
    assert_eq!(e.what, "truncated ifaddrmsg");
    // An IPv4 address attribute of 3 bytes.
    let mut p = vec![FAMILY_INET, 24, 0, 0, 3, 0, 0, 0];
    push_attr(&mut p, IFA_LOCAL, &[192, 0, 2]);
    let e = parse_all(&message(RTM_NEWADDR, 0, &p)).unwrap_err();
    assert_eq!(
        (e.offset, e.what),
        (24, "address attribute of the wrong length")
    );
    // An attribute claiming more bytes than there are.
    let mut p = vec![FAMILY_INET, 24, 0, 0, 3, 0, 0, 0];
    p.extend_from_slice(&[0x40, 0, 2, 0, 192, 0, 2, 50]);
    let e = parse_all(&message(RTM_NEWADDR, 0, &p)).unwrap_err();
    assert_eq!((e.offset, e.what), (24, "attribute length out of bounds"));
    // A link message too short for its ifinfomsg.
    let e = parse_all(&message(RTM_NEWLINK, 0, &[0; 12])).unwrap_err();
    assert_eq!(e.what, "truncated ifinfomsg");
    // A message length below the header size.
    let mut m = message(NLMSG_DONE, 0, &[0; 4]);
    m[..4].copy_from_slice(&8u32.to_ne_bytes());
    assert_eq!(
        parse_all(&m).unwrap_err().what,
        "message length shorter than its header"
    );
}

#[test]
fn address_prefers_ifa_local_over_the_peer_address() {
    // A point-to-point address: IFA_LOCAL is ours, IFA_ADDRESS the peer's.
    let mut p = vec![FAMILY_INET, 32, 0, 0, 4, 0, 0, 0];
    push_attr(&mut p, IFA_ADDRESS, &[198, 51, 100, 1]);
    push_attr(&mut p, IFA_LOCAL, &[192, 0, 2, 50]);
    let msgs = parse_all(&message(RTM_NEWADDR, 0, &p)).unwrap();
    let Payload::NewAddr(a) = msgs[0].payload else {
        panic!("{:?}", msgs[0]);
    };
    assert_eq!(a.address, Some(VIP4));
    assert_eq!((a.ifindex, a.prefix_len), (4, 32));
    // IPv6 without a peer: IFA_ADDRESS only.
    let mut p = vec![FAMILY_INET6, 64, 0, 0, 4, 0, 0, 0];
    let IpAddr::V6(v6) = VIP6 else { unreachable!() };
    push_attr(&mut p, IFA_ADDRESS, &v6.octets());
    let msgs = parse_all(&message(RTM_NEWADDR, 0, &p)).unwrap();
    let Payload::NewAddr(a) = msgs[0].payload else {
        panic!("{:?}", msgs[0]);
    };
    assert_eq!(a.address, Some(VIP6));
}

#[test]
fn other_message_types_are_other() {
    let msgs = parse_all(&message(RTM_NEWADDR + 4, 0, &[0; 12])).unwrap();
    assert_eq!(msgs[0].payload, Payload::Other);
    let msgs = parse_all(&message(NLMSG_NOOP, 0, &[])).unwrap();
    assert_eq!(msgs[0].payload, Payload::Other);
}

#[test]
fn kernel_skips_stale_replies() {
    // Unprivileged and read-only: looks up the loopback interface of the current
    // namespace (always index 1) and sends nothing on any network.
    let mut k = Kernel::open_without_announce().unwrap();
    // A request whose reply nobody reads: an ENODEV error that waits in the socket
    // ahead of the next reply. Taking it for the next reply would report "no lo".
    let stale = k.next_seq();
    link_request(&mut k.req, stale, "nosuch-vipd0").unwrap();
    k.nl.send_to_kernel(&k.req).unwrap();
    let lo = k.link("lo").unwrap().expect("every namespace has lo");
    assert_eq!(lo.index, 1);
    assert_eq!(lo.mac, [0; 6], "loopback's hardware address is all zero");
    assert_eq!(k.link("nosuch-vipd0").unwrap(), None);
    // No announcements from an interface without a hardware address, nor without
    // the AF_PACKET socket.
    let vip = Vip {
        addr: VIP4,
        prefix_len: 24,
    };
    let err = k.announce(&lo, vip, AnnounceMode::Request).unwrap_err();
    assert_eq!(err.errno, libc::EOPNOTSUPP);
    let with_mac = LinkInfo {
        mac: ETH0_MAC,
        ..lo
    };
    let err = k
        .announce(&with_mac, vip, AnnounceMode::Request)
        .unwrap_err();
    assert_eq!(err.errno, libc::EBADF);
}

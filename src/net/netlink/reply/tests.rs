//! Replies parsed from the captures, and from messages made up to reach the cases
//! iproute2 did not meet.

use super::*;
use crate::net::netlink::captures::*;
use crate::net::netlink::request::{begin, finish, push_attr};

#[test]
fn parses_the_ack_and_errors_with_and_without_extack() {
    let error = |errno, text: Option<&str>| Payload::Error {
        errno,
        extack: text.map(String::from),
    };
    for (capture, fd, request, want) in [
        (ADD, 3, "RTM_NEWADDR", Payload::Ack),
        (
            ADD_EEXIST,
            3,
            "RTM_NEWADDR",
            error(libc::EEXIST, Some("ipv4: Address already assigned")),
        ),
        (
            DEL_ABSENT,
            3,
            "RTM_DELADDR",
            error(libc::EADDRNOTAVAIL, Some("ipv4: Address not found")),
        ),
        (LINK_ABSENT, 4, "RTM_GETLINK", error(libc::ENODEV, None)),
        (
            ROUTE_GET_UNREACHABLE,
            3,
            "RTM_GETROUTE",
            error(libc::ENETUNREACH, None),
        ),
    ] {
        let c = calls(capture);
        let req = call(&c, &format!("sendmsg({fd}"), request);
        let reply = call(&c, &format!("recvmsg({fd}"), "NLMSG_ERROR");
        let msgs = parse_all(&reply.bytes).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].payload, want);
        assert_eq!(msgs[0].header.seq, seq_of(&req.bytes));
        assert_eq!(msgs[0].header.kind, NLMSG_ERROR);
    }
    // The command's output shows the same text (iproute2 adds a full stop).
    assert!(ADD_EEXIST.contains("Error: ipv4: Address already assigned."));
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

/// The addresses among `msgs`.
fn addrs_in(msgs: &[Message]) -> Vec<AddrMsg> {
    msgs.iter()
        .filter_map(|m| match m.payload {
            Payload::NewAddr(a) => Some(a),
            _ => None,
        })
        .collect()
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
    let addrs = addrs_in(&msgs);
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
    let addrs = addrs_in(&dump_reply(SHOW));
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
        SHOW_FLAGS,
        ROUTE_GET,
        ROUTE_GET_UNREACHABLE,
        ROUTE6_GET,
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
    begin(&mut m, kind, flags, 9);
    m[12..16].copy_from_slice(&77u32.to_ne_bytes());
    m.extend_from_slice(payload);
    finish(&mut m);
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
    // A route message too short for its rtmsg (12 bytes with its flags).
    let e = parse_all(&message(RTM_NEWROUTE, 0, &[2, 32, 0, 0, 254, 0, 0, 1])).unwrap_err();
    assert_eq!((e.offset, e.what), (16, "truncated rtmsg"));
    // An IPv6 preferred source of 4 bytes.
    let mut p = vec![FAMILY_INET6, 128, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0];
    push_attr(&mut p, RTA_PREFSRC, &[192, 0, 2, 50]);
    let e = parse_all(&message(RTM_NEWROUTE, 0, &p)).unwrap_err();
    assert_eq!(
        (e.offset, e.what),
        (28, "address attribute of the wrong length")
    );
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
    let [a] = addrs_in(&parse_all(&message(RTM_NEWADDR, 0, &p)).unwrap())[..] else {
        panic!("not one address");
    };
    assert_eq!(a.address, Some(VIP4));
    assert_eq!((a.ifindex, a.prefix_len), (4, 32));
    // IPv6 without a peer: IFA_ADDRESS only.
    let mut p = vec![FAMILY_INET6, 64, 0, 0, 4, 0, 0, 0];
    let IpAddr::V6(v6) = VIP6 else { unreachable!() };
    push_attr(&mut p, IFA_ADDRESS, &v6.octets());
    let [a] = addrs_in(&parse_all(&message(RTM_NEWADDR, 0, &p)).unwrap())[..] else {
        panic!("not one address");
    };
    assert_eq!(a.address, Some(VIP6));
}

#[test]
fn other_message_types_are_other() {
    // RTM_NEWNEIGH.
    let msgs = parse_all(&message(28, 0, &[0; 12])).unwrap();
    assert_eq!(msgs[0].payload, Payload::Other);
    let msgs = parse_all(&message(NLMSG_NOOP, 0, &[])).unwrap();
    assert_eq!(msgs[0].payload, Payload::Other);
}

#[test]
fn only_a_known_address_changed_in_place_is_no_change() {
    use crate::net::Vip;
    use crate::net::netlink::request::{AddrChange, AddrOptions, addr_request};
    // A notification has the layout of the request that caused it.
    let note = |change, addr, prefix_len| {
        let mut buf = Vec::new();
        let vip = Vip { addr, prefix_len };
        let o = AddrOptions::default();
        let lifetime = Some(std::time::Duration::from_secs(10));
        addr_request(&mut buf, change, 0, 7, vip, &o, lifetime);
        buf
    };
    let refreshed = note(AddrChange::Refresh, VIP4, 24);
    assert!(only_known_addresses(&refreshed, 7, VIP4, &[24, 32]));
    let two = [refreshed.clone(), note(AddrChange::Refresh, VIP4, 32)].concat();
    assert!(only_known_addresses(&two, 7, VIP4, &[24, 32]));
    // Another prefix length, interface or address; a deletion; garbage; nothing.
    assert!(!only_known_addresses(&refreshed, 7, VIP4, &[32]));
    assert!(!only_known_addresses(&refreshed, 8, VIP4, &[24]));
    assert!(!only_known_addresses(&refreshed, 7, VIP6, &[24]));
    let deleted = [refreshed.clone(), note(AddrChange::Del, VIP4, 24)].concat();
    assert!(!only_known_addresses(&deleted, 7, VIP4, &[24]));
    assert!(!only_known_addresses(&refreshed[..20], 7, VIP4, &[24]));
    assert!(!only_known_addresses(&[], 7, VIP4, &[24]));
    let link = message(RTM_NEWLINK, 0, &[0; 16]);
    assert!(!only_known_addresses(&link, 7, VIP4, &[24]));
}

/// The one route in the reply to the `RTM_GETROUTE` of `capture`.
fn route_reply(capture: &str) -> RouteMsg {
    let c = calls(capture);
    let req = call(&c, "sendmsg(3", "RTM_GETROUTE");
    let reply = call(&c, "recvmsg(3", "RTM_NEWROUTE");
    let msgs = parse_all(&reply.bytes).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].header.seq, seq_of(&req.bytes));
    let Payload::NewRoute(route) = msgs[0].payload else {
        panic!("not a route: {:?}", msgs[0]);
    };
    route
}

#[test]
fn parses_the_route_of_ip_route_get() {
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    let route = route_reply(ROUTE_GET);
    let want = RouteMsg {
        family: FAMILY_INET,
        dst_len: 32,
        kind: 1, // RTN_UNICAST
        table: 254,
        dst: ip("203.0.113.7"),
        prefsrc: ip("192.0.2.50"),
        gateway: ip("192.0.2.1"),
        oif: Some(eth0_index(ROUTE_GET)),
    };
    assert_eq!(route, want);
    assert!(ROUTE_GET.contains("203.0.113.7 via 192.0.2.1 dev eth0 src 192.0.2.50 "));
    let route = route_reply(ROUTE6_GET);
    let want = RouteMsg {
        family: FAMILY_INET6,
        dst_len: 128,
        kind: 1,
        table: 254,
        dst: ip("2001:db8:9::7"),
        prefsrc: ip("2001:db8::50"),
        gateway: ip("2001:db8::1"),
        oif: Some(eth0_index(ROUTE6_GET)),
    };
    assert_eq!(route, want);
    assert!(ROUTE6_GET.contains("via 2001:db8::1 dev eth0 src 2001:db8::50 "));
}

#[test]
fn a_route_without_attributes_has_none_and_rta_table_wins() {
    // A route to a destination on a link with no address to send from: the kernel
    // leaves out RTA_PREFSRC.
    let bare = [FAMILY_INET, 32, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0];
    let msgs = parse_all(&message(RTM_NEWROUTE, 0, &bare)).unwrap();
    let Payload::NewRoute(route) = msgs[0].payload else {
        panic!("not a route: {:?}", msgs[0]);
    };
    assert_eq!(
        (route.prefsrc, route.gateway, route.oif),
        (None, None, None)
    );
    assert_eq!(route.table, 254);
    // A table above 255 has RT_TABLE_COMPAT (252) in the header and itself in RTA_TABLE.
    let mut p = vec![FAMILY_INET, 32, 0, 0, 252, 0, 0, 1, 0, 0, 0, 0];
    push_attr(&mut p, RTA_TABLE, &1000u32.to_ne_bytes());
    let msgs = parse_all(&message(RTM_NEWROUTE, 0, &p)).unwrap();
    let Payload::NewRoute(route) = msgs[0].payload else {
        panic!("not a route: {:?}", msgs[0]);
    };
    assert_eq!(route.table, 1000);
}

#[test]
fn parses_the_flags_and_scope_of_addresses_as_ip_shows_them() {
    let c = calls(SHOW_FLAGS);
    let seq = seq_of(&call(&c, "sendto(3", "RTM_GETADDR").bytes);
    let msgs: Vec<Message> = c
        .iter()
        .filter(|c| c.line.starts_with("recvmsg(3"))
        .flat_map(|c| parse_all(&c.bytes).unwrap())
        .filter(|m| m.header.seq == seq)
        .collect();
    let addrs = addrs_in(&msgs);
    assert_eq!(addrs.len(), 8, "{addrs:?}");
    let eth1 = eth1_index(SHOW_FLAGS);
    assert!(addrs.iter().all(|a| a.ifindex == eth1));
    // Each address has the scope and the flags `ip` printed for it.
    let output: Vec<&str> = SHOW_FLAGS
        .lines()
        .filter(|l| l.starts_with("    inet"))
        .collect();
    assert_eq!(output.len(), addrs.len());
    for (a, line) in addrs.iter().zip(&output) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ip = if a.family == FAMILY_INET {
            "inet"
        } else {
            "inet6"
        };
        let shown = format!("{}/{}", a.address.unwrap(), a.prefix_len);
        assert_eq!(words[..2], [ip, shown.as_str()], "{line}");
        let scope = match a.scope {
            0 => "global",
            253 => "link",
            other => panic!("scope {other} in {line}"),
        };
        assert_eq!(words[2..4], ["scope", scope], "{line}");
        for (bit, word) in [
            (IFA_F_SECONDARY, "secondary"),
            (IFA_F_NODAD, "nodad"),
            (IFA_F_DEPRECATED, "deprecated"),
            (IFA_F_TENTATIVE, "tentative"),
            (IFA_F_DADFAILED, "dadfailed"),
        ] {
            assert_eq!(a.flags & bit != 0, words.contains(&word), "{word}: {line}");
        }
    }
    // The kernel sent every flag in IFA_FLAGS too: nodad (0x02) with deprecated.
    let deprecated = addrs.iter().find(|a| a.flags & IFA_F_DEPRECATED != 0);
    assert_eq!(
        deprecated.map(|a| a.flags & IFA_F_NODAD),
        Some(IFA_F_NODAD),
        "{addrs:?}"
    );
}

#[test]
fn address_flags_come_from_the_header_without_ifa_flags() {
    // Kernels before 3.14 send no IFA_FLAGS; the header's 8 bits are all there is.
    let mut p = vec![FAMILY_INET, 24, IFA_F_SECONDARY as u8, 253, 4, 0, 0, 0];
    push_attr(&mut p, IFA_LOCAL, &[192, 0, 2, 51]);
    let [a] = addrs_in(&parse_all(&message(RTM_NEWADDR, 0, &p)).unwrap())[..] else {
        panic!("not one address");
    };
    assert_eq!((a.flags, a.scope), (IFA_F_SECONDARY, 253));
    // With IFA_FLAGS, it has them all (the header keeps the low 8 bits).
    push_attr(&mut p, IFA_FLAGS, &(IFA_F_SECONDARY | 0x800).to_ne_bytes());
    let [a] = addrs_in(&parse_all(&message(RTM_NEWADDR, 0, &p)).unwrap())[..] else {
        panic!("not one address");
    };
    assert_eq!(a.flags, IFA_F_SECONDARY | 0x800);
}

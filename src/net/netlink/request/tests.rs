//! Requests built here against the requests iproute2 sent in the captures.

use super::*;
use crate::net::netlink::captures::*;
use crate::net::netlink::reply::{Payload, u32_at};

/// The request for `addr/prefix_len` on interface `ifindex`, with sequence number 0.
fn built_with(change: AddrChange, ifindex: u32, addr: IpAddr, len: u8, o: &AddrOptions) -> Vec<u8> {
    let mut buf = Vec::new();
    let vip = Vip {
        addr,
        prefix_len: len,
    };
    addr_request(&mut buf, change, 0, ifindex, vip, o, None);
    buf
}

/// The same without options: a plain `ip addr add|del`.
fn built_addr(change: AddrChange, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Vec<u8> {
    built_with(change, ifindex, addr, prefix_len, &AddrOptions::default())
}

#[test]
fn plain_requests_match_ip_addr_add_and_del() {
    for (capture, kind, change, addr, len) in [
        (ADD, "RTM_NEWADDR", AddrChange::Add, VIP4, 24),
        (DEL, "RTM_DELADDR", AddrChange::Del, VIP4, 24),
        (ADD6, "RTM_NEWADDR", AddrChange::Add, VIP6, 64),
        (DEL6, "RTM_DELADDR", AddrChange::Del, VIP6, 64),
    ] {
        let c = calls(capture);
        let captured = &call(&c, "sendmsg(3", kind).bytes;
        let built = built_addr(change, eth0_index(capture), addr, len);
        assert_eq!(built, masked(captured), "{kind} {addr}/{len}");
        assert_eq!(built.len(), captured.len());
    }
    // The IPv6 add was made with `ip -6 addr add ... nodad`.
    let c = calls(ADD6);
    assert!(
        call(&c, "sendmsg(3", "RTM_NEWADDR")
            .line
            .contains("IFA_F_NODAD")
    );
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
    // The default is a plain add: no label, no flag.
    let plain = AddrOptions::default();
    assert_eq!((plain.label(), plain.noprefixroute), (None, false));
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
    let (vip, plain) = (
        Vip {
            addr: VIP4,
            prefix_len: 24,
        },
        AddrOptions::default(),
    );
    addr_request(&mut buf, AddrChange::Add, 0xdead_beef, 7, vip, &plain, None);
    assert_eq!(seq_of(&buf), 0xdead_beef);
    addr_request(&mut buf, AddrChange::Del, 5, 7, vip, &plain, None);
    assert_eq!(seq_of(&buf), 5);
    assert_eq!(buf.len(), 40, "the old request is cleared, not appended to");
}

/// The data of attribute `kind` in an address request (after the 24-byte headers).
fn attr_of(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attr_after(buf, NLMSG_HDRLEN + 8, kind)
}

/// The data of attribute `kind` among the attributes from `at` on.
fn attr_after(buf: &[u8], mut at: usize, kind: u16) -> Option<&[u8]> {
    while at + 4 <= buf.len() {
        let len = usize::from(u16::from_ne_bytes([buf[at], buf[at + 1]]));
        let typ = u16::from_ne_bytes([buf[at + 2], buf[at + 3]]);
        if typ == kind {
            return buf.get(at + 4..at + len);
        }
        at += align4(len.max(4));
    }
    None
}

fn with_lifetime(change: AddrChange, vip: Vip, o: &AddrOptions, ms: Option<u64>) -> Vec<u8> {
    let mut buf = Vec::new();
    addr_request(
        &mut buf,
        change,
        9,
        3,
        vip,
        o,
        ms.map(Duration::from_millis),
    );
    buf
}

#[test]
fn lifetimes_are_whole_seconds_rounded_up() {
    let secs = |ms| lifetime_secs(Duration::from_millis(ms));
    assert_eq!(secs(10_000), 10);
    assert_eq!(secs(10_001), 11);
    assert_eq!(secs(2_000), 2);
    assert_eq!(
        secs(30),
        1,
        "never 0: the kernel refuses a valid lifetime of 0"
    );
    assert_eq!(secs(0), 1);
    let huge = lifetime_secs(Duration::from_secs(u64::MAX));
    assert_eq!(huge, u32::MAX - 1, "never INFINITY_LIFE_TIME by accident");
}

#[test]
fn an_add_with_a_lifetime_carries_ifa_cacheinfo() {
    let vip = Vip {
        addr: VIP4,
        prefix_len: 24,
    };
    let plain = AddrOptions::default();
    let add = with_lifetime(AddrChange::Add, vip, &plain, Some(10_001));
    // The plain add, then IFA_CACHEINFO: 4 + 16 bytes.
    let without = with_lifetime(AddrChange::Add, vip, &plain, None);
    assert_eq!(add.len(), without.len() + 20);
    assert_eq!(u32_at(&add, 0), Some(add.len() as u32));
    assert_eq!(add[NLMSG_HDRLEN..without.len()], without[NLMSG_HDRLEN..]);
    let flags = u16::from_ne_bytes([add[6], add[7]]);
    assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE);
    // struct ifa_cacheinfo { ifa_prefered, ifa_valid, cstamp, tstamp }: preferred =
    // valid = 11 s (10001 ms rounded up).
    let info = attr_of(&add, IFA_CACHEINFO).expect("IFA_CACHEINFO");
    assert_eq!(info.len(), 16);
    let words: Vec<u32> = (0..4).filter_map(|i| u32_at(info, 4 * i)).collect();
    assert_eq!(words, [11, 11, 0, 0]);
    assert_eq!(
        attr_of(&without, IFA_CACHEINFO),
        None,
        "permanent: as ip addr add"
    );
    // A delete never carries a lifetime.
    let del = with_lifetime(AddrChange::Del, vip, &plain, Some(10_000));
    assert_eq!(attr_of(&del, IFA_CACHEINFO), None);
}

#[test]
fn a_refresh_is_the_add_with_replace_instead_of_excl() {
    let options = AddrOptions {
        noprefixroute: true,
        ..AddrOptions::default()
    };
    for (addr, len) in [(VIP4, 24), (VIP6, 64)] {
        let vip = Vip {
            addr,
            prefix_len: len,
        };
        for o in [AddrOptions::default(), options.clone()] {
            let add = with_lifetime(AddrChange::Add, vip, &o, Some(10_000));
            let refresh = with_lifetime(AddrChange::Refresh, vip, &o, Some(10_000));
            let flags = u16::from_ne_bytes([refresh[6], refresh[7]]);
            assert_eq!(
                flags,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
                "{addr}"
            );
            // Everything else, prefix length and IFA_FLAGS included, as the add.
            assert_eq!(add[..6], refresh[..6]);
            assert_eq!(add[8..], refresh[8..], "{addr} {o:?}");
            assert_eq!(refresh[NLMSG_HDRLEN + 1], len);
            let info = attr_of(&refresh, IFA_CACHEINFO).unwrap();
            assert_eq!((u32_at(info, 0), u32_at(info, 4)), (Some(10), Some(10)));
        }
        // A permanent refresh says so: INFINITY_LIFE_TIME, not "no change".
        let forever = with_lifetime(AddrChange::Refresh, vip, &options, None);
        let info = attr_of(&forever, IFA_CACHEINFO).unwrap();
        assert_eq!(u32_at(info, 0), Some(INFINITY_LIFE_TIME));
        assert_eq!(u32_at(info, 4), Some(INFINITY_LIFE_TIME));
        // IPv6 keeps nodad, noprefixroute goes to IFA_FLAGS, as in the add.
        let flags_attr = attr_of(&forever, IFA_FLAGS).unwrap();
        let want = IFA_F_NOPREFIXROUTE | if addr.is_ipv6() { IFA_F_NODAD } else { 0 };
        assert_eq!(u32_at(flags_attr, 0), Some(want));
    }
}

#[test]
fn lifetime_requests_match_ip_addr_add_and_replace_with_valid_lft() {
    let plain = AddrOptions::default();
    // (capture, change, address, prefix length, lifetime in ms)
    for (capture, change, addr, len, ms) in [
        (ADD_LIFETIME, AddrChange::Add, VIP4, 24, 10_001),
        (REPLACE_LIFETIME, AddrChange::Refresh, VIP4, 24, 10_000),
        (REPLACE6_LIFETIME, AddrChange::Refresh, VIP6, 64, 9_001),
    ] {
        let c = calls(capture);
        let captured = &call(&c, "sendmsg(3", "RTM_NEWADDR").bytes;
        let vip = Vip {
            addr,
            prefix_len: len,
        };
        let mut built = Vec::new();
        let lifetime = Some(Duration::from_millis(ms));
        addr_request(
            &mut built,
            change,
            0,
            eth0_index(capture),
            vip,
            &plain,
            lifetime,
        );
        assert_eq!(built, masked(captured), "{change:?} {addr}/{len}");
    }
}

#[test]
fn route_requests_match_ip_route_get() {
    let v4: IpAddr = "203.0.113.7".parse().unwrap();
    let v6: IpAddr = "2001:db8:9::7".parse().unwrap();
    for (capture, dst, flags) in [
        (ROUTE_GET, v4, "rtm_flags=RTM_F_LOOKUP_TABLE"),
        (ROUTE_GET_UNREACHABLE, v4, "rtm_flags=RTM_F_LOOKUP_TABLE"),
        (ROUTE6_GET, v6, "rtm_flags=0"),
    ] {
        let c = calls(capture);
        let sent = call(&c, "sendmsg(3", "RTM_GETROUTE");
        // One request, not a dump.
        assert!(
            sent.line.contains("nlmsg_flags=NLM_F_REQUEST,"),
            "{}",
            sent.line
        );
        assert!(sent.line.contains(flags), "{}", sent.line);
        let mut built = Vec::new();
        route_request(&mut built, 0, dst);
        assert_eq!(built, masked(&sent.bytes), "{dst}");
        assert_eq!(built.len(), sent.bytes.len());
        // The one attribute, after the 12-byte rtmsg, is the destination.
        let octets: &[u8] = match &dst {
            IpAddr::V4(a) => &a.octets(),
            IpAddr::V6(a) => &a.octets(),
        };
        assert_eq!(attr_after(&built, NLMSG_HDRLEN + 12, RTA_DST), Some(octets));
    }
    // Built again into the same buffer with another sequence number.
    let mut buf = Vec::new();
    route_request(&mut buf, 7, v6);
    route_request(&mut buf, 8, v4);
    assert_eq!(u32_at(&buf, 8), Some(8));
    assert_eq!(buf.len(), NLMSG_HDRLEN + 12 + 8);
}

//! The iproute2 captures the unit tests compare requests with and parse replies
//! from, made by `tests/fixtures/netlink/capture.sh` (strace hex dumps of what `ip`
//! sent and received in a throwaway network namespace), and the reader of their
//! hex dumps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::reply::{Message, ParseError, parse, u32_at};

pub(super) const ADD: &str = include_str!("../../../tests/fixtures/netlink/ip-addr-add.strace");
pub(super) const ADD_EEXIST: &str =
    include_str!("../../../tests/fixtures/netlink/ip-addr-add-eexist.strace");
pub(super) const DEL: &str = include_str!("../../../tests/fixtures/netlink/ip-addr-del.strace");
pub(super) const DEL_ABSENT: &str =
    include_str!("../../../tests/fixtures/netlink/ip-addr-del-absent.strace");
pub(super) const ADD6: &str = include_str!("../../../tests/fixtures/netlink/ip-6-addr-add.strace");
pub(super) const DEL6: &str = include_str!("../../../tests/fixtures/netlink/ip-6-addr-del.strace");
pub(super) const ADD_LABEL: &str =
    include_str!("../../../tests/fixtures/netlink/ip-addr-add-label-noprefixroute.strace");
pub(super) const DEL_LABEL: &str =
    include_str!("../../../tests/fixtures/netlink/ip-addr-del-label.strace");
pub(super) const ADD6_NOPREFIXROUTE: &str =
    include_str!("../../../tests/fixtures/netlink/ip-6-addr-add-noprefixroute.strace");
pub(super) const ADD_LIFETIME: &str =
    include_str!("../../../tests/fixtures/netlink/ip-addr-add-lifetime.strace");
pub(super) const REPLACE_LIFETIME: &str =
    include_str!("../../../tests/fixtures/netlink/ip-addr-replace-lifetime.strace");
pub(super) const REPLACE6_LIFETIME: &str =
    include_str!("../../../tests/fixtures/netlink/ip-6-addr-replace-lifetime.strace");
pub(super) const LINK: &str = include_str!("../../../tests/fixtures/netlink/ip-link-show.strace");
pub(super) const LINK_ABSENT: &str =
    include_str!("../../../tests/fixtures/netlink/ip-link-show-absent.strace");
pub(super) const SHOW: &str = include_str!("../../../tests/fixtures/netlink/ip-4-addr-show.strace");
pub(super) const SHOW_DEV: &str =
    include_str!("../../../tests/fixtures/netlink/ip-4-addr-show-dev.strace");
pub(super) const SHOW_FLAGS: &str =
    include_str!("../../../tests/fixtures/netlink/ip-addr-show-dev-flags.strace");
pub(super) const ROUTE_GET: &str =
    include_str!("../../../tests/fixtures/netlink/ip-route-get.strace");
pub(super) const ROUTE_GET_UNREACHABLE: &str =
    include_str!("../../../tests/fixtures/netlink/ip-route-get-unreachable.strace");
pub(super) const ROUTE6_GET: &str =
    include_str!("../../../tests/fixtures/netlink/ip-6-route-get.strace");

pub(super) const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));
pub(super) const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x50));
/// The MAC capture.sh gives eth0.
pub(super) const ETH0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// One system call from a capture: strace's decoded line and the bytes of its
/// hex dump (`-e write=all` / `-e read=all`).
#[derive(Debug)]
pub(super) struct Call {
    pub(super) line: String,
    pub(super) bytes: Vec<u8>,
}

/// The calls in a capture that carried data, in order.
pub(super) fn calls(capture: &str) -> Vec<Call> {
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
pub(super) fn call<'a>(calls: &'a [Call], call: &str, needle: &str) -> &'a Call {
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
pub(super) fn eth0_index(capture: &str) -> u32 {
    index_in(capture, "eth0")
}

/// eth1's interface index at capture time, from the capture's header (newer
/// captures only).
pub(super) fn eth1_index(capture: &str) -> u32 {
    index_in(capture, "eth1")
}

fn index_in(capture: &str, dev: &str) -> u32 {
    let prefix = format!("# {dev} ifindex: ");
    capture
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("capture header names {dev}'s index"))
        .trim()
        .parse()
        .expect("ifindex")
}

/// The first message of `bytes` (`nlmsg_len` long) with its sequence number and
/// port id zeroed.
pub(super) fn masked(bytes: &[u8]) -> Vec<u8> {
    let len = u32_at(bytes, 0).expect("nlmsg_len") as usize;
    let mut m = bytes[..len].to_vec();
    m[8..16].fill(0);
    m
}

pub(super) fn seq_of(bytes: &[u8]) -> u32 {
    u32_at(bytes, 8).expect("seq")
}

pub(super) fn parse_all(buf: &[u8]) -> Result<Vec<Message>, ParseError> {
    parse(buf).collect()
}

#[test]
fn fixture_reader_reads_whole_dumps() {
    let c = calls(ADD);
    let req = call(&c, "sendmsg(3", "RTM_NEWADDR");
    assert_eq!(req.bytes.len(), 40, "strace says 40 bytes in buffer 0");
    assert!(req.line.contains("nlmsg_len=40"));
}

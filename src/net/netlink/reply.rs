//! Parsing the kernel's rtnetlink messages: acks, errors with their extended-ack text,
//! addresses, links and routes. Never panics on truncated or garbage input.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

/// A `nlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    /// The port id the message is addressed to (for replies: ours).
    pub port: u32,
}

/// An address from an `RTM_NEWADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrMsg {
    pub family: u8,
    pub prefix_len: u8,
    pub ifindex: u32,
    /// The interface's own address: `IFA_LOCAL` when present (on point-to-point
    /// links `IFA_ADDRESS` is the peer's, for IPv4 and IPv6 alike), else
    /// `IFA_ADDRESS`; `None` when neither has the family's length.
    pub address: Option<IpAddr>,
    /// `IFA_F_*` flags: `IFA_FLAGS` when present (it has them all), else the
    /// header's 8 bits.
    pub flags: u32,
    /// `RT_SCOPE_*`: 0 (universe) for a global address, 253 link, 254 host.
    pub scope: u8,
}

/// A route from an `RTM_NEWROUTE`, such as the kernel's answer to an
/// `RTM_GETROUTE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMsg {
    pub family: u8,
    pub dst_len: u8,
    /// `rtm_type`: `RTN_UNICAST` (1), `RTN_LOCAL` (2), `RTN_UNREACHABLE` (7)…
    pub kind: u8,
    /// `RTA_TABLE` when present (it holds tables above 255), else `rtm_table`.
    pub table: u32,
    /// `RTA_DST`.
    pub dst: Option<IpAddr>,
    /// `RTA_PREFSRC`: the source address the kernel would use.
    pub prefsrc: Option<IpAddr>,
    /// `RTA_GATEWAY`: the next hop, absent for a destination on the link.
    pub gateway: Option<IpAddr>,
    /// `RTA_OIF`: the outgoing interface's index.
    pub oif: Option<u32>,
}

/// An interface from an `RTM_NEWLINK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkMsg {
    pub index: u32,
    /// `IFF_*` flags.
    pub flags: u32,
    /// `IFLA_ADDRESS` when it is 6 bytes long (Ethernet and alike).
    pub mac: Option<[u8; 6]>,
    /// `IFLA_CARRIER_CHANGES`: how often the carrier went up or down (0 if absent).
    pub carrier_changes: u32,
}

impl LinkMsg {
    /// Administratively up and with carrier (`IFF_UP` and `IFF_LOWER_UP`).
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0 && self.flags & IFF_LOWER_UP != 0
    }
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `NLMSG_ERROR` with error 0: the request succeeded.
    Ack,
    /// `NLMSG_ERROR` with a negative error, or an `NLMSG_DONE` that ends a failed
    /// dump: the positive errno and the kernel's `NLMSGERR_ATTR_MSG` text, if any.
    Error {
        errno: i32,
        extack: Option<String>,
    },
    /// `NLMSG_DONE`: the end of a multipart (dump) reply.
    Done,
    NewAddr(AddrMsg),
    NewLink(LinkMsg),
    NewRoute(RouteMsg),
    /// `RTM_DELADDR`, as multicast to listeners of `RTMGRP_IPV4_IFADDR` and alike.
    DelAddr(AddrMsg),
    /// Any other type (`NLMSG_NOOP`, `NLMSG_OVERRUN`, other rtnetlink messages).
    Other,
}

/// One parsed netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payload: Payload,
}

/// Malformed reply bytes: what was wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// Offset in the buffer of the message (or attribute) at fault.
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for ParseError {}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    s.try_into().ok().map(u16::from_ne_bytes)
}

pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    s.try_into().ok().map(u32::from_ne_bytes)
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    u32_at(b, at).map(|v| v as i32)
}

/// Iterates over the attributes in `b`, yielding `(type, data, offset in b)`;
/// a malformed attribute ends the iteration with an error.
struct Attrs<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8], usize), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.b.len() {
            return None;
        }
        let at = self.at;
        let bad = |what| Some(Err(ParseError { offset: at, what }));
        let (Some(len), Some(kind)) = (u16_at(self.b, at), u16_at(self.b, at + 2)) else {
            self.at = self.b.len();
            return bad("truncated attribute header");
        };
        let len = usize::from(len);
        let Some(data) = (if len >= 4 {
            self.b.get(at + 4..at + len)
        } else {
            None
        }) else {
            self.at = self.b.len();
            return bad("attribute length out of bounds");
        };
        self.at = at.saturating_add(align4(len));
        Some(Ok((kind & NLA_TYPE_MASK, data, at)))
    }
}

fn attrs(b: &[u8]) -> Attrs<'_> {
    Attrs { b, at: 0 }
}

/// Shifts a `ParseError` from payload-relative to buffer-relative offsets.
fn shift(e: ParseError, by: usize) -> ParseError {
    ParseError {
        offset: e.offset.saturating_add(by),
        what: e.what,
    }
}

/// The text of `NLMSGERR_ATTR_MSG` in extended-ack attributes `tlvs`, up to its NUL.
/// Malformed attributes just end the search: the errno is what matters.
fn extack_msg(tlvs: &[u8]) -> Option<String> {
    for attr in attrs(tlvs) {
        let Ok((kind, data, _)) = attr else {
            return None;
        };
        if kind == NLMSGERR_ATTR_MSG {
            let text = data.split(|&c| c == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    None
}

/// The failure a netlink error code (a negative errno) reports, with the
/// `NLMSGERR_ATTR_MSG` text of the extended-ack attributes found in `p` from
/// `tlvs_at` on when `flags` has `NLM_F_ACK_TLVS`.
fn failure(error: i32, flags: u16, p: &[u8], tlvs_at: usize) -> Payload {
    let errno = match error.checked_neg() {
        Some(e) if e > 0 => e,
        _ => libc::EPROTO,
    };
    let extack = if flags & NLM_F_ACK_TLVS != 0 {
        p.get(tlvs_at..).and_then(extack_msg)
    } else {
        None
    };
    Payload::Error { errno, extack }
}

/// Parses an `NLMSG_ERROR` payload: `i32 error`, the echoed request's header (and
/// its payload unless `NLM_F_CAPPED`), then with `NLM_F_ACK_TLVS` the extended ack.
fn parse_error(flags: u16, p: &[u8]) -> Option<Payload> {
    let error = i32_at(p, 0)?;
    if error == 0 {
        return Some(Payload::Ack);
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32_at(p, 4).map_or(NLMSG_HDRLEN, |l| align4(l as usize))
    };
    Some(failure(error, flags, p, 4usize.saturating_add(echoed)))
}

/// Parses an `NLMSG_DONE` payload: `i32 error` (0 on success; older kernels may send
/// nothing), then with `NLM_F_ACK_TLVS` the extended ack.
fn parse_done(flags: u16, p: &[u8]) -> Payload {
    match i32_at(p, 0) {
        Some(error) if error != 0 => failure(error, flags, p, 4),
        _ => Payload::Done,
    }
}

/// The address of `family` in an attribute's `data`; `None` when `data` does not
/// have the family's length (or the family is neither IPv4 nor IPv6).
fn ip_of(family: u8, data: &[u8]) -> Option<IpAddr> {
    match family {
        FAMILY_INET => <[u8; 4]>::try_from(data)
            .ok()
            .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        FAMILY_INET6 => <[u8; 16]>::try_from(data)
            .ok()
            .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        _ => None,
    }
}

/// The address in attribute `data` (at `at` in the payload) of an IPv4 or IPv6
/// message; an error when it has the wrong length. Other families' addresses are
/// `None`.
fn address_attr(family: u8, data: &[u8], at: usize) -> Result<Option<IpAddr>, ParseError> {
    let ip = ip_of(family, data);
    if ip.is_none() && matches!(family, FAMILY_INET | FAMILY_INET6) {
        return Err(ParseError {
            offset: at,
            what: "address attribute of the wrong length",
        });
    }
    Ok(ip)
}

/// Parses an `RTM_NEWADDR` payload: `ifaddrmsg` then attributes.
fn parse_addr(p: &[u8]) -> Result<AddrMsg, ParseError> {
    let err = |what| ParseError { offset: 0, what };
    let (Some(&[family, prefix_len, flags, scope]), Some(ifindex)) = (p.get(..4), u32_at(p, 4))
    else {
        return Err(err("truncated ifaddrmsg"));
    };
    let (mut local, mut address, mut all_flags) = (None, None, None);
    let rest = p.get(8..).unwrap_or_default();
    for attr in attrs(rest) {
        let (kind, data, at) = attr.map_err(|e| shift(e, 8))?;
        match kind {
            IFA_LOCAL => local = address_attr(family, data, at + 8)?,
            IFA_ADDRESS => address = address_attr(family, data, at + 8)?,
            IFA_FLAGS => all_flags = u32_at(data, 0),
            _ => {}
        }
    }
    Ok(AddrMsg {
        family,
        prefix_len,
        ifindex,
        address: local.or(address),
        flags: all_flags.unwrap_or(u32::from(flags)),
        scope,
    })
}

/// Parses an `RTM_NEWROUTE` payload: `rtmsg` then attributes.
fn parse_route(p: &[u8]) -> Result<RouteMsg, ParseError> {
    // family, dst_len, src_len, tos, table, protocol, scope, type, then u32 flags.
    let (Some(&[family, dst_len, _, _, table, _, _, kind]), true) = (p.get(..8), p.len() >= 12)
    else {
        return Err(ParseError {
            offset: 0,
            what: "truncated rtmsg",
        });
    };
    let mut route = RouteMsg {
        family,
        dst_len,
        kind,
        table: u32::from(table),
        dst: None,
        prefsrc: None,
        gateway: None,
        oif: None,
    };
    for attr in attrs(p.get(12..).unwrap_or_default()) {
        let (attr_kind, data, at) = attr.map_err(|e| shift(e, 12))?;
        match attr_kind {
            RTA_DST => route.dst = address_attr(family, data, at + 12)?,
            RTA_PREFSRC => route.prefsrc = address_attr(family, data, at + 12)?,
            RTA_GATEWAY => route.gateway = address_attr(family, data, at + 12)?,
            RTA_OIF => route.oif = u32_at(data, 0),
            RTA_TABLE => route.table = u32_at(data, 0).unwrap_or(route.table),
            _ => {}
        }
    }
    Ok(route)
}

/// Parses an `RTM_NEWLINK` payload: `ifinfomsg` then attributes.
fn parse_link(p: &[u8]) -> Result<LinkMsg, ParseError> {
    let (Some(index), Some(flags), true) = (u32_at(p, 4), u32_at(p, 8), p.len() >= 16) else {
        return Err(ParseError {
            offset: 0,
            what: "truncated ifinfomsg",
        });
    };
    let mut mac = None;
    let mut carrier_changes = 0;
    for attr in attrs(p.get(16..).unwrap_or_default()) {
        let (kind, data, _) = attr.map_err(|e| shift(e, 16))?;
        match kind {
            IFLA_ADDRESS => mac = <[u8; 6]>::try_from(data).ok(),
            IFLA_CARRIER_CHANGES => carrier_changes = u32_at(data, 0).unwrap_or(0),
            _ => {}
        }
    }
    Ok(LinkMsg {
        index,
        flags,
        mac,
        carrier_changes,
    })
}

/// Parses one message's payload.
fn parse_payload(header: &Header, p: &[u8]) -> Result<Payload, ParseError> {
    let truncated = |what| ParseError { offset: 0, what };
    Ok(match header.kind {
        NLMSG_ERROR => {
            parse_error(header.flags, p).ok_or(truncated("truncated NLMSG_ERROR payload"))?
        }
        NLMSG_DONE => parse_done(header.flags, p),
        RTM_NEWADDR => Payload::NewAddr(parse_addr(p)?),
        RTM_DELADDR => Payload::DelAddr(parse_addr(p)?),
        RTM_NEWLINK => Payload::NewLink(parse_link(p)?),
        RTM_NEWROUTE => Payload::NewRoute(parse_route(p)?),
        NLMSG_NOOP => Payload::Other,
        _ => Payload::Other,
    })
}

/// The `nlmsghdr` at `at` in `b`, if `b` holds one there.
fn header_at(b: &[u8], at: usize) -> Option<Header> {
    Some(Header {
        len: u32_at(b, at)?,
        kind: u16_at(b, at + 4)?,
        flags: u16_at(b, at + 6)?,
        seq: u32_at(b, at + 8)?,
        port: u32_at(b, at + 12)?,
    })
}

/// An iterator over the messages in a received buffer; see [`parse`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.at;
        if at >= self.buf.len() {
            return None;
        }
        // Whatever happens, a malformed message ends the iteration.
        self.at = self.buf.len();
        let bad = |what| Some(Err(ParseError { offset: at, what }));
        let Some(header) = header_at(self.buf, at) else {
            return bad("truncated message header");
        };
        let len = header.len as usize;
        if len < NLMSG_HDRLEN {
            return bad("message length shorter than its header");
        }
        let Some(payload) = at
            .checked_add(len)
            .and_then(|end| self.buf.get(at + NLMSG_HDRLEN..end))
        else {
            return bad("message length beyond the buffer");
        };
        match parse_payload(&header, payload) {
            Ok(payload) => {
                self.at = at.saturating_add(align4(len));
                Some(Ok(Message { header, payload }))
            }
            Err(e) => Some(Err(shift(e, at + NLMSG_HDRLEN))),
        }
    }
}

/// The messages in `buf` (one received datagram holds one or more), in order. The
/// iterator ends after the first malformed message, yielding its error.
pub fn parse(buf: &[u8]) -> Messages<'_> {
    Messages { buf, at: 0 }
}

/// The prefix lengths (sorted, without repeats) at which `addr` sits on interface
/// `ifindex` among `addrs`: an exact match of interface and address, never of text
/// (vip-manager's substring match took 110.0.0.1 for 10.0.0.1).
pub fn prefixes_of(addrs: &[AddrMsg], ifindex: u32, addr: IpAddr) -> Vec<u8> {
    let mut prefixes: Vec<u8> = addrs
        .iter()
        .filter(|a| a.ifindex == ifindex && a.address == Some(addr))
        .map(|a| a.prefix_len)
        .collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    prefixes
}

/// Whether every message of a notification `datagram` (one at least) is an
/// `RTM_NEWADDR` for `addr` on interface `ifindex` at one of `prefixes`, the prefix
/// lengths the last reading found. The kernel sends one whenever an address's
/// lifetime or flags change, vipd's own refreshes included, and such a change
/// alters neither the link nor the prefix lengths the address has. Anything else
/// (another message, address or prefix length, a datagram that does not parse) may
/// be a change.
pub fn only_known_addresses(datagram: &[u8], ifindex: u32, addr: IpAddr, prefixes: &[u8]) -> bool {
    let mut messages = 0;
    let known = parse(datagram).all(|msg| {
        messages += 1;
        match msg.map(|m| m.payload) {
            Ok(Payload::NewAddr(a)) => {
                (a.ifindex, a.address) == (ifindex, Some(addr)) && prefixes.contains(&a.prefix_len)
            }
            _ => false,
        }
    });
    known && messages > 0
}

#[cfg(test)]
mod tests;

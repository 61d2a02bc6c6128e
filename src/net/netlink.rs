//! rtnetlink over a raw `NETLINK_ROUTE` socket: request builders and a reply parser
//! (pure functions on bytes), and [`Kernel`], the [`AddrBackend`] that sends them.
//!
//! The builders produce what iproute2 sends (the unit tests compare them with
//! captures of `ip addr add/del`, see `tests/fixtures/netlink/`); the parser never
//! panics on truncated or garbage input, it returns a [`ParseError`].
//!
//! Message layout (all integers in host byte order, every item padded to 4 bytes):
//! `nlmsghdr{len u32, type u16, flags u16, seq u32, pid u32}`, then a family header
//! (`ifaddrmsg` 8 bytes, `ifinfomsg` 16 bytes, or for `NLMSG_ERROR` an `i32` error
//! and the echoed request), then attributes `{len u16, type u16, data}`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::arp::PacketSocket;
use super::sys::Socket;
use super::{AddrBackend, AnnounceMode, LinkInfo, NetError, Vip};

// Values from <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_addr.h>,
// <linux/if_link.h> and <linux/if.h>, typed as they sit in the messages.
/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;

const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
/// In an `NLMSG_ERROR`: the echoed request is cut to its header (`NETLINK_CAP_ACK`).
const NLM_F_CAPPED: u16 = 0x100;
/// In an `NLMSG_ERROR` or `NLMSG_DONE`: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
/// All of an address's flags as a `u32` (`ifaddrmsg.ifa_flags` has only 8 bits).
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const IFA_F_NOPREFIXROUTE: u32 = 0x200;
const RT_SCOPE_UNIVERSE: u8 = 0;

const IFLA_ADDRESS: u16 = 1;
const IFLA_CARRIER_CHANGES: u16 = 35;
const IFLA_IFNAME: u16 = 3;
const IFLA_EXT_MASK: u16 = 29;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
/// Interface names are at most `IFNAMSIZ - 1` = 15 bytes.
const IFNAMSIZ: usize = 16;

/// The multicast groups of link and address changes (`RTMGRP_LINK`,
/// `RTMGRP_IPV4_IFADDR`, `RTMGRP_IPV6_IFADDR`), as a bind mask.
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;

/// Attribute type bits that are flags, not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `AF_INET` as it sits in `ifaddrmsg.ifa_family`.
pub const FAMILY_INET: u8 = libc::AF_INET as u8;
/// `AF_INET6` as it sits in `ifaddrmsg.ifa_family`.
pub const FAMILY_INET6: u8 = libc::AF_INET6 as u8;
/// `AF_UNSPEC`: a dump of every family.
pub const FAMILY_UNSPEC: u8 = libc::AF_UNSPEC as u8;

/// How long [`Kernel`] waits for the kernel's reply to one request.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// Receive buffer size: the kernel never builds a netlink datagram larger than
/// 32 KiB for a reader offering this much (`netlink_recvmsg`, `netlink_dump`).
const RECV_BUF_LEN: usize = 32 * 1024;
/// At most this many queued notifications are read in one look; more means
/// "changed" all the same.
const MAX_EVENTS_PER_LOOK: usize = 64;
/// A dump marked `NLM_F_DUMP_INTR` (the table changed during it) is repeated up to
/// this many times in all.
const DUMP_ATTEMPTS: usize = 3;

fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// The `ifaddrmsg` family of an address.
pub fn family_of(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => FAMILY_INET,
        IpAddr::V6(_) => FAMILY_INET6,
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// Starts a message in `buf` (cleared first): a header whose length
/// [`finish`] fills in, with port id 0 (the kernel fills in the sender's).
fn begin(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    buf.clear();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

/// Appends one attribute, padded to 4 bytes. Only called with short, fixed-size
/// data (addresses, a 15-byte name), so its length always fits a `u16`.
fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = (4 + data.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

/// Writes the message length into the header [`begin`] wrote.
fn finish(buf: &mut [u8]) {
    let len = u32::try_from(buf.len()).unwrap_or(u32::MAX).to_ne_bytes();
    if let Some(field) = buf.get_mut(..4) {
        field.copy_from_slice(&len);
    }
}

/// Appends an `ifaddrmsg`.
fn push_ifaddrmsg(buf: &mut Vec<u8>, family: u8, prefix_len: u8, flags: u8, ifindex: u32) {
    buf.extend_from_slice(&[family, prefix_len, flags, RT_SCOPE_UNIVERSE]);
    buf.extend_from_slice(&ifindex.to_ne_bytes());
}

/// Whether an address request adds or removes the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrChange {
    /// `RTM_NEWADDR` with `NLM_F_REQUEST|NLM_F_ACK|NLM_F_EXCL|NLM_F_CREATE`
    /// (`ip addr add`): an address already there fails with `EEXIST`.
    Add,
    /// `RTM_DELADDR` with `NLM_F_REQUEST|NLM_F_ACK` (`ip addr del`): an absent
    /// address fails with `EADDRNOTAVAIL`.
    Del,
}

/// Optional properties of an added address: an IPv4 label and `noprefixroute`.
/// The default is neither (a plain `ip addr add`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrOptions {
    label: Option<String>,
    /// `IFA_F_NOPREFIXROUTE` (`ip addr add ... noprefixroute`, Linux 3.14 for IPv6,
    /// 4.4 for IPv4): the kernel adds no route for the address's subnet, so a VIP
    /// with a prefix length below 32/128 brings no extra subnet route with it.
    pub noprefixroute: bool,
}

impl AddrOptions {
    /// With the label `label` (`ip addr add ... label LABEL`): shown by `ip addr` and
    /// `ifconfig` as the address's interface alias, e.g. `eth0:vip`. 1 to 15 bytes
    /// without NUL, like an interface name. Linux keeps labels for IPv4 addresses
    /// only; for an IPv6 VIP it is not sent.
    pub fn with_label(mut self, label: &str) -> Result<AddrOptions, BadLinkName> {
        let bytes = label.as_bytes();
        if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
            return Err(BadLinkName);
        }
        self.label = Some(label.to_string());
        Ok(self)
    }

    /// The label, if one is set.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
}

/// Builds into `buf` the request `ip addr add|del ADDR/PREFIX_LEN dev IFINDEX`
/// sends: `ifaddrmsg{family, prefix_len, flags, RT_SCOPE_UNIVERSE, ifindex}` then
/// `IFA_LOCAL` and `IFA_ADDRESS`, both = `addr`. For an IPv6 add the header flags
/// carry `IFA_F_NODAD` (as `ip -6 addr add ... nodad`), so the VIP is usable at once
/// instead of tentative during duplicate address detection.
pub fn addr_request(
    buf: &mut Vec<u8>,
    change: AddrChange,
    seq: u32,
    ifindex: u32,
    addr: IpAddr,
    prefix_len: u8,
) {
    addr_request_with(
        buf,
        change,
        seq,
        ifindex,
        addr,
        prefix_len,
        &AddrOptions::default(),
    );
}

/// Like [`addr_request`], with `options` for an add, in iproute2's layout
/// (`ip addr add ... label LABEL noprefixroute`): `IFA_LOCAL`, then `IFA_LABEL` (IPv4
/// only), then, when a flag does not fit the header's 8 bits, every flag in
/// `IFA_FLAGS` (and none in the header), then `IFA_ADDRESS`. A delete ignores
/// `options`: the kernel finds the address by address and prefix length alone.
pub fn addr_request_with(
    buf: &mut Vec<u8>,
    change: AddrChange,
    seq: u32,
    ifindex: u32,
    addr: IpAddr,
    prefix_len: u8,
    options: &AddrOptions,
) {
    let (kind, flags) = match change {
        AddrChange::Add => (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
        ),
        AddrChange::Del => (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK),
    };
    let adding = change == AddrChange::Add;
    let mut ifa_flags = 0;
    if adding && addr.is_ipv6() {
        ifa_flags |= IFA_F_NODAD;
    }
    if adding && options.noprefixroute {
        ifa_flags |= IFA_F_NOPREFIXROUTE;
    }
    let (header_flags, flags_attr) = match u8::try_from(ifa_flags) {
        Ok(fits) => (fits, None),
        Err(_) => (0, Some(ifa_flags)),
    };
    let label = match (adding, addr, options.label()) {
        (true, IpAddr::V4(_), Some(label)) => Some(label),
        _ => None,
    };
    let octets: &[u8] = match &addr {
        IpAddr::V4(a) => &a.octets(),
        IpAddr::V6(a) => &a.octets(),
    };
    begin(buf, kind, flags, seq);
    push_ifaddrmsg(buf, family_of(addr), prefix_len, header_flags, ifindex);
    push_attr(buf, IFA_LOCAL, octets);
    if let Some(label) = label {
        // At most 15 bytes (checked by `with_label`) and a NUL.
        let mut name_z = label.as_bytes().to_vec();
        name_z.push(0);
        push_attr(buf, IFA_LABEL, &name_z);
    }
    if let Some(all) = flags_attr {
        push_attr(buf, IFA_FLAGS, &all.to_ne_bytes());
    }
    push_attr(buf, IFA_ADDRESS, octets);
    finish(buf);
}

/// Builds into `buf` an `RTM_GETADDR` dump request (`NLM_F_REQUEST|NLM_F_DUMP`) for
/// addresses of `family` ([`FAMILY_INET`], [`FAMILY_INET6`] or [`FAMILY_UNSPEC`]) on
/// interface `ifindex` (0: all), as `ip -4 addr show dev NAME` sends it. The kernel
/// filters by interface only on sockets with `NETLINK_GET_STRICT_CHK`; callers
/// filter the replies themselves.
pub fn addr_dump_request(buf: &mut Vec<u8>, seq: u32, family: u8, ifindex: u32) {
    begin(buf, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
    push_ifaddrmsg(buf, family, 0, 0, ifindex);
    finish(buf);
}

/// Why an interface name cannot be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLinkName;

impl fmt::Display for BadLinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interface names are 1 to 15 bytes without NUL")
    }
}

/// Builds into `buf` an `RTM_GETLINK` request (`NLM_F_REQUEST`) for the interface
/// called `name`: an empty `ifinfomsg`, `IFLA_EXT_MASK` = `RTEXT_FILTER_SKIP_STATS`
/// and `IFLA_IFNAME`. The kernel answers with one `RTM_NEWLINK`, or an error
/// (`ENODEV` when there is no such interface). iproute2 also sets
/// `RTEXT_FILTER_VF`; vipd needs no SR-IOV details, which can make the reply large.
pub fn link_request(buf: &mut Vec<u8>, seq: u32, name: &str) -> Result<(), BadLinkName> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
        return Err(BadLinkName);
    }
    begin(buf, RTM_GETLINK, NLM_F_REQUEST, seq);
    buf.extend_from_slice(&[0u8; 16]); // ifinfomsg: AF_UNSPEC, type, index, flags, change
    push_attr(buf, IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    let mut name_z = [0u8; IFNAMSIZ];
    name_z[..bytes.len()].copy_from_slice(bytes);
    push_attr(buf, IFLA_IFNAME, &name_z[..=bytes.len()]);
    finish(buf);
    Ok(())
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

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

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
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

/// Turns a netlink error code (negative errno) into a positive errno.
fn errno_of(error: i32) -> i32 {
    match error.checked_neg() {
        Some(e) if e > 0 => e,
        _ => libc::EPROTO,
    }
}

/// Parses an `NLMSG_ERROR` payload: `i32 error`, the echoed request's header (and
/// its payload unless `NLM_F_CAPPED`), then with `NLM_F_ACK_TLVS` the extended ack.
fn parse_error(flags: u16, p: &[u8]) -> Option<Payload> {
    let error = i32_at(p, 0)?;
    if error == 0 {
        return Some(Payload::Ack);
    }
    let mut extack = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        let echoed = if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            u32_at(p, 4).map_or(NLMSG_HDRLEN, |l| align4(l as usize))
        };
        if let Some(tlvs) = p.get(4usize.saturating_add(echoed)..) {
            extack = extack_msg(tlvs);
        }
    }
    Some(Payload::Error {
        errno: errno_of(error),
        extack,
    })
}

/// Parses an `NLMSG_DONE` payload: `i32 error` (0 on success; older kernels may send
/// nothing), then with `NLM_F_ACK_TLVS` the extended ack.
fn parse_done(flags: u16, p: &[u8]) -> Payload {
    match i32_at(p, 0) {
        Some(error) if error != 0 => {
            let extack = if flags & NLM_F_ACK_TLVS != 0 {
                p.get(4..).and_then(extack_msg)
            } else {
                None
            };
            Payload::Error {
                errno: errno_of(error),
                extack,
            }
        }
        _ => Payload::Done,
    }
}

/// Parses an `RTM_NEWADDR` payload: `ifaddrmsg` then attributes.
fn parse_addr(p: &[u8]) -> Result<AddrMsg, ParseError> {
    let err = |what| ParseError { offset: 0, what };
    let (Some(&[family, prefix_len, _flags, _scope]), Some(ifindex)) = (p.get(..4), u32_at(p, 4))
    else {
        return Err(err("truncated ifaddrmsg"));
    };
    let (mut local, mut address) = (None, None);
    let rest = p.get(8..).unwrap_or_default();
    for attr in attrs(rest) {
        let (kind, data, at) = attr.map_err(|e| shift(e, 8))?;
        let ip = match (family, data.len()) {
            (FAMILY_INET, 4) => <[u8; 4]>::try_from(data)
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            (FAMILY_INET6, 16) => <[u8; 16]>::try_from(data)
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        };
        match kind {
            IFA_LOCAL | IFA_ADDRESS
                if ip.is_none() && matches!(family, FAMILY_INET | FAMILY_INET6) =>
            {
                return Err(ParseError {
                    offset: at + 8,
                    what: "address attribute of the wrong length",
                });
            }
            IFA_LOCAL => local = ip,
            IFA_ADDRESS => address = ip,
            _ => {}
        }
    }
    Ok(AddrMsg {
        family,
        prefix_len,
        ifindex,
        address: local.or(address),
    })
}

/// Parses an `RTM_NEWLINK` payload: `ifinfomsg` then attributes.
fn parse_link(p: &[u8]) -> Result<LinkMsg, ParseError> {
    let (Some(index), Some(flags)) = (u32_at(p, 4), u32_at(p, 8)) else {
        return Err(ParseError {
            offset: 0,
            what: "truncated ifinfomsg",
        });
    };
    if p.len() < 16 {
        return Err(ParseError {
            offset: 0,
            what: "truncated ifinfomsg",
        });
    }
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
        NLMSG_NOOP => Payload::Other,
        _ => Payload::Other,
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
        let (Some(len), Some(kind), Some(flags), Some(seq), Some(port)) = (
            u32_at(self.buf, at),
            u16_at(self.buf, at + 4),
            u16_at(self.buf, at + 6),
            u32_at(self.buf, at + 8),
            u32_at(self.buf, at + 12),
        ) else {
            return bad("truncated message header");
        };
        let header = Header {
            len,
            kind,
            flags,
            seq,
            port,
        };
        let len = len as usize;
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

// ---------------------------------------------------------------------------
// The kernel backend
// ---------------------------------------------------------------------------

/// The real kernel backend: one `NETLINK_ROUTE` socket for addresses and links, one
/// `AF_PACKET` socket for announcements, both opened once by [`Kernel::open`] (so
/// privileges could be dropped afterwards). One request is in flight at a time;
/// replies are matched by sequence number and port id, and anything else on the
/// socket (such as a late reply to a request that timed out) is skipped.
///
/// The kernel is asked (an `RTM_GETLINK`, an `RTM_GETADDR` dump) only when its state
/// may have changed: a second socket listens to the kernel's notifications of link
/// and address changes (`RTMGRP_LINK`, `RTMGRP_*_IFADDR`), and [`AddrBackend::link`]
/// and [`AddrBackend::vip_prefixes`] answer from their last reading while none has
/// arrived since. The kernel notifies every change of an interface's flags,
/// carrier, hardware address, name or existence and every address added or
/// removed (by anyone, vipd included), so such an answer is what a fresh request
/// would return. A lost notification (the queue overflowed, or the kernel could
/// not allocate one: the socket then reports `ENOBUFS`), any other error, and a
/// socket that could not be opened all mean "read it". This is how the idle loop
/// gets by without its two most expensive requests (the kernel fills a whole
/// `ifinfomsg` with statistics for `RTM_GETLINK`), and still sees a change made
/// between two turns at the next one.
#[derive(Debug)]
pub struct Kernel {
    nl: Socket,
    /// Our netlink port id, assigned by the kernel at bind.
    port: u32,
    seq: u32,
    packet: Option<PacketSocket>,
    /// Non-blocking, subscribed to link and address changes; `None` if it could not
    /// be opened.
    events: Option<Socket>,
    /// The last `link()` answer and the name it is for; dropped when a change may
    /// have happened since.
    link_cache: Option<(String, Option<LinkInfo>)>,
    /// The last `vip_prefixes()` answer and the interface and address it is for;
    /// dropped likewise.
    addr_cache: Option<(u32, IpAddr, Vec<u8>)>,
    /// How many `RTM_GETLINK` requests and address dumps were sent, see
    /// [`Kernel::reads`].
    link_reads: u64,
    addr_reads: u64,
    /// Label and `noprefixroute` for addresses [`AddrBackend::add`] adds.
    addr_options: AddrOptions,
    req: Vec<u8>,
    buf: Vec<u8>,
}

/// What ends the reply to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// An ACK (`NLMSG_ERROR` with error 0).
    Ack,
    /// `NLMSG_DONE` (dumps).
    Done,
    /// The first message in reply (a `RTM_GETLINK` for one interface).
    Reply,
}

impl Kernel {
    /// Opens the netlink socket (receive timeout [`REPLY_TIMEOUT`], extended acks
    /// and strict checking where the kernel has them) and the `AF_PACKET` socket.
    /// Needs `CAP_NET_RAW` for the latter; changing addresses later needs
    /// `CAP_NET_ADMIN`.
    pub fn open() -> Result<Kernel, NetError> {
        let mut kernel = Kernel::open_without_announce()?;
        let packet = PacketSocket::open()
            .map_err(|e| NetError::io("open AF_PACKET socket for announcements", &e))?;
        kernel.packet = Some(packet);
        Ok(kernel)
    }

    /// Like [`Kernel::open`] without the `AF_PACKET` socket, for callers that never
    /// announce (listing needs no privileges); [`AddrBackend::announce`] then fails
    /// with `EBADF`.
    pub fn open_without_announce() -> Result<Kernel, NetError> {
        let op = "open netlink socket";
        let nl = Socket::new(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
            .map_err(|e| NetError::io(op, &e))?;
        nl.set_recv_timeout(REPLY_TIMEOUT)
            .map_err(|e| NetError::io(op, &e))?;
        // Optional: kernels before 4.12 (EXT_ACK), 4.2 (CAP_ACK) and 4.20
        // (GET_STRICT_CHK) lack them, and everything works without.
        for opt in [
            libc::NETLINK_EXT_ACK,
            libc::NETLINK_CAP_ACK,
            libc::NETLINK_GET_STRICT_CHK,
        ] {
            if let Err(e) = nl.set_int_option(libc::SOL_NETLINK, opt, 1) {
                log::debug!("netlink socket option {opt} not set: {e}");
            }
        }
        nl.bind_netlink(0).map_err(|e| NetError::io(op, &e))?;
        let port = nl.netlink_port().map_err(|e| NetError::io(op, &e))?;
        let events = open_change_events()
            .map_err(|e| log::debug!("no change notifications, reading the kernel every turn: {e}"))
            .ok();
        Ok(Kernel {
            nl,
            port,
            seq: 0,
            packet: None,
            events,
            link_cache: None,
            addr_cache: None,
            link_reads: 0,
            addr_reads: 0,
            addr_options: AddrOptions::default(),
            req: Vec::with_capacity(64),
            buf: vec![0; RECV_BUF_LEN],
        })
    }

    /// Every address of `family` ([`FAMILY_INET`], [`FAMILY_INET6`],
    /// [`FAMILY_UNSPEC`]) on interface `ifindex`, or on all interfaces when
    /// `ifindex` is 0 (one `RTM_GETADDR` dump).
    pub fn addresses(&mut self, family: u8, ifindex: u32) -> Result<Vec<AddrMsg>, NetError> {
        let op = || {
            if ifindex == 0 {
                "list addresses".to_string()
            } else {
                format!("list addresses on interface #{ifindex}")
            }
        };
        for _ in 0..DUMP_ATTEMPTS {
            let mut found = Vec::new();
            let seq = self.next_seq();
            addr_dump_request(&mut self.req, seq, family, ifindex);
            let result = self.transact(Until::Done, op, |payload| {
                if let Payload::NewAddr(a) = payload {
                    if (ifindex == 0 || a.ifindex == ifindex)
                        && (family == FAMILY_UNSPEC || a.family == family)
                    {
                        found.push(*a);
                    }
                }
            });
            match result {
                Ok(false) => return Ok(found),
                Ok(true) => log::debug!("{}: dump interrupted by a change, repeating", op()),
                // With strict checking the kernel refuses a dump for a missing
                // interface; without, the dump is just empty. Answer alike.
                Err(e) if e.errno == libc::ENODEV && ifindex != 0 => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        Err(NetError {
            op: op(),
            errno: libc::EAGAIN,
            extack: Some(format!(
                "the address table changed during each of {DUMP_ATTEMPTS} dumps"
            )),
        })
    }

    /// Sets the label and `noprefixroute` that every later [`AddrBackend::add`] uses
    /// (none by default).
    pub fn set_addr_options(&mut self, options: AddrOptions) {
        self.addr_options = options;
    }

    /// How many times [`AddrBackend::link`] and [`AddrBackend::vip_prefixes`] asked
    /// the kernel (`RTM_GETLINK`, `RTM_GETADDR`) rather than answering from their
    /// last reading.
    pub fn reads(&self) -> (u64, u64) {
        (self.link_reads, self.addr_reads)
    }

    /// `RTM_GETLINK` for the interface called `name`; `None` if there is none.
    fn read_link(&mut self, name: &str) -> Result<Option<LinkInfo>, NetError> {
        let op = || format!("look up interface {name:?}");
        self.link_reads += 1;
        let seq = self.next_seq();
        link_request(&mut self.req, seq, name).map_err(|e| NetError {
            op: op(),
            errno: libc::EINVAL,
            extack: Some(e.to_string()),
        })?;
        let mut link = None;
        let result = self.transact(Until::Reply, op, |payload| {
            if let Payload::NewLink(l) = payload {
                link = Some(*l);
            }
        });
        match result {
            Ok(_) => {}
            Err(e) if e.errno == libc::ENODEV => return Ok(None),
            Err(e) => return Err(e),
        }
        let Some(link) = link else {
            return Err(NetError {
                op: op(),
                errno: libc::EBADMSG,
                extack: Some("the kernel's reply is not RTM_NEWLINK".to_string()),
            });
        };
        Ok(Some(LinkInfo {
            index: link.index,
            up: link.is_up(),
            mac: link.mac.unwrap_or([0; 6]),
            carrier_changes: link.carrier_changes,
        }))
    }

    /// Reads (and drops) every queued change notification; any at all, or any
    /// doubt, drops the last answers about the link and the addresses.
    fn look_for_changes(&mut self) {
        if self.may_have_changed() {
            self.link_cache = None;
            self.addr_cache = None;
        }
    }

    fn may_have_changed(&mut self) -> bool {
        let Some(events) = &self.events else {
            return true;
        };
        let mut changed = false;
        for _ in 0..MAX_EVENTS_PER_LOOK {
            match events.recv_netlink(&mut self.buf) {
                // From the kernel: RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR.
                Ok((_, 0)) => changed = true,
                // Nothing but the kernel sends to this socket; ignore anyone else.
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return changed,
                // Notifications were lost; read on to empty the queue.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => changed = true,
                Err(e) => {
                    log::debug!("reading change notifications: {e}");
                    return true;
                }
            }
        }
        // More than the bound queued: changed all the same.
        true
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends the request in `self.req` and reads the replies to it until `until`,
    /// passing each data message's payload to `each`. Returns whether a dump was
    /// marked interrupted. The wait is bounded: each receive times out after
    /// [`REPLY_TIMEOUT`] and the whole exchange gives up after twice that.
    fn transact(
        &mut self,
        until: Until,
        op: impl Fn() -> String,
        mut each: impl FnMut(&Payload),
    ) -> Result<bool, NetError> {
        self.nl
            .send_to_kernel(&self.req)
            .map_err(|e| NetError::io(op(), &e))?;
        let deadline = Instant::now() + 2 * REPLY_TIMEOUT;
        let mut interrupted = false;
        loop {
            if Instant::now() > deadline {
                return Err(timed_out(op()));
            }
            let (len, sender) = match self.nl.recv_netlink(&mut self.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Err(timed_out(op()));
                }
                Err(e) => return Err(NetError::io(op(), &e)),
            };
            if sender != 0 {
                log::debug!("{}: ignoring a datagram from netlink port {sender}", op());
                continue;
            }
            let Some(datagram) = self.buf.get(..len) else {
                return Err(NetError {
                    op: op(),
                    errno: libc::EMSGSIZE,
                    extack: Some(format!(
                        "reply of {len} bytes exceeds the {RECV_BUF_LEN}-byte buffer"
                    )),
                });
            };
            for msg in parse(datagram) {
                let msg = msg.map_err(|e| NetError {
                    op: op(),
                    errno: libc::EBADMSG,
                    extack: Some(format!("malformed netlink reply: {e}")),
                })?;
                if msg.header.seq != self.seq || msg.header.port != self.port {
                    log::debug!(
                        "{}: skipping a stale reply (seq {}, port {})",
                        op(),
                        msg.header.seq,
                        msg.header.port
                    );
                    continue;
                }
                interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
                match msg.payload {
                    Payload::Error { errno, extack } => {
                        return Err(NetError {
                            op: op(),
                            errno,
                            extack,
                        });
                    }
                    Payload::Ack if until == Until::Ack => return Ok(interrupted),
                    Payload::Done if until == Until::Done => return Ok(interrupted),
                    Payload::Ack | Payload::Done => {
                        return Err(NetError {
                            op: op(),
                            errno: libc::EBADMSG,
                            extack: Some("unexpected end of the reply".to_string()),
                        });
                    }
                    ref data => {
                        each(data);
                        if until == Until::Reply {
                            return Ok(interrupted);
                        }
                    }
                }
            }
        }
    }
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

fn timed_out(op: String) -> NetError {
    NetError {
        op,
        errno: libc::ETIMEDOUT,
        extack: Some(format!(
            "no reply from the kernel within {} ms",
            REPLY_TIMEOUT.as_millis()
        )),
    }
}

/// A non-blocking `NETLINK_ROUTE` socket subscribed to link and address
/// notifications.
fn open_change_events() -> std::io::Result<Socket> {
    let events = Socket::new(
        libc::AF_NETLINK,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        libc::NETLINK_ROUTE,
    )?;
    events.bind_netlink_groups(0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)?;
    Ok(events)
}

impl AddrBackend for Kernel {
    fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, NetError> {
        // Subscribed before the first reading, so any change after a reading is
        // queued by the time of the next look.
        self.look_for_changes();
        if let Some((cached_name, info)) = &self.link_cache {
            if cached_name == name {
                return Ok(*info);
            }
        }
        self.link_cache = None;
        let info = self.read_link(name)?;
        self.link_cache = Some((name.to_string(), info));
        Ok(info)
    }

    fn vip_prefixes(&mut self, ifindex: u32, addr: IpAddr) -> Result<Vec<u8>, NetError> {
        self.look_for_changes();
        if let Some((cached_index, cached_addr, prefixes)) = &self.addr_cache {
            if *cached_index == ifindex && *cached_addr == addr {
                return Ok(prefixes.clone());
            }
        }
        self.addr_cache = None;
        self.addr_reads += 1;
        let addrs = self.addresses(family_of(addr), ifindex)?;
        let prefixes = prefixes_of(&addrs, ifindex, addr);
        self.addr_cache = Some((ifindex, addr, prefixes.clone()));
        Ok(prefixes)
    }

    fn add(&mut self, ifindex: u32, vip: Vip) -> Result<(), NetError> {
        // Its notification will say so too; whatever happens, read afresh.
        self.addr_cache = None;
        let seq = self.next_seq();
        addr_request_with(
            &mut self.req,
            AddrChange::Add,
            seq,
            ifindex,
            vip.addr,
            vip.prefix_len,
            &self.addr_options,
        );
        let op = || format!("add {vip} on interface #{ifindex}");
        match self.transact(Until::Ack, op, |_| {}) {
            Ok(_) => Ok(()),
            Err(e) if e.errno == libc::EEXIST => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn del(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<(), NetError> {
        self.addr_cache = None;
        let seq = self.next_seq();
        addr_request(
            &mut self.req,
            AddrChange::Del,
            seq,
            ifindex,
            addr,
            prefix_len,
        );
        let op = || format!("delete {addr}/{prefix_len} on interface #{ifindex}");
        match self.transact(Until::Ack, op, |_| {}) {
            Ok(_) => Ok(()),
            Err(e) if e.errno == libc::EADDRNOTAVAIL => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn announce(&mut self, link: &LinkInfo, vip: Vip, mode: AnnounceMode) -> Result<(), NetError> {
        let op = || format!("announce {} on interface #{}", vip.addr, link.index);
        if link.mac == [0; 6] {
            return Err(NetError {
                op: op(),
                errno: libc::EOPNOTSUPP,
                extack: Some("the interface has no Ethernet address".into()),
            });
        }
        let Some(packet) = &self.packet else {
            return Err(NetError {
                op: op(),
                errno: libc::EBADF,
                extack: Some("opened without an AF_PACKET socket".into()),
            });
        };
        match vip.addr {
            IpAddr::V4(ip) => packet.announce(link.index, link.mac, ip, mode),
            IpAddr::V6(ip) => packet.send_na(link.index, link.mac, ip),
        }
        .map_err(|e| NetError::io(op(), &e))
    }
}

#[cfg(test)]
mod tests;

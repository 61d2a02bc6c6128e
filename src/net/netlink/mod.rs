//! rtnetlink over a raw `NETLINK_ROUTE` socket, in four parts: `request` builds
//! the requests and `reply` parses the kernel's answers (the wire format: pure
//! functions on bytes), `kernel` holds [`Kernel`], the
//! [`AddrBackend`](super::AddrBackend) that sends them over its sockets, and
//! `lookup` answers one-off questions about this host's addresses and routes
//! ([`route_source`], [`primary_address`]). This file holds the kernel's constants
//! they share; everything public is re-exported here.
//!
//! The builders produce what iproute2 sends (the unit tests compare them with
//! captures of `ip addr add/del`, `ip route get` and others, see
//! `tests/fixtures/netlink/`); the parser never panics on truncated or garbage
//! input, it returns a [`ParseError`].
//!
//! Message layout (all integers in host byte order, every item padded to 4 bytes):
//! `nlmsghdr{len u32, type u16, flags u16, seq u32, pid u32}`, then a family header
//! (`ifaddrmsg` 8 bytes, `ifinfomsg` 16 bytes, `rtmsg` 12 bytes, or for
//! `NLMSG_ERROR` an `i32` error and the echoed request), then attributes
//! `{len u16, type u16, data}`.

use std::net::IpAddr;

mod kernel;
mod lookup;
mod reply;
mod request;

#[cfg(test)]
mod captures;

pub use kernel::{Kernel, REPLY_TIMEOUT};
pub use lookup::{primary_address, primary_of, route_source, source_of};
pub use reply::{
    AddrMsg, Header, LinkMsg, Message, Messages, ParseError, Payload, RouteMsg, parse, prefixes_of,
};
pub use request::{
    AddrChange, AddrOptions, BadLinkName, addr_dump_request, addr_request, lifetime_secs,
    link_request, route_request,
};

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
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
/// On `RTM_NEWADDR`: change an address that exists instead of failing with `EEXIST`.
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
/// In an `NLMSG_ERROR`: the echoed request is cut to its header (`NETLINK_CAP_ACK`).
const NLM_F_CAPPED: u16 = 0x100;
/// In an `NLMSG_ERROR` or `NLMSG_DONE`: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
/// `struct ifa_cacheinfo`: preferred and valid lifetime in seconds, then two
/// timestamps the kernel ignores on a request.
const IFA_CACHEINFO: u16 = 6;
/// A lifetime of "forever" in `ifa_cacheinfo` (`INFINITY_LIFE_TIME`).
const INFINITY_LIFE_TIME: u32 = u32::MAX;
/// All of an address's flags as a `u32` (`ifaddrmsg.ifa_flags` has only 8 bits).
const IFA_FLAGS: u16 = 8;
/// Also `IFA_F_TEMPORARY`: for IPv6 the same bit marks a privacy address.
const IFA_F_SECONDARY: u32 = 0x01;
const IFA_F_NODAD: u32 = 0x02;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_DEPRECATED: u32 = 0x20;
const IFA_F_TENTATIVE: u32 = 0x40;
const IFA_F_NOPREFIXROUTE: u32 = 0x200;
const RT_SCOPE_UNIVERSE: u8 = 0;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
/// The table as a `u32` (`rtmsg.rtm_table` has only 8 bits).
const RTA_TABLE: u16 = 15;
/// On `RTM_GETROUTE`: report the table the lookup matched in, not `RT_TABLE_MAIN`.
const RTM_F_LOOKUP_TABLE: u32 = 0x1000;
const RTN_BLACKHOLE: u8 = 6;
const RTN_UNREACHABLE: u8 = 7;
const RTN_PROHIBIT: u8 = 8;
const RTN_THROW: u8 = 9;

const IFLA_ADDRESS: u16 = 1;
const IFLA_CARRIER_CHANGES: u16 = 35;
const IFLA_IFNAME: u16 = 3;
const IFLA_EXT_MASK: u16 = 29;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
/// Interface names are at most `IFNAMSIZ - 1` = 15 bytes.
const IFNAMSIZ: usize = 16;

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

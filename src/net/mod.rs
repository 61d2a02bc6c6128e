//! Talking to the kernel: addresses through rtnetlink, announcements through AF_PACKET.
//!
//! [`AddrBackend`] is the seam the daemon loop uses; [`Kernel`] is the real
//! implementation and tests substitute a fake. [`route_source`] and
//! [`primary_address`] find this host's own addresses, for callers outside the loop.

pub mod arp;
pub mod conflict;
pub mod ndisc;
pub mod netlink;
#[allow(unsafe_code)]
pub mod sys;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub use netlink::{Kernel, primary_address, route_source};

/// The virtual IP address and the prefix length it is added with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// What the daemon needs to know of the interface, as the kernel has it at each turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    /// Administratively up (IFF_UP) and carrier present (IFF_LOWER_UP).
    pub up: bool,
    /// The hardware address announcements are sent from.
    pub mac: [u8; 6],
    /// How often the carrier went down or up since the interface was made: a change
    /// between two looks means the link flapped, even if it looks up both times.
    pub carrier_changes: u32,
}

/// Which ARP operation a gratuitous ARP uses (RFC 5227 §3 prefers requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceMode {
    Request,
    Reply,
    Both,
}

/// A failed kernel operation: what was attempted, the errno and the kernel's
/// extended-ack text where it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError {
    pub op: String,
    pub errno: i32,
    pub extack: Option<String>,
}

impl NetError {
    pub fn new(op: impl Into<String>, errno: i32) -> Self {
        NetError {
            op: op.into(),
            errno,
            extack: None,
        }
    }

    /// With an explanation where the errno alone would not say enough (the kernel's
    /// extended-ack text, or what vipd found wrong).
    pub fn with_text(op: impl Into<String>, errno: i32, text: impl Into<String>) -> Self {
        NetError {
            extack: Some(text.into()),
            ..NetError::new(op, errno)
        }
    }

    /// From `io::Error::last_os_error()` (or any io::Error), keeping its errno.
    pub fn io(op: impl Into<String>, err: &std::io::Error) -> Self {
        NetError::new(op, err.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // io::Error's text already ends in "(os error N)".
        let text = std::io::Error::from_raw_os_error(self.errno);
        write!(f, "{}: {text}", self.op)?;
        if let Some(ack) = &self.extack {
            write!(f, ": {ack}")?;
        }
        Ok(())
    }
}

impl std::error::Error for NetError {}

/// The kernel operations the daemon loop needs. Every answer is what the kernel
/// would answer now, so the loop always acts on the kernel's present state.
///
/// A backend may keep an answer only while it can tell the answer is still current.
/// [`Kernel`] keeps its last [`link`](AddrBackend::link) answer (for that name) and
/// its last [`vip_prefixes`](AddrBackend::vip_prefixes) answer (for that interface
/// and address) and gives them again only while no link or address notification has
/// arrived since they were read. The kernel sends one for every change that could
/// alter them (an interface's flags, carrier, hardware address, name or existence;
/// any address added or removed, by anyone), and listening starts before the first
/// reading, so an answer given again equals a fresh read. Any notification, a lost
/// one (`ENOBUFS`), an error while reading them, or no way to hear them at all drops
/// both answers; [`add`](AddrBackend::add) and [`del`](AddrBackend::del) drop the
/// address answer themselves. The one exception is a notification that an address
/// the last reading lists was changed in place (its lifetime refreshed, by vipd or
/// anyone): that changes no answer, so [`refresh`](AddrBackend::refresh) of a listed
/// address keeps the reading and the idle loop stays free of reads.
///
/// Lifetimes (`Option<Duration>`, `None`: permanent) are the kernel's dead-man's
/// switch: an address added or refreshed with one is removed by the kernel itself
/// once that long has passed without another refresh, whatever became of vipd.
pub trait AddrBackend {
    /// The interface called `name`, or `None` when there is no such interface.
    fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, NetError>;
    /// The prefix lengths at which `addr` is configured on interface `ifindex`
    /// (exact address match; empty when absent).
    fn vip_prefixes(&mut self, ifindex: u32, addr: IpAddr) -> Result<Vec<u8>, NetError>;
    /// Add the VIP for `lifetime`; an address that is already there (EEXIST) is
    /// success, and gets `lifetime` too.
    fn add(&mut self, ifindex: u32, vip: Vip, lifetime: Option<Duration>) -> Result<(), NetError>;
    /// Give the VIP (at `vip.prefix_len`) `lifetime` from now, whatever it had left;
    /// an address that went meanwhile is added again, as [`add`](AddrBackend::add)
    /// would.
    fn refresh(
        &mut self,
        ifindex: u32,
        vip: Vip,
        lifetime: Option<Duration>,
    ) -> Result<(), NetError>;
    /// Remove `addr/prefix_len`; an address that is not there (EADDRNOTAVAIL) is success.
    fn del(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<(), NetError>;
    /// Send one announcement of `vip` from `link`: gratuitous ARP for IPv4 (`mode`
    /// says which operations), one unsolicited neighbour advertisement for IPv6
    /// (`mode` does not apply).
    fn announce(&mut self, link: &LinkInfo, vip: Vip, mode: AnnounceMode) -> Result<(), NetError>;

    /// The descriptor that becomes readable when the kernel reports a link or address
    /// change, for the loop's one wait ([`crate::wake`]); `None`: no such reports, the
    /// loop sees changes at its next turn.
    fn events_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// Read the queued reports without waiting: whether any may change what
    /// [`link`](AddrBackend::link) or [`vip_prefixes`](AddrBackend::vip_prefixes)
    /// answer (the loop then reconciles at once).
    fn take_events(&mut self) -> bool {
        false
    }

    /// Listen on interface `ifindex` for other machines' claims to `vip`, and probe
    /// for them ([`conflict`]); `None`: this backend cannot.
    fn listen_claims(
        &mut self,
        ifindex: u32,
        vip: IpAddr,
    ) -> Result<Option<Box<dyn conflict::Claims>>, NetError> {
        let _ = (ifindex, vip);
        Ok(None)
    }
}

//! [`Kernel`], the [`AddrBackend`] that talks to the kernel: a `NETLINK_ROUTE`
//! socket for requests, a second one for change notifications, the `AF_PACKET`
//! socket for announcements, and the last link and address answers, kept until a
//! notification says they may be stale.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::reply::{AddrMsg, Payload, RouteMsg, only_known_addresses, parse, prefixes_of};
use super::request::{
    AddrChange, AddrOptions, addr_dump_request, addr_request, link_request, route_request,
};
use super::{FAMILY_UNSPEC, family_of};
use crate::net::arp::PacketSocket;
use crate::net::conflict::{Claims, Listener};
use crate::net::sys::Socket;
use crate::net::{AddrBackend, AnnounceMode, LinkInfo, NetError, Vip};

/// In a dump reply: the table changed during the dump, so it may be inconsistent.
const NLM_F_DUMP_INTR: u16 = 0x10;
/// The multicast groups of link and address changes (`RTMGRP_LINK`,
/// `RTMGRP_IPV4_IFADDR`, `RTMGRP_IPV6_IFADDR`), as a bind mask.
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

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
    /// The first message in reply (an `RTM_GETLINK` for one interface, an
    /// `RTM_GETROUTE`).
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
        let events = open_change_events()
            .map_err(|e| log::debug!("no change notifications, reading the kernel every turn: {e}"))
            .ok();
        Kernel::with_events(events)
    }

    /// The request socket alone, for a few one-off questions: no announcements, and
    /// no change notifications, so every answer is read from the kernel.
    pub(super) fn open_for_lookups() -> Result<Kernel, NetError> {
        Kernel::with_events(None)
    }

    fn with_events(events: Option<Socket>) -> Result<Kernel, NetError> {
        let (nl, port) = open_requests().map_err(|e| NetError::io("open netlink socket", &e))?;
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

    /// Every address of `family` ([`super::FAMILY_INET`], [`super::FAMILY_INET6`],
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
        Err(NetError::with_text(
            op(),
            libc::EAGAIN,
            format!("the address table changed during each of {DUMP_ATTEMPTS} dumps"),
        ))
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

    /// The route the kernel would use for a packet to `dst`, as `ip route get DST`
    /// shows it (one `RTM_GETROUTE`; nothing is sent to `dst`). No route there is an
    /// error (`ENETUNREACH`, or the errno of an unreachable, prohibit or blackhole
    /// route).
    pub fn route(&mut self, dst: IpAddr) -> Result<RouteMsg, NetError> {
        let op = || format!("look up the route to {dst}");
        let seq = self.next_seq();
        route_request(&mut self.req, seq, dst);
        let mut route = None;
        self.transact(Until::Reply, op, |payload| {
            if let Payload::NewRoute(r) = payload {
                route = Some(*r);
            }
        })?;
        route.ok_or_else(|| {
            NetError::with_text(
                op(),
                libc::EBADMSG,
                "the kernel's reply is not RTM_NEWROUTE",
            )
        })
    }

    /// `RTM_GETLINK` for the interface called `name`; `None` if there is none.
    pub(super) fn read_link(&mut self, name: &str) -> Result<Option<LinkInfo>, NetError> {
        let op = || format!("look up interface {name:?}");
        self.link_reads += 1;
        let seq = self.next_seq();
        link_request(&mut self.req, seq, name)
            .map_err(|e| NetError::with_text(op(), libc::EINVAL, e.to_string()))?;
        let mut link = None;
        let result = self.transact(Until::Reply, op, |payload| {
            if let Payload::NewLink(l) = payload {
                link = Some(*l);
            }
        });
        match (result, link) {
            (Err(e), _) if e.errno == libc::ENODEV => Ok(None),
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(NetError::with_text(
                op(),
                libc::EBADMSG,
                "the kernel's reply is not RTM_NEWLINK",
            )),
            (Ok(_), Some(link)) => Ok(Some(LinkInfo {
                index: link.index,
                up: link.is_up(),
                mac: link.mac.unwrap_or([0; 6]),
                carrier_changes: link.carrier_changes,
            })),
        }
    }

    /// Reads (and drops) every queued change notification; any that may alter an
    /// answer, or any doubt, drops the last answers about the link and the
    /// addresses (and says so).
    fn look_for_changes(&mut self) -> bool {
        let changed = self.may_have_changed();
        if changed {
            self.link_cache = None;
            self.addr_cache = None;
        }
        changed
    }

    fn may_have_changed(&mut self) -> bool {
        let Some(events) = &self.events else {
            return true;
        };
        let mut changed = false;
        for _ in 0..MAX_EVENTS_PER_LOOK {
            match events.recv_netlink(&mut self.buf) {
                // From the kernel: RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR.
                Ok((len, 0)) => {
                    let datagram = self.buf.get(..len).unwrap_or_default();
                    let known = self.addr_cache.as_ref().is_some_and(|(i, a, prefixes)| {
                        only_known_addresses(datagram, *i, *a, prefixes)
                    });
                    changed |= !known;
                }
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

    /// Adds, refreshes or deletes `vip` and waits for the kernel's ack. A delete of
    /// an absent address (`EADDRNOTAVAIL`) is success; an add's `EEXIST` is not.
    fn change_addr(
        &mut self,
        change: AddrChange,
        ifindex: u32,
        vip: Vip,
        lifetime: Option<Duration>,
    ) -> Result<(), NetError> {
        // Its notification will say so too; whatever happens, read afresh.
        self.addr_cache = None;
        let seq = self.next_seq();
        let options = &self.addr_options;
        addr_request(&mut self.req, change, seq, ifindex, vip, options, lifetime);
        let verb = match change {
            AddrChange::Add => "add",
            AddrChange::Refresh => "refresh the lifetime of",
            AddrChange::Del => "delete",
        };
        let op = || format!("{verb} {vip} on interface #{ifindex}");
        match self.transact(Until::Ack, op, |_| {}) {
            Err(e) if change != AddrChange::Del || e.errno != libc::EADDRNOTAVAIL => Err(e),
            _ => Ok(()),
        }
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
            let len = self.receive(deadline, &op)?;
            for msg in parse(self.buf.get(..len).unwrap_or_default()) {
                let msg = msg.map_err(|e| {
                    NetError::with_text(
                        op(),
                        libc::EBADMSG,
                        format!("malformed netlink reply: {e}"),
                    )
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
                            extack,
                            ..NetError::new(op(), errno)
                        });
                    }
                    Payload::Ack if until == Until::Ack => return Ok(interrupted),
                    Payload::Done if until == Until::Done => return Ok(interrupted),
                    Payload::Ack | Payload::Done => {
                        return Err(NetError::with_text(
                            op(),
                            libc::EBADMSG,
                            "unexpected end of the reply",
                        ));
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

    /// Receives the next datagram from the kernel into `self.buf`, skipping any
    /// other sender's, and returns its length. Gives up when a receive waited
    /// [`REPLY_TIMEOUT`] or at `deadline`.
    fn receive(&mut self, deadline: Instant, op: &impl Fn() -> String) -> Result<usize, NetError> {
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
            } else if len > self.buf.len() {
                return Err(NetError::with_text(
                    op(),
                    libc::EMSGSIZE,
                    format!("reply of {len} bytes exceeds the {RECV_BUF_LEN}-byte buffer"),
                ));
            } else {
                return Ok(len);
            }
        }
    }
}

fn timed_out(op: String) -> NetError {
    NetError::with_text(
        op,
        libc::ETIMEDOUT,
        format!(
            "no reply from the kernel within {} ms",
            REPLY_TIMEOUT.as_millis()
        ),
    )
}

/// The `NETLINK_ROUTE` socket requests go over (receive timeout [`REPLY_TIMEOUT`],
/// extended acks and strict checking where the kernel has them), and its port id.
fn open_requests() -> std::io::Result<(Socket, u32)> {
    let nl = Socket::new(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    nl.set_recv_timeout(REPLY_TIMEOUT)?;
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
    nl.bind_netlink_groups(0, 0)?;
    let port = nl.netlink_port()?;
    Ok((nl, port))
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
    fn listen_claims(
        &mut self,
        ifindex: u32,
        vip: IpAddr,
    ) -> Result<Option<Box<dyn Claims>>, NetError> {
        match Listener::open(ifindex, vip) {
            Ok(l) => Ok(Some(Box::new(l))),
            Err(e) => Err(NetError::io("opening the conflict listener", &e)),
        }
    }

    fn events_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.events.as_ref().map(|s| s.as_raw_fd())
    }

    fn take_events(&mut self) -> bool {
        // Without the socket there are no reports; each reading asks the kernel.
        self.events.is_some() && self.look_for_changes()
    }

    fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, NetError> {
        // Subscribed before the first reading, so any change after a reading is
        // queued by the time of the next look.
        self.look_for_changes();
        if let Some((_, info)) = self.link_cache.as_ref().filter(|(n, _)| n == name) {
            return Ok(*info);
        }
        self.link_cache = None;
        let info = self.read_link(name)?;
        self.link_cache = Some((name.to_string(), info));
        Ok(info)
    }

    fn vip_prefixes(&mut self, ifindex: u32, addr: IpAddr) -> Result<Vec<u8>, NetError> {
        self.look_for_changes();
        let cached = self.addr_cache.as_ref();
        if let Some((.., prefixes)) = cached.filter(|(i, a, _)| (*i, *a) == (ifindex, addr)) {
            return Ok(prefixes.clone());
        }
        self.addr_cache = None;
        self.addr_reads += 1;
        let addrs = self.addresses(family_of(addr), ifindex)?;
        let prefixes = prefixes_of(&addrs, ifindex, addr);
        self.addr_cache = Some((ifindex, addr, prefixes.clone()));
        Ok(prefixes)
    }

    fn add(&mut self, ifindex: u32, vip: Vip, lifetime: Option<Duration>) -> Result<(), NetError> {
        match self.change_addr(AddrChange::Add, ifindex, vip, lifetime) {
            // Added by someone else since the look: it gets the lifetime all the same.
            Err(e) if e.errno == libc::EEXIST => self.refresh(ifindex, vip, lifetime),
            done => done,
        }
    }

    fn refresh(
        &mut self,
        ifindex: u32,
        vip: Vip,
        lifetime: Option<Duration>,
    ) -> Result<(), NetError> {
        // Refreshing an address the last reading lists (or making it again, if it just
        // went) leaves the list as it was: the reading stays, the notification is no change.
        let listed = self.addr_cache.take().filter(|(i, a, prefixes)| {
            (*i, *a) == (ifindex, vip.addr) && prefixes.contains(&vip.prefix_len)
        });
        self.change_addr(AddrChange::Refresh, ifindex, vip, lifetime)?;
        self.addr_cache = listed;
        Ok(())
    }

    fn del(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<(), NetError> {
        self.change_addr(AddrChange::Del, ifindex, Vip { addr, prefix_len }, None)
    }

    fn announce(&mut self, link: &LinkInfo, vip: Vip, mode: AnnounceMode) -> Result<(), NetError> {
        let op = || format!("announce {} on interface #{}", vip.addr, link.index);
        if link.mac == [0; 6] {
            return Err(NetError::with_text(
                op(),
                libc::EOPNOTSUPP,
                "the interface has no Ethernet address",
            ));
        }
        let Some(packet) = &self.packet else {
            return Err(NetError::with_text(
                op(),
                libc::EBADF,
                "opened without an AF_PACKET socket",
            ));
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

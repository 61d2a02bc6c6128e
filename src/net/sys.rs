//! Thin, safe wrappers over the system calls the network module makes (sockets,
//! namespaces), and over `poll(2)` and `gethostname(2)` for the rest of vipd.
//!
//! In the style of socket2: one `syscall!` macro turns the C convention of
//! returning `-1` into `io::Error::last_os_error()`, sockets are [`OwnedFd`]s (closed
//! on drop, created with `SOCK_CLOEXEC`), and every method names the system call it
//! makes. All the `unsafe` of the network module lives here; each block says why it
//! is sound.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Evaluates a libc call (the caller writes the `unsafe` block and its `SAFETY:`
/// comment) and turns a `-1` return into `Err(io::Error::last_os_error())`.
macro_rules! syscall {
    ($call:expr) => {{
        let res = $call;
        if res == -1 {
            Err(::std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Runs `f` again while it fails with `EINTR` (a signal arrived mid-call), at most
/// a few times so that a signal storm cannot keep the caller here forever.
fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < 8 => tries += 1,
            other => return other,
        }
    }
}

/// An open socket; closed when dropped.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Socket {
    /// `socket(domain, ty | SOCK_CLOEXEC, protocol)`.
    pub fn new(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<Socket> {
        // SAFETY: socket(2) takes plain integers and touches no memory of ours.
        let fd = syscall!(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) })?;
        // SAFETY: `fd` was just returned by socket(2), is open and owned by no one
        // else; OwnedFd takes over closing it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Socket { fd })
    }

    /// `setsockopt(fd, level, name, &value, sizeof(int))` for an integer option.
    pub fn set_int_option(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> io::Result<()> {
        self.set_option(level, name, &value)
    }

    /// `setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, ...)`: a blocking receive fails with
    /// `EAGAIN` (io::ErrorKind::WouldBlock) after `timeout`. A zero duration would
    /// mean "block forever" to the kernel, so it is raised to one microsecond.
    pub fn set_recv_timeout(&self, timeout: Duration) -> io::Result<()> {
        // The field types are inferred: naming libc::time_t is deprecated on musl.
        // A day is far above any timeout vipd sets and fits every time_t.
        let mut tv = libc::timeval {
            tv_sec: timeout.as_secs().min(86_400) as _,
            tv_usec: timeout.subsec_micros() as _,
        };
        if tv.tv_sec == 0 && tv.tv_usec == 0 {
            tv.tv_usec = 1;
        }
        self.set_option(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    /// `setsockopt(2)` with any plain-data value.
    fn set_option<T: Copy>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: &T,
    ) -> io::Result<()> {
        setsockopt(self.fd.as_fd(), level, name, value)
    }

    /// `bind(2)` a netlink socket to port id `port` (0: the kernel picks one),
    /// subscribed to the multicast `groups` (a bit mask of `RTMGRP_*`, 0 for none), to
    /// hear of changes as they happen.
    pub fn bind_netlink_groups(&self, port: u32, groups: u32) -> io::Result<()> {
        let mut addr = netlink_addr(port);
        addr.nl_groups = groups;
        self.bind_to(&addr)
    }

    /// `bind(2)` with a socket address of type `A`.
    fn bind_to<A>(&self, addr: &A) -> io::Result<()> {
        // SAFETY: `addr` is a live, initialised socket address and the length passed
        // is its size; the kernel only reads it.
        syscall!(unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (addr as *const A).cast::<libc::sockaddr>(),
                mem::size_of::<A>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// `getsockname(2)` of a bound netlink socket: its port id.
    pub fn netlink_port(&self) -> io::Result<u32> {
        let mut addr = netlink_addr(0);
        let mut len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: `addr` and `len` are live locals; the kernel writes at most `len`
        // bytes into `addr` and the new length into `len`.
        syscall!(unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_nl).cast::<libc::sockaddr>(),
                &mut len,
            )
        })?;
        if addr.nl_family != libc::AF_NETLINK as libc::sa_family_t {
            return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        }
        Ok(addr.nl_pid)
    }

    /// `sendto(2)` the whole of `buf` to the kernel (netlink port 0).
    pub fn send_to_kernel(&self, buf: &[u8]) -> io::Result<()> {
        let addr = netlink_addr(0);
        self.send_to(buf, &addr)
    }

    /// `sendto(2)` the whole of `frame` (a complete Ethernet frame, header
    /// included) out of interface `ifindex` on an `AF_PACKET`/`SOCK_RAW` socket,
    /// with `protocol` (host byte order, e.g. `ETH_P_ARP`) as the frame's protocol
    /// and the frame's own destination (its first 6 bytes: broadcast for ARP,
    /// 33:33:00:00:00:01 for an all-nodes NA) as the link-layer destination in
    /// `sockaddr_ll`. (On a `SOCK_RAW` socket the kernel sends the header as given;
    /// the address only has to agree with it.) A frame shorter than an Ethernet
    /// header fails with `EINVAL`.
    pub fn send_to_link(&self, frame: &[u8], ifindex: u32, protocol: u16) -> io::Result<()> {
        let dst = match frame.get(..6) {
            Some(dst) if frame.len() >= 14 => dst,
            _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        let mut addr = link_addr(ifindex, protocol)?;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(dst);
        self.send_to(frame, &addr)
    }

    /// `sendto(2)` with a socket address of type `A`; a short send is an error.
    fn send_to<A>(&self, buf: &[u8], addr: &A) -> io::Result<()> {
        let sent = retry_eintr(|| {
            // SAFETY: `buf` is a live slice the kernel reads at most `buf.len()`
            // bytes of; `addr` is a live, initialised socket address of the size
            // passed.
            syscall!(unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    0,
                    (addr as *const A).cast::<libc::sockaddr>(),
                    mem::size_of::<A>() as libc::socklen_t,
                )
            })
        })?;
        if usize::try_from(sent).ok() != Some(buf.len()) {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short send: {sent} of {} bytes", buf.len()),
            ));
        }
        Ok(())
    }

    /// `recvfrom(fd, buf, len, MSG_TRUNC, &sockaddr_nl, ...)` on a netlink socket:
    /// one datagram into `buf`. Returns the datagram's full length (larger than
    /// `buf.len()` when it did not fit and was cut) and the sender's port id
    /// (0 for the kernel). Fails with `WouldBlock` when the receive timeout passes.
    pub fn recv_netlink(&self, buf: &mut [u8]) -> io::Result<(usize, u32)> {
        let mut addr = netlink_addr(0);
        let got = self.recv_from(buf, libc::MSG_TRUNC, &mut addr)?;
        Ok((got, addr.nl_pid))
    }

    /// `recvfrom(2)` with `flags`, the sender's address written into `addr`: the
    /// length the kernel returned.
    fn recv_from<A>(&self, buf: &mut [u8], flags: libc::c_int, addr: &mut A) -> io::Result<usize> {
        let mut len = mem::size_of::<A>() as libc::socklen_t;
        let got = retry_eintr(|| {
            // SAFETY: the kernel writes at most `buf.len()` bytes into the live,
            // exclusively borrowed `buf`, and at most `len` (its size) bytes into the
            // live, exclusively borrowed socket address `addr`.
            syscall!(unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    flags,
                    (addr as *mut A).cast::<libc::sockaddr>(),
                    &mut len,
                )
            })
        })?;
        usize::try_from(got).map_err(|_| io::Error::from_raw_os_error(libc::EIO))
    }

    /// `recv(2)`: one datagram or frame into `buf`; its length (cut to `buf.len()`).
    /// Fails with `WouldBlock` when the receive timeout passes.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let got = retry_eintr(|| {
            // SAFETY: the kernel writes at most `buf.len()` bytes into the live,
            // exclusively borrowed `buf`.
            syscall!(unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    0,
                )
            })
        })?;
        usize::try_from(got).map_err(|_| io::Error::from_raw_os_error(libc::EIO))
    }
}

/// `SO_ATTACH_FILTER` (asm-generic/socket.h; the same on every architecture vipd is
/// built for), which libc does not export for every target.
const SO_ATTACH_FILTER: libc::c_int = 26;

impl Socket {
    /// `setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &sock_fprog)`: the kernel runs
    /// the classic BPF program `prog` on every packet before queueing it and drops
    /// those it returns 0 for. The kernel checks the program and copies it.
    pub fn attach_filter(&self, prog: &[libc::sock_filter]) -> io::Result<()> {
        let len = libc::c_ushort::try_from(prog.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let fprog = libc::sock_fprog {
            len,
            // The kernel only reads through this pointer (it copies the program).
            filter: prog.as_ptr().cast_mut(),
        };
        self.set_option(libc::SOL_SOCKET, SO_ATTACH_FILTER, &fprog)
    }

    /// `bind(2)` an `AF_PACKET` socket to interface `ifindex` and frames of
    /// `protocol` (host byte order, e.g. `ETH_P_ARP`): a socket opened with protocol
    /// 0 receives nothing until this call, so a filter attached before it applies to
    /// every frame ever queued.
    pub fn bind_link(&self, ifindex: u32, protocol: u16) -> io::Result<()> {
        self.bind_to(&link_addr(ifindex, protocol)?)
    }

    /// `recvfrom(fd, buf, len, MSG_DONTWAIT, &sockaddr_ll, ...)` on an `AF_PACKET`
    /// socket: one frame into `buf` (cut to `buf.len()`) without waiting; its length
    /// and its packet type (`PACKET_HOST`, `PACKET_BROADCAST`, `PACKET_OUTGOING`, …).
    /// Fails with `WouldBlock` when nothing is queued.
    pub fn recv_link(&self, buf: &mut [u8]) -> io::Result<(usize, u8)> {
        let mut addr = link_addr(0, 0)?;
        let got = self.recv_from(buf, libc::MSG_DONTWAIT, &mut addr)?;
        Ok((got, addr.sll_pkttype))
    }
}

/// An `AF_PACKET` address: interface `ifindex`, frames of `protocol` (host byte order).
fn link_addr(ifindex: u32, protocol: u16) -> io::Result<libc::sockaddr_ll> {
    let ifindex =
        libc::c_int::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: sockaddr_ll is plain data for which all-zero bytes are valid.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::c_ushort;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = ifindex;
    Ok(addr)
}

/// `setsockopt(2)` on any socket with any plain-data value.
fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` points to a live, initialised `T` of exactly `len` bytes,
    // which the kernel only reads during the call; `fd` is open while borrowed.
    syscall!(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            len,
        )
    })?;
    Ok(())
}

/// TCP keepalive on `sock` (`SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
/// `TCP_KEEPCNT`): after `idle_s` seconds without traffic the kernel probes every
/// `interval_s` seconds and, after `count` unanswered probes, fails the socket
/// (`ETIMEDOUT`), so that a silently dead path ends even a wait that sends nothing.
pub fn set_tcp_keepalive(
    sock: BorrowedFd<'_>,
    idle_s: libc::c_int,
    interval_s: libc::c_int,
    count: libc::c_int,
) -> io::Result<()> {
    setsockopt(
        sock,
        libc::SOL_SOCKET,
        libc::SO_KEEPALIVE,
        &1 as &libc::c_int,
    )?;
    setsockopt(sock, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, &idle_s)?;
    setsockopt(sock, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, &interval_s)?;
    setsockopt(sock, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, &count)
}

/// `setns(fd, CLONE_NEWNET)`: moves the calling thread (only it) into the network
/// namespace `ns` refers to, e.g. an open `/run/netns/NAME`. Sockets the thread
/// creates afterwards belong to that namespace. Needs `CAP_SYS_ADMIN`.
pub fn enter_netns(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns(2) takes a descriptor the borrow keeps open and a flag; it
    // touches no memory of ours.
    syscall!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

/// `poll(2)` on `fds` for up to `timeout_ms` milliseconds (negative: no limit): how
/// many entries have events in their `revents`, 0 when the time ran out. A signal
/// ends the wait with an error of kind `Interrupted`, not retried, so that the
/// caller sees the signal at once.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    let nfds = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `fds` is a live, exclusively borrowed slice of `nfds` pollfds; the
    // kernel reads them and writes only their `revents`.
    let ready = syscall!(unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_ms) })?;
    usize::try_from(ready).map_err(|_| io::Error::from_raw_os_error(libc::EIO))
}

/// [`poll`] until `deadline`, rounded up to the millisecond so that the wait never
/// ends before it: 0 when it passed.
pub fn poll_until(fds: &mut [libc::pollfd], deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_micros().div_ceil(1000).min(86_400_000) as i32;
    poll(fds, ms)
}

/// `clock_gettime(CLOCK_BOOTTIME)`: time since boot, including time suspended, which
/// `Instant` (CLOCK_MONOTONIC) leaves out. `None` if the clock cannot be read.
pub fn boottime() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, exclusively borrowed timespec the kernel writes.
    syscall!(unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) }).ok()?;
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

/// `gethostname(2)`: the host name (Linux allows at most 64 bytes). A name that is
/// not UTF-8 is an error of kind `InvalidData`.
pub fn hostname() -> io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the C library writes at most `buf.len()` bytes into the live local
    // `buf`.
    syscall!(unsafe { libc::gethostname(buf.as_mut_ptr().cast::<libc::c_char>(), buf.len()) })?;
    // A name that fills the buffer may come without its NUL.
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..len].to_vec())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the host name is not UTF-8"))
}

/// A `sockaddr_nl` for port id `port` and no multicast groups.
fn netlink_addr(port: u32) -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data (it has a private padding field, so it
    // cannot be built with a struct literal); all-zero bytes are a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_pid = port;
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_macro_maps_minus_one_to_errno() {
        // SAFETY: close(2) of -1 touches no memory and closes nothing; it fails EBADF.
        let res: io::Result<libc::c_int> = syscall!(unsafe { libc::close(-1) });
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        let ok: io::Result<i32> = syscall!(0);
        assert_eq!(ok.unwrap(), 0);
    }

    #[test]
    fn netlink_socket_binds_and_times_out() {
        // Needs no privileges: any user may open NETLINK_ROUTE and wait on it.
        let sock = Socket::new(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE).unwrap();
        sock.bind_netlink_groups(0, 0).unwrap();
        assert_ne!(
            sock.netlink_port().unwrap(),
            0,
            "the kernel assigns a port id"
        );
        sock.set_recv_timeout(Duration::from_millis(20)).unwrap();
        let mut buf = [0u8; 64];
        let start = std::time::Instant::now();
        let err = sock.recv_netlink(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn hostname_is_the_kernels() {
        let proc = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname().unwrap(), proc.trim_end_matches('\n'));
    }

    #[test]
    fn poll_times_out_then_reports_readable() {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        let (mut writer, reader) = UnixStream::pair().unwrap();
        let mut fds = [libc::pollfd {
            fd: reader.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let start = std::time::Instant::now();
        assert_eq!(poll(&mut fds, 20).unwrap(), 0, "nothing to read yet");
        assert!(start.elapsed() >= Duration::from_millis(15));
        assert_eq!(fds[0].revents, 0);
        writer.write_all(b"x").unwrap();
        assert_eq!(poll(&mut fds, 1000).unwrap(), 1);
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
        assert_eq!(
            poll(&mut [], 0).unwrap(),
            0,
            "no descriptors: an immediate timeout"
        );
    }

    #[test]
    fn retry_eintr_gives_up() {
        let mut calls = 0;
        let res: io::Result<()> = retry_eintr(|| {
            calls += 1;
            Err(io::Error::from_raw_os_error(libc::EINTR))
        });
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EINTR));
        assert_eq!(calls, 9);
    }
}

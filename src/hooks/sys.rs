//! The system calls the hooks need beyond `std`: a pidfd to poll for a hook's exit,
//! SIGKILL to a hook's whole process group, and `O_NONBLOCK` on vipd's ends of its
//! pipes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `pidfd_open(2)`: a descriptor that polls readable (`POLLIN`) once the process
/// `pid` has exited. The caller must not have reaped `pid` yet, so that the number
/// still names its child.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags: libc::c_uint = 0;
    // SAFETY: pidfd_open takes a pid and flags, no pointers; it returns a new
    // descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by the kernel and belongs to nothing else, so
    // the OwnedFd is its only owner (the kernel sets O_CLOEXEC on pidfds).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// SIGKILL to every process in the group `pgid`. Groups 0 and 1 are refused: they
/// would mean vipd's own group and every process it may signal.
pub fn kill_group(pgid: u32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    if unsafe { libc::kill(-pgid, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set `O_NONBLOCK` on `fd`: a read with nothing to read returns `EAGAIN`.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL) on a descriptor the borrow keeps open; no pointers.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above, F_SETFL with an integer argument.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

//! Signals: SIGTERM, SIGINT and SIGHUP are caught by a handler that only records
//! them and writes a byte to a self-pipe, which is one of the descriptors of the
//! loop's one wait ([`crate::wake`]).
//!
//! The handlers are installed without `SA_RESTART`, so a signal also interrupts a
//! `poll(2)` that does not watch the pipe; a short request, which must finish, polls
//! on.

use std::io;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Int,
    Hup,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Hup => "SIGHUP",
        }
    }
}

const TERM: u32 = 1;
const INT: u32 = 2;
const HUP: u32 = 4;

/// Signals received and not yet taken, one bit each.
static PENDING: AtomicU32 = AtomicU32::new(0);
/// The self-pipe's write end (-1 before [`Signals::install`]).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: atomics and write(2), errno preserved.
    // SAFETY: __errno_location returns this thread's errno slot, valid for reads
    // and writes for the thread's lifetime.
    let errno = unsafe { *libc::__errno_location() };
    let bit = match sig {
        libc::SIGTERM => TERM,
        libc::SIGINT => INT,
        libc::SIGHUP => HUP,
        _ => return,
    };
    PENDING.fetch_or(bit, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: writes one byte from a live local to our own non-blocking pipe;
        // a full pipe (EAGAIN) is fine, the bit above is what counts.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// The installed handlers and the self-pipe's read end.
pub struct Signals {
    read_fd: libc::c_int,
}

impl Signals {
    /// Install the handlers for SIGTERM, SIGINT and SIGHUP (once per process). From here on a signal never kills vipd mid-change: it is recorded
    /// and acted on by the loop.
    pub fn install() -> io::Result<Signals> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the live two-element array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        WAKE_FD.store(fds[1], Ordering::SeqCst);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags);
            // the handler field is set to an extern "C" fn(c_int) below.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // No SA_RESTART: a signal interrupts blocking reads (see the module doc).
            action.sa_flags = 0;
            // SAFETY: `action` is initialised and outlives the call; a null old-action
            // pointer is allowed.
            if unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Signals { read_fd: fds[0] })
    }

    /// Take one received signal (SIGTERM before SIGINT before SIGHUP).
    fn take() -> Option<Signal> {
        let pending = PENDING.swap(0, Ordering::SeqCst);
        if pending & TERM != 0 {
            Some(Signal::Term)
        } else if pending & INT != 0 {
            Some(Signal::Int)
        } else if pending & HUP != 0 {
            Some(Signal::Hup)
        } else {
            None
        }
    }

    /// The self-pipe's read end, readable once a signal arrived: for the loop's one
    /// wait ([`crate::wake`]).
    pub fn fd(&self) -> libc::c_int {
        self.read_fd
    }

    /// The signal received (empties the self-pipe), if any.
    pub fn pending(&self) -> Option<Signal> {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a live local buffer of the given length from our own
        // non-blocking pipe (EAGAIN when empty).
        while unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        Self::take()
    }
}

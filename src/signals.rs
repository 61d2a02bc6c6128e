//! Signals, taken synchronously: SIGTERM, SIGINT and SIGHUP are blocked at start-up
//! and collected with `sigtimedwait(2)` where the loop would otherwise sleep. No
//! handler runs asynchronously, so no system call is ever interrupted by one, and a
//! signal that arrives while a request is in flight waits (pending) until the loop
//! next looks.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

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

/// The set of signals vipd takes synchronously.
pub struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    /// Block SIGTERM, SIGINT and SIGHUP for this thread (call before spawning any
    /// thread; vipd has none). Until [`Signals::wait`] collects them they stay pending,
    /// so none of them can kill the process mid-change.
    pub fn block() -> io::Result<Signals> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given; the pointer is valid.
        if unsafe { libc::sigemptyset(set.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: initialised by sigemptyset just above.
        let mut set = unsafe { set.assume_init() };
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: `set` is an initialised sigset_t and `sig` a valid signal number.
            if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: `set` is initialised; a null old-set pointer is allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Signals { set })
    }

    /// Wait up to `timeout` for one of the blocked signals; `None` when the time ran
    /// out. A zero timeout only polls for a pending signal.
    pub fn wait(&self, timeout: Duration) -> Option<Signal> {
        let ts = libc::timespec {
            // Inferred field types (libc::time_t is deprecated on musl); a day is far
            // above any wait the loop asks for.
            tv_sec: timeout.as_secs().min(86_400) as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // SAFETY: `self.set` is an initialised sigset_t, `ts` a valid timespec, and a
        // null siginfo pointer is allowed.
        match unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) } {
            libc::SIGTERM => Some(Signal::Term),
            libc::SIGINT => Some(Signal::Int),
            libc::SIGHUP => Some(Signal::Hup),
            // EAGAIN (time out) or EINTR (another signal): the caller recomputes its
            // deadline and waits again if it must.
            _ => None,
        }
    }
}

//! Signals: SIGTERM, SIGINT and SIGHUP are caught by a handler that only records
//! them and writes a byte to a self-pipe; the loop sleeps in `ppoll(2)` on that pipe.
//!
//! The handlers are installed without `SA_RESTART`, so a signal also interrupts a
//! blocking read: the etcd watch, which waits up to a whole interval, returns at once
//! on SIGTERM instead of at its deadline. That wait is bounded by [`alarm_at`]
//! (SIGALRM from a per-thread POSIX timer) rather than by socket timeouts, because
//! the HTTP client retries interrupted reads when it has a timeout of its own.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

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
/// Whether SIGALRM is caught (else [`alarm_at`] must not arm it: it would kill us).
static ALARM_CAUGHT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: atomics and write(2), errno preserved.
    // SAFETY: __errno_location returns this thread's errno slot, valid for reads
    // and writes for the thread's lifetime.
    let errno = unsafe { *libc::__errno_location() };
    let bit = match sig {
        libc::SIGTERM => TERM,
        libc::SIGINT => INT,
        libc::SIGHUP => HUP,
        _ => 0, // SIGALRM: its only job is to interrupt a blocking call.
    };
    if bit != 0 {
        PENDING.fetch_or(bit, Ordering::SeqCst);
        let fd = WAKE_FD.load(Ordering::SeqCst);
        if fd >= 0 {
            let byte = 1u8;
            // SAFETY: writes one byte from a live local to our own non-blocking pipe;
            // a full pipe (EAGAIN) is fine, the bit above is what counts.
            unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// The installed handlers and the self-pipe's read end.
pub struct Signals {
    read_fd: libc::c_int,
}

impl Signals {
    /// Install the handlers for SIGTERM, SIGINT, SIGHUP and SIGALRM (once per
    /// process). From here on a signal never kills vipd mid-change: it is recorded
    /// and acted on by the loop.
    pub fn install() -> io::Result<Signals> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the live two-element array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        WAKE_FD.store(fds[1], Ordering::SeqCst);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGALRM] {
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
        ALARM_CAUGHT.store(true, Ordering::SeqCst);
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

    /// Wait up to `timeout` for a signal; `None` when the time ran out (or another
    /// signal woke the wait: the caller recomputes its deadline). A zero timeout only
    /// checks.
    pub fn wait(&self, timeout: Duration) -> Option<Signal> {
        if let Some(sig) = Self::take() {
            return Some(sig);
        }
        if timeout.is_zero() {
            // Only a check: the pipe is drained before the next real wait.
            return None;
        }
        {
            let ts = libc::timespec {
                // Inferred field types (libc::time_t is deprecated on musl); a day is
                // far above any wait the loop asks for.
                tv_sec: timeout.as_secs().min(86_400) as _,
                tv_nsec: timeout.subsec_nanos() as _,
            };
            let mut pfd = libc::pollfd {
                fd: self.read_fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd and a valid timespec, both live locals; a null
            // signal mask leaves the mask unchanged.
            unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        }
        let mut buf = [0u8; 64];
        // SAFETY: reads into a live local buffer of the given length from our own
        // non-blocking pipe (EAGAIN when empty).
        while unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        Self::take()
    }
}

/// Disarms the alarm when dropped.
pub struct Alarm {
    timer: Option<libc::timer_t>,
}

impl Alarm {
    /// Whether the alarm is armed: the guarded call needs no timeout of its own.
    pub fn armed(&self) -> bool {
        self.timer.is_some()
    }
}

/// After the first SIGALRM, the alarm repeats this often until disarmed: a signal
/// that lands just before the guarded call blocks (the classic race) is followed by
/// another one, so the call is late by at most this much, never stuck.
const ALARM_REPEAT: Duration = Duration::from_millis(20);

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        // Inferred field types (libc::time_t is deprecated on musl).
        tv_sec: d.as_secs().min(86_400) as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

thread_local! {
    /// This thread's alarm timer (a POSIX timer on CLOCK_MONOTONIC, the clock of
    /// `Instant`), created on first use.
    static TIMER: std::cell::Cell<Option<libc::timer_t>> = const { std::cell::Cell::new(None) };
}

/// The calling thread's timer, which signals SIGALRM to this thread only: a
/// process-wide `setitimer` alarm could be delivered to any thread and leave the
/// blocked call waiting (vipd has one thread; a library user or a test may have more).
fn thread_timer() -> Option<libc::timer_t> {
    TIMER.with(|cell| {
        if let Some(id) = cell.get() {
            return Some(id);
        }
        // SAFETY: an all-zero sigevent is a valid value; the fields used are set below.
        let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = libc::SIGALRM;
        // SAFETY: gettid takes no arguments and cannot fail.
        sev.sigev_notify_thread_id = unsafe { libc::syscall(libc::SYS_gettid) } as libc::c_int;
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `sev` and `id` are live locals; the kernel reads one and writes the other.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut id) } != 0 {
            return None;
        }
        cell.set(Some(id));
        Some(id)
    })
}

fn set_timer(id: libc::timer_t, after: Duration) {
    let repeat = if after.is_zero() {
        Duration::ZERO
    } else {
        ALARM_REPEAT
    };
    let spec = libc::itimerspec {
        it_interval: timespec(repeat),
        it_value: timespec(after),
    };
    // SAFETY: `id` is this thread's live timer and `spec` a valid itimerspec; a null
    // old-value pointer is allowed.
    unsafe { libc::timer_settime(id, 0, &spec, std::ptr::null_mut()) };
}

/// Interrupt the blocking call the calling thread is about to make at `deadline`
/// (SIGALRM to this thread, repeated until the guard is dropped). Not armed when
/// SIGALRM is not caught (a library user or a test without [`Signals::install`]) or
/// no timer can be made: the caller must then bound the call itself.
pub fn alarm_at(deadline: Instant) -> Alarm {
    if !ALARM_CAUGHT.load(Ordering::SeqCst) {
        return Alarm { timer: None };
    }
    let Some(id) = thread_timer() else {
        return Alarm { timer: None };
    };
    // A zero it_value would disarm the timer: at least one microsecond.
    set_timer(
        id,
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(1)),
    );
    Alarm { timer: Some(id) }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(id) = self.timer {
            set_timer(id, Duration::ZERO);
        }
    }
}

//! The loop's one wait. A turn's wait covers every source at once: the DCS reply or
//! watch, and the loop's own descriptors (the signal pipe, rtnetlink notifications, the
//! conflict listener, the metrics server, running hooks). Whoever waits — a DCS client
//! in the middle of a watch or a blocking query, or the loop itself when the DCS has
//! nothing in flight — puts these descriptors in the same `poll(2)`; when one of them
//! is ready the wait ends at once, the DCS client keeping its stream or request for the
//! next wait, and the loop serves the source that woke it.

/// Descriptors that end a wait when ready (their `events`), in addition to the
/// socket the waiter itself is waiting on. Empty: only a signal ends the wait (the
/// handlers interrupt `poll`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Wake<'a> {
    fds: &'a [libc::pollfd],
}

impl<'a> Wake<'a> {
    /// Only a signal ends the wait.
    pub const SIGNALS: Wake<'static> = Wake { fds: &[] };

    pub fn new(fds: &'a [libc::pollfd]) -> Wake<'a> {
        Wake { fds }
    }

    pub fn fds(&self) -> &'a [libc::pollfd] {
        self.fds
    }
}

/// Collects what the loop's sources want to be woken for, and when.
#[derive(Debug, Default)]
pub struct Interest {
    pub fds: Vec<libc::pollfd>,
    deadline: Option<std::time::Instant>,
}

impl Interest {
    /// Start again for the next wait (keeping the allocation).
    pub fn clear(&mut self) {
        self.fds.clear();
        self.deadline = None;
    }

    /// Wake when `fd` is ready for `events` (`POLLIN`, `POLLOUT`).
    pub fn fd(&mut self, fd: std::os::fd::RawFd, events: libc::c_short) {
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
    }

    /// Wake no later than `at`.
    pub fn until(&mut self, at: Option<std::time::Instant>) {
        if let Some(at) = at {
            self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
        }
    }

    /// The earliest time a source asked for.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.deadline
    }

    pub fn wake(&self) -> Wake<'_> {
        Wake::new(&self.fds)
    }

    /// After a wait: find which descriptors are ready now (a `poll` that does not
    /// wait), so that only the sources that have something are served: an idle turn
    /// then costs one look, not one read per source.
    pub fn poll_ready(&mut self) {
        for p in &mut self.fds {
            p.revents = 0;
        }
        if crate::net::sys::poll(&mut self.fds, 0).is_err() {
            // Unknown: every source looks for itself.
            for p in &mut self.fds {
                p.revents = p.events;
            }
        }
    }

    /// Whether `fd` was ready at the last [`Interest::poll_ready`].
    pub fn is_ready(&self, fd: std::os::fd::RawFd) -> bool {
        self.fds.iter().any(|p| p.fd == fd && p.revents != 0)
    }
}

/// Wait until one of `fds` is ready, a signal arrives, or `until`.
pub fn wait_until(fds: &[libc::pollfd], until: std::time::Instant) {
    let left = until.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return;
    }
    // Rounded up to the millisecond: the wait never ends before `until`.
    let ms = left.as_micros().div_ceil(1000).min(86_400_000) as i32;
    let mut fds = fds.to_vec();
    // A signal (EINTR) ends the wait like a ready descriptor; an error leaves nothing
    // to wait on but the clock, which the next wait takes up again.
    let _ = crate::net::sys::poll(&mut fds, ms);
}

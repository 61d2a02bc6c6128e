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
    /// Set by the waiter when one of `fds`, or a signal, ended its wait.
    woken: Option<&'a std::cell::Cell<bool>>,
    /// When the loop's next turn is due, if later than the wait's own deadline (which
    /// an announcement, a probe or a hook's timeout may bring forward): a blocking
    /// query asks the DCS to wait until then and stays in flight across the earlier
    /// wakes, so that those cost no request.
    turn: Option<std::time::Instant>,
}

impl<'a> Wake<'a> {
    /// Only a signal ends the wait.
    pub const SIGNALS: Wake<'static> = Wake {
        fds: &[],
        woken: None,
        turn: None,
    };

    pub fn new(fds: &'a [libc::pollfd]) -> Wake<'a> {
        Wake {
            fds,
            woken: None,
            turn: None,
        }
    }

    /// The same, telling when the loop's next turn is due.
    pub fn until_turn(self, turn: std::time::Instant) -> Wake<'a> {
        Wake {
            turn: Some(turn),
            ..self
        }
    }

    /// When the loop's next turn is due, if it said.
    pub fn turn(&self) -> Option<std::time::Instant> {
        self.turn
    }

    pub fn fds(&self) -> &'a [libc::pollfd] {
        self.fds
    }

    /// The waiter says one of the descriptors (or a signal) ended its wait.
    pub fn woke(&self) {
        if let Some(woken) = self.woken {
            woken.set(true);
        }
    }
}

/// Collects what the loop's sources want to be woken for, and when.
#[derive(Debug, Default)]
pub struct Interest {
    pub fds: Vec<libc::pollfd>,
    deadline: Option<std::time::Instant>,
    /// A DCS wait was ended by one of `fds` (or a signal): their readiness is not
    /// known yet ([`Interest::poll_ready`]).
    woken: std::cell::Cell<bool>,
    /// The descriptors one source names, to look up ([`Interest::any_ready`]); kept
    /// for its allocation.
    scratch: Vec<libc::pollfd>,
}

impl Interest {
    /// Start again for the next wait (keeping the allocation).
    pub fn clear(&mut self) {
        self.fds.clear();
        self.deadline = None;
        self.woken.set(false);
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
        Wake {
            fds: &self.fds,
            woken: Some(&self.woken),
            turn: None,
        }
    }

    /// After a DCS wait: when one of the descriptors ended it, find which are ready (a
    /// `poll` that does not wait), so that only the sources that have something are
    /// served. A wait that ended at its deadline or on the DCS leaves them all unready,
    /// and [`wait_until`] finds them itself: an idle turn costs no extra look.
    pub fn poll_ready(&mut self) {
        if !self.woken.replace(false) {
            return;
        }
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

    /// Whether `fd` was ready after the wait.
    pub fn is_ready(&self, fd: std::os::fd::RawFd) -> bool {
        self.fds.iter().any(|p| p.fd == fd && p.revents != 0)
    }

    /// Whether any of the descriptors that `name` pushes (a source's `interest`) was
    /// ready after the wait.
    pub fn any_ready(&mut self, name: impl FnOnce(&mut Vec<libc::pollfd>)) -> bool {
        let mut mine = std::mem::take(&mut self.scratch);
        mine.clear();
        name(&mut mine);
        let ready = mine.iter().any(|p| self.is_ready(p.fd));
        self.scratch = mine;
        ready
    }
}

/// Wait until one of `interest`'s descriptors is ready (their `revents` say which), a
/// signal arrives, or `until`.
pub fn wait_until(interest: &mut Interest, until: std::time::Instant) {
    match crate::net::sys::poll_until(&mut interest.fds, until) {
        Ok(_) => {}
        // A signal ends the wait like a ready descriptor (its pipe is readable); on
        // any error, every source looks for itself.
        Err(_) => interest.woken.set(true),
    }
}

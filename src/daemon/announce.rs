//! Announcements of the VIP (gratuitous ARP or unsolicited neighbour advertisements):
//! a burst of `announce-count` at fixed deadlines after each add, never more than
//! `announce-count` in any second however fast the leader key flaps.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Daemon;
use crate::dcs::Dcs;
use crate::net::{AddrBackend, LinkInfo};

/// The window of the announcement rate limit: at most `announce-count` per window.
const ANNOUNCE_RATE_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Burst {
    remaining: u32,
    next: Instant,
}

/// The running burst, and when the last announcements went out (at most
/// `announce-count` of them, for the rate limit).
#[derive(Debug, Default)]
pub(super) struct Pacing {
    burst: Option<Burst>,
    sent: VecDeque<Instant>,
}

impl Pacing {
    pub fn stop(&mut self) {
        self.burst = None;
    }
}

impl<D: Dcs, B: AddrBackend> Daemon<D, B> {
    /// Start a burst of announcements: the first one now.
    pub(super) fn start_announcing(&mut self, now: Instant, link: &LinkInfo) {
        // A routed failover IP reaches this server through the provider's router.
        if !self.cfg.announces() {
            return;
        }
        self.pacing.burst = (self.cfg.announce_count > 0).then_some(Burst {
            remaining: self.cfg.announce_count,
            next: now,
        });
        self.announce_due(now, Some(link));
    }

    /// When the next announcement is due, if one is.
    pub(super) fn next_announcement(&self) -> Option<Instant> {
        self.pacing.burst.map(|b| b.next)
    }

    /// One announcement now, outside a burst (a running burst already announces): sent
    /// at once unless the rate limit postpones it.
    pub(super) fn announce_once(&mut self, now: Instant) {
        if self.cfg.announce_count == 0 || self.pacing.burst.is_some() {
            return;
        }
        self.pacing.burst = Some(Burst {
            remaining: 1,
            next: now,
        });
        let link = self.link_seen;
        self.announce_due(now, link.as_ref());
    }

    /// Send the announcement that is due at `now`, if any. `link` saves a lookup when
    /// the caller has just read it. A link that is down postpones the burst (it is
    /// started again when the link comes up).
    pub(super) fn announce_due(&mut self, now: Instant, link: Option<&LinkInfo>) {
        let Some(mut burst) = self.pacing.burst.filter(|b| now >= b.next) else {
            return;
        };
        let Some(link) = link.copied().or_else(|| self.link_to_announce_on()) else {
            self.pacing.stop();
            return;
        };
        if !link.up {
            log::debug!(
                "{} is down: announcements stop until it is up",
                self.cfg.interface
            );
            self.pacing.stop();
            return;
        }
        // A flapping leader key restarts the burst on every add: the rate limit
        // postpones this one if needed.
        let count = self.cfg.announce_count as usize;
        let sent = &mut self.pacing.sent;
        if let Some(&oldest) = sent.front().filter(|_| sent.len() >= count) {
            let allowed = oldest + ANNOUNCE_RATE_WINDOW;
            if now < allowed {
                burst.next = allowed;
                self.pacing.burst = Some(burst);
                return;
            }
        }
        let vip = self.cfg.vip;
        match self.net.announce(&link, vip, self.cfg.announce_mode) {
            Ok(()) => {
                self.metrics.announcements += 1;
                log::debug!("announced {} ({} left)", vip.addr, burst.remaining - 1)
            }
            Err(e) => log::warn!("announcing {}: {e}", vip.addr),
        }
        // The send time, never earlier than the clock: a caller's `now` taken before
        // a slow turn must not let one more announcement into the window.
        sent.push_back(now.max(Instant::now()));
        while sent.len() > count {
            sent.pop_front();
        }
        burst.remaining -= 1;
        // Fixed deadlines from the first announcement, so the spacing does not drift
        // by the loop's lateness; never in the past, so a late loop does not burst.
        burst.next = (burst.next + self.cfg.announce_interval).max(now);
        self.pacing.burst = (burst.remaining > 0).then_some(burst);
    }

    /// The link to announce on, read again; `None` when it cannot be.
    fn link_to_announce_on(&mut self) -> Option<LinkInfo> {
        match self.net.link(&self.cfg.interface) {
            // Gone: the turn reports it; a new burst starts when it is back.
            Ok(link) => link,
            Err(e) => {
                log::warn!("announcing {}: {e}", self.cfg.vip.addr);
                None
            }
        }
    }
}

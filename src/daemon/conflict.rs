//! A second holder of the VIP. While this node holds it, claims by other machines are
//! listened for and a silent holder is probed for ([`crate::net::conflict`]); a claim
//! is counted, logged once a minute per foreign MAC, passed to the `on-change`
//! program, and answered with one announcement (within the announcement rate limit)
//! while this node is known to lead. While this node does not hold the VIP, nothing
//! is probed, and what the listener still receives (only frames claiming the VIP pass
//! its filter: the holder's announcements) is read and ignored.
//!
//! The listener is opened when this node first holds the VIP and then kept for as
//! long as the interface and the VIP stay the same, whether the VIP is held or not:
//! closing an `AF_PACKET` socket waits in the kernel for an RCU grace period (tens of
//! milliseconds, far more on a loaded machine), and a leader key that flaps must never
//! stall the loop in `close(2)` at every removal.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::Daemon;
use crate::dcs::{Dcs, Observation};
use crate::decide::Reason;
use crate::hooks::Kind;
use crate::net::AddrBackend;
use crate::net::conflict::Claims;
use crate::wake::Interest;

/// A foreign MAC is warned about at most once in this time.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The first probe follows taking the VIP by this much (or the probe interval, when
/// shorter): long enough for a holder that is releasing it in the same failover to
/// be done, short enough to find a stale one at once.
const FIRST_PROBE: Duration = Duration::from_secs(1);
/// Foreign MACs remembered for the once-a-minute warning; a flood of forged MACs
/// forgets the oldest rather than growing.
const REMEMBERED: usize = 64;

/// The listener while the VIP is held, and what was warned about.
#[derive(Default)]
pub(super) struct Conflicts {
    open: Option<Open>,
    /// Where opening the listener failed (or the backend has none), so that it is not
    /// tried at every wake; cleared when the VIP is not held.
    failed: Option<(u32, IpAddr)>,
    pub(super) warned: VecDeque<([u8; 6], Instant)>,
    /// The claims of one wake (kept for its allocation).
    found: Vec<[u8; 6]>,
}

impl Conflicts {
    /// Whether `mac` was not warned about in the last [`WARN_EVERY`] (and remember it).
    pub(super) fn first_in_a_while(&mut self, mac: [u8; 6], now: Instant) -> bool {
        self.warned
            .retain(|(_, at)| now.saturating_duration_since(*at) < WARN_EVERY);
        if self.warned.iter().any(|(m, _)| *m == mac) {
            return false;
        }
        if self.warned.len() >= REMEMBERED {
            self.warned.pop_front();
        }
        self.warned.push_back((mac, now));
        true
    }
}

struct Open {
    claims: Box<dyn Claims>,
    ifindex: u32,
    vip: IpAddr,
    /// This interface's MAC: claims naming it are ours; probes are sent from it.
    mac: [u8; 6],
    next_probe: Option<Instant>,
    /// This node holds the VIP on a link that is up: claims count, probes go out.
    holding: bool,
    /// A failed probe was logged (once per holding).
    probe_failed: bool,
}

/// `aa:bb:cc:dd:ee:ff`.
fn mac_text(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

impl<D: Dcs, B: AddrBackend> Daemon<D, B> {
    /// The listener's descriptor, for the loop's readiness check.
    pub(super) fn conflict_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.conflicts.open.as_ref()?.claims.fd())
    }

    /// The listener's descriptor and the next probe, for the loop's wait.
    pub(super) fn conflict_interest(&self, interest: &mut Interest) {
        if let Some(open) = &self.conflicts.open {
            interest.fd(open.claims.fd(), libc::POLLIN);
            interest.until(open.next_probe.filter(|_| open.holding));
        }
    }

    /// After every wake and turn: open or close the listener to match whether the VIP
    /// is held, read the claims queued, and send the probe that is due.
    pub(super) fn conflict_step(&mut self, now: Instant, readable: bool) {
        // Without announcements there are none of another holder's to hear.
        if !self.cfg.announces() {
            self.conflicts.open = None;
            return;
        }
        self.conflict_sync(now);
        let Some(open) = self.conflicts.open.as_mut() else {
            return;
        };
        let mut found = std::mem::take(&mut self.conflicts.found);
        found.clear();
        if readable {
            open.claims.drain(open.mac, &mut found);
        }
        if !open.holding {
            // Another holder's announcements are normal here.
            found.clear();
        }
        if let Some(due) = open.next_probe.filter(|at| open.holding && now >= *at) {
            if let Err(e) = open.claims.probe(open.mac) {
                if !open.probe_failed {
                    log::warn!("probing for other holders of {}: {e}", open.vip);
                }
                open.probe_failed = true;
            }
            let every = self.cfg.conflict_probe_interval;
            // Fixed steps, never in the past: a late loop does not probe in a burst.
            open.next_probe = every.map(|p| (due + p).max(now));
        }
        if !found.is_empty() {
            let own = open.mac;
            self.claimed(&found, own, now);
        }
        self.conflicts.found = found;
    }

    /// Open the listener when the VIP is first held on a link that is up, and keep it
    /// while the interface and the VIP stay the same (see the module documentation);
    /// probe only while holding; follow a changed probe interval.
    fn conflict_sync(&mut self, now: Instant) {
        let held = self.last_turn.as_ref().is_some_and(|t| t.configured);
        let link = self.link_seen;
        let holding = held && link.is_some_and(|l| l.up);
        let every = self.cfg.conflict_probe_interval;
        let vip = self.cfg.vip.addr;
        if let (Some(open), Some(l)) = (self.conflicts.open.as_mut(), link) {
            if open.ifindex == l.index && open.vip == vip {
                open.mac = l.mac;
                open.holding = holding;
                match (every, open.next_probe) {
                    (Some(p), None) if holding => {
                        open.next_probe = Some(now + p.min(FIRST_PROBE));
                        open.probe_failed = false;
                    }
                    (Some(_), Some(_)) if holding => {}
                    _ => open.next_probe = None,
                }
                return;
            }
        }
        if link.is_some() && self.conflicts.open.take().is_some() {
            log::debug!("no longer listening for other holders of the VIP");
        }
        let Some((ifindex, vip, mac)) = link
            .filter(|_| holding && self.conflicts.open.is_none())
            .map(|l| (l.index, vip, l.mac))
        else {
            if !held {
                self.conflicts.failed = None;
            }
            return;
        };
        if self.conflicts.failed == Some((ifindex, vip)) {
            return;
        }
        match self.net.listen_claims(ifindex, vip) {
            Ok(Some(claims)) => {
                log::debug!("listening for other holders of {vip}");
                self.conflicts.open = Some(Open {
                    claims,
                    ifindex,
                    vip,
                    mac,
                    next_probe: every.map(|p| now + p.min(FIRST_PROBE)),
                    holding: true,
                    probe_failed: false,
                });
            }
            Ok(None) => self.conflicts.failed = Some((ifindex, vip)),
            Err(e) => {
                log::warn!("cannot listen for other holders of {vip}: {e}");
                self.conflicts.failed = Some((ifindex, vip));
            }
        }
    }

    /// Other machines (`macs`, one per claim) claim the VIP this node holds as `own`.
    fn claimed(&mut self, macs: &[[u8; 6]], own: [u8; 6], now: Instant) {
        self.metrics.conflicts += macs.len() as u64;
        let Some(last) = self.last_turn.clone() else {
            return;
        };
        // Only a fact that this node leads (the DCS says so, or this node's Patroni
        // while the DCS is silent) is worth taking the address back for; while a grace
        // merely keeps the VIP, the other holder may be the new leader.
        let leads = matches!(
            last.decision.1,
            Reason::ThisNodeLeads | Reason::PatroniServes
        );
        let (vip, iface) = (self.cfg.vip.addr, self.cfg.interface.clone());
        for &mac in macs {
            if !self.conflicts.first_in_a_while(mac, now) {
                continue;
            }
            let answer = if leads {
                "announcing it again"
            } else {
                "not announcing it while only the grace keeps it"
            };
            log::warn!(
                "conflict: another machine claims {vip} with MAC {} (this node holds it on \
                 {iface} with {}); {answer}",
                mac_text(mac),
                mac_text(own)
            );
            self.hook(Kind::Conflict, &last.observation);
        }
        if leads {
            self.reannounce_if_still_leading(now);
        }
    }

    /// A claim is most often the new leader's first announcement in a switchover,
    /// arriving a moment before this node's watch reports the change. Taking the address
    /// back then would pull the clients to the old node. So the DCS is asked afresh
    /// first (the watch dropped, a linearizable read): the new leader announced only
    /// after the change was committed, so that read sees it. Only when it still names
    /// this node is the announcement sent; otherwise the loop turns at once on what it
    /// read. Claims are rare (a switchover, a real conflict), and so are these reads.
    fn reannounce_if_still_leading(&mut self, now: Instant) {
        self.dcs.forget();
        let obs = self.dcs.observe(Instant::now() + self.cfg.interval);
        match &obs {
            Observation::Leader(name) if *name == self.cfg.trigger_value => {
                self.announce_once(now);
            }
            other => log::info!("the DCS now says {other}: not announcing the VIP again"),
        }
        // The watch was dropped: the next turn reads and sets it up again, at once.
        self.turn_now = true;
    }
}

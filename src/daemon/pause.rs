//! Noticing that this process did not run for a while: stopped (SIGSTOP, a debugger,
//! a frozen cgroup) or the machine suspended. What vipd knew before such a pause may
//! be stale by the pause's length (the key may have moved twice, a watch may have
//! been dropped by the server), so the loop reads the DCS afresh before acting on it.
//!
//! A stop shows as a loop iteration that took longer than the loop's own pace allows
//! (`Instant` runs on while stopped); a suspend shows as the boot clock running ahead
//! of `Instant`, which stands still while the machine sleeps.

use std::time::{Duration, Instant};

use crate::net::sys::boottime;

/// More than this of the boot clock ahead of `Instant` is a suspend (they otherwise
/// move together).
const SUSPEND_SLACK: Duration = Duration::from_millis(500);

/// A pause: how long the loop did not run, and how much of it the machine slept
/// (time `Instant` did not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pause {
    pub(super) total: Duration,
    pub(super) suspended: Duration,
}

/// A pause, if there was one: `ran` is the iteration's time by `Instant`, `suspended`
/// how far the boot clock got ahead of it, `bound` the longest iteration the loop's
/// own pace allows.
pub(super) fn judge(ran: Duration, suspended: Duration, bound: Duration) -> Option<Pause> {
    let suspended = if suspended > SUSPEND_SLACK {
        suspended
    } else {
        Duration::ZERO
    };
    (ran > bound || suspended > Duration::ZERO).then_some(Pause {
        total: ran + suspended,
        suspended,
    })
}

/// The clocks at the last look.
pub(super) struct PauseWatch {
    mono: Instant,
    boot: Option<Duration>,
}

impl PauseWatch {
    pub(super) fn new() -> PauseWatch {
        PauseWatch {
            mono: Instant::now(),
            boot: boottime(),
        }
    }

    /// The pause since the last look, if any (see [`judge`]).
    pub(super) fn look(&mut self, bound: Duration) -> Option<Pause> {
        let (mono, boot) = (Instant::now(), boottime());
        let ran = mono.saturating_duration_since(self.mono);
        let suspended = match (boot, self.boot) {
            (Some(now), Some(then)) => now.saturating_sub(then).saturating_sub(ran),
            _ => Duration::ZERO,
        };
        (self.mono, self.boot) = (mono, boot);
        judge(ran, suspended, bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_and_suspends_are_pauses_the_loops_own_pace_is_not() {
        let ms = Duration::from_millis;
        let bound = ms(3000);
        assert_eq!(judge(ms(1000), ms(0), bound), None);
        assert_eq!(judge(ms(3000), ms(400), bound), None, "clock drift");
        let stop = Pause {
            total: ms(9000),
            suspended: ms(0),
        };
        assert_eq!(judge(ms(9000), ms(0), bound), Some(stop));
        let suspend = Pause {
            total: ms(60_100),
            suspended: ms(60_000),
        };
        assert_eq!(judge(ms(100), ms(60_000), bound), Some(suspend));
    }

    #[test]
    fn the_clocks_are_read() {
        let mut w = PauseWatch::new();
        assert!(w.boot.is_some(), "CLOCK_BOOTTIME");
        assert_eq!(w.look(Duration::from_secs(1)), None);
    }
}

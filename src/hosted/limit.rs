//! A provider's documented request limit, kept on vipd's side: at most `limit` calls in
//! any window of `per`. A call the window has no room for is not made; the caller is
//! told when there will be room, and retries then. Hetzner counts per account (Robot)
//! or per project (Cloud), so other clients may use part of the allowance: the
//! provider's own refusal (rate-limit errors) is honoured as well.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Window {
    limit: usize,
    per: Duration,
    /// When the calls in the current window were made, oldest first.
    calls: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: usize, per: Duration) -> Window {
        Window {
            limit: limit.max(1),
            per,
            calls: VecDeque::with_capacity(limit.max(1)),
        }
    }

    /// Count a call at `now` if the window has room; otherwise when it will have.
    pub fn admit(&mut self, now: Instant) -> Result<(), Instant> {
        while self
            .calls
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= self.per)
        {
            self.calls.pop_front();
        }
        if self.calls.len() >= self.limit {
            // Bounded: the queue never holds more than `limit` entries.
            return Err(self.calls[0] + self.per);
        }
        self.calls.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_limit_calls_in_any_window() {
        let t0 = Instant::now();
        let per = Duration::from_secs(3600);
        let mut w = Window::new(3, per);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(w.admit(at(0)), Ok(()));
        assert_eq!(w.admit(at(10)), Ok(()));
        assert_eq!(w.admit(at(20)), Ok(()));
        // Full: room again when the first call leaves the window.
        assert_eq!(w.admit(at(30)), Err(at(3600)));
        assert_eq!(w.admit(at(3599)), Err(at(3600)));
        assert_eq!(w.admit(at(3600)), Ok(()));
        assert_eq!(w.admit(at(3605)), Err(at(3610)));
        // A refused call is not counted.
        assert_eq!(w.calls.len(), 3);
    }
}

//! Tripletex-style rate limiting: a fixed window of N requests per period for each
//! (consumer token, employee token) pair.
//!
//! Invariants: windows run on the monotonic `tokio::time::Instant` (real time, never the injected
//! clock), so moving a `ManualClock` for token expiry never refills a window; every request of a
//! pair counts, including rejected ones; changing the limit starts every window afresh.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// What the limiter says about one request, and the headers it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed {
        limit: u32,
        remaining: u32,
        /// Whole seconds left in the window, rounded up.
        reset: u64,
    },
    Limited {
        limit: u32,
    },
}

impl Verdict {
    pub(crate) fn remaining(self) -> u32 {
        match self {
            Verdict::Allowed { remaining, .. } => remaining,
            Verdict::Limited { .. } => 0,
        }
    }
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u32,
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u32,
    period: Duration,
    windows: HashMap<(String, String), Window>,
}

impl RateLimiter {
    pub(crate) fn new(limit: u32, period: Duration) -> Self {
        Self {
            limit,
            period,
            windows: HashMap::new(),
        }
    }

    pub(crate) fn configure(&mut self, limit: u32, period: Duration) {
        self.limit = limit;
        self.period = period;
        self.windows.clear();
    }

    pub(crate) fn hit(&mut self, consumer: &str, employee: &str, now: Instant) -> Verdict {
        let period = self.period;
        let window = self
            .windows
            .entry((consumer.to_owned(), employee.to_owned()))
            .or_insert(Window {
                started: now,
                used: 0,
            });
        if now.duration_since(window.started) >= period {
            *window = Window {
                started: now,
                used: 0,
            };
        }
        window.used = window.used.saturating_add(1);
        if window.used > self.limit {
            return Verdict::Limited { limit: self.limit };
        }
        let left = period.saturating_sub(now.duration_since(window.started));
        Verdict::Allowed {
            limit: self.limit,
            remaining: self.limit - window.used,
            reset: left.as_millis().div_ceil(1000) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_fills_then_refills_after_period() {
        let mut limiter = RateLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(
            limiter.hit("c", "e", t0),
            Verdict::Allowed {
                limit: 2,
                remaining: 1,
                reset: 10
            }
        );
        let later = t0 + Duration::from_millis(2500);
        assert_eq!(
            limiter.hit("c", "e", later),
            Verdict::Allowed {
                limit: 2,
                remaining: 0,
                reset: 8
            }
        );
        assert_eq!(limiter.hit("c", "e", later), Verdict::Limited { limit: 2 });
        // Another employee of the same consumer has its own window.
        assert_eq!(limiter.hit("c", "other", later).remaining(), 1);
        let next = t0 + Duration::from_secs(10);
        assert_eq!(limiter.hit("c", "e", next).remaining(), 1);
    }
}

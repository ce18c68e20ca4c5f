//! A per-shop circuit breaker for transport failures (connection errors, timeouts, 5xx).
//!
//! After `threshold` consecutive failures the circuit opens and calls fail fast for `cooldown`;
//! then one trial call is let through (half-open): success closes it, failure reopens it. A trial
//! that never reports back (its future was dropped) stops counting after another `cooldown`, so
//! the circuit cannot stay open for good. Opening and closing are logged once each, not per call.
//! The failure that last counted is kept, so a call refused by an open circuit says what the
//! failures were (a 500, a timeout…) instead of a generic "circuit open".

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    /// When the half-open trial call was let through.
    trial_since: Option<Instant>,
    /// The last failure, as the caller named it.
    last: String,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a call may go out now; when not, the failure that keeps the circuit open.
    pub fn allow(&self) -> Result<(), String> {
        let mut s = self.state.lock().expect("breaker lock");
        let now = Instant::now();
        match s.open_until {
            None => Ok(()),
            Some(until)
                if now >= until && s.trial_since.is_none_or(|t| now >= t + self.cooldown) =>
            {
                s.trial_since = Some(now);
                Ok(())
            }
            Some(_) => Err(s.last.clone()),
        }
    }

    pub fn success(&self, shop: &str) {
        let mut s = self.state.lock().expect("breaker lock");
        if s.open_until.is_some() {
            tracing::info!(event = "circuit.closed", shop, "Tripletex reachable again");
        }
        *s = State::default();
    }

    pub fn failure(&self, shop: &str, why: &str) {
        let mut s = self.state.lock().expect("breaker lock");
        s.failures += 1;
        why.clone_into(&mut s.last);
        let was_open = s.open_until.is_some();
        if s.failures >= self.threshold {
            s.open_until = Some(Instant::now() + self.cooldown);
            s.trial_since = None;
            if !was_open {
                tracing::warn!(
                    event = "circuit.open",
                    shop,
                    failures = s.failures,
                    cooldown_s = self.cooldown.as_secs(),
                    error = why,
                    "Tripletex unreachable for this shop; pausing its calls"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_and_half_opens_after_cooldown() {
        let b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..3 {
            assert!(b.allow().is_ok());
            b.failure("acme", "Tripletex answered 500");
        }
        assert_eq!(b.allow(), Err("Tripletex answered 500".to_owned()));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.allow().is_ok(), "one trial after the cooldown");
        assert!(b.allow().is_err(), "only one trial at a time");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(
            b.allow().is_ok(),
            "a trial that never reported back does not block forever"
        );
        b.success("acme");
        assert!(b.allow().is_ok() && b.allow().is_ok());
    }
}

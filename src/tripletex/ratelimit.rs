//! Per-shop request pacing: our own GCRA limit plus Tripletex's `X-Rate-Limit-*` headers.
//!
//! The quota is per employee per consumer token and shared with the shop's own Mystore traffic,
//! so we are polite twice over: governor spaces our requests at `per_second`/`burst`, and once
//! Tripletex says `Remaining` has reached `reserve` we hold the shop's requests until the window's
//! reset instant. Invariants: every wait is cancellable; a request counts against our local idea
//! of `Remaining` before it is sent, so concurrent requests cannot overshoot the reserve; a 429
//! without `Reset` (Tripletex's known bug) falls back to capped exponential backoff with full
//! jitter.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::Cancelled;

/// What the limiter needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
    pub reserve: u32,
    /// First backoff after a 429 without a known reset; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl LimitSettings {
    /// The configured pace, with production backoffs (1 s doubling up to a minute).
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32, reserve: u32) -> Self {
        Self {
            per_second,
            burst,
            reserve,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

pub struct ShopLimiter {
    gcra: DefaultDirectRateLimiter,
    settings: LimitSettings,
    window: Mutex<Window>,
    throttled: AtomicU64,
}

#[derive(Debug, Default)]
struct Window {
    limit: Option<u32>,
    remaining: Option<u32>,
    reset_at: Option<Instant>,
    /// 429s in a row, for the backoff exponent; cleared by the first other response.
    consecutive_429: u32,
    /// The reserve was lowered for a small server limit (logged once).
    reserve_lowered: bool,
}

impl ShopLimiter {
    pub fn new(settings: LimitSettings) -> Self {
        let quota = Quota::per_second(settings.per_second).allow_burst(settings.burst);
        Self {
            gcra: RateLimiter::direct(quota),
            settings,
            window: Mutex::new(Window::default()),
            throttled: AtomicU64::new(0),
        }
    }

    /// Waits until a request may go out, then counts it against the known remaining quota.
    pub async fn acquire(&self, cancel: &CancellationToken) -> Result<(), Cancelled> {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Err(Cancelled),
                _ = self.gcra.until_ready() => {}
            }
            match self.hold_until() {
                None => return Ok(()),
                Some(until) => {
                    tracing::debug!(
                        event = "rate_limit.hold",
                        wait_ms =
                            until.saturating_duration_since(Instant::now()).as_millis() as u64,
                        "remaining quota at reserve; holding until the window resets"
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(Cancelled),
                        _ = tokio::time::sleep_until(until) => {}
                    }
                }
            }
        }
    }

    /// Counts a request that may go right now without waiting; `false` if it would have to wait.
    pub fn try_acquire(&self) -> bool {
        self.gcra.check().is_ok() && self.hold_until().is_none()
    }

    /// `None` when a request may go now (and it is counted); else the instant to wait for.
    fn hold_until(&self) -> Option<Instant> {
        let mut w = self.window.lock().expect("limiter lock");
        let now = Instant::now();
        if w.reset_at.is_some_and(|r| r <= now) {
            // A new window: the server's count starts over.
            w.remaining = w.limit;
            w.reset_at = None;
        }
        let reserve = self.reserve(&mut w);
        match (w.remaining, w.reset_at) {
            (Some(rem), Some(reset)) if rem <= reserve => Some(reset),
            (Some(rem), None) if rem <= reserve => {
                // At the reserve with no reset known: wait one backoff step, then let one request
                // through to learn the window from its headers.
                w.remaining = None;
                Some(now + self.settings.backoff_min)
            }
            _ => {
                if let Some(rem) = w.remaining.as_mut() {
                    *rem = rem.saturating_sub(1);
                }
                None
            }
        }
    }

    /// The configured reserve, or half the server's limit when the reserve would swallow it all:
    /// a reserve at or above the limit would hold the shop forever.
    fn reserve(&self, w: &mut Window) -> u32 {
        let configured = self.settings.reserve;
        match w.limit {
            Some(limit) if configured >= limit => {
                if !w.reserve_lowered {
                    w.reserve_lowered = true;
                    tracing::warn!(
                        event = "rate_limit.reserve_lowered",
                        limit,
                        reserve = configured,
                        using = limit / 2,
                        "Tripletex's limit is not above rate_limit.reserve; keeping half of it in reserve instead"
                    );
                }
                limit / 2
            }
            _ => configured,
        }
    }

    /// Reads Tripletex's limit headers from any response that has them.
    pub fn observe(&self, headers: &HeaderMap) {
        let read =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let limit = read("x-rate-limit-limit");
        let remaining = read("x-rate-limit-remaining");
        let reset = read("x-rate-limit-reset");
        let mut w = self.window.lock().expect("limiter lock");
        if let Some(limit) = limit {
            w.limit = Some(limit.min(u64::from(u32::MAX)) as u32);
        }
        let now = Instant::now();
        // `Reset` is whole seconds left; rounding is undocumented, so allow one more.
        // A day caps what a broken header can make us wait.
        let new_reset = reset.map(|s| now + Duration::from_secs(s.saturating_add(1).min(86_400)));
        // Responses may arrive out of order: within one window keep the lowest count seen.
        let same_window = match (w.reset_at, new_reset) {
            (Some(old), Some(new)) => new <= old + Duration::from_secs(1),
            _ => true,
        };
        if let Some(remaining) = remaining {
            let remaining = remaining.min(u64::from(u32::MAX)) as u32;
            w.remaining = Some(match w.remaining {
                Some(known) if same_window => known.min(remaining),
                _ => remaining,
            });
        }
        if new_reset.is_some() {
            w.reset_at = new_reset;
        }
    }

    /// A response other than 429 arrived: the next 429 starts the backoff afresh.
    pub fn settled(&self) {
        self.window.lock().expect("limiter lock").consecutive_429 = 0;
    }

    /// Records a 429 and says how long to wait before retrying.
    pub fn on_throttled(&self) -> Duration {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        let mut w = self.window.lock().expect("limiter lock");
        w.remaining = Some(0);
        w.consecutive_429 += 1;
        let now = Instant::now();
        match w.reset_at.filter(|r| *r > now) {
            Some(reset) => reset - now,
            None => {
                let cap = self.throttle_cap(w.consecutive_429);
                let wait = full_jitter(cap).max(self.settings.backoff_min);
                // Without a reset header the window is unknown; let the wait stand in for it.
                w.reset_at = Some(now + wait);
                wait
            }
        }
    }

    /// The most the `n`th 429 in a row (1-based) waits without a known reset: doubling from
    /// `backoff_min` up to `backoff_max`.
    fn throttle_cap(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(16);
        self.settings
            .backoff_min
            .saturating_mul(1 << exp)
            .min(self.settings.backoff_max)
    }

    /// How many 429s this shop has met.
    pub fn throttled_count(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

/// A uniformly random duration in `[0, cap]` ("full jitter").
pub fn full_jitter(cap: Duration) -> Duration {
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

/// Capped exponential backoff with full jitter for attempt `n` (0-based).
pub fn backoff(n: u32, min: Duration, max: Duration) -> Duration {
    let cap = min.saturating_mul(1u32 << n.min(16)).min(max);
    full_jitter(cap).max(min / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn settings(reserve: u32) -> LimitSettings {
        LimitSettings {
            per_second: NonZeroU32::new(1000).unwrap(),
            burst: NonZeroU32::new(1000).unwrap(),
            reserve,
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(80),
        }
    }

    fn headers(remaining: u32, reset: Option<u32>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-limit", HeaderValue::from(100));
        h.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
        if let Some(r) = reset {
            h.insert("x-rate-limit-reset", HeaderValue::from(r));
        }
        h
    }

    #[tokio::test]
    async fn holds_at_the_reserve_until_reset() {
        let limiter = ShopLimiter::new(settings(20));
        limiter.observe(&headers(21, Some(5)));
        assert!(limiter.hold_until().is_none(), "21 > reserve: one may go");
        let until = limiter.hold_until().expect("now at the reserve");
        let wait = until - Instant::now();
        // Reset 5 s, plus a second for Tripletex's unknown rounding.
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn out_of_order_responses_keep_the_lowest_count() {
        let limiter = ShopLimiter::new(settings(0));
        limiter.observe(&headers(50, Some(5)));
        limiter.observe(&headers(60, Some(5)));
        assert_eq!(limiter.window.lock().unwrap().remaining, Some(50));
    }

    #[tokio::test]
    async fn a_429_without_reset_backs_off_within_bounds_and_counts() {
        let limiter = ShopLimiter::new(settings(0));
        for _ in 0..6 {
            let wait = limiter.on_throttled();
            assert!(
                wait >= Duration::from_millis(10) && wait <= Duration::from_millis(80),
                "{wait:?}"
            );
            limiter.window.lock().unwrap().reset_at = None;
        }
        assert_eq!(limiter.throttled_count(), 6);
    }

    #[tokio::test]
    async fn a_429_storm_backs_off_further_each_time_although_429s_carry_remaining() {
        let limiter = ShopLimiter::new(settings(0));
        let mut caps = Vec::new();
        for n in 1..=5 {
            limiter.observe(&headers(0, None));
            let wait = limiter.on_throttled();
            assert_eq!(limiter.window.lock().unwrap().consecutive_429, n);
            let cap = limiter.throttle_cap(n);
            assert!(
                (Duration::from_millis(10)..=cap).contains(&wait),
                "429 #{n}: waited {wait:?}, cap {cap:?}"
            );
            caps.push(cap.as_millis());
            limiter.window.lock().unwrap().reset_at = None;
        }
        // The bound on the wait doubles with each 429 in a row, up to backoff_max.
        assert_eq!(caps, [10, 20, 40, 80, 80]);
        limiter.settled();
        assert_eq!(limiter.window.lock().unwrap().consecutive_429, 0);
    }

    #[tokio::test]
    async fn a_server_limit_below_the_reserve_lowers_the_reserve_instead_of_stalling() {
        let limiter = ShopLimiter::new(settings(20));
        let mut h = headers(15, Some(0));
        h.insert("x-rate-limit-limit", HeaderValue::from(15));
        limiter.observe(&h);
        // Reserve becomes 15 / 2 = 7: requests go until 7 remain.
        for _ in 0..8 {
            assert!(limiter.hold_until().is_none());
        }
        assert!(limiter.hold_until().is_some());
    }

    #[tokio::test]
    async fn reset_zero_is_not_taken_for_a_new_window() {
        let limiter = ShopLimiter::new(settings(20));
        limiter.observe(&headers(20, Some(0)));
        assert!(
            limiter.hold_until().is_some(),
            "still the old window, at the reserve"
        );
    }

    #[tokio::test]
    async fn at_the_reserve_without_a_reset_one_request_goes_after_a_backoff_step() {
        let limiter = ShopLimiter::new(settings(20));
        limiter.observe(&headers(20, None));
        assert!(limiter.hold_until().is_some());
        assert!(
            limiter.hold_until().is_none(),
            "then one goes, to learn the window"
        );
    }

    #[tokio::test]
    async fn a_429_after_a_known_reset_waits_for_that_reset() {
        let limiter = ShopLimiter::new(settings(0));
        limiter.observe(&headers(3, Some(2)));
        let wait = limiter.on_throttled();
        assert!(wait > Duration::from_millis(2900), "{wait:?}");
    }

    #[tokio::test]
    async fn acquire_is_cancellable_while_holding() {
        let limiter = ShopLimiter::new(settings(20));
        limiter.observe(&headers(20, Some(3600)));
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(limiter.acquire(&cancel).await.is_err());
    }
}

//! The HTTP layer's tunables: plain values the caller fills in (config does, for the daemon; this
//! module does not know the configuration), and the [`Observer`] that hears what the client does.

use std::sync::Arc;
use std::time::Duration;

use super::observer::Observer;
use super::ratelimit::LimitSettings;

/// Tunables of the HTTP layer that tests shrink; production builds them with
/// [`ClientSettings::new`] from what the operator configures.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub request_timeout: Duration,
    pub session_valid_days: u32,
    pub renew_before: Duration,
    pub limits: LimitSettings,
    /// Tries for idempotent requests that fail with 5xx, timeouts or connection errors.
    pub max_tries: u32,
    /// 429s in a row on one request before giving up on it.
    pub max_throttled: u32,
    /// Consecutive transport failures that open the circuit, and how long it stays open.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// Largest answer read, on the wire and decompressed ([`DEFAULT_MAX_BODY`]).
    pub max_body: usize,
    /// Hears of every request answered, mint and limiter wait (the daemon's metrics registry).
    pub observer: Option<Arc<dyn Observer>>,
    /// Keep-alive connections kept open while idle. Each holds ~17 KiB (hyper's buffers); without
    /// a bound the pool keeps every connection a burst opened (473 at 10 000 shops' first pass).
    pub max_idle_connections: usize,
}

/// One page of 1000 rows with `fields` cut down is well under 1 MiB; 32 MiB leaves room for a
/// Tripletex that ignores `fields`, and keeps a hostile answer from taking the process's memory.
pub const DEFAULT_MAX_BODY: usize = 32 << 20;

/// As many as passes run at once by default (`rate_limit.max_concurrent_shops`).
pub const DEFAULT_IDLE_CONNECTIONS: usize = 32;

impl ClientSettings {
    /// The configurable values, with this layer's production values for the rest.
    pub fn new(
        request_timeout: Duration,
        session_valid_days: u32,
        renew_before: Duration,
        limits: LimitSettings,
    ) -> Self {
        Self {
            request_timeout,
            session_valid_days,
            renew_before,
            limits,
            max_tries: 3,
            max_throttled: 8,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(60),
            max_body: DEFAULT_MAX_BODY,
            observer: None,
            max_idle_connections: DEFAULT_IDLE_CONNECTIONS,
        }
    }
}

//! Talking to Tripletex API v2: sessions, pacing, retries and typed responses.
//!
//! [`Tripletex`] is shared by all shops (one pooled HTTP client, the consumer token, the clock);
//! [`ShopClient`] is one shop's view: its employee token, session, rate limiter and circuit
//! breaker. Every request sent is a valid, non-deprecated operation of Tripletex's OpenAPI spec.
//! This module knows HTTP, not sled: callers persist what [`ShopClient::session_info`] reports.

mod breaker;
mod client;
pub mod model;
pub mod ratelimit;
mod session;

use std::time::Duration;

pub use client::{Fetched, ShopClient, Tripletex};
pub use ratelimit::LimitSettings;
pub use session::{Closed, EXPIRY_MARGIN, SessionInfo};

/// Returned by every wait when the daemon is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutting down")]
pub struct Cancelled;

/// Tunables of the HTTP layer that tests shrink; production uses [`ClientSettings::new`].
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
}

impl ClientSettings {
    pub fn new(config: &crate::config::Config) -> Self {
        let r = &config.rate_limit;
        Self {
            request_timeout: config.tripletex.request_timeout,
            session_valid_days: config.tripletex.session_valid_days,
            renew_before: config.tripletex.renew_before,
            limits: LimitSettings {
                per_second: r.per_second,
                burst: r.burst,
                reserve: r.reserve,
                backoff_min: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
            },
            max_tries: 3,
            max_throttled: 8,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(60),
        }
    }
}

/// Why a Tripletex call failed, in the categories callers branch on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TripletexError {
    /// The employee token is wrong or revoked, or the company lacks the Integrations add-on.
    #[error("Tripletex rejected the employee key ({status}: {message})")]
    KeyRejected { status: u16, message: String },
    /// The consumer token itself was refused: a deployment problem, not a shop's.
    #[error("Tripletex rejected the consumer token ({status}: {message})")]
    ConsumerRejected { status: u16, message: String },
    /// 403 on an endpoint: the key lacks an access.
    #[error("the key cannot {access}")]
    Forbidden { access: String },
    /// A second 401 after a fresh session.
    #[error("Tripletex refused the session twice (401)")]
    Unauthorized,
    /// The session token died while the request waited (limiter, 429s, backoff); it was not sent.
    #[error("the session expired while the request waited")]
    SessionExpired,
    #[error("Tripletex answered {status} (code {code}): {message}")]
    Api {
        status: u16,
        code: i64,
        message: String,
    },
    #[error("Tripletex unavailable: {0}")]
    Unavailable(String),
    #[error("Tripletex sent an unreadable response: {0}")]
    Decode(String),
    #[error("Tripletex kept answering 429 ({0} times in a row)")]
    Throttled(u32),
    #[error("circuit open after repeated connection failures")]
    CircuitOpen,
    #[error("shutting down")]
    Cancelled,
}

impl From<Cancelled> for TripletexError {
    fn from(_: Cancelled) -> Self {
        Self::Cancelled
    }
}

impl TripletexError {
    /// What the operator should do, in the seed's words, where there is a known fix.
    pub fn remedy(&self) -> Option<String> {
        match self {
            // 403 means the key is known but may not log in: the company lacks the add-on.
            Self::KeyRejected { status: 403, .. } => Some(
                "switch on the company's Integrations add-on in Tripletex (the key itself is fine), then reload (systemctl reload tripletex-sync)".into(),
            ),
            Self::KeyRejected { .. } => Some(
                "create a new key in Tripletex under Employee › API access › New key, paste it into the shop's token file, then reload (systemctl reload tripletex-sync)".into(),
            ),
            Self::ConsumerRejected { .. } => Some(
                "check the consumer token file: it must be the token Tripletex issued for this integration, for the same environment as base_url".into(),
            ),
            Self::Forbidden { access } => Some(format!(
                "give the key access to {access} under Employee › API access › the application › accesses",
                access = access.trim_start_matches("read ")
            )),
            _ => None,
        }
    }
}

//! What the client tells whoever watches it: every request answered (or not), every session
//! mint, every wait before a request could go. The daemon's metrics registry implements
//! [`Observer`]; this module stays below it, so the HTTP layer never learns what is counted or
//! where it ends up (and so cannot reach the store through it).
//!
//! Invariants: a request is named by an endpoint label, never by its path (a path can carry a
//! session token: `DELETE /token/session/{token}`); the labels are a closed set: each check kind's
//! `list.metrics_label` and [`OWN_ENDPOINTS`] below.

use std::fmt::Debug;
use std::time::Duration;

/// `POST /token/session/:create`.
pub const SESSION_CREATE: &str = "session_create";
/// `GET /token/session/>whoAmI`.
pub const SESSION_WHOAMI: &str = "session_whoami";
/// `DELETE /token/session/{token}`.
pub const SESSION_DELETE: &str = "session_delete";
/// Everything else (the webhook subscriptions).
pub const OTHER: &str = "other";

/// The labels of the requests that are not a check kind's listing.
pub const OWN_ENDPOINTS: [&str; 4] = [SESSION_CREATE, SESSION_WHOAMI, SESSION_DELETE, OTHER];

/// Hears what one [`super::Tripletex`] does, for every shop (`shop` names which). Called on the
/// request path, so an implementation must be cheap and must not block.
pub trait Observer: Send + Sync + Debug {
    /// A request to `endpoint` came back with `status` (`None`: no answer: timeout, reset,
    /// refused). Every try counts, 429s and retried 5xx included.
    fn answered(&self, shop: &str, endpoint: &'static str, status: Option<u16>);
    /// A session token was minted.
    fn minted(&self, shop: &str);
    /// Time held back by the shop's limiter or a 429 before a request could go.
    fn waited(&self, shop: &str, wait: Duration);
}

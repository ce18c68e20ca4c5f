//! Talking to Tripletex API v2: sessions, pacing, retries and typed responses.
//!
//! [`Tripletex`] is shared by all shops (one pooled HTTP client, the consumer token, the clock);
//! [`ShopClient`] is one shop's view: its employee token, session, rate limiter and circuit
//! breaker. Every request sent is a valid, non-deprecated operation of Tripletex's OpenAPI spec.
//! This module knows HTTP, not sled nor metrics: callers persist what
//! [`ShopClient::session_info`] reports, and an [`Observer`] the caller passes in
//! ([`ClientSettings::observer`]) hears of each request, mint and limiter wait.
//!
//! Its files depend on each other in a line, each only on files before it: `model` (the JSON),
//! `error`, `page` (list answers), `breaker`, `ratelimit`, `observer`, `settings`, `body` (reading
//! answers), `pipeline` (the one send path: breaker, limiter, retries; what all shops share),
//! `proof` (what proves a new session: whoAmI's ids and company), `session` (mint, prove, renew,
//! revoke, through the pipeline), `client` ([`ShopClient`]: the 401 policy, listings),
//! `subscription`. This file only declares and re-exports.

mod body;
mod breaker;
mod client;
mod consumer;
mod error;
pub mod model;
pub mod observer;
pub mod page;
mod pipeline;
mod proof;
pub mod ratelimit;
mod session;
mod settings;
mod subscription;

pub use client::{Fetched, ShopClient};
pub use error::{Cancelled, KeyRefusal, TripletexError};
pub use observer::Observer;
pub use page::Page;
pub use pipeline::Tripletex;
pub use ratelimit::LimitSettings;
pub use session::{Closed, EXPIRY_MARGIN, SessionInfo};
pub use settings::{ClientSettings, DEFAULT_MAX_BODY};
pub use subscription::{Subscription, SubscriptionSpec};

//! What the outbox looks like from outside: the `notify` block of `status.json` (and `status
//! --json`), the outbox's metrics, and the `notify.failed` warning.
//!
//! Invariants: [`Backlog`] is part of the status contract (fields added, never renamed; missing
//! ones read as defaults); `notify.failed` is logged at most once per [`WARN_EVERY`], saying how
//! many failures it stands for, so a platform that is down for a day writes a line a minute, not
//! one per attempt; an error text names the status or the transport problem and the URL (config
//! refuses one with credentials), never a secret.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use super::send::Answer;
use crate::metrics::Metrics;
use crate::store::{Pending, Store};

/// At most one `notify.failed` line this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The outbox in `status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Backlog {
    /// Messages waiting for the platform.
    pub pending: u64,
    pub oldest_pending_at: Option<Timestamp>,
    /// Dead messages kept in the database for inspection (see docs/notify.md).
    pub dead: u64,
    /// Delivered since the daemon started.
    pub delivered: u64,
    pub last_delivered_at: Option<Timestamp>,
    /// The last failed attempt, one line.
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

/// The delivery task's running account, published to the status writer and the metrics.
pub(super) struct Report {
    tx: watch::Sender<Option<Backlog>>,
    now: Backlog,
    warned_at: Option<Instant>,
    unwarned: u64,
}

impl Report {
    pub fn new(tx: watch::Sender<Option<Backlog>>) -> Self {
        let now = tx.borrow().clone().unwrap_or_default();
        Self {
            now,
            tx,
            warned_at: None,
            unwarned: 0,
        }
    }

    /// A read of the outbox found its oldest message made at `oldest` (`None`: it is empty).
    pub fn oldest(&mut self, oldest: Option<Timestamp>) {
        self.now.oldest_pending_at = oldest;
    }

    pub fn delivered(&mut self, at: Timestamp) {
        self.now.delivered += 1;
        self.now.last_delivered_at = Some(at);
    }

    /// An attempt failed at `at`; warns unless one did within [`WARN_EVERY`].
    pub fn failed(&mut self, pending: &Pending, answer: &Answer, at: Timestamp) {
        let error = answer.to_string();
        self.now.last_error_at = Some(at);
        self.unwarned += 1;
        if self.warned_at.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                event = "notify.failed",
                id = %pending.record.id,
                kind = %pending.record.kind,
                shop = %pending.record.group,
                failures = self.unwarned,
                error,
                "the platform did not take a notification; it will be retried"
            );
            self.warned_at = Some(Instant::now());
            self.unwarned = 0;
        }
        self.now.last_error = Some(error);
    }

    /// Sends the account, as of `now`, to the status writer and the metrics; `on`: whether
    /// `[notify]` is configured (else the block shows only while messages are left). The
    /// store's counts are the truth for what is pending and dead.
    pub fn publish(&mut self, store: &Store, metrics: &Metrics, now: Timestamp, on: bool) {
        self.now.pending = store.outbox_pending_count();
        self.now.dead = store.outbox_dead_kept();
        if self.now.pending == 0 {
            self.now.oldest_pending_at = None;
        }
        let age = self
            .now
            .oldest_pending_at
            .map_or(0, |t| now.duration_since(t).as_secs().max(0).unsigned_abs());
        metrics.notify_backlog(self.now.pending, age);
        let shown = (on || self.now.pending > 0 || self.now.dead > 0).then(|| self.now.clone());
        self.tx.send_if_modified(|b| {
            let changed = *b != shown;
            if changed {
                *b = shown;
            }
            changed
        });
    }
}

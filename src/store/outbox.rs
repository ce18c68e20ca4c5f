//! The outbox: messages for the platform that are recorded but not yet delivered, and the dead
//! ones kept for inspection. What a message says is `notify`'s business; here it is a record with
//! a group (the order it keeps), an optional coalescing key and a JSON body.
//!
//! Keys: `outbox/pending/{seq}` and `outbox/dead/{seq}` with `seq` big-endian from sled's
//! monotonic id generator (it never goes back, even after a crash), so a scan is oldest first;
//! `outbox/latest/{coalesce}` names the newest pending message of a coalescing key.
//!
//! Invariants: a message is queued into a [`Batch`] beside what it reports, so it is recorded
//! exactly when that is ([`Store::commit`]); the pending and dead counts change only when a
//! commit holding the change succeeds, and a commit that queued wakes the delivery task; a scan
//! reads lazily from sled (memory does not grow with the backlog); at most [`DEAD_KEPT`] dead
//! messages are kept (the oldest go first). Records carry `v` and read older and newer shapes
//! (unknown fields are ignored, missing ones take their defaults).

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Store, StoreError, decode, skip_corrupt};

const PENDING: &str = "outbox/pending/";
const DEAD: &str = "outbox/dead/";
const LATEST: &str = "outbox/latest/";
/// The record shape this build writes.
const RECORD_VERSION: u32 = 1;
/// Dead messages kept for inspection; older ones are removed as new ones die.
pub const DEAD_KEPT: u64 = 10_000;

/// One message waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    #[serde(default)]
    pub v: u32,
    /// The `webhook-id`: the same on every attempt.
    pub id: String,
    /// The message's type (`check.verdict`, …); a type this build does not know is still sent.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was made; the body's `timestamp` and the start of its `max_age`.
    pub timestamp: Timestamp,
    /// Messages of one group are delivered in order (a shop's name; empty for the integration's
    /// own messages).
    #[serde(default)]
    pub group: String,
    /// Messages with the same key may be merged into the newest when the backlog is full.
    #[serde(default)]
    pub coalesce: Option<String>,
    pub data: Value,
}

impl OutboxRecord {
    pub fn new(
        id: String,
        kind: &str,
        timestamp: Timestamp,
        group: &str,
        coalesce: Option<String>,
        data: Value,
    ) -> Self {
        Self {
            v: RECORD_VERSION,
            id,
            kind: kind.to_owned(),
            timestamp,
            group: group.to_owned(),
            coalesce,
            data,
        }
    }
}

/// A pending message and its place in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub seq: u64,
    pub record: OutboxRecord,
}

/// A message that will not be delivered, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadRecord {
    #[serde(default)]
    pub v: u32,
    pub message: OutboxRecord,
    pub reason: String,
    pub died_at: Timestamp,
}

/// The counts, kept in memory (counted once at open) so the metrics read no sled.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pending: AtomicI64,
    dead: AtomicI64,
    wake: tokio::sync::Notify,
}

impl Counts {
    pub(super) fn count(db: &sled::Db) -> Result<Self, sled::Error> {
        let count = |prefix: &str| -> Result<i64, sled::Error> {
            let mut n = 0;
            for key in db.scan_prefix(prefix).keys() {
                key?;
                n += 1;
            }
            Ok(n)
        };
        Ok(Self {
            pending: AtomicI64::new(count(PENDING)?),
            dead: AtomicI64::new(count(DEAD)?),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Applies what a committed batch changed; wakes the delivery task when it queued.
    pub(super) fn committed(&self, change: &OutboxChange) {
        self.pending.fetch_add(change.pending, Ordering::Relaxed);
        self.dead.fetch_add(change.dead, Ordering::Relaxed);
        if change.queued {
            self.wake.notify_one();
        }
    }
}

/// What a batch does to the outbox, applied to [`Counts`] once it is committed.
#[derive(Debug, Default)]
pub(super) struct OutboxChange {
    pending: i64,
    dead: i64,
    queued: bool,
    /// Old dead messages this batch removes, so a second death in it removes the next one.
    dead_pruned: usize,
}

fn key(prefix: &str, seq: u64) -> Vec<u8> {
    let mut key = prefix.as_bytes().to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn seq_of(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

impl Batch {
    /// Removes a pending message (delivered, merged or dead).
    pub fn outbox_remove(&mut self, pending: &Pending) {
        self.inner.remove(key(PENDING, pending.seq));
        self.outbox.pending -= 1;
    }
}

impl Store {
    /// Queues `record` into `batch`: pending once the batch is committed, after every message
    /// queued before it.
    pub fn outbox_queue(&self, batch: &mut Batch, record: &OutboxRecord) -> Result<(), StoreError> {
        let seq = self.db.generate_id().map_err(self.sled())?;
        if let Some(coalesce) = &record.coalesce {
            batch.inner.insert(
                format!("{LATEST}{coalesce}").into_bytes(),
                &seq.to_be_bytes(),
            );
        }
        batch.put_json(key(PENDING, seq), record);
        batch.outbox.pending += 1;
        batch.outbox.queued = true;
        Ok(())
    }

    /// The newest pending message of `coalesce`, if it is still pending.
    pub fn outbox_latest(&self, coalesce: &str) -> Result<Option<Pending>, StoreError> {
        let Some(seq) = self
            .db
            .get(format!("{LATEST}{coalesce}"))
            .map_err(self.sled())?
            .and_then(|v| seq_of(&v))
        else {
            return Ok(None);
        };
        self.outbox_get(seq)
    }

    fn outbox_get(&self, seq: u64) -> Result<Option<Pending>, StoreError> {
        let key = key(PENDING, seq);
        match self.db.get(&key).map_err(self.sled())? {
            None => Ok(None),
            Some(v) => Ok(Some(Pending {
                seq,
                record: decode(&key, &v)?,
            })),
        }
    }

    /// Held around a read of [`Store::outbox_pending`] that must see every commit whole (no
    /// commit applies meanwhile, so commit nothing while holding it): a commit queues a shop's
    /// messages oldest first, and a scan beside it could otherwise see the newer and not the
    /// older (the delivery would send them out of order).
    pub async fn outbox_quiet(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.group.quiet().await
    }

    /// Pending messages, oldest first, read lazily; one that cannot be read is skipped with a
    /// `store.corrupt` warning (and stays, for an operator to look at).
    pub fn outbox_pending(&self) -> impl Iterator<Item = Result<Pending, StoreError>> + '_ {
        self.db.scan_prefix(PENDING).filter_map(move |kv| {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(e) => return Some(Err(self.sled()(e))),
            };
            let seq = seq_of(&k)?;
            match decode(&k, &v) {
                Ok(record) => Some(Ok(Pending { seq, record })),
                Err(e) => {
                    skip_corrupt(&e);
                    None
                }
            }
        })
    }

    /// Moves `pending` to the dead (into `batch`), keeping at most [`DEAD_KEPT`].
    pub fn outbox_kill(
        &self,
        batch: &mut Batch,
        pending: &Pending,
        reason: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        batch.outbox_remove(pending);
        let dead = DeadRecord {
            v: RECORD_VERSION,
            message: pending.record.clone(),
            reason: reason.to_owned(),
            died_at: at,
        };
        batch.put_json(key(DEAD, pending.seq), &dead);
        batch.outbox.dead += 1;
        let over = self.outbox_dead_count() + batch.outbox.dead - DEAD_KEPT as i64;
        if over > 0 {
            // The oldest beyond what this batch already removes.
            let already = batch.outbox.dead_pruned;
            for k in self.db.scan_prefix(DEAD).keys().skip(already).take(1) {
                batch.inner.remove(k.map_err(self.sled())?);
                batch.outbox.dead -= 1;
                batch.outbox.dead_pruned += 1;
            }
        }
        Ok(())
    }

    /// The newest dead messages, newest first, at most `n`.
    pub fn outbox_dead(&self, n: usize) -> Result<Vec<(u64, DeadRecord)>, StoreError> {
        let mut dead = Vec::new();
        for kv in self.db.scan_prefix(DEAD).rev().take(n) {
            let (k, v) = kv.map_err(self.sled())?;
            match decode(&k, &v) {
                Ok(record) => dead.push((seq_of(&k).unwrap_or(0), record)),
                Err(e) => skip_corrupt(&e),
            }
        }
        Ok(dead)
    }

    /// Pending messages, as of the last commit.
    pub fn outbox_pending_count(&self) -> u64 {
        self.outbox.pending.load(Ordering::Relaxed).max(0) as u64
    }

    fn outbox_dead_count(&self) -> i64 {
        self.outbox.dead.load(Ordering::Relaxed).max(0)
    }

    /// Sets the pending count from a read of the whole outbox, correcting a count that a
    /// message removed twice (delivered while a full outbox dropped it) put off.
    pub fn outbox_recounted(&self, pending: u64) {
        let pending = i64::try_from(pending).unwrap_or(i64::MAX);
        self.outbox.pending.store(pending, Ordering::Relaxed);
    }

    /// Dead messages kept, as of the last commit.
    pub fn outbox_dead_kept(&self) -> u64 {
        self.outbox_dead_count() as u64
    }

    /// Resolves when a commit queues a message (or one was queued since the last wait).
    pub async fn outbox_queued(&self) {
        self.outbox.wake.notified().await;
    }
}

#[cfg(test)]
mod tests;

//! Group commit: shops that commit while a flush is running share the next one.
//!
//! A commit of one write (an idle pass's: its cursor) is a plain insert, not a sled batch: sled's
//! `apply_batch` seals and rolls its log buffer twice (`pin_log`, for the batch's atomicity), so
//! each batch cost two log writes, each synced, whatever the flushes did. One write is
//! atomic by itself and reaches the disk with the next flush, which many commits share: with the
//! idle pass's writes in one record (schema 6), a third less CPU per idle pass (BENCHMARKS.md).
//!
//! Invariants: a commit returns only after a flush that began after its batch was applied has
//! succeeded (so "recorded" still means "on disk"); at most one flush runs at a time, and the
//! commits that arrive meanwhile are all covered by the one after it, so a thousand shops ending
//! their passes together cost a handful of fsyncs, not a thousand; a failed flush is retried by
//! the next waiter rather than reported as a success; a leader dropped mid-flush hands over.
//!
//! Batches and flushes never overlap (one async lock, [`FlushGroup::apply`]): sled's
//! `apply_batch` takes its process-wide concurrency lock exclusively, and a flush holds it shared
//! while it waits; a flush that a write error left waiting forever (see `health.rs`) would then
//! block the batch, and behind that waiting writer every read in the process. Instead, batches
//! wait here, asynchronously, and a flush that takes longer than [`KICK_AFTER`] is kicked with a
//! one-key insert: sled's reservation for it sees the handle's error and wakes the flush, which
//! then fails with it (on a healthy, merely slow disk the insert is a few bytes).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, watch};

/// How long a flush runs before it is kicked (and again each time this passes).
const KICK_AFTER: Duration = Duration::from_secs(1);
/// Where the kick writes (nothing reads it): a value that differs from the one before, since
/// sled skips an insert of the value a key already holds, and a skipped insert reserves nothing
/// in the log and so wakes nothing.
const KICK_KEY: &[u8] = b"meta/flush_kick";

pub(super) struct FlushGroup {
    /// Commits applied so far; a commit's ticket is its position in this count.
    applied: AtomicU64,
    /// Every commit with a ticket up to this value is flushed.
    flushed: watch::Sender<u64>,
    /// Whether some commit is running the flush right now.
    flushing: AtomicBool,
    /// Held by a batch being applied and by the flush: they never overlap.
    sled: Mutex<()>,
}

impl FlushGroup {
    pub fn new() -> Self {
        Self {
            applied: AtomicU64::new(0),
            flushed: watch::Sender::new(0),
            flushing: AtomicBool::new(false),
            sled: Mutex::new(()),
        }
    }

    /// Applies `writes` atomically, never beside a flush (so sled's lock is free for them: they
    /// are in-memory work); the ticket to wait for.
    pub async fn apply(&self, db: &sled::Db, writes: Writes) -> Result<u64, sled::Error> {
        let _alone = self.sled.lock().await;
        let mut writes = writes.0;
        if writes.len() > 1 {
            let mut batch = sled::Batch::default();
            for (key, value) in writes {
                match value {
                    Some(value) => batch.insert(key, value),
                    None => batch.remove(key),
                }
            }
            db.apply_batch(batch)?;
        } else if let Some((key, value)) = writes.pop_first() {
            apply_one(db, key, value)?;
        }
        Ok(self.applied.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Applies each of `writes` on its own, never beside a flush: for writes that need no
    /// atomicity between them (each its own shop's record). A batch pins sled's epoch until its
    /// last write, so every leaf it pulled from the log and every node version it replaced stays
    /// in memory until then: one batch of the stop's thousands of `revoked` records (one leaf a
    /// shop) raised the heap by ~20 MiB at 10 000 shops (BENCHMARKS.md). One write at a time
    /// lets sled free them as it goes, and skips the batch's `pin_log`.
    pub async fn apply_each(&self, db: &sled::Db, writes: Writes) -> Result<u64, sled::Error> {
        let _alone = self.sled.lock().await;
        for (key, value) in writes.0 {
            apply_one(db, key, value)?;
        }
        Ok(self.applied.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Holds off every commit (and flush) while the guard lives: for a read that must see each
    /// commit whole. sled's iterators are no snapshot (they copy a leaf at a time), so a scan
    /// beside a commit can see the commit's keys in a later leaf and miss those in an earlier one.
    pub async fn quiet(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.sled.lock().await
    }

    /// Returns once a flush that started after `ticket` was taken has succeeded, running it when
    /// nobody else is.
    pub async fn flushed(&self, ticket: u64, db: &sled::Db) -> Result<(), sled::Error> {
        let mut seen = self.flushed.subscribe();
        loop {
            if *seen.borrow_and_update() >= ticket {
                return Ok(());
            }
            if self.flushing.swap(true, Ordering::SeqCst) {
                // Someone else's flush is running; it or the next one covers us.
                let _ = seen.changed().await;
                continue;
            }
            let lead = Leader(self);
            let alone = self.sled.lock().await;
            // Everything applied by now is covered by this flush, ours included.
            let target = self.applied.load(Ordering::SeqCst);
            let result = flush(db).await;
            drop(alone);
            if result.is_ok() {
                self.flushed.send_modify(|f| *f = (*f).max(target));
            }
            drop(lead);
            result?;
        }
    }
}

fn apply_one(db: &sled::Db, key: sled::IVec, value: Option<sled::IVec>) -> sled::Result<()> {
    match value {
        Some(value) => db.insert(key, value)?,
        None => db.remove(key)?,
    };
    Ok(())
}

/// Flushes `db`, kicking a flush that takes long (see the module doc). Not `flush_async`: in
/// sled 0.34 concurrent `flush_async` calls can wait forever (spacejam/sled#1241, #1308). A
/// blocking flush on the blocking pool keeps the runtime's workers free. The kick's timer is the
/// wall clock's, beside the flush on the blocking pool, not tokio's: the kick is about a disk,
/// and under tokio's paused time (tests) a tokio timer would fire at once, again and again.
async fn flush(db: &sled::Db) -> Result<(), sled::Error> {
    let (done, waiting) = std::sync::mpsc::channel::<()>();
    let flushing = db.clone();
    let flushed = tokio::task::spawn_blocking(move || {
        let result = flushing.flush();
        drop(done);
        result
    });
    let kick = db.clone();
    tokio::task::spawn_blocking(move || {
        // Ends when the flush does (its sender is dropped).
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = waiting.recv_timeout(KICK_AFTER)
        {
            // Its own result does not matter: the flush reports the handle's error.
            let _ = kick.insert(KICK_KEY, &kick_value());
        }
    });
    flushed
        .await
        .map_err(|e| sled::Error::ReportableBug(e.to_string()))?
        .map(drop)
}

/// A value no kick wrote before, so each kick's insert reaches the log (see [`KICK_KEY`]): the
/// wall clock's nanoseconds (another process's kicks had others) and a count of this process's.
fn kick_value() -> [u8; 16] {
    static KICKS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let nanos = now.map_or(0, |d| d.as_nanos()) as u64;
    let count = KICKS.fetch_add(1, Ordering::Relaxed);
    let mut value = [0; 16];
    value[..8].copy_from_slice(&nanos.to_be_bytes());
    value[8..].copy_from_slice(&count.to_be_bytes());
    value
}

/// The writes of one commit: per key its value, or `None` to remove it; a key's last write wins,
/// as in a `sled::Batch`.
#[derive(Default)]
pub(super) struct Writes(BTreeMap<sled::IVec, Option<sled::IVec>>);

impl Writes {
    pub fn insert(&mut self, key: impl Into<sled::IVec>, value: impl Into<sled::IVec>) {
        self.0.insert(key.into(), Some(value.into()));
    }

    pub fn remove(&mut self, key: impl Into<sled::IVec>) {
        self.0.insert(key.into(), None);
    }
}

/// Held while running the flush; releasing it (also when the leader's future is dropped) lets
/// the waiters elect another.
struct Leader<'a>(&'a FlushGroup);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.0.flushing.store(false, Ordering::SeqCst);
        // Wakes the waiters even when nothing was flushed, so one of them takes over.
        self.0.flushed.send_modify(|_| {});
    }
}

#[cfg(test)]
mod tests {
    /// sled skips an insert of the value a key holds: two kicks in a row must differ.
    #[test]
    fn kicks_write_values_that_differ() {
        assert_ne!(super::kick_value(), super::kick_value());
    }
}

//! Group commit: shops that commit while a flush is running share the next one.
//!
//! Invariants: a commit returns only after a flush that began after its batch was applied has
//! succeeded (so "recorded" still means "on disk"); at most one flush runs at a time, and the
//! commits that arrive meanwhile are all covered by the one after it, so a thousand shops ending
//! their passes together cost a handful of fsyncs, not a thousand; a failed flush is retried by
//! the next waiter rather than reported as a success; a leader dropped mid-flush hands over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::watch;

use super::StoreError;

pub(super) struct FlushGroup {
    /// Commits applied so far; a commit's ticket is its position in this count.
    applied: AtomicU64,
    /// Every commit with a ticket up to this value is flushed.
    flushed: watch::Sender<u64>,
    /// Whether some commit is running the flush right now.
    flushing: AtomicBool,
}

impl FlushGroup {
    pub fn new() -> Self {
        Self {
            applied: AtomicU64::new(0),
            flushed: watch::Sender::new(0),
            flushing: AtomicBool::new(false),
        }
    }

    /// Call right after applying a batch; the ticket to wait for.
    pub fn ticket(&self) -> u64 {
        self.applied.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Returns once a flush that started after `ticket` was taken has succeeded, running it when
    /// nobody else is.
    pub async fn flushed(&self, ticket: u64, db: &sled::Db) -> Result<(), StoreError> {
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
            // Everything applied by now is covered by this flush, ours included.
            let target = self.applied.load(Ordering::SeqCst);
            // Not `flush_async`: in sled 0.34 concurrent `flush_async` calls can wait forever
            // (spacejam/sled#1241, #1308). A blocking flush on the blocking pool is safe and
            // keeps the runtime's workers free.
            let db = db.clone();
            let result = tokio::task::spawn_blocking(move || db.flush())
                .await
                .map_err(|e| StoreError::Sled(sled::Error::ReportableBug(e.to_string())))
                .and_then(|r| r.map_err(StoreError::from));
            if result.is_ok() {
                self.flushed.send_modify(|f| *f = (*f).max(target));
            }
            drop(lead);
            result?;
        }
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

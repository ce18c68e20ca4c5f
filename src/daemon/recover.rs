//! Bringing a store that cannot write back, without a restart: the daemon's side of
//! `store::Store::reopen` (why sled needs reopening, and why that is safe in-process, is in
//! `store/handle.rs` and the README's "Storage").
//!
//! Invariants: nothing happens while the store is healthy (the task sleeps on its health);
//! once it fails, a reopen is tried after [`REOPEN_FIRST`], doubling up to [`REOPEN_MAX`], each
//! wait selecting on the daemon's cancellation token and cut short by a pass-now order (SIGUSR1,
//! or `check` beside the daemon: "I freed space, try now"); a reopen runs on the blocking pool and is
//! itself bounded (a free-space probe, then sled's open, which waits at most a second for its own
//! lock); failed attempts are counted into the store's rate-limited `store.failing` line, never
//! logged one by one; after a reopen the daemon asks every shop for a pass at once, so status
//! shows fresh verdicts instead of waiting out each shop's retry backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// The first reopen attempt after the store broke.
const REOPEN_FIRST: Duration = Duration::from_secs(1);
/// Attempts back off, doubling, to at most this.
const REOPEN_MAX: Duration = Duration::from_secs(30);

/// Runs until `cancel`; `retry_now` cuts a wait short; notifies `recovered` after each
/// successful reopen.
pub(super) async fn recover(
    store: Arc<Store>,
    retry_now: Arc<Notify>,
    recovered: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut health = store.watch_health();
    loop {
        if health.borrow_and_update().is_none() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = health.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let mut wait = REOPEN_FIRST;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = retry_now.notified() => {}
            }
            let attempt = store.clone();
            // `reopen` logs and counts its own failures.
            match tokio::task::spawn_blocking(move || attempt.reopen()).await {
                Ok(Ok(())) => {
                    recovered.notify_one();
                    break;
                }
                Ok(Err(_)) => wait = (wait * 2).min(REOPEN_MAX),
                Err(panic) => {
                    tracing::error!(event = "store.reopen_failed", error = %panic, "reopening the state store panicked; trying again");
                    wait = (wait * 2).min(REOPEN_MAX);
                }
            }
        }
    }
}

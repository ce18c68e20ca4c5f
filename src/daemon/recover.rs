//! What the daemon does about a store that cannot write (see `store/health.rs` for why sled's
//! handle cannot be trusted again in this process): keep running, visibly failing, until the
//! state dir's file system has room again, then stop like a normal stop and exit with
//! [`EXIT_STORE_RESTART`] for systemd to restart it on a fresh handle. Exiting at once would not
//! do: on a full disk the restarted daemon could not even open the database.
//!
//! Invariants: nothing happens while the store is healthy (the task sleeps on its health); once
//! it fails, room is probed after [`PROBE_FIRST`], doubling up to [`PROBE_MAX`], each wait
//! selecting on the daemon's cancellation token and cut short by a pass-now order (SIGUSR1, or
//! `check` beside the daemon: "I freed space, try now"); a probe is one statvfs(2), never a write.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// The exit code of a daemon that stopped because its store broke (EX_TEMPFAIL): not 2, which
/// the systemd units exclude from restarts (`RestartPreventExitStatus=2`).
pub const EXIT_STORE_RESTART: u8 = 75;

/// The first probe for room after the store broke.
const PROBE_FIRST: Duration = Duration::from_secs(1);
/// Probes back off, doubling, to at most this.
const PROBE_MAX: Duration = Duration::from_secs(30);

/// Runs until `cancel`; `probe_now` cuts a wait short; notifies `restart` once the store is
/// failing and its file system has room again.
pub(super) async fn await_room(
    store: Arc<Store>,
    probe_now: Arc<Notify>,
    restart: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut health = store.watch_health();
    tokio::select! {
        _ = cancel.cancelled() => return,
        broken = health.wait_for(Option::is_some) => if broken.is_err() { return },
    }
    let mut wait = PROBE_FIRST;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = probe_now.notified() => {}
        }
        match store.has_room() {
            Ok(()) => {
                tracing::info!(
                    event = "store.room",
                    path = %store.state_dir().display(),
                    "the state dir has room again; stopping to restart on a fresh database handle"
                );
                restart.notify_one();
                return;
            }
            Err(e) => {
                tracing::debug!(event = "store.no_room", error = %e, "still no room");
                wait = (wait * 2).min(PROBE_MAX);
            }
        }
    }
}

//! How a stopping shop task ends its session: it deletes the session token with many other
//! shops' deletes in flight ([`Stopping::close`]), and one recorder task ([`record`]) writes the
//! `revoked` session records of whatever deletes have finished, a batch per commit, and tells
//! the status writer of each batch.
//!
//! Invariants: the deletes are not limited by the pass gate but by [`CLOSING_IN_FLIGHT`] (each is
//! still paced by its shop's limiter); a daemon's stop has one deadline, [`CLOSE_WITHIN`] after
//! the first shop task saw the cancellation, for every shop's delete, however many wait (a shop
//! a reload stops gets its own); a token not deleted by then is `Kept` (counted, it expires on
//! its own); a deleted one is recorded `revoked` (state, no expiry) and the status writer shows it
//! `revoked` even when the commit fails or is late, since the token is gone; a record not
//! committed within [`RECORD_WITHIN`] of the deadline is counted (in the stop's one summary
//! event, `shutdown.sessions_*`'s `unrecorded`), not logged per shop, and its batch, once
//! applied, is written by sled's final flush.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::driver::CLOSE_WITHIN;
use super::report::Update;
use crate::store::{SessionRecord, SessionState, Store};
use crate::tripletex::{Closed, SessionInfo, ShopClient};

/// Session deletes in flight at once, over every stopping shop. Each is one cheap request against
/// its own employee's quota, so the pass gate (sized for passes: sled writes, many requests) would
/// only make a stop slow: against Tripletex a DELETE takes ~50–100 ms, and 32 at a time delete
/// ~400 tokens a second. 256 at once delete ~3 000 a second (10 000 shops in the stop's 3 s); each
/// is a connection of its own (HTTP/1.1), and 256 stays far below the unit's open-file limit and
/// what a polite client opens to one API. (Against a local simulator the stop is CPU-bound at
/// far fewer.)
const CLOSING_IN_FLIGHT: usize = 256;

/// How long after the deletes' deadline the last `revoked` records may take to be committed
/// (a flush takes milliseconds; a stuck disk must not eat the stop).
const RECORD_WITHIN: Duration = Duration::from_secs(1);

/// The stop's one deadline for the deletes (and after it, the records).
struct Deadline {
    /// The daemon's token: once it is cancelled, every close shares one deadline.
    daemon: CancellationToken,
    /// The deadline of the daemon's stop, set by the first close after the cancellation.
    stop: OnceLock<Instant>,
}

impl Deadline {
    /// When the delete of a close starting now must be done: the daemon's stop shares one
    /// deadline from its cancellation; a shop a reload stops has its own.
    fn close_by(&self) -> Instant {
        if self.daemon.is_cancelled() {
            *self.stop.get_or_init(|| Instant::now() + CLOSE_WITHIN)
        } else {
            Instant::now() + CLOSE_WITHIN
        }
    }

    /// When a commit of `revoked` records starting now must be done.
    fn record_by(&self) -> Instant {
        self.close_by() + RECORD_WITHIN
    }
}

/// What closing sessions shares: the bound on deletes in flight, the stop's one deadline, and the
/// way to the recorder.
pub(super) struct Stopping {
    deadline: Arc<Deadline>,
    in_flight: Semaphore,
    deleted: mpsc::UnboundedSender<(String, SessionRecord)>,
}

impl Stopping {
    /// The closing side, and the recorder's task: it ends once every clone of the first is gone,
    /// saying how many deleted tokens it could not record in time.
    pub fn start(
        daemon: CancellationToken,
        store: Arc<Store>,
        reports: mpsc::UnboundedSender<Update>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<usize>) {
        let (deleted, arrived) = mpsc::unbounded_channel();
        let deadline = Arc::new(Deadline {
            daemon,
            stop: OnceLock::new(),
        });
        let recorder = tokio::spawn(record(deadline.clone(), store, arrived, reports));
        let stopping = Arc::new(Self {
            deadline,
            in_flight: Semaphore::new(CLOSING_IN_FLIGHT),
            deleted,
        });
        (stopping, recorder)
    }

    /// Deletes `shop`'s session token (if it has a live one) by the deadline, and hands a deleted
    /// one to the recorder.
    pub async fn close(&self, shop: &str, client: &ShopClient) -> Closed {
        let deadline = self.deadline.close_by();
        let info = client.session_info();
        let closing = async {
            let _permit = self.in_flight.acquire().await.expect("never closed");
            client.close(deadline).await
        };
        let closed = match tokio::time::timeout_at(deadline, closing).await {
            Ok(closed) => closed,
            Err(_) if info.is_some() => Closed::Kept,
            Err(_) => Closed::NoSession,
        };
        if closed == Closed::Revoked {
            // The recorder outlives every clone of this; a send fails only after it panicked.
            let _ = self.deleted.send((shop.to_owned(), revoked(info)));
        }
        closed
    }
}

/// The record of a session whose token was deleted: what the session was, state `revoked`, no
/// expiry.
fn revoked(info: Option<SessionInfo>) -> SessionRecord {
    SessionRecord {
        state: SessionState::Revoked,
        minted_at: info.as_ref().map(|i| i.minted_at),
        expires_at: None,
        company_id: info.as_ref().and_then(|i| i.company_id),
        employee_id: info.as_ref().and_then(|i| i.employee_id),
        detail: Some(
            "session token deleted when this shop's task stopped; the next pass mints a new one"
                .to_owned(),
        ),
    }
}

/// Commits what has arrived, a batch at a time, until every closing side is gone; tells the
/// status writer of each batch. Returns how many records were not committed in time (or at
/// all); outside a stop (a reload) a batch like that is logged at once.
async fn record(
    deadline: Arc<Deadline>,
    store: Arc<Store>,
    mut arrived: mpsc::UnboundedReceiver<(String, SessionRecord)>,
    reports: mpsc::UnboundedSender<Update>,
) -> usize {
    let mut unrecorded = 0;
    let mut batch = Vec::new();
    while arrived.recv_many(&mut batch, usize::MAX).await > 0 {
        let mut writes = store.batch();
        for (shop, record) in &batch {
            writes.put_session(shop, record);
        }
        let record_by = deadline.record_by();
        // Its own task: cut short, a commit still applies its batch, which sled's final flush
        // then writes.
        let commit = tokio::spawn({
            let store = store.clone();
            async move { store.commit(writes).await }
        });
        let failed = match tokio::time::timeout_at(record_by, commit).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e.to_string()),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("not committed in time".to_owned()),
        };
        if let Some(error) = failed {
            unrecorded += batch.len();
            if !deadline.daemon.is_cancelled() {
                tracing::warn!(event = "status.write_failed", shops = batch.len(), %error, "deleted session tokens could not be recorded `revoked`");
            }
        }
        // Shown `revoked` either way: the tokens are gone.
        let _ = reports.send(Update::Revoked(std::mem::take(&mut batch)));
    }
    unrecorded
}

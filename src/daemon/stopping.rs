//! How a stopping shop task ends its session: it deletes the session token with many other
//! shops' deletes in flight ([`Stopping::close`]), and one recorder task ([`record`]) writes the
//! `revoked` session records of whatever deletes have finished, one flush per commit (each record
//! applied on its own: they need no atomicity together), and tells
//! the status writer of each batch.
//!
//! Invariants: the deletes are not limited by the pass gate but by a bound of their own, from the
//! HTTP pool's idle connections up to [`CLOSING_IN_FLIGHT`] as slow deletes need more to reach
//! [`CLOSING_RATE`] (each is still paced by its shop's limiter). A daemon's stop has one deadline
//! for every shop's delete, however many wait, from the first shop task that saw the
//! cancellation: [`CLOSE_WITHIN`], less
//! when the status writer's last write shows the rest of the stop will take long
//! ([`Deadline::close_by`]), so the whole stop fits in [`STOP_WITHIN`]; a shop a reload stops
//! has a deadline of its own. A token not deleted by its deadline is `Kept` (counted; it expires
//! on its own). A deleted one is shown `revoked` by the status writer before its record is
//! committed (the token is gone, whatever the disk does) and recorded `revoked` (state, no
//! expiry); a shop a reload stops waits for that commit, so the record never lands after its
//! replacement's first pass. A record not committed within [`RECORD_WITHIN`] of the deadline is
//! counted (in the stop's one summary event, `shutdown.sessions_*`'s `unrecorded`), not logged per
//! shop; its batch, once applied, is written by sled's final flush.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::driver::CLOSE_WITHIN;
use super::report::{LastWrite, Update};
use crate::store::{SessionRecord, SessionState, Store};
use crate::tripletex::{Closed, SessionInfo, ShopClient};

/// Session deletes in flight at once, over every stopping shop, at most. Each is one cheap request
/// against its own employee's quota, so the pass gate (sized for passes: sled writes, many
/// requests) would only make a stop slow: against Tripletex a DELETE takes ~50–100 ms, and 32 at
/// a time delete ~400 tokens a second. 256 at once delete ~3 000 a second (10 000 shops in the
/// stop's 3 s); each beyond the HTTP pool's idle connections is a connection of its own
/// (HTTP/1.1, ~36 KiB of buffers), and 256 stays far below the unit's open-file limit and what a
/// polite client opens to one API.
const CLOSING_IN_FLIGHT: usize = 256;

/// The rate the bound on deletes in flight aims at, per second. A stop starts with as many in
/// flight as the pool keeps idle connections (`max_concurrent_shops`: those that have not timed
/// out are reused, and no more are opened than passes use) and allows more as the deletes show
/// they need them to reach this rate (Little's law: in flight = rate × time a delete's request
/// takes, the shop's limiter's wait not counted). Against a local simulator a delete takes ~1 ms
/// and the stop is CPU-bound: 256 connections there were ~9 MiB of the stop's peak at 10 000
/// shops and no faster.
const CLOSING_RATE: u128 = 3_000;

/// How many deletes in flight reach [`CLOSING_RATE`] when one takes `took`, at most
/// [`CLOSING_IN_FLIGHT`].
fn closing_in_flight(took: Duration) -> usize {
    let wanted = (CLOSING_RATE * took.as_micros()).div_ceil(1_000_000);
    usize::try_from(wanted).map_or(CLOSING_IN_FLIGHT, |w| w.min(CLOSING_IN_FLIGHT))
}

/// What a daemon's whole stop aims at, from the cancellation to the exit: under the 5 s an
/// operator (or an orchestrator's stop timeout) may reasonably expect, with room for a loaded
/// machine.
const STOP_WITHIN: Duration = Duration::from_millis(4500);

/// After the deletes: the tasks' ends, the last records' commit, the status writer's last write
/// (beside that commit), sled's final flush and freeing the daemon's memory. They grow with the
/// shops and with the machine's load, as one status write does; measured (the release binary, 2
/// loaded cores) at 60 000 and 100 000 shops, they took 5–7 times one status write.
const REST_PER_WRITE: u32 = 7;

/// However long the rest of the stop may take, the deletes get at least this long.
const CLOSE_AT_LEAST: Duration = Duration::from_secs(1);

/// How long after the deletes' deadline the last `revoked` records may take to be committed
/// (a flush takes milliseconds; a stuck disk must not eat the stop).
const RECORD_WITHIN: Duration = Duration::from_secs(1);

/// A deleted token's record on its way to the recorder, with whom to tell once it is committed.
type Deleted = (String, SessionRecord, Option<oneshot::Sender<()>>);

/// The stop's one deadline for the deletes (and after it, the records).
struct Deadline {
    /// The daemon's token: once it is cancelled, every close shares one deadline.
    daemon: CancellationToken,
    /// The deadline of the daemon's stop and how long after the cancellation it came, set by
    /// the first close after the cancellation.
    stop: OnceLock<(Instant, Duration)>,
    last_write: LastWrite,
}

impl Deadline {
    /// When the delete of a close starting now must be done: the daemon's stop shares one
    /// deadline from its cancellation, leaving room for the rest of the stop; a shop a reload
    /// stops has its own.
    fn close_by(&self) -> Instant {
        if !self.daemon.is_cancelled() {
            return Instant::now() + CLOSE_WITHIN;
        }
        self.stop
            .get_or_init(|| {
                let rest = self.last_write.get() * REST_PER_WRITE;
                let window = STOP_WITHIN
                    .saturating_sub(rest)
                    .clamp(CLOSE_AT_LEAST, CLOSE_WITHIN);
                (Instant::now() + window, window)
            })
            .0
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
    /// The permits `in_flight` has been given so far: it only grows (see [`CLOSING_RATE`]).
    allowed: AtomicUsize,
    deleted: mpsc::UnboundedSender<Deleted>,
}

impl Stopping {
    /// The closing side, and the recorder's task: it ends once every clone of the first is gone,
    /// saying how many deleted tokens it could not record in time. `last_write` is the status
    /// writer's; `first_in_flight` how many deletes may be in flight before any has been timed
    /// (the HTTP pool's idle connections at the daemon's start; a reload does not change it),
    /// within 1 and [`CLOSING_IN_FLIGHT`].
    pub fn start(
        daemon: CancellationToken,
        store: Arc<Store>,
        reports: mpsc::UnboundedSender<Update>,
        last_write: LastWrite,
        first_in_flight: usize,
    ) -> (Arc<Self>, tokio::task::JoinHandle<usize>) {
        let (deleted, arrived) = mpsc::unbounded_channel();
        let deadline = Arc::new(Deadline {
            daemon,
            stop: OnceLock::new(),
            last_write,
        });
        let recorder = tokio::spawn(record(deadline.clone(), store, arrived, reports));
        let first = first_in_flight.clamp(1, CLOSING_IN_FLIGHT);
        let stopping = Arc::new(Self {
            deadline,
            in_flight: Semaphore::new(first),
            allowed: AtomicUsize::new(first),
            deleted,
        });
        (stopping, recorder)
    }

    /// How long the daemon's stop gave the deletes (`None` before the stop, or if no shop had a
    /// session to close).
    pub fn window(&self) -> Option<Duration> {
        self.deadline.stop.get().map(|(_, window)| *window)
    }

    /// Deletes `shop`'s session token (if it has a live one) by the deadline, and hands a deleted
    /// one to the recorder (outside the daemon's stop, waiting for its commit).
    pub async fn close(&self, shop: &str, client: &ShopClient) -> Closed {
        let deadline = self.deadline.close_by();
        let Some(info) = client.session_info() else {
            return Closed::NoSession;
        };
        let closing = async {
            let _permit = self.in_flight.acquire().await.expect("never closed");
            // At the deadline every waiting shop wakes at once, and a timeout polls what it
            // bounds before its timer: without this, each would take the permit the previous
            // one let go and open a connection only to drop it (measured at 60 000 shops: 2 s
            // of the stop went to `connect`).
            if Instant::now() >= deadline {
                return Closed::Kept;
            }
            // Boxed once it may run: a request's future is kilobytes, and every stopping shop
            // waits here at once.
            let (closed, took) = Box::pin(client.close(deadline)).await;
            self.allow(closing_in_flight(took));
            closed
        };
        let closed = tokio::time::timeout_at(deadline, closing)
            .await
            .unwrap_or(Closed::Kept);
        if closed == Closed::Revoked {
            let (committed, recorded) = if self.deadline.daemon.is_cancelled() {
                (None, None)
            } else {
                let (committed, recorded) = oneshot::channel();
                (Some(committed), Some(recorded))
            };
            // The recorder outlives every clone of this; a send fails only after it panicked.
            let _ = self
                .deleted
                .send((shop.to_owned(), revoked(info), committed));
            if let Some(recorded) = recorded {
                let _ = recorded.await;
            }
        }
        closed
    }

    /// Lets `wanted` deletes be in flight, if that is more than so far.
    fn allow(&self, wanted: usize) {
        let before = self.allowed.fetch_max(wanted, Ordering::Relaxed);
        if wanted > before {
            self.in_flight.add_permits(wanted - before);
        }
    }
}

/// The record of a session whose token was deleted: what the session was, state `revoked`, no
/// expiry, no detail (the status page says what `revoked` means: `SessionStatus::detail`).
fn revoked(info: SessionInfo) -> SessionRecord {
    SessionRecord {
        state: SessionState::Revoked,
        minted_at: Some(info.minted_at),
        expires_at: None,
        company_id: info.company_id,
        employee_id: info.employee_id,
        detail: None,
    }
}

/// Commits what has arrived, a batch at a time, until every closing side is gone; tells the
/// status writer of each batch first. Returns how many records were not committed in time (or
/// at all); outside a stop (a reload) a batch like that is logged at once.
async fn record(
    deadline: Arc<Deadline>,
    store: Arc<Store>,
    mut arrived: mpsc::UnboundedReceiver<Deleted>,
    reports: mpsc::UnboundedSender<Update>,
) -> usize {
    let mut reports = Some(reports);
    let mut unrecorded = 0;
    let mut batch = Vec::new();
    while arrived.recv_many(&mut batch, usize::MAX).await > 0 {
        let mut writes = store.batch();
        let mut shown = Vec::with_capacity(batch.len());
        let mut waiting = Vec::new();
        for (shop, record, committed) in batch.drain(..) {
            writes.put_session(&shop, &record);
            shown.push((shop, record));
            waiting.extend(committed);
        }
        let shops = shown.len();
        if let Some(reports) = &reports {
            let _ = reports.send(Update::Revoked(shown));
        }
        // The last batch of a stop: the status writer may write its last while this commits.
        if arrived.is_closed() && arrived.is_empty() {
            reports = None;
        }
        let record_by = deadline.record_by();
        // Its own task: cut short, a commit still applies its batch, which sled's final flush
        // then writes.
        let commit = tokio::spawn({
            let store = store.clone();
            async move { store.commit_each(writes).await }
        });
        let failed = match tokio::time::timeout_at(record_by, commit).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e.to_string()),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("not committed in time".to_owned()),
        };
        if let Some(error) = failed {
            unrecorded += shops;
            if !deadline.daemon.is_cancelled() {
                tracing::warn!(event = "status.write_failed", shops, %error, "deleted session tokens could not be recorded `revoked`");
            }
        }
        waiting.into_iter().for_each(|w| {
            let _ = w.send(());
        });
    }
    unrecorded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deletes of ~1 ms need no more in flight than the pool's connections; of ~85 ms (Tripletex
    /// from afar) about 256, and never more.
    #[test]
    fn the_deletes_in_flight_follow_how_long_one_takes() {
        let ms = Duration::from_millis;
        assert_eq!(closing_in_flight(ms(1)), 3);
        assert_eq!(closing_in_flight(ms(10)), 30);
        assert_eq!(closing_in_flight(ms(85)), 255);
        assert_eq!(closing_in_flight(ms(2_000)), CLOSING_IN_FLIGHT);
        let (deleted, _arrived) = mpsc::unbounded_channel();
        let stopping = Stopping {
            deadline: Arc::new(Deadline {
                daemon: CancellationToken::new(),
                stop: OnceLock::new(),
                last_write: LastWrite::default(),
            }),
            in_flight: Semaphore::new(32),
            allowed: AtomicUsize::new(32),
            deleted,
        };
        stopping.allow(closing_in_flight(ms(1)));
        assert_eq!(stopping.in_flight.available_permits(), 32, "never fewer");
        stopping.allow(closing_in_flight(ms(50)));
        stopping.allow(closing_in_flight(ms(40)));
        assert_eq!(stopping.in_flight.available_permits(), 150);
        stopping.allow(closing_in_flight(ms(900)));
        assert_eq!(stopping.in_flight.available_permits(), CLOSING_IN_FLIGHT);
    }
}

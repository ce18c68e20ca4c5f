//! The one way a check's outcome is recorded, whoever produced it: a pass, a webhook callback
//! (`webhooks::apply`) or a pass that failed as a whole (`daemon::supervise`).
//!
//! Invariants: a result is rewritten only when it differs apart from its time; the check's time
//! goes into the shop's sync cursor, which the recording holds (read once, written once by the
//! commit when it changed: one small record for an idle pass); a history point is added when the
//! shop's highest number moved, else at most once per [`HISTORY_HOLD`], never for `error`, so a
//! burst of callbacks cannot fill the history the forecast reads; points older than
//! `checks.history` are pruned in the same batch, and of those older than [`DENSE_FOR`] only the
//! newest of each day is kept (a busy shop's point an hour would otherwise make its 90 days of
//! history 2 000 points a check, read and rewritten whole: the check's whole history is one
//! value, rewritten only when a point came or went); everything goes into one flushed commit, and a
//! verdict is logged (`check.verdict`: conflict = ERROR, warn/error = WARN, recovery = INFO,
//! unchanged = DEBUG) only once it is recorded. With `[notify]` on, a changed verdict (a first
//! one too) is a `check.verdict` message queued in that same commit (`notify::queue`), as is
//! whatever else the caller reports ([`Recording::notify`]).

use std::time::Duration;

use jiff::Timestamp;

use super::PassSettings;
use crate::checks::{CheckKind, CheckOutcome, HistoryPoint, Verdict};
use crate::clock::span;
use crate::notify::{self, Message, Queueing};
use crate::store::{Batch, ResultRecord, Store, StoreError, SyncCursor};

/// How long an unchanged highest number goes without a new history point.
const HISTORY_HOLD: Duration = Duration::from_secs(6 * 60 * 60);
/// How far back a history keeps every point; older days keep their newest point alone. A day's
/// newest point carries its highest number, and a growth rate over weeks needs no more; the
/// forecast's own minimum span (`checks::forecast::MIN_SPAN_DAYS`) is a week, in full detail.
const DENSE_FOR: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Outcomes of one shop on their way into one commit.
pub(crate) struct Recording<'a> {
    store: &'a Store,
    shop: &'a str,
    now: Timestamp,
    cutoff: Timestamp,
    batch: Batch,
    /// The shop's sync cursor: what a pass's syncs move and where the checks' times go.
    cursor: SyncCursor,
    /// As stored, so the commit writes it only when it changed.
    cursor_before: SyncCursor,
    /// Whether changes are queued for the platform (`[notify]` on).
    queueing: Option<Queueing>,
    /// Per kind whose history was read: the points within `checks.history`, and whether older
    /// ones were left out (so the history is rewritten without them).
    read: Vec<(CheckKind, Vec<HistoryPoint>, bool)>,
    /// Each recorded result with the verdict before it, for the log once committed.
    logged: Vec<(ResultRecord, Verdict)>,
}

impl<'a> Recording<'a> {
    /// Starts recording `shop`'s outcomes at `now` into `batch` (which may already hold what
    /// they were read from, e.g. a mirror), reading the shop's cursor.
    pub fn new(
        store: &'a Store,
        shop: &'a str,
        now: Timestamp,
        settings: &PassSettings,
        batch: Batch,
    ) -> Result<Self, StoreError> {
        let cursor = store.cursor(shop)?;
        Ok(Self {
            store,
            shop,
            now,
            cutoff: now.checked_sub(span(settings.history)).unwrap_or(now),
            batch,
            cursor_before: cursor.clone(),
            cursor,
            queueing: settings.notify,
            read: Vec::new(),
            logged: Vec::new(),
        })
    }

    /// The batch the outcomes go into, for what else belongs to the same commit.
    pub fn batch(&mut self) -> &mut Batch {
        &mut self.batch
    }

    /// The shop's cursor as this commit will leave it.
    pub fn cursor(&self) -> &SyncCursor {
        &self.cursor
    }

    /// The cursor and the batch, for a sync that moves one and writes into the other.
    pub fn sync_parts(&mut self) -> (&mut SyncCursor, &mut Batch) {
        (&mut self.cursor, &mut self.batch)
    }

    /// `kind`'s last result as stored, with its time.
    pub fn last_result(&self, kind: CheckKind) -> Result<Option<ResultRecord>, StoreError> {
        self.store.result_with(self.shop, kind, &self.cursor_before)
    }

    /// `kind`'s history a forecast may use: the points within `checks.history`.
    pub fn history(&mut self, kind: CheckKind) -> Result<Vec<HistoryPoint>, StoreError> {
        let (history, pruned) = self.read_history(kind)?;
        self.read.push((kind, history.clone(), pruned));
        Ok(history)
    }

    /// `kind`'s stored history without the points older than `checks.history` (they must not
    /// steer a forecast) or thinned out (see [`thin`]), and whether there were any.
    fn read_history(&self, kind: CheckKind) -> Result<(Vec<HistoryPoint>, bool), StoreError> {
        let mut history = self.store.history(self.shop, kind)?;
        let stored = history.len();
        history.retain(|p| p.at >= self.cutoff);
        thin(&mut history, self.now);
        let pruned = history.len() < stored;
        Ok((history, pruned))
    }

    /// Records `record` of `kind`, where `last` is what the store held before.
    pub fn check(
        &mut self,
        kind: CheckKind,
        last: Option<&ResultRecord>,
        record: ResultRecord,
    ) -> Result<(), StoreError> {
        let shop = self.shop;
        if !last.is_some_and(|last| last.same_apart_from_checked_at(&record)) {
            self.batch.put_result(shop, kind, &record);
        }
        let checked = &mut self.cursor.of_mut(kind).checked;
        if checked.is_none() {
            self.batch.remove_old_checked(shop, kind);
        }
        *checked = Some(self.now);
        let (mut history, mut changed) = match self.read.iter().position(|(k, ..)| *k == kind) {
            Some(i) => {
                let (_, history, pruned) = self.read.swap_remove(i);
                (history, pruned)
            }
            None => self.read_history(kind)?,
        };
        if record.verdict() != Verdict::Error {
            let point = record.outcome.evidence.history_point(self.now);
            if point_due(history.last(), &point) {
                // In time order, one point a millisecond, as when each point was a key of its
                // own (schemas 5 to 7): a point in another's millisecond replaces it, and one
                // from a clock set back goes before the newer ones.
                let ms = |p: &HistoryPoint| p.at.as_millisecond();
                let at = history.partition_point(|p| ms(p) < ms(&point));
                match history.get_mut(at) {
                    Some(same) if ms(same) == ms(&point) => *same = point,
                    _ => history.insert(at, point),
                }
                changed = true;
            }
        }
        // One value per check (schema 8): rewritten only when a point came or went.
        if changed {
            self.batch.put_history(shop, kind, &history);
        }
        let before = last.map_or(Verdict::Unknown, ResultRecord::verdict);
        if before != record.verdict() {
            let message = Message::verdict(shop, &record.outcome, before, record.since, self.now);
            self.notify(message)?;
        }
        self.logged.push((record, before));
        Ok(())
    }

    /// Queues `message` for the platform in this commit, while `[notify]` is on.
    pub fn notify(&mut self, message: Message) -> Result<(), StoreError> {
        match self.queueing {
            Some(queueing) => notify::queue(self.store, &mut self.batch, message, queueing),
            None => Ok(()),
        }
    }

    /// Commits everything (flushed), then logs each verdict; the results as recorded, in
    /// recording order.
    pub async fn commit(mut self) -> Result<Vec<ResultRecord>, StoreError> {
        if self.cursor != self.cursor_before {
            self.batch.put_cursor(self.shop, &self.cursor);
        }
        self.store.commit(self.batch).await?;
        Ok(self
            .logged
            .into_iter()
            .map(|(record, before)| {
                log_verdict(self.shop, &record.outcome, before);
                record
            })
            .collect())
    }
}

/// One `check.verdict` event: at the level operators alert on when the verdict changed, DEBUG when
/// it held.
fn log_verdict(shop: &str, outcome: &CheckOutcome, before: Verdict) {
    let (check, verdict, was) = (
        outcome.kind.as_str(),
        outcome.verdict.as_str(),
        before.as_str(),
    );
    let summary = &outcome.summary;
    if before == outcome.verdict {
        tracing::debug!(event = "check.verdict", shop, check, verdict, was, %summary, "verdict unchanged");
        return;
    }
    let fix = outcome.fix.as_deref().unwrap_or_default();
    match outcome.verdict {
        Verdict::Conflict => {
            tracing::error!(event = "check.verdict", shop, check, verdict, was, %summary, fix, "numbering conflict");
        }
        Verdict::Warn => {
            tracing::warn!(event = "check.verdict", shop, check, verdict, was, %summary, fix, "numbering needs attention");
        }
        Verdict::Error => {
            tracing::warn!(event = "check.verdict", shop, check, verdict, was, %summary, "check could not run");
        }
        Verdict::Ok | Verdict::Unknown => {
            tracing::info!(event = "check.verdict", shop, check, verdict, was, %summary, "verdict changed");
        }
    }
}

/// Whether `point` goes into the history after `newest`: when the shop's highest number moved,
/// and otherwise once per [`HISTORY_HOLD`], so a shop that stands still keeps points for the
/// forecast without one per pass (or per callback).
fn point_due(newest: Option<&HistoryPoint>, point: &HistoryPoint) -> bool {
    newest.is_none_or(|n| {
        n.shop_high != point.shop_high
            || point.at.duration_since(n.at).unsigned_abs() >= HISTORY_HOLD
    })
}

/// Keeps, of the points older than [`DENSE_FOR`] before `now`, the newest of each UTC day. The
/// kept points do not depend on when this runs (a day's newest stays its newest), so a history
/// is rewritten when one of its points leaves the dense week for a day that has a newer one (a
/// few times a day, as pruning at `checks.history` does), not on every pass. `history` is in
/// time order. The week then weighs more in the forecast's fit than the days before it (for a
/// quiet shop 28 of ~110 points, for a busy one ~170 of ~250): growth of late counts for more.
fn thin(history: &mut Vec<HistoryPoint>, now: Timestamp) {
    let dense_from = now.checked_sub(span(DENSE_FOR)).unwrap_or(now);
    // Whole seconds toward the past (jiff's are toward zero), so days before 1970 split right.
    let day = |p: &HistoryPoint| {
        let seconds = p.at.as_second() - i64::from(p.at.subsec_nanosecond() < 0);
        seconds.div_euclid(86_400)
    };
    // In place (every pass reads a history): a point before the dense week stays when the point
    // after it (of the week or not) is of another day; the points after it are not yet moved.
    let dense = history.partition_point(|p| p.at < dense_from);
    let mut kept = 0;
    for i in 0..history.len() {
        let newest_of_day = i >= dense
            || history
                .get(i + 1)
                .is_none_or(|n| day(n) != day(&history[i]));
        if newest_of_day {
            history[kept] = history[i];
            kept += 1;
        }
    }
    history.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{self, Policy};
    use crate::store::Role;
    use crate::sync::SyncSettings;

    /// A pass's settings that keep `history`.
    fn settings(history: Duration) -> PassSettings {
        PassSettings {
            sync: SyncSettings {
                full_resync: Duration::from_secs(86_400),
                invoice_window: Duration::from_secs(86_400),
                max_records: 1000,
            },
            policy: Policy::default(),
            history,
            deadline: Duration::from_secs(60),
            notify: None,
        }
    }

    /// Points older than `checks.history` leave the check's history when its next outcome is
    /// recorded, whether or not the recording read the history first; an `error` adds none.
    #[tokio::test]
    async fn recording_prunes_the_history_older_than_checks_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Role::OneShot).unwrap();
        let settings = settings(Duration::from_secs(86_400));
        let point = |at: &str, high| HistoryPoint {
            at: at.parse().unwrap(),
            shop_high: Some(high),
        };
        let old = point("2026-11-01T00:00:00Z", 10);
        let kept = point("2026-11-03T00:00:00Z", 30);
        let now: Timestamp = "2026-11-03T12:00:00Z".parse().unwrap();
        for read_first in [true, false] {
            let mut batch = store.batch();
            for kind in CheckKind::ALL {
                batch.put_history("acme", kind, &[old, kept]);
            }
            store.commit(batch).await.unwrap();
            let mut recording =
                Recording::new(&store, "acme", now, &settings, store.batch()).unwrap();
            for kind in CheckKind::ALL {
                if read_first {
                    assert_eq!(recording.history(kind).unwrap(), [kept]);
                }
                let outcome = checks::could_not_run(kind, "Tripletex unavailable");
                recording
                    .check(kind, None, ResultRecord::next(None, outcome, now))
                    .unwrap();
            }
            recording.commit().await.unwrap();
            for kind in CheckKind::ALL {
                assert_eq!(store.history("acme", kind).unwrap(), [kept], "{read_first}");
            }
        }
    }

    /// A busy shop's point an hour for 30 days: the last week keeps every point, each older day
    /// its newest (the day a week ago only the part within the week); thinning again, now or later, removes nothing it kept before but days that
    /// left the week, and the growth the forecast fits is the same.
    #[test]
    fn a_history_older_than_a_week_keeps_a_point_a_day() {
        let start: Timestamp = "2026-11-01T00:30:00Z".parse().unwrap();
        let hour = jiff::SignedDuration::from_hours(1);
        let history: Vec<HistoryPoint> = (0..30 * 24)
            .map(|i| HistoryPoint {
                at: start + hour * i,
                shop_high: Some(6000 + 10 * i as u32),
            })
            .collect();
        let now = history.last().unwrap().at;
        let mut thinned = history.clone();
        thin(&mut thinned, now);
        let week = now - jiff::SignedDuration::from_hours(7 * 24);
        let (old, dense): (Vec<&HistoryPoint>, Vec<_>) = thinned.iter().partition(|p| p.at < week);
        assert_eq!(dense.len(), 7 * 24 + 1, "the last week keeps every point");
        // 22 older days: the 23rd's newest point (23:30) is the week's first.
        assert_eq!(old.len(), 22, "one point for each older day");
        assert!(
            old.iter().all(|p| p.at.to_string().ends_with("T23:30:00Z")),
            "{old:?}"
        );
        let mut again = thinned.clone();
        thin(&mut again, now);
        assert_eq!(again, thinned);
        let later = now + jiff::SignedDuration::from_hours(48);
        thin(&mut again, later);
        assert!(again.iter().all(|p| thinned.contains(p)));
        assert_eq!(again.len(), thinned.len() - 2 * 23);
        let growth = |points: &[HistoryPoint]| {
            let points = points.iter().map(|p| (p.at, p.shop_high.unwrap()));
            checks::forecast::fit(points, now, 13_190, 50_000)
                .unwrap()
                .growth_per_day
        };
        assert!(
            (growth(&history) - 240.0).abs() < 1e-6,
            "{}",
            growth(&history)
        );
        assert!(
            (growth(&thinned) - 240.0).abs() < 1e-6,
            "{}",
            growth(&thinned)
        );
    }

    /// Half a second before 1970 is another day than half a second after it.
    #[test]
    fn thinning_splits_days_before_1970_too() {
        let point = |at: &str| HistoryPoint {
            at: at.parse().unwrap(),
            shop_high: Some(1),
        };
        let days = [
            point("1969-12-31T23:59:59.5Z"),
            point("1970-01-01T00:00:00.5Z"),
        ];
        let mut thinned = days.to_vec();
        thin(&mut thinned, "2000-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(thinned, days);
    }

    /// A point from a clock set back goes before the newer ones; one in another's millisecond
    /// replaces it.
    #[tokio::test]
    async fn a_history_stays_in_time_order_whatever_the_clock_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Role::OneShot).unwrap();
        let settings = settings(Duration::from_secs(30 * 86_400));
        let kind = CheckKind::CustomerNumbers;
        let ok = |high: u32, now: Timestamp| {
            let mut outcome = checks::not_yet_checked(kind);
            outcome.verdict = Verdict::Ok;
            outcome.evidence.shop_run = Some(checks::Run {
                first: 1,
                last: high,
                count: high,
            });
            ResultRecord::next(None, outcome, now)
        };
        let record = async |at: &str, high| {
            let now: Timestamp = at.parse().unwrap();
            let mut recording = Recording::new(&store, "acme", now, &settings, store.batch())?;
            recording.check(kind, None, ok(high, now))?;
            recording.commit().await
        };
        record("2026-11-03T00:00:00Z", 30).await.unwrap();
        record("2026-11-02T00:00:00Z", 20).await.unwrap();
        record("2026-11-03T00:00:00Z", 31).await.unwrap();
        let highs: Vec<_> = store
            .history("acme", kind)
            .unwrap()
            .iter()
            .map(|p| (p.at.to_string(), p.shop_high))
            .collect();
        assert_eq!(
            highs,
            [
                ("2026-11-02T00:00:00Z".to_owned(), Some(20)),
                ("2026-11-03T00:00:00Z".to_owned(), Some(31)),
            ]
        );
    }

    /// An idle pass, a callback that changes nothing: the outcome is the stored one, so the one
    /// record written is the cursor with the check's new time.
    #[tokio::test]
    async fn an_unchanged_outcome_writes_the_cursor_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Role::OneShot).unwrap();
        let settings = settings(Duration::from_secs(86_400));
        let kind = CheckKind::InvoiceNumbers;
        let record = async |at: &str| {
            let now: Timestamp = at.parse().unwrap();
            let mut recording = Recording::new(&store, "acme", now, &settings, store.batch())?;
            let last = recording.last_result(kind)?;
            let outcome = checks::could_not_run(kind, "Tripletex unavailable");
            let next = ResultRecord::next(last.as_ref(), outcome, now);
            recording.check(kind, last.as_ref(), next)?;
            recording.commit().await
        };
        record("2026-12-01T08:00:00Z").await.unwrap();
        let before = store.dump();
        record("2026-12-01T09:00:00Z").await.unwrap();
        let after = store.dump();
        let changed: Vec<&str> = after
            .iter()
            .filter(|kv| !before.contains(kv))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(changed, ["shop/acme/cursor"]);
        assert_eq!(before.len(), after.len());
        let stored = store.result("acme", kind).unwrap().unwrap();
        assert_eq!(stored.checked_at.to_string(), "2026-12-01T09:00:00Z");
        assert_eq!(stored.since.to_string(), "2026-12-01T08:00:00Z");
    }
}

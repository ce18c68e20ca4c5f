//! One verification pass for one shop: session, sync, verdicts, record, report.
//!
//! Invariants: everything a pass learns (mirror changes, cursor, results, history, session
//! metadata) is committed to sled in one flushed batch before the pass logs or reports it; a verdict change is
//! one log event (`check.verdict`: conflict = ERROR, warn/error = WARN, recovery = INFO), an
//! unchanged verdict logs at DEBUG only; a key rejection is one ERROR (`session.key_rejected`) when
//! the state changes, not one per pass. A check whose data could not be read, or was not
//! believable, is `error` with the reason, never `ok`; a pass ends by `checks.pass_deadline`,
//! giving `error` to the checks it had not finished (their mirrors untouched).
//!
//! What a pass writes is what changed: a result whose outcome (evidence included) is unchanged
//! gets only its check's time (`store::Batch::put_checked`); the session and cursor records only
//! when they differ; a history point only when the shop's highest number moved, or when the
//! newest point is 6 h old, so an idle shop-pass writes a few hundred bytes, not kilobytes.

use std::time::Duration;

use jiff::Timestamp;
use tracing::Instrument as _;

use crate::checks::{self, CheckKind, CheckOutcome, HistoryPoint, NumberRange, Policy, Verdict};
use crate::clock::{SharedClock, span};
use crate::config::ShopConfig;
use crate::store::{Batch, ResultRecord, SessionRecord, SessionState, Store, StoreError};
use crate::sync::{self, SyncError, SyncSettings};
use crate::tripletex::{ShopClient, TripletexError};

/// How long an unchanged highest number goes without a new history point.
const HISTORY_HOLD: Duration = Duration::from_secs(6 * 60 * 60);

#[derive(Debug, Clone, Copy)]
pub struct PassSettings {
    pub sync: SyncSettings,
    pub policy: Policy,
    /// How long verdict history is kept.
    pub history: Duration,
    /// How long one pass may take (`checks.pass_deadline`).
    pub deadline: Duration,
}

impl PassSettings {
    pub fn new(config: &crate::config::Config) -> Self {
        let c = &config.checks;
        Self {
            sync: SyncSettings {
                full_resync: c.full_resync,
                invoice_window: c.invoice_window,
                max_records: c.max_records,
            },
            policy: c.policy,
            history: c.history,
            deadline: c.pass_deadline,
        }
    }
}

/// What one pass found, after it was recorded.
#[derive(Debug, Clone)]
pub struct PassReport {
    pub shop: String,
    pub session: SessionRecord,
    pub outcomes: Vec<CheckOutcome>,
    /// The mint failed in a way that points at the consumer token, not this shop's key.
    pub consumer_rejected: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("shutting down")]
    Cancelled,
    /// Prints its cause (one line) and has no `source()`, so a chain never repeats it.
    #[error("recording the pass failed: {0}")]
    Store(StoreError),
}

impl From<StoreError> for PassError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Runs one pass of `shop` and records it.
pub async fn run(
    shop: &ShopConfig,
    client: &ShopClient,
    store: &Store,
    settings: &PassSettings,
    clock: &SharedClock,
    pass_no: u64,
) -> Result<PassReport, PassError> {
    // The shop is repeated here because one-shot `check` runs passes outside a shop span.
    let span = tracing::info_span!("pass", shop = %shop.name, pass = pass_no);
    run_inner(shop, client, store, settings, clock)
        .instrument(span)
        .await
}

async fn run_inner(
    shop: &ShopConfig,
    client: &ShopClient,
    store: &Store,
    settings: &PassSettings,
    clock: &SharedClock,
) -> Result<PassReport, PassError> {
    let start = clock.now();
    let deadline = tokio::time::Instant::now() + settings.deadline;
    let name = shop.name.as_str();
    let previous = store.session(name)?.unwrap_or_default();
    let mut batch = store.batch();
    let mut cursor = store.cursor(name)?;
    let cursor_before = cursor.clone();
    let kinds: Vec<(CheckKind, checks::NumberRange)> = shop
        .checks
        .iter()
        .filter_map(|(k, r)| r.map(|r| (k, r)))
        .collect();

    // A session-level failure (from connecting, or met during a sync when the live token turns
    // out refused) ends the Tripletex work of this pass: the remaining checks share it.
    let past_deadline = || TripletexError::PassDeadline(settings.deadline);
    let mut session_failure = match tokio::time::timeout_at(deadline, client.connect()).await {
        Ok(connected) => connected.err(),
        Err(_) => Some(past_deadline()),
    };
    let mut outcomes = Vec::with_capacity(kinds.len());
    let mut changes = Vec::with_capacity(kinds.len());
    for (kind, range) in kinds {
        let last_result = store.result(name, kind)?;
        // While a check is in conflict, re-read that kind in full every pass: `changedSince`
        // cannot see deletions, and a fixed conflict should clear at the next pass.
        let in_conflict =
            last_result.as_ref().map(ResultRecord::verdict) == Some(Verdict::Conflict);
        let last_full = cursor.of(kind).full;
        let job = sync::Job {
            kind,
            full: in_conflict || sync::full_due(last_full, &settings.sync, start),
            pass_start: start,
        };
        let numbers = match &session_failure {
            Some(e) => Err(SyncError::Tripletex(e.clone())),
            None => {
                // The sync writes to `cursor` and `batch` only once it has read everything, so
                // dropping it at the deadline leaves both as they were.
                let sync = sync::run(client, store, job, &settings.sync, &mut cursor, &mut batch);
                tokio::time::timeout_at(deadline, sync)
                    .await
                    .unwrap_or_else(|_| Err(SyncError::Tripletex(past_deadline())))
            }
        };
        let cutoff = history_cutoff(start, settings);
        // The newest point, and whether any are due for pruning, once the history was read.
        let mut history_read = None;
        let outcome = match numbers {
            Ok(numbers) => {
                let mut history = store.history(name, kind)?;
                let stale = history.first().is_some_and(|p| p.at < cutoff);
                // Points the pruning below removes must not steer this pass's forecast.
                history.retain(|p| p.at >= cutoff);
                history_read = Some((history.last().copied(), stale));
                checks::evaluate(kind, &numbers, range, &settings.policy, &history, start)
            }
            Err(SyncError::Tripletex(TripletexError::Cancelled)) => {
                return Err(PassError::Cancelled);
            }
            Err(SyncError::Store(e)) => return Err(e.into()),
            Err(SyncError::Tripletex(e)) => {
                let outcome = checks::could_not_run(kind, &reason(&e));
                if is_session_failure(&e) {
                    session_failure = Some(e);
                }
                outcome
            }
        };
        let record = ResultRecord::next(last_result.as_ref(), outcome.clone(), start);
        match &last_result {
            Some(last) if last.same_apart_from_checked_at(&record) => {
                batch.put_checked(name, kind, start);
            }
            _ => batch.put_result(name, kind, &record),
        }
        if outcome.verdict != Verdict::Error {
            let point = outcome.evidence.history_point(start);
            let newest = history_read.and_then(|(newest, _)| newest);
            if point_due(newest.as_ref(), &point) {
                batch.push_history(name, kind, &point);
            }
        }
        if history_read.is_none_or(|(_, stale)| stale) {
            store.prune_history(&mut batch, name, kind, cutoff)?;
        }
        changes.push(last_result.map_or(Verdict::Unknown, |r| r.verdict()));
        outcomes.push(outcome);
    }
    // An idle pass rewrites what changed only (the cursor's `changedSince` start, the checks'
    // times), not what it found again.
    if cursor != cursor_before {
        batch.put_cursor(name, &cursor);
    }
    let session = session_record(client, session_failure.as_ref(), &previous);
    if session != previous {
        batch.put_session(name, &session);
    }
    store.commit(batch).await?;

    // Only what is recorded is reported.
    for (outcome, was) in outcomes.iter().zip(changes) {
        log_verdict(name, outcome, was);
    }
    if session.state == SessionState::KeyRejected && previous.state != SessionState::KeyRejected {
        tracing::error!(
            event = "session.key_rejected",
            shop = name,
            remedy = session.detail.as_deref().unwrap_or_default(),
            "Tripletex rejected this shop's employee key; its checks stop until a new key is loaded"
        );
    }
    let consumer_rejected = matches!(
        session_failure,
        Some(TripletexError::ConsumerRejected { .. })
    );
    tracing::debug!(
        event = "pass.done",
        shop = name,
        checks = outcomes.len(),
        "pass recorded"
    );
    Ok(PassReport {
        shop: shop.name.clone(),
        session,
        outcomes,
        consumer_rejected,
    })
}

/// Evaluates `kind` over `numbers` (what its mirror holds once `batch` is committed), without
/// any Tripletex request, and records it as a pass records a check: result, history point and
/// pruning in the same flushed commit as `batch`; then logs the verdict like a pass.
pub(crate) async fn record_evaluation(
    shop: &str,
    (kind, range): (CheckKind, NumberRange),
    numbers: &[u32],
    store: &Store,
    mut batch: Batch,
    settings: &PassSettings,
    now: Timestamp,
) -> Result<CheckOutcome, PassError> {
    let last_result = store.result(shop, kind)?;
    let cutoff = history_cutoff(now, settings);
    let mut history = store.history(shop, kind)?;
    history.retain(|p| p.at >= cutoff);
    let outcome = checks::evaluate(kind, numbers, range, &settings.policy, &history, now);
    let record = ResultRecord::next(last_result.as_ref(), outcome.clone(), now);
    batch.put_result(shop, kind, &record);
    if outcome.verdict != Verdict::Error {
        batch.push_history(shop, kind, &outcome.evidence.history_point(now));
    }
    store.prune_history(&mut batch, shop, kind, cutoff)?;
    store.commit(batch).await?;
    log_verdict(
        shop,
        &outcome,
        last_result.map_or(Verdict::Unknown, |r| r.verdict()),
    );
    Ok(outcome)
}

/// One `check.verdict` event: at the level operators alert on when the verdict changed, DEBUG when
/// it held.
pub(crate) fn log_verdict(shop: &str, outcome: &CheckOutcome, before: Verdict) {
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
/// forecast without one per pass.
fn point_due(newest: Option<&HistoryPoint>, point: &HistoryPoint) -> bool {
    newest.is_none_or(|n| {
        n.shop_high != point.shop_high
            || point.at.duration_since(n.at).unsigned_abs() >= HISTORY_HOLD
    })
}

/// History older than this is pruned and ignored.
fn history_cutoff(now: Timestamp, settings: &PassSettings) -> Timestamp {
    now.checked_sub(span(settings.history)).unwrap_or(now)
}

/// Errors that say the shop cannot talk to Tripletex at all, rather than about one endpoint.
fn is_session_failure(e: &TripletexError) -> bool {
    matches!(
        e,
        TripletexError::KeyRejected { .. }
            | TripletexError::ConsumerRejected { .. }
            | TripletexError::Unauthorized
            | TripletexError::CircuitOpen { .. }
    )
}

/// Why a check could not run, with the operator's fix where one is known.
fn reason(e: &TripletexError) -> String {
    match e.remedy() {
        Some(remedy) => format!("{e}: {remedy}"),
        None => e.to_string(),
    }
}

fn session_record(
    client: &ShopClient,
    failure: Option<&TripletexError>,
    previous: &SessionRecord,
) -> SessionRecord {
    if let Some(info) = client.session_info() {
        return SessionRecord {
            state: if client.renewing() {
                SessionState::Renewing
            } else {
                SessionState::Valid
            },
            minted_at: Some(info.minted_at),
            expires_at: Some(info.expires_at),
            company_id: info.company_id,
            employee_id: info.employee_id,
            detail: None,
        };
    }
    let state = match failure {
        Some(TripletexError::KeyRejected { .. }) => SessionState::KeyRejected,
        _ => SessionState::Unknown,
    };
    SessionRecord {
        state,
        minted_at: None,
        expires_at: None,
        company_id: previous.company_id,
        employee_id: previous.employee_id,
        detail: failure.map(reason),
    }
}

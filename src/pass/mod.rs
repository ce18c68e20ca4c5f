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
//! What a pass writes is what changed: its outcomes go through [`Recording`] (the one recording
//! path, shared with callbacks and failed passes: an unchanged result gets only its check's time,
//! in the shop's cursor, a history point only when the shop's highest number moved or the newest
//! is 6 h old); the session record only when it differs; so an idle shop-pass writes one record
//! (the cursor, a few hundred bytes), not kilobytes.

mod record;

pub(crate) use record::Recording;

use std::time::Duration;

use jiff::Timestamp;
use tracing::Instrument as _;

use crate::checks::{self, CheckKind, CheckOutcome, NumberRange, Policy, Verdict};
use crate::clock::SharedClock;
use crate::config::ShopConfig;
use crate::notify::{Message, Queueing};
use crate::store::{Batch, ResultRecord, SessionRecord, SessionState, Store, StoreError};
use crate::sync::{self, SyncError, SyncSettings};
use crate::tripletex::{ShopClient, TripletexError};

#[derive(Debug, Clone, Copy)]
pub struct PassSettings {
    pub sync: SyncSettings,
    pub policy: Policy,
    /// How long verdict history is kept.
    pub history: Duration,
    /// How long one pass may take (`checks.pass_deadline`).
    pub deadline: Duration,
    /// Whether changes are queued for the platform: `None` while `[notify]` is off.
    pub notify: Option<Queueing>,
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
            notify: config.notify.as_ref().map(|n| Queueing {
                max_pending: n.max_pending,
            }),
        }
    }
}

/// What one pass found, after it was recorded: the session and every enabled check's result as
/// the store now holds them (so the status view needs no store read to show them).
#[derive(Debug, Clone)]
pub struct PassReport {
    pub shop: String,
    pub session: SessionRecord,
    pub results: Vec<ResultRecord>,
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

impl PassReport {
    /// Each check's outcome, in recording order.
    pub fn outcomes(&self) -> Vec<&CheckOutcome> {
        self.results.iter().map(|r| &r.outcome).collect()
    }
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
    let mut recording = Recording::new(store, name, start, settings, store.batch())?;
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
    for (kind, range) in kinds {
        let last_result = recording.last_result(kind)?;
        // While a check is in conflict, re-read that kind in full every pass: `changedSince`
        // cannot see deletions, and a fixed conflict should clear at the next pass.
        let in_conflict =
            last_result.as_ref().map(ResultRecord::verdict) == Some(Verdict::Conflict);
        let last_full = recording.cursor().of(kind).full;
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
                let (cursor, batch) = recording.sync_parts();
                let sync = sync::run(client, store, job, &settings.sync, cursor, batch);
                tokio::time::timeout_at(deadline, sync)
                    .await
                    .unwrap_or_else(|_| Err(SyncError::Tripletex(past_deadline())))
            }
        };
        let outcome = match numbers {
            Ok(numbers) => {
                let history = recording.history(kind)?;
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
        let record = ResultRecord::next(last_result.as_ref(), outcome, start);
        recording.check(kind, last_result.as_ref(), record)?;
    }
    // An idle pass rewrites what changed only (the cursor: its `changedSince` start and the
    // checks' times, one record), not what it found again.
    let session = session_record(client, session_failure.as_ref(), &previous);
    if session != previous {
        recording.batch().put_session(name, &session);
    }
    let rejected = |s: &SessionRecord| s.state == SessionState::KeyRejected;
    if rejected(&session) && !rejected(&previous) {
        let remedy = session.detail.as_deref().unwrap_or_default();
        recording.notify(Message::key_rejected(name, remedy, start))?;
    } else if rejected(&previous) && session.state == SessionState::Valid {
        recording.notify(Message::key_accepted(name, start))?;
    }
    // Only what is recorded is reported (the verdicts are logged once committed).
    let results = recording.commit().await?;
    if rejected(&previous) && session.state == SessionState::Valid {
        tracing::info!(
            event = "session.key_accepted",
            shop = name,
            "Tripletex accepts this shop's employee key again"
        );
    } else if rejected(&session) && !rejected(&previous) {
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
        checks = results.len(),
        "pass recorded"
    );
    Ok(PassReport {
        shop: shop.name.clone(),
        session,
        results,
        consumer_rejected,
    })
}

/// Evaluates `kind` over `numbers` (what its mirror holds once `batch` is committed), without
/// any Tripletex request, and records it as a pass records a check, in the same flushed commit
/// as `batch`.
pub(crate) async fn record_evaluation(
    shop: &str,
    (kind, range): (CheckKind, NumberRange),
    numbers: &[u32],
    store: &Store,
    batch: Batch,
    settings: &PassSettings,
    now: Timestamp,
) -> Result<CheckOutcome, PassError> {
    let mut recording = Recording::new(store, shop, now, settings, batch)?;
    let last_result = recording.last_result(kind)?;
    let history = recording.history(kind)?;
    let outcome = checks::evaluate(kind, numbers, range, &settings.policy, &history, now);
    let record = ResultRecord::next(last_result.as_ref(), outcome, now);
    recording.check(kind, last_result.as_ref(), record)?;
    let mut results = recording.commit().await?;
    Ok(results.pop().expect("one check recorded").outcome)
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

//! The delivery task: sends the outbox's messages to the platform, oldest first, and removes
//! each once a 2xx says the platform has it (so delivery is at least once; a retry carries the
//! same `webhook-id`, on which the platform deduplicates).
//!
//! Invariants:
//! - A group's (shop's) messages go one at a time, in order: the oldest pending message of a
//!   group is the only one of it that may be in flight or waiting to be retried; other groups go
//!   on beside it, at most [`IN_FLIGHT`] attempts at once.
//! - The platform as a whole failing (no answer, 5xx, 408, 409, 429, 3xx) pauses every delivery:
//!   `Retry-After` when it sent one, else exponential backoff with full jitter from
//!   `notify.retry_min` up to `notify.retry_max`. A message refused with another 4xx is about
//!   that message: its group waits likewise, and after [`REFUSALS`] refusals it is dead.
//! - A message older than `notify.max_age` is dead (checked whenever the outbox is read, at the
//!   latest `retry_max` after its time has passed). Dead messages are kept (see `store`) and
//!   logged once, at ERROR (`notify.dead`).
//! - Memory does not grow with the backlog: each round reads the outbox lazily and stops after
//!   [`SCAN_LIMIT`] messages; what is held per group is bounded by the groups waiting.
//! - Stop: attempts in flight get [`STOP_GRACE`] to finish, then are abandoned; nothing is lost
//!   (a message leaves the outbox only once delivered or dead).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backlog::{Backlog, Report};
use super::message::Message;
use super::send::{Answer, send};
use crate::clock::SharedClock;
use crate::config::NotifyConfig;
use crate::metrics::Metrics;
use crate::secrets::Signer;
use crate::store::{Pending, Store, StoreError};

/// Attempts at once (each for a different group).
pub const IN_FLIGHT: usize = 8;
/// Messages one round reads at most before it waits for an attempt to end.
const SCAN_LIMIT: usize = 10_000;
/// Refusals of one message (a 4xx about it) before it is dead.
const REFUSALS: u32 = 5;
/// How long a stop waits for attempts in flight.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// A round runs at least this often, so `max_age` is applied while nothing else happens.
const IDLE_ROUND: Duration = Duration::from_secs(60);

/// Where messages go and what signs them: `[notify]` of the running configuration.
pub struct Destination {
    pub config: NotifyConfig,
    pub signer: Signer,
}

/// Sends one message (the HTTP POST in the daemon; a scripted platform in tests).
pub trait Transport: Send + Sync + 'static {
    fn send(&self, to: &Destination, message: &Message) -> impl Future<Output = Answer> + Send;
}

/// The daemon's transport: [`send`] through one HTTP client.
pub struct Http(pub reqwest::Client);

impl Transport for Http {
    fn send(&self, to: &Destination, message: &Message) -> impl Future<Output = Answer> + Send {
        send(&self.0, &to.config, &to.signer, message)
    }
}

/// What the task needs from the daemon.
pub struct Delivery<T> {
    pub store: Arc<Store>,
    /// The running configuration's destination; `None` while `[notify]` is off (messages
    /// wait).
    pub destination: watch::Receiver<Option<Arc<Destination>>>,
    pub transport: Arc<T>,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    pub report: watch::Sender<Option<Backlog>>,
}

/// How one attempt ended, as the loop judges it.
enum Judged {
    Delivered,
    /// The platform is not taking anything now: pause everything.
    PlatformDown {
        wait: Option<Duration>,
    },
    /// The platform refused this message.
    Refused(StatusCode),
}

fn judge(answer: &Answer) -> Judged {
    match answer {
        Answer::Delivered { .. } => Judged::Delivered,
        Answer::Failed { .. } => Judged::PlatformDown { wait: None },
        Answer::Refused {
            status,
            retry_after,
            ..
        } => match status.as_u16() {
            429 | 503 => Judged::PlatformDown { wait: *retry_after },
            300..=399 | 408 | 409 | 500..=599 => Judged::PlatformDown { wait: None },
            _ => Judged::Refused(*status),
        },
    }
}

/// An attempt's end: the message, the answer, and where it went (the destination may have
/// changed by a reload since).
type Attempt = (Pending, Answer, Arc<Destination>);

/// A group waiting to retry its oldest message.
struct Held {
    seq: u64,
    refusals: u32,
    until: Instant,
}

struct State {
    /// Sequence numbers and groups of the attempts in flight.
    flying: HashMap<u64, String>,
    held: HashMap<String, Held>,
    /// Everything waits until then (the platform failed).
    paused_until: Option<Instant>,
    /// Platform failures in a row, for the backoff.
    failures: u32,
    report: Report,
}

/// Runs until `cancel`: see the module docs.
pub async fn run<T: Transport>(delivery: Delivery<T>, cancel: CancellationToken) {
    let mut state = State {
        flying: HashMap::new(),
        held: HashMap::new(),
        paused_until: None,
        failures: 0,
        report: Report::new(delivery.report.clone()),
    };
    let mut attempts: JoinSet<Attempt> = JoinSet::new();
    let mut destination = delivery.destination.clone();
    loop {
        let current = destination.borrow_and_update().clone();
        let now = Instant::now();
        if let Some(to) = &current
            && state.paused_until.is_none_or(|t| t <= now)
        {
            state.paused_until = None;
            if let Err(e) = round(&delivery, to, &mut state, &mut attempts).await {
                // The store is failing: it says so itself (store.failing, /healthz); try later.
                tracing::debug!(event = "notify.store_error", error = %e);
                state.paused_until = Some(now + IDLE_ROUND);
            }
        }
        let on = current.is_some();
        state
            .report
            .publish(&delivery.store, &delivery.metrics, delivery.clock.now(), on);
        let wake = next_wake(&state, now);
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                if let Ok((pending, answer, to)) = done {
                    settle(&delivery, &to, &mut state, pending, answer).await;
                }
            }
            _ = delivery.store.outbox_queued() => {}
            Ok(()) = destination.changed() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    let stop = Instant::now() + STOP_GRACE;
    while let Ok(Some(Ok((pending, answer, to)))) =
        tokio::time::timeout_at(stop, attempts.join_next()).await
    {
        settle(&delivery, &to, &mut state, pending, answer).await;
    }
    attempts.abort_all();
    let on = delivery.destination.borrow().is_some();
    state
        .report
        .publish(&delivery.store, &delivery.metrics, delivery.clock.now(), on);
}

/// When the loop must look again without being woken: a pause or a held group ending, or the
/// idle round.
fn next_wake(state: &State, now: Instant) -> Instant {
    let mut wake = now + IDLE_ROUND;
    if let Some(t) = state.paused_until {
        wake = wake.min(t);
    }
    if state.paused_until.is_none() {
        for held in state.held.values() {
            wake = wake.min(held.until);
        }
    }
    wake.max(now + Duration::from_millis(1))
}

/// Reads the outbox oldest first: kills what is past `max_age`, starts an attempt for each
/// group's oldest message that may go, until [`IN_FLIGHT`] are in flight.
async fn round<T: Transport>(
    delivery: &Delivery<T>,
    to: &Arc<Destination>,
    state: &mut State,
    attempts: &mut JoinSet<Attempt>,
) -> Result<(), StoreError> {
    let store = &delivery.store;
    let now = Instant::now();
    let wall = delivery.clock.now();
    let oldest_allowed = wall
        .checked_sub(crate::clock::span(to.config.max_age))
        .unwrap_or(wall);
    let mut seen: HashSet<String> = state.flying.values().cloned().collect();
    let mut expired = Vec::new();
    let (mut scanned, mut oldest) = (0usize, None);
    let mut whole = true;
    // No commit lands mid-scan (the scan spawns, never awaits): one that did could show a
    // shop's newer message without its older one, which would then go second.
    let quiet = store.outbox_quiet().await;
    for pending in store.outbox_pending() {
        if state.flying.len() >= IN_FLIGHT || scanned >= SCAN_LIMIT {
            whole = false;
            break;
        }
        let pending = pending?;
        scanned += 1;
        if pending.record.timestamp < oldest_allowed {
            expired.push(pending);
            continue;
        }
        oldest.get_or_insert(pending.record.timestamp);
        if !seen.insert(pending.record.group.clone()) {
            continue;
        }
        if let Some(held) = state.held.get(&pending.record.group)
            && held.seq == pending.seq
            && held.until > now
        {
            continue;
        }
        state
            .flying
            .insert(pending.seq, pending.record.group.clone());
        let (to, transport) = (to.clone(), delivery.transport.clone());
        attempts.spawn(async move {
            let message = Message {
                id: pending.record.id.clone(),
                kind: pending.record.kind.clone(),
                timestamp: pending.record.timestamp,
                data: pending.record.data.clone(),
            };
            let answer = transport.send(&to, &message).await;
            (pending, answer, to)
        });
    }
    drop(quiet);
    // A read to the end counted the outbox: that corrects a count a race may have put off by
    // one (a message removed twice, see `store::outbox`).
    if whole {
        store.outbox_recounted(scanned as u64);
    }
    if whole || oldest.is_some() {
        state.report.oldest(oldest);
    }
    if !expired.is_empty() {
        let reason = format!(
            "undelivered for longer than notify.max_age ({})",
            humantime::format_duration(to.config.max_age)
        );
        kill(delivery, &expired, &reason, wall).await?;
    }
    Ok(())
}

/// What an attempt's answer does: removes, pauses, holds or kills.
async fn settle<T: Transport>(
    delivery: &Delivery<T>,
    to: &Destination,
    state: &mut State,
    pending: Pending,
    answer: Answer,
) {
    state.flying.remove(&pending.seq);
    let group = pending.record.group.clone();
    let now = Instant::now();
    let result = match judge(&answer) {
        Judged::Delivered => {
            state.failures = 0;
            state.held.remove(&group);
            tracing::debug!(event = "notify.delivered", id = %pending.record.id, kind = %pending.record.kind, shop = %group, %answer);
            state.report.delivered(delivery.clock.now());
            let mut batch = delivery.store.batch();
            batch.outbox_remove(&pending);
            // A failing store reports itself (store.failing, /healthz); the message stays and
            // goes again later with the same id, which the platform deduplicates.
            let _ = delivery.store.commit(batch).await;
            "delivered"
        }
        Judged::PlatformDown { wait } => {
            // Attempts in flight when the platform went down fail too: one pause, not many.
            if state.paused_until.is_none_or(|t| t <= now) {
                state.failures = state.failures.saturating_add(1);
                let wait = wait
                    .map(|w| w.min(to.config.retry_max))
                    .unwrap_or_else(|| backoff(&to.config, state.failures));
                state.paused_until = Some(now + wait);
            }
            state.report.failed(&pending, &answer, delivery.clock.now());
            "failed"
        }
        Judged::Refused(status) => {
            let refusals = match state.held.get(&group) {
                Some(held) if held.seq == pending.seq => held.refusals + 1,
                _ => 1,
            };
            state.report.failed(&pending, &answer, delivery.clock.now());
            if refusals >= REFUSALS {
                state.held.remove(&group);
                let reason = format!("the platform refused it {refusals} times (last: {status})");
                // As above: a failing store reports itself, and the message stays.
                let _ = kill(delivery, &[pending], &reason, delivery.clock.now()).await;
            } else {
                let until = now + backoff(&to.config, refusals);
                let held = Held {
                    seq: pending.seq,
                    refusals,
                    until,
                };
                state.held.insert(group, held);
            }
            "refused"
        }
    };
    delivery.metrics.notify_delivery(result);
}

/// Moves `dead` out of the outbox (one commit) and logs it once.
async fn kill<T: Transport>(
    delivery: &Delivery<T>,
    dead: &[Pending],
    reason: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut batch = delivery.store.batch();
    for pending in dead {
        delivery
            .store
            .outbox_kill(&mut batch, pending, reason, at)?;
    }
    delivery.store.commit(batch).await?;
    delivery.metrics.notify_dead(dead.len() as u64);
    let first = &dead[0].record;
    tracing::error!(
        event = "notify.dead",
        count = dead.len(),
        id = %first.id,
        kind = %first.kind,
        shop = %first.group,
        reason,
        "notifications will not be delivered (kept for inspection: status shows the count)"
    );
    Ok(())
}

/// The wait before retry `n` (1-based): full jitter over `retry_min · 2^(n-1)`, at most
/// `retry_max`.
fn backoff(config: &NotifyConfig, n: u32) -> Duration {
    let ceiling = config
        .retry_min
        .saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(config.retry_max);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests;

//! Supervision of passes: a pass that panics or fails is caught, logged (`pass.failed`, ERROR,
//! with the shop and why) and recorded like any other `error` verdict, so status shows it and the
//! shop task lives on to retry.
//!
//! Invariants: a panic never leaves its shop task (the task keeps its pass-now trigger and its
//! retries); a failure is recorded for every enabled check of the shop, marked `pass_failed`
//! (`check` beside the daemon exits 2 on it); retries back off from [`RETRY_FIRST`], doubling, up
//! to the pass interval.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::ShopConfig;
use crate::pass::{PassReport, PassSettings, Recording};
use crate::store::{ResultRecord, SessionRecord, Store, StoreError};
use crate::tripletex::ratelimit::full_jitter;

/// The first retry after a failed pass; each further failure doubles it, up to the interval.
pub(super) const RETRY_FIRST: Duration = Duration::from_secs(1);

/// Polls a future, turning a panic inside it into `Err(message)`. The future is dropped after a
/// panic and never polled again.
pub(super) struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> CatchPanic<F> {
    pub(super) fn new(fut: F) -> Self {
        Self(Box::pin(fut))
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Unwind safety: after a panic the pass's future is dropped, and what it shared (client,
        // store) only holds state that the next pass re-reads or rebuilds.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    format!("panicked: {text}")
}

/// Logs and records a failed pass of `shop`; returns the report to publish in status.
pub(super) async fn pass_failed(
    shop: &ShopConfig,
    store: &Store,
    clock: &SharedClock,
    settings: &PassSettings,
    reason: &str,
) -> Option<PassReport> {
    tracing::error!(
        event = "pass.failed",
        shop = %shop.name,
        error = %reason,
        "pass failed; its checks show error until a pass succeeds"
    );
    match record(shop, store, clock, settings, reason).await {
        Ok(report) => Some(report),
        Err(e) => {
            tracing::error!(
                event = "pass.failed",
                shop = %shop.name,
                error = %e,
                "the failed pass could not be recorded either"
            );
            None
        }
    }
}

async fn record(
    shop: &ShopConfig,
    store: &Store,
    clock: &SharedClock,
    settings: &PassSettings,
    reason: &str,
) -> Result<PassReport, StoreError> {
    let now = clock.now();
    let name = shop.name.as_str();
    let mut recording = Recording::new(store, name, now, settings, store.batch())?;
    for (kind, _) in shop.checks.iter().filter(|(_, range)| range.is_some()) {
        // An unreadable previous result is what may have failed the pass: overwrite it.
        let previous = recording.last_result(kind).ok().flatten();
        let record = ResultRecord::pass_failed(previous.as_ref(), kind, reason, now);
        recording.check(kind, previous.as_ref(), record)?;
    }
    let session = match store.session(name) {
        Ok(session) => session.unwrap_or_default(),
        Err(e) => {
            // Unreadable: start it afresh, or every later pass fails on it again.
            let session = SessionRecord {
                detail: Some(e.to_string()),
                ..SessionRecord::default()
            };
            recording.batch().put_session(name, &session);
            session
        }
    };
    let results = recording.commit().await?;
    Ok(PassReport {
        shop: shop.name.clone(),
        session,
        results,
        consumer_rejected: false,
    })
}

/// The wait before retrying after `failures` failed passes in a row: from [`RETRY_FIRST`],
/// doubling, at most `interval`; half of it jittered so failing shops spread out.
pub(super) fn retry_wait(failures: u32, interval: Duration) -> Duration {
    let doubled = RETRY_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(20));
    let base = doubled.min(interval);
    base / 2 + full_jitter(base / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        let caught = CatchPanic::new(async { panic!("bad row {}", 7) }).await;
        assert_eq!(caught, Err::<(), _>("panicked: bad row 7".to_owned()));
        let caught = CatchPanic::new(async { 5 }).await;
        assert_eq!(caught, Ok(5));
    }

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        for failures in 1..40 {
            let wait = retry_wait(failures, hour);
            let base = RETRY_FIRST
                .saturating_mul(1 << (failures - 1).min(20))
                .min(hour);
            assert!(wait >= base / 2 && wait <= base, "{failures}: {wait:?}");
        }
        assert!(retry_wait(30, Duration::from_secs(2)) <= Duration::from_secs(2));
    }
}

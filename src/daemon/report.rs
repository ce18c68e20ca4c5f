//! What the daemon tells the outside after passes: status.json, systemd's STATUS= line, and the
//! one-time `consumer_token.rejected` event.
//!
//! Invariants: status.json is rewritten at most about every 200 ms however many passes end
//! together, and once more after the last pass before shutdown; a rejected consumer token is
//! logged once until some shop's mint gets past it again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::checks::{CheckKind, Verdict};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::pass::PassReport;
use crate::status::StatusReport;
use crate::store::{SessionState, Store};

const DEBOUNCE: Duration = Duration::from_millis(200);

/// What makes status.json stale.
pub(super) enum Update {
    /// A shop's pass was recorded.
    Pass(PassReport),
    /// The shop set changed (reload): `check` must see new shops listed at once.
    Reloaded,
}

/// Runs until every update sender is gone.
pub(super) async fn status_writer(
    store: Arc<Store>,
    config: Arc<RwLock<Config>>,
    clock: SharedClock,
    mut updates: mpsc::UnboundedReceiver<Update>,
    cancel: CancellationToken,
) {
    let mut consumer_reported = false;
    let write = |store: &Store| {
        let config = config.read().expect("config lock").clone();
        match StatusReport::collect(Some(store), &config, clock.now()) {
            Ok(report) => {
                if let Err(e) = report.write(store.state_dir()) {
                    tracing::warn!(event = "status.write_failed", error = %e, "status.json not updated");
                }
                notify_systemd(&[sd_notify::NotifyState::Status(&summary_line(&report))]);
            }
            Err(e) => {
                tracing::warn!(event = "status.write_failed", error = %e, "status not collected")
            }
        }
    };
    write(&store);
    while let Some(first) = updates.recv().await {
        let mut batch = vec![first];
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(DEBOUNCE) => {}
        }
        while let Ok(more) = updates.try_recv() {
            batch.push(more);
        }
        let passes: Vec<PassReport> = batch
            .into_iter()
            .filter_map(|u| match u {
                Update::Pass(report) => Some(report),
                Update::Reloaded => None,
            })
            .collect();
        consumer_rejection(&passes, &mut consumer_reported);
        write(&store);
    }
    write(&store);
}

/// Logs `consumer_token.rejected` once for a run of rejections (not once per shop).
pub(super) fn consumer_rejection(reports: &[PassReport], reported: &mut bool) {
    let rejected = reports.iter().filter(|r| r.consumer_rejected).count();
    if rejected > 0 && !*reported {
        tracing::error!(
            event = "consumer_token.rejected",
            shops = rejected,
            "Tripletex rejected the consumer token: a deployment problem, not the shops' keys; check tripletex.consumer_token_* and base_url"
        );
        *reported = true;
    } else if rejected == 0
        && reports
            .iter()
            .any(|r| r.session.state != SessionState::Unknown)
    {
        *reported = false;
    }
}

/// "3 shops: 1 ok, 0 warn, 1 conflict, 1 error" (each shop counted by its worst check).
fn summary_line(report: &StatusReport) -> String {
    let mut counts: HashMap<Verdict, usize> = HashMap::new();
    for shop in report.shops.iter().filter(|s| s.enabled) {
        let worst = CheckKind::ALL
            .map(|k| shop.checks.get(k).verdict)
            .into_iter()
            .max()
            .unwrap_or(Verdict::Unknown);
        *counts.entry(worst).or_default() += 1;
    }
    let part = |v: Verdict| format!("{} {}", counts.get(&v).copied().unwrap_or(0), v.as_str());
    format!(
        "{} shops: {}, {}, {}, {}",
        report.shops.len(),
        part(Verdict::Ok),
        part(Verdict::Warn),
        part(Verdict::Conflict),
        part(Verdict::Error)
    )
}

pub(super) fn notify_reloading() {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(now) => notify_systemd(&[sd_notify::NotifyState::Reloading, now]),
        Err(_) => notify_systemd(&[sd_notify::NotifyState::Reloading]),
    }
}

pub(super) fn notify_systemd(state: &[sd_notify::NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
    let _ = sd_notify::notify(state);
}

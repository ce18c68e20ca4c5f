//! What the daemon tells the outside after passes: status.json, metrics.prom (and the metrics'
//! per-shop series), systemd's STATUS= line, and the one-time `consumer_token.rejected` event.
//!
//! Invariants: a recorded pass updates only its shop's entry of the in-memory view
//! ([`StatusView`]); status.json is rewritten from that view (never from the whole store) when
//! something changed, gathering passes for 200 ms and leaving at least thirty times the last
//! write's duration between writes, so big files are written seldom and the cost per pass does
//! not grow with the number of shops; it is written once more after the last pass before shutdown (and
//! after the sessions that shutdown deleted were recorded `revoked`); a
//! rejected consumer token is logged once until some shop's mint gets past it again; a shop's
//! push state (webhooks) lives only here, sent by its task, and is shown for every enabled shop
//! while webhooks are on. While the store cannot write, the file says so (`store_error`, every
//! enabled check `error` with the reason, rewritten after each refused pass so `check` beside
//! the daemon answers at once), in place of the old file if the file system has no room for a
//! new one; the writer alone sets `tripletex_sync_store_healthy`, as soon as the store breaks or
//! recovers; `status.write_failed` is logged at most once per [`QUIET`], with how many were
//! left out. The view is shared with the status page; after each rebuild a background task reads
//! the stored history into new shops' chart trails, and the writer ends only after those tasks
//! (they hold the store).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::systemd;
use super::view::{SharedView, StatusView, seed_trails, write_file};
use crate::checks::PerKind;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::{CheckState, Metrics, ShopState};
use crate::notify::{self, Backlog, Message};
use crate::pass::{PassReport, PassSettings};
use crate::status::StatusReport;
use crate::status::{PushStatus, ShopStatus};
use crate::store::{SessionRecord, SessionState, Store, StoreError};

/// How long passes ending together are gathered into one write.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Writing status.json (and metrics.prom) may take at most about this share of the writer's
/// time: a file of 100 000 shops that takes 0.4 s to write is rewritten at most every 12 s, one
/// of 10 000 about every second. At a tenth, the writes were 6 % of the daemon's CPU in an idle
/// pass of 10 000 shops (perf, BENCHMARKS.md), for a file fresher than anyone reads it.
const WRITE_SHARE: u32 = 30;
/// However long a write took, the next comes within this (once something changed).
const MAX_GAP: Duration = Duration::from_secs(30);
/// A failing write of status.json is logged at most this often.
const QUIET: Duration = Duration::from_secs(60);

/// What makes status.json stale.
pub(super) enum Update {
    /// A shop's pass was recorded.
    Pass(PassReport),
    /// The shop's push state changed (a reconcile, a callback, applied or not).
    Push(String, PushStatus),
    /// The shop set changed (reload): `check` must see new shops listed at once.
    Reloaded,
    /// These shops' session tokens were deleted as their tasks stopped; their records (here as
    /// committed, or as they failed to be) say `revoked`.
    Revoked(Vec<(String, SessionRecord)>),
    /// A pass was refused because the store cannot write: `check` must see that at once.
    Refused,
}

/// What the status writer works with: the view it keeps (the status page reads it too), the
/// store it reads, the running configuration, the clock and the metrics it feeds, and where it
/// says how long its last write took.
pub(super) struct Edges {
    pub view: SharedView,
    pub store: Arc<Store>,
    pub config: Arc<RwLock<Config>>,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    pub last_write: LastWrite,
}

/// How long the status writer's last write of status.json and metrics.prom took: a stop leaves
/// room for one more (see `stopping`).
#[derive(Clone, Default)]
pub(super) struct LastWrite(Arc<AtomicU64>);

impl LastWrite {
    pub fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.0.store(micros, Ordering::Relaxed);
    }
}

/// Runs until every update sender is gone, then writes the file a last time.
pub(super) async fn status_writer(
    edges: Edges,
    mut updates: mpsc::UnboundedReceiver<Update>,
    mut backlog: watch::Receiver<Option<Backlog>>,
    cancel: CancellationToken,
) {
    let Edges {
        view,
        store,
        config,
        clock,
        metrics,
        last_write,
    } = edges;
    let mut writer = Writer {
        store,
        config,
        clock,
        metrics,
        view,
        seeding: Vec::new(),
        cancel: cancel.clone(),
        push: HashMap::new(),
        consumer: Rejections::default(),
        consumer_reported: false,
        failing_since: None,
        quiet: Quiet::default(),
        last_write,
    };
    let mut health = writer.store.watch_health();
    writer.rebuild();
    let mut next = writer.write(&backlog).await;
    // When the file must next be written; `None` while it is current.
    let mut due: Option<Instant> = None;
    loop {
        let timer = async {
            match due {
                // Once stopping, only the last write is left: it sees everything.
                Some(at) if !cancel.is_cancelled() => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            update = updates.recv() => match update {
                None => break,
                Some(Update::Pass(report)) => {
                    if writer.apply(report) {
                        due.get_or_insert(next.max(Instant::now() + DEBOUNCE));
                    }
                }
                Some(Update::Push(shop, push)) => {
                    writer.push.insert(shop.clone(), push);
                    if writer.refresh(&shop) {
                        due.get_or_insert(next.max(Instant::now() + DEBOUNCE));
                    }
                }
                Some(Update::Revoked(shops)) => {
                    if writer.revoked(&shops) {
                        due.get_or_insert(next.max(Instant::now() + DEBOUNCE));
                    }
                }
                Some(Update::Reloaded) => {
                    writer.rebuild();
                    due = Some(Instant::now() + DEBOUNCE);
                }
                Some(Update::Refused) => {
                    due.get_or_insert(next.max(Instant::now() + DEBOUNCE));
                }
            },
            Ok(()) = backlog.changed() => {
                due.get_or_insert(next.max(Instant::now() + DEBOUNCE));
            }
            // Broken or recovered: the file must stop (or start) showing the old verdicts.
            Ok(()) = health.changed() => {
                writer.metrics.store_healthy(health.borrow_and_update().is_none());
                due = Some(Instant::now() + DEBOUNCE);
            }
            _ = timer => {
                due = None;
                next = writer.write(&backlog).await;
            }
        }
    }
    writer.write(&backlog).await;
    // They hold the store, which must close when the daemon stops.
    for seeding in writer.seeding {
        let _ = seeding.await;
    }
}

/// The status writer's state.
struct Writer {
    store: Arc<Store>,
    config: Arc<RwLock<Config>>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    /// `None` when it could not be read from the store (retried at the next write); the status
    /// page reads it too.
    view: SharedView,
    /// Tasks reading the stored history into new shops' chart trails (see `view.rs`).
    seeding: Vec<tokio::task::JoinHandle<()>>,
    cancel: CancellationToken,
    /// Each shop's push state, from its task (status.json shows it, the store does not keep it).
    push: HashMap<String, PushStatus>,
    consumer: Rejections,
    consumer_reported: bool,
    /// When the writer first saw the store failing, while it fails (the checks' `since`).
    failing_since: Option<jiff::Timestamp>,
    quiet: Quiet,
    last_write: LastWrite,
}

/// Rate-limits one repeated warning: the first is logged, then at most one per [`QUIET`].
#[derive(Default)]
struct Quiet {
    logged: Option<Instant>,
    left_out: u64,
}

impl Quiet {
    /// `Some(how many were left out since the last one)` when this one is to be logged.
    fn due(&mut self) -> Option<u64> {
        if self.logged.is_some_and(|at| at.elapsed() < QUIET) {
            self.left_out += 1;
            return None;
        }
        self.logged = Some(Instant::now());
        Some(std::mem::take(&mut self.left_out))
    }
}

/// Consumer-token rejections among the passes since the last write.
#[derive(Default)]
struct Rejections {
    rejected: usize,
    live: bool,
}

impl Writer {
    fn rebuild(&mut self) {
        let config = self.config.read().expect("config lock");
        let (metrics, push) = (&self.metrics, &self.push);
        let on = config.webhooks.is_some();
        let quiet = &mut self.quiet;
        // Built beside the old view (the page keeps showing it meanwhile), which lends the new
        // one its chart trails; replaced in one step.
        let built = {
            let previous = self.view.read().expect("status view lock");
            StatusView::build(&self.store, &config, previous.as_ref(), |s| {
                observe(metrics, push, on, s)
            })
            .inspect_err(|e| {
                if let Some(left_out) = quiet.due() {
                    tracing::warn!(event = "status.write_failed", error = %e, left_out, "status not collected");
                }
            })
            .ok()
        };
        let any = built.is_some();
        *self.view.write().expect("status view lock") = built;
        if any {
            self.seeding.retain(|t| !t.is_finished());
            self.seeding.push(seed_trails(
                self.view.clone(),
                self.store.clone(),
                self.cancel.clone(),
            ));
        }
    }

    /// Takes in one recorded pass; true when status.json is now stale (or a consumer-token
    /// rejection waits to be logged, which happens with the next write).
    fn apply(&mut self, report: PassReport) -> bool {
        self.consumer.rejected += usize::from(report.consumer_rejected);
        self.consumer.live |= report.session.state != SessionState::Unknown;
        let unlogged = report.consumer_rejected && !self.consumer_reported;
        let shop = report.shop.clone();
        self.update(&shop, |view, store, config, observe| {
            view.recorded(store, config, report, observe)
        }) || unlogged
    }

    /// Re-reads one shop's entry; true when status.json is now stale.
    fn refresh(&mut self, shop: &str) -> bool {
        self.update(shop, |view, store, config, observe| {
            view.refresh(store, config, shop, observe)
        })
    }

    /// Updates one shop's entry by `how`; true when status.json is now stale.
    fn update(
        &mut self,
        shop: &str,
        how: impl FnOnce(
            &mut StatusView,
            &Store,
            &Config,
            &mut dyn FnMut(&mut ShopStatus),
        ) -> Result<bool, StoreError>,
    ) -> bool {
        let mut view = self.view.write().expect("status view lock");
        let Some(view) = view.as_mut() else {
            return true;
        };
        let config = self.config.read().expect("config lock");
        let (metrics, push) = (&self.metrics, &self.push);
        let on = config.webhooks.is_some();
        match how(view, &self.store, &config, &mut |s| {
            observe(metrics, push, on, s)
        }) {
            Ok(changed) => changed,
            Err(e) => {
                if let Some(left_out) = self.quiet.due() {
                    tracing::warn!(event = "status.write_failed", shop, error = %e, left_out, "status not collected");
                }
                true
            }
        }
    }

    /// Shows each of `shops` with its session as recorded when its token was deleted, without
    /// reading the store (at a stop, that may be every shop); true when status.json is now stale.
    fn revoked(&mut self, shops: &[(String, SessionRecord)]) -> bool {
        let mut changed = false;
        for (shop, record) in shops {
            changed |= self.update(shop, |view, _, config, observe| {
                view.set_session(config, shop, record.into(), observe)
            });
        }
        changed
    }

    /// Tells the platform (with `[notify]` on) that the consumer token was rejected.
    async fn notify_consumer_rejected(&self) {
        let queueing = PassSettings::new(&self.config.read().expect("config lock")).notify;
        let Some(queueing) = queueing else {
            return;
        };
        let mut batch = self.store.batch();
        let message = Message::consumer_token_rejected(CONSUMER_REMEDY, self.clock.now());
        // A store that cannot write says so itself (store.broken).
        if notify::queue(&self.store, &mut batch, message, queueing).is_ok() {
            let _ = self.store.commit(batch).await;
        }
    }

    /// Writes status.json and systemd's STATUS= line; returns when the next write may start.
    async fn write(&mut self, backlog: &watch::Receiver<Option<Backlog>>) -> Instant {
        let consumer = std::mem::take(&mut self.consumer);
        let newly_rejected = consumer_rejected(
            consumer.rejected,
            consumer.live,
            &mut self.consumer_reported,
        );
        if newly_rejected {
            self.notify_consumer_rejected().await;
        }
        let started = Instant::now();
        let now = self.clock.now();
        let failing = self.store.failing();
        self.failing_since = failing.as_ref().map(|_| self.failing_since.unwrap_or(now));
        if self.view.read().expect("status view lock").is_none() {
            self.rebuild();
        }
        let failing = failing.as_deref().zip(self.failing_since);
        let state_dir = self.store.state_dir().to_path_buf();
        // Never the old verdicts while the store fails: without a view, a report of the failure.
        let mut last_resort = failing.map(|(error, _)| StatusReport {
            generated_at: now,
            shard: None,
            store_error: Some(error.to_owned()),
            notify: None,
            shops: Vec::new(),
        });
        let mut summary = match failing {
            Some((error, _)) => format!("state store failing: {error}"),
            None => String::new(),
        };
        let notify = backlog.borrow().clone();
        let snapshot = self
            .view
            .write()
            .expect("status view lock")
            .as_mut()
            .map(|view| {
                let snapshot = view.snapshot(now, failing, notify);
                summary = match failing {
                    Some(_) => format!("{summary}; last recorded {}", view.summary_line()),
                    None => view.summary_line(),
                };
                snapshot
            });
        if let Some(snapshot) = snapshot {
            // Rendered here, written with status.json: both are views of the same passes.
            let metrics = self.metrics.prometheus();
            let last = last_resort.take();
            let written = tokio::task::spawn_blocking(move || {
                if let Err(e) = write_file(&snapshot, &state_dir) {
                    // No room for a new file: the failure in place of the old one.
                    return match last.map(|r| r.overwrite_in_place(&state_dir)) {
                        Some(Ok(true)) => Ok(()),
                        _ => Err(e),
                    };
                }
                crate::metrics::write_textfile(&state_dir, |out| metrics.write_to(out))
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            self.write_failed(written);
        } else if let Some(report) = last_resort {
            let written = tokio::task::spawn_blocking(move || {
                report.write(&state_dir).or_else(|e| {
                    report
                        .overwrite_in_place(&state_dir)?
                        .then_some(())
                        .ok_or(e)
                })
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            self.write_failed(written);
        }
        if !summary.is_empty() {
            systemd::notify(&[sd_notify::NotifyState::Status(&summary)]);
        }
        let took = started.elapsed();
        self.last_write.set(took);
        Instant::now() + (took * WRITE_SHARE).clamp(DEBOUNCE, MAX_GAP)
    }

    fn write_failed(&mut self, written: std::io::Result<()>) {
        if let Err(e) = written
            && let Some(left_out) = self.quiet.due()
        {
            tracing::warn!(event = "status.write_failed", error = %e, left_out, "status.json or metrics.prom not updated");
        }
    }
}

/// Completes one shop's recorded status with its push state (while webhooks are `on`, for an
/// enabled shop), and feeds it into the metrics: they show what status.json shows.
fn observe(
    metrics: &Metrics,
    push: &HashMap<String, PushStatus>,
    on: bool,
    status: &mut ShopStatus,
) {
    status.push =
        (on && status.enabled).then(|| push.get(&status.name).copied().unwrap_or_default());
    let checks = PerKind::from_fn(|kind| {
        let c = status.checks.get(kind);
        (!c.disabled).then_some(CheckState {
            verdict: c.verdict,
            evidence: c.evidence.as_ref(),
            checked_at: c.checked_at,
        })
    });
    metrics.shop(
        &status.name,
        &ShopState {
            session: status.session.state,
            session_expires_at: status.session.expires_at,
            push_active: status.push.map(|p| p.active),
            push_last_callback: status.push.and_then(|p| p.last_callback_at),
            checks,
        },
    );
}

/// Logs `consumer_token.rejected` once for a run of rejections (not once per shop).
pub(super) fn consumer_rejection(reports: &[PassReport], reported: &mut bool) {
    let rejected = reports.iter().filter(|r| r.consumer_rejected).count();
    let live = reports
        .iter()
        .any(|r| r.session.state != SessionState::Unknown);
    consumer_rejected(rejected, live, reported);
}

/// What to do about a rejected consumer token.
const CONSUMER_REMEDY: &str = "Tripletex rejected the integration's consumer token: a deployment problem, not the shops' keys; check tripletex.consumer_token_* and base_url";

/// `rejected` passes met a rejected consumer token; `live` if any of them held a session.
/// Whether this is news (logged now).
fn consumer_rejected(rejected: usize, live: bool, reported: &mut bool) -> bool {
    if rejected > 0 && !*reported {
        tracing::error!(
            event = "consumer_token.rejected",
            shops = rejected,
            "{CONSUMER_REMEDY}"
        );
        *reported = true;
        return true;
    } else if rejected == 0 && live {
        *reported = false;
    }
    false
}

//! Tripletex webhooks in the daemon: the receiver and its routes ([`Push`], owned by the run
//! loop), and what a shop task does with push: apply its callbacks between passes, reconcile
//! its subscriptions after each recorded pass, stretch its pass interval while they are
//! healthy, and delete them when a reload retires the shop.
//!
//! Invariants: a callback is applied only on its shop's task (never beside a pass of that
//! shop) and sends no Tripletex request; a stretched interval never passes the shop's next full
//! resync nor its session's renewal, and never shrinks below `checks.interval`; the receiver's
//! address and secret are those of the start (changing `webhooks.listen`, or turning webhooks on
//! or off, takes a restart), its routes follow every successful reload.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::driver::{CLOSE_WITHIN, Driver};
use super::report::Update;
use super::world::{DaemonError, World};
use crate::config::ShopConfig;
use crate::metrics::Metrics;
use crate::secrets::SecretString;
use crate::status::PushStatus;
use crate::tripletex::{EXPIRY_MARGIN, ShopClient};
use crate::webhooks::{self, Callback, News, Receiver, Routes, Subscribed};

/// The webhook receiver of a daemon with `[webhooks]`: its routes follow reloads, its callbacks
/// go to the shop tasks. Its address and secret are those of the start: changing where it
/// listens, or turning webhooks on or off, takes a restart.
pub(super) struct Push {
    running: Option<(Receiver, watch::Sender<Arc<Routes>>)>,
    callbacks: Option<mpsc::Receiver<Callback>>,
    listen: Option<std::net::SocketAddr>,
    /// What the shop tasks' reconciles found, for the receiver's checks.
    subscribed: Subscribed,
}

/// Callbacks waiting for the shop tasks; when full the receiver answers 503 and Tripletex
/// retries.
const CALLBACK_QUEUE: usize = 1024;

impl Push {
    pub async fn start(
        world: &World,
        metrics: &Arc<Metrics>,
        cancel: CancellationToken,
    ) -> Result<Self, DaemonError> {
        let (Some(keys), Some(w)) = (&world.keys, &world.config.webhooks) else {
            return Ok(Self {
                running: None,
                callbacks: None,
                listen: None,
                subscribed: Subscribed::default(),
            });
        };
        let (routes_tx, routes) = watch::channel(Arc::new(keys.routes(&world.config.shops)));
        let (tx, rx) = mpsc::channel(CALLBACK_QUEUE);
        let subscribed = Subscribed::default();
        let metrics = Arc::clone(metrics);
        let receiver = Receiver::start(w.listen, routes, subscribed.clone(), tx, metrics, cancel)
            .await
            .map_err(|e| DaemonError::Webhooks {
                addr: w.listen,
                error: e.to_string(),
            })?;
        tracing::info!(event = "webhooks.listening", addr = %receiver.addr(), "receiving Tripletex webhooks");
        Ok(Self {
            running: Some((receiver, routes_tx)),
            callbacks: Some(rx),
            listen: Some(w.listen),
            subscribed,
        })
    }

    /// The registry the shop tasks keep up to date (see [`reconcile`]).
    pub fn subscribed(&self) -> Subscribed {
        self.subscribed.clone()
    }

    /// Where the receiver listens, while webhooks are on.
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().map(|(receiver, _)| receiver.addr())
    }

    /// The next callback; pending forever while webhooks are off.
    pub async fn next(&mut self) -> Option<Callback> {
        match &mut self.callbacks {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Routes the reloaded shop set.
    pub fn reloaded(&mut self, world: &World) {
        if world.config.webhooks.as_ref().map(|w| w.listen) != self.listen {
            tracing::warn!(
                event = "config.restart_needed",
                "webhooks turned on or off, or webhooks.listen changed; it takes effect on restart"
            );
        }
        if let (Some((_, routes)), Some(keys)) = (&self.running, &world.keys) {
            routes.send_replace(Arc::new(keys.routes(&world.config.shops)));
        }
    }

    pub async fn join(self) {
        if let Some((receiver, _)) = self.running {
            receiver.join().await;
        }
    }
}

/// How long deleting a removed shop's subscriptions may take.
const UNSUBSCRIBE_WITHIN: Duration = Duration::from_secs(30);

/// Deletes a retired shop's webhook subscriptions in the background, best effort and
/// bounded: with a client of its own (the task's stopped with it), within the gate.
pub(super) fn unsubscribe(
    world: &World,
    gate: Arc<Semaphore>,
    cancel: CancellationToken,
    shop: Arc<ShopConfig>,
    token: SecretString,
) {
    let client = world.api.shop(&shop.name, token, shop.company_id, cancel);
    let span = tracing::info_span!("shop", shop = %shop.name);
    let work = async move {
        let removing = async {
            let _permit = gate.acquire().await.expect("gate never closes");
            webhooks::reconcile::remove(&client).await
        };
        match tokio::time::timeout(UNSUBSCRIBE_WITHIN, removing).await {
            Ok(Ok(deleted)) => tracing::info!(
                event = "webhooks.unsubscribed",
                deleted,
                "the shop's webhook subscriptions are deleted"
            ),
            Ok(Err(e)) => {
                tracing::warn!(event = "webhooks.unsubscribe_failed", error = %e, "webhook subscriptions of a removed shop not deleted; delete them in Tripletex")
            }
            Err(_) => {
                tracing::warn!(
                    event = "webhooks.unsubscribe_failed",
                    error = "timed out",
                    "webhook subscriptions of a removed shop not deleted; delete them in Tripletex"
                )
            }
        }
        client.close(Instant::now() + CLOSE_WITHIN).await;
    };
    tokio::spawn(work.instrument(span));
}

/// What a shop task does after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterCallback {
    /// Nothing more: applied, or failed like a pass (recorded; the next pass reads it).
    Done,
    /// It could not be applied: the shop's next pass comes within [`PASS_SOON`].
    PassSoon,
}

/// How soon a pass follows a callback that could not be applied.
pub(super) const PASS_SOON: Duration = Duration::from_secs(60);
/// At most one `webhooks.unusable` line per shop this often.
const UNUSABLE_LOG_EVERY: Duration = Duration::from_secs(600);

/// A shop task's throttle of `webhooks.unusable` lines.
#[derive(Debug, Default)]
pub(super) struct UnusableLog {
    last: Option<Instant>,
    unlogged: u64,
}

/// Applies one webhook callback to the shop's mirror and verdict through the pass driver (the
/// gate, the panic catcher, `pass.failed`; no Tripletex request; a changed verdict is logged),
/// notes its arrival in `push`, and has the status view refreshed.
pub(super) async fn apply_callback(
    d: &Driver,
    reports: &mpsc::UnboundedSender<Update>,
    push: &mut PushStatus,
    unusable: &mut UnusableLog,
    callback: &Callback,
) -> AfterCallback {
    // The status view refreshes the shop from the store on `Update::Push`: sent once the
    // callback is recorded.
    let arrived = d.env.clock.now();
    let after = match &callback.news {
        News::Changed(kind, change) => {
            if let Some(failed) = d.apply_callback(*kind, change).await {
                let _ = reports.send(Update::Pass(failed));
            }
            AfterCallback::Done
        }
        News::Unusable(reason) => {
            let now = Instant::now();
            if unusable
                .last
                .is_some_and(|at| now.duration_since(at) < UNUSABLE_LOG_EVERY)
            {
                unusable.unlogged += 1;
            } else {
                let unlogged = std::mem::take(&mut unusable.unlogged);
                unusable.last = Some(now);
                tracing::warn!(event = "webhooks.unusable", reason = %reason, unlogged, "a callback could not be applied; the next pass reads it within a minute");
            }
            AfterCallback::PassSoon
        }
    };
    push.last_callback_at = Some(arrived);
    let _ = reports.send(Update::Push(d.shop.name.clone(), *push));
    after
}

/// Makes the shop's webhook subscriptions what they should be (when webhooks are on) and
/// tells the receiver which they are; true while all of them are active.
pub(super) async fn reconcile(d: &Driver, client: &ShopClient, subscribed: &Subscribed) -> bool {
    let Some(keys) = &d.world.keys else {
        return false;
    };
    let reconciling = || webhooks::reconcile::reconcile(client, keys, &d.shop);
    let Some(reconciled) = d.guarded("reconcile", reconciling).await else {
        return false;
    };
    match reconciled {
        Ok(done) => {
            let healthy = done.healthy();
            subscribed.set(&d.shop.name, done.subscriptions);
            healthy
        }
        Err(e) => {
            tracing::warn!(event = "webhooks.reconcile_failed", error = %e, "webhook subscriptions not reconciled; polling goes on");
            false
        }
    }
}

/// `checks.interval`; while push is `healthy`, `webhooks.reconcile_interval` instead, but never
/// past the shop's next full resync (a stretched wait must not skip it) nor past the session's
/// renewal (which `checks.interval` is validated to fit).
pub(super) fn pass_interval(d: &Driver, healthy: bool) -> Duration {
    let config = &d.world.config;
    let checks = &config.checks;
    let Some(w) = config.webhooks.as_ref().filter(|_| healthy) else {
        return checks.interval;
    };
    let renewal = config
        .tripletex
        .renew_before
        .saturating_sub(EXPIRY_MARGIN)
        .saturating_sub(checks.jitter);
    // Unreadable cursor: as if a full resync were due now, i.e. no stretch.
    let full = full_resync_in(d).unwrap_or(Duration::ZERO);
    stretched(checks.interval, w.reconcile_interval, &[renewal, full])
}

/// `reconcile` capped by every one of `limits`, but never below `interval`.
fn stretched(interval: Duration, reconcile: Duration, limits: &[Duration]) -> Duration {
    limits
        .iter()
        .fold(reconcile, |wait, &limit| wait.min(limit))
        .max(interval)
}

/// How long until the shop's earliest full resync of an enabled kind falls due.
fn full_resync_in(d: &Driver) -> Option<Duration> {
    let cursor = d.store.cursor(&d.shop.name).ok()?;
    let now = d.env.clock.now();
    let full_resync = d.world.config.checks.full_resync;
    d.shop
        .checks
        .iter()
        .filter(|(_, range)| range.is_some())
        .map(|(kind, _)| match cursor.of(kind).full {
            None => Duration::ZERO,
            Some(at) => {
                let elapsed = now.duration_since(at);
                let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
                full_resync.saturating_sub(elapsed)
            }
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stretched_interval_stops_at_every_limit_but_never_goes_below_the_interval() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(stretched(h(1), h(6), &[h(23), h(24)]), h(6));
        // A full resync due in 2 h: the next pass comes then.
        assert_eq!(stretched(h(1), h(6), &[h(23), h(2)]), h(2));
        // Due already (or unknown): the plain interval, as without push.
        assert_eq!(stretched(h(1), h(6), &[h(23), Duration::ZERO]), h(1));
    }
}

//! One supervised pass of one shop, the same for the daemon's shop tasks and the one-shot
//! `check`: a permit of the concurrency gate, the watchdog's heartbeat, the pass inside
//! [`CatchPanic`], and a failure recorded as `error` ([`supervise::pass_failed`]). A webhook
//! callback's change is applied the same way ([`Driver::apply_callback`]): whatever triggers
//! work on a shop's records, it runs under the same supervision.
//!
//! Invariants: a pass (or callback) runs only while it holds a permit of the gate (so at most
//! `max_concurrent_shops` at once) and is marked busy in the [`Heartbeat`] while it runs; a
//! cancelled one records nothing; a failed or panicked one is logged (`pass.failed`) and
//! recorded for every enabled check; a panic can leave the client half-updated (a poisoned lock
//! in its limiter, breaker or session slot), so the client it happened in is closed (best
//! effort) and replaced before the next pass: a retry never inherits the panic. While the store
//! cannot write, a pass is refused before it sends a request (nothing it found could be
//! recorded) and a pass that failed because the store broke under it is logged at DEBUG only:
//! the store logs that failure itself, once and then rate-limited (`store.broken`,
//! `store.failing`), not once per shop and retry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::supervise::{self, CatchPanic};
use super::watchdog::Heartbeat;
use super::world::{Environment, World};
use crate::checks::CheckKind;
use crate::config::ShopConfig;
use crate::pass::{self, PassError, PassReport, PassSettings};
use crate::secrets::SecretString;
use crate::store::Store;
use crate::tripletex::ShopClient;
use crate::webhooks::{self, Change};

/// How long after its cancellation a stopping shop may take to delete its session token (at the
/// daemon's stop, one deadline for every shop, possibly shorter: see `stopping`).
pub(super) const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// What a shop's passes share, whoever asks for them.
pub(super) struct Driver {
    pub shop: Arc<ShopConfig>,
    pub token: SecretString,
    pub world: Arc<World>,
    pub env: Environment,
    pub store: Arc<Store>,
    pub gate: Arc<Semaphore>,
    pub heartbeat: Arc<Heartbeat>,
    pub cancel: CancellationToken,
    /// From `world`'s configuration.
    pub settings: PassSettings,
}

/// What one supervised pass came to.
pub(super) enum Ran {
    /// The pass was recorded.
    Recorded(PassReport),
    /// The pass failed or panicked; it is recorded as `error` (the report, unless that failed too).
    Failed(Option<PassReport>),
    /// Not run, or not recorded, because the store cannot write (see `store::Store::refuse`).
    Refused,
    /// Stopped before it was recorded.
    Cancelled,
}

impl Driver {
    /// A fresh client for this shop (no session yet).
    pub fn client(&self) -> ShopClient {
        let shop = &self.shop;
        self.world.api.shop(
            &shop.name,
            self.token.clone(),
            shop.company_id,
            self.cancel.clone(),
        )
    }

    /// A permit of the gate, once it has one; `None` when cancelled first.
    pub async fn admitted(&self) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            _ = self.cancel.cancelled() => None,
            p = self.gate.clone().acquire_owned() => Some(p.expect("gate never closes")),
        }
    }

    /// Runs pass number `pass_no` with `client` under `permit` (see [`Driver::admitted`]: a
    /// shop waiting for the gate holds no pass future yet), replacing the client after a panic.
    pub async fn run_pass(
        &self,
        permit: OwnedSemaphorePermit,
        client: &mut ShopClient,
        pass_no: u64,
    ) -> Ran {
        let (shop, store, clock) = (&self.shop, &self.store, &self.env.clock);
        let started = std::time::Instant::now();
        let work = || pass::run(shop, &*client, store, &self.settings, clock, pass_no);
        match self.admitted_run(permit, work).await {
            Supervised::Done(report) => {
                self.env.metrics.pass_recorded(started.elapsed());
                Ran::Recorded(report)
            }
            Supervised::Cancelled => Ran::Cancelled,
            Supervised::Refused => Ran::Refused,
            Supervised::Failed { reason, panicked } => {
                // Boxed, like the failure's record: rare paths, kept out of the size of every
                // idle shop's task.
                if panicked {
                    Box::pin(close_after_panic(std::mem::replace(client, self.client()))).await;
                }
                Ran::Failed(Box::pin(self.failed(&reason)).await)
            }
        }
    }

    /// Applies a webhook callback's `change` of `kind` (no Tripletex request) under the same
    /// supervision as a pass. Applied (or old news, or cancelled): `None`, the status view
    /// refreshes from the store; failed: what a failed pass records, if it could be.
    pub async fn apply_callback(&self, kind: CheckKind, change: &Change) -> Option<PassReport> {
        let (shop, store, clock) = (&self.shop, &*self.store, &self.env.clock);
        let work = || webhooks::apply::apply((kind, change), shop, store, &self.settings, clock);
        match self.supervised(work).await {
            Supervised::Done(_) | Supervised::Cancelled | Supervised::Refused => None,
            Supervised::Failed { reason, .. } => Box::pin(self.failed(&reason)).await,
        }
    }

    /// Runs other work on the shop (e.g. reconciling its webhook subscriptions) as a pass runs:
    /// within the gate, busy in the heartbeat, its panic caught and logged as `what` failing
    /// (`shop.work_panicked`). `None` when cancelled or panicked; nothing is recorded.
    pub async fn guarded<T, F: std::future::Future<Output = T>>(
        &self,
        what: &'static str,
        work: impl FnOnce() -> F,
    ) -> Option<T> {
        match self.supervised(|| async { Ok(work().await) }).await {
            Supervised::Done(done) => Some(done),
            Supervised::Cancelled | Supervised::Refused => None,
            Supervised::Failed { reason, .. } => {
                tracing::error!(event = "shop.work_panicked", shop = %self.shop.name, work = what, error = %reason, "work on the shop panicked; it is retried after the next pass");
                None
            }
        }
    }

    /// Runs the future `work` makes within the gate, busy in the heartbeat, its panic caught.
    /// The future is made and boxed only once the gate lets it run: a pass's future is kilobytes
    /// (HTTP, sled), and made earlier it would sit in every waiting shop's task (heaptrack at
    /// 10 000 shops: 19.5 KiB per task inline, 9.6 KiB per task boxed before the gate). A shop's
    /// passes wait for [`Driver::admitted`] before even the driver's future is boxed.
    async fn supervised<T, F>(&self, work: impl FnOnce() -> F) -> Supervised<T>
    where
        F: std::future::Future<Output = Result<T, PassError>>,
    {
        match self.admitted().await {
            Some(permit) => self.admitted_run(permit, work).await,
            None => Supervised::Cancelled,
        }
    }

    /// [`Driver::supervised`] once the gate admitted it (`_permit`, held until it ends).
    async fn admitted_run<T, F>(
        &self,
        _permit: OwnedSemaphorePermit,
        work: impl FnOnce() -> F,
    ) -> Supervised<T>
    where
        F: std::future::Future<Output = Result<T, PassError>>,
    {
        if let Some(e) = self.store.refuse() {
            self.env.metrics.pass_failed();
            tracing::debug!(event = "pass.refused", shop = %self.shop.name, error = %e, "not run: the store cannot record it");
            return Supervised::Refused;
        }
        let _busy = self.heartbeat.pass_started(&self.shop.name);
        let work = CatchPanic::new(async {
            (self.env.before_pass)(&self.shop.name);
            work().await
        });
        match work.await {
            Ok(Ok(done)) => Supervised::Done(done),
            Ok(Err(PassError::Cancelled)) => Supervised::Cancelled,
            Ok(Err(PassError::Store(e))) if self.store.failing().is_some() => {
                self.env.metrics.pass_failed();
                tracing::debug!(event = "pass.failed", shop = %self.shop.name, error = %e, "not recorded: the store cannot write");
                Supervised::Refused
            }
            Ok(Err(e)) => Supervised::Failed {
                reason: e.to_string(),
                panicked: false,
            },
            Err(panic) => Supervised::Failed {
                reason: panic,
                panicked: true,
            },
        }
    }

    /// Counts, logs and records a failure (after the gate's permit is given back).
    async fn failed(&self, reason: &str) -> Option<PassReport> {
        self.env.metrics.pass_failed();
        let (shop, store, clock) = (&self.shop, &self.store, &self.env.clock);
        supervise::pass_failed(shop, store, clock, &self.settings, reason).await
    }
}

/// What supervised work came to, before its failure is recorded.
enum Supervised<T> {
    Done(T),
    Cancelled,
    /// The store cannot write: not run, or not recorded (the store logs that itself).
    Refused,
    Failed {
        reason: String,
        panicked: bool,
    },
}

/// Deletes the session token of a client a pass panicked in, if it can. It may panic again here
/// (a poisoned lock): that only means the token is left to expire on its own.
async fn close_after_panic(client: ShopClient) {
    let deadline = tokio::time::Instant::now() + CLOSE_WITHIN;
    if let Err(panic) = CatchPanic::new(client.close(deadline)).await {
        tracing::debug!(event = "session.revoke_failed", shop = %client.name(), error = %panic, "token not deleted; it expires on its own");
    }
}

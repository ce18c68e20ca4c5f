//! One supervised pass of one shop, the same for the daemon's shop tasks and the one-shot
//! `check`: a permit of the concurrency gate, the watchdog's heartbeat, the pass inside
//! [`CatchPanic`], and a failure recorded as `error` ([`supervise::pass_failed`]).
//!
//! Invariants: a pass runs only while it holds a permit of the gate (so at most
//! `max_concurrent_shops` at once) and is marked busy in the [`Heartbeat`] while it runs; a
//! cancelled pass records nothing; a failed or panicked pass is logged (`pass.failed`) and
//! recorded for every enabled check; a panic can leave the client half-updated (a poisoned lock
//! in its limiter, breaker or session slot), so the client it happened in is closed (best
//! effort) and replaced before the next pass: a retry never inherits the panic. While the store
//! cannot write, a pass is refused before it sends a request (nothing it found could be
//! recorded) and a pass that failed because the store broke under it is logged at DEBUG only:
//! the store logs that failure itself, once and then rate-limited (`store.broken`,
//! `store.failing`), not once per shop and retry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::supervise::{self, CatchPanic};
use super::watchdog::Heartbeat;
use super::world::{Environment, World};
use crate::config::ShopConfig;
use crate::pass::{self, PassError, PassReport, PassSettings};
use crate::secrets::SecretString;
use crate::store::Store;
use crate::tripletex::ShopClient;

/// How long after its cancellation a stopping shop may take to delete its session token; what
/// is left of systemd's stop timeout goes to the last status.json write and sled's flush.
pub(super) const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// What a shop's passes share, whoever asks for them.
pub(super) struct Driver {
    pub shop: ShopConfig,
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

    /// Runs pass number `pass_no` with `client`, replacing the client after a panic.
    pub async fn run_pass(&self, client: &mut ShopClient, pass_no: u64) -> Ran {
        let permit = tokio::select! {
            _ = self.cancel.cancelled() => return Ran::Cancelled,
            p = self.gate.clone().acquire_owned() => p.expect("gate never closes"),
        };
        let (shop, store, clock) = (&self.shop, &self.store, &self.env.clock);
        if let Some(e) = store.refuse() {
            self.env.metrics.pass_failed();
            tracing::debug!(event = "pass.refused", shop = %shop.name, error = %e, "pass not run: the store cannot record it");
            return Ran::Refused;
        }
        let _busy = self.heartbeat.pass_started(&self.shop.name);
        // Boxed: a pass's future is kilobytes (HTTP, sled), and inline it would sit in every idle
        // shop's task; boxed, only the passes running now hold one.
        let pass = Box::pin(CatchPanic::new(async {
            (self.env.before_pass)(&shop.name);
            pass::run(shop, &*client, store, &self.settings, clock, pass_no).await
        }));
        let started = std::time::Instant::now();
        let reason = match pass.await {
            Ok(Ok(report)) => {
                self.env.metrics.pass_recorded(started.elapsed());
                return Ran::Recorded(report);
            }
            Ok(Err(PassError::Cancelled)) => return Ran::Cancelled,
            Ok(Err(PassError::Store(e))) if store.failing().is_some() => {
                self.env.metrics.pass_failed();
                tracing::debug!(event = "pass.failed", shop = %shop.name, error = %e, "not recorded: the store cannot write");
                return Ran::Refused;
            }
            Ok(Err(e)) => e.to_string(),
            Err(panic) => {
                close_after_panic(std::mem::replace(client, self.client())).await;
                panic
            }
        };
        drop(permit);
        self.env.metrics.pass_failed();
        Ran::Failed(supervise::pass_failed(shop, store, clock, &reason).await)
    }
}

/// Deletes the session token of a client a pass panicked in, if it can. It may panic again here
/// (a poisoned lock): that only means the token is left to expire on its own.
async fn close_after_panic(client: ShopClient) {
    let deadline = tokio::time::Instant::now() + CLOSE_WITHIN;
    if let Err(panic) = CatchPanic::new(client.close(deadline)).await {
        tracing::debug!(event = "session.revoke_failed", shop = %client.name(), error = %panic, "token not deleted; it expires on its own");
    }
}

//! The daemon: start-up (waiting for a one-shot `check` that holds the database, [`serve`]), the
//! run loop, which takes every order from the one control channel ([`control`]: reload, pass now,
//! one shop's pass now; stop is the cancellation token), and the one-shot `check` ([`oneshot`]).
//! What one configuration generation shares, the edges it runs against and the daemon's errors
//! live in `world`, which the children import (never this file: it is only the entry point and
//! the public re-exports). Every pass, in the daemon and in `check`, goes through one pass driver
//! (`driver`). With `[webhooks]`, the run loop also owns the callback receiver ([`Push`]) and
//! hands each callback to its shop's task.
//!
//! Invariants: one [`CancellationToken`] stops everything (each shop task holds a child of it and
//! every sleep, limiter wait and request selects on it); at most `max_concurrent_shops` passes run
//! at once; a reload that fails validation changes nothing (`config.reload_failed`), one that
//! succeeds restarts only the shops whose file or token changed (others keep their sessions; a
//! restarted shop keeps its session too unless its key, `company_id`, the base URL or the
//! consumer token changed) and retries key-rejected shops at once; `status.json` is rewritten
//! after passes (debounced and rate-limited, from an in-memory view) so `status` works while we
//! hold sled; a pass that panics or fails is caught, recorded as `error` and retried (`driver`,
//! `supervise`), in the daemon and in `check_once` alike; under a systemd watchdog, the control
//! loop pings only while no pass is stuck ([`watchdog`]); on stop, every live session token is
//! deleted that can be within the stop deadline, and the rest counted. A store whose writes fail
//! (a full disk) keeps the daemon running, with `/healthz` 503 and status.json showing the
//! failure (`report`), until there is room again; then it stops like a normal stop and `run`
//! fails with [`DaemonError::StoreRestart`], for an exit that systemd restarts (`recover`).

mod allocator;
mod ask;
mod consumer;
pub mod control;
mod driver;
mod inbox;
pub mod oneshot;
mod push;
mod recover;
mod report;
mod scheduler;
mod stopping;
mod supervise;
mod systemd;
mod view;
mod watchdog;
mod world;

pub use ask::{AskError, await_pass};
pub use control::{Control, Controller, Orders, ShopTriggers};
pub use oneshot::check_once;
pub use recover::EXIT_STORE_RESTART;
pub use world::{DaemonError, Environment};

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::notify;
use crate::store::{Role, Store, StoreError, read_holder};
use push::Push;
use scheduler::Scheduler;
use world::{World, reload};

/// How long `run` waits for a one-shot `check` holding the database to finish.
const ONE_SHOT_WAIT: Duration = Duration::from_secs(300);
/// While waiting for it, each second pushes systemd's start-up deadline this far ahead.
const START_EXTENSION_USEC: u32 = 10_000_000;

/// The daemon from start to stop: takes the database (waiting for a one-shot `check` that holds
/// it: a restart must not fail because an operator ran `check`; another daemon is an error), then
/// [`run`]. Stopped while waiting, it returns `Ok` without having run.
pub async fn serve(
    config_path: &Path,
    config: Config,
    env: Environment,
    orders: Orders,
) -> Result<(), DaemonError> {
    let Some(store) = open_for_daemon(&config.state_dir, orders.stop_token()).await? else {
        return Ok(());
    };
    run(config_path, config, Arc::new(store), env, orders).await
}

async fn open_for_daemon(
    state_dir: &Path,
    stop: &CancellationToken,
) -> Result<Option<Store>, StoreError> {
    let deadline = tokio::time::Instant::now() + ONE_SHOT_WAIT;
    // A migration that moves every key (about a minute at 100 000 shops) keeps systemd's
    // start-up timeout ahead of it.
    let mut migrating = |_moved| {
        systemd::notify(&[sd_notify::NotifyState::ExtendTimeoutUsec(
            START_EXTENSION_USEC,
        )]);
    };
    loop {
        match Store::open_migrating(state_dir, Role::Daemon, &mut migrating) {
            Err(StoreError::Locked { .. })
                if read_holder(state_dir).is_some_and(|(role, _)| role == Role::OneShot)
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::info!(
                    event = "daemon.waiting_for_lock",
                    "a one-shot tripletex-sync holds the database; waiting for it"
                );
                // Keep systemd's start-up timeout (TimeoutStartSec=) a few seconds ahead of us
                // while we wait, however long the unit allows by default.
                systemd::notify(&[sd_notify::NotifyState::ExtendTimeoutUsec(
                    START_EXTENSION_USEC,
                )]);
                tokio::select! {
                    _ = stop.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            other => return other.map(Some),
        }
    }
}

/// The daemon on an open database: passes until stopped, obeying `orders`.
pub async fn run(
    config_path: &Path,
    config: Config,
    store: Arc<Store>,
    env: Environment,
    mut orders: Orders,
) -> Result<(), DaemonError> {
    let cancel = orders.stop_token().clone();
    let world = World::build(config, &env)?;
    let world_shard = world.config.shard;
    let initial = world.tokens(&env)?;
    let shared_config = Arc::new(RwLock::new(world.config.clone()));
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let status_view = view::SharedView::default();
    let last_write = report::LastWrite::default();
    let (backlog_tx, backlog_rx) = watch::channel(None);
    let writer = tokio::spawn(report::status_writer(
        report::Edges {
            view: status_view.clone(),
            store: store.clone(),
            config: shared_config.clone(),
            clock: env.clock.clone(),
            metrics: env.metrics.clone(),
            last_write: last_write.clone(),
        },
        reports_rx,
        backlog_rx,
        cancel.clone(),
    ));
    // Runs while notify is off too: messages left from before wait, and status shows them.
    let (destination, destinations) = watch::channel(world.notify.clone());
    let delivery = tokio::spawn(notify::run(
        notify::Delivery {
            store: store.clone(),
            destination: destinations,
            transport: Arc::new(notify::Http(
                notify::client().map_err(|e| DaemonError::Notify(e.to_string()))?,
            )),
            clock: env.clock.clone(),
            metrics: env.metrics.clone(),
            report: backlog_tx,
        },
        cancel.clone(),
    ));
    let metrics = env.metrics.clone();
    configured(&metrics, &world.config, &[]);
    let (probe_room, restart) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let recovery = tokio::spawn(recover::await_room(
        store.clone(),
        probe_room.clone(),
        restart.clone(),
        cancel.clone(),
    ));
    let store_probe = store.clone();
    let listen = world.config.metrics_listen;
    let mut push = Push::start(&world, &env.metrics, cancel.clone()).await?;
    if let Some(addr) = push.addr() {
        orders.listening_on(|l| l.webhooks = Some(addr));
    }
    let mut scheduler = Scheduler::new(
        world,
        env,
        store.clone(),
        reports_tx,
        push.subscribed(),
        cancel.clone(),
        last_write,
    );
    for (shop, token) in initial {
        scheduler.start(shop, token);
    }
    let health = Arc::new(watchdog::Health::default());
    let mut health_ticks = match listen {
        Some(addr) => {
            let probe = health.clone();
            let server = crate::metrics::serve(
                addr,
                metrics.clone(),
                Arc::new(move || probe.healthy() && store_probe.failing().is_none()),
                Some(view::pages(
                    status_view,
                    shared_config.clone(),
                    scheduler.env().clock.clone(),
                )),
                cancel.clone(),
            )
            .await
            .map_err(|e| DaemonError::Metrics {
                addr,
                error: e.to_string(),
            })?;
            tracing::info!(event = "metrics.listening", addr = %server.addr, "serving /metrics, /healthz and the status page");
            orders.listening_on(|l| l.metrics = Some(server.addr));
            Some(tokio::time::interval(watchdog::HEALTH_TICK))
        }
        None => None,
    };
    tracing::info!(
        event = "daemon.started",
        shops = scheduler.len(),
        shard = world_shard.map(|s| s.to_string()),
        state_dir = %scheduler.state_dir().display(),
        "tripletex-sync running"
    );
    systemd::notify(&[sd_notify::NotifyState::Ready]);

    let mut watchdog = watchdog::Watchdog::from_process();
    let mut store_restart = false;
    loop {
        let order = tokio::select! {
            _ = cancel.cancelled() => break,
            // The ping comes from this loop: if it is stuck (e.g. a reload waiting on a shop that
            // never stops), systemd hears nothing.
            _ = watchdog.due() => {
                let limit = watchdog::stall_limit(&scheduler.world().config.checks);
                watchdog.beat(scheduler.heartbeat(), limit);
                continue;
            }
            // Like the watchdog, /healthz hears from this loop, so a wedged loop goes unhealthy.
            _ = tick(&mut health_ticks) => {
                let limit = watchdog::stall_limit(&scheduler.world().config.checks);
                health.record(scheduler.heartbeat(), limit);
                continue;
            }
            Some(callback) = push.next() => {
                scheduler.callback(callback);
                continue;
            }
            // The store is broken for good and there is room again: restart.
            _ = restart.notified() => {
                store_restart = true;
                break;
            }
            order = orders.recv() => order,
        };
        match order {
            Control::Stop => break,
            // Also "look for room now": whoever asks for a pass may just have freed space.
            Control::PassNow => {
                probe_room.notify_one();
                scheduler.pass_now();
            }
            Control::PassNowFor(shop) => {
                probe_room.notify_one();
                scheduler.pass_now_for(&shop);
            }
            Control::Reload => {
                systemd::notify_reloading();
                match reload(config_path, scheduler.env(), scheduler.world()) {
                    Err(e) => {
                        metrics.reload(false);
                        tracing::error!(
                            event = "config.reload_failed",
                            error = %e,
                            "reload refused; keeping the running configuration"
                        )
                    }
                    Ok((world, rebuild, shops)) => {
                        metrics.reload(true);
                        let removed: Vec<String> = scheduler
                            .world()
                            .config
                            .shops
                            .iter()
                            .filter(|old| world.config.shop(&old.name).is_none())
                            .map(|old| old.name.clone())
                            .collect();
                        configured(&metrics, &world.config, &removed);
                        // Status lists the new shop set even when the shared parts are unchanged.
                        *shared_config.write().expect("config lock") = world.config.clone();
                        push.reloaded(&world);
                        destination.send_replace(world.notify.clone());
                        scheduler.apply(world, rebuild, shops).await;
                    }
                }
                systemd::notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }

    systemd::notify(&[sd_notify::NotifyState::Stopping]);
    // Stopping on our own (store restart): every task still ends with this token.
    cancel.cancel();
    let failing = store.failing();
    if failing.is_some() {
        // A pass stuck in a wedged sled call never ends (see `store/health.rs`): stop without it.
        let stopped = tokio::time::timeout(STOP_WITH_BROKEN_STORE, scheduler.shutdown()).await;
        if stopped.is_err() {
            tracing::warn!(
                event = "shutdown.timed_out",
                "some shop tasks did not stop in time (a broken store); stopping without them"
            );
        }
    } else {
        scheduler.shutdown().await;
    }
    push.join().await;
    let _ = delivery.await;
    let _ = recovery.await;
    let _ = writer.await;
    tracing::info!(event = "daemon.stopped", "tripletex-sync stopped");
    match failing {
        Some(error) if store_restart => Err(DaemonError::StoreRestart(error)),
        _ => Ok(()),
    }
}

/// How long a stop waits for the shop tasks while the store is broken: their session deletes
/// take at most [`driver::CLOSE_WITHIN`] and their records a second more (see `stopping`); a task
/// past this is stuck in sled.
const STOP_WITH_BROKEN_STORE: Duration = Duration::from_secs(10);

/// Resolves at the next health tick; never while `/healthz` is not served.
async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The shop set and interval of `config` in the metrics; `removed` shops lose their series.
/// With webhooks on, passes may come only every `reconcile_interval`: staleness alerts count in
/// that.
fn configured(metrics: &Metrics, config: &Config, removed: &[String]) {
    let enabled = config.shops.iter().filter(|s| s.enabled).count();
    let interval = config.checks.interval;
    let interval = config
        .webhooks
        .as_ref()
        .map_or(interval, |w| w.reconcile_interval.max(interval));
    metrics.configured(config.shops.len(), enabled, interval, removed);
}

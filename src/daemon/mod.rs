//! The daemon: the run loop (orders from signals: reload, pass now; stop on cancellation), the
//! one-shot `check_once`, and what one configuration generation shares ([`World`]).
//!
//! Invariants: one [`CancellationToken`] stops everything (each shop task holds a child of it and
//! every sleep, limiter wait and request selects on it); at most `max_concurrent_shops` passes run
//! at once; a reload that fails validation changes nothing (`config.reload_failed`), one that
//! succeeds restarts only the shops whose file or token changed (others keep their sessions) and
//! retries key-rejected shops at once; `status.json` is rewritten after passes (debounced and
//! rate-limited, from an in-memory view) so `status` works while we hold sled; a pass that panics
//! or fails is caught, recorded as `error` and retried (`supervise`), in the daemon and in
//! `check_once` alike; under a systemd watchdog, the control loop pings only while no pass is
//! stuck ([`watchdog`]); on stop, every live session token is deleted that can be within the stop
//! deadline, and the rest counted.

mod ask;
mod report;
mod scheduler;
mod supervise;
mod view;
mod watchdog;

pub use ask::{AskError, await_pass};

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::{Config, ConfigError, ShopConfig};
use crate::metrics::Metrics;
use crate::pass::{self, PassReport, PassSettings};
use crate::secrets::{SecretString, same};
use crate::store::Store;
use crate::tripletex::{ClientSettings, Tripletex, TripletexError};
use scheduler::Scheduler;

/// What a running daemon can be asked to do (signals map onto these; tests send them directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the configuration and shops.d (SIGHUP).
    Reload,
    /// Run every shop's pass now (SIGUSR1; used by `check` while the daemon runs).
    PassNow,
}

/// The edges a daemon or a one-shot check needs; tests inject their own.
#[derive(Clone)]
pub struct Environment {
    pub clock: SharedClock,
    /// Stands in for `$CREDENTIALS_DIRECTORY`.
    pub credentials_dir: Option<PathBuf>,
    /// Adjusts HTTP tunables (tests shrink backoffs).
    pub tune: fn(&mut ClientSettings),
    /// Runs at the start of every pass of the named shop, inside its supervision: tests make a
    /// pass panic here; the process environment does nothing.
    pub before_pass: fn(&str),
    /// Where the daemon counts and measures (exposed as metrics.prom and `[metrics] listen`).
    pub metrics: Arc<Metrics>,
}

impl Environment {
    pub fn from_process(clock: SharedClock) -> Self {
        Self {
            clock,
            credentials_dir: std::env::var_os(crate::secrets::CREDENTIALS_DIRECTORY)
                .map(PathBuf::from),
            tune: |_| {},
            before_pass: |_| {},
            metrics: Arc::new(Metrics::new()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "cannot serve metrics on {addr} ([metrics] listen): {error} (fix: pick a free address and port, or \"\" for no endpoint)"
    )]
    Metrics {
        addr: std::net::SocketAddr,
        error: String,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tripletex(#[from] TripletexError),
}

/// Everything shared by the shop tasks of one configuration generation.
struct World {
    config: Config,
    api: Arc<Tripletex>,
    consumer_token: SecretString,
}

impl World {
    fn build(config: Config, env: &Environment) -> Result<Self, DaemonError> {
        let consumer_token = config
            .tripletex
            .consumer_token
            .load_with(env.credentials_dir.as_deref())?;
        let mut settings = ClientSettings::from(&config);
        settings.metrics = Some(env.metrics.clone());
        (env.tune)(&mut settings);
        let api = Tripletex::new(
            &config.tripletex.base_url,
            consumer_token.clone(),
            env.clock.clone(),
            settings,
        )?;
        Ok(Self {
            config,
            api,
            consumer_token,
        })
    }

    fn pass_settings(&self) -> PassSettings {
        PassSettings::new(&self.config)
    }

    /// Loads every enabled shop's token; the first failure refuses the whole set.
    fn tokens(&self, env: &Environment) -> Result<ShopTokens, ConfigError> {
        self.config
            .shops
            .iter()
            .filter(|s| s.enabled)
            .map(|s| {
                Ok((
                    s.clone(),
                    s.employee_token.load_with(env.credentials_dir.as_deref())?,
                ))
            })
            .collect()
    }
}

/// Runs one pass for each selected enabled shop (all when `only` is empty), at most
/// `max_concurrent_shops` at a time, and returns the recorded reports.
pub async fn check_once(
    config: Config,
    store: Arc<Store>,
    env: &Environment,
    only: &[String],
    cancel: CancellationToken,
) -> Result<Vec<PassReport>, DaemonError> {
    let world = World::build(config, env)?;
    let settings = world.pass_settings();
    let gate = Arc::new(Semaphore::new(world.config.rate_limit.max_concurrent_shops));
    let mut tasks = tokio::task::JoinSet::new();
    for (shop, token) in world.tokens(env)? {
        if !only.is_empty() && !only.contains(&shop.name) {
            continue;
        }
        let client = world
            .api
            .shop(&shop.name, token, shop.company_id, cancel.clone());
        let (store, clock, gate) = (store.clone(), env.clock.clone(), gate.clone());
        let before_pass = env.before_pass;
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("gate never closes");
            let pass = supervise::CatchPanic::new(async {
                before_pass(&shop.name);
                pass::run(&shop, &client, &store, &settings, &clock, 1).await
            });
            let reason = match pass.await {
                Ok(Ok(report)) => return Some(report),
                Ok(Err(pass::PassError::Cancelled)) => return None,
                Ok(Err(e)) => e.to_string(),
                Err(panic) => panic,
            };
            // Recorded so status shows why, but left out of the result: callers compare counts
            // (`check` exits 2).
            supervise::pass_failed(&shop, &store, &clock, &reason).await;
            None
        });
    }
    let mut reports = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(report) => reports.extend(report),
            // Only a panic outside the pass (the gate) ends up here.
            Err(e) => tracing::error!(event = "pass.failed", error = %e, "pass task panicked"),
        }
    }
    reports.sort_by(|a, b| a.shop.cmp(&b.shop));
    report::consumer_rejection(&reports, &mut false);
    Ok(reports)
}

/// The daemon: passes until `cancel`, obeying `control`.
pub async fn run(
    config_path: &Path,
    config: Config,
    store: Arc<Store>,
    env: Environment,
    mut control: mpsc::Receiver<Control>,
    cancel: CancellationToken,
) -> Result<(), DaemonError> {
    let world = World::build(config, &env)?;
    let world_shard = world.config.shard;
    let initial = world.tokens(&env)?;
    let shared_config = Arc::new(RwLock::new(world.config.clone()));
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(report::status_writer(
        store.clone(),
        shared_config.clone(),
        env.clock.clone(),
        env.metrics.clone(),
        reports_rx,
        cancel.clone(),
    ));
    let metrics = env.metrics.clone();
    configured(&metrics, &world.config, &[]);
    let listen = world.config.metrics_listen;
    let mut scheduler = Scheduler::new(world, env, store, reports_tx, cancel.clone());
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
                Arc::new(move || probe.healthy()),
                cancel.clone(),
            )
            .await
            .map_err(|e| DaemonError::Metrics {
                addr,
                error: e.to_string(),
            })?;
            tracing::info!(event = "metrics.listening", addr = %server.addr, "serving /metrics and /healthz");
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
    report::notify_systemd(&[sd_notify::NotifyState::Ready]);

    let mut watchdog = watchdog::Watchdog::from_process();
    let mut orders_open = true;
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
            order = control.recv(), if orders_open => match order {
                Some(order) => order,
                // Nobody can send orders any more: run (and feed the watchdog) until cancelled.
                None => { orders_open = false; continue }
            },
        };
        match order {
            Control::PassNow => scheduler.pass_now(),
            Control::Reload => {
                report::notify_reloading();
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
                        scheduler.apply(world, rebuild, shops).await;
                    }
                }
                report::notify_systemd(&[sd_notify::NotifyState::Ready]);
            }
        }
    }

    report::notify_systemd(&[sd_notify::NotifyState::Stopping]);
    scheduler.shutdown().await;
    let _ = writer.await;
    tracing::info!(event = "daemon.stopped", "tripletex-sync stopped");
    Ok(())
}

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
fn configured(metrics: &Metrics, config: &Config, removed: &[String]) {
    let enabled = config.shops.iter().filter(|s| s.enabled).count();
    metrics.configured(config.shops.len(), enabled, config.checks.interval, removed);
}

/// Enabled shops with their loaded employee tokens.
type ShopTokens = Vec<(ShopConfig, SecretString)>;

/// Validates the new configuration. The flag says whether the shared parts (Tripletex, limits,
/// checks, consumer token) changed, which restarts every shop; else only changed shops restart.
fn reload(
    path: &Path,
    env: &Environment,
    current: &World,
) -> Result<(World, bool, ShopTokens), DaemonError> {
    let config = Config::load(path)?;
    if config.state_dir != current.config.state_dir {
        tracing::warn!(
            event = "config.restart_needed",
            "state_dir changed; it takes effect on restart"
        );
    }
    let new_world = World::build(config, env)?;
    let shops = new_world.tokens(env)?;
    let c = &current.config;
    let shared_changed = new_world.config.tripletex != c.tripletex
        || new_world.config.rate_limit != c.rate_limit
        || new_world.config.checks != c.checks
        || !same(&new_world.consumer_token, &current.consumer_token);
    Ok((new_world, shared_changed, shops))
}

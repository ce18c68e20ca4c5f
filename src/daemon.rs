//! The scheduler: one task per enabled shop, passes every `checks.interval` ± jitter, reloads.
//!
//! Invariants: one [`CancellationToken`] stops everything (each shop task holds a child of it and
//! every sleep, limiter wait and request selects on it); at most `max_concurrent_shops` passes run
//! at once; a reload that fails validation changes nothing (`config.reload_failed`), one that
//! succeeds restarts only the shops whose file or token changed (others keep their sessions);
//! `status.json` is rewritten after passes (debounced) so `status` works while we hold sled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::checks::Verdict;
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError, ShopConfig};
use crate::pass::{self, PassReport, PassSettings};
use crate::secrets::SecretString;
use crate::status::StatusReport;
use crate::store::Store;
use crate::tripletex::{ClientSettings, ShopClient, Tripletex, TripletexError};

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
}

impl Environment {
    pub fn from_process(clock: SharedClock) -> Self {
        Self {
            clock,
            credentials_dir: std::env::var_os(crate::secrets::CREDENTIALS_DIRECTORY)
                .map(PathBuf::from),
            tune: |_| {},
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
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
        let mut settings = ClientSettings::new(&config);
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
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("gate never closes");
            pass::run(&shop, &client, &store, &settings, &clock, 1).await
        });
    }
    let mut reports = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("pass task panicked") {
            Ok(report) => reports.push(report),
            Err(e) => tracing::error!(event = "pass.failed", error = %e, "pass not recorded"),
        }
    }
    reports.sort_by(|a, b| a.shop.cmp(&b.shop));
    report_consumer_rejection(&reports, &mut false);
    Ok(reports)
}

struct ShopTask {
    shop: ShopConfig,
    token: SecretString,
    cancel: CancellationToken,
    trigger: Arc<Notify>,
    handle: JoinHandle<()>,
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
    let mut world = Arc::new(World::build(config, &env)?);
    let initial = world.tokens(&env)?;
    let shared_config = Arc::new(RwLock::new(world.config.clone()));
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(status_writer(
        store.clone(),
        shared_config.clone(),
        env.clock.clone(),
        reports_rx,
        cancel.clone(),
    ));
    let mut gate = Arc::new(Semaphore::new(world.config.rate_limit.max_concurrent_shops));
    let mut tasks: HashMap<String, ShopTask> = HashMap::new();
    for (shop, token) in initial {
        let task = spawn_shop(
            &world,
            &env,
            &store,
            &gate,
            &reports_tx,
            &cancel,
            shop,
            token,
        );
        tasks.insert(task.shop.name.clone(), task);
    }
    tracing::info!(event = "daemon.started", shops = tasks.len(), state_dir = %store.state_dir().display(), "tripletex-sync running");
    notify_systemd(&[sd_notify::NotifyState::Ready]);

    loop {
        let order = tokio::select! {
            _ = cancel.cancelled() => break,
            order = control.recv() => match order { Some(o) => o, None => { cancel.cancelled().await; break } },
        };
        match order {
            Control::PassNow => {
                tracing::info!(
                    event = "daemon.pass_requested",
                    "running every shop's pass now"
                );
                tasks.values().for_each(|t| t.trigger.notify_one());
            }
            Control::Reload => {
                match sd_notify::NotifyState::monotonic_usec_now() {
                    Ok(now) => notify_systemd(&[sd_notify::NotifyState::Reloading, now]),
                    Err(_) => notify_systemd(&[sd_notify::NotifyState::Reloading]),
                }
                match reload(config_path, &env, &world) {
                    Err(e) => {
                        tracing::error!(event = "config.reload_failed", error = %e, "reload refused; keeping the running configuration")
                    }
                    Ok((new_world, rebuild, shops)) => {
                        // Status lists the new shop set even when the shared parts are unchanged.
                        *shared_config.write().expect("config lock") = new_world.config.clone();
                        if rebuild {
                            world = Arc::new(new_world);
                            gate = Arc::new(Semaphore::new(
                                world.config.rate_limit.max_concurrent_shops,
                            ));
                        }
                        let mut next = HashMap::new();
                        let (mut kept, mut started) = (0, 0);
                        for (shop, token) in shops {
                            match tasks.remove(&shop.name) {
                                Some(t) if !rebuild && t.shop == shop && same(&t.token, &token) => {
                                    kept += 1;
                                    next.insert(shop.name.clone(), t);
                                }
                                old => {
                                    if let Some(old) = old {
                                        stop(old).await;
                                    }
                                    started += 1;
                                    let t = spawn_shop(
                                        &world,
                                        &env,
                                        &store,
                                        &gate,
                                        &reports_tx,
                                        &cancel,
                                        shop,
                                        token,
                                    );
                                    next.insert(t.shop.name.clone(), t);
                                }
                            }
                        }
                        let removed = tasks.len();
                        for (_, old) in tasks.drain() {
                            stop(old).await;
                        }
                        tasks = next;
                        tracing::info!(
                            event = "config.reloaded",
                            kept,
                            started,
                            removed,
                            "configuration reloaded"
                        );
                    }
                }
                notify_systemd(&[sd_notify::NotifyState::Ready]);
            }
        }
    }

    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    for (_, t) in tasks.drain() {
        let _ = t.handle.await;
    }
    drop(reports_tx);
    let _ = writer.await;
    tracing::info!(event = "daemon.stopped", "tripletex-sync stopped");
    Ok(())
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

fn same(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret() == b.expose_secret()
}

async fn stop(task: ShopTask) {
    task.cancel.cancel();
    let _ = task.handle.await;
}

#[allow(clippy::too_many_arguments)]
fn spawn_shop(
    world: &Arc<World>,
    env: &Environment,
    store: &Arc<Store>,
    gate: &Arc<Semaphore>,
    reports: &mpsc::UnboundedSender<PassReport>,
    parent: &CancellationToken,
    shop: ShopConfig,
    token: SecretString,
) -> ShopTask {
    let cancel = parent.child_token();
    let trigger = Arc::new(Notify::new());
    let client = world
        .api
        .shop(&shop.name, token.clone(), shop.company_id, cancel.clone());
    let span = tracing::info_span!("shop", shop = %shop.name);
    let handle = tokio::spawn(
        shop_loop(
            shop.clone(),
            client,
            world.clone(),
            env.clock.clone(),
            store.clone(),
            gate.clone(),
            reports.clone(),
            cancel.clone(),
            trigger.clone(),
        )
        .instrument(span),
    );
    ShopTask {
        shop,
        token,
        cancel,
        trigger,
        handle,
    }
}

#[allow(clippy::too_many_arguments)]
async fn shop_loop(
    shop: ShopConfig,
    client: ShopClient,
    world: Arc<World>,
    clock: SharedClock,
    store: Arc<Store>,
    gate: Arc<Semaphore>,
    reports: mpsc::UnboundedSender<PassReport>,
    cancel: CancellationToken,
    trigger: Arc<Notify>,
) {
    let settings = world.pass_settings();
    let checks = &world.config.checks;
    // Spread the first passes of many shops over the jitter window.
    let mut wait = crate::tripletex::ratelimit::full_jitter(checks.jitter);
    let mut pass_no = 0u64;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = trigger.notified() => {}
        }
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = gate.clone().acquire_owned() => p.expect("gate never closes"),
        };
        pass_no += 1;
        match pass::run(&shop, &client, &store, &settings, &clock, pass_no).await {
            Ok(report) => {
                let _ = reports.send(report);
            }
            Err(pass::PassError::Cancelled) => return,
            Err(e) => {
                tracing::error!(event = "pass.failed", shop = %shop.name, error = %e, "pass not recorded")
            }
        }
        drop(permit);
        wait = next_wait(checks.interval, checks.jitter);
    }
}

/// `interval` ± up to `jitter`.
fn next_wait(interval: Duration, jitter: Duration) -> Duration {
    let j = crate::tripletex::ratelimit::full_jitter(jitter * 2);
    (interval + j).saturating_sub(jitter)
}

/// Writes status.json (at most about once a second) and reports consumer-token rejection once.
async fn status_writer(
    store: Arc<Store>,
    config: Arc<RwLock<Config>>,
    clock: SharedClock,
    mut reports: mpsc::UnboundedReceiver<PassReport>,
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
    while let Some(first) = reports.recv().await {
        let mut batch = vec![first];
        if !cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        while let Ok(more) = reports.try_recv() {
            batch.push(more);
        }
        report_consumer_rejection(&batch, &mut consumer_reported);
        write(&store);
    }
    write(&store);
}

fn report_consumer_rejection(reports: &[PassReport], reported: &mut bool) {
    let rejected: Vec<&str> = reports
        .iter()
        .filter(|r| r.consumer_rejected)
        .map(|r| r.shop.as_str())
        .collect();
    if !rejected.is_empty() && !*reported {
        tracing::error!(
            event = "consumer_token.rejected",
            shops = rejected.len(),
            "Tripletex rejected the consumer token: a deployment problem, not the shops' keys; check tripletex.consumer_token_* and base_url"
        );
        *reported = true;
    } else if rejected.is_empty()
        && reports
            .iter()
            .any(|r| r.session.state != crate::store::SessionState::Unknown)
    {
        *reported = false;
    }
}

fn summary_line(report: &StatusReport) -> String {
    let mut counts: HashMap<Verdict, usize> = HashMap::new();
    for shop in report.shops.iter().filter(|s| s.enabled) {
        let worst = crate::checks::CheckKind::ALL
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

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
    let _ = sd_notify::notify(state);
}

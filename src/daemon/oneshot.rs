//! The one-shot `check`: one pass of each selected shop, here (the same pass driver as the
//! daemon's shop tasks) or, while a daemon holds the database, by asking it (SIGUSR1) and waiting
//! for status.json (`ask`).
//!
//! Invariants: a `check` here succeeds only when every selected shop's pass was recorded (a failed
//! pass is recorded as `error` but counted missing, so the caller exits 2); it rewrites
//! status.json afterwards for whoever reads it instead of the database; a stop (SIGTERM/SIGINT)
//! ends it as [`CheckError::Interrupted`], also while it waits for the daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::ask::{AskError, await_pass};
use super::driver::{Driver, Ran};
use super::world::{DaemonError, Environment, World};
use super::{control, report};
use crate::config::Config;
use crate::pass::PassReport;
use crate::status::StatusReport;
use crate::store::{Role, Store, StoreError, read_holder};

/// How long `check` waits for a running daemon's pass.
const DAEMON_PASS_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("another tripletex-sync ({holder}) is using {}; try again when it ends", state_dir.display())]
    Busy { holder: String, state_dir: PathBuf },
    #[error(
        "{missing} of {expected} passes could not be recorded (see the pass.failed or store.broken events above)"
    )]
    NotRecorded { missing: usize, expected: usize },
    #[error("interrupted")]
    Interrupted,
    #[error("cannot signal the daemon (pid {pid}): {source}")]
    Signal { pid: u32, source: std::io::Error },
    #[error("writing status.json: {0}")]
    StatusFile(std::io::Error),
    #[error(transparent)]
    Ask(#[from] AskError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who will run `check`'s passes.
pub enum CheckBy {
    /// This process: it holds the database.
    Here(Store),
    /// The daemon with this pid, which holds the database.
    Daemon(u32),
}

/// Takes the database for a one-shot check, or names the daemon holding it.
pub fn open_for_check(state_dir: &Path) -> Result<CheckBy, CheckError> {
    match Store::open(state_dir, Role::OneShot) {
        Ok(store) => Ok(CheckBy::Here(store)),
        Err(StoreError::Locked { holder, state_dir }) => match read_holder(&state_dir) {
            Some((Role::Daemon, pid)) => Ok(CheckBy::Daemon(pid)),
            _ => Err(CheckError::Busy { holder, state_dir }),
        },
        Err(e) => Err(e.into()),
    }
}

/// Runs one pass per selected shop (all enabled ones when `shops` is empty) here, writes
/// status.json, and returns the status of the selected shops.
pub async fn check_here(
    config: &Config,
    store: Arc<Store>,
    env: &Environment,
    shops: &[String],
    stop: &CancellationToken,
) -> Result<StatusReport, CheckError> {
    let reports = check_once(config.clone(), store.clone(), env, shops, stop.clone()).await?;
    if stop.is_cancelled() {
        return Err(CheckError::Interrupted);
    }
    let expected = config
        .shops
        .iter()
        .filter(|s| s.enabled && (shops.is_empty() || shops.contains(&s.name)))
        .count();
    let report = StatusReport::collect(Some(&store), config, jiff::Timestamp::now())?;
    // Keep status.json current for whoever reads it instead of the database.
    report
        .write(&config.state_dir)
        .map_err(CheckError::StatusFile)?;
    if reports.len() < expected {
        return Err(CheckError::NotRecorded {
            missing: expected - reports.len(),
            expected,
        });
    }
    Ok(select_shops(report, shops))
}

/// Asks the daemon `pid` for a pass and waits until status.json shows one, after now, of every
/// shop this `check` is about (all enabled shops of its configuration, or `shops`).
pub async fn ask_daemon(
    pid: u32,
    config: &Config,
    shops: &[String],
    stop: &CancellationToken,
) -> Result<StatusReport, CheckError> {
    let wanted: Vec<&str> = config
        .shops
        .iter()
        .filter(|s| s.enabled && (shops.is_empty() || shops.contains(&s.name)))
        .map(|s| s.name.as_str())
        .collect();
    let asked = jiff::Timestamp::now();
    control::request_pass(pid).map_err(|source| CheckError::Signal { pid, source })?;
    let waited = await_pass(&config.state_dir, &wanted, asked, DAEMON_PASS_TIMEOUT);
    let report = tokio::select! {
        report = waited => report?,
        _ = stop.cancelled() => return Err(CheckError::Interrupted),
    };
    Ok(select_shops(report, shops))
}

fn select_shops(mut report: StatusReport, shops: &[String]) -> StatusReport {
    if !shops.is_empty() {
        report.shops.retain(|s| shops.contains(&s.name));
    }
    report
}

/// Runs one pass for each selected enabled shop (all when `only` is empty), at most
/// `max_concurrent_shops` at a time, and returns the recorded reports; a failed pass is recorded
/// as `error` but left out, so callers comparing counts see it missing.
pub async fn check_once(
    config: Config,
    store: Arc<Store>,
    env: &Environment,
    only: &[String],
    cancel: CancellationToken,
) -> Result<Vec<PassReport>, DaemonError> {
    let world = World::build(config, env)?;
    let tokens = world.tokens(env)?;
    let world = Arc::new(world);
    let gate = Arc::new(Semaphore::new(world.config.rate_limit.max_concurrent_shops));
    let heartbeat = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for (shop, token) in tokens {
        if !only.is_empty() && !only.contains(&shop.name) {
            continue;
        }
        let driver = Driver {
            shop,
            token,
            world: world.clone(),
            env: env.clone(),
            store: store.clone(),
            gate: gate.clone(),
            heartbeat: Arc::clone(&heartbeat),
            cancel: cancel.clone(),
            settings: world.pass_settings(),
        };
        tasks.spawn(async move {
            let permit = driver.admitted().await?;
            match driver.run_pass(permit, &mut driver.client(), 1).await {
                Ran::Recorded(report) => Some(report),
                Ran::Failed(_) | Ran::Refused | Ran::Cancelled => None,
            }
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

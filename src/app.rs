//! The commands behind the CLI, as library functions so tests can drive them.
//!
//! Exit codes are part of the interface: `check` 0 = all ok/warn, 1 = any conflict/error verdict,
//! 2 = could not run; `validate` 0 or 2; everything else 0 or 2. Errors are printed once, as one
//! line, by the binary.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio_util::sync::CancellationToken;

use crate::checks::{CheckKind, Verdict};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::daemon::{self, Control, Environment};
use crate::status::StatusReport;
use crate::store::{Role, Store, StoreError, read_holder};

/// Process exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FINDINGS: u8 = 1;
    pub const COULD_NOT_RUN: u8 = 2;
}

/// How long `check` waits for a running daemon's pass.
const DAEMON_PASS_TIMEOUT: Duration = Duration::from_secs(300);

fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// `validate`: the configuration, every shop file and every token file, without network.
pub fn validate(config_path: &Path) -> anyhow::Result<u8> {
    let config = Config::load(config_path)?;
    let env = Environment::from_process(system_clock());
    let mut problems = Vec::new();
    if let Err(e) = config
        .tripletex
        .consumer_token
        .load_with(env.credentials_dir.as_deref())
    {
        problems.push(e.to_string());
    }
    for shop in &config.shops {
        if let Err(e) = shop
            .employee_token
            .load_with(env.credentials_dir.as_deref())
        {
            problems.push(e.to_string());
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        return Ok(exit::COULD_NOT_RUN);
    }
    let enabled = config.shops.iter().filter(|s| s.enabled).count();
    println!(
        "ok: {} ({} shops, {enabled} enabled; state_dir {}; Tripletex at {})",
        config.source.display(),
        config.shops.len(),
        config.state_dir.display(),
        config.tripletex.base_url
    );
    Ok(exit::OK)
}

/// `status`: what is recorded, per shop. Never writes: while another process (or user) holds
/// the database, it reads that process's status.json instead.
pub fn status(config_path: &Path, json: bool) -> anyhow::Result<u8> {
    let config = Config::load(config_path)?;
    let now = jiff::Timestamp::now();
    let report = if !config.state_dir.exists() {
        StatusReport::collect(None, &config, now)?
    } else {
        match Store::open(&config.state_dir, Role::OneShot) {
            Ok(store) => StatusReport::collect(Some(&store), &config, now)?,
            Err(StoreError::Locked { .. } | StoreError::NotOwner { .. }) => {
                StatusReport::read(&config.state_dir)
                    .with_context(|| {
                        format!(
                            "cannot read {}",
                            StatusReport::path(&config.state_dir).display()
                        )
                    })?
                    .aligned_to(&config)
            }
            Err(e) => return Err(e.into()),
        }
    };
    print_report(&report, json)?;
    Ok(exit::OK)
}

/// `check`: one verification pass now, here, or by the running daemon.
pub async fn check(config_path: &Path, shops: &[String], json: bool) -> anyhow::Result<u8> {
    let config = Config::load(config_path)?;
    for name in shops {
        if config.shop(name).is_none_or(|s| !s.enabled) {
            bail!(
                "no enabled shop named {name:?} in {} (shops are the *.toml files there)",
                config.shops_dir.display()
            );
        }
    }
    let state_dir = config.state_dir.clone();
    let report = match Store::open(&state_dir, Role::OneShot) {
        Ok(store) => {
            let store = Arc::new(store);
            let cancel = CancellationToken::new();
            let watcher = cancel_on_signals(cancel.clone());
            let env = Environment::from_process(system_clock());
            daemon::check_once(config.clone(), store.clone(), &env, shops, cancel.clone()).await?;
            watcher.abort();
            if cancel.is_cancelled() {
                bail!("interrupted");
            }
            let report = StatusReport::collect(Some(&store), &config, jiff::Timestamp::now())?;
            // Keep status.json current for whoever reads it instead of the database.
            if let Err(e) = report.write(&state_dir) {
                tracing::warn!(event = "status.write_failed", error = %e, "status.json not updated");
            }
            report
        }
        Err(StoreError::Locked { holder, .. }) => match read_holder(&state_dir) {
            Some((Role::Daemon, pid)) => ask_daemon(pid, &state_dir).await?,
            _ => bail!(
                "another tripletex-sync ({holder}) is using {}; try again when it ends",
                state_dir.display()
            ),
        },
        Err(e) => return Err(e.into()),
    };
    let report = select_shops(report, shops);
    print_report(&report, json)?;
    let failing = report
        .shops
        .iter()
        .filter(|s| s.enabled)
        .flat_map(|s| CheckKind::ALL.map(|k| s.checks.get(k).verdict))
        .any(|v| matches!(v, Verdict::Conflict | Verdict::Error));
    Ok(if failing { exit::FINDINGS } else { exit::OK })
}

/// Signals the daemon (SIGUSR1) and waits until status.json shows a pass of every shop after now.
async fn ask_daemon(pid: u32, state_dir: &Path) -> anyhow::Result<StatusReport> {
    let asked = jiff::Timestamp::now();
    eprintln!(
        "tripletex-sync daemon (pid {pid}) holds {}; asking it for a pass",
        state_dir.display()
    );
    signal_usr1(pid)?;
    let deadline = tokio::time::Instant::now() + DAEMON_PASS_TIMEOUT;
    loop {
        if let Ok(report) = StatusReport::read(state_dir) {
            let done = report.shops.iter().filter(|s| s.enabled).all(|s| {
                CheckKind::ALL.iter().all(|k| {
                    let c = s.checks.get(*k);
                    c.checked_at.is_some_and(|t| t >= asked) || c.summary.starts_with("disabled")
                })
            });
            if done {
                return Ok(report);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the daemon (pid {pid}) did not finish a pass within {}s; its latest results: tripletex-sync status",
                DAEMON_PASS_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn signal_usr1(pid: u32) -> anyhow::Result<()> {
    let pid = i32::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) with a plain pid and signal number has no memory effects.
    let rc = unsafe { libc::kill(pid, libc::SIGUSR1) };
    if rc != 0 {
        bail!(
            "cannot signal the daemon (pid {pid}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn select_shops(mut report: StatusReport, shops: &[String]) -> StatusReport {
    if !shops.is_empty() {
        report.shops.retain(|s| shops.contains(&s.name));
    }
    report
}

fn print_report(report: &StatusReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// `run`: the daemon, until SIGTERM or SIGINT; SIGHUP reloads, SIGUSR1 runs a pass now.
pub async fn run(config_path: &Path) -> anyhow::Result<u8> {
    let config = Config::load(config_path)?;
    let store = Arc::new(Store::open(&config.state_dir, Role::Daemon)?);
    let cancel = CancellationToken::new();
    let (control_tx, control_rx) = tokio::sync::mpsc::channel(8);
    let signals = tokio::spawn(forward_signals(control_tx, cancel.clone()));
    let env = Environment::from_process(system_clock());
    let result = daemon::run(config_path, config, store, env, control_rx, cancel.clone()).await;
    signals.abort();
    result?;
    Ok(exit::OK)
}

async fn forward_signals(control: tokio::sync::mpsc::Sender<Control>, cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::error!(
            event = "daemon.signals_unavailable",
            "cannot install signal handlers"
        );
        cancel.cancel();
        return;
    };
    loop {
        let order = tokio::select! {
            _ = term.recv() => None,
            _ = int.recv() => None,
            _ = hup.recv() => Some(Control::Reload),
            _ = usr1.recv() => Some(Control::PassNow),
        };
        match order {
            None => {
                tracing::info!(event = "daemon.stopping", "signal received; shutting down");
                cancel.cancel();
                return;
            }
            Some(order) => {
                let _ = control.send(order).await;
            }
        }
    }
}

fn cancel_on_signals(cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            cancel.cancel();
        }
    })
}

/// `sim`: serve a scenario (default: the demo world) until SIGTERM/SIGINT.
pub async fn sim(listen: std::net::SocketAddr, scenario: Option<&Path>) -> anyhow::Result<u8> {
    let scenario = match scenario {
        Some(path) => crate::sim::Scenario::load(path)?,
        None => crate::sim::Scenario::from_toml_str(crate::sim::DEMO_SCENARIO)?,
    };
    let sim = crate::sim::Simulator::from_scenario(scenario, system_clock());
    let cancel = CancellationToken::new();
    let watcher = cancel_on_signals(cancel.clone());
    eprintln!("Tripletex simulator on http://{listen}/v2 (Ctrl-C stops it)");
    crate::sim::serve(sim, listen, cancel).await?;
    watcher.abort();
    Ok(exit::OK)
}

/// `demo`: the simulator's demo world, a throwaway config for its three shops, the daemon for
/// `seconds`, then the status table.
pub async fn demo(seconds: u64) -> anyhow::Result<u8> {
    let scenario = crate::sim::Scenario::from_toml_str(crate::sim::DEMO_SCENARIO)?;
    let dir = tempfile_dir()?;
    let config_path = write_demo_config(&dir, &scenario, "http://127.0.0.1:0/v2")?;
    let sim = crate::sim::Simulator::from_scenario(scenario.clone(), system_clock());
    let running = sim.start(([127, 0, 0, 1], 0).into()).await?;
    write_demo_config(&dir, &scenario, &running.base_url())?;
    let config = Config::load(&config_path)?;
    let store = Arc::new(Store::open(&config.state_dir, Role::Daemon)?);
    eprintln!(
        "demo: simulator on {}, {} shops, running the daemon for {seconds}s (config in {})",
        running.base_url(),
        config.shops.len(),
        dir.display()
    );
    let cancel = CancellationToken::new();
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            cancel.cancel();
        })
    };
    let watcher = cancel_on_signals(cancel.clone());
    let (_control_tx, control_rx) = tokio::sync::mpsc::channel(1);
    let env = Environment::from_process(system_clock());
    daemon::run(
        &config_path,
        config.clone(),
        store.clone(),
        env,
        control_rx,
        cancel,
    )
    .await?;
    stopper.abort();
    watcher.abort();
    running.shutdown().await;
    let report = StatusReport::collect(Some(&store), &config, jiff::Timestamp::now())?;
    print!("{}", report.table());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(exit::OK)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tripletex-sync-demo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("shops.d")).context("creating the demo folder")?;
    Ok(dir)
}

/// Writes config.toml, the consumer token and one shop file + token per scenario company.
fn write_demo_config(
    dir: &Path,
    scenario: &crate::sim::Scenario,
    base_url: &str,
) -> anyhow::Result<PathBuf> {
    let consumer = scenario
        .consumer_tokens
        .first()
        .context("the demo scenario has no consumer token")?;
    write_private(&dir.join("consumer-token"), consumer)?;
    for company in &scenario.companies {
        let (Some(shop), Some(employee)) = (&company.shop, company.employees.first()) else {
            continue;
        };
        write_private(&dir.join(format!("{shop}.token")), &employee.token)?;
        std::fs::write(
            dir.join("shops.d").join(format!("{shop}.toml")),
            format!("employee_token_file = \"../{shop}.token\"\n"),
        )?;
    }
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"state\"\nshops_dir = \"shops.d\"\n\n[tripletex]\nbase_url = \"{base_url}\"\n\
             consumer_token_file = \"consumer-token\"\nsession_valid_days = 7\nrenew_before = \"1d\"\n\
             request_timeout = \"10s\"\n\n[rate_limit]\nper_second = 5\nburst = 10\nreserve = 20\n\
             max_concurrent_shops = 8\n\n[checks]\ninterval = \"4s\"\njitter = \"1s\"\nfull_resync = \"1h\"\n"
        ),
    )?;
    Ok(path)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

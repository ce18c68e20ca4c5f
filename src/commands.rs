//! The commands behind the CLI: the binary's edge, where library errors become one printed line
//! (anyhow) and an exit code. Each parses nothing beyond its arguments and calls the library:
//! signals, the lock wait, passes and `check` beside the daemon live in `daemon`.
//!
//! Exit codes are part of the interface: `check` 0 = all ok/warn, 1 = any conflict/error verdict,
//! 2 = could not run (including a pass that could not be recorded); `run` also 75 = its state
//! store cannot write (a full disk; systemd restarts it, 2 it does not); `status --problems` 0 =
//! nothing needs attention, 1 = something does; `notify test` 0 = delivered, 1 = refused or
//! failed, 2 = could not run (configuration, secret); every other command 0 or 2.

use std::net::SocketAddr;
use std::path::Path;
#[cfg(feature = "sim")]
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tokio_util::sync::CancellationToken;

#[cfg(feature = "sim")]
use tripletex_sim::{DEMO_SCENARIO, Scenario, Simulator};
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::clock::{SharedClock, SystemClock};
use tripletex_sync::config::Config;
#[cfg(feature = "sim")]
use tripletex_sync::daemon::control::Controller;
use tripletex_sync::daemon::control::{self, Forwarding, Signals};
use tripletex_sync::daemon::oneshot::{self, CheckBy};
use tripletex_sync::daemon::{self, Environment};
use tripletex_sync::notify;
use tripletex_sync::status::{self, StatusReport};
#[cfg(feature = "sim")]
use tripletex_sync::store::{Role, Store};

/// Process exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FINDINGS: u8 = 1;
    pub const COULD_NOT_RUN: u8 = 2;
}

/// The error and its causes on one line, each cause once: many library errors already quote
/// their cause in their own message, and `{:#}` would print it again.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// `validate`: the configuration, every shop file and every token file, without network.
pub fn validate(config_path: &Path) -> anyhow::Result<u8> {
    let config = Config::load(config_path)?;
    for w in config.warnings() {
        eprintln!("warning: {w}");
    }
    if !preflight(&config, true) {
        return Ok(exit::COULD_NOT_RUN);
    }
    let enabled = config.shops.iter().filter(|s| s.enabled).count();
    let shard = config
        .shard
        .map(|s| format!(" in shard {s}"))
        .unwrap_or_default();
    println!(
        "ok: {} ({} shops{shard}, {enabled} enabled; state_dir {}; Tripletex at {})",
        config.source.display(),
        config.shops.len(),
        config.state_dir.display(),
        config.tripletex.base_url
    );
    Ok(exit::OK)
}

/// `notify test`: one signed `test` message to `notify.url` now; prints the answer in one line.
pub async fn notify_test(config_path: &Path) -> anyhow::Result<u8> {
    let config = Config::load(config_path)?;
    let env = Environment::from_process(system_clock());
    let answer = notify::test(&config, env.credentials_dir.as_deref()).await?;
    println!("{answer}");
    Ok(if answer.delivered() {
        exit::OK
    } else {
        exit::FINDINGS
    })
}

/// Checks state_dir and the tokens (of every shop, or of the enabled ones) before anything
/// creates or locks a file in state_dir; prints each problem. False when there were any.
fn preflight(config: &Config, all_shops: bool) -> bool {
    let env = Environment::from_process(system_clock());
    let problems = config.preflight(env.credentials_dir.as_deref(), all_shops);
    for p in &problems {
        eprintln!("error: {p}");
    }
    problems.is_empty()
}

/// `status`: what is recorded, per shop (see `status::show`: it reads status.json, never the
/// database). `--problems` exits 1 when anything needs attention.
pub fn status(config_path: &Path, request: &status::Request) -> anyhow::Result<u8> {
    let shown = status::show(config_path, request)?;
    for note in &shown.notes {
        eprintln!("{note}");
    }
    print!("{}", shown.out);
    Ok(if request.problems && shown.problems {
        exit::FINDINGS
    } else {
        exit::OK
    })
}

/// `check`: one verification pass now, here, or by the running daemon.
pub async fn check(config_path: &Path, shops: &[String], json: bool) -> anyhow::Result<u8> {
    let config = Config::load(config_path)?;
    for name in shops {
        if config.shop(name).is_none_or(|s| !s.enabled) {
            let shard = config
                .shard
                .map(|s| {
                    format!("; this instance checks only shard {s}, ask the one that holds it")
                })
                .unwrap_or_default();
            bail!(
                "no enabled shop named {name:?} in {} (shops are the *.toml files there{shard})",
                config.shops_dir.display()
            );
        }
    }
    if !preflight(&config, false) {
        return Ok(exit::COULD_NOT_RUN);
    }
    let (stop, _signals) = stop_on_signals()?;
    let report = match oneshot::open_for_check(&config.state_dir)? {
        CheckBy::Here(store) => {
            let env = Environment::from_process(system_clock());
            oneshot::check_here(&config, Arc::new(store), &env, shops, &stop).await?
        }
        CheckBy::Daemon(pid) => {
            eprintln!(
                "tripletex-sync daemon (pid {pid}) holds {}; asking it for a pass",
                config.state_dir.display()
            );
            oneshot::ask_daemon(pid, &config, shops, &stop).await?
        }
    };
    print_report(&report, json)?;
    let failing = report
        .shops
        .iter()
        .filter(|s| s.enabled)
        .flat_map(|s| CheckKind::ALL.map(|k| s.checks.get(k).verdict))
        .any(|v| matches!(v, Verdict::Conflict | Verdict::Error));
    Ok(if failing { exit::FINDINGS } else { exit::OK })
}

/// A stop token cancelled by SIGTERM/SIGINT while the returned guard lives (commands other than
/// the daemon).
fn stop_on_signals() -> anyhow::Result<(CancellationToken, Forwarding)> {
    let stop = CancellationToken::new();
    let (controller, _orders) = control::channel(stop.clone());
    let signals = Signals::stop_only().context("installing signal handlers")?;
    Ok((stop, signals.forward(controller)))
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
    if !preflight(&config, false) {
        return Ok(exit::COULD_NOT_RUN);
    }
    let (controller, orders) = control::channel(CancellationToken::new());
    // Before the lock file names our pid (see `Signals::daemon`).
    let _signals = Signals::daemon()
        .context("installing signal handlers")?
        .forward(controller);
    let env = Environment::from_process(system_clock());
    match daemon::serve(config_path, config.clone(), env, orders).await {
        Ok(()) => Ok(exit::OK),
        Err(e @ daemon::DaemonError::StoreRestart(_)) => {
            eprintln!("error: {e}");
            Ok(daemon::EXIT_STORE_RESTART)
        }
        // A full disk at start: not a configuration problem, so systemd is to try again.
        Err(daemon::DaemonError::Store(e)) if e.storage_full() => {
            let report = StatusReport {
                store_error: Some(e.to_string()),
                ..StatusReport::collect(None, &config, jiff::Timestamp::now())?
            };
            // Best effort, and only in place: there is no room for a new file.
            let _ = report.overwrite_in_place(&config.state_dir);
            eprintln!("error: {e}; exiting with code 75 for systemd to try again");
            Ok(daemon::EXIT_STORE_RESTART)
        }
        Err(e) => Err(e.into()),
    }
}

/// `sim`: serve a scenario (default: the demo world) until SIGTERM/SIGINT.
#[cfg(feature = "sim")]
pub async fn sim(listen: SocketAddr, scenario: Option<&Path>) -> anyhow::Result<u8> {
    let scenario = match scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::from_toml_str(DEMO_SCENARIO)?,
    };
    let (stop, _signals) = stop_on_signals()?;
    let sim = Simulator::from_scenario(scenario, system_clock());
    let running = sim
        .start(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    // The bound address, so `--listen 127.0.0.1:0` tells which port it got.
    eprintln!(
        "Tripletex simulator on {} (Ctrl-C stops it)",
        running.base_url()
    );
    stop.cancelled().await;
    running.shutdown().await;
    Ok(exit::OK)
}

/// What the demo's "Tripletex" calls back: a name that resolves nowhere, since the simulator plays
/// the reverse proxy in front of the daemon's receiver.
#[cfg(feature = "sim")]
const DEMO_PUBLIC_URL: &str = "https://sync.demo.invalid/tripletex";
/// The shop the demo shows push with, its company and the customer its shop creates (the
/// next after its run 1–1200; the demo world's own scheduled change, for `sim`, is 1201).
#[cfg(feature = "sim")]
const DEMO_PUSH: (&str, i64, u32) = ("fjellsport", 1001, 1202);
/// How long the demo runs past `--seconds` to show push, if it has not yet.
#[cfg(feature = "sim")]
const DEMO_PUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// `demo`: the simulator's demo world, a throwaway config for its three shops (webhooks on, the
/// status page on a free loopback port), the daemon for `seconds` (and until push was shown, within a grace), then the status table and
/// what push did.
#[cfg(feature = "sim")]
pub async fn demo(seconds: u64) -> anyhow::Result<u8> {
    let scenario = Scenario::from_toml_str(DEMO_SCENARIO)?;
    let sim = Simulator::from_scenario(scenario.clone(), system_clock());
    let running = sim.start(([127, 0, 0, 1], 0).into()).await?;
    // Removed on drop, whatever goes wrong below; declared before the store so it outlives it.
    let dir = tempfile::Builder::new()
        .prefix("tripletex-sync-demo-")
        .tempdir()
        .context("creating the demo folder")?;
    std::fs::create_dir(dir.path().join("shops.d")).context("creating the demo folder")?;
    // The platform the daemon notifies, verifying signatures with a secret made for this run.
    let secret = {
        use base64::Engine as _;
        let key: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        )
    };
    let platform_stop = CancellationToken::new();
    let _platform_guard = platform_stop.clone().drop_guard();
    let platform = notify::DemoPlatform::start(&secret, platform_stop)
        .await
        .context("starting the demo's platform receiver")?;
    write_private(&dir.path().join("notify-secret"), &secret)?;
    let config_path = write_demo_config(dir.path(), &scenario, &running.base_url(), &platform.url)?;
    let config = Config::load(&config_path)?;
    let store = Arc::new(Store::open(&config.state_dir, Role::Daemon)?);
    eprintln!(
        "demo: simulator on {}, {} shops, running the daemon for {seconds}s (config in {})",
        running.base_url(),
        config.shops.len(),
        dir.path().display()
    );
    let (controller, orders) = control::channel(CancellationToken::new());
    let signals = Signals::stop_only()
        .context("installing signal handlers")?
        .forward(controller.clone());
    let page = tokio::spawn(show_page(controller.clone()));
    let mut pushed = tokio::spawn(show_push(
        sim.clone(),
        controller.clone(),
        config.state_dir.clone(),
    ));
    let stopper = tokio::spawn(async move {
        let run = std::time::Duration::from_secs(seconds);
        tokio::time::sleep(run).await;
        let shown = match tokio::time::timeout(DEMO_PUSH_GRACE, &mut pushed).await {
            Ok(joined) => joined.ok().flatten(),
            Err(_) => {
                pushed.abort();
                None
            }
        };
        controller.send(daemon::Control::Stop);
        shown
    });
    let env = Environment::from_process(system_clock());
    let ran = daemon::run(&config_path, config.clone(), store.clone(), env, orders).await;
    let pushed = stopper.await.ok().flatten();
    page.abort();
    drop(signals);
    running.shutdown().await;
    ran?;
    let now = jiff::Timestamp::now();
    let report = StatusReport::collect(Some(&store), &config, now)?;
    print!(
        "{}",
        report.compact(&status::View::for_terminal(&config, now))
    );
    match pushed {
        Some(line) => println!("{line}"),
        None => println!("push: not shown within the run (try a longer --seconds)"),
    }
    for line in platform.lines() {
        println!("{line}");
    }
    Ok(exit::OK)
}

/// Prints where the status page is once the daemon serves it (for as long as the demo runs).
#[cfg(feature = "sim")]
async fn show_page(control: Controller) {
    if let Some(addr) = control.listening(|l| l.metrics.is_some()).await.metrics {
        eprintln!(
            "demo: status page on http://{addr}/ while the demo runs (--seconds to look longer)"
        );
    }
}

/// Once the daemon's receiver listens and the push shop's subscriptions are active, creates the
/// shop's next customer in "Tripletex" and waits until the daemon has taken its callback (as
/// status.json shows): what push looks like. The line to print.
#[cfg(feature = "sim")]
async fn show_push(sim: Simulator, control: Controller, state_dir: PathBuf) -> Option<String> {
    use std::time::{Duration, Instant};
    let (shop, company, number) = DEMO_PUSH;
    let addr = control.listening(|l| l.webhooks.is_some()).await.webhooks?;
    sim.proxy_webhooks(DEMO_PUBLIC_URL, &format!("http://{addr}"));
    let push = || {
        StatusReport::read(&state_dir)
            .ok()?
            .shops
            .into_iter()
            .find(|s| s.name == shop)?
            .push
    };
    // A demo's own pacing: status.json is rewritten at most a few times a second.
    let tick = Duration::from_millis(100);
    while !push().is_some_and(|p| p.active) {
        tokio::time::sleep(tick).await;
    }
    sim.add_customer(company, number, false);
    let created = Instant::now();
    while push().and_then(|p| p.last_callback_at).is_none() {
        tokio::time::sleep(tick).await;
    }
    Some(format!(
        "pushed: customer {number}, created in {shop}'s Tripletex, reached the daemon by webhook \
         and was checked within {:.1} s, without a Tripletex request",
        created.elapsed().as_secs_f64()
    ))
}

/// Writes config.toml, the consumer token and one shop file + token per scenario company.
#[cfg(feature = "sim")]
fn write_demo_config(
    dir: &Path,
    scenario: &Scenario,
    base_url: &str,
    notify_url: &str,
) -> anyhow::Result<std::path::PathBuf> {
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
             max_concurrent_shops = 8\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[checks]\ninterval = \"4s\"\njitter = \"1s\"\nfull_resync = \"1h\"\n\n\
             [webhooks]\npublic_url = \"{DEMO_PUBLIC_URL}\"\nlisten = \"127.0.0.1:0\"\n\
             secret_file = \"webhook-secret\"\nreconcile_interval = \"1h\"\n\n\
             [notify]\nurl = \"{notify_url}\"\nsecret_file = \"notify-secret\"\n\
             retry_min = \"1s\"\nretry_max = \"5s\"\n"
        ),
    )?;
    // Random per run: the demo's callback paths are derived from it.
    let secret: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(48)
        .collect();
    write_private(&dir.join("webhook-secret"), &secret)?;
    Ok(path)
}

#[cfg(feature = "sim")]
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

/// `sim` in a build without the simulator (a packager's `--no-default-features`).
#[cfg(not(feature = "sim"))]
pub async fn sim(_listen: SocketAddr, _scenario: Option<&Path>) -> anyhow::Result<u8> {
    without_simulator("sim")
}

/// `demo` in a build without the simulator.
#[cfg(not(feature = "sim"))]
pub async fn demo(_seconds: u64) -> anyhow::Result<u8> {
    without_simulator("demo")
}

/// Exit 2 with one line naming the missing cargo feature.
#[cfg(not(feature = "sim"))]
fn without_simulator(command: &str) -> anyhow::Result<u8> {
    bail!(
        "`{command}` needs the Tripletex simulator, which this build leaves out (fix: build with the cargo feature `sim`, on by default: cargo build --release --features sim)"
    )
}

/// Runs under `cargo test --no-default-features` (see .ci/run).
#[cfg(all(test, not(feature = "sim")))]
mod without_sim_tests {
    #[tokio::test]
    async fn demo_and_sim_name_the_missing_feature() {
        let refusals = [
            super::demo(1).await.unwrap_err(),
            super::sim(([127, 0, 0, 1], 0).into(), None)
                .await
                .unwrap_err(),
        ];
        for e in refusals {
            let line = super::one_line(&e);
            assert!(
                line.contains("cargo feature `sim`") && !line.contains('\n'),
                "{line}"
            );
        }
    }
}

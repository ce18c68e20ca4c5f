//! One scale run: N shops in the simulator, the real daemon (`daemon::run`) over them, and what
//! it cost. Shared by `cargo bench --bench scale` (prints the figures) and `tests/scale.rs`
//! (asserts the request counts for a few shops, never a time).
//!
//! The simulator runs in this process on its own tokio runtime, whose worker threads register
//! their CPU clocks: daemon CPU is the process's (getrusage) minus those threads'. Peak RSS is the
//! process's high-water mark minus the RSS after the simulator was seeded, before the daemon
//! started (the simulator's own growth after that, its request log and sessions, is small and
//! counted against the daemon).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, filter};
use tripletex_sim::Simulator;
use tripletex_sync::clock::{SharedClock, SystemClock, oslo_date};
use tripletex_sync::config::Config;
use tripletex_sync::daemon::{self, Control, Environment};
use tripletex_sync::store::{Role, Store};
use tripletex_sync_fixture::daemon::write_private;
use tripletex_sync_fixture::sim::start_on_loopback;

pub const CONSUMER: &str = "scale-consumer-token";
pub const CUSTOMERS: u32 = 50;
pub const INVOICES: u32 = 50;
/// A phase that takes longer than this is reported as failed, not waited for.
const PHASE_LIMIT: Duration = Duration::from_secs(1800);

const MAIN: &str = r#"
state_dir = "state"
shops_dir = "shops.d"

[tripletex]
base_url = "BASE_URL"
consumer_token_file = "consumer-token"
session_valid_days = 7
renew_before = "1d"
request_timeout = "10s"

[rate_limit]
per_second = 20
burst = 20
reserve = 20
max_concurrent_shops = MAX_CONCURRENT

[checks]
interval = "1h"
jitter = "0s"
full_resync = "24h"
"#;

/// The config folder's main file for a simulator at `base_url`, `max_concurrent` shops at once.
pub fn main_config(base_url: &str, max_concurrent: usize) -> String {
    MAIN.replace("BASE_URL", base_url)
        .replace("MAX_CONCURRENT", &max_concurrent.to_string())
}

const SHOP: &str = "[customer_numbers]\ntripletex_start = 1000000\n\
                    [invoice_numbers]\nshop_start = 1\ntripletex_start = 1000000\n";

/// One phase (first pass over every shop, or an idle one).
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    pub wall: Duration,
    pub daemon_cpu: Duration,
    pub sim_cpu: Duration,
    pub requests: usize,
    pub mints: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub shops: usize,
    pub first: Phase,
    pub idle: Phase,
    pub peak_rss: u64,
    pub status_bytes: u64,
    pub state_bytes: u64,
    pub shutdown: Duration,
    /// Session tokens still alive in the simulator after the daemon stopped.
    pub sessions_left: usize,
    pub sessions_before_stop: usize,
    pub failed: Option<String>,
}

/// Counts `pass.done` events, i.e. recorded passes.
struct PassCounter(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PassCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Done(bool);
        impl tracing::field::Visit for Done {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "event" && value == "pass.done" {
                    self.0 = true;
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut done = Done(false);
        event.record(&mut done);
        if done.0 {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Installs the process's subscriber: warnings to stderr, recorded passes counted.
pub fn install_tracing() -> Arc<AtomicUsize> {
    let passes = Arc::new(AtomicUsize::new(0));
    let counter = PassCounter(passes.clone()).with_filter(filter::filter_fn(|m| {
        m.target() == "tripletex_sync::pass" && *m.level() == tracing::Level::DEBUG
    }));
    let warnings = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter::LevelFilter::WARN);
    tracing_subscriber::registry()
        .with(counter)
        .with(warnings)
        .init();
    passes
}

/// The simulator on its own runtime; its worker threads' CPU clocks are kept.
struct SimThread {
    base_url: String,
    clocks: Arc<Mutex<Vec<libc::clockid_t>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl SimThread {
    fn start(sim: Simulator) -> Self {
        let clocks: Arc<Mutex<Vec<libc::clockid_t>>> = Arc::default();
        let registered = clocks.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(move || {
                let mut id: libc::clockid_t = 0;
                // SAFETY: pthread_self is always valid; `id` is a valid out pointer.
                if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) } == 0 {
                    registered.lock().unwrap().push(id);
                }
            })
            .build()
            .expect("sim runtime");
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let running = start_on_loopback(&sim).await;
                url_tx.send(running.base_url()).expect("bench waits");
                let _ = stopped.await;
                running.shutdown().await;
            });
        });
        let base_url = url_rx.recv().expect("sim started");
        Self {
            base_url,
            clocks,
            stop,
            thread,
        }
    }

    fn cpu(&self) -> Duration {
        self.clocks
            .lock()
            .unwrap()
            .iter()
            .map(|&id| {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: `id` came from pthread_getcpuclockid of a thread that is still running
                // (the runtime lives until `stop`); `ts` is a valid out pointer.
                unsafe { libc::clock_gettime(id, &mut ts) };
                Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
            })
            .sum()
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn process_cpu() -> Duration {
    // SAFETY: a zeroed rusage is a valid out buffer for getrusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `VmRSS` or `VmHWM` from /proc/`pid`/status (`pid` may be `self`), in bytes.
pub fn proc_status_bytes(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Bytes allocated on disk under `path` (like `du`).
pub fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.blocks() * 512;
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| disk_bytes(&e.path()))
                .sum::<u64>()
        })
        .unwrap_or(0)
        + meta.blocks() * 512
}

/// Shop `i` of the world: its name, company id and employee token.
pub fn shop(i: usize) -> (String, i64, String) {
    let name = format!("shop{i:06}");
    let token = format!("employee-token-{name}");
    (name, 1000 + i as i64, token)
}

/// Writes the config folder's shop files, token files and consumer token (not its main file).
pub fn write_shops(shops: usize, dir: &Path) {
    std::fs::create_dir_all(dir.join("shops.d")).unwrap();
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    for i in 0..shops {
        let (name, _, token) = shop(i);
        write_private(&dir.join("tokens").join(&name), &token);
        std::fs::write(
            dir.join("shops.d").join(format!("{name}.toml")),
            format!("employee_token_file = \"../tokens/{name}\"\n{SHOP}"),
        )
        .unwrap();
    }
    write_private(&dir.join("consumer-token"), CONSUMER);
}

/// Seeds `shops` companies (see [`shop`]) and writes a config folder with one shop file each.
fn world(shops: usize, dir: &Path, clock: &SharedClock) -> (Simulator, PathBuf) {
    let sim = Simulator::new(clock.clone());
    sim.add_consumer_token(CONSUMER);
    sim.set_rate_limit(100_000, Duration::from_secs(10));
    let today = oslo_date(clock.now());
    let first_day = today.checked_sub(jiff::Span::new().days(49)).unwrap();
    for i in 0..shops {
        let (name, company, token) = shop(i);
        sim.add_company(company, &format!("{name} AS"), true);
        sim.add_employee_token(&token, company, company * 10);
        sim.seed_customers(company, 1, CUSTOMERS, false);
        sim.add_invoices(company, 1, INVOICES, first_day, 1);
    }
    write_shops(shops, dir);
    (sim, dir.join("config.toml"))
}

/// Runs the whole scenario for `shops` shops; `passes` counts recorded passes process-wide;
/// `settle` is how long after each phase its CPU is still counted (the status writer's
/// rate-limited write and sled's background flush belong to the passes that caused them).
pub async fn run(shops: usize, passes: &AtomicUsize, settle: Duration) -> Figures {
    let parent = std::env::var_os("SCALE_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::tempdir_in(parent).expect("temp dir");
    let clock: SharedClock = Arc::new(SystemClock);
    let (sim, config_path) = world(shops, dir.path(), &clock);
    let sim_thread = SimThread::start(sim.clone());
    std::fs::write(&config_path, main_config(&sim_thread.base_url, 64)).unwrap();
    let config = Config::load(&config_path).expect("bench config");
    let state_dir = config.state_dir.clone();
    let store = Arc::new(Store::open(&state_dir, Role::Daemon).expect("store"));
    let rss_before = proc_status_bytes("self", "VmRSS:");

    let mut figures = Figures {
        shops,
        ..Figures::default()
    };
    let env = Environment {
        clock: clock.clone(),
        credentials_dir: None,
        tune: |_| {},
        before_pass: |_| {},
        metrics: Default::default(),
    };
    let cancel = CancellationToken::new();
    let (control, control_rx) = daemon::control::channel(cancel.clone());
    let base = passes.load(Ordering::Relaxed);
    let mut phase_start = (Instant::now(), process_cpu(), sim_thread.cpu());
    sim.clear_request_log();
    let daemon = tokio::spawn({
        let path = config_path.clone();
        async move { daemon::run(&path, config, store, env, control_rx).await }
    });
    for (i, slot) in [&mut figures.first, &mut figures.idle]
        .into_iter()
        .enumerate()
    {
        if i == 1 {
            sim.clear_request_log();
            phase_start = (Instant::now(), process_cpu(), sim_thread.cpu());
            eprintln!("scale: idle pass of {shops} shops starts");
            control.send(Control::PassNow);
        }
        let target = base + shops * (i + 1);
        let (mut requests, mut mints) = (0, 0);
        let mut tally = || {
            let log = sim.take_request_log();
            requests += log.len();
            mints += log
                .iter()
                .filter(|r| r.method == "POST" && r.path.ends_with("/token/session/:create"))
                .count();
        };
        let wall = loop {
            tally();
            if passes.load(Ordering::Relaxed) >= target {
                break phase_start.0.elapsed();
            }
            if phase_start.0.elapsed() > PHASE_LIMIT || daemon.is_finished() {
                figures.failed = Some(format!(
                    "phase {i}: {} of {shops} passes recorded",
                    passes.load(Ordering::Relaxed) - base - shops * i
                ));
                break phase_start.0.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tokio::time::sleep(settle).await;
        let (cpu, sim_cpu) = (process_cpu(), sim_thread.cpu());
        tally();
        *slot = Phase {
            wall,
            sim_cpu: sim_cpu - phase_start.2,
            daemon_cpu: (cpu - phase_start.1).saturating_sub(sim_cpu - phase_start.2),
            requests,
            mints,
        };
        if figures.failed.is_some() {
            break;
        }
    }

    figures.status_bytes = std::fs::metadata(state_dir.join("status.json")).map_or(0, |m| m.len());
    figures.state_bytes = disk_bytes(&state_dir);
    figures.sessions_before_stop = sim.live_sessions();
    let stopping = Instant::now();
    cancel.cancel();
    match daemon.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => figures.failed = Some(format!("daemon: {e}")),
        Err(e) => figures.failed = Some(format!("daemon task: {e}")),
    }
    figures.shutdown = stopping.elapsed();
    figures.sessions_left = sim.live_sessions();
    figures.peak_rss = proc_status_bytes("self", "VmHWM:").saturating_sub(rss_before);
    sim_thread.stop();
    figures
}

//! One scale run as an operator runs it: the release binary's `tripletex-sync sim` in its own
//! process, serving a generated scenario of N companies, and `tripletex-sync run` in another over
//! N shop files and token files with `max_concurrent_shops = 32`. Used by
//! `cargo bench --bench scale` (the first table of BENCHMARKS.md).
//!
//! Every figure is the daemon process's own: CPU is `utime + stime` of /proc/PID/stat, peak RSS
//! its `VmHWM`. The daemon logs at info, as a service does: passes, requests and mints are its own
//! counters at the head of `metrics.prom` (`pass_duration_seconds_count`, process-wide, before
//! the per-shop series), not a debug line a pass that would cost the daemon a JSON line each;
//! tokens left are what its `shutdown.sessions_*` event says it kept.
//!
//! `SCALE_HISTORY_DAYS=N` starts the daemon over a database that already holds N days of each
//! check's history (a point every 6 h, the highest number unchanged, older than a week one a
//! day: what a quiet shop the daemon has watched that long holds), so a run shows a steady state
//! rather than one-pass-old shops.
//!
//! `SCALE_DAEMON_PREFIX` (words split on spaces, e.g. `heaptrack` or
//! `perf record --call-graph dwarf -F 99 -o /tmp/scale.perf --`) runs the daemon under a profiler;
//! signals and /proc figures then go to the daemon found below the wrapper, not to the wrapper.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// A phase is the in-process harness's: the first pass from the daemon's start, or an idle one.
use crate::scale_run::{
    CONSUMER, CUSTOMERS, INVOICES, Phase, disk_bytes, main_config, proc_status_bytes, shop,
    write_shops,
};

/// A phase that takes longer than this is reported as failed, not waited for.
const PHASE_LIMIT: Duration = Duration::from_secs(3600);
/// The daemon's log filter: a service's.
const LOG_FILTER: &str = "warn,tripletex_sync=info";
/// Bytes read from the head of `metrics.prom`: more than its process-wide families take, which
/// come before the per-shop series (54 MB at 100 000 shops, too big to read every 50 ms).
const METRICS_HEAD: u64 = 256 * 1024;
/// How many of the daemon's warnings and errors are echoed.
const ECHOED: usize = 20;

#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub shops: usize,
    pub first: Phase,
    pub idle: Phase,
    pub peak_rss: u64,
    /// `VmHWM` as last read before the daemon exited: the stop's own peak included.
    pub stop_rss: u64,
    pub metrics_bytes: u64,
    pub metrics_series: usize,
    pub status_bytes: u64,
    pub state_bytes: u64,
    /// Bytes of keys and values in the database after the stop, per record type (the key's
    /// first segment: `session`, `mirror`, ...): what the state holds, apart from sled's log.
    pub records: BTreeMap<String, u64>,
    pub shutdown: Duration,
    /// Session tokens the daemon says it kept at the stop (`None`: it did not say).
    pub sessions_left: Option<u64>,
    pub failed: Option<String>,
}

/// What the daemon's log reader has seen.
#[derive(Default)]
struct Seen {
    kept: Mutex<Option<u64>>,
}

/// `utime + stime` of a process, from /proc/PID/stat.
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(100);
    // Fields 14 and 15 of the whole line are 12 and 13 after the name.
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / per_second)
}

/// The machine's CPU time so far and the part of it stolen by the hypervisor (the `cpu` line of
/// /proc/stat, in ticks): on a shared VM a busy host inflates every process's CPU figures.
fn machine_steal() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total = ticks.iter().take(8).sum();
    (total, ticks.get(7).copied().unwrap_or(0))
}

fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: kill with the pid of a process below this one that has not been waited for.
    unsafe { libc::kill(pid, signal) };
}

/// The process running `exe` at or below `pid` (itself, without a profiler wrapping it).
fn find_exe(pid: u32, exe: &Path) -> Option<u32> {
    let runs_exe = |p: u32| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == exe);
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        if runs_exe(p) {
            return Some(p);
        }
        let children = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children"));
        queue.extend(
            children
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    None
}

/// The scenario file `tripletex-sync sim --scenario` reads: the in-process bench's world.
fn write_scenario(shops: usize, path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "consumer_tokens = [\"{CONSUMER}\"]\n").unwrap();
    writeln!(out, "[rate_limit]\nrequests = 100000\nperiod = \"10s\"\n").unwrap();
    for i in 0..shops {
        let (name, company, token) = shop(i);
        writeln!(
            out,
            "[[company]]\nid = {company}\nname = \"{name} AS\"\n\
             [[company.employee]]\ntoken = \"{token}\"\nemployee_id = {}\n\
             [[company.customers]]\nfirst = 1\ncount = {CUSTOMERS}\n\
             [[company.invoices]]\nfirst = 1\ncount = {INVOICES}\nfirst_date = \"-49d\"\n",
            company * 10
        )
        .unwrap();
    }
    out.flush().unwrap();
}

/// Starts `sim` and returns it with its base URL (from its first line on stderr).
fn start_sim(exe: &Path, scenario: &Path) -> (Child, String) {
    let mut child = Command::new(exe)
        .args([
            "--log-format",
            "text",
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--scenario",
        ])
        .arg(scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tripletex-sync sim");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("sim stopped before it listened")
            .unwrap();
        if let Some(rest) = line.split_once("Tripletex simulator on ") {
            break rest.1.split_whitespace().next().unwrap().to_owned();
        }
        eprintln!("sim: {line}");
    };
    // Keep draining, so a chatty simulator never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

/// Starts `run` and a thread reading its JSON log into `seen`.
fn start_daemon(
    exe: &Path,
    config: &Path,
    seen: Arc<Seen>,
) -> (Child, std::thread::JoinHandle<()>) {
    let prefix = std::env::var("SCALE_DAEMON_PREFIX").unwrap_or_default();
    let mut words = prefix.split_whitespace();
    let mut command = match words.next() {
        Some(wrapper) => {
            let mut command = Command::new(wrapper);
            command.args(words).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    let mut child = command
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "run"])
        .env("RUST_LOG", LOG_FILTER)
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tripletex-sync run");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut echoed = 0;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            match event["event"].as_str() {
                Some("shutdown.sessions_revoked") => *seen.kept.lock().unwrap() = Some(0),
                Some("shutdown.sessions_kept") => {
                    *seen.kept.lock().unwrap() = event["kept"].as_u64();
                }
                _ => {}
            }
            if matches!(event["level"].as_str(), Some("WARN" | "ERROR")) && echoed < ECHOED {
                echoed += 1;
                eprintln!("daemon: {line}");
            }
        }
    });
    (child, reader)
}

/// The sum of every sample of `family` in `metrics.prom` (0 if absent).
fn metric_sum(text: &str, family: &str) -> usize {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as usize
}

/// Recorded passes, requests and mints so far, by the daemon's own process-wide counters.
fn counted(state_dir: &Path) -> Counted {
    use std::io::Read as _;
    let mut head = Vec::new();
    if let Ok(file) = std::fs::File::open(state_dir.join("metrics.prom")) {
        let _ = file.take(METRICS_HEAD).read_to_end(&mut head);
    }
    let text = String::from_utf8_lossy(&head);
    // A line cut off at the end of the head belongs to the per-shop series.
    let text = text.rsplit_once('\n').map_or("", |(whole, _)| whole);
    Counted {
        passes: metric_sum(text, "tripletex_sync_pass_duration_seconds_count"),
        requests: metric_sum(text, "tripletex_sync_requests_total"),
        mints: metric_sum(text, "tripletex_sync_session_mints_total"),
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counted {
    passes: usize,
    requests: usize,
    mints: usize,
}

/// Runs the whole scenario for `shops` shops with the binary `exe`; `settle` is how long after
/// each phase's last pass its CPU is still counted (the status and metrics writes and sled's
/// flush that the passes caused belong to them).
pub fn run(exe: &Path, shops: usize, settle: Duration) -> Figures {
    let parent = std::env::var_os("SCALE_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&parent)
        .unwrap_or_else(|e| panic!("SCALE_DIR {}: {e}", parent.display()));
    let dir = tempfile::tempdir_in(&parent)
        .unwrap_or_else(|e| panic!("a folder in SCALE_DIR {}: {e}", parent.display()));
    let scenario = dir.path().join("scenario.toml");
    write_scenario(shops, &scenario);
    write_shops(shops, dir.path());
    let (mut sim, base_url) = start_sim(exe, &scenario);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, main_config(&base_url, 32)).unwrap();
    let state_dir = dir.path().join("state");
    let days =
        std::env::var("SCALE_HISTORY_DAYS").map_or(0, |d| d.parse().expect("a number of days"));
    if days > 0 {
        seed_history(&state_dir, shops, days);
    }

    let mut figures = Figures {
        shops,
        ..Figures::default()
    };
    let seen = Arc::new(Seen::default());
    let started = Instant::now();
    let (mut daemon, reader) = start_daemon(exe, &config, seen.clone());
    let pid = loop {
        if let Some(pid) = find_exe(daemon.id(), exe) {
            break pid;
        }
        if let Ok(Some(status)) = daemon.try_wait() {
            signal(sim.id(), libc::SIGTERM);
            let _ = sim.wait();
            figures.failed = Some(format!("the daemon's command exited: {status}"));
            return figures;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut steal_before = (0, 0);
    let mut before = (
        started,
        Duration::ZERO,
        process_cpu(sim.id()),
        Counted::default(),
    );
    for (i, slot) in [&mut figures.first, &mut figures.idle]
        .into_iter()
        .enumerate()
    {
        if i == 1 {
            before = (
                Instant::now(),
                process_cpu(pid),
                process_cpu(sim.id()),
                counted(&state_dir),
            );
            eprintln!("scale: idle pass of {shops} shops starts");
            steal_before = machine_steal();
            signal(pid, libc::SIGUSR1);
        }
        let target = shops * (i + 1);
        // metrics.prom is rewritten after passes, leaving 30 times a write's duration between
        // writes (see `daemon::report`): the wall time is when a write first showed every pass.
        let wall = loop {
            let passes = counted(&state_dir).passes;
            if passes >= target {
                break before.0.elapsed();
            }
            let exited = daemon.try_wait().ok().flatten();
            if before.0.elapsed() > PHASE_LIMIT || exited.is_some() {
                figures.failed = Some(format!(
                    "phase {i}: {} of {shops} passes recorded{}",
                    passes.saturating_sub(shops * i),
                    exited
                        .map(|s| format!(", daemon exited: {s}"))
                        .unwrap_or_default()
                ));
                break before.0.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(settle);
        if i == 1 {
            // A profiler attached at "starts" (see BENCHMARKS.md) detaches here.
            let (total, steal) = machine_steal();
            let share = (steal - steal_before.1) * 100 / (total - steal_before.0).max(1);
            eprintln!(
                "scale: idle pass of {shops} shops measured (steal: {share} % of the machine's CPU time)"
            );
        }
        let now = counted(&state_dir);
        *slot = Phase {
            wall,
            daemon_cpu: process_cpu(pid).saturating_sub(before.1),
            sim_cpu: process_cpu(sim.id()).saturating_sub(before.2),
            requests: now.requests - before.3.requests,
            mints: now.mints - before.3.mints,
        };
        if figures.failed.is_some() {
            break;
        }
    }

    let metrics = std::fs::read_to_string(state_dir.join("metrics.prom")).unwrap_or_default();
    figures.metrics_bytes = metrics.len() as u64;
    figures.metrics_series = metrics.lines().filter(|l| !l.starts_with('#')).count();
    figures.status_bytes = std::fs::metadata(state_dir.join("status.json")).map_or(0, |m| m.len());
    figures.state_bytes = disk_bytes(&state_dir);
    figures.peak_rss = proc_status_bytes(&pid.to_string(), "VmHWM:");
    let stopping = Instant::now();
    signal(pid, libc::SIGTERM);
    // Read until the process is gone (an exited one has no `VmHWM` line: 0).
    let watcher = std::thread::spawn(move || {
        let mut last = 0;
        loop {
            match proc_status_bytes(&pid.to_string(), "VmHWM:") {
                0 => return last,
                now => last = now,
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let status = daemon.wait().expect("wait for the daemon");
    figures.shutdown = stopping.elapsed();
    figures.stop_rss = watcher.join().unwrap_or_default().max(figures.peak_rss);
    if !status.success() {
        figures.failed = Some(format!("daemon exited with {status}"));
    }
    let _ = reader.join();
    figures.sessions_left = *seen.kept.lock().unwrap();
    signal(sim.id(), libc::SIGTERM);
    let _ = sim.wait();
    figures.records = stored_bytes(&state_dir.join("db"));
    figures
}

/// Writes `days` of history for every check of every shop into a new database in `state_dir`:
/// a point every 6 h up to an hour ago, each with the scenario's highest number.
fn seed_history(state_dir: &Path, shops: usize, days: i64) {
    use tripletex_sync::checks::{CheckKind, HistoryPoint};
    use tripletex_sync::store::{Role, Store};
    let store = Store::open(state_dir, Role::OneShot).expect("a database to seed");
    let last = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    // As the daemon keeps it: every point of the last week, the newest of each older UTC day.
    let points = |high: u32| -> Vec<HistoryPoint> {
        let day = |i: i64| (last - jiff::SignedDuration::from_hours(6 * i)).as_second() / 86_400;
        (0..days * 4)
            .rev()
            .filter(|&i| i < 7 * 4 || day(i - 1) != day(i))
            .map(|i| HistoryPoint {
                at: last - jiff::SignedDuration::from_hours(6 * i),
                shop_high: Some(high),
            })
            .collect()
    };
    let (customers, invoices) = (points(CUSTOMERS), points(INVOICES));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for chunk in (0..shops).collect::<Vec<_>>().chunks(1000) {
        let mut batch = store.batch();
        for &i in chunk {
            let (name, ..) = shop(i);
            batch.put_history(&name, CheckKind::CustomerNumbers, &customers);
            batch.put_history(&name, CheckKind::InvoiceNumbers, &invoices);
        }
        runtime
            .block_on(store.commit(batch))
            .expect("seeded history committed");
    }
}

/// Bytes of keys and values in the stopped daemon's sled database, per record type.
fn stored_bytes(db: &Path) -> BTreeMap<String, u64> {
    let mut by_type = BTreeMap::new();
    let Ok(db) = sled::Config::new().path(db).open() else {
        return by_type;
    };
    for (key, value) in db.iter().flatten() {
        // `shop/{name}/{type}/…` (see the store's key layout), else `{type}/…`.
        let mut parts = key.split(|b| *b == b'/');
        let first = parts.next().unwrap_or_default();
        let kind = match first {
            b"shop" => parts.nth(1).unwrap_or_default(),
            _ => first,
        };
        *by_type
            .entry(String::from_utf8_lossy(kind).into_owned())
            .or_default() += (key.len() + value.len()) as u64;
    }
    by_type
}

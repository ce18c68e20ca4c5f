//! `cargo bench --bench scale -- --shops 1000[,10000…]`: what N shops cost the daemon, one row
//! of BENCHMARKS.md's tables per N, N shops of 50 customers and 50 invoices.
//!
//! By default as an operator runs it: the release binary's `sim` and `run` as two processes
//! (`scale_process.rs`), the daemon's figures from its own /proc entries. `--in-process` runs the
//! older harness instead: `daemon::run` and the simulator in one child process of this bench
//! (`scale_run.rs`), the second table. Set `SCALE_DIR` to put the temporary state elsewhere than
//! the system's temp folder.

#[path = "scale_process.rs"]
mod scale_process;
#[path = "scale_run.rs"]
mod scale_run;

use std::path::Path;

use std::process::Command;
use std::time::Duration;

/// How long after each phase its CPU is still counted (see `scale_run::run`).
const SETTLE: Duration = Duration::from_secs(5);

const PROCESS_HEADER: &str = "| shops | first pass wall / daemon CPU per shop | idle pass wall / daemon CPU per shop | sim CPU per idle shop-pass | daemon peak RSS / through the stop | requests per shop first / idle | mints per shop | metrics.prom | status.json | state_dir | SIGTERM → exit | tokens left |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

const HEADER: &str = "| shops | first pass wall / daemon CPU | idle pass wall / daemon CPU | CPU per shop-pass first / idle | sim CPU per idle shop-pass | peak RSS | requests per shop first / idle | mints per shop | status.json | state_dir | SIGTERM → exit | tokens left |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut shops = Vec::new();
    let (mut child, mut in_process) = (false, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--shops" => shops.extend(
                it.next()
                    .expect("--shops N")
                    .split(',')
                    .map(|n| n.parse::<usize>().expect("--shops takes a number")),
            ),
            "--child" => child = true,
            "--in-process" => in_process = true,
            // cargo bench passes `--bench`; nothing else is understood.
            _ => {}
        }
    }
    if shops.is_empty() {
        shops.push(1000);
    }
    if child {
        let passes = scale_run::install_tracing();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let figures = runtime.block_on(scale_run::run(shops[0], &passes, SETTLE));
        println!("{}", row(&figures));
        if let Some(why) = figures.failed {
            eprintln!("run failed: {why}");
            std::process::exit(1);
        }
        return;
    }
    if !in_process {
        println!("{PROCESS_HEADER}");
        let exe = Path::new(env!("CARGO_BIN_EXE_tripletex-sync"));
        for n in shops {
            let figures = scale_process::run(exe, n, SETTLE);
            println!("{}", process_row(&figures));
            if let Some(why) = figures.failed {
                eprintln!("{n} shops: run failed: {why}");
            }
        }
        return;
    }
    println!("{HEADER}");
    let me = std::env::current_exe().expect("own path");
    for n in shops {
        let status = Command::new(&me)
            .args(["--in-process", "--child", "--shops", &n.to_string()])
            .status()
            .expect("run child");
        if !status.success() {
            eprintln!("{n} shops: run failed ({status})");
        }
    }
}

fn row(f: &scale_run::Figures) -> String {
    let n = f.shops.max(1) as f64;
    let per = |d: Duration| per_shop(d, n);
    format!(
        "| {} | {} / {} | {} / {} | {} / {} | {} | {} | {:.2} / {:.2} | {:.2} | {} | {} | {} | {} |",
        f.shops,
        secs(f.first.wall),
        secs(f.first.daemon_cpu),
        secs(f.idle.wall),
        secs(f.idle.daemon_cpu),
        per(f.first.daemon_cpu),
        per(f.idle.daemon_cpu),
        per(f.idle.sim_cpu),
        mib(f.peak_rss),
        f.first.requests as f64 / n,
        f.idle.requests as f64 / n,
        (f.first.mints + f.idle.mints) as f64 / n,
        mib(f.status_bytes),
        mib(f.state_bytes),
        secs(f.shutdown),
        f.sessions_left,
    )
}

fn process_row(f: &scale_process::Figures) -> String {
    let n = f.shops.max(1) as f64;
    let per = |d: Duration| per_shop(d, n);
    format!(
        "| {} | {} / {} | {} / {} | {} | {} / {} | {:.2} / {:.2} | {:.2} | {}, {} series ({:.0} B, {:.1} per shop) | {} | {} | {} | {} |",
        f.shops,
        secs(f.first.wall),
        per(f.first.daemon_cpu),
        secs(f.idle.wall),
        per(f.idle.daemon_cpu),
        per(f.idle.sim_cpu),
        mib(f.peak_rss),
        mib(f.stop_rss),
        f.first.requests as f64 / n,
        f.idle.requests as f64 / n,
        (f.first.mints + f.idle.mints) as f64 / n,
        mib(f.metrics_bytes),
        f.metrics_series,
        f.metrics_bytes as f64 / n,
        f.metrics_series as f64 / n,
        mib(f.status_bytes),
        state(f, n),
        secs(f.shutdown),
        f.sessions_left
            .map_or_else(|| "?".to_owned(), |k| k.to_string()),
    )
}

/// The state folder, its share per shop, and what its records hold per shop by type.
fn state(f: &scale_process::Figures, shops: f64) -> String {
    let records: u64 = f.records.values().sum();
    let by_type: Vec<String> = f
        .records
        .iter()
        .map(|(kind, bytes)| format!("{kind} {:.0}", *bytes as f64 / shops))
        .collect();
    format!(
        "{} ({:.1} KiB a shop; records {:.0} B a shop: {})",
        mib(f.state_bytes),
        f.state_bytes as f64 / 1024.0 / shops,
        records as f64 / shops,
        by_type.join(", ")
    )
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn per_shop(d: Duration, shops: f64) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6 / shops)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

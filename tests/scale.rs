//! The scale bench's run (tests/benches/scale_run.rs) with a few shops: the real daemon against
//! the simulator costs the documented requests per shop. Counts only, never times.

#[path = "benches/scale_run.rs"]
mod scale_run;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_fleet_costs_the_documented_requests() {
    const SHOPS: usize = 20;
    let passes = scale_run::install_tracing();
    let f = scale_run::run(SHOPS, &passes, Duration::ZERO).await;
    println!(
        "{} shops: first pass {:?} (daemon CPU {:?}, simulator {:?}), idle pass {:?} (daemon CPU {:?}, simulator {:?})",
        f.shops,
        f.first.wall,
        f.first.daemon_cpu,
        f.first.sim_cpu,
        f.idle.wall,
        f.idle.daemon_cpu,
        f.idle.sim_cpu
    );
    assert_eq!(f.failed, None);
    // First pass: the session's mint and proof plus full reads of customers and invoices; and
    // the daemon's one read a day of the consumer token's expiry.
    assert_eq!(f.first.requests, 6 * SHOPS + 1, "{f:?}");
    assert_eq!(f.first.mints, SHOPS, "{f:?}");
    // Idle pass: customers changed since the last pass (none: seeded data is old) and the
    // invoice window's digest (unchanged); no mint.
    assert_eq!(f.idle.requests, 2 * SHOPS, "{f:?}");
    assert_eq!(f.idle.mints, 0, "{f:?}");
    // Shutdown deleted every session token.
    assert_eq!(f.sessions_before_stop, SHOPS, "{f:?}");
    assert_eq!(f.sessions_left, 0, "{f:?}");
    assert!(f.status_bytes > 0);
}

//! The systemd watchdog, through the binary and a fake `NOTIFY_SOCKET`: `WATCHDOG=1` arrives
//! while passes complete, and stops once a pass is stuck (Tripletex accepts the request and never
//! answers, with a request timeout longer than the stall limit), so systemd would restart it.

use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixDatagram;
use tripletex_sim::{Fault, FaultKind};
use tripletex_sync_fixture::daemon::Fixture;

/// Passes every second, so the stall limit (two intervals) is 2 s; a request may hang for ten minutes.
const MAIN: &str = r#"
state_dir = "state"
shops_dir = "shops.d"

[tripletex]
base_url = "BASE_URL"
consumer_token_file = "consumer-token"
session_valid_days = 7
renew_before = "1d"
request_timeout = "10m"

[rate_limit]
per_second = 1000
burst = 1000
reserve = 20
max_concurrent_shops = 8

[checks]
interval = "1s"
jitter = "0s"
full_resync = "24h"
"#;

/// Messages that arrive within `wait`.
async fn receive(socket: &UnixDatagram, wait: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + wait;
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, socket.recv(&mut buf)).await {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

fn pings(messages: &[String]) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_arrive_while_passes_complete_and_stop_when_one_is_stuck() {
    let f = Fixture::with_main(MAIN).await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 20, false);
    let notify = f.path("notify");
    let socket = UnixDatagram::bind(&notify).unwrap();
    let stderr_path = f.path("stderr.log");
    let mut daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_tripletex-sync"))
        .arg("--config")
        .arg(&f.config_path)
        .arg("run")
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "tripletex_sync=debug,warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    // Healthy: several passes complete, and pings keep coming.
    let mut healthy = Vec::new();
    for _ in 0..100 {
        healthy.extend(receive(&socket, Duration::from_millis(100)).await);
        if stderr().matches("pass.done").count() >= 2 || healthy.len() > 60 {
            break;
        }
    }
    assert!(
        healthy.iter().any(|m| m.contains("READY=1")),
        "{healthy:?}\n{}",
        stderr()
    );
    assert!(pings(&healthy) >= 3, "pings while healthy: {healthy:?}");

    // Wedge it: from now on Tripletex takes every request and answers in an hour.
    f.sim
        .inject(Fault::always(FaultKind::Delay(Duration::from_secs(3600))));
    let mut stalled = false;
    for _ in 0..150 {
        receive(&socket, Duration::from_millis(100)).await;
        if stderr().contains("watchdog.stalled") {
            stalled = true;
            break;
        }
    }
    assert!(stalled, "the stall was noticed: {}", stderr());
    // Nothing is pinged any more (a ping period is 100 ms; wait for many).
    let after = receive(&socket, Duration::from_millis(1500)).await;
    assert_eq!(pings(&after), 0, "pings while stuck: {after:?}");
    assert!(stderr().contains("shops=acme"), "{}", stderr());

    // A stuck daemon still stops promptly on SIGTERM.
    let pid = i32::try_from(daemon.id().unwrap()).unwrap();
    // SAFETY: kill(2) on our own child with a plain signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(20), daemon.wait())
        .await
        .expect("stopped within 20 s")
        .unwrap();
    assert!(status.success(), "{status:?}: {}", stderr());
}

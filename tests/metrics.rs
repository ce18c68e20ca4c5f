//! Metrics from a running daemon: the per-shop series follow what it recorded, metrics.prom is
//! written beside status.json, `[metrics] listen` serves `/metrics` and `/healthz`, and the
//! textfile and the shipped alert rules pass `promtool` where Prometheus is installed.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use tripletex_sync::daemon;
use tripletex_sync::metrics::{METRICS_FILE, Metrics, serve};
use tripletex_sync::tripletex::Observer as _;
use tripletex_sync_fixture::daemon::{FIXTURE_CONSUMER, Fixture, MAIN};
use tripletex_sync_fixture::poll;

#[tokio::test]
async fn a_conflict_shows_in_metrics_prom_of_a_daemon_serving_metrics() {
    let f = Fixture::with_main(&format!("{MAIN}\n[metrics]\nlisten = \"127.0.0.1:0\"\n")).await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 10, false);
    f.sim.add_customers(1001, 10_000, 3, false);
    let store = f.open_store();
    let env = f.env();
    let metrics = env.metrics.clone();
    let cancel = CancellationToken::new();
    let (_control, orders) = daemon::control::channel(cancel.clone());
    let daemon = tokio::spawn({
        let (path, config, store) = (f.config_path.clone(), f.config(), store.clone());
        async move { daemon::run(&path, config, store, env, orders).await }
    });

    let file = store.state_dir().join(METRICS_FILE);
    let conflict = r#"tripletex_sync_check_verdict{shop="acme",check="customer_numbers",verdict="conflict"} 1"#;
    poll::until("the conflict in metrics.prom", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains(conflict))
    })
    .await;
    let text = std::fs::read_to_string(&file).unwrap();
    for series in [
        r#"tripletex_sync_session_state{shop="acme",state="valid"} 1"#,
        "tripletex_sync_session_mints_total 1",
        r#"tripletex_sync_requests_total{endpoint="customer",class="2xx"}"#,
        r#"tripletex_sync_shops{set="enabled"} 1"#,
        "tripletex_sync_check_interval_seconds 3600",
        "tripletex_sync_pass_duration_seconds_count 1",
        r#"tripletex_sync_checks_completed_timestamp_seconds{shop="acme"}"#,
    ] {
        assert!(text.contains(series), "{series} missing in:\n{text}");
    }
    for token in ["employee-token-acme", FIXTURE_CONSUMER] {
        assert!(!text.contains(token), "a token reached a metric");
    }
    promtool_check_metrics(&text);
    assert_eq!(
        metrics.prometheus_text().lines().count(),
        text.lines().count()
    );

    cancel.cancel();
    daemon.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_endpoint_serves_metrics_and_health_and_nothing_else() {
    let metrics = Arc::new(Metrics::new());
    metrics.answered("acme", "customer", Some(200));
    let healthy = Arc::new(AtomicBool::new(true));
    let probe = healthy.clone();
    let cancel = CancellationToken::new();
    let server = serve(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics,
        Arc::new(move || probe.load(Ordering::Relaxed)),
        None,
        cancel.clone(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("http://{}{path}", server.addr)).send();

    let plain = get("/metrics").await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let body = plain.text().await.unwrap();
    assert!(
        body.contains(r#"tripletex_sync_requests_total{endpoint="customer",class="2xx"} 1"#),
        "{body}"
    );
    assert!(!body.contains("# EOF"));

    let open = http
        .get(format!("http://{}/metrics", server.addr))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        open.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(open.text().await.unwrap().ends_with("# EOF\n"));

    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    healthy.store(false, Ordering::Relaxed);
    assert_eq!(get("/healthz").await.unwrap().status(), 503);
    assert_eq!(get("/").await.unwrap().status(), 404);
    let post = http
        .post(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);

    cancel.cancel();
    server.task.await.unwrap();
}

/// `promtool check rules` and `promtool test rules` on the shipped alerts.
#[test]
fn the_alert_rules_pass_promtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let Some(out) = promtool(&dir, &args, None) else {
            return;
        };
        assert!(out.0, "promtool {args:?}: {}", out.1);
    }
}

fn promtool_check_metrics(text: &str) {
    if let Some((ok, said)) = promtool(Path::new("."), &["check", "metrics"], Some(text)) {
        assert!(
            ok && said.trim().is_empty(),
            "promtool check metrics: {said}\n{text}"
        );
    }
}

/// Runs promtool; `None` (with a note) where Prometheus is not installed.
fn promtool(dir: &Path, args: &[&str], stdin: Option<&str>) -> Option<(bool, String)> {
    use std::io::Write as _;
    let child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("promtool not installed (Debian package `prometheus`): skipped");
        return None;
    };
    let input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        let mut input = input;
        input.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), said))
}

//! The status page of a running daemon (in-process, against the simulator): `/` lists the
//! conflict shop before the ok ones with its fix, a shop page charts its history, unknown shops
//! are 404, `/status.json` is what `status --json` prints; and in a real browser (headless
//! Chromium, where installed) the page renders with no console errors and screenshots go to
//! `target/status-page.png` (and `status-page-shop.png`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use tripletex_sync::daemon::Control;
use tripletex_sync::status::{self, StatusReport};
use tripletex_sync_fixture::daemon::{Fixture, MAIN};
use tripletex_sync_fixture::poll;

/// Words of the conflict shop's fix (Tripletex's customers in its range must go).
const CLASH_FIX: &str = "renumber or deactivate customers 10000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_the_status_page() {
    let f = Fixture::with_main(&format!("{MAIN}\n[metrics]\nlisten = \"127.0.0.1:0\"\n")).await;
    for (shop, company) in [("alpha", 1001), ("beta", 1002), ("clash", 1003)] {
        f.add_shop(shop, company, "");
        f.sim.add_customers(company, 1, 300, false);
    }
    f.sim.add_customers(1003, 10_000, 5, false);
    let daemon = f.start_daemon_in(f.env(), tracing::info_span!("page"));
    let addr = daemon
        .control
        .listening(|l| l.metrics.is_some())
        .await
        .metrics
        .unwrap();
    let state_dir = daemon.store.state_dir().to_path_buf();
    let checked = |shop: &str| {
        StatusReport::read(&state_dir).ok().and_then(|r| {
            let s = r.shops.into_iter().find(|s| s.name == shop)?;
            let all = s.checks.iter().all(|(_, c)| c.checked_at.is_some());
            all.then_some(s)
        })
    };
    poll::until("every shop checked", || {
        ["alpha", "beta", "clash"]
            .iter()
            .all(|s| checked(s).is_some())
    })
    .await;
    // A second point on alpha's customer chart: its highest number moves, a while later.
    let first = checked("alpha")
        .unwrap()
        .checks
        .iter()
        .next()
        .unwrap()
        .1
        .checked_at;
    f.sim.add_customers(1001, 301, 20, false);
    f.clock.advance(Duration::from_secs(600));
    daemon.control.send(Control::PassNowFor("alpha".to_owned()));
    poll::until("alpha checked again", || {
        checked("alpha").is_some_and(|s| s.checks.iter().next().unwrap().1.checked_at != first)
    })
    .await;

    let http = reqwest::Client::new();
    let get = async |path: &str| {
        let r = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.text().await.unwrap())
    };
    let (code, headers, index) = get("/").await;
    assert_eq!(code, 200);
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let at = |name: &str| index.find(&format!("href=\"/shop/{name}\"")).unwrap();
    assert!(
        at("clash") < at("alpha") && at("clash") < at("beta"),
        "{index}"
    );
    assert!(
        index.contains("<strong>Fix:</strong> In Tripletex"),
        "{index}"
    );
    assert!(index.contains(CLASH_FIX), "{index}");
    assert!(!index.contains("employee-token"), "no token on the page");
    let (code, _, shop) = get("/shop/alpha").await;
    assert_eq!(code, 200);
    assert_eq!(shop_points(&shop), 2, "{shop}");
    assert_eq!(get("/shop/nobody").await.0, 404);

    // `status --json` reads status.json, which follows the view within its debounce.
    let shown = || {
        let request = status::Request {
            json: true,
            ..Default::default()
        };
        let out = status::show(&f.config_path, &request).ok()?.out;
        serde_json::from_str::<StatusReport>(&out).ok()
    };
    let (_, _, served) = get("/status.json").await;
    let served: StatusReport = serde_json::from_str(&served).unwrap();
    poll::until("status --json shows what /status.json does", || {
        shown().is_some_and(|s| s.shops == served.shops && s.shard == served.shard)
    })
    .await;

    in_chromium(addr).await;
    f.stop_daemon(daemon.cancel, daemon.task).await;
}

/// The points of the customer chart's shop line.
fn shop_points(page: &str) -> usize {
    let chart = &page[page.find("id=\"chart-customer_numbers\"").expect("a chart")..];
    let line = &chart[chart.find("<polyline class=\"shop\"").expect("a shop line")..];
    let points = &line[line.find("points=\"").unwrap() + "points=\"".len()..];
    points[..points.find('"').unwrap()].split(' ').count()
}

/// `/` and a shop page in headless Chromium: the DOM as rendered, no console message (a CSP
/// violation or a script error would be one), and a screenshot for a person to look at.
async fn in_chromium(addr: SocketAddr) {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        eprintln!(
            "SKIPPED: chromium not installed (apt-get install chromium); the page was checked as HTML only"
        );
        return;
    };
    let dom = chromium_run(&chromium, &["--dump-dom"], &format!("http://{addr}/")).await;
    let at = |name: &str| dom.find(&format!("href=\"/shop/{name}\"")).unwrap();
    assert!(at("clash") < at("alpha"), "{dom}");
    assert!(dom.contains(CLASH_FIX), "{dom}");
    let dom = chromium_run(
        &chromium,
        &["--dump-dom"],
        &format!("http://{addr}/shop/alpha"),
    )
    .await;
    assert_eq!(shop_points(&dom), 2, "{dom}");

    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    for (file, path) in [
        ("status-page.png", "/"),
        ("status-page-shop.png", "/shop/alpha"),
    ] {
        let shot = target.join(file);
        let _ = std::fs::remove_file(&shot);
        let arg = format!("--screenshot={}", shot.display());
        let url = format!("http://{addr}{path}");
        chromium_run(&chromium, &[&arg, "--window-size=1280,900"], &url).await;
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 0),
            "{}",
            shot.display()
        );
        eprintln!("screenshot: {}", shot.display());
    }
}

/// Runs Chromium on `url` in a fresh profile; its stdout. Fails on any console message.
async fn chromium_run(chromium: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("chromium within 60 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages on {url}: {console:#?}"
    );
    assert!(out.status.success(), "chromium on {url}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

//! A full state disk under a running daemon (the issue "Trust"), for real: state_dir is a 2 MiB
//! tmpfs (where the test may mount one; elsewhere it says so and skips, and the store's own tests
//! inject the failure). While the disk is full, /healthz answers 503, the metrics and status.json
//! say the store is failing (no old verdicts), `check` beside the daemon is answered at once, and
//! the log holds one ERROR for it, not one per shop and retry; once there is room, the daemon
//! stops like a normal stop (sessions revoked) and fails with the error `run` exits 75 on, for
//! systemd to restart it; status.json still says why, and the restarted daemon writes again.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::daemon::{self, AskError, Control, DaemonError};
use tripletex_sync::status::StatusReport;
use tripletex_sync_fixture::daemon::{Fixture, MAIN};
use tripletex_sync_fixture::tmpfs::Tmpfs;
use tripletex_sync_fixture::{capture, poll};

const SHOPS: i64 = 20;

/// One test of this binary at a time: each forks mount(8), and a forked child holds every open
/// descriptor of the process for a moment, the other test's lock files included, which would make
/// a store reopened meanwhile look locked.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn events(log: &str, name: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["event"] == name)
        .collect()
}

fn all_checked_ok(report: &StatusReport, names: &[String], since: jiff::Timestamp) -> bool {
    report.store_error.is_none()
        && names.iter().all(|name| {
            report.shops.iter().any(|s| {
                &s.name == name
                    && CheckKind::ALL.iter().all(|k| {
                        let c = s.checks.get(*k);
                        c.verdict == Verdict::Ok && c.checked_at.is_some_and(|t| t >= since)
                    })
            })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_disk_shows_answers_check_logs_once_and_restarts_once_there_is_room() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let captured = capture::capture_json();
    let f = Fixture::with_main(&format!("{MAIN}\n[metrics]\nlisten = \"127.0.0.1:0\"\n")).await;
    let Some(disk) = Tmpfs::mount(&f.path("state"), "2m", "the full-disk daemon test") else {
        return;
    };
    let names: Vec<String> = (0..SHOPS)
        .map(|i| {
            let (name, company) = (format!("shop{i}"), 1001 + i);
            f.add_shop(&name, company, "");
            f.sim.add_customers(company, 1, 10, false);
            name
        })
        .collect();
    let store = f.open_store();
    let state_dir = store.state_dir().to_path_buf();
    let cancel = CancellationToken::new();
    let (control, orders) = daemon::control::channel(cancel.clone());
    let running = tokio::spawn({
        let (path, config, store, env) =
            (f.config_path.clone(), f.config(), store.clone(), f.env());
        async move { daemon::run(&path, config, store, env, orders).await }
    });
    let addr = tokio::time::timeout(poll::BOUND, control.listening(|l| l.metrics.is_some()))
        .await
        .expect("/metrics listens")
        .metrics
        .unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let request = http.get(format!("http://{addr}{path}")).send();
        async move { request.await.unwrap() }
    };
    let started = f.now();
    poll::until("every shop ok in status.json", || {
        StatusReport::read(&state_dir).is_ok_and(|r| all_checked_ok(&r, &names, started))
    })
    .await;
    assert_eq!(get("/healthz").await.status(), 200);

    // The disk fills; passes keep coming until sled's writes fail. Each records its checks'
    // times, so the clock moves: under a still clock an idle pass has nothing to write.
    let mark = captured.mark();
    disk.fill("filler");
    let mut health = store.watch_health();
    let broke = async {
        loop {
            f.clock.advance(Duration::from_secs(1));
            control.send(Control::PassNow);
            tokio::select! {
                _ = health.wait_for(|broken| broken.is_some()) => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    };
    tokio::time::timeout(poll::BOUND, broke)
        .await
        .expect("the full disk breaks the store");

    let failing = store.failing().unwrap();
    assert!(
        failing.contains("(fix: free space on that file system)"),
        "{failing}"
    );
    assert!(
        failing.contains(&state_dir.display().to_string()),
        "{failing}"
    );
    assert_eq!(get("/healthz").await.status(), 503);
    let metrics = get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tripletex_sync_store_healthy 0"),
        "{metrics}"
    );

    // status.json (rewritten in place: there is no room for a new one) names the failure, and
    // `status` shows every shop's checks as error with it, not the old verdicts.
    let report = poll::until_some("status.json shows the store failing", || {
        StatusReport::read(&state_dir)
            .ok()
            .filter(|r| r.store_error.is_some())
    })
    .await;
    assert_eq!(report.store_error.as_deref(), Some(failing.as_str()));
    let shown = report.aligned_to(&f.config());
    for shop in &shown.shops {
        for kind in CheckKind::ALL {
            let c = shop.checks.get(kind);
            assert_eq!(c.verdict, Verdict::Error, "{}: {c:?}", shop.name);
            assert!(
                c.summary.contains("free space on that file system"),
                "{c:?}"
            );
        }
    }
    assert!(shown.table().contains("STATE STORE FAILING"));

    // `check` beside the daemon is answered at once, naming the store and the fix.
    f.clock.advance(Duration::from_secs(60));
    let asked = f.now();
    let waited = Instant::now();
    control.send(Control::PassNow);
    let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    let err = daemon::await_pass(&state_dir, &wanted, asked, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, AskError::StoreFailing(_)), "{err:?}");
    assert!(
        err.to_string().contains("free space on that file system"),
        "{err}"
    );
    assert!(
        waited.elapsed() < Duration::from_secs(10),
        "{:?}",
        waited.elapsed()
    );

    // More passes asked for while it fails: still one ERROR line in all, the store's own.
    for _ in 0..10 {
        control.send(Control::PassNow);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logged = captured.since(mark);
    assert_eq!(events(&logged, "store.broken").len(), 1, "{logged}");
    let errors: Vec<String> = logged
        .lines()
        .filter(|l| l.contains(r#""level":"ERROR""#))
        .map(str::to_owned)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");

    // Room again (the operator grows the file system): the next pass-now finds it, and the
    // daemon stops like a normal stop, with the error that exits 75.
    disk.resize("64m");
    control.send(Control::PassNow);
    let ran = tokio::time::timeout(poll::BOUND, running)
        .await
        .expect("the daemon stops once there is room")
        .unwrap();
    let Err(DaemonError::StoreRestart(why)) = ran else {
        panic!("{ran:?}");
    };
    assert_eq!(why, failing);
    let logged = captured.since(mark);
    assert_eq!(events(&logged, "store.room").len(), 1, "{logged}");
    let stop = events(&logged, "shutdown.sessions_revoked");
    assert_eq!(stop.len(), 1, "{logged}");
    assert_eq!(stop[0]["revoked"], SHOPS, "{stop:?}");
    // What `status` reads after the exit still says why.
    let after = StatusReport::read(&state_dir).unwrap();
    assert_eq!(after.store_error.as_deref(), Some(failing.as_str()));

    // The restart: a new handle on the same files, writing again.
    drop(store);
    let store = f.open_store();
    let cancel = CancellationToken::new();
    let (control, orders) = daemon::control::channel(cancel.clone());
    let running = tokio::spawn({
        let (path, config, store, env) =
            (f.config_path.clone(), f.config(), store.clone(), f.env());
        async move { daemon::run(&path, config, store, env, orders).await }
    });
    let restarted = f.now();
    poll::until("fresh verdicts in status.json after the restart", || {
        StatusReport::read(&state_dir).is_ok_and(|r| all_checked_ok(&r, &names, restarted))
    })
    .await;
    assert_eq!(store.failing(), None);
    drop(control);
    cancel.cancel();
    running.await.unwrap().unwrap();
    drop(store);
    drop(disk);
}

/// The store alone on a real full file system: a write fails with the OS error, names the
/// database and the fix, and marks the store failing; freeing space does not heal the handle (so
/// the daemon restarts); a new handle, as the restart opens, writes again and kept what was
/// recorded before the disk filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_system_breaks_the_store_for_good_and_a_new_handle_writes_once_there_is_room() {
    use tripletex_sync::checks;
    use tripletex_sync::store::{ResultRecord, Role, Store};
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("fs"), "2m", "the full-disk store test") else {
        return;
    };
    let state = dir.path().join("fs").join("state");
    let kind = CheckKind::CustomerNumbers;
    let now = jiff::Timestamp::now();
    let record = ResultRecord::next(None, checks::not_yet_checked(kind), now);
    let store = Store::open(&state, Role::Daemon).unwrap();
    let mut early = store.batch();
    early.put_result("acme", kind, &record);
    store.commit(early).await.unwrap();

    disk.fill("filler");
    let mut round = 0;
    let err = loop {
        round += 1;
        assert!(round < 1000, "a full disk never failed a commit");
        let mut batch = store.batch();
        batch.put_result(&format!("shop{round}"), kind, &record);
        if let Err(e) = store.commit(batch).await {
            break e.to_string();
        }
    };
    let db = state.join("db").display().to_string();
    assert!(err.contains(&db), "{err}");
    assert!(
        err.contains("No space left on device (os error 28) (fix: free space on that file system)"),
        "{err}"
    );
    assert_eq!(store.failing().as_deref(), Some(err.as_str()));
    assert!(store.has_room().is_err());

    disk.resize("64m");
    store.has_room().unwrap();
    assert!(
        store.failing().is_some(),
        "room alone does not heal sled's handle"
    );
    assert!(store.commit(store.batch()).await.is_err());

    drop(store);
    let store = Store::open(&state, Role::Daemon).unwrap();
    assert_eq!(store.failing(), None);
    let mut after = store.batch();
    after.put_result("bolt", kind, &record);
    store.commit(after).await.unwrap();
    assert_eq!(store.result("acme", kind).unwrap(), Some(record));
    drop(store);
    drop(disk);
}

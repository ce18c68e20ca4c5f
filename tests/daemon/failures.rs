//! What fails in the daemon and in `check`: a panicking pass (recorded, retried, still reachable),
//! `check` beside a daemon that does not answer, an unreadable record.

use super::*;

/// Whether `boom`'s passes panic, and how many it started: the state of [`panicky`].
static BOOM_PANICS: AtomicBool = AtomicBool::new(true);
static BOOM_PASSES: AtomicU32 = AtomicU32::new(0);

/// The pass hook of [`a_panicking_shop_is_recorded_retried_and_still_reachable`]; other tests of
/// this binary run beside it, so it touches only its own shop.
fn panicky(shop: &str) {
    if shop == "boom" {
        BOOM_PASSES.fetch_add(1, Ordering::SeqCst);
        if BOOM_PANICS.load(Ordering::SeqCst) {
            panic!("injected fault in boom's pass");
        }
    }
}

fn check_of(report: &StatusReport, shop: &str) -> CheckStatus {
    report
        .shops
        .iter()
        .find(|s| s.name == shop)
        .map(|s| s.checks.get(CheckKind::CustomerNumbers).clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_shop_is_recorded_retried_and_still_reachable() {
    let captured = capture::capture_json();
    let mark = captured.mark();
    let f = Fixture::new().await;
    for (name, company) in [("boom", 1001), ("calm", 1002)] {
        f.add_shop(name, company, "");
        f.sim.add_customers(company, 1, 10, false);
    }
    let mut env = f.env();
    env.before_pass = panicky;
    let (store, control, cancel, daemon) = start_with(&f, env);
    let state_dir = store.state_dir().to_path_buf();
    poll::until("boom's failure in status.json, calm ok", || {
        StatusReport::read(&state_dir).is_ok_and(|r| {
            let boom = check_of(&r, "boom");
            boom.verdict == Verdict::Error
                && boom.pass_failed
                && boom
                    .summary
                    .contains("panicked: injected fault in boom's pass")
                && check_of(&r, "calm").verdict == Verdict::Ok
        })
    })
    .await;
    // Retried with backoff although the interval is an hour.
    poll::until("boom retried", || BOOM_PASSES.load(Ordering::SeqCst) >= 3).await;
    let logged = captured.since(mark);
    let failed = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["event"] == "pass.failed" && l["shop"] == "boom")
        .unwrap_or_else(|| panic!("no pass.failed for boom in {logged}"));
    assert_eq!(failed["level"], "ERROR");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("injected fault in boom's pass")),
        "{failed}"
    );

    // `check` beside the daemon: the failure is named at once, not waited out.
    f.clock.advance(Duration::from_secs(60));
    let asked = f.now();
    control.send(Control::PassNow);
    let err = daemon::await_pass(
        &state_dir,
        &["boom", "calm"],
        asked,
        Duration::from_secs(20),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, daemon::AskError::PassFailed(_)), "{err:?}");
    assert!(
        text.contains("boom: error: could not check customer numbers: the pass failed: panicked: injected fault"),
        "{text}"
    );
    assert!(!text.contains("calm"), "{text}");

    // Fixed: pass-now still reaches the shop, and its verdict recovers.
    BOOM_PANICS.store(false, Ordering::SeqCst);
    f.clock.advance(Duration::from_secs(60));
    let asked = f.now();
    control.send(Control::PassNow);
    let report = daemon::await_pass(
        &state_dir,
        &["boom", "calm"],
        asked,
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let boom = check_of(&report, "boom");
    assert_eq!((boom.verdict, boom.pass_failed), (Verdict::Ok, false));
    cancel.cancel();
    daemon.await.unwrap().unwrap();
    spec::assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn check_beside_the_daemon_gives_up_in_bounded_time_naming_the_shop() {
    let f = Fixture::new().await;
    f.add_shop("stuck", 1001, "");
    let config = f.config();
    std::fs::create_dir_all(&config.state_dir).unwrap();
    // What a daemon that never gets to pass `stuck` leaves in status.json.
    StatusReport::collect(None, &config, f.now())
        .unwrap()
        .write(&config.state_dir)
        .unwrap();
    let err = daemon::await_pass(
        &config.state_dir,
        &["stuck"],
        f.now(),
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, daemon::AskError::TimedOut { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("the daemon did not finish a pass of stuck within 300ms; latest: stuck: "),
        "{text}"
    );

    // A shop the daemon does not list is named too.
    let err = daemon::await_pass(
        &config.state_dir,
        &["stuck", "newer"],
        f.now(),
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the running daemon does not check newer "),
        "{err}"
    );
}

#[tokio::test]
async fn a_panicking_one_shot_pass_is_recorded_and_left_out() {
    let f = Fixture::new().await;
    for (name, company) in [("bang", 1001), ("fine", 1002)] {
        f.add_shop(name, company, "");
        f.sim.add_customers(company, 1, 10, false);
    }
    let mut env = f.env();
    env.before_pass = |shop| assert_ne!(shop, "bang", "injected fault in bang's pass");
    let store = f.open_store();
    let reports = daemon::check_once(
        f.config(),
        store.clone(),
        &env,
        &[],
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let passed: Vec<&str> = reports.iter().map(|r| r.shop.as_str()).collect();
    assert_eq!(
        passed,
        ["fine"],
        "`check` sees one pass missing and exits 2"
    );
    let bang = store
        .result("bang", CheckKind::CustomerNumbers)
        .unwrap()
        .unwrap();
    assert!(bang.pass_failed);
    assert!(
        bang.outcome
            .summary
            .contains("injected fault in bang's pass"),
        "{}",
        bang.outcome.summary
    );
}

#[tokio::test]
async fn an_unreadable_record_fails_one_pass_then_is_rewritten() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 10, false);
    let state_dir = f.config().state_dir;
    drop(f.open_store());
    {
        let db = sled::open(state_dir.join("db")).unwrap();
        db.insert("shop/acme/result/customer_numbers", b"{not json".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    let store = f.open_store();
    let env = f.env();
    let once = || {
        daemon::check_once(
            f.config(),
            store.clone(),
            &env,
            &[],
            CancellationToken::new(),
        )
    };
    assert!(once().await.unwrap().is_empty(), "the pass failed");
    let failed = store
        .result("acme", CheckKind::CustomerNumbers)
        .unwrap()
        .unwrap();
    assert!(failed.pass_failed && failed.outcome.summary.contains("unreadable"));
    assert_eq!(once().await.unwrap().len(), 1, "the next pass is recorded");
    assert_eq!(verdict(&store, "acme"), Some(Verdict::Ok));
}

//! The daemon in-process: passes, reload of shops.d, pass-now (every shop, or one), the start-up
//! wait for a one-shot holder of the database, shutdown (sessions deleted and recorded
//! `revoked`); what fails (`failures`): a panicking shop, what `check` beside it waits for, an
//! unreadable record.

mod failures;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tripletex_sim::{Fault, FaultKind};
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::daemon::{self, Control, Controller};
use tripletex_sync::status::{CheckStatus, StatusReport};
use tripletex_sync::store::{SessionState, Store};
use tripletex_sync_fixture::daemon::{DaemonTask, Fixture, MAIN, write_private};
use tripletex_sync_fixture::{capture, poll, spec};

/// Starts the daemon in-process on the fixture's config; returns its store, control channel,
/// cancellation token and task.
fn start(f: &Fixture) -> (Arc<Store>, Controller, CancellationToken, DaemonTask) {
    start_with(f, f.env())
}

fn start_with(
    f: &Fixture,
    env: daemon::Environment,
) -> (Arc<Store>, Controller, CancellationToken, DaemonTask) {
    let d = f.start_daemon_in(env, tracing::Span::none());
    (d.store, d.control, d.cancel, d.task)
}

fn verdict(store: &Store, shop: &str) -> Option<Verdict> {
    store
        .result(shop, CheckKind::CustomerNumbers)
        .unwrap()
        .map(|r| r.verdict())
}

fn mints(f: &Fixture) -> usize {
    f.sim
        .request_log()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(":create") && r.status == 201)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_shops_keeps_sessions_refuses_bad_files_and_shutdown_is_prompt() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 100, false);
    let (store, control, cancel, daemon) = start(&f);
    poll::until("acme's first pass", || {
        verdict(&store, "acme") == Some(Verdict::Ok)
    })
    .await;
    poll::until("status.json", || {
        StatusReport::read(store.state_dir()).is_ok_and(|r| r.shops.len() == 1)
    })
    .await;
    assert_eq!(mints(&f), 1);

    // A new shop whose key Tripletex does not know, then its key fixed: reload picks up both.
    f.add_shop("bolt", 1002, "");
    f.sim.add_customers(1002, 1, 10, false);
    f.sim.add_customers(1002, 10_000, 3, false);
    write_private(&f.path("bolt.token"), "not-the-key");
    control.send(Control::Reload);
    poll::until("bolt rejected", || {
        store
            .session("bolt")
            .unwrap()
            .is_some_and(|s| s.state == SessionState::KeyRejected)
    })
    .await;
    write_private(&f.path("bolt.token"), "employee-token-bolt");
    control.send(Control::Reload);
    poll::until("bolt's conflict", || {
        verdict(&store, "bolt") == Some(Verdict::Conflict)
    })
    .await;
    assert_eq!(
        mints(&f),
        2,
        "acme kept its session across reloads; bolt minted once"
    );

    // A broken file is refused as a whole: a good new shop beside it does not start either.
    f.add_shop("carl", 1003, "");
    f.sim.add_customers(1003, 1, 10, false);
    std::fs::write(
        f.path("shops.d/broken.toml"),
        "employee_token_file = \"../x\"\nbogus = 1\n",
    )
    .unwrap();
    let log = capture::capture_json();
    let mark = log.mark();
    control.send(Control::Reload);
    // Operators alert on the event; its error is the one line `validate` would print.
    let refusal = || {
        log.since(mark)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "config.reload_failed")
    };
    poll::until("config.reload_failed", || refusal().is_some()).await;
    let event = refusal().unwrap();
    assert_eq!(event["level"], "ERROR", "{event}");
    let error = event["error"].as_str().unwrap();
    let broken = f.path("shops.d/broken.toml").display().to_string();
    assert!(
        error.starts_with(&format!("{broken}:2:1: ")) && error.contains("unknown field `bogus`"),
        "{error}"
    );
    assert!(
        error.ends_with(')') && error.contains(" (fix: ") && !error.contains('\n'),
        "{error}"
    );

    // Pass now (handled after the reload: orders are taken in turn): both running shops pass
    // again although the interval is an hour, and carl is still not running.
    let before = store
        .result("acme", CheckKind::CustomerNumbers)
        .unwrap()
        .unwrap()
        .checked_at;
    f.clock.advance(Duration::from_secs(60));
    control.send(Control::PassNow);
    let passed_again = |shop: &str| {
        store
            .result(shop, CheckKind::CustomerNumbers)
            .unwrap()
            .is_some_and(|r| r.checked_at > before)
    };
    poll::until("a pass on request", || {
        passed_again("acme") && passed_again("bolt")
    })
    .await;
    assert_eq!(
        verdict(&store, "carl"),
        None,
        "the refused reload started nothing"
    );

    // Fixed, the next reload starts carl.
    std::fs::remove_file(f.path("shops.d/broken.toml")).unwrap();
    control.send(Control::Reload);
    poll::until("carl's first pass", || {
        verdict(&store, "carl") == Some(Verdict::Ok)
    })
    .await;
    poll::until("status.json lists all three shops", || {
        StatusReport::read(store.state_dir()).is_ok_and(|r| r.shops.len() == 3)
    })
    .await;
    assert_eq!(
        mints(&f),
        3,
        "acme and bolt kept their sessions; carl minted once"
    );

    f.stop_daemon(cancel, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_a_one_shot_holder_stops_while_waiting_and_refuses_a_daemon() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 10, false);
    let serve = |stop: &CancellationToken| {
        let (control, orders) = daemon::control::channel(stop.clone());
        let (path, config, env) = (f.config_path.clone(), f.config(), f.env());
        let task = tokio::spawn(async move { daemon::serve(&path, config, env, orders).await });
        (control, task)
    };
    let one_shot = f.open_store();
    let state_dir = one_shot.state_dir().to_path_buf();

    // Stopped while a one-shot `check` holds the database: ends without having run.
    let (control, task) = serve(&CancellationToken::new());
    control.send(Control::Stop);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops while waiting")
        .unwrap()
        .unwrap();
    assert!(StatusReport::read(&state_dir).is_err(), "nothing ran");

    // The one-shot ends: the waiting daemon takes the database and runs.
    let stop = CancellationToken::new();
    let (_control, task) = serve(&stop);
    drop(one_shot);
    poll::until("the daemon's first pass", || {
        StatusReport::read(&state_dir)
            .is_ok_and(|r| r.shops[0].checks.get(CheckKind::CustomerNumbers).verdict == Verdict::Ok)
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();

    // Another daemon is not waited for.
    let other = Store::open(&state_dir, tripletex_sync::store::Role::Daemon).unwrap();
    let (_control, task) = serve(&CancellationToken::new());
    let err = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("refused at once")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, daemon::DaemonError::Store(_)), "{err}");
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shops_trigger_passes_only_that_shop_and_stop_is_an_order_too() {
    let f = Fixture::new().await;
    for (name, company) in [("acme", 1001), ("bolt", 1002)] {
        f.add_shop(name, company, "");
        f.sim.add_customers(company, 1, 10, false);
    }
    let (store, control, cancel, daemon) = start(&f);
    let checked_at = |shop: &str| {
        store
            .result(shop, CheckKind::CustomerNumbers)
            .unwrap()
            .map(|r| r.checked_at)
    };
    poll::until("both shops' first pass", || {
        checked_at("acme").is_some() && checked_at("bolt").is_some()
    })
    .await;
    let bolt_before = checked_at("bolt");
    let acme_before = checked_at("acme");
    f.clock.advance(Duration::from_secs(60));
    // What a webhook listener holds: it can ask for a shop's pass, nothing else.
    let triggers = control.shop_triggers();
    triggers.pass_now("nobody-here");
    triggers.pass_now("acme");
    poll::until("acme's pass on its own trigger", || {
        checked_at("acme") > acme_before
    })
    .await;
    assert_eq!(checked_at("bolt"), bolt_before, "bolt was not asked");

    control.send(Control::Stop);
    assert!(cancel.is_cancelled(), "stop is the daemon's one token");
    tokio::time::timeout(Duration::from_secs(5), daemon)
        .await
        .expect("shutdown within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(f.sim.live_sessions(), 0);
    // The deleted tokens are recorded before the store closes, and status.json shows them.
    let written = StatusReport::read(store.state_dir()).unwrap();
    for shop in ["acme", "bolt"] {
        let stored = store.session(shop).unwrap().unwrap();
        assert_eq!(stored.state, SessionState::Revoked, "{shop}");
        assert_eq!(stored.expires_at, None, "{shop}");
        let shown = &written
            .shops
            .iter()
            .find(|s| s.name == shop)
            .unwrap()
            .session;
        assert_eq!(shown.state, SessionState::Revoked, "{shop}");
        assert_eq!(shown.expires_at, None, "{shop}");
    }
}

/// A stop deletes many shops' tokens at once, not one per pass gate's permit: with one pass at a
/// time and each DELETE taking half a second, 40 shops' deletes one by one would need 20 s, past
/// the stop's 3 s deadline. Every token is deleted, recorded `revoked` and shown so, and the stop
/// says so in one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_deletes_many_tokens_at_once_and_says_so_once() {
    const SHOPS: i64 = 40;
    let captured = capture::capture_json();
    let mark = captured.mark();
    let f =
        Fixture::with_main(&MAIN.replace("max_concurrent_shops = 8", "max_concurrent_shops = 1"))
            .await;
    let names: Vec<String> = (0..SHOPS)
        .map(|i| {
            let (name, company) = (format!("many{i}"), 1001 + i);
            f.add_shop(&name, company, "");
            f.sim.add_customers(company, 1, 10, false);
            name
        })
        .collect();
    let d = f.start_daemon_in(f.env(), tracing::info_span!("stop_test", case = "many"));
    let store = d.store;
    poll::until("every shop's session recorded", || {
        names.iter().all(|shop| {
            store
                .session(shop)
                .is_ok_and(|s| s.is_some_and(|s| s.state == SessionState::Valid))
        })
    })
    .await;
    // Only the stop's DELETEs are left to reach the session paths (the interval is an hour).
    f.sim.inject(Fault {
        kind: FaultKind::Delay(Duration::from_millis(500)),
        path_prefix: Some("/token/session".into()),
        employee_token: None,
        times: None,
    });
    f.stop_daemon(d.cancel, d.task).await;

    let written = StatusReport::read(store.state_dir()).unwrap();
    for shop in &names {
        assert_eq!(
            store.session(shop).unwrap().unwrap().state,
            SessionState::Revoked,
            "{shop}"
        );
        let shown = written.shops.iter().find(|s| &s.name == shop).unwrap();
        assert_eq!(shown.session.state, SessionState::Revoked, "{shop}");
        assert_eq!(shown.session.expires_at, None, "{shop}");
    }
    let logged: Vec<serde_json::Value> = captured
        .since(mark)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| {
            l["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["case"] == "many"))
        })
        .collect();
    let named = |event: &str| -> Vec<&serde_json::Value> {
        logged.iter().filter(|l| l["event"] == event).collect()
    };
    let stop = named("shutdown.sessions_revoked");
    assert_eq!(stop.len(), 1, "{logged:#?}");
    assert_eq!(stop[0]["revoked"], SHOPS, "{stop:?}");
    assert_eq!(stop[0]["unrecorded"], 0, "{stop:?}");
    assert!(named("shutdown.sessions_kept").is_empty(), "{logged:#?}");
    assert!(named("status.write_failed").is_empty(), "{logged:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_a_pass_waiting_on_the_rate_limit() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    // Tripletex's window is spent down to the reserve for an hour: every request must wait.
    f.sim.set_rate_limit(21, Duration::from_secs(3600));
    let (_store, _control, cancel, daemon) = start(&f);
    poll::until("the quota to reach the reserve", || {
        f.sim
            .request_log()
            .iter()
            .any(|r| r.rate_limit_remaining == Some(20))
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), daemon)
        .await
        .expect("shutdown within 5 s while the limiter holds")
        .unwrap()
        .unwrap();
    assert!(
        f.sim.request_log().iter().all(|r| r.status != 429),
        "no request was pushed past the reserve"
    );
    assert!(
        f.sim.request_log().iter().all(|r| r.method != "DELETE"),
        "not even the session's farewell DELETE, which would have had to wait"
    );
    assert_eq!(
        f.sim
            .request_log()
            .last()
            .and_then(|r| r.rate_limit_remaining),
        Some(20),
        "the reserve is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_retries_a_rejected_shop_at_once() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 10, false);
    f.sim.set_integrations_enabled(1001, false);
    let (store, control, cancel, daemon) = start(&f);
    poll::until("acme rejected", || {
        store
            .session("acme")
            .unwrap()
            .is_some_and(|s| s.state == SessionState::KeyRejected)
    })
    .await;
    // The operator switches the add-on on and reloads; nothing in the files changed, and the
    // next pass would be an hour away.
    f.sim.set_integrations_enabled(1001, true);
    control.send(Control::Reload);
    poll::until("acme checked after the reload", || {
        verdict(&store, "acme") == Some(Verdict::Ok)
    })
    .await;
    cancel.cancel();
    daemon.await.unwrap().unwrap();
    spec::assert_conforms(&f.sim.request_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_shops_work_at_once_than_max_concurrent_shops() {
    let f =
        Fixture::with_main(&MAIN.replace("max_concurrent_shops = 8", "max_concurrent_shops = 1"))
            .await;
    for (name, company) in [("acme", 1001), ("bolt", 1002), ("carl", 1003)] {
        f.add_shop(name, company, "");
        f.sim.add_customers(company, 1, 10, false);
    }
    // Slow customer reads widen each pass, so overlapping passes would interleave in the log.
    f.sim.inject(Fault {
        kind: FaultKind::Delay(Duration::from_millis(50)),
        path_prefix: Some("/customer".into()),
        employee_token: None,
        times: None,
    });
    let (store, _control, cancel, daemon) = start(&f);
    poll::until("every shop's first pass", || {
        ["acme", "bolt", "carl"]
            .iter()
            .all(|shop| verdict(&store, shop).is_some())
    })
    .await;
    let log = f.sim.request_log();
    cancel.cancel();
    daemon.await.unwrap().unwrap();

    // One pass at a time: each company's requests form one unbroken run. (The daemon's one
    // consumer-token read a day is gated work of its own, after some shop's pass.)
    let mut runs: Vec<i64> = log
        .iter()
        .filter(|r| r.path != "/v2/token/consumer/byToken")
        .filter_map(|r| r.company_id)
        .collect();
    runs.dedup();
    assert_eq!(runs.len(), 3, "passes overlapped: {runs:?}");
    spec::assert_conforms(&log);
}

//! What a reload does to sessions: a session is minted with the shop's key and company, the base
//! URL and the consumer token, so a reload that changes only check settings (a shop's ranges, the
//! `[checks]` table) goes on with the running session, while a new key or `company_id` mints a
//! new one and deletes the old. Told from the simulator's request log.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tripletex_sim::LoggedRequest;
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::daemon::{Control, Controller};
use tripletex_sync::store::Store;
use tripletex_sync_fixture::daemon::{DaemonTask, Fixture};
use tripletex_sync_fixture::poll;

/// Starts the daemon in-process on the fixture's config.
fn start(f: &Fixture) -> (Arc<Store>, Controller, CancellationToken, DaemonTask) {
    let d = f.start_daemon_in(f.env(), tracing::Span::none());
    (d.store, d.control, d.cancel, d.task)
}

fn session_requests(f: &Fixture, method: &str) -> Vec<LoggedRequest> {
    f.sim
        .request_log()
        .into_iter()
        .filter(|r| r.method == method && r.path.starts_with("/v2/token/session"))
        .collect()
}

fn mints(f: &Fixture) -> usize {
    session_requests(f, "POST").len()
}

fn deletes(f: &Fixture) -> usize {
    session_requests(f, "DELETE").len()
}

/// The summary of `shop`'s customer check, once there is one.
fn summary(store: &Store, shop: &str) -> Option<String> {
    store
        .result(shop, CheckKind::CustomerNumbers)
        .unwrap()
        .map(|r| r.outcome.summary)
}

/// acme's shop file with its customer range starting Tripletex's series at `tripletex_start`.
fn acme_with(f: &Fixture, token: &str, tripletex_start: u32, company_id: i64) {
    f.add_shop_file(
        "acme",
        token,
        &format!(
            "company_id = {company_id}\n[customer_numbers]\ntripletex_start = {tripletex_start}\n"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_that_change_only_check_settings_keep_the_session() {
    let f = Fixture::new().await;
    let token = f.add_shop("acme", 1001, "");
    f.add_shop("bolt", 1002, "");
    f.sim.add_customers(1001, 1, 100, false);
    f.sim.add_customers(1002, 1, 10, false);
    acme_with(&f, &token, 1000, 0);
    let (store, control, cancel, daemon) = start(&f);
    poll::until("both shops' first pass", || {
        summary(&store, "acme").is_some_and(|s| s.contains("before 1000"))
            && summary(&store, "bolt").is_some()
    })
    .await;
    assert_eq!(mints(&f), 2);

    // The churn: every change of a range minted a session and deleted the old one.
    for tripletex_start in [2000, 3000, 4000, 5000, 6000] {
        acme_with(&f, &token, tripletex_start, 0);
        control.send(Control::Reload);
        let wanted = format!("before {tripletex_start}");
        poll::until(&format!("a pass with {wanted}"), || {
            summary(&store, "acme").is_some_and(|s| s.contains(&wanted))
        })
        .await;
        let verdict = store
            .result("acme", CheckKind::CustomerNumbers)
            .unwrap()
            .unwrap()
            .verdict();
        assert_eq!(verdict, Verdict::Ok);
    }
    // A shared check setting restarts every shop: they keep their sessions too.
    let main = std::fs::read_to_string(&f.config_path).unwrap();
    std::fs::write(
        &f.config_path,
        main.replace("interval = \"1h\"", "interval = \"2h\""),
    )
    .unwrap();
    let before = store
        .result("bolt", CheckKind::CustomerNumbers)
        .unwrap()
        .unwrap()
        .checked_at;
    f.clock.advance(Duration::from_secs(60));
    control.send(Control::Reload);
    poll::until("bolt's pass after [checks] changed", || {
        store
            .result("bolt", CheckKind::CustomerNumbers)
            .unwrap()
            .is_some_and(|r| r.checked_at > before)
    })
    .await;

    assert_eq!(mints(&f), 2, "no mint for a change of check settings");
    assert_eq!(deletes(&f), 0, "no session deleted before the stop");
    assert_eq!(f.sim.live_sessions(), 2);
    f.stop_daemon(cancel, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_or_company_id_mints_and_deletes_the_old_session() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 100, false);
    let (store, control, cancel, daemon) = start(&f);
    poll::until("acme's first pass", || summary(&store, "acme").is_some()).await;
    assert_eq!(mints(&f), 1);

    // A new key of the same company (the old one stays valid in Tripletex).
    f.sim
        .add_employee_token("employee-token-acme-2", 1001, 10010);
    acme_with(&f, "employee-token-acme-2", 100_000, 0);
    control.send(Control::Reload);
    poll::until("a mint with the new key", || mints(&f) == 2).await;
    poll::until("the old session deleted", || deletes(&f) == 1).await;
    assert_eq!(f.sim.live_sessions(), 1);

    // The same key, now for company_id 1001 (its own company, spelled out).
    acme_with(&f, "employee-token-acme-2", 100_000, 1001);
    control.send(Control::Reload);
    poll::until("a mint for the new company_id", || mints(&f) == 3).await;
    poll::until("the old session deleted", || deletes(&f) == 2).await;
    poll::until("acme's session valid", || {
        store
            .session("acme")
            .unwrap()
            .is_some_and(|s| s.company_id == Some(1001) && s.detail.is_none())
    })
    .await;
    assert_eq!(f.sim.live_sessions(), 1);
    f.stop_daemon(cancel, daemon).await;
}

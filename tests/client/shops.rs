//! Per-shop isolation through passes: a revoked key, a company without the Integrations add-on,
//! a rejected consumer token and a key without customer access.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::pass::PassReport;
use tripletex_sync::secrets::SecretString;
use tripletex_sync::store::{SessionState, Store};
use tripletex_sync::tripletex::{ClientSettings, ShopClient, Tripletex, TripletexError};

use crate::{hits, ping};
use tripletex_sync_fixture::daemon::{self, Fixture};
use tripletex_sync_fixture::spec::assert_conforms;

const REMEDY: &str = "Employee › API access";

fn assert_key_rejected(report: &PassReport) {
    assert_rejected_with(report, REMEDY);
}

/// Key rejected, with `remedy` in the session's detail and in every check's summary.
fn assert_rejected_with(report: &PassReport, remedy: &str) {
    assert_eq!(
        report.session.state,
        SessionState::KeyRejected,
        "{report:#?}"
    );
    assert!(!report.consumer_rejected);
    let detail = report.session.detail.as_deref().unwrap_or_default();
    assert!(detail.contains(remedy), "{detail}");
    assert_eq!(report.outcomes().len(), 2);
    for outcome in &report.outcomes() {
        assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
        assert!(outcome.summary.contains(remedy), "{}", outcome.summary);
    }
}

fn assert_healthy(report: &PassReport) {
    assert_eq!(report.session.state, SessionState::Valid, "{report:#?}");
    assert!(report.session.expires_at.is_some());
    assert_eq!(report.outcomes().len(), 2);
    assert!(
        report.outcomes().iter().all(|o| o.verdict == Verdict::Ok),
        "{report:#?}"
    );
}

/// Two shops with a few customers and invoices each.
async fn two_shops() -> (Fixture, String, String) {
    let f = Fixture::new().await;
    let a = f.add_shop("acme", 1001, "");
    let b = f.add_shop("bolt", 1002, "");
    for company in [1001, 1002] {
        f.sim.add_customers(company, 1, 5, false);
        f.sim
            .add_invoices(company, 6000, 3, jiff::civil::Date::constant(2026, 3, 1), 1);
    }
    (f, a, b)
}

#[tokio::test]
async fn a_revoked_key_isolates_its_shop() {
    let (f, acme_token, _) = two_shops().await;
    f.sim.revoke_employee_token(&acme_token);
    let (store, api, cancel) = (f.open_store(), f.api(), CancellationToken::new());
    let acme = f.client(&api, "acme", &cancel);
    let bolt = f.client(&api, "bolt", &cancel);
    assert_key_rejected(&f.pass(&store, &acme, 1).await);
    assert_healthy(&f.pass(&store, &bolt, 1).await);
    // Recorded, not just reported.
    assert_eq!(
        store.session("acme").unwrap().unwrap().state,
        SessionState::KeyRejected
    );
    assert_eq!(
        store.session("bolt").unwrap().unwrap().state,
        SessionState::Valid
    );
    assert_conforms(&f.sim.request_log());
}

/// Two healthy passes each, then `acme`'s key is revoked.
async fn revoked_after_a_healthy_pass() -> (Fixture, Arc<Store>, ShopClient, ShopClient) {
    let (f, acme_token, _) = two_shops().await;
    let (store, api, cancel) = (f.open_store(), f.api(), CancellationToken::new());
    let acme = f.client(&api, "acme", &cancel);
    let bolt = f.client(&api, "bolt", &cancel);
    assert_healthy(&f.pass(&store, &acme, 1).await);
    assert_healthy(&f.pass(&store, &bolt, 1).await);
    f.sim.revoke_employee_token(&acme_token);
    f.clock.advance(std::time::Duration::from_secs(3600));
    (f, store, acme, bolt)
}

#[tokio::test]
async fn a_key_revoked_between_passes_fails_the_checks_and_then_the_session() {
    let (f, store, acme, bolt) = revoked_after_a_healthy_pass().await;
    // The live token only turns out dead during the sync: the checks fail with the remedy and
    // the client stops reporting (and sending) the refused token.
    let report = f.pass(&store, &acme, 2).await;
    for outcome in &report.outcomes() {
        assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
        assert!(outcome.summary.contains(REMEDY), "{}", outcome.summary);
    }
    assert_ne!(report.session.state, SessionState::Valid, "{report:#?}");
    assert!(acme.session_info().is_none());
    assert_healthy(&f.pass(&store, &bolt, 2).await);
    assert_key_rejected(&f.pass(&store, &acme, 3).await);
    assert_healthy(&f.pass(&store, &bolt, 3).await);
    assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn a_key_revoked_between_passes_is_key_rejected_on_the_very_next_pass() {
    let (f, store, acme, _) = revoked_after_a_healthy_pass().await;
    assert_key_rejected(&f.pass(&store, &acme, 2).await);
}

#[tokio::test]
async fn integrations_add_on_off_is_key_rejected() {
    let (f, _, _) = two_shops().await;
    f.sim.set_integrations_enabled(1001, false);
    let (store, api, cancel) = (f.open_store(), f.api(), CancellationToken::new());
    let acme = f.client(&api, "acme", &cancel);
    let bolt = f.client(&api, "bolt", &cancel);
    let report = f.pass(&store, &acme, 1).await;
    // The key is fine: the remedy is the add-on, not a new key.
    assert_rejected_with(&report, "switch on the company's Integrations add-on");
    assert!(!report.session.detail.unwrap().contains(REMEDY));
    assert_healthy(&f.pass(&store, &bolt, 1).await);
    assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn an_unknown_consumer_token_is_reported_as_such() {
    let (f, _, _) = two_shops().await;
    let config = f.config();
    let mut settings = ClientSettings::from(&config);
    daemon::fast(&mut settings);
    let api = Tripletex::new(
        &config.tripletex.base_url,
        SecretString::from("not-a-consumer-token-the-sim-knows".to_owned()),
        f.clock.clone(),
        settings,
    )
    .unwrap();
    let store = f.open_store();
    let acme = f.client(&api, "acme", &CancellationToken::new());
    let report = f.pass(&store, &acme, 1).await;
    assert!(report.consumer_rejected, "{report:#?}");
    assert_ne!(report.session.state, SessionState::KeyRejected);
    assert!(
        report
            .outcomes()
            .iter()
            .all(|o| o.verdict == Verdict::Error)
    );
    let err = acme.connect().await.unwrap_err();
    assert!(
        matches!(err, TripletexError::ConsumerRejected { status: 422, .. }),
        "{err:?}"
    );
    assert!(err.remedy().unwrap().contains("consumer token"));
    assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn no_customer_access_is_forbidden_with_a_remedy_and_spares_invoices() {
    let (f, acme_token, _) = two_shops().await;
    f.sim.deny_access(&acme_token, "/customer");
    let (store, api, cancel) = (f.open_store(), f.api(), CancellationToken::new());
    let acme = f.client(&api, "acme", &cancel);

    let err = ping(&acme).await.unwrap_err();
    assert!(matches!(&err, TripletexError::Forbidden { .. }), "{err:?}");
    let remedy = err.remedy().unwrap();
    assert!(
        remedy.contains("customers") && remedy.contains(REMEDY),
        "{remedy}"
    );

    let report = f.pass(&store, &acme, 1).await;
    assert_eq!(report.session.state, SessionState::Valid, "{report:#?}");
    let customers = &report.outcomes()[0];
    assert_eq!(customers.kind, CheckKind::CustomerNumbers);
    assert_eq!(customers.verdict, Verdict::Error);
    assert!(
        customers.summary.contains("customers"),
        "{}",
        customers.summary
    );
    assert!(customers.summary.contains(REMEDY), "{}", customers.summary);
    let invoices = &report.outcomes()[1];
    assert_eq!(invoices.kind, CheckKind::InvoiceNumbers);
    assert_eq!(invoices.verdict, Verdict::Ok, "{invoices:#?}");
    // Spared means read in full: the three invoices 6000..=6002 of `two_shops`.
    assert_eq!(invoices.evidence.numbers_in_use, 3, "{invoices:#?}");
    assert_eq!(
        invoices
            .evidence
            .shop_run
            .as_ref()
            .map(|r| (r.first, r.last)),
        Some((6000, 6002)),
        "{invoices:#?}"
    );
    let log = f.sim.request_log();
    assert!(
        hits(&log, "GET", "/invoice")
            .iter()
            .all(|r| r.status == 200)
    );
    assert!(
        hits(&log, "GET", "/customer")
            .iter()
            .all(|r| r.status == 403)
    );
    assert_conforms(&log);
}

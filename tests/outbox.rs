//! The daemon tells the platform (`[notify]`) through its outbox: every verdict change it
//! records (a shop's first verdicts too) and a rejected key arrive signed the Standard Webhooks
//! way, in order per shop, with the same `webhook-id` on every retry, valid for the published
//! schema; status.json shows the backlog. The receiver here fails the first attempts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::daemon::Control;
use tripletex_sync::status::StatusReport;
use tripletex_sync_fixture::daemon::{Fixture, MAIN, write_private};
use tripletex_sync_fixture::receiver::{Callback, Receiver};
use tripletex_sync_fixture::{platform, poll};

/// Checks the signature and the schema, and that no employee token leaked into the body.
fn assert_signed_and_valid(hook: &Callback, validator: &jsonschema::Validator) {
    platform::assert_signed(hook);
    platform::assert_fits_schema(validator, &hook.body);
    assert!(!String::from_utf8_lossy(&hook.raw).contains("employee-token"));
}

/// A fixture whose daemon notifies `receiver` (`extra`: more `[notify]` keys).
async fn notifying(receiver: &Receiver, extra: &str) -> Fixture {
    let table = platform::notify_table(&receiver.url("/hooks/tripletex-sync"), extra);
    let f = Fixture::with_main(&format!("{MAIN}{table}")).await;
    write_private(&f.path("notify-secret"), platform::SECRET);
    f
}

/// The messages as the platform keeps them: one per `webhook-id`, in order of first arrival.
fn distinct(received: &[Callback]) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    received
        .iter()
        .filter(|h| seen.insert(h.headers["webhook-id"].to_str().unwrap().to_owned()))
        .map(|h| h.body.clone())
        .collect()
}

/// `(type, shop, check, verdict, was)` of each message.
fn what(body: &Value) -> (String, String, String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let data = &body["data"];
    (
        s(&body["type"]),
        s(&data["shop"]),
        s(&data["check"]),
        s(&data["verdict"]),
        s(&data["was"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_changes_reach_the_platform_signed_in_order_with_stable_ids() {
    let receiver = Receiver::start().await;
    // The platform fails the first three attempts (a 500, a 503 without Retry-After, a 500).
    receiver.script(&[500, 503, 500]);
    receiver.answer(204);
    let f = notifying(&receiver, "retry_min = \"1s\"\nretry_max = \"1s\"").await;
    f.add_shop("fine", 501, "");
    f.add_shop("clash", 502, "");
    f.sim.add_customers(502, 1, 50, false);
    f.sim.add_customers(502, 10_000, 3, false);
    let revoked = f.add_shop("gone", 503, "");
    f.sim.revoke_employee_token(&revoked);

    let d = f.start_daemon_in(f.env(), tracing::Span::none());
    let validator = platform::schema();
    let first = |received: &[Callback]| distinct(received).len() >= 7;
    poll::until("the first verdicts and the key rejection delivered", || {
        let received = receiver.received();
        first(&received) && d.store.outbox_pending_count() == 0
    })
    .await;
    let received = receiver.received();
    for hook in &received {
        assert_signed_and_valid(hook, &validator);
    }
    // The failed attempts came again under their ids: a retry is the same message.
    let ids: Vec<&str> = received
        .iter()
        .map(|h| h.headers["webhook-id"].to_str().unwrap())
        .collect();
    for failed in &ids[..3] {
        assert!(
            ids[3..].contains(failed),
            "{failed} was not retried: {ids:?}"
        );
    }
    let messages: Vec<_> = distinct(&received).iter().map(what).collect();
    let per_shop = |shop: &str| -> Vec<(String, String, String, String)> {
        messages
            .iter()
            .filter(|m| m.1 == shop)
            .map(|m| (m.0.clone(), m.2.clone(), m.3.clone(), m.4.clone()))
            .collect()
    };
    let verdict = |check: &str, verdict: &str| {
        (
            "check.verdict".to_owned(),
            check.to_owned(),
            verdict.to_owned(),
            "-".to_owned(),
        )
    };
    // A first verdict has `was: null`; a shop's messages arrive in the order recorded.
    assert_eq!(
        per_shop("fine"),
        [
            verdict("customer_numbers", "ok"),
            verdict("invoice_numbers", "ok")
        ]
    );
    assert_eq!(
        per_shop("clash"),
        [
            verdict("customer_numbers", "conflict"),
            verdict("invoice_numbers", "ok")
        ]
    );
    let gone = per_shop("gone");
    assert_eq!(gone.len(), 3, "{gone:?}");
    assert_eq!(gone[2].0, "session.key_rejected", "{gone:?}");
    assert_eq!(messages.len(), 7, "{messages:?}");

    // A change later: `fine` runs into Tripletex's series; its next pass sends that, `was: ok`.
    f.sim.add_customers(501, 1, 20, false);
    f.sim.add_customers(501, 10_000, 2, false);
    d.control.send(Control::PassNowFor("fine".into()));
    poll::until("fine's conflict delivered", || {
        distinct(&receiver.received()).len() == 8 && d.store.outbox_pending_count() == 0
    })
    .await;
    let last = what(distinct(&receiver.received()).last().unwrap());
    let expected = (
        "check.verdict",
        "fine",
        "customer_numbers",
        "conflict",
        "ok",
    );
    assert_eq!(
        (
            last.0.as_str(),
            last.1.as_str(),
            last.2.as_str(),
            last.3.as_str(),
            last.4.as_str()
        ),
        expected
    );
    let recorded = d.store.result("fine", CheckKind::CustomerNumbers).unwrap();
    assert_eq!(recorded.unwrap().verdict(), Verdict::Conflict);

    // status.json carries the backlog: nothing pending, everything delivered, the last error.
    let state = f.path("state");
    let backlog = poll::until_some("status.json shows the delivered backlog", || {
        let notify = StatusReport::read(&state).ok()?.notify?;
        (notify.delivered == 8).then_some(notify)
    })
    .await;
    assert_eq!((backlog.pending, backlog.dead), (0, 0));
    let last_error = backlog.last_error.unwrap();
    assert!(last_error.starts_with("refused: 50"), "{last_error}");
    f.stop_daemon(d.cancel, d.task).await;
    let counts: BTreeMap<String, usize> = messages.iter().fold(BTreeMap::new(), |mut counts, m| {
        *counts.entry(m.0.clone()).or_default() += 1;
        counts
    });
    assert_eq!(counts["check.verdict"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_token_close_to_expiry_is_read_once_a_day_logged_measured_and_told() {
    let receiver = Receiver::start().await;
    let f = notifying(&receiver, "").await;
    let today = tripletex_sync::clock::oslo_date(f.now());
    let expires = today.checked_add(jiff::Span::new().days(5)).unwrap();
    f.sim.set_consumer_token_expiry(
        tripletex_sync_fixture::daemon::FIXTURE_CONSUMER,
        Some(expires),
    );
    f.add_shop("fine", 501, "");
    f.add_shop("other", 502, "");
    let env = f.env();
    let metrics = env.metrics.clone();
    let d = f.start_daemon_in(env, tracing::Span::none());
    let told = poll::until_some("consumer_token.expiring told", || {
        distinct(&receiver.received())
            .into_iter()
            .find(|m| m["type"] == "consumer_token.expiring")
    })
    .await;
    let expires_at = tripletex_sync::clock::oslo_midnight(expires);
    assert_eq!(told["data"]["days_left"], 5);
    assert_eq!(told["data"]["expires_at"], expires_at.to_string());
    assert_signed_and_valid(
        receiver
            .received()
            .iter()
            .find(|h| h.body["type"] == "consumer_token.expiring")
            .unwrap(),
        &platform::schema(),
    );
    let series = format!(
        "tripletex_sync_consumer_token_expiry_timestamp_seconds {}",
        expires_at.as_second()
    );
    assert!(metrics.prometheus_text().contains(&series), "{series}");
    // Both shops pass again: the expiry is not read again the same day.
    d.control.send(Control::PassNow);
    poll::until("both shops passed twice", || {
        let customers = f
            .sim
            .request_log()
            .iter()
            .filter(|r| r.path == "/v2/customer")
            .count();
        customers >= 4
    })
    .await;
    let reads = f
        .sim
        .request_log()
        .iter()
        .filter(|r| r.path == "/v2/token/consumer/byToken")
        .count();
    assert_eq!(reads, 1);
    f.stop_daemon(d.cancel, d.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_consumer_token_is_told_once_beside_the_shops_first_verdicts() {
    let receiver = Receiver::start().await;
    let f = notifying(&receiver, "").await;
    write_private(
        &f.path("consumer-token"),
        "a-consumer-token-tripletex-never-issued",
    );
    f.add_shop("fine", 501, "");
    f.add_shop("other", 502, "");
    let d = f.start_daemon_in(f.env(), tracing::Span::none());
    poll::until("the rejection and both shops' first verdicts told", || {
        distinct(&receiver.received()).len() >= 5 && d.store.outbox_pending_count() == 0
    })
    .await;
    let messages: Vec<Value> = distinct(&receiver.received());
    let rejected: Vec<&Value> = messages
        .iter()
        .filter(|m| m["type"] == "consumer_token.rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{messages:#?}");
    assert!(
        rejected[0]["data"]["remedy"]
            .as_str()
            .unwrap()
            .contains("consumer_token")
    );
    assert!(
        !serde_json::to_string(&messages)
            .unwrap()
            .contains("never-issued")
    );
    d.control.send(Control::PassNow);
    poll::until("both shops passed again", || {
        f.sim
            .request_log()
            .iter()
            .filter(|r| r.path == "/v2/token/session/:create")
            .count()
            >= 4
    })
    .await;
    f.stop_daemon(d.cancel, d.task).await;
    let again = distinct(&receiver.received())
        .iter()
        .filter(|m| m["type"] == "consumer_token.rejected")
        .count();
    assert_eq!(again, 1, "told once while it stays rejected");
}

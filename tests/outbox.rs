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
use tripletex_sync_fixture::poll;
use tripletex_sync_fixture::receiver::{Callback, Receiver};

const SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/notify/message.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// Checks the signature the way a Standard Webhooks library computes it, and the schema.
fn assert_signed_and_valid(hook: &Callback, validator: &jsonschema::Validator) {
    let header = |name: &str| hook.headers[name].to_str().unwrap().to_owned();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let expected = standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .sign(&id, timestamp.parse().unwrap(), &hook.raw)
        .unwrap();
    assert_eq!(header("webhook-signature"), expected, "{}", hook.body);
    let problems: Vec<String> = validator
        .iter_errors(&hook.body)
        .map(|e| e.to_string())
        .collect();
    assert!(problems.is_empty(), "{problems:?}: {}", hook.body);
    assert!(!String::from_utf8_lossy(&hook.raw).contains("employee-token"));
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
    let main = format!(
        "{MAIN}\n[notify]\nurl = \"{}\"\nsecret_file = \"notify-secret\"\nretry_min = \"1s\"\nretry_max = \"1s\"\n",
        receiver.url("/hooks/tripletex-sync")
    );
    let f = Fixture::with_main(&main).await;
    write_private(&f.path("notify-secret"), SECRET);
    f.add_shop("fine", 501, "");
    f.add_shop("clash", 502, "");
    f.sim.add_customers(502, 1, 50, false);
    f.sim.add_customers(502, 10_000, 3, false);
    let revoked = f.add_shop("gone", 503, "");
    f.sim.revoke_employee_token(&revoked);

    let d = f.start_daemon_in(f.env(), tracing::Span::none());
    let validator = schema();
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

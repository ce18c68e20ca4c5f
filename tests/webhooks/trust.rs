//! Push that raises no false alarm (issue 15): a replayed or reordered callback never changes a
//! verdict (versions; a delete is final), a history of seconds never forecasts, a callback that
//! cannot be applied is answered 200 and brings the next pass forward, a callback of a
//! subscription that is not the shop's or with a wrong signature is refused, and a callback runs
//! under the pass driver: a panic in it is caught and recorded like a failed pass.

use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use tripletex_sim::DeliveryOutcome;

use super::*;

#[tokio::test]
async fn a_replayed_or_reordered_callback_changes_no_verdict() {
    let f = fixture().await;
    let config = f.config();
    let shop = config.shop("acme").unwrap();
    let store = f.open_store();
    let cancel = CancellationToken::new();
    let client = f.client(&f.api(), "acme", &cancel);
    let settings = PassSettings::new(&config);
    let clock: SharedClock = f.clock.clone();
    f.pass(&store, &client, 1).await;
    f.sim.clear_request_log();
    let kind = CheckKind::CustomerNumbers;
    let apply = |change: Change| {
        let (shop, store, settings, clock) = (shop, &store, &settings, &clock);
        async move {
            apply::apply((kind, &change), shop, store, settings, clock)
                .await
                .unwrap()
        }
    };
    let verdict = || store.result("acme", kind).unwrap().unwrap().verdict();
    let history = store.history("acme", kind).unwrap();

    // Created inside the shop's range, then renumbered out of it.
    assert!(apply(customer(900, 20001, 0)).await.is_some());
    assert_eq!(verdict(), Verdict::Conflict);
    assert!(apply(customer(900, 299, 1)).await.is_some());
    assert_eq!(verdict(), Verdict::Ok);
    // The create again (a replay), and an older version after the newer (a reorder).
    for stale in [customer(900, 20001, 0), customer(900, 20001, 1)] {
        assert!(apply(stale).await.is_none());
        assert_eq!(verdict(), Verdict::Ok);
    }
    // Deleted; then a stale create, and even a "newer" one: a deleted id stays deleted.
    assert!(apply(Change::Delete(900)).await.is_some());
    assert!(apply(Change::Delete(900)).await.is_none(), "a delete again");
    for late in [customer(900, 20001, 0), customer(900, 20001, 7)] {
        assert!(apply(late).await.is_none());
        assert_eq!(verdict(), Verdict::Ok);
    }
    // A delete that overtakes its create: the create, arriving after, changes nothing.
    assert!(
        apply(Change::Delete(901)).await.is_none(),
        "no number changed"
    );
    assert!(apply(customer(901, 20002, 0)).await.is_none());
    assert_eq!(verdict(), Verdict::Ok);
    let mirror = store.mirror("acme", kind).unwrap();
    let deleted: Vec<_> = mirror
        .iter()
        .filter(|(_, e)| e.version == Version::Deleted)
        .map(|(id, e)| (*id, e.number))
        .collect();
    assert_eq!(deleted, [(900, None), (901, None)]);
    // The shop's own run (1–5) never moved: callbacks record through the same throttle as a
    // pass, so none of them added a history point for the forecast.
    assert_eq!(store.history("acme", kind).unwrap(), history);
    assert!(f.sim.request_log().is_empty(), "{:?}", f.sim.request_log());
}

/// The fault probe's scenario in the daemon: 20001 created (conflict), renumbered to 299 seconds
/// later (ok, and no forecast from seconds of callbacks), then Tripletex delivers the create
/// again, and an older version arrives after the newer: still ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_a_cleared_conflict_cleared_whatever_is_replayed() {
    let f = fixture().await;
    let Started {
        store,
        control,
        cancel,
        task: daemon,
        log,
    } = start_daemon(&f).await;
    let receiver = control.listening(|l| l.webhooks.is_some()).await;
    let receiver = format!("http://{}", receiver.webhooks.unwrap());
    let keys = keys(&f.config());
    poll::until("acme's subscriptions", || ours(&f, &keys).len() == 4).await;
    let result = || acme_result(&store);
    let recorded = |verdict: Verdict| result().is_some_and(|r| r.verdict() == verdict);
    poll::until("acme ok", || recorded(Verdict::Ok)).await;

    let id = f.sim.add_customer(COMPANY, 20001, false);
    poll::until("the conflict", || recorded(Verdict::Conflict)).await;
    f.clock.advance(Duration::from_secs(7));
    f.sim.set_customer_number(COMPANY, id, 299);
    poll::until("cleared", || recorded(Verdict::Ok)).await;
    let cleared = result().unwrap();
    assert!(
        cleared.outcome.summary.contains("no forecast yet"),
        "{}",
        cleared.outcome.summary
    );

    // Tripletex delivers the create again: same body, same idempotency-key.
    let create = f
        .sim
        .webhook_deliveries()
        .iter()
        .position(|d| d.event == "customer.create" && d.object_id == id)
        .expect("the create was delivered");
    assert!(f.sim.redeliver_webhook(create));
    f.sim.deliveries_idle().await;
    // And a delivery of the old version under a key of its own (a reorder), straight to the
    // receiver; the shop task has taken it once status.json shows its arrival.
    let subscription = f.sim.webhook_deliveries()[create].subscription_id;
    let old = serde_json::json!({"subscriptionId": subscription, "event": "customer.create",
        "id": id, "value": {"id": id, "version": 0, "customerNumber": 20001, "isInactive": false}});
    f.clock.advance(Duration::from_secs(1));
    let status = post_to(&receiver, &keys, &old, "a-key-of-its-own", None).await;
    assert_eq!(status, 200);
    let arrived = || acme_push(&store).is_some_and(|p| p.last_callback_at == Some(f.now()));
    poll::until("the old version's arrival", arrived).await;
    assert_eq!(result().unwrap(), cleared, "nothing recorded again");
    let conflicts = log
        .events("check.verdict")
        .iter()
        .filter(|v| v["verdict"] == "conflict")
        .count();
    assert_eq!(conflicts, 1, "the one real conflict only");

    cancel.cancel();
    daemon.await.unwrap().unwrap();
    spec::assert_conforms(&f.sim.request_log());
}

/// POSTs `body` as a callback for acme to the receiver at `base` (`http://127.0.0.1:PORT`), with
/// the auth header, `key` as the idempotency-key and `signature` if given; the status.
async fn post_to(
    base: &str,
    keys: &Keys,
    body: &serde_json::Value,
    key: &str,
    signature: Option<&str>,
) -> u16 {
    let token = keys
        .target_url("acme")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let mut request = reqwest::Client::new()
        .post(format!("{base}/{token}"))
        .header(AUTH_HEADER, keys.auth_value("acme").expose_secret())
        .header("idempotency-key", key)
        .body(body.to_string());
    if let Some(signature) = signature {
        request = request.header("x-request-signature", signature);
    }
    request.send().await.unwrap().status().as_u16()
}

/// `base64(HmacSHA512(key + "&" + body))` under acme's shared secret, as Tripletex signs.
fn signature(keys: &Keys, key: &str, body: &serde_json::Value) -> String {
    use aws_lc_rs::hmac;
    let secret = keys.hmac_secret("acme");
    let key_bytes = hmac::Key::new(hmac::HMAC_SHA512, secret.expose_secret().as_bytes());
    let signed = format!("{key}&{body}");
    let tag = hmac::sign(&key_bytes, signed.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

#[tokio::test]
async fn the_receiver_checks_subscription_event_and_signature() {
    let f = fixture().await;
    let config = f.config();
    let keys = keys(&config);
    let cancel = CancellationToken::new();
    let subscribed = Subscribed::default();
    let (receiver, mut rx) = receiver_with(&config, &keys, subscribed.clone(), &cancel).await;
    let base = format!("http://{}", receiver.addr());
    let callback = |subscription: i64, event: &str| {
        serde_json::json!({"subscriptionId": subscription, "event": event, "id": 5,
            "value": {"id": 5, "version": 0, "customerNumber": 10, "isInactive": false}})
    };
    // Before the shop's first reconcile nothing is known: the auth header decides.
    assert_eq!(
        post_to(&base, &keys, &callback(99, "customer.create"), "k0", None).await,
        200
    );
    assert!(rx.try_recv().is_ok());

    subscribed.set(
        "acme",
        [(11, "customer.create"), (12, "customer.update")].into(),
    );
    let cases = [
        (callback(13, "customer.create"), "k1", 400),
        (callback(11, "customer.update"), "k2", 400),
        (callback(11, "customer.create"), "k3", 200),
        (callback(12, "customer.update"), "k4", 200),
    ];
    for (body, key, wanted) in &cases {
        assert_eq!(
            post_to(&base, &keys, body, key, None).await,
            *wanted,
            "{key}"
        );
    }
    assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok() && rx.try_recv().is_err());

    // Signed: a right signature passes, a wrong one is refused; unsigned passes.
    let body = callback(11, "customer.create");
    let right = signature(&keys, "k5", &body);
    let wrong = signature(&keys, "another-key", &body);
    assert_eq!(post_to(&base, &keys, &body, "k5", Some(&wrong)).await, 401);
    assert_eq!(
        post_to(&base, &keys, &body, "k5", Some("not base64!")).await,
        401
    );
    assert!(
        rx.try_recv().is_err(),
        "a refused callback reached the channel"
    );
    assert_eq!(post_to(&base, &keys, &body, "k5", Some(&right)).await, 200);
    assert!(rx.try_recv().is_ok());
    // The same delivery again (same idempotency-key): answered, not handed on twice.
    assert_eq!(post_to(&base, &keys, &body, "k5", Some(&right)).await, 200);
    assert!(rx.try_recv().is_err(), "a repeated delivery was handed on");

    // Ours and well-formed, but nothing to apply: 200, handed on as unusable.
    let unusable = [
        serde_json::json!({"subscriptionId": 11, "event": "customer.create", "id": 6,
            "value": {"id": 6, "version": 0, "customerNumber": null, "isInactive": false}}),
        serde_json::json!({"subscriptionId": 11, "event": "customer.create", "id": 6,
            "value": {"id": 6, "version": 0, "customerNumber": 0, "isInactive": false}}),
    ];
    for (i, body) in unusable.iter().enumerate() {
        let key = format!("u{i}");
        assert_eq!(post_to(&base, &keys, body, &key, None).await, 200);
        let got = rx.try_recv().expect("handed on");
        assert!(matches!(got.news, News::Unusable(_)), "{got:?}");
    }
    subscribed.set("acme", [(14, "order.create")].into());
    let order = serde_json::json!({"subscriptionId": 14, "event": "order.create", "id": 7,
        "value": {"id": 7}});
    assert_eq!(post_to(&base, &keys, &order, "u9", None).await, 200);
    assert!(matches!(rx.try_recv().unwrap().news, News::Unusable(_)));
    cancel.cancel();
}

/// Armed by the test below: the next pass or callback of acme panics.
static PANIC_NEXT: AtomicBool = AtomicBool::new(false);

fn panic_when_armed(_shop: &str) {
    if PANIC_NEXT.swap(false, Ordering::SeqCst) {
        panic!("injected panic in a callback");
    }
}

/// A callback with no number is answered 200 and brings the next pass forward (at most a
/// minute); a callback whose apply panics is caught, recorded as a failed pass, and the shop
/// goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_supervises_callbacks_and_answers_what_it_cannot_apply() {
    let f = fixture().await;
    let mut env = f.env();
    env.before_pass = panic_when_armed;
    let Started {
        store,
        control,
        cancel,
        task: daemon,
        log,
    } = start_daemon_in(&f, env).await;
    let keys = keys(&f.config());
    poll::until("acme's subscriptions", || ours(&f, &keys).len() == 4).await;
    let result = || acme_result(&store);
    poll::until("acme ok", || {
        result().is_some_and(|r| r.verdict() == Verdict::Ok)
    })
    .await;

    // Tripletex's "no number": the delivery succeeds, the next pass comes within a minute.
    let id = f.sim.add_customer(COMPANY, 299, false);
    f.sim.set_customer_number(COMPANY, id, 0);
    f.sim.deliveries_idle().await;
    let delivered = f.sim.webhook_deliveries();
    assert!(
        delivered
            .iter()
            .all(|d| matches!(d.outcome, DeliveryOutcome::Delivered(200))),
        "{delivered:?}"
    );
    let soon = poll::until_some("the next pass brought forward", || {
        log.events("pass.next")
            .into_iter()
            .find(|v| v["soon"] == true)
    })
    .await;
    assert!(soon["in_seconds"].as_u64().unwrap() <= 60, "{soon}");
    assert!(log.event("webhooks.unusable").is_some());

    // A panic while applying a callback: caught, logged as pass.failed, recorded as error.
    PANIC_NEXT.store(true, Ordering::SeqCst);
    f.sim.add_customer(COMPANY, 20001, false);
    poll::until("the failed callback recorded", || {
        result().is_some_and(|r| r.verdict() == Verdict::Error)
    })
    .await;
    let failed = log.event("pass.failed").expect("pass.failed");
    assert!(
        failed.to_string().contains("injected panic in a callback"),
        "{failed}"
    );
    // The shop goes on: its next pass reads the customer and finds the conflict.
    control.send(daemon::Control::PassNowFor("acme".into()));
    poll::until("the conflict found by the next pass", || {
        result().is_some_and(|r| r.verdict() == Verdict::Conflict)
    })
    .await;

    cancel.cancel();
    daemon.await.unwrap().unwrap();
    spec::assert_conforms(&f.sim.request_log());
}

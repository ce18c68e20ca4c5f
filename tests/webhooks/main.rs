//! Tripletex webhooks (issue 11), at the library level: a shop's subscriptions reconciled
//! against the simulator (created, re-enabled, replaced, deleted; foreign ones untouched; every
//! request valid for the OpenAPI spec); the receiver refusing forged or missing auth, unknown
//! paths, oversized and malformed bodies, and passing a valid callback on; a callback applied to
//! the mirror and verdict without any Tripletex request; and end to end: the simulator's callback
//! through a "reverse proxy" to the receiver, the channel and apply, a conflict recorded at once,
//! and a lost callback still found by the next pass. In the daemon: a customer created or
//! deleted in Tripletex shows in the store within 2 s and then in status.json and metrics, with
//! no customer or invoice request; push active and the stretched interval; a disabled
//! subscription re-enabled at the next pass; a shop removed on reload loses its subscriptions
//! (`in_daemon.rs`). What keeps push from raising false alarms is in `trust.rs`.

mod in_daemon;
mod trust;

use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Date;
use secrecy::ExposeSecret as _;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tripletex_sim::SubscriptionStatus;
use tripletex_sync::checks::kinds::{Entry, TailValue, Version};
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::clock::SharedClock;
use tripletex_sync::config::Config;
use tripletex_sync::daemon;
use tripletex_sync::metrics::METRICS_FILE;
use tripletex_sync::pass::PassSettings;
use tripletex_sync::secrets::SecretString;
use tripletex_sync::status::StatusReport;
use tripletex_sync::tripletex::SubscriptionSpec;
use tripletex_sync::tripletex::model::Record;
use tripletex_sync::webhooks::reconcile::{self, Reconciled};
use tripletex_sync::webhooks::{
    AUTH_HEADER, Callback, Change, Keys, News, Receiver, Subscribed, apply,
};
use tripletex_sync_fixture::daemon::{DaemonTask, Fixture, MAIN, write_private};
use tripletex_sync_fixture::poll::{self, Poll};
use tripletex_sync_fixture::{capture, spec};

use in_daemon::{Started, start_daemon, start_daemon_in};

const COMPANY: i64 = 1001;
const PUBLIC: &str = "https://sync.example.com/tripletex";
/// Bounds every wait for something that should happen at once.
const SOON: Duration = Duration::from_secs(2);

fn main_with_webhooks() -> String {
    format!(
        "{MAIN}\n[webhooks]\npublic_url = \"{PUBLIC}\"\nlisten = \"127.0.0.1:0\"\nsecret_file = \"webhook-secret\"\nreconcile_interval = \"6h\"\n"
    )
}

/// A fixture with webhooks configured and shop `acme` whose own customers are 1–5.
async fn fixture() -> Fixture {
    let f = Fixture::with_main(&main_with_webhooks()).await;
    write_private(
        &f.path("webhook-secret"),
        "a-long-random-webhook-secret-0123456789",
    );
    f.add_shop("acme", COMPANY, "");
    f.sim.add_customers(COMPANY, 1, 5, false);
    f
}

fn keys(config: &Config) -> Keys {
    let w = config.webhooks.as_ref().expect("webhooks configured");
    Keys::new(&w.public_url, w.load_secret(None).unwrap())
}

/// Our subscriptions in the simulator: (event, status).
fn ours(f: &Fixture, keys: &Keys) -> Vec<(String, SubscriptionStatus)> {
    let target = keys.target_url("acme");
    f.sim
        .webhook_subscriptions()
        .into_iter()
        .filter(|s| s.auth_header_name.as_deref() == Some(AUTH_HEADER))
        .inspect(|s| assert_eq!(s.target_url, target))
        .map(|s| (s.event, s.status))
        .collect()
}

#[tokio::test]
async fn reconcile_creates_reenables_replaces_and_deletes() {
    let f = fixture().await;
    let config = f.config();
    let shop = config.shop("acme").unwrap();
    let cancel = CancellationToken::new();
    let client = f.client(&f.api(), "acme", &cancel);
    // A subscription another integration made with the same token is never touched.
    let foreign = SubscriptionSpec {
        event: "customer.create",
        target_url: "https://elsewhere.example.com/hook".into(),
        fields: "id",
        auth_header_name: "x-other",
        auth_header_value: SecretString::from("other".to_owned()),
        hmac_shared_secret: SecretString::from("other-hmac".to_owned()),
    };
    client.create_subscription(&foreign).await.unwrap();

    // Subscriptions made under another secret point elsewhere: all four are replaced.
    let old = Keys::new(
        &PUBLIC.parse().unwrap(),
        SecretString::from("an-older-secret".to_owned()),
    );
    let first = reconcile::reconcile(&client, &old, shop).await.unwrap();
    assert_eq!((first.created, first.wanted, first.active), (4, 4, 4));
    let keys = keys(&config);
    let replaced = reconcile::reconcile(&client, &keys, shop).await.unwrap();
    assert_eq!(
        replaced,
        Reconciled {
            subscriptions: replaced.subscriptions.clone(),
            wanted: 4,
            active: 4,
            replaced: 4,
            ..Reconciled::default()
        }
    );
    // What the receiver checks a callback's `subscriptionId` and event against.
    let mut listed: Vec<_> = f
        .sim
        .webhook_subscriptions()
        .into_iter()
        .filter(|s| s.auth_header_name.as_deref() == Some(AUTH_HEADER))
        .map(|s| (s.id, s.event))
        .collect();
    let mut reported: Vec<_> = replaced
        .subscriptions
        .iter()
        .map(|(id, event)| (*id, event.to_string()))
        .collect();
    listed.sort();
    reported.sort();
    assert_eq!(reported, listed);
    let mut events: Vec<String> = ours(&f, &keys).into_iter().map(|(e, _)| e).collect();
    events.sort();
    assert_eq!(
        events,
        [
            "customer.create",
            "customer.delete",
            "customer.update",
            "invoice.charged"
        ]
    );

    // Healthy: one GET, nothing changed.
    f.sim.clear_request_log();
    let again = reconcile::reconcile(&client, &keys, shop).await.unwrap();
    assert!(again.healthy() && again.created + again.replaced + again.deleted == 0);
    assert_eq!(f.sim.request_log().len(), 1);

    // Tripletex disabled one: the next reconcile re-enables it.
    let update = f
        .sim
        .webhook_subscriptions()
        .into_iter()
        .find(|s| {
            s.event == "customer.update" && s.auth_header_name.as_deref() == Some(AUTH_HEADER)
        })
        .unwrap();
    f.sim
        .set_subscription_status(update.id, SubscriptionStatus::DisabledTooManyErrors);
    let reenabled = reconcile::reconcile(&client, &keys, shop).await.unwrap();
    assert_eq!((reenabled.reenabled, reenabled.active), (1, 4));
    assert!(
        ours(&f, &keys)
            .iter()
            .all(|(_, s)| *s == SubscriptionStatus::Active)
    );

    // A shop that stops checking invoices loses that subscription.
    let mut no_invoices = shop.clone();
    no_invoices.checks[CheckKind::InvoiceNumbers] = None;
    let fewer = reconcile::reconcile(&client, &keys, &no_invoices)
        .await
        .unwrap();
    assert_eq!((fewer.wanted, fewer.deleted), (3, 1));

    // A removed shop loses all of ours; the foreign one stays.
    assert_eq!(reconcile::remove(&client).await.unwrap(), 3);
    assert!(ours(&f, &keys).is_empty());
    assert_eq!(f.sim.webhook_subscriptions().len(), 1);
    spec::assert_conforms(&f.sim.request_log());
}

/// A customer change as a callback tells it.
fn customer(id: i64, number: u32, version: u32) -> Change {
    let entry = Entry {
        number: Some(number),
        tail: TailValue::Flag(false),
        version: Version::Seen(version),
    };
    Change::Upsert(Record { id, entry })
}

/// acme's customer result, once there is one.
fn acme_result(
    store: &tripletex_sync::store::Store,
) -> Option<tripletex_sync::store::ResultRecord> {
    store
        .result("acme", CheckKind::CustomerNumbers)
        .ok()
        .flatten()
}

/// acme's push state as status.json shows it.
fn acme_push(store: &tripletex_sync::store::Store) -> Option<tripletex_sync::status::PushStatus> {
    StatusReport::read(store.state_dir())
        .ok()
        .and_then(|r| r.shops.into_iter().find(|s| s.name == "acme"))
        .and_then(|s| s.push)
}

/// The change a callback tells; panics on one that cannot be applied.
fn changed(callback: &Callback) -> (CheckKind, &Change) {
    match &callback.news {
        News::Changed(kind, change) => (*kind, change),
        News::Unusable(reason) => panic!("an unusable callback: {reason}"),
    }
}

/// A receiver for `acme` on 127.0.0.1:0 and its channel.
async fn receiver(
    config: &Config,
    keys: &Keys,
    cancel: &CancellationToken,
) -> (Receiver, mpsc::Receiver<Callback>) {
    receiver_with(config, keys, Subscribed::default(), cancel).await
}

/// [`receiver`], checking callbacks against `subscribed`.
async fn receiver_with(
    config: &Config,
    keys: &Keys,
    subscribed: Subscribed,
    cancel: &CancellationToken,
) -> (Receiver, mpsc::Receiver<Callback>) {
    let (_routes_tx, routes) = watch::channel(Arc::new(keys.routes(&config.shops)));
    let (tx, rx) = mpsc::channel(16);
    let listen = "127.0.0.1:0".parse().unwrap();
    let metrics = Arc::default();
    let receiver = Receiver::start(listen, routes, subscribed, tx, metrics, cancel.clone())
        .await
        .unwrap();
    (receiver, rx)
}

#[tokio::test]
async fn the_receiver_refuses_what_is_not_a_callback_of_ours() {
    let f = fixture().await;
    let config = f.config();
    let keys = keys(&config);
    let cancel = CancellationToken::new();
    let (receiver, mut rx) = receiver(&config, &keys, &cancel).await;
    let token = keys
        .target_url("acme")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let url = |path: &str| format!("http://{}{path}", receiver.addr());
    let auth = keys.auth_value("acme").expose_secret().to_owned();
    let valid = serde_json::json!({"subscriptionId": 1, "event": "customer.create", "id": 77,
        "value": {"id": 77, "version": 0, "customerNumber": 10001, "isInactive": false}})
    .to_string();
    let http = reqwest::Client::new();
    let post = |path: String, header: Option<&str>, body: String| {
        let mut request = http.post(url(&path)).body(body);
        if let Some(value) = header {
            request = request.header(AUTH_HEADER, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let path = format!("/{token}");
    let mut forged = auth.clone();
    forged.replace_range(..1, if auth.starts_with('0') { "1" } else { "0" });
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 << 10));
    let cases = [
        (post(path.clone(), None, valid.clone()).await, 401),
        (post(path.clone(), Some(&forged), valid.clone()).await, 401),
        (post(path.clone(), Some("short"), valid.clone()).await, 401),
        (post("/0123".into(), Some(&auth), valid.clone()).await, 404),
        (
            post(format!("/{token}/x"), Some(&auth), valid.clone()).await,
            404,
        ),
        (post(path.clone(), Some(&auth), huge).await, 413),
        (
            post(path.clone(), Some(&auth), "{not json".into()).await,
            400,
        ),
        (post(path.clone(), Some(&auth), "{}".into()).await, 400),
    ];
    for (i, (got, wanted)) in cases.iter().enumerate() {
        assert_eq!(got, wanted, "case {i}");
    }
    assert!(
        rx.try_recv().is_err(),
        "a refused request reached the channel"
    );
    let get = http.get(url(&path)).send().await.unwrap().status().as_u16();
    assert_eq!(get, 405);

    // Through the proxy's public path, too.
    assert_eq!(
        post(format!("/tripletex/{token}"), Some(&auth), valid).await,
        200
    );
    let callback = rx.try_recv().expect("the valid callback is on the channel");
    let entry = Entry {
        number: Some(10001),
        tail: TailValue::Flag(false),
        version: Version::Seen(0),
    };
    assert_eq!(
        callback,
        Callback {
            shop: "acme".into(),
            news: News::Changed(
                CheckKind::CustomerNumbers,
                Change::Upsert(Record { id: 77, entry })
            ),
        }
    );
    cancel.cancel();
    tokio::time::timeout(SOON, receiver.join())
        .await
        .expect("the receiver stops");
}

#[tokio::test]
async fn a_callback_is_applied_without_any_tripletex_request() {
    let f = fixture().await;
    let config = f.config();
    let shop = config.shop("acme").unwrap();
    let store = f.open_store();
    let cancel = CancellationToken::new();
    let client = f.client(&f.api(), "acme", &cancel);
    let settings = PassSettings::new(&config);
    let clock: SharedClock = f.clock.clone();
    let customers = CheckKind::CustomerNumbers;
    let created = customer(900, 10001, 0);
    // Before a pass has read the kind in full, a callback alone vouches for nothing.
    let early = apply::apply((customers, &created), shop, &store, &settings, &clock).await;
    assert!(early.unwrap().is_none());
    assert!(
        store
            .mirror("acme", CheckKind::CustomerNumbers)
            .unwrap()
            .is_empty()
    );
    let report = f.pass(&store, &client, 1).await;
    assert!(report.outcomes().iter().all(|o| o.verdict == Verdict::Ok));
    f.sim.clear_request_log();
    let outcome = apply::apply((customers, &created), shop, &store, &settings, &clock)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(outcome.verdict, Verdict::Conflict);
    let stored = store.result("acme", CheckKind::CustomerNumbers).unwrap();
    assert_eq!(stored.unwrap().verdict(), Verdict::Conflict);
    // The same callback again changes nothing.
    let again = apply::apply((customers, &created), shop, &store, &settings, &clock).await;
    assert!(again.unwrap().is_none());

    let deleted = Change::Delete(900);
    let outcome = apply::apply((customers, &deleted), shop, &store, &settings, &clock)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(outcome.verdict, Verdict::Ok);
    let stored = store.result("acme", CheckKind::CustomerNumbers).unwrap();
    assert_eq!(stored.unwrap().verdict(), Verdict::Ok);
    assert!(
        f.sim.request_log().is_empty(),
        "apply sent {:?}",
        f.sim.request_log()
    );
}

#[tokio::test]
async fn a_conflict_created_in_tripletex_is_recorded_from_its_callback() {
    let f = fixture().await;
    let config = f.config();
    let shop = config.shop("acme").unwrap();
    let keys = keys(&config);
    let store = f.open_store();
    let cancel = CancellationToken::new();
    let client = f.client(&f.api(), "acme", &cancel);
    let (receiver, mut rx) = receiver(&config, &keys, &cancel).await;
    f.sim
        .proxy_webhooks(PUBLIC, &format!("http://{}", receiver.addr()));
    assert!(
        reconcile::reconcile(&client, &keys, shop)
            .await
            .unwrap()
            .healthy()
    );
    f.pass(&store, &client, 1).await;
    spec::assert_conforms(&f.sim.request_log());
    f.sim.clear_request_log();
    let settings = PassSettings::new(&config);
    let clock: SharedClock = f.clock.clone();
    let verdict = || {
        store
            .result("acme", CheckKind::CustomerNumbers)
            .unwrap()
            .unwrap()
            .verdict()
    };

    let id = f.sim.add_customer(COMPANY, 10001, false);
    let callback = tokio::time::timeout(SOON, rx.recv())
        .await
        .expect("a callback within 2 s")
        .unwrap();
    apply::apply(changed(&callback), shop, &store, &settings, &clock)
        .await
        .unwrap();
    assert_eq!(verdict(), Verdict::Conflict);

    f.sim.remove_customer(COMPANY, id);
    let callback = tokio::time::timeout(SOON, rx.recv())
        .await
        .expect("a callback within 2 s")
        .unwrap();
    assert_eq!(
        changed(&callback),
        (CheckKind::CustomerNumbers, &Change::Delete(id))
    );
    apply::apply(changed(&callback), shop, &store, &settings, &clock)
        .await
        .unwrap();
    assert_eq!(verdict(), Verdict::Ok);

    // An invoice charged in Tripletex reaches the invoice check's mirror the same way.
    let invoice = f.sim.add_invoice(COMPANY, 7000, Date::constant(2026, 3, 9));
    let callback = tokio::time::timeout(SOON, rx.recv())
        .await
        .expect("a callback within 2 s")
        .unwrap();
    assert_eq!(changed(&callback).0, CheckKind::InvoiceNumbers);
    let outcome = apply::apply(changed(&callback), shop, &store, &settings, &clock)
        .await
        .unwrap();
    assert!(outcome.is_some());
    let mirror = store.mirror("acme", CheckKind::InvoiceNumbers).unwrap();
    assert!(
        mirror
            .iter()
            .any(|(id, e)| *id == invoice && e.number == Some(7000))
    );
    assert!(f.data_requests().is_empty(), "{:?}", f.data_requests());

    // A lost callback: the receiver hears nothing, the next pass still finds the conflict.
    f.sim.lose_webhook_deliveries(1);
    f.sim.add_customer(COMPANY, 20002, false);
    tokio::time::timeout(SOON, f.sim.deliveries_idle())
        .await
        .unwrap();
    assert!(rx.try_recv().is_err());
    let report = f.pass(&store, &client, 2).await;
    assert_eq!(report.outcomes()[0].verdict, Verdict::Conflict);
    assert_eq!(verdict(), Verdict::Conflict);
}

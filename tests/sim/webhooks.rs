//! Webhooks: the event catalogue, subscriptions (create, list, get, put, delete, batches,
//! validation, write-only secrets, per-token scoping) and callbacks delivered to a loopback
//! receiver (auth header, cut fields, deletes, failures, re-enabling, rate-limit disabling and
//! lost deliveries).

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::civil::Date;
use reqwest::Response;
use serde_json::{Value, json};
use tripletex_sync::sim::{DeliveryOutcome, SubscriptionStatus};

use crate::common::receiver::Receiver;
use crate::common::{COMPANY, CONSUMER, Ctx, assert_api_error, assert_conforms, token_of};

const SECRET: &str = "hook-s3cret-value-n3ver-shown";
const HMAC: &str = "hmac-s3cret-n3ver-shown";
const OTHER_EMPLOYEE: &str = "test-employee-token-other";

async fn send(ctx: &Ctx, token: &str, method: &str, path: &str, body: Option<Value>) -> Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = ctx
        .http
        .request(method, ctx.url(path))
        .basic_auth("0", Some(token));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

/// The response text, asserting that no secret is in it.
async fn text(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(!text.contains(SECRET) && !text.contains(HMAC), "{text}");
    (status, text)
}

async fn value(response: Response, status: u16) -> Value {
    let (got, text) = text(response).await;
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    body["value"].clone()
}

fn subscription(event: &str, target: &str, fields: &str) -> Value {
    json!({
        "event": event,
        "targetUrl": target,
        "fields": fields,
        "authHeaderName": "X-Sync-Secret",
        "authHeaderValue": SECRET,
    })
}

async fn subscribe(ctx: &Ctx, token: &str, body: Value) -> i64 {
    let created = value(
        send(ctx, token, "POST", "/event/subscription", Some(body)).await,
        201,
    )
    .await;
    assert_eq!(created["status"], "ACTIVE");
    created["id"].as_i64().unwrap()
}

async fn idle(ctx: &Ctx) {
    tokio::time::timeout(Duration::from_secs(10), ctx.sim.deliveries_idle())
        .await
        .expect("deliveries finish");
}

fn outcomes(ctx: &Ctx) -> Vec<(String, DeliveryOutcome)> {
    ctx.sim
        .webhook_deliveries()
        .into_iter()
        .map(|d| (d.event, d.outcome))
        .collect()
}

#[tokio::test]
async fn event_catalogue_and_examples() {
    let ctx = Ctx::new().await;
    let token = ctx.session().await;
    // `GET /event` has no security scheme in the spec.
    let catalogue: Value = ctx
        .http
        .get(ctx.url("/event"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for event in [
        "customer.create",
        "customer.update",
        "customer.delete",
        "invoice.charged",
    ] {
        assert!(
            catalogue["value"][event]["description"].is_string(),
            "{event}"
        );
    }
    let example = value(ctx.get(&token, "/event/customer.delete").await, 200).await;
    assert_eq!(example["payloadModel"], "Customer");
    assert_eq!(example["examples"][0]["event"], "customer.delete");
    assert!(example["examples"][0]["value"].is_null());
    let charged = value(
        ctx.get(&token, "/event/invoice.charged?fields=examples")
            .await,
        200,
    )
    .await;
    assert!(charged["examples"][0]["value"]["invoiceNumber"].is_number());
    assert!(charged.get("name").is_none());
    assert_api_error(ctx.get(&token, "/event/customer.explode").await, 404, 6000).await;
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn subscriptions_are_created_listed_read_and_deleted_per_token() {
    let ctx = Ctx::new().await;
    ctx.sim.add_employee_token(OTHER_EMPLOYEE, COMPANY, 8);
    let token = ctx.session().await;
    let other = token_of(ctx.mint(CONSUMER, OTHER_EMPLOYEE, "2026-03-20").await).await;

    let mut body = subscription(
        "customer.create",
        "https://sync.example.com/t/abc",
        "id,customerNumber",
    );
    body["hmacSharedSecret"] = json!(HMAC);
    let created = value(
        send(&ctx, &token, "POST", "/event/subscription", Some(body)).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["event"], "customer.create");
    assert_eq!(created["targetUrl"], "https://sync.example.com/t/abc");
    assert_eq!(created["fields"], "id,customerNumber");
    assert_eq!(created["authHeaderName"], "X-Sync-Secret");
    assert!(created.get("authHeaderValue").is_none() && created.get("hmacSharedSecret").is_none());

    let (status, list) = text(ctx.get(&token, "/event/subscription").await).await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        (list["from"].as_u64(), list["count"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(list["values"][0]["id"], id);
    let picked = value(
        ctx.get(
            &token,
            &format!("/event/subscription/{id}?fields=id,status,authHeaderValue"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(picked, json!({"id": id, "status": "ACTIVE"}));

    // Another employee token of the same company sees nothing of it and cannot touch it.
    let (_, foreign) = text(ctx.get(&other, "/event/subscription").await).await;
    assert_eq!(serde_json::from_str::<Value>(&foreign).unwrap()["count"], 0);
    let path = format!("/event/subscription/{id}");
    assert_api_error(ctx.get(&other, &path).await, 404, 6000).await;
    assert_api_error(send(&ctx, &other, "DELETE", &path, None).await, 404, 6000).await;

    let batch = json!([
        subscription(
            "customer.update",
            "https://sync.example.com/t/abc",
            "id,customerNumber"
        ),
        subscription(
            "invoice.charged",
            "https://sync.example.com/t/abc",
            "id,invoiceNumber,invoiceDate"
        ),
    ]);
    let (status, created) = text(
        send(
            &ctx,
            &token,
            "POST",
            "/event/subscription/list",
            Some(batch),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    let created: Value = serde_json::from_str(&created).unwrap();
    let ids: Vec<i64> = created["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let update = json!([{"id": ids[0], "fields": "id,customerNumber,isInactive"}]);
    let (status, _) = text(
        send(
            &ctx,
            &token,
            "PUT",
            "/event/subscription/list",
            Some(update),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        ctx.sim.webhook_subscriptions()[1].fields.as_deref(),
        Some("id,customerNumber,isInactive")
    );
    let query = format!("/event/subscription/list?ids={},{}", ids[0], ids[1]);
    assert_eq!(
        send(&ctx, &token, "DELETE", &query, None).await.status(),
        204
    );
    assert_eq!(
        send(&ctx, &token, "DELETE", &path, None).await.status(),
        204
    );
    assert_api_error(ctx.get(&token, &path).await, 404, 6000).await;
    assert!(ctx.sim.webhook_subscriptions().is_empty());

    let log = format!("{:?}", ctx.sim.request_log());
    assert!(!log.contains(SECRET) && !log.contains(HMAC));
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn bad_subscriptions_are_refused_and_nothing_is_stored() {
    let ctx = Ctx::new().await;
    let token = ctx.session().await;
    let good = subscription(
        "customer.create",
        "https://sync.example.com/t",
        "id,customerNumber",
    );
    let cases = [
        ("event", json!({"event": "customer.explode"})),
        ("event", json!({"event": null})),
        ("targetUrl", json!({"targetUrl": null})),
        ("targetUrl", json!({"targetUrl": "/tripletex/callback"})),
        (
            "targetUrl",
            json!({"targetUrl": "http://sync.example.com/t"}),
        ),
        ("fields", json!({"fields": "id,shoeSize"})),
        ("authHeaderValue", json!({"authHeaderValue": null})),
        ("status", json!({"status": "DISABLED_MISUSE"})),
    ];
    for (field, change) in cases {
        let mut body = good.clone();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let response = send(&ctx, &token, "POST", "/event/subscription", Some(body)).await;
        let error = assert_api_error(response, 422, 18000).await;
        assert_eq!(error["validationMessages"][0]["field"], field, "{error}");
        assert!(!error.to_string().contains(SECRET));
    }
    // One bad element fails the whole batch.
    let batch = json!([good.clone(), {"event": "customer.create"}]);
    let response = send(
        &ctx,
        &token,
        "POST",
        "/event/subscription/list",
        Some(batch),
    )
    .await;
    assert_api_error(response, 422, 18000).await;
    assert!(ctx.sim.webhook_subscriptions().is_empty());
    // Unauthenticated callers get nothing.
    let anonymous = ctx
        .http
        .get(ctx.url("/event/subscription"))
        .send()
        .await
        .unwrap();
    assert_api_error(anonymous, 401, 3000).await;
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn changes_are_delivered_with_the_auth_header_and_cut_fields() {
    let ctx = Ctx::new().await;
    let receiver = Receiver::start().await;
    let token = ctx.session().await;
    let target = receiver.url("/tripletex/7f3a");
    let fields = "id,customerNumber,isInactive";
    let created = subscribe(
        &ctx,
        &token,
        subscription("customer.create", &target, fields),
    )
    .await;
    subscribe(
        &ctx,
        &token,
        subscription("customer.update", &target, fields),
    )
    .await;
    subscribe(
        &ctx,
        &token,
        subscription("customer.delete", &target, fields),
    )
    .await;
    let invoice_fields = "id,invoiceNumber,invoiceDate";
    let mut signed = subscription("invoice.charged", &target, invoice_fields);
    signed["hmacSharedSecret"] = json!(HMAC);
    subscribe(&ctx, &token, signed).await;

    let id = ctx.sim.add_customer(COMPANY, 10001, false);
    ctx.sim.set_customer_number(COMPANY, id, 10002);
    ctx.sim.remove_customer(COMPANY, id);
    let invoice = ctx
        .sim
        .add_invoice(COMPANY, 500, Date::constant(2026, 3, 9));
    ctx.sim.add_customer(COMPANY + 1, 10001, false); // another company: nobody listens
    idle(&ctx).await;

    let got = receiver.received();
    let bodies: Vec<&Value> = got.iter().map(|c| &c.body).collect();
    assert_eq!(
        bodies,
        [
            &json!({"subscriptionId": created, "event": "customer.create", "id": id,
                    "value": {"id": id, "customerNumber": 10001, "isInactive": false}}),
            &json!({"subscriptionId": created + 1, "event": "customer.update", "id": id,
                    "value": {"id": id, "customerNumber": 10002, "isInactive": false}}),
            &json!({"subscriptionId": created + 2, "event": "customer.delete", "id": id, "value": null}),
            &json!({"subscriptionId": created + 3, "event": "invoice.charged", "id": invoice,
                    "value": {"id": invoice, "invoiceNumber": 500, "invoiceDate": "2026-03-09"}}),
        ]
    );
    for callback in &got {
        assert_eq!(callback.path, "/tripletex/7f3a");
        assert_eq!(callback.headers["x-sync-secret"], SECRET);
        assert!(
            callback.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert!(!callback.headers["idempotency-key"].is_empty());
    }
    assert!(
        outcomes(&ctx)
            .iter()
            .all(|(_, outcome)| *outcome == DeliveryOutcome::Delivered(200))
    );

    // Only the subscription with a shared secret signs, as the spec's `hmacSharedSecret` says.
    assert!(
        got[..3]
            .iter()
            .all(|c| !c.headers.contains_key("x-request-signature"))
    );
    let invoice_callback = &got[3];
    let mut signed = invoice_callback.headers["idempotency-key"]
        .as_bytes()
        .to_vec();
    signed.push(b'&');
    signed.extend_from_slice(&invoice_callback.raw);
    let signature = STANDARD
        .decode(invoice_callback.headers["x-request-signature"].as_bytes())
        .unwrap();
    let key = hmac::Key::new(hmac::HMAC_SHA512, HMAC.as_bytes());
    assert!(hmac::verify(&key, &signed, &signature).is_ok());
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn a_failing_receiver_disables_the_subscription_until_put_reenables_it() {
    let ctx = Ctx::new().await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    ctx.sim.set_webhook_failure_limit(2);
    ctx.sim.set_webhook_retries(2, Duration::from_millis(1));
    let token = ctx.session().await;
    let body = subscription(
        "customer.create",
        &receiver.url("/hook"),
        "id,customerNumber",
    );
    let id = subscribe(&ctx, &token, body).await;
    let path = format!("/event/subscription/{id}");

    ctx.sim.add_customer(COMPANY, 1, false);
    idle(&ctx).await;
    assert_eq!(
        value(ctx.get(&token, &path).await, 200).await["status"],
        "ACTIVE"
    );
    ctx.sim.add_customer(COMPANY, 2, false);
    idle(&ctx).await;
    let disabled = value(ctx.get(&token, &path).await, 200).await;
    assert_eq!(disabled["status"], "DISABLED_TOO_MANY_ERRORS");
    assert_eq!(
        receiver.received().len(),
        4,
        "two deliveries, two attempts each"
    );
    let failed = ctx.sim.webhook_deliveries();
    assert!(
        failed
            .iter()
            .all(|d| d.outcome == DeliveryOutcome::Failed(Some(500)) && d.attempts == 2)
    );
    ctx.sim.add_customer(COMPANY, 3, false);
    idle(&ctx).await;
    assert_eq!(
        ctx.sim.webhook_deliveries().len(),
        2,
        "nothing is sent while disabled"
    );

    // A stale version is a revision conflict; the current one re-enables.
    let stale = json!({"version": disabled["version"].as_i64().unwrap() + 5, "status": "ACTIVE"});
    assert_api_error(
        send(&ctx, &token, "PUT", &path, Some(stale)).await,
        409,
        8000,
    )
    .await;
    receiver.answer(200);
    let enable = json!({"version": disabled["version"], "status": "ACTIVE"});
    let enabled = value(send(&ctx, &token, "PUT", &path, Some(enable)).await, 200).await;
    assert_eq!(enabled["status"], "ACTIVE");
    assert_eq!(
        enabled["authHeaderName"], "X-Sync-Secret",
        "a partial PUT keeps the rest"
    );
    ctx.sim.add_customer(COMPANY, 4, false);
    idle(&ctx).await;
    let last = receiver.received().pop().unwrap();
    assert_eq!(last.body["value"]["customerNumber"], 4);
    assert_eq!(
        last.headers["x-sync-secret"], SECRET,
        "the secret survives a PUT"
    );

    // A receiver that is not there at all fails without a status.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let change = json!({"targetUrl": format!("http://{gone}/hook")});
    value(send(&ctx, &token, "PUT", &path, Some(change)).await, 200).await;
    ctx.sim.clear_webhook_deliveries();
    ctx.sim.add_customer(COMPANY, 5, false);
    idle(&ctx).await;
    assert_eq!(
        outcomes(&ctx),
        [("customer.create".to_owned(), DeliveryOutcome::Failed(None))]
    );
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn rate_limit_disabling_and_lost_deliveries_are_injectable() {
    let ctx = Ctx::new().await;
    let receiver = Receiver::start().await;
    let token = ctx.session().await;
    let body = subscription(
        "customer.create",
        &receiver.url("/hook"),
        "id,customerNumber",
    );
    let id = subscribe(&ctx, &token, body).await;
    let path = format!("/event/subscription/{id}");

    assert!(
        ctx.sim
            .set_subscription_status(id, SubscriptionStatus::DisabledRateLimitExceeded)
    );
    let listed = value(ctx.get(&token, &path).await, 200).await;
    assert_eq!(listed["status"], "DISABLED_RATE_LIMIT_EXCEEDED");
    ctx.sim.add_customer(COMPANY, 1, false);
    idle(&ctx).await;
    assert!(receiver.received().is_empty());
    let enable = json!({"status": "ACTIVE"});
    value(send(&ctx, &token, "PUT", &path, Some(enable)).await, 200).await;

    ctx.sim.lose_webhook_deliveries(1);
    let lost = ctx.sim.add_customer(COMPANY, 10001, false);
    let kept = ctx.sim.add_customer(COMPANY, 10002, false);
    idle(&ctx).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["id"], kept);
    let deliveries = ctx.sim.webhook_deliveries();
    assert_eq!(
        deliveries
            .iter()
            .map(|d| (d.object_id, d.outcome))
            .collect::<Vec<_>>(),
        [
            (lost, DeliveryOutcome::Lost),
            (kept, DeliveryOutcome::Delivered(200))
        ]
    );
    assert_eq!(
        ctx.sim.webhook_subscriptions()[0].status,
        SubscriptionStatus::Active
    );
    assert!(
        !ctx.sim
            .set_subscription_status(id + 100, SubscriptionStatus::Disabled)
    );

    // Echoing the status unchanged is accepted; lifting DISABLED_MISUSE is not.
    assert!(
        ctx.sim
            .set_subscription_status(id, SubscriptionStatus::DisabledMisuse)
    );
    let echo = json!({"status": "DISABLED_MISUSE", "fields": "id"});
    let echoed = value(send(&ctx, &token, "PUT", &path, Some(echo)).await, 200).await;
    assert_eq!(
        (&echoed["status"], &echoed["fields"]),
        (&json!("DISABLED_MISUSE"), &json!("id"))
    );
    let lift = json!({"status": "ACTIVE"});
    let refused = send(&ctx, &token, "PUT", &path, Some(lift)).await;
    assert_api_error(refused, 422, 18000).await;
    assert_conforms(&ctx.sim.request_log());
}

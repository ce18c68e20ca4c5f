//! Callbacks delivered to a loopback receiver: auth header, cut fields, deletes, signatures,
//! failures and DISABLED_TOO_MANY_ERRORS, re-enabling by PUT, rate-limit disabling and lost
//! deliveries.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::civil::Date;
use serde_json::{Value, json};
use tripletex_sim::{DeliveryOutcome, SubscriptionStatus};

use crate::subscriptions::{HMAC, SECRET, send, subscribe, subscription, value};
use tripletex_sync_fixture::receiver::Receiver;
use tripletex_sync_fixture::sim::{CTX_COMPANY, Ctx, assert_api_error};
use tripletex_sync_fixture::spec::assert_conforms;

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

    let id = ctx.sim.add_customer(CTX_COMPANY, 10001, false);
    ctx.sim.set_customer_number(CTX_COMPANY, id, 10002);
    ctx.sim.remove_customer(CTX_COMPANY, id);
    let invoice = ctx
        .sim
        .add_invoice(CTX_COMPANY, 500, Date::constant(2026, 3, 9));
    ctx.sim.add_customer(CTX_COMPANY + 1, 10001, false); // another company: nobody listens
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

    ctx.sim.add_customer(CTX_COMPANY, 1, false);
    idle(&ctx).await;
    assert_eq!(
        value(ctx.get(&token, &path).await, 200).await["status"],
        "ACTIVE"
    );
    ctx.sim.add_customer(CTX_COMPANY, 2, false);
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
    ctx.sim.add_customer(CTX_COMPANY, 3, false);
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
    ctx.sim.add_customer(CTX_COMPANY, 4, false);
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
    ctx.sim.add_customer(CTX_COMPANY, 5, false);
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
    ctx.sim.add_customer(CTX_COMPANY, 1, false);
    idle(&ctx).await;
    assert!(receiver.received().is_empty());
    let enable = json!({"status": "ACTIVE"});
    value(send(&ctx, &token, "PUT", &path, Some(enable)).await, 200).await;

    ctx.sim.lose_webhook_deliveries(1);
    let lost = ctx.sim.add_customer(CTX_COMPANY, 10001, false);
    let kept = ctx.sim.add_customer(CTX_COMPANY, 10002, false);
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

#[tokio::test]
async fn https_targets_reach_a_loopback_receiver_through_the_proxy() {
    let ctx = Ctx::new().await;
    let receiver = Receiver::start().await;
    ctx.sim
        .proxy_webhooks("https://sync.example.com/tripletex/", &receiver.url("/in"));
    let token = ctx.session().await;
    let public = "https://sync.example.com/tripletex/shop-7f3a";
    let id = subscribe(&ctx, &token, subscription("customer.create", public, "id")).await;
    ctx.sim.add_customer(CTX_COMPANY, 10001, false);
    idle(&ctx).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/in/shop-7f3a");
    assert_eq!(got[0].body["subscriptionId"], id);
    assert_eq!(ctx.sim.webhook_subscriptions()[0].target_url, public);
    assert_conforms(&ctx.sim.request_log());
}

//! The token canary: everything the simulator traces, at TRACE level, is scanned for tokens.
//!
//! A binary of its own, so its subscriber can be global: thread-local subscribers miss events
//! whose callsite interest another test cached first, which made this flaky in the shared binary.

use serde_json::json;
use tripletex_sync_fixture::capture::capture_trace;
use tripletex_sync_fixture::receiver::Receiver;
use tripletex_sync_fixture::sim::{CTX_COMPANY, CTX_CONSUMER, CTX_EMPLOYEE, Ctx, assert_api_error};
use tripletex_sync_fixture::spec::{assert_conforms, assert_conforms_allowing_deprecated};

#[tokio::test]
async fn tokens_never_reach_the_trace_log() {
    let captured = capture_trace();
    let ctx = Ctx::new().await;
    let token = ctx.session().await;
    ctx.http
        .put(ctx.url("/token/session/:create"))
        .query(&[
            ("consumerToken", CTX_CONSUMER),
            ("employeeToken", CTX_EMPLOYEE),
            ("expirationDate", "2026-03-20"),
        ])
        .send()
        .await
        .unwrap();
    ctx.get(&token, "/customer?fields=id").await;
    assert_api_error(
        ctx.get("wrong-session-c4n4ry", "/customer").await,
        401,
        3000,
    )
    .await;
    ctx.http
        .delete(ctx.url(&format!("/token/session/{token}")))
        .basic_auth("0", Some(&token))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(captured.bytes()).unwrap();
    assert!(text.contains("sim request"), "{text}");
    assert!(text.contains("/v2/token/session/{token}"), "{text}");
    for secret in ["c4n4ry", token.as_str(), "fields=id"] {
        assert!(!text.contains(secret), "{secret} leaked into:\n{text}");
    }
    assert_conforms_allowing_deprecated(
        &ctx.sim.request_log(),
        &[("PUT", "/token/session/:create")],
    );
}

#[tokio::test]
async fn webhook_secrets_never_reach_the_trace_log() {
    let captured = capture_trace();
    let mark = captured.mark();
    let ctx = Ctx::new().await;
    let receiver = Receiver::start().await;
    let token = ctx.session().await;
    let subscription = json!({
        "event": "customer.create",
        "targetUrl": receiver.url("/hook"),
        "fields": "id,customerNumber",
        "authHeaderName": "X-Sync-Secret",
        "authHeaderValue": "hook-c4n4ry-value",
        "hmacSharedSecret": "hmac-c4n4ry-secret",
    });
    let created = ctx
        .http
        .post(ctx.url("/event/subscription"))
        .basic_auth("0", Some(&token))
        .json(&subscription)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    ctx.sim.add_customer(CTX_COMPANY, 10001, false);
    ctx.sim.deliveries_idle().await;
    assert_eq!(receiver.received().len(), 1);
    let text = captured.since(mark);
    assert!(text.contains("sim webhook delivery"), "{text}");
    assert!(!text.contains("c4n4ry"), "a secret leaked into:\n{text}");
    assert!(
        !text.contains(&token),
        "the session token leaked into:\n{text}"
    );
    assert_conforms(&ctx.sim.request_log());
}

//! Subscriptions over HTTP: the event catalogue, create, list, get, put, delete and the batch
//! forms, validation, write-only secrets and per-token scoping; plus the request helpers the
//! delivery tests share.

use reqwest::Response;
use serde_json::{Value, json};

use tripletex_sync_fixture::sim::{CTX_COMPANY, CTX_CONSUMER, Ctx, assert_api_error, token_of};
use tripletex_sync_fixture::spec::assert_conforms;

pub const SECRET: &str = "hook-s3cret-value-n3ver-shown";
pub const HMAC: &str = "hmac-s3cret-n3ver-shown";
const OTHER_EMPLOYEE: &str = "test-employee-token-other";

pub async fn send(
    ctx: &Ctx,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Response {
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
pub async fn text(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(!text.contains(SECRET) && !text.contains(HMAC), "{text}");
    (status, text)
}

pub async fn value(response: Response, status: u16) -> Value {
    let (got, text) = text(response).await;
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    body["value"].clone()
}

pub fn subscription(event: &str, target: &str, fields: &str) -> Value {
    json!({
        "event": event,
        "targetUrl": target,
        "fields": fields,
        "authHeaderName": "X-Sync-Secret",
        "authHeaderValue": SECRET,
    })
}

pub async fn subscribe(ctx: &Ctx, token: &str, body: Value) -> i64 {
    let created = value(
        send(ctx, token, "POST", "/event/subscription", Some(body)).await,
        201,
    )
    .await;
    assert_eq!(created["status"], "ACTIVE");
    created["id"].as_i64().unwrap()
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
    ctx.sim.add_employee_token(OTHER_EMPLOYEE, CTX_COMPANY, 8);
    let token = ctx.session().await;
    let other = token_of(ctx.mint(CTX_CONSUMER, OTHER_EMPLOYEE, "2026-03-20").await).await;

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

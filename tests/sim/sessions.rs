//! Minting, Basic auth, expiry at Oslo midnight, `>whoAmI` and DELETE.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tripletex_sync_fixture::sim::{
    CTX_COMPANY, CTX_CONSUMER, CTX_EMPLOYEE, CTX_EMPLOYEE_ID, Ctx, assert_api_error, token_of,
};
use tripletex_sync_fixture::spec::{self, assert_conforms, assert_conforms_allowing_deprecated};

#[tokio::test]
async fn post_create_gives_201_and_a_working_token() {
    let ctx = Ctx::new().await;
    let response = ctx.mint(CTX_CONSUMER, CTX_EMPLOYEE, "2026-03-20").await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let value = &body["value"];
    assert_eq!(value["expirationDate"], "2026-03-20");
    assert!(value["id"].is_i64() && value["consumerToken"]["id"].is_i64());
    assert!(value["employeeToken"]["id"].is_i64() && value["url"].is_string());
    let token = value["token"].as_str().unwrap();
    assert!(!token.contains(CTX_EMPLOYEE) && !token.contains(CTX_CONSUMER));
    let who = ctx.get(token, "/token/session/>whoAmI").await;
    assert_eq!(who.status(), 200);
    assert_eq!(ctx.sim.live_sessions(), 1);
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn deprecated_put_create_gives_200() {
    let ctx = Ctx::new().await;
    let response = ctx
        .http
        .put(ctx.url("/token/session/:create"))
        .query(&[
            ("consumerToken", CTX_CONSUMER),
            ("employeeToken", CTX_EMPLOYEE),
            ("expirationDate", "2026-03-20"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = token_of(response).await;
    assert_eq!(
        ctx.get(&token, "/token/session/>whoAmI").await.status(),
        200
    );
    let log = ctx.sim.request_log();
    assert!(
        log[0].query.iter().all(|(_, v)| !v.contains("c4n4ry")),
        "tokens are redacted"
    );
    assert_conforms_allowing_deprecated(&log, &[("PUT", "/token/session/:create")]);
}

#[tokio::test]
async fn create_validates_the_date_and_tokens() {
    let ctx = Ctx::new().await;
    for date in [None, Some(""), Some("20.03.2026")] {
        let mut body =
            serde_json::json!({"consumerToken": CTX_CONSUMER, "employeeToken": CTX_EMPLOYEE});
        if let Some(date) = date {
            body["expirationDate"] = date.into();
        }
        let response = ctx
            .http
            .post(ctx.url("/token/session/:create"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = assert_api_error(response, 422, 18000).await;
        assert_eq!(error["validationMessages"][0]["field"], "expirationDate");
        if date.is_none() {
            assert_eq!(
                error["validationMessages"][0]["message"],
                "Kan ikke være null."
            );
        }
    }
    let error = assert_api_error(
        ctx.mint("nope", CTX_EMPLOYEE, "2026-03-20").await,
        422,
        18000,
    )
    .await;
    assert_eq!(error["validationMessages"][0]["field"], "arg:consumerToken");
    let error = assert_api_error(
        ctx.mint(CTX_CONSUMER, "nope", "2026-03-20").await,
        422,
        18000,
    )
    .await;
    assert_eq!(error["validationMessages"][0]["field"], "arg:employeeToken");
    ctx.sim.set_integrations_enabled(CTX_COMPANY, false);
    let error = assert_api_error(
        ctx.mint(CTX_CONSUMER, CTX_EMPLOYEE, "2026-03-20").await,
        403,
        9000,
    )
    .await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Integrations add-on")
    );
    ctx.sim.set_integrations_enabled(CTX_COMPANY, true);
    ctx.sim.revoke_employee_token(CTX_EMPLOYEE);
    let error = assert_api_error(
        ctx.mint(CTX_CONSUMER, CTX_EMPLOYEE, "2026-03-20").await,
        422,
        18000,
    )
    .await;
    assert_eq!(error["validationMessages"][0]["field"], "arg:employeeToken");
    assert_eq!(ctx.sim.live_sessions(), 0);
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn basic_auth_user_must_be_zero_empty_or_the_company() {
    let ctx = Ctx::new().await;
    let token = ctx.session().await;
    for (user, status) in [
        ("0", 200),
        ("", 200),
        ("4711", 200),
        ("1234", 401),
        ("abc", 401),
    ] {
        let response = ctx
            .http
            .get(ctx.url("/token/session/>whoAmI"))
            .basic_auth(user, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "user {user:?}");
    }
    let no_auth = ctx.http.get(ctx.url("/customer")).send().await.unwrap();
    assert_api_error(no_auth, 401, 3000).await;
    assert_api_error(ctx.get("not-a-session", "/customer").await, 401, 3000).await;
    assert_conforms(&ctx.sim.request_log());
}

/// Mints a session expiring on `date` and checks it dies exactly at `midnight_utc`.
async fn assert_dies_at(ctx: &Ctx, date: &str, midnight_utc: &str) {
    let token = token_of(ctx.mint(CTX_CONSUMER, CTX_EMPLOYEE, date).await).await;
    let midnight: jiff::Timestamp = midnight_utc.parse().unwrap();
    ctx.clock.set(midnight - jiff::SignedDuration::from_secs(1));
    assert_eq!(
        ctx.get(&token, "/token/session/>whoAmI").await.status(),
        200,
        "{date}: 1 s before"
    );
    ctx.clock.set(midnight);
    let dead = ctx.get(&token, "/token/session/>whoAmI").await;
    assert_api_error(dead, 401, 3000).await;
    ctx.clock.set(midnight + jiff::SignedDuration::from_secs(1));
    assert_eq!(
        ctx.get(&token, "/token/session/>whoAmI").await.status(),
        401,
        "{date}: 1 s after"
    );
}

#[tokio::test]
async fn session_dies_at_oslo_midnight_across_dst() {
    let ctx = Ctx::new().await;
    // 29 March 2026 starts in CET (+01:00); DST begins at 02:00 that night.
    assert_dies_at(&ctx, "2026-03-29", "2026-03-28T23:00:00Z").await;
    // 25 October 2026 starts in CEST (+02:00); DST ends at 03:00 that night.
    ctx.clock.set("2026-10-01T10:00:00Z".parse().unwrap());
    assert_dies_at(&ctx, "2026-10-25", "2026-10-24T22:00:00Z").await;
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn a_token_dated_today_is_minted_dead() {
    let ctx = Ctx::new().await;
    let response = ctx.mint(CTX_CONSUMER, CTX_EMPLOYEE, "2026-03-10").await;
    assert_eq!(response.status(), 201);
    let token = token_of(response).await;
    assert_api_error(ctx.get(&token, "/token/session/>whoAmI").await, 401, 3000).await;
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn who_am_i_with_raw_and_encoded_angle_bracket() {
    let ctx = Ctx::new().await;
    let token = ctx.session().await;
    // reqwest always encodes `>`, so %3E arrives here.
    let body: Value = ctx
        .get(&token, "/token/session/%3EwhoAmI")
        .await
        .json()
        .await
        .unwrap();
    let value = &body["value"];
    assert_eq!(value["employeeId"], CTX_EMPLOYEE_ID);
    assert_eq!(value["companyId"], CTX_COMPANY);
    assert_eq!(value["company"]["name"], "Testfirma AS");
    assert_eq!(value["language"], "no");
    // A raw `>` needs a hand-written request (reqwest always encodes it).
    let mut stream = tokio::net::TcpStream::connect(ctx.running.addr())
        .await
        .unwrap();
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("0:{token}"));
    let request = format!(
        "GET /v2/token/session/>whoAmI?fields=companyId HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.ends_with(r#"{"value":{"companyId":4711}}"#), "{raw}");
    let slim: Value = ctx
        .get(&token, "/token/session/%3EwhoAmI?fields=companyId")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(slim, serde_json::json!({"value": {"companyId": 4711}}));
    let log = ctx.sim.request_log();
    assert!(
        log[1..]
            .iter()
            .all(|r| r.path == "/v2/token/session/>whoAmI")
    );
    assert_conforms(&log);
}

#[tokio::test]
async fn delete_session_gives_204_and_kills_it() {
    let ctx = Ctx::new().await;
    let token = ctx.session().await;
    let response = ctx
        .http
        .delete(ctx.url(&format!("/token/session/{token}")))
        .basic_auth("0", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(ctx.sim.live_sessions(), 0);
    assert_api_error(ctx.get(&token, "/token/session/>whoAmI").await, 401, 3000).await;
    let log = ctx.sim.request_log();
    assert_eq!(log[1].path, "/v2/token/session/{token}");
    assert_conforms(&log);
}

#[tokio::test]
async fn unknown_path_is_404_and_the_checker_notices() {
    let ctx = Ctx::new().await;
    let token = ctx.session().await;
    assert_api_error(ctx.get(&token, "/customers").await, 404, 6000).await;
    let log = ctx.sim.request_log();
    assert_eq!(spec::real_spec().problems(&log, &[]).len(), 1);
    assert_conforms(&log[..1]);
}

//! The simulator over real HTTP: sessions, auth, expiry at Oslo midnight, customers, invoices,
//! fields/sorting/paging, digests, rate limiting, access problems and injected faults. Every test
//! ends by checking its requests against the real OpenAPI spec.

mod common;

use std::time::Duration;

use common::{COMPANY, CONSUMER, Ctx, EMPLOYEE, EMPLOYEE_ID, assert_api_error, assert_conforms};
use jiff::civil::Date;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tripletex_sync::sim::{DEMO_SCENARIO, Fault, FaultKind, Scenario, Simulator};

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn post_create_gives_201_and_a_working_token() {
    let ctx = Ctx::new().await;
    let response = ctx.mint(CONSUMER, EMPLOYEE, "2026-03-20").await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let value = &body["value"];
    assert_eq!(value["expirationDate"], "2026-03-20");
    assert!(value["id"].is_i64() && value["consumerToken"]["id"].is_i64());
    assert!(value["employeeToken"]["id"].is_i64() && value["url"].is_string());
    let token = value["token"].as_str().unwrap();
    assert!(!token.contains(EMPLOYEE) && !token.contains(CONSUMER));
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
            ("consumerToken", CONSUMER),
            ("employeeToken", EMPLOYEE),
            ("expirationDate", "2026-03-20"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = common::token_of(response).await;
    assert_eq!(
        ctx.get(&token, "/token/session/>whoAmI").await.status(),
        200
    );
    let log = ctx.sim.request_log();
    assert!(
        log[0].query.iter().all(|(_, v)| !v.contains("c4n4ry")),
        "tokens are redacted"
    );
    common::assert_conforms_allowing_deprecated(&log, &[("PUT", "/token/session/:create")]);
}

#[tokio::test]
async fn create_validates_the_date_and_tokens() {
    let ctx = Ctx::new().await;
    for date in [None, Some(""), Some("20.03.2026")] {
        let mut body = serde_json::json!({"consumerToken": CONSUMER, "employeeToken": EMPLOYEE});
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
    let error = assert_api_error(ctx.mint("nope", EMPLOYEE, "2026-03-20").await, 401, 3000).await;
    assert_eq!(error["message"], "Invalid consumer token");
    let error = assert_api_error(ctx.mint(CONSUMER, "nope", "2026-03-20").await, 401, 3000).await;
    assert_eq!(error["message"], "Invalid employee token");
    ctx.sim.set_integrations_enabled(COMPANY, false);
    let error = assert_api_error(ctx.mint(CONSUMER, EMPLOYEE, "2026-03-20").await, 403, 9000).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Integrations add-on")
    );
    ctx.sim.set_integrations_enabled(COMPANY, true);
    ctx.sim.revoke_employee_token(EMPLOYEE);
    let error = assert_api_error(ctx.mint(CONSUMER, EMPLOYEE, "2026-03-20").await, 401, 3000).await;
    assert_eq!(error["message"], "Invalid employee token");
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
    let token = common::token_of(ctx.mint(CONSUMER, EMPLOYEE, date).await).await;
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
    let response = ctx.mint(CONSUMER, EMPLOYEE, "2026-03-10").await;
    assert_eq!(response.status(), 201);
    let token = common::token_of(response).await;
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
    assert_eq!(value["employeeId"], EMPLOYEE_ID);
    assert_eq!(value["companyId"], COMPANY);
    assert_eq!(value["company"]["name"], "Testfirma AS");
    assert_eq!(value["language"], "no");
    // A raw `>` needs a hand-written request. hyper's URI parser (the `http` crate) rejects it
    // with 400 before the simulator sees it; the notes say to send `%3E` anyway.
    let mut stream = tokio::net::TcpStream::connect(ctx.running.addr())
        .await
        .unwrap();
    let request = "GET /v2/token/session/>whoAmI HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
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
    if let Some(spec) = common::spec::real_spec() {
        assert_eq!(spec.problems(&log, &[]).len(), 1);
    }
    assert_conforms(&log[..1]);
}

async fn values(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["count"].as_u64(),
        body["values"].as_array().map(|v| v.len() as u64)
    );
    body["values"].as_array().unwrap().clone()
}

fn numbers(values: &[Value], key: &str) -> Vec<u64> {
    values.iter().map(|v| v[key].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn customer_filters_sorting_and_paging() {
    let ctx = Ctx::new().await;
    ctx.sim.add_customers(COMPANY, 1, 10, false);
    let inactive = ctx.sim.add_customer(COMPANY, 500, true);
    let token = ctx.session().await;

    let active = values(ctx.get(&token, "/customer").await).await;
    assert_eq!(
        numbers(&active, "customerNumber"),
        (1..=10).collect::<Vec<_>>()
    );
    let only_inactive = values(ctx.get(&token, "/customer?isInactive=true").await).await;
    assert_eq!(only_inactive[0]["id"], inactive);

    let picked = values(
        ctx.get(&token, "/customer?customerAccountNumber=3,7,99")
            .await,
    )
    .await;
    assert_eq!(numbers(&picked, "customerNumber"), [3, 7]);

    let top = values(
        ctx.get(
            &token,
            "/customer?sorting=-customerNumber&count=1&fields=id,customerNumber",
        )
        .await,
    )
    .await;
    assert_eq!(numbers(&top, "customerNumber"), [10]);

    let page = ctx.get(&token, "/customer?from=8&count=5").await;
    let body: Value = page.json().await.unwrap();
    assert_eq!(
        (
            body["fullResultSize"].as_u64(),
            body["from"].as_u64(),
            body["count"].as_u64()
        ),
        (Some(10), Some(8), Some(2))
    );
    assert!(body["versionDigest"].is_null());

    // Changed later: one new customer an hour on (12:00 Oslo time), one edit two hours on.
    ctx.clock.advance(Duration::from_secs(3600));
    ctx.sim.add_customer(COMPANY, 11, false);
    ctx.clock.advance(Duration::from_secs(3600));
    ctx.sim.set_customer_inactive(COMPANY, inactive, false);
    for (since, expected) in [
        ("2026-03-10", 12),
        ("2026-03-10T13:00:00", 2),
        ("2026-03-10T14:00:00%2B01:00", 1),
        ("2026-03-10T13:00:01Z", 0),
    ] {
        let changed = values(
            ctx.get(&token, &format!("/customer?changedSince={since}"))
                .await,
        )
        .await;
        assert_eq!(changed.len(), expected, "changedSince={since}");
    }
    let bad = ctx.get(&token, "/customer?sorting=shoeSize").await;
    assert_api_error(bad, 422, 17000).await;
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn fields_really_shrink_the_json() {
    let ctx = Ctx::new().await;
    ctx.sim.add_customers(COMPANY, 1, 3, false);
    ctx.sim
        .add_invoice(COMPANY, 6000, Date::constant(2026, 3, 1));
    let token = ctx.session().await;
    let full = ctx.get(&token, "/customer").await.text().await.unwrap();
    let slim = ctx
        .get(&token, "/customer?fields=customerNumber")
        .await
        .text()
        .await
        .unwrap();
    assert!(slim.len() * 4 < full.len(), "{slim}");
    let body: Value = serde_json::from_str(&slim).unwrap();
    assert_eq!(body["values"][0], serde_json::json!({"customerNumber": 1}));
    let invoice = values(ctx.get(&token, "/invoice?invoiceDateFrom=2026-01-01&invoiceDateTo=2026-04-01&fields=invoiceNumber,customer(id)").await).await;
    let keys: Vec<&String> = invoice[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["customer", "invoiceNumber"]);
    assert_eq!(invoice[0]["customer"].as_object().unwrap().len(), 1);
    assert_api_error(
        ctx.get(&token, "/customer?fields=id,shoeSize").await,
        400,
        11000,
    )
    .await;
    assert_api_error(
        ctx.get(&token, "/token/session/>whoAmI?fields=nope").await,
        400,
        11000,
    )
    .await;
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn invoices_need_their_dates_and_filter_by_them() {
    let ctx = Ctx::new().await;
    ctx.sim
        .add_invoices(COMPANY, 6000, 10, Date::constant(2026, 3, 1), 2);
    let token = ctx.session().await;
    let error = assert_api_error(
        ctx.get(&token, "/invoice?invoiceDateTo=2026-04-01").await,
        422,
        18000,
    )
    .await;
    assert_eq!(error["validationMessages"][0]["field"], "invoiceDateFrom");
    let error = assert_api_error(
        ctx.get(&token, "/invoice?invoiceDateFrom=2026-01-01").await,
        422,
        18000,
    )
    .await;
    assert_eq!(error["validationMessages"][0]["field"], "invoiceDateTo");
    // Two per day from 1 March: 3 March holds 6004 and 6005; the `to` date is exclusive.
    let march3 = values(
        ctx.get(
            &token,
            "/invoice?invoiceDateFrom=2026-03-03&invoiceDateTo=2026-03-04",
        )
        .await,
    )
    .await;
    assert_eq!(numbers(&march3, "invoiceNumber"), [6004, 6005]);
    assert_eq!(march3[0]["invoiceDate"], "2026-03-03");
    let exact = values(
        ctx.get(
            &token,
            "/invoice?invoiceDateFrom=2026-01-01&invoiceDateTo=2027-01-01&invoiceNumber=6007",
        )
        .await,
    )
    .await;
    assert_eq!(numbers(&exact, "invoiceNumber"), [6007]);
    let newest = values(ctx.get(&token, "/invoice?invoiceDateFrom=2026-01-01&invoiceDateTo=2027-01-01&sorting=-invoiceDate,-invoiceNumber&count=1").await).await;
    assert_eq!(numbers(&newest, "invoiceNumber"), [6009]);
    // Only the first check fails: a log with the bad requests is caught, the rest conforms.
    let log = ctx.sim.request_log();
    if let Some(spec) = common::spec::real_spec() {
        assert_eq!(spec.problems(&log, &[]).len(), 2);
    }
    let good: Vec<_> = log.into_iter().filter(|r| r.status != 422).collect();
    assert_conforms(&good);
}

#[tokio::test]
async fn if_none_match_gives_304_until_something_changes() {
    let ctx = Ctx::new().await;
    ctx.sim.add_customers(COMPANY, 1, 50, false);
    let token = ctx.session().await;
    let get = |etag: String| {
        ctx.http
            .get(ctx.url("/customer?fields=id,customerNumber&count=10"))
            .basic_auth("0", Some(&token))
            .header("If-None-Match", etag)
            .send()
    };
    let first: Value = get("x".into()).await.unwrap().json().await.unwrap();
    let digest = first["versionDigest"].as_str().unwrap().to_owned();
    let again = get(digest.clone()).await.unwrap();
    assert_eq!(again.status(), 304);
    assert!(header(&again, "x-tlx-request-id").is_some());
    assert_eq!(header(&again, "x-rate-limit-remaining"), Some("97"));
    assert!(again.bytes().await.unwrap().is_empty());
    // A change beyond the first page still changes the digest of the full result.
    ctx.sim.add_customer(COMPANY, 51, false);
    let changed = get(digest.clone()).await.unwrap();
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.unwrap();
    assert_ne!(body["versionDigest"].as_str(), Some(digest.as_str()));
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn rate_limit_headers_and_429_without_reset() {
    let ctx = Ctx::new().await;
    ctx.sim.set_rate_limit(3, Duration::from_secs(60));
    let token = ctx.session().await; // the mint counts: 2 left
    let ok = ctx.get(&token, "/token/session/>whoAmI").await;
    assert_eq!(header(&ok, "x-rate-limit-limit"), Some("3"));
    assert_eq!(header(&ok, "x-rate-limit-remaining"), Some("1"));
    let reset: u64 = header(&ok, "x-rate-limit-reset").unwrap().parse().unwrap();
    assert!((59..=60).contains(&reset), "{reset}");
    assert_eq!(
        ctx.get(&token, "/token/session/>whoAmI").await.status(),
        200
    );
    let limited = ctx.get(&token, "/token/session/>whoAmI").await;
    assert_eq!(header(&limited, "x-rate-limit-reset"), None);
    assert_eq!(header(&limited, "x-rate-limit-remaining"), Some("0"));
    assert_eq!(header(&limited, "x-rate-limit-limit"), Some("3"));
    assert_eq!(limited.status(), 429);
    // Moving the injected clock does not refill the window.
    ctx.clock.advance(Duration::from_secs(120));
    assert_eq!(
        ctx.get(&token, "/token/session/>whoAmI").await.status(),
        429
    );
    // Another employee of the same consumer has a window of its own.
    ctx.sim.add_employee_token("second-employee", COMPANY, 8);
    assert_eq!(
        ctx.mint(CONSUMER, "second-employee", "2026-03-20")
            .await
            .status(),
        201
    );
    let log = ctx.sim.request_log();
    assert_eq!(
        log.iter()
            .map(|r| r.rate_limit_remaining)
            .collect::<Vec<_>>(),
        [Some(2), Some(1), Some(0), Some(0), Some(0), Some(2)]
    );
    assert_conforms(&log);
}

#[tokio::test]
async fn revoked_key_disabled_add_on_and_denied_paths() {
    let ctx = Ctx::new().await;
    let token = ctx.session().await;
    ctx.sim.deny_access(EMPLOYEE, "/invoice");
    let denied = ctx
        .get(
            &token,
            "/invoice?invoiceDateFrom=2026-01-01&invoiceDateTo=2026-02-01",
        )
        .await;
    assert_api_error(denied, 403, 9000).await;
    assert_eq!(ctx.get(&token, "/customer").await.status(), 200);
    ctx.sim.set_integrations_enabled(COMPANY, false);
    assert_api_error(ctx.get(&token, "/customer").await, 403, 9000).await;
    ctx.sim.set_integrations_enabled(COMPANY, true);
    ctx.sim.revoke_employee_token(EMPLOYEE);
    assert_api_error(ctx.get(&token, "/customer").await, 401, 3000).await;
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn injected_faults() {
    let ctx = Ctx::new().await;
    ctx.sim.add_customers(COMPANY, 1, 20, false);
    let token = ctx.session().await;
    let on_customers = |kind| Fault {
        path_prefix: Some("/customer".into()),
        times: Some(1),
        ..Fault::always(kind)
    };

    ctx.sim.inject(on_customers(FaultKind::Status(503)));
    assert_eq!(
        ctx.get(&token, "/token/session/>whoAmI").await.status(),
        200,
        "other paths unaffected"
    );
    assert_api_error(ctx.get(&token, "/customer").await, 503, 0).await;
    assert_eq!(
        ctx.get(&token, "/customer").await.status(),
        200,
        "times ran out"
    );

    ctx.sim
        .inject(on_customers(FaultKind::Delay(Duration::from_millis(300))));
    let started = std::time::Instant::now();
    assert_eq!(ctx.get(&token, "/customer").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    ctx.sim.inject(on_customers(FaultKind::ConnectionReset));
    let reset = ctx
        .http
        .get(ctx.url("/customer"))
        .basic_auth("0", Some(&token))
        .send()
        .await;
    assert!(reset.is_err(), "{reset:?}");

    ctx.sim.inject(on_customers(FaultKind::MalformedJson));
    let malformed = ctx.get(&token, "/customer").await;
    assert_eq!(malformed.status(), 200);
    assert!(malformed.json::<Value>().await.is_err());

    ctx.sim.inject(Fault {
        employee_token: Some(EMPLOYEE.into()),
        ..Fault::always(FaultKind::TooManyRequests)
    });
    for _ in 0..2 {
        let storm = ctx.get(&token, "/customer").await;
        assert_eq!(storm.status(), 429);
        assert_eq!(header(&storm, "x-rate-limit-reset"), None);
    }
    ctx.sim.clear_faults();
    assert_eq!(ctx.get(&token, "/customer").await.status(), 200);

    let statuses: Vec<u16> = ctx.sim.request_log().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 200, 503, 200, 200, 0, 200, 429, 429, 200]);
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn pages_through_100k_customers_and_invoices() {
    let ctx = Ctx::new().await;
    ctx.sim.set_rate_limit(10_000, Duration::from_secs(10));
    ctx.sim.add_customers(COMPANY, 1, 100_000, false);
    ctx.sim
        .add_invoices(COMPANY, 1, 100_000, Date::constant(2025, 1, 1), 300);
    let token = ctx.session().await;
    let started = std::time::Instant::now();
    let mut seen = 0;
    while seen < 100_000 {
        let page = values(
            ctx.get(
                &token,
                &format!("/customer?fields=id,customerNumber&from={seen}&count=1000"),
            )
            .await,
        )
        .await;
        assert_eq!(page[0]["customerNumber"], seen + 1);
        seen += page.len();
    }
    let mut seen = 0;
    while seen < 100_000 {
        let query = format!(
            "/invoice?invoiceDateFrom=2000-01-01&invoiceDateTo=2100-01-01&fields=invoiceNumber&sorting=invoiceNumber&from={seen}&count=1000"
        );
        seen += values(ctx.get(&token, &query).await).await.len();
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_100_concurrent_connections() {
    let ctx = Ctx::new().await;
    ctx.sim.set_rate_limit(1000, Duration::from_secs(10));
    let token = ctx.session().await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        // A client each, so each request has its own connection.
        let client = reqwest::Client::new();
        let url = ctx.url("/token/session/>whoAmI");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            client
                .get(url)
                .basic_auth("0", Some(token))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 200);
    }
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn demo_scenario_parses_and_behaves() {
    let scenario = Scenario::from_toml_str(DEMO_SCENARIO).expect("demo.toml is valid");
    assert_eq!(scenario.companies.len(), 3);
    let clock = tripletex_sync::clock::ManualClock::new(common::START.parse().unwrap());
    let sim = Simulator::from_scenario(scenario, clock);
    let running = sim.start(([127, 0, 0, 1], 0).into()).await.unwrap();
    let http = reqwest::Client::new();
    let base = running.base_url();
    let mint = |employee: &str| {
        http.post(format!("{base}/token/session/:create"))
            .json(&serde_json::json!({"consumerToken": "demo-consumer-token", "employeeToken": employee, "expirationDate": "2026-03-20"}))
            .send()
    };
    let token = common::token_of(mint("demo-key-fjellsport").await.unwrap()).await;
    let top = |query: String| {
        http.get(format!("{base}{query}"))
            .basic_auth("0", Some(&token))
            .send()
    };
    let highest = values(
        top("/customer?fields=customerNumber&sorting=-customerNumber&count=1".into())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(highest[0]["customerNumber"], 100_035);
    let inactive = values(
        top(
            "/customer?isInactive=true&fields=customerNumber&sorting=-customerNumber&count=1"
                .into(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(inactive[0]["customerNumber"], 100_039);
    let newest = values(top("/invoice?invoiceDateFrom=2000-01-01&invoiceDateTo=2100-01-01&sorting=-invoiceNumber&count=1".into()).await.unwrap()).await;
    assert_eq!(newest[0]["invoiceNumber"], 50_030);
    assert_eq!(newest[0]["invoiceDate"], "2026-03-10", "series end today");
    let revoked = mint("demo-key-sykkelsmia").await.unwrap();
    assert_api_error(revoked, 401, 3000).await;
    assert_eq!(
        mint("demo-key-kaffebrenneriet").await.unwrap().status(),
        201
    );
    assert_conforms(&sim.request_log());
    running.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let ctx = Ctx::new().await;
    let url = ctx.url("/token/session/>whoAmI");
    assert_eq!(ctx.http.get(&url).send().await.unwrap().status(), 401);
    ctx.running.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(&url).send().await.is_err());
    assert_conforms(&ctx.sim.request_log());
}

//! Customers and invoices: filters, `fields`, `sorting`, paging, `If-None-Match`, 100k records.

use std::time::Duration;

use jiff::civil::Date;
use serde_json::Value;

use tripletex_sync_fixture::sim::{CTX_COMPANY, Ctx, assert_api_error};
use tripletex_sync_fixture::spec::{self, assert_conforms};

use crate::{header, numbers, values};

#[tokio::test]
async fn customer_filters_sorting_and_paging() {
    let ctx = Ctx::new().await;
    ctx.sim.add_customers(CTX_COMPANY, 1, 10, false);
    let inactive = ctx.sim.add_customer(CTX_COMPANY, 500, true);
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
    ctx.sim.add_customer(CTX_COMPANY, 11, false);
    ctx.clock.advance(Duration::from_secs(3600));
    ctx.sim.set_customer_inactive(CTX_COMPANY, inactive, false);
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
    ctx.sim.add_customers(CTX_COMPANY, 1, 3, false);
    ctx.sim
        .add_invoice(CTX_COMPANY, 6000, Date::constant(2026, 3, 1));
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
        .add_invoices(CTX_COMPANY, 6000, 10, Date::constant(2026, 3, 1), 2);
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
    assert_eq!(spec::real_spec().problems(&log, &[]).len(), 2);
    let good: Vec<_> = log.into_iter().filter(|r| r.status != 422).collect();
    assert_conforms(&good);
}

#[tokio::test]
async fn if_none_match_gives_304_until_something_changes() {
    let ctx = Ctx::new().await;
    ctx.sim.add_customers(CTX_COMPANY, 1, 50, false);
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
    ctx.sim.add_customer(CTX_COMPANY, 51, false);
    let changed = get(digest.clone()).await.unwrap();
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.unwrap();
    assert_ne!(body["versionDigest"].as_str(), Some(digest.as_str()));
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn pages_through_100k_customers_and_invoices() {
    let ctx = Ctx::new().await;
    ctx.sim.set_rate_limit(10_000, Duration::from_secs(10));
    ctx.sim.add_customers(CTX_COMPANY, 1, 100_000, false);
    ctx.sim
        .add_invoices(CTX_COMPANY, 1, 100_000, Date::constant(2025, 1, 1), 300);
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

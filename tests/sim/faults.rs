//! Rate limiting, access problems, injected faults, concurrency, the demo scenario, shutdown.

use std::time::Duration;

use serde_json::Value;
use tripletex_sim::{DEMO_SCENARIO, Fault, FaultKind, Scenario, Simulator};

use tripletex_sync_fixture::sim::{
    CTX_COMPANY, CTX_CONSUMER, CTX_EMPLOYEE, Ctx, assert_api_error, clock_at_start,
    start_on_loopback, token_of,
};
use tripletex_sync_fixture::spec::assert_conforms;

use crate::{header, values};

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
    ctx.sim
        .add_employee_token("second-employee", CTX_COMPANY, 8);
    assert_eq!(
        ctx.mint(CTX_CONSUMER, "second-employee", "2026-03-20")
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
    ctx.sim.deny_access(CTX_EMPLOYEE, "/invoice");
    let denied = ctx
        .get(
            &token,
            "/invoice?invoiceDateFrom=2026-01-01&invoiceDateTo=2026-02-01",
        )
        .await;
    assert_api_error(denied, 403, 9000).await;
    assert_eq!(ctx.get(&token, "/customer").await.status(), 200);
    ctx.sim.set_integrations_enabled(CTX_COMPANY, false);
    assert_api_error(ctx.get(&token, "/customer").await, 403, 9000).await;
    ctx.sim.set_integrations_enabled(CTX_COMPANY, true);
    ctx.sim.revoke_employee_token(CTX_EMPLOYEE);
    assert_api_error(ctx.get(&token, "/customer").await, 401, 3000).await;
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn injected_faults() {
    let ctx = Ctx::new().await;
    ctx.sim.add_customers(CTX_COMPANY, 1, 20, false);
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
        employee_token: Some(CTX_EMPLOYEE.into()),
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
    let sim = Simulator::from_scenario(scenario, clock_at_start());
    let running = start_on_loopback(&sim).await;
    let http = reqwest::Client::new();
    let base = running.base_url();
    let mint = |employee: &str| {
        http.post(format!("{base}/token/session/:create"))
            .json(&serde_json::json!({"consumerToken": "demo-consumer-token", "employeeToken": employee, "expirationDate": "2026-03-20"}))
            .send()
    };
    let token = token_of(mint("demo-key-fjellsport").await.unwrap()).await;
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
    assert_api_error(revoked, 422, 18000).await;
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

#[tokio::test]
async fn answer_shaping_faults_bend_list_answers_only() {
    use std::io::Read as _;
    use tripletex_sim::Mutation;

    let ctx = Ctx::new().await;
    ctx.sim.add_customers(CTX_COMPANY, 1, 20, false);
    let token = ctx.session().await;
    let body = |response: reqwest::Response| async move { response.json::<Value>().await.unwrap() };

    ctx.sim.inject(Fault {
        times: Some(2),
        ..Fault::always(FaultKind::Envelope(vec![
            Mutation::RemoveKey("values".into()),
            Mutation::SetKey("count".into(), serde_json::json!("many")),
        ]))
    });
    let who = body(ctx.get(&token, "/token/session/>whoAmI").await).await;
    assert!(who["value"].is_object(), "not a list: untouched: {who}");
    let mutated = body(ctx.get(&token, "/customer").await).await;
    assert!(mutated.get("values").is_none(), "{mutated}");
    assert_eq!(mutated["count"], "many");

    ctx.sim.inject(Fault {
        times: Some(1),
        ..Fault::always(FaultKind::EndlessPages)
    });
    let endless = body(ctx.get(&token, "/customer?from=5000&count=3").await).await;
    assert_eq!(endless["from"], 5000);
    assert_eq!(endless["count"], 3);
    assert_eq!(endless["fullResultSize"], 5006);
    assert_eq!(endless["values"].as_array().unwrap().len(), 3);

    ctx.sim.inject(Fault {
        times: Some(1),
        ..Fault::always(FaultKind::RepeatFirstPage)
    });
    let again = body(ctx.get(&token, "/customer?from=10&count=5&fields=id").await).await;
    let first = body(ctx.get(&token, "/customer?from=0&count=5&fields=id").await).await;
    assert_eq!(again["from"], 10);
    assert!(again.get("fullResultSize").is_none(), "{again}");
    assert_eq!(again["values"], first["values"]);

    for gzip in [false, true] {
        ctx.sim.inject(Fault {
            times: Some(1),
            ..Fault::always(FaultKind::HugeBody {
                bytes: 3 << 20,
                gzip,
            })
        });
        let huge = ctx.get(&token, "/customer").await;
        assert_eq!(huge.status(), 200);
        assert_eq!(header(&huge, "content-length"), None, "sent chunked");
        assert_eq!(
            header(&huge, "content-encoding"),
            gzip.then_some("gzip"),
            "gzip {gzip}"
        );
        let wire = huge.bytes().await.unwrap();
        let mut decoded = Vec::new();
        if gzip {
            flate2::read::MultiGzDecoder::new(&wire[..])
                .read_to_end(&mut decoded)
                .unwrap();
            assert!(wire.len() < 1 << 20, "gzip'd small: {}", wire.len());
        } else {
            decoded = wire.to_vec();
        }
        assert!(decoded.len() >= 3 << 20, "{}", decoded.len());
        let value: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(value["values"], serde_json::json!([]));
    }
    assert_conforms(&ctx.sim.request_log());
}

#[tokio::test]
async fn an_answer_fault_replaces_any_200_answer_but_no_error() {
    let ctx = Ctx::new().await;
    let token = ctx.session().await;
    let empty = serde_json::json!({"value": {}});
    for _ in 0..2 {
        ctx.sim.inject(Fault {
            times: Some(1),
            ..Fault::always(FaultKind::Answer(empty.clone()))
        });
    }
    let who: Value = ctx
        .get(&token, "/token/session/>whoAmI")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(who, empty);
    assert_eq!(
        ctx.get("dead-token", "/token/session/>whoAmI")
            .await
            .status(),
        401
    );
    assert_conforms(&ctx.sim.request_log());
}

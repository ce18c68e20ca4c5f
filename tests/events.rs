//! The stable log events an operator alerts on, at the levels `src/pass.rs` and
//! `src/daemon/report.rs` promise: a verdict change is one `check.verdict` (conflict = ERROR,
//! recovery = INFO) and an unchanged verdict is DEBUG only; a rejected key is one ERROR
//! `session.key_rejected` when the state changes, not one per pass (a key of another company than
//! the shop's `company_id` too, after a WARN `session.wrong_company` per attempt); a rejected
//! consumer token is one ERROR `consumer_token.rejected` per round, not one per shop. No line
//! carries a token.
//!
//! One global JSON subscriber (TRACE, every crate) is shared by the tests of this binary through a
//! `OnceLock`; each test reads only the lines after its own marks and filters by its own shop
//! names (or, for the shop-less consumer event, by a span of its own).

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tripletex_sync::daemon;
use tripletex_sync_fixture::capture::{Captured, capture_json};
use tripletex_sync_fixture::daemon::{FIXTURE_CONSUMER, Fixture, write_private};
use tripletex_sync_fixture::spec;

const HOUR: Duration = Duration::from_secs(3600);

/// Every line logged since `mark`, parsed.
fn since(captured: &Captured, mark: usize) -> Vec<Value> {
    captured
        .since(mark)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn str_field<'a>(line: &'a Value, key: &str) -> &'a str {
    line.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The lines with `event = name` about `shop`.
fn events<'a>(lines: &'a [Value], name: &str, shop: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| str_field(l, "event") == name && str_field(l, "shop") == shop)
        .collect()
}

/// `check.verdict` lines about `shop`'s `check`.
fn verdicts<'a>(lines: &'a [Value], shop: &str, check: &str) -> Vec<&'a Value> {
    events(lines, "check.verdict", shop)
        .into_iter()
        .filter(|l| str_field(l, "check") == check)
        .collect()
}

/// `(level, verdict, was)` of a `check.verdict` line.
fn verdict_of(line: &Value) -> (&str, &str, &str) {
    (
        str_field(line, "level"),
        str_field(line, "verdict"),
        str_field(line, "was"),
    )
}

/// Panics if any captured line (of any test so far) contains one of `secrets`.
fn assert_no_secrets(captured: &Captured, secrets: &[&str]) {
    let text = String::from_utf8_lossy(&captured.bytes()).into_owned();
    assert!(!text.is_empty(), "nothing was captured");
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "a token ({secret}) appears in the log"
        );
    }
}

#[tokio::test]
async fn verdict_changes_log_once_at_their_level_and_unchanged_verdicts_only_at_debug() {
    let captured = capture_json();
    const SHOP: &str = "ev-verdicts";
    const COMPANY: i64 = 3101;
    let f = Fixture::new().await;
    let token = f.add_shop(SHOP, COMPANY, "");
    f.sim.add_customers(COMPANY, 1, 50, false);
    let store = f.open_store();
    let api = f.api();
    let client = f.client(&api, SHOP, &CancellationToken::new());

    // First pass of a healthy shop: unknown -> ok is a change, logged once at INFO per check.
    let mark = captured.mark();
    f.pass(&store, &client, 1).await;
    let lines = since(&captured, mark);
    for check in ["customer_numbers", "invoice_numbers"] {
        let found = verdicts(&lines, SHOP, check);
        assert_eq!(found.len(), 1, "{check}: {found:#?}");
        assert_eq!(verdict_of(found[0]), ("INFO", "ok", "unknown"), "{check}");
    }

    // An unchanged pass: DEBUG only.
    f.clock.advance(HOUR);
    let mark = captured.mark();
    f.pass(&store, &client, 2).await;
    let lines = since(&captured, mark);
    for check in ["customer_numbers", "invoice_numbers"] {
        let found = verdicts(&lines, SHOP, check);
        assert_eq!(found.len(), 1, "{check}: {found:#?}");
        assert_eq!(verdict_of(found[0]), ("DEBUG", "ok", "ok"), "{check}");
    }

    // Tripletex's own series turns up inside the shop's range [1, 100000): one ERROR conflict.
    let intruder = f.sim.add_customer(COMPANY, 12345, false);
    f.clock.advance(HOUR);
    let mark = captured.mark();
    f.pass(&store, &client, 3).await;
    let lines = since(&captured, mark);
    let found = verdicts(&lines, SHOP, "customer_numbers");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(verdict_of(found[0]), ("ERROR", "conflict", "ok"));
    assert!(
        str_field(found[0], "summary").contains("12345"),
        "{:#}",
        found[0]
    );
    assert!(!str_field(found[0], "fix").is_empty(), "{:#}", found[0]);
    let invoices = verdicts(&lines, SHOP, "invoice_numbers");
    assert_eq!(invoices.len(), 1, "{invoices:#?}");
    assert_eq!(verdict_of(invoices[0]).0, "DEBUG", "invoices are unchanged");

    // Still in conflict: no second ERROR.
    f.clock.advance(HOUR);
    let mark = captured.mark();
    f.pass(&store, &client, 4).await;
    let lines = since(&captured, mark);
    let found = verdicts(&lines, SHOP, "customer_numbers");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(verdict_of(found[0]), ("DEBUG", "conflict", "conflict"));

    // The customer goes away: the recovery is one INFO.
    f.sim.remove_customer(COMPANY, intruder);
    f.clock.advance(HOUR);
    let mark = captured.mark();
    f.pass(&store, &client, 5).await;
    let lines = since(&captured, mark);
    let found = verdicts(&lines, SHOP, "customer_numbers");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(verdict_of(found[0]), ("INFO", "ok", "conflict"));

    let everything = since(&captured, 0);
    assert!(events(&everything, "session.key_rejected", SHOP).is_empty());
    assert_no_secrets(&captured, &[&token, FIXTURE_CONSUMER]);
    spec::assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn a_revoked_key_is_one_error_over_three_passes() {
    let captured = capture_json();
    const SHOP: &str = "ev-revoked";
    const COMPANY: i64 = 3201;
    let f = Fixture::new().await;
    let token = f.add_shop(SHOP, COMPANY, "");
    f.sim.add_customers(COMPANY, 1, 20, false);
    let store = f.open_store();
    let api = f.api();
    let client = f.client(&api, SHOP, &CancellationToken::new());

    let start = captured.mark();
    f.pass(&store, &client, 1).await;
    f.sim.revoke_employee_token(&token);
    let mut counts = Vec::new();
    for pass_no in 2..=4 {
        f.clock.advance(HOUR);
        let report = f.pass(&store, &client, pass_no).await;
        assert_eq!(
            report.session.state,
            tripletex_sync::store::SessionState::KeyRejected,
            "pass {pass_no}"
        );
        let lines = since(&captured, start);
        counts.push(events(&lines, "session.key_rejected", SHOP).len());
    }
    assert_eq!(
        counts,
        [1, 1, 1],
        "logged at the first pass after the revocation, then never again"
    );
    let lines = since(&captured, start);
    let rejected = events(&lines, "session.key_rejected", SHOP);
    assert_eq!(
        str_field(rejected[0], "level"),
        "ERROR",
        "{:#}",
        rejected[0]
    );

    assert_no_secrets(&captured, &[&token, FIXTURE_CONSUMER]);
    spec::assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn an_unknown_consumer_token_is_one_error_per_round_not_per_shop() {
    let captured = capture_json();
    const SHOPS: [&str; 2] = ["ev-consumer-a", "ev-consumer-b"];
    const CASE: &str = "unknown-consumer";
    let bogus = "events-test-consumer-token-the-sim-never-heard-of";
    let f = Fixture::new().await;
    let tokens = [
        f.add_shop(SHOPS[0], 3301, ""),
        f.add_shop(SHOPS[1], 3302, ""),
    ];
    write_private(&f.path("consumer-token"), bogus);
    let config = f.config();
    let store = f.open_store();
    let env = f.env();

    let start = captured.mark();
    for round in 1..=2 {
        let mark = captured.mark();
        // `consumer_token.rejected` names no shop; this span tells our rounds apart from any
        // other test's.
        let span = tracing::info_span!("events_test", case = CASE, round);
        let reports = daemon::check_once(
            config.clone(),
            store.clone(),
            &env,
            &[],
            CancellationToken::new(),
        )
        .instrument(span)
        .await
        .unwrap();
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|r| r.consumer_rejected), "{reports:#?}");

        let lines = since(&captured, mark);
        let ours: Vec<&Value> = lines
            .iter()
            .filter(|l| str_field(l, "event") == "consumer_token.rejected")
            .filter(|l| {
                l["spans"]
                    .as_array()
                    .is_some_and(|spans| spans.iter().any(|s| s["case"] == CASE))
            })
            .collect();
        assert_eq!(ours.len(), 1, "round {round}: {ours:#?}");
        assert_eq!(str_field(ours[0], "level"), "ERROR", "{:#}", ours[0]);
        assert_eq!(ours[0]["shops"], 2, "{:#}", ours[0]);
        f.clock.advance(HOUR);
    }

    let lines = since(&captured, start);
    for shop in SHOPS {
        let rejected = events(&lines, "session.key_rejected", shop);
        assert!(
            rejected.is_empty(),
            "{shop}: the shop's key is not to blame: {rejected:#?}"
        );
    }
    assert_no_secrets(&captured, &[&tokens[0], &tokens[1], bogus]);
    spec::assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn a_key_of_another_company_warns_per_attempt_and_is_rejected_once() {
    let captured = capture_json();
    const SHOP: &str = "ev-wrong-company";
    const COMPANY: i64 = 3301;
    let f = Fixture::new().await;
    let token = f.add_shop(SHOP, COMPANY, "company_id = 3302\n");
    f.sim.add_company(3302, "Other AS", true);
    let store = f.open_store();
    let api = f.api();
    let client = f.client(&api, SHOP, &CancellationToken::new());

    let start = captured.mark();
    for pass_no in 1..=2 {
        f.pass(&store, &client, pass_no).await;
        f.clock.advance(HOUR);
    }
    let lines = since(&captured, start);
    let wrong = events(&lines, "session.wrong_company", SHOP);
    assert_eq!(wrong.len(), 2, "one per mint: {wrong:#?}");
    for line in wrong {
        assert_eq!(str_field(line, "level"), "WARN", "{line:#}");
        assert_eq!(line["company_id"], 3302, "{line:#}");
        assert_eq!(line["key_company_id"], COMPANY, "{line:#}");
    }
    let rejected = events(&lines, "session.key_rejected", SHOP);
    assert_eq!(rejected.len(), 1, "once per change: {rejected:#?}");
    assert!(
        str_field(rejected[0], "remedy")
            .contains("the key belongs to company 3301; fix company_id"),
        "{:#}",
        rejected[0]
    );
    assert_no_secrets(&captured, &[&token, FIXTURE_CONSUMER]);
    spec::assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn a_shop_file_that_is_never_read_is_a_config_warning() {
    let captured = capture_json();
    const CASE: &str = "unread-shop-file";
    let f = Fixture::new().await;
    f.add_shop("ev-warned", 3401, "");
    std::fs::write(f.path("shops.d/bike.TOML"), "").unwrap();
    let mark = captured.mark();
    let span = tracing::info_span!("events_test", case = CASE);
    daemon::check_once(
        f.config(),
        f.open_store(),
        &f.env(),
        &[],
        CancellationToken::new(),
    )
    .instrument(span)
    .await
    .unwrap();
    let lines = since(&captured, mark);
    let warned: Vec<&Value> = lines
        .iter()
        .filter(|l| str_field(l, "event") == "config.warning")
        .filter(|l| {
            l["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["case"] == CASE))
        })
        .collect();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert_eq!(str_field(warned[0], "level"), "WARN");
    assert!(
        str_field(warned[0], "warning").contains("bike.TOML"),
        "{:#}",
        warned[0]
    );
}

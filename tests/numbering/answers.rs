//! Answers from Tripletex that must not be believed: a list without `values`, paging that never
//! ends or repeats itself, a huge page, a pass past its deadline, a 304 nobody asked for. Each is an `error` for the check
//! it hit, never `ok`, and leaves that kind's mirror as it was.

use std::time::Duration;

use serde_json::json;
use tripletex_sim::{Fault, FaultKind, Mutation};
use tripletex_sync::checks::CheckKind::{CustomerNumbers, InvoiceNumbers};
use tripletex_sync::checks::Verdict;

use crate::{DAY, HOUR, Shop, conforms, customers, days_before, describe, invoices, today};
use tripletex_sync_fixture::daemon::{Fixture, MAIN};

fn on(path: &str, kind: FaultKind) -> Fault {
    Fault {
        path_prefix: Some(path.into()),
        ..Fault::always(kind)
    }
}

/// Customers 1..=50 and Tripletex's from 100 000; invoices 6000..=6019 over the last 20 days.
fn shop_with_data(f: &Fixture) {
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 50, false);
    f.sim.add_customers(1001, 100_000, 5, false);
    f.sim
        .add_invoices(1001, 6000, 20, days_before(today(f), 19), 1);
}

/// A mirror in id order, to compare.
fn sorted<T>(mut v: Vec<(i64, T)>) -> Vec<(i64, T)> {
    v.sort_by_key(|(id, _)| *id);
    v
}

#[tokio::test]
async fn no_values_on_a_shop_in_conflict_is_an_error_keeps_the_mirror_and_the_conflict_stays() {
    let f = Fixture::new().await;
    shop_with_data(&f);
    let mut shop = Shop::open(&f, "acme");
    assert_eq!(customers(&shop.pass(&f).await).verdict, Verdict::Ok);
    f.clock.advance(HOUR);
    f.sim.add_customer(1001, 12_345, false);
    assert_eq!(customers(&shop.pass(&f).await).verdict, Verdict::Conflict);
    let mirror = sorted(shop.store.mirror("acme", CustomerNumbers).unwrap());
    let cursor = shop.store.cursor("acme").unwrap();

    // Tripletex answers 200 without `values`.
    f.clock.advance(HOUR);
    f.sim.inject(on(
        "/customer",
        FaultKind::Envelope(vec![Mutation::RemoveKey("values".into())]),
    ));
    let report = shop.pass(&f).await;
    let c = customers(&report);
    assert_eq!(c.verdict, Verdict::Error, "{c:#?}");
    assert!(c.summary.contains("no `values`"), "{}", c.summary);
    assert_eq!(invoices(&report).verdict, Verdict::Ok);
    assert_eq!(
        sorted(shop.store.mirror("acme", CustomerNumbers).unwrap()),
        mirror
    );
    let after = shop.store.cursor("acme").unwrap();
    assert_eq!(
        after.of(CustomerNumbers).since,
        cursor.of(CustomerNumbers).since
    );
    assert_eq!(
        after.of(CustomerNumbers).full,
        cursor.of(CustomerNumbers).full
    );

    // Tripletex answers properly again: the next (cheap) pass still reports the conflict.
    f.clock.advance(HOUR);
    f.sim.clear_faults();
    let report = shop.pass(&f).await;
    let c = customers(&report);
    assert_eq!(c.verdict, Verdict::Conflict, "{c:#?}");
    assert!(c.summary.contains("12345"), "{}", c.summary);
    conforms(&f);
}

#[tokio::test]
async fn endless_paging_ends_the_pass_with_an_error_within_the_page_budget() {
    let f = Fixture::with_main(&format!("{MAIN}max_records = 5000\n")).await;
    shop_with_data(&f);
    let mut shop = Shop::open(&f, "acme");
    assert_eq!(customers(&shop.pass(&f).await).verdict, Verdict::Ok);
    let mirror = sorted(shop.store.mirror("acme", CustomerNumbers).unwrap());

    // A full resync against a server that always answers 1000 fresh rows and "more to come".
    f.clock.advance(DAY + HOUR);
    f.sim.inject(on("/customer", FaultKind::EndlessPages));
    f.sim.clear_request_log();
    let report = tokio::time::timeout(Duration::from_secs(60), shop.pass(&f))
        .await
        .expect("the pass ends");
    let c = customers(&report);
    assert_eq!(c.verdict, Verdict::Error, "{c:#?}");
    assert!(
        c.summary.contains("more than 5000 records") && c.summary.contains("checks.max_records"),
        "{}",
        c.summary
    );
    assert_eq!(invoices(&report).verdict, Verdict::Ok);
    // Memory stays bounded because reads do: 5000 rows fit 5 pages, plus 2 short last pages.
    let reads: Vec<_> = f
        .data_requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/customer"))
        .collect();
    assert_eq!(reads.len(), 7, "{}", describe(&reads));
    assert_eq!(
        sorted(shop.store.mirror("acme", CustomerNumbers).unwrap()),
        mirror
    );
    conforms(&f);
}

#[tokio::test]
async fn a_server_that_ignores_from_is_refused_at_the_first_repeated_row() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 1500, false);
    f.sim.inject(on("/customer", FaultKind::RepeatFirstPage));
    let mut shop = Shop::open(&f, "acme");
    let report = shop.pass(&f).await;
    let c = customers(&report);
    assert_eq!(c.verdict, Verdict::Error, "{c:#?}");
    assert!(
        c.summary.contains("from=1000 repeats row id"),
        "{}",
        c.summary
    );
    assert!(
        shop.store
            .mirror("acme", CustomerNumbers)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.data_requests().len(),
        2 + 2,
        "two customer pages, two invoice reads"
    );
    conforms(&f);
}

#[tokio::test]
async fn a_100_mb_page_is_refused_plain_or_gzipped() {
    let f = Fixture::new().await;
    shop_with_data(&f);
    let mut shop = Shop::open(&f, "acme");
    assert_eq!(customers(&shop.pass(&f).await).verdict, Verdict::Ok);
    let mirror = sorted(shop.store.mirror("acme", CustomerNumbers).unwrap());
    for gzip in [false, true] {
        f.clock.advance(DAY + HOUR);
        f.sim.inject(Fault {
            times: Some(1),
            ..on(
                "/customer",
                FaultKind::HugeBody {
                    bytes: 100 << 20,
                    gzip,
                },
            )
        });
        let report = shop.pass(&f).await;
        let c = customers(&report);
        assert_eq!(c.verdict, Verdict::Error, "gzip {gzip}: {c:#?}");
        assert!(
            c.summary.contains("larger than 32 MiB; refused"),
            "gzip {gzip}: {}",
            c.summary
        );
        assert_eq!(
            sorted(shop.store.mirror("acme", CustomerNumbers).unwrap()),
            mirror
        );
    }
    conforms(&f);
}

#[tokio::test]
async fn a_pass_past_its_deadline_gives_error_to_the_checks_not_finished() {
    let f = Fixture::with_main(&format!("{MAIN}pass_deadline = \"1s\"\n")).await;
    shop_with_data(&f);
    let mut shop = Shop::open(&f, "acme");
    assert_eq!(invoices(&shop.pass(&f).await).verdict, Verdict::Ok);
    let mirror = sorted(shop.store.mirror("acme", InvoiceNumbers).unwrap());
    f.clock.advance(HOUR);
    f.sim.add_invoice(1001, 6020, today(&f));
    f.sim
        .inject(on("/invoice", FaultKind::Delay(Duration::from_secs(3))));
    let report = shop.pass(&f).await;
    assert_eq!(customers(&report).verdict, Verdict::Ok);
    let i = invoices(&report);
    assert_eq!(i.verdict, Verdict::Error, "{i:#?}");
    assert!(
        i.summary.contains("checks.pass_deadline (1s)"),
        "{}",
        i.summary
    );
    assert_eq!(
        sorted(shop.store.mirror("acme", InvoiceNumbers).unwrap()),
        mirror
    );
    conforms(&f);
}

#[tokio::test]
async fn a_harmless_change_to_an_answer_is_still_believed() {
    // The other tests are not vacuous: an extra field and a changed digest are fine.
    let f = Fixture::new().await;
    shop_with_data(&f);
    f.sim.inject(on(
        "/customer",
        FaultKind::Envelope(vec![
            Mutation::SetField {
                row: 3,
                field: "name".into(),
                value: json!("Kunde"),
            },
            Mutation::SetKey("versionDigest".into(), json!("abc")),
        ]),
    ));
    let mut shop = Shop::open(&f, "acme");
    let report = shop.pass(&f).await;
    let c = customers(&report);
    assert_eq!(c.verdict, Verdict::Ok, "{c:#?}");
    assert_eq!(c.evidence.numbers_in_use, 55);
    conforms(&f);
}

#[tokio::test]
async fn a_mint_answered_500_is_named_as_such_pass_after_pass() {
    let f = Fixture::new().await;
    shop_with_data(&f);
    f.sim
        .inject(on("/token/session/:create", FaultKind::Status(500)));
    let mut shop = Shop::open(&f, "acme");
    // The third pass meets the open circuit (5 failures in a row): still named as the 500.
    for pass in 1..=3 {
        let report = shop.pass(&f).await;
        for outcome in &report.outcomes() {
            assert_eq!(outcome.verdict, Verdict::Error, "pass {pass}: {outcome:#?}");
            let summary = &outcome.summary;
            assert!(
                summary.contains("Tripletex answered 500 (code 1000): Internal error"),
                "pass {pass}: {summary}"
            );
            assert!(!summary.contains("connection"), "pass {pass}: {summary}");
        }
        f.clock.advance(HOUR);
    }
    conforms(&f);
}

#[tokio::test]
async fn a_mint_that_hangs_past_the_deadline_ends_the_pass_with_errors() {
    let f = Fixture::with_main(&format!("{MAIN}pass_deadline = \"1s\"\n")).await;
    shop_with_data(&f);
    f.sim.inject(on(
        "/token/session/:create",
        FaultKind::Delay(Duration::from_secs(3)),
    ));
    let mut shop = Shop::open(&f, "acme");
    let report = shop.pass(&f).await;
    for outcome in &report.outcomes() {
        assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
        assert!(
            outcome.summary.contains("checks.pass_deadline (1s)"),
            "{}",
            outcome.summary
        );
    }
    assert!(
        shop.store
            .mirror("acme", CustomerNumbers)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn max_records_and_pass_deadline_are_checked_at_their_edges() {
    use tripletex_sync::config::Config;
    let f = Fixture::new().await;
    let cases = [
        ("max_records = 1000", None),
        ("max_records = 100000000", None),
        ("max_records = 999", Some("checks.max_records")),
        ("max_records = 100000001", Some("checks.max_records")),
        ("pass_deadline = \"1s\"", None),
        ("pass_deadline = \"24h\"", None),
        ("pass_deadline = \"999ms\"", Some("checks.pass_deadline")),
        ("pass_deadline = \"25h\"", Some("checks.pass_deadline")),
    ];
    let main = std::fs::read_to_string(&f.config_path).unwrap();
    for (line, refused) in cases {
        std::fs::write(&f.config_path, format!("{main}{line}\n")).unwrap();
        match (Config::load(&f.config_path), refused) {
            (Ok(_), None) => {}
            (Err(e), Some(key)) => {
                let text = e.to_string();
                assert!(text.contains(&format!("`{key}`")), "{line}: {text}");
                assert!(text.contains("(fix: "), "{line}: {text}");
            }
            (other, _) => panic!("{line}: {other:?}"),
        }
    }
    std::fs::write(&f.config_path, &main).unwrap();
    let checks = Config::load(&f.config_path).unwrap().checks;
    assert_eq!(checks.max_records, 2_000_000);
    assert_eq!(checks.pass_deadline, Duration::from_secs(30 * 60));
}

/// A 304 is an answer to `If-None-Match` only: to a full resync (sent without one) it says
/// nothing about the numbers in use, and must not read as "no customers".
#[tokio::test]
async fn a_304_to_a_request_without_if_none_match_is_an_error_not_an_empty_list() {
    let f = Fixture::new().await;
    shop_with_data(&f);
    f.sim.add_customer(1001, 12_345, false);
    let mut shop = Shop::open(&f, "acme");
    assert_eq!(customers(&shop.pass(&f).await).verdict, Verdict::Conflict);
    let mirror = sorted(shop.store.mirror("acme", CustomerNumbers).unwrap());
    let invoice_mirror = sorted(shop.store.mirror("acme", InvoiceNumbers).unwrap());

    // The daily full resync of both kinds, answered 304 throughout.
    f.clock.advance(DAY + HOUR);
    f.sim.inject(on("/customer", FaultKind::Status(304)));
    f.sim.inject(on("/invoice", FaultKind::Status(304)));
    let report = shop.pass(&f).await;
    for c in [customers(&report), invoices(&report)] {
        assert_eq!(c.verdict, Verdict::Error, "{c:#?}");
        assert!(
            c.summary.contains("304") && c.summary.contains("If-None-Match"),
            "{}",
            c.summary
        );
    }
    assert_eq!(
        sorted(shop.store.mirror("acme", CustomerNumbers).unwrap()),
        mirror
    );
    assert_eq!(
        sorted(shop.store.mirror("acme", InvoiceNumbers).unwrap()),
        invoice_mirror
    );

    f.clock.advance(HOUR);
    f.sim.clear_faults();
    let c = customers(&shop.pass(&f).await).clone();
    assert_eq!(c.verdict, Verdict::Conflict, "{c:#?}");
    conforms(&f);
}

/// The window is asked with a placeholder `If-None-Match` when no digest is known (here: a new
/// day moved the window): a 304 to it cannot mean "unchanged".
#[tokio::test]
async fn a_304_to_the_placeholder_digest_is_an_error() {
    let f = Fixture::new().await;
    shop_with_data(&f);
    let mut shop = Shop::open(&f, "acme");
    assert_eq!(invoices(&shop.pass(&f).await).verdict, Verdict::Ok);
    // Next day (the window moves, so its digest is unknown), before the full resync is due.
    f.clock.advance(HOUR * 13);
    f.sim.add_invoice(1001, 6020, today(&f));
    f.sim.inject(Fault {
        times: Some(1),
        ..on("/invoice", FaultKind::Status(304))
    });
    let c = invoices(&shop.pass(&f).await).clone();
    assert_eq!(c.verdict, Verdict::Error, "{c:#?}");
    assert!(c.summary.contains("never sent"), "{}", c.summary);
    let c = invoices(&shop.pass(&f).await).clone();
    assert_eq!(c.verdict, Verdict::Ok, "{c:#?}");
    assert!(c.summary.contains("6020"), "{}", c.summary);
    conforms(&f);
}

/// An empty first page that says it is not empty (`fullResultSize` > 0) is no answer: a shop in
/// conflict must not read as "no numbers yet".
#[tokio::test]
async fn an_empty_first_page_that_claims_rows_is_an_error() {
    let f = Fixture::new().await;
    shop_with_data(&f);
    f.sim.add_customer(1001, 12_345, false);
    let mut shop = Shop::open(&f, "acme");
    assert_eq!(customers(&shop.pass(&f).await).verdict, Verdict::Conflict);
    let mirror = sorted(shop.store.mirror("acme", CustomerNumbers).unwrap());

    f.clock.advance(DAY + HOUR);
    f.sim.inject(on(
        "/customer",
        FaultKind::Envelope(vec![
            Mutation::SetKey("values".into(), json!([])),
            Mutation::SetKey("count".into(), json!(0)),
        ]),
    ));
    let c = customers(&shop.pass(&f).await).clone();
    assert_eq!(c.verdict, Verdict::Error, "{c:#?}");
    assert!(
        c.summary.contains("no rows although fullResultSize says"),
        "{}",
        c.summary
    );
    assert_eq!(
        sorted(shop.store.mirror("acme", CustomerNumbers).unwrap()),
        mirror
    );
    conforms(&f);
}

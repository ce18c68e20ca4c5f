//! What passes cost: an idle pass, the daily full resync, and 100 000 customers + 100 000
//! invoices.

use std::time::Instant;

use tripletex_sync::checks::CheckKind::{CustomerNumbers, InvoiceNumbers};
use tripletex_sync::checks::{Run, Verdict};

use crate::{HOUR, Shop, conforms, customers, days_before, describe, invoices, param, today};
use tripletex_sync_fixture::daemon::Fixture;

#[tokio::test]
async fn an_idle_pass_sends_one_changed_since_and_one_conditional_invoice_request() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 500, false);
    f.sim.add_customers(1001, 100_000, 10, false);
    f.sim
        .add_invoices(1001, 6000, 200, days_before(today(&f), 99), 2);
    let mut shop = Shop::open(&f, "acme");
    let first = shop.pass(&f).await;
    assert_eq!(customers(&first).verdict, Verdict::Ok, "{first:#?}");
    assert_eq!(invoices(&first).verdict, Verdict::Ok, "{first:#?}");

    f.sim.clear_request_log();
    f.clock.advance(HOUR);
    let idle = shop.pass(&f).await;
    assert_eq!(customers(&idle).verdict, Verdict::Ok, "{idle:#?}");
    assert_eq!(invoices(&idle).verdict, Verdict::Ok, "{idle:#?}");
    // The session is still good, so the data requests are everything that was sent.
    let log = f.sim.request_log();
    assert_eq!(log.len(), 2, "{}", describe(&log));
    let (c, i) = (&log[0], &log[1]);
    assert!(c.path.ends_with("/customer"), "{}", describe(&log));
    assert_eq!(c.status, 200);
    assert!(param(c, "changedSince").is_some(), "{}", describe(&log));
    assert_eq!(
        param(c, "isInactive"),
        None,
        "incremental reads take Tripletex's default (active customers); inactive ones come with the full resync"
    );
    assert!(i.path.ends_with("/invoice"), "{}", describe(&log));
    assert_eq!(i.status, 304, "{}", describe(&log));

    // 24 h after the first pass the daily full resync reads everything again.
    f.sim.clear_request_log();
    f.clock.advance(23 * HOUR);
    let full = shop.pass(&f).await;
    assert_eq!(customers(&full).verdict, Verdict::Ok, "{full:#?}");
    assert_eq!(invoices(&full).verdict, Verdict::Ok, "{full:#?}");
    let data = f.data_requests();
    let customer_reads: Vec<_> = data
        .iter()
        .filter(|r| r.path.ends_with("/customer"))
        .collect();
    assert_eq!(customer_reads.len(), 2, "{}", describe(&data));
    assert!(
        customer_reads
            .iter()
            .all(|r| param(r, "changedSince").is_none())
    );
    let mut inactive: Vec<_> = customer_reads
        .iter()
        .map(|r| param(r, "isInactive").unwrap())
        .collect();
    inactive.sort_unstable();
    assert_eq!(inactive, ["false", "true"], "{}", describe(&data));
    let invoice_reads: Vec<_> = data
        .iter()
        .filter(|r| r.path.ends_with("/invoice"))
        .collect();
    assert_eq!(invoice_reads.len(), 2, "{}", describe(&data));
    assert_eq!(
        param(invoice_reads[0], "invoiceDateFrom"),
        Some("1970-01-01"),
        "a full resync reads the invoices before the window too:\n{}",
        describe(&data)
    );
    assert!(
        invoice_reads.iter().all(|r| r.status == 200),
        "{}",
        describe(&data)
    );
    conforms(&f);
}

/// The full first sync of a big shop: every page of 1000, nothing else. Invoices sit 400 below
/// Tripletex's start (a warning, so the next pass stays incremental: conflicts are re-read in
/// full). Most of this test's time is the simulator filtering 100 000 rows per page request.
#[tokio::test]
async fn a_hundred_thousand_customers_and_invoices_sync_in_at_most_210_requests() {
    let f = Fixture::new().await;
    f.add_shop(
        "big",
        1001,
        "[invoice_numbers]\nshop_start = 6000\ntripletex_start = 106400\n",
    );
    f.sim.add_customers(1001, 1, 99_000, false);
    f.sim.add_customers(1001, 100_000, 900, false);
    f.sim.add_customers(1001, 100_900, 100, true);
    f.sim
        .add_invoices(1001, 6000, 100_000, days_before(today(&f), 999), 100);
    // Created well before the first pass, so outside the next pass's changedSince margin.
    f.clock.advance(HOUR);

    let mut shop = Shop::open(&f, "big");
    let started = Instant::now();
    let report = shop.pass(&f).await;
    let took = started.elapsed();
    let log = f.sim.request_log();
    assert!(
        log.len() <= 210,
        "{} requests:\n{}",
        log.len(),
        describe(&log)
    );
    assert!(
        log.iter().all(|r| (200..300).contains(&r.status)),
        "{}",
        describe(&log)
    );
    assert!(
        log.iter()
            .all(|r| param(r, "count").is_none_or(|c| c == "1000"))
    );

    let c = customers(&report);
    assert_eq!(c.verdict, Verdict::Ok, "{c:#?}");
    assert_eq!(c.evidence.numbers_in_use, 100_000);
    assert_eq!(
        c.evidence.shop_run,
        Some(Run {
            first: 1,
            last: 99_000,
            count: 99_000
        })
    );
    assert_eq!(
        c.evidence.tripletex_run,
        Some(Run {
            first: 100_000,
            last: 100_999,
            count: 1000
        }),
        "inactive customers count too"
    );
    let i = invoices(&report);
    assert_eq!(i.verdict, Verdict::Warn, "{i:#?}");
    assert_eq!(i.evidence.numbers_in_use, 100_000);
    assert_eq!(i.evidence.headroom, Some(400));
    assert_eq!(
        i.evidence.shop_run,
        Some(Run {
            first: 6000,
            last: 105_999,
            count: 100_000
        })
    );
    assert_eq!(
        shop.store.mirror("big", CustomerNumbers).unwrap().len(),
        100_000
    );
    assert_eq!(
        shop.store.mirror("big", InvoiceNumbers).unwrap().len(),
        100_000
    );

    // The next pass reads the 100 000-row mirrors back and sends two requests.
    f.sim.clear_request_log();
    f.clock.advance(HOUR);
    let started = Instant::now();
    let again = shop.pass(&f).await;
    let took_again = started.elapsed();
    assert_eq!(customers(&again).verdict, Verdict::Ok);
    assert_eq!(customers(&again).evidence.numbers_in_use, 100_000);
    assert_eq!(invoices(&again).verdict, Verdict::Warn);
    assert_eq!(
        f.data_requests().len(),
        2,
        "{}",
        describe(&f.data_requests())
    );
    eprintln!("full pass {took:?}, next pass {took_again:?}");
    conforms(&f);
}

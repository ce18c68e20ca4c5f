//! Incremental passes: conflicts appearing and clearing, `changedSince`, the invoice window and
//! its digest, and what only a full resync sees.

use tripletex_sync::checks::{Run, Verdict};

use crate::{DAY, HOUR, Shop, conforms, customers, days_before, describe, invoices, param, today};
use tripletex_sync_fixture::daemon::Fixture;

/// A healthy shop: customers 1..=500 and Tripletex's from 100 000; invoices 6000..=6199 over
/// the last 100 days and Tripletex's 50 000..=50 009.
fn healthy(f: &Fixture) {
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 500, false);
    f.sim.add_customers(1001, 100_000, 10, false);
    f.sim
        .add_invoices(1001, 6000, 200, days_before(today(f), 99), 2);
    f.sim
        .add_invoices(1001, 50_000, 10, days_before(today(f), 9), 1);
}

#[tokio::test]
async fn a_customer_at_12345_is_a_conflict_next_pass_and_clears_once_removed() {
    let f = Fixture::new().await;
    healthy(&f);
    let mut shop = Shop::open(&f, "acme");
    assert_eq!(customers(&shop.pass(&f).await).verdict, Verdict::Ok);

    f.clock.advance(HOUR);
    let id = f.sim.add_customer(1001, 12_345, false);
    f.sim.clear_request_log();
    let report = shop.pass(&f).await;
    let c = customers(&report);
    assert_eq!(c.verdict, Verdict::Conflict, "{c:#?}");
    assert_eq!(
        c.evidence.foreign_runs_in_shop_range,
        [Run {
            first: 12_345,
            last: 12_345,
            count: 1
        }]
    );
    assert!(c.summary.contains("12345"), "{}", c.summary);
    let data = f.data_requests();
    let customer_reads: Vec<_> = data
        .iter()
        .filter(|r| r.path.ends_with("/customer"))
        .collect();
    assert_eq!(customer_reads.len(), 1, "{}", describe(&data));
    assert!(
        param(customer_reads[0], "changedSince").is_some(),
        "seen by the incremental read"
    );
    assert_eq!(invoices(&report).verdict, Verdict::Ok);

    // Deleted in Tripletex: `changedSince` cannot show that, but a conflicted kind is re-read
    // in full, so the next pass clears it.
    f.clock.advance(HOUR);
    f.sim.remove_customer(1001, id);
    f.sim.clear_request_log();
    let report = shop.pass(&f).await;
    let c = customers(&report);
    assert_eq!(c.verdict, Verdict::Ok, "{c:#?}");
    assert!(c.evidence.foreign_runs_in_shop_range.is_empty());
    let data = f.data_requests();
    assert!(
        data.iter()
            .filter(|r| r.path.ends_with("/customer"))
            .all(|r| param(r, "changedSince").is_none()),
        "{}",
        describe(&data)
    );
    // Healthy again: back to the cheap incremental read.
    f.clock.advance(HOUR);
    f.sim.clear_request_log();
    assert_eq!(customers(&shop.pass(&f).await).verdict, Verdict::Ok);
    assert_eq!(
        f.data_requests().len(),
        2,
        "{}",
        describe(&f.data_requests())
    );
    conforms(&f);
}

#[tokio::test]
async fn an_invoice_series_starting_at_1_is_a_conflict_below_the_shop_start() {
    let f = Fixture::new().await;
    healthy(&f);
    f.sim
        .add_invoices(1001, 1, 40, days_before(today(&f), 39), 1);
    let mut shop = Shop::open(&f, "acme");
    let report = shop.pass(&f).await;
    let i = invoices(&report);
    assert_eq!(i.verdict, Verdict::Conflict, "{i:#?}");
    assert_eq!(
        i.evidence.below_shop_start,
        Some(Run {
            first: 1,
            last: 40,
            count: 40
        })
    );
    assert_eq!(
        i.evidence.shop_run,
        Some(Run {
            first: 6000,
            last: 6199,
            count: 200
        })
    );
    let fix = i.fix.as_deref().unwrap_or_default();
    assert!(fix.contains("invoice series"), "{fix}");
    assert!(fix.contains("50000"), "{fix}");
    assert_eq!(customers(&report).verdict, Verdict::Ok);
    conforms(&f);
}

#[tokio::test]
async fn changed_since_and_the_invoice_window_pick_up_new_rows_and_back_dated_ones_wait() {
    let f = Fixture::new().await;
    healthy(&f);
    let mut shop = Shop::open(&f, "acme");
    let first = shop.pass(&f).await;
    assert_eq!(customers(&first).evidence.numbers_in_use, 510);
    assert_eq!(invoices(&first).evidence.numbers_in_use, 210);

    // A new customer: seen through changedSince.
    f.clock.advance(HOUR);
    f.sim.add_customer(1001, 501, false);
    f.sim.clear_request_log();
    let report = shop.pass(&f).await;
    let c = customers(&report);
    assert_eq!(c.evidence.numbers_in_use, 511, "{c:#?}");
    assert_eq!(c.evidence.shop_run.map(|r| r.last), Some(501));
    let data = f.data_requests();
    assert_eq!(data.len(), 2, "{}", describe(&data));
    assert!(param(&data[0], "changedSince").is_some());
    assert_eq!(
        data[1].status,
        304,
        "no invoice changed:\n{}",
        describe(&data)
    );

    // A customer deactivated in Tripletex is still in use (and seen through changedSince).
    f.clock.advance(HOUR);
    let id = f.sim.add_customer(1001, 502, false);
    shop.pass(&f).await;
    f.clock.advance(HOUR);
    f.sim.set_customer_inactive(1001, id, true);
    let report = shop.pass(&f).await;
    assert_eq!(customers(&report).evidence.numbers_in_use, 512);
    assert_eq!(
        customers(&report).evidence.shop_run.map(|r| r.last),
        Some(502)
    );

    // A new invoice dated today: the window's digest changes and the window is re-read.
    f.clock.advance(HOUR);
    f.sim.add_invoice(1001, 6200, today(&f));
    f.sim.clear_request_log();
    let report = shop.pass(&f).await;
    let i = invoices(&report);
    assert_eq!(i.evidence.numbers_in_use, 211, "{i:#?}");
    assert_eq!(i.evidence.shop_run.map(|r| r.last), Some(6200));
    let data = f.data_requests();
    let window: Vec<_> = data
        .iter()
        .filter(|r| r.path.ends_with("/invoice"))
        .collect();
    assert_eq!(window.len(), 1, "{}", describe(&data));
    assert_eq!(window[0].status, 200);
    assert_ne!(param(window[0], "invoiceDateFrom"), Some("1970-01-01"));

    // An invoice back-dated before the 62-day window, with a number below the shop's start:
    // the incremental pass cannot see it...
    f.clock.advance(HOUR);
    f.sim.add_invoice(1001, 7, days_before(today(&f), 100));
    f.sim.clear_request_log();
    let report = shop.pass(&f).await;
    let i = invoices(&report);
    assert_eq!(i.verdict, Verdict::Ok, "{i:#?}");
    assert_eq!(i.evidence.numbers_in_use, 211);
    let data = f.data_requests();
    assert_eq!(
        data.last().map(|r| r.status),
        Some(304),
        "{}",
        describe(&data)
    );

    // ...the next full resync (24 h after the last one) does.
    f.clock.advance(DAY);
    let report = shop.pass(&f).await;
    let i = invoices(&report);
    assert_eq!(i.verdict, Verdict::Conflict, "{i:#?}");
    assert_eq!(i.evidence.numbers_in_use, 212);
    assert_eq!(
        i.evidence.below_shop_start,
        Some(Run {
            first: 7,
            last: 7,
            count: 1
        })
    );
    conforms(&f);
}

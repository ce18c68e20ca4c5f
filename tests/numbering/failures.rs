//! Disabled checks and failed syncs.

use tripletex_sim::{Fault, FaultKind};
use tripletex_sync::checks::CheckKind::InvoiceNumbers;
use tripletex_sync::checks::{CheckKind, Verdict};

use crate::{HOUR, Shop, conforms, customers, days_before, describe, invoices, today};
use tripletex_sync_fixture::daemon::Fixture;
use tripletex_sync_fixture::poll;

#[tokio::test]
async fn a_disabled_invoice_check_sends_no_invoice_requests() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "[invoice_numbers]\nenabled = false\n");
    f.sim.add_customers(1001, 1, 50, false);
    f.sim.add_invoices(1001, 1, 50, today(&f), 50);
    let mut shop = Shop::open(&f, "acme");
    for _ in 0..3 {
        let report = shop.pass(&f).await;
        assert_eq!(report.outcomes().len(), 1, "{report:#?}");
        assert_eq!(customers(&report).verdict, Verdict::Ok);
        // The customer check still saw every number in use.
        assert_eq!(customers(&report).evidence.numbers_in_use, 50);
        f.clock.advance(25 * HOUR);
    }
    let log = f.sim.request_log();
    assert!(
        !log.iter().any(|r| r.path.contains("/invoice")),
        "{}",
        describe(&log)
    );
    assert!(
        shop.store
            .result("acme", CheckKind::InvoiceNumbers)
            .unwrap()
            .is_none()
    );
    conforms(&f);
}

#[tokio::test]
async fn a_failed_invoice_sync_leaves_the_mirror_untouched_and_the_next_pass_recovers() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 50, false);
    f.sim
        .add_invoices(1001, 6000, 100, days_before(today(&f), 49), 2);
    let mut shop = Shop::open(&f, "acme");
    let first = shop.pass(&f).await;
    assert_eq!(invoices(&first).verdict, Verdict::Ok);
    let mirror = shop.store.mirror("acme", InvoiceNumbers).unwrap();
    let cursor = shop.store.cursor("acme").unwrap();
    assert_eq!(mirror.len(), 100);

    // Tripletex fails every invoice read; meanwhile an invoice and a customer appear.
    f.clock.advance(HOUR);
    f.sim.add_invoice(1001, 6100, today(&f));
    f.sim.add_customer(1001, 51, false);
    f.sim.inject(Fault {
        kind: FaultKind::Status(500),
        path_prefix: Some("/invoice".into()),
        employee_token: None,
        times: None,
    });
    let failed = shop.pass(&f).await;
    let i = invoices(&failed);
    assert_eq!(i.verdict, Verdict::Error, "{i:#?}");
    assert!(
        i.summary.contains("Tripletex answered 500 (code 1000)"),
        "{}",
        i.summary
    );
    assert_eq!(customers(&failed).verdict, Verdict::Ok);
    assert_eq!(customers(&failed).evidence.numbers_in_use, 51);
    let mut after = shop.store.mirror("acme", InvoiceNumbers).unwrap();
    let mut before = mirror.clone();
    after.sort_by_key(|(id, _)| *id);
    before.sort_by_key(|(id, _)| *id);
    assert_eq!(after, before, "the mirror is untouched");
    let cursor_after = shop.store.cursor("acme").unwrap();
    assert_eq!(
        cursor_after.of(InvoiceNumbers).digest,
        cursor.of(InvoiceNumbers).digest
    );
    assert_eq!(
        cursor_after.of(InvoiceNumbers).window_from,
        cursor.of(InvoiceNumbers).window_from
    );
    assert_eq!(
        cursor_after.of(InvoiceNumbers).full,
        cursor.of(InvoiceNumbers).full
    );

    f.clock.advance(HOUR);
    f.sim.clear_faults();
    let recovered = shop.pass(&f).await;
    let i = invoices(&recovered);
    assert_eq!(i.verdict, Verdict::Ok, "{i:#?}");
    assert_eq!(i.evidence.numbers_in_use, 101);
    assert_eq!(
        shop.store.mirror("acme", InvoiceNumbers).unwrap().len(),
        101
    );
    // Only the requests that reached the handlers are checked against the spec; the 500s were
    // sent with valid queries too.
    conforms(&f);
}

/// A mirror value cut mid-record (a torn write, a bad sector) is not read as its whole records
/// minus the tail, which would silently drop numbers: it is `store.corrupt`, and the next pass
/// reads that kind in full, whatever the cursor says.
#[tokio::test]
async fn a_truncated_mirror_forces_a_full_read_instead_of_losing_its_tail() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 50, false);
    let mut first = Shop::open(&f, "acme");
    first.pass(&f).await;
    drop(first);
    truncate_customer_mirror(&f.config().state_dir.join("db")).await;
    let mut shop = Shop::open(&f, "acme");
    f.clock.advance(HOUR);
    let before = f.sim.request_log().len();
    let report = shop.pass(&f).await;
    assert_eq!(customers(&report).verdict, Verdict::Ok);
    assert_eq!(
        customers(&report).evidence.numbers_in_use,
        50,
        "no number lost"
    );
    let log = f.sim.request_log();
    let reads: Vec<_> = log[before..]
        .iter()
        .filter(|r| r.path.ends_with("/customer"))
        .collect();
    assert!(!reads.is_empty(), "{}", describe(&log));
    assert!(
        reads
            .iter()
            .all(|r| crate::param(r, "changedSince").is_none()),
        "a full read, not changes since the cursor: {}",
        describe(&log)
    );
    assert_eq!(
        shop.store
            .mirror("acme", CheckKind::CustomerNumbers)
            .unwrap()
            .len(),
        50,
        "the whole mirror is written back"
    );
    conforms(&f);
}

/// Cuts the last 5 bytes off the stored customer mirror, once sled has let go of the database.
async fn truncate_customer_mirror(db: &std::path::Path) {
    let key = b"shop/acme/mirror/customers";
    // The closed store's background flusher may hold sled's lock a moment longer.
    let sled = poll::until_some("sled to let go of the database", || sled::open(db).ok()).await;
    let value = sled.get(key).unwrap().expect("a mirror");
    sled.insert(key, &value[..value.len() - 5]).unwrap();
    sled.flush().unwrap();
}

//! One test per verdict rule, plus the wire format the dashboard and storage rely on.

use jiff::{SignedDuration, ToSpan};

use super::*;

const CUSTOMERS: NumberRange = NumberRange {
    shop_start: 1,
    tripletex_start: 100_000,
};
const INVOICES: NumberRange = NumberRange {
    shop_start: 6000,
    tripletex_start: 50_000,
};

fn now() -> Timestamp {
    "2026-03-10T11:00:00Z".parse().unwrap()
}

fn days(d: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * d)
}

fn check(kind: CheckKind, numbers: &[u32], range: NumberRange) -> CheckOutcome {
    evaluate(kind, numbers, range, &Policy::default(), &[], now())
}

fn seq(first: u32, last: u32) -> Vec<u32> {
    (first..=last).collect()
}

#[test]
fn clean_without_tripletex_series() {
    let out = check(CheckKind::CustomerNumbers, &seq(1, 800), CUSTOMERS);
    assert_eq!(out.verdict, Verdict::Ok, "{}", out.summary);
    assert_eq!(out.fix, None);
    assert!(out.summary.contains("shop's run 1–800"), "{}", out.summary);
    assert!(
        out.summary
            .contains("Tripletex's own series not seen yet (no numbers ≥ 100000)"),
        "{}",
        out.summary
    );
    let e = &out.evidence;
    assert_eq!(e.numbers_in_use, 800);
    assert_eq!(
        e.shop_run,
        Some(Run {
            first: 1,
            last: 800,
            count: 800
        })
    );
    assert_eq!(e.headroom, Some(99_199));
    assert_eq!(e.tripletex_run, None);
}

#[test]
fn clean_with_tripletex_series_seen() {
    let mut numbers = seq(100_000, 100_040);
    numbers.extend(seq(1, 800).into_iter().rev());
    let out = check(CheckKind::CustomerNumbers, &numbers, CUSTOMERS);
    assert_eq!(out.verdict, Verdict::Ok, "{}", out.summary);
    assert!(
        out.summary
            .contains("Tripletex's own series seen at 100000–100040")
    );
    assert_eq!(
        out.evidence.tripletex_run,
        Some(Run {
            first: 100_000,
            last: 100_040,
            count: 41
        })
    );
}

#[test]
fn empty_shop_is_ok() {
    let out = check(CheckKind::InvoiceNumbers, &[], INVOICES);
    assert_eq!(out.verdict, Verdict::Ok, "{}", out.summary);
    assert!(out.summary.contains("the shop has no numbers yet"));
    assert_eq!(out.evidence.headroom, Some(44_000));
}

#[test]
fn invoice_series_starting_at_one_is_below_shop_start() {
    let mut numbers = seq(1, 250);
    numbers.extend(seq(6000, 7200));
    let out = check(CheckKind::InvoiceNumbers, &numbers, INVOICES);
    assert_eq!(out.verdict, Verdict::Conflict);
    assert_eq!(
        out.evidence.below_shop_start,
        Some(Run {
            first: 1,
            last: 250,
            count: 250
        })
    );
    assert!(
        out.summary
            .starts_with("conflict: invoice numbers 1–250 lie below")
    );
    let fix = out.fix.unwrap();
    assert!(fix.starts_with(
        "In Tripletex: Accounting › Accounting settings › Voucher types/number sequences › \
         start the invoice series at 50000."
    ));
    assert!(fix.contains("Invoices 1–250"), "{fix}");
}

#[test]
fn foreign_cluster_inside_shop_range() {
    let mut numbers = seq(10_000, 10_042);
    numbers.extend(seq(1, 3042));
    let out = check(CheckKind::CustomerNumbers, &numbers, CUSTOMERS);
    assert_eq!(out.verdict, Verdict::Conflict);
    assert_eq!(
        out.summary,
        "conflict: Tripletex's own series found inside the shop's range at 10000–10042 \
         (shop's run 1–3042)"
    );
    assert_eq!(
        out.evidence.foreign_runs_in_shop_range,
        vec![Run {
            first: 10_000,
            last: 10_042,
            count: 43
        }]
    );
    assert_eq!(
        out.fix.as_deref(),
        Some(
            "In Tripletex: Customer › Settings › set customer number to 100000. Then renumber \
             or deactivate customers 10000–10042 so they leave the shop's range."
        )
    );
}

#[test]
fn gaps_within_cluster_gap_stay_one_run() {
    let numbers = [1, 2, 500, 1500, 2400];
    let out = check(CheckKind::CustomerNumbers, &numbers, CUSTOMERS);
    assert_eq!(out.verdict, Verdict::Ok, "{}", out.summary);
    assert_eq!(
        out.evidence.shop_run,
        Some(Run {
            first: 1,
            last: 2400,
            count: 5
        })
    );
}

#[test]
fn lone_foreign_run_when_shop_has_none() {
    let out = check(CheckKind::CustomerNumbers, &seq(10_000, 10_042), CUSTOMERS);
    assert_eq!(out.verdict, Verdict::Conflict);
    assert_eq!(out.evidence.shop_run, None);
    assert!(
        out.summary
            .contains("at 10000–10042 (the shop has no numbers yet)"),
        "{}",
        out.summary
    );
}

#[test]
fn exhausted_range() {
    let out = check(CheckKind::InvoiceNumbers, &seq(6000, 49_999), INVOICES);
    assert_eq!(out.verdict, Verdict::Conflict);
    assert_eq!(out.evidence.headroom, Some(0));
    assert!(out.summary.contains("exhausted"), "{}", out.summary);
    assert!(out.fix.unwrap().contains("used up"));
}

#[test]
fn duplicates_are_named() {
    let out = check(
        CheckKind::CustomerNumbers,
        &[1, 2, 3, 3, 3, 4, 7, 7],
        CUSTOMERS,
    );
    assert_eq!(out.verdict, Verdict::Conflict);
    assert_eq!(out.evidence.duplicates, vec![3, 7]);
    assert_eq!(out.evidence.numbers_in_use, 5);
    assert!(
        out.summary.contains("used more than once: 3, 7"),
        "{}",
        out.summary
    );
    assert!(out.fix.unwrap().contains("3, 7"));
}

#[test]
fn many_duplicates_are_capped_but_counted() {
    let numbers: Vec<u32> = (1..=30).flat_map(|n| [n, n]).collect();
    let out = check(CheckKind::CustomerNumbers, &numbers, CUSTOMERS);
    assert_eq!(out.evidence.duplicates.len(), 20);
    assert!(out.summary.contains("(30 in all)"), "{}", out.summary);
}

#[test]
fn low_headroom_warns() {
    let out = check(CheckKind::InvoiceNumbers, &seq(6000, 49_700), INVOICES);
    assert_eq!(out.verdict, Verdict::Warn, "{}", out.summary);
    assert_eq!(out.evidence.headroom, Some(299));
    assert!(out.summary.contains("only 299 numbers left before 50000"));
    assert!(
        out.fix
            .unwrap()
            .contains("before the last 299 numbers are used")
    );
}

#[test]
fn forecast_within_window_warns() {
    // 20 a day with 1000 left: full in 50 days, inside the 90-day window.
    let history: Vec<_> = (1..=10)
        .map(|d| HistoryPoint {
            at: now() - days(d),
            shop_high: Some(49_000 - 20 * d as u32),
        })
        .collect();
    let out = evaluate(
        CheckKind::InvoiceNumbers,
        &seq(6000, 49_000),
        INVOICES,
        &Policy::default(),
        &history,
        now(),
    );
    assert_eq!(out.verdict, Verdict::Warn, "{}", out.summary);
    let date = oslo_date(now()).checked_add(50.days()).unwrap();
    assert_eq!(out.evidence.forecast_exhausted_on, Some(date));
    assert!(
        out.summary.contains("reaches 50000 around 2026-04-29"),
        "{}",
        out.summary
    );
    assert!(out.fix.unwrap().contains("before 2026-04-29"));
}

#[test]
fn exact_forecast_on_linear_history() {
    // +10 a day for 30 days, ending at 1300 today: 98 700 to go is exactly 9870 days.
    let history: Vec<_> = (1..=30)
        .map(|d| HistoryPoint {
            at: now() - days(d),
            shop_high: Some(1300 - 10 * d as u32),
        })
        .collect();
    let out = evaluate(
        CheckKind::CustomerNumbers,
        &seq(1, 1300),
        CUSTOMERS,
        &Policy::default(),
        &history,
        now(),
    );
    assert_eq!(out.verdict, Verdict::Ok, "{}", out.summary);
    assert_eq!(out.evidence.growth_per_day, Some(10.0));
    let expected = oslo_date(now()).checked_add(9870.days()).unwrap();
    assert_eq!(out.evidence.forecast_exhausted_on, Some(expected));
    assert!(out.summary.contains(&format!("around {expected}")));
}

#[test]
fn flat_or_empty_history_gives_no_forecast() {
    let flat: Vec<_> = (1..=30)
        .map(|d| HistoryPoint {
            at: now() - days(d),
            shop_high: Some(1300),
        })
        .collect();
    let unknown = [HistoryPoint {
        at: now() - days(1),
        shop_high: None,
    }];
    for history in [&flat[..], &[], &unknown] {
        let out = evaluate(
            CheckKind::CustomerNumbers,
            &seq(1, 1300),
            CUSTOMERS,
            &Policy::default(),
            history,
            now(),
        );
        assert_eq!(out.verdict, Verdict::Ok);
        assert_eq!(out.evidence.forecast_exhausted_on, None);
    }
}

#[test]
fn seconds_of_steep_history_never_warn() {
    // Callbacks seconds apart once fitted "9352.6 a day" through a renumbering: no forecast now.
    let history: Vec<_> = (1..=20)
        .map(|s| HistoryPoint {
            at: now() - SignedDuration::from_secs(s),
            shop_high: Some(301 - 15 * s as u32),
        })
        .collect();
    let out = evaluate(
        CheckKind::CustomerNumbers,
        &seq(1, 301),
        CUSTOMERS,
        &Policy::default(),
        &history,
        now(),
    );
    assert_eq!(out.verdict, Verdict::Ok, "{}", out.summary);
    assert_eq!(out.evidence.growth_per_day, None);
    assert_eq!(out.evidence.forecast_exhausted_on, None);
    assert!(
        out.summary
            .contains("no forecast yet (needs 7 days of history)"),
        "{}",
        out.summary
    );
}

#[test]
fn history_point_records_shop_high() {
    let out = check(CheckKind::CustomerNumbers, &seq(1, 42), CUSTOMERS);
    assert_eq!(
        out.evidence.history_point(now()),
        HistoryPoint {
            at: now(),
            shop_high: Some(42)
        }
    );
}

#[test]
fn handles_two_hundred_thousand_numbers() {
    let mut numbers: Vec<u32> = (1..=200_000).map(|n| n * 7919 % 200_003).collect();
    numbers.retain(|&n| n != 0);
    let range = NumberRange {
        shop_start: 1,
        tripletex_start: 1_000_000,
    };
    let out = check(CheckKind::InvoiceNumbers, &numbers, range);
    assert_eq!(out.evidence.numbers_in_use as usize, numbers.len());
    assert_eq!(out.evidence.shop_run.unwrap().count as usize, numbers.len());
}

#[test]
fn empty_range_is_an_error() {
    let range = NumberRange {
        shop_start: 10,
        tripletex_start: 10,
    };
    assert_eq!(
        check(CheckKind::CustomerNumbers, &[1], range).verdict,
        Verdict::Error
    );
}

#[test]
fn could_not_run_and_not_yet_checked() {
    let out = could_not_run(CheckKind::InvoiceNumbers, "the key cannot read invoices");
    assert_eq!(out.verdict, Verdict::Error);
    assert_eq!(
        out.summary,
        "error: could not check invoice numbers: the key cannot read invoices"
    );
    let out = not_yet_checked(CheckKind::CustomerNumbers);
    assert_eq!(out.verdict, Verdict::Unknown);
    assert_eq!(out.evidence, Evidence::default());
}

#[test]
fn verdicts_order_by_severity() {
    assert!(Verdict::Ok < Verdict::Warn && Verdict::Warn < Verdict::Conflict);
    assert!(Verdict::Conflict < Verdict::Error && Verdict::Error < Verdict::Unknown);
}

#[test]
fn outcome_round_trips_through_json() {
    let mut numbers = seq(10_000, 10_042);
    numbers.extend(seq(1, 3042));
    let out = check(CheckKind::CustomerNumbers, &numbers, CUSTOMERS);
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["kind"], "customer_numbers");
    assert_eq!(json["verdict"], "conflict");
    assert_eq!(serde_json::from_value::<CheckOutcome>(json).unwrap(), out);

    for v in [
        Verdict::Ok,
        Verdict::Warn,
        Verdict::Conflict,
        Verdict::Error,
        Verdict::Unknown,
    ] {
        assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
    }
    for k in CheckKind::ALL {
        assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
    }
}

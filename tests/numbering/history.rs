//! What outlives a pass: results and mirror across a restart, verdict history, the forecast.

use jiff::Span;
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::status::StatusReport;

use crate::{DAY, HOUR, Shop, conforms, customers, describe, invoices, today};
use tripletex_sync_fixture::daemon::Fixture;

#[tokio::test]
async fn results_survive_a_restart_and_the_next_pass_continues_from_the_mirror() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 500, false);
    f.sim
        .add_invoices(1001, 6000, 100, crate::days_before(today(&f), 49), 2);
    let mut shop = Shop::open(&f, "acme");
    shop.pass(&f).await;
    f.clock.advance(HOUR);
    let first = shop.pass(&f).await;
    let at = f.now();
    drop(shop);

    f.clock.advance(HOUR);
    f.sim.clear_request_log();
    let mut shop = Shop::open(&f, "acme");
    let config = f.config();
    let status = StatusReport::collect(Some(&shop.store), &config, f.now()).unwrap();
    for kind in CheckKind::ALL {
        let check = status.shops[0].checks.get(kind);
        let was = first
            .outcomes()
            .into_iter()
            .find(|o| o.kind == kind)
            .unwrap();
        assert_eq!(check.verdict, was.verdict);
        assert_eq!(check.summary, was.summary);
        assert_eq!(check.checked_at, Some(at));
        assert_eq!(check.since, Some(at - jiff::SignedDuration::from_hours(1)));
        assert_eq!(check.evidence.as_ref(), Some(&was.evidence));
    }
    let report = shop.pass(&f).await;
    assert_eq!(customers(&report).verdict, Verdict::Ok);
    assert_eq!(customers(&report).evidence.numbers_in_use, 500);
    assert_eq!(invoices(&report).evidence.numbers_in_use, 100);
    // The new client mints; then one customer read with changedSince and a 304 for the window.
    let log = f.sim.request_log();
    assert!(log[0].path.ends_with(":create"), "{}", describe(&log));
    let data = f.data_requests();
    assert_eq!(data.len(), 2, "{}", describe(&data));
    assert!(
        crate::param(&data[0], "changedSince").is_some(),
        "{}",
        describe(&data)
    );
    assert_eq!(data[1].status, 304, "{}", describe(&data));
    conforms(&f);
}

/// An idle shop's history gets a point when its highest number moves, else one per 6 h; its
/// checks' times move every pass, their `since` stays.
#[tokio::test]
async fn an_idle_shop_keeps_a_point_per_change_or_six_hours_not_per_pass() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 50, false);
    let mut shop = Shop::open(&f, "acme");
    shop.pass(&f).await;
    let first = f.now();
    let points = |shop: &Shop| {
        shop.store
            .history("acme", CheckKind::CustomerNumbers)
            .unwrap()
            .iter()
            .map(|p| (p.at, p.shop_high))
            .collect::<Vec<_>>()
    };
    for _ in 0..5 {
        f.clock.advance(HOUR);
        shop.pass(&f).await;
    }
    assert_eq!(points(&shop), [(first, Some(50))]);
    let status = StatusReport::collect(Some(&shop.store), &f.config(), f.now()).unwrap();
    let check = status.shops[0].checks.get(CheckKind::CustomerNumbers);
    assert_eq!(check.checked_at, Some(f.now()));
    assert_eq!(check.since, Some(first));

    f.clock.advance(HOUR);
    shop.pass(&f).await;
    let six_hours = f.now();
    f.clock.advance(HOUR);
    f.sim.add_customers(1001, 51, 1, false);
    shop.pass(&f).await;
    assert_eq!(
        points(&shop),
        [
            (first, Some(50)),
            (six_hours, Some(50)),
            (f.now(), Some(51))
        ]
    );
    conforms(&f);
}

/// Customers grow by 10 a day from 100 towards Tripletex's start at 1100: no forecast for the
/// first week, then ok with a forecast while it is more than 90 days out, warn once it is within
/// `forecast_warn_days` (90).
#[tokio::test]
async fn daily_growth_gives_an_exact_forecast_and_a_warning_and_history_is_pruned() {
    let f = Fixture::new().await;
    f.add_shop(
        "acme",
        1001,
        "[customer_numbers]\nshop_start = 1\ntripletex_start = 1100\n",
    );
    f.sim.add_customers(1001, 1, 100, false);
    f.sim.add_invoices(1001, 6000, 10, today(&f), 10);
    let mut shop = Shop::open(&f, "acme");
    let first = shop.pass(&f).await;
    assert_eq!(customers(&first).verdict, Verdict::Ok);
    assert_eq!(customers(&first).evidence.forecast_exhausted_on, None);

    for day in 1..=10u32 {
        f.clock.advance(DAY);
        f.sim
            .add_customers(1001, 100 + 10 * (day - 1) + 1, 10, false);
        let report = shop.pass(&f).await;
        let c = customers(&report);
        let high = 100 + 10 * day;
        assert_eq!(c.evidence.shop_run.map(|r| r.last), Some(high), "{c:#?}");
        if day < 7 {
            // Less than a week of history: no forecast, whatever the growth.
            assert_eq!(c.evidence.growth_per_day, None, "day {day}: {c:#?}");
            assert_eq!(c.verdict, Verdict::Ok, "day {day}: {c:#?}");
            assert!(c.summary.contains("no forecast yet"), "{}", c.summary);
            continue;
        }
        assert_eq!(c.evidence.growth_per_day, Some(10.0), "day {day}: {c:#?}");
        let days_left = (1100 - high) / 10;
        let expected = today(&f)
            .checked_add(Span::new().days(i64::from(days_left)))
            .unwrap();
        assert_eq!(
            c.evidence.forecast_exhausted_on,
            Some(expected),
            "day {day}"
        );
        if days_left > 90 {
            assert_eq!(c.verdict, Verdict::Ok, "day {day}: {c:#?}");
            assert!(c.summary.contains(&expected.to_string()), "{}", c.summary);
        } else {
            assert_eq!(c.verdict, Verdict::Warn, "day {day}: {c:#?}");
            assert!(c.summary.contains(&expected.to_string()), "{}", c.summary);
            assert!(c.fix.is_some());
        }
    }
    let history = shop
        .store
        .history("acme", CheckKind::CustomerNumbers)
        .unwrap();
    assert_eq!(history.len(), 11);

    // 85 days later the points of days 0..=4 are older than the 90-day history and go.
    f.clock.advance(85 * DAY);
    let report = shop.pass(&f).await;
    assert_eq!(
        report.session.state,
        tripletex_sync::store::SessionState::Valid
    );
    let history = shop
        .store
        .history("acme", CheckKind::CustomerNumbers)
        .unwrap();
    assert_eq!(history.len(), 7, "{history:#?}");
    assert_eq!(history.last().unwrap().at, f.now());
    let cutoff = f.now() - jiff::SignedDuration::from_hours(90 * 24);
    assert!(history.iter().all(|p| p.at >= cutoff), "{history:#?}");
    conforms(&f);
}

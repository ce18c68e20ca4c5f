//! `cargo bench --bench sync`: what a big shop costs. Prints figures; asserts nothing.
//!
//! - a first (full) pass of a shop with 100 000 customers and 100 000 invoices, against the
//!   in-process simulator: requests and wall time;
//! - the idle pass after it: requests and wall time;
//! - the verdict over 200 000 numbers (pure `checks::evaluate`): median time.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tripletex_sync::checks::{self, CheckKind, NumberRange, Policy};
use tripletex_sync_fixture::daemon::Fixture;

const SIZE: u32 = 100_000;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(passes());
    verdicts();
}

async fn passes() {
    let f = Fixture::new().await;
    // Ranges wide enough that the shop is healthy: a conflicted kind is re-read in full each pass.
    f.add_shop(
        "big",
        1001,
        "[customer_numbers]\ntripletex_start = 1000000\n[invoice_numbers]\ntripletex_start = 1000000\n",
    );
    f.sim.add_customers(1001, 1, SIZE, false);
    let today = tripletex_sync::clock::oslo_date(f.now());
    let first_day = today
        .checked_sub(jiff::Span::new().days(999))
        .expect("date");
    f.sim.add_invoices(1001, 6000, SIZE, first_day, 100);
    let store = f.open_store();
    let api = f.api();
    let client = f.client(&api, "big", &CancellationToken::new());

    for (label, pass_no) in [("full pass", 1), ("idle pass", 2)] {
        f.sim.clear_request_log();
        f.clock.advance(Duration::from_secs(3600));
        let started = Instant::now();
        let report = f.pass(&store, &client, pass_no).await;
        let took = started.elapsed();
        let requests = f.sim.request_log().len();
        let verdicts: Vec<_> = report
            .outcomes()
            .iter()
            .map(|o| o.verdict.as_str())
            .collect();
        println!(
            "{label:<10} {SIZE} customers + {SIZE} invoices: {requests:>4} requests, {:>9.1} ms ({})",
            took.as_secs_f64() * 1e3,
            verdicts.join("/")
        );
    }
}

fn verdicts() {
    let numbers: Vec<u32> = (1..=2 * SIZE).rev().collect();
    let range = NumberRange {
        shop_start: 1,
        tripletex_start: 1_000_000,
    };
    let now = jiff::Timestamp::now();
    let mut times: Vec<Duration> = (0..21)
        .map(|_| {
            let started = Instant::now();
            let outcome = checks::evaluate(
                CheckKind::CustomerNumbers,
                &numbers,
                range,
                &Policy::default(),
                &[],
                now,
            );
            std::hint::black_box(outcome);
            started.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "evaluate   {} numbers: {:.2} ms (median of {})",
        numbers.len(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times.len()
    );
}

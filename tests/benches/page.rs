//! `cargo bench --bench page [-- --shops 100000]`: what the status page costs at N shops.
//!
//! Builds a board of N shops in memory as the daemon's status view holds it (two checks each,
//! realistic summaries and evidence, every chart trail full, 1 % conflict and 2 % warn), then
//! renders `/`, a later page, a search and one shop's page many times each and prints the
//! median and worst server time and the size of each. Also prints how much memory the board
//! took (resident set growth). Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use jiff::{SignedDuration, Timestamp};
use tripletex_sync::checks::{
    CheckKind, Evidence, HistoryPoint, NumberRange, PerKind, Run, Verdict,
};
use tripletex_sync::page::{Board, POINTS, Tile, respond};
use tripletex_sync::status::{CheckStatus, ShopStatus, View};
use tripletex_sync::store::SessionState;

const ROUNDS: usize = 50;

fn main() {
    let mut shops = 100_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--shops" {
            shops = args.next().and_then(|n| n.parse().ok()).expect("--shops N");
        }
    }
    let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
    // The same shops without chart points first, kept alive, so the difference is the trails'.
    let before = rss_kib();
    let bare = board(shops, now, false);
    let bare_kib = rss_kib() - before;
    let before = rss_kib();
    let started = Instant::now();
    let board = board(shops, now, true);
    let full_kib = rss_kib() - before;
    println!(
        "board of {shops} shops: built in {:.1} s, resident set +{} MiB, of which the full chart trails {} MiB",
        started.elapsed().as_secs_f64(),
        full_kib / 1024,
        (full_kib - bare_kib) / 1024
    );
    drop(bare);
    let view = View {
        now,
        stale_after: Duration::from_secs(3 * 3600),
        width: 0,
        problems_only: false,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let middle = format!("/shop/shop-{:06}", shops / 2);
    for path in ["/", "/?page=500", "/?q=shop-0999", middle.as_str()] {
        let uri = path.parse().unwrap();
        let mut times = Vec::with_capacity(ROUNDS);
        let mut size = 0;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let response = respond(Some(&board), &view, &uri)
                .expect("a page")
                .into_response();
            times.push(started.elapsed());
            let body = runtime.block_on(response.into_body().collect()).unwrap();
            size = body.to_bytes().len();
        }
        times.sort();
        println!(
            "{path:<20} median {:>6.2} ms, worst {:>6.2} ms, {:>4} KB",
            times[ROUNDS / 2].as_secs_f64() * 1e3,
            times[ROUNDS - 1].as_secs_f64() * 1e3,
            size / 1000
        );
    }
}

/// `n` shops as the daemon's view would hold them after weeks of passes (without the chart
/// points unless `charted`).
fn board(n: usize, now: Timestamp, charted: bool) -> Board {
    let range = NumberRange {
        shop_start: 1,
        tripletex_start: 100_000,
    };
    let tiles = (0..n)
        .map(|i| {
            let high = 1000 + (i % 5000) as u32;
            let points = if charted { POINTS as i64 } else { 0 };
            let history = PerKind::from_fn(|_| {
                (0..points)
                    .map(|p| HistoryPoint {
                        at: now - SignedDuration::from_hours(6 * (points - p)),
                        shop_high: Some(high - (points - p) as u32),
                    })
                    .collect::<Vec<_>>()
            });
            let mut tile = Tile::new(
                &status(i, high, now, charted),
                PerKind::from_fn(|_| Some(range)),
            );
            tile.seed(history);
            tile
        })
        .collect();
    Board::new(None, tiles)
}

/// Shop `i`; without a time of check unless `charted` (so its trail gets no point either).
fn status(i: usize, high: u32, now: Timestamp, charted: bool) -> ShopStatus {
    let verdict = match i % 100 {
        0 => Verdict::Conflict,
        1 | 2 => Verdict::Warn,
        _ => Verdict::Ok,
    };
    let check = |kind: CheckKind| {
        let (summary, fix) = if verdict == Verdict::Conflict && kind == CheckKind::ALL[0] {
            (
                format!("conflict: Tripletex's own series found inside the shop's range at 10000–10004 (shop's run 1–{high})"),
                Some("In Tripletex: Customer › Settings › set customer number to 100000. Then renumber or deactivate customers 10000–10004 so they leave the shop's range.".to_owned()),
            )
        } else if verdict == Verdict::Warn {
            (
                format!("warn: only 400 numbers left before 100000 (shop's run 1–{high})"),
                Some("Move Tripletex's series further up (and tripletex_start with it) or plan a renumbering before the last 400 numbers are used.".to_owned()),
            )
        } else {
            (
                format!(
                    "ok: shop's run 1–{high}, {} numbers left before 100000, reaching 100000 around 2031-04-02; Tripletex's own series seen at 100000–100250",
                    99_999 - high
                ),
                None,
            )
        };
        CheckStatus {
            verdict: if fix.is_some() { verdict } else { Verdict::Ok },
            summary,
            checked_at: charted.then(|| now - SignedDuration::from_mins((i % 50) as i64)),
            since: Some(now - SignedDuration::from_hours(240)),
            fix,
            evidence: Some(Evidence {
                numbers_in_use: high,
                shop_run: Some(Run {
                    first: 1,
                    last: high,
                    count: high,
                }),
                tripletex_run: Some(Run {
                    first: 100_000,
                    last: 100_250,
                    count: 251,
                }),
                headroom: Some(99_999 - high),
                growth_per_day: Some(12.5),
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let mut status = ShopStatus {
        name: format!("shop-{i:06}"),
        enabled: true,
        checks: PerKind::from_fn(check),
        ..Default::default()
    };
    status.session.state = SessionState::Valid;
    status.session.expires_at = Some(now + SignedDuration::from_hours(100));
    status.session.company_id = Some(1000 + i as i64);
    status
}

/// The process's resident set, in KiB (0 where /proc is not there).
fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

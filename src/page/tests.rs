//! The status page on boards built in memory: order, fix text, escaping, 404, paging, search,
//! headers, the status.json document, and the bounds of a shop's trail.

use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::Uri;
use jiff::Timestamp;

use super::*;
use crate::checks::{CheckKind, Evidence, HistoryPoint, NumberRange, PerKind, Run, Verdict};
use crate::status::{CheckStatus, ShopStatus, StatusReport, View};
use crate::store::SessionState;

const CUSTOMERS: CheckKind = CheckKind::ALL[0];

fn now() -> Timestamp {
    "2026-12-06T10:00:00Z".parse().unwrap()
}

fn view() -> View {
    View {
        now: now(),
        stale_after: Duration::from_secs(3 * 3600),
        width: 0,
        problems_only: false,
    }
}

/// An enabled shop whose checks are `ok`, but the customer check says `verdict`.
fn shop(name: &str, verdict: Verdict, summary: &str, fix: Option<&str>) -> ShopStatus {
    let mut s = ShopStatus {
        name: name.to_owned(),
        enabled: true,
        ..Default::default()
    };
    s.session.state = SessionState::Valid;
    for kind in CheckKind::ALL {
        s.checks[kind] = CheckStatus {
            verdict: Verdict::Ok,
            summary: "ok: the shop's run 1–10, 990 numbers left before 1000".to_owned(),
            checked_at: Some(now()),
            since: Some(now()),
            evidence: Some(Evidence::default()),
            ..Default::default()
        };
    }
    let c = &mut s.checks[CUSTOMERS];
    c.verdict = verdict;
    c.summary = summary.to_owned();
    c.fix = fix.map(str::to_owned);
    s
}

fn board(shops: &[ShopStatus]) -> Board {
    let tiles = shops
        .iter()
        .map(|s| Tile::new(s, PerKind::default()))
        .collect();
    Board::new(None, tiles)
}

async fn get(board: &Board, uri: &str) -> (u16, hyper::HeaderMap, String) {
    let uri: Uri = uri.parse().unwrap();
    let response = respond(Some(board), &view(), &uri)
        .expect("a page path")
        .into_response();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn ok_shops(n: usize) -> Vec<ShopStatus> {
    (0..n)
        .map(|i| shop(&format!("ok-{i:03}"), Verdict::Ok, "ok: fine", None))
        .collect()
}

#[tokio::test]
async fn problems_come_first_with_their_fix_and_headers_are_strict() {
    let mut shops = ok_shops(2);
    shops.push(shop(
        "acme",
        Verdict::Conflict,
        "conflict: Tripletex's own series found inside the shop's range at 10000",
        Some("Move Tripletex's customer number series up."),
    ));
    let (status, headers, body) = get(&board(&shops), "/").await;
    assert_eq!(status, 200);
    let acme = body.find("/shop/acme").unwrap();
    assert!(acme < body.find("/shop/ok-000").unwrap(), "{body}");
    assert!(body.find("Needs attention").unwrap() < acme);
    assert!(body.contains("Move Tripletex&#39;s customer number series up."));
    assert!(body.contains("<meta name=\"viewport\""));
    assert!(body.contains("conflict 1"), "counts: {body}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.get("set-cookie").is_none());
    assert!(!body.contains("<script"), "no JavaScript");
}

#[tokio::test]
async fn outside_text_is_escaped() {
    let hostile = shop(
        "acme",
        Verdict::Warn,
        "warn: <script>alert(1)</script> & \"quoted\"",
        Some("<img src=x onerror=alert(2)>"),
    );
    let b = board(&[hostile]);
    for path in ["/", "/shop/acme"] {
        let (_, _, body) = get(&b, path).await;
        assert!(!body.contains("<script>alert"), "{body}");
        assert!(!body.contains("<img"), "{body}");
        assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;"));
        assert!(
            body.contains("&lt;img src=x onerror=alert(2)&gt;"),
            "{body}"
        );
    }
    let (_, _, body) = get(&b, "/?q=%3Cb%3E%22").await;
    assert!(
        body.contains("value=\"&lt;b&gt;&quot;\""),
        "the query, escaped: {body}"
    );
    let (_, _, body) = get(
        &board(&[shop("a<b", Verdict::Ok, "ok", None)]),
        "/shop/a%3Cb",
    )
    .await;
    assert!(body.contains("<h1>a&lt;b</h1>"), "{body}");
}

#[tokio::test]
async fn an_unknown_shop_is_404_and_other_paths_are_not_pages() {
    let b = board(&ok_shops(1));
    let (status, _, body) = get(&b, "/shop/nobody%3Cx%3E").await;
    assert_eq!(status, 404);
    assert!(body.contains("nobody&lt;x&gt;"));
    assert!(respond(Some(&b), &view(), &"/metrics".parse().unwrap()).is_none());
    let starting = respond(None, &view(), &"/".parse().unwrap()).unwrap();
    assert_eq!(starting.into_response().status(), 503);
}

#[tokio::test]
async fn pages_hold_a_hundred_shops_and_search_narrows_them() {
    let b = board(&ok_shops(250));
    let rows = |body: &str| body.matches("<tr class=\"shop\">").count();
    let (_, _, first) = get(&b, "/").await;
    assert_eq!(rows(&first), PAGE);
    assert!(first.contains("250 shops listed · page 1 of 3"), "{first}");
    assert!(first.contains("href=\"/?page=2\""));
    let (_, _, last) = get(&b, "/?page=3").await;
    assert_eq!(rows(&last), 50);
    assert!(last.contains("/shop/ok-249") && !last.contains("/shop/ok-199\""));
    let (_, _, beyond) = get(&b, "/?page=99").await;
    assert_eq!(rows(&beyond), 50, "a page past the end shows the last");

    let (_, _, found) = get(&b, "/?q=OK-24").await;
    assert_eq!(rows(&found), 10, "ok-240 … ok-249: {found}");
    let (_, _, none) = get(&b, "/?q=zzz").await;
    assert_eq!(rows(&none), 0);
    assert!(none.contains("No shop's name contains that."));
}

#[tokio::test]
async fn status_json_is_the_status_report_document() {
    let mut shops = ok_shops(2);
    shops.push(shop(
        "acme",
        Verdict::Conflict,
        "conflict: x",
        Some("fix it"),
    ));
    let b = board(&shops);
    let (status, headers, body) = get(&b, "/status.json").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let report: StatusReport = serde_json::from_str(&body).unwrap();
    assert_eq!(report.generated_at, now());
    assert_eq!(report.shops, shops);
}

#[test]
fn a_trail_keeps_at_most_its_bound_spread_over_time() {
    let mut checks = PerKind::<CheckStatus>::default();
    let mut trail = Trail::new(&checks);
    let start = now();
    for i in 0..(POINTS as i64 * 5) {
        let c = &mut checks[CUSTOMERS];
        c.verdict = if i % 2 == 0 {
            Verdict::Ok
        } else {
            Verdict::Warn
        };
        let before = if i % 2 == 0 {
            Verdict::Warn
        } else {
            Verdict::Ok
        };
        c.checked_at = Some(start + jiff::SignedDuration::from_mins(10 * i));
        c.evidence = Some(Evidence {
            shop_run: Some(Run {
                first: 1,
                last: 10 + u32::try_from(i).unwrap(),
                count: 10,
            }),
            ..Default::default()
        });
        trail.checked(CUSTOMERS, Some(before), c);
    }
    let points = trail.points(CUSTOMERS);
    assert_eq!(points.len(), POINTS);
    assert_eq!(points[0].shop_high(), Some(10), "the oldest stays");
    assert_eq!(
        points[POINTS - 1].shop_high(),
        Some(10 + POINTS as u32 * 5 - 1)
    );
    assert_eq!(trail.changes().count(), CHANGES);
}

#[test]
fn a_chart_draws_one_point_per_number_and_the_lines_it_has() {
    let history: Vec<HistoryPoint> = (0..3)
        .map(|d| HistoryPoint {
            at: now() - jiff::SignedDuration::from_hours(24 * (3 - d)),
            shop_high: Some(100 + 10 * u32::try_from(d).unwrap()),
        })
        .collect();
    let status = shop("acme", Verdict::Ok, "ok", None);
    let mut histories = PerKind::<Vec<HistoryPoint>>::default();
    histories[CUSTOMERS] = history;
    let ranges = PerKind::from_fn(|_| {
        Some(NumberRange {
            shop_start: 1,
            tripletex_start: 1000,
        })
    });
    let mut tile = Tile::new(&status, ranges);
    tile.seed(histories);
    let page = shop::render(&tile, &view());
    let chart = &page[page.find("id=\"chart-customer_numbers\"").unwrap()..];
    let polyline = &chart[chart.find("<polyline class=\"shop\"").unwrap()..];
    let points = &polyline[polyline.find("points=\"").unwrap() + 8..];
    let points = &points[..points.find('"').unwrap()];
    assert_eq!(points.split(' ').count(), 3, "{points}");
    assert!(chart.contains("tripletex_start 1000"));
}

#[test]
fn a_rebuilt_tile_keeps_its_trail_and_records_what_changed() {
    let mut status = shop("acme", Verdict::Ok, "ok", None);
    let with_high = |status: &mut ShopStatus, at: Timestamp, high: u32| {
        let c = &mut status.checks[CUSTOMERS];
        c.checked_at = Some(at);
        c.evidence = Some(Evidence {
            shop_run: Some(Run {
                first: 1,
                last: high,
                count: high,
            }),
            ..Default::default()
        });
    };
    with_high(&mut status, now(), 10);
    let old = Tile::new(&status, PerKind::default());
    with_high(&mut status, now() + jiff::SignedDuration::from_mins(5), 12);
    status.checks[CUSTOMERS].verdict = Verdict::Warn;
    let rebuilt = Tile::carried(&old, &status, PerKind::default());
    let highs: Vec<_> = rebuilt
        .trail()
        .points(CUSTOMERS)
        .iter()
        .map(|p| p.shop_high())
        .collect();
    assert_eq!(highs, [Some(10), Some(12)]);
    let newest = rebuilt.trail().changes().next().unwrap();
    assert_eq!((newest.from, newest.to), (Some(Verdict::Ok), Verdict::Warn));
}

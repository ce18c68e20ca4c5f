//! One check kind's headroom chart as inline SVG: the shop's highest number over the points of
//! its trail (`trail.rs`), the `tripletex_start` line, the forecast line to where the shop's run reaches
//! it, and Tripletex's own series where seen (above `tripletex_start`, and, in a conflict, its
//! runs inside the shop's range as dots at the newest point).
//!
//! Invariants: the SVG is self-contained (no styles, scripts or links: presentation attributes
//! only, so the page's CSP allows it); the shop's line is one `<polyline class="shop">` with one
//! coordinate pair per point that has a number; a forecast far beyond the history is cut at
//! [`horizon`] so the history stays readable; text in it is numbers and dates only.

use std::fmt::Write as _;

use jiff::civil::Date;

use super::trail::Point;
use crate::checks::{Evidence, NumberRange};
use crate::clock::{oslo_date, oslo_midnight};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
const DAY: i64 = 86_400;

/// The chart, or `None` when there is nothing to draw (no point with a number and no range).
pub fn svg(
    points: &[Point],
    range: Option<NumberRange>,
    evidence: Option<&Evidence>,
) -> Option<String> {
    let shop: Vec<(i64, u32)> = points
        .iter()
        .filter_map(|p| Some((p.second(), p.shop_high()?)))
        .collect();
    let mut tripletex: Vec<(i64, u32)> = points
        .iter()
        .filter_map(|p| Some((p.second(), p.tripletex_high()?)))
        .collect();
    let last = points.last().map(Point::second)?;
    if tripletex.is_empty()
        && let Some(run) = evidence.and_then(|e| e.tripletex_run)
    {
        tripletex.push((last, run.last));
    }
    // Tripletex's series inside the shop's range (a conflict), as of now.
    let foreign: Vec<(i64, u32)> = evidence
        .into_iter()
        .flat_map(|e| &e.foreign_runs_in_shop_range)
        .map(|r| (last, r.last))
        .collect();
    let start = range.map(|r| r.tripletex_start);
    let first = points.first().map(Point::second).unwrap_or(last);
    let forecast = evidence
        .and_then(|e| e.forecast_exhausted_on)
        .map(date_second)
        .zip(start)
        .zip(shop.last().copied());
    let (mut x0, mut x1) = (first, last);
    if let Some(((at, _), _)) = forecast {
        x1 = x1.max(at.min(horizon(first, last)));
    }
    if x1 - x0 < DAY {
        // A single moment: a day around it.
        x0 -= DAY / 2;
        x1 = x0 + DAY;
    }
    let numbers = shop
        .iter()
        .chain(&tripletex)
        .chain(&foreign)
        .map(|&(_, n)| n)
        .chain(start)
        .chain(range.map(|r| r.shop_start));
    let (lo, hi) = numbers.fold((u32::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
    if lo > hi {
        return None;
    }
    let pad = (f64::from(hi - lo) * 0.05).max(1.0);
    let (y0, y1) = (f64::from(lo) - pad, f64::from(hi) + pad);
    let x = |s: i64| LEFT + (s - x0) as f64 / (x1 - x0) as f64 * (WIDTH - LEFT - RIGHT);
    let y = |n: f64| TOP + (y1 - n) / (y1 - y0) * (HEIGHT - TOP - BOTTOM);

    let mut out = String::with_capacity(1024);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\">"
    );
    let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#999\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\" stroke=\"#999\"/>"
    );
    for n in [lo, hi] {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{n}</text>",
            LEFT - 4.0,
            y(f64::from(n)) + 4.0
        );
    }
    for (s, anchor) in [(x0, "start"), (x1, "end")] {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"{anchor}\" fill=\"#555\">{}</text>",
            x(s),
            HEIGHT - 8.0,
            day_of(s)
        );
    }
    if let Some(start) = start {
        let sy = y(f64::from(start));
        let _ = write!(
            out,
            "<line class=\"start\" x1=\"{LEFT}\" y1=\"{sy:.1}\" x2=\"{right}\" y2=\"{sy:.1}\" stroke=\"#c62828\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#c62828\">tripletex_start {start}</text>",
            LEFT + 4.0,
            sy - 4.0
        );
    }
    if let Some(((at, start), (from_at, from_n))) = forecast {
        // Cut at the chart's right edge, where the line is at that time.
        let end = at.min(x1);
        let share = if at > from_at {
            (end - from_at) as f64 / (at - from_at) as f64
        } else {
            1.0
        };
        let n = f64::from(from_n) + (f64::from(start) - f64::from(from_n)) * share;
        let _ = write!(
            out,
            "<line class=\"forecast\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1565c0\" stroke-dasharray=\"2 3\" stroke-width=\"2\"/>",
            x(from_at),
            y(f64::from(from_n)),
            x(end),
            y(n)
        );
    }
    line(&mut out, "tripletex", "#6a1b9a", &tripletex, &x, &y);
    for &(at, n) in &foreign {
        let _ = write!(
            out,
            "<circle class=\"foreign\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#6a1b9a\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#6a1b9a\">{n}</text>",
            x(at),
            y(f64::from(n)),
            x(at) + 6.0,
            y(f64::from(n)) + 4.0
        );
    }
    line(&mut out, "shop", "#2e7d32", &shop, &x, &y);
    if let Some(&(at, n)) = shop.last() {
        // The current highest, readable however far below the line it is.
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#2e7d32\">{n}</text>",
            x(at) - 4.0,
            y(f64::from(n)) - 6.0
        );
    }
    out.push_str("</svg>");
    Some(out)
}

/// A polyline through `points`, and a dot when there is only one. The shop's line is drawn
/// even through one point, so it always has one coordinate pair per point; another series
/// needs two.
fn line(
    out: &mut String,
    class: &str,
    colour: &str,
    points: &[(i64, u32)],
    x: &impl Fn(i64) -> f64,
    y: &impl Fn(f64) -> f64,
) {
    if let [(at, n)] = points {
        let _ = write!(
            out,
            "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
            x(*at),
            y(f64::from(*n))
        );
    }
    let least = if class == "shop" { 1 } else { 2 };
    if points.len() < least {
        return;
    }
    let _ = write!(
        out,
        "<polyline class=\"{class}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\""
    );
    for (i, (at, n)) in points.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        let _ = write!(out, "{sep}{:.1},{:.1}", x(*at), y(f64::from(*n)));
    }
    out.push_str("\"/>");
}

/// How far right a forecast may take the chart: three times the history's span, at least 30
/// days past its end.
fn horizon(first: i64, last: i64) -> i64 {
    last + ((last - first) * 3).max(30 * DAY)
}

fn date_second(date: Date) -> i64 {
    oslo_midnight(date).as_second()
}

fn day_of(second: i64) -> String {
    jiff::Timestamp::from_second(second)
        .map(|t| oslo_date(t).to_string())
        .unwrap_or_default()
}

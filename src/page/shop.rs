//! `/shop/NAME`: one shop's checks (verdict, since, summary, fix, evidence), its session (state,
//! expiry) and push state, per check kind a headroom chart ([`chart`]) and the last verdict
//! changes.
//!
//! Invariants: reads the shop's tile only (its JSON parsed once); the evidence is listed field
//! by field from the typed [`Evidence`], so nothing but numbers, dates and runs reaches the page
//! from it; the session shows no company key or token (a `ShopStatus` holds none).

use std::fmt::Write as _;

use super::board::Tile;
use super::{chart, html};
use crate::checks::{CheckKind, Evidence, Run};
use crate::status::View;

/// The HTML body of a shop's page.
pub fn render(tile: &Tile, view: &View) -> String {
    let status = tile.status();
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<p><a href=\"/\">← all shops</a></p>\n<h1>");
    html::text(&mut out, tile.name());
    out.push_str("</h1>\n<p>");
    html::attention(&mut out, tile.glance().shop_attention(view));
    if !status.enabled {
        out.push_str(" the shop is disabled in its shop file");
    }
    let s = &status.session;
    let _ = write!(out, "</p>\n<h2>Session</h2>\n<p>state {}", s.state.as_str());
    if let Some(expires) = s.expires_at {
        let _ = write!(out, " · expires {}", html::time(expires));
    }
    if let Some(company) = s.company_id {
        let _ = write!(out, " · company {company}");
    }
    if let Some(detail) = s.detail() {
        out.push_str("<br>");
        html::text(&mut out, detail);
    }
    out.push_str("</p>\n<h2>Push</h2>\n<p>");
    match status.push {
        None => out.push_str("webhooks are off (changes arrive with the passes)"),
        Some(p) => {
            out.push_str(if p.active {
                "subscriptions active"
            } else {
                "<strong>subscriptions not active</strong>: changes arrive with the reconcile passes only"
            });
            match p.last_callback_at {
                Some(at) => {
                    let _ = write!(out, " · last callback {}", html::time(at));
                }
                None => out.push_str(" · no callback yet"),
            }
        }
    }
    out.push_str("</p>\n");
    for kind in CheckKind::ALL {
        let check = status.checks.get(kind);
        let _ = write!(out, "<h2>{}</h2>\n<p>", kind.as_str());
        html::verdict(&mut out, check.verdict);
        let attention = tile.glance().attention(kind, view);
        if attention.label() != check.verdict.as_str() {
            // Stale, key rejected, disabled: what the verdict alone does not say.
            out.push(' ');
            html::attention(&mut out, attention);
        }
        if let Some(since) = check.since {
            let _ = write!(out, " since {}", html::time(since));
        }
        if let Some(at) = check.checked_at {
            let _ = write!(out, " · checked {}", html::time(at));
        }
        out.push_str("</p>\n<p>");
        html::text(&mut out, &check.summary);
        out.push_str("</p>\n");
        if let Some(fix) = &check.fix {
            out.push_str("<p class=\"fix\"><strong>Fix:</strong> ");
            html::text(&mut out, fix);
            out.push_str("</p>\n");
        }
        let evidence = check.evidence.as_ref();
        if let Some(svg) = chart::svg(tile.trail().points(kind), tile.range(kind), evidence) {
            let _ = write!(
                out,
                "<figure class=\"chart\" id=\"chart-{}\">",
                kind.as_str()
            );
            out.push_str(&svg);
            out.push_str(
                "<figcaption class=\"muted\">green: the shop's highest number · red dashes: \
                 tripletex_start · blue dots: the forecast · purple: Tripletex's own series \
                 where seen (a dot below the red line: inside the shop's range)</figcaption></figure>\n",
            );
        }
        if let Some(e) = evidence {
            evidence_list(&mut out, e);
        }
    }
    out.push_str("<h2>Last verdict changes</h2>\n");
    let mut changes = tile.trail().changes().peekable();
    if changes.peek().is_none() {
        out.push_str("<p>None seen.</p>\n");
    } else {
        out.push_str("<table><tr><th>When</th><th>Check</th><th>Change</th></tr>\n");
        for c in changes {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>",
                html::time(c.at),
                c.kind.as_str()
            );
            match c.from {
                Some(from) => {
                    html::verdict(&mut out, from);
                    out.push_str(" → ");
                }
                None => out.push_str("became "),
            }
            html::verdict(&mut out, c.to);
            out.push_str("</td></tr>\n");
        }
        out.push_str("</table>\n");
    }
    out
}

/// The evidence as a definition list.
fn evidence_list(out: &mut String, e: &Evidence) {
    let runs = |runs: &[Run]| {
        runs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str("<details><summary>Evidence</summary><dl>");
    let mut item = |name: &str, value: String| {
        let _ = write!(out, "<dt>{name}</dt><dd>");
        html::text(out, &value);
        out.push_str("</dd>");
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "—".to_owned());
    item("numbers in use", e.numbers_in_use.to_string());
    item("shop's run", opt(e.shop_run.map(|r| r.to_string())));
    item(
        "Tripletex's run",
        opt(e.tripletex_run.map(|r| r.to_string())),
    );
    item("headroom", opt(e.headroom.map(|h| h.to_string())));
    item(
        "forecast reaches tripletex_start",
        opt(e.forecast_exhausted_on.map(|d| d.to_string())),
    );
    item(
        "growth per day",
        opt(e.growth_per_day.map(|g| format!("{g:.1}"))),
    );
    item(
        "below shop_start",
        opt(e.below_shop_start.map(|r| r.to_string())),
    );
    item(
        "foreign runs in the shop's range",
        runs(&e.foreign_runs_in_shop_range),
    );
    item(
        "duplicates",
        e.duplicates
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push_str("</dl></details>\n");
}

//! `/`: the counts by verdict, attention and session state, a search box, and one page of shops:
//! those that need attention first (conflict, key rejected, error, warn, stale: `status`'s
//! [`Attention`] order), each with its summaries and fix, then the rest.
//!
//! Invariants: one pass over the board's glances (no JSON parsed, nothing sorted: shops fall
//! into one bucket per attention, config order within one) plus the JSON of the at most
//! [`PAGE`] shops shown, so the page costs the same whatever page is asked for; the search
//! (`?q=`, a case-insensitive part of the name) and paging (`?page=`) are plain links and a GET
//! form, no JavaScript.

use std::fmt::Write as _;

use super::board::Board;
use super::html;
use crate::checks::{CheckKind, Verdict};
use crate::status::{Attention, View};
use crate::store::SessionState;

/// Shops a page lists.
pub const PAGE: usize = 100;

const ATTENTIONS: [Attention; 8] = [
    Attention::Conflict,
    Attention::KeyRejected,
    Attention::Error,
    Attention::Warn,
    Attention::Stale,
    Attention::Ok,
    Attention::Unknown,
    Attention::Disabled,
];
const VERDICTS: [Verdict; 5] = [
    Verdict::Conflict,
    Verdict::Error,
    Verdict::Warn,
    Verdict::Ok,
    Verdict::Unknown,
];
const SESSIONS: [SessionState; 5] = [
    SessionState::KeyRejected,
    SessionState::Valid,
    SessionState::Renewing,
    SessionState::Revoked,
    SessionState::Unknown,
];

/// What `/` was asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    /// Part of a shop name; empty for every shop.
    pub q: String,
    /// Zero-based.
    pub page: usize,
}

impl Query {
    /// From a query string (`q=…&page=…`; `page` is one-based there, as people count).
    pub fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self::default();
        for pair in query.unwrap_or_default().split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = html::url_decode(value).unwrap_or_default();
            match key {
                "q" => parsed.q = value.trim().to_owned(),
                "page" => parsed.page = value.parse::<usize>().unwrap_or(1).saturating_sub(1),
                _ => {}
            }
        }
        parsed
    }

    fn matches(&self, name: &str) -> bool {
        let q = self.q.as_bytes();
        q.is_empty()
            || name
                .as_bytes()
                .windows(q.len())
                .any(|w| w.eq_ignore_ascii_case(q))
    }

    fn link(&self, out: &mut String, page: usize) {
        out.push_str("/?");
        if !self.q.is_empty() {
            out.push_str("q=");
            html::url_component(out, &self.q);
            out.push_str("&amp;");
        }
        let _ = write!(out, "page={}", page + 1);
    }
}

/// The HTML body of `/`.
pub fn render(board: &Board, view: &View, query: &Query) -> String {
    let mut buckets: [Vec<u32>; ATTENTIONS.len()] = Default::default();
    let mut verdicts = [0usize; VERDICTS.len()];
    let mut sessions = [0usize; SESSIONS.len()];
    let mut attentions = [0usize; ATTENTIONS.len()];
    let mut disabled = 0;
    for (i, tile) in board.tiles().iter().enumerate() {
        let glance = tile.glance();
        let rank = rank(glance.shop_attention(view));
        attentions[rank] += 1;
        match glance.worst() {
            Some(worst) => {
                verdicts[VERDICTS.iter().position(|v| *v == worst).unwrap_or(4)] += 1;
                let s = SESSIONS.iter().position(|s| *s == glance.session);
                sessions[s.unwrap_or(4)] += 1;
            }
            None => disabled += 1,
        }
        if query.matches(tile.name()) {
            buckets[rank].push(u32::try_from(i).expect("fewer than 4 billion shops"));
        }
    }
    let found: usize = buckets.iter().map(Vec::len).sum();
    let pages = found.div_ceil(PAGE).max(1);
    let page = query.page.min(pages - 1);

    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<h1>tripletex-sync</h1>\n<p class=\"muted\">");
    let _ = write!(
        out,
        "{} shops, as of {}",
        board.tiles().len(),
        html::time(view.now)
    );
    if let Some(shard) = board.shard() {
        out.push_str(" · shard ");
        html::text(&mut out, shard);
        out.push_str(": only this shard's shops");
    }
    out.push_str(
        " · <a href=\"/status.json\">status.json</a> · <a href=\"/metrics\">metrics</a></p>\n",
    );
    if let Some(e) = board.store_error() {
        out.push_str("<p class=\"alert\">The state store is failing, passes are not recorded (below: the last recorded verdicts): ");
        html::text(&mut out, e);
        out.push_str("</p>\n");
    }
    if let Some(n) = board.notify() {
        let _ = write!(
            out,
            "<p class=\"counts\">Notifications to the platform: <span>pending {}</span><span>dead {}</span><span>delivered {}</span>",
            n.pending, n.dead, n.delivered
        );
        if let Some(at) = n.oldest_pending_at {
            let _ = write!(out, "<span>oldest pending since {}</span>", html::time(at));
        }
        if let Some(error) = &n.last_error {
            out.push_str("<br>last error: ");
            html::text(&mut out, error);
        }
        out.push_str("</p>\n");
    }
    out.push_str("<p class=\"counts\">Shops by worst check: ");
    for (v, n) in VERDICTS.iter().zip(verdicts) {
        let _ = write!(out, "<span>{} {n}</span>", v.as_str());
    }
    let _ = write!(
        out,
        "<span>disabled {disabled}</span></p>\n<p class=\"counts\">Need attention: "
    );
    for (a, n) in ATTENTIONS.iter().zip(attentions) {
        if a.is_problem() {
            let _ = write!(out, "<span>{} {n}</span>", a.label());
        }
    }
    out.push_str("</p>\n<p class=\"counts\">Sessions: ");
    for (s, n) in SESSIONS.iter().zip(sessions) {
        let _ = write!(out, "<span>{} {n}</span>", s.as_str());
    }
    out.push_str("</p>\n<form method=\"get\" action=\"/\"><label>Shop <input type=\"search\" name=\"q\" value=\"");
    html::text(&mut out, &query.q);
    out.push_str("\"></label> <button type=\"submit\">Search</button></form>\n");

    let shown = buckets
        .iter()
        .flatten()
        .skip(page * PAGE)
        .take(PAGE)
        .map(|&i| &board.tiles()[i as usize]);
    let mut heading = None;
    for tile in shown {
        let attention = tile.glance().shop_attention(view);
        let problem = attention.is_problem();
        if heading != Some(problem) {
            if heading.is_some() {
                out.push_str("</table>\n");
            }
            out.push_str(if problem {
                "<h2>Needs attention</h2>\n"
            } else {
                "<h2>The rest</h2>\n"
            });
            out.push_str("<table><tr><th>Shop</th><th>State</th><th>Checks</th></tr>\n");
            heading = Some(problem);
        }
        row(&mut out, tile, view, attention);
    }
    match heading {
        Some(_) => out.push_str("</table>\n"),
        None if query.q.is_empty() => out.push_str("<p>No shops are configured.</p>\n"),
        None => out.push_str("<p>No shop's name contains that.</p>\n"),
    }
    let _ = write!(
        out,
        "<p>{found} shops listed · page {} of {pages}",
        page + 1
    );
    if page > 0 {
        out.push_str(" · <a rel=\"prev\" href=\"");
        query.link(&mut out, page - 1);
        out.push_str("\">previous</a>");
    }
    if page + 1 < pages {
        out.push_str(" · <a rel=\"next\" href=\"");
        query.link(&mut out, page + 1);
        out.push_str("\">next</a>");
    }
    out.push_str("</p>");
    out
}

/// Position of `a` in [`ATTENTIONS`] (its bucket).
fn rank(a: Attention) -> usize {
    ATTENTIONS.iter().position(|x| *x == a).unwrap_or(6)
}

/// One shop: its name, what it needs and its session, then each check's verdict and summary,
/// and the fix of each check that needs attention.
fn row(out: &mut String, tile: &super::board::Tile, view: &View, attention: Attention) {
    let status = tile.status();
    out.push_str("<tr class=\"shop\"><td>");
    html::shop_link(out, tile.name());
    out.push_str("</td><td>");
    html::attention(out, attention);
    let _ = write!(
        out,
        "<br><span class=\"muted\">session {}</span>",
        status.session.state.as_str()
    );
    out.push_str("</td><td>");
    for kind in CheckKind::ALL {
        let check = status.checks.get(kind);
        let a = tile.glance().attention(kind, view);
        out.push_str("<div>");
        html::verdict(out, check.verdict);
        let _ = write!(out, " {}: ", kind.as_str());
        html::text(out, &check.summary);
        if a == Attention::Stale
            && let Some(at) = check.checked_at
        {
            let _ = write!(
                out,
                " <strong>(not checked since {})</strong>",
                html::time(at)
            );
        }
        if a.is_problem()
            && let Some(fix) = &check.fix
        {
            out.push_str("<div class=\"fix\"><strong>Fix:</strong> ");
            html::text(out, fix);
            out.push_str("</div>");
        }
        out.push_str("</div>");
    }
    out.push_str("</td></tr>\n");
}

//! `status` for people: the full table (`--wide`, and what `check` prints) and the default
//! view, one line per shop and check that fits the terminal, problems first.
//!
//! Invariants: the default view never prints a line wider than its width, counted in characters
//! (summaries hold `–` and `…`, one column each but several bytes), cutting the reason (or, for
//! a very long shop name, the line) with `…`; its lines are in [`Attention`] order, config order
//! within one; its closing line (wrapped, never cut) counts every line of the report, printed
//! or not. What needs
//! attention is decided here once ([`Attention::of`]), for the view, `--problems` and its exit
//! code alike.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::{CheckStatus, ShopStatus, StatusReport};
use crate::checks::{CheckKind, Verdict};
use crate::clock::oslo;
use crate::store::SessionState;

/// How much a check's line needs attention, most first: the order `status` lists lines in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attention {
    Conflict,
    KeyRejected,
    Error,
    Warn,
    /// Not checked for [`View::stale_after`]: nothing watches the numbers any more.
    Stale,
    Ok,
    Unknown,
    /// The shop or the check is turned off.
    Disabled,
}

impl Attention {
    /// Whether `status --problems` lists it (and exits 1).
    pub fn is_problem(self) -> bool {
        self <= Self::Stale
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Conflict => "conflict",
            Self::KeyRejected => "key rejected",
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Stale => "stale",
            Self::Ok => "ok",
            Self::Unknown => "unknown",
            Self::Disabled => "disabled",
        }
    }

    /// What `check` of `shop` needs, and how long ago it last ran when that makes it stale.
    pub fn of(shop: &ShopStatus, check: &CheckStatus, view: &View) -> (Self, Option<u64>) {
        Self::judge(
            CheckFacts {
                shop_enabled: shop.enabled,
                disabled: check.disabled,
                verdict: check.verdict,
                session: shop.session.state,
                checked_at: check.checked_at,
            },
            view,
        )
    }

    /// [`Attention::of`] on the few facts it looks at (the status page keeps only these for
    /// every shop).
    pub fn judge(check: CheckFacts, view: &View) -> (Self, Option<u64>) {
        if !check.shop_enabled || check.disabled {
            return (Self::Disabled, None);
        }
        let age = check
            .checked_at
            .map(|at| u64::try_from(view.now.as_second() - at.as_second()).unwrap_or(0))
            .filter(|&age| age > view.stale_after.as_secs());
        let attention = match check.verdict {
            Verdict::Conflict => Self::Conflict,
            _ if check.session == SessionState::KeyRejected => Self::KeyRejected,
            Verdict::Error => Self::Error,
            Verdict::Warn => Self::Warn,
            _ if age.is_some() => Self::Stale,
            Verdict::Ok => Self::Ok,
            Verdict::Unknown => Self::Unknown,
        };
        (attention, age)
    }
}

/// What decides one check's [`Attention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckFacts {
    pub shop_enabled: bool,
    /// The shop file turns the check off.
    pub disabled: bool,
    pub verdict: Verdict,
    pub session: SessionState,
    pub checked_at: Option<Timestamp>,
}

/// What the default view needs besides the report.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub now: Timestamp,
    /// A check not run for longer is stale: three pass intervals, like the alert rule.
    pub stale_after: Duration,
    /// Characters a line may take.
    pub width: usize,
    /// Only the lines that need attention (`--problems`).
    pub problems_only: bool,
}

/// One shop and check of the default view.
struct Line<'a> {
    shop: &'a str,
    kind: CheckKind,
    verdict: &'static str,
    attention: Attention,
    reason: String,
}

impl StatusReport {
    /// Whether any check of the report needs attention (`--problems`).
    pub fn has_problems(&self, view: &View) -> bool {
        self.lines(view).iter().any(|l| l.attention.is_problem())
    }

    /// Keeps only the shops with a check that needs attention.
    pub fn retain_problems(&mut self, view: &View) {
        self.shops.retain(|shop| {
            CheckKind::ALL
                .into_iter()
                .any(|k| Attention::of(shop, shop.checks.get(k), view).0.is_problem())
        });
    }

    /// The default view: one line per shop and check, problems first, then the counts.
    pub fn compact(&self, view: &View) -> String {
        let lines = self.lines(view);
        let mut counts: BTreeMap<Attention, usize> = BTreeMap::new();
        for line in &lines {
            *counts.entry(line.attention).or_default() += 1;
        }
        let shown: Vec<&Line> = lines
            .iter()
            .filter(|l| !view.problems_only || l.attention.is_problem())
            .collect();
        let mut out = Vec::new();
        if let Some(shard) = &self.shard {
            out.push(format!(
                "shard {shard}: only this shard's shops; other instances check the rest"
            ));
        }
        if let Some(e) = &self.store_error {
            out.push(format!("STATE STORE FAILING, passes are not recorded: {e}"));
        }
        if !shown.is_empty() {
            let shop_w = shown
                .iter()
                .map(|l| l.shop.chars().count())
                .max()
                .unwrap_or(0)
                .max("SHOP".len());
            let kind_w = CheckKind::ALL.map(|k| k.as_str().len()).into_iter().max();
            let kind_w = kind_w.unwrap_or(0);
            let verdict_w = "conflict".len();
            out.push(format!(
                "{:<shop_w$} {:<kind_w$} {:<verdict_w$} REASON",
                "SHOP", "CHECK", "VERDICT"
            ));
            for l in shown {
                let head = format!(
                    "{:<shop_w$} {:<kind_w$} {:<verdict_w$} ",
                    l.shop,
                    l.kind.as_str(),
                    l.verdict
                );
                let room = view.width.saturating_sub(head.chars().count());
                out.push(format!("{head}{}", ellipsize(&l.reason, room)));
            }
        }
        // Wrapped rather than cut: the counts are the point of the line.
        out.extend(wrap(
            &closing(self, &lines, &counts, view.problems_only),
            view.width,
        ));
        out.extend(self.notify_line());
        let mut text = String::new();
        for line in out {
            text.push_str(ellipsize(&line, view.width).trim_end());
            text.push('\n');
        }
        text
    }

    /// Every shop and check, in [`Attention`] order (config order within one).
    fn lines(&self, view: &View) -> Vec<Line<'_>> {
        let mut lines = Vec::new();
        for shop in &self.shops {
            for kind in CheckKind::ALL {
                let check = shop.checks.get(kind);
                let (attention, age) = Attention::of(shop, check, view);
                let summary = short_reason(&check.summary, check.verdict, kind);
                let reason = match (attention, age) {
                    _ if !shop.enabled => "shop disabled".to_owned(),
                    (Attention::Disabled, _) => summary.to_owned(),
                    (_, Some(age)) => format!("not checked for {}: {summary}", ago(age)),
                    (_, None) => summary.to_owned(),
                };
                let verdict = if shop.enabled {
                    check.verdict.as_str()
                } else {
                    "disabled"
                };
                lines.push(Line {
                    shop: &shop.name,
                    kind,
                    verdict,
                    attention,
                    reason,
                });
            }
        }
        // Stable: config order within a rank.
        lines.sort_by_key(|l| l.attention);
        lines
    }

    /// A fixed-width table for terminals: every shop and check with its session, since when,
    /// the full summary and the fix (`status --wide`, and what `check` prints).
    pub fn table(&self) -> String {
        let mut out = match &self.shard {
            Some(shard) => {
                format!("shard {shard}: only this shard's shops; other instances check the rest\n")
            }
            None => String::new(),
        };
        if let Some(e) = &self.store_error {
            out += &format!("STATE STORE FAILING, passes are not recorded: {e}\n");
        }
        out += &format!(
            "{:<20} {:<13} {:<17} {:<9} {:<16} {}\n",
            "SHOP", "SESSION", "CHECK", "VERDICT", "SINCE (OSLO)", "SUMMARY"
        );
        for shop in &self.shops {
            let session = if shop.enabled {
                shop.session.state.as_str()
            } else {
                "disabled"
            };
            for (i, kind) in CheckKind::ALL.into_iter().enumerate() {
                let c = shop.checks.get(kind);
                let (name, session) = if i == 0 {
                    (shop.name.as_str(), session)
                } else {
                    ("", "")
                };
                let since = c.since.map_or_else(
                    || "-".to_owned(),
                    |t| {
                        t.to_zoned_datetime(oslo())
                            .strftime("%Y-%m-%d %H:%M")
                            .to_string()
                    },
                );
                out.push_str(&format!(
                    "{name:<20} {session:<13} {:<17} {:<9} {since:<16} {}\n",
                    kind.as_str(),
                    c.verdict.as_str(),
                    c.summary
                ));
                if let Some(fix) = c.fix.as_deref().filter(|_| c.verdict >= Verdict::Warn) {
                    out.push_str(&format!("{:<78}fix: {fix}\n", ""));
                }
            }
        }
        if let Some(line) = self.notify_line() {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// "notify: 12 pending since 2026-12-06 07:12 (Oslo), 1 dead; last error: …" while the
    /// platform has not taken everything (see docs/notify.md).
    fn notify_line(&self) -> Option<String> {
        let n = self
            .notify
            .as_ref()
            .filter(|n| n.pending > 0 || n.dead > 0)?;
        let mut line = format!("notify: {} pending", n.pending);
        if let Some(oldest) = n.oldest_pending_at {
            let at = oldest.to_zoned_datetime(oslo()).strftime("%Y-%m-%d %H:%M");
            line += &format!(" since {at} (Oslo)");
        }
        if n.dead > 0 {
            line += &format!(", {} dead", n.dead);
        }
        if let Some(error) = &n.last_error {
            line += &format!("; last error: {error}");
        }
        Some(line)
    }
}

/// "3 shops, 6 checks: 1 conflict, 2 key rejected, 3 ok; 3 sessions revoked", in pieces that
/// [`wrap`] keeps whole.
fn closing(
    report: &StatusReport,
    lines: &[Line],
    counts: &BTreeMap<Attention, usize>,
    problems_only: bool,
) -> Vec<String> {
    let quiet = problems_only && !lines.iter().any(|l| l.attention.is_problem());
    let shops = report.shops.len();
    let mut pieces = vec![
        format!(
            "{}{shops} shop{},",
            if quiet {
                "nothing needs attention ("
            } else {
                ""
            },
            plural(shops)
        ),
        format!("{} check{}", lines.len(), plural(lines.len())),
    ];
    let append = |pieces: &mut Vec<String>, after: char, piece: String| {
        pieces.last_mut().expect("never empty").push(after);
        pieces.push(piece);
    };
    for (i, (a, n)) in counts.iter().enumerate() {
        let after = if i == 0 { ':' } else { ',' };
        append(&mut pieces, after, format!("{n} {}", a.label()));
    }
    let revoked = report
        .shops
        .iter()
        .filter(|s| s.session.state == SessionState::Revoked)
        .count();
    if revoked > 0 {
        let piece = format!("{revoked} session{} revoked", plural(revoked));
        append(&mut pieces, ';', piece);
    }
    if quiet {
        pieces.last_mut().expect("never empty").push(')');
    }
    pieces
}

/// `pieces` joined by spaces in lines of at most `width` characters, each piece whole (unless
/// it alone is wider), continued indented.
fn wrap(pieces: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for piece in pieces {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + piece.chars().count() <= width => {
                line.push(' ');
                line.push_str(piece);
            }
            Some(_) => lines.push(format!("  {piece}")),
            None => lines.push(piece.clone()),
        }
    }
    lines
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The summary without what the line's columns say already: its leading "verdict: ", and an
/// error's "could not check customer numbers: ", so the reason itself fits.
fn short_reason(summary: &str, verdict: Verdict, kind: CheckKind) -> &str {
    let rest = summary
        .strip_prefix(verdict.as_str())
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(summary);
    rest.strip_prefix("could not check ")
        .and_then(|r| r.strip_prefix(kind.noun()))
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(rest)
}

/// `text` in at most `room` characters: cut with `…` when longer.
fn ellipsize(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(room.saturating_sub(1)).collect();
    if room > 0 {
        cut.push('…');
    }
    cut
}

/// "45s", "12m", "3h 5m", "2d 4h".
fn ago(seconds: u64) -> String {
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match () {
        _ if d > 0 => format!("{d}d {}h", h % 24),
        _ if h > 0 => format!("{h}h {}m", m % 60),
        _ if m > 0 => format!("{m}m"),
        _ => format!("{seconds}s"),
    }
}

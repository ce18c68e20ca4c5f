//! Numbering-conflict checks: are the shop's and Tripletex's number series going to collide?
//!
//! Owns the verdict for each number series ([`kinds`]: customer and invoice numbers). A web shop
//! numbers its own customers and invoices upwards from `shop_start`; Tripletex's own series must
//! start at `tripletex_start` so the two never meet. Tripletex's API exposes neither setting, so everything here is inferred
//! from the numbers in use: S = [shop_start, tripletex_start) is the shop's range, T =
//! [tripletex_start, ∞) Tripletex's.
//!
//! Invariants:
//! - Pure: no HTTP, storage, clock reads or I/O. `now` and the history are arguments, so the same
//!   inputs always give the same [`CheckOutcome`].
//! - The verdict is the worst rule that fires (conflict before warn before ok); the summary is one
//!   human line that names the numbers behind it, and every conflict or warning carries a fix.
//! - Cost is one sort plus one pass, whatever the number of numbers.
//! - Dates are Oslo calendar dates ([`crate::clock::oslo_date`]), as Tripletex users see them.

pub(crate) mod forecast;
pub mod kinds;
mod runs;

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::clock::oslo_date;
pub use kinds::{CheckKind, KindSpec, PerKind};

/// How bad things are. Ordered by severity in declaration order, so `max()` picks the worst;
/// `Error` and `Unknown` rank above `Conflict` because then nothing vouches for the numbers.
///
/// Stored and in status.json: a verdict a newer release added reads as `Unknown` (never `Ok`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Conflict,
    Error,
    #[default]
    #[serde(other)]
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Conflict => "conflict",
            Verdict::Error => "error",
            Verdict::Unknown => "unknown",
        }
    }
}

/// Where the shop's series starts and where Tripletex's must start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberRange {
    pub shop_start: u32,
    pub tripletex_start: u32,
}

/// Thresholds for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// A gap wider than this between consecutive numbers in S starts a new run; the shop's
    /// run must also start within this of `shop_start`. Should be ≥ 1.
    pub cluster_gap: u32,
    /// Warn when the forecast reaches `tripletex_start` within this many days.
    pub forecast_warn_days: u32,
    /// Warn when fewer than this many numbers are left in S after the shop's highest.
    pub headroom_warn: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            cluster_gap: 1000,
            forecast_warn_days: 90,
            headroom_warn: 500,
        }
    }
}

/// The shop's highest number at some earlier check; the forecast fits a line through these.
/// Stored: missing fields take defaults, unknown ones are ignored (see `store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HistoryPoint {
    pub at: Timestamp,
    /// `None` when the shop had no numbers yet (or the check could not run).
    pub shop_high: Option<u32>,
}

/// A set of distinct numbers from `first` to `last` (inclusive), `count` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Run {
    pub first: u32,
    pub last: u32,
    pub count: u32,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}–{}", self.first, self.last)
        }
    }
}

/// What the verdict was based on, for the dashboard and for later history points.
/// Stored: missing fields take defaults, unknown ones are ignored (see `store`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// Distinct numbers in use (a duplicated number counts once).
    pub numbers_in_use: u32,
    /// The shop's own run in S: the first run, if it starts within `cluster_gap` of `shop_start`.
    pub shop_run: Option<Run>,
    /// Runs in S separated from the shop's run by more than `cluster_gap` — almost certainly
    /// Tripletex's own series inside the shop's range. At most 20 listed, lowest first.
    pub foreign_runs_in_shop_range: Vec<Run>,
    /// The numbers below `shop_start`: lowest, highest and how many.
    pub below_shop_start: Option<Run>,
    /// Numbers used more than once, ascending; at most 20 listed.
    pub duplicates: Vec<u32>,
    /// The numbers in T (≥ `tripletex_start`): Tripletex's own series, if it has been used yet.
    pub tripletex_run: Option<Run>,
    /// Numbers left in S after the shop's highest (all of S if the shop has none yet).
    pub headroom: Option<u32>,
    /// Oslo date on which the shop's run reaches `tripletex_start` at the fitted growth rate;
    /// `None` without enough history or growth.
    pub forecast_exhausted_on: Option<Date>,
    /// The fitted growth of the shop's highest number, in numbers per day.
    pub growth_per_day: Option<f64>,
}

impl Evidence {
    /// The point to store so the next check's forecast can use today's high.
    pub fn history_point(&self, at: Timestamp) -> HistoryPoint {
        HistoryPoint {
            at,
            shop_high: self.shop_run.map(|r| r.last),
        }
    }
}

/// The result of one check, as shown to the operator and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub kind: CheckKind,
    // Stored: everything but the kind may be missing from a record of another release.
    #[serde(default)]
    pub verdict: Verdict,
    /// One human line, starting with the verdict, naming the numbers.
    #[serde(default)]
    pub summary: String,
    /// What to do about it, in Tripletex's menu words; `None` when nothing needs doing.
    #[serde(default)]
    pub fix: Option<String>,
    #[serde(default)]
    pub evidence: Evidence,
}

/// The check could not be made (key rejected, no read access, Tripletex down, ...).
pub fn could_not_run(kind: CheckKind, reason: &str) -> CheckOutcome {
    CheckOutcome {
        kind,
        verdict: Verdict::Error,
        summary: format!("error: could not check {}: {reason}", kind.noun()),
        fix: None,
        evidence: Evidence::default(),
    }
}

/// Placeholder before the first check has run.
pub fn not_yet_checked(kind: CheckKind) -> CheckOutcome {
    CheckOutcome {
        kind,
        verdict: Verdict::Unknown,
        summary: format!("unknown: {} not checked yet", kind.noun()),
        fix: None,
        evidence: Evidence::default(),
    }
}

/// Judges `numbers` (every number in use, any order, duplicates allowed) against `range`.
pub fn evaluate(
    kind: CheckKind,
    numbers: &[u32],
    range: NumberRange,
    policy: &Policy,
    history: &[HistoryPoint],
    now: Timestamp,
) -> CheckOutcome {
    if range.tripletex_start <= range.shop_start {
        // A misconfiguration, not a finding about the shop: nothing below is meaningful.
        return could_not_run(
            kind,
            &format!(
                "the configured range is empty (tripletex_start {} is not above shop_start {})",
                range.tripletex_start, range.shop_start
            ),
        );
    }
    let facts = Facts::gather(numbers, range, policy, history, now);
    let evidence = facts.evidence();
    let (verdict, summary, fix) = if let Some((problems, fixes)) = conflicts(kind.spec(), &facts) {
        let summary = format!("conflict: {}", problems.join("; "));
        (Verdict::Conflict, summary, Some(fixes.join(" ")))
    } else if let Some((problems, fix)) = warnings(&facts, policy, now) {
        (
            Verdict::Warn,
            format!("warn: {}", problems.join("; ")),
            Some(fix),
        )
    } else {
        (Verdict::Ok, all_clear(&facts), None)
    };
    CheckOutcome {
        kind,
        verdict,
        summary,
        fix,
        evidence,
    }
}

/// What the rules look at: the runs in the numbers, the headroom left and the forecast.
struct Facts {
    range: NumberRange,
    runs: runs::Analysis,
    /// Numbers left in S after the shop's highest.
    headroom: u32,
    fitted: Option<forecast::Forecast>,
    /// The shop has numbers, but too little history for a forecast yet.
    history_too_short: bool,
    /// "shop's run 1–800", or that the shop has none yet.
    shop_desc: String,
}

impl Facts {
    fn gather(
        numbers: &[u32],
        range: NumberRange,
        policy: &Policy,
        history: &[HistoryPoint],
        now: Timestamp,
    ) -> Self {
        let runs = runs::analyse(numbers, range, policy.cluster_gap);
        let shop_high = runs.shop.map(|r| r.last);
        let headroom = range.tripletex_start - shop_high.map_or(range.shop_start, |h| h + 1);
        let points: Vec<_> = shop_high
            .map(|high| {
                let past = history
                    .iter()
                    .filter_map(|p| p.shop_high.map(|h| (p.at, h)));
                past.chain([(now, high)]).collect()
            })
            .unwrap_or_default();
        let enough = forecast::enough_history(&points);
        let fitted = shop_high
            .filter(|_| enough)
            .and_then(|high| forecast::fit(points, now, high, range.tripletex_start));
        let shop_desc = match runs.shop {
            Some(r) => format!("shop's run {r}"),
            None => "the shop has no numbers yet".to_owned(),
        };
        Self {
            range,
            runs,
            headroom,
            fitted,
            history_too_short: shop_high.is_some() && !enough,
            shop_desc,
        }
    }

    fn reaches_at(&self) -> Option<Timestamp> {
        self.fitted.and_then(|f| f.reaches_target_at)
    }

    fn evidence(&self) -> Evidence {
        let a = &self.runs;
        Evidence {
            numbers_in_use: a.distinct,
            shop_run: a.shop,
            foreign_runs_in_shop_range: a.foreign.clone(),
            below_shop_start: a.below,
            duplicates: a.duplicates.clone(),
            tripletex_run: a.tripletex,
            headroom: Some(self.headroom),
            forecast_exhausted_on: self.reaches_at().map(oslo_date),
            growth_per_day: self.fitted.map(|f| f.growth_per_day),
        }
    }
}

/// The conflict rules: the problems found and the fixes for them, or `None` when none fires.
fn conflicts(spec: &KindSpec, f: &Facts) -> Option<(Vec<String>, Vec<String>)> {
    let (a, shop_desc, ts) = (&f.runs, &f.shop_desc, f.range.tripletex_start);
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    if let Some(below) = a.below {
        problems.push(format!(
            "{} {below} lie below the shop's start at {}, so Tripletex's own series will run \
             into the shop's ({shop_desc})",
            spec.noun, f.range.shop_start
        ));
    }
    if !a.foreign.is_empty() {
        let more = a.foreign_total as usize - a.foreign.len();
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        problems.push(format!(
            "Tripletex's own series found inside the shop's range at {}{more} ({shop_desc})",
            listed(&a.foreign)
        ));
    }
    if a.below.is_some() || !a.foreign.is_empty() {
        fixes.push((spec.advice.move_series)(ts));
        for run in a.below.iter().chain(&a.foreign) {
            fixes.push((spec.advice.clashing)(*run, a.below == Some(*run)));
        }
    }
    if f.headroom == 0 {
        problems.push(format!(
            "the {shop_desc} has used every number below {ts}, the range is exhausted"
        ));
        fixes.push(format!(
            "The shop's range is used up: move Tripletex's series further up and let the shop \
             continue above every number Tripletex has used, or renumber the shop's {}.",
            spec.noun
        ));
    }
    if !a.duplicates.is_empty() {
        let word = if a.duplicates.len() == 1 {
            "number"
        } else {
            "numbers"
        };
        let listed = listed(&a.duplicates);
        let of = if a.duplicate_total as usize > a.duplicates.len() {
            format!(" ({} in all)", a.duplicate_total)
        } else {
            String::new()
        };
        problems.push(format!("{} used more than once: {listed}{of}", spec.noun));
        fixes.push((spec.advice.duplicates)(word, &listed));
    }
    (!problems.is_empty()).then_some((problems, fixes))
}

/// The warning rules (little headroom, exhaustion forecast soon): the problems and the fix, or
/// `None` when none fires.
fn warnings(f: &Facts, policy: &Policy, now: Timestamp) -> Option<(Vec<String>, String)> {
    let (headroom, ts, shop_desc) = (f.headroom, f.range.tripletex_start, &f.shop_desc);
    let date = f.reaches_at().map(oslo_date);
    let soon = f.reaches_at().is_some_and(|at| {
        at.duration_since(now).as_secs() <= i64::from(policy.forecast_warn_days) * 86_400
    });
    let mut problems = Vec::new();
    if headroom < policy.headroom_warn {
        problems.push(format!(
            "only {headroom} numbers left before {ts} ({shop_desc})"
        ));
    }
    if let (true, Some(date), Some(fit)) = (soon, date, f.fitted) {
        problems.push(format!(
            "at {:.1} a day the {shop_desc} reaches {ts} around {date}",
            fit.growth_per_day
        ));
    }
    if problems.is_empty() {
        return None;
    }
    let before = match date {
        Some(date) => format!("before {date}"),
        None => format!("before the last {headroom} numbers are used"),
    };
    let fix = format!(
        "Move Tripletex's series further up (and tripletex_start with it) or plan a \
         renumbering {before}."
    );
    Some((problems, fix))
}

/// The `ok` summary: the shop's run, what is left, the outlook and Tripletex's own series.
fn all_clear(f: &Facts) -> String {
    let ts = f.range.tripletex_start;
    let seen = match f.runs.tripletex {
        Some(r) => format!("Tripletex's own series seen at {r}"),
        None => format!("Tripletex's own series not seen yet (no numbers ≥ {ts})"),
    };
    let outlook = match f.reaches_at().map(oslo_date) {
        Some(date) => format!(", reaching {ts} around {date}"),
        None if f.history_too_short => format!(
            ", no forecast yet (needs {} days of history)",
            forecast::MIN_SPAN_DAYS
        ),
        None => String::new(),
    };
    format!(
        "ok: {}, {} numbers left before {ts}{outlook}; {seen}",
        f.shop_desc, f.headroom
    )
}

/// "1–5, 9, 12–14": items joined for a summary.
fn listed<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;

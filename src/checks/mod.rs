//! Numbering-conflict checks: are the shop's and Tripletex's number series going to collide?
//!
//! Owns the verdict for customer and invoice numbers. A web shop numbers its own customers and
//! invoices upwards from `shop_start`; Tripletex's own series must start at `tripletex_start` so
//! the two never meet. Tripletex's API exposes neither setting, so everything here is inferred
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

mod forecast;
mod runs;

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::clock::oslo_date;

/// Which number series a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    CustomerNumbers,
    InvoiceNumbers,
}

impl CheckKind {
    pub const ALL: [CheckKind; 2] = [CheckKind::CustomerNumbers, CheckKind::InvoiceNumbers];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::CustomerNumbers => "customer_numbers",
            CheckKind::InvoiceNumbers => "invoice_numbers",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            CheckKind::CustomerNumbers => "customer numbers",
            CheckKind::InvoiceNumbers => "invoice numbers",
        }
    }

    /// The fix that puts Tripletex's own series where it belongs, in Tripletex's menu words.
    fn move_series(self, to: u32) -> String {
        match self {
            CheckKind::CustomerNumbers => {
                format!("In Tripletex: Customer › Settings › set customer number to {to}.")
            }
            CheckKind::InvoiceNumbers => format!(
                "In Tripletex: Accounting › Accounting settings › Voucher types/number sequences › \
                 start the invoice series at {to}."
            ),
        }
    }
}

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
    let a = runs::analyse(numbers, range, policy.cluster_gap);
    let shop_high = a.shop.map(|r| r.last);
    let headroom = range.tripletex_start - shop_high.map_or(range.shop_start, |h| h + 1);

    let fitted = shop_high.and_then(|high| {
        let past = history
            .iter()
            .filter_map(|p| p.shop_high.map(|h| (p.at, h)));
        forecast::fit(past.chain([(now, high)]), now, high, range.tripletex_start)
    });
    let reaches_at = fitted.and_then(|f| f.reaches_target_at);

    let evidence = Evidence {
        numbers_in_use: a.distinct,
        shop_run: a.shop,
        foreign_runs_in_shop_range: a.foreign.clone(),
        below_shop_start: a.below,
        duplicates: a.duplicates.clone(),
        tripletex_run: a.tripletex,
        headroom: Some(headroom),
        forecast_exhausted_on: reaches_at.map(oslo_date),
        growth_per_day: fitted.map(|f| f.growth_per_day),
    };
    let shop_desc = match a.shop {
        Some(r) => format!("shop's run {r}"),
        None => "the shop has no numbers yet".to_owned(),
    };
    let ts = range.tripletex_start;

    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    if let Some(below) = a.below {
        problems.push(format!(
            "{} {below} lie below the shop's start at {}, so Tripletex's own series will run \
             into the shop's ({shop_desc})",
            kind.noun(),
            range.shop_start
        ));
    }
    if !a.foreign.is_empty() {
        let listed = a
            .foreign
            .iter()
            .map(Run::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let more = a.foreign_total as usize - a.foreign.len();
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        problems.push(format!(
            "Tripletex's own series found inside the shop's range at {listed}{more} ({shop_desc})"
        ));
    }
    if a.below.is_some() || !a.foreign.is_empty() {
        fixes.push(kind.move_series(ts));
        let clashing = a.below.iter().chain(&a.foreign);
        for run in clashing {
            fixes.push(match kind {
                CheckKind::CustomerNumbers => format!(
                    "Then renumber or deactivate customers {run} so they leave the shop's range."
                ),
                CheckKind::InvoiceNumbers if a.below == Some(*run) => format!(
                    "Invoices {run} may keep their numbers; only new invoices need the new series."
                ),
                CheckKind::InvoiceNumbers => format!(
                    "Invoices {run} sit where the shop's series is heading; agree with the \
                     accountant how to handle them (issued invoices cannot just be renumbered)."
                ),
            });
        }
    }
    if headroom == 0 {
        problems.push(format!(
            "the {shop_desc} has used every number below {ts}, the range is exhausted"
        ));
        fixes.push(format!(
            "The shop's range is used up: move Tripletex's series further up and let the shop \
             continue above every number Tripletex has used, or renumber the shop's {}.",
            kind.noun()
        ));
    }
    if !a.duplicates.is_empty() {
        let numbers = if a.duplicates.len() == 1 {
            "number"
        } else {
            "numbers"
        };
        let listed = a
            .duplicates
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let of = if a.duplicate_total as usize > a.duplicates.len() {
            format!(" ({} in all)", a.duplicate_total)
        } else {
            String::new()
        };
        problems.push(format!("{} used more than once: {listed}{of}", kind.noun()));
        fixes.push(match kind {
            CheckKind::CustomerNumbers => {
                format!("Renumber or merge the customers sharing {numbers} {listed}.")
            }
            CheckKind::InvoiceNumbers => format!(
                "Find the invoices sharing {numbers} {listed} and agree with the accountant how \
                 to correct them."
            ),
        });
    }
    if !problems.is_empty() {
        return CheckOutcome {
            kind,
            verdict: Verdict::Conflict,
            summary: format!("conflict: {}", problems.join("; ")),
            fix: Some(fixes.join(" ")),
            evidence,
        };
    }

    let date = evidence.forecast_exhausted_on;
    let soon = reaches_at.is_some_and(|at| {
        at.duration_since(now).as_secs() <= i64::from(policy.forecast_warn_days) * 86_400
    });
    if headroom < policy.headroom_warn {
        problems.push(format!(
            "only {headroom} numbers left before {ts} ({shop_desc})"
        ));
    }
    if let (true, Some(date), Some(f)) = (soon, date, fitted) {
        problems.push(format!(
            "at {:.1} a day the {shop_desc} reaches {ts} around {date}",
            f.growth_per_day
        ));
    }
    if !problems.is_empty() {
        let before = match date {
            Some(date) => format!("before {date}"),
            None => format!("before the last {headroom} numbers are used"),
        };
        return CheckOutcome {
            kind,
            verdict: Verdict::Warn,
            summary: format!("warn: {}", problems.join("; ")),
            fix: Some(format!(
                "Move Tripletex's series further up (and tripletex_start with it) or plan a \
                 renumbering {before}."
            )),
            evidence,
        };
    }

    let seen = match a.tripletex {
        Some(r) => format!("Tripletex's own series seen at {r}"),
        None => format!("Tripletex's own series not seen yet (no numbers ≥ {ts})"),
    };
    let outlook = match date {
        Some(date) => format!(", reaching {ts} around {date}"),
        None => String::new(),
    };
    CheckOutcome {
        kind,
        verdict: Verdict::Ok,
        summary: format!("ok: {shop_desc}, {headroom} numbers left before {ts}{outlook}; {seen}"),
        fix: None,
        evidence,
    }
}

#[cfg(test)]
mod tests;

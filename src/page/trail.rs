//! A shop's recent past as the status page draws it: per check kind the last points of the
//! shop's highest number (and of Tripletex's own series, where seen), and the last verdict
//! changes. Kept in memory beside the shop's status, so a page never reads the store.
//!
//! Invariants: bounded per shop, whatever the uptime: at most [`POINTS`] points per kind and
//! [`CHANGES`] changes. Memory at 100 000 shops: a point is 12 bytes, so 2 kinds × 20 × 12 B
//! plus the vectors' headers ≈ 530 B a shop, ≈ 53 MB, about 2% of the 2.2 GiB the daemon
//! was measured at with that many shops (the shop's status JSON beside it is larger). Points
//! follow the store's history rule (a point when the highest number moved, else one per
//! [`HOLD`], none for `error`) and also when Tripletex's highest moved; when full, the point
//! whose removal leaves the smallest gap goes, so the points spread over a long time while
//! the newest stays. The newest stored points are read in after start-up, in the background
//! ([`Trail::seed`]); a view rebuilt by a reload keeps the trails it had.

use std::time::Duration;

use jiff::Timestamp;

use crate::checks::{CheckKind, HistoryPoint, PerKind, Verdict};
use crate::status::CheckStatus;

/// Points kept per check kind.
pub const POINTS: usize = 20;
/// Verdict changes kept per shop.
pub const CHANGES: usize = 6;
/// An unchanged highest number gets a new point this often (as in the store's history).
const HOLD: Duration = Duration::from_secs(6 * 60 * 60);
/// "No number" in a [`Point`]: Tripletex numbers are `int32`, so never this.
const NONE: u32 = u32::MAX;

/// One moment of a check: the shop's highest number and Tripletex's, compactly (12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// Whole minutes since the Unix epoch (enough for a chart, and 4 bytes until year 10 000).
    minute: u32,
    shop_high: u32,
    tripletex_high: u32,
}

impl Point {
    pub fn new(at: Timestamp, shop_high: Option<u32>, tripletex_high: Option<u32>) -> Self {
        let minute = u32::try_from(at.as_second().max(0) / 60).unwrap_or(u32::MAX);
        Self {
            minute,
            shop_high: shop_high.unwrap_or(NONE),
            tripletex_high: tripletex_high.unwrap_or(NONE),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn second(&self) -> i64 {
        i64::from(self.minute) * 60
    }

    pub fn shop_high(&self) -> Option<u32> {
        (self.shop_high != NONE).then_some(self.shop_high)
    }

    pub fn tripletex_high(&self) -> Option<u32> {
        (self.tripletex_high != NONE).then_some(self.tripletex_high)
    }

    /// The point a recorded check adds, if it adds one (not for `error` or a disabled check).
    fn of(check: &CheckStatus) -> Option<Self> {
        if check.disabled || check.verdict == Verdict::Error {
            return None;
        }
        let evidence = check.evidence.as_ref()?;
        Some(Self::new(
            check.checked_at?,
            evidence.shop_run.map(|r| r.last),
            evidence.tripletex_run.map(|r| r.last),
        ))
    }

    /// Whether `self` goes after `newest` (see the module's invariants).
    fn due_after(&self, newest: Option<&Point>) -> bool {
        newest.is_none_or(|n| {
            self.minute > n.minute
                && (n.shop_high != self.shop_high
                    || n.tripletex_high != self.tripletex_high
                    || u64::from(self.minute - n.minute) * 60 >= HOLD.as_secs())
        })
    }
}

/// A verdict change of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub at: Timestamp,
    pub kind: CheckKind,
    /// `None` for the verdict the view found when it was built (what came before is not kept).
    pub from: Option<Verdict>,
    pub to: Verdict,
}

/// Points per kind and the last verdict changes of one shop.
#[derive(Debug, Default, Clone)]
pub struct Trail {
    points: PerKind<Vec<Point>>,
    changes: Vec<Change>,
    /// Whether the stored history was read in ([`Trail::seed`]).
    seeded: bool,
}

impl Trail {
    /// From the shop's current checks: their points, and each current verdict as a change as
    /// of its `since`. The stored history comes later ([`Trail::seed`]).
    pub fn new(checks: &PerKind<CheckStatus>) -> Self {
        let mut trail = Self::default();
        let mut changes: Vec<Change> = checks
            .iter()
            .filter(|(_, c)| !c.disabled)
            .filter_map(|(kind, c)| {
                Some(Change {
                    at: c.since?,
                    kind,
                    from: None,
                    to: c.verdict,
                })
            })
            .collect();
        changes.sort_by_key(|c| c.at);
        for change in changes {
            trail.changed(change);
        }
        for (kind, check) in checks.iter() {
            trail.checked(kind, None, check);
        }
        trail
    }

    /// Puts the store's newest history points (oldest first) before the points taken in
    /// since, once; the bound holds as for any point.
    pub fn seed(&mut self, history: PerKind<Vec<HistoryPoint>>) {
        if self.seeded {
            return;
        }
        for (kind, stored) in history.iter() {
            let since = std::mem::take(&mut self.points[kind]);
            let first = since.first().map(|p| p.minute);
            let older = stored
                .iter()
                .map(|p| Point::new(p.at, p.shop_high, None))
                .filter(|p| first.is_none_or(|f| p.minute < f));
            for point in older.chain(since) {
                self.add(kind, point);
            }
        }
        self.seeded = true;
    }

    pub fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// Takes in a recorded check of `kind` whose verdict was `before` (`None`: not known).
    pub fn checked(&mut self, kind: CheckKind, before: Option<Verdict>, check: &CheckStatus) {
        if let Some(before) = before
            && before != check.verdict
            && !check.disabled
        {
            let at = check.since.or(check.checked_at).unwrap_or_default();
            self.changed(Change {
                at,
                kind,
                from: Some(before),
                to: check.verdict,
            });
        }
        if let Some(point) = Point::of(check) {
            self.add(kind, point);
        }
    }

    pub fn points(&self, kind: CheckKind) -> &[Point] {
        &self.points[kind]
    }

    /// The last verdict changes, newest first.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().rev()
    }

    fn changed(&mut self, change: Change) {
        if self.changes.len() == CHANGES {
            self.changes.remove(0);
        }
        self.changes.push(change);
    }

    fn add(&mut self, kind: CheckKind, point: Point) {
        let points = &mut self.points[kind];
        if !point.due_after(points.last()) {
            return;
        }
        if points.len() == POINTS {
            // The inner point whose neighbours are closest: removing it loses the least.
            let gone = (1..POINTS - 1)
                .min_by_key(|&i| points[i + 1].minute - points[i - 1].minute)
                .expect("POINTS > 2");
            points.remove(gone);
        }
        if points.capacity() == 0 {
            // Exactly the bound, once: growth by doubling would overshoot it.
            points.reserve_exact(POINTS);
        }
        points.push(point);
    }
}

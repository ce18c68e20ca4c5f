//! Where the numbers in use sit: one sort, one pass.
//!
//! Owns splitting the numbers into the region below the shop's start, the shop's range S and
//! Tripletex's range T, cutting S into runs at gaps wider than `cluster_gap`, and spotting
//! duplicates. Invariants: runs are ascending and disjoint; a run's `count` counts distinct
//! numbers; at most [`MAX_LISTED`] duplicates and foreign runs are kept (the totals are kept
//! too), so evidence stays small however odd the data.

use super::{NumberRange, Run};

/// How many duplicates / foreign runs are listed before we only count them.
pub const MAX_LISTED: usize = 20;

/// The raw facts about one set of numbers, before any verdict.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub distinct: u32,
    pub duplicates: Vec<u32>,
    pub duplicate_total: u32,
    pub below: Option<Run>,
    pub shop: Option<Run>,
    pub foreign: Vec<Run>,
    pub foreign_total: u32,
    pub tripletex: Option<Run>,
}

fn extend(run: &mut Option<Run>, n: u32) {
    match run {
        Some(r) => {
            r.last = n;
            r.count += 1;
        }
        None => {
            *run = Some(Run {
                first: n,
                last: n,
                count: 1,
            })
        }
    }
}

/// Sorts a copy of `numbers` and classifies them in a single pass.
pub fn analyse(numbers: &[u32], range: NumberRange, cluster_gap: u32) -> Analysis {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();

    let mut a = Analysis::default();
    // The run in S being built; closed when the next number in S is too far away.
    let mut open: Option<Run> = None;
    let mut prev: Option<u32> = None;
    let mut last_dup: Option<u32> = None;

    let close = |a: &mut Analysis, run: Run| {
        // Only the first run can be the shop's, and only if it starts near shop_start: the shop
        // numbers from shop_start upwards without skipping thousands.
        if a.shop.is_none() && a.foreign_total == 0 && run.first - range.shop_start <= cluster_gap {
            a.shop = Some(run);
        } else {
            a.foreign_total += 1;
            if a.foreign.len() < MAX_LISTED {
                a.foreign.push(run);
            }
        }
    };

    for &n in &sorted {
        if prev == Some(n) {
            // A number used three times is still one duplicated number.
            if last_dup != Some(n) {
                last_dup = Some(n);
                a.duplicate_total += 1;
                if a.duplicates.len() < MAX_LISTED {
                    a.duplicates.push(n);
                }
            }
            continue;
        }
        prev = Some(n);
        a.distinct += 1;
        if n < range.shop_start {
            extend(&mut a.below, n);
        } else if n >= range.tripletex_start {
            extend(&mut a.tripletex, n);
        } else {
            match &mut open {
                Some(r) if n - r.last <= cluster_gap => {
                    r.last = n;
                    r.count += 1;
                }
                _ => {
                    if let Some(run) = open.take() {
                        close(&mut a, run);
                    }
                    open = Some(Run {
                        first: n,
                        last: n,
                        count: 1,
                    });
                }
            }
        }
    }
    if let Some(run) = open {
        close(&mut a, run);
    }
    a
}

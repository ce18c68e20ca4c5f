//! The per-shop series: each shop's figures and its lines of exposition, rendered when its
//! figures change and joined from that cache on every scrape and every `metrics.prom` write.
//!
//! Hand-rendered rather than through `prometheus-client`, whose families re-encode every series
//! on each exposition (at 10 000 shops 280 000 series, 23 MB, two full copies in memory per
//! write). Invariants:
//! - A shop has at most [`SERIES_PER_SHOP`] series while webhooks are off (one more,
//!   `push_active`, while they are on): one verdict and one headroom per enabled check, its
//!   checks' completion time, its session state and expiry, and its 429 count once it has one.
//!   A verdict or session state is one series carrying the current value as a label (value 1),
//!   never a one-hot set of series.
//! - A shop's block is re-rendered only when its figures change; an exposition takes a
//!   [`Snapshot`] of the blocks (one `Arc` each) and writes them out without holding the lock or
//!   joining them into one string (54 MB at 100 000 shops, for every `metrics.prom` write).
//! - The text format needs each family's samples in one group: a block keeps where each family's
//!   lines end, and the exposition walks the shops once per family, in shop-name order.
//! - Label values are escaped, so no shop name can break a line (names are `[A-Za-z0-9_-]`
//!   anyway).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::checks::{PerKind, Verdict};
use crate::store::SessionState;

/// The budget `tests.rs` holds a recorded shop to (webhooks off).
pub const SERIES_PER_SHOP: usize = 8;

/// One family of per-shop series.
struct Family {
    /// Without the `tripletex_sync_` prefix; a counter's without `_total`.
    name: &'static str,
    help: &'static str,
    counter: bool,
}

const PREFIX: &str = "tripletex_sync_";

/// In the order of [`Figures`]' rendering; each one's index is its slot in [`Block::ends`].
const FAMILIES: [Family; 7] = [
    Family {
        name: "check_verdict",
        help: "The check's current verdict as the label `verdict` (always 1; a new verdict is a new series).",
        counter: false,
    },
    Family {
        name: "check_numbers_left",
        help: "Numbers left in the shop's range after its highest number in use.",
        counter: false,
    },
    Family {
        name: "checks_completed_timestamp_seconds",
        help: "When every enabled check of the shop had last completed (Unix time; the oldest of their last completions).",
        counter: false,
    },
    Family {
        name: "session_state",
        help: "The shop's session state as the label `state` (always 1; a new state is a new series).",
        counter: false,
    },
    Family {
        name: "session_expiry_timestamp_seconds",
        help: "When the shop's live session token dies (Unix time; 00:00 Europe/Oslo).",
        counter: false,
    },
    Family {
        name: "push_active",
        help: "1 while all the shop's webhook subscriptions are active (absent while webhooks are off).",
        counter: false,
    },
    Family {
        name: "throttled",
        help: "429 answers from Tripletex (absent before the shop's first).",
        counter: true,
    },
];

/// What one enabled check shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CheckFigures {
    pub verdict: Verdict,
    pub numbers_left: Option<i64>,
    pub completed: Option<i64>,
}

/// Everything one shop's series show. `None` check: the shop file turns it off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Figures {
    pub checks: PerKind<Option<CheckFigures>>,
    /// `None` until the shop's recorded state is first observed (a 429 can come first).
    pub session: Option<SessionState>,
    pub expiry: Option<i64>,
    pub push_active: Option<bool>,
    pub throttled: u64,
}

impl Figures {
    /// The oldest completion of the enabled checks; `None` while one has never completed.
    fn completed(&self) -> Option<i64> {
        let mut enabled = self
            .checks
            .iter()
            .filter_map(|(_, c)| c.as_ref())
            .peekable();
        enabled.peek()?;
        enabled.map(|c| c.completed).min().flatten()
    }
}

/// One shop's figures and its rendered lines.
#[derive(Debug)]
struct Block {
    figures: Figures,
    text: Arc<str>,
    /// Where each family's lines end in `text`.
    ends: [usize; FAMILIES.len()],
}

impl Block {
    fn new(shop: &str, figures: Figures) -> Self {
        let mut block = Block {
            figures,
            text: Arc::from(""),
            ends: [0; FAMILIES.len()],
        };
        block.render(shop);
        block
    }

    fn render(&mut self, shop: &str) {
        let shop = escape(shop);
        let f = &self.figures;
        let mut out = String::with_capacity(self.text.len().max(512));
        let mut ends = [0; FAMILIES.len()];
        let mut line = |out: &mut String, family: usize, labels: &str, value: i64| {
            let Family { name, counter, .. } = FAMILIES[family];
            let total = if counter { "_total" } else { "" };
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "{PREFIX}{name}{total}{{shop=\"{shop}\"{labels}}} {value}"
            );
            ends[family] = out.len();
        };
        for (kind, check) in f.checks.iter() {
            if let Some(c) = check {
                let labels = format!(",check=\"{kind}\",verdict=\"{}\"", c.verdict.as_str());
                line(&mut out, 0, &labels, 1);
            }
        }
        for (kind, check) in f.checks.iter() {
            if let Some(left) = check.and_then(|c| c.numbers_left) {
                line(&mut out, 1, &format!(",check=\"{kind}\""), left);
            }
        }
        if let Some(at) = f.completed() {
            line(&mut out, 2, "", at);
        }
        if let Some(state) = f.session {
            line(&mut out, 3, &format!(",state=\"{}\"", state.as_str()), 1);
        }
        if let Some(at) = f.expiry {
            line(&mut out, 4, "", at);
        }
        if let Some(active) = f.push_active {
            line(&mut out, 5, "", i64::from(active));
        }
        if f.throttled > 0 {
            line(
                &mut out,
                6,
                "",
                i64::try_from(f.throttled).unwrap_or(i64::MAX),
            );
        }
        // A family without lines ends where the one before it did.
        for i in 1..ends.len() {
            ends[i] = ends[i].max(ends[i - 1]);
        }
        self.text = out.into();
        self.ends = ends;
    }
}

/// One shop's lines as of a [`Snapshot`].
struct Lines {
    text: Arc<str>,
    ends: [usize; FAMILIES.len()],
}

impl Lines {
    fn family(&self, family: usize) -> &str {
        let start = family.checked_sub(1).map_or(0, |i| self.ends[i]);
        &self.text[start..self.ends[family]]
    }
}

/// Every shop's lines at one moment, in shop-name order: what one exposition writes.
pub(super) struct Snapshot(Vec<Lines>);

impl Snapshot {
    /// About how many bytes [`Snapshot::write_to`] writes (the shops' lines and each family's
    /// HELP and TYPE), to size a buffer that holds it all.
    pub fn len(&self) -> usize {
        let lines: usize = self.0.iter().map(|l| l.text.len()).sum();
        lines + FAMILIES.len() * 200
    }

    /// Writes every family (HELP and TYPE even when empty) with every shop's lines.
    pub fn write_to(&self, out: &mut impl std::io::Write, format: Format) -> std::io::Result<()> {
        for (i, family) in FAMILIES.iter().enumerate() {
            let (name, help) = (family.name, family.help);
            let kind = if family.counter { "counter" } else { "gauge" };
            let total = if family.counter && format == Format::Prometheus {
                "_total"
            } else {
                ""
            };
            write!(
                out,
                "# HELP {PREFIX}{name}{total} {help}\n# TYPE {PREFIX}{name}{total} {kind}\n"
            )?;
            for lines in &self.0 {
                out.write_all(lines.family(i).as_bytes())?;
            }
        }
        Ok(())
    }
}

/// A label value as the text formats quote it.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

/// The two text formats differ only in how a counter family is named in HELP and TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    OpenMetrics,
    Prometheus,
}

/// Every shop's block, by shop name.
#[derive(Debug, Default)]
pub(super) struct ShopSeries {
    shops: Mutex<BTreeMap<Box<str>, Block>>,
}

impl ShopSeries {
    /// Changes `shop`'s figures with `change`; its block is re-rendered only if they differ.
    pub fn update(&self, shop: &str, change: impl FnOnce(&mut Figures)) {
        let mut shops = self.shops.lock().expect("metrics lock");
        match shops.get_mut(shop) {
            Some(block) => {
                let before = block.figures.clone();
                change(&mut block.figures);
                if block.figures != before {
                    block.render(shop);
                }
            }
            None => {
                let mut figures = Figures::default();
                change(&mut figures);
                shops.insert(shop.into(), Block::new(shop, figures));
            }
        }
    }

    pub fn remove(&self, shop: &str) {
        self.shops.lock().expect("metrics lock").remove(shop);
    }

    /// Every shop's lines as they are now (the lock is held only to clone the `Arc`s).
    pub fn snapshot(&self) -> Snapshot {
        let shops = self.shops.lock().expect("metrics lock");
        Snapshot(
            shops
                .values()
                .map(|b| Lines {
                    text: b.text.clone(),
                    ends: b.ends,
                })
                .collect(),
        )
    }
}

//! What the status page renders from: every shop's [`Tile`] in config order. The daemon's status
//! view owns one [`Board`] and updates a shop's tile after each recorded pass; status.json is
//! written from the same tiles.
//!
//! Invariants: a tile holds the shop's status.json entry (already serialised), a [`Glance`] with
//! just what orders and counts it on `/` (so `/` never parses JSON for shops it does not show),
//! its [`Trail`], and its configured ranges; nothing in a board reads the store, and nothing in
//! it holds a token (a `ShopStatus` has none).

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::trail::Trail;
use crate::checks::{CheckKind, HistoryPoint, NumberRange, PerKind, Verdict};
use crate::notify::Backlog;
use crate::status::{Attention, CheckFacts, ShopStatus, View, write_document};
use crate::store::SessionState;

/// Every shop's tile, in config order, and what status.json says above the shops.
#[derive(Debug, Default)]
pub struct Board {
    /// "i/n" of this instance (config `shard`).
    shard: Option<String>,
    tiles: Vec<Tile>,
    /// Shop name → position in `tiles`.
    index: HashMap<String, usize>,
    /// While the store cannot write: why, and since when (see [`ShopStatus::store_failing`]).
    failing: Option<(String, Timestamp)>,
    /// The outbox (`[notify]`) as of the last write of status.json.
    notify: Option<Backlog>,
}

impl Board {
    pub fn new(shard: Option<String>, tiles: Vec<Tile>) -> Self {
        let index = tiles
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.to_string(), i))
            .collect();
        Self {
            shard,
            tiles,
            index,
            failing: None,
            notify: None,
        }
    }

    pub fn tiles(&self) -> &[Tile] {
        &self.tiles
    }

    /// The position of `name`'s tile.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn find(&self, name: &str) -> Option<&Tile> {
        self.position(name).map(|i| &self.tiles[i])
    }

    /// The shops whose trails still wait for their stored history.
    pub fn unseeded(&self) -> Vec<String> {
        self.tiles
            .iter()
            .filter(|t| !t.trail.is_seeded())
            .map(|t| t.name.to_string())
            .collect()
    }

    pub fn tile_mut(&mut self, i: usize) -> &mut Tile {
        &mut self.tiles[i]
    }

    pub fn shard(&self) -> Option<&str> {
        self.shard.as_deref()
    }

    /// Sets (or clears) why the store cannot record passes, and since when.
    pub fn set_failing(&mut self, failing: Option<(String, Timestamp)>) {
        self.failing = failing;
    }

    /// Sets the outbox's state (`None`: notify is off and nothing is left).
    pub fn set_notify(&mut self, notify: Option<Backlog>) {
        self.notify = notify;
    }

    pub fn notify(&self) -> Option<&Backlog> {
        self.notify.as_ref()
    }

    pub fn store_error(&self) -> Option<&str> {
        self.failing.as_ref().map(|(e, _)| e.as_str())
    }

    /// Every shop's status.json entry as of `at`; while the store fails, every enabled check
    /// shows `error` with that reason instead of its last recorded verdict.
    pub fn entries(&self, at: Timestamp) -> Vec<Arc<str>> {
        match &self.failing {
            None => self.tiles.iter().map(|t| t.json.clone()).collect(),
            // Re-serialised only while failing, which is rare.
            Some((error, since)) => self
                .tiles
                .iter()
                .map(|t| {
                    let mut status = t.status();
                    status.store_failing(error, at, *since);
                    serialise(&status)
                })
                .collect(),
        }
    }

    /// The `status --json` document as of `at`: the entries are shared, not copied, so taking
    /// it is cheap; serialising it ([`Document::write_to`]) needs no board.
    pub fn document(&self, at: Timestamp) -> Document {
        Document {
            generated_at: at,
            shard: self.shard.clone(),
            store_error: self.store_error().map(str::to_owned),
            notify: self.notify.clone(),
            shops: self.entries(at),
        }
    }
}

/// The `StatusReport` document, detached from the board: what status.json is written from, and
/// what `/status.json` serves, so neither holds the board while writing.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub generated_at: Timestamp,
    pub shard: Option<String>,
    pub store_error: Option<String>,
    pub notify: Option<Backlog>,
    /// Each shop's entry, already serialised.
    pub shops: Vec<Arc<str>>,
}

impl Document {
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        write_document(
            out,
            self.generated_at,
            self.shard.as_deref(),
            self.store_error.as_deref(),
            self.notify.as_ref(),
            self.shops.iter().map(|s| &**s),
        )
    }
}

/// One shop on the board.
#[derive(Debug)]
pub struct Tile {
    name: Box<str>,
    json: Arc<str>,
    glance: Glance,
    trail: Trail,
    ranges: PerKind<Option<NumberRange>>,
}

impl Tile {
    /// `status` with its configured `ranges` (its trail not yet seeded: [`Tile::seed`]).
    pub fn new(status: &ShopStatus, ranges: PerKind<Option<NumberRange>>) -> Self {
        Self {
            name: status.name.as_str().into(),
            json: serialise(status),
            glance: Glance::of(status),
            trail: Trail::new(&status.checks),
            ranges,
        }
    }

    /// Reads in the shop's newest stored history points (see [`Trail::seed`]).
    pub fn seed(&mut self, history: PerKind<Vec<HistoryPoint>>) {
        self.trail.seed(history);
    }

    /// The tile of `status` in a rebuilt board, keeping what `old` (the shop's tile before)
    /// remembers, so a reload neither forgets the charts nor reads the history again.
    pub fn carried(old: &Tile, status: &ShopStatus, ranges: PerKind<Option<NumberRange>>) -> Self {
        let mut tile = Self {
            name: status.name.as_str().into(),
            json: old.json.clone(),
            glance: old.glance.clone(),
            trail: old.trail.clone(),
            ranges: old.ranges.clone(),
        };
        tile.update(status, ranges);
        tile
    }

    /// Takes in the shop's status after a recorded pass; false when its entry did not change.
    pub fn update(&mut self, status: &ShopStatus, ranges: PerKind<Option<NumberRange>>) -> bool {
        for (kind, check) in status.checks.iter() {
            let before = self.glance.checks[kind].verdict;
            self.trail.checked(kind, Some(before), check);
        }
        self.glance = Glance::of(status);
        self.ranges = ranges;
        let json = serialise(status);
        let changed = json != self.json;
        self.json = json;
        changed
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shop's status.json entry.
    pub fn json(&self) -> &Arc<str> {
        &self.json
    }

    /// The shop's status, parsed from its entry (for the few shops a page shows).
    pub fn status(&self) -> ShopStatus {
        serde_json::from_str(&self.json).expect("a tile holds status JSON")
    }

    pub fn glance(&self) -> &Glance {
        &self.glance
    }

    pub fn trail(&self) -> &Trail {
        &self.trail
    }

    pub fn range(&self, kind: CheckKind) -> Option<NumberRange> {
        self.ranges[kind]
    }
}

fn serialise(status: &ShopStatus) -> Arc<str> {
    serde_json::to_string(status)
        .expect("status serializes")
        .into()
}

/// What `/` needs of a shop without parsing its JSON: enough to count it and to judge its
/// [`Attention`].
#[derive(Debug, Clone)]
pub struct Glance {
    pub enabled: bool,
    pub session: SessionState,
    pub checks: PerKind<CheckGlance>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CheckGlance {
    pub verdict: Verdict,
    pub disabled: bool,
    pub checked_at: Option<Timestamp>,
}

impl Glance {
    fn of(status: &ShopStatus) -> Self {
        Self {
            enabled: status.enabled,
            session: status.session.state,
            checks: PerKind::from_fn(|kind| {
                let c = status.checks.get(kind);
                CheckGlance {
                    verdict: c.verdict,
                    disabled: c.disabled,
                    checked_at: c.checked_at,
                }
            }),
        }
    }

    /// The shop's worst verdict, or `None` while the shop is disabled.
    pub fn worst(&self) -> Option<Verdict> {
        self.enabled.then(|| {
            CheckKind::ALL
                .map(|k| self.checks[k].verdict)
                .into_iter()
                .max()
                .unwrap_or(Verdict::Unknown)
        })
    }

    /// What the check of `kind` needs (as `status` judges it).
    pub fn attention(&self, kind: CheckKind, view: &View) -> Attention {
        let c = self.checks[kind];
        Attention::judge(
            CheckFacts {
                shop_enabled: self.enabled,
                disabled: c.disabled,
                verdict: c.verdict,
                session: self.session,
                checked_at: c.checked_at,
            },
            view,
        )
        .0
    }

    /// What the shop needs: its most pressing check's attention.
    pub fn shop_attention(&self, view: &View) -> Attention {
        CheckKind::ALL
            .map(|k| self.attention(k, view))
            .into_iter()
            .min()
            .unwrap_or(Attention::Unknown)
    }
}

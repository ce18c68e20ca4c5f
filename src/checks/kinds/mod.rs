//! The check kinds, as data: each number series the daemon verifies is one [`KindSpec`] in a
//! file of its own here, named by a [`CheckKind`] in the list at the bottom of this file.
//!
//! Everything that differs between kinds lives in its spec: the shop file's table and its
//! defaults, how Tripletex lists the records (endpoint and its metrics label, `fields`, number
//! field, how a pass between full reads learns what changed), what the mirror keeps beside each
//! number, and the words and fixes of a verdict. Config, sync, store, status, metrics and the pass
//! iterate over [`CheckKind::ALL`] and read the spec; none of them names a kind. Adding a kind is one new file here plus its line in
//! `kinds!` (and its `mod` line) below; `tests/kinds.rs` then proves every layer covers it.
//!
//! Invariants: a spec is plain data and functions without I/O (so `checks` stays pure); a kind's
//! `key`, `mirror` name and `cursor` keys are stored (sled keys, status.json, the shop file's table)
//! and its `list.metrics_label` is named by alert rules, so once released they never change; [`CheckKind::ALL`] is in declaration order, which is the
//! order of status.json's `checks` map and of a pass.

mod customer_numbers;
mod invoice_numbers;

use std::fmt;
use std::ops::{Index, IndexMut};

use jiff::civil::Date;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap as _, Serializer};
use serde::{Deserialize, Serialize};

use super::{NumberRange, Run};

/// Everything about one kind of number check.
#[derive(Debug)]
pub struct KindSpec {
    /// Names the kind wherever it is stored or shown: the shop file's table, status.json's
    /// `checks` key, the `result/` and `history/` keys, the `check` field of log events.
    pub key: &'static str,
    /// In sentences, e.g. "customer numbers".
    pub noun: &'static str,
    /// `shop_start` and `tripletex_start` when the shop file leaves them out.
    pub defaults: NumberRange,
    /// How Tripletex lists the records.
    pub list: Listing,
    /// What the mirror keeps beside each number, and the row field it comes from.
    pub tail: Tail,
    /// The mirror's sled key is `shop/{shop}/mirror/{mirror}`.
    pub mirror: &'static str,
    /// This kind's fields in the stored sync cursor (`shop/{shop}/cursor`).
    pub cursor: CursorKeys,
    /// The fixes a verdict proposes, in Tripletex's menu words.
    pub advice: Advice,
    /// The Tripletex webhook events that push this kind's changes (`/event`).
    pub events: Events,
}

/// Webhook events of a kind. Every subscription asks for the listing's `fields`, so a callback's
/// `value` is a row the mirror can take as it is.
#[derive(Debug)]
pub struct Events {
    /// Events whose `value` is the record as it now is (created, changed, charged).
    pub upsert: &'static [&'static str],
    /// The event whose `id` is a record that no longer exists, if Tripletex has one.
    pub delete: Option<&'static str>,
}

impl Events {
    /// Every event, upserts first.
    pub fn all(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.upsert.iter().copied().chain(self.delete)
    }
}

/// A Tripletex list endpoint and how a pass reads it.
#[derive(Debug)]
pub struct Listing {
    /// E.g. `/customer`.
    pub path: &'static str,
    /// The `endpoint` label of this listing's requests in the metrics, e.g. `customer`. Alert
    /// rules name it, so once released it never changes.
    pub metrics_label: &'static str,
    /// The `fields` asked for: `id`, `version`, the number field and the tail's field.
    pub fields: &'static str,
    /// The row field holding the number (a positive int32).
    pub number_field: &'static str,
    pub reads: Reads,
    /// What a 403 on `path` says the key may not do, in words an operator can act on.
    pub access: &'static str,
}

/// How a full read gets every record, and how a pass between full reads learns what changed.
#[derive(Debug)]
pub enum Reads {
    /// A full read is one listing per filter in `full` (together they must cover every record);
    /// a pass between full reads asks for `changedSince` the previous pass's start. Cannot see
    /// deletions: those wait for the next full read.
    ChangedSince {
        full: &'static [&'static [(&'static str, &'static str)]],
    },
    /// Every listing names a date range (`from`..`to` query parameters, both required). A pass
    /// re-reads the trailing window (`checks.invoice_window`) with `If-None-Match` on its
    /// `versionDigest` (one 304 when nothing changed); older dates only on a full read. The
    /// window is cut by the tail's date, so the tail must be a [`Tail::Date`].
    DateWindow {
        from: &'static str,
        to: &'static str,
    },
}

/// The one field the mirror keeps beside each number (its encoding: see `store::mirror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// A boolean row field, e.g. `isInactive`.
    Flag(&'static str),
    /// A date row field (`YYYY-MM-DD`), e.g. `invoiceDate`.
    Date(&'static str),
}

impl Tail {
    pub fn field(self) -> &'static str {
        match self {
            Tail::Flag(field) | Tail::Date(field) => field,
        }
    }

    /// The value of a record whose tail was never read (e.g. one deleted before it was seen).
    pub fn absent(self) -> TailValue {
        match self {
            Tail::Flag(_) => TailValue::Flag(false),
            Tail::Date(_) => TailValue::Date(None),
        }
    }
}

/// One record of a kind as the mirror keeps it: its number, the value of its [`Tail`], and which
/// state of the Tripletex object it reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `None` while the object has no number (Tripletex's `null` or 0) and once it is deleted.
    pub number: Option<u32>,
    pub tail: TailValue,
    pub version: Version,
}

/// Which state of a Tripletex object a mirrored record reflects. Callbacks arrive late, repeated
/// and out of order; the version says whether one is news or history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Tripletex's `version` field: 0 for a new object, higher after every change.
    Seen(u32),
    /// Deleted, as a callback said. Tripletex neither restores nor reuses an id, so nothing
    /// a callback says of it later is news; only a pass that lists it again brings it back.
    Deleted,
}

impl Version {
    /// Whether a callback's record at `incoming` is news to a mirror holding `stored` (`None`:
    /// the mirror has no record of that id).
    pub fn is_news(incoming: Version, stored: Option<Version>) -> bool {
        match (stored, incoming) {
            (None, _) => true,
            (Some(Version::Deleted), _) => false,
            (Some(Version::Seen(_)), Version::Deleted) => true,
            (Some(Version::Seen(old)), Version::Seen(new)) => new > old,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailValue {
    Flag(bool),
    /// `None` only in mirrors stored before dates were kept.
    Date(Option<Date>),
}

impl Entry {
    /// The tail's date, if it is one.
    pub fn date(&self) -> Option<Date> {
        match self.tail {
            TailValue::Date(date) => date,
            TailValue::Flag(_) => None,
        }
    }
}

/// Field names in the stored sync cursor; `None` where the kind's [`Reads`] keeps no such field.
/// (The two first kinds' names predate this table and are kept as they were.)
#[derive(Debug)]
pub struct CursorKeys {
    /// Start of the last full read.
    pub full: &'static str,
    /// Start of the last pass that read changes ([`Reads::ChangedSince`]).
    pub since: Option<&'static str>,
    /// The date window last read, and the `versionDigest` of its first page ([`Reads::DateWindow`]).
    pub window_from: Option<&'static str>,
    pub digest: Option<&'static str>,
    /// When the kind's check last ran (schema 6): in the cursor, so that an idle pass, which
    /// moves the cursor anyway, writes one record and not one per check besides.
    pub checked: &'static str,
}

/// The kind's own sentences of a verdict's fix.
#[derive(Debug)]
pub struct Advice {
    /// Put Tripletex's own series at `to`.
    pub move_series: fn(to: u32) -> String,
    /// What to do about the clashing `run` (`below` when it lies below the shop's start), once
    /// Tripletex's series has moved.
    pub clashing: fn(run: Run, below: bool) -> String,
    /// What to do about the duplicates `listed` ("number" or "numbers" as `word`).
    pub duplicates: fn(word: &str, listed: &str) -> String,
}

/// The list of kinds: one line per kind, its variant and its spec. Generates [`CheckKind`] (whose
/// declaration order is [`CheckKind::ALL`]'s) and [`CheckKind::spec`].
macro_rules! kinds {
    ($($variant:ident => $spec:path),+ $(,)?) => {
        /// Which number series a check looks at; stored and shown as its spec's `key`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CheckKind {
            $($variant),+
        }

        impl CheckKind {
            pub const COUNT: usize = [$(stringify!($variant)),+].len();
            pub const ALL: [CheckKind; Self::COUNT] = [$(CheckKind::$variant),+];

            pub fn spec(self) -> &'static KindSpec {
                match self {
                    $(CheckKind::$variant => &$spec),+
                }
            }
        }
    };
}

kinds! {
    CustomerNumbers => customer_numbers::SPEC,
    InvoiceNumbers => invoice_numbers::SPEC,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        self.spec().key
    }

    pub fn noun(self) -> &'static str {
        self.spec().noun
    }

    /// The kind whose `key` this is.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == key)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CheckKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CheckKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        Self::from_key(&key).ok_or_else(|| de::Error::custom(format!("unknown check kind `{key}`")))
    }
}

/// One `T` per kind, in the order of [`CheckKind::ALL`]. Serialized as a map keyed by each
/// kind's `key`; reading one, a missing kind takes `T::default()` and an unknown key (a kind of
/// another release) is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerKind<T>([T; CheckKind::COUNT]);

impl<T> PerKind<T> {
    pub fn from_fn(mut f: impl FnMut(CheckKind) -> T) -> Self {
        Self(std::array::from_fn(|i| f(CheckKind::ALL[i])))
    }

    pub fn try_from_fn<E>(f: impl FnMut(CheckKind) -> Result<T, E>) -> Result<Self, E> {
        let all: Vec<T> = CheckKind::ALL
            .into_iter()
            .map(f)
            .collect::<Result<_, E>>()?;
        Ok(Self(all.try_into().ok().expect("one value per kind")))
    }

    pub fn iter(&self) -> impl Iterator<Item = (CheckKind, &T)> {
        CheckKind::ALL.into_iter().zip(&self.0)
    }
}

impl<T: Default> Default for PerKind<T> {
    fn default() -> Self {
        Self::from_fn(|_| T::default())
    }
}

impl<T> Index<CheckKind> for PerKind<T> {
    type Output = T;

    fn index(&self, kind: CheckKind) -> &T {
        &self.0[kind.index()]
    }
}

impl<T> IndexMut<CheckKind> for PerKind<T> {
    fn index_mut(&mut self, kind: CheckKind) -> &mut T {
        &mut self.0[kind.index()]
    }
}

impl<T: Serialize> Serialize for PerKind<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(CheckKind::COUNT))?;
        for (kind, value) in self.iter() {
            map.serialize_entry(kind.as_str(), value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for PerKind<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for Entries<T> {
            type Value = PerKind<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of check kinds")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PerKind<T>, A::Error> {
                let mut all = PerKind::default();
                while let Some(key) = map.next_key::<String>()? {
                    match CheckKind::from_key(&key) {
                        Some(kind) => all[kind] = map.next_value()?,
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(all)
            }
        }
        d.deserialize_map(Entries(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the generic code relies on, for every kind.
    #[test]
    fn every_spec_is_consistent() {
        for kind in CheckKind::ALL {
            let s = kind.spec();
            assert_eq!(CheckKind::from_key(s.key), Some(kind));
            assert!(
                s.key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                s.key
            );
            let fields: Vec<&str> = s.list.fields.split(',').collect();
            assert_eq!(fields.len(), 4, "{}", s.key);
            for field in ["id", "version", s.list.number_field, s.tail.field()] {
                assert!(fields.contains(&field), "{}: {field}", s.key);
            }
            assert!(s.defaults.shop_start >= 1);
            assert!(s.defaults.shop_start < s.defaults.tripletex_start);
            assert!(s.defaults.tripletex_start <= i32::MAX as u32);
            match s.list.reads {
                Reads::ChangedSince { full } => {
                    assert!(!full.is_empty(), "{}", s.key);
                    assert!(s.cursor.since.is_some(), "{}", s.key);
                }
                Reads::DateWindow { .. } => {
                    assert!(matches!(s.tail, Tail::Date(_)), "{}", s.key);
                    assert!(s.cursor.window_from.is_some() && s.cursor.digest.is_some());
                }
            }
            assert!(!(s.advice.move_series)(7).is_empty() && !s.list.access.is_empty());
            assert!(
                !s.list.metrics_label.is_empty()
                    && s.list
                        .metrics_label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                s.key
            );
            assert!(!s.events.upsert.is_empty(), "{}", s.key);
        }
        let mut stored: Vec<&str> = CheckKind::ALL
            .iter()
            .flat_map(|k| {
                let c = &k.spec().cursor;
                [Some(c.full), c.since, c.window_from, c.digest]
            })
            .flatten()
            .chain(CheckKind::ALL.iter().map(|k| k.spec().mirror))
            .collect();
        let n = stored.len();
        stored.sort_unstable();
        stored.dedup();
        assert_eq!(stored.len(), n, "stored names must not collide");
        let mut labels: Vec<&str> = CheckKind::ALL
            .iter()
            .map(|k| k.spec().list.metrics_label)
            .collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(
            labels.len(),
            CheckKind::COUNT,
            "metrics labels must not collide"
        );
    }

    #[test]
    fn per_kind_reads_missing_and_unknown_kinds() {
        let read: PerKind<u32> =
            serde_json::from_str(r#"{"invoice_numbers": 3, "parcel_numbers": 9}"#).unwrap();
        assert_eq!(read[CheckKind::InvoiceNumbers], 3);
        assert_eq!(read[CheckKind::CustomerNumbers], 0);
        let json = serde_json::to_string(&PerKind::from_fn(|k| k.as_str().len())).unwrap();
        assert_eq!(json, r#"{"customer_numbers":16,"invoice_numbers":15}"#);
    }
}

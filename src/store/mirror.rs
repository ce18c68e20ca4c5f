//! The mirror: per shop and check kind, every number in use, keyed by Tripletex id; and the sync
//! cursor that says where the next sync of each kind continues from.
//!
//! Keyed by id (not number) so that a number used twice shows up as two entries. A shop's mirror
//! of one kind is one value under `shop/{shop}/mirror/{spec.mirror}` (100 000 entries stay one small
//! read and one write, not 100 000 sled operations): fixed-width records sorted by id, `id i64 BE,
//! number u32 BE (0 = none), version i32 BE (Tripletex's `version`; -1 = deleted)`, then the kind's
//! tail: a flag as one byte (0/1), a date as i32 BE days since 1970-01-01 (i32::MIN = none). So
//! customers (`isInactive`) take 17 bytes, invoices (`invoiceDate`) 20 (schema 4; before it, 13
//! and 16 without the version). A sync replaces a kind's whole value, and only when it changed. The cursor
//! is one JSON object per shop whose field names each kind's spec gives (`CursorKeys`); since
//! schema 6 it also holds when each kind's check last ran, so an idle pass writes one record.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Batch, Store, StoreError, decode};
use crate::checks::CheckKind;
use crate::checks::kinds::{CursorKeys, Entry, PerKind, Tail, TailValue, Version};

/// Where incremental sync continues from, per kind (one kind's failure must not skip another's).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct SyncCursor(PerKind<KindCursor>);

/// One kind's part of the [`SyncCursor`]; which fields a kind uses follows its `Reads`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindCursor {
    /// Start of the last full read.
    pub full: Option<Timestamp>,
    /// Start of the last pass that read changes; the next asks for `changedSince` before it.
    pub since: Option<Timestamp>,
    /// The trailing date window last read, and the `versionDigest` of its first page.
    pub window_from: Option<Date>,
    pub digest: Option<String>,
    /// When the kind's check last ran (schema 6; before it, a record of its own).
    pub checked: Option<Timestamp>,
}

impl SyncCursor {
    pub fn of(&self, kind: CheckKind) -> &KindCursor {
        &self.0[kind]
    }

    pub fn of_mut(&mut self, kind: CheckKind) -> &mut KindCursor {
        &mut self.0[kind]
    }
}

/// The fields of one kind's cursor as (stored name, value), in the order they are written.
fn cursor_fields(keys: &CursorKeys) -> [(Option<&'static str>, CursorField); 5] {
    [
        (Some(keys.full), CursorField::Full),
        (keys.since, CursorField::Since),
        (keys.window_from, CursorField::WindowFrom),
        (keys.digest, CursorField::Digest),
        (Some(keys.checked), CursorField::Checked),
    ]
}

#[derive(Clone, Copy)]
enum CursorField {
    Full,
    Since,
    WindowFrom,
    Digest,
    Checked,
}

impl Serialize for SyncCursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(None)?;
        // Field by field across the kinds: the order releases before kinds were data wrote.
        for field in 0..5 {
            for (kind, c) in self.0.iter() {
                let (Some(name), which) = cursor_fields(&kind.spec().cursor)[field] else {
                    continue;
                };
                match which {
                    CursorField::Full => map.serialize_entry(name, &c.full)?,
                    CursorField::Since => map.serialize_entry(name, &c.since)?,
                    CursorField::WindowFrom => map.serialize_entry(name, &c.window_from)?,
                    CursorField::Digest => map.serialize_entry(name, &c.digest)?,
                    // Not written as `null`: a shop's cursor is rewritten on every pass.
                    CursorField::Checked => {
                        if let Some(at) = &c.checked {
                            map.serialize_entry(name, at)?;
                        }
                    }
                }
            }
        }
        map.end()
    }
}

impl TryFrom<Map<String, Value>> for SyncCursor {
    type Error = serde_json::Error;

    /// Missing fields take their default, unknown ones are ignored; a field of the wrong type
    /// makes the whole cursor unreadable (and so a full resync).
    fn try_from(mut map: Map<String, Value>) -> Result<Self, Self::Error> {
        PerKind::try_from_fn(|kind| {
            let mut c = KindCursor::default();
            for (name, which) in cursor_fields(&kind.spec().cursor) {
                let Some(value) = name.and_then(|n| map.remove(n)) else {
                    continue;
                };
                match which {
                    CursorField::Full => c.full = serde_json::from_value(value)?,
                    CursorField::Since => c.since = serde_json::from_value(value)?,
                    CursorField::WindowFrom => c.window_from = serde_json::from_value(value)?,
                    CursorField::Digest => c.digest = serde_json::from_value(value)?,
                    CursorField::Checked => c.checked = serde_json::from_value(value)?,
                }
            }
            Ok(c)
        })
        .map(SyncCursor)
    }
}

const EPOCH: Date = Date::constant(1970, 1, 1);
/// Bytes of the id, the number and the version, before the tail.
const HEAD: usize = 16;
/// The stored version of a deleted record.
const DELETED: i32 = -1;

fn tail_width(tail: Tail) -> usize {
    match tail {
        Tail::Flag(_) => 1,
        Tail::Date(_) => 4,
    }
}

/// A key of the layout before schema 2: `mirror/{shop}/{spec.mirror}/`, then the id as 8 bytes
/// (which may contain `/`; shop names cannot).
pub(super) fn is_per_entry_key(key: &[u8]) -> bool {
    let Some(rest) = key.strip_prefix(b"mirror/") else {
        return false;
    };
    let Some(slash) = rest.iter().position(|&b| b == b'/') else {
        return false;
    };
    let tail = &rest[slash + 1..];
    CheckKind::ALL.iter().any(|kind| {
        tail.strip_prefix(kind.spec().mirror.as_bytes())
            .and_then(|t| t.strip_prefix(b"/"))
            .is_some_and(|id| id.len() == 8)
    })
}

impl Store {
    /// The shop's mirror of `kind`, sorted by id. A value that is not whole records is
    /// [`StoreError::MirrorTruncated`] (logged as `store.corrupt`): the caller reads in full.
    pub fn mirror(&self, shop: &str, kind: CheckKind) -> Result<Vec<(i64, Entry)>, StoreError> {
        let spec = kind.spec();
        Ok(
            match self
                .db
                .get(super::keys::mirror(shop, spec).as_bytes())
                .map_err(self.sled())?
            {
                Some(v) => {
                    let width = HEAD + tail_width(spec.tail);
                    if v.len() % width != 0 {
                        let e = StoreError::MirrorTruncated {
                            key: super::keys::mirror(shop, spec),
                            len: v.len(),
                            width,
                        };
                        super::skip_corrupt(&e);
                        return Err(e);
                    }
                    v.chunks_exact(width)
                        .filter_map(|record| decode_entry(record, spec.tail))
                        .collect()
                }
                None => Vec::new(),
            },
        )
    }

    pub fn cursor(&self, shop: &str) -> Result<SyncCursor, StoreError> {
        let key = super::keys::cursor(shop);
        Ok(match self.db.get(key.as_bytes()).map_err(self.sled())? {
            // Without a cursor the next sync is a full one: slower, never wrong.
            Some(v) => decode(key.as_bytes(), &v).unwrap_or_else(|e| {
                super::skip_corrupt(&e);
                SyncCursor::default()
            }),
            None => SyncCursor::default(),
        })
    }
}

impl Batch {
    /// Replaces the shop's whole mirror of `kind` with `entries` (any order).
    pub fn put_mirror<'a>(
        &mut self,
        shop: &str,
        kind: CheckKind,
        entries: impl IntoIterator<Item = (&'a i64, &'a Entry)>,
    ) {
        let spec = kind.spec();
        let mut sorted: Vec<_> = entries.into_iter().collect();
        sorted.sort_unstable_by_key(|(id, _)| **id);
        let mut v = Vec::with_capacity(sorted.len() * (HEAD + tail_width(spec.tail)));
        for (id, entry) in sorted {
            v.extend_from_slice(&id.to_be_bytes());
            v.extend_from_slice(&entry.number.unwrap_or(0).to_be_bytes());
            let version = match entry.version {
                // Tripletex's versions are int32: never above i32::MAX.
                Version::Seen(v) => i32::try_from(v).unwrap_or(i32::MAX),
                Version::Deleted => DELETED,
            };
            v.extend_from_slice(&version.to_be_bytes());
            match (spec.tail, entry.tail) {
                (Tail::Flag(_), TailValue::Flag(flag)) => v.push(u8::from(flag)),
                (Tail::Date(_), TailValue::Date(date)) => {
                    let days = date
                        .and_then(|d| EPOCH.until(d).ok())
                        .map_or(i32::MIN, |s| s.get_days());
                    v.extend_from_slice(&days.to_be_bytes());
                }
                // An entry of another tail cannot come from this kind's rows; the width stays.
                (Tail::Flag(_), _) => v.push(0),
                (Tail::Date(_), _) => v.extend_from_slice(&i32::MIN.to_be_bytes()),
            }
        }
        self.inner
            .insert(super::keys::mirror(shop, spec).into_bytes(), v);
    }

    pub fn put_cursor(&mut self, shop: &str, cursor: &SyncCursor) {
        self.put_json(super::keys::cursor(shop).into_bytes(), cursor);
    }
}

fn decode_entry(v: &[u8], tail: Tail) -> Option<(i64, Entry)> {
    let id = i64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let number = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?);
    let version = match i32::from_be_bytes(v.get(12..HEAD)?.try_into().ok()?) {
        DELETED => Version::Deleted,
        // Nothing else below 0 is written; read it as the oldest version, never as news.
        seen => Version::Seen(u32::try_from(seen).unwrap_or(0)),
    };
    let tail = match tail {
        Tail::Flag(_) => TailValue::Flag(*v.get(HEAD)? != 0),
        Tail::Date(_) => {
            let days = i32::from_be_bytes(v.get(HEAD..HEAD + 4)?.try_into().ok()?);
            TailValue::Date(
                (days != i32::MIN)
                    .then(|| {
                        EPOCH
                            .checked_add(jiff::Span::new().days(i64::from(days)))
                            .ok()
                    })
                    .flatten(),
            )
        }
    };
    let entry = Entry {
        number: (number != 0).then_some(number),
        tail,
        version,
    };
    Some((id, entry))
}

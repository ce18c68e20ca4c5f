//! The mirror: per shop and check kind, every number in use, keyed by Tripletex id; and the sync
//! cursor that says where the next sync of each kind continues from.
//!
//! Keyed by id (not number) so that a number used twice shows up as two entries. A shop's mirror
//! of one kind is one value under `shop/{shop}/mirror/{spec.mirror}` (100 000 entries stay one small
//! read and one write, not 100 000 sled operations): the records sorted by id, each with its
//! number, Tripletex's `version` (or deleted) and the kind's tail (a flag or a date), laid out as
//! `mirror_value` says (packed since schema 7). A sync replaces a kind's whole value, and only
//! when it changed. The cursor is one value per shop, packed since schema 9 (`cursor_value`);
//! schemas 6 to 8 wrote it as a JSON object whose field names each kind's spec gives
//! (`CursorKeys`), which is still read. Since schema 6 it also holds when each kind's check last
//! ran, so an idle pass writes one record.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Batch, Store, StoreError, cursor_value, decode, mirror_value};
use crate::checks::CheckKind;
use crate::checks::kinds::{CursorKeys, Entry, PerKind};

/// Where incremental sync continues from, per kind (one kind's failure must not skip another's).
#[derive(Debug, Clone, Default, PartialEq)]
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

/// The fields of one kind's JSON cursor (schemas 6 to 8) as (stored name, value).
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

impl<'de> Deserialize<'de> for SyncCursor {
    /// Missing fields take their default, unknown ones are ignored; a field of the wrong type
    /// makes the whole cursor unreadable (and so a full resync). Read field by field, straight
    /// into the cursor (not through a `serde_json::Value` of the whole: an idle pass reads it).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(CursorVisitor)
    }
}

struct CursorVisitor;

impl<'de> Visitor<'de> for CursorVisitor {
    type Value = SyncCursor;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sync cursor (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<SyncCursor, A::Error> {
        let mut cursor = SyncCursor::default();
        while let Some(FieldName(field)) = fields.next_key()? {
            let Some((kind, which)) = field else {
                fields.next_value::<IgnoredAny>()?;
                continue;
            };
            let c = cursor.of_mut(kind);
            match which {
                CursorField::Full => c.full = fields.next_value()?,
                CursorField::Since => c.since = fields.next_value()?,
                CursorField::WindowFrom => c.window_from = fields.next_value()?,
                CursorField::Digest => c.digest = fields.next_value()?,
                CursorField::Checked => c.checked = fields.next_value()?,
            }
        }
        Ok(cursor)
    }
}

/// A cursor field's stored name, read as the kind and field it names (`None`: a name this build
/// does not know), without allocating it.
struct FieldName(Option<(CheckKind, CursorField)>);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = FieldName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a cursor field's name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<FieldName, E> {
                Ok(FieldName(CheckKind::ALL.iter().find_map(|&kind| {
                    cursor_fields(&kind.spec().cursor)
                        .into_iter()
                        .find_map(|(n, which)| (n == Some(name)).then_some((kind, which)))
                })))
            }
        }
        d.deserialize_str(NameVisitor)
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
    /// The shop's mirror of `kind`, sorted by id. A value that cannot be read whole is
    /// [`StoreError::MirrorMalformed`] (logged as `store.corrupt`): the caller reads in full.
    pub fn mirror(&self, shop: &str, kind: CheckKind) -> Result<Vec<(i64, Entry)>, StoreError> {
        let spec = kind.spec();
        let key = super::keys::mirror(shop, spec);
        let Some(value) = self.db.get(key.as_bytes()).map_err(self.sled())? else {
            return Ok(Vec::new());
        };
        mirror_value::unpack(&value, spec.tail).map_err(|why| {
            let e = StoreError::MirrorMalformed {
                key,
                len: value.len(),
                why,
            };
            super::skip_corrupt(&e);
            e
        })
    }

    /// The shop's sync cursor; without one, or with one that cannot be read (logged as
    /// `store.corrupt`), the default: the next sync is a full one, slower, never wrong.
    pub fn cursor(&self, shop: &str) -> Result<SyncCursor, StoreError> {
        let key = super::keys::cursor(shop);
        let Some(value) = self.db.get(key.as_bytes()).map_err(self.sled())? else {
            return Ok(SyncCursor::default());
        };
        let read = if value.first() == Some(&cursor_value::PACKED) {
            cursor_value::unpack(&value).map_err(|why| StoreError::CursorMalformed { key, why })
        } else {
            decode(key.as_bytes(), &value)
        };
        Ok(read.unwrap_or_else(|e| {
            super::skip_corrupt(&e);
            SyncCursor::default()
        }))
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
        self.inner.insert(
            super::keys::mirror(shop, spec).into_bytes(),
            mirror_value::pack(spec.tail, &sorted),
        );
    }

    pub fn put_cursor(&mut self, shop: &str, cursor: &SyncCursor) {
        self.inner.insert(
            super::keys::cursor(shop).into_bytes(),
            cursor_value::pack(cursor),
        );
    }
}

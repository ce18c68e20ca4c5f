//! The move to schema 7: every mirror value written in schema 4's fixed-width records is
//! rewritten packed (see `mirror_value`), so an upgraded database is as small as a new one.
//!
//! Invariants: `schema` sets the version and [`REPACKING`] in one batch before the first value is
//! rewritten, so an older release refuses the database from then on, and a repack cut short
//! resumes at the next open; each batch rewrites at most [`REPACK_CHUNK`] values, each replaced
//! whole by what it reads as (a value either layout reads the same way, so a batch applied twice
//! changes nothing); a value that is not readable is left as it is, for its shop's next sync to
//! replace; the last batch removes [`REPACKING`].

use super::{StoreError, keys, mirror_value};

/// Present while mirrors are being repacked.
pub(super) const REPACKING: &[u8] = b"meta/repacking_mirrors";
/// Values rewritten per batch: a batch holds its values in memory.
pub(super) const REPACK_CHUNK: usize = 10_000;

/// Rewrites every fixed-width mirror value packed, in batches of `chunk` values, calling
/// `progress` with the values seen so far after each batch; then removes [`REPACKING`].
pub(super) fn mirrors(
    db: &sled::Db,
    chunk: usize,
    sled: &impl Fn(sled::Error) -> StoreError,
    progress: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
    let (mut seen, mut repacked, mut unreadable) = (0usize, 0usize, 0usize);
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    for kv in db.scan_prefix(keys::SHOPS) {
        let (key, value) = kv.map_err(sled)?;
        let Some(kind) = keys::mirror_kind(&key) else {
            continue;
        };
        seen += 1;
        if mirror_value::is_packed(&value) {
            continue;
        }
        let tail = kind.spec().tail;
        match mirror_value::unpack(&value, tail) {
            Ok(entries) => {
                let sorted: Vec<_> = entries.iter().map(|(id, e)| (id, e)).collect();
                batch.insert(key, mirror_value::pack(tail, &sorted));
                repacked += 1;
                in_batch += 1;
            }
            Err(_) => unreadable += 1,
        }
        if in_batch == chunk {
            db.apply_batch(std::mem::take(&mut batch)).map_err(sled)?;
            in_batch = 0;
            progress(seen);
        }
    }
    batch.remove(REPACKING);
    db.apply_batch(batch).map_err(sled)?;
    progress(seen);
    tracing::info!(
        event = "store.migrated",
        to = 7,
        repacked,
        unreadable,
        "mirrors are now packed (a fifth of their size)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckKind;
    use crate::checks::kinds::{Entry, TailValue, Version};

    /// Schema 6's fixed-width customer records.
    fn fixed(ids: std::ops::Range<i64>) -> Vec<u8> {
        ids.flat_map(|id| {
            let mut record = id.to_be_bytes().to_vec();
            record.extend((100_000 + id as u32).to_be_bytes());
            record.extend(3i32.to_be_bytes());
            record.push(0);
            record
        })
        .collect()
    }

    fn entries(ids: std::ops::Range<i64>) -> Vec<(i64, Entry)> {
        ids.map(|id| {
            let entry = Entry {
                number: Some(100_000 + id as u32),
                tail: TailValue::Flag(false),
                version: Version::Seen(3),
            };
            (id, entry)
        })
        .collect()
    }

    /// Three shops' fixed-width mirrors of schema 6, their cursors, and a mirror that cannot be
    /// read.
    fn schema_6(dir: &std::path::Path) -> sled::Db {
        let db = sled::Config::new().path(dir).open().unwrap();
        db.insert(b"meta/schema_version", &6u32.to_be_bytes())
            .unwrap();
        for shop in ["acme", "bolt", "cafe"] {
            db.insert(format!("shop/{shop}/mirror/customers"), fixed(0..40))
                .unwrap();
            db.insert(format!("shop/{shop}/cursor"), b"{}".as_slice())
                .unwrap();
        }
        db.insert("shop/dent/mirror/customers", &[1u8; 5]).unwrap();
        db
    }

    /// Every mirror is packed and reads as before; other records, and a mirror that cannot be
    /// read, are left as they were.
    fn assert_repacked(db: &sled::Db) {
        let tail = CheckKind::CustomerNumbers.spec().tail;
        for shop in ["acme", "bolt", "cafe"] {
            let value = db.get(format!("shop/{shop}/mirror/customers")).unwrap();
            let value = value.unwrap();
            assert!(mirror_value::is_packed(&value), "{shop}");
            assert!(value.len() < 40 * 5, "{} bytes", value.len());
            assert_eq!(mirror_value::unpack(&value, tail).unwrap(), entries(0..40));
            let cursor = db.get(format!("shop/{shop}/cursor")).unwrap().unwrap();
            assert_eq!(&*cursor, b"{}");
        }
        let unreadable = db.get("shop/dent/mirror/customers").unwrap().unwrap();
        assert_eq!(&*unreadable, &[1u8; 5]);
        assert!(!db.contains_key(REPACKING).unwrap());
    }

    #[test]
    fn schema_6_mirrors_are_repacked_and_read_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let db = schema_6(dir.path());
        super::super::schema::migrate(&db, dir.path(), &mut |_| {}).unwrap();
        assert_repacked(&db);
        let version = db.get(b"meta/schema_version").unwrap().unwrap();
        assert_eq!(&*version, &7u32.to_be_bytes());
    }

    /// A repack cut short (the version set, the marker left, one mirror packed) resumes, in
    /// batches of one whose progress only grows.
    #[test]
    fn a_repack_cut_short_resumes_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let db = schema_6(dir.path());
        db.insert(b"meta/schema_version", &7u32.to_be_bytes())
            .unwrap();
        db.insert(REPACKING, b"".as_slice()).unwrap();
        let tail = CheckKind::CustomerNumbers.spec().tail;
        let packed = entries(0..40);
        let sorted: Vec<_> = packed.iter().map(|(id, e)| (id, e)).collect();
        db.insert(
            "shop/bolt/mirror/customers",
            mirror_value::pack(tail, &sorted),
        )
        .unwrap();
        let mut seen = Vec::new();
        let sled = super::super::sled_at(dir.path());
        mirrors(&db, 1, &sled, &mut |n| seen.push(n)).unwrap();
        assert_repacked(&db);
        assert_eq!(seen.last(), Some(&4), "{seen:?}");
        assert!(seen.is_sorted(), "{seen:?}");
    }
}

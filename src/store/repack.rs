//! The moves to packed values: schema 7's mirrors (every mirror of schema 4's fixed-width records
//! rewritten packed, see `mirror_value`), schema 8's histories (every check's history, a key a
//! point before, gathered into one packed value, see `history_value`) and schema 10's results
//! and sessions (every JSON one rewritten packed, see `result_value` and `session_value`), so an
//! upgraded database is as small as a new one.
//!
//! Invariants: `schema` sets the version and each step's marker ([`REPACKING`],
//! [`PACKING_HISTORIES`], [`PACKING_RECORDS`]) in one batch before the first value is rewritten, so an older release
//! refuses the database from then on, and a step cut short resumes at the next open; each batch
//! rewrites at most about [`REPACK_CHUNK`] keys and is atomic: a mirror, result or session is replaced
//! whole by what it reads as (a value either layout reads the same way, so a batch applied twice
//! changes nothing), and a history's points are never split between batches (its value is written in the
//! batch that removes the last of its point keys); a mirror that cannot be read is left for its
//! shop's next sync to replace, a result for its check's next run, a session for the next mint, and a point that cannot be read is dropped (counted); each step's
//! last batch removes its marker.

use super::{StoreError, history_value, keys, mirror_value, result_value, session_value};
use crate::checks::HistoryPoint;
use crate::store::{ResultRecord, SessionRecord};

/// Present while mirrors are being repacked.
pub(super) const REPACKING: &[u8] = b"meta/repacking_mirrors";
/// Present while histories are being packed.
pub(super) const PACKING_HISTORIES: &[u8] = b"meta/packing_histories";
/// Present while results and sessions are being packed.
pub(super) const PACKING_RECORDS: &[u8] = b"meta/packing_records";
/// Values rewritten per batch: a batch holds its values in memory.
pub(super) const REPACK_CHUNK: usize = 10_000;

/// What a step makes of one value under `shop/`: not its kind, its kind but already packed,
/// the packed value to write, or unreadable (left as it is).
enum Repacked {
    NotMine,
    Packed,
    Rewrite(Vec<u8>),
    Unreadable,
}

/// What a step counted: values of its kind seen, rewritten, left unreadable.
#[derive(Default)]
struct Counts {
    seen: usize,
    rewritten: usize,
    unreadable: usize,
}

/// Rewrites the values under `shop/` that `repack` says to, in batches of `chunk` rewrites,
/// calling `progress` with the values of its kind seen so far after each batch; the last batch
/// removes `marker`.
fn rewrite_each(
    db: &sled::Db,
    chunk: usize,
    marker: &[u8],
    sled: &impl Fn(sled::Error) -> StoreError,
    progress: &mut dyn FnMut(usize),
    repack: impl Fn(&[u8], &[u8]) -> Repacked,
) -> Result<Counts, StoreError> {
    let mut counts = Counts::default();
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    for kv in db.scan_prefix(keys::SHOPS) {
        let (key, value) = kv.map_err(sled)?;
        match repack(&key, &value) {
            Repacked::NotMine => continue,
            Repacked::Packed => {}
            Repacked::Rewrite(packed) => {
                batch.insert(key, packed);
                counts.rewritten += 1;
                in_batch += 1;
            }
            Repacked::Unreadable => counts.unreadable += 1,
        }
        counts.seen += 1;
        if in_batch == chunk {
            db.apply_batch(std::mem::take(&mut batch)).map_err(sled)?;
            in_batch = 0;
            progress(counts.seen);
        }
    }
    batch.remove(marker);
    db.apply_batch(batch).map_err(sled)?;
    progress(counts.seen);
    Ok(counts)
}

/// Rewrites every fixed-width mirror value packed, in batches of `chunk` values, calling
/// `progress` with the values seen so far after each batch; then removes [`REPACKING`].
pub(super) fn mirrors(
    db: &sled::Db,
    chunk: usize,
    sled: &impl Fn(sled::Error) -> StoreError,
    progress: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
    let counts = rewrite_each(db, chunk, REPACKING, sled, progress, |key, value| {
        let Some(kind) = keys::mirror_kind(key) else {
            return Repacked::NotMine;
        };
        if mirror_value::is_packed(value) {
            return Repacked::Packed;
        }
        let tail = kind.spec().tail;
        match mirror_value::unpack(value, tail) {
            Ok(entries) => {
                let sorted: Vec<_> = entries.iter().map(|(id, e)| (id, e)).collect();
                Repacked::Rewrite(mirror_value::pack(tail, &sorted))
            }
            Err(_) => Repacked::Unreadable,
        }
    })?;
    tracing::info!(
        event = "store.migrated",
        to = 7,
        repacked = counts.rewritten,
        unreadable = counts.unreadable,
        "mirrors are now packed (a fifth of their size)"
    );
    Ok(())
}

/// Gathers every history of schemas 5 to 7 (a key per point) into its one packed value, in
/// batches of about `chunk` point keys, calling `progress` with the point keys seen so far after
/// each batch; then removes [`PACKING_HISTORIES`].
pub(super) fn histories(
    db: &sled::Db,
    chunk: usize,
    sled: &impl Fn(sled::Error) -> StoreError,
    progress: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
    let (mut seen, mut packed, mut unreadable) = (0usize, 0usize, 0usize);
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    // The history being gathered: its key and its points so far (point keys sort by time).
    let mut gathering: Option<(Vec<u8>, Vec<HistoryPoint>)> = None;
    let mut done = |batch: &mut sled::Batch, (key, points): (Vec<u8>, Vec<HistoryPoint>)| {
        if !points.is_empty() {
            batch.insert(key, history_value::pack(&points));
        }
        packed += 1;
    };
    for kv in db.scan_prefix(keys::SHOPS) {
        let (key, value) = kv.map_err(sled)?;
        let Some(history) = keys::history_of_point(&key) else {
            continue;
        };
        if gathering.as_ref().is_some_and(|(k, _)| k != history) {
            done(&mut batch, gathering.take().expect("gathering"));
            if in_batch >= chunk {
                db.apply_batch(std::mem::take(&mut batch)).map_err(sled)?;
                in_batch = 0;
                progress(seen);
            }
        }
        let (_, points) = gathering.get_or_insert_with(|| (history.to_vec(), Vec::new()));
        match serde_json::from_slice::<HistoryPoint>(&value) {
            Ok(point) => points.push(point),
            Err(_) => unreadable += 1,
        }
        batch.remove(key);
        seen += 1;
        in_batch += 1;
    }
    if let Some(last) = gathering.take() {
        done(&mut batch, last);
    }
    batch.remove(PACKING_HISTORIES);
    db.apply_batch(batch).map_err(sled)?;
    progress(seen);
    tracing::info!(
        event = "store.migrated",
        to = 8,
        histories = packed,
        points = seen,
        unreadable,
        "each check's history is now one packed value"
    );
    Ok(())
}

/// Rewrites every JSON result and session packed, in batches of `chunk` values, calling
/// `progress` with the records seen so far after each batch; then removes [`PACKING_RECORDS`].
pub(super) fn records(
    db: &sled::Db,
    chunk: usize,
    sled: &impl Fn(sled::Error) -> StoreError,
    progress: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
    let counts = rewrite_each(db, chunk, PACKING_RECORDS, sled, progress, |key, value| {
        let packed = if keys::result_kind(key).is_some() {
            if value.first() == Some(&result_value::PACKED) {
                return Repacked::Packed;
            }
            serde_json::from_slice::<ResultRecord>(value).map(|r| result_value::pack(&r))
        } else if keys::is_session(key) {
            if value.first() == Some(&session_value::PACKED) {
                return Repacked::Packed;
            }
            serde_json::from_slice::<SessionRecord>(value).map(|s| session_value::pack(&s))
        } else {
            return Repacked::NotMine;
        };
        packed.map_or(Repacked::Unreadable, Repacked::Rewrite)
    })?;
    tracing::info!(
        event = "store.migrated",
        to = 10,
        packed = counts.rewritten,
        unreadable = counts.unreadable,
        "results and sessions are now packed (under half their size)"
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
        // Histories of schemas 5 to 7: a key per point, one of them unreadable.
        for (shop, kind) in [
            ("acme", CheckKind::CustomerNumbers),
            ("bolt", CheckKind::InvoiceNumbers),
        ] {
            for (day, high) in points() {
                let at = day.parse().unwrap();
                let value = format!(r#"{{"at":"{day}","shop_high":{high}}}"#);
                db.insert(keys::history_point(shop, kind, at), value.as_bytes())
                    .unwrap();
            }
        }
        let unreadable = keys::history_point(
            "acme",
            CheckKind::CustomerNumbers,
            "2026-11-05T00:00:00Z".parse().unwrap(),
        );
        db.insert(unreadable, b"{".as_slice()).unwrap();
        db
    }

    fn points() -> [(&'static str, u32); 3] {
        [
            ("2026-11-01T00:00:00Z", 10),
            ("2026-11-02T06:00:00.123Z", 20),
            ("2026-11-03T00:00:00Z", 20),
        ]
    }

    /// Each history is one value holding its readable points, oldest first; no point keys are left.
    fn assert_histories_packed(db: &sled::Db) {
        let want: Vec<HistoryPoint> = points()
            .into_iter()
            .map(|(day, high)| HistoryPoint {
                at: day.parse().unwrap(),
                shop_high: Some(high),
            })
            .collect();
        for (shop, kind) in [
            ("acme", CheckKind::CustomerNumbers),
            ("bolt", CheckKind::InvoiceNumbers),
        ] {
            let value = db.get(keys::history(shop, kind)).unwrap().unwrap();
            assert_eq!(history_value::unpack(&value).unwrap(), want, "{shop}");
        }
        let left = db
            .scan_prefix(keys::SHOPS)
            .keys()
            .filter(|k| keys::history_of_point(k.as_ref().unwrap()).is_some())
            .count();
        assert_eq!(left, 0);
        assert!(!db.contains_key(PACKING_HISTORIES).unwrap());
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
    fn schema_6_mirrors_and_histories_are_packed_and_read_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let db = schema_6(dir.path());
        super::super::schema::migrate(&db, dir.path(), &mut |_| {}).unwrap();
        assert_repacked(&db);
        assert_histories_packed(&db);
        let version = db.get(b"meta/schema_version").unwrap().unwrap();
        assert_eq!(&*version, &super::super::SCHEMA_VERSION.to_be_bytes());
    }

    /// Histories gathered in batches of one point key still come out whole: a batch ends only
    /// between histories.
    #[test]
    fn histories_are_packed_whole_in_small_batches() {
        let dir = tempfile::tempdir().unwrap();
        let db = schema_6(dir.path());
        db.insert(PACKING_HISTORIES, b"".as_slice()).unwrap();
        let mut seen = Vec::new();
        let sled = super::super::sled_at(dir.path());
        histories(&db, 1, &sled, &mut |n| seen.push(n)).unwrap();
        assert_histories_packed(&db);
        assert_eq!(
            seen,
            [4, 7],
            "after acme's 4 point keys, then with bolt's 3 at the end"
        );
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

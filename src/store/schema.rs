//! The database's schema version (`meta/schema_version`, a u32 big-endian) and the migrations
//! that bring an older database up to [`SCHEMA_VERSION`] when it is opened.
//!
//! Invariants: a database newer than this build is refused before anything is written to it (an
//! older release must never rewrite what it cannot read); a migration and the version it reaches
//! are applied in one atomic, flushed batch, so a crash leaves either the old schema or the new;
//! every migration is idempotent, so a database without a version key (but with data) can be
//! migrated from 1.
//!
//! History: 1 = the first releases (the mirror was first one key per entry, later one value per
//! shop and kind, under the same version); 2 = the orphaned per-entry mirror keys are gone and
//! every record reads older and newer shapes of itself; 3 = a check's time is its own record
//! (`result/{shop}/{kind}/checked`) and a result is rewritten only when its outcome changes, so a
//! result's own `checked_at` can be older than the check (nothing to convert: a result without a
//! time record keeps its own; an older release must not read the stale one as current).

use super::{StoreError, mirror};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 3;
const KEY: &[u8] = b"meta/schema_version";

/// Brings `db` to [`SCHEMA_VERSION`], or refuses a newer one.
pub(super) fn migrate(db: &sled::Db, path: &std::path::Path) -> Result<(), StoreError> {
    let sled = super::sled_at(path);
    let found = match db.get(KEY).map_err(&sled)? {
        Some(v) => v
            .as_ref()
            .try_into()
            .map(u32::from_be_bytes)
            .unwrap_or(u32::MAX),
        // A fresh database needs no migration.
        None if db.is_empty() => SCHEMA_VERSION,
        None => 1,
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::Schema {
            path: path.to_path_buf(),
            found,
        });
    }
    if found == SCHEMA_VERSION && db.get(KEY).map_err(&sled)?.is_some() {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    if found < 2 {
        let mut removed = 0usize;
        for key in db.scan_prefix(b"mirror/").keys() {
            let key = key.map_err(&sled)?;
            if mirror::is_per_entry_key(&key) {
                batch.remove(key);
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(
                event = "store.migrated",
                from = found,
                to = 2,
                removed,
                "removed the previous mirror layout's keys"
            );
        }
    }
    // 2 → 3 changes how new records are written, not the records already there.
    batch.insert(KEY, &SCHEMA_VERSION.to_be_bytes());
    db.apply_batch(batch).map_err(&sled)?;
    db.flush().map_err(&sled)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::store::{DB_DIR, Role, Store};

    fn raw(state_dir: &std::path::Path) -> sled::Db {
        settled(|| sled::Config::new().path(state_dir.join(DB_DIR)).open()).unwrap()
    }

    /// `open` retried for up to 2 s: after the last handle of a database is dropped, sled's I/O
    /// threads may hold its file lock a moment longer (`Store::open` waits for that itself).
    fn settled<T, E>(mut open: impl FnMut() -> Result<T, E>) -> Result<T, E> {
        for _ in 0..100 {
            if let Ok(db) = open() {
                return Ok(db);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        open()
    }

    fn version(db: &sled::Db) -> Option<u32> {
        db.get(KEY)
            .unwrap()
            .map(|v| u32::from_be_bytes(v.as_ref().try_into().unwrap()))
    }

    #[test]
    fn schema_1_loses_the_old_mirror_keys_and_keeps_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let id_with_slash = 0x2F2F_0000_0000_0001_i64.to_be_bytes();
        {
            let db = raw(dir.path());
            db.insert(KEY, &1u32.to_be_bytes()).unwrap();
            for kind in ["customers", "invoices"] {
                let mut old = format!("mirror/acme/{kind}/").into_bytes();
                old.extend_from_slice(&id_with_slash);
                db.insert(old, &[0u8; 5]).unwrap();
                db.insert(format!("mirror/acme/{kind}"), &[1u8; 16])
                    .unwrap();
            }
            db.insert("cursor/acme", br#"{"customers_full":null}"#.as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        drop(Store::open(dir.path(), Role::OneShot).unwrap());
        let db = raw(dir.path());
        let keys: Vec<String> = db
            .iter()
            .keys()
            .map(|k| String::from_utf8_lossy(&k.unwrap()).into_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "cursor/acme",
                "meta/schema_version",
                "mirror/acme/customers",
                "mirror/acme/invoices"
            ]
        );
        assert_eq!(version(&db), Some(SCHEMA_VERSION));
    }

    #[test]
    fn records_read_older_and_newer_shapes() {
        use crate::checks::{Evidence, HistoryPoint};
        use crate::store::{SessionRecord, SessionState, SyncCursor};
        // Older: fields missing.
        let session: SessionRecord = serde_json::from_str(r#"{"state":"valid"}"#).unwrap();
        assert_eq!(session.state, SessionState::Valid);
        assert_eq!(
            serde_json::from_str::<SyncCursor>("{}").unwrap(),
            SyncCursor::default()
        );
        assert_eq!(
            serde_json::from_str::<Evidence>("{}").unwrap(),
            Evidence::default()
        );
        let point: HistoryPoint = serde_json::from_str(r#"{"at":"2026-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(point.shop_high, None);
        // Newer: fields and states this build does not know.
        let session: SessionRecord =
            serde_json::from_str(r#"{"state":"suspended","minted_at":null,"region":"eu"}"#)
                .unwrap();
        assert_eq!(session.state, SessionState::Unknown);
        let evidence: Evidence =
            serde_json::from_str(r#"{"numbers_in_use":3,"gaps":[1]}"#).unwrap();
        assert_eq!(evidence.numbers_in_use, 3);
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = raw(dir.path());
            db.insert(KEY, &(SCHEMA_VERSION + 1).to_be_bytes()).unwrap();
            db.insert("mirror/acme/customers/12345678", b"kept".as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(dir.path(), Role::OneShot).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Schema { .. }), "{err:?}");
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(
            text.contains(&format!("schema {}", SCHEMA_VERSION + 1))
                && text.contains("newer tripletex-sync"),
            "{text}"
        );
        let db = raw(dir.path());
        assert_eq!(version(&db), Some(SCHEMA_VERSION + 1));
        assert_eq!(db.len(), 2, "nothing migrated or removed");
    }

    #[test]
    fn a_fresh_database_gets_the_current_version_and_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        // Files of an older release, written under umask 022.
        std::fs::create_dir_all(state.join(DB_DIR)).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(state.join(DB_DIR), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(state.join("tripletex-sync.lock"), "").unwrap();
        std::fs::set_permissions(
            state.join("tripletex-sync.lock"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        // Read through the open store: sled's I/O threads may hold its file lock for a moment after
        // the last handle is dropped, so a raw reopen right away can fail.
        let store = Store::open(&state, Role::OneShot).unwrap();
        assert_eq!(version(&store.db), Some(SCHEMA_VERSION));
        drop(store);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o750);
        assert_eq!(mode(&state.join("tripletex-sync.lock")), 0o600);
        assert_eq!(mode(&state.join(DB_DIR)), 0o700);
        for entry in std::fs::read_dir(state.join(DB_DIR)).unwrap() {
            let path = entry.unwrap().path();
            let want = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(&path), want, "{}", path.display());
        }
    }
}

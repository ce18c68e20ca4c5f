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
//! time record keeps its own; an older release must not read the stale one as current); 4 = a
//! mirrored record keeps Tripletex's `version` (and deletions), so its width grew: the mirrors
//! and sync cursors of schema 3 are removed, and each shop's next pass reads everything once
//! (results, history and sessions stay); 5 = every record of a shop is under `shop/{name}/` (see
//! `keys`), moved there from schema 4's `{type}/{shop}` keys in atomic batches of at most
//! [`MOVE_CHUNK`] keys, each key inserted at its new place and removed from its old in one batch.
//! The upgrade's first batch ([`mark_upgrade`]) sets the version this build writes and [`MOVING`],
//! so an older release refuses the database from then on, and a move cut short resumes at the next
//! open; the move's last batch removes [`MOVING`]. Nothing else changes: the values move byte for byte. 6 = a check's time is in
//! the shop's cursor (see `mirror`), so an idle pass writes one record, not three; nothing is
//! converted: the time records of schemas 3 to 5 are read while a kind's cursor has no time and
//! removed by its next check. An older release would read those as current: it must refuse.
//! 7 = mirrors are packed (see `mirror_value`): every mirror of schema 4's fixed-width records
//! is rewritten, in batches (`repack`), after the upgrade's first batch has set the version and
//! [`REPACKING`] (with [`MOVING`] from before 5), so that an older release, which would read a
//! packed value as garbage records, refuses the database from then on, and a repack cut short
//! resumes at the next open. Records
//! written since leave out their fields that hold nothing (older ones, with `null`s, read the
//! same). 8 = each check's history is one packed value (see `history_value`), not a key per
//! point: the upgrade gathers every history's points (`repack`), after the upgrade's first batch
//! has set the version and [`PACKING_HISTORIES`], in batches that never split a history. 9 = a
//! shop's sync cursor is packed (see `cursor_value`); nothing is converted: a JSON cursor of
//! schemas 6 to 8 is read, and the shop's next pass writes it packed. An older release would
//! read a packed cursor as unreadable and resync every shop in full: it must refuse. 10 = a
//! check's result and a shop's session are packed (see `result_value`, `session_value`): the
//! upgrade rewrites every JSON one (`repack`) after its first batch has set the version and
//! [`PACKING_RECORDS`], since a quiet shop's result is rewritten only when its outcome changes;
//! one that cannot be read is left as it is, shown as unreadable until its check's next run (or
//! the next mint) replaces it. An older release would read a packed one as corrupt: it must
//! refuse.

use super::repack::{self, PACKING_HISTORIES, PACKING_RECORDS, REPACKING};
use super::{StoreError, keys, mirror};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 10;
const KEY: &[u8] = b"meta/schema_version";
/// Present while the move to schema 5's keys is under way.
const MOVING: &[u8] = b"meta/moving_keys";
/// Keys moved per batch: a batch holds its values in memory, and a database of 100 000 shops
/// holds a million keys.
const MOVE_CHUNK: usize = 10_000;
/// A move's progress (`store.migrating`) is logged at most once per this many keys.
const MOVE_LOGGED_EVERY: usize = 100_000;

/// Brings `db` to [`SCHEMA_VERSION`], or refuses a newer one.
pub(super) fn migrate(
    db: &sled::Db,
    path: &std::path::Path,
    progress: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
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
    let mut moving = db.contains_key(MOVING).map_err(&sled)?;
    let mut repacking = db.contains_key(REPACKING).map_err(&sled)?;
    let mut packing = db.contains_key(PACKING_HISTORIES).map_err(&sled)?;
    let mut packing_results = db.contains_key(PACKING_RECORDS).map_err(&sled)?;
    let marked = moving || repacking || packing || packing_results;
    if found == SCHEMA_VERSION && !marked && db.get(KEY).map_err(&sled)?.is_some() {
        return Ok(());
    }
    if found < 4 {
        before_4(db, found, &sled)?;
    }
    if found < SCHEMA_VERSION {
        mark_upgrade(db, found, &sled)?;
        moving |= found < 5;
        repacking |= found < 7;
        packing |= found < 8;
        packing_results |= found < 10;
    }
    if moving {
        move_under_shops(db, MOVE_CHUNK, &sled, progress)?;
    }
    if repacking {
        repack::mirrors(db, repack::REPACK_CHUNK, &sled, progress)?;
    }
    if packing {
        repack::histories(db, repack::REPACK_CHUNK, &sled, progress)?;
    }
    if packing_results {
        repack::records(db, repack::REPACK_CHUNK, &sled, progress)?;
    }
    db.insert(KEY, &SCHEMA_VERSION.to_be_bytes())
        .map_err(&sled)?;
    db.flush().map_err(&sled)?;
    Ok(())
}

/// An upgrade's first batch: this build's version, so an older release refuses the database from
/// here on, and, in the same batch, a marker for each step still to come that rewrites keys in
/// batches (the move to 5's keys, the repack of 7's mirrors, the packing of 8's histories and of
/// 10's results and sessions), so that a step cut short resumes at the next open.
fn mark_upgrade(
    db: &sled::Db,
    found: u32,
    sled: &impl Fn(sled::Error) -> StoreError,
) -> Result<(), StoreError> {
    let mut start = sled::Batch::default();
    start.insert(KEY, &SCHEMA_VERSION.to_be_bytes());
    if found < 5 {
        start.insert(MOVING, b"".as_slice());
    }
    if found < 7 {
        start.insert(REPACKING, b"".as_slice());
    }
    if found < 8 {
        start.insert(PACKING_HISTORIES, b"".as_slice());
    }
    if found < 10 {
        start.insert(PACKING_RECORDS, b"".as_slice());
    }
    db.apply_batch(start).map_err(sled)
}

/// The migrations to schema 4, in one atomic batch with the version they reach.
fn before_4(
    db: &sled::Db,
    found: u32,
    sled: &impl Fn(sled::Error) -> StoreError,
) -> Result<(), StoreError> {
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
    {
        // Without versions a mirror cannot tell a replayed callback from news; rather than guess
        // a version for every record, the next pass reads them afresh (a full read, once).
        let mut removed = 0usize;
        for prefix in [b"mirror/".as_slice(), b"cursor/".as_slice()] {
            for key in db.scan_prefix(prefix).keys() {
                batch.remove(key.map_err(&sled)?);
                removed += 1;
            }
        }
        tracing::info!(
            event = "store.migrated",
            from = found,
            to = 4,
            removed,
            "mirrors now keep versions: each shop's next pass reads its records in full once"
        );
    }
    batch.insert(KEY, &4u32.to_be_bytes());
    db.apply_batch(batch).map_err(sled)
}

/// 4 → 5: moves every `{type}/{shop}` key under `shop/{shop}/` (see the module doc), once
/// [`mark_upgrade`] has marked the move.
fn move_under_shops(
    db: &sled::Db,
    chunk: usize,
    sled: &impl Fn(sled::Error) -> StoreError,
    progress: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
    let (mut moved, mut dropped, mut logged) = (0usize, 0usize, 0usize);
    for prefix in keys::TYPE_FIRST {
        loop {
            let mut batch = sled::Batch::default();
            let mut taken = 0;
            for kv in db.scan_prefix(prefix).take(chunk) {
                let (old, value) = kv.map_err(sled)?;
                // A key without a shop was never written by a release: nothing reads it.
                match keys::from_type_first(&old) {
                    Some(new) => {
                        batch.insert(new, value);
                        moved += 1;
                    }
                    None => dropped += 1,
                }
                batch.remove(old);
                taken += 1;
            }
            db.apply_batch(batch).map_err(sled)?;
            let done = moved + dropped;
            progress(done);
            if done >= logged + MOVE_LOGGED_EVERY {
                logged = done;
                tracing::info!(
                    event = "store.migrating",
                    moved = done,
                    "moving the database's keys under their shops"
                );
            }
            if taken < chunk {
                break;
            }
        }
    }
    let mut done = sled::Batch::default();
    done.remove(MOVING);
    db.apply_batch(done).map_err(sled)?;
    tracing::info!(
        event = "store.migrated",
        to = 5,
        moved,
        dropped,
        "each shop's records are now under shop/{{name}}/"
    );
    Ok(())
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;

//! Applies one callback: the record goes into the shop's mirror (a delete marks it deleted), the
//! kind's verdict is re-evaluated from the mirror and the stored history, and both are recorded
//! in one flushed batch, as a pass records them (`crate::pass::record_evaluation`), with a
//! changed verdict logged as `check.verdict`.
//!
//! Invariants: no Tripletex request; a callback for a shop or kind that is off changes nothing,
//! and so does one for a kind no pass has read in full yet (a verdict from callbacks alone would
//! vouch for numbers nobody read); one that changes nothing in the mirror records nothing.
//! Callbacks come late, repeated and out of order, so a record changes only for a newer
//! `version` than the mirror holds, and a delete is final for its id (until a pass lists it
//! again): a replayed or reordered delivery never changes a verdict. The caller runs it on the
//! shop's own task, never beside a pass of the same shop: both rewrite the shop's mirror.

use std::collections::HashMap;

use super::Change;
use crate::checks::kinds::{Entry, Version};
use crate::checks::{CheckKind, CheckOutcome};
use crate::clock::SharedClock;
use crate::config::ShopConfig;
use crate::pass::{self, PassError, PassSettings};
use crate::store::{Store, StoreError};

/// Applies `change` of `kind`, from a callback of `shop`; the new outcome, or `None` when no
/// verdict was recorded.
pub async fn apply(
    (kind, change): (CheckKind, &Change),
    shop: &ShopConfig,
    store: &Store,
    settings: &PassSettings,
    clock: &SharedClock,
) -> Result<Option<CheckOutcome>, PassError> {
    let Some(range) = shop.checks[kind].filter(|_| shop.enabled) else {
        return Ok(None);
    };
    let name = shop.name.as_str();
    if store.cursor(name)?.of(kind).full.is_none() {
        return Ok(None);
    }
    let mut mirror: HashMap<i64, Entry> = match store.mirror(name, kind) {
        Ok(entries) => entries.into_iter().collect(),
        // Broken records (logged as store.corrupt): the next pass reads the kind in full.
        Err(StoreError::MirrorMalformed { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (id, incoming) = match change {
        Change::Upsert(record) => (record.id, record.entry),
        &Change::Delete(id) => {
            let tail = mirror
                .get(&id)
                .map_or_else(|| kind.spec().tail.absent(), |e| e.tail);
            let deleted = Entry {
                number: None,
                version: Version::Deleted,
                tail,
            };
            (id, deleted)
        }
    };
    // A delete of a record never seen (its create may still be on the way) is remembered too,
    // so that create changes nothing when it comes.
    let before = mirror.insert(id, incoming);
    if !Version::is_news(incoming.version, before.map(|e| e.version)) {
        return Ok(None);
    }
    let mut batch = store.batch();
    batch.put_mirror(name, kind, &mirror);
    if before.and_then(|e| e.number) == incoming.number {
        // Only the version, the tail or a deletion of a record without a number: the verdict
        // reads numbers alone, so only the mirror is written.
        store.commit(batch).await?;
        return Ok(None);
    }
    let numbers: Vec<u32> = mirror.values().filter_map(|e| e.number).collect();
    let outcome = pass::record_evaluation(
        name,
        (kind, range),
        &numbers,
        store,
        batch,
        settings,
        clock.now(),
    )
    .await?;
    Ok(Some(outcome))
}

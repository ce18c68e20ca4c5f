//! Applies one callback: the record goes into the shop's mirror (a delete removes it), the kind's
//! verdict is re-evaluated from the mirror and the stored history, and both are recorded in one
//! flushed batch, as a pass records them (`crate::pass::record_evaluation`), with a changed
//! verdict logged as `check.verdict`.
//!
//! Invariants: no Tripletex request; a callback for a shop or kind that is off changes nothing,
//! and so does one for a kind no pass has read in full yet (a verdict from callbacks alone would
//! vouch for numbers nobody read); one that changes nothing in the mirror records nothing. The caller runs it on the shop's own
//! task, never beside a pass of the same shop: both rewrite the shop's mirror of the kind.

use std::collections::HashMap;

use super::{Callback, Change};
use crate::checks::CheckOutcome;
use crate::checks::kinds::Entry;
use crate::clock::SharedClock;
use crate::config::ShopConfig;
use crate::pass::{self, PassError, PassSettings};
use crate::store::{Store, StoreError};

/// Applies `callback` to `shop` (whose name it carries); the new outcome, or `None` when nothing
/// was recorded.
pub async fn apply(
    callback: &Callback,
    shop: &ShopConfig,
    store: &Store,
    settings: &PassSettings,
    clock: &SharedClock,
) -> Result<Option<CheckOutcome>, PassError> {
    let kind = callback.kind;
    let Some(range) = shop.checks[kind].filter(|_| shop.enabled && shop.name == callback.shop)
    else {
        return Ok(None);
    };
    let name = shop.name.as_str();
    if store.cursor(name)?.of(kind).full.is_none() {
        return Ok(None);
    }
    let mut mirror: HashMap<i64, Entry> = match store.mirror(name, kind) {
        Ok(entries) => entries.into_iter().collect(),
        // Broken records (logged as store.corrupt): the next pass reads the kind in full.
        Err(StoreError::MirrorTruncated { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let changed = match &callback.change {
        Change::Upsert(record) => mirror.insert(record.id, record.entry) != Some(record.entry),
        Change::Delete(id) => mirror.remove(id).is_some(),
    };
    if !changed {
        return Ok(None);
    }
    let mut batch = store.batch();
    batch.put_mirror(name, kind, &mirror);
    let numbers: Vec<u32> = mirror.values().map(|e| e.number).collect();
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

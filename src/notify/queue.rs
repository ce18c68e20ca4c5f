//! Queueing: a message goes into the outbox in the batch that records what it reports, so a
//! change recorded is a message queued (and kill -9 loses neither).
//!
//! Invariants: a shop's messages form one group (delivered in order); the integration's own
//! (`consumer_token.*`) form the group `""`. The outbox holds at most `notify.max_pending`
//! messages: past it, a `check.verdict` replaces the pending one of the same shop and check
//! (only the latest verdict matters to a shop owner; the survivor keeps the first `was` and
//! counts what it replaced in `coalesced`), and any other message makes room by moving the
//! oldest pending one to the dead (logged, `notify.dead`).

use jiff::Timestamp;
use serde_json::Value;

use super::message::{Kind, Message};
use crate::store::{Batch, OutboxRecord, Store, StoreError};

/// Whether messages are queued, and the outbox's bound: `None` while `[notify]` is off, so
/// nothing piles up for a platform nobody configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queueing {
    pub max_pending: u64,
}

/// Queues `message` into `batch` (pending once it is committed).
pub fn queue(
    store: &Store,
    batch: &mut Batch,
    message: Message,
    queueing: Queueing,
) -> Result<(), StoreError> {
    let group = message
        .data
        .get("shop")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let coalesce = (message.kind == Kind::CheckVerdict.as_str()).then(|| {
        let check = message.data.get("check").and_then(Value::as_str);
        format!("{group}/{}", check.unwrap_or_default())
    });
    let mut record = OutboxRecord::new(
        message.id,
        &message.kind,
        message.timestamp,
        &group,
        coalesce,
        message.data,
    );
    if store.outbox_pending_count() >= queueing.max_pending {
        make_room(store, batch, &mut record, queueing.max_pending)?;
    }
    store.outbox_queue(batch, &record)
}

/// The outbox is full: merge `record` with its key's pending message, or drop the oldest.
fn make_room(
    store: &Store,
    batch: &mut Batch,
    record: &mut OutboxRecord,
    limit: u64,
) -> Result<(), StoreError> {
    let older = match &record.coalesce {
        Some(key) => store.outbox_latest(key)?,
        None => None,
    };
    if let Some(older) = older {
        batch.outbox_remove(&older);
        let merged = older
            .record
            .data
            .get("coalesced")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        if let (Some(data), Some(was)) = (record.data.as_object_mut(), older.record.data.get("was"))
        {
            data.insert("was".into(), was.clone());
            data.insert("coalesced".into(), merged.into());
        }
        tracing::debug!(event = "notify.coalesced", shop = %record.group, merged, "the outbox is full: an older verdict message merged into this one");
        return Ok(());
    }
    let Some(oldest) = store.outbox_pending().next().transpose()? else {
        return Ok(());
    };
    let reason = format!(
        "the outbox was full ({limit} pending, notify.max_pending) and a newer message needed the room"
    );
    store.outbox_kill(batch, &oldest, &reason, Timestamp::now())?;
    tracing::error!(
        event = "notify.dead",
        count = 1,
        id = %oldest.record.id,
        kind = %oldest.record.kind,
        shop = %oldest.record.group,
        reason,
        "a notification will not be delivered"
    );
    Ok(())
}

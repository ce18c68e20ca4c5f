//! A commit's writes: each record type's key and encoding, gathered until
//! [`Store::commit`](super::Store::commit) applies them. A shop's records are packed (mirrors,
//! histories, cursors, and since schema 10 results and sessions: see the `*_value` modules), the
//! outbox's are JSON.
//!
//! Invariants: a key's last write in a batch wins; an outbox record is written as it is: its
//! data is what the platform is sent, `null`s included.

use serde::Serialize;

use super::{group, history_value, keys, outbox, result_value, session_value};
use crate::checks::{CheckKind, HistoryPoint};
use crate::store::{ResultRecord, SessionRecord};

/// Writes to apply together; see [`Store::commit`].
#[derive(Default)]
pub struct Batch {
    pub(super) inner: group::Writes,
    /// What it does to the outbox's counts (see `outbox`).
    pub(super) outbox: outbox::OutboxChange,
}

impl Batch {
    /// Packed (since schema 10, see `session_value`).
    pub fn put_session(&mut self, shop: &str, record: &SessionRecord) {
        let key = keys::session(shop).into_bytes();
        self.inner.insert(key, session_value::pack(record));
    }

    /// Packed (since schema 10, see `result_value`).
    pub fn put_result(&mut self, shop: &str, kind: CheckKind, record: &ResultRecord) {
        let key = keys::result(shop, kind).into_bytes();
        self.inner.insert(key, result_value::pack(record));
    }

    /// Removes the time record schemas 3 to 5 kept for `shop`'s `kind`, for a commit whose cursor
    /// holds the kind's time (see the module doc); nothing when there is none.
    pub fn remove_old_checked(&mut self, shop: &str, kind: CheckKind) {
        self.inner.remove(keys::checked(shop, kind).into_bytes());
    }

    /// Replaces one check's whole history with `points` (oldest first); none removes it.
    pub fn put_history(&mut self, shop: &str, kind: CheckKind, points: &[HistoryPoint]) {
        let key = keys::history(shop, kind).into_bytes();
        if points.is_empty() {
            self.inner.remove(key);
        } else {
            self.inner.insert(key, history_value::pack(points));
        }
    }

    pub(super) fn put_json(&mut self, key: Vec<u8>, value: &impl Serialize) {
        let bytes = serde_json::to_vec(value).expect("records serialize");
        self.inner.insert(key, bytes);
    }
}

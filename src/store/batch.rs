//! A commit's writes: each record type's key and encoding (JSON, but for the mirrors and the
//! histories, see `mirror_value` and `history_value`), gathered until [`Store::commit`](super::Store::commit) applies them.
//!
//! Invariants: a key's last write in a batch wins; a shop's JSON records (session, result)
//! leave out their fields that hold nothing (since schema 7; see [`Batch::put_lean_json`]); an
//! outbox record is written as it is: its data is what the platform is sent, `null`s included.

use serde::Serialize;

use super::{group, history_value, keys, outbox};
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
    pub fn put_session(&mut self, shop: &str, record: &SessionRecord) {
        self.put_lean_json(keys::session(shop).into_bytes(), record);
    }

    pub fn put_result(&mut self, shop: &str, kind: CheckKind, record: &ResultRecord) {
        self.put_lean_json(keys::result(shop, kind).into_bytes(), record);
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

    /// A shop's record as JSON without the fields that hold nothing (`null`, `[]`), since schema
    /// 7: every field of these records that can be `null` or empty takes its default when
    /// missing (see `records`), so they read back the same, in fewer bytes (a result's evidence ~150 fewer). Through
    /// `serde_json::Value`, which these records can afford: they are written when they change,
    /// not every pass (the cursor, which is, leaves out its empty fields itself).
    fn put_lean_json(&mut self, key: Vec<u8>, value: &impl Serialize) {
        let mut tree = serde_json::to_value(value).expect("records serialize");
        leave_out_nothing(&mut tree);
        let bytes = serde_json::to_vec(&tree).expect("records serialize");
        self.inner.insert(key, bytes);
    }
}

/// Removes every object field of `tree` that is `null` or `[]`, at any depth.
fn leave_out_nothing(tree: &mut serde_json::Value) {
    use serde_json::Value;
    match tree {
        Value::Object(fields) => {
            fields.retain(|_, v| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)));
            fields.values_mut().for_each(leave_out_nothing);
        }
        Value::Array(items) => items.iter_mut().for_each(leave_out_nothing),
        _ => {}
    }
}

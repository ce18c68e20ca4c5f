use serde_json::json;

use super::*;
use crate::store::Role;

fn record(n: u32, group: &str) -> OutboxRecord {
    OutboxRecord::new(
        format!("msg_{n}"),
        "check.verdict",
        "2026-12-06T06:00:00Z".parse().unwrap(),
        group,
        Some(format!("{group}/customer_numbers")),
        json!({"n": n}),
    )
}

fn ids(store: &Store) -> Vec<String> {
    store
        .outbox_pending()
        .map(|p| p.unwrap().record.id)
        .collect()
}

#[tokio::test]
async fn queued_messages_are_pending_once_committed_oldest_first_and_counted_again_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::Daemon).unwrap();
    let mut batch = store.batch();
    for n in 0..3 {
        store.outbox_queue(&mut batch, &record(n, "acme")).unwrap();
    }
    assert_eq!(store.outbox_pending_count(), 0, "not before the commit");
    assert!(ids(&store).is_empty());
    store.commit(batch).await.unwrap();
    assert_eq!(store.outbox_pending_count(), 3);
    assert_eq!(ids(&store), ["msg_0", "msg_1", "msg_2"]);
    // The commit woke the delivery task (the permit waits for it).
    tokio::time::timeout(std::time::Duration::from_secs(5), store.outbox_queued())
        .await
        .unwrap();
    let latest = store
        .outbox_latest("acme/customer_numbers")
        .unwrap()
        .unwrap();
    assert_eq!(latest.record.id, "msg_2");
    drop(store);

    let store = Store::open(dir.path(), Role::Daemon).unwrap();
    assert_eq!(store.outbox_pending_count(), 3);
    let first = store.outbox_pending().next().unwrap().unwrap();
    let mut batch = store.batch();
    batch.outbox_remove(&first);
    store.commit(batch).await.unwrap();
    assert_eq!(ids(&store), ["msg_1", "msg_2"]);
    assert_eq!(store.outbox_pending_count(), 2);
    // Queued after a reopen: still after everything before it.
    let mut batch = store.batch();
    store.outbox_queue(&mut batch, &record(9, "bike")).unwrap();
    store.commit(batch).await.unwrap();
    assert_eq!(ids(&store), ["msg_1", "msg_2", "msg_9"]);
}

#[tokio::test]
async fn the_dead_are_kept_newest_first_up_to_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::Daemon).unwrap();
    let at: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
    let total = DEAD_KEPT as u32 + 3;
    for chunk in (0..total).collect::<Vec<_>>().chunks(2_000) {
        let mut batch = store.batch();
        for &n in chunk {
            store.outbox_queue(&mut batch, &record(n, "acme")).unwrap();
        }
        store.commit(batch).await.unwrap();
        let pending: Vec<Pending> = store.outbox_pending().map(Result::unwrap).collect();
        let mut batch = store.batch();
        for p in &pending {
            store.outbox_kill(&mut batch, p, "too old", at).unwrap();
        }
        store.commit(batch).await.unwrap();
    }
    assert_eq!(store.outbox_pending_count(), 0);
    assert_eq!(store.outbox_dead_kept(), DEAD_KEPT);
    let dead = store.outbox_dead(2).unwrap();
    assert_eq!(dead[0].1.message.id, format!("msg_{}", total - 1));
    assert_eq!(dead[0].1.reason, "too old");
    let all = store.outbox_dead(usize::MAX).unwrap();
    assert_eq!(all.len() as u64, DEAD_KEPT);
    assert_eq!(
        all.last().unwrap().1.message.id,
        "msg_3",
        "the 3 oldest went"
    );
}

#[test]
fn records_read_older_and_newer_shapes() {
    // A newer release's record: an unknown field, a type this build does not know.
    let newer = br#"{"v":7,"id":"msg_x","type":"shop.renamed","timestamp":"2026-12-06T06:00:00Z","data":{},"priority":3}"#;
    let read: OutboxRecord = serde_json::from_slice(newer).unwrap();
    assert_eq!(read.kind, "shop.renamed");
    assert_eq!(read.group, "");
    assert_eq!(read.coalesce, None);
    // The smallest record: what every release writes.
    let oldest = br#"{"id":"msg_y","type":"test","timestamp":"2026-12-06T06:00:00Z","data":null}"#;
    let read: OutboxRecord = serde_json::from_slice(oldest).unwrap();
    assert_eq!(read.v, 0);
}

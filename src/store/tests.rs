use super::*;
use crate::checks::{self, CheckKind, Verdict};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn a_second_opener_fails_at_once_naming_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path(), Role::Daemon).unwrap();
    let err = Store::open(dir.path(), Role::OneShot).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "another tripletex-sync is running on {}",
            dir.path().display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("daemon pid {}", std::process::id())),
        "{text}"
    );
    assert_eq!(
        read_holder(dir.path()),
        Some((Role::Daemon, std::process::id()))
    );
}

#[test]
fn the_lock_is_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Role::OneShot).unwrap());
    Store::open(dir.path(), Role::OneShot).unwrap();
}

#[tokio::test]
async fn committed_records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let now = ts("2026-11-29T08:00:00Z");
    let outcome = checks::could_not_run(CheckKind::InvoiceNumbers, "Tripletex unavailable");
    let record = ResultRecord::next(None, outcome, now);
    let session = SessionRecord {
        state: SessionState::Valid,
        minted_at: Some(now),
        expires_at: Some(ts("2026-12-05T23:00:00Z")),
        company_id: Some(1001),
        employee_id: Some(7),
        detail: None,
    };
    {
        let store = Store::open(dir.path(), Role::Daemon).unwrap();
        let mut batch = store.batch();
        batch.put_result("acme", CheckKind::InvoiceNumbers, &record);
        batch.put_history(
            "acme",
            CheckKind::InvoiceNumbers,
            &[HistoryPoint {
                at: now,
                shop_high: Some(6100),
            }],
        );
        batch.put_session("acme", &session);
        store.commit(batch).await.unwrap();
    }
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    assert_eq!(
        store.result("acme", CheckKind::InvoiceNumbers).unwrap(),
        Some(record)
    );
    assert_eq!(store.session("acme").unwrap(), Some(session));
    assert_eq!(
        store
            .history("acme", CheckKind::InvoiceNumbers)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.result("acme", CheckKind::CustomerNumbers).unwrap(),
        None
    );
}

/// A commit of one write skips sled's batch (see `group`), a removal too, and a batch's last
/// write of a key is the one kept. (Dropping the store flushes; what a kill leaves after a
/// commit returned is tests/crash.rs's.)
#[tokio::test]
async fn one_write_commits_survive_reopening_and_a_keys_last_write_wins() {
    let dir = tempfile::tempdir().unwrap();
    let session = |detail: &str| SessionRecord {
        detail: Some(detail.to_owned()),
        ..SessionRecord::default()
    };
    {
        let store = Store::open(dir.path(), Role::Daemon).unwrap();
        for shop in ["acme", "bolt"] {
            let mut batch = store.batch();
            batch.put_session(shop, &session("first"));
            store.commit(batch).await.unwrap();
        }
        let mut batch = store.batch();
        batch.put_session("acme", &session("second"));
        batch.put_session("acme", &session("third"));
        store.commit(batch).await.unwrap();
        let mut batch = store.batch();
        batch
            .inner
            .remove(super::keys::session("bolt").into_bytes());
        store.commit(batch).await.unwrap();
    }
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    assert_eq!(store.session("acme").unwrap(), Some(session("third")));
    assert_eq!(store.session("bolt").unwrap(), None);
}

/// A commit whose writes are applied each on its own (a stop's `revoked` sessions, many shops'
/// records) records every one of them, removals too.
#[tokio::test]
async fn writes_committed_each_on_their_own_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let revoked = SessionRecord {
        state: SessionState::Revoked,
        ..SessionRecord::default()
    };
    {
        let store = Store::open(dir.path(), Role::Daemon).unwrap();
        let mut batch = store.batch();
        batch.put_session("gone", &revoked);
        store.commit(batch).await.unwrap();
        let mut batch = store.batch();
        for i in 0..100 {
            batch.put_session(&format!("shop{i}"), &revoked);
        }
        batch
            .inner
            .remove(super::keys::session("gone").into_bytes());
        store.commit_each(batch).await.unwrap();
    }
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    for i in 0..100 {
        assert_eq!(
            store.session(&format!("shop{i}")).unwrap().as_ref(),
            Some(&revoked)
        );
    }
    assert_eq!(store.session("gone").unwrap(), None);
}

/// Every record of a shop is packed (none JSON since schema 10) and reads back the same.
#[tokio::test]
async fn a_shops_records_are_packed_and_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    let kind = CheckKind::InvoiceNumbers;
    let now = ts("2026-11-29T08:00:00Z");
    let result = ResultRecord::next(None, checks::not_yet_checked(kind), now);
    let session = SessionRecord {
        state: SessionState::KeyRejected,
        ..SessionRecord::default()
    };
    let point = checks::HistoryPoint {
        at: now,
        shop_high: None,
    };
    let mut batch = store.batch();
    batch.put_result("acme", kind, &result);
    batch.put_session("acme", &session);
    batch.put_history("acme", kind, &[point]);
    store.commit(batch).await.unwrap();
    let shop_records: Vec<_> = store
        .dump()
        .into_iter()
        .filter(|(k, _)| k.starts_with("shop/"))
        .collect();
    assert_eq!(shop_records.len(), 3);
    for (key, value) in shop_records {
        assert!(value[0] >= 0xA0, "{key}: {value:?}");
    }
    assert_eq!(store.result("acme", kind).unwrap(), Some(result));
    assert_eq!(store.session("acme").unwrap(), Some(session));
    assert_eq!(store.history("acme", kind).unwrap(), [point]);
}

#[tokio::test]
async fn an_unchanged_outcome_rewrites_the_cursor_and_not_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    let kind = CheckKind::InvoiceNumbers;
    let first = ts("2026-11-29T08:00:00Z");
    let outcome = checks::could_not_run(kind, "Tripletex unavailable");
    let record = ResultRecord::next(None, outcome.clone(), first);
    let mut batch = store.batch();
    batch.put_result("acme", kind, &record);
    store.commit(batch).await.unwrap();
    let key = super::keys::result("acme", kind);
    let stored = store.db.get(key.as_bytes()).unwrap().unwrap();

    // An unchanged outcome: only the cursor is written, the result keeps its bytes.
    let later = ts("2026-11-29T09:00:00Z");
    let again = ResultRecord::next(Some(&record), outcome, later);
    assert!(record.same_apart_from_checked_at(&again));
    let mut cursor = SyncCursor::default();
    cursor.of_mut(kind).checked = Some(later);
    let mut batch = store.batch();
    batch.put_cursor("acme", &cursor);
    store.commit(batch).await.unwrap();
    assert_eq!(store.result("acme", kind).unwrap(), Some(again.clone()));
    assert_eq!(
        store.result_with("acme", kind, &cursor).unwrap(),
        Some(again)
    );
    assert_eq!(store.db.get(key.as_bytes()).unwrap().unwrap(), stored);
}

/// Schemas 3 to 5 kept a check's time as a record of its own: read while the cursor has no time
/// for the kind, and an unreadable one costs only the time.
#[tokio::test]
async fn a_time_record_of_schema_5_is_read_until_the_cursor_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    let kind = CheckKind::CustomerNumbers;
    let record = ResultRecord::next(
        None,
        checks::not_yet_checked(kind),
        ts("2026-11-29T08:00:00Z"),
    );
    let mut batch = store.batch();
    batch.put_result("acme", kind, &record);
    store.commit(batch).await.unwrap();
    let old = super::keys::checked("acme", kind);
    store
        .db
        .insert(&old, br#""2026-11-29T09:00:00Z""#.as_slice())
        .unwrap();
    let read = |store: &Store| store.result("acme", kind).unwrap().unwrap().checked_at;
    assert_eq!(read(&store), ts("2026-11-29T09:00:00Z"));
    store.db.insert(&old, b"not json".as_slice()).unwrap();
    assert_eq!(read(&store), record.checked_at);

    let mut cursor = SyncCursor::default();
    cursor.of_mut(kind).checked = Some(ts("2026-11-29T10:00:00Z"));
    let mut batch = store.batch();
    batch.put_cursor("acme", &cursor);
    batch.remove_old_checked("acme", kind);
    store.commit(batch).await.unwrap();
    assert_eq!(read(&store), ts("2026-11-29T10:00:00Z"));
    assert!(!store.db.contains_key(&old).unwrap());
}

/// A check's history is one value (schema 8): it reads back oldest first, a shop whose name is
/// a prefix of another's keeps its own, the newest few read alone, and an unreadable one reads as
/// none (the check's next point replaces it).
#[tokio::test]
async fn a_history_is_one_value_read_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    let kind = CheckKind::CustomerNumbers;
    let points: Vec<_> = [(1, 10), (2, 20), (3, 30)]
        .into_iter()
        .map(|(day, high)| HistoryPoint {
            at: ts(&format!("2026-11-0{day}T00:00:00Z")),
            shop_high: Some(high),
        })
        .collect();
    let other = HistoryPoint {
        at: ts("2026-11-01T00:00:00Z"),
        shop_high: None,
    };
    let mut batch = store.batch();
    batch.put_history("acme", kind, &points);
    batch.put_history("acm", kind, &[other]);
    store.commit(batch).await.unwrap();
    assert_eq!(store.history("acme", kind).unwrap(), points);
    assert_eq!(store.history("acm", kind).unwrap(), [other]);
    assert_eq!(store.recent_history("acme", kind, 2).unwrap(), points[1..]);
    assert_eq!(store.recent_history("acme", kind, 9).unwrap(), points);
    let keys: Vec<_> = store.dump().into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&"shop/acme/history/customer_numbers".to_owned()),
        "{keys:?}"
    );

    store
        .db
        .insert("shop/acme/history/customer_numbers", &b"{}"[..])
        .unwrap();
    assert_eq!(store.history("acme", kind).unwrap(), []);
    let mut batch = store.batch();
    batch.put_history("acme", kind, &[]);
    store.commit(batch).await.unwrap();
    assert!(
        !store
            .dump()
            .iter()
            .any(|(k, _)| k.starts_with("shop/acme/history"))
    );
}

#[test]
fn since_carries_over_while_the_verdict_holds() {
    let t1 = ts("2026-11-01T00:00:00Z");
    let t2 = ts("2026-11-02T00:00:00Z");
    let kind = CheckKind::CustomerNumbers;
    let first = ResultRecord::next(None, checks::could_not_run(kind, "down"), t1);
    let same = ResultRecord::next(Some(&first), checks::could_not_run(kind, "still down"), t2);
    assert_eq!((same.since, same.checked_at), (t1, t2));
    let changed = ResultRecord::next(Some(&same), checks::not_yet_checked(kind), t2);
    assert_eq!(changed.since, t2);
    assert_eq!(changed.verdict(), Verdict::Unknown);
}

#[test]
fn only_the_owner_of_the_state_dir_may_open_it() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot hand the folder to another user; skipping");
        return;
    }
    std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
    let err = Store::open(dir.path(), Role::OneShot).unwrap_err();
    assert!(
        matches!(err, StoreError::NotOwner { owner: 65534, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("sudo -u tripletex-sync"), "{err}");
    assert!(!dir.path().join(DB_DIR).exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_commits_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path(), Role::OneShot).unwrap());
    let now = ts("2026-11-29T08:00:00Z");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.spawn(async move {
            let shop = format!("shop{i}");
            let mut batch = store.batch();
            let outcome = checks::not_yet_checked(CheckKind::CustomerNumbers);
            batch.put_result(
                &shop,
                CheckKind::CustomerNumbers,
                &ResultRecord::next(None, outcome, now),
            );
            store.commit(batch).await
        });
    }
    let all = tokio::time::timeout(std::time::Duration::from_secs(30), tasks.join_all())
        .await
        .expect("concurrent commits must not wait on each other forever");
    assert!(all.iter().all(Result::is_ok));
    assert!(
        store
            .result("shop63", CheckKind::CustomerNumbers)
            .unwrap()
            .is_some()
    );
}

impl Store {
    /// Every key (as text) and value the database holds, in key order.
    pub(crate) fn dump(&self) -> Vec<(String, Vec<u8>)> {
        self.db
            .iter()
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (String::from_utf8_lossy(&k).into_owned(), v.to_vec())
            })
            .collect()
    }
}

/// A schema 8 database opens as 9 with nothing rewritten but the version (no history is gathered
/// again): its JSON cursor reads as it did, and the next commit writes it packed.
#[tokio::test]
async fn a_schema_8_database_opens_as_this_schema_and_its_json_cursor_reads() {
    let dir = tempfile::tempdir().unwrap();
    let json = br#"{"customers_full":"2026-03-01T00:00:00Z","invoice_digest":"d1"}"#;
    let history = history_value::pack(&[HistoryPoint {
        at: ts("2026-03-01T00:00:00Z"),
        shop_high: Some(5),
    }]);
    let before = {
        let db = sled::Config::new()
            .path(dir.path().join(DB_DIR))
            .open()
            .unwrap();
        db.insert("meta/schema_version", &8u32.to_be_bytes())
            .unwrap();
        db.insert("shop/acme/cursor", json.as_slice()).unwrap();
        db.insert("shop/acme/history/customer_numbers", history)
            .unwrap();
        db.flush().unwrap();
        db.iter().collect::<Result<Vec<_>, _>>().unwrap()
    };
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    let after: Vec<_> = store.db.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(after.len(), before.len());
    for ((key, was), (_, is)) in before.iter().zip(&after) {
        if &**key == b"meta/schema_version" {
            assert_eq!(&**is, &SCHEMA_VERSION.to_be_bytes());
        } else {
            assert_eq!(was, is, "{}", String::from_utf8_lossy(key));
        }
    }
    let cursor = store.cursor("acme").unwrap();
    let kind = CheckKind::CustomerNumbers;
    assert_eq!(cursor.of(kind).full, Some(ts("2026-03-01T00:00:00Z")));
    let mut batch = store.batch();
    batch.put_cursor("acme", &cursor);
    store.commit(batch).await.unwrap();
    let written = store.db.get("shop/acme/cursor").unwrap().unwrap();
    assert_eq!(written[0], cursor_value::PACKED);
    assert_eq!(store.cursor("acme").unwrap(), cursor);
}

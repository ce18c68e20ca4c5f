//! Tests of the schema's migrations (`schema.rs`): each step, cut short and resumed.

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
fn schema_1_loses_its_mirrors_and_cursors_and_keeps_everything_else() {
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
        db.insert("result/acme/customer_numbers", br#"{}"#.as_slice())
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
        ["meta/schema_version", "shop/acme/result/customer_numbers"]
    );
    assert_eq!(version(&db), Some(SCHEMA_VERSION));
}

/// Schema 4's `{type}/{shop}` keys of two shops, with values a schema 4 release wrote.
fn schema_4(db: &sled::Db) -> Vec<(String, Vec<u8>)> {
    let mut history = b"history/acme/invoice_numbers/".to_vec();
    history.extend_from_slice(&1_800_000_000_000u64.to_be_bytes());
    let records: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"session/acme".to_vec(), br#"{"state":"valid"}"#.to_vec()),
        (b"session/bolt".to_vec(), br#"{"state":"key_rejected"}"#.to_vec()),
        (b"cursor/acme".to_vec(), br#"{"invoice_digest":"d1"}"#.to_vec()),
        (b"mirror/acme/invoices".to_vec(), vec![7; 20]),
        (
            b"result/bolt/customer_numbers".to_vec(),
            br#"{"outcome":{"kind":"customer_numbers","verdict":"ok","summary":"s"},"checked_at":"2026-01-01T00:00:00Z"}"#.to_vec(),
        ),
        (b"result/bolt/customer_numbers/checked".to_vec(), br#""2026-02-01T00:00:00Z""#.to_vec()),
        (history, br#"{"at":"2027-01-15T08:00:00Z","verdict":"ok"}"#.to_vec()),
        (b"outbox/pending/x".to_vec(), b"message".to_vec()),
    ];
    db.insert(KEY, &4u32.to_be_bytes()).unwrap();
    for (k, v) in &records {
        db.insert(k.as_slice(), v.as_slice()).unwrap();
    }
    db.flush().unwrap();
    records
        .into_iter()
        .map(|(k, v)| {
            let k = keys::from_type_first(&k).unwrap_or(k);
            (String::from_utf8_lossy(&k).into_owned(), v)
        })
        .collect()
}

/// `records` as this schema holds them: each mirror, result and session repacked, each history point
/// (under its own key, which the caller has as lossy text) gathered into its history's one value.
fn repacked(records: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    use crate::store::{history_value, mirror_value, result_value, session_value};
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut histories: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    for (key, value) in records {
        if let Some(kind) = keys::mirror_kind(key.as_bytes()) {
            let entries = mirror_value::unpack(&value, kind.spec().tail).unwrap();
            let sorted: Vec<_> = entries.iter().map(|(id, e)| (id, e)).collect();
            out.push((key, mirror_value::pack(kind.spec().tail, &sorted)));
        } else if keys::result_kind(key.as_bytes()).is_some() {
            let record = serde_json::from_slice(&value).unwrap();
            out.push((key, result_value::pack(&record)));
        } else if keys::is_session(key.as_bytes()) {
            let record = serde_json::from_slice(&value).unwrap();
            out.push((key, session_value::pack(&record)));
        } else if let Some((shop, rest)) = key.split_once("/history/") {
            let kind = rest.split('/').next().unwrap();
            let point = serde_json::from_slice(&value).unwrap();
            histories
                .entry(format!("{shop}/history/{kind}"))
                .or_default()
                .push(point);
        } else {
            out.push((key, value));
        }
    }
    out.extend(
        histories
            .into_iter()
            .map(|(k, p)| (k, history_value::pack(&p))),
    );
    out
}

fn records(db: &sled::Db) -> Vec<(String, Vec<u8>)> {
    db.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (String::from_utf8_lossy(&k).into_owned(), v.to_vec())
        })
        .filter(|(k, _)| !k.starts_with("meta/"))
        .collect()
}

#[test]
fn schema_4_moves_every_shops_records_under_the_shop_and_repacks_its_mirrors() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = repacked(schema_4(&raw(dir.path())));
    want.sort();
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    assert_eq!(records(&store.db), want);
    assert_eq!(version(&store.db), Some(SCHEMA_VERSION));
    assert!(!store.db.contains_key(MOVING).unwrap());
    // What moved is where this build reads.
    let kind = crate::checks::CheckKind::CustomerNumbers;
    let result = store.result("bolt", kind).unwrap().unwrap();
    assert_eq!(result.checked_at.to_string(), "2026-02-01T00:00:00Z");
    assert!(store.session("acme").unwrap().is_some());
    let invoices = crate::checks::CheckKind::InvoiceNumbers;
    assert_eq!(
        store.cursor("acme").unwrap().of(invoices).digest.as_deref(),
        Some("d1")
    );
    assert_eq!(store.history("acme", invoices).unwrap().len(), 1);
}

#[test]
fn a_move_cut_short_resumes_at_the_next_open_and_an_older_release_refuses_it_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = repacked(schema_4(&raw(dir.path())));
    want.sort();
    {
        // What a crash after the first batch of two keys leaves behind.
        let db = raw(dir.path());
        mark_upgrade(&db, 4, &super::super::sled_at(dir.path())).unwrap();
        let first: Vec<_> = db
            .scan_prefix("cursor/")
            .chain(db.scan_prefix("history/"))
            .map(Result::unwrap)
            .collect();
        let mut batch = sled::Batch::default();
        for (k, v) in first {
            batch.insert(keys::from_type_first(&k).unwrap(), v);
            batch.remove(k);
        }
        db.apply_batch(batch).unwrap();
        db.flush().unwrap();
        assert!(version(&db).unwrap() > 4, "a schema 4 release refuses it");
    }
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    assert_eq!(records(&store.db), want);
    assert!(!store.db.contains_key(MOVING).unwrap());
    assert!(!store.db.contains_key(REPACKING).unwrap());
}

/// Cut short right after the upgrade's first batch (nothing moved or repacked yet): the
/// next open does all of it.
#[test]
fn an_upgrade_cut_short_after_its_first_batch_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = repacked(schema_4(&raw(dir.path())));
    want.sort();
    {
        let db = raw(dir.path());
        mark_upgrade(&db, 4, &super::super::sled_at(dir.path())).unwrap();
        db.flush().unwrap();
        assert_eq!(
            version(&db),
            Some(SCHEMA_VERSION),
            "an older release refuses it"
        );
    }
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    assert_eq!(records(&store.db), want);
    assert!(!store.db.contains_key(MOVING).unwrap());
    assert!(!store.db.contains_key(REPACKING).unwrap());
}

#[test]
fn a_move_in_small_batches_moves_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = raw(dir.path());
    let mut want = schema_4(&db);
    want.sort();
    let mut reported = Vec::new();
    move_under_shops(&db, 1, &super::super::sled_at(dir.path()), &mut |n| {
        reported.push(n)
    })
    .unwrap();
    assert_eq!(records(&db), want);
    // After each batch: one key each, then an empty batch per record type.
    assert_eq!(reported.last(), Some(&(want.len() - 1)), "{reported:?}");
    assert!(reported.is_sorted(), "{reported:?}");
    assert!(!db.contains_key(MOVING).unwrap());
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
        serde_json::from_str(r#"{"state":"suspended","minted_at":null,"region":"eu"}"#).unwrap();
    assert_eq!(session.state, SessionState::Unknown);
    let evidence: Evidence = serde_json::from_str(r#"{"numbers_in_use":3,"gaps":[1]}"#).unwrap();
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
    std::fs::set_permissions(state.join(DB_DIR), std::fs::Permissions::from_mode(0o755)).unwrap();
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

/// Schema 9's JSON results and sessions are packed by the upgrade (each reading as it did, a
/// result's time record of schemas 3 to 5 kept); one that cannot be read is left as it is, shown
/// unreadable until its check runs again.
#[test]
fn schema_9s_results_and_sessions_are_packed_and_an_unreadable_one_is_left() {
    use crate::checks::CheckKind::{CustomerNumbers, InvoiceNumbers};
    let dir = tempfile::tempdir().unwrap();
    let checked = br#""2026-02-01T00:00:00Z""#;
    {
        let db = raw(dir.path());
        db.insert(KEY, &9u32.to_be_bytes()).unwrap();
        let json = br#"{"outcome":{"kind":"customer_numbers","verdict":"ok","summary":"s","evidence":{"numbers_in_use":3}},"checked_at":"2026-01-01T00:00:00Z","since":"2025-12-01T00:00:00Z"}"#;
        db.insert("shop/acme/result/customer_numbers", json.as_slice())
            .unwrap();
        db.insert(
            "shop/acme/result/customer_numbers/checked",
            checked.as_slice(),
        )
        .unwrap();
        db.insert("shop/acme/result/invoice_numbers", b"{not json".as_slice())
            .unwrap();
        let session = br#"{"state":"valid","expires_at":"2026-12-12T23:00:00Z","company_id":1001}"#;
        db.insert("shop/acme/session", session.as_slice()).unwrap();
        db.flush().unwrap();
    }
    let store = settled(|| Store::open(dir.path(), Role::OneShot)).unwrap();
    let raw_value = |key: &str| store.db.get(key).unwrap().unwrap().to_vec();
    let packed = raw_value("shop/acme/result/customer_numbers");
    assert_eq!(packed[0], crate::store::result_value::PACKED);
    let result = store.result("acme", CustomerNumbers).unwrap().unwrap();
    assert_eq!(result.outcome.summary, "s");
    assert_eq!(result.outcome.evidence.numbers_in_use, 3);
    assert_eq!(result.since.to_string(), "2025-12-01T00:00:00Z");
    assert_eq!(result.checked_at.to_string(), "2026-02-01T00:00:00Z");
    assert_eq!(
        raw_value("shop/acme/result/customer_numbers/checked"),
        checked
    );
    assert_eq!(raw_value("shop/acme/result/invoice_numbers"), b"{not json");
    assert!(matches!(
        store.result("acme", InvoiceNumbers),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(
        raw_value("shop/acme/session")[0],
        crate::store::session_value::PACKED
    );
    let session = store.session("acme").unwrap().unwrap();
    assert_eq!(session.state, crate::store::SessionState::Valid);
    assert_eq!(session.company_id, Some(1001));
    assert_eq!(
        session.expires_at.unwrap().to_string(),
        "2026-12-12T23:00:00Z"
    );
    assert!(!store.db.contains_key(PACKING_RECORDS).unwrap());
    assert_eq!(version(&store.db), Some(SCHEMA_VERSION));
}

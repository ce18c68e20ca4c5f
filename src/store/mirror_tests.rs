//! The mirror's and the cursor's stored bytes: round trips, the layouts of every schema that
//! still reads, and values that cannot be read.

use super::*;
use crate::checks::CheckKind;
use crate::checks::kinds::{Entry, TailValue, Version};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_mirror_round_trips_as_one_value_per_kind() {
    use jiff::civil::Date;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    let customers: std::collections::HashMap<i64, Entry> = (0..3000i64)
        .map(|id| {
            let entry = Entry {
                // 0 is "no number"; some records are deleted.
                number: (id % 11 != 0).then_some((id % 1500) as u32 + 1),
                tail: TailValue::Flag(id % 7 == 0),
                version: match id % 13 {
                    0 => Version::Deleted,
                    v => Version::Seen(v as u32 * 1000),
                },
            };
            (id * 13, entry)
        })
        .collect();
    let invoices = [
        (
            5i64,
            Entry {
                number: Some(6000),
                tail: TailValue::Date(Some(Date::constant(2026, 3, 1))),
                version: Version::Seen(i32::MAX as u32),
            },
        ),
        (
            -2,
            Entry {
                number: Some(6001),
                tail: TailValue::Date(None),
                version: Version::Seen(0),
            },
        ),
    ];
    let (c, i) = (CheckKind::CustomerNumbers, CheckKind::InvoiceNumbers);
    let mut batch = store.batch();
    batch.put_mirror("acme", c, &customers);
    batch.put_mirror("acme", i, invoices.iter().map(|(id, e)| (id, e)));
    store.commit(batch).await.unwrap();
    let read = store.mirror("acme", c).unwrap();
    assert_eq!(read.len(), 3000);
    assert!(read.windows(2).all(|w| w[0].0 < w[1].0), "sorted by id");
    assert_eq!(
        read.into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
        customers
    );
    assert_eq!(store.mirror("acme", i).unwrap(), [invoices[1], invoices[0]]);
    assert!(store.mirror("other", c).unwrap().is_empty());
}

/// The bytes of a mirror are what schema 7 defined (and schema 4's still read), and of a cursor
/// what schema 9 defined (and the JSON of every release before it still reads).
#[tokio::test]
async fn the_mirror_and_cursor_encodings_are_unchanged() {
    use jiff::civil::Date;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    let customer = Entry {
        number: Some(0x0102_0304),
        tail: TailValue::Flag(true),
        version: Version::Seen(5),
    };
    let invoice = Entry {
        number: None,
        tail: TailValue::Date(Some(Date::constant(1970, 1, 3))),
        version: Version::Deleted,
    };
    let mut cursor = SyncCursor::default();
    cursor.of_mut(CheckKind::CustomerNumbers).full = Some(ts("2026-03-01T00:00:00Z"));
    cursor.of_mut(CheckKind::InvoiceNumbers).digest = Some("d1".into());
    let mut batch = store.batch();
    batch.put_mirror("acme", CheckKind::CustomerNumbers, [(&7i64, &customer)]);
    batch.put_mirror("acme", CheckKind::InvoiceNumbers, [(&-1i64, &invoice)]);
    batch.put_cursor("acme", &cursor);
    store.commit(batch).await.unwrap();
    let raw = |key: &str| store.db.get(key).unwrap().unwrap().to_vec();
    // Tag, count, then zigzag varints: id 7, number 0x01020304, version 5; the flag.
    assert_eq!(
        raw("shop/acme/mirror/customers"),
        [0xA7, 1, 14, 0x88, 0x8C, 0x90, 0x10, 10, 1]
    );
    // Id -1, no number, deleted (-1); the date: 1 + zigzag(2 days).
    assert_eq!(raw("shop/acme/mirror/invoices"), [0xA7, 1, 1, 0, 1, 5]);
    // Schema 4's fixed-width records still read.
    let mut fixed = (-1i64).to_be_bytes().to_vec();
    fixed.extend(0u32.to_be_bytes());
    fixed.extend((-1i32).to_be_bytes());
    fixed.extend(2i32.to_be_bytes());
    store.db.insert("shop/old/mirror/invoices", fixed).unwrap();
    let customer_bytes = [0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 4, 0, 0, 0, 5, 1];
    store
        .db
        .insert("shop/old/mirror/customers", &customer_bytes)
        .unwrap();
    assert_eq!(
        store.mirror("old", CheckKind::InvoiceNumbers).unwrap(),
        [(-1, invoice)]
    );
    assert_eq!(
        store.mirror("old", CheckKind::CustomerNumbers).unwrap(),
        [(7, customer)]
    );
    // The cursor, packed (schema 9): tag; "customers", its block of 1 + 2 bytes: `full`, its
    // seconds and nanoseconds; "invoices", `digest`, "d1".
    let mut packed = vec![0xA9, 9];
    packed.extend(b"customers");
    packed.extend([7, 1, 0x80, 0x86, 0x9C, 0x9A, 0x0D, 0]);
    packed.push(8);
    packed.extend(b"invoices");
    packed.extend([4, 8, 2, b'd', b'1']);
    assert_eq!(raw("shop/acme/cursor"), packed);
    assert_eq!(store.cursor("acme").unwrap(), cursor);
    // The JSON cursors of schemas 6 to 8 still read: with fields that hold nothing left out
    // (schema 7) or written as `null` (before it).
    let json_7 = r#"{"customers_full":"2026-03-01T00:00:00Z","invoice_digest":"d1"}"#;
    let written_before_7 = r#"{"customers_full":"2026-03-01T00:00:00Z","invoices_full":null,"customers_since":null,"invoice_window_from":null,"invoice_digest":"d1"}"#;
    for (shop, json) in [("seven", json_7), ("old", written_before_7)] {
        store
            .db
            .insert(format!("shop/{shop}/cursor"), json)
            .unwrap();
        assert_eq!(store.cursor(shop).unwrap(), cursor, "{shop}");
    }
    // A field a newer release added is skipped; a field of the wrong type makes the cursor
    // unreadable (a full resync), never half read.
    let newer =
        r#"{"customers_full":"2026-03-01T00:00:00Z","x":[{"y":null}],"invoice_digest":"d1"}"#;
    assert_eq!(serde_json::from_str::<SyncCursor>(newer).unwrap(), cursor);
    let wrong = r#"{"customers_full":"2026-03-01T00:00:00Z","invoice_digest":5}"#;
    assert!(serde_json::from_str::<SyncCursor>(wrong).is_err());
    for not_an_object in ["[]", "null", "\"cursor\""] {
        assert!(serde_json::from_str::<SyncCursor>(not_an_object).is_err());
    }
    store.db.insert("shop/wrong/cursor", wrong).unwrap();
    assert_eq!(store.cursor("wrong").unwrap(), SyncCursor::default());
    // So does a packed one cut short.
    store
        .db
        .insert("shop/cut/cursor", &packed[..packed.len() - 1])
        .unwrap();
    assert_eq!(store.cursor("cut").unwrap(), SyncCursor::default());
    // Schema 6's checks' times, from a JSON cursor, are written packed by the next commit.
    let json_6 = r#"{"customers_full":"2026-03-01T00:00:00Z","invoice_digest":"d1","invoice_numbers_checked":"2026-03-02T00:00:00Z"}"#;
    store.db.insert("shop/six/cursor", json_6).unwrap();
    let mut six = store.cursor("six").unwrap();
    assert_eq!(
        six.of(CheckKind::InvoiceNumbers).checked,
        Some(ts("2026-03-02T00:00:00Z"))
    );
    six.of_mut(CheckKind::CustomerNumbers).checked = Some(ts("2026-03-03T00:00:00Z"));
    let mut batch = store.batch();
    batch.put_cursor("six", &six);
    store.commit(batch).await.unwrap();
    assert_eq!(raw("shop/six/cursor")[0], 0xA9);
    assert_eq!(store.cursor("six").unwrap(), six);
}

#[tokio::test]
async fn a_mirror_that_is_not_whole_records_is_an_error_not_a_shorter_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::OneShot).unwrap();
    let kind = CheckKind::CustomerNumbers;
    let entries: Vec<(i64, Entry)> = (1..=3)
        .map(|id| {
            (
                id,
                Entry {
                    number: Some(id as u32),
                    tail: TailValue::Flag(false),
                    version: Version::Seen(0),
                },
            )
        })
        .collect();
    let mut batch = store.batch();
    batch.put_mirror("acme", kind, entries.iter().map(|(id, e)| (id, e)));
    store.commit(batch).await.unwrap();
    let key = "shop/acme/mirror/customers";
    let whole = store.db.get(key).unwrap().unwrap();
    store.db.insert(key, &whole[..whole.len() - 1]).unwrap();
    let err = store.mirror("acme", kind).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MirrorMalformed {
                why: Malformed::Truncated { count: 3 },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("a full resync replaces it"),
        "{err}"
    );
}

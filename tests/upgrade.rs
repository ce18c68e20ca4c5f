//! Upgrades: a database and a status.json written by an earlier release (tests/fixtures, see its
//! README) open with this code, migrate, and read back what was recorded; records of a newer
//! release (unknown fields) and unreadable ones never stop status for the other shops.

use std::path::Path;

use tripletex_sync::checks::CheckKind::{CustomerNumbers, InvoiceNumbers};
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::config::Config;
use tripletex_sync::status::StatusReport;
use tripletex_sync::store::{Role, SessionState, Store, SyncCursor};

const SHOPS: [&str; 3] = ["fjellsport", "kaffebrenneriet", "sykkelsmia"];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of `tests/fixtures/schema-1` as a state_dir, with a config naming its three shops.
fn release_1_state() -> (tempfile::TempDir, Config) {
    fixture_state("schema-1")
}

/// A copy of `tests/fixtures/{name}` as a state_dir, with a config naming its three shops.
fn fixture_state(name: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    copy_dir(&fixture, &dir.path().join("state"));
    std::fs::create_dir(dir.path().join("shops.d")).unwrap();
    for shop in SHOPS {
        std::fs::write(
            dir.path().join("shops.d").join(format!("{shop}.toml")),
            format!("employee_token_file = \"../{shop}.token\"\n"),
        )
        .unwrap();
    }
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "state_dir = \"state\"\nshops_dir = \"shops.d\"\n\n[tripletex]\n\
         base_url = \"http://127.0.0.1:9/v2\"\nconsumer_token_file = \"consumer-token\"\n\
         session_valid_days = 7\nrenew_before = \"1d\"\nrequest_timeout = \"5s\"\n\n\
         [rate_limit]\nper_second = 5\nburst = 10\nreserve = 20\nmax_concurrent_shops = 8\n\n\
         [checks]\ninterval = \"1h\"\njitter = \"0s\"\nfull_resync = \"24h\"\n",
    )
    .unwrap();
    let config = Config::load(&config).unwrap();
    (dir, config)
}

fn verdicts(report: &StatusReport) -> Vec<(String, Verdict, Verdict)> {
    report
        .shops
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.checks.get(CustomerNumbers).verdict,
                s.checks.get(InvoiceNumbers).verdict,
            )
        })
        .collect()
}

fn release_1_verdicts() -> Vec<(String, Verdict, Verdict)> {
    vec![
        ("fjellsport".into(), Verdict::Ok, Verdict::Ok),
        ("kaffebrenneriet".into(), Verdict::Conflict, Verdict::Ok),
        ("sykkelsmia".into(), Verdict::Error, Verdict::Error),
    ]
}

#[test]
fn a_release_1_database_opens_and_reads_back_its_verdicts() {
    let (_dir, config) = release_1_state();
    let store = Store::open(&config.state_dir, Role::OneShot).unwrap();
    let conflict = store
        .result("kaffebrenneriet", CheckKind::CustomerNumbers)
        .unwrap()
        .unwrap();
    assert_eq!(conflict.verdict(), Verdict::Conflict);
    assert!(
        conflict.outcome.summary.contains("10000–10042"),
        "{}",
        conflict.outcome.summary
    );
    assert_eq!(
        store.session("sykkelsmia").unwrap().unwrap().state,
        SessionState::KeyRejected
    );
    // Schema 4 keeps Tripletex's versions beside mirrored records, which release 1 did not:
    // its mirrors and cursors are gone, so each shop's next pass reads everything once.
    assert!(
        store
            .mirror("fjellsport", CustomerNumbers)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.cursor("fjellsport").unwrap(), SyncCursor::default());
    // Its history points (a key each until schema 8) come through every move, in time order.
    let histories: Vec<_> = config
        .shops
        .iter()
        .flat_map(|shop| CheckKind::ALL.map(|kind| store.history(&shop.name, kind).unwrap()))
        .collect();
    // Release 1 recorded one point a check for two of its three shops (as schema 7 read them,
    // to the millisecond).
    let lengths: Vec<_> = histories.iter().map(Vec::len).collect();
    assert_eq!(lengths, [1, 1, 1, 1, 0, 0], "{histories:?}");
    assert!(histories.iter().all(|h| h.is_sorted_by_key(|p| p.at)));
    let report = StatusReport::collect(Some(&store), &config, jiff::Timestamp::now()).unwrap();
    assert_eq!(verdicts(&report), release_1_verdicts());

    // Migrated once: reopening finds the current schema and the same records.
    drop(store);
    let store = Store::open(&config.state_dir, Role::OneShot).unwrap();
    let again = StatusReport::collect(Some(&store), &config, report.generated_at).unwrap();
    assert_eq!(again, report);
}

/// Schema 8's last build (JSON cursors and results, packed mirrors and histories) opens as this
/// schema with its records as they were: the cursors read (so the next pass is incremental, not a
/// full read), and so do its status.json and every check's result, field for field.
#[test]
fn a_schema_8_database_opens_and_reads_back_its_records() {
    opens_and_reads_back_its_records("schema-8");
}

/// Schema 9's last build (packed cursors, JSON results) likewise; its results are packed once open.
#[test]
fn a_schema_9_database_opens_and_reads_back_its_records() {
    opens_and_reads_back_its_records("schema-9");
}

fn opens_and_reads_back_its_records(fixture: &str) {
    let (_dir, config) = fixture_state(fixture);
    let store = Store::open(&config.state_dir, Role::OneShot).unwrap();
    for shop in ["fjellsport", "kaffebrenneriet"] {
        let cursor = store.cursor(shop).unwrap();
        assert!(cursor.of(CustomerNumbers).full.is_some(), "{shop}");
        assert!(cursor.of(CustomerNumbers).since.is_some(), "{shop}");
        assert!(cursor.of(InvoiceNumbers).digest.is_some(), "{shop}");
        assert!(cursor.of(InvoiceNumbers).checked.is_some(), "{shop}");
        assert!(!store.mirror(shop, CustomerNumbers).unwrap().is_empty());
        assert!(!store.mirror(shop, InvoiceNumbers).unwrap().is_empty());
    }
    let lengths: Vec<_> = SHOPS
        .iter()
        .flat_map(|shop| CheckKind::ALL.map(|kind| store.history(shop, kind).unwrap().len()))
        .collect();
    assert_eq!(lengths, [1, 1, 1, 1, 0, 0]);
    let report = StatusReport::collect(Some(&store), &config, jiff::Timestamp::now()).unwrap();
    assert_eq!(verdicts(&report), release_1_verdicts());
    let written = StatusReport::read(&config.state_dir)
        .unwrap()
        .aligned_to(&config);
    assert_eq!(verdicts(&written), release_1_verdicts());
    // What the old build wrote into status.json is what its records now read as.
    let checks = |r: &StatusReport| -> Vec<_> {
        r.shops
            .iter()
            .map(|s| serde_json::to_value(&s.checks).unwrap())
            .collect()
    };
    assert_eq!(checks(&report), checks(&written));
}

#[test]
fn a_release_1_status_json_reads() {
    let (_dir, config) = release_1_state();
    let report = StatusReport::read(&config.state_dir)
        .unwrap()
        .aligned_to(&config);
    assert_eq!(verdicts(&report), release_1_verdicts());
}

#[test]
fn newer_and_unreadable_records_never_stop_status_for_other_shops() {
    let (_dir, config) = release_1_state();
    {
        let db = sled::open(config.state_dir.join("db")).unwrap();
        // Written under schema 1's keys (opening moves them). A later release's record: a field
        // this code does not know, in the record and in its evidence, and a verdict it does not
        // know yet.
        let key = "result/fjellsport/invoice_numbers";
        let mut record: serde_json::Value =
            serde_json::from_slice(&db.get(key).unwrap().unwrap()).unwrap();
        record["reviewed_by"] = "ops".into();
        record["outcome"]["evidence"]["gaps"] = serde_json::json!([1, 2]);
        db.insert(key, serde_json::to_vec(&record).unwrap())
            .unwrap();
        let mut newer = record.clone();
        newer["outcome"]["verdict"] = "stale".into();
        db.insert(
            "result/fjellsport/customer_numbers",
            serde_json::to_vec(&newer).unwrap(),
        )
        .unwrap();
        // An earlier shape: evidence and fix missing.
        let key = "result/kaffebrenneriet/invoice_numbers";
        let mut older: serde_json::Value =
            serde_json::from_slice(&db.get(key).unwrap().unwrap()).unwrap();
        let outcome = older["outcome"].as_object_mut().unwrap();
        outcome.remove("evidence");
        outcome.remove("fix");
        db.insert(key, serde_json::to_vec(&older).unwrap()).unwrap();
        // Unreadable.
        db.insert(
            "result/kaffebrenneriet/customer_numbers",
            b"{not json".as_slice(),
        )
        .unwrap();
        db.insert("session/sykkelsmia", b"\x00\x01".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(&config.state_dir, Role::OneShot).unwrap();
    let report = StatusReport::collect(Some(&store), &config, jiff::Timestamp::now()).unwrap();
    assert_eq!(
        verdicts(&report),
        [
            ("fjellsport".into(), Verdict::Unknown, Verdict::Ok),
            ("kaffebrenneriet".into(), Verdict::Error, Verdict::Ok),
            ("sykkelsmia".into(), Verdict::Error, Verdict::Error),
        ]
    );
    let unreadable = &report.shops[1].checks.get(CustomerNumbers).summary;
    assert!(
        unreadable.contains("shop/kaffebrenneriet/result/customer_numbers is unreadable"),
        "{unreadable}"
    );
    let session = &report.shops[2].session;
    assert_eq!(session.state, SessionState::Unknown);
    assert!(
        session
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("shop/sykkelsmia/session")
    );
}

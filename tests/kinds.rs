//! Every check kind is covered by every layer (issue 11: check kinds are data). For each kind of
//! `CheckKind::ALL`: the shop file takes its `[key]` table with the kind's defaults and refuses an
//! unknown key in it; a pass against the simulator syncs it, in full and then incrementally (one
//! request), with requests to its endpoint only, each valid for the OpenAPI spec; the store keeps
//! its mirror (handing back what it was given) and its cursor; status.json carries it under its
//! key, in kind order. A kind added to the list that a layer misses fails here; the one part of
//! this test that names kinds is `seed`, the simulator's records of each.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::config::Config;
use tripletex_sync::status::StatusReport;
use tripletex_sync_fixture::daemon::Fixture;
use tripletex_sync_fixture::spec::assert_conforms;

const HOUR: Duration = Duration::from_secs(3600);
const COMPANY: i64 = 1001;
/// Records of the kind under test in the simulator, all inside the kind's default range.
const RECORDS: u32 = 5;

/// Puts `RECORDS` records of `kind` into the simulator. A new kind adds its arm here (and its
/// endpoint to the simulator).
fn seed(f: &Fixture, kind: CheckKind) {
    let first = kind.spec().defaults.shop_start;
    match kind {
        CheckKind::CustomerNumbers => f.sim.add_customers(COMPANY, first, RECORDS, false),
        CheckKind::InvoiceNumbers => {
            let today = tripletex_sync::clock::oslo_date(f.now());
            f.sim.add_invoices(COMPANY, first, RECORDS, today, RECORDS);
        }
    }
}

/// A shop file's tables: `table` for `kind`, every other kind off.
fn only(kind: CheckKind, table: &str) -> String {
    CheckKind::ALL
        .iter()
        .map(|k| {
            if *k == kind {
                format!("[{k}]\n{table}")
            } else {
                format!("[{k}]\nenabled = false\n")
            }
        })
        .collect()
}

#[tokio::test]
async fn every_kind_is_covered_by_config_sync_store_and_status() {
    for kind in CheckKind::ALL {
        let spec = kind.spec();
        let f = Fixture::new().await;
        seed(&f, kind);

        // Config: the kind's table, its defaults filled in; strict inside it.
        let token = f.add_shop("acme", COMPANY, &only(kind, "bogus = 1\n"));
        let e = Config::load(&f.config_path).unwrap_err().to_string();
        assert!(
            e.contains("acme.toml") && e.contains("bogus"),
            "{kind}: {e}"
        );
        f.add_shop_file("acme", &token, &only(kind, ""));
        let config = f.config();
        let shop = config.shop("acme").unwrap();
        for (k, range) in shop.checks.iter() {
            let want = (k == kind).then_some(k.spec().defaults);
            assert_eq!(*range, want, "{kind}: range of {k}");
        }

        // Sync: a full pass, then an idle one that costs one request; only the kind's endpoint.
        let store = f.open_store();
        let api = f.api();
        let client = f.client(&api, "acme", &CancellationToken::new());
        for pass_no in 1..=2 {
            let report = f.pass(&store, &client, pass_no).await;
            let [outcome] = &report.outcomes()[..] else {
                panic!("{kind}: one outcome expected: {report:#?}");
            };
            assert_eq!(outcome.kind, kind);
            assert_eq!(outcome.verdict, Verdict::Ok, "{kind}: {}", outcome.summary);
            assert_eq!(outcome.evidence.numbers_in_use, RECORDS, "{kind}");
            f.clock.advance(HOUR);
        }
        let reads = f.data_requests();
        let last = reads.last().expect("the sync read something").at;
        assert_eq!(reads.iter().filter(|r| r.at == last).count(), 1, "{kind}");
        for r in &reads {
            assert!(r.path.ends_with(spec.list.path), "{kind}: {}", r.path);
            let fields = r.query.iter().find(|(k, _)| k == "fields").map(|(_, v)| v);
            assert_eq!(fields.map(String::as_str), Some(spec.list.fields), "{kind}");
        }
        assert_conforms(&f.sim.request_log());

        // Store: the mirror holds every record and hands back what it is given; the cursor.
        let mirror = store.mirror("acme", kind).unwrap();
        assert_eq!(mirror.len(), RECORDS as usize, "{kind}");
        let mut batch = store.batch();
        batch.put_mirror("copy", kind, mirror.iter().map(|(id, e)| (id, e)));
        store.commit(batch).await.unwrap();
        assert_eq!(store.mirror("copy", kind).unwrap(), mirror, "{kind}");
        assert!(store.cursor("acme").unwrap().of(kind).full.is_some());

        // Status: every kind under its key, in kind order; this one checked, the others off.
        let report = StatusReport::collect(Some(&store), &config, f.now()).unwrap();
        let text = serde_json::to_string(&report).unwrap();
        let at: Vec<usize> = CheckKind::ALL
            .iter()
            .map(|k| text.find(&format!("\"{k}\":{{")).expect("every kind's key"))
            .collect();
        assert!(at.is_sorted(), "{kind}: kinds out of order in {text}");
        for (k, status) in report.shops[0].checks.iter() {
            assert_eq!(status.disabled, k != kind, "{kind}: {k}");
        }
        assert_eq!(report.shops[0].checks.get(kind).verdict, Verdict::Ok);
        report.write(&config.state_dir).unwrap();
        assert_eq!(StatusReport::read(&config.state_dir).unwrap(), report);
    }
}

//! The annotated demo world (`config/sim/demo.toml`): one healthy shop, one whose customer
//! series was never moved, one with a revoked key.

use tokio_util::sync::CancellationToken;
use tripletex_sim::{DEMO_SCENARIO, Scenario};
use tripletex_sync::checks::{Run, Verdict};
use tripletex_sync::store::SessionState;

use crate::{conforms, customers, invoices};
use tripletex_sync_fixture::daemon::{Fixture, MAIN};

#[tokio::test]
async fn the_demo_world_gives_ok_conflict_and_error() {
    let scenario = Scenario::from_toml_str(DEMO_SCENARIO).unwrap();
    let f = Fixture::with_scenario(MAIN, scenario).await;
    f.add_shop_file("fjellsport", "demo-key-fjellsport", "");
    f.add_shop_file("kaffebrenneriet", "demo-key-kaffebrenneriet", "");
    f.add_shop_file("sykkelsmia", "demo-key-sykkelsmia", "");
    let store = f.open_store();
    let api = f.api_with_consumer("demo-consumer-token");
    let cancel = CancellationToken::new();

    let client = f.client(&api, "fjellsport", &cancel);
    let fjellsport = f.pass(&store, &client, 1).await;
    let c = customers(&fjellsport);
    assert_eq!(c.verdict, Verdict::Ok, "{c:#?}");
    assert_eq!(
        c.evidence.shop_run,
        Some(Run {
            first: 1,
            last: 1200,
            count: 1200
        })
    );
    let seen = c.evidence.tripletex_run.expect("Tripletex's run is seen");
    assert_eq!(seen.first, 100_000);
    assert_eq!(seen.last, 100_039, "its inactive customers count too");
    assert!(c.evidence.foreign_runs_in_shop_range.is_empty());
    let i = invoices(&fjellsport);
    assert_eq!(i.verdict, Verdict::Ok, "{i:#?}");
    assert_eq!(
        i.evidence.shop_run,
        Some(Run {
            first: 6000,
            last: 6800,
            count: 801
        })
    );
    assert_eq!(
        i.evidence.tripletex_run,
        Some(Run {
            first: 50_000,
            last: 50_030,
            count: 31
        })
    );
    assert_eq!(fjellsport.session.state, SessionState::Valid);

    let client = f.client(&api, "kaffebrenneriet", &cancel);
    let kaffe = f.pass(&store, &client, 1).await;
    let c = customers(&kaffe);
    assert_eq!(c.verdict, Verdict::Conflict, "{c:#?}");
    assert_eq!(
        c.evidence.foreign_runs_in_shop_range,
        [Run {
            first: 10_000,
            last: 10_042,
            count: 43
        }]
    );
    assert!(c.summary.contains("10000–10042"), "{}", c.summary);
    let fix = c.fix.as_deref().unwrap_or_default();
    assert!(fix.contains("Customer › Settings"), "{fix}");
    assert_eq!(invoices(&kaffe).verdict, Verdict::Ok, "{kaffe:#?}");

    let client = f.client(&api, "sykkelsmia", &cancel);
    let sykkel = f.pass(&store, &client, 1).await;
    for o in &sykkel.outcomes() {
        assert_eq!(o.verdict, Verdict::Error, "{o:#?}");
        assert!(
            o.summary.contains("rejected the employee key"),
            "{}",
            o.summary
        );
    }
    assert_eq!(sykkel.outcomes().len(), 2);
    assert_eq!(sykkel.session.state, SessionState::KeyRejected);
    assert!(!sykkel.consumer_rejected);
    // Nothing but the refused mint was sent for it.
    let log = f.sim.request_log();
    let refused: Vec<_> = log.iter().filter(|r| r.status == 422).collect();
    assert_eq!(refused.len(), 1, "{log:#?}");
    assert!(refused[0].path.ends_with(":create"));
    assert_eq!(log.last(), Some(refused[0]));
    conforms(&f);
}

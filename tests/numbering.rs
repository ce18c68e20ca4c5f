//! Numbering sync and verdicts against the simulator (issue: numbering sync and conflict verification).

mod support;

use support::Fixture;
use tokio_util::sync::CancellationToken;
use tripletex_sync::checks::{CheckKind, Verdict};

#[tokio::test]
async fn smoke_a_healthy_shop_is_ok_and_an_idle_pass_costs_two_requests() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 500, false);
    f.sim.add_customers(1001, 100_000, 10, false);
    let store = f.open_store();
    let api = f.api();
    let client = f.client(&api, "acme", &CancellationToken::new());
    let report = f.pass(&store, &client, 1).await;
    assert!(report.outcomes.iter().all(|o| o.verdict == Verdict::Ok), "{report:#?}");
    f.sim.clear_request_log();
    f.clock.advance(std::time::Duration::from_secs(3600));
    let report = f.pass(&store, &client, 2).await;
    assert!(report.outcomes.iter().all(|o| o.verdict == Verdict::Ok), "{report:#?}");
    let data = f.data_requests();
    assert!(data.len() <= 2, "{data:#?}");
    assert_eq!(report.outcomes[0].kind, CheckKind::CustomerNumbers);
}

//! What proves a new session: whoAmI must name a positive employee and company, and with the
//! shop's `company_id` set, that company. A key of another company is refused as a rejected key
//! naming both companies (its token deleted), whether Tripletex says so with a 401 to the shop's
//! company or with a whoAmI of another one; a whoAmI without ids is a malformed answer.

use serde_json::json;
use tripletex_sim::{Fault, FaultKind};
use tripletex_sync::checks::Verdict;
use tripletex_sync::store::SessionState;
use tripletex_sync::tripletex::{KeyRefusal, TripletexError};

use crate::{CREATE, creates, hits, one_shop};
use tripletex_sync_fixture::daemon::{Fixture, MAIN};
use tripletex_sync_fixture::spec::assert_conforms;

const WHO_AM_I: &str = "/token/session/>whoAmI";

/// A whoAmI answered with `answer` (once) instead of what the simulator would say.
fn who_am_i_says(answer: serde_json::Value) -> Fault {
    Fault {
        path_prefix: Some(WHO_AM_I.into()),
        times: Some(1),
        ..Fault::always(FaultKind::Answer(answer))
    }
}

#[tokio::test]
async fn a_key_of_company_a_configured_for_company_b_is_rejected_naming_both() {
    let f = Fixture::new().await;
    f.sim.add_company(2002, "Other AS", true);
    f.add_shop("acme", 1001, "company_id = 2002\n");
    let (api, store) = (f.api(), f.open_store());
    let client = f.client(&api, "acme", &Default::default());

    let err = client.connect().await.unwrap_err();
    let TripletexError::KeyRejected(KeyRefusal::OtherCompany {
        configured, actual, ..
    }) = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*configured, *actual), (2002, 1001));
    let remedy = err.remedy().unwrap();
    assert!(
        remedy.starts_with("the key belongs to company 1001; fix company_id in the shop file (acme.toml in shops_dir) or paste the right key"),
        "{remedy}"
    );
    assert!(
        client.session_info().is_none(),
        "a refused session is not live"
    );

    // The 401 to company 2002 is explained by a whoAmI as the key's own company; the unused token
    // is then deleted from there.
    let log = f.sim.request_log();
    let who = hits(&log, "GET", WHO_AM_I);
    let statuses: Vec<u16> = who.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 200], "{who:#?}");
    assert_eq!(hits(&log, "DELETE", "/{token}")[0].status, 204);
    assert_eq!(f.sim.live_sessions(), 0, "the refused token was deleted");

    // The pass says so: the key is rejected, every check is an error naming both companies.
    let report = f.pass(&store, &client, 1).await;
    assert_eq!(report.session.state, SessionState::KeyRejected);
    let detail = report.session.detail.clone().unwrap();
    assert!(
        detail.contains("company 1001, not to the shop's company_id 2002")
            && detail.contains("the key belongs to company 1001"),
        "{detail}"
    );
    assert!(!report.outcomes().is_empty());
    for outcome in &report.outcomes() {
        assert_eq!(outcome.verdict, Verdict::Error);
        assert!(outcome.summary.contains(&detail), "{}", outcome.summary);
    }
    assert_eq!(
        creates(&f.sim.request_log()).len(),
        2,
        "one mint per attempt"
    );
    assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn a_who_am_i_naming_another_company_is_rejected() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "company_id = 1001\n");
    let client = f.client(&f.api(), "acme", &Default::default());
    f.sim.inject(who_am_i_says(
        json!({"value": {"employeeId": 10010, "companyId": 3003}}),
    ));

    let err = client.connect().await.unwrap_err();
    assert!(
        matches!(
            err,
            TripletexError::KeyRejected(KeyRefusal::OtherCompany {
                configured: 1001,
                actual: 3003,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(client.session_info().is_none());
    let log = f.sim.request_log();
    assert_eq!(hits(&log, "DELETE", "/{token}")[0].status, 204);

    // The answer was a fluke: the next attempt mints and proves a session of company 1001.
    let info = client.connect().await.unwrap();
    assert_eq!(
        (info.company_id, info.employee_id),
        (Some(1001), Some(10010))
    );
    assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn a_key_of_the_configured_company_is_accepted() {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "company_id = 1001\n");
    let client = f.client(&f.api(), "acme", &Default::default());
    let info = client.connect().await.unwrap();
    assert_eq!(info.company_id, Some(1001));
    assert_eq!(creates(&f.sim.request_log()).len(), 1);
}

#[tokio::test]
async fn a_who_am_i_without_ids_proves_nothing() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    for answer in [
        json!({"value": {}}),
        json!({"value": {"employeeId": 10010}}),
        json!({"value": {"employeeId": 10010, "companyId": 0}}),
    ] {
        f.sim.inject(who_am_i_says(answer.clone()));
        let err = client.connect().await.unwrap_err();
        let TripletexError::Malformed { path, reason } = &err else {
            panic!("{answer}: {err:?}");
        };
        assert_eq!(path, WHO_AM_I);
        assert!(reason.contains("companyId") || reason.contains("employeeId"));
        assert!(
            err.to_string()
                .starts_with("Tripletex sent an invalid answer to GET /token/session/>whoAmI: "),
            "{err}"
        );
        assert!(client.session_info().is_none(), "{answer}: not proven");
    }
    let log = f.sim.request_log();
    assert_eq!(creates(&log).len(), 3);
    assert_eq!(
        hits(&log, "DELETE", "/{token}").len(),
        3,
        "each unproven token deleted"
    );
    assert_eq!(f.sim.live_sessions(), 0);

    let info = client.connect().await.unwrap();
    assert_eq!(info.company_id, Some(1001));
    assert_eq!(hits(&f.sim.request_log(), "POST", CREATE).len(), 4);
    assert_conforms(&f.sim.request_log());
}

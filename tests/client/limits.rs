//! Sharing Tripletex's per-(consumer, employee) quota with the shop's own traffic, and shutting
//! down while the limiter holds.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tripletex_sim::LoggedRequest;
use tripletex_sync::tripletex::TripletexError;

use crate::{one_shop, ping};
use tripletex_sync_fixture::daemon::{FIXTURE_CONSUMER, MAIN};
use tripletex_sync_fixture::spec::assert_conforms;

/// The shop's own integration: same consumer and employee token, its own session, and requests
/// we can tell apart in the log (`invoiceNumber=999999`).
struct Competitor {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Competitor {
    async fn login(base: String, employee_token: &str) -> Self {
        let http = reqwest::Client::new();
        let body: Value = http
            .post(format!("{base}/token/session/:create"))
            .json(&json!({
                "consumerToken": FIXTURE_CONSUMER,
                "employeeToken": employee_token,
                "expirationDate": "2026-03-20",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = body["value"]["token"].as_str().unwrap().to_owned();
        Self { http, base, token }
    }

    /// Spends `n` requests of the shared quota, one after another.
    async fn spend(&self, n: usize) {
        for _ in 0..n {
            let status = self
                .http
                .get(format!("{}/invoice", self.base))
                .query(&[
                    ("invoiceDateFrom", "2026-01-01"),
                    ("invoiceDateTo", "2027-01-01"),
                    ("invoiceNumber", "999999"),
                ])
                .basic_auth("0", Some(&self.token))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "the competitor stays within the quota too");
        }
    }
}

fn is_competitors(r: &LoggedRequest) -> bool {
    r.query
        .iter()
        .any(|(k, v)| k == "invoiceNumber" && v == "999999")
}

/// Quota 100 per 1 s shared with a competitor that spends 50 at the start of every window; our
/// client (reserve 20) must never be the one that pushes the window below the reserve.
///
/// The competitor is made deterministic: it spends its 50 synchronously right after our first
/// request of each new window (and before we start), while our client waits. With truly
/// concurrent spending no client can keep an exact bound: between our reading `Remaining` and
/// our next request, an unseen 50 can go out, and only a 429 would tell us.
#[tokio::test]
async fn a_competitor_spending_half_the_window_never_pushes_us_below_the_reserve() {
    let (f, _api, client, token) = one_shop(MAIN).await;
    f.sim.set_rate_limit(100, Duration::from_secs(1));
    let competitor = Competitor::login(f.running.base_url(), &token).await;
    competitor.spend(50).await;
    let ours_from = 1; // log[0] is the competitor's mint

    let mut windows = 1;
    for _ in 0..90 {
        ping(&client).await.unwrap();
        let last = f.sim.request_log().last().cloned().unwrap();
        if last.rate_limit_remaining == Some(99) {
            // Our request opened a new window: the competitor spends its half now.
            windows += 1;
            competitor.spend(50).await;
        }
    }
    let log = f.sim.request_log();
    assert!(log.iter().all(|r| r.status != 429), "nobody met a 429");
    let ours: Vec<&LoggedRequest> = log[ours_from..]
        .iter()
        .filter(|r| !is_competitors(r))
        .collect();
    assert_eq!(ours.len(), 2 + 90, "mint, whoAmI and our requests");
    let lowest = ours
        .iter()
        .map(|r| r.rate_limit_remaining.expect("identified"))
        .min()
        .unwrap();
    assert_eq!(lowest, 20, "the reserve is kept, and used up to");
    assert!(windows >= 3, "{windows} windows");
    assert_eq!(client.throttled_count(), 0);
    assert_conforms(&log);
}

#[tokio::test]
async fn cancellation_ends_a_hold_at_the_reserve_promptly() {
    let (f, api, _, _) = one_shop(MAIN).await;
    let cancel = CancellationToken::new();
    let client = f.client(&api, "acme", &cancel);
    // Mint and whoAmI leave 20 of 22 in an hour-long window: exactly the reserve.
    f.sim.set_rate_limit(22, Duration::from_secs(3600));
    client.connect().await.unwrap();
    let sent = f.sim.request_log().len();

    let request = ping(&client);
    tokio::pin!(request);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut request)
            .await
            .is_err(),
        "the limiter holds at the reserve"
    );
    cancel.cancel();
    // The hold would last an hour: returning within seconds is prompt.
    let err = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("returns promptly once cancelled")
        .unwrap_err();
    assert!(matches!(err, TripletexError::Cancelled), "{err:?}");
    assert_eq!(f.sim.request_log().len(), sent, "nothing was sent");
    assert_conforms(&f.sim.request_log());
}

//! The Tripletex client against the simulator: session expiry at Oslo midnight across DST,
//! month-long runs, single-flight re-minting, what proves a session (whoAmI's ids and company),
//! rejected keys and consumer tokens, rate limits, retries, 403s, the circuit breaker and
//! cancellation. Every test ends by checking the requests
//! it made against the real OpenAPI spec.

mod faults;
mod limits;
mod proof;
mod sessions;
mod shops;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tripletex_sim::LoggedRequest;
use tripletex_sync::checks::CheckKind;
use tripletex_sync::tripletex::model::Record;
use tripletex_sync::tripletex::{Fetched, ShopClient, Tripletex, TripletexError};

use tripletex_sync_fixture::daemon::Fixture;

pub const CREATE: &str = "/v2/token/session/:create";

/// A fixture with one shop `acme` (company 1001) and a client for it.
pub async fn one_shop(main: &str) -> (Fixture, Arc<Tripletex>, ShopClient, String) {
    let f = Fixture::with_main(main).await;
    let token = f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 5, false);
    let api = f.api();
    let client = f.client(&api, "acme", &CancellationToken::new());
    (f, api, client, token)
}

/// The cheapest data request: one customer.
pub async fn ping(client: &ShopClient) -> Result<Fetched<Record>, TripletexError> {
    let query = [
        (
            "fields",
            CheckKind::CustomerNumbers.spec().list.fields.to_owned(),
        ),
        ("count", "1".to_owned()),
    ];
    client
        .list(CheckKind::CustomerNumbers.spec(), &query, None)
        .await
}

/// Requests in `log` with this method whose path ends with `suffix`.
pub fn hits<'a>(log: &'a [LoggedRequest], method: &str, suffix: &str) -> Vec<&'a LoggedRequest> {
    log.iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .collect()
}

pub fn creates(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    hits(log, "POST", CREATE)
}

/// Panics if any logged request got a 401: a dead or unknown token was sent.
pub fn assert_no_401(log: &[LoggedRequest]) {
    let bad: Vec<_> = log.iter().filter(|r| r.status == 401).collect();
    assert!(bad.is_empty(), "requests answered 401: {bad:#?}");
}

//! Retries, 429s without `Reset`, unreadable bodies and the circuit breaker.

use std::time::Duration;

use tripletex_sim::{Fault, FaultKind};
use tripletex_sync::tripletex::TripletexError;

use crate::{creates, hits, one_shop, ping};
use tripletex_sync_fixture::daemon::{Fixture, MAIN};
use tripletex_sync_fixture::spec::assert_conforms;

/// `daemon::fast` sets the breaker's cooldown to 200 ms; a little slack for the timer.
const COOLDOWN: Duration = Duration::from_millis(250);

fn on_customers(kind: FaultKind, times: Option<u32>) -> Fault {
    Fault {
        path_prefix: Some("/customer".into()),
        times,
        ..Fault::always(kind)
    }
}

#[tokio::test]
async fn two_503s_are_retried_and_the_get_succeeds() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    f.sim.inject(on_customers(FaultKind::Status(503), Some(2)));
    ping(&client).await.unwrap();
    let log = f.sim.request_log();
    let statuses: Vec<u16> = hits(&log, "GET", "/customer")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    assert_conforms(&log);
}

#[tokio::test]
async fn a_lasting_503_is_named_as_a_503_after_exactly_three_tries() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    client.connect().await.unwrap();
    f.sim.inject(on_customers(FaultKind::Status(503), None));
    let err = ping(&client).await.unwrap_err();
    assert!(
        matches!(
            err,
            TripletexError::ServerError {
                status: 503,
                tries: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("Tripletex answered 503 "),
        "{err}"
    );
    let log = f.sim.request_log();
    assert_eq!(hits(&log, "GET", "/customer").len(), 3);
    assert_conforms(&log);
}

#[tokio::test]
async fn a_connection_reset_is_retried() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    client.connect().await.unwrap();
    f.sim
        .inject(on_customers(FaultKind::ConnectionReset, Some(1)));
    ping(&client).await.unwrap();
    let log = f.sim.request_log();
    let statuses: Vec<u16> = hits(&log, "GET", "/customer")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [0, 200], "0 = reset without a response");
    assert_conforms(&log);
}

#[tokio::test]
async fn malformed_json_is_a_decode_error_and_not_retried() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    client.connect().await.unwrap();
    f.sim
        .inject(on_customers(FaultKind::MalformedJson, Some(1)));
    let err = ping(&client).await.unwrap_err();
    assert!(matches!(err, TripletexError::Decode(_)), "{err:?}");
    let log = f.sim.request_log();
    assert_eq!(hits(&log, "GET", "/customer").len(), 1);
    assert_conforms(&log);
}

#[tokio::test]
async fn the_mint_is_retried_after_a_5xx() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    f.sim.inject(Fault {
        path_prefix: Some("/token/session/:create".into()),
        times: Some(1),
        ..Fault::always(FaultKind::Status(502))
    });
    client.connect().await.unwrap();
    let log = f.sim.request_log();
    let statuses: Vec<u16> = creates(&log).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 201]);
    assert_conforms(&log);
}

#[tokio::test]
async fn three_429s_without_reset_are_waited_out() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    // A 1 s window keeps the wait for the last known reset short.
    f.sim.set_rate_limit(100_000, Duration::from_secs(1));
    f.sim
        .inject(on_customers(FaultKind::TooManyRequests, Some(3)));
    ping(&client).await.unwrap();
    assert_eq!(client.throttled_count(), 3);
    let log = f.sim.request_log();
    let statuses: Vec<u16> = hits(&log, "GET", "/customer")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 429, 429, 200]);
    assert_conforms(&log);
}

/// Opens the breaker with lasting connection resets on `/customer`; returns the log length then.
async fn open_the_breaker(f: &Fixture, client: &tripletex_sync::tripletex::ShopClient) -> usize {
    client.connect().await.unwrap();
    f.sim.inject(on_customers(FaultKind::ConnectionReset, None));
    // 3 tries, then 2 more: the fifth consecutive failure opens the circuit mid-call.
    let first = ping(client).await.unwrap_err();
    assert!(matches!(first, TripletexError::Unavailable(_)), "{first:?}");
    let second = ping(client).await.unwrap_err();
    let TripletexError::CircuitOpen { last } = &second else {
        panic!("{second:?}")
    };
    // Named as what it was: no answer at all, not a status.
    assert!(last.starts_with("Tripletex unreachable: "), "{last}");
    let log = f.sim.request_log();
    assert_eq!(hits(&log, "GET", "/customer").len(), 5);
    log.len()
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_closes_after_the_cooldown() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    let seen = open_the_breaker(&f, &client).await;
    for _ in 0..10 {
        let err = ping(&client).await.unwrap_err();
        assert!(matches!(err, TripletexError::CircuitOpen { .. }), "{err:?}");
    }
    assert_eq!(
        f.sim.request_log().len(),
        seen,
        "an open circuit sends nothing"
    );

    f.sim.clear_faults();
    // The one real-time wait in this suite: the breaker's cooldown (200 ms in `fast`).
    tokio::time::sleep(COOLDOWN).await;
    ping(&client).await.unwrap();
    ping(&client).await.unwrap();
    assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn a_429_on_the_half_open_trial_does_not_wedge_the_breaker() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    f.sim.set_rate_limit(100_000, Duration::from_secs(1));
    open_the_breaker(&f, &client).await;
    f.sim.clear_faults();
    f.sim
        .inject(on_customers(FaultKind::TooManyRequests, Some(1)));
    tokio::time::sleep(COOLDOWN).await;
    // The trial meets a 429: Tripletex is reachable, so the call waits and succeeds.
    ping(&client).await.unwrap();
    ping(&client).await.unwrap();
    assert_conforms(&f.sim.request_log());
}

#[tokio::test]
async fn a_mint_answered_500_is_named_as_such_also_once_the_circuit_opens() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    f.sim.inject(Fault {
        path_prefix: Some("/token/session/:create".into()),
        ..Fault::always(FaultKind::Status(500))
    });
    let first = client.connect().await.unwrap_err();
    assert!(
        matches!(
            first,
            TripletexError::ServerError {
                status: 500,
                code: 1000,
                tries: 3,
                ..
            }
        ),
        "{first:?}"
    );
    let text = first.to_string();
    assert!(
        text.starts_with("Tripletex answered 500 (code 1000): "),
        "{text}"
    );
    // Two more failures open the circuit (threshold 5): the refusal still names the 500.
    let second = client.connect().await.unwrap_err();
    let third = client.connect().await.unwrap_err();
    for err in [&second, &third] {
        let text = err.to_string();
        assert!(
            text.contains("Tripletex answered 500 (code 1000)"),
            "{text}"
        );
        assert!(!text.contains("connection"), "{text}");
    }
    assert!(
        matches!(third, TripletexError::CircuitOpen { .. }),
        "{third:?}"
    );
    assert_eq!(creates(&f.sim.request_log()).len(), 5);
    assert_conforms(&f.sim.request_log());
}

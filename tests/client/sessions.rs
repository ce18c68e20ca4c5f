//! Session lifetime: Oslo-midnight expiry across DST, renewal before death, a month of hourly
//! use, single-flight re-minting after 401 and the final second 401, and a failing renewal that
//! backs off while the old token serves.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::task::JoinSet;
use tripletex_sim::{Fault, FaultKind};
use tripletex_sync::clock::oslo;
use tripletex_sync::store::SessionState;
use tripletex_sync::tripletex::{KeyRefusal, TripletexError};

use crate::{CREATE, assert_no_401, creates, hits, one_shop, ping};
use tripletex_sync_fixture::daemon::MAIN;
use tripletex_sync_fixture::spec::assert_conforms;

const HALF_HOUR: Duration = Duration::from_secs(1800);

/// The shortest session the config allows: 2 days, renewed 12 h (+ jitter) ahead.
fn two_day_main() -> String {
    MAIN.replace("session_valid_days = 7", "session_valid_days = 2")
        .replace("renew_before = \"1d\"", "renew_before = \"12h\"")
}

/// Mints at `start`, checks the expiry instant, then walks the clock in 30-minute steps with a
/// request each step until a day past the first token's expiry.
async fn minted_before_dst_change_is_renewed_in_time(main: &str, start: &str, expiry: &str) {
    let (f, _api, client, _) = one_shop(main).await;
    let start: Timestamp = start.parse().unwrap();
    let expiry: Timestamp = expiry.parse().unwrap();
    f.clock.set(start);

    let info = client.connect().await.unwrap();
    assert_eq!(info.minted_at, start);
    assert_eq!(
        info.expires_at, expiry,
        "expiry is 00:00 Oslo at the start of expirationDate"
    );
    let local = info.expires_at.to_zoned_datetime(oslo());
    assert_eq!((local.hour(), local.minute(), local.second()), (0, 0, 0));
    assert_eq!(client.session_info().unwrap().expires_at, expiry);
    assert!(
        info.minted_at < info.renew_at && info.renew_at < info.expires_at,
        "{info:?}"
    );

    let end = expiry.checked_add(jiff::Span::new().hours(24)).unwrap();
    let mut renewed = None;
    while f.now() < end {
        f.clock.advance(HALF_HOUR);
        ping(&client).await.unwrap();
        let now_info = client
            .session_info()
            .expect("a live session after every request");
        assert!(f.now() < now_info.expires_at);
        if renewed.is_none() && now_info.minted_at != info.minted_at {
            renewed = Some(now_info);
        }
    }

    let log = f.sim.request_log();
    assert_no_401(&log);
    let mints = creates(&log);
    assert!(mints.len() >= 2, "{mints:#?}");
    assert!(
        mints[1].at < expiry,
        "second mint at {} after expiry {expiry}",
        mints[1].at
    );
    assert_eq!(mints[1].status, 201);
    let renewed = renewed.expect("renewed");
    assert!(renewed.minted_at >= info.renew_at && renewed.minted_at < expiry);
    assert!(renewed.expires_at > expiry);
    assert_eq!(renewed.expires_at.to_zoned_datetime(oslo()).hour(), 0);
    // The superseded token was deleted with the new one.
    assert_eq!(hits(&log, "DELETE", "/{token}")[0].status, 204);
    assert_conforms(&log);
}

#[tokio::test]
async fn minted_at_2359_before_spring_forward_expires_at_oslo_midnight() {
    // 2026-03-28 23:59 Oslo (CET) = 22:59Z; D = 2026-04-04, whose midnight is CEST (UTC+2).
    minted_before_dst_change_is_renewed_in_time(
        MAIN,
        "2026-03-28T22:59:00Z",
        "2026-04-03T22:00:00Z",
    )
    .await;
}

#[tokio::test]
async fn minted_at_2359_before_fall_back_expires_at_oslo_midnight() {
    // 2026-10-24 23:59 Oslo (CEST) = 21:59Z; D = 2026-10-31, whose midnight is CET (UTC+1).
    minted_before_dst_change_is_renewed_in_time(
        MAIN,
        "2026-10-24T21:59:00Z",
        "2026-10-30T23:00:00Z",
    )
    .await;
}

#[tokio::test]
async fn two_day_tokens_across_dst_changes_are_renewed_in_time() {
    // The 23-hour and 25-hour days fall inside these tokens' lives.
    let main = two_day_main();
    minted_before_dst_change_is_renewed_in_time(
        &main,
        "2026-03-28T22:59:00Z",
        "2026-03-29T22:00:00Z",
    )
    .await;
    minted_before_dst_change_is_renewed_in_time(
        &main,
        "2026-10-24T21:59:00Z",
        "2026-10-25T23:00:00Z",
    )
    .await;
}

#[tokio::test]
async fn thirty_days_of_hourly_requests_never_send_a_dead_token() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    for hour in 0..30 * 24 {
        ping(&client)
            .await
            .unwrap_or_else(|e| panic!("hour {hour}: {e}"));
        let live = f.sim.live_sessions();
        assert!(
            live <= 2,
            "hour {hour}: {live} sessions alive in the simulator"
        );
        f.clock.advance(Duration::from_secs(3600));
    }
    let log = f.sim.request_log();
    assert_no_401(&log);
    let mints = creates(&log);
    // 7-day tokens renewed 1 day (+ up to 2 h) early: one every ~6 days.
    assert!((5..=7).contains(&mints.len()), "{} mints", mints.len());
    assert!(mints.iter().all(|r| r.status == 201));
    let deletes = hits(&log, "DELETE", "/{token}");
    assert_eq!(
        deletes.len(),
        mints.len() - 1,
        "every superseded token is revoked"
    );
    assert!(deletes.iter().all(|r| r.status == 204));
    assert_eq!(f.sim.live_sessions(), 1);
    assert_conforms(&log);
}

#[tokio::test]
async fn a_hundred_401s_share_one_mint() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    let client = Arc::new(client);
    client.connect().await.unwrap();
    f.sim.drop_all_sessions();
    let before = f.sim.request_log().len();

    let mut tasks = JoinSet::new();
    for _ in 0..100 {
        let client = Arc::clone(&client);
        tasks.spawn(async move { ping(&client).await });
    }
    let results = tasks.join_all().await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let log = f.sim.request_log();
    let after = &log[before..];
    assert_eq!(creates(after).len(), 1, "exactly one re-mint");
    let customers = hits(after, "GET", "/customer");
    assert_eq!(customers.iter().filter(|r| r.status == 401).count(), 100);
    assert_eq!(customers.iter().filter(|r| r.status == 200).count(), 100);
    assert_eq!(customers.len(), 200, "each request retried exactly once");
    assert_conforms(&log);
}

#[tokio::test]
async fn a_second_401_after_a_fresh_session_is_final() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    client.connect().await.unwrap();
    f.sim.inject(Fault {
        path_prefix: Some("/customer".into()),
        ..Fault::always(FaultKind::Status(401))
    });
    let err = ping(&client).await.unwrap_err();
    assert!(matches!(err, TripletexError::Unauthorized), "{err:?}");
    let log = f.sim.request_log();
    assert_eq!(
        hits(&log, "GET", "/customer").len(),
        2,
        "one retry, no more"
    );
    assert_eq!(creates(&log).len(), 2, "the first mint and one re-mint");
    assert_conforms(&log);
}

#[tokio::test]
async fn a_key_revoked_mid_session_fails_every_waiter_with_one_mint_attempt() {
    let (f, _api, client, token) = one_shop(MAIN).await;
    let client = Arc::new(client);
    client.connect().await.unwrap();
    f.sim.revoke_employee_token(&token);
    let before = f.sim.request_log().len();

    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let client = Arc::clone(&client);
        tasks.spawn(async move { ping(&client).await });
    }
    for result in tasks.join_all().await {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                TripletexError::KeyRejected(KeyRefusal::Refused { status: 422, .. })
            ),
            "{err:?}"
        );
    }
    let log = f.sim.request_log();
    let after = &log[before..];
    assert_eq!(
        hits(after, "GET", "/customer").len(),
        20,
        "no request is retried"
    );
    let mints = hits(after, "POST", CREATE);
    assert_eq!(
        mints.len(),
        1,
        "the waiters share the failed re-mint: {mints:#?}"
    );
    assert!(
        client.session_info().is_none(),
        "a token Tripletex refused is not reported live"
    );
    assert_conforms(&log);
}

#[tokio::test]
async fn a_failing_renewal_backs_off_while_the_old_token_serves() {
    let (f, _api, client, _) = one_shop(MAIN).await;
    let store = f.open_store();
    let old = client.connect().await.unwrap();
    // 7-day tokens renew 1 d (+ up to 2 h of jitter) ahead: 20 h before expiry is inside the
    // renewal window and far from death.
    f.clock.set(
        old.expires_at
            .checked_sub(jiff::Span::new().hours(20))
            .unwrap(),
    );
    assert!(
        old.renew_at <= f.now() && f.now() < old.expires_at,
        "{old:?}"
    );
    f.sim.inject(Fault {
        kind: FaultKind::Status(503),
        path_prefix: Some("/token/session".into()),
        employee_token: None,
        times: None,
    });

    // The renewal fails; the request still goes out with the old token.
    ping(&client).await.unwrap();
    assert!(client.renewing());
    assert_eq!(client.session_info().unwrap(), old, "still the old session");
    let log = f.sim.request_log();
    let tried = creates(&log).len();
    assert!(tried >= 2, "a renewal was attempted: {:#?}", creates(&log));
    assert!(creates(&log)[1..].iter().all(|r| r.status == 503));
    assert_eq!(hits(&log, "GET", "/customer").last().unwrap().status, 200);

    // Right away again: within the backoff nobody tries to mint.
    ping(&client).await.unwrap();
    let report = f.pass(&store, &client, 1).await;
    assert_eq!(report.session.state, SessionState::Renewing);
    assert_eq!(report.session.expires_at, Some(old.expires_at));
    assert_eq!(
        creates(&f.sim.request_log()).len(),
        tried,
        "no mint during the backoff"
    );
    assert!(client.renewing());

    // Tripletex recovers; the backoff (at most 1 h) has passed 2 h later: the next request renews.
    f.sim.clear_faults();
    f.clock.advance(Duration::from_secs(2 * 3600));
    ping(&client).await.unwrap();
    assert!(!client.renewing());
    let fresh = client.session_info().unwrap();
    assert!(fresh.expires_at > old.expires_at, "{fresh:?} vs {old:?}");
    assert_eq!(fresh.minted_at, f.now());
    let log = f.sim.request_log();
    let mints = creates(&log);
    assert_eq!(mints.len(), tried + 1, "{mints:#?}");
    assert_eq!(mints.last().unwrap().status, 201);
    assert_no_401(&log);
    let report = f.pass(&store, &client, 2).await;
    assert_eq!(report.session.state, SessionState::Valid);
    assert_eq!(report.session.expires_at, Some(fresh.expires_at));
    assert_conforms(&log);
}

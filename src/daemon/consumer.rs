//! The consumer token's expiry (`GET /token/consumer/byToken`), read with the first shop
//! session of a generation and then once a day: the metric
//! `tripletex_sync_consumer_token_expiry_timestamp_seconds`, the event `consumer_token.expiring`
//! (WARN within [`WARN_DAYS`], ERROR within [`ERROR_DAYS`]) and, with `[notify]` on, a
//! `consumer_token.expiring` message each day it is logged.
//!
//! Invariants: one request a day for the whole daemon, whichever shop's pass makes it (a shop
//! claims the read before it sends, so passes ending together do not all ask); it runs after a
//! recorded pass with a valid session, under the pass's supervision (`Driver::guarded`); a read
//! that fails is logged once (`consumer_token.expiry_unknown`, WARN) and tried again the next day.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::driver::Driver;
use crate::clock::{oslo_date, oslo_midnight};
use crate::notify::{self, Message};
use crate::store::SessionState;
use crate::tripletex::ShopClient;

/// Logged (and told to the platform) while fewer days than this are left.
const WARN_DAYS: i64 = 30;
/// ERROR instead of WARN.
const ERROR_DAYS: i64 = 7;
const EVERY: Duration = Duration::from_secs(24 * 3600);

/// When the next read is due (`None`: now), shared by a generation's shop tasks.
#[derive(Default)]
pub(super) struct Watch {
    due: Mutex<Option<Instant>>,
}

impl Watch {
    /// Whether the caller is the one to read it now; if so, the next read is a day away.
    fn claim(&self) -> bool {
        let mut due = self.due.lock().expect("consumer watch lock");
        let now = Instant::now();
        if due.is_some_and(|at| at > now) {
            return false;
        }
        *due = Some(now + EVERY);
        true
    }

    /// After a recorded pass of `driver`'s shop whose session is `state`: reads the expiry if
    /// it is due.
    pub async fn after_pass(&self, driver: &Driver, client: &ShopClient, state: SessionState) {
        if state != SessionState::Valid || !self.claim() {
            return;
        }
        let read = driver
            .guarded("reading the consumer token's expiry", || {
                client.consumer_token_expiry()
            })
            .await;
        let metrics = &driver.env.metrics;
        let date = match read {
            // Cancelled or panicked: the next pass of any shop tries again.
            None => {
                *self.due.lock().expect("consumer watch lock") = None;
                return;
            }
            Some(Err(e)) => {
                tracing::warn!(
                    event = "consumer_token.expiry_unknown",
                    error = %e,
                    "could not read when the consumer token expires; trying again in a day"
                );
                metrics.consumer_token_expiry(None);
                return;
            }
            Some(Ok(date)) => date,
        };
        let Some(date) = date else {
            metrics.consumer_token_expiry(None);
            return;
        };
        let expires_at = oslo_midnight(date);
        metrics.consumer_token_expiry(Some(expires_at));
        let now = driver.env.clock.now();
        let days_left = oslo_date(now)
            .until(date)
            .map_or(0, |span| i64::from(span.get_days()));
        if days_left >= WARN_DAYS {
            return;
        }
        let fix = "ask Tripletex for a new consumer token for the integration, put it in tripletex.consumer_token_file and reload";
        if days_left < ERROR_DAYS {
            tracing::error!(event = "consumer_token.expiring", %expires_at, days_left, fix, "the consumer token expires soon: every shop stops then");
        } else {
            tracing::warn!(event = "consumer_token.expiring", %expires_at, days_left, fix, "the consumer token expires within 30 days");
        }
        if let Some(queueing) = driver.settings.notify {
            let store = &driver.store;
            let mut batch = store.batch();
            let message = Message::consumer_token_expiring(expires_at, days_left, now);
            let queued = notify::queue(store, &mut batch, message, queueing);
            // A store that cannot write says so itself (store.broken); tomorrow's read retries.
            if queued.is_ok() {
                let _ = store.commit(batch).await;
            }
        }
    }
}

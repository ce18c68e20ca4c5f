//! The integration's own series: what concerns every shop at once (the consumer token).

use jiff::Timestamp;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Metrics, register};

#[derive(Debug)]
pub(super) struct IntegrationMetrics {
    consumer_token_expiry: Gauge,
}

impl IntegrationMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        Self {
            consumer_token_expiry: register(
                r,
                "consumer_token_expiry_timestamp_seconds",
                "When the consumer token expires (Unix time, 00:00 Europe/Oslo of its expirationDate; 0 when it does not expire or is not known yet)",
            ),
        }
    }
}

impl Metrics {
    /// When the consumer token expires; `None`: never, or not known.
    pub fn consumer_token_expiry(&self, at: Option<Timestamp>) {
        let seconds = at.map_or(0, |t| t.as_second());
        self.integration.consumer_token_expiry.set(seconds);
    }
}

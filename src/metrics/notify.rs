//! The outbox's series (see `notify`): process-wide, never per shop, so a backlog of any size
//! costs four series.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Metrics, ResultLabels, register};

/// The `result` label's values.
const RESULTS: [&str; 3] = ["delivered", "failed", "refused"];

#[derive(Debug)]
pub(super) struct NotifyMetrics {
    pending: Gauge,
    oldest_age: Gauge,
    deliveries: Family<ResultLabels, Counter>,
    dead: Counter,
}

impl NotifyMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let metrics = Self {
            pending: register(
                r,
                "notify_pending",
                "Notifications waiting in the outbox for the platform",
            ),
            oldest_age: register(
                r,
                "notify_oldest_pending_age_seconds",
                "Age of the oldest notification in the outbox (0 when it is empty)",
            ),
            deliveries: register(
                r,
                "notify_deliveries",
                "Delivery attempts by result (delivered, failed = the platform is down or busy, refused = it refused the message)",
            ),
            dead: register(
                r,
                "notify_dead",
                "Notifications given up (past notify.max_age, refused too often, or dropped from a full outbox)",
            ),
        };
        // Every result from the start, so a rate over them works before the first of each.
        for result in RESULTS {
            // The guard it returns is let go at once.
            let _ = metrics.deliveries.get_or_create(&ResultLabels { result });
        }
        metrics
    }
}

impl Metrics {
    /// One delivery attempt ended: `delivered`, `failed` or `refused`.
    pub fn notify_delivery(&self, result: &'static str) {
        self.notify
            .deliveries
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn notify_dead(&self, count: u64) {
        self.notify.dead.inc_by(count);
    }

    /// The outbox now: how many wait, and how old the oldest is.
    pub fn notify_backlog(&self, pending: u64, oldest_age_seconds: u64) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.notify.pending.set(gauge(pending));
        self.notify.oldest_age.set(gauge(oldest_age_seconds));
    }
}

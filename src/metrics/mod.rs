//! Prometheus metrics: what the daemon counts and measures, and the two ways it is read
//! (`STATE_DIR/metrics.prom` for node_exporter's textfile collector, and an opt-in HTTP endpoint).
//!
//! Owns one [`Metrics`] registry per process (built with `prometheus-client`, never hand-written
//! exposition). It sits above `tripletex` and `store`: it is the HTTP client's [`Observer`]
//! (`tripletex` defines what the client reports, so the client knows nothing of metrics, nor
//! through it of the store), and its session series show the store's [`SessionState`], which
//! stays with the records it is part of (the client never needs it).
//!
//! Invariants: labels carry only shop names (`[A-Za-z0-9_-]`), check kinds, verdicts, endpoint
//! labels from a closed set (each kind's `list.metrics_label` and the client's own, never a path,
//! which can carry a token) and status classes, so no token, token fragment or URL userinfo can
//! reach a metric; a shop that leaves the configuration has its series removed, so a scrape never
//! shows a shop that is gone; every update is a hash lookup and an atomic, so recording costs the
//! same at 10 000 shops as at one.

mod exposition;
mod integration;
mod notify;
mod server;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::checks::{CheckKind, Evidence, Verdict};
use crate::store::SessionState;
use crate::tripletex::Observer;
use crate::tripletex::observer::{OTHER, OWN_ENDPOINTS};

pub use exposition::{METRICS_FILE, write_textfile};
pub use server::{MetricsServer, Pages, serve};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShopLabels {
    shop: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    shop: String,
    check: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    shop: String,
    check: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    shop: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    shop: String,
    endpoint: &'static str,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShopSetLabels {
    set: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Status classes of `tripletex_sync_requests_total`; `error` is a request nobody answered.
const CLASSES: [&str; 6] = ["2xx", "3xx", "4xx", "5xx", "other", "error"];
/// The `endpoint` label values: each kind's listing, then the client's own requests (sessions,
/// `other`). A closed set, so a removed shop's series can all be found, and a path (which can
/// carry a token: `DELETE /token/session/{token}`) never becomes a label.
fn endpoints() -> impl Iterator<Item = &'static str> {
    CheckKind::ALL
        .into_iter()
        .map(|k| k.spec().list.metrics_label)
        .chain(OWN_ENDPOINTS)
}

/// `label` if it is one of [`endpoints`], else `other`.
fn known_endpoint(label: &str) -> &'static str {
    endpoints().find(|e| *e == label).unwrap_or(OTHER)
}

fn register<M: Default + Clone + prometheus_client::registry::Metric>(
    r: &mut Registry,
    name: &str,
    help: &str,
) -> M {
    let metric = M::default();
    r.register(name, help, metric.clone());
    metric
}

/// What [`Metrics::check`] needs of a recorded check.
pub struct CheckState<'a> {
    pub verdict: Verdict,
    pub evidence: Option<&'a Evidence>,
    pub checked_at: Option<Timestamp>,
    pub since: Option<Timestamp>,
}

fn set_or_remove<L>(family: &Family<L, Gauge>, labels: &L, value: Option<i64>)
where
    L: Clone + std::hash::Hash + Eq,
{
    match value {
        Some(v) => {
            family.get_or_create(labels).set(v);
        }
        None => {
            family.remove(labels);
        }
    }
}

type FloatCounter = Counter<f64, AtomicU64>;

const VERDICTS: [Verdict; 5] = [
    Verdict::Ok,
    Verdict::Warn,
    Verdict::Conflict,
    Verdict::Error,
    Verdict::Unknown,
];
const SESSION_STATES: [SessionState; 5] = [
    SessionState::Valid,
    SessionState::Renewing,
    SessionState::KeyRejected,
    SessionState::Revoked,
    SessionState::Unknown,
];

/// Every metric the daemon exposes. Cheap to share (`Arc<Metrics>`); all updates take `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    verdict: Family<VerdictLabels, Gauge>,
    numbers_left: Family<CheckLabels, Gauge>,
    forecast: Family<CheckLabels, Gauge>,
    checked_at: Family<CheckLabels, Gauge>,
    verdict_since: Family<CheckLabels, Gauge>,
    session_state: Family<SessionLabels, Gauge>,
    session_expiry: Family<ShopLabels, Gauge>,
    push_active: Family<ShopLabels, Gauge>,
    push_last_callback: Family<ShopLabels, Gauge>,
    mints: Family<ShopLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    throttled: Family<ShopLabels, Counter>,
    limiter_wait: Family<ShopLabels, FloatCounter>,
    shops: Family<ShopSetLabels, Gauge>,
    interval: Gauge,
    pass_duration: Histogram,
    passes_failed: Counter,
    store_healthy: Gauge,
    reloads: Family<ResultLabels, Counter>,
    webhooks_refused: Family<StatusLabels, Counter>,
    notify: notify::NotifyMetrics,
    integration: integration::IntegrationMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("tripletex_sync");
        let build: Family<BuildLabels, Gauge> =
            register(&mut r, "build_info", "The running build (always 1)");
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        // 50 ms … ~7 min: an idle pass is two requests, a full resync of a big shop minutes.
        let pass_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        r.register(
            "pass_duration_seconds",
            "Duration of recorded passes",
            pass_duration.clone(),
        );
        Self {
            verdict: register(
                &mut r,
                "check_verdict",
                "1 for the check's current verdict, 0 for the others",
            ),
            numbers_left: register(
                &mut r,
                "check_numbers_left",
                "Numbers left in the shop's range after its highest number in use",
            ),
            forecast: register(
                &mut r,
                "check_forecast_exhausted_timestamp_seconds",
                "When the shop's numbers reach Tripletex's series at the recorded growth (Unix time, Oslo midnight of that day; absent without a forecast)",
            ),
            checked_at: register(
                &mut r,
                "check_completed_timestamp_seconds",
                "When the check last completed (Unix time)",
            ),
            verdict_since: register(
                &mut r,
                "check_verdict_changed_timestamp_seconds",
                "Since when the current verdict holds (Unix time)",
            ),
            session_state: register(
                &mut r,
                "session_state",
                "1 for the shop's current session state, 0 for the others",
            ),
            session_expiry: register(
                &mut r,
                "session_expiry_timestamp_seconds",
                "When the shop's live session token dies (Unix time; 00:00 Europe/Oslo)",
            ),
            push_active: register(
                &mut r,
                "push_active",
                "1 while all the shop's webhook subscriptions are active (absent while webhooks are off)",
            ),
            push_last_callback: register(
                &mut r,
                "push_last_callback_timestamp_seconds",
                "When the shop's last webhook callback arrived (Unix time; absent before the first)",
            ),
            mints: register(&mut r, "session_mints", "Session tokens minted"),
            requests: register(
                &mut r,
                "requests",
                "Requests sent to Tripletex, by endpoint and status class (error = no answer)",
            ),
            throttled: register(&mut r, "throttled", "429 answers from Tripletex"),
            limiter_wait: register(
                &mut r,
                "rate_limit_wait_seconds",
                "Time spent waiting for the shop's rate limiter",
            ),
            shops: register(
                &mut r,
                "shops",
                "Shops in the configuration (set=loaded) and of those enabled (set=enabled)",
            ),
            interval: register(
                &mut r,
                "check_interval_seconds",
                "The longest pass interval configured (checks.interval, or webhooks.reconcile_interval while webhooks are on); staleness alerts count in it",
            ),
            pass_duration,
            passes_failed: register(
                &mut r,
                "passes_failed",
                "Passes that could not be recorded or panicked",
            ),
            store_healthy: {
                let gauge: Gauge = register(
                    &mut r,
                    "store_healthy",
                    "1 while the state store (sled in state_dir) can write, 0 while it cannot (passes are not recorded; see event=store.broken)",
                );
                gauge.set(1);
                gauge
            },
            reloads: register(&mut r, "config_reloads", "Configuration reloads by result"),
            webhooks_refused: register(
                &mut r,
                "webhook_refusals",
                "Webhook callbacks refused, by the status answered",
            ),
            notify: notify::NotifyMetrics::register(&mut r),
            integration: integration::IntegrationMetrics::register(&mut r),
            registry: r,
        }
    }

    /// The shop set and pass interval after start or a reload; series of shops no longer
    /// configured are removed.
    pub fn configured(
        &self,
        loaded: usize,
        enabled: usize,
        interval: Duration,
        removed: &[String],
    ) {
        self.interval
            .set(interval.as_secs().try_into().unwrap_or(i64::MAX));
        self.shops
            .get_or_create(&ShopSetLabels { set: "loaded" })
            .set(loaded as i64);
        self.shops
            .get_or_create(&ShopSetLabels { set: "enabled" })
            .set(enabled as i64);
        for shop in removed {
            self.forget(shop);
        }
    }

    fn forget(&self, shop: &str) {
        let s = || shop.to_owned();
        for kind in CheckKind::ALL {
            self.forget_check(shop, kind);
        }
        for state in SESSION_STATES {
            self.session_state.remove(&SessionLabels {
                shop: s(),
                state: state.as_str(),
            });
        }
        let labels = ShopLabels { shop: s() };
        self.session_expiry.remove(&labels);
        self.push_active.remove(&labels);
        self.push_last_callback.remove(&labels);
        self.mints.remove(&labels);
        self.throttled.remove(&labels);
        self.limiter_wait.remove(&labels);
        for endpoint in endpoints() {
            for class in CLASSES {
                self.requests.remove(&RequestLabels {
                    shop: s(),
                    endpoint,
                    class,
                });
            }
        }
    }

    /// One check as recorded: its verdict, headroom, forecast and times. `None` for a check the
    /// shop file turns off (its series are removed).
    pub fn check(&self, shop: &str, kind: CheckKind, state: Option<&CheckState<'_>>) {
        let check = kind.as_str();
        let labels = CheckLabels {
            shop: shop.to_owned(),
            check,
        };
        let Some(state) = state else {
            self.forget_check(shop, kind);
            return;
        };
        for v in VERDICTS {
            self.verdict
                .get_or_create(&VerdictLabels {
                    shop: shop.to_owned(),
                    check,
                    verdict: v.as_str(),
                })
                .set(i64::from(v == state.verdict));
        }
        // An error verdict carries no evidence: keep the last known figures rather than 0.
        if let Some(e) = state.evidence.filter(|_| state.verdict != Verdict::Error) {
            set_or_remove(&self.numbers_left, &labels, e.headroom.map(i64::from));
            let forecast = e
                .forecast_exhausted_on
                .map(|day| crate::clock::oslo_midnight(day).as_second());
            set_or_remove(&self.forecast, &labels, forecast);
        }
        let seconds = |t: Option<Timestamp>| t.map(|t| t.as_second());
        set_or_remove(&self.checked_at, &labels, seconds(state.checked_at));
        set_or_remove(&self.verdict_since, &labels, seconds(state.since));
    }

    fn forget_check(&self, shop: &str, kind: CheckKind) {
        let check = kind.as_str();
        for v in VERDICTS {
            self.verdict.remove(&VerdictLabels {
                shop: shop.to_owned(),
                check,
                verdict: v.as_str(),
            });
        }
        let labels = CheckLabels {
            shop: shop.to_owned(),
            check,
        };
        self.numbers_left.remove(&labels);
        self.forecast.remove(&labels);
        self.checked_at.remove(&labels);
        self.verdict_since.remove(&labels);
    }

    /// The shop's session as recorded.
    pub fn session(&self, shop: &str, state: SessionState, expires_at: Option<Timestamp>) {
        for s in SESSION_STATES {
            self.session_state
                .get_or_create(&SessionLabels {
                    shop: shop.to_owned(),
                    state: s.as_str(),
                })
                .set(i64::from(s == state));
        }
        let labels = ShopLabels {
            shop: shop.to_owned(),
        };
        set_or_remove(
            &self.session_expiry,
            &labels,
            expires_at.map(|t| t.as_second()),
        );
    }

    /// The shop's push state: `None` while webhooks are off; else whether its subscriptions are
    /// all active, and when its last callback arrived.
    pub fn push(&self, shop: &str, push: Option<(bool, Option<Timestamp>)>) {
        let labels = ShopLabels {
            shop: shop.to_owned(),
        };
        let (active, last) = match push {
            Some((active, last)) => (Some(i64::from(active)), last.map(|t| t.as_second())),
            None => (None, None),
        };
        set_or_remove(&self.push_active, &labels, active);
        set_or_remove(&self.push_last_callback, &labels, last);
    }

    pub fn pass_recorded(&self, duration: Duration) {
        self.pass_duration.observe(duration.as_secs_f64());
    }

    pub fn pass_failed(&self) {
        self.passes_failed.inc();
    }

    pub fn webhook_refused(&self, status: u16) {
        self.webhooks_refused
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    /// Whether the state store can write (it breaks on a full disk and recovers by itself).
    pub fn store_healthy(&self, healthy: bool) {
        self.store_healthy.set(i64::from(healthy));
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// The OpenMetrics exposition (what `prometheus-client` writes).
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// The Prometheus text format (0.0.4): what node_exporter's textfile collector and
    /// `promtool check metrics` read.
    pub fn prometheus_text(&self) -> String {
        exposition::to_prometheus_text(&self.openmetrics())
    }
}

/// What the HTTP client reports, counted per shop.
impl Observer for Metrics {
    /// Counts the request by endpoint and status class; a 429 also as throttled.
    fn answered(&self, shop: &str, endpoint: &'static str, status: Option<u16>) {
        let class = match status {
            Some(200..=299) => CLASSES[0],
            Some(300..=399) => CLASSES[1],
            Some(400..=499) => CLASSES[2],
            Some(500..=599) => CLASSES[3],
            Some(_) => CLASSES[4],
            None => CLASSES[5],
        };
        let endpoint = known_endpoint(endpoint);
        self.requests
            .get_or_create(&RequestLabels {
                shop: shop.to_owned(),
                endpoint,
                class,
            })
            .inc();
        if status == Some(429) {
            self.throttled
                .get_or_create(&ShopLabels {
                    shop: shop.to_owned(),
                })
                .inc();
        }
    }

    fn minted(&self, shop: &str) {
        self.mints
            .get_or_create(&ShopLabels {
                shop: shop.to_owned(),
            })
            .inc();
    }

    fn waited(&self, shop: &str, waited: Duration) {
        if waited.is_zero() {
            return;
        }
        self.limiter_wait
            .get_or_create(&ShopLabels {
                shop: shop.to_owned(),
            })
            .inc_by(waited.as_secs_f64());
    }
}

#[cfg(test)]
mod dashboard_tests;
#[cfg(test)]
mod tests;

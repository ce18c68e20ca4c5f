//! Prometheus metrics: what the daemon counts and measures, and the two ways it is read
//! (`STATE_DIR/metrics.prom` for node_exporter's textfile collector, and an opt-in HTTP endpoint).
//!
//! Owns one [`Metrics`] per process: the process-wide series in a `prometheus-client` registry,
//! and the per-shop series in [`shops`], which caches each shop's rendered lines so an exposition
//! at 100 000 shops copies text instead of encoding millions of series. It sits above `tripletex`
//! and `store`: it is the HTTP client's [`Observer`] (`tripletex` defines what the client
//! reports, so the client knows nothing of metrics, nor through it of the store), and its
//! session series show the store's [`SessionState`], which stays with the records it is part of
//! (the client never needs it).
//!
//! Invariants: labels carry only shop names (`[A-Za-z0-9_-]`), check kinds, verdicts, endpoint
//! labels from a closed set (each kind's `list.metrics_label` and the client's own, never a path,
//! which can carry a token) and status classes, so no token, token fragment or URL userinfo can
//! reach a metric; a shop has at most [`SERIES_PER_SHOP`] series (webhooks off), and whatever
//! else is counted per request (endpoint, class, mints, limiter waits) is process-wide; a shop
//! that leaves the configuration has its series removed, so a scrape never shows a shop that is
//! gone.
//!
//! A process-wide series is a field registered in [`Metrics::new`] with [`register`] (a gauge,
//! counter or a `Family` with a label struct) and a method that sets it; it appears in both
//! formats, the textfile and the endpoint with nothing else to change.

mod exposition;
mod integration;
mod notify;
mod server;
mod shops;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::checks::{CheckKind, Evidence, PerKind, Verdict};
use crate::store::SessionState;
use crate::tripletex::Observer;
use crate::tripletex::observer::{OTHER, OWN_ENDPOINTS};

pub use exposition::{Exposition, METRICS_FILE, write_textfile};
pub use server::{MetricsServer, Pages, serve};
pub use shops::SERIES_PER_SHOP;
use shops::{CheckFigures, Format, ShopSeries};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
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
/// `other`). A closed set, so `requests_total` has a bounded number of series, and a path (which
/// can carry a token: `DELETE /token/session/{token}`) never becomes a label.
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

/// What [`Metrics::shop`] needs of a recorded check.
pub struct CheckState<'a> {
    pub verdict: Verdict,
    pub evidence: Option<&'a Evidence>,
    pub checked_at: Option<Timestamp>,
}

/// What [`Metrics::shop`] needs of a shop's recorded state.
pub struct ShopState<'a> {
    pub session: SessionState,
    pub session_expires_at: Option<Timestamp>,
    /// `None` while webhooks are off; else whether all the shop's subscriptions are active.
    pub push_active: Option<bool>,
    /// When the shop's last webhook callback arrived.
    pub push_last_callback: Option<Timestamp>,
    /// `None` for a check the shop file turns off.
    pub checks: PerKind<Option<CheckState<'a>>>,
}

type FloatCounter = Counter<f64, AtomicU64>;

/// Every metric the daemon exposes. Cheap to share (`Arc<Metrics>`); all updates take `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    shop_series: ShopSeries,
    mints: Counter,
    requests: Family<RequestLabels, Counter>,
    limiter_wait: FloatCounter,
    push_last_callback: Gauge,
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
            shop_series: ShopSeries::default(),
            mints: register(&mut r, "session_mints", "Session tokens minted (all shops)"),
            requests: register(
                &mut r,
                "requests",
                "Requests sent to Tripletex (all shops), by endpoint and status class (error = no answer)",
            ),
            limiter_wait: register(
                &mut r,
                "rate_limit_wait_seconds",
                "Time spent waiting for the shops' rate limiters (all shops)",
            ),
            push_last_callback: register(
                &mut r,
                "push_last_callback_timestamp_seconds",
                "When the last webhook callback of any shop arrived (Unix time; 0 before the first)",
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
        self.shop_series.remove(shop);
    }

    /// One shop's recorded state, after each pass (and at start for every shop). An error
    /// verdict carries no evidence: the shop's last known headroom stays rather than none.
    pub fn shop(&self, shop: &str, state: &ShopState<'_>) {
        if let Some(at) = state.push_last_callback {
            let at = at.as_second();
            self.push_last_callback
                .inner()
                .fetch_max(at, std::sync::atomic::Ordering::Relaxed);
        }
        self.shop_series.update(shop, |f| {
            f.session = Some(state.session);
            f.expiry = state.session_expires_at.map(|t| t.as_second());
            f.push_active = state.push_active;
            for (kind, check) in state.checks.iter() {
                let before = f.checks[kind];
                f.checks[kind] = check.as_ref().map(|c| {
                    let numbers_left = match c.evidence.filter(|_| c.verdict != Verdict::Error) {
                        Some(e) => e.headroom.map(i64::from),
                        None => before.and_then(|b| b.numbers_left),
                    };
                    CheckFigures {
                        verdict: c.verdict,
                        numbers_left,
                        completed: c.checked_at.map(|t| t.as_second()),
                    }
                });
            }
        });
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

    /// The OpenMetrics exposition: the registry's families, then the shops'.
    pub fn openmetrics(&self) -> String {
        let mut out = self.process_wide().into_bytes();
        let shops = self.shop_series.snapshot();
        out.reserve(shops.len() + 16);
        shops
            .write_to(&mut out, Format::OpenMetrics)
            .expect("writing to a Vec cannot fail");
        let mut out = String::from_utf8(out).expect("every part is text");
        prometheus_client::encoding::text::encode_eof(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    /// The Prometheus text format (0.0.4): what node_exporter's textfile collector and
    /// `promtool check metrics` read.
    pub fn prometheus_text(&self) -> String {
        self.prometheus().into_text()
    }

    /// [`Metrics::prometheus_text`] as of now, to be written out without being joined.
    pub fn prometheus(&self) -> Exposition {
        Exposition {
            head: exposition::to_prometheus_text(&self.process_wide()),
            shops: self.shop_series.snapshot(),
        }
    }

    /// The registry's families in OpenMetrics, without the final `# EOF`.
    fn process_wide(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// What the HTTP client reports: counted for all shops, 429s per shop too.
impl Observer for Metrics {
    /// Counts the request by endpoint and status class; a 429 also as the shop's throttled.
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
            .get_or_create(&RequestLabels { endpoint, class })
            .inc();
        if status == Some(429) {
            self.shop_series.update(shop, |f| f.throttled += 1);
        }
    }

    fn minted(&self, _shop: &str) {
        self.mints.inc();
    }

    fn waited(&self, _shop: &str, waited: Duration) {
        if !waited.is_zero() {
            self.limiter_wait.inc_by(waited.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod dashboard_tests;
#[cfg(test)]
mod tests;

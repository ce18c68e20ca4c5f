//! Webhook delivery: when a [`Simulator`] method changes a customer or an invoice, every ACTIVE
//! matching subscription of that company gets a `POST` of the WebHook envelope
//! `{"subscriptionId", "event", "id", "value"}` (`value` cut to the subscription's `fields`,
//! `null` for a delete) with its `authHeaderName: authHeaderValue` header, an `idempotency-key`
//! and, when it has a `hmacSharedSecret`, the spec's signature
//! `x-request-signature = base64(HmacSHA512(idempotency-key + "&" + body))`; plus the knobs and
//! records tests use to shape and observe deliveries.
//!
//! Invariants: one delivery task per simulator, fed by a bounded queue (a full queue drops the
//! delivery and records it as [`DeliveryOutcome::Dropped`]); the task holds only a weak handle, so
//! it ends when the last `Simulator` is dropped; the world lock is never held across an
//! `.await`; a delivery is retried a few times with doubling backoff, and after
//! `failure_limit` consecutive failed deliveries the subscription becomes
//! `DISABLED_TOO_MANY_ERRORS`; the envelope is cut when the change happens, the target and
//! header are read when it is sent (a `PUT` in between wins), and a target under a proxied public
//! prefix goes to its local base instead; neither tracing nor the delivery records ever see a
//! target URL, a header or a body.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use url::Url;

use super::events::{self, Payload};
use super::fields::Record;
use super::state::World;
use super::subscriptions::{AuthHeader, SubscriptionInfo, SubscriptionStatus};
use super::{Inner, Simulator};

/// Deliveries waiting beyond this are dropped: the simulator must not grow without bound when a
/// test adds 100 000 customers under a subscription.
const QUEUE: usize = 10_000;
/// A receiver that hangs must not stall the queue for long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_ATTEMPTS: u32 = 3;
const DEFAULT_BACKOFF: Duration = Duration::from_millis(20);
const DEFAULT_FAILURE_LIMIT: u32 = 5;

/// One delivery as the simulator saw it; no URL, header or body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub subscription_id: i64,
    pub event: String,
    /// The envelope's `id`: the customer or invoice.
    pub object_id: i64,
    /// `POST`s sent (0 when none was).
    pub attempts: u32,
    pub outcome: DeliveryOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// Every attempt failed (or retrying stopped because the subscription went away or was
    /// disabled): the last non-2xx status, or `None` for a connection error or timeout.
    Failed(Option<u16>),
    /// Lost on purpose ([`Simulator::lose_webhook_deliveries`]): never sent, counted as nothing.
    Lost,
    /// The subscription was deleted or stopped being ACTIVE before its turn.
    Skipped,
    /// The queue was full or no delivery task runs (the simulator was never started).
    Dropped,
}

/// Delivery records and knobs; lives in the world, under its lock.
#[derive(Debug)]
pub(crate) struct DeliveryBook {
    log: Vec<Delivery>,
    /// What each entry of `log` sent, for [`Simulator::redeliver_webhook`].
    sent: Vec<Job>,
    failure_limit: u32,
    attempts: u32,
    backoff: Duration,
    lose_next: u32,
    /// (public prefix, local base): the reverse proxy in front of a receiver.
    proxies: Vec<(String, String)>,
}

impl Default for DeliveryBook {
    fn default() -> Self {
        Self {
            log: Vec::new(),
            sent: Vec::new(),
            failure_limit: DEFAULT_FAILURE_LIMIT,
            attempts: DEFAULT_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            lose_next: 0,
            proxies: Vec::new(),
        }
    }
}

/// The queue into the delivery task and the count of deliveries not yet finished.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    queue: OnceLock<mpsc::Sender<Job>>,
    pending: watch::Sender<usize>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Self {
            queue: OnceLock::new(),
            pending: watch::Sender::new(0),
        }
    }
}

/// One envelope for one subscription, cut when the change happened.
#[derive(Debug, Clone)]
struct Job {
    subscription_id: i64,
    event: &'static str,
    object_id: i64,
    body: Vec<u8>,
    /// The same for every attempt, so a receiver can drop duplicates.
    idempotency_key: String,
}

/// What an attempt needs from the subscription, read fresh before each attempt.
struct Target {
    url: Url,
    auth_header: Option<AuthHeader>,
    hmac_shared_secret: Option<SecretString>,
}

impl Simulator {
    /// Spawns the delivery task unless it runs; needs a tokio runtime (called from `start`).
    pub(crate) fn start_deliveries(&self) {
        self.inner.deliveries.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(run(Arc::downgrade(&self.inner), receiver));
            sender
        });
    }

    /// Queues `event` for objects `ids` of `company_id` to every ACTIVE subscription to it, and
    /// releases the world lock.
    pub(crate) fn publish(
        &self,
        mut world: std::sync::MutexGuard<'_, World>,
        company_id: i64,
        event: &'static str,
        ids: impl IntoIterator<Item = i64>,
    ) {
        let Some(info) = events::find(event) else {
            return;
        };
        if world
            .subscriptions
            .active_for(company_id, event)
            .next()
            .is_none()
        {
            return;
        }
        for id in ids {
            let value = if info.is_delete() {
                None
            } else {
                match object_json(&world, company_id, info.payload, id) {
                    Some(value) => Some(value),
                    None => continue,
                }
            };
            let jobs: Vec<Job> = world
                .subscriptions
                .active_for(company_id, event)
                .map(|subscription| {
                    let value = value
                        .as_ref()
                        .map_or(Value::Null, |v| subscription.selection.apply(v));
                    let envelope = json!({
                        "subscriptionId": subscription.id,
                        "event": event,
                        "id": id,
                        "value": value,
                    });
                    Job {
                        subscription_id: subscription.id,
                        event,
                        object_id: id,
                        body: serde_json::to_vec(&envelope).unwrap_or_default(),
                        idempotency_key: format!(
                            "{:016x}{:016x}",
                            fastrand::u64(..),
                            fastrand::u64(..)
                        ),
                    }
                })
                .collect();
            for job in jobs {
                self.enqueue(&mut world, job);
            }
        }
    }

    fn enqueue(&self, world: &mut World, job: Job) {
        let book = &mut world.deliveries;
        if book.lose_next > 0 {
            book.lose_next -= 1;
            return book.record(&job, 0, DeliveryOutcome::Lost);
        }
        let dispatcher = &self.inner.deliveries;
        let Some(queue) = dispatcher.queue.get() else {
            return book.record(&job, 0, DeliveryOutcome::Dropped);
        };
        // Counted before sending, so `deliveries_idle` cannot slip between the two.
        dispatcher.pending.send_modify(|n| *n += 1);
        if let Err(error) = queue.try_send(job) {
            dispatcher.pending.send_modify(|n| *n -= 1);
            book.record(&error.into_inner(), 0, DeliveryOutcome::Dropped);
        }
    }

    /// Sends one job with retries and books the outcome.
    async fn deliver(&self, client: &reqwest::Client, job: Job) {
        let (attempts_allowed, backoff) = {
            let world = self.lock();
            (world.deliveries.attempts, world.deliveries.backoff)
        };
        let mut attempts = 0;
        let mut last = None;
        let outcome = loop {
            let Some(target) = self.target(job.subscription_id) else {
                break if attempts == 0 {
                    DeliveryOutcome::Skipped
                } else {
                    DeliveryOutcome::Failed(last)
                };
            };
            attempts += 1;
            match post(client, target, &job).await {
                Some(status) if (200..300).contains(&status) => {
                    break DeliveryOutcome::Delivered(status);
                }
                status => last = status,
            }
            if attempts >= attempts_allowed {
                break DeliveryOutcome::Failed(last);
            }
            let wait = backoff.saturating_mul(1 << (attempts - 1).min(10));
            tokio::time::sleep(wait).await;
        };
        let mut world = self.lock();
        let limit = world.deliveries.failure_limit;
        if let Some(subscription) = world.subscriptions.by_id.get_mut(&job.subscription_id) {
            match outcome {
                DeliveryOutcome::Delivered(_) => subscription.consecutive_failures = 0,
                DeliveryOutcome::Failed(_) => {
                    subscription.consecutive_failures += 1;
                    if subscription.consecutive_failures >= limit
                        && subscription.status == SubscriptionStatus::Active
                    {
                        subscription.status = SubscriptionStatus::DisabledTooManyErrors;
                    }
                }
                _ => {}
            }
        }
        world.deliveries.record(&job, attempts, outcome);
    }

    fn target(&self, subscription_id: i64) -> Option<Target> {
        let world = self.lock();
        let subscription = world.subscriptions.by_id.get(&subscription_id)?;
        (subscription.status == SubscriptionStatus::Active).then(|| Target {
            url: world.deliveries.proxied(&subscription.target_url),
            auth_header: subscription.auth_header.clone(),
            hmac_shared_secret: subscription.hmac_shared_secret.clone(),
        })
    }

    /// Every delivery so far, in the order they finished (lost and dropped ones when queued).
    pub fn webhook_deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.log.clone()
    }

    pub fn clear_webhook_deliveries(&self) {
        let book = &mut self.lock().deliveries;
        book.log.clear();
        book.sent.clear();
    }

    /// Sends delivery `index` of [`Simulator::webhook_deliveries`] again, as Tripletex retries or
    /// replays one: the same body and `idempotency-key`, to the subscription's target now.
    /// Returns false for an index past the log.
    pub fn redeliver_webhook(&self, index: usize) -> bool {
        let mut world = self.lock();
        let Some(job) = world.deliveries.sent.get(index).cloned() else {
            return false;
        };
        self.enqueue(&mut world, job);
        true
    }

    /// Resolves once every queued delivery has finished (at once when none is queued); each
    /// attempt is bounded by a timeout, so this does not hang on a silent receiver. Scenario
    /// changes not yet due are not waited for.
    pub async fn deliveries_idle(&self) {
        let mut pending = self.inner.deliveries.pending.subscribe();
        // Fails only when the sender is gone, and `self` keeps it alive.
        let _ = pending.wait_for(|n| *n == 0).await;
    }

    /// After `limit` consecutive failed deliveries (each after its retries) a subscription
    /// becomes `DISABLED_TOO_MANY_ERRORS`; at least 1, default 5.
    pub fn set_webhook_failure_limit(&self, limit: u32) {
        self.lock().deliveries.failure_limit = limit.max(1);
    }

    /// `POST`s per delivery (at least 1, default 3) and the first wait between them (doubling;
    /// default 20 ms).
    pub fn set_webhook_retries(&self, attempts: u32, backoff: Duration) {
        let mut world = self.lock();
        world.deliveries.attempts = attempts.max(1);
        world.deliveries.backoff = backoff;
    }

    /// The next `count` deliveries are silently lost: never sent, and the subscription stays
    /// ACTIVE with no error counted, as when a callback goes missing on the way.
    pub fn lose_webhook_deliveries(&self, count: u32) {
        self.lock().deliveries.lose_next = count;
    }

    /// Delivers callbacks for targets under `public_prefix` (e.g. `https://sync.example.com/tt`)
    /// to `local_base` + the rest of the URL instead (e.g. `http://127.0.0.1:8788`), as the
    /// operator's TLS-terminating reverse proxy would; subscriptions keep their public HTTPS URL.
    pub fn proxy_webhooks(&self, public_prefix: &str, local_base: &str) {
        let prefix = public_prefix.trim_end_matches('/').to_owned();
        let base = local_base.trim_end_matches('/').to_owned();
        self.lock().deliveries.proxies.push((prefix, base));
    }

    /// Every subscription of every company, in id order, without the write-only secrets.
    pub fn webhook_subscriptions(&self) -> Vec<SubscriptionInfo> {
        let world = self.lock();
        world
            .subscriptions
            .by_id
            .values()
            .map(|s| s.info())
            .collect()
    }

    /// Sets a subscription's status as Tripletex would (e.g. `DisabledRateLimitExceeded`);
    /// `Active` also clears its error count. False when there is no such subscription.
    pub fn set_subscription_status(&self, id: i64, status: SubscriptionStatus) -> bool {
        let mut world = self.lock();
        match world.subscriptions.by_id.get_mut(&id) {
            Some(subscription) => {
                subscription.set_status(status);
                true
            }
            None => false,
        }
    }
}

impl DeliveryBook {
    /// `url` with the first matching public prefix replaced by its local base.
    fn proxied(&self, url: &Url) -> Url {
        self.proxies
            .iter()
            .find_map(|(prefix, base)| {
                let rest = url.as_str().strip_prefix(prefix.as_str())?;
                let whole_segment = rest.is_empty() || rest.starts_with(['/', '?']);
                whole_segment.then(|| Url::parse(&format!("{base}{rest}")).ok())?
            })
            .unwrap_or_else(|| url.clone())
    }

    fn record(&mut self, job: &Job, attempts: u32, outcome: DeliveryOutcome) {
        tracing::debug!(
            subscription_id = job.subscription_id,
            event = job.event,
            object_id = job.object_id,
            attempts,
            outcome = ?outcome,
            "sim webhook delivery"
        );
        self.sent.push(job.clone());
        self.log.push(Delivery {
            subscription_id: job.subscription_id,
            event: job.event.to_owned(),
            object_id: job.object_id,
            attempts,
            outcome,
        });
    }
}

/// The object's full JSON, or `None` when it is gone.
fn object_json(world: &World, company_id: i64, payload: Payload, id: i64) -> Option<Value> {
    let company = world.companies.get(&company_id)?;
    match payload {
        Payload::Customer => company.customers.get(&id).map(Record::to_json),
        Payload::Invoice => company.invoices.get(&id).map(Record::to_json),
        Payload::Unmodelled => None,
    }
}

async fn run(inner: Weak<Inner>, mut jobs: mpsc::Receiver<Job>) {
    // Building a client fails only when the TLS backend cannot start; the default one then.
    let client = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    while let Some(job) = jobs.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let sim = Simulator { inner };
        sim.deliver(&client, job).await;
        sim.inner
            .deliveries
            .pending
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// One `POST`: the status, or `None` when no response came. Basic auth in the target URL is
/// sent as an `Authorization` header by reqwest itself.
async fn post(client: &reqwest::Client, target: Target, job: &Job) -> Option<u16> {
    let mut request = client
        .post(target.url)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .header("idempotency-key", job.idempotency_key.as_str())
        .body(job.body.clone());
    if let Some(header) = &target.auth_header
        && let Ok(mut value) = HeaderValue::from_str(header.value.expose_secret())
    {
        value.set_sensitive(true);
        request = request.header(header.name.as_str(), value);
    }
    if let Some(secret) = &target.hmac_shared_secret {
        let signature = signature(secret, &job.idempotency_key, &job.body);
        request = request.header("x-request-signature", signature);
    }
    request
        .send()
        .await
        .ok()
        .map(|response| response.status().as_u16())
}

/// `base64(HmacSHA512(idempotency_key + "&" + body))`, as the spec's `hmacSharedSecret` says.
fn signature(secret: &SecretString, idempotency_key: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA512, secret.expose_secret().as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(idempotency_key.as_bytes());
    context.update(b"&");
    context.update(body);
    STANDARD.encode(context.sign().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_replace_whole_segments_only() {
        let mut book = DeliveryBook::default();
        book.proxies.push((
            "https://sync.example.com/tt".into(),
            "http://127.0.0.1:9".into(),
        ));
        let proxied = |url: &str| book.proxied(&Url::parse(url).unwrap()).to_string();
        assert_eq!(
            proxied("https://sync.example.com/tt/shop?x=1"),
            "http://127.0.0.1:9/shop?x=1"
        );
        assert_eq!(
            proxied("https://sync.example.com/ttx/shop"),
            "https://sync.example.com/ttx/shop"
        );
    }

    #[test]
    fn signature_is_base64_hmac_sha512_of_key_and_body() {
        // Computed independently with Python's hmac module.
        let secret = SecretString::from("S5Yd3Dz6FWmj7q2uA4Uy9KcQMGBVpJHeCbTgEnaw");
        assert_eq!(
            signature(&secret, "key-1", br#"{"id":1}"#),
            "97BeYBOUq7loZbgQ5mQywY9hYRD5cFcYZHuGiBvXtqLhOmV8ZP+/JnIsDCbZzppYeOlgZEIZUu6qbxu+aKCikQ=="
        );
    }
}

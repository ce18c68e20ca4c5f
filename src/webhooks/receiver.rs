//! The callback receiver: plain HTTP/1 on `webhooks.listen`, behind the operator's
//! TLS-terminating reverse proxy.
//!
//! Each request passes, in order: method (POST, else 405) → route (a shop's path, else 404) →
//! auth header (constant-time, else 401) → size (at most [`MAX_BODY`], else 413; within
//! `BODY_TIMEOUT`, else 408) → envelope (else 400) → the channel (full or closed: 503, so
//! Tripletex retries). At most `LIMITS.max_connections` connections are served at once. A valid callback is
//! answered 200 at once; applying it is the channel owner's business. Refusals are logged as
//! `webhooks.refused` at most once per [`REFUSAL_LOG_EVERY`], with the count left out since (and
//! a burst that ends in quiet is reported as `webhooks.refused_since` when its period ends); no
//! log line carries a path, a header or a body. Nothing of a refused request reaches the channel.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_accept::Limits;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::replays::RecentKeys;
use super::{AUTH_HEADER, Callback, Routes, Subscribed, Subscription, envelope};
use crate::metrics::Metrics;
use crate::secrets::{self, SecretString};

/// Headers Tripletex sends with each delivery (per the spec's WebHook description).
const IDEMPOTENCY_KEY: &str = "idempotency-key";
const SIGNATURE: &str = "x-request-signature";
/// A callback is one small JSON object; Tripletex's are well under 1 KiB.
pub const MAX_BODY: usize = 64 << 10;
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// A client that has not sent its headers, or its body, by then is dropped or refused. Tripletex
/// sends a callback in one go; a client that trickles bytes is holding a slot, not delivering.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog (Tripletex retries). An idle
/// connection costs a socket and a few KiB, so the cap is high enough that slow clients cannot
/// fill it within the header timeout (the units raise `LimitNOFILE` to match), and the reverse
/// proxy in front should buffer requests (nginx does by default) so that only whole ones reach us.
const LIMITS: Limits = Limits {
    name: "webhooks",
    max_connections: 2048,
    header_timeout: Some(HEADER_TIMEOUT),
};

/// The receiver, listening in the background until its cancellation token fires.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Binds `listen` and serves until `cancel`. `routes` is read per request, so a reload
    /// takes effect at once, and so is `subscribed`; `callbacks` gets every valid callback.
    pub async fn start(
        listen: SocketAddr,
        routes: watch::Receiver<Arc<Routes>>,
        subscribed: Subscribed,
        callbacks: mpsc::Sender<Callback>,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cancel: cancel.clone(),
            routes,
            subscribed,
            callbacks,
            recent: Mutex::default(),
            refusals: Mutex::new(Refusals::default()),
            metrics,
        });
        let task = tokio::spawn(accept_loop(listener, shared, cancel));
        Ok(Self { addr, task })
    }

    /// The address bound (`listen` with port 0 picks one).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the accept loop to end (after cancellation).
    pub async fn join(self) {
        // The loop only ends by cancellation; a panic there has been reported by tokio.
        let _ = self.task.await;
    }
}

struct Shared {
    cancel: CancellationToken,
    routes: watch::Receiver<Arc<Routes>>,
    subscribed: Subscribed,
    callbacks: mpsc::Sender<Callback>,
    recent: Mutex<RecentKeys>,
    refusals: Mutex<Refusals>,
    /// Counts every refusal (`webhook_refusals_total{status}`), logged or not.
    metrics: Arc<Metrics>,
}

/// The log throttle of refusals.
#[derive(Default)]
struct Refusals {
    last_logged: Option<Instant>,
    unlogged: u64,
    /// A task will report `unlogged` when the period ends.
    flush_pending: bool,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let connections = cancel.clone();
    http_accept::accept_loop(listener, LIMITS, cancel, move |stream| {
        let (shared, cancel) = (Arc::clone(&shared), connections.clone());
        async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(respond(&shared, request).await) }
            });
            let io = TokioIo::new(stream);
            http_accept::serve_http1(io, service, LIMITS.header_timeout, &cancel).await;
        }
    })
    .await;
}

async fn respond(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match accept(shared, request).await {
        Ok(()) => answer(StatusCode::OK),
        Err((status, reason)) => {
            shared.refused(status, reason);
            answer(status)
        }
    }
}

type Refusal = (StatusCode, &'static str);

/// Checks the request and hands a valid callback on.
async fn accept(shared: &Shared, request: Request<Incoming>) -> Result<(), Refusal> {
    if request.method() != Method::POST {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "not a POST"));
    }
    let (shop, kinds, hmac) = {
        let routes = shared.routes.borrow();
        let route = routes
            .find(request.uri().path())
            .ok_or((StatusCode::NOT_FOUND, "no shop has this path"))?;
        let sent = header(&request, AUTH_HEADER)
            .ok_or((StatusCode::UNAUTHORIZED, "the auth header is missing"))?;
        if !secrets::same(&SecretString::from(sent), &route.auth) {
            return Err((StatusCode::UNAUTHORIZED, "the auth header is wrong"));
        }
        (route.shop.clone(), route.kinds.clone(), route.hmac.clone())
    };
    let key = header(&request, IDEMPOTENCY_KEY);
    let signature = header(&request, SIGNATURE);
    let body = read_body(request).await?;
    // Some companies may not sign; a signature that is sent must be right.
    if let Some(signature) = signature {
        let signed = [key.as_deref().unwrap_or("").as_bytes(), b"&", &body];
        if !secrets::verify_sha512(&hmac, &signed, &signature) {
            return Err((StatusCode::UNAUTHORIZED, "the signature is wrong"));
        }
    }
    let envelope = envelope::parse(&body, &kinds).map_err(|reason| {
        tracing::debug!(event = "webhooks.malformed", shop, %reason, "callback refused");
        (
            StatusCode::BAD_REQUEST,
            "the body is not a callback of this shop",
        )
    })?;
    match shared.subscribed.of(&shop, envelope.subscription_id) {
        Subscription::Unknown => {}
        Subscription::NotOurs => {
            return Err((StatusCode::BAD_REQUEST, "not a subscription of this shop"));
        }
        Subscription::For(event) if event != envelope.event => {
            return Err((StatusCode::BAD_REQUEST, "not the subscription's event"));
        }
        Subscription::For(_) => {}
    }
    if let Some(key) = &key
        && shared.recent().contains(key)
    {
        // Handed on already: Tripletex did not see our answer. Nothing to do twice.
        return Ok(());
    }
    let callback = Callback {
        shop,
        news: envelope.news,
    };
    shared.callbacks.try_send(callback).map_err(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is not keeping up (Tripletex will retry)",
        )
    })?;
    if let Some(key) = &key {
        shared.recent().remember(key);
    }
    Ok(())
}

/// A header's value as text, if it is sent and is text.
fn header(request: &Request<Incoming>, name: &str) -> Option<String> {
    let value = request.headers().get(name)?.to_str().ok()?;
    Some(value.to_owned())
}

/// The body, at most [`MAX_BODY`], within [`BODY_TIMEOUT`].
async fn read_body(request: Request<Incoming>) -> Result<Bytes, Refusal> {
    let too_large = (StatusCode::PAYLOAD_TOO_LARGE, "the body is too large");
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large);
    }
    let body = Limited::new(request.into_body(), MAX_BODY).collect();
    let body = tokio::time::timeout(BODY_TIMEOUT, body)
        .await
        .map_err(|_| {
            (
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            )
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large
            } else {
                (StatusCode::BAD_REQUEST, "the body could not be read")
            }
        })?;
    Ok(body.to_bytes())
}

impl Shared {
    fn recent(&self) -> std::sync::MutexGuard<'_, RecentKeys> {
        // A set of strings: a panic while holding it leaves it usable.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs a refusal, at most once per [`REFUSAL_LOG_EVERY`]; the ones held back are counted in
    /// the next line, or in a `webhooks.refused_since` line once the period ends quietly.
    fn refused(self: &Arc<Self>, status: StatusCode, reason: &'static str) {
        self.metrics.webhook_refused(status.as_u16());
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(at) = r
            .last_logged
            .filter(|at| now.duration_since(*at) < REFUSAL_LOG_EVERY)
        {
            r.unlogged += 1;
            if !r.flush_pending {
                r.flush_pending = true;
                tokio::spawn(Arc::clone(self).flush_refusals(at + REFUSAL_LOG_EVERY));
            }
            return;
        }
        let unlogged = std::mem::take(&mut r.unlogged);
        r.last_logged = Some(now);
        tracing::warn!(
            event = "webhooks.refused",
            status = status.as_u16(),
            reason,
            unlogged,
            "refused a webhook callback"
        );
    }

    /// At `at` (the end of a logging period), reports the refusals held back in it, if no
    /// refusal since has reported them.
    async fn flush_refusals(self: Arc<Self>, at: Instant) {
        tokio::select! {
            () = self.cancel.cancelled() => {}
            () = tokio::time::sleep_until(at) => {}
        }
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        r.flush_pending = false;
        let unlogged = std::mem::take(&mut r.unlogged);
        if unlogged > 0 {
            r.last_logged = Some(Instant::now());
            tracing::warn!(
                event = "webhooks.refused_since",
                unlogged,
                "refused more webhook callbacks than were logged"
            );
        }
    }
}

fn answer(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn events(&self) -> Vec<serde_json::Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_refusals_is_counted_when_it_ends_in_quiet() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || sink.clone())
            .finish();
        let _log = tracing::subscriber::set_default(subscriber);
        let (_routes_tx, routes) = watch::channel(Arc::new(Routes::default()));
        let (callbacks, _rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            cancel: CancellationToken::new(),
            routes,
            subscribed: Subscribed::default(),
            callbacks,
            recent: Mutex::default(),
            refusals: Mutex::new(Refusals::default()),
            metrics: Arc::default(),
        });
        for _ in 0..5 {
            shared.refused(StatusCode::NOT_FOUND, "no shop has this path");
        }
        let events = lines.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event"], "webhooks.refused");
        // Quiet from here on: the four held back are reported when the period ends.
        tokio::time::sleep(REFUSAL_LOG_EVERY + Duration::from_secs(1)).await;
        let events = lines.events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[1]["event"], "webhooks.refused_since");
        assert_eq!(events[1]["unlogged"], 4);
        // Each refusal is counted, logged or not.
        let text = shared.metrics.prometheus_text();
        assert!(
            text.contains(r#"tripletex_sync_webhook_refusals_total{status="404"} 5"#),
            "{text}"
        );
        // Nothing held back: no further line.
        tokio::time::sleep(REFUSAL_LOG_EVERY * 2).await;
        assert_eq!(lines.events().len(), 2);
    }
}

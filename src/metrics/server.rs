//! The opt-in HTTP endpoint (`[metrics] listen`): `GET /metrics` and `GET /healthz`, and the
//! daemon's status page ([`Pages`]) beside them.
//!
//! Invariants: only those two paths (any other method on them 405) and GETs of the pages answer,
//! anything else is 404; `/healthz`
//! is 200 while the daemon's health probe says the scheduler is making progress and the state
//! store can write, and 503 otherwise;
//! the accept loop (the workspace's `http-accept`) and every connection end with the daemon's
//! cancellation token. Nothing a client
//! sends is logged.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_accept::Limits;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Scrapers and health probes: a handful at a time.
const LIMITS: Limits = Limits {
    name: "metrics",
    max_connections: 64,
    header_timeout: Some(Duration::from_secs(10)),
};

/// The paths the endpoint serves besides its own (the status page, from a layer above): the
/// response for a GET of that URI, or `None` when it is not one of them.
pub type Pages = Arc<dyn Fn(&Uri) -> Option<Response<Full<Bytes>>> + Send + Sync>;

/// A running endpoint: where it listens, and its task.
pub struct MetricsServer {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

/// Binds `addr` and serves until `cancel`. `healthy` is asked on every `/healthz`, `pages` on
/// every other GET.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    healthy: Arc<dyn Fn() -> bool + Send + Sync>,
    pages: Option<Pages>,
    cancel: CancellationToken,
) -> io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(listener, metrics, healthy, pages, cancel));
    Ok(MetricsServer { addr, task })
}

async fn accept_loop(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    healthy: Arc<dyn Fn() -> bool + Send + Sync>,
    pages: Option<Pages>,
    cancel: CancellationToken,
) {
    let connections = cancel.clone();
    http_accept::accept_loop(listener, LIMITS, cancel, move |stream| {
        let (metrics, healthy, cancel) = (metrics.clone(), healthy.clone(), connections.clone());
        let pages = pages.clone();
        async move {
            let service = service_fn(move |request| {
                let page = (request.method() == Method::GET)
                    .then(|| pages.as_ref().and_then(|p| p(request.uri())))
                    .flatten();
                let reply = page.unwrap_or_else(|| respond(&metrics, healthy.as_ref(), &request));
                async move { Ok::<_, std::convert::Infallible>(reply) }
            });
            let io = TokioIo::new(stream);
            http_accept::serve_http1(io, service, LIMITS.header_timeout, &cancel).await;
        }
    })
    .await;
}

fn respond(
    metrics: &Metrics,
    healthy: &(dyn Fn() -> bool + Send + Sync),
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            // Prometheus asks for OpenMetrics; curl and older scrapers get the classic format.
            let openmetrics = request
                .headers()
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/openmetrics-text"));
            if openmetrics {
                (StatusCode::OK, OPENMETRICS, metrics.openmetrics())
            } else {
                (StatusCode::OK, PROMETHEUS_TEXT, metrics.prometheus_text())
            }
        }
        (&Method::GET, "/healthz") => {
            if healthy() {
                (StatusCode::OK, PROMETHEUS_TEXT, "ok\n".to_owned())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    PROMETHEUS_TEXT,
                    "unhealthy: the scheduler is not making progress or the state store cannot write (see the log)\n".to_owned(),
                )
            }
        }
        (_, "/metrics" | "/healthz") => (
            StatusCode::METHOD_NOT_ALLOWED,
            PROMETHEUS_TEXT,
            "GET only\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            PROMETHEUS_TEXT,
            "/metrics or /healthz\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

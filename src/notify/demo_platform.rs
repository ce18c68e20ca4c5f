//! The platform as `demo` plays it: a loopback receiver (127.0.0.1:0) that verifies every
//! message the Standard Webhooks way, answers its very first request 503 (so the demo shows a
//! retry), and keeps one line per message for the demo to print.
//!
//! Invariants: a message counts as signed only if `standardwebhooks` verifies it with the
//! demo's secret (timestamp tolerance included); a retry is recognised by its `webhook-id`;
//! the receiver ends with the token it is given.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_accept::Limits;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const LIMITS: Limits = Limits {
    name: "demo platform",
    max_connections: 16,
    header_timeout: Some(Duration::from_secs(5)),
};

/// One message as the platform saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// `check.verdict kaffebrenneriet customer_numbers conflict`, …
    what: String,
    signed: bool,
    /// Attempts refused before the one that delivered it.
    retries: u32,
    delivered: bool,
}

/// The messages, by `webhook-id`, and those ids in order of first arrival.
#[derive(Default)]
struct Book {
    order: Vec<String>,
    by_id: BTreeMap<String, Seen>,
}

/// A running demo platform.
pub struct DemoPlatform {
    pub url: String,
    seen: Arc<Mutex<Book>>,
}

impl DemoPlatform {
    /// Serves until `cancel`, verifying with `secret` (`whsec_…`).
    pub async fn start(secret: &str, cancel: CancellationToken) -> std::io::Result<Self> {
        let verifier = Arc::new(
            standardwebhooks::Webhook::new(secret)
                .map_err(|e| std::io::Error::other(format!("the demo secret: {e:?}")))?,
        );
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}/hooks/tripletex-sync", listener.local_addr()?);
        let seen: Arc<Mutex<Book>> = Arc::default();
        let shared = seen.clone();
        let connections = cancel.clone();
        tokio::spawn(http_accept::accept_loop(
            listener,
            LIMITS,
            cancel,
            move |stream| {
                let (seen, verifier, cancel) =
                    (shared.clone(), verifier.clone(), connections.clone());
                async move {
                    let service = service_fn(move |request| {
                        let (seen, verifier) = (seen.clone(), verifier.clone());
                        async move { Ok::<_, hyper::Error>(take(request, &seen, &verifier).await) }
                    });
                    let io = TokioIo::new(stream);
                    http_accept::serve_http1(io, service, LIMITS.header_timeout, &cancel).await;
                }
            },
        ));
        Ok(Self { url, seen })
    }

    /// `notified: check.verdict kaffebrenneriet customer_numbers conflict (signed, delivered
    /// after 1 retry)`, one line per message, in order of arrival.
    pub fn lines(&self) -> Vec<String> {
        let book = self.seen.lock().expect("demo platform lock");
        book.order
            .iter()
            .map(|id| {
                let s = &book.by_id[id];
                let signed = if s.signed { "signed" } else { "BAD SIGNATURE" };
                let fate = match (s.delivered, s.retries) {
                    (false, _) => "not delivered yet".to_owned(),
                    (true, 0) => "delivered".to_owned(),
                    (true, 1) => "delivered after 1 retry".to_owned(),
                    (true, n) => format!("delivered after {n} retries"),
                };
                format!("notified: {} ({signed}, {fate})", s.what)
            })
            .collect()
    }
}

/// Reads one message, verifies it and answers: 503 to the very first request, else 204.
async fn take(
    request: Request<hyper::body::Incoming>,
    seen: &Mutex<Book>,
    verifier: &standardwebhooks::Webhook,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return answer(StatusCode::BAD_REQUEST),
    };
    let signed = verifier.verify(&body, &parts.headers).is_ok();
    let id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut book = seen.lock().expect("demo platform lock");
    let first_request = book.order.is_empty();
    let Book { order, by_id } = &mut *book;
    let entry = by_id.entry(id.clone()).or_insert_with(|| {
        order.push(id);
        Seen {
            what: describe(&json),
            signed,
            retries: 0,
            delivered: false,
        }
    });
    if first_request {
        entry.retries += 1;
        return answer(StatusCode::SERVICE_UNAVAILABLE);
    }
    entry.delivered = true;
    answer(StatusCode::NO_CONTENT)
}

/// The type and the data's names, as one phrase.
fn describe(body: &serde_json::Value) -> String {
    let data = &body["data"];
    let parts = [
        &body["type"],
        &data["shop"],
        &data["check"],
        &data["verdict"],
    ];
    parts
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn answer(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

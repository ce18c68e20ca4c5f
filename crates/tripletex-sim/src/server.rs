//! The HTTP side: the workspace's accept loop (`http-accept`) and the per-request
//! pipeline route → identify → rate limit → faults → handle → headers → request log.
//!
//! Invariants: the world lock is never held across an `.await` (delays sleep unlocked and the
//! handler re-locks); every response carries a unique `x-tlx-request-id` equal to the error body's
//! `requestId`; a 429 never carries `X-Rate-Limit-Reset` (Tripletex's known bug); neither tracing
//! nor the request log ever sees a token, a body or a header (paths of
//! `/token/session/{token}` are redacted, token query values replaced).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_accept::Limits;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Simulator;
use super::answers::{self, HugeBody};
use super::api::{self, Reply, Request, Route};
use super::error::ApiError;
use super::faults::FaultKind;
use super::ratelimit::Verdict;
use super::rawpath::RawPathFix;

/// Bodies are tiny JSON objects; anything bigger is a client bug, not a load test.
const MAX_BODY: usize = 1 << 20;

/// A response body: a whole one, or one generated while it is sent.
type SimBody = Either<Full<Bytes>, HugeBody>;

/// A simulator listening in the background; dropping it stops it too.
#[derive(Debug)]
pub struct RunningSim {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningSim {
    pub(crate) async fn start(sim: Simulator, addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(sim, listener, cancel.clone()));
        Ok(Self {
            addr,
            cancel,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v2`, the shape of Tripletex's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    /// Stops accepting, closes idle connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            // The loop only ends by cancellation; a join error would mean it panicked, which
            // the tests using it will already have noticed.
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Each connection's first line passes through [`RawPathFix`] (a client may send `>` raw).
async fn accept_loop(sim: Simulator, listener: TcpListener, cancel: CancellationToken) {
    // The simulator's clients are tests and `demo`: no header timeout, no tight cap.
    let limits = Limits {
        name: "sim",
        max_connections: 4096,
        header_timeout: None,
    };
    let on_cancel = cancel.clone();
    http_accept::accept_loop(listener, limits, on_cancel, move |stream| {
        let (sim, cancel) = (sim.clone(), cancel.clone());
        async move {
            let service = service_fn(move |request| {
                let sim = sim.clone();
                async move { respond(&sim, request).await }
            });
            let io = TokioIo::new(RawPathFix::new(stream));
            http_accept::serve_http1(io, service, limits.header_timeout, &cancel).await;
        }
    })
    .await;
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("simulated connection reset")]
struct SimulatedReset;

/// What the request turns into once rate limit and faults have had their say.
enum Step {
    Reply(Reply),
    Reset,
    Huge {
        bytes: u64,
        gzip: bool,
    },
    Handle {
        route: Route,
        delay: Option<Duration>,
        shape: Shape,
    },
}

/// How a handled request's answer is bent.
enum Shape {
    Normal,
    Malformed,
    Mutated(Vec<super::faults::Mutation>),
    Replaced(serde_json::Value),
    Endless,
    FirstPageAgain,
}

async fn respond(
    sim: &Simulator,
    incoming: hyper::Request<Incoming>,
) -> Result<Response<SimBody>, SimulatedReset> {
    let request_id = sim.next_request_id();
    let (parts, body) = incoming.into_parts();
    let decoded = percent_decode(parts.uri.path());
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let header = |name: HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let relative = decoded
        .strip_prefix("/v2")
        .filter(|rest| rest.is_empty() || rest.starts_with('/'));
    let route = relative.and_then(|path| Route::find(&parts.method, path));
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(ApiError::new(400, 4000, "Could not read the request body")),
    };
    let request = Request {
        method: parts.method.clone(),
        path: relative.unwrap_or(&decoded).to_owned(),
        query,
        body: body.as_ref().cloned().unwrap_or_default(),
        authorization: header(hyper::header::AUTHORIZATION),
        if_none_match: header(hyper::header::IF_NONE_MATCH),
    };

    let (verdict, step, company) = {
        let mut world = sim.lock();
        match (route, body) {
            (None, _) => (None, Step::Reply(ApiError::not_found().into()), None),
            (Some(_), Err(error)) => (None, Step::Reply(error.into()), None),
            (Some(route), Ok(_)) => {
                let identity = api::identify(&world, &route, &request);
                let company = identity
                    .as_ref()
                    .and_then(|who| world.employees.get(&who.employee_token))
                    .map(|employee| employee.company_id);
                let verdict = identity.as_ref().map(|who| {
                    world
                        .limiter
                        .hit(&who.consumer_token, &who.employee_token, Instant::now())
                });
                let employee = identity.as_ref().map(|who| who.employee_token.as_str());
                let step = if matches!(verdict, Some(Verdict::Limited { .. })) {
                    Step::Reply(ApiError::too_many_requests().into())
                } else {
                    let handle = |delay, shape| Step::Handle {
                        route,
                        delay,
                        shape,
                    };
                    match world.faults.take(&request.path, employee) {
                        None => handle(None, Shape::Normal),
                        Some(FaultKind::Status(status)) => {
                            Step::Reply(ApiError::from_status(status).into())
                        }
                        Some(FaultKind::Delay(delay)) => handle(Some(delay), Shape::Normal),
                        Some(FaultKind::ConnectionReset) => Step::Reset,
                        Some(FaultKind::MalformedJson) => handle(None, Shape::Malformed),
                        Some(FaultKind::TooManyRequests) => {
                            Step::Reply(ApiError::too_many_requests().into())
                        }
                        Some(FaultKind::Envelope(mutations)) => {
                            handle(None, Shape::Mutated(mutations))
                        }
                        Some(FaultKind::EndlessPages) => handle(None, Shape::Endless),
                        Some(FaultKind::RepeatFirstPage) => handle(None, Shape::FirstPageAgain),
                        Some(FaultKind::HugeBody { bytes, gzip }) => Step::Huge { bytes, gzip },
                        Some(FaultKind::Answer(value)) => handle(None, Shape::Replaced(value)),
                    }
                };
                (verdict, step, company)
            }
        }
    };

    let (reply, malformed) = match step {
        Step::Reply(reply) => (reply, false),
        Step::Reset => {
            sim.record(
                &request,
                &decoded,
                None,
                verdict.map(Verdict::remaining),
                company,
            );
            return Err(SimulatedReset);
        }
        Step::Huge { bytes, gzip } => {
            let mut response = Response::new(Either::Right(HugeBody::new(bytes, gzip)));
            if gzip {
                response
                    .headers_mut()
                    .insert("content-encoding", HeaderValue::from_static("gzip"));
            }
            decorate(&mut response, true, &request_id, verdict);
            let remaining = verdict.map(Verdict::remaining);
            sim.record(&request, &decoded, Some(200), remaining, company);
            return Ok(response);
        }
        Step::Handle {
            route,
            delay,
            shape,
        } => {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let now = sim.now();
            let mut world = sim.lock();
            let is_list = matches!(route, Route::Customers | Route::Invoices);
            let shape = match shape {
                Shape::Mutated(_) | Shape::Endless | Shape::FirstPageAgain if !is_list => {
                    Shape::Normal
                }
                shape => shape,
            };
            match shape {
                Shape::Normal => (api::handle(&mut world, &route, &request, now), false),
                Shape::Malformed => (api::handle(&mut world, &route, &request, now), true),
                Shape::Mutated(mutations) => {
                    let reply = api::handle(&mut world, &route, &request, now);
                    (answers::mutate(reply, &mutations), false)
                }
                Shape::Replaced(value) => {
                    let reply = api::handle(&mut world, &route, &request, now);
                    (answers::replace(reply, value), false)
                }
                // Still authenticated: only a caller with a live session sees the endless list.
                Shape::Endless => match api::handle(&mut world, &route, &request, now) {
                    Reply::Json(200, _) => (answers::endless(&route, &request), false),
                    other => (other, false),
                },
                Shape::FirstPageAgain => (
                    answers::first_page_again(&mut world, &route, &request, now),
                    false,
                ),
            }
        }
    };
    let response = render(reply, malformed, &request_id, verdict);
    let remaining = verdict.map(|v| match response.status() {
        StatusCode::TOO_MANY_REQUESTS => 0,
        _ => v.remaining(),
    });
    sim.record(
        &request,
        &decoded,
        Some(response.status().as_u16()),
        remaining,
        company,
    );
    Ok(response)
}

fn render(
    reply: Reply,
    malformed: bool,
    request_id: &str,
    verdict: Option<Verdict>,
) -> Response<SimBody> {
    let serialize = |value: &serde_json::Value| serde_json::to_vec(value).unwrap_or_default();
    let (status, mut body) = match reply {
        Reply::Json(status, value) => (status, serialize(&value)),
        Reply::Empty(status) => (status, Vec::new()),
        Reply::Error(error) => (error.status, serialize(&error.body(request_id))),
    };
    let mut status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if malformed {
        status = StatusCode::OK;
        if body.len() < 2 {
            body = b"{\"value\":{".to_vec();
        } else {
            body.truncate(body.len() / 2);
        }
    }
    let has_body = !body.is_empty();
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    decorate(&mut response, has_body, request_id, verdict);
    response
}

/// Request id, content type and rate-limit headers.
fn decorate(
    response: &mut Response<SimBody>,
    has_body: bool,
    request_id: &str,
    verdict: Option<Verdict>,
) {
    let status = response.status();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-tlx-request-id", value);
    }
    if has_body {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    match verdict {
        Some(Verdict::Allowed {
            limit,
            remaining,
            reset,
        }) if status != StatusCode::TOO_MANY_REQUESTS => {
            headers.insert("x-rate-limit-limit", HeaderValue::from(limit));
            headers.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
            headers.insert("x-rate-limit-reset", HeaderValue::from(reset));
        }
        Some(Verdict::Allowed { limit, .. } | Verdict::Limited { limit }) => {
            headers.insert("x-rate-limit-limit", HeaderValue::from(limit));
            headers.insert("x-rate-limit-remaining", HeaderValue::from(0u32));
        }
        None => {}
    }
}

/// `%3E` → `>`; an invalid escape stays as written, as most servers do.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if let (b'%', Some(hi), Some(lo)) = (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path as it may appear in logs: a session token in it becomes `{token}`.
pub(crate) fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/v2/token/session/") {
        Some(rest) if rest != ">whoAmI" && rest != ":create" && !rest.is_empty() => {
            "/v2/token/session/{token}".to_owned()
        }
        _ => path.to_owned(),
    }
}

/// Query pairs as they may appear in logs: token values are secrets.
pub(crate) fn loggable_query(query: &[(String, String)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(key, value)| match key.as_str() {
            "consumerToken" | "employeeToken" => (key.clone(), "<redacted>".to_owned()),
            _ => (key.clone(), value.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_keeps_bad_ones() {
        assert_eq!(
            percent_decode("/v2/token/session/%3EwhoAmI"),
            "/v2/token/session/>whoAmI"
        );
        assert_eq!(percent_decode("/a%2"), "/a%2");
        assert_eq!(percent_decode("/a%zz"), "/a%zz");
    }

    #[test]
    fn tokens_never_reach_logs() {
        assert_eq!(
            loggable_path("/v2/token/session/abc"),
            "/v2/token/session/{token}"
        );
        assert_eq!(
            loggable_path("/v2/token/session/>whoAmI"),
            "/v2/token/session/>whoAmI"
        );
        let query = vec![("employeeToken".to_owned(), "secret".to_owned())];
        assert_eq!(loggable_query(&query)[0].1, "<redacted>");
    }
}

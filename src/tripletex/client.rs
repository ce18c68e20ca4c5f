//! The HTTP pipeline: pacing, retries, the circuit breaker, 401 handling and typed responses.
//!
//! Every request passes, in order: breaker → limiter (governor + header reserve) → send (racing
//! the shutdown token) → header bookkeeping → status policy. Policy: 429 is retried on any method
//! after the limiter's wait; 5xx, timeouts and connection errors are retried only for idempotent
//! requests (the session mint counts as one: a duplicate mint is harmless), at most `max_tries`;
//! a 401 triggers one shared re-mint and one retry, a second 401 is final. Every failure is named
//! as what it was (a 5xx says "Tripletex answered 500 …", an open circuit names the failure that
//! opened it). Bodies are read within `max_body` ([`super::body`]) and list answers validated
//! ([`super::page`]) before anything is returned. Token text exists here only while a request is
//! built; errors are stripped of URLs, which can carry a session token.

use std::sync::Arc;

use reqwest::{Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::body::read_limited;
use super::breaker::Breaker;
use super::model::{ApiError, Record};
use super::page::{self, Asked, Page};
use super::ratelimit::{ShopLimiter, backoff};
use super::session::{SessionSlot, usable_until};
use super::{ClientSettings, TripletexError};
use crate::checks::{CheckKind, KindSpec};
use crate::clock::SharedClock;

/// What all shops share: the pooled HTTP client, the consumer token, the clock and the settings.
pub struct Tripletex {
    http: reqwest::Client,
    base_url: String,
    pub(super) consumer_token: SecretString,
    pub(super) clock: SharedClock,
    pub(super) settings: ClientSettings,
}

impl Tripletex {
    pub fn new(
        base_url: &Url,
        consumer_token: SecretString,
        clock: SharedClock,
        settings: ClientSettings,
    ) -> Result<Arc<Self>, TripletexError> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(
                settings
                    .request_timeout
                    .min(std::time::Duration::from_secs(10)),
            )
            // No reqwest decompression (feature off): `body` decodes gzip and counts both sizes.
            .user_agent(concat!("tripletex-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TripletexError::Unavailable(transport_error(e)))?;
        Ok(Arc::new(Self {
            http,
            base_url: base_url.as_str().trim_end_matches('/').to_owned(),
            consumer_token,
            clock,
            settings,
        }))
    }

    /// One shop's client. `company_id` 0 means the key owner's own company.
    pub fn shop(
        self: &Arc<Self>,
        name: &str,
        employee_token: SecretString,
        company_id: i64,
        cancel: CancellationToken,
    ) -> ShopClient {
        let s = &self.settings;
        ShopClient {
            api: Arc::clone(self),
            name: name.to_owned(),
            employee_token,
            company_id,
            limiter: ShopLimiter::new(s.limits),
            breaker: Breaker::new(s.breaker_threshold, s.breaker_cooldown),
            session: SessionSlot::default(),
            cancel,
        }
    }
}

/// One shop's view of Tripletex.
pub struct ShopClient {
    pub(super) api: Arc<Tripletex>,
    pub(super) name: String,
    pub(super) employee_token: SecretString,
    pub(super) company_id: i64,
    pub(super) limiter: ShopLimiter,
    breaker: Breaker,
    pub(super) session: SessionSlot,
    pub(super) cancel: CancellationToken,
}

/// A list GET's outcome: `If-None-Match` matched (304; without `If-None-Match` a 304 is an
/// error), or a validated page.
#[derive(Debug)]
pub enum Fetched<T> {
    NotModified,
    Page(Page<T>),
}

/// A session token to authenticate with, and when it dies.
#[derive(Clone, Copy)]
pub(super) struct Auth<'a> {
    pub token: &'a SecretString,
    pub expires_at: jiff::Timestamp,
}

/// One request, described so it can be sent again.
pub(super) struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    /// Extra path segment, percent-encoded by `url` (used for the token in DELETE).
    pub segment: Option<&'a str>,
    pub query: &'a [(&'a str, String)],
    pub json: Option<&'a serde_json::Value>,
    pub if_none_match: Option<&'a str>,
    pub idempotent: bool,
}

impl<'a> Call<'a> {
    pub fn get(path: &'a str, query: &'a [(&'a str, String)]) -> Self {
        Self {
            method: Method::GET,
            path,
            segment: None,
            query,
            json: None,
            if_none_match: None,
            idempotent: true,
        }
    }
}

impl ShopClient {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many 429s this shop has met since start.
    pub fn throttled_count(&self) -> u64 {
        self.limiter.throttled_count()
    }

    /// A list GET of a check kind's records (`/customer`, `/invoice`), optionally conditional
    /// on a `versionDigest`. The answer is checked against the `from`/`count` in `query` and the
    /// kind's fields ([`page::parse`]).
    pub async fn list(
        &self,
        kind: &KindSpec,
        query: &[(&str, String)],
        if_none_match: Option<&str>,
    ) -> Result<Fetched<Record>, TripletexError> {
        let path = kind.list.path;
        let call = Call {
            if_none_match,
            ..Call::get(path, query)
        };
        let resp = self.authed(&call).await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            // Only `If-None-Match` makes "not modified" mean anything: to any other request it
            // says nothing about the rows, and must not read as "no rows".
            return match if_none_match {
                Some(_) => Ok(Fetched::NotModified),
                None => Err(TripletexError::Malformed {
                    path: path.to_owned(),
                    reason:
                        "Tripletex answered 304 Not Modified to a request without If-None-Match"
                            .to_owned(),
                }),
            };
        }
        // A 1000-row page can take a while to arrive: shutdown must not wait for it.
        let body = tokio::select! {
            _ = self.cancel.cancelled() => return Err(TripletexError::Cancelled),
            body = read_limited(resp, self.api.settings.max_body) => body?,
        };
        page::parse(path, &body, Asked::from_query(query), kind).map(Fetched::Page)
    }

    /// Sends `call` with the shop's session, re-minting once (shared) after a 401, and taking a
    /// fresh session if the one it started with died while the request waited.
    pub(super) async fn authed(&self, call: &Call<'_>) -> Result<Response, TripletexError> {
        let mut active = self.ensure_session().await?;
        let mut re_minted = false;
        let mut expired_waiting = false;
        loop {
            let resp = match self.send(call, Some(active.auth())).await {
                Err(TripletexError::SessionExpired) if !expired_waiting => {
                    expired_waiting = true;
                    active = self.ensure_session().await?;
                    continue;
                }
                other => other?,
            };
            if resp.status() != StatusCode::UNAUTHORIZED {
                return check(resp, call.path).await;
            }
            if re_minted {
                return Err(TripletexError::Unauthorized);
            }
            tracing::debug!(event = "session.rejected", shop = %self.name, path = call.path, "401; re-minting once");
            active = self.replace(active.generation).await?;
            re_minted = true;
        }
    }

    /// Breaker, limiter, send, retry policy. Returns any response that is not 429/5xx.
    ///
    /// A session token past its expiry is never sent: after the waits (limiter, 429, backoff) the
    /// expiry is checked again and [`TripletexError::SessionExpired`] returned instead.
    pub(super) async fn send(
        &self,
        call: &Call<'_>,
        session: Option<Auth<'_>>,
    ) -> Result<Response, TripletexError> {
        let s = &self.api.settings;
        let (mut tries, mut throttled) = (0u32, 0u32);
        loop {
            if let Err(last) = self.breaker.allow() {
                return Err(TripletexError::CircuitOpen { last });
            }
            let waiting = std::time::Instant::now();
            self.limiter.acquire(&self.cancel).await?;
            self.waited(waiting.elapsed());
            if session.is_some_and(|a| self.api.clock.now() >= usable_until(a.expires_at)) {
                return Err(TripletexError::SessionExpired);
            }
            tries += 1;
            let request = self.build(call, session.map(|a| a.token))?;
            let result = tokio::select! {
                _ = self.cancel.cancelled() => return Err(TripletexError::Cancelled),
                r = request.send() => r,
            };
            self.answered(call.path, result.as_ref().ok().map(|r| r.status().as_u16()));
            let failure = match result {
                Ok(resp) => {
                    self.limiter.observe(resp.headers());
                    let status = resp.status();
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        // Tripletex answered, so the transport is fine: this also settles a
                        // half-open trial, which would otherwise stay "in flight" for good and
                        // keep the circuit open forever.
                        self.breaker.success(&self.name);
                        throttled += 1;
                        tries -= 1;
                        if throttled > s.max_throttled {
                            return Err(TripletexError::Throttled(throttled));
                        }
                        let wait = self.limiter.on_throttled();
                        tracing::warn!(
                            event = "http.throttled",
                            shop = %self.name,
                            path = call.path,
                            wait_ms = wait.as_millis() as u64,
                            "429 from Tripletex; waiting before retrying"
                        );
                        self.pause(wait).await?;
                        self.waited(wait);
                        continue;
                    }
                    self.limiter.settled();
                    if !status.is_server_error() {
                        self.breaker.success(&self.name);
                        return Ok(resp);
                    }
                    let body = api_error(resp).await;
                    TripletexError::ServerError {
                        status: status.as_u16(),
                        code: body.code.unwrap_or_default(),
                        message: body.message.unwrap_or_default(),
                        tries,
                    }
                }
                Err(e) => TripletexError::Unavailable(transport_error(e)),
            };
            self.breaker.failure(&self.name, &failure.to_string());
            if !call.idempotent || tries >= s.max_tries {
                return Err(failure);
            }
            tracing::debug!(event = "http.retry", shop = %self.name, path = call.path, tries, error = %failure);
            self.pause(backoff(
                tries - 1,
                s.limits.backoff_min,
                s.limits.backoff_max,
            ))
            .await?;
        }
    }

    /// Counts one request Tripletex answered with `status` (`None`: no answer).
    fn answered(&self, path: &str, status: Option<u16>) {
        if let Some(m) = &self.api.settings.metrics {
            m.request(&self.name, path, status);
        }
    }

    /// Time held back by our limiter or a 429 before a request could go.
    fn waited(&self, wait: std::time::Duration) {
        if let Some(m) = &self.api.settings.metrics {
            m.limiter_waited(&self.name, wait);
        }
    }

    async fn pause(&self, wait: std::time::Duration) -> Result<(), TripletexError> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(TripletexError::Cancelled),
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }

    pub(super) fn build(
        &self,
        call: &Call<'_>,
        session: Option<&SecretString>,
    ) -> Result<reqwest::RequestBuilder, TripletexError> {
        let mut url = Url::parse(&format!("{}{}", self.api.base_url, call.path))
            .map_err(|e| TripletexError::Unavailable(format!("bad URL for {}: {e}", call.path)))?;
        if let Some(segment) = call.segment {
            url.path_segments_mut()
                .map_err(|()| TripletexError::Unavailable("base URL cannot take a path".into()))?
                .push(segment);
        }
        let mut req = self
            .api
            .http
            .request(call.method.clone(), url)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip");
        if !call.query.is_empty() {
            req = req.query(call.query);
        }
        if let Some(token) = session {
            req = req.basic_auth(self.company_id, Some(token.expose_secret()));
        }
        if let Some(tag) = call.if_none_match {
            req = req.header(reqwest::header::IF_NONE_MATCH, tag);
        }
        if let Some(json) = call.json {
            req = req.json(json);
        }
        Ok(req)
    }
}

/// Maps non-success statuses to errors; passes 2xx and 304 through.
async fn check(resp: Response, path: &str) -> Result<Response, TripletexError> {
    let status = resp.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        return Ok(resp);
    }
    if status == StatusCode::FORBIDDEN {
        return Err(TripletexError::Forbidden {
            access: access_for(path),
        });
    }
    let body = api_error(resp).await;
    Err(TripletexError::Api {
        status: status.as_u16(),
        code: body.code.unwrap_or_default(),
        message: body.message.unwrap_or_default(),
    })
}

/// The access a 403 on `path` says the key lacks, in words an operator can act on.
fn access_for(path: &str) -> String {
    let segment = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    if segment == "token" {
        return "read its own login (whoAmI)".into();
    }
    let kind = CheckKind::ALL
        .into_iter()
        .find(|k| k.spec().list.path.trim_start_matches('/') == segment);
    match kind {
        Some(kind) => kind.spec().list.access.into(),
        None => format!("use {path}"),
    }
}

/// Tripletex's `ApiError` bodies are a few hundred bytes.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The error body, or an empty one when it is missing, unreadable or too large.
pub(super) async fn api_error(resp: Response) -> ApiError {
    read_limited(resp, MAX_ERROR_BODY)
        .await
        .ok()
        .and_then(|body| serde_json::from_slice(&body).ok())
        .unwrap_or_default()
}

/// A single-object answer (`{"value": …}`), within the body limit.
pub(super) async fn read_json<T: DeserializeOwned>(
    resp: Response,
    limit: usize,
) -> Result<T, TripletexError> {
    let bytes = read_limited(resp, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| TripletexError::Decode(e.to_string()))
}

/// A reqwest error as text with its causes (timeout, refused, TLS…), never its URL: a URL can
/// carry a session token (`DELETE /token/session/{token}`).
pub(super) fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

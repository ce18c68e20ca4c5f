//! One shop's HTTP pipeline: pacing, retries and the circuit breaker on the one path every request
//! takes, and what all shops share ([`Tripletex`]: the pooled HTTP client, the consumer token, the
//! clock, the settings).
//!
//! Every request passes, in order: breaker → limiter (governor + header reserve) → send (racing
//! the shutdown token) → header bookkeeping → status policy. Policy: 429 is retried on any method
//! after the limiter's wait; 5xx, timeouts and connection errors are retried only for idempotent
//! requests (the session mint counts as one: a duplicate mint is harmless), at most `max_tries`.
//! Every failure is named as what it was (a 5xx says "Tripletex answered 500 …", an open circuit
//! names the failure that opened it). Token text exists here only while a request is built, and
//! a session token is never sent past the instant its [`Auth`] says; errors are stripped of URLs,
//! which can carry a session token. Sessions (401s, minting) are the next file up, `session`.

use std::sync::Arc;

use reqwest::{Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::body::{api_error, transport_error};
use super::breaker::Breaker;
use super::error::TripletexError;
use super::ratelimit::{ShopLimiter, backoff};
use super::settings::ClientSettings;
use crate::clock::SharedClock;

/// What all shops share: the pooled HTTP client, the consumer token, the clock and the settings.
pub struct Tripletex {
    http: reqwest::Client,
    /// Parsed once: a request's URL is this with its path and query set (parsing the whole URL
    /// per request was ~4 % of an idle pass).
    base_url: Url,
    /// `base_url`'s path without a trailing `/`, which each request's path follows.
    base_path: String,
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
            .pool_max_idle_per_host(settings.max_idle_connections)
            // No reqwest decompression (feature off): `body` decodes gzip and counts both sizes.
            .user_agent(concat!("tripletex-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TripletexError::Unavailable(transport_error(e)))?;
        Ok(Arc::new(Self {
            http,
            base_path: base_url.path().trim_end_matches('/').to_owned(),
            base_url: base_url.clone(),
            consumer_token,
            clock,
            settings,
        }))
    }
}

/// One shop's way to Tripletex: its limiter, circuit breaker and cancellation, and the one send
/// path.
pub(super) struct Pipeline {
    pub api: Arc<Tripletex>,
    /// The shop's name, in logs and for the observer.
    pub name: String,
    /// Sent as the basic-auth user name; 0 means the key owner's own company.
    pub company_id: i64,
    pub limiter: ShopLimiter,
    breaker: Breaker,
    pub cancel: CancellationToken,
}

/// A session token to authenticate with, and the last instant it may be sent (its expiry less
/// the session's safety margin, which the session owns).
#[derive(Clone, Copy)]
pub(super) struct Auth<'a> {
    pub token: &'a SecretString,
    pub usable_until: jiff::Timestamp,
}

/// One request, described so it can be sent again.
pub(super) struct Call<'a> {
    /// What the [`super::Observer`] hears the request as (see its closed set of labels).
    pub endpoint: &'static str,
    pub method: Method,
    pub path: &'a str,
    /// Extra path segment, percent-encoded by `url` (used for the token in DELETE).
    pub segment: Option<&'a str>,
    pub query: &'a [(&'a str, String)],
    pub json: Option<&'a serde_json::Value>,
    pub if_none_match: Option<&'a str>,
    pub idempotent: bool,
    /// Log in as the key owner's own company (Basic user `0`) instead of the shop's
    /// `company_id`: to learn which company a key belongs to when it cannot reach the shop's.
    pub as_key_owner: bool,
}

impl<'a> Call<'a> {
    pub fn get(endpoint: &'static str, path: &'a str, query: &'a [(&'a str, String)]) -> Self {
        Self {
            endpoint,
            method: Method::GET,
            path,
            segment: None,
            query,
            json: None,
            if_none_match: None,
            idempotent: true,
            as_key_owner: false,
        }
    }
}

impl Pipeline {
    pub fn new(
        api: Arc<Tripletex>,
        name: &str,
        company_id: i64,
        cancel: CancellationToken,
    ) -> Self {
        let s = &api.settings;
        Self {
            limiter: ShopLimiter::new(s.limits),
            breaker: Breaker::new(s.breaker_threshold, s.breaker_cooldown),
            api,
            name: name.to_owned(),
            company_id,
            cancel,
        }
    }

    /// Breaker, limiter, send, retry policy. Returns any response that is not 429/5xx.
    ///
    /// A session token past its expiry is never sent: after the waits (limiter, 429, backoff) the
    /// expiry is checked again and [`TripletexError::SessionExpired`] returned instead.
    pub async fn send(
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
            if session.is_some_and(|a| self.api.clock.now() >= a.usable_until) {
                return Err(TripletexError::SessionExpired);
            }
            tries += 1;
            let request = self.build(call, session.map(|a| a.token))?;
            let result = tokio::select! {
                _ = self.cancel.cancelled() => return Err(TripletexError::Cancelled),
                r = request.send() => r,
            };
            self.answered(
                call.endpoint,
                result.as_ref().ok().map(|r| r.status().as_u16()),
            );
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

    /// Tells the observer of one request Tripletex answered with `status` (`None`: no answer).
    fn answered(&self, endpoint: &'static str, status: Option<u16>) {
        if let Some(o) = &self.api.settings.observer {
            o.answered(&self.name, endpoint, status);
        }
    }

    /// Time held back by our limiter or a 429 before a request could go.
    fn waited(&self, wait: std::time::Duration) {
        if let Some(o) = &self.api.settings.observer {
            o.waited(&self.name, wait);
        }
    }

    async fn pause(&self, wait: std::time::Duration) -> Result<(), TripletexError> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(TripletexError::Cancelled),
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }

    /// The request `call` describes, authenticated with `session` if given. Only [`Self::send`]
    /// and a session's close (which must not race the shutdown token) send what it builds.
    pub fn build(
        &self,
        call: &Call<'_>,
        session: Option<&SecretString>,
    ) -> Result<reqwest::RequestBuilder, TripletexError> {
        let mut url = self.api.base_url.clone();
        url.set_path(&format!("{}{}", self.api.base_path, call.path));
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (k, v)));
        }
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
        if let Some(token) = session {
            let company = if call.as_key_owner {
                0
            } else {
                self.company_id
            };
            req = req.basic_auth(company, Some(token.expose_secret()));
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

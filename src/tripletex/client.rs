//! One shop's client: what callers ask of Tripletex (a kind's listing, the session's state), sent
//! through the shop's [`Pipeline`] with its [`Session`].
//!
//! Policy on top of the pipeline: a 401 triggers one shared re-mint and one retry, a second 401
//! is final; a session that died while a request waited is replaced once. Non-success answers
//! become errors named as what they were (a 403 says which access the key lacks). Bodies are read
//! within `max_body` ([`super::body`]) and list answers validated ([`super::page`]) before
//! anything is returned.

use std::sync::Arc;

use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::body::{api_error, read_limited};
use super::error::TripletexError;
use super::model::Record;
use super::page::{self, Asked, Page};
use super::pipeline::{Call, Pipeline, Tripletex};
use super::session::{Active, Closed, Session, SessionInfo};
use crate::checks::{CheckKind, KindSpec};

impl Tripletex {
    /// One shop's client. `company_id` 0 means the key owner's own company.
    pub fn shop(
        self: &Arc<Self>,
        name: &str,
        employee_token: SecretString,
        company_id: i64,
        cancel: CancellationToken,
    ) -> ShopClient {
        ShopClient {
            pipeline: Pipeline::new(Arc::clone(self), name, company_id, cancel),
            session: Session::new(employee_token),
        }
    }
}

/// One shop's view of Tripletex: its employee token, session, rate limiter and circuit breaker.
pub struct ShopClient {
    pipeline: Pipeline,
    session: Session,
}

/// A list GET's outcome: `If-None-Match` matched (304; without `If-None-Match` a 304 is an
/// error), or a validated page.
#[derive(Debug)]
pub enum Fetched<T> {
    NotModified,
    Page(Page<T>),
}

impl ShopClient {
    /// The consumer token this client mints with (for `consumer.rs`'s one request).
    pub(super) fn consumer_token(&self) -> &SecretString {
        &self.pipeline.api.consumer_token
    }

    pub fn name(&self) -> &str {
        &self.pipeline.name
    }

    /// How many 429s this shop has met since start.
    pub fn throttled_count(&self) -> u64 {
        self.pipeline.limiter.throttled_count()
    }

    /// The live session's metadata, if any (for status and sled).
    pub fn session_info(&self) -> Option<SessionInfo> {
        self.session.info(self.pipeline.api.clock.now())
    }

    /// True while a due renewal keeps failing and the old token still serves.
    pub fn renewing(&self) -> bool {
        self.session.renewing()
    }

    /// Makes sure a proven session exists (minting or renewing as due) and says what it is.
    pub async fn connect(&self) -> Result<SessionInfo, TripletexError> {
        self.ensure_session().await.map(|a| a.info.clone())
    }

    /// This shop's session on a new pipeline (`api`'s settings, a fresh limiter and breaker,
    /// `cancel`): how a restarted shop task goes on with its session instead of minting. Only for
    /// the same key and company, and an `api` of the same base URL and consumer token, which the
    /// caller has compared: the session was minted with those.
    pub fn carry_over(self, api: &Arc<Tripletex>, cancel: CancellationToken) -> ShopClient {
        let Pipeline {
            name, company_id, ..
        } = self.pipeline;
        ShopClient {
            pipeline: Pipeline::new(Arc::clone(api), &name, company_id, cancel),
            session: self.session,
        }
    }

    /// Deletes the live session token, if any, by `deadline`: at shutdown, or when a reload
    /// stops the shop. Waits for the shop's limiter but not on its cancellation, which has fired
    /// by then; a token left alive expires on its own.
    pub async fn close(&self, deadline: tokio::time::Instant) -> (Closed, std::time::Duration) {
        self.session.close(&self.pipeline, deadline).await
    }

    async fn ensure_session(&self) -> Result<Arc<Active>, TripletexError> {
        self.session.ensure(&self.pipeline).await
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
            ..Call::get(kind.list.metrics_label, path, query)
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
            _ = self.pipeline.cancel.cancelled() => return Err(TripletexError::Cancelled),
            body = read_limited(resp, self.pipeline.api.settings.max_body) => body?,
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
            let resp = match self.pipeline.send(call, Some(active.auth())).await {
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
            tracing::debug!(event = "session.rejected", shop = %self.pipeline.name, path = call.path, "401; re-minting once");
            active = self
                .session
                .replace(&self.pipeline, active.generation)
                .await?;
            re_minted = true;
        }
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

//! One shop's session token: mint, prove, swap, renew, revoke. [`Session`] holds the employee
//! token and the live session token; its requests take the shop's one send path ([`Pipeline`],
//! the `pipeline` file, passed in), and the client above calls it on a 401.
//!
//! A token minted with `expirationDate = D` dies at 00:00 Europe/Oslo at the start of D, so D is
//! "today in Oslo + session_valid_days" and the expiry instant comes from the tz database.
//! Invariants: a new token is proven with `GET /token/session/>whoAmI` before it replaces the old
//! one (an answer must name a positive `employeeId` and `companyId`, and with the shop's
//! `company_id` set, that company: see `proof`; a token whose answer failed the proof is
//! deleted), and the old one stays in use until then; at most one mint per shop is in flight
//! (callers that meet a 401 share it, and its error if it fails); a token past its expiry, or
//! refused with a 401 that no re-mint could replace, is never sent again; renewal failures back
//! off (capped, full jitter) while the old token lives; the token text lives only in memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::civil::Date;
use jiff::{Span, Timestamp};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use super::body::{api_error, read_json, transport_error};
use super::error::{KeyRefusal, TripletexError, mint_refused};
use super::model::{PostSessionTokenBody, SessionToken, Wrapper};
use super::observer::{SESSION_CREATE, SESSION_DELETE};
use super::pipeline::{Auth, Call, Pipeline};
use super::proof::prove;
use super::ratelimit::{backoff, full_jitter};
use super::settings::ClientSettings;
use crate::clock::{oslo_date, oslo_midnight, span};

/// A token this close to its expiry counts as dead: Tripletex's clock may run ahead of ours.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// What may be recorded about a session: everything but the token.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub minted_at: Timestamp,
    pub expires_at: Timestamp,
    /// When renewal starts: `renew_before` (plus per-mint jitter) ahead of expiry.
    pub renew_at: Timestamp,
    pub company_id: Option<i64>,
    pub employee_id: Option<i64>,
}

pub(super) struct Active {
    pub token: SecretString,
    pub generation: u64,
    pub info: SessionInfo,
}

impl Active {
    pub fn auth(&self) -> Auth<'_> {
        auth(&self.token, self.info.expires_at)
    }

    /// Whether the token may still be sent at `now` (see [`EXPIRY_MARGIN`]).
    fn alive_at(&self, now: Timestamp) -> bool {
        now < usable_until(self.info.expires_at)
    }
}

/// What closing a shop's session came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No live token to delete.
    NoSession,
    Revoked,
    /// A live token could not be deleted (deadline, limiter, or Tripletex said no); it expires on
    /// its own.
    Kept,
}

/// The last instant a token expiring at `expires_at` is sent.
fn usable_until(expires_at: Timestamp) -> Timestamp {
    expires_at
        .checked_sub(span(EXPIRY_MARGIN))
        .unwrap_or(expires_at)
}

/// `token`, to be sent until [`usable_until`] its expiry.
fn auth(token: &SecretString, expires_at: Timestamp) -> Auth<'_> {
    Auth {
        token,
        usable_until: usable_until(expires_at),
    }
}

/// One shop's session: the employee token it is minted with, the live token, and what keeps
/// minting single-flight. Its requests go through the shop's [`Pipeline`], passed in.
pub(super) struct Session {
    employee_token: SecretString,
    current: RwLock<Option<Arc<Active>>>,
    mint: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    renewal: Mutex<Renewal>,
    /// Replacement mints started (under `mint`) and the error of the last one if it failed, so
    /// callers queued behind a failed mint share its error instead of each minting again.
    attempts: Mutex<(u64, Option<TripletexError>)>,
}

#[derive(Default)]
struct Renewal {
    failures: u32,
    not_before: Option<Timestamp>,
}

impl Session {
    pub fn new(employee_token: SecretString) -> Self {
        Self {
            employee_token,
            current: RwLock::default(),
            mint: tokio::sync::Mutex::default(),
            generation: AtomicU64::default(),
            renewal: Mutex::default(),
            attempts: Mutex::default(),
        }
    }

    fn current(&self) -> Option<Arc<Active>> {
        self.current.read().expect("session lock").clone()
    }

    /// The live session's metadata at `now`, if any.
    pub fn info(&self, now: Timestamp) -> Option<SessionInfo> {
        self.current()
            .filter(|a| a.alive_at(now))
            .map(|a| a.info.clone())
    }

    /// True while a due renewal keeps failing and the old token still serves.
    pub fn renewing(&self) -> bool {
        self.renewal.lock().expect("renewal lock").failures > 0
    }

    /// A live session, minting or renewing as needed. Renewal failures are logged and absorbed
    /// while the current token lives; a failed mint without a live token is returned.
    pub async fn ensure(&self, pipe: &Pipeline) -> Result<Arc<Active>, TripletexError> {
        let now = pipe.api.clock.now();
        match self.current() {
            Some(active) if now < active.info.renew_at && active.alive_at(now) => Ok(active),
            Some(active) if active.alive_at(now) => {
                self.renew(pipe, &active).await;
                Ok(self.current().unwrap_or(active))
            }
            stale => {
                if let Some(dead) = stale {
                    tracing::warn!(
                        event = "session.expired",
                        shop = %pipe.name,
                        expired_at = %dead.info.expires_at,
                        "session token died before it could be renewed; minting a new one"
                    );
                }
                self.replace(pipe, stale_generation(self)).await
            }
        }
    }

    /// Mints and proves a token and swaps it in, unless the slot moved past `generation` while
    /// we waited for the mint lock (single-flight). If a mint made while we waited failed, its
    /// error is ours too: a revoked key costs one `:create` however many callers met the 401.
    /// A failed replacement empties the slot when it still holds `generation`: that token was
    /// refused (401) or has expired, so it must neither be sent nor reported as live.
    pub async fn replace(
        &self,
        pipe: &Pipeline,
        generation: u64,
    ) -> Result<Arc<Active>, TripletexError> {
        let seen = self.attempts.lock().expect("attempts lock").0;
        let _guard = self.mint.lock().await;
        if let Some(current) = self.current()
            && current.generation != generation
            && current.alive_at(pipe.api.clock.now())
        {
            return Ok(current);
        }
        {
            let attempts = self.attempts.lock().expect("attempts lock");
            if attempts.0 != seen
                && let Some(e) = &attempts.1
            {
                return Err(e.clone());
            }
        }
        let minted = self.mint_and_prove(pipe).await;
        {
            let mut attempts = self.attempts.lock().expect("attempts lock");
            *attempts = (attempts.0 + 1, minted.as_ref().err().cloned());
        }
        let fresh = match minted {
            Ok(fresh) => Arc::new(fresh),
            Err(e) => {
                let mut current = self.current.write().expect("session lock");
                if current.as_ref().is_some_and(|c| c.generation == generation) {
                    *current = None;
                }
                return Err(e);
            }
        };
        // The token replaced here was refused (401) or has expired: nothing left to revoke.
        *self.current.write().expect("session lock") = Some(Arc::clone(&fresh));
        *self.renewal.lock().expect("renewal lock") = Renewal::default();
        tracing::info!(
            event = "session.minted",
            shop = %pipe.name,
            expires_at = %fresh.info.expires_at,
            company_id = fresh.info.company_id,
            "new session token proven and in use"
        );
        Ok(fresh)
    }

    async fn renew(&self, pipe: &Pipeline, active: &Arc<Active>) {
        let now = pipe.api.clock.now();
        {
            let r = self.renewal.lock().expect("renewal lock");
            if r.not_before.is_some_and(|t| now < t) {
                return;
            }
        }
        if expiration_for(&pipe.api.settings, now) <= active.info.expires_at {
            // A token minted now would die no later than this one (e.g. renew_before close to a
            // whole day, late in the Oslo evening): renewing would only churn tokens.
            return;
        }
        let Ok(_guard) = self.mint.try_lock() else {
            // Another caller is minting; keep using the live token meanwhile.
            return;
        };
        if self
            .current()
            .is_some_and(|c| c.generation != active.generation)
        {
            return;
        }
        match self.mint_and_prove(pipe).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *self.current.write().expect("session lock") = Some(Arc::clone(&fresh));
                *self.renewal.lock().expect("renewal lock") = Renewal::default();
                tracing::info!(
                    event = "session.renewed",
                    shop = %pipe.name,
                    expires_at = %fresh.info.expires_at,
                    "session token renewed"
                );
                revoke(pipe, active, &fresh).await;
            }
            Err(TripletexError::Cancelled) => {}
            Err(e) => {
                let mut r = self.renewal.lock().expect("renewal lock");
                let wait = backoff(
                    r.failures,
                    Duration::from_secs(60),
                    Duration::from_secs(3600),
                );
                r.failures += 1;
                r.not_before = Some(now.checked_add(span(wait)).unwrap_or(now));
                tracing::warn!(
                    event = "session.renew_failed",
                    shop = %pipe.name,
                    error = %e,
                    expires_at = %active.info.expires_at,
                    retry_in_s = wait.as_secs(),
                    "renewal failed; the current token still works until expires_at"
                );
            }
        }
    }

    /// Deletes the live session token, if any, by `deadline`: at shutdown, or when a reload
    /// stops the shop. One request that ignores the shutdown token on purpose, but waits for the
    /// shop's limiter (never past `deadline`); a token left alive expires on its own. Also says
    /// how long the request took, the limiter's wait not included (zero without a request).
    pub async fn close(
        &self,
        pipe: &Pipeline,
        deadline: tokio::time::Instant,
    ) -> (Closed, Duration) {
        let none = Duration::ZERO;
        let Some(active) = self.current() else {
            return (Closed::NoSession, none);
        };
        if !active.alive_at(pipe.api.clock.now()) {
            return (Closed::NoSession, none);
        }
        // The shop's own cancellation has fired (that is why we close): wait on a fresh one.
        let never = CancellationToken::new();
        let paced = pipe.limiter.acquire(&never);
        if tokio::time::timeout_at(deadline, paced).await.is_err() {
            tracing::debug!(event = "session.revoke_failed", shop = %pipe.name, "no request allowed before the stop deadline; the token expires on its own");
            return (Closed::Kept, none);
        }
        let call = revoke_call(&active.token);
        let Ok(request) = pipe.build(&call, Some(&active.token)) else {
            return (Closed::Kept, none);
        };
        let started = tokio::time::Instant::now();
        let within = deadline.saturating_duration_since(started);
        let sent = request
            .timeout(within)
            .send()
            .await
            .map(|resp| resp.status())
            .map_err(|e| transport_error(e).to_string());
        let took = started.elapsed();
        if log_revoke(&pipe.name, sent, "session token deleted on stop") {
            (Closed::Revoked, took)
        } else {
            (Closed::Kept, took)
        }
    }

    /// `POST /token/session/:create`, then `GET /token/session/>whoAmI` with the new token.
    async fn mint_and_prove(&self, pipe: &Pipeline) -> Result<Active, TripletexError> {
        let s = &pipe.api.settings;
        let minted_at = pipe.api.clock.now();
        let expiration = expiration_date(s, minted_at)?;
        let body = serde_json::to_value(PostSessionTokenBody {
            consumer_token: pipe.api.consumer_token.expose_secret(),
            employee_token: self.employee_token.expose_secret(),
            expiration_date: expiration.to_string(),
        })
        .map_err(|e| TripletexError::Decode(e.to_string()))?;
        let call = Call {
            method: Method::POST,
            json: Some(&body),
            idempotent: true,
            ..Call::get(SESSION_CREATE, "/token/session/:create", &[])
        };
        let resp = pipe.send(&call, None).await?;
        drop(body);
        let status = resp.status();
        if !status.is_success() {
            // The mint is the one request whose body holds the long-lived tokens: an answer
            // that quotes them back must not carry them into errors, logs or status.json.
            let mut refusal = api_error(resp).await;
            refusal.redact(&[
                pipe.api.consumer_token.expose_secret(),
                self.employee_token.expose_secret(),
            ]);
            return Err(mint_refused(status, refusal));
        }
        let token: Wrapper<SessionToken> = read_json(resp, s.max_body).await?;
        let token = SecretString::from(token.value.token);
        if let Some(o) = &s.observer {
            o.minted(&pipe.name);
        }
        let expires_at = oslo_midnight(expiration);

        let auth = auth(&token, expires_at);
        let who = match prove(pipe, auth).await {
            Ok(who) => who,
            Err(e) => {
                // A token we will not use should not stay alive for a week. Only when Tripletex
                // answered: when it is down or throttling, another round of retries would hold
                // the mint lock twice as long for a token that expires anyway. A key of another
                // company can only reach its own: the token is deleted from there.
                let as_key_owner = matches!(
                    e,
                    TripletexError::KeyRejected(KeyRefusal::OtherCompany { .. })
                );
                if as_key_owner
                    || matches!(
                        e,
                        TripletexError::Forbidden { .. }
                            | TripletexError::Decode(_)
                            | TripletexError::Malformed { .. }
                    )
                {
                    delete_token(pipe, &token, auth, as_key_owner).await;
                }
                return Err(e);
            }
        };

        let ahead =
            s.renew_before + full_jitter((s.renew_before / 4).min(Duration::from_secs(7200)));
        let renew_at = expires_at
            .checked_sub(span(ahead))
            .unwrap_or(minted_at)
            .max(minted_at);
        Ok(Active {
            token,
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
            info: SessionInfo {
                minted_at,
                expires_at,
                renew_at,
                company_id: Some(who.company_id),
                employee_id: Some(who.employee_id),
            },
        })
    }
}

/// `expirationDate` for a token minted at `now`: today in Oslo + `session_valid_days`.
fn expiration_date(settings: &ClientSettings, now: Timestamp) -> Result<Date, TripletexError> {
    oslo_date(now)
        .checked_add(Span::new().days(i64::from(settings.session_valid_days)))
        .map_err(|e| TripletexError::Decode(format!("expirationDate out of range: {e}")))
}

/// When a token minted at `now` would die.
fn expiration_for(settings: &ClientSettings, now: Timestamp) -> Timestamp {
    expiration_date(settings, now).map_or(now, oslo_midnight)
}

/// Best effort `DELETE /token/session/{token}` of a superseded token, authorised by the new one.
async fn revoke(pipe: &Pipeline, old: &Active, fresh: &Active) {
    if old.alive_at(pipe.api.clock.now()) {
        delete_token(pipe, &old.token, fresh.auth(), false).await;
    }
}

/// Best effort `DELETE /token/session/{victim}`, as the shop's company or (`as_key_owner`) the
/// key owner's; a token left alive expires on its own.
async fn delete_token(pipe: &Pipeline, victim: &SecretString, auth: Auth<'_>, as_key_owner: bool) {
    let call = Call {
        as_key_owner,
        ..revoke_call(victim)
    };
    let sent = pipe
        .send(&call, Some(auth))
        .await
        .map(|resp| resp.status())
        .map_err(|e| e.to_string());
    log_revoke(&pipe.name, sent, "unused token deleted");
}

/// Logs what a token DELETE came to (`deleted` says what was deleted); true when Tripletex
/// deleted it.
fn log_revoke(shop: &str, sent: Result<StatusCode, String>, deleted: &str) -> bool {
    match sent {
        Ok(status) if status.is_success() => {
            tracing::debug!(event = "session.revoked", shop = %shop, "{deleted}");
            true
        }
        Ok(status) => {
            tracing::debug!(event = "session.revoke_failed", shop = %shop, status = status.as_u16(), "token not deleted; it expires on its own");
            false
        }
        Err(error) => {
            tracing::debug!(event = "session.revoke_failed", shop = %shop, %error, "token not deleted; it expires on its own");
            false
        }
    }
}

/// `DELETE /token/session/{victim}`: the token goes in the path, percent-encoded.
fn revoke_call(victim: &SecretString) -> Call<'_> {
    Call {
        method: Method::DELETE,
        segment: Some(victim.expose_secret()),
        ..Call::get(SESSION_DELETE, "/token/session", &[])
    }
}

/// The generation a caller without a usable token asks to replace.
fn stale_generation(slot: &Session) -> u64 {
    slot.current().map_or(0, |a| a.generation)
}

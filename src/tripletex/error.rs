//! Why a Tripletex call failed, in the categories callers branch on (a refused mint included:
//! which token was refused; a key that logs in to another company than the shop's counts as
//! rejected, [`KeyRefusal`]), and what the operator can do about it ([`TripletexError::remedy`]).
//!
//! Invariants: an error names what happened as it happened (a 5xx says "Tripletex answered 500
//! …", an open circuit names the failure that opened it) and never carries a URL or token text:
//! the pipeline strips URLs from transport errors and redacts a refused mint's body first.

use std::time::Duration;

use reqwest::StatusCode;

use super::model::ApiError;

/// Returned by every wait when the daemon is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutting down")]
pub struct Cancelled;

/// Why a Tripletex call failed, in the categories callers branch on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TripletexError {
    /// The employee key cannot serve the shop (see [`KeyRefusal`] for why).
    #[error(transparent)]
    KeyRejected(KeyRefusal),
    /// The consumer token itself was refused: a deployment problem, not a shop's.
    #[error("Tripletex rejected the consumer token ({status}: {message})")]
    ConsumerRejected { status: u16, message: String },
    /// 403 on an endpoint: the key lacks an access.
    #[error("the key cannot {access}")]
    Forbidden { access: String },
    /// A second 401 after a fresh session.
    #[error("Tripletex refused the session twice (401)")]
    Unauthorized,
    /// The session token died while the request waited (limiter, 429s, backoff); it was not sent.
    #[error("the session expired while the request waited")]
    SessionExpired,
    #[error("Tripletex answered {status} (code {code}): {message}")]
    Api {
        status: u16,
        code: i64,
        message: String,
    },
    /// 5xx on the last try (every try for idempotent requests).
    #[error("Tripletex answered {status} (code {code}): {message} (after {tries} tries)")]
    ServerError {
        status: u16,
        code: i64,
        message: String,
        tries: u32,
    },
    /// No answer: connection refused or reset, timeout, TLS.
    #[error("Tripletex unreachable: {0}")]
    Unavailable(String),
    #[error("Tripletex sent an unreadable response: {0}")]
    Decode(String),
    /// A 200 list answer that does not say what a list answer must ([`page`]).
    #[error("Tripletex sent an invalid answer to GET {path}: {reason}")]
    Malformed { path: String, reason: String },
    /// Paging that would not end: a repeated page, or more pages than the records cap allows.
    #[error("paging GET {path} did not end: {reason}")]
    Paging { path: String, reason: String },
    #[error("Tripletex sent an answer larger than {}; refused", human_size(.limit))]
    TooLarge { limit: u64 },
    #[error("Tripletex kept answering 429 ({0} times in a row)")]
    Throttled(u32),
    /// The shop's breaker is open; `last` is the failure that opened it, named as it was.
    #[error("Tripletex calls for this shop paused after repeated failures (last: {last})")]
    CircuitOpen { last: String },
    /// The pass that made the call ran out of time (`checks.pass_deadline`); set by the pass.
    #[error("the pass ran past checks.pass_deadline ({}) before this was done", humantime::format_duration(*.0))]
    PassDeadline(Duration),
    #[error("shutting down")]
    Cancelled,
}

/// Why an employee key cannot serve its shop. Both are the key's problem, not the session's:
/// minting again with the same key cannot help, a new key (or shop file) can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    /// Tripletex refused the mint: the token is wrong or revoked, or the company lacks the
    /// Integrations add-on.
    #[error("Tripletex rejected the employee key ({status}: {message})")]
    Refused { status: u16, message: String },
    /// The key logs in, but to company `actual`, not to the shop's `company_id` (`configured`).
    #[error(
        "the employee key logs in to company {actual}, not to the shop's company_id {configured}"
    )]
    OtherCompany {
        shop: String,
        configured: i64,
        actual: i64,
    },
}

fn human_size(bytes: &u64) -> String {
    if *bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

impl From<Cancelled> for TripletexError {
    fn from(_: Cancelled) -> Self {
        Self::Cancelled
    }
}

impl TripletexError {
    /// What the operator should do, in the seed's words, where there is a known fix.
    pub fn remedy(&self) -> Option<String> {
        match self {
            // 403 means the key is known but may not log in: the company lacks the add-on.
            Self::KeyRejected(KeyRefusal::Refused { status: 403, .. }) => Some(
                "switch on the company's Integrations add-on in Tripletex (the key itself is fine), then reload (systemctl reload tripletex-sync)".into(),
            ),
            Self::KeyRejected(KeyRefusal::OtherCompany { shop, actual, .. }) => Some(format!(
                "the key belongs to company {actual}; fix company_id in the shop file ({shop}.toml in shops_dir) or paste the right key into its token file, then reload (systemctl reload tripletex-sync)"
            )),
            Self::KeyRejected(KeyRefusal::Refused { .. }) => Some(
                "create a new key in Tripletex under Employee › API access › New key, paste it into the shop's token file, then reload (systemctl reload tripletex-sync)".into(),
            ),
            Self::ConsumerRejected { .. } => Some(
                "check the consumer token file: it must be the token Tripletex issued for this integration, for the same environment as base_url".into(),
            ),
            Self::Forbidden { access } => Some(format!(
                "give the key access to {access} under Employee › API access › the application › accesses",
                access = access.trim_start_matches("read ")
            )),
            _ => None,
        }
    }
}

/// Why Tripletex refused a mint. An unknown token is a 422 naming the argument
/// (`arg:consumerToken` / `arg:employeeToken`, Tripletex/tripletex-api2 #53); 401 and 403 mean
/// the key may not log in (revoked, or the company lacks the Integrations add-on).
pub(super) fn mint_refused(status: StatusCode, err: ApiError) -> TripletexError {
    let field_says = |name: &str| {
        err.validation_messages
            .iter()
            .flatten()
            .any(|m| m.field.as_deref().is_some_and(|f| f.contains(name)))
    };
    let detail = err
        .validation_messages
        .iter()
        .flatten()
        .find_map(|m| m.message.clone())
        .or_else(|| err.message.clone())
        .unwrap_or_else(|| "no message".into());
    let code = status.as_u16();
    if field_says("consumerToken") {
        TripletexError::ConsumerRejected {
            status: code,
            message: detail,
        }
    } else if field_says("employeeToken")
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
    {
        TripletexError::KeyRejected(KeyRefusal::Refused {
            status: code,
            message: detail,
        })
    } else {
        TripletexError::Api {
            status: code,
            code: err.code.unwrap_or_default(),
            message: detail,
        }
    }
}

//! The `[notify]` table: where the daemon notifies the platform (Standard Webhooks). Off while
//! `url` is empty; else an https URL (http only for loopback hosts) without user info, query or
//! fragment, and a secret (a token file's rules, then the `whsec_` format, read at preflight).
//! `timeout` and `max_age` are checked against their ranges whether or not notify is on, so a
//! wrong value is refused where it is written, not when someone later sets `url`.

use std::path::Path;
use std::time::Duration;

use url::Url;

use super::{Blame, ConfigError, TokenConfig, raw, validate};
use crate::secrets::{Signer, TokenRole};

/// Notifications to the platform: where they go, the secret they are signed with, how long one
/// attempt and one message may take.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// https (http only for loopback hosts), no user info, query or fragment; as written.
    pub url: Url,
    pub secret: TokenConfig,
    /// One delivery attempt, connecting included.
    pub timeout: Duration,
    /// An undelivered message is dead after this (the outbox's limit).
    pub max_age: Duration,
    /// The outbox's bound (see docs/notify.md).
    pub max_pending: u64,
    /// A failed delivery waits up to `retry_min` (full jitter), doubling per failure up to
    /// `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl NotifyConfig {
    /// Reads the secret (a token file's rules) and checks it is a Standard Webhooks secret;
    /// `credentials_dir` stands in for `$CREDENTIALS_DIRECTORY`.
    pub fn load_signer(&self, credentials_dir: Option<&Path>) -> Result<Signer, ConfigError> {
        let secret = self.secret.load_with(credentials_dir)?;
        Signer::new(&secret).map_err(|e| {
            self.secret.refuse(
                format!(
                    "the secret in {} is not a Standard Webhooks secret: it {e}",
                    self.secret.describe()
                ),
                format!(
                    "put the platform's secret there, whsec_ followed by base64 of 24 or more random bytes (e.g. echo \"whsec_$(openssl rand -base64 32)\" > {}; chmod 600), and give the platform the same",
                    self.secret.describe()
                ),
            )
        })
    }
}

/// The `[notify]` table: `None` while `url` is empty, and then no secret may be set (a secret
/// without a URL is a half-done setup).
pub(super) fn from_raw(
    raw: &raw::RawNotify,
    path: &Path,
    base: &Path,
    blame: &Blame<'_>,
) -> Result<Option<NotifyConfig>, ConfigError> {
    let timeout = validate::duration_in(
        blame,
        "notify.timeout",
        raw.timeout,
        validate::NOTIFY_TIMEOUT,
        "e.g. \"10s\" (the default)",
    )?;
    let max_age = validate::duration_in(
        blame,
        "notify.max_age",
        raw.max_age,
        validate::NOTIFY_MAX_AGE,
        "e.g. \"7d\" (the default)",
    )?;
    let max_pending = validate::in_range(
        blame,
        "notify.max_pending",
        raw.max_pending,
        validate::NOTIFY_MAX_PENDING,
        "e.g. 100000 (the default)",
    )?;
    let retry_min = validate::duration_in(
        blame,
        "notify.retry_min",
        raw.retry_min,
        validate::NOTIFY_RETRY_MIN,
        "e.g. \"5s\" (the default)",
    )?;
    let retry_max = validate::duration_in(
        blame,
        "notify.retry_max",
        raw.retry_max,
        validate::NOTIFY_RETRY_MAX,
        "e.g. \"1h\" (the default)",
    )?;
    if retry_max < retry_min {
        return Err(blame.err(
            "notify.retry_max",
            format!(
                "{} is shorter than notify.retry_min ({})",
                humantime::format_duration(retry_max),
                humantime::format_duration(retry_min)
            ),
            "make retry_max at least retry_min, e.g. retry_min = \"5s\", retry_max = \"1h\"",
        ));
    }
    if raw.url.trim().is_empty() {
        if raw.secret_file.is_some() || raw.secret_credential.is_some() {
            return Err(blame.err(
                "notify.url",
                "is empty, so notify is off, but a notify secret is set".into(),
                "set url = \"https://HOST/PATH\" (where the platform takes notifications) in [notify], or remove the secret",
            ));
        }
        return Ok(None);
    }
    let url = validate::parse_endpoint_url(raw.url.trim()).map_err(|problem| {
        blame.err(
            "notify.url",
            problem,
            "use the platform's https endpoint, e.g. https://mystore.example/hooks/tripletex-sync; plain http only for 127.0.0.1/localhost",
        )
    })?;
    let secret = TokenConfig::from_keys(
        TokenRole::NotifySecret,
        path,
        base,
        "notify.secret_file",
        raw.secret_file.as_deref(),
        "notify.secret_credential",
        raw.secret_credential.as_deref(),
    )
    .map_err(|e| blame.retarget(e))?;
    Ok(Some(NotifyConfig {
        url,
        secret,
        timeout,
        max_age,
        max_pending: u64::from(max_pending),
        retry_min,
        retry_max,
    }))
}

//! The `[webhooks]` table: off while `public_url` is empty; else an https URL, a listen
//! address, a secret (a token file's rules, at least [`MIN_WEBHOOK_SECRET`] bytes, read at
//! preflight) and a `reconcile_interval` of at least `checks.interval`.

use std::path::Path;
use std::time::Duration;

use url::Url;

use super::{Blame, ChecksConfig, ConfigError, TokenConfig, raw, validate};
use crate::secrets::{SecretString, TokenRole};

/// Tripletex webhooks: where Tripletex calls, where the receiver listens, the secret the
/// per-shop paths and auth headers are derived from.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhooksConfig {
    /// https (http only for loopback hosts), no user info, query or fragment; no trailing slash.
    pub public_url: Url,
    pub listen: std::net::SocketAddr,
    pub secret: TokenConfig,
    /// At least `checks.interval`.
    pub reconcile_interval: Duration,
}

/// Shortest webhook secret accepted: the callback paths derived from it are public, and a short
/// secret could be found from them by trying.
pub const MIN_WEBHOOK_SECRET: usize = 32;

impl WebhooksConfig {
    /// Reads the secret (a token file's rules, at least [`MIN_WEBHOOK_SECRET`] bytes);
    /// `credentials_dir` stands in for `$CREDENTIALS_DIRECTORY`.
    pub fn load_secret(&self, credentials_dir: Option<&Path>) -> Result<SecretString, ConfigError> {
        self.secret
            .load_key_with(credentials_dir, MIN_WEBHOOK_SECRET)
    }
}

/// The `[webhooks]` table: `None` while `public_url` is empty, and then nothing else may be set
/// but the defaults (a secret without a URL is a half-done setup).
pub(super) fn from_raw(
    raw: &raw::RawWebhooks,
    path: &Path,
    base: &Path,
    blame: &Blame<'_>,
    checks: &ChecksConfig,
) -> Result<Option<WebhooksConfig>, ConfigError> {
    if raw.public_url.trim().is_empty() {
        if raw.secret_file.is_some() || raw.secret_credential.is_some() {
            return Err(blame.err(
                "webhooks.public_url",
                "is empty, so webhooks are off, but a webhooks secret is set".into(),
                "set public_url = \"https://HOST/PATH\" (what Tripletex calls), or remove the [webhooks] table",
            ));
        }
        return Ok(None);
    }
    let secret = TokenConfig::from_keys(
        TokenRole::WebhookSecret,
        path,
        base,
        "webhooks.secret_file",
        raw.secret_file.as_deref(),
        "webhooks.secret_credential",
        raw.secret_credential.as_deref(),
    )
    .map_err(|e| blame.retarget(e))?;
    validate::webhooks(raw, blame, secret, checks.interval).map(Some)
}

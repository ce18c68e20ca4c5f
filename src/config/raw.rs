//! The configuration files exactly as written: serde structs that refuse unknown keys.
//!
//! Nothing here is validated beyond types; `super::validate` turns these into a [`super::Config`].
//! Defaults live here so that a shop file can be just its token line.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "default_state_dir")]
    pub state_dir: String,
    #[serde(default = "default_shops_dir")]
    pub shops_dir: String,
    #[serde(default)]
    pub tripletex: RawTripletex,
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    #[serde(default)]
    pub checks: RawChecks,
    /// "i/n": handle only shard i of n of the shops (see `super::shard`).
    #[serde(default)]
    pub shard: Option<String>,
}

fn default_state_dir() -> String {
    "/var/lib/tripletex-sync".into()
}

fn default_shops_dir() -> String {
    "shops.d".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTripletex {
    pub base_url: String,
    pub consumer_token_file: Option<String>,
    pub consumer_token_credential: Option<String>,
    pub session_valid_days: u32,
    #[serde(with = "humantime_serde")]
    pub renew_before: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for RawTripletex {
    fn default() -> Self {
        Self {
            base_url: "https://tripletex.no/v2".into(),
            consumer_token_file: None,
            consumer_token_credential: None,
            session_valid_days: 7,
            renew_before: Duration::from_secs(24 * 3600),
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateLimit {
    pub per_second: u32,
    pub burst: u32,
    pub reserve: u32,
    pub max_concurrent_shops: u32,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        Self {
            per_second: 2,
            burst: 5,
            reserve: 20,
            max_concurrent_shops: 32,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawChecks {
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    #[serde(with = "humantime_serde")]
    pub full_resync: Duration,
    /// Invoices dated within this trailing window are re-read (cheaply, via versionDigest) on
    /// every pass; older ones only on a full resync.
    #[serde(with = "humantime_serde")]
    pub invoice_window: Duration,
    #[serde(with = "humantime_serde")]
    pub history: Duration,
    pub cluster_gap: u32,
    pub forecast_warn_days: u32,
    pub headroom_warn: u32,
}

impl Default for RawChecks {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            jitter: Duration::from_secs(300),
            full_resync: Duration::from_secs(24 * 3600),
            invoice_window: Duration::from_secs(62 * 24 * 3600),
            history: Duration::from_secs(90 * 24 * 3600),
            cluster_gap: 1000,
            forecast_warn_days: 90,
            headroom_warn: 500,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShop {
    pub employee_token_file: Option<String>,
    pub employee_token_credential: Option<String>,
    #[serde(default)]
    pub company_id: i64,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub customer_numbers: RawNumbers,
    #[serde(default)]
    pub invoice_numbers: RawNumbers,
}

fn yes() -> bool {
    true
}

/// One numbering check. The starts are optional because their defaults differ per check
/// ([`CUSTOMER_DEFAULTS`], [`INVOICE_DEFAULTS`]); validation fills them in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNumbers {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub shop_start: Option<u32>,
    pub tripletex_start: Option<u32>,
}

impl Default for RawNumbers {
    fn default() -> Self {
        Self {
            enabled: true,
            shop_start: None,
            tripletex_start: None,
        }
    }
}

/// (shop_start, tripletex_start) when a shop file says nothing.
pub const CUSTOMER_DEFAULTS: (u32, u32) = (1, 100_000);
pub const INVOICE_DEFAULTS: (u32, u32) = (6000, 50_000);

//! The configuration files exactly as written: serde structs that refuse unknown keys.
//!
//! Nothing here is validated beyond types, and types are strict (TOML's own: no string is read
//! as a number, no float as an integer); `super::validate` checks ranges and meaning. Every
//! default lives here, in the `Default` impls, and applies to any key left out, so a shop file can
//! be just its token line. The structs also serialize, so the type of each key's default tells how
//! to read an environment override of it (`super::parse`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub state_dir: String,
    pub shops_dir: String,
    /// "i/n": handle only shard i of n of the shops (see `super::shard`); empty: all shops.
    pub shard: String,
    pub tripletex: RawTripletex,
    pub rate_limit: RawRateLimit,
    pub checks: RawChecks,
    pub metrics: RawMetrics,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            state_dir: "/var/lib/tripletex-sync".into(),
            shops_dir: "shops.d".into(),
            shard: String::new(),
            tripletex: RawTripletex::default(),
            rate_limit: RawRateLimit::default(),
            checks: RawChecks::default(),
            metrics: RawMetrics::default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
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

#[derive(Debug, Deserialize, Serialize)]
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

#[derive(Debug, Deserialize, Serialize)]
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
    /// Most customers (or invoices) one pass reads for a shop: bounds a paging that never ends.
    pub max_records: u32,
    /// A pass still running after this ends with `error` for the checks it had not finished.
    #[serde(with = "humantime_serde")]
    pub pass_deadline: Duration,
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
            max_records: 2_000_000,
            pass_deadline: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShop {
    pub employee_token_file: Option<String>,
    pub employee_token_credential: Option<String>,
    pub company_id: i64,
    pub enabled: bool,
    pub customer_numbers: RawNumbers,
    pub invoice_numbers: RawNumbers,
}

impl Default for RawShop {
    fn default() -> Self {
        Self {
            employee_token_file: None,
            employee_token_credential: None,
            company_id: 0,
            enabled: true,
            customer_numbers: RawNumbers::default(),
            invoice_numbers: RawNumbers::default(),
        }
    }
}

/// One numbering check. The starts are optional because their defaults differ per check
/// ([`CUSTOMER_DEFAULTS`], [`INVOICE_DEFAULTS`]); validation fills them in.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNumbers {
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

/// `[metrics]`: the opt-in HTTP endpoint. An empty `listen` (the default) serves nothing;
/// `metrics.prom` in `state_dir` is written either way.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub listen: String,
}

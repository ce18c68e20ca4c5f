//! The configuration files exactly as written: serde structs that refuse unknown keys.
//!
//! Nothing here is validated beyond types, and types are strict (TOML's own: no string is read
//! as a number, no float as an integer); `super::validate` (the main file) and `super::load_shop`
//! (a shop file) check ranges and meaning. Every
//! default lives here, in the `Default` impls, and applies to any key left out, so a shop file can
//! be just its token line; only a check kind's `shop_start`/`tripletex_start` defaults live in its
//! spec (`crate::checks::kinds`). The main file's structs also serialize, so the type of each
//! key's default tells how to read an environment override of it (`super::parse`). Durations are
//! whole seconds ([`whole_seconds`]): docs/configuration.md documents the units `s` to `y`, so a value like
//! `"1ns"` is refused where it is written, not rounded or taken as a tight loop.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::checks::{CheckKind, PerKind};

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
    pub webhooks: RawWebhooks,
    pub notify: RawNotify,
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
            webhooks: RawWebhooks::default(),
            notify: RawNotify::default(),
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
    #[serde(with = "whole_seconds")]
    pub renew_before: Duration,
    #[serde(with = "whole_seconds")]
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
    #[serde(with = "whole_seconds")]
    pub interval: Duration,
    #[serde(with = "whole_seconds")]
    pub jitter: Duration,
    #[serde(with = "whole_seconds")]
    pub full_resync: Duration,
    /// Invoices dated within this trailing window are re-read (cheaply, via versionDigest) on
    /// every pass; older ones only on a full resync.
    #[serde(with = "whole_seconds")]
    pub invoice_window: Duration,
    #[serde(with = "whole_seconds")]
    pub history: Duration,
    pub cluster_gap: u32,
    pub forecast_warn_days: u32,
    pub headroom_warn: u32,
    /// Most customers (or invoices) one pass reads for a shop: bounds a paging that never ends.
    pub max_records: u32,
    /// A pass still running after this ends with `error` for the checks it had not finished.
    #[serde(with = "whole_seconds")]
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

/// Tripletex webhooks (push); off while `public_url` is empty.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebhooks {
    /// What Tripletex calls (through the operator's TLS-terminating reverse proxy).
    pub public_url: String,
    /// Where the callback receiver listens (plain HTTP behind the proxy).
    pub listen: String,
    pub secret_file: Option<String>,
    pub secret_credential: Option<String>,
    /// Passes of a shop whose subscriptions are healthy may stretch to this.
    #[serde(with = "whole_seconds")]
    pub reconcile_interval: Duration,
}

impl Default for RawWebhooks {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            listen: "127.0.0.1:8788".into(),
            secret_file: None,
            secret_credential: None,
            reconcile_interval: Duration::from_secs(6 * 3600),
        }
    }
}

/// Notifications to the platform (Standard Webhooks); off while `url` is empty.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    /// Where messages are POSTed.
    pub url: String,
    pub secret_file: Option<String>,
    pub secret_credential: Option<String>,
    /// Per attempt.
    #[serde(with = "whole_seconds")]
    pub timeout: Duration,
    /// An undelivered message is dead after this.
    #[serde(with = "whole_seconds")]
    pub max_age: Duration,
    /// The outbox's bound: past it, a shop's older verdict messages are coalesced.
    pub max_pending: u32,
    /// The first retry's wait (at most; full jitter), doubling up to `retry_max`.
    #[serde(with = "whole_seconds")]
    pub retry_min: Duration,
    #[serde(with = "whole_seconds")]
    pub retry_max: Duration,
}

impl Default for RawNotify {
    fn default() -> Self {
        Self {
            url: String::new(),
            secret_file: None,
            secret_credential: None,
            timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(7 * 86_400),
            max_pending: 100_000,
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
        }
    }
}

/// A shop file. Read by hand (not derived) because its tables are the check kinds': one
/// `[key]` table per kind, as strict as the derived structs (unknown keys refused, every key
/// optional).
#[derive(Debug)]
pub struct RawShop {
    pub employee_token_file: Option<String>,
    pub employee_token_credential: Option<String>,
    pub company_id: i64,
    pub enabled: bool,
    pub checks: PerKind<RawNumbers>,
}

impl Default for RawShop {
    fn default() -> Self {
        Self {
            employee_token_file: None,
            employee_token_credential: None,
            company_id: 0,
            enabled: true,
            checks: PerKind::default(),
        }
    }
}

/// A key of a shop file: its own, or a check kind's table.
#[derive(Clone, Copy)]
enum ShopKey {
    TokenFile,
    TokenCredential,
    CompanyId,
    Enabled,
    Kind(CheckKind),
}

const OWN_KEYS: [(&str, ShopKey); 4] = [
    ("employee_token_file", ShopKey::TokenFile),
    ("employee_token_credential", ShopKey::TokenCredential),
    ("company_id", ShopKey::CompanyId),
    ("enabled", ShopKey::Enabled),
];

/// Every key a shop file may have, for the error about one it may not.
fn shop_keys() -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let own = OWN_KEYS.iter().map(|(key, _)| *key);
        own.chain(CheckKind::ALL.iter().map(|k| k.as_str()))
            .collect()
    })
}

impl<'de> Deserialize<'de> for ShopKey {
    /// Refuses an unknown key while it is read, so the error points at it.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        OWN_KEYS
            .iter()
            .find(|(own, _)| *own == key)
            .map(|(_, k)| *k)
            .or_else(|| CheckKind::from_key(&key).map(ShopKey::Kind))
            .ok_or_else(|| de::Error::unknown_field(&key, shop_keys()))
    }
}

impl<'de> Deserialize<'de> for RawShop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shop;
        impl<'de> Visitor<'de> for Shop {
            type Value = RawShop;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct RawShop")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawShop, A::Error> {
                let mut shop = RawShop::default();
                while let Some(key) = map.next_key::<ShopKey>()? {
                    match key {
                        ShopKey::TokenFile => shop.employee_token_file = map.next_value()?,
                        ShopKey::TokenCredential => {
                            shop.employee_token_credential = map.next_value()?;
                        }
                        ShopKey::CompanyId => shop.company_id = map.next_value()?,
                        ShopKey::Enabled => shop.enabled = map.next_value()?,
                        ShopKey::Kind(kind) => shop.checks[kind] = map.next_value()?,
                    }
                }
                Ok(shop)
            }
        }
        d.deserialize_struct("RawShop", shop_keys(), Shop)
    }
}

/// One numbering check. The starts are optional because their defaults differ per check kind
/// (its spec's `defaults`); validation fills them in.
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

/// `[metrics]`: the opt-in HTTP endpoint. An empty `listen` (the default) serves nothing;
/// `metrics.prom` in `state_dir` is written either way.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub listen: String,
}

/// What a refused sub-second duration is told; `super::parse` picks its fix by it.
pub(super) const WHOLE_SECONDS: &str = "durations are whole seconds, in the units s m h d w M y";

/// humantime durations (`"90d"`, `"1h 30m"`) that are whole seconds. humantime also reads `ms`,
/// `us` and `ns`; docs/configuration.md's units stop at `s`, and nothing here is meant to happen more often than
/// once a second, so a fraction is a mistake to refuse, not a value to round.
mod whole_seconds {
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(d, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let duration: Duration = humantime_serde::deserialize(d)?;
        if duration.subsec_nanos() == 0 {
            return Ok(duration);
        }
        let what = if duration.as_secs() == 0 {
            "is below one second"
        } else {
            "is not a whole number of seconds"
        };
        Err(de::Error::custom(format!(
            "{} {what}: {}",
            humantime::format_duration(duration),
            super::WHOLE_SECONDS
        )))
    }
}

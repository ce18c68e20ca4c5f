//! Configuration: the main file plus one file per shop in `shops_dir`, loaded in two stages.
//!
//! Stage one ([`raw`]) is serde with `deny_unknown_fields`; stage two ([`Config::load`]) checks
//! meaning and resolves paths. Invariants of a [`Config`]: every relative path is resolved against
//! the folder of the file that declared it; `base_url` is https (http only for loopback hosts, which
//! is how the simulator is reached); every enabled number check has `shop_start < tripletex_start`;
//! shop names are file stems of `[A-Za-z0-9_-]`; with `shard = "i/n"`, `shops` holds only the
//! shops of that shard ([`shard`]). Token files are checked by [`crate::secrets`], which
//! reports in the same one-line format ([`ConfigError`]).

mod raw;
mod shard;

use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::checks::{NumberRange, Policy};
use crate::secrets::TokenSource;
pub use shard::Shard;

/// Where the main file lives unless `--config` or `TRIPLETEX_SYNC_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tripletex-sync/config.toml";
/// Prefix of environment overrides: `TRIPLETEX_SYNC__RATE_LIMIT__BURST=10`.
pub const ENV_PREFIX: &str = "TRIPLETEX_SYNC";

#[derive(Debug, Clone)]
pub struct Config {
    /// The main file this was loaded from.
    pub source: PathBuf,
    pub state_dir: PathBuf,
    pub shops_dir: PathBuf,
    pub tripletex: TripletexConfig,
    pub rate_limit: RateLimitConfig,
    pub checks: ChecksConfig,
    /// Only the shops of this shard are in `shops` (all files are still validated).
    pub shard: Option<Shard>,
    pub shops: Vec<ShopConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TripletexConfig {
    /// Without a trailing slash, e.g. `https://tripletex.no/v2`.
    pub base_url: Url,
    pub consumer_token: TokenSource,
    pub session_valid_days: u32,
    pub renew_before: Duration,
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
    pub reserve: u32,
    pub max_concurrent_shops: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChecksConfig {
    pub interval: Duration,
    pub jitter: Duration,
    pub full_resync: Duration,
    pub invoice_window: Duration,
    pub history: Duration,
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShopConfig {
    pub name: String,
    /// The shop file, for error messages.
    pub source: PathBuf,
    pub employee_token: TokenSource,
    /// 0 = the key owner's own company; else an accountant client's company id.
    pub company_id: i64,
    pub enabled: bool,
    pub customer_numbers: Option<NumberRange>,
    pub invoice_numbers: Option<NumberRange>,
}

/// One refusal: the file, the key, what is wrong and how to fix it, printed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: Option<String>,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    pub fn new(
        file: &Path,
        key: Option<&str>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_path_buf(),
            key: key.map(str::to_owned),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(key) = &self.key {
            write!(f, "`{key}`: ")?;
        }
        write!(f, "{}", self.problem)?;
        if !self.fix.is_empty() {
            write!(f, " (fix: {})", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Loads the main file (with environment overrides) and every shop file; validates both.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig = read_main(path)?;
        let base = parent_dir(path);
        let err = |key: &str, problem: String, fix: &str| {
            // An override from the environment is not in the file: say where the value came from.
            let var = env_var_for(key);
            let problem = match std::env::var_os(&var) {
                Some(_) => format!("{problem} (value from environment variable {var})"),
                None => problem,
            };
            ConfigError::new(path, Some(key), problem, fix.to_owned())
        };

        let base_url = parse_base_url(&raw.tripletex.base_url).map_err(|problem| {
            err(
                "tripletex.base_url",
                problem,
                "use https://tripletex.no/v2 (or https://api-test.tripletex.tech/v2); plain http only for 127.0.0.1/localhost",
            )
        })?;
        let consumer_token = TokenSource::from_keys(
            path,
            &base,
            "tripletex.consumer_token_file",
            raw.tripletex.consumer_token_file.as_deref(),
            "tripletex.consumer_token_credential",
            raw.tripletex.consumer_token_credential.as_deref(),
        )?;
        if raw.tripletex.session_valid_days < 2 {
            return Err(err(
                "tripletex.session_valid_days",
                format!(
                    "{} leaves no time to renew: a token dies at 00:00 Oslo time at the start of its expirationDate",
                    raw.tripletex.session_valid_days
                ),
                "set it to 2 or more (7 is a good value)",
            ));
        }
        // A token minted late in the Oslo evening lives (days − 1) days and a bit; renewal starts
        // renew_before plus up to a quarter of it (max 2 h) of jitter ahead; a spring-forward day
        // is an hour short. All of that must fit, or a fresh token is due for renewal at once.
        let renew = raw.tripletex.renew_before;
        let renew_span = renew
            .saturating_add((renew / 4).min(Duration::from_secs(7200)))
            .saturating_add(Duration::from_secs(3600));
        let shortest_life =
            Duration::from_secs(u64::from(raw.tripletex.session_valid_days - 1) * 86_400);
        if renew_span >= shortest_life {
            return Err(err(
                "tripletex.renew_before",
                format!(
                    "{} would renew a fresh {}-day token at once (a token minted late in the evening lives only {} days)",
                    humantime::format_duration(renew),
                    raw.tripletex.session_valid_days,
                    raw.tripletex.session_valid_days - 1
                ),
                "make it shorter, e.g. \"1d\" with session_valid_days = 7",
            ));
        }
        if raw.tripletex.request_timeout.is_zero() {
            return Err(err(
                "tripletex.request_timeout",
                "must be more than 0".into(),
                "e.g. \"30s\"",
            ));
        }

        let positive = |key: &str, value: u32| {
            NonZeroU32::new(value).ok_or_else(|| err(key, "must be at least 1".into(), "e.g. 2"))
        };
        let rate_limit = RateLimitConfig {
            per_second: positive("rate_limit.per_second", raw.rate_limit.per_second)?,
            burst: positive("rate_limit.burst", raw.rate_limit.burst)?,
            reserve: raw.rate_limit.reserve,
            max_concurrent_shops: positive(
                "rate_limit.max_concurrent_shops",
                raw.rate_limit.max_concurrent_shops,
            )?
            .get() as usize,
        };

        let c = &raw.checks;
        if c.interval < Duration::from_secs(1) {
            return Err(err(
                "checks.interval",
                "must be at least 1s".into(),
                "e.g. \"1h\"",
            ));
        }
        if c.jitter > c.interval {
            return Err(err(
                "checks.jitter",
                "is longer than checks.interval".into(),
                "make it a fraction of the interval, e.g. \"5m\" for \"1h\"",
            ));
        }
        if c.full_resync < c.interval {
            return Err(err(
                "checks.full_resync",
                "is shorter than checks.interval".into(),
                "e.g. \"24h\"",
            ));
        }
        // Tokens count as dead EXPIRY_MARGIN early, so a pass must come before that too.
        if c.interval
            .saturating_add(c.jitter)
            .saturating_add(crate::tripletex::EXPIRY_MARGIN)
            >= raw.tripletex.renew_before
        {
            return Err(err(
                "checks.interval",
                format!(
                    "interval + jitter ({}) is not shorter than tripletex.renew_before ({}): a session could expire between two passes",
                    humantime::format_duration(c.interval + c.jitter),
                    humantime::format_duration(raw.tripletex.renew_before)
                ),
                "shorten checks.interval or lengthen tripletex.renew_before",
            ));
        }
        let checks = ChecksConfig {
            interval: c.interval,
            jitter: c.jitter,
            full_resync: c.full_resync,
            invoice_window: c.invoice_window,
            history: c.history,
            policy: Policy {
                cluster_gap: c.cluster_gap,
                forecast_warn_days: c.forecast_warn_days,
                headroom_warn: c.headroom_warn,
            },
        };

        let state_dir = resolve(&base, &raw.state_dir);
        let shops_dir = resolve(&base, &raw.shops_dir);
        let shard = match raw.shard.as_deref() {
            None => None,
            Some(text) => Some(Shard::parse(text).map_err(|problem| {
                err(
                    "shard",
                    problem,
                    "e.g. shard = \"0/3\" on the first of three instances, \"1/3\", \"2/3\" on the others",
                )
            })?),
        };
        let mut shops = load_shops(&shops_dir)?;
        shops.retain(|s| shard.is_none_or(|shard| shard.owns(&s.name)));
        Ok(Self {
            source: path.to_path_buf(),
            state_dir,
            shops_dir,
            tripletex: TripletexConfig {
                base_url,
                consumer_token,
                session_valid_days: raw.tripletex.session_valid_days,
                renew_before: raw.tripletex.renew_before,
                request_timeout: raw.tripletex.request_timeout,
            },
            rate_limit,
            checks,
            shard,
            shops,
        })
    }

    pub fn shop(&self, name: &str) -> Option<&ShopConfig> {
        self.shops.iter().find(|s| s.name == name)
    }
}

/// The environment variable that overrides `key` (`rate_limit.burst` →
/// `TRIPLETEX_SYNC__RATE_LIMIT__BURST`).
fn env_var_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}__{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

fn read_main(path: &Path) -> Result<raw::RawConfig, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::new(
            path,
            None,
            "no such file",
            "create it from config/config.toml, or point --config / TRIPLETEX_SYNC_CONFIG at it",
        ));
    }
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| from_config_crate(path, e))
}

fn read_shop(path: &Path) -> Result<raw::RawShop, ConfigError> {
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| from_config_crate(path, e))
}

/// The config crate's messages name the key but also repeat the path; keep one copy.
fn from_config_crate(path: &Path, e: config::ConfigError) -> ConfigError {
    let text = e.to_string();
    let shown = path.display().to_string();
    let text = text
        .replace(&format!(" in {shown}"), "")
        .replace(&shown, "the file");
    ConfigError::new(
        path,
        None,
        text,
        "see config/config.toml and config/shops.d/example.toml for every key and its type",
    )
}

fn load_shops(dir: &Path) -> Result<Vec<ShopConfig>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConfigError::new(
            dir,
            Some("shops_dir"),
            format!("cannot list the shops folder: {e}"),
            "create the folder (it may be empty) or fix `shops_dir` in the main file",
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files.iter().map(|f| load_shop(f)).collect()
}

fn load_shop(path: &Path) -> Result<ShopConfig, ConfigError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::new(
            path,
            None,
            format!("shop name {name:?} (the file name) may only use letters, digits, - and _"),
            "rename the file, e.g. shops.d/acme-store.toml",
        ));
    }
    let raw = read_shop(path)?;
    let employee_token = TokenSource::from_keys(
        path,
        &parent_dir(path),
        "employee_token_file",
        raw.employee_token_file.as_deref(),
        "employee_token_credential",
        raw.employee_token_credential.as_deref(),
    )?;
    if raw.company_id < 0 {
        return Err(ConfigError::new(
            path,
            Some("company_id"),
            "must be 0 (the key owner's company) or a company id",
            "use 0 unless you log in as an accountant for a client company",
        ));
    }
    let customer_numbers = numbers(
        path,
        "customer_numbers",
        &raw.customer_numbers,
        raw::CUSTOMER_DEFAULTS,
    )?;
    let invoice_numbers = numbers(
        path,
        "invoice_numbers",
        &raw.invoice_numbers,
        raw::INVOICE_DEFAULTS,
    )?;
    Ok(ShopConfig {
        name,
        source: path.to_path_buf(),
        employee_token,
        company_id: raw.company_id,
        enabled: raw.enabled,
        customer_numbers,
        invoice_numbers,
    })
}

fn numbers(
    path: &Path,
    section: &str,
    raw: &raw::RawNumbers,
    (shop_default, tripletex_default): (u32, u32),
) -> Result<Option<NumberRange>, ConfigError> {
    let range = NumberRange {
        shop_start: raw.shop_start.unwrap_or(shop_default),
        tripletex_start: raw.tripletex_start.unwrap_or(tripletex_default),
    };
    if range.shop_start >= range.tripletex_start {
        return Err(ConfigError::new(
            path,
            Some(&format!("{section}.shop_start")),
            format!(
                "shop_start {} is not below tripletex_start {}: the shop's numbers would run into Tripletex's",
                range.shop_start, range.tripletex_start
            ),
            format!(
                "set {section}.tripletex_start above shop_start (the seed uses {tripletex_default})"
            ),
        ));
    }
    Ok(raw.enabled.then_some(range))
}

fn parse_base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim_end_matches('/'))
        .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "{text:?} is plain http to a non-loopback host: tokens would cross the network unencrypted"
            ));
        }
        other => {
            return Err(format!(
                "{text:?} has scheme {other:?}; only https is allowed"
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} carries a query or fragment"));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Relative paths are relative to the declaring file's folder, so a config works from any cwd.
pub(crate) fn resolve(base: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests;

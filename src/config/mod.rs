//! Configuration: the main file plus one file per shop in `shops_dir`, loaded in stages.
//!
//! Files are read through `crate::files` (regular files only, bounded, never blocking); `parse`
//! turns TOML (and `TRIPLETEX_SYNC__…` overrides, read as their key's type) into the strictly typed
//! `raw` structs, where every default lives; `validate` checks every number and duration against
//! its range and the relations between them; `state_dir` holds the state_dir rules and the
//! preflight of `validate`/`check`/`run`; `shops` lists and reads the shop files; `token` turns a
//! `*_file`/`*_credential` key pair into a [`TokenConfig`]; `webhooks` reads the `[webhooks]`
//! table, `notify` the `[notify]` table. Invariants of a [`Config`]: every relative path is resolved against the folder of the
//! file that declared it; `state_dir` is absolute, not a system folder, and neither is nor holds
//! the main file's folder or `shops_dir`; `shops_dir` is not the main file's folder; `base_url` is
//! https (http only for loopback hosts, which is how the simulator is reached) without user info;
//! every duration is whole seconds and every value within its documented range, so nothing
//! accepted can overflow later; every enabled number check has
//! `1 <= shop_start < tripletex_start <= i32::MAX`; shop names are file stems of `[A-Za-z0-9_-]`,
//! no two differing only in case; with `shard = "i/n"`, `shops` holds only the shops of that shard
//! ([`shard`]). Every refusal is one [`ConfigError`] line naming the file (with
//! line and column for TOML errors) or the environment variable, the key and the fix; token files
//! are read by [`crate::secrets`], whose errors `token` puts in the same format.
//!
//! Layering: config sits above `secrets`, `tripletex`, `checks` and `files` and turns its settings
//! into theirs (e.g. `ClientSettings::from(&Config)`); none of them imports config (a test in
//! `crate::layers` keeps it so).

mod notify;
mod parse;
mod raw;
mod shard;
mod shops;
mod state_dir;
mod token;
mod validate;
mod webhooks;

use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::checks::{NumberRange, PerKind, Policy};
use crate::files::{FileProblem, read_regular};
use crate::secrets::TokenRole;
use crate::tripletex::{ClientSettings, LimitSettings};
pub use notify::NotifyConfig;
pub use shard::Shard;
pub use token::TokenConfig;
pub use webhooks::{MIN_WEBHOOK_SECRET, WebhooksConfig};

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
    /// Where `/metrics`, `/healthz` and the status page are served (`[metrics] listen`); `None`:
    /// not at all.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Only the shops of this shard are in `shops` (all files are still validated).
    pub shard: Option<Shard>,
    pub shops: Vec<Arc<ShopConfig>>,
    /// `None` while `webhooks.public_url` is empty (push off; passes alone find conflicts).
    pub webhooks: Option<WebhooksConfig>,
    /// `None` while `notify.url` is empty (nothing is sent to the platform).
    pub notify: Option<NotifyConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TripletexConfig {
    /// Without a trailing slash, e.g. `https://tripletex.no/v2`.
    pub base_url: Url,
    pub consumer_token: TokenConfig,
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
    pub max_records: u64,
    pub pass_deadline: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShopConfig {
    pub name: String,
    /// The shop file, for error messages.
    pub source: PathBuf,
    pub employee_token: TokenConfig,
    /// 0 = the key owner's own company; else an accountant client's company id.
    pub company_id: i64,
    pub enabled: bool,
    /// Each check kind's range; `None` where the shop file turns the check off.
    pub checks: PerKind<Option<NumberRange>>,
}

/// One refusal: where (file and position, or environment variable), the key, what is wrong and
/// how to fix it, printed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: Origin,
    pub key: Option<String>,
    pub problem: String,
    pub fix: String,
}

/// Where a refused value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file, with the 1-based line and column when the TOML parser knows them.
    File {
        path: PathBuf,
        at: Option<(usize, usize)>,
    },
    /// An environment override (`TRIPLETEX_SYNC__…`).
    Env(String),
}

impl ConfigError {
    pub fn new(
        file: &Path,
        key: Option<&str>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            origin: Origin::File {
                path: file.to_path_buf(),
                at: None,
            },
            key: key.map(str::to_owned),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = match &self.origin {
            Origin::File { path, at: None } => format!("{}: ", path.display()),
            Origin::File {
                path,
                at: Some((l, c)),
            } => format!("{}:{l}:{c}: ", path.display()),
            Origin::Env(var) => format!("environment variable {var}: "),
        };
        if let Some(key) = &self.key {
            line.push_str(&format!("`{key}`: "));
        }
        line.push_str(&self.problem);
        if !self.fix.is_empty() {
            line.push_str(&format!(" (fix: {})", self.fix));
        }
        // One line whatever a path or a value holds: logs and alerts read lines.
        let line: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        f.write_str(&line)
    }
}

impl std::error::Error for ConfigError {}

impl From<&Config> for ClientSettings {
    fn from(config: &Config) -> Self {
        let (t, r) = (&config.tripletex, &config.rate_limit);
        ClientSettings {
            // The passes that run at once reuse connections; more idle ones would only hold memory.
            max_idle_connections: r.max_concurrent_shops,
            ..ClientSettings::new(
                t.request_timeout,
                t.session_valid_days,
                t.renew_before,
                LimitSettings::new(r.per_second, r.burst, r.reserve),
            )
        }
    }
}

impl Config {
    /// Loads the main file (with the process's `TRIPLETEX_SYNC__…` overrides) and every shop
    /// file; validates both.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, &env_overrides()?)
    }

    /// [`Config::load`] with the overrides given as (variable, value) pairs.
    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let (mut config, shops) = Self::load_parts(path, env)?;
        config.shops = shops?.into_iter().map(Arc::new).collect();
        Ok(config)
    }

    /// The main file (with the process's overrides) must load; a shop file that does not is
    /// returned beside a config without shops. For `status`, which reads `state_dir` whatever
    /// shops.d holds: a broken shop file is exactly when the operator needs it.
    pub fn load_main_then_shops(path: &Path) -> Result<(Self, Option<ConfigError>), ConfigError> {
        let (mut config, shops) = Self::load_parts(path, &env_overrides()?)?;
        match shops {
            Ok(shops) => {
                config.shops = shops.into_iter().map(Arc::new).collect();
                Ok((config, None))
            }
            Err(e) => Ok((config, Some(e))),
        }
    }

    /// The main file as a config without shops, and the shops (of this shard) apart.
    fn load_parts(
        path: &Path,
        env: &[(String, String)],
    ) -> Result<(Self, Result<Vec<ShopConfig>, ConfigError>), ConfigError> {
        let text = read_main(path)?;
        let (raw, overrides) = parse::main_file(path, &text, env)?;
        let base = parent_dir(path);
        let blame = Blame {
            path,
            overrides: &overrides,
        };
        let consumer_token = consumer_token(&raw, &blame, &base)?;
        let (tripletex, rate_limit, checks) = validate::main(&raw, &blame, consumer_token)?;
        let shops_dir = shops::resolve_shops_dir(&base, &raw.shops_dir)
            .map_err(|(problem, fix)| blame.err("shops_dir", problem, &fix))?;
        let state_dir = state_dir::resolve_state_dir(&base, &raw.state_dir)
            .and_then(|dir| {
                let folders = [
                    ("the folder of the main file", base.as_path()),
                    ("shops_dir", shops_dir.as_path()),
                ];
                state_dir::apart_from(&dir, &folders).map(|()| dir)
            })
            .map_err(|(problem, fix)| blame.err("state_dir", problem, &fix))?;
        let metrics_listen = validate::metrics_listen(&raw.metrics.listen, &blame)?;
        let shard = shard(&raw, &blame)?;
        let webhooks = webhooks::from_raw(&raw.webhooks, path, &base, &blame, &checks)?;
        let notify = notify::from_raw(&raw.notify, path, &base, &blame)?;
        let shops = shops::load_shops(&shops_dir, &blame).map(|mut shops| {
            shops.retain(|s| shard.is_none_or(|shard| shard.owns(&s.name)));
            shops
        });
        let config = Self {
            source: path.to_path_buf(),
            state_dir,
            shops_dir,
            tripletex,
            rate_limit,
            checks,
            metrics_listen,
            shard,
            shops: Vec::new(),
            webhooks,
            notify,
        };
        Ok((config, shops))
    }

    pub fn shop(&self, name: &str) -> Option<&ShopConfig> {
        self.shops.iter().map(|s| &**s).find(|s| s.name == name)
    }

    /// What `validate` mentions without refusing: files in `shops_dir` that look like shop files
    /// but are not read (`bike.TOML`), in the one-line form of a refusal.
    pub fn warnings(&self) -> Vec<ConfigError> {
        shops::unread(&self.shops_dir)
    }
}

/// `[tripletex] consumer_token_file` / `_credential`, resolved against the main file's folder.
fn consumer_token(
    raw: &raw::RawConfig,
    blame: &Blame<'_>,
    base: &Path,
) -> Result<TokenConfig, ConfigError> {
    const KEYS: [&str; 2] = [
        "tripletex.consumer_token_file",
        "tripletex.consumer_token_credential",
    ];
    TokenConfig::from_keys(
        TokenRole::Consumer,
        blame.path,
        base,
        KEYS[0],
        raw.tripletex.consumer_token_file.as_deref(),
        KEYS[1],
        raw.tripletex.consumer_token_credential.as_deref(),
    )
    .map_err(|e| {
        // "Both are set" names the file key; an override of either key is the one to blame.
        match KEYS.iter().find_map(|k| blame.overrides.get(*k)) {
            Some(var) => ConfigError {
                origin: Origin::Env(var.clone()),
                ..e
            },
            None => e,
        }
    })
}

/// `shard`: empty for every shop, else `"i/n"`.
fn shard(raw: &raw::RawConfig, blame: &Blame<'_>) -> Result<Option<Shard>, ConfigError> {
    if raw.shard.is_empty() {
        return Ok(None);
    }
    Shard::parse(&raw.shard).map(Some).map_err(|problem| {
        blame.err(
            "shard",
            problem,
            "e.g. shard = \"0/3\" on the first of three instances, \"1/3\", \"2/3\" on the others",
        )
    })
}

/// The process's `TRIPLETEX_SYNC__…` variables.
fn env_overrides() -> Result<Vec<(String, String)>, ConfigError> {
    let prefix = format!("{ENV_PREFIX}__");
    std::env::vars_os()
        .filter(|(k, _)| k.as_encoded_bytes().starts_with(prefix.as_bytes()))
        .map(|(k, v)| {
            let var = k.to_string_lossy().into_owned();
            match v.into_string() {
                Ok(v) => Ok((var, v)),
                Err(_) => Err(ConfigError {
                    origin: Origin::Env(var),
                    key: None,
                    problem: "is not UTF-8 text".into(),
                    fix: "set it to plain text, or unset it".into(),
                }),
            }
        })
        .collect()
}

/// Who to blame for a value of the main file: the file, or the variable that overrode the key.
pub(crate) struct Blame<'a> {
    path: &'a Path,
    overrides: &'a parse::Overrides,
}

impl Blame<'_> {
    pub(crate) fn err(&self, key: &str, problem: String, fix: &str) -> ConfigError {
        self.retarget(ConfigError::new(self.path, Some(key), problem, fix))
    }

    /// Points an error about a key at the variable that set it, if one did.
    fn retarget(&self, mut e: ConfigError) -> ConfigError {
        if let Some(var) = e.key.as_ref().and_then(|k| self.overrides.get(k)) {
            e.origin = Origin::Env(var.clone());
        }
        e
    }
}

/// The main file may be large-ish with comments, never megabytes.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

fn read_main(path: &Path) -> Result<String, ConfigError> {
    read_regular(path, MAX_CONFIG_BYTES)
        .map(|c| c.text)
        .map_err(|problem| match problem {
            FileProblem::Missing => ConfigError::new(
                path,
                None,
                "no such file",
                "create it from the annotated example (installed as /etc/tripletex-sync/config.toml, config/config.toml in the source), or point --config / TRIPLETEX_SYNC_CONFIG at it",
            ),
            problem => ConfigError::new(
                path,
                None,
                format!("the configuration file {problem}"),
                "point --config / TRIPLETEX_SYNC_CONFIG at the main file (a regular TOML file)",
            ),
        })
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
mod edge_tests;
#[cfg(test)]
mod input_tests;
#[cfg(test)]
mod notify_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod strict_tests;
#[cfg(test)]
mod tests;

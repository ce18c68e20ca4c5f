//! What one configuration generation shares ([`World`]: the configuration, the HTTP client, the
//! consumer token, the webhook keys, the notify destination), the edges the daemon runs against ([`Environment`]), the
//! daemon's errors, and how a reload builds the next generation.
//!
//! Invariants: a [`World`] is built whole or not at all (a missing token or secret refuses it),
//! so a reload that fails changes nothing; whether a reload restarts every shop is decided here
//! ([`reload`]), by comparing the shared parts and the secrets (in constant time), and so is
//! whether the shops' sessions may go on in the next generation ([`World::sessions_carry_to`]:
//! only the base URL and the consumer token of the shared parts make a session).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::{Config, ConfigError, ShopConfig};
use crate::metrics::Metrics;
use crate::notify::Destination;
use crate::pass::PassSettings;
use crate::secrets::{SecretString, same};
use crate::store::StoreError;
use crate::tripletex::{ClientSettings, Tripletex, TripletexError};
use crate::webhooks::Keys;

/// The edges a daemon or a one-shot check needs; tests inject their own.
#[derive(Clone)]
pub struct Environment {
    pub clock: SharedClock,
    /// Stands in for `$CREDENTIALS_DIRECTORY`.
    pub credentials_dir: Option<PathBuf>,
    /// Adjusts HTTP tunables (tests shrink backoffs).
    pub tune: fn(&mut ClientSettings),
    /// Runs at the start of every pass of the named shop, and of all other supervised work on it
    /// (a callback applied, a reconcile), inside that supervision: tests make one panic here;
    /// the process environment does nothing.
    pub before_pass: fn(&str),
    /// Where the daemon counts and measures (exposed as metrics.prom and `[metrics] listen`).
    pub metrics: Arc<Metrics>,
}

impl Environment {
    pub fn from_process(clock: SharedClock) -> Self {
        Self {
            clock,
            credentials_dir: std::env::var_os(crate::secrets::CREDENTIALS_DIRECTORY)
                .map(PathBuf::from),
            tune: |_| {},
            before_pass: |_| {},
            metrics: Arc::new(Metrics::new()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "cannot serve metrics on {addr} ([metrics] listen): {error} (fix: pick a free address and port, or \"\" for no endpoint)"
    )]
    Metrics {
        addr: std::net::SocketAddr,
        error: String,
    },
    #[error(
        "cannot receive webhooks on {addr} (webhooks.listen): {error} (fix: pick a free address and port for the receiver behind your reverse proxy)"
    )]
    Webhooks {
        addr: std::net::SocketAddr,
        error: String,
    },
    #[error("cannot set up the HTTP client for [notify]: {0}")]
    Notify(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tripletex(#[from] TripletexError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store broke (a full disk) and there is room again: a new process must open it.
    #[error(
        "{0}; there is room again, and tripletex-sync exits (code 75) to be restarted on a fresh database handle (by systemd; by hand: start it again)"
    )]
    StoreRestart(String),
}

/// Everything shared by the shop tasks of one configuration generation.
pub(super) struct World {
    pub config: Config,
    pub api: Arc<Tripletex>,
    consumer_token: SecretString,
    /// Derives each shop's callback path and auth value; `None` while webhooks are off.
    pub keys: Option<Keys>,
    /// What `keys` were derived from, to tell whether a reload changed it.
    webhook_secret: Option<SecretString>,
    /// Where notifications go, signer loaded; `None` while `[notify]` is off.
    pub notify: Option<Arc<Destination>>,
}

impl World {
    pub fn build(config: Config, env: &Environment) -> Result<Self, DaemonError> {
        // What `validate` prints as warnings (e.g. a `bike.TOML` that is never read), at start
        // and at every reload, so an operator who only reads the journal sees it too.
        for warning in config.warnings() {
            tracing::warn!(event = "config.warning", warning = %warning, "configuration warning");
        }
        let consumer_token = config
            .tripletex
            .consumer_token
            .load_with(env.credentials_dir.as_deref())?;
        let mut settings = ClientSettings::from(&config);
        settings.observer = Some(env.metrics.clone());
        (env.tune)(&mut settings);
        let api = Tripletex::new(
            &config.tripletex.base_url,
            consumer_token.clone(),
            env.clock.clone(),
            settings,
        )?;
        let webhook_secret = match &config.webhooks {
            Some(w) => Some(w.load_secret(env.credentials_dir.as_deref())?),
            None => None,
        };
        let keys = config
            .webhooks
            .as_ref()
            .zip(webhook_secret.clone())
            .map(|(w, secret)| Keys::new(&w.public_url, secret));
        let notify = match &config.notify {
            Some(n) => Some(Arc::new(Destination {
                signer: n.load_signer(env.credentials_dir.as_deref())?,
                config: n.clone(),
            })),
            None => None,
        };
        Ok(Self {
            config,
            api,
            consumer_token,
            keys,
            webhook_secret,
            notify,
        })
    }

    /// Whether a session minted in this generation may serve `next`: a session belongs to the
    /// Tripletex it was minted at (base URL) with the consumer token (and to the shop's key and
    /// company, which the scheduler compares); every other setting may change under it.
    pub fn sessions_carry_to(&self, next: &World) -> bool {
        self.config.tripletex.base_url == next.config.tripletex.base_url
            && same(&self.consumer_token, &next.consumer_token)
    }

    pub fn pass_settings(&self) -> PassSettings {
        PassSettings::new(&self.config)
    }

    /// Loads every enabled shop's token; the first failure refuses the whole set.
    pub fn tokens(&self, env: &Environment) -> Result<ShopTokens, ConfigError> {
        self.config
            .shops
            .iter()
            .filter(|s| s.enabled)
            .map(|s| {
                Ok((
                    s.clone(),
                    s.employee_token.load_with(env.credentials_dir.as_deref())?,
                ))
            })
            .collect()
    }
}

/// Enabled shops with their loaded employee tokens.
pub(super) type ShopTokens = Vec<(Arc<ShopConfig>, SecretString)>;

/// Validates the new configuration. The flag says whether the shared parts (Tripletex, limits,
/// checks, consumer token) changed, which restarts every shop; else only changed shops restart.
pub(super) fn reload(
    path: &Path,
    env: &Environment,
    current: &World,
) -> Result<(World, bool, ShopTokens), DaemonError> {
    let config = Config::load(path)?;
    if config.state_dir != current.config.state_dir {
        tracing::warn!(
            event = "config.restart_needed",
            "state_dir changed; it takes effect on restart"
        );
    }
    let new_world = World::build(config, env)?;
    let shops = new_world.tokens(env)?;
    let c = &current.config;
    let shared_changed = new_world.config.tripletex != c.tripletex
        || new_world.config.rate_limit != c.rate_limit
        || new_world.config.checks != c.checks
        || new_world.config.webhooks != c.webhooks
        // Whether passes queue notifications is one of their settings.
        || new_world.pass_settings().notify != current.pass_settings().notify
        || !same(&new_world.consumer_token, &current.consumer_token)
        || !same_secret(&new_world.webhook_secret, &current.webhook_secret);
    Ok((new_world, shared_changed, shops))
}

fn same_secret(a: &Option<SecretString>, b: &Option<SecretString>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

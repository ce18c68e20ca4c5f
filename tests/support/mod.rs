//! A daemon-level fixture: the simulator on 127.0.0.1:0 with a manual clock, a config folder
//! (config.toml, shops.d, token files) pointing at it, and helpers to run passes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tripletex_sim::{LoggedRequest, RunningSim, Scenario, Simulator};
use tripletex_sync::checks::CheckKind;
use tripletex_sync::clock::{ManualClock, SharedClock};
use tripletex_sync::config::Config;
use tripletex_sync::daemon::Environment;
use tripletex_sync::pass::{self, PassReport, PassSettings};
use tripletex_sync::secrets::SecretString;
use tripletex_sync::store::{Role, Store};
use tripletex_sync::tripletex::{ClientSettings, ShopClient, Tripletex};

pub const CONSUMER: &str = "fixture-consumer-token";
/// Noon in Oslo on a winter Tuesday.
pub const START: &str = "2026-03-10T11:00:00Z";

/// Main config for tests: fast limits, a short interval, the simulator's URL filled in later.
pub const MAIN: &str = r#"
state_dir = "state"
shops_dir = "shops.d"

[tripletex]
base_url = "BASE_URL"
consumer_token_file = "consumer-token"
session_valid_days = 7
renew_before = "1d"
request_timeout = "5s"

[rate_limit]
per_second = 1000
burst = 1000
reserve = 20
max_concurrent_shops = 8

[checks]
interval = "1h"
jitter = "0s"
full_resync = "24h"
"#;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub sim: Simulator,
    pub clock: Arc<ManualClock>,
    pub running: RunningSim,
    pub config_path: PathBuf,
}

/// Shrinks backoffs so tests of retries finish in milliseconds.
pub fn fast(s: &mut ClientSettings) {
    s.limits.backoff_min = Duration::from_millis(5);
    s.limits.backoff_max = Duration::from_millis(40);
    s.breaker_cooldown = Duration::from_millis(200);
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_main(MAIN).await
    }

    /// `main` is a config.toml whose `base_url` reads `BASE_URL`.
    pub async fn with_main(main: &str) -> Self {
        let clock = ManualClock::new(START.parse().unwrap());
        let sim = Simulator::new(clock.clone());
        sim.add_consumer_token(CONSUMER);
        sim.set_rate_limit(100_000, Duration::from_secs(10));
        Self::around(sim, clock, main, CONSUMER).await
    }

    /// A fixture around the world `scenario` describes (built at [`START`]), instead of an empty
    /// one. The scenario's first consumer token goes into the `consumer-token` file; use
    /// [`Fixture::api_with_consumer`] with it. Add shops with [`Fixture::add_shop_file`].
    pub async fn with_scenario(main: &str, scenario: Scenario) -> Self {
        let clock = ManualClock::new(START.parse().unwrap());
        let consumer = scenario
            .consumer_tokens
            .first()
            .cloned()
            .unwrap_or_default();
        let sim = Simulator::from_scenario(scenario, clock.clone());
        Self::around(sim, clock, main, &consumer).await
    }

    /// Starts `sim` on 127.0.0.1:0 and writes the config folder pointing at it.
    async fn around(sim: Simulator, clock: Arc<ManualClock>, main: &str, consumer: &str) -> Self {
        let running = sim
            .start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shops.d")).unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, main.replace("BASE_URL", &running.base_url())).unwrap();
        write_private(&dir.path().join("consumer-token"), consumer);
        Self {
            dir,
            sim,
            clock,
            running,
            config_path,
        }
    }

    /// A shop file + token file for a company the simulator already knows (e.g. from a scenario).
    pub fn add_shop_file(&self, name: &str, token: &str, extra: &str) {
        write_private(&self.dir.path().join(format!("{name}.token")), token);
        std::fs::write(
            self.dir.path().join("shops.d").join(format!("{name}.toml")),
            format!("employee_token_file = \"../{name}.token\"\n{extra}"),
        )
        .unwrap();
    }

    /// Like [`Fixture::api`], with another consumer token (e.g. a scenario's).
    pub fn api_with_consumer(&self, consumer: &str) -> Arc<Tripletex> {
        let config = self.config();
        let mut settings = ClientSettings::from(&config);
        fast(&mut settings);
        Tripletex::new(
            &config.tripletex.base_url,
            SecretString::from(consumer.to_owned()),
            self.clock.clone(),
            settings,
        )
        .unwrap()
    }

    /// A company in the simulator and a shop file + token file for it. `extra` is appended to the
    /// shop file (e.g. an `[invoice_numbers]` table).
    pub fn add_shop(&self, name: &str, company_id: i64, extra: &str) -> String {
        let token = format!("employee-token-{name}");
        self.sim
            .add_company(company_id, &format!("{name} AS"), true);
        self.sim
            .add_employee_token(&token, company_id, company_id * 10);
        self.add_shop_file(name, &token, extra);
        token
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).unwrap()
    }

    pub fn env(&self) -> Environment {
        let clock: SharedClock = self.clock.clone();
        Environment {
            clock,
            credentials_dir: None,
            tune: fast,
            before_pass: |_| {},
            metrics: Default::default(),
        }
    }

    pub fn open_store(&self) -> Arc<Store> {
        Arc::new(Store::open(&self.config().state_dir, Role::OneShot).unwrap())
    }

    /// The shared API client for this config, as the daemon builds it.
    pub fn api(&self) -> Arc<Tripletex> {
        self.api_with_consumer(CONSUMER)
    }

    /// A client for shop `name`, with its token read from its token file.
    pub fn client(
        &self,
        api: &Arc<Tripletex>,
        name: &str,
        cancel: &CancellationToken,
    ) -> ShopClient {
        let config = self.config();
        let shop = config.shop(name).unwrap();
        let token = shop.employee_token.load_with(None).unwrap();
        api.shop(name, token, shop.company_id, cancel.clone())
    }

    /// One recorded pass of `name` with `client`.
    pub async fn pass(&self, store: &Store, client: &ShopClient, pass_no: u64) -> PassReport {
        let config = self.config();
        let shop = config.shop(client.name()).unwrap();
        let clock: SharedClock = self.clock.clone();
        pass::run(
            shop,
            client,
            store,
            &PassSettings::new(&config),
            &clock,
            pass_no,
        )
        .await
        .unwrap()
    }

    pub fn now(&self) -> Timestamp {
        use tripletex_sync::clock::Clock as _;
        self.clock.now()
    }

    /// Requests to the check kinds' endpoints (`/customer`, `/invoice`: the sync's cost), from
    /// the simulator's log.
    pub fn data_requests(&self) -> Vec<LoggedRequest> {
        let paths = CheckKind::ALL.map(|k| k.spec().list.path);
        self.sim
            .request_log()
            .into_iter()
            .filter(|r| paths.iter().any(|p| r.path.ends_with(p)))
            .collect()
    }
}

pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Waits (polling every 20 ms, up to 20 s) for the daemon to record what `cond` looks for.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::checks::CheckKind;

/// A config folder with a main file, `shops.d/` and a private consumer token.
pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(main: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shops.d")).unwrap();
        let f = Self { dir };
        f.write("config.toml", main);
        f.secret("consumer-token", "consumer");
        f
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn secret(&self, name: &str, text: &str) {
        let p = self.write(name, text);
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    pub fn load(&self) -> Result<Config, ConfigError> {
        self.load_env(&[])
    }

    pub fn load_env(&self, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(&self.dir.path().join("config.toml"), &env)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub(super) const MAIN: &str = r#"
state_dir = "state"
[tripletex]
base_url = "https://tripletex.no/v2"
consumer_token_file = "consumer-token"
session_valid_days = 7
renew_before = "1d"
request_timeout = "30s"
"#;

pub(super) fn err(f: &Fixture) -> String {
    f.load().unwrap_err().to_string()
}

#[test]
fn a_minimal_shop_file_takes_the_seed_defaults() {
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"../acme.token\"\n",
    );
    let c = f.load().unwrap();
    assert_eq!(c.state_dir, f.dir.path().join("state"));
    assert_eq!(c.rate_limit.per_second.get(), 2);
    assert_eq!(c.checks.interval, Duration::from_secs(3600));
    let shop = c.shop("acme").unwrap();
    assert!(shop.enabled);
    assert_eq!(shop.company_id, 0);
    assert_eq!(
        shop.checks[CheckKind::CustomerNumbers],
        Some(NumberRange {
            shop_start: 1,
            tripletex_start: 100_000
        })
    );
    assert_eq!(
        shop.checks[CheckKind::InvoiceNumbers],
        Some(NumberRange {
            shop_start: 6000,
            tripletex_start: 50_000
        })
    );
    assert!(shop.employee_token.describe().ends_with("acme.token"));
}

#[test]
fn the_shipped_example_config_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/config.toml");
    let c = Config::load(&root).unwrap();
    assert!(c.shops.iter().any(|s| s.name == "example"));
}

#[test]
fn unknown_keys_are_refused_naming_file_and_key() {
    let f = Fixture::new(&format!("{MAIN}\n[checks]\nintervall = \"1h\"\n"));
    let e = err(&f);
    assert!(e.contains("config.toml") && e.contains("intervall"), "{e}");
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"x\"\ncompany = 5\n",
    );
    let e = err(&f);
    assert!(e.contains("acme.toml") && e.contains("company"), "{e}");
}

#[test]
fn an_unknown_shop_key_is_refused_at_its_place_naming_every_kind_table() {
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"x\"\ncompany = 5\n",
    );
    let e = err(&f);
    assert!(e.contains("acme.toml:2:1: unknown field `company`"), "{e}");
    for kind in CheckKind::ALL {
        assert!(e.contains(&format!("`{kind}`")), "{kind}: {e}");
    }
}

#[test]
fn wrong_types_are_refused() {
    let f = Fixture::new(&MAIN.replace("session_valid_days = 7", "session_valid_days = \"seven\""));
    let e = err(&f);
    assert!(
        e.contains("config.toml") && e.contains("session_valid_days"),
        "{e}"
    );
}

#[test]
fn shop_start_must_be_below_tripletex_start() {
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"x\"\n[invoice_numbers]\nshop_start = 60000\n",
    );
    let e = err(&f);
    assert!(
        e.contains("acme.toml") && e.contains("invoice_numbers.shop_start"),
        "{e}"
    );
    assert!(e.contains("fix:"), "{e}");
}

#[test]
fn a_disabled_check_is_none() {
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"x\"\n[invoice_numbers]\nenabled = false\n",
    );
    assert_eq!(
        f.load().unwrap().shops[0].checks[CheckKind::InvoiceNumbers],
        None
    );
}

#[test]
fn plain_http_is_only_for_loopback() {
    let f = Fixture::new(&MAIN.replace("https://tripletex.no/v2", "http://tripletex.no/v2"));
    let e = err(&f);
    assert!(
        e.contains("tripletex.base_url") && e.contains("plain http"),
        "{e}"
    );
    for ok in [
        "http://127.0.0.1:8080/v2",
        "http://localhost:1/v2",
        "http://[::1]:9/v2/",
    ] {
        let f = Fixture::new(&MAIN.replace("https://tripletex.no/v2", ok));
        let url = f.load().unwrap().tripletex.base_url;
        assert!(!url.as_str().ends_with("v2/"), "{url}");
    }
}

#[test]
fn a_consumer_token_source_is_required() {
    let f = Fixture::new(&MAIN.replace("consumer_token_file = \"consumer-token\"", ""));
    let e = err(&f);
    assert!(
        e.contains("consumer_token_file") && e.contains("consumer_token_credential"),
        "{e}"
    );
}

#[test]
fn bad_shop_names_and_missing_shops_dir_are_refused() {
    let f = Fixture::new(MAIN);
    f.write("shops.d/acme store.toml", "employee_token_file = \"x\"\n");
    assert!(err(&f).contains("rename the file"));
    let f = Fixture::new(&format!("shops_dir = \"nowhere\"\n{MAIN}"));
    let e = err(&f);
    assert!(e.contains("shops_dir") && e.contains("nowhere"), "{e}");
}

#[test]
fn non_toml_and_hidden_files_in_shops_d_are_ignored() {
    let f = Fixture::new(MAIN);
    f.write("shops.d/README", "not a shop");
    f.write("shops.d/.acme.toml.swp", "x");
    f.write("shops.d/acme.toml.disabled", "x");
    assert!(f.load().unwrap().shops.is_empty());
}

#[test]
fn renewal_must_leave_room() {
    let f = Fixture::new(&MAIN.replace("renew_before = \"1d\"", "renew_before = \"7d\""));
    assert!(err(&f).contains("tripletex.renew_before"));
    let f = Fixture::new(&MAIN.replace("session_valid_days = 7", "session_valid_days = 1"));
    assert!(err(&f).contains("tripletex.session_valid_days"));
}

#[test]
fn a_missing_main_file_says_how_to_point_at_one() {
    let e = Config::load(Path::new("/nonexistent/config.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--config") && e.contains("TRIPLETEX_SYNC_CONFIG"),
        "{e}"
    );
}

#[test]
fn passes_must_come_more_often_than_renewals() {
    let f = Fixture::new(&format!(
        "{MAIN}\n[checks]\ninterval = \"1d\"\njitter = \"0s\"\nfull_resync = \"2d\"\n"
    ));
    let e = err(&f);
    assert!(
        e.contains("checks.interval") && e.contains("renew_before"),
        "{e}"
    );
}

#[test]
fn webhooks_are_off_unless_a_public_url_is_set() {
    let f = Fixture::new(MAIN);
    assert_eq!(f.load().unwrap().webhooks, None);
    let f = Fixture::new(&format!("{MAIN}[webhooks]\nsecret_file = \"hook\"\n"));
    let e = err(&f);
    assert!(
        e.contains("`webhooks.public_url`") && e.contains("webhooks are off"),
        "{e}"
    );
}

#[test]
fn webhooks_take_an_https_url_a_listen_address_and_a_secret() {
    let webhooks = |table: &str| format!("{MAIN}[webhooks]\n{table}\n");
    let good = "public_url = \"https://sync.example.com/tripletex/\"\nsecret_file = \"hook\"";
    let f = Fixture::new(&webhooks(good));
    f.secret("hook", "short-secret-of-31-characters!!");
    let w = f.load().unwrap().webhooks.unwrap();
    let e = w.load_secret(None).unwrap_err().to_string();
    assert!(
        e.contains("`webhooks.secret_file`")
            && e.contains("shorter than 32")
            && !e.contains("short-secret"),
        "{e}"
    );
    let preflight = f.load().unwrap().preflight(None, true);
    assert!(
        preflight
            .iter()
            .any(|p| p.to_string().contains("shorter than 32")),
        "{preflight:?}"
    );
    f.secret("hook", "a-random-secret-of-32-characters");
    assert!(w.load_secret(None).is_ok());
    assert_eq!(w.public_url.as_str(), "https://sync.example.com/tripletex");
    assert_eq!(w.listen, "127.0.0.1:8788".parse().unwrap());
    assert_eq!(
        w.reconcile_interval,
        std::time::Duration::from_secs(6 * 3600)
    );
    assert!(w.secret.describe().ends_with("hook"));
    for (table, key, wants) in [
        (
            "public_url = \"http://sync.example.com/t\"\nsecret_file = \"hook\"",
            "webhooks.public_url",
            "plain http",
        ),
        (
            "public_url = \"https://u:SECRETPW@sync.example.com/t\"\nsecret_file = \"hook\"",
            "webhooks.public_url",
            "user name or password",
        ),
        (
            "public_url = \"https://sync.example.com/t?a=b\"\nsecret_file = \"hook\"",
            "webhooks.public_url",
            "query",
        ),
        (
            "public_url = \"https://s.example.com\"",
            "webhooks.secret_file",
            "no token configured",
        ),
        (
            "public_url = \"https://s.example.com\"\nsecret_file = \"hook\"\nlisten = \"localhost\"",
            "webhooks.listen",
            "not an IP address and port",
        ),
        (
            "public_url = \"https://s.example.com\"\nsecret_file = \"hook\"\nreconcile_interval = \"30m\"",
            "webhooks.reconcile_interval",
            "out of range",
        ),
    ] {
        let e = err(&Fixture::new(&webhooks(table)));
        assert!(
            e.contains(&format!("`{key}`")) && e.contains(wants),
            "{table}: {e}"
        );
        assert!(!e.contains("SECRETPW"), "{e}");
    }
    // The secret file follows the token rules.
    let f = Fixture::new(&webhooks(good));
    f.write("hook", "readable");
    let w = f.load().unwrap().webhooks.unwrap();
    let e = w.secret.load_with(None).unwrap_err().to_string();
    assert!(
        e.contains("`webhooks.secret_file`") && e.contains("chmod 600"),
        "{e}"
    );
}

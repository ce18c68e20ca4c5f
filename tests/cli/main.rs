//! The binary's commands and exit codes, against the simulator over real HTTP.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;
use tripletex_sync_fixture::daemon::Fixture;

mod beside_daemon;

const BIN: &str = env!("CARGO_BIN_EXE_tripletex-sync");

async fn run(f: &Fixture, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(&f.config_path)
        .args(args)
        .env_remove("TRIPLETEX_SYNC_CONFIG")
        .env("RUST_LOG", "info")
        .output()
        .await
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A healthy shop `acme` and one whose Tripletex customer series sits inside its range.
async fn two_shops() -> Fixture {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 300, false);
    f.sim.add_customers(1001, 100_000, 5, false);
    f.add_shop("clash", 1002, "");
    f.sim.add_customers(1002, 1, 300, false);
    f.sim.add_customers(1002, 10_000, 5, false);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_accepts_a_good_config_and_explains_a_bad_one() {
    let f = two_shops().await;
    let ok = run(&f, &["validate"]).await;
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("2 shops"));

    std::fs::remove_file(f.path("acme.token")).unwrap();
    let bad = run(&f, &["validate"]).await;
    assert_eq!(code(&bad), 2);
    let err = stderr(&bad);
    assert!(
        err.contains("acme.toml") && err.contains("employee_token_file"),
        "{err}"
    );
    assert!(
        err.contains("does not exist") && err.contains("API access"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_on_the_shipped_example_names_what_is_missing() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/config.toml");
    let out = Command::new(BIN)
        .args(["--config", example, "validate"])
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("consumer_token_file") && err.contains("consumer-token"),
        "{err}"
    );
    assert!(
        err.contains("example.toml") && err.contains("employee_token_file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exit_codes_follow_the_verdicts() {
    let f = two_shops().await;
    let ok = run(&f, &["check", "--shop", "acme"]).await;
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let table = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(
        table.contains("acme") && !table.contains("clash"),
        "{table}"
    );

    let all = run(&f, &["check", "--json"]).await;
    assert_eq!(code(&all), 1, "a conflict means exit 1: {}", stderr(&all));
    let json: Value = serde_json::from_slice(&all.stdout).unwrap();
    let clash = &json["shops"][1];
    assert_eq!(clash["name"], "clash");
    assert_eq!(clash["checks"]["customer_numbers"]["verdict"], "conflict");
    assert!(
        clash["checks"]["customer_numbers"]["fix"]
            .as_str()
            .unwrap()
            .contains("Customer › Settings")
    );

    let unknown = run(&f, &["check", "--shop", "nope"]).await;
    assert_eq!(code(&unknown), 2);
    assert!(stderr(&unknown).contains("no enabled shop named \"nope\""));

    std::fs::write(f.path("shops.d/broken.toml"), "employee_token_file = 5\n").unwrap();
    let broken = run(&f, &["check"]).await;
    assert_eq!(code(&broken), 2);
    assert!(
        stderr(&broken).contains("broken.toml"),
        "{}",
        stderr(&broken)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_has_the_documented_shape() {
    let f = two_shops().await;
    let before = run(&f, &["status", "--json"]).await;
    assert_eq!(code(&before), 0, "{}", stderr(&before));
    let json: Value = serde_json::from_slice(&before.stdout).unwrap();
    let acme = &json["shops"][0];
    assert_eq!(acme["name"], "acme");
    assert_eq!(acme["enabled"], true);
    assert_eq!(acme["session"]["state"], "unknown");
    assert_eq!(acme["session"]["expires_at"], Value::Null);
    assert_eq!(acme["checks"]["customer_numbers"]["verdict"], "unknown");
    assert_eq!(acme["checks"]["invoice_numbers"]["checked_at"], Value::Null);

    assert_eq!(code(&run(&f, &["check"]).await), 1);
    let after: Value =
        serde_json::from_slice(&run(&f, &["status", "--json"]).await.stdout).unwrap();
    let acme = &after["shops"][0];
    assert_eq!(acme["session"]["state"], "valid");
    assert_eq!(acme["session"]["company_id"], 1001);
    assert!(acme["session"]["expires_at"].is_string());
    assert_eq!(acme["checks"]["customer_numbers"]["verdict"], "ok");
    assert!(acme["checks"]["customer_numbers"]["checked_at"].is_string());
    assert!(acme["checks"]["customer_numbers"]["summary"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_serves_the_demo_world_on_the_port_it_reports() {
    use tokio::io::AsyncBufReadExt as _;
    let mut sim = Command::new(BIN)
        .args(["sim", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(sim.stderr.take().unwrap()).lines();
    let banner = lines.next_line().await.unwrap().unwrap();
    let base = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {banner:?}"))
        .to_owned();
    assert!(!base.contains(":0/"), "{banner}");
    let http = reqwest::Client::new();
    let minted: Value = http
        .post(format!("{base}/token/session/:create"))
        .json(&serde_json::json!({
            "consumerToken": "demo-consumer-token",
            "employeeToken": "demo-key-fjellsport",
            "expirationDate": "2099-01-01"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["value"]["token"].as_str().unwrap();
    let who: Value = http
        .get(format!("{base}/token/session/%3EwhoAmI"))
        .basic_auth("0", Some(token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["value"]["companyId"], 1001);
    // SAFETY: signalling our own child process.
    assert_eq!(
        unsafe { libc::kill(sim.id().unwrap() as i32, libc::SIGTERM) },
        0
    );
    let status = tokio::time::timeout(Duration::from_secs(10), sim.wait())
        .await
        .expect("sim stops on SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_finds_one_healthy_one_conflicting_and_one_rejected_shop() {
    let out = Command::new(BIN)
        .args(["demo", "--seconds", "3"])
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let row = |shop: &str| {
        table
            .lines()
            .find(|l| l.starts_with(shop))
            .unwrap_or_else(|| panic!("no row for {shop}: {table}"))
            .to_owned()
    };
    // What `status` prints: problems first, and the sessions the stopped daemon deleted.
    assert!(row("kaffebrenneriet").contains(" conflict "), "{table}");
    assert!(
        row("sykkelsmia").contains("rejected the employee key"),
        "{table}"
    );
    assert!(row("fjellsport").contains(" ok "), "{table}");
    assert!(
        table.contains("3 shops, 6 checks: 1 conflict, 2 key rejected, 3 ok; 2 sessions revoked"),
        "{table}"
    );
    // Push at work: the shop's new customer reached the daemon by webhook, and is in its run.
    let pushed = row("pushed:");
    assert!(
        pushed.contains("customer 1202") && pushed.contains("without a Tripletex request"),
        "{table}"
    );
    assert!(row("fjellsport").contains("1–1202"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_overrides_reach_every_key_and_are_validated() {
    let f = two_shops().await;
    let with_env = |value: &'static str| {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&f.config_path)
            .arg("validate")
            .env("TRIPLETEX_SYNC__RATE_LIMIT__BURST", value);
        cmd
    };
    let out = with_env("0").output().await.unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("rate_limit.burst")
            && stderr(&out).contains("environment variable TRIPLETEX_SYNC__RATE_LIMIT__BURST"),
        "{}",
        stderr(&out)
    );
    let out = with_env("7").output().await.unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Typed as the key: a float is refused, and the variable (not config.toml) is blamed.
    let out = with_env("1.5").output().await.unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).starts_with("error: environment variable TRIPLETEX_SYNC__RATE_LIMIT__BURST: ")
            && stderr(&out).contains("whole number"),
        "{}",
        stderr(&out)
    );
    let out = with_env("7")
        .env("TRIPLETEX_SYNC__RATE_LIMIT__BURSTT", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("environment variable TRIPLETEX_SYNC__RATE_LIMIT__BURSTT")
            && err.contains("unknown field `burstt`")
            && !err.contains(&f.config_path.display().to_string()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_run_refuse_a_missing_token_before_touching_state_dir() {
    let f = two_shops().await;
    std::fs::remove_file(f.path("acme.token")).unwrap();
    for command in ["check", "run"] {
        let out = run(&f, &[command]).await;
        assert_eq!(code(&out), 2, "{command}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("acme.toml") && err.contains("employee_token_file"),
            "{command}: {err}"
        );
        assert!(
            !f.path("state").exists(),
            "{command} created state_dir (db/, lock) before refusing"
        );
    }
    // The same with an existing state_dir: no db/, no lock file.
    std::fs::create_dir(f.path("state")).unwrap();
    let out = run(&f, &["check"]).await;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!f.path("state/db").exists() && !f.path("state/tripletex-sync.lock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_refuses_a_fifo_token_file_without_blocking() {
    let f = two_shops().await;
    let token = f.path("acme.token");
    std::fs::remove_file(&token).unwrap();
    let c = std::ffi::CString::new(token.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = tokio::time::timeout(Duration::from_secs(30), run(&f, &["validate"]))
        .await
        .expect("validate does not block on a FIFO");
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("employee_token_file") && err.contains("is a FIFO (named pipe)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_are_one_line_with_file_line_and_column() {
    let f = two_shops().await;
    let main = std::fs::read_to_string(&f.config_path).unwrap();
    std::fs::write(
        &f.config_path,
        main.replace("burst = 1000", "burst = \"2\""),
    )
    .unwrap();
    let out = run(&f, &["validate"]).await;
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    let line = main.lines().position(|l| l == "burst = 1000").unwrap() + 1;
    let expected = format!(
        "error: {}:{line}:9: `rate_limit.burst`: ",
        f.config_path.display()
    );
    assert!(err.starts_with(&expected), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.trim_end().ends_with(')') && err.contains("(fix: "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_prints_its_cause_once() {
    let f = two_shops().await;
    std::fs::create_dir(f.path("state")).unwrap();
    std::fs::write(f.path("state/db"), "not a database").unwrap();
    let out = run(&f, &["check"]).await;
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(
        err.contains(&format!("database {}", f.path("state/db").display()))
            && err.contains("(fix: move it away"),
        "names the file and the fix: {err}"
    );
}

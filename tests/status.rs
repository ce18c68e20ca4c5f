//! The `status` command as operators and scripts run it: the default view fitted to the width,
//! `--wide`, `--problems` and its exit codes, `--shop`, and status.json shown whatever shops.d
//! holds.

use std::process::Output;

use tokio::process::Command;
use tripletex_sync_fixture::daemon::Fixture;

const BIN: &str = env!("CARGO_BIN_EXE_tripletex-sync");

/// Runs the binary on the fixture's config with `COLUMNS` as given (unset: none), stdout piped.
async fn run(f: &Fixture, columns: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(&f.config_path)
        .args(args)
        .env_remove("TRIPLETEX_SYNC_CONFIG")
        .env_remove("COLUMNS");
    if let Some(columns) = columns {
        command.env("COLUMNS", columns);
    }
    command.output().await.unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A healthy shop `acme` and one whose Tripletex customer series sits inside its range, both
/// checked once (so status.json is written).
async fn checked() -> Fixture {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 300, false);
    f.add_shop("clash", 1002, "");
    f.sim.add_customers(1002, 1, 300, false);
    f.sim.add_customers(1002, 10_000, 5, false);
    let check = run(&f, None, &["check"]).await;
    assert_eq!(code(&check), 1, "{}", stderr(&check));
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fits_80_columns_lists_problems_first_and_filters() {
    let f = checked().await;
    // COLUMNS=80, and piped without COLUMNS (80 too): never a line wider, in characters.
    for columns in [Some("80"), None] {
        let out = run(&f, columns, &["status"]).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let text = stdout(&out);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{columns:?}: {line:?}");
        }
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SHOP "), "{text}");
        assert!(
            lines[1].starts_with("clash ") && lines[1].contains(" conflict "),
            "problems first: {text}"
        );
        assert!(
            text.contains("2 shops, 4 checks: 1 conflict, 3 ok"),
            "{text}"
        );
    }
    let wider = stdout(&run(&f, Some("300"), &["status"]).await);
    assert!(
        wider.lines().any(|l| l.chars().count() > 80),
        "COLUMNS widens it: {wider}"
    );

    // The full table: sessions and fixes, nothing cut.
    for flag in ["--wide", "-l"] {
        let wide = stdout(&run(&f, Some("80"), &["status", flag]).await);
        assert!(wide.contains("SESSION") && wide.contains("fix: "), "{wide}");
    }

    // For scripts: only what needs attention, and the exit code says whether anything does.
    let problems = run(&f, None, &["status", "--problems"]).await;
    assert_eq!(code(&problems), 1, "{}", stderr(&problems));
    let text = stdout(&problems);
    assert!(text.contains("clash") && !text.contains("acme"), "{text}");
    let fine = run(&f, None, &["status", "--problems", "--shop", "acme"]).await;
    assert_eq!(code(&fine), 0, "{}", stderr(&fine));
    assert!(
        stdout(&fine).starts_with("nothing needs attention (1 shop,"),
        "{}",
        stdout(&fine)
    );

    let one = stdout(&run(&f, None, &["status", "--shop", "acme"]).await);
    assert!(one.contains("acme") && !one.contains("clash"), "{one}");
    let unknown = run(&f, None, &["status", "--shop", "nope"]).await;
    assert_eq!(code(&unknown), 2);
    let err = stderr(&unknown);
    assert!(
        err.contains("no shop named \"nope\"") && err.contains("acme, clash"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_status_json_when_a_shop_file_is_broken() {
    let f = checked().await;
    std::fs::write(f.path("shops.d/broken.toml"), "employee_token_file = 5\n").unwrap();

    let out = run(&f, None, &["status"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one warning line: {err}");
    assert!(
        err.starts_with("warning: ") && err.contains("broken.toml"),
        "{err}"
    );
    let text = stdout(&out);
    assert!(text.contains("clash") && text.contains("acme"), "{text}");

    // A shops.d that does not load needs attention too.
    assert_eq!(code(&run(&f, None, &["status", "--problems"]).await), 1);
    let json = run(&f, None, &["status", "--json"]).await;
    assert_eq!(code(&json), 0);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["shops"].as_array().unwrap().len(), 2);

    // Without the main file there is no state_dir to read: that stops it.
    std::fs::write(&f.config_path, "state_dir = [\n").unwrap();
    let broken = run(&f, None, &["status"]).await;
    assert_eq!(code(&broken), 2);
    assert!(
        stderr(&broken).contains("config.toml"),
        "{}",
        stderr(&broken)
    );
}

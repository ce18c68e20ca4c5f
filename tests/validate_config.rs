//! `validate` on configuration edges that need no simulator: what it warns about (a shop file
//! that is not read) and what it refuses (a token file with a byte-order mark), as printed.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tripletex-sync");

/// A config folder with one shop `acme` whose token file holds `token`.
fn config(token: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    std::fs::create_dir(dir.path().join("shops.d")).unwrap();
    write(
        "config.toml",
        "state_dir = \"state\"\n[tripletex]\nconsumer_token_file = \"consumer-token\"\n",
    );
    write("consumer-token", "consumer");
    write("acme.token", token);
    for token in ["consumer-token", "acme.token"] {
        let mode = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(dir.path().join(token), mode).unwrap();
    }
    write(
        "shops.d/acme.toml",
        "employee_token_file = \"../acme.token\"\n",
    );
    dir
}

fn validate(dir: &Path) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("validate")
        .env_remove("TRIPLETEX_SYNC_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap()
}

#[test]
fn validate_warns_about_a_shop_file_in_upper_case_and_still_succeeds() {
    let dir = config("employee");
    std::fs::write(dir.path().join("shops.d/bike.TOML"), "x").unwrap();
    let out = validate(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "warning: {}: is not read: only files ending in .toml (lower case) are shop files (fix: rename it to NAME.toml to make it a shop, or move it out of shops_dir)",
            dir.path().join("shops.d/bike.TOML").display()
        )
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(1 shops"));
}

#[test]
fn validate_refuses_a_token_file_with_a_byte_order_mark_without_printing_it() {
    let dir = config("\u{FEFF}CANARY-BOM\n");
    let out = validate(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("acme.toml: `employee_token_file`: token file ")
            && err.contains("acme.token starts with a UTF-8 byte-order mark (EF BB BF)")
            && err.contains("(fix: save it without BOM"),
        "{err}"
    );
    assert!(!err.contains("CANARY"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

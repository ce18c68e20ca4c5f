//! Regression tests for where input comes from: TOML syntax errors, environment overrides,
//! base_url user info, state_dir, and files that are not regular files.

use std::time::{Duration, Instant};

use super::tests::{Fixture, MAIN, err};
use super::*;

#[test]
fn toml_syntax_errors_are_one_line_with_file_line_and_column() {
    let f = Fixture::new(&format!("{MAIN}\n[rate_limit\nburst = 5\n"));
    let e = err(&f);
    let lines = MAIN.lines().count() + 2;
    let path = f.path("config.toml").display().to_string();
    assert!(e.starts_with(&format!("{path}:{lines}:12: ")), "{e}");
    assert!(e.contains("(fix: ") && !e.contains('\n'), "{e}");
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"x\"\nenabled = true\nenabled = false\n",
    );
    let e = err(&f);
    assert!(
        e.contains("acme.toml:3:1: ") && e.contains("duplicate key"),
        "{e}"
    );
}

#[test]
fn a_base_url_with_user_info_is_refused_without_showing_the_password() {
    for url in [
        "https://user:hunter2@tripletex.no/v2",
        "https://hunter2@tripletex.no/v2",
    ] {
        let e = err(&Fixture::new(&MAIN.replace("https://tripletex.no/v2", url)));
        assert!(
            e.contains("tripletex.base_url") && e.contains("user name or password"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
    let e = err(&Fixture::new(
        &MAIN.replace("https://tripletex.no/v2", "ftp://u:hunter2@x/"),
    ));
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn state_dir_must_not_be_a_system_folder() {
    for bad in ["/", "/etc", "/var", "/tmp", "/usr/../etc", "/proc/self"] {
        let e = err(&Fixture::new(
            &MAIN.replace("\"state\"", &format!("{bad:?}")),
        ));
        assert!(
            e.contains("`state_dir`") && e.contains("fix:"),
            "{bad}: {e}"
        );
    }
    let f = Fixture::new(&MAIN.replace("\"state\"", "\"a/../b/./state\""));
    assert_eq!(f.load().unwrap().state_dir, f.path("b/state"));
}

#[test]
fn preflight_checks_state_dir_and_every_token() {
    let f = Fixture::new(&MAIN.replace("\"state\"", "\"missing/state\""));
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"../acme.token\"\n",
    );
    f.write(
        "shops.d/off.toml",
        "employee_token_file = \"../off.token\"\nenabled = false\n",
    );
    let c = f.load().unwrap();
    let all: Vec<String> = c
        .preflight(None, true)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        all[0].contains("`state_dir`") && all[0].contains("parent"),
        "{all:?}"
    );
    assert!(
        all[1].contains("acme.token") && all[2].contains("off.token"),
        "{all:?}"
    );
    assert_eq!(
        c.preflight(None, false).len(),
        2,
        "a disabled shop's token is not needed"
    );
}

#[test]
fn environment_overrides_take_the_type_of_their_key_and_blame_the_variable() {
    const BURST: &str = "TRIPLETEX_SYNC__RATE_LIMIT__BURST";
    let f = Fixture::new(MAIN);
    let c = f
        .load_env(&[(BURST, " 7 "), ("TRIPLETEX_SYNC__STATE_DIR", "123")])
        .unwrap();
    assert_eq!(c.rate_limit.burst.get(), 7);
    assert_eq!(c.state_dir, f.path("123"));
    let c = f
        .load_env(&[("TRIPLETEX_SYNC__CHECKS__HISTORY", "30d")])
        .unwrap();
    assert_eq!(c.checks.history, Duration::from_secs(30 * 86_400));

    for (var, value, says) in [
        (BURST, "1.5", "wants a whole number"),
        (BURST, "\"2\"", "wants a whole number"),
        (BURST, "0", "out of range"),
        (BURST, "99999999999", "whole number from 0 to 4294967295"),
        (
            "TRIPLETEX_SYNC__RATE_LIMIT__BURSTT",
            "1",
            "unknown field `burstt`",
        ),
        ("TRIPLETEX_SYNC__NOPE", "1", "unknown field `nope`"),
        ("TRIPLETEX_SYNC__A__B__C", "1", "names no configuration key"),
        ("TRIPLETEX_SYNC__", "1", "names no configuration key"),
        ("TRIPLETEX_SYNC__CHECKS", "1", "is a section"),
        ("TRIPLETEX_SYNC__CHECKS__HISTORY", "30000y", "out of range"),
        (
            "TRIPLETEX_SYNC__CHECKS__HISTORY",
            "soon",
            "expected a duration",
        ),
        (
            "TRIPLETEX_SYNC__TRIPLETEX__BASE_URL",
            "https://u:hunter2@x/v2",
            "user name",
        ),
        (
            "TRIPLETEX_SYNC__TRIPLETEX__CONSUMER_TOKEN_CREDENTIAL",
            "ct",
            "are set",
        ),
        (
            "TRIPLETEX_SYNC__TRIPLETEX__CONSUMER_TOKEN_FILE",
            " ",
            "no token configured",
        ),
    ] {
        let e = f.load_env(&[(var, value)]).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("environment variable {var}: ")) && e.contains(says),
            "{var}={value}: {e}"
        );
        let file = f.path("config.toml").display().to_string();
        assert!(!e.contains(&file) && !e.contains("hunter2"), "{e}");
    }
}

#[test]
fn main_and_shop_files_that_are_not_regular_files_are_refused_quickly() {
    let started = Instant::now();
    for (make, says) in special_files() {
        let f = Fixture::new(MAIN);
        make(&f.path("shops.d/acme.toml"));
        let e = err(&f);
        assert!(
            e.contains("acme.toml") && e.contains(says) && e.contains("fix:"),
            "{e}"
        );
    }
    for (make, says) in special_files() {
        let f = Fixture::new(MAIN);
        std::fs::remove_file(f.path("config.toml")).unwrap();
        make(&f.path("config.toml"));
        let e = err(&f);
        assert!(e.contains("config.toml") && e.contains(says), "{e}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn token_files_that_are_not_regular_or_too_large_are_refused_quickly() {
    let started = Instant::now();
    for (make, says) in special_files() {
        let f = Fixture::new(MAIN);
        std::fs::remove_file(f.path("consumer-token")).unwrap();
        make(&f.path("consumer-token"));
        let problems = f.load().unwrap().preflight(None, true);
        let e = problems.last().unwrap().to_string();
        assert!(
            e.contains("tripletex.consumer_token_file") && e.contains(says),
            "{e}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));

    let f = Fixture::new(MAIN);
    f.secret("consumer-token", &"x".repeat(4096));
    assert!(f.load().unwrap().preflight(None, true).is_empty());
    f.secret("consumer-token", &"x".repeat(4097));
    let e = f.load().unwrap().preflight(None, true)[0].to_string();
    assert!(e.contains("larger than 4096 bytes"), "{e}");
    f.secret("consumer-token", "one\ntwo\n");
    let e = f.load().unwrap().preflight(None, true)[0].to_string();
    assert!(
        e.contains("more than one word") && !e.contains("two"),
        "{e}"
    );
}

type Make = fn(&Path);

/// Ways a path can be something other than a regular file, and what the refusal says.
fn special_files() -> Vec<(Make, &'static str)> {
    vec![
        (|p| std::fs::create_dir(p).unwrap(), "is a directory"),
        (
            |p| {
                let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            },
            "is a FIFO",
        ),
        (
            |p| {
                // The listener's socket file outlives it.
                std::os::unix::net::UnixListener::bind(p).unwrap();
            },
            "is a socket",
        ),
        (
            |p| std::os::unix::fs::symlink(p.with_extension("gone"), p).unwrap(),
            "symlink whose target does not exist",
        ),
        (
            |p| {
                let other = p.with_extension("loop");
                std::os::unix::fs::symlink(&other, p).unwrap();
                std::os::unix::fs::symlink(p, other).unwrap();
            },
            "symlink loop",
        ),
        (
            |p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
            "symlink to a character device",
        ),
    ]
}

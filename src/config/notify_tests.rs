//! The `[notify]` table: off by default, its URL rules, its secret (token rules, then the
//! `whsec_` format, never shown), environment overrides. Range edges are in `strict_tests`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::tests::{Fixture, MAIN, err};

/// A valid Standard Webhooks secret (24 key bytes, the fewest accepted).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn notify(table: &str) -> String {
    format!("{MAIN}[notify]\n{table}\n")
}

const GOOD: &str =
    "url = \"https://mystore.example/hooks/tripletex-sync\"\nsecret_file = \"notify-secret\"";

#[test]
fn notify_is_off_unless_a_url_is_set_and_a_secret_alone_is_refused() {
    let f = Fixture::new(MAIN);
    assert_eq!(f.load().unwrap().notify, None);
    let f = Fixture::new(&notify("timeout = \"30s\""));
    assert_eq!(f.load().unwrap().notify, None);
    for table in [
        "secret_file = \"notify-secret\"",
        "secret_credential = \"n\"",
    ] {
        let e = err(&Fixture::new(&notify(table)));
        assert!(
            e.contains("`notify.url`: is empty, so notify is off, but a notify secret is set")
                && e.contains("(fix: set url = \"https://HOST/PATH\""),
            "{e}"
        );
    }
}

#[test]
fn notify_takes_a_url_a_secret_a_timeout_and_a_max_age() {
    let f = Fixture::new(&notify(GOOD));
    f.secret("notify-secret", SECRET);
    let config = f.load().unwrap();
    let n = config.notify.as_ref().unwrap();
    assert_eq!(
        n.url.as_str(),
        "https://mystore.example/hooks/tripletex-sync"
    );
    assert_eq!(n.timeout, Duration::from_secs(10));
    assert_eq!(n.max_age, Duration::from_secs(7 * 86_400));
    assert!(n.load_signer(None).is_ok());
    assert!(config.preflight(None, true).is_empty());

    let f = Fixture::new(&notify(&format!(
        "{GOOD}\ntimeout = \"1m\"\nmax_age = \"30d\""
    )));
    let n = f.load().unwrap().notify.unwrap();
    assert_eq!(
        (n.timeout, n.max_age),
        (Duration::from_secs(60), Duration::from_secs(30 * 86_400))
    );
}

#[test]
fn notify_urls_are_https_or_loopback_http_without_user_query_or_fragment() {
    for (url, kept) in [
        ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
        ("http://localhost/hook/", "http://localhost/hook/"),
        ("http://[::1]:9/h", "http://[::1]:9/h"),
        ("https://mystore.example", "https://mystore.example/"),
    ] {
        let f = Fixture::new(&notify(&format!(
            "url = \"{url}\"\nsecret_file = \"notify-secret\""
        )));
        assert_eq!(f.load().unwrap().notify.unwrap().url.as_str(), kept);
    }
    for (url, wants) in [
        ("http://mystore.example/hook", "plain http"),
        (
            "https://u:SECRETPW@mystore.example/hook",
            "user name or password",
        ),
        (
            "https://SECRETPW@mystore.example/hook",
            "user name or password",
        ),
        ("https://mystore.example/hook?k=v", "query or fragment"),
        ("https://mystore.example/hook#x", "query or fragment"),
        ("ftp://mystore.example/hook", "only https"),
        ("mystore.example/hook", "is not a URL"),
    ] {
        let e = err(&Fixture::new(&notify(&format!(
            "url = \"{url}\"\nsecret_file = \"notify-secret\""
        ))));
        assert!(
            e.contains("`notify.url`") && e.contains(wants) && e.contains("(fix: "),
            "{url}: {e}"
        );
        assert!(!e.contains("SECRETPW"), "{e}");
        assert!(e.contains("config.toml:"), "{e}");
    }
    let e = err(&Fixture::new(&notify(
        "url = \"https://mystore.example/h\"",
    )));
    assert!(
        e.contains("`notify.secret_file`") && e.contains("no token configured"),
        "{e}"
    );
}

#[test]
fn the_secret_follows_the_token_rules_then_the_whsec_format_and_is_never_shown() {
    let f = Fixture::new(&notify(GOOD));
    let n = f.load().unwrap().notify.unwrap();
    let file = f.path("notify-secret").display().to_string();
    for (text, wants) in [
        (
            "CANARYSECRETxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "it does not start with whsec_",
        ),
        ("whsec_CANARY!!SECRET", "it is not base64 after whsec_"),
        (
            "whsec_Q0FOQVJZU0VDUkVU",
            "it decodes to 12 bytes, fewer than 24",
        ),
    ] {
        f.secret("notify-secret", text);
        let e = n.load_signer(None).unwrap_err().to_string();
        assert!(
            e.contains("`notify.secret_file`")
                && e.contains(&format!(
                    "the secret in {file} is not a Standard Webhooks secret"
                ))
                && e.contains(wants)
                && e.contains("(fix: put the platform's secret there, whsec_"),
            "{e}"
        );
        assert!(!e.contains("CANARY") && !e.contains("Q0FO"), "{e}");
        let preflight = f.load().unwrap().preflight(None, true);
        assert_eq!(preflight.len(), 1, "{preflight:?}");
        assert!(preflight[0].to_string().contains(wants));
    }
    // Token rules first: private, present.
    let file = f.write("notify-secret", SECRET);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = n.load_signer(None).unwrap_err().to_string();
    assert!(
        e.contains("`notify.secret_file`") && e.contains("chmod 600") && !e.contains(SECRET),
        "{e}"
    );
    std::fs::remove_file(f.path("notify-secret")).unwrap();
    let e = n.load_signer(None).unwrap_err().to_string();
    assert!(
        e.contains("does not exist") && e.contains("the platform's whsec_ secret"),
        "{e}"
    );
}

#[test]
fn the_secret_may_be_a_systemd_credential() {
    let f = Fixture::new(&notify(
        "url = \"https://mystore.example/h\"\nsecret_credential = \"notify\"",
    ));
    let n = f.load().unwrap().notify.unwrap();
    assert!(n.load_signer(None).unwrap_err().to_string().contains(
        "`notify.secret_credential`: credential \"notify\" needs $CREDENTIALS_DIRECTORY"
    ));
    f.secret("notify", SECRET);
    assert!(n.load_signer(Some(f.dir.path())).is_ok());
}

#[test]
fn environment_overrides_set_and_are_blamed_for_notify_keys() {
    let f = Fixture::new(MAIN);
    f.secret("notify-secret", SECRET);
    let n = f
        .load_env(&[
            ("TRIPLETEX_SYNC__NOTIFY__URL", "https://mystore.example/h"),
            ("TRIPLETEX_SYNC__NOTIFY__SECRET_FILE", "notify-secret"),
            ("TRIPLETEX_SYNC__NOTIFY__TIMEOUT", "20s"),
            ("TRIPLETEX_SYNC__NOTIFY__MAX_AGE", "2d"),
        ])
        .unwrap()
        .notify
        .unwrap();
    assert_eq!(n.url.as_str(), "https://mystore.example/h");
    assert_eq!(n.timeout, Duration::from_secs(20));
    assert_eq!(n.max_age, Duration::from_secs(2 * 86_400));
    assert!(n.load_signer(None).is_ok());
    for (var, value, wants) in [
        (
            "TRIPLETEX_SYNC__NOTIFY__URL",
            "http://mystore.example/h",
            "plain http",
        ),
        ("TRIPLETEX_SYNC__NOTIFY__TIMEOUT", "6m", "out of range"),
        ("TRIPLETEX_SYNC__NOTIFY__MAX_AGE", "59m", "out of range"),
        ("TRIPLETEX_SYNC__NOTIFY__SECRET", "x", "unknown field"),
    ] {
        let e = f
            .load_env(&[
                ("TRIPLETEX_SYNC__NOTIFY__URL", "https://mystore.example/h"),
                ("TRIPLETEX_SYNC__NOTIFY__SECRET_FILE", "notify-secret"),
                (var, value),
            ])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("environment variable {var}: ")) && e.contains(wants),
            "{var}={value}: {e}"
        );
    }
}

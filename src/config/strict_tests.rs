//! Regression tests for strictness: defaults, types, ranges and their edges, and README's table
//! of them.

use std::time::Duration;

use super::tests::{Fixture, MAIN, err};
use super::*;

/// What README calls the smallest configuration.
const SMALLEST: &str = r#"
state_dir = "state"
shops_dir = "shops.d"
[tripletex]
consumer_token_file = "consumer-token"
"#;

/// Room for every edge: a year-long session, so long intervals and renewals fit.
const EDGES: &str = r#"
state_dir = "state"
[tripletex]
consumer_token_file = "consumer-token"
session_valid_days = 366
renew_before = "60d"
[checks]
jitter = "0s"
full_resync = "366d"
"#;

/// Room for the lower edges: a two-day session fits a short renewal and short passes.
const SHORT: &str = r#"
state_dir = "state"
[tripletex]
consumer_token_file = "consumer-token"
renew_before = "2h"
[checks]
interval = "1m"
jitter = "0s"
"#;

/// `base` with `key` (dotted, at most one section) set to the TOML literal `value`.
fn with(base: &str, key: &str, value: &str) -> String {
    let mut table: toml::Table = toml::from_str(base).unwrap();
    let value = toml::from_str::<toml::Table>(&format!("v = {value}")).unwrap()["v"].clone();
    match key.split_once('.') {
        Some((section, key)) => {
            table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap()
                .insert(key.into(), value);
        }
        None => {
            table.insert(key.into(), value);
        }
    }
    toml::to_string(&table).unwrap()
}

/// Every duration of an accepted config can become a jiff span (where they used to panic).
fn fits_jiff(c: &Config) {
    for d in [
        c.tripletex.renew_before,
        c.tripletex.request_timeout,
        c.checks.interval,
        c.checks.jitter,
        c.checks.full_resync,
        c.checks.invoice_window,
        c.checks.history,
    ] {
        let span = jiff::Span::new().try_seconds(d.as_secs() as i64).unwrap();
        jiff::Timestamp::now().checked_sub(span).unwrap();
    }
}

#[test]
fn the_smallest_config_and_shop_file_take_every_documented_default() {
    let f = Fixture::new(SMALLEST);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"../acme.token\"\n",
    );
    f.secret("acme.token", "employee");
    let c = f.load().unwrap();
    assert_eq!(c.tripletex.base_url.as_str(), "https://tripletex.no/v2");
    assert_eq!(c.tripletex.session_valid_days, 7);
    assert_eq!(c.tripletex.renew_before, Duration::from_secs(86_400));
    assert_eq!(c.tripletex.request_timeout, Duration::from_secs(30));
    let r = &c.rate_limit;
    assert_eq!(
        (
            r.per_second.get(),
            r.burst.get(),
            r.reserve,
            r.max_concurrent_shops
        ),
        (2, 5, 20, 32)
    );
    let k = &c.checks;
    assert_eq!(
        [
            k.interval,
            k.jitter,
            k.full_resync,
            k.invoice_window,
            k.history
        ],
        [3600, 300, 86_400, 62 * 86_400, 90 * 86_400].map(Duration::from_secs)
    );
    assert_eq!(
        (
            k.policy.cluster_gap,
            k.policy.forecast_warn_days,
            k.policy.headroom_warn
        ),
        (1000, 90, 500)
    );
    let shop = c.shop("acme").unwrap();
    assert!(shop.enabled && shop.company_id == 0);
    assert!(shop.checks.iter().all(|(_, range)| range.is_some()));
    assert!(c.preflight(None, true).is_empty());
    fits_jiff(&c);
}

/// (file, its text, the key, what the error must say it wants)
const WRONG_TYPES: &[(&str, &str, &str, &str)] = &[
    (
        "config.toml",
        "[rate_limit]\nper_second = 1.5",
        "rate_limit.per_second",
        "whole number",
    ),
    (
        "config.toml",
        "[rate_limit]\nburst = \"2\"",
        "rate_limit.burst",
        "whole number",
    ),
    (
        "config.toml",
        "[rate_limit]\nreserve = nan",
        "rate_limit.reserve",
        "whole number",
    ),
    (
        "config.toml",
        "[checks]\ncluster_gap = true",
        "checks.cluster_gap",
        "whole number",
    ),
    (
        "config.toml",
        "[checks]\nhistory = 90",
        "checks.history",
        "duration",
    ),
    ("config.toml", "state_dir = 123", "state_dir", "string"),
    ("config.toml", "checks = 5", "checks", "table"),
    (
        "shops.d/acme.toml",
        "company_id = 1.5",
        "company_id",
        "whole number",
    ),
    (
        "shops.d/acme.toml",
        "enabled = \"yes\"",
        "enabled",
        "true or false",
    ),
    (
        "shops.d/acme.toml",
        "enabled = 1",
        "enabled",
        "true or false",
    ),
    (
        "shops.d/acme.toml",
        "employee_token_file = 5",
        "employee_token_file",
        "string",
    ),
    (
        "shops.d/acme.toml",
        "[customer_numbers]\ntripletex_start = nan",
        "customer_numbers.tripletex_start",
        "whole number",
    ),
    (
        "shops.d/acme.toml",
        "[invoice_numbers]\nshop_start = -5",
        "invoice_numbers.shop_start",
        "whole number",
    ),
];

#[test]
fn each_wrong_type_is_refused_naming_file_line_key_and_type() {
    for (file, text, key, wants) in WRONG_TYPES {
        let f = match *file {
            // Tables after MAIN's, top-level keys before them.
            "config.toml" if text.starts_with('[') => Fixture::new(&format!("{MAIN}\n{text}\n")),
            "config.toml" => Fixture::new(&format!(
                "{text}\n{}",
                MAIN.replace("state_dir = \"state\"", "")
            )),
            _ => {
                let f = Fixture::new(MAIN);
                f.write(file, text);
                f
            }
        };
        let e = err(&f);
        let path = f.path(file).display().to_string();
        let body = std::fs::read_to_string(f.path(file)).unwrap();
        let last = text.lines().last().unwrap();
        let line = body.lines().position(|l| l == last).unwrap() + 1;
        assert!(e.starts_with(&format!("{path}:{line}:")), "{text}: {e}");
        assert!(
            e.contains(&format!("`{key}`")) && e.contains(wants),
            "{text}: {e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn every_key_refuses_every_other_type() {
    let main = toml::Value::try_from(raw::RawConfig::default()).unwrap();
    let mut keys = vec![
        ("tripletex.consumer_token_file".to_owned(), "string"),
        ("tripletex.consumer_token_credential".to_owned(), "string"),
    ];
    for (name, value) in main.as_table().unwrap() {
        match value {
            toml::Value::Table(t) => {
                keys.extend(t.iter().map(|(k, v)| (format!("{name}.{k}"), v.type_str())))
            }
            v => keys.push((name.clone(), v.type_str())),
        }
    }
    let samples = [
        ("\"text\"", "string"),
        ("7", "integer"),
        ("1.5", "float"),
        ("nan", "float"),
        ("true", "boolean"),
        ("[1]", "array"),
        ("{ a = 1 }", "table"),
        ("2026-01-01", "datetime"),
    ];
    for (key, kind) in &keys {
        for (value, sample_kind) in samples {
            if sample_kind == *kind {
                continue;
            }
            let f = Fixture::new(&with(MAIN, key, value));
            let e = err(&f);
            assert!(e.contains(&format!("`{key}`")), "{key} = {value}: {e}");
        }
    }
    let shop_keys = [
        ("employee_token_file", "string"),
        ("employee_token_credential", "string"),
        ("company_id", "integer"),
        ("enabled", "boolean"),
        ("customer_numbers.enabled", "boolean"),
        ("customer_numbers.shop_start", "integer"),
        ("invoice_numbers.tripletex_start", "integer"),
    ];
    for (key, kind) in shop_keys {
        for (value, sample_kind) in samples {
            if sample_kind == kind {
                continue;
            }
            let f = Fixture::new(MAIN);
            f.write("shops.d/acme.toml", &with("", key, value));
            let e = err(&f);
            assert!(
                e.contains("acme.toml") && e.contains(&format!("`{key}`")),
                "{key} = {value}: {e}"
            );
        }
    }
}

/// (key, accepted at the edge, refused just past it)
const MAIN_EDGES: &[(&str, &str, &str)] = &[
    ("tripletex.session_valid_days", "366", "367"),
    ("tripletex.session_valid_days", "366", "7304485"),
    ("tripletex.session_valid_days", "366", "1"),
    ("tripletex.request_timeout", "\"10m\"", "\"10m 1s\""),
    ("tripletex.request_timeout", "\"1s\"", "\"0s\""),
    ("rate_limit.per_second", "1000", "1001"),
    ("rate_limit.per_second", "1", "0"),
    ("rate_limit.burst", "1000", "1001"),
    ("rate_limit.burst", "1", "0"),
    ("rate_limit.reserve", "10000", "10001"),
    ("rate_limit.reserve", "0", "10001"),
    ("rate_limit.max_concurrent_shops", "1000", "1001"),
    ("rate_limit.max_concurrent_shops", "1", "0"),
    ("checks.interval", "\"30d\"", "\"30d 1s\""),
    ("checks.interval", "\"1s\"", "\"0s\""),
    ("checks.full_resync", "\"366d\"", "\"367d\""),
    ("checks.full_resync", "\"1h\"", "\"59m\""),
    ("checks.invoice_window", "\"10y\"", "\"10y 1s\""),
    ("checks.invoice_window", "\"10y\"", "\"30000y\""),
    ("checks.invoice_window", "\"1d\"", "\"23h\""),
    ("checks.history", "\"10y\"", "\"10y 1s\""),
    ("checks.history", "\"10y\"", "\"30000y\""),
    ("checks.history", "\"1d\"", "\"23h\""),
    ("checks.cluster_gap", "2147483647", "2147483648"),
    ("checks.cluster_gap", "1", "0"),
    ("checks.forecast_warn_days", "3660", "3661"),
    ("checks.forecast_warn_days", "0", "3661"),
    ("checks.headroom_warn", "2147483647", "2147483648"),
    ("checks.headroom_warn", "0", "2147483648"),
    ("notify.timeout", "\"5m\"", "\"5m 1s\""),
    ("notify.timeout", "\"1s\"", "\"0s\""),
    ("notify.max_age", "\"90d\"", "\"90d 1s\""),
    ("notify.max_age", "\"1h\"", "\"59m 59s\""),
];

#[test]
fn every_number_and_duration_has_a_range_with_tested_edges() {
    for (key, ok, bad) in MAIN_EDGES {
        let f = Fixture::new(&with(EDGES, key, ok));
        let c = f
            .load()
            .unwrap_or_else(|e| panic!("{key} = {ok} refused: {e}"));
        fits_jiff(&c);
        let f = Fixture::new(&with(EDGES, key, bad));
        let e = err(&f);
        assert!(
            e.contains(&format!("`{key}`")) && e.contains("out of range") && e.contains("fix:"),
            "{key} = {bad}: {e}"
        );
    }
}

#[test]
fn the_panicking_values_of_the_issue_are_refused_with_their_range() {
    for (key, value, range) in [
        ("checks.history", "\"30000y\"", "from 1day to 10years"),
        (
            "checks.invoice_window",
            "\"30000y\"",
            "from 1day to 10years",
        ),
        ("tripletex.session_valid_days", "7304485", "from 2 to 366"),
    ] {
        let e = err(&Fixture::new(&with(MAIN, key, value)));
        assert!(e.contains(key) && e.contains(range), "{e}");
    }
}

#[test]
fn shop_numbers_have_ranges_with_tested_edges() {
    for (text, ok) in [
        ("company_id = 2147483647", true),
        ("company_id = 2147483648", false),
        ("company_id = -1", false),
        ("[customer_numbers]\ntripletex_start = 2147483647", true),
        ("[customer_numbers]\ntripletex_start = 2147483648", false),
        (
            "[customer_numbers]\nshop_start = 1\ntripletex_start = 2",
            true,
        ),
        ("[customer_numbers]\nshop_start = 0", false),
        ("[invoice_numbers]\nshop_start = 49999", true),
        ("[invoice_numbers]\nshop_start = 50000", false),
    ] {
        let f = Fixture::new(MAIN);
        f.write(
            "shops.d/acme.toml",
            &format!("employee_token_file = \"x\"\n{text}\n"),
        );
        match f.load() {
            Ok(_) => assert!(ok, "{text} accepted"),
            Err(e) => {
                let e = e.to_string();
                assert!(!ok, "{text} refused: {e}");
                assert!(e.contains("acme.toml") && e.contains("fix:"), "{e}");
            }
        }
    }
}

/// docs/configuration.md's table of main-file keys states the defaults and the plain ranges the code applies.
#[test]
fn readme_states_the_defaults_and_ranges_of_the_code() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let defaults = toml::Value::try_from(raw::RawConfig::default()).unwrap();
    let mut rows = 0;
    for row in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let [_, key, _, default, range, ..] = cells[..] else {
            continue;
        };
        let key = key.trim_matches('`');
        let mut value = Some(&defaults);
        for part in key.split('.') {
            value = value.and_then(|v| v.get(part));
        }
        let Some(value) = value else { continue };
        rows += 1;
        let default = default.trim_matches('`');
        match value {
            toml::Value::Integer(i) => assert_eq!(default, i.to_string(), "{key}"),
            toml::Value::String(s) => match humantime::parse_duration(s) {
                Ok(d) => assert_eq!(humantime::parse_duration(default).unwrap(), d, "{key}"),
                Err(_) => assert_eq!(default, s, "{key}"),
            },
            other => panic!("{key}: {other:?}"),
        }
        // A plain "low–high" range is tried at both ends and one step past the upper one.
        let Some((low, high)) = range.split_once('–') else {
            continue;
        };
        let (low, high) = (low.trim(), high.trim());
        let literal = |text: &str| match value {
            toml::Value::Integer(_) => text.to_owned(),
            _ => format!("{text:?}"),
        };
        let past = match value {
            toml::Value::Integer(_) => match high.parse::<i64>() {
                Ok(n) => (n + 1).to_string(),
                Err(_) => continue,
            },
            _ => format!("{:?}", format!("{high} 1s")),
        };
        if low.starts_with('`') || high.starts_with('`') {
            continue;
        }
        for (base, ok) in [(SHORT, low), (EDGES, high)] {
            let f = Fixture::new(&with(base, key, &literal(ok)));
            assert!(f.load().is_ok(), "{key} = {ok}: {}", err(&f));
        }
        let e = err(&Fixture::new(&with(EDGES, key, &past)));
        assert!(e.contains("out of range"), "{key} = {past}: {e}");
    }
    assert!(
        rows >= 18,
        "docs/configuration.md's key table was not found ({rows} rows)"
    );
}

#[test]
fn metrics_listen_is_off_by_default_and_an_address_when_set() {
    let f = Fixture::new(SHORT);
    assert_eq!(f.load().unwrap().metrics_listen, None);
    let f = Fixture::new(&with(SHORT, "metrics.listen", "\"127.0.0.1:9187\""));
    assert_eq!(
        f.load().unwrap().metrics_listen,
        Some("127.0.0.1:9187".parse().unwrap())
    );
    let e = err(&Fixture::new(&with(
        SHORT,
        "metrics.listen",
        "\"localhost\"",
    )));
    assert!(
        e.contains("metrics.listen") && e.contains("not an address"),
        "{e}"
    );
}

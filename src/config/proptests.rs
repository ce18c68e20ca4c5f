//! Property tests over configuration files: documents built from the schema's keys with values of
//! every type and extreme, and byte-level mutations of the shipped examples. Whatever the input,
//! loading never panics or hangs and ends in a config whose values are safe downstream, or in one
//! line naming the file. Bounded: a few hundred cases, a second or two.

use proptest::prelude::*;
use proptest::test_runner::Config as Cases;

use super::tests::Fixture;
use super::*;

const MAIN_KEYS: &[(&str, &[&str])] = &[
    ("", &["state_dir", "shops_dir", "bogus"]),
    (
        "tripletex",
        &[
            "base_url",
            "consumer_token_file",
            "consumer_token_credential",
            "session_valid_days",
            "renew_before",
            "request_timeout",
        ],
    ),
    (
        "rate_limit",
        &["per_second", "burst", "reserve", "max_concurrent_shops"],
    ),
    (
        "checks",
        &[
            "interval",
            "jitter",
            "full_resync",
            "invoice_window",
            "history",
            "cluster_gap",
            "forecast_warn_days",
            "headroom_warn",
        ],
    ),
];

const SHOP_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "employee_token_file",
            "employee_token_credential",
            "company_id",
            "enabled",
        ],
    ),
    (
        "customer_numbers",
        &["enabled", "shop_start", "tripletex_start"],
    ),
    (
        "invoice_numbers",
        &["enabled", "shop_start", "tripletex_start"],
    ),
];

/// A TOML value literal (or something that is not one): every type, extremes, durations.
fn value() -> impl Strategy<Value = String> {
    let units = prop::sample::select(vec!["ns", "ms", "s", "m", "h", "d", "w", "M", "y", ""]);
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (0u64..10_000, units.clone()).prop_map(|(n, u)| format!("\"{n}{u}\"")),
        (any::<u64>(), units).prop_map(|(n, u)| format!("\"{n}{u}\"")),
        prop::sample::select(vec![
            "0",
            "1",
            "-1",
            "2",
            "366",
            "367",
            "1000",
            "1001",
            "7304485",
            "2147483647",
            "2147483648",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999",
            "nan",
            "-nan",
            "inf",
            "-inf",
            "1.5",
            "1e300",
            "-0.0",
            "true",
            "false",
            "\"\"",
            "\" \"",
            "\"1h\"",
            "\"10y\"",
            "\"30000y\"",
            "\"1h 1ns\"",
            "\"2\"",
            "\"yes\"",
            "\"state\"",
            "\"/\"",
            "\"/etc\"",
            "\"..\"",
            "\"consumer-token\"",
            "\"https://tripletex.no/v2\"",
            "\"http://127.0.0.1:1/v2\"",
            "\"http://tripletex.no/v2\"",
            "\"https://u:pw@tripletex.no/v2\"",
            "\"file:///etc\"",
            "\"https://x/v2?a=1\"",
            "\"not a url\"",
            "[1, 2]",
            "[]",
            "{ a = 1 }",
            "{}",
            "2026-01-01",
            "2026-01-01T00:00:00Z",
            "'''x'''",
            "\"\\u0000\"",
            "\"a\\nb\"",
            "",
            "=",
            "[",
        ])
        .prop_map(str::to_owned),
    ]
}

/// (section index, key index (any: wraps, one past the end is bogus), value) triples laid over a
/// valid document.
fn edits(
    schema: &'static [(&'static str, &'static [&'static str])],
) -> impl Strategy<Value = Vec<(usize, usize, String)>> {
    prop::collection::vec((0..schema.len(), any::<usize>(), value()), 0..6)
}

/// Renders `base` ((section, key, value) lines) with `edits` applied, tables after top-level keys.
fn render(
    schema: &[(&str, &[&str])],
    base: &[(&str, &str, &str)],
    edits: &[(usize, usize, String)],
) -> String {
    let mut sections: Vec<(String, Vec<(String, String)>)> = schema
        .iter()
        .map(|(s, _)| (s.to_string(), Vec::new()))
        .collect();
    for (section, key, value) in base {
        let i = schema.iter().position(|(s, _)| s == section).unwrap();
        sections[i].1.push((key.to_string(), value.to_string()));
    }
    for (s, k, value) in edits {
        let keys = schema[*s].1;
        let key = keys
            .get(*k)
            .map_or_else(|| format!("bogus{k}"), |k| k.to_string());
        let entries = &mut sections[*s].1;
        match entries.iter_mut().find(|(name, _)| *name == key) {
            Some(entry) => entry.1 = value.clone(),
            None => entries.push((key, value.clone())),
        }
    }
    let mut text = String::new();
    for (section, entries) in sections {
        if !section.is_empty() {
            text.push_str(&format!("[{section}]\n"));
        }
        for (key, value) in entries {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    text
}

const MAIN_BASE: &[(&str, &str, &str)] = &[
    ("", "state_dir", "\"state\""),
    ("tripletex", "consumer_token_file", "\"consumer-token\""),
    ("checks", "interval", "\"1m\""),
    ("checks", "jitter", "\"0s\""),
];
const SHOP_BASE: &[(&str, &str, &str)] = &[("", "employee_token_file", "\"../acme.token\"")];

/// The property: a config whose values are safe downstream, or one line naming `blamed`.
fn loads_or_names(f: &Fixture, blamed: &[&str]) -> Result<(), TestCaseError> {
    match f.load() {
        Ok(c) => {
            for d in [
                c.tripletex.renew_before,
                c.tripletex.request_timeout,
                c.checks.interval,
                c.checks.jitter,
                c.checks.full_resync,
                c.checks.invoice_window,
                c.checks.history,
            ] {
                let span = jiff::Span::new().try_seconds(i64::try_from(d.as_secs()).unwrap());
                prop_assert!(span.is_ok(), "{d:?} does not fit a jiff span");
                prop_assert!(jiff::Timestamp::now().checked_sub(span.unwrap()).is_ok());
            }
            crate::pass::PassSettings::new(&c);
            let settings = crate::tripletex::ClientSettings::from(&c);
            prop_assert_eq!(settings.request_timeout, c.tripletex.request_timeout);
            for e in c.preflight(None, true) {
                let e = e.to_string();
                prop_assert!(!e.contains('\n'), "{e}");
            }
        }
        Err(e) => {
            let e = e.to_string();
            prop_assert!(!e.contains('\n'), "{e}");
            let named = blamed
                .iter()
                .any(|name| e.starts_with(&f.path(name).display().to_string()));
            prop_assert!(named, "{e}");
        }
    }
    Ok(())
}

fn fixture_with_tokens(main: &str) -> Fixture {
    let f = Fixture::new(main);
    f.secret("acme.token", "employee");
    f
}

fn cases() -> Cases {
    Cases {
        cases: 300,
        failure_persistence: None,
        ..Cases::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn any_main_file_loads_or_is_refused_in_one_line(edits in edits(MAIN_KEYS)) {
        let f = fixture_with_tokens(&render(MAIN_KEYS, MAIN_BASE, &edits));
        f.write("shops.d/acme.toml", "employee_token_file = \"../acme.token\"\n");
        loads_or_names(&f, &["config.toml"])?;
    }

    #[test]
    fn any_shop_file_loads_or_is_refused_in_one_line(edits in edits(SHOP_KEYS)) {
        let f = fixture_with_tokens(super::tests::MAIN);
        f.write("shops.d/acme.toml", &render(SHOP_KEYS, SHOP_BASE, &edits));
        loads_or_names(&f, &["shops.d/acme.toml"])?;
    }

    #[test]
    fn mutated_examples_load_or_are_refused_in_one_line(
        main in mutations(),
        shop in mutations(),
    ) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let f = fixture_with_tokens("");
        let mutate = |name: &str, edits: &[Mutation]| {
            let mut bytes = std::fs::read(root.join(name)).unwrap();
            for m in edits {
                m.apply(&mut bytes);
            }
            std::fs::write(f.path(name), bytes).unwrap();
        };
        mutate("config.toml", &main);
        mutate("shops.d/example.toml", &shop);
        loads_or_names(&f, &["config.toml", "shops.d/example.toml"])?;
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Truncate(usize),
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>) {
        let at = |i: &usize, b: &Vec<u8>| i % (b.len() + 1);
        match self {
            Self::Delete(i, n) => {
                let start = at(i, bytes);
                let end = (start + n).min(bytes.len());
                bytes.drain(start..end);
            }
            Self::Insert(i, text) => {
                let start = at(i, bytes);
                bytes.splice(start..start, text.iter().copied());
            }
            Self::Truncate(i) => {
                let len = at(i, bytes);
                bytes.truncate(len);
            }
        }
    }
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let snippet = prop_oneof![
        value().prop_map(String::into_bytes),
        prop::sample::select(vec![
            "=",
            "[",
            "]",
            "[[",
            "\"",
            "'",
            "\n",
            "#",
            ".",
            "-",
            "0",
            "9",
            "y",
            "\\",
            "é",
            "\0",
            "\r",
            " = nan\n",
            "\n[checks]\n",
            "\nhistory = \"30000y\"\n",
            "\u{feff}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..4),
    ];
    let one = prop_oneof![
        (any::<usize>(), 1..20usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), snippet).prop_map(|(i, s)| Mutation::Insert(i, s)),
        any::<usize>().prop_map(Mutation::Truncate),
    ];
    prop::collection::vec(one, 1..5)
}

//! Regression tests for the edges a fault probe found: sub-second durations, syntax errors that
//! named no key, state_dir and shops_dir overlapping the configuration, token files with a
//! byte-order mark, and shop file names (non-ASCII, case twins, `.TOML`).

use super::tests::{Fixture, MAIN, err};
use super::*;

/// Every duration key of the main file, dotted (`checks.jitter`), found from the defaults.
fn duration_keys() -> Vec<String> {
    let defaults = toml::Value::try_from(raw::RawConfig::default()).unwrap();
    let mut keys = Vec::new();
    for (section, table) in defaults.as_table().unwrap() {
        let Some(table) = table.as_table() else {
            continue;
        };
        for (key, value) in table {
            if value
                .as_str()
                .is_some_and(|v| humantime::parse_duration(v).is_ok())
            {
                keys.push(format!("{section}.{key}"));
            }
        }
    }
    keys
}

#[test]
fn every_duration_key_refuses_a_part_below_one_second_where_it_is_written() {
    let keys = duration_keys();
    assert!(keys.len() >= 8, "{keys:?}");
    for key in &keys {
        let (section, name) = key.split_once('.').unwrap();
        for (value, says) in [
            ("1ns", "1ns is below one second"),
            ("999ms", "999ms is below one second"),
            ("1h 1ms", "1h 1ms is not a whole number of seconds"),
        ] {
            let mut table: toml::Table = toml::from_str(MAIN).unwrap();
            let section = table
                .entry(section)
                .or_insert_with(|| toml::Table::new().into());
            section
                .as_table_mut()
                .unwrap()
                .insert(name.into(), value.into());
            let text = toml::to_string(&table).unwrap();
            let written = format!("{name} = \"{value}\"");
            let line = text.lines().position(|l| l == written).unwrap() + 1;
            let f = Fixture::new(&text);
            let e = err(&f);
            let path = f.path("config.toml").display().to_string();
            assert!(
                e.starts_with(&format!("{path}:{line}:"))
                    && e.contains(&format!("`{key}`: {says}: durations are whole seconds, in the units s m h d w M y (fix: write it in whole seconds")),
                "{key} = {value}: {e}"
            );
            let var = format!("TRIPLETEX_SYNC__{}", key.replace('.', "__").to_uppercase());
            let e = Fixture::new(MAIN)
                .load_env(&[(&var, value)])
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("environment variable {var}: `{key}`: {says}")),
                "{e}"
            );
        }
    }
    // Zero stays a duration (jitter may be none), and whole seconds in any unit are fine.
    let f = Fixture::new(&format!(
        "{MAIN}\n[checks]\njitter = \"0s\"\ninterval = \"1m 30s\"\n"
    ));
    let c = f.load().unwrap();
    assert_eq!(c.checks.jitter, std::time::Duration::ZERO);
    assert_eq!(c.checks.interval.as_secs(), 90);
}

#[test]
fn a_duplicate_key_is_named_with_its_table() {
    let f = Fixture::new(&format!(
        "{MAIN}\n[checks]\njitter = \"1m\"\n# again\njitter = \"2m\"\n"
    ));
    let e = err(&f);
    let line = MAIN.lines().count() + 5;
    let path = f.path("config.toml").display().to_string();
    assert_eq!(
        e,
        format!(
            "{path}:{line}:1: `checks.jitter`: duplicate key `jitter`: it is set twice (fix: keep one of the two lines (TOML refuses a second value rather than taking it))"
        )
    );
    let f = Fixture::new(&format!("{MAIN}\n[checks]\n[rate_limit]\n[checks]  # x\n"));
    let e = err(&f);
    assert!(
        e.contains(&format!(
            "config.toml:{}:2: `checks`: duplicate key: the table [checks] is declared twice",
            MAIN.lines().count() + 4
        )),
        "{e}"
    );
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"x\"\n[invoice_numbers]\n\"shop_start\" = 1\nshop_start = 2\n",
    );
    let e = err(&f);
    assert!(
        e.contains("acme.toml:4:1: `invoice_numbers.shop_start`: duplicate key `shop_start`"),
        "{e}"
    );
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "customer_numbers = { enabled = true, enabled = false }\n",
    );
    let e = err(&f);
    assert!(
        e.contains("acme.toml:1:") && e.contains("`customer_numbers`: duplicate key `enabled`"),
        "{e}"
    );
}

#[test]
fn an_unquoted_duration_is_named_and_told_to_go_in_quotes() {
    let f = Fixture::new(&format!("{MAIN}\n[checks]\ninterval = 1m\n"));
    let e = err(&f);
    let line = MAIN.lines().count() + 3;
    assert!(
        e.contains(&format!(
            "config.toml:{line}:12: `checks.interval`: 1m is not in quotes: durations, paths and other text are (fix: write interval = \"1m\")"
        )),
        "{e}"
    );
    // The message of a quoted-less number, which the unquoted text now matches.
    let e = err(&Fixture::new(&format!("{MAIN}\n[checks]\ninterval = 60\n")));
    assert!(
        e.contains("`checks.interval`: invalid type: integer `60`, expected a duration in quotes"),
        "{e}"
    );
    let e = err(&Fixture::new(
        &MAIN.replace("state_dir = \"state\"", "state_dir = state"),
    ));
    assert!(
        e.contains("config.toml:2:13: `state_dir`: state is not in quotes"),
        "{e}"
    );
}

#[test]
fn fixes_name_the_installed_examples() {
    let e = err(&Fixture::new(&format!(
        "{MAIN}\n[checks]\nintervall = \"1h\"\n"
    )));
    assert!(
        e.contains("/etc/tripletex-sync/config.toml")
            && e.contains("/usr/share/doc/tripletex-sync/examples/"),
        "{e}"
    );
    let e = Config::load(Path::new("/nonexistent/config.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/etc/tripletex-sync/config.toml") && e.contains("config/config.toml"),
        "{e}"
    );
}

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
            "config.toml:{line}:12: `checks.interval`: 1m is not in quotes: durations, paths and other text are (fix: write interval = \"1m\"; only true, false and numbers go without quotes)"
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

#[test]
fn state_dir_must_not_be_or_hold_the_config_folder_or_shops_dir() {
    for (state_dir, says) in [
        (".", "is the folder of the main file"),
        ("./", "is the folder of the main file"),
        ("shops.d", "is shops_dir"),
        ("shops.d/..", "is the folder of the main file"),
    ] {
        let f = Fixture::new(&MAIN.replace("\"state\"", &format!("{state_dir:?}")));
        let e = err(&f);
        assert!(
            e.contains("config.toml: `state_dir`: ")
                && e.contains(says)
                && e.contains("(fix: give it a folder of its own outside the configuration"),
            "{state_dir}: {e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
    // A parent of the main file's folder (a temporary folder's parent would be /tmp).
    let f = Fixture::new(MAIN);
    std::fs::create_dir_all(f.path("etc/shops.d")).unwrap();
    f.write("etc/config.toml", &MAIN.replace("\"state\"", "\"..\""));
    f.secret("etc/consumer-token", "consumer");
    let e = Config::load_with_env(&f.path("etc/config.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "`state_dir`: {} holds the folder of the main file ({})",
            f.dir.path().display(),
            f.path("etc").display()
        )),
        "{e}"
    );
    // Through a symlink too.
    let f = Fixture::new(&MAIN.replace("\"state\"", "\"link\""));
    std::os::unix::fs::symlink(f.path("shops.d"), f.path("link")).unwrap();
    let e = err(&f);
    assert!(
        e.contains("`state_dir`: ") && e.contains("link is shops_dir"),
        "{e}"
    );
    // A folder beside or below the configuration stays fine.
    let f = Fixture::new(&MAIN.replace("\"state\"", "\"shops.d/../state\""));
    assert_eq!(f.load().unwrap().state_dir, f.path("state"));
}

#[test]
fn shops_dir_must_be_a_folder_other_than_the_config_folder() {
    for (shops_dir, says) in [
        ("", "is empty"),
        (" ", "is empty"),
        (".", "is the main file's own folder"),
        ("shops.d/..", "is the main file's own folder"),
        ("consumer-token", "is not a folder"),
    ] {
        let f = Fixture::new(&format!("shops_dir = {shops_dir:?}\n{MAIN}"));
        let e = err(&f);
        assert!(
            e.contains("config.toml: `shops_dir`: ") && e.contains(says) && e.contains("(fix: "),
            "{shops_dir:?}: {e}"
        );
    }
}

#[test]
fn shop_names_say_which_characters_are_allowed() {
    let f = Fixture::new(MAIN);
    f.write("shops.d/sjøsport.toml", "employee_token_file = \"x\"\n");
    let e = err(&f);
    assert!(
        e.contains("sjøsport.toml: shop name \"sjøsport\" (the file name) may only use the ASCII letters a–z and A–Z, digits 0–9, - and _, not 'ø'"),
        "{e}"
    );
}

#[test]
fn shop_names_that_differ_only_in_case_are_refused_naming_both_files() {
    let f = Fixture::new(MAIN);
    f.write("shops.d/Fjellsport.toml", "employee_token_file = \"x\"\n");
    f.write("shops.d/fjellsport.toml", "employee_token_file = \"y\"\n");
    let e = err(&f);
    let first = f.path("shops.d/Fjellsport.toml").display().to_string();
    let second = f.path("shops.d/fjellsport.toml").display().to_string();
    assert!(
        e.starts_with(&format!("{second}: shop name \"fjellsport\" differs only in case from the shop file {first} (fix: ")),
        "{e}"
    );
}

#[test]
fn files_ending_in_toml_in_another_case_are_named_as_not_read() {
    let f = Fixture::new(MAIN);
    f.write("shops.d/acme.toml", "employee_token_file = \"x\"\n");
    f.write("shops.d/bike.TOML", "employee_token_file = \"x\"\n");
    f.write("shops.d/.hidden.Toml", "x");
    f.write("shops.d/acme.toml.disabled", "x");
    let c = f.load().unwrap();
    assert_eq!(c.shops.len(), 1);
    let warnings: Vec<String> = c.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [format!(
            "{}: is not read: only files ending in .toml (lower case) are shop files (fix: rename it to NAME.toml to make it a shop, or move it out of shops_dir)",
            f.path("shops.d/bike.TOML").display()
        )]
    );
}

#[test]
fn token_files_with_a_byte_order_mark_are_refused_naming_key_and_file_not_the_token() {
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"../acme.token\"\n",
    );
    f.secret("acme.token", "\u{FEFF}CANARY-EMPLOYEE\r\n");
    f.secret("consumer-token", "\u{FEFF}CANARY-CONSUMER");
    let problems: Vec<String> = f
        .load()
        .unwrap()
        .preflight(None, true)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    for (p, key, file) in [
        (
            &problems[0],
            "tripletex.consumer_token_file",
            "consumer-token",
        ),
        (&problems[1], "employee_token_file", "acme.token"),
    ] {
        assert!(
            p.contains(&format!("`{key}`: token file "))
                && p.contains(&format!(
                    "{file} starts with a UTF-8 byte-order mark (EF BB BF)"
                ))
                && p.contains("(fix: save it without BOM"),
            "{p}"
        );
        assert!(!p.contains("CANARY") && !p.contains('\u{FEFF}'), "{p}");
    }
}

#[test]
fn an_unquoted_value_inside_an_inline_table_names_its_table() {
    let f = Fixture::new(MAIN);
    f.write(
        "shops.d/acme.toml",
        "employee_token_file = \"x\"\ncustomer_numbers = { enabled = yes }\n",
    );
    let e = err(&f);
    assert!(
        e.contains("acme.toml:2:32: `customer_numbers`: yes is not in quotes")
            && e.contains(
                "(fix: write it as \"yes\"; only true, false and numbers go without quotes)"
            ),
        "{e}"
    );
}

//! TOML text and environment overrides → the raw structs, with errors that point at the place:
//! `FILE:LINE:COL: `key`: …` for the files, `environment variable NAME: `key`: …` for overrides.
//!
//! An override `TRIPLETEX_SYNC__SECTION__KEY` is read as the type its key has (the type of the
//! key's default: integer, boolean or string; durations and paths are strings), checked on its
//! own against the schema (so an error can only be that variable's), then laid over the file.
//!
//! A TOML syntax error carries no key path; for the two an operator meets most (a key written
//! twice, a value without quotes) the key is read from the text at the error's span, with the
//! `[table]` above it, so every refusal a person is likely to cause names its key.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::raw::{RawConfig, WHOLE_SECONDS};
use super::{ConfigError, ENV_PREFIX, Origin};

/// Where the annotated examples are, installed (the package) and in the source tree.
const EXAMPLES: &str = "the annotated examples /etc/tripletex-sync/config.toml and /usr/share/doc/tripletex-sync/examples/shops.d/example.toml (config/config.toml and config/shops.d/example.toml in the source)";

fn schema_fix() -> String {
    format!("see {EXAMPLES} for every key and its type")
}

/// Which keys an environment variable set, by dotted key (`rate_limit.burst`).
pub(super) type Overrides = BTreeMap<String, String>;

/// Parses one file's text as `T`; errors name the file, line, column and key.
pub(super) fn file<T: DeserializeOwned>(
    path: &std::path::Path,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let origin = Origin::File {
            path: path.to_path_buf(),
            at: e.span().map(|span| line_col(text, span.start)),
        };
        from_toml(origin, &e, text)
    })
}

/// The main file with every `TRIPLETEX_SYNC__…` variable of `env` laid over it.
pub(super) fn main_file(
    path: &std::path::Path,
    text: &str,
    env: &[(String, String)],
) -> Result<(RawConfig, Overrides), ConfigError> {
    let raw: RawConfig = file(path, text)?;
    if env.is_empty() {
        return Ok((raw, Overrides::new()));
    }
    let defaults = toml::Value::try_from(RawConfig::default()).expect("defaults serialize");
    let mut merged: toml::Table = toml::from_str(text).expect("parsed above");
    let mut overrides = Overrides::new();
    for (var, value) in env {
        let (key, value) = override_value(&defaults, var, value)?;
        // Alone against the schema first: whatever is wrong is this variable's fault.
        let mut alone = toml::Table::new();
        insert(&mut alone, &key, value.clone());
        RawConfig::deserialize(toml::Value::Table(alone))
            .map_err(|e| from_toml(Origin::Env(var.clone()), &e, ""))?;
        insert(&mut merged, &key, value);
        overrides.insert(key.join("."), var.clone());
    }
    let raw = RawConfig::deserialize(toml::Value::Table(merged)).map_err(|e| {
        // Each override and the file passed alone; only their combination is left.
        from_toml(
            Origin::File {
                path: path.to_path_buf(),
                at: None,
            },
            &e,
            "",
        )
    })?;
    Ok((raw, overrides))
}

/// The key path a variable names and its value, read as that key's type.
fn override_value(
    defaults: &toml::Value,
    var: &str,
    value: &str,
) -> Result<(Vec<String>, toml::Value), ConfigError> {
    let refuse = |problem: String, fix: &str| ConfigError {
        origin: Origin::Env(var.to_owned()),
        key: None,
        problem,
        fix: fix.to_owned(),
    };
    let key: Vec<String> = var
        .strip_prefix(ENV_PREFIX)
        .and_then(|rest| rest.strip_prefix("__"))
        .map(|rest| rest.split("__").map(str::to_ascii_lowercase).collect())
        .unwrap_or_default();
    let unknown = || {
        refuse(
            "names no configuration key".into(),
            "use TRIPLETEX_SYNC__KEY or TRIPLETEX_SYNC__SECTION__KEY for a key of the main file (e.g. TRIPLETEX_SYNC__RATE_LIMIT__BURST), or unset it",
        )
    };
    if key.is_empty() || key.len() > 2 || key.iter().any(|k| k.is_empty()) {
        return Err(unknown());
    }
    let mut default = Some(defaults);
    for part in &key {
        default = default.and_then(|d| d.get(part.as_str()));
    }
    let dotted = key.join(".");
    let wants = |what: &str, example: &str| {
        refuse(
            format!("`{dotted}` wants {what}, found {value:?}"),
            &format!("e.g. {var}={example}"),
        )
    };
    let value = match default {
        Some(toml::Value::Integer(_)) => value
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| wants("a whole number", "5"))?,
        Some(toml::Value::Boolean(_)) => match value.trim() {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => return Err(wants("true or false", "true")),
        },
        Some(toml::Value::Table(_)) => {
            return Err(refuse(
                format!("`{dotted}` is a section, not a key"),
                "set one key of it, e.g. TRIPLETEX_SYNC__RATE_LIMIT__BURST=10",
            ));
        }
        // Strings, durations, and the optional keys (absent from the defaults); an unknown key
        // is refused by the schema check.
        _ => toml::Value::String(value.to_owned()),
    };
    Ok((key, value))
}

fn insert(table: &mut toml::Table, key: &[String], value: toml::Value) {
    match key {
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                insert(inner, rest, value);
            }
        }
        [] => {}
    }
}

/// One line from a toml error: the key it was about and serde's message, in operator words.
/// `text` is what was parsed (empty for values that are not text: no syntax errors there).
fn from_toml(origin: Origin, e: &toml::de::Error, text: &str) -> ConfigError {
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    // Without its input, the error renders as "message\nin `a.b`\n": the only way to its key.
    let key = shown
        .lines()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .map(str::to_owned);
    let message = e.message();
    let fix = if message.contains(WHOLE_SECONDS) {
        "write it in whole seconds, e.g. \"1s\" or \"5m\" (\"0s\" where the key allows zero)".into()
    } else {
        schema_fix()
    };
    let refusal = ConfigError {
        origin,
        key,
        problem: plain(message),
        fix,
    };
    match e.span() {
        Some(span) if refusal.key.is_none() => syntax(refusal, text, span),
        _ => refusal,
    }
}

/// A syntax error has no serde key path: the two an operator meets most (a key written twice, a
/// duration without quotes) get the key from the text at the error's span.
fn syntax(refusal: ConfigError, text: &str, span: std::ops::Range<usize>) -> ConfigError {
    let at = text.get(span.clone()).unwrap_or_default();
    let Some((key, line, is_header)) = written_key(text, span.start) else {
        return refusal;
    };
    let (problem, fix) = if refusal.problem.starts_with("duplicate key") {
        if is_header {
            (
                format!("duplicate key: the table [{key}] is declared twice"),
                "keep one [header] and put all of the table's keys under it".to_owned(),
            )
        } else {
            (
                format!("duplicate key `{}`: it is set twice", unquote(at)),
                "keep one of the two lines (TOML refuses a second value rather than taking it)"
                    .to_owned(),
            )
        }
    } else if refusal.problem.starts_with("string values must be quoted") && !is_header {
        // `key = 1m` gets its line written out; one inside an array or inline table just the quoted value.
        let whole_value = line
            .split_once('=')
            .is_some_and(|(_, value)| value.trim_start().starts_with(at));
        let name = key.rsplit('.').next().unwrap_or(&key);
        (
            format!("{at} is not in quotes: durations, paths and other text are"),
            if whole_value {
                format!("write {name} = \"{at}\"; only true, false and numbers go without quotes")
            } else {
                format!("write it as \"{at}\"; only true, false and numbers go without quotes")
            },
        )
    } else {
        return refusal;
    };
    ConfigError {
        key: Some(key),
        problem,
        fix,
        ..refusal
    }
}

/// The dotted key written on the line at byte `offset` (with the `[table]` above it), that line,
/// and whether it is a table header.
fn written_key(text: &str, offset: usize) -> Option<(String, &str, bool)> {
    let before = text.get(..offset)?;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or_default();
    if let Some(table) = header(line) {
        return Some((table, line, true));
    }
    let (key, _) = line.split_once('=')?;
    let key = unquote(key);
    if key.is_empty() {
        return None;
    }
    let table = before[..start].lines().rev().find_map(header);
    Some((
        table.map_or(key.clone(), |t| format!("{t}.{key}")),
        line,
        false,
    ))
}

/// `[name]` or `[[name]]` (a comment may follow) → `name`; any other line → `None`.
fn header(line: &str) -> Option<String> {
    let inner = line.trim().strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let (name, _) = inner.split_once(']')?;
    let name = unquote(name);
    let key_chars = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    (!name.is_empty() && name.chars().all(key_chars)).then_some(name)
}

/// A written (possibly dotted, quoted or spaced) key as a plain dotted one: ` "a" . b ` → `a.b`.
fn unquote(key: &str) -> String {
    key.split('.')
        .map(|part| part.trim().trim_matches(['"', '\'']))
        .collect::<Vec<_>>()
        .join(".")
}

/// serde's type names in words an operator knows.
fn plain(message: &str) -> String {
    let mut text = message.replace('\n', " ");
    for (rust, words) in [
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number from 0 upwards"),
        ("expected i64", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        (
            "expected a duration",
            "expected a duration in quotes, e.g. \"30s\"",
        ),
        (" as i128", ""),
    ] {
        text = text.replace(rust, words);
    }
    if let Some(i) = text.find("expected struct ") {
        text.replace_range(i.., "expected a table ([section])");
    }
    text
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_characters() {
        assert_eq!(line_col("a = 1\nbé = x", 10), (2, 4));
        assert_eq!(line_col("", 0), (1, 1));
        assert_eq!(line_col("abc", 99), (1, 4));
    }

    #[test]
    fn struct_names_and_rust_types_are_translated() {
        assert_eq!(
            plain("invalid type: integer `5`, expected struct RawChecks"),
            "invalid type: integer `5`, expected a table ([section])"
        );
        assert_eq!(
            plain("invalid type: string \"2\", expected u32"),
            "invalid type: string \"2\", expected a whole number from 0 to 4294967295"
        );
    }
}

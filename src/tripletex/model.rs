//! Tripletex's JSON, as far as this program reads or writes it.
//!
//! Field names follow the OpenAPI spec (2.74). Only the fields we ask for with `fields=` are
//! modelled; unknown fields are ignored so a newer Tripletex does not break us. List rows are
//! parsed by hand ([`Record::parse`], driven by the check kind's spec, with the field readers
//! [`positive`] and [`boolean`] that list answers and webhook envelopes share) so that a missing or
//! out-of-range number is refused, not defaulted.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checks::KindSpec;
use crate::checks::kinds::{Entry, Tail, TailValue, Version};

/// `PostSessionTokenBody`: the JSON body of `POST /token/session/:create`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostSessionTokenBody<'a> {
    pub consumer_token: &'a str,
    pub employee_token: &'a str,
    /// `YYYY-MM-DD`; the token dies at 00:00 Europe/Oslo at the start of this date.
    pub expiration_date: String,
}

/// `{"value": …}`, the single-object envelope.
#[derive(Debug, Deserialize)]
pub struct Wrapper<T> {
    pub value: T,
}

/// The parts of `SessionToken` we use. `token` is taken out at once into a `SecretString`.
#[derive(Deserialize)]
pub struct SessionToken {
    pub token: String,
}

/// The parts of `LoggedInUserInfo` (`GET /token/session/>whoAmI`) we record: both required,
/// since an answer without them proves nothing about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhoAmI {
    pub employee_id: i64,
    pub company_id: i64,
}

impl WhoAmI {
    /// Reads the `{"value": …}` answer, refusing one without positive `employeeId` and
    /// `companyId` (e.g. `{"value":{}}`).
    pub fn parse(answer: &Value) -> Result<Self, String> {
        let value = answer
            .get("value")
            .and_then(Value::as_object)
            .ok_or("`value` is missing or not an object")?;
        Ok(Self {
            employee_id: positive(value, "employeeId", i64::MAX)?,
            company_id: positive(value, "companyId", i64::MAX)?,
        })
    }
}

/// Tripletex's numbers are int32: a number above this is not one it could have sent.
const MAX_NUMBER: i64 = i32::MAX as i64;

/// A row of a check kind's list, as read with its spec's `fields`; every field required (the
/// number may be `null` or 0: Tripletex's "no number").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: i64,
    pub entry: Entry,
}

impl Record {
    /// Reads `row` as a record of the kind `spec` describes, refusing what does not fit.
    pub fn parse(spec: &KindSpec, row: &Map<String, Value>) -> Result<Self, String> {
        let id = positive(row, "id", i64::MAX)?;
        let version = version(row)?;
        let number = number(row, spec.list.number_field)?;
        let tail = match spec.tail {
            Tail::Flag(field) => TailValue::Flag(boolean(row, field)?),
            Tail::Date(field) => TailValue::Date(Some(date(row, field)?)),
        };
        Ok(Self {
            id,
            entry: Entry {
                number,
                tail,
                version: Version::Seen(version),
            },
        })
    }
}

/// A number of a check kind: a positive int32, or `None` for `null` and 0 (the spec's minimum
/// is 0: an object without a number). A missing field is an error: we asked for it.
fn number(row: &Map<String, Value>, name: &str) -> Result<Option<u32>, String> {
    match row.get(name) {
        Some(Value::Null) => return Ok(None),
        Some(v) if v.as_i64() == Some(0) => return Ok(None),
        _ => {}
    }
    let n = positive(row, name, MAX_NUMBER)?;
    u32::try_from(n)
        .map(Some)
        .map_err(|_| format!("`{name}` is {n}, beyond {MAX_NUMBER}"))
}

/// The object's `version`: an int32 from 0.
fn version(row: &Map<String, Value>) -> Result<u32, String> {
    let value = row.get("version").ok_or("`version` is missing")?;
    value
        .as_i64()
        .filter(|v| (0..=MAX_NUMBER).contains(v))
        .map(|v| v as u32)
        .ok_or_else(|| format!("`version` is {value}, not an integer from 0"))
}

/// A required positive integer field of a row, at most `max`.
pub fn positive(row: &Map<String, Value>, name: &str, max: i64) -> Result<i64, String> {
    let value = row
        .get(name)
        .ok_or_else(|| format!("`{name}` is missing"))?;
    match value.as_i64() {
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) if n > max => Err(format!("`{name}` is {n}, beyond {max}")),
        _ => Err(format!("`{name}` is {value}, not a positive integer")),
    }
}

/// A required boolean field of a row.
pub fn boolean(row: &Map<String, Value>, name: &str) -> Result<bool, String> {
    match row.get(name) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("`{name}` is {other}, not true or false")),
        None => Err(format!("`{name}` is missing")),
    }
}

/// A required `YYYY-MM-DD` field.
fn date(row: &Map<String, Value>, name: &str) -> Result<jiff::civil::Date, String> {
    match row.get(name) {
        Some(Value::String(text)) => text
            .parse()
            .map_err(|_| format!("`{name}` is {text:?}, not a date")),
        Some(other) => Err(format!("`{name}` is {other}, not a date")),
        None => Err(format!("`{name}` is missing")),
    }
}

/// `ApiError`: Tripletex's error body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub code: Option<i64>,
    /// One line of at most [`MAX_MESSAGE`] characters: it goes into errors, logs and status.
    #[serde(default, deserialize_with = "one_line")]
    pub message: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    /// For 422s: which argument failed, e.g. `arg:consumerToken` on a mint with an unknown token.
    #[serde(default)]
    pub validation_messages: Option<Vec<ValidationMessage>>,
}

impl ApiError {
    /// Replaces every occurrence of the `secrets` in its messages.
    pub fn redact(&mut self, secrets: &[&str]) {
        let messages = self.message.iter_mut().chain(
            self.validation_messages
                .iter_mut()
                .flatten()
                .filter_map(|m| m.message.as_mut()),
        );
        for message in messages {
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                if message.contains(secret) {
                    *message = message.replace(secret, "<redacted>");
                }
                // A message cut at `MAX_MESSAGE` may end in the start of a secret.
                if let Some(kept) = message.strip_suffix('…') {
                    let cut = (4..=secret.len().min(kept.len()))
                        .rev()
                        .find(|&n| secret.is_char_boundary(n) && kept.ends_with(&secret[..n]));
                    if let Some(n) = cut {
                        *message = format!("{}<redacted>…", &kept[..kept.len() - n]);
                    }
                }
            }
        }
    }
}

/// Longest `message` kept from an error body; Tripletex's are one short sentence.
pub const MAX_MESSAGE: usize = 300;

fn one_line<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let message: Option<String> = Option::deserialize(d)?;
    Ok(message.map(|m| {
        let mut line: String = m
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_MESSAGE)
            .collect();
        if m.chars().nth(MAX_MESSAGE).is_some() {
            line.push('…');
        }
        line
    }))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ValidationMessage {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default, deserialize_with = "one_line")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_who_am_i_answer_without_positive_ids_is_refused() {
        let parse = |text: &str| WhoAmI::parse(&serde_json::from_str(text).unwrap());
        assert_eq!(
            parse(r#"{"value":{"employeeId":7,"companyId":4711,"language":"no"}}"#),
            Ok(WhoAmI {
                employee_id: 7,
                company_id: 4711
            })
        );
        for (answer, why) in [
            (r#"{"value":{}}"#, "`employeeId` is missing"),
            (r#"{"value":{"employeeId":7}}"#, "`companyId` is missing"),
            (
                r#"{"value":{"employeeId":0,"companyId":1}}"#,
                "`employeeId` is 0",
            ),
            (
                r#"{"value":{"employeeId":7,"companyId":null}}"#,
                "`companyId` is null",
            ),
            (r#"{"value":null}"#, "`value` is missing"),
            (r#"{}"#, "`value` is missing"),
        ] {
            let refused = parse(answer).unwrap_err();
            assert!(refused.starts_with(why), "{answer}: {refused}");
        }
    }

    #[test]
    fn an_error_message_is_kept_as_one_short_line() {
        let long = format!("first\nsecond\r\u{1b}[31m{}", "x".repeat(5000));
        let body = serde_json::json!({ "status": 500, "message": long });
        let e: ApiError = serde_json::from_value(body).unwrap();
        let message = e.message.unwrap();
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(message.starts_with("first second  [31mxx"), "{message:?}");
        assert_eq!(message.chars().count(), MAX_MESSAGE + 1);
        let e: ApiError = serde_json::from_str(r#"{"message":"short"}"#).unwrap();
        assert_eq!(e.message.as_deref(), Some("short"));
        let e: ApiError = serde_json::from_str(r#"{"message":null}"#).unwrap();
        assert_eq!(e.message, None);
        let e: ApiError =
            serde_json::from_str(r#"{"validationMessages":[{"message":"a\nb"}]}"#).unwrap();
        assert_eq!(
            e.validation_messages.unwrap()[0].message.as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn a_refusal_quoting_a_token_is_redacted() {
        let mut e: ApiError = serde_json::from_str(
            r#"{"message":"token SECRET-1 is invalid","validationMessages":[{"field":"arg:employeeToken","message":"SECRET-2 unknown (SECRET-2)"}]}"#,
        )
        .unwrap();
        e.redact(&["SECRET-1", "SECRET-2", ""]);
        assert_eq!(e.message.as_deref(), Some("token <redacted> is invalid"));
        let v = &e.validation_messages.unwrap()[0];
        assert_eq!(
            v.message.as_deref(),
            Some("<redacted> unknown (<redacted>)")
        );
        assert_eq!(v.field.as_deref(), Some("arg:employeeToken"));
        // Cut off in the middle of the token.
        let quoted = format!(
            "{{\"message\":\"{}SECRET-1 and more\"}}",
            "x".repeat(MAX_MESSAGE - 5)
        );
        let mut e: ApiError = serde_json::from_str(&quoted).unwrap();
        e.redact(&["SECRET-1"]);
        let message = e.message.unwrap();
        assert!(
            message.ends_with("x<redacted>…") && !message.contains("SECR"),
            "{message}"
        );
    }
}

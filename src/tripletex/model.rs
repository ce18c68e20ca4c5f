//! Tripletex's JSON, as far as this program reads or writes it.
//!
//! Field names follow the OpenAPI spec (2.74). Only the fields we ask for with `fields=` are
//! modelled; unknown fields are ignored so a newer Tripletex does not break us. List rows are
//! parsed by hand ([`Record::parse`], driven by the check kind's spec) so that a missing or
//! out-of-range number is refused, not defaulted.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::page;
use crate::checks::KindSpec;
use crate::checks::kinds::{Entry, Tail, TailValue};

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

/// The parts of `LoggedInUserInfo` (`GET /token/session/>whoAmI`) we record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub employee_id: Option<i64>,
    pub company_id: Option<i64>,
}

/// Tripletex's numbers are int32: a number above this is not one it could have sent.
const MAX_NUMBER: i64 = i32::MAX as i64;

/// A row of a check kind's list, as read with its spec's `fields`; every field required.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: i64,
    pub entry: Entry,
}

impl Record {
    /// Reads `row` as a record of the kind `spec` describes, refusing what does not fit.
    pub fn parse(spec: &KindSpec, row: &Map<String, Value>) -> Result<Self, String> {
        let id = page::positive(row, "id", i64::MAX)?;
        let number = number(row, spec.list.number_field)?;
        let tail = match spec.tail {
            Tail::Flag(field) => TailValue::Flag(page::boolean(row, field)?),
            Tail::Date(field) => TailValue::Date(Some(date(row, field)?)),
        };
        Ok(Self {
            id,
            entry: Entry { number, tail },
        })
    }
}

/// A number of a check kind: a positive int32.
fn number(row: &Map<String, Value>, name: &str) -> Result<u32, String> {
    let n = page::positive(row, name, MAX_NUMBER)?;
    u32::try_from(n).map_err(|_| format!("`{name}` is {n}, beyond {MAX_NUMBER}"))
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
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    /// For 422s: which argument failed, e.g. `arg:consumerToken` on a mint with an unknown token.
    #[serde(default)]
    pub validation_messages: Option<Vec<ValidationMessage>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ValidationMessage {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

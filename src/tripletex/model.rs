//! Tripletex's JSON, as far as this program reads or writes it.
//!
//! Field names follow the OpenAPI spec (2.74). Only the fields we ask for with `fields=` are
//! modelled; unknown fields are ignored so a newer Tripletex does not break us.

use serde::{Deserialize, Serialize};

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

/// The list envelope `ListResponse*`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    #[serde(default)]
    pub version_digest: Option<String>,
    #[serde(default = "Vec::new")]
    pub values: Vec<T>,
}

/// A customer, as read with `fields=id,customerNumber,isInactive`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerRow {
    pub id: i64,
    #[serde(default)]
    pub customer_number: Option<u32>,
    #[serde(default)]
    pub is_inactive: bool,
}

/// An invoice, as read with `fields=id,invoiceNumber,invoiceDate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceRow {
    pub id: i64,
    #[serde(default)]
    pub invoice_number: Option<u32>,
    #[serde(default)]
    pub invoice_date: Option<jiff::civil::Date>,
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

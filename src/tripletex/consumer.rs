//! The integration's consumer token as Tripletex describes it (`GET /token/consumer/byToken`):
//! the date it expires.
//!
//! Invariants: the consumer token leaves only as this operation's `token` query parameter (the
//! spec has no other form), on a shop's authenticated session; no error names the URL (transport
//! errors are stripped of it, see `body.rs`) or quotes the token; an answer without a readable
//! `expirationDate` field is malformed, and a null or empty one means "does not expire".

use jiff::civil::Date;
use secrecy::ExposeSecret as _;
use serde_json::Value;

use super::body::read_json;
use super::client::ShopClient;
use super::error::TripletexError;
use super::observer::OTHER;
use super::pipeline::Call;

const PATH: &str = "/token/consumer/byToken";
/// One small record.
const MAX_BODY: usize = 64 << 10;

impl ShopClient {
    /// When the consumer token this client mints with expires (`None`: it does not).
    pub async fn consumer_token_expiry(&self) -> Result<Option<Date>, TripletexError> {
        let token = self.consumer_token().expose_secret().to_owned();
        let query = [("token", token), ("fields", "expirationDate".to_owned())];
        let resp = self.authed(&Call::get(OTHER, PATH, &query)).await?;
        let body: Value = read_json(resp, MAX_BODY).await?;
        parse(&body).map_err(|reason| TripletexError::Malformed {
            path: PATH.to_owned(),
            reason,
        })
    }
}

/// `{"value": {"expirationDate": "YYYY-MM-DD" | null}}`; a date with a time keeps its date.
fn parse(body: &Value) -> Result<Option<Date>, String> {
    let value = body
        .get("value")
        .and_then(Value::as_object)
        .ok_or("the answer has no `value` object")?;
    let date = match value.get("expirationDate") {
        None => return Err("the answer has no `expirationDate`".into()),
        Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(other) => return Err(format!("`expirationDate` is {other}, not a date")),
    };
    let day = date.get(..10).unwrap_or(date);
    day.parse()
        .map(Some)
        .map_err(|_| format!("`expirationDate` {date:?} is not a date"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expiry_dates_are_read_and_anything_else_is_malformed() {
        let of = |v: Value| parse(&json!({"value": {"expirationDate": v}}));
        assert_eq!(
            of(json!("2027-01-31")),
            Ok(Some("2027-01-31".parse().unwrap()))
        );
        assert_eq!(
            of(json!("2027-01-31T00:00:00")),
            Ok(Some("2027-01-31".parse().unwrap()))
        );
        assert_eq!(of(Value::Null), Ok(None));
        assert_eq!(of(json!("")), Ok(None));
        assert!(of(json!("soon")).is_err());
        assert!(of(json!(20270131)).is_err());
        assert!(parse(&json!({"value": {}})).is_err());
        assert!(parse(&json!({"values": []})).is_err());
    }
}

//! Webhook subscriptions of one shop's employee token (`/event/subscription`): list, create,
//! update, delete.
//!
//! Invariants: the auth header's value goes out only in a create or update body and is never read
//! back (Tripletex does not return it); a listing is one page of at most [`MAX_SUBSCRIPTIONS`],
//! and every row must carry what reconciling relies on (id, version, event, target, status) or the
//! whole answer is [`TripletexError::Malformed`]; a delete of a subscription that is already gone
//! counts as done.

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::body::read_json;
use super::client::ShopClient;
use super::error::TripletexError;
use super::model;
use super::observer::OTHER;
use super::pipeline::Call;

const PATH: &str = "/event/subscription";
/// A shop needs a handful; a token with more than this many is not one we manage alone.
pub const MAX_SUBSCRIPTIONS: usize = 1000;
/// Subscription JSON is a few hundred bytes.
const MAX_BODY: usize = 4 << 20;
const FIELDS: &str = "id,version,event,targetUrl,fields,status,authHeaderName";

/// A subscription as Tripletex lists it (without its write-only secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub version: i64,
    pub event: String,
    pub target_url: String,
    pub fields: Option<String>,
    /// `ACTIVE`, `DISABLED`, `DISABLED_TOO_MANY_ERRORS`, `DISABLED_RATE_LIMIT_EXCEEDED`,
    /// `DISABLED_MISUSE`, or whatever a newer Tripletex adds.
    pub status: String,
    pub auth_header_name: Option<String>,
}

/// A subscription as we want it.
#[derive(Debug, Clone)]
pub struct SubscriptionSpec {
    pub event: &'static str,
    pub target_url: String,
    pub fields: &'static str,
    pub auth_header_name: &'static str,
    pub auth_header_value: SecretString,
    /// Tripletex signs each callback with it (`x-request-signature`); write-only, like the
    /// auth header's value.
    pub hmac_shared_secret: SecretString,
}

impl SubscriptionSpec {
    /// The body of a create, or of an update that also sets `id`, `version` and `ACTIVE`.
    fn body(&self, update: Option<(i64, i64)>) -> Value {
        let mut body = json!({
            "event": self.event,
            "targetUrl": self.target_url,
            "fields": self.fields,
            "authHeaderName": self.auth_header_name,
            "authHeaderValue": self.auth_header_value.expose_secret(),
            "hmacSharedSecret": self.hmac_shared_secret.expose_secret(),
            "status": "ACTIVE",
        });
        if let Some((id, version)) = update {
            body["id"] = json!(id);
            body["version"] = json!(version);
        }
        body
    }
}

impl ShopClient {
    /// Every webhook subscription of this shop's employee token.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, TripletexError> {
        let query = [
            ("fields", FIELDS.to_owned()),
            ("from", "0".to_owned()),
            ("count", MAX_SUBSCRIPTIONS.to_string()),
        ];
        let resp = self.authed(&Call::get(OTHER, PATH, &query)).await?;
        let body: Value = read_json(resp, MAX_BODY).await?;
        parse_list(&body).map_err(|reason| TripletexError::Malformed {
            path: PATH.to_owned(),
            reason,
        })
    }

    /// Creates `spec`; returns its id. Not retried after a failed send: a retry could make two.
    pub async fn create_subscription(
        &self,
        spec: &SubscriptionSpec,
    ) -> Result<i64, TripletexError> {
        let body = spec.body(None);
        let call = Call {
            method: Method::POST,
            json: Some(&body),
            idempotent: false,
            ..Call::get(OTHER, PATH, &[])
        };
        let resp = self.authed(&call).await?;
        created_id(resp).await
    }

    /// Sets subscription `id` (at `version`) to `spec`, `ACTIVE`.
    pub async fn update_subscription(
        &self,
        id: i64,
        version: i64,
        spec: &SubscriptionSpec,
    ) -> Result<(), TripletexError> {
        let body = spec.body(Some((id, version)));
        let path = format!("{PATH}/{id}");
        let call = Call {
            method: Method::PUT,
            json: Some(&body),
            ..Call::get(OTHER, &path, &[])
        };
        self.authed(&call).await.map(drop)
    }

    /// Deletes subscription `id`; one already gone (404) counts as deleted.
    pub async fn delete_subscription(&self, id: i64) -> Result<(), TripletexError> {
        let path = format!("{PATH}/{id}");
        let call = Call {
            method: Method::DELETE,
            ..Call::get(OTHER, &path, &[])
        };
        match self.authed(&call).await {
            Ok(_) | Err(TripletexError::Api { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

async fn created_id(resp: reqwest::Response) -> Result<i64, TripletexError> {
    if resp.status() != StatusCode::CREATED && resp.status() != StatusCode::OK {
        return Err(TripletexError::Decode(format!(
            "POST {PATH} answered {}",
            resp.status().as_u16()
        )));
    }
    let body: Value = read_json(resp, MAX_BODY).await?;
    body.get("value")
        .and_then(Value::as_object)
        .ok_or_else(|| "no `value` object".to_owned())
        .and_then(|v| model::positive(v, "id", i64::MAX))
        .map_err(|reason| TripletexError::Malformed {
            path: PATH.to_owned(),
            reason,
        })
}

fn parse_list(body: &Value) -> Result<Vec<Subscription>, String> {
    let values = body
        .get("values")
        .and_then(Value::as_array)
        .ok_or("`values` is not a list")?;
    if values.len() > MAX_SUBSCRIPTIONS {
        return Err(format!("more than {MAX_SUBSCRIPTIONS} subscriptions"));
    }
    let total = body.get("fullResultSize").and_then(Value::as_u64);
    if total.is_some_and(|t| t > values.len() as u64) {
        return Err(format!(
            "fullResultSize says {} subscriptions, {} were sent (more than {MAX_SUBSCRIPTIONS}?)",
            total.unwrap_or_default(),
            values.len()
        ));
    }
    values
        .iter()
        .map(|v| v.as_object().ok_or("a row is not an object".to_owned()))
        .map(|row| row.and_then(parse_row))
        .collect()
}

fn parse_row(row: &Map<String, Value>) -> Result<Subscription, String> {
    let text = |name: &str| match row.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        other => Err(format!("`{name}` is {other:?}, not text")),
    };
    let optional = |name: &str| match row.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{name}` is {other}, not text")),
    };
    let version = match row.get("version") {
        Some(Value::Number(n)) => n.as_i64().ok_or(format!("`version` is {n}"))?,
        other => return Err(format!("`version` is {other:?}, not a number")),
    };
    Ok(Subscription {
        id: model::positive(row, "id", i64::MAX)?,
        version,
        event: text("event")?,
        target_url: text("targetUrl")?,
        fields: optional("fields")?,
        status: text("status")?,
        auth_header_name: optional("authHeaderName")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_believed_only_whole() {
        let row = json!({"id": 3, "version": 0, "event": "customer.create",
            "targetUrl": "https://x/y", "fields": null, "status": "ACTIVE"});
        let ok = parse_list(&json!({"fullResultSize": 1, "values": [row]})).unwrap();
        assert_eq!(ok[0].id, 3);
        assert_eq!(ok[0].fields, None);
        for bad in [
            json!({"values": {}}),
            json!({"fullResultSize": 2, "values": [row]}),
            json!({"values": [{"id": 3, "version": 0, "event": "customer.create", "status": "ACTIVE"}]}),
            json!({"values": [{"id": -1, "version": 0, "event": "e", "targetUrl": "u", "status": "ACTIVE"}]}),
        ] {
            assert!(parse_list(&bad).is_err(), "{bad}");
        }
    }
}

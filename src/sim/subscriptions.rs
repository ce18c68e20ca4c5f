//! Webhook subscriptions (`/event/subscription`, its `{id}` and `list` forms): the stored
//! subscription, its JSON, and validation of what clients send.
//!
//! Invariants: a subscription belongs to the employee token that created it, and every route
//! answers "not found" for another token's subscription (no cross-token or cross-company reads or
//! writes); `authHeaderValue` and `hmacSharedSecret` are write-only: kept as `SecretString`, never
//! in a response, an error, a `Debug` print or a log; a target URL is absolute and HTTPS, except
//! that plain `http://` to a loopback host is allowed so tests can receive callbacks; batch forms
//! validate every element before changing anything, so a 422 leaves the store untouched.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;

use hyper::header::{HeaderName, HeaderValue};
use jiff::Timestamp;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use url::{Host, Url};

use super::URL_BASE;
use super::api::{Reply, Request};
use super::error::ApiError;
use super::events::{self, EventInfo};
use super::fields::{self, Record, Selection};
use super::records;
use super::session::Caller;
use super::state::World;

/// What Tripletex reports as a subscription's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Active,
    /// Disabled by its owner (`PUT` with `"status": "DISABLED"`).
    Disabled,
    DisabledTooManyErrors,
    DisabledRateLimitExceeded,
    DisabledMisuse,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Disabled => "DISABLED",
            Self::DisabledTooManyErrors => "DISABLED_TOO_MANY_ERRORS",
            Self::DisabledRateLimitExceeded => "DISABLED_RATE_LIMIT_EXCEEDED",
            Self::DisabledMisuse => "DISABLED_MISUSE",
        }
    }
}

/// A subscription as tests may see it: everything but the write-only secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub id: i64,
    pub company_id: i64,
    pub event: String,
    pub target_url: String,
    pub fields: Option<String>,
    pub status: SubscriptionStatus,
    pub auth_header_name: Option<String>,
}

/// The custom header Tripletex sends with every callback.
#[derive(Debug, Clone)]
pub(crate) struct AuthHeader {
    pub(crate) name: String,
    pub(crate) value: SecretString,
}

#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub(crate) id: i64,
    version: i32,
    pub(crate) company_id: i64,
    /// The employee token that owns it.
    token_id: i64,
    employee_id: i64,
    pub(crate) event: &'static EventInfo,
    pub(crate) target_url: Url,
    fields: Option<String>,
    /// `fields`, parsed and validated against the event's payload.
    pub(crate) selection: Selection,
    pub(crate) status: SubscriptionStatus,
    pub(crate) auth_header: Option<AuthHeader>,
    /// Stored so the field is accepted; the simulator does not sign callbacks.
    hmac_shared_secret: Option<SecretString>,
    created: Timestamp,
    updated: Option<Timestamp>,
    /// Failed deliveries since the last successful one.
    pub(crate) consecutive_failures: u32,
}

impl Subscription {
    pub(crate) fn info(&self) -> SubscriptionInfo {
        SubscriptionInfo {
            id: self.id,
            company_id: self.company_id,
            event: self.event.name.to_owned(),
            target_url: self.target_url.to_string(),
            fields: self.fields.clone(),
            status: self.status,
            auth_header_name: self.auth_header.as_ref().map(|h| h.name.clone()),
        }
    }

    /// Back to `ACTIVE` with a clean error count.
    pub(crate) fn set_status(&mut self, status: SubscriptionStatus) {
        if status == SubscriptionStatus::Active {
            self.consecutive_failures = 0;
        }
        self.status = status;
    }
}

impl Record for Subscription {
    const SORTABLE: &'static [&'static str] = &["id", "event", "status", "targetUrl"];

    fn id(&self) -> i64 {
        self.id
    }

    fn compare_by(&self, other: &Self, field: &str) -> Ordering {
        match field {
            "event" => self.event.name.cmp(other.event.name),
            "status" => self.status.as_str().cmp(other.status.as_str()),
            "targetUrl" => self.target_url.as_str().cmp(other.target_url.as_str()),
            _ => self.id.cmp(&other.id),
        }
    }

    /// Never carries `authHeaderValue` or `hmacSharedSecret`.
    fn to_json(&self) -> Value {
        let mut changes = vec![json!({
            "employeeId": self.employee_id,
            "timestamp": self.created.to_string(),
            "changeType": "CREATE",
        })];
        if let Some(updated) = self.updated {
            changes.push(json!({
                "employeeId": self.employee_id,
                "timestamp": updated.to_string(),
                "changeType": "UPDATE",
            }));
        }
        json!({
            "id": self.id,
            "version": self.version,
            "changes": changes,
            "url": format!("{URL_BASE}/event/subscription/{}", self.id),
            "event": self.event.name,
            "targetUrl": self.target_url.as_str(),
            "fields": self.fields,
            "status": self.status.as_str(),
            "authHeaderName": self.auth_header.as_ref().map(|h| h.name.as_str()),
        })
    }
}

/// Every subscription, keyed by id (ids come from the world's counter).
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    pub(crate) by_id: BTreeMap<i64, Subscription>,
}

impl Subscriptions {
    fn owned(&self, caller: &Caller, id: i64) -> Result<&Subscription, ApiError> {
        self.by_id
            .get(&id)
            .filter(|s| s.token_id == caller.token_id && s.company_id == caller.company_id)
            .ok_or_else(ApiError::not_found)
    }

    /// The ACTIVE subscriptions of `company_id` to `event`.
    pub(crate) fn active_for<'a>(
        &'a self,
        company_id: i64,
        event: &'a str,
    ) -> impl Iterator<Item = &'a Subscription> + 'a {
        self.by_id.values().filter(move |s| {
            s.company_id == company_id
                && s.event.name == event
                && s.status == SubscriptionStatus::Active
        })
    }
}

pub(crate) fn search(world: &World, caller: &Caller, request: &Request) -> Result<Reply, ApiError> {
    let query = records::list_query::<Subscription>(request, &sample_json())?;
    let items = world
        .subscriptions
        .by_id
        .values()
        .filter(|s| s.token_id == caller.token_id && s.company_id == caller.company_id)
        .collect();
    Ok(records::outcome(fields::list(items, &query)))
}

pub(crate) fn get(
    world: &World,
    caller: &Caller,
    id: i64,
    request: &Request,
) -> Result<Reply, ApiError> {
    let fields = Selection::parse(request.param("fields"))?;
    fields.validate(&sample_json())?;
    let subscription = world.subscriptions.owned(caller, id)?;
    Ok(Reply::Json(
        200,
        json!({"value": fields.apply(&subscription.to_json())}),
    ))
}

pub(crate) fn create(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    now: Timestamp,
) -> Result<Reply, ApiError> {
    let body = json_body(request)?;
    let draft = Draft::read(object(&body)?, None)?;
    let created = insert(world, caller, draft, now);
    Ok(Reply::Json(201, json!({"value": created})))
}

pub(crate) fn create_list(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    now: Timestamp,
) -> Result<Reply, ApiError> {
    let body = json_body(request)?;
    let drafts = array(&body)?
        .iter()
        .map(|item| Draft::read(object(item)?, None))
        .collect::<Result<Vec<_>, _>>()?;
    let values: Vec<Value> = drafts
        .into_iter()
        .map(|draft| insert(world, caller, draft, now))
        .collect();
    Ok(Reply::Json(201, list_body(values)))
}

pub(crate) fn put(
    world: &mut World,
    caller: &Caller,
    id: i64,
    request: &Request,
    now: Timestamp,
) -> Result<Reply, ApiError> {
    let body = json_body(request)?;
    let updated = update(world, caller, id, object(&body)?, now)?;
    Ok(Reply::Json(200, json!({"value": updated})))
}

pub(crate) fn put_list(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    now: Timestamp,
) -> Result<Reply, ApiError> {
    let body = json_body(request)?;
    let mut changes = Vec::new();
    for item in array(&body)? {
        let object = object(item)?;
        let id = object
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::missing("id"))?;
        let current = world.subscriptions.owned(caller, id)?;
        check_version(current, object)?;
        changes.push((id, Draft::read(object, Some(current))?));
    }
    let values = changes
        .into_iter()
        .map(|(id, draft)| apply(world, id, draft, now))
        .collect();
    Ok(Reply::Json(200, list_body(values)))
}

pub(crate) fn delete(world: &mut World, caller: &Caller, id: i64) -> Result<Reply, ApiError> {
    world.subscriptions.owned(caller, id)?;
    world.subscriptions.by_id.remove(&id);
    Ok(Reply::Empty(204))
}

/// `ids` is required; one unknown id fails the whole batch before anything is deleted.
pub(crate) fn delete_list(
    world: &mut World,
    caller: &Caller,
    request: &Request,
) -> Result<Reply, ApiError> {
    let text = request
        .param("ids")
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| ApiError::missing("ids"))?;
    let ids = text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<i64>()
                .map_err(|_| ApiError::validation("ids", "Ugyldig verdi i listen."))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for id in &ids {
        world.subscriptions.owned(caller, *id)?;
    }
    for id in ids {
        world.subscriptions.by_id.remove(&id);
    }
    Ok(Reply::Empty(204))
}

fn insert(world: &mut World, caller: &Caller, draft: Draft, now: Timestamp) -> Value {
    let id = world.next_id();
    let subscription = Subscription {
        id,
        version: 0,
        company_id: caller.company_id,
        token_id: caller.token_id,
        employee_id: caller.employee_id,
        event: draft.event,
        target_url: draft.target_url,
        fields: draft.fields,
        selection: draft.selection,
        status: draft.status,
        auth_header: draft.auth_header,
        hmac_shared_secret: draft.hmac_shared_secret,
        created: now,
        updated: None,
        consecutive_failures: 0,
    };
    let json = subscription.to_json();
    world.subscriptions.by_id.insert(id, subscription);
    json
}

fn update(
    world: &mut World,
    caller: &Caller,
    id: i64,
    body: &Map<String, Value>,
    now: Timestamp,
) -> Result<Value, ApiError> {
    let current = world.subscriptions.owned(caller, id)?;
    check_version(current, body)?;
    let draft = Draft::read(body, Some(current))?;
    Ok(apply(world, id, draft, now))
}

/// Stores a validated draft over subscription `id`, which the caller has been proven to own.
fn apply(world: &mut World, id: i64, draft: Draft, now: Timestamp) -> Value {
    let Some(subscription) = world.subscriptions.by_id.get_mut(&id) else {
        return Value::Null;
    };
    subscription.version += 1;
    subscription.updated = Some(now);
    subscription.event = draft.event;
    subscription.target_url = draft.target_url;
    subscription.fields = draft.fields;
    subscription.selection = draft.selection;
    subscription.auth_header = draft.auth_header;
    subscription.hmac_shared_secret = draft.hmac_shared_secret;
    subscription.set_status(draft.status);
    subscription.to_json()
}

/// A `version` that is sent must be the current one (409 code 8000 otherwise).
fn check_version(current: &Subscription, body: &Map<String, Value>) -> Result<(), ApiError> {
    match body.get("version").and_then(Value::as_i64) {
        Some(version) if version != i64::from(current.version) => Err(ApiError::new(
            409,
            8000,
            "Objektet har blitt endret av en annen bruker (revisjonskonflikt).",
        )),
        _ => Ok(()),
    }
}

/// A subscription as the client wants it: the body's fields over the current ones (a `PUT` is
/// partial), validated as a whole.
struct Draft {
    event: &'static EventInfo,
    target_url: Url,
    fields: Option<String>,
    selection: Selection,
    status: SubscriptionStatus,
    auth_header: Option<AuthHeader>,
    hmac_shared_secret: Option<SecretString>,
}

impl Draft {
    fn read(body: &Map<String, Value>, current: Option<&Subscription>) -> Result<Self, ApiError> {
        let event = match (text(body, "event")?, current) {
            (Some(name), _) => events::find(name.trim())
                .ok_or_else(|| ApiError::validation("event", "Ukjent hendelse. Se /v2/event."))?,
            (None, Some(current)) => current.event,
            (None, None) => return Err(ApiError::missing("event")),
        };
        let target_url = match (text(body, "targetUrl")?, current) {
            (Some(url), _) => target_url(url)?,
            (None, Some(current)) => current.target_url.clone(),
            (None, None) => return Err(ApiError::missing("targetUrl")),
        };
        let fields = match text(body, "fields")? {
            Some(fields) => Some(fields.to_owned()).filter(|f| !f.trim().is_empty()),
            None => current.and_then(|c| c.fields.clone()),
        };
        let selection = Selection::parse(fields.as_deref())
            .and_then(|selection| match event.sample() {
                Some(sample) => selection.validate(&sample).map(|()| selection),
                None => Ok(selection),
            })
            .map_err(|error| ApiError::validation("fields", &error.message))?;
        let status = match text(body, "status")? {
            Some("ACTIVE") => SubscriptionStatus::Active,
            Some("DISABLED") => SubscriptionStatus::Disabled,
            Some(_) => {
                return Err(ApiError::validation(
                    "status",
                    "Kan bare settes til ACTIVE eller DISABLED.",
                ));
            }
            None => current.map_or(SubscriptionStatus::Active, |c| c.status),
        };
        let name = text(body, "authHeaderName")?
            .map(str::to_owned)
            .or_else(|| current.and_then(|c| c.auth_header.as_ref().map(|h| h.name.clone())));
        let value = text(body, "authHeaderValue")?
            .map(|value| SecretString::from(value.to_owned()))
            .or_else(|| current.and_then(|c| c.auth_header.as_ref().map(|h| h.value.clone())));
        let hmac_shared_secret = text(body, "hmacSharedSecret")?
            .map(|value| SecretString::from(value.to_owned()))
            .or_else(|| current.and_then(|c| c.hmac_shared_secret.clone()));
        Ok(Self {
            event,
            target_url,
            fields,
            selection,
            status,
            auth_header: auth_header(name, value)?,
            hmac_shared_secret,
        })
    }
}

fn auth_header(
    name: Option<String>,
    value: Option<SecretString>,
) -> Result<Option<AuthHeader>, ApiError> {
    use secrecy::ExposeSecret;
    match (name, value) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ApiError::missing("authHeaderValue")),
        (None, Some(_)) => Err(ApiError::missing("authHeaderName")),
        (Some(name), Some(value)) => {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ApiError::validation(
                    "authHeaderName",
                    "Ugyldig navn på HTTP-header.",
                ));
            }
            // The message must not echo the value: it is a secret.
            if HeaderValue::from_str(value.expose_secret()).is_err() {
                return Err(ApiError::validation(
                    "authHeaderValue",
                    "Ugyldig verdi for HTTP-header.",
                ));
            }
            Ok(Some(AuthHeader { name, value }))
        }
    }
}

/// Absolute, with a host, and HTTPS; `http://` only to a loopback host (the simulator's own
/// allowance for tests; Tripletex itself insists on HTTPS).
fn target_url(text: &str) -> Result<Url, ApiError> {
    let invalid = |message| ApiError::validation("targetUrl", message);
    let url = Url::parse(text.trim()).map_err(|_| invalid("Må være en absolutt URL."))?;
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return Err(invalid("Må være en absolutt URL.")),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(invalid("Må bruke HTTPS.")),
    }
}

/// A string field: `None` when absent or null, 422 when another type.
fn text<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::validation(name, "Må være en tekst.")),
    }
}

fn json_body(request: &Request) -> Result<Value, ApiError> {
    serde_json::from_slice(&request.body)
        .map_err(|_| ApiError::new(422, 22000, "Request body is not valid JSON"))
}

fn object(value: &Value) -> Result<&Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::new(422, 16000, "Expected a Subscription object"))
}

fn array(value: &Value) -> Result<&Vec<Value>, ApiError> {
    value
        .as_array()
        .ok_or_else(|| ApiError::new(422, 16000, "Expected a list of Subscription objects"))
}

fn list_body(values: Vec<Value>) -> Value {
    json!({
        "fullResultSize": values.len(),
        "from": 0,
        "count": values.len(),
        "versionDigest": null,
        "values": values,
    })
}

/// Every field of the model, the write-only ones included, so `fields=authHeaderValue` is a
/// legal filter that simply yields nothing.
fn sample_json() -> Value {
    json!({
        "id": 1, "version": 0, "changes": [{"employeeId": 1, "timestamp": "", "changeType": "CREATE"}],
        "url": "", "event": "", "targetUrl": "", "fields": "", "status": "",
        "authHeaderName": "", "authHeaderValue": "", "hmacSharedSecret": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_are_absolute_https_or_loopback_http() {
        assert!(target_url("https://sync.example.com/hook").is_ok());
        assert!(target_url("https://user:pw@sync.example.com/hook").is_ok());
        assert!(target_url("http://127.0.0.1:8788/hook").is_ok());
        assert!(target_url("http://[::1]:8788/hook").is_ok());
        assert!(target_url("http://localhost/hook").is_ok());
        for bad in [
            "/relative",
            "sync.example.com/hook",
            "http://sync.example.com/hook",
            "ftp://127.0.0.1/x",
            "",
        ] {
            let error = target_url(bad).unwrap_err();
            assert_eq!((error.status, error.code), (422, 18000), "{bad}");
        }
    }

    #[test]
    fn header_errors_never_echo_the_value() {
        let error = auth_header(
            Some("X-Hook".into()),
            Some(SecretString::from("bad\nsecret")),
        )
        .unwrap_err();
        assert!(!format!("{error:?}").contains("secret"));
    }
}

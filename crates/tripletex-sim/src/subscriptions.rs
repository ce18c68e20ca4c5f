//! Webhook subscriptions (`/event/subscription`, its `{id}` and `list` forms): the stored
//! subscription, its JSON and the operations on it.
//!
//! Invariants: a subscription belongs to the employee token that created it, and every route
//! answers "not found" for another token's subscription (no cross-token or cross-company reads or
//! writes); `authHeaderValue` and `hmacSharedSecret` are write-only: kept as `SecretString`, never
//! in a response, an error, a `Debug` print or a log; bodies are validated by
//! `subscription_draft.rs`, and batch forms validate every element before changing anything, so
//! a 422 leaves the store untouched.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use url::Url;

use super::URL_BASE;
use super::api::{Reply, Request};
use super::error::ApiError;
use super::events::EventInfo;
use super::fields::{self, Record, Selection};
use super::records;
use super::session::Caller;
use super::state::World;
use super::subscription_draft::{Draft, array, json_body, object};

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
    pub(crate) fields: Option<String>,
    /// `fields`, parsed and validated against the event's payload.
    pub(crate) selection: Selection,
    pub(crate) status: SubscriptionStatus,
    pub(crate) auth_header: Option<AuthHeader>,
    /// Signs every callback when set (see `delivery.rs`).
    pub(crate) hmac_shared_secret: Option<SecretString>,
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

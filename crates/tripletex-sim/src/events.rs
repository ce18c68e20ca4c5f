//! The webhook event catalogue and the `/event*` routes: `GET /event` (event name →
//! `EventInfoDescription`), `GET /event/{eventType}` (`EventInfo` with an example envelope), and
//! the dispatch of `/event/subscription*` to `subscriptions.rs`.
//!
//! Invariants: [`CATALOGUE`] is the one list of event names the simulator knows, and a
//! subscription can only name one of them; only customer and invoice events are ever delivered
//! (the simulator has no other objects), the rest can be subscribed to and stay silent;
//! `GET /event` needs no authentication (the spec gives it no security scheme), every other route
//! here does.

use hyper::Method;
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Map, Value, json};

use super::URL_BASE;
use super::api::{Reply, Request};
use super::error::ApiError;
use super::fields::{Record, Selection};
use super::state::{Customer, Invoice, World};
use super::{session, subscriptions};

pub(crate) const CUSTOMER_CREATE: &str = "customer.create";
pub(crate) const CUSTOMER_UPDATE: &str = "customer.update";
pub(crate) const CUSTOMER_DELETE: &str = "customer.delete";
pub(crate) const INVOICE_CHARGED: &str = "invoice.charged";

/// What a delivery's `value` is an instance of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    Customer,
    Invoice,
    /// An object the simulator does not model; nothing is ever delivered for it.
    Unmodelled,
}

/// One subscribable event.
#[derive(Debug)]
pub(crate) struct EventInfo {
    pub(crate) name: &'static str,
    description: &'static str,
    /// The schema name `GET /event/{eventType}` reports as `payloadModel`.
    model: &'static str,
    pub(crate) payload: Payload,
}

impl EventInfo {
    const fn new(
        name: &'static str,
        description: &'static str,
        model: &'static str,
        payload: Payload,
    ) -> Self {
        Self {
            name,
            description,
            model,
            payload,
        }
    }

    /// Whether the envelope's `value` is `null` (the object is gone).
    pub(crate) fn is_delete(&self) -> bool {
        self.name.ends_with(".delete")
    }

    /// A fully populated payload object, for validating `fields` and for examples; `None` when
    /// the payload is not modelled.
    pub(crate) fn sample(&self) -> Option<Value> {
        match self.payload {
            Payload::Customer => Some(
                Customer {
                    id: 1,
                    version: 0,
                    number: 10001,
                    inactive: false,
                    changed: Timestamp::UNIX_EPOCH,
                }
                .to_json(),
            ),
            Payload::Invoice => Some(
                Invoice {
                    id: 1,
                    version: 0,
                    number: 10001,
                    date: Date::constant(2026, 1, 5),
                    customer_id: 1,
                }
                .to_json(),
            ),
            Payload::Unmodelled => None,
        }
    }
}

use Payload::{Customer as C, Invoice as I, Unmodelled as U};

/// The events `GET /event` lists: those the notes name, per object and verb.
pub(crate) const CATALOGUE: &[EventInfo] = &[
    EventInfo::new(CUSTOMER_CREATE, "A customer was created.", "Customer", C),
    EventInfo::new(CUSTOMER_UPDATE, "A customer was updated.", "Customer", C),
    EventInfo::new(CUSTOMER_DELETE, "A customer was deleted.", "Customer", C),
    EventInfo::new(
        INVOICE_CHARGED,
        "A new invoice was created and charged.",
        "Invoice",
        I,
    ),
    EventInfo::new("supplier.create", "A supplier was created.", "Supplier", U),
    EventInfo::new("supplier.update", "A supplier was updated.", "Supplier", U),
    EventInfo::new("supplier.delete", "A supplier was deleted.", "Supplier", U),
    EventInfo::new("employee.create", "An employee was created.", "Employee", U),
    EventInfo::new("employee.update", "An employee was updated.", "Employee", U),
    EventInfo::new("employee.delete", "An employee was deleted.", "Employee", U),
    EventInfo::new("order.create", "An order was created.", "Order", U),
    EventInfo::new("order.update", "An order was updated.", "Order", U),
    EventInfo::new("order.delete", "An order was deleted.", "Order", U),
    EventInfo::new("product.create", "A product was created.", "Product", U),
    EventInfo::new("product.update", "A product was updated.", "Product", U),
    EventInfo::new("product.delete", "A product was deleted.", "Product", U),
    EventInfo::new("project.create", "A project was created.", "Project", U),
    EventInfo::new("project.update", "A project was updated.", "Project", U),
    EventInfo::new("project.delete", "A project was deleted.", "Project", U),
    EventInfo::new("contact.create", "A contact was created.", "Contact", U),
    EventInfo::new("contact.update", "A contact was updated.", "Contact", U),
    EventInfo::new("contact.delete", "A contact was deleted.", "Contact", U),
    EventInfo::new("account.create", "An account was created.", "Account", U),
    EventInfo::new("account.update", "An account was updated.", "Account", U),
    EventInfo::new("account.delete", "An account was deleted.", "Account", U),
    EventInfo::new("voucher.create", "A voucher was created.", "Voucher", U),
    EventInfo::new("voucher.update", "A voucher was updated.", "Voucher", U),
    EventInfo::new("voucher.delete", "A voucher was deleted.", "Voucher", U),
];

pub(crate) fn find(name: &str) -> Option<&'static EventInfo> {
    CATALOGUE.iter().find(|event| event.name == name)
}

/// The `/event*` operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EventRoute {
    Catalogue,
    Example(String),
    Search,
    Create,
    Get(i64),
    Put(i64),
    Delete(i64),
    CreateList,
    PutList,
    DeleteList,
}

impl EventRoute {
    /// `path` is decoded and relative to `/v2`; a subscription id that is not an integer is no
    /// route (404), like any other unknown path.
    pub(crate) fn find(method: &Method, path: &str) -> Option<EventRoute> {
        let rest = path.strip_prefix("/event")?;
        let route = match (method, rest) {
            (&Method::GET, "") => EventRoute::Catalogue,
            (&Method::GET, "/subscription") => EventRoute::Search,
            (&Method::POST, "/subscription") => EventRoute::Create,
            (&Method::POST, "/subscription/list") => EventRoute::CreateList,
            (&Method::PUT, "/subscription/list") => EventRoute::PutList,
            (&Method::DELETE, "/subscription/list") => EventRoute::DeleteList,
            (_, rest) => {
                if let Some(id) = rest.strip_prefix("/subscription/") {
                    let id = id.parse().ok()?;
                    match *method {
                        Method::GET => EventRoute::Get(id),
                        Method::PUT => EventRoute::Put(id),
                        Method::DELETE => EventRoute::Delete(id),
                        _ => return None,
                    }
                } else {
                    let name = rest.strip_prefix('/')?;
                    if *method != Method::GET || name.is_empty() || name.contains('/') {
                        return None;
                    }
                    EventRoute::Example(name.to_owned())
                }
            }
        };
        Some(route)
    }
}

pub(crate) fn handle(
    world: &mut World,
    route: &EventRoute,
    request: &Request,
    now: Timestamp,
) -> Result<Reply, ApiError> {
    if *route == EventRoute::Catalogue {
        return catalogue(request);
    }
    let caller = session::authenticate(world, request, now)?;
    match route {
        EventRoute::Catalogue => catalogue(request),
        EventRoute::Example(name) => example(name, request),
        EventRoute::Search => subscriptions::search(world, &caller, request),
        EventRoute::Create => subscriptions::create(world, &caller, request, now),
        EventRoute::Get(id) => subscriptions::get(world, &caller, *id, request),
        EventRoute::Put(id) => subscriptions::put(world, &caller, *id, request, now),
        EventRoute::Delete(id) => subscriptions::delete(world, &caller, *id),
        EventRoute::CreateList => subscriptions::create_list(world, &caller, request, now),
        EventRoute::PutList => subscriptions::put_list(world, &caller, request, now),
        EventRoute::DeleteList => subscriptions::delete_list(world, &caller, request),
    }
}

fn catalogue(request: &Request) -> Result<Reply, ApiError> {
    let fields = Selection::parse(request.param("fields"))?;
    fields.validate(&json!({"description": ""}))?;
    let map: Map<String, Value> = CATALOGUE
        .iter()
        .map(|event| {
            let info = json!({"description": event.description});
            (event.name.to_owned(), fields.apply(&info))
        })
        .collect();
    Ok(Reply::Json(200, json!({"value": map})))
}

fn example(name: &str, request: &Request) -> Result<Reply, ApiError> {
    let event = find(name).ok_or_else(ApiError::not_found)?;
    let sample = event.sample().unwrap_or_else(
        || json!({"id": 1, "version": 0, "url": format!("{URL_BASE}/{}/1", event.model)}),
    );
    let value = if event.is_delete() {
        Value::Null
    } else {
        sample
    };
    let info = json!({
        "name": event.name,
        "description": event.description,
        "payloadModel": event.model,
        "examples": [{"subscriptionId": 0, "event": event.name, "id": 1, "value": value}],
    });
    let fields = Selection::parse(request.param("fields"))?;
    fields.validate(&info)?;
    Ok(Reply::Json(200, json!({"value": fields.apply(&info)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_spec_paths() {
        let find = |method, path| EventRoute::find(&method, path);
        assert_eq!(find(Method::GET, "/event"), Some(EventRoute::Catalogue));
        assert_eq!(
            find(Method::GET, "/event/customer.create"),
            Some(EventRoute::Example("customer.create".into()))
        );
        assert_eq!(
            find(Method::GET, "/event/subscription"),
            Some(EventRoute::Search)
        );
        assert_eq!(
            find(Method::DELETE, "/event/subscription/7"),
            Some(EventRoute::Delete(7))
        );
        assert_eq!(
            find(Method::DELETE, "/event/subscription/list"),
            Some(EventRoute::DeleteList)
        );
        assert_eq!(find(Method::GET, "/event/subscription/list"), None);
        assert_eq!(find(Method::POST, "/event/customer.create"), None);
        assert_eq!(find(Method::GET, "/events"), None);
    }

    #[test]
    fn catalogue_names_are_unique_object_verb_pairs() {
        for (index, event) in CATALOGUE.iter().enumerate() {
            assert!(event.name.split_once('.').is_some(), "{}", event.name);
            assert!(
                CATALOGUE[..index].iter().all(|e| e.name != event.name),
                "{}",
                event.name
            );
        }
    }
}

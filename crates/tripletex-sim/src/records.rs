//! `GET /customer` and `GET /invoice`: query parameters, filters and the JSON shape of the two
//! record types.
//!
//! Invariants: records are filtered while walking the company's id-ordered map (one O(n) pass per
//! request, no per-request copies of the records themselves); `isInactive` defaults to false, so
//! inactive customers stay hidden unless asked for; `invoiceDateFrom` is inclusive and
//! `invoiceDateTo` exclusive, both required; every malformed parameter is a 422 naming it.

use std::cmp::Ordering;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::{Span, Timestamp};
use serde_json::{Value, json};

use super::URL_BASE;
use super::api::{Reply, Request};
use super::error::ApiError;
use super::fields::{self, ListOutcome, ListQuery, Record, Selection};
use super::session::Caller;
use super::state::{Customer, Invoice, World};
use oslo_clock::{oslo, oslo_midnight};

impl Record for Customer {
    const SORTABLE: &'static [&'static str] = &["id", "customerNumber", "name", "isInactive"];

    fn id(&self) -> i64 {
        self.id
    }

    fn compare_by(&self, other: &Self, field: &str) -> Ordering {
        match field {
            "customerNumber" => self.number.cmp(&other.number),
            "name" => self.name().cmp(&other.name()),
            "isInactive" => self.inactive.cmp(&other.inactive),
            _ => self.id.cmp(&other.id),
        }
    }

    fn to_json(&self) -> Value {
        let number = self.number;
        json!({
            "id": self.id,
            "version": self.version,
            "changes": [{"timestamp": self.changed.to_string(), "changeType": "CREATE"}],
            "url": format!("{URL_BASE}/customer/{}", self.id),
            "name": self.name(),
            "organizationNumber": "",
            "supplierNumber": 0,
            "customerNumber": number,
            "isSupplier": false,
            "isCustomer": true,
            "isInactive": self.inactive,
            "email": format!("kunde{number}@example.no"),
            "invoiceEmail": format!("kunde{number}@example.no"),
            "phoneNumber": "",
            "phoneNumberMobile": "",
            "language": "NO",
            "displayName": format!("{} ({number})", self.name()),
            "isPrivateIndividual": false,
            "currency": {"id": 1, "url": format!("{URL_BASE}/currency/1")},
        })
    }
}

impl Customer {
    fn name(&self) -> String {
        format!("Kunde {}", self.number)
    }
}

impl Record for Invoice {
    const SORTABLE: &'static [&'static str] = &["id", "invoiceNumber", "invoiceDate"];

    fn id(&self) -> i64 {
        self.id
    }

    fn compare_by(&self, other: &Self, field: &str) -> Ordering {
        match field {
            "invoiceNumber" => self.number.cmp(&other.number),
            "invoiceDate" => self.date.cmp(&other.date),
            _ => self.id.cmp(&other.id),
        }
    }

    fn to_json(&self) -> Value {
        let due = self
            .date
            .checked_add(Span::new().days(14))
            .unwrap_or(self.date);
        // A plausible, deterministic amount so digests are stable.
        let amount = 100.0 + f64::from(self.number % 97) * 12.5;
        json!({
            "id": self.id,
            "version": self.version,
            "changes": [],
            "url": format!("{URL_BASE}/invoice/{}", self.id),
            "invoiceNumber": self.number,
            "invoiceDate": self.date.to_string(),
            "invoiceDueDate": due.to_string(),
            "customer": {"id": self.customer_id, "url": format!("{URL_BASE}/customer/{}", self.customer_id)},
            "amount": amount,
            "amountCurrency": amount,
            "currency": {"id": 1, "url": format!("{URL_BASE}/currency/1")},
            "isCreditNote": false,
            "isCharged": true,
        })
    }
}

pub(crate) fn customers(
    world: &World,
    caller: &Caller,
    request: &Request,
) -> Result<Reply, ApiError> {
    let sample = Customer {
        id: 1,
        version: 0,
        number: 1,
        inactive: false,
        changed: Timestamp::UNIX_EPOCH,
    };
    let query = list_query::<Customer>(request, &sample.to_json())?;
    let ids = parse_list::<i64>(request, "id")?;
    let numbers = parse_list::<u32>(request, "customerAccountNumber")?;
    let inactive = match request.param("isInactive").map(str::trim) {
        None | Some("") => false,
        Some(text) => text
            .parse::<bool>()
            .map_err(|_| ApiError::validation("isInactive", "Ugyldig verdi."))?,
    };
    let changed_since = request
        .param("changedSince")
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(|text| {
            parse_instant(text)
                .ok_or_else(|| ApiError::validation("changedSince", "Ugyldig tidspunkt."))
        })
        .transpose()?;
    let Some(company) = world.companies.get(&caller.company_id) else {
        return Ok(outcome(fields::list::<Customer>(Vec::new(), &query)));
    };
    let items = company
        .customers
        .values()
        .filter(|c| c.inactive == inactive)
        .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .filter(|c| numbers.as_ref().is_none_or(|ns| ns.contains(&c.number)))
        .filter(|c| changed_since.is_none_or(|since| c.changed >= since))
        .collect();
    Ok(outcome(fields::list(items, &query)))
}

pub(crate) fn invoices(
    world: &World,
    caller: &Caller,
    request: &Request,
) -> Result<Reply, ApiError> {
    let date_from = required_date(request, "invoiceDateFrom")?;
    let date_to = required_date(request, "invoiceDateTo")?;
    let sample = Invoice {
        id: 1,
        version: 0,
        number: 1,
        date: date_from,
        customer_id: 1,
    };
    let query = list_query::<Invoice>(request, &sample.to_json())?;
    let ids = parse_list::<i64>(request, "id")?;
    let numbers = parse_list::<u32>(request, "invoiceNumber")?;
    let customer_ids = parse_list::<i64>(request, "customerId")?;
    let Some(company) = world.companies.get(&caller.company_id) else {
        return Ok(outcome(fields::list::<Invoice>(Vec::new(), &query)));
    };
    let items = company
        .invoices
        .values()
        .filter(|i| date_from <= i.date && i.date < date_to)
        .filter(|i| ids.as_ref().is_none_or(|ids| ids.contains(&i.id)))
        .filter(|i| numbers.as_ref().is_none_or(|ns| ns.contains(&i.number)))
        .filter(|i| {
            customer_ids
                .as_ref()
                .is_none_or(|cs| cs.contains(&i.customer_id))
        })
        .collect();
    Ok(outcome(fields::list(items, &query)))
}

pub(crate) fn outcome(list: ListOutcome) -> Reply {
    match list {
        ListOutcome::Body(body) => Reply::Json(200, body),
        ListOutcome::NotModified => Reply::Empty(304),
    }
}

pub(crate) fn list_query<R: Record>(
    request: &Request,
    sample: &Value,
) -> Result<ListQuery, ApiError> {
    let fields = Selection::parse(request.param("fields"))?;
    fields.validate(sample)?;
    Ok(ListQuery {
        from: parse_number(request, "from", 0)?,
        count: parse_number(request, "count", 1000)?,
        sorting: fields::parse_sorting(request.param("sorting"), R::SORTABLE)?,
        fields,
        if_none_match: request
            .if_none_match
            .clone()
            .filter(|value| !value.trim().is_empty()),
    })
}

fn parse_number(request: &Request, name: &str, default: usize) -> Result<usize, ApiError> {
    match request.param(name).map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::validation(name, "Må være et ikke-negativt heltall.")),
    }
}

/// A comma-separated filter; `None` when absent or empty (no filtering).
fn parse_list<T: FromStr>(request: &Request, name: &str) -> Result<Option<Vec<T>>, ApiError> {
    let Some(text) = request.param(name).filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse()
                .map_err(|_| ApiError::validation(name, "Ugyldig verdi i listen."))
        })
        .collect::<Result<Vec<T>, _>>()
        .map(Some)
}

fn required_date(request: &Request, name: &str) -> Result<Date, ApiError> {
    match request.param(name).map(str::trim) {
        None | Some("") => Err(ApiError::missing(name)),
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::validation(name, "Ugyldig dato.")),
    }
}

/// `changedSince`: RFC 3339 with an offset, or a local date-time or bare date read in Oslo.
fn parse_instant(text: &str) -> Option<Timestamp> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Some(at);
    }
    if let Ok(local) = text.parse::<DateTime>() {
        return local
            .to_zoned_datetime(oslo())
            .ok()
            .map(|zoned| zoned.timestamp());
    }
    text.parse::<Date>().ok().map(oslo_midnight)
}

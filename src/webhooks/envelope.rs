//! The WebHook envelope Tripletex posts, `{"subscriptionId", "event", "id", "value"}`, read
//! strictly: all four present and of their types, the event one of an enabled kind's, `value`
//! a row of that kind (every field its listing asks for, `id` equal to the envelope's) or, for
//! a delete event, null. Fields Tripletex may add later are ignored.

use serde_json::{Map, Value};

use super::Change;
use crate::checks::{CheckKind, PerKind};
use crate::tripletex::model::{self, Record};

/// The kind and change `body` carries, or why it is refused (one line, quoting no value).
pub(super) fn parse(body: &[u8], kinds: &PerKind<bool>) -> Result<(CheckKind, Change), String> {
    let envelope: Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| "the body is not a JSON object".to_owned())?;
    model::positive(&envelope, "subscriptionId", i64::MAX)?;
    let id = model::positive(&envelope, "id", i64::MAX)?;
    let event = match envelope.get("event") {
        Some(Value::String(event)) => event.as_str(),
        _ => return Err("`event` is missing or not text".into()),
    };
    let (kind, delete) = CheckKind::ALL
        .into_iter()
        .filter(|k| kinds[*k])
        .find_map(|k| {
            let events = &k.spec().events;
            if events.upsert.contains(&event) {
                Some((k, false))
            } else {
                (events.delete == Some(event)).then_some((k, true))
            }
        })
        .ok_or("`event` is not one this shop subscribes to")?;
    match (envelope.get("value"), delete) {
        (Some(Value::Null), true) => Ok((kind, Change::Delete(id))),
        (Some(Value::Object(row)), false) => {
            let record = Record::parse(kind.spec(), row)?;
            if record.id != id {
                return Err("`value.id` differs from `id`".into());
            }
            Ok((kind, Change::Upsert(record)))
        }
        (_, true) => Err("`value` of a delete is not null".into()),
        (_, false) => Err("`value` is missing or not an object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::kinds::{Entry, TailValue};
    use serde_json::json;

    fn read(v: Value) -> Result<(CheckKind, Change), String> {
        parse(v.to_string().as_bytes(), &PerKind::from_fn(|_| true))
    }

    #[test]
    fn reads_upserts_and_deletes() {
        let got = read(
            json!({"subscriptionId": 1, "event": "customer.create", "id": 5,
            "value": {"id": 5, "customerNumber": 10001, "isInactive": false}}),
        );
        let entry = Entry {
            number: 10001,
            tail: TailValue::Flag(false),
        };
        assert_eq!(
            got.unwrap(),
            (
                CheckKind::CustomerNumbers,
                Change::Upsert(Record { id: 5, entry })
            )
        );
        let got =
            read(json!({"subscriptionId": 1, "event": "customer.delete", "id": 5, "value": null}));
        assert_eq!(
            got.unwrap(),
            (CheckKind::CustomerNumbers, Change::Delete(5))
        );
        let got = read(
            json!({"subscriptionId": 2, "event": "invoice.charged", "id": 9,
            "value": {"id": 9, "invoiceNumber": 7, "invoiceDate": "2026-03-09"}}),
        );
        assert_eq!(got.unwrap().0, CheckKind::InvoiceNumbers);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let row = json!({"id": 5, "customerNumber": 10001, "isInactive": false});
        for bad in [
            json!([]),
            json!({"event": "customer.create", "id": 5, "value": row}),
            json!({"subscriptionId": 1, "event": "customer.create", "value": row}),
            json!({"subscriptionId": 1, "event": "order.create", "id": 5, "value": row}),
            json!({"subscriptionId": 1, "event": "customer.create", "id": 6, "value": row}),
            json!({"subscriptionId": 1, "event": "customer.create", "id": 5, "value": null}),
            json!({"subscriptionId": 1, "event": "customer.delete", "id": 5, "value": row}),
            json!({"subscriptionId": 1, "event": "customer.create", "id": 5,
                   "value": {"id": 5, "customerNumber": "10001", "isInactive": false}}),
            json!({"subscriptionId": 1, "event": "customer.create", "id": 5,
                   "value": {"id": 5, "isInactive": false}}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
        let only_invoices = PerKind::from_fn(|k| k == CheckKind::InvoiceNumbers);
        let body = json!({"subscriptionId": 1, "event": "customer.delete", "id": 5, "value": null});
        assert!(parse(body.to_string().as_bytes(), &only_invoices).is_err());
        assert!(parse(b"{not json", &only_invoices).is_err());
    }
}

//! The WebHook envelope Tripletex posts, `{"subscriptionId", "event", "id", "value"}`. The
//! envelope itself is read strictly: `subscriptionId` and `id` positive integers, `event` text;
//! anything else is malformed (400). What it tells is then [`News`]: a change of a kind the shop
//! checks (`value` a row with every field its listing asks for, `id` equal to the envelope's, a
//! number; for a delete event, `value` null or absent), or, when it is ours and well-formed but
//! cannot be applied, [`News::Unusable`] with the reason. Fields Tripletex may add are ignored.

use serde_json::{Map, Value};

use super::{Change, News};
use crate::checks::{CheckKind, PerKind};
use crate::tripletex::model::{self, Record};

/// A well-formed envelope: which subscription sent it, for which event, and what it tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Envelope {
    pub subscription_id: i64,
    pub event: String,
    pub news: News,
}

/// The envelope in `body`, or why it is malformed (one line, quoting no value). `kinds` are the
/// kinds the shop checks.
pub(super) fn parse(body: &[u8], kinds: &PerKind<bool>) -> Result<Envelope, String> {
    let envelope: Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| "the body is not a JSON object".to_owned())?;
    let subscription_id = model::positive(&envelope, "subscriptionId", i64::MAX)?;
    let id = model::positive(&envelope, "id", i64::MAX)?;
    let event = match envelope.get("event") {
        Some(Value::String(event)) => event.clone(),
        _ => return Err("`event` is missing or not text".into()),
    };
    let news = match news(&envelope, &event, id, kinds) {
        Ok((kind, change)) => News::Changed(kind, change),
        Err(reason) => News::Unusable(reason),
    };
    Ok(Envelope {
        subscription_id,
        event,
        news,
    })
}

/// The change a well-formed envelope tells, or why it cannot be applied.
fn news(
    envelope: &Map<String, Value>,
    event: &str,
    id: i64,
    kinds: &PerKind<bool>,
) -> Result<(CheckKind, Change), String> {
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
        .ok_or("`event` is not one of a kind this shop checks")?;
    match (envelope.get("value"), delete) {
        // Tripletex documents `null`; an absent value says the same.
        (Some(Value::Null) | None, true) => Ok((kind, Change::Delete(id))),
        (Some(Value::Object(row)), false) => {
            let record = Record::parse(kind.spec(), row)?;
            if record.id != id {
                return Err("`value.id` differs from `id`".into());
            }
            if record.entry.number.is_none() {
                return Err(format!(
                    "`value.{}` is null or 0 (no number)",
                    kind.spec().list.number_field
                ));
            }
            Ok((kind, Change::Upsert(record)))
        }
        (_, true) => Err("`value` of a delete is neither null nor absent".into()),
        (_, false) => Err("`value` is missing or not an object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::kinds::{Entry, TailValue, Version};
    use serde_json::json;

    fn read(v: Value) -> Result<Envelope, String> {
        parse(v.to_string().as_bytes(), &PerKind::from_fn(|_| true))
    }

    fn news(v: Value) -> News {
        read(v).unwrap().news
    }

    #[test]
    fn reads_upserts_and_deletes() {
        let got = read(
            json!({"subscriptionId": 3, "event": "customer.create", "id": 5,
            "value": {"id": 5, "version": 2, "customerNumber": 10001, "isInactive": false}}),
        )
        .unwrap();
        let entry = Entry {
            number: Some(10001),
            tail: TailValue::Flag(false),
            version: Version::Seen(2),
        };
        assert_eq!(
            got,
            Envelope {
                subscription_id: 3,
                event: "customer.create".into(),
                news: News::Changed(
                    CheckKind::CustomerNumbers,
                    Change::Upsert(Record { id: 5, entry })
                ),
            }
        );
        let delete = News::Changed(CheckKind::CustomerNumbers, Change::Delete(5));
        let null = json!({"subscriptionId": 1, "event": "customer.delete", "id": 5, "value": null});
        assert_eq!(news(null), delete);
        let absent = json!({"subscriptionId": 1, "event": "customer.delete", "id": 5});
        assert_eq!(news(absent), delete);
        let invoice = news(
            json!({"subscriptionId": 2, "event": "invoice.charged", "id": 9,
            "value": {"id": 9, "version": 0, "invoiceNumber": 7, "invoiceDate": "2026-03-09"}}),
        );
        assert!(
            matches!(invoice, News::Changed(CheckKind::InvoiceNumbers, _)),
            "{invoice:?}"
        );
    }

    #[test]
    fn refuses_a_malformed_envelope() {
        let row = json!({"id": 5, "version": 0, "customerNumber": 10001, "isInactive": false});
        for bad in [
            json!([]),
            json!({"event": "customer.create", "id": 5, "value": row}),
            json!({"subscriptionId": 0, "event": "customer.create", "id": 5, "value": row}),
            json!({"subscriptionId": 1, "event": "customer.create", "value": row}),
            json!({"subscriptionId": 1, "event": 7, "id": 5, "value": row}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
        assert!(parse(b"{not json", &PerKind::from_fn(|_| true)).is_err());
    }

    #[test]
    fn a_well_formed_envelope_that_cannot_be_applied_is_unusable() {
        let row = json!({"id": 5, "version": 0, "customerNumber": 10001, "isInactive": false});
        for unusable in [
            json!({"subscriptionId": 1, "event": "order.create", "id": 5, "value": row}),
            json!({"subscriptionId": 1, "event": "customer.create", "id": 6, "value": row}),
            json!({"subscriptionId": 1, "event": "customer.create", "id": 5, "value": null}),
            json!({"subscriptionId": 1, "event": "customer.delete", "id": 5, "value": row}),
            json!({"subscriptionId": 1, "event": "customer.create", "id": 5,
                   "value": {"id": 5, "version": 0, "customerNumber": "10001", "isInactive": false}}),
            json!({"subscriptionId": 1, "event": "customer.create", "id": 5,
                   "value": {"id": 5, "version": 0, "isInactive": false}}),
            // A subscription made before `version` was asked for.
            json!({"subscriptionId": 1, "event": "customer.create", "id": 5,
                   "value": {"id": 5, "customerNumber": 10001, "isInactive": false}}),
            // The spec allows a customer without a number (null, or its minimum 0).
            json!({"subscriptionId": 1, "event": "customer.update", "id": 5,
                   "value": {"id": 5, "version": 1, "customerNumber": null, "isInactive": false}}),
            json!({"subscriptionId": 1, "event": "customer.update", "id": 5,
                   "value": {"id": 5, "version": 1, "customerNumber": 0, "isInactive": false}}),
        ] {
            assert!(
                matches!(news(unusable.clone()), News::Unusable(_)),
                "{unusable}"
            );
        }
        let only_invoices = PerKind::from_fn(|k| k == CheckKind::InvoiceNumbers);
        let body = json!({"subscriptionId": 1, "event": "customer.delete", "id": 5, "value": null});
        let got = parse(body.to_string().as_bytes(), &only_invoices).unwrap();
        assert!(matches!(got.news, News::Unusable(_)), "{got:?}");
    }
}

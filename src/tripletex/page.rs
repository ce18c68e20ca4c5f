//! A list answer (`ListResponse*`) is checked before any of it is believed.
//!
//! Invariants: a [`Page`] exists only when `values` is a list of objects, `from` is the offset
//! asked for, `count` is the number of rows and at most the count asked for, `fullResultSize`
//! (when sent) is a non-negative integer not below `from + count`, `versionDigest` is a string or
//! null, and every row parsed as a [`Record`] of the kind asked for. Anything else is
//! [`TripletexError::Malformed`] naming the first problem, so a check can never read "no numbers
//! in use" out of an answer that did not say so.

use serde::Deserialize;
use serde_json::Value;

use super::error::TripletexError;
use super::model::Record;
use crate::checks::KindSpec;

/// One validated page of a list.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    /// Documented by Tripletex as "not exact": a hint for when paging may stop, never a reason
    /// to believe rows exist that were not sent.
    pub full_result_size: Option<u64>,
    pub version_digest: Option<String>,
}

/// The `from` and `count` a list request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub from: u64,
    pub count: u64,
}

impl Asked {
    /// From the request's query; Tripletex's defaults are `from=0`, `count=1000`.
    pub fn from_query(query: &[(&str, String)]) -> Self {
        let param = |name: &str, default: u64| {
            query
                .iter()
                .rev()
                .find(|(key, _)| *key == name)
                .and_then(|(_, value)| value.parse().ok())
                .unwrap_or(default)
        };
        Self {
            from: param("from", 0),
            count: param("count", 1000),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(default)]
    full_result_size: Option<Value>,
    #[serde(default)]
    from: Option<Value>,
    #[serde(default)]
    count: Option<Value>,
    #[serde(default)]
    version_digest: Option<Value>,
    #[serde(default)]
    values: Option<Value>,
}

/// Parses and checks one list answer to `path`, whose rows are records of `kind`.
pub fn parse(
    path: &str,
    body: &[u8],
    asked: Asked,
    kind: &KindSpec,
) -> Result<Page<Record>, TripletexError> {
    let malformed = |reason: String| TripletexError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| TripletexError::Decode(format!("{path}: {e}")))?;
    let values = match envelope.values {
        Some(Value::Array(values)) => values,
        None => return Err(malformed("the answer has no `values` list".into())),
        Some(other) => {
            return Err(malformed(format!(
                "`values` is {}, not a list",
                kind_of(&other)
            )));
        }
    };
    let n = values.len() as u64;
    let from = count_field(envelope.from.as_ref(), "from").map_err(malformed)?;
    if from != asked.from {
        return Err(malformed(format!(
            "`from` is {from}, the request asked for {}",
            asked.from
        )));
    }
    let count = count_field(envelope.count.as_ref(), "count").map_err(malformed)?;
    if count != n {
        return Err(malformed(format!("`count` is {count} but {n} rows came")));
    }
    if n > asked.count {
        return Err(malformed(format!(
            "{n} rows came, the request asked for at most {}",
            asked.count
        )));
    }
    let full_result_size = match envelope.full_result_size {
        None => None,
        Some(value) => {
            let total = count_field(Some(&value), "fullResultSize").map_err(malformed)?;
            if total < from + n {
                return Err(malformed(format!(
                    "`fullResultSize` is {total}, below from + count = {}",
                    from + n
                )));
            }
            Some(total)
        }
    };
    let version_digest = match envelope.version_digest {
        None => None,
        Some(Value::String(digest)) => Some(digest),
        Some(other) => {
            return Err(malformed(format!(
                "`versionDigest` is {}, not a string",
                kind_of(&other)
            )));
        }
    };
    let rows = values
        .iter()
        .enumerate()
        .map(|(i, value)| match value {
            Value::Object(row) => Record::parse(kind, row).map_err(|why| {
                let at = from + i as u64;
                match row.get("id") {
                    Some(id) => format!("row {at} (id {id}): {why}"),
                    None => format!("row {at}: {why}"),
                }
            }),
            other => Err(format!(
                "row {} is {}, not an object",
                from + i as u64,
                kind_of(other)
            )),
        })
        .collect::<Result<Vec<Record>, String>>()
        .map_err(malformed)?;
    Ok(Page {
        rows,
        full_result_size,
        version_digest,
    })
}

/// A required non-negative integer of the envelope.
fn count_field(value: Option<&Value>, name: &str) -> Result<u64, String> {
    match value {
        None => Err(format!("the answer has no `{name}`")),
        Some(value) => value
            .as_u64()
            .ok_or_else(|| format!("`{name}` is {value}, not a non-negative integer")),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckKind;
    use crate::checks::kinds::Version;

    const ASKED: Asked = Asked {
        from: 0,
        count: 1000,
    };

    fn customers(body: &str) -> Result<Page<Record>, TripletexError> {
        parse("/customer", body.as_bytes(), ASKED, customer_kind())
    }

    fn customer_kind() -> &'static KindSpec {
        CheckKind::CustomerNumbers.spec()
    }

    fn refused(body: &str) -> String {
        match customers(body) {
            Err(TripletexError::Malformed { reason, .. }) => reason,
            other => panic!("not refused as malformed: {other:?}"),
        }
    }

    #[test]
    fn a_good_page_parses() {
        let page = customers(
            r#"{"fullResultSize":1,"from":0,"count":1,"versionDigest":null,
                "values":[{"id":5,"version":3,"customerNumber":12,"isInactive":false}]}"#,
        )
        .unwrap();
        assert_eq!(page.rows.len(), 1);
        assert_eq!(page.rows[0].entry.number, Some(12));
        assert_eq!(page.rows[0].entry.version, Version::Seen(3));
        assert_eq!(page.full_result_size, Some(1));
    }

    #[test]
    fn envelope_problems_are_named() {
        assert!(refused(r#"{"from":0,"count":0}"#).contains("no `values`"));
        assert!(refused(r#"{"from":0,"count":0,"values":null}"#).contains("no `values`"));
        assert!(refused(r#"{"from":0,"count":0,"values":{}}"#).contains("not a list"));
        assert!(refused(r#"{"from":5,"count":0,"values":[]}"#).contains("`from` is 5"));
        assert!(refused(r#"{"count":0,"values":[]}"#).contains("no `from`"));
        assert!(refused(r#"{"from":0,"count":3,"values":[]}"#).contains("`count` is 3"));
        assert!(
            refused(r#"{"from":0,"count":0,"fullResultSize":-1,"values":[]}"#)
                .contains("fullResultSize")
        );
    }

    #[test]
    fn a_customer_without_a_number_is_read_as_none() {
        // The spec allows it (`customerNumber` is optional, minimum 0).
        for none in ["null", "0"] {
            let page = customers(&format!(
                r#"{{"from":0,"count":1,"values":[{{"id":1,"version":0,"customerNumber":{none},"isInactive":false}}]}}"#
            ))
            .unwrap();
            assert_eq!(page.rows[0].entry.number, None, "{none}");
        }
    }

    #[test]
    fn row_problems_are_named() {
        let row = |fields: &str| format!(r#"{{"from":0,"count":1,"values":[{{{fields}}}]}}"#);
        let missing = refused(&row(r#""id":1,"version":0,"isInactive":false"#));
        assert!(missing.contains("`customerNumber` is missing"), "{missing}");
        for bad in ["-3", "1.5", "\"7\"", "true"] {
            let reason = refused(&row(&format!(
                r#""id":1,"version":0,"customerNumber":{bad},"isInactive":false"#
            )));
            assert!(reason.contains("not a positive integer"), "{bad}: {reason}");
        }
        let huge = refused(&row(
            r#""id":1,"version":0,"customerNumber":2147483648,"isInactive":false"#,
        ));
        assert!(huge.contains("beyond"), "{huge}");
        let no_id = refused(&row(r#""version":0,"customerNumber":1,"isInactive":false"#));
        assert!(no_id.contains("`id`"), "{no_id}");
        let no_version = refused(&row(r#""id":1,"customerNumber":1,"isInactive":false"#));
        assert!(no_version.contains("`version` is missing"), "{no_version}");
        let bad_version = refused(&row(
            r#""id":1,"version":-1,"customerNumber":1,"isInactive":false"#,
        ));
        assert!(bad_version.contains("`version`"), "{bad_version}");
        assert!(refused(r#"{"from":0,"count":1,"values":[7]}"#).contains("not an object"));
    }

    mod props {
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        use super::*;

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<u64>().prop_map(|n| json!(n)),
                (-1e12f64..1e12).prop_map(|x| json!(x)),
                "[a-zA-Z0-9 -]{0,12}".prop_map(Value::String),
                Just(json!("2026-01-05")),
            ]
        }

        /// Rows and envelopes near the real shape: the real keys with random values.
        fn envelope() -> impl Strategy<Value = Value> {
            let key = prop_oneof![
                Just("id"),
                Just("version"),
                Just("customerNumber"),
                Just("isInactive"),
                Just("x")
            ];
            let row = prop::collection::btree_map(key, leaf(), 0..5)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.into(), v)).collect()));
            let values = prop_oneof![
                prop::collection::vec(prop_oneof![row, leaf()], 0..6).prop_map(Value::Array),
                leaf(),
            ];
            let top = prop_oneof![
                Just("from"),
                Just("count"),
                Just("fullResultSize"),
                Just("versionDigest")
            ];
            (
                prop::collection::btree_map(top, leaf(), 0..5),
                prop::option::of(values),
            )
                .prop_map(|(keys, values)| {
                    let mut m: Map<String, Value> =
                        keys.into_iter().map(|(k, v)| (k.into(), v)).collect();
                    if let Some(values) = values {
                        m.insert("values".into(), values);
                    }
                    Value::Object(m)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn any_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = parse("/customer", &body, ASKED, customer_kind());
            }

            /// Whatever is accepted is exactly what a list answer must be.
            #[test]
            fn an_accepted_page_is_a_believable_one(envelope in envelope(), from in 0u64..3) {
                let asked = Asked { from, count: 1000 };
                let body = serde_json::to_vec(&envelope).unwrap();
                if let Ok(page) = parse("/customer", &body, asked, customer_kind()) {
                    let values = envelope["values"].as_array().expect("values is a list");
                    prop_assert_eq!(envelope["from"].as_u64(), Some(from));
                    prop_assert_eq!(envelope["count"].as_u64(), Some(values.len() as u64));
                    prop_assert_eq!(page.rows.len(), values.len());
                    for (row, value) in page.rows.iter().zip(values) {
                        prop_assert!(row.id > 0);
                        match row.entry.number {
                            Some(number) => {
                                prop_assert!(number > 0 && number <= i32::MAX as u32);
                                prop_assert_eq!(value["customerNumber"].as_u64(), Some(u64::from(number)));
                            }
                            None => prop_assert!(
                                value["customerNumber"].is_null() || value["customerNumber"] == json!(0)
                            ),
                        }
                        prop_assert!(value["version"].as_u64().is_some_and(|v| v <= i32::MAX as u64));
                        prop_assert!(value["isInactive"].is_boolean());
                    }
                }
            }
        }
    }
}

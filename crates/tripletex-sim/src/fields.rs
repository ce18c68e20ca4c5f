//! The generic list machinery: `fields` selection, `sorting`, `from`/`count` paging, the list
//! envelope and its `versionDigest`.
//!
//! Invariants: a selection is validated against a full sample object before any data is touched,
//! so an unknown field fails (400, code 11000) even on an empty result; `changes` only appears
//! when named explicitly; sorting is stable with id as the final tie-breaker, so paging never
//! skips or repeats an element; the digest covers the whole filtered, sorted, selected result
//! plus `from`/`count`, never just the page.

use std::cmp::Ordering;
use std::hash::Hasher;
use std::io;

use serde_json::{Map, Value, json};

use super::error::ApiError;

/// A parsed `fields` value: `*` plus explicitly named fields with their own sub-selections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    all: bool,
    named: Vec<(String, Selection)>,
}

impl Selection {
    pub(crate) fn everything() -> Self {
        Self {
            all: true,
            named: Vec::new(),
        }
    }

    /// Parses `*,activity(name),employee(*)`; an absent or empty value means `*`.
    pub(crate) fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        let text = text.unwrap_or("").trim();
        if text.is_empty() {
            return Ok(Self::everything());
        }
        let mut chars = text.chars().peekable();
        let selection = parse_list(&mut chars, false)?;
        Ok(selection)
    }

    /// Fails on a name `sample` (a fully populated object) does not have.
    pub(crate) fn validate(&self, sample: &Value) -> Result<(), ApiError> {
        for (name, sub) in &self.named {
            let Some(field) = sample.get(name) else {
                return Err(ApiError::illegal_field(format!(
                    "Illegal field in fields filter: {name}. {name} does not match a field in the model"
                )));
            };
            match field {
                Value::Object(_) => sub.validate(field)?,
                Value::Array(items) => {
                    if let Some(first) = items.first() {
                        sub.validate(first)?;
                    }
                }
                _ if !sub.named.is_empty() => {
                    return Err(ApiError::illegal_field(format!(
                        "Illegal field in fields filter: {name} has no sub-fields"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) fn apply(&self, value: &Value) -> Value {
        match value {
            Value::Object(object) => {
                let mut out = Map::new();
                for (key, field) in object {
                    let named = self.named.iter().find(|(name, _)| name == key);
                    match named {
                        Some((_, sub)) => {
                            out.insert(key.clone(), sub.apply(field));
                        }
                        None if self.all && key != "changes" => {
                            out.insert(key.clone(), field.clone());
                        }
                        None => {}
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => items.iter().map(|item| self.apply(item)).collect(),
            other => other.clone(),
        }
    }
}

fn parse_list(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    nested: bool,
) -> Result<Selection, ApiError> {
    let mut selection = Selection {
        all: false,
        named: Vec::new(),
    };
    let mut name = String::new();
    loop {
        let next = chars.next();
        match next {
            Some('(') => {
                let sub = parse_list(chars, true)?;
                push_item(&mut selection, &mut name, Some(sub))?;
            }
            Some(',') => push_item(&mut selection, &mut name, None)?,
            Some(')') if nested => {
                push_item(&mut selection, &mut name, None)?;
                return Ok(selection);
            }
            None if !nested => {
                push_item(&mut selection, &mut name, None)?;
                return Ok(selection);
            }
            Some(')') | None => {
                return Err(ApiError::illegal_field(
                    "Illegal fields filter: unbalanced parentheses".to_owned(),
                ));
            }
            Some(c) if c.is_whitespace() => {}
            Some(c) => name.push(c),
        }
    }
}

/// Ends the item collected in `name`; an item followed by `(...)` already ended at the `(`.
fn push_item(
    selection: &mut Selection,
    name: &mut String,
    sub: Option<Selection>,
) -> Result<(), ApiError> {
    let item = std::mem::take(name);
    match (item.as_str(), sub) {
        ("", None) => Ok(()),
        ("", Some(_)) => Err(ApiError::illegal_field(
            "Illegal fields filter: sub-fields without a field name".to_owned(),
        )),
        ("*", None) => {
            selection.all = true;
            Ok(())
        }
        (_, sub) => {
            selection
                .named
                .push((item, sub.unwrap_or_else(Selection::everything)));
            Ok(())
        }
    }
}

/// One `sorting` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SortKey {
    pub(crate) field: &'static str,
    pub(crate) descending: bool,
}

/// Parses `-customerNumber,id` against the fields this resource can sort by.
pub(crate) fn parse_sorting(
    text: Option<&str>,
    sortable: &[&'static str],
) -> Result<Vec<SortKey>, ApiError> {
    let mut keys = Vec::new();
    for part in text.unwrap_or("").split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let (descending, name) = match part.strip_prefix('-') {
            Some(rest) => (true, rest.trim()),
            None => (false, part.strip_prefix('+').unwrap_or(part).trim()),
        };
        let Some(field) = sortable.iter().copied().find(|known| *known == name) else {
            return Err(ApiError::illegal_sorting(format!(
                "Illegal sorting field: {name}"
            )));
        };
        keys.push(SortKey { field, descending });
    }
    Ok(keys)
}

/// What the list machinery needs from a stored object.
pub(crate) trait Record {
    const SORTABLE: &'static [&'static str];
    fn id(&self) -> i64;
    /// Compares by one of [`Record::SORTABLE`].
    fn compare_by(&self, other: &Self, field: &str) -> Ordering;
    fn to_json(&self) -> Value;
}

/// The validated paging/sorting/selection part of a list request.
#[derive(Debug)]
pub(crate) struct ListQuery {
    pub(crate) from: usize,
    pub(crate) count: usize,
    pub(crate) sorting: Vec<SortKey>,
    pub(crate) fields: Selection,
    pub(crate) if_none_match: Option<String>,
}

/// A list response, or the verdict that the caller's digest is still current.
#[derive(Debug)]
pub(crate) enum ListOutcome {
    Body(Value),
    NotModified,
}

/// Sorts, digests and pages `items`, which arrive filtered and in id order.
pub(crate) fn list<R: Record>(mut items: Vec<&R>, query: &ListQuery) -> ListOutcome {
    // Items arrive in id order, so `sorting=id` (how clients page stably) needs no sort.
    let by_id = matches!(query.sorting.as_slice(), [key] if key.field == "id" && !key.descending);
    if !query.sorting.is_empty() && !by_id {
        items.sort_by(|a, b| {
            query
                .sorting
                .iter()
                .map(|key| {
                    let order = a.compare_by(b, key.field);
                    if key.descending {
                        order.reverse()
                    } else {
                        order
                    }
                })
                .find(|order| order.is_ne())
                .unwrap_or_else(|| a.id().cmp(&b.id()))
        });
    }
    let digest = query.if_none_match.as_ref().map(|_| digest(&items, query));
    if let (Some(sent), Some(current)) = (query.if_none_match.as_deref(), digest.as_deref())
        && sent.trim_matches('"') == current
    {
        return ListOutcome::NotModified;
    }
    let values: Vec<Value> = items
        .iter()
        .skip(query.from)
        .take(query.count)
        .map(|item| query.fields.apply(&item.to_json()))
        .collect();
    ListOutcome::Body(json!({
        "fullResultSize": items.len(),
        "from": query.from,
        "count": values.len(),
        "versionDigest": digest,
        "values": values,
    }))
}

fn digest<R: Record>(items: &[&R], query: &ListQuery) -> String {
    let mut hasher = Fnv1a::default();
    for item in items {
        // Writing into a hasher cannot fail; an error here would only mean a shorter digest input.
        let _ = serde_json::to_writer(&mut hasher, &query.fields.apply(&item.to_json()));
        hasher.write_u8(b'\n');
    }
    hasher.write_u64(query.from as u64);
    hasher.write_u64(query.count as u64);
    format!("{:016x}", hasher.finish())
}

/// FNV-1a: tiny, stable across runs and platforms (unlike `DefaultHasher`'s unspecified algorithm).
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl io::Write for Fnv1a {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Hasher::write(self, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({"id": 1, "name": "A", "changes": [{"timestamp": "x"}], "customer": {"id": 2, "url": "u"}})
    }

    #[test]
    fn selection_keeps_only_named_fields() {
        let sel = Selection::parse(Some("id, customer(id)")).unwrap();
        sel.validate(&sample()).unwrap();
        assert_eq!(
            sel.apply(&sample()),
            json!({"id": 1, "customer": {"id": 2}})
        );
    }

    #[test]
    fn star_hides_changes_unless_named() {
        let star = Selection::parse(None).unwrap();
        assert_eq!(star.apply(&sample()).get("changes"), None);
        let with = Selection::parse(Some("*,changes")).unwrap();
        assert!(with.apply(&sample()).get("changes").is_some());
    }

    #[test]
    fn unknown_or_malformed_fields_are_rejected() {
        for bad in ["nope", "customer(nope)", "name(x)", "id,(x)", "customer(id"] {
            let result = Selection::parse(Some(bad)).and_then(|s| s.validate(&sample()));
            assert_eq!(result.map_err(|e| e.code), Err(11000), "{bad}");
        }
    }

    #[test]
    fn sorting_knows_its_fields() {
        let keys = parse_sorting(Some("-name, id"), &["id", "name"]).unwrap();
        assert_eq!(
            keys[0],
            SortKey {
                field: "name",
                descending: true
            }
        );
        assert_eq!(
            parse_sorting(Some("x"), &["id"]).map_err(|e| e.code),
            Err(17000)
        );
    }
}

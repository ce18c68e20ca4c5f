//! Injected faults: what can go wrong on purpose, and which requests it hits.
//!
//! Invariants: a fault with `times = Some(n)` fires at most `n` times and then disappears; faults
//! are tried in injection order and only the first match fires for a request, so two faults never
//! combine on one request (combine [`Mutation`]s inside one [`FaultKind::Envelope`] instead).
//! The answer-shaping kinds are carried out by `answers.rs`; the list ones (`Envelope`,
//! `EndlessPages`, `RepeatFirstPage`) leave answers to other operations as they are, while
//! `Answer` replaces any operation's 200 answer (after the real handler ran, so still
//! authenticated).

use std::time::Duration;

/// A misbehaviour to inject into matching requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Relative to `/v2`, segment-wise (e.g. `/customer` hits `/customer` and `/customer/1`,
    /// not `/customerCategory`); `None` hits every path.
    pub path_prefix: Option<String>,
    /// Only requests identified as this employee token (directly on `:create`, via the session
    /// otherwise); `None` hits every caller, identified or not.
    pub employee_token: Option<String>,
    /// How many requests it hits; `None` until [`crate::Simulator::clear_faults`].
    pub times: Option<u32>,
}

impl Fault {
    /// A fault that hits every request until cleared.
    pub fn always(kind: FaultKind) -> Self {
        Self {
            kind,
            path_prefix: None,
            employee_token: None,
            times: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// That status with an `ApiError` body.
    Status(u16),
    /// Sleep (real time), then handle normally.
    Delay(Duration),
    /// Close the connection without any response.
    ConnectionReset,
    /// 200 with a body cut off in the middle.
    MalformedJson,
    /// 429 without `X-Rate-Limit-Reset`, like a real limit hit.
    TooManyRequests,
    /// The real answer, then these changes to its list envelope and rows (200 lists only).
    Envelope(Vec<Mutation>),
    /// A full page of fresh rows at every `from`, `fullResultSize` always ahead: never ends.
    EndlessPages,
    /// The `from=0` page for every `from`, its envelope echoing the `from` asked for.
    RepeatFirstPage,
    /// 200 with a list body of about this many bytes (decoded), sent chunked; gzip'd when
    /// `gzip`, so little goes over the wire.
    HugeBody { bytes: u64, gzip: bool },
    /// The real answer, but a 200 JSON answer's body replaced by this JSON (any operation, e.g.
    /// `{"value":{}}` for `>whoAmI`); errors pass through, so a dead session still gets its 401.
    Answer(serde_json::Value),
}

/// One change to a list answer. Row indexes wrap around the rows there are; with no rows, row
/// changes do nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Removes a key of the envelope (`values`, `from`, `count`, `fullResultSize`, …).
    RemoveKey(String),
    /// Sets a key of the envelope to this JSON.
    SetKey(String, serde_json::Value),
    RemoveField {
        row: usize,
        field: String,
    },
    SetField {
        row: usize,
        field: String,
        value: serde_json::Value,
    },
    ReplaceRow {
        row: usize,
        value: serde_json::Value,
    },
    /// Appends a copy of the row.
    DuplicateRow {
        row: usize,
    },
}

/// Injected faults in injection order.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    active: Vec<Fault>,
}

impl Faults {
    pub(crate) fn inject(&mut self, fault: Fault) {
        if fault.times != Some(0) {
            self.active.push(fault);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.active.clear();
    }

    /// The fault this request triggers, consuming one of its `times`.
    pub(crate) fn take(&mut self, path: &str, employee_token: Option<&str>) -> Option<FaultKind> {
        let index = self.active.iter().position(|f| {
            f.path_prefix
                .as_deref()
                .is_none_or(|prefix| has_path_prefix(path, prefix))
                && f.employee_token
                    .as_deref()
                    .is_none_or(|want| employee_token == Some(want))
        })?;
        let fault = &mut self.active[index];
        let kind = fault.kind.clone();
        if let Some(left) = fault.times.as_mut() {
            *left -= 1;
            if *left == 0 {
                self.active.remove(index);
            }
        }
        Some(kind)
    }
}

/// Segment-wise prefix match, shared by faults and denied paths.
pub(crate) fn has_path_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_segment_wise() {
        assert!(has_path_prefix("/customer", "/customer"));
        assert!(has_path_prefix("/customer/5", "/customer/"));
        assert!(!has_path_prefix("/customerCategory", "/customer"));
        assert!(has_path_prefix("/token/session/>whoAmI", "/token/session"));
        assert!(has_path_prefix("/anything", "/"));
    }

    #[test]
    fn counted_fault_runs_out() {
        let mut faults = Faults::default();
        faults.inject(Fault {
            times: Some(2),
            employee_token: Some("e".into()),
            ..Fault::always(FaultKind::Status(503))
        });
        assert_eq!(faults.take("/customer", Some("other")), None);
        assert_eq!(
            faults.take("/customer", Some("e")),
            Some(FaultKind::Status(503))
        );
        assert_eq!(
            faults.take("/invoice", Some("e")),
            Some(FaultKind::Status(503))
        );
        assert_eq!(faults.take("/invoice", Some("e")), None);
    }
}

//! Misshapen answers that faults ask for: list envelopes and rows mutated after the real handler
//! ran, any answer replaced, paging that never ends, a first page served for every `from`, and
//! huge bodies.
//!
//! Invariants: a mutation or replacement only touches a 200 JSON answer (errors and 304s pass
//! through untouched), and an index into the rows wraps, so any mutation applies to any list;
//! huge bodies are generated as they are sent, never held in memory, so a test of a 100 MB page
//! costs the simulator a few kilobytes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::api::{self, Reply, Request, Route};
use super::faults::Mutation;
use super::state::World;

/// Applies `mutations` in order to a 200 list answer.
pub(crate) fn mutate(reply: Reply, mutations: &[Mutation]) -> Reply {
    let Reply::Json(200, Value::Object(mut envelope)) = reply else {
        return reply;
    };
    for mutation in mutations {
        match mutation {
            Mutation::RemoveKey(key) => {
                envelope.remove(key);
            }
            Mutation::SetKey(key, value) => {
                envelope.insert(key.clone(), value.clone());
            }
            Mutation::RemoveField { row, field } => {
                if let Some(Value::Object(row)) = row_mut(&mut envelope, *row) {
                    row.remove(field);
                }
            }
            Mutation::SetField { row, field, value } => {
                if let Some(Value::Object(row)) = row_mut(&mut envelope, *row) {
                    row.insert(field.clone(), value.clone());
                }
            }
            Mutation::ReplaceRow { row, value } => {
                if let Some(slot) = row_mut(&mut envelope, *row) {
                    *slot = value.clone();
                }
            }
            Mutation::DuplicateRow { row } => {
                if let Some(copy) = row_mut(&mut envelope, *row).map(|r| r.clone())
                    && let Some(Value::Array(rows)) = envelope.get_mut("values")
                {
                    rows.push(copy);
                }
            }
        }
    }
    Reply::Json(200, Value::Object(envelope))
}

/// `value` instead of a 200 JSON answer's body.
pub(crate) fn replace(reply: Reply, value: Value) -> Reply {
    match reply {
        Reply::Json(200, _) => Reply::Json(200, value),
        other => other,
    }
}

fn row_mut(envelope: &mut serde_json::Map<String, Value>, index: usize) -> Option<&mut Value> {
    match envelope.get_mut("values") {
        Some(Value::Array(rows)) if !rows.is_empty() => {
            let len = rows.len();
            rows.get_mut(index % len)
        }
        _ => None,
    }
}

/// A full page of fresh rows at every offset, always announcing more: paging that never ends.
pub(crate) fn endless(route: &Route, request: &Request) -> Reply {
    let param = |name: &str, default: u64| {
        request
            .param(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let (from, count) = (param("from", 0), param("count", 1000));
    let rows: Vec<Value> = (from..from + count)
        .map(|i| {
            let id = 1_000_000_000 + i;
            let number = 1 + i % 2_000_000_000;
            match route {
                Route::Invoices => {
                    json!({"id": id, "version": 0, "invoiceNumber": number, "invoiceDate": "2026-01-05"})
                }
                _ => json!({"id": id, "version": 0, "customerNumber": number, "isInactive": false}),
            }
        })
        .collect();
    Reply::Json(
        200,
        json!({
            "fullResultSize": from + 2 * count,
            "from": from,
            "count": rows.len(),
            "versionDigest": null,
            "values": rows,
        }),
    )
}

/// The answer for `from=0`, whatever `from` was asked, with the envelope's `from` echoing the
/// request and no `fullResultSize`: a server whose paging is broken but whose envelope looks right.
pub(crate) fn first_page_again(
    world: &mut World,
    route: &Route,
    request: &Request,
    now: Timestamp,
) -> Reply {
    let asked = request.param("from").map(str::to_owned);
    let first = Request {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request
            .query
            .iter()
            .filter(|(key, _)| key != "from")
            .cloned()
            .collect(),
        body: request.body.clone(),
        authorization: request.authorization.clone(),
        if_none_match: request.if_none_match.clone(),
    };
    let reply = api::handle(world, route, &first, now);
    let from = asked
        .and_then(|a| a.trim().parse::<u64>().ok())
        .unwrap_or(0);
    // `fullResultSize` would give the game away before the repeated rows do.
    mutate(
        reply,
        &[
            Mutation::SetKey("from".into(), json!(from)),
            Mutation::RemoveKey("fullResultSize".into()),
        ],
    )
}

/// A list answer of about `bytes` bytes, generated while it is sent, without a length up front;
/// gzip'd (as concatenated gzip members) when `gzip`, so `bytes` is then the decoded size.
pub(crate) struct HugeBody {
    /// Filler chunks left to send.
    left: u64,
    filler: Bytes,
    head: Option<Bytes>,
    tail: Option<Bytes>,
}

/// One filler chunk: 1 MiB of JSON whitespace.
const FILLER: usize = 1 << 20;

impl HugeBody {
    pub(crate) fn new(bytes: u64, gzip: bool) -> Self {
        let encode = |data: &[u8]| -> Bytes {
            if !gzip {
                return Bytes::copy_from_slice(data);
            }
            use std::io::Write as _;
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            // Writing into a Vec cannot fail.
            let _ = encoder.write_all(data);
            Bytes::from(encoder.finish().unwrap_or_default())
        };
        Self {
            left: bytes.div_ceil(FILLER as u64),
            filler: encode(&vec![b' '; FILLER]),
            head: Some(encode(br#"{"from":0,"count":0,"values":["#)),
            tail: Some(encode(b"]}")),
        }
    }
}

impl Body for HugeBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = if let Some(head) = self.head.take() {
            Some(head)
        } else if self.left > 0 {
            self.left -= 1;
            Some(self.filler.clone())
        } else {
            self.tail.take()
        };
        Poll::Ready(next.map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.left == 0 && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // No exact size: the answer goes out chunked, so only a running count can refuse it.
        SizeHint::default()
    }
}

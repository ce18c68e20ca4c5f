//! Keeps each shop's mirror of numbers in use current, cheaply.
//!
//! A full sync pages through every customer (active and inactive) and every invoice with
//! `count=1000` and `fields` cut to what the checks need. Later passes read customers
//! `changedSince` the previous pass's start (minus a margin) and the trailing invoice window with
//! `If-None-Match` on its `versionDigest`, so an idle pass costs two requests. A full resync every
//! `checks.full_resync` catches deletions, back-dated invoices and status changes. Invariants:
//! nothing is written to the batch unless every request of that kind succeeded and every answer
//! passed [`crate::tripletex::page`]'s checks, so a failed or malformed sync never leaves a
//! half-updated (or wiped) mirror; paging always ends: at a short page, at `fullResultSize`, with
//! an error at a page that repeats a row already read, and with an error past the page budget
//! `checks.max_records` allows one kind in one pass. Nothing reads as "no rows" unless Tripletex
//! said so: a 304 counts only as the answer to a digest it sent, and an empty first page whose
//! `fullResultSize` claims rows is an error.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::civil::Date;
use jiff::{Span, Timestamp};

use crate::clock::{oslo, oslo_date};
use crate::store::{Batch, CustomerEntry, InvoiceEntry, Store, StoreError, SyncCursor};
use crate::tripletex::model::{CustomerRow, InvoiceRow};
use crate::tripletex::page::Row;
use crate::tripletex::{Fetched, ShopClient, TripletexError};

pub const PAGE_SIZE: u32 = 1000;
/// `changedSince` reaches back this far before the previous pass's start: clocks differ.
const CHANGED_SINCE_MARGIN: Duration = Duration::from_secs(10 * 60);
/// Invoice dates no invoice precedes and none reaches.
const ALL_DATES: (Date, Date) = (Date::constant(1970, 1, 1), Date::constant(2100, 1, 1));
/// Any non-empty `If-None-Match` makes Tripletex compute a `versionDigest`.
const ASK_FOR_DIGEST: &str = "tripletex-sync";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Tripletex(#[from] TripletexError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    pub full_resync: Duration,
    pub invoice_window: Duration,
    /// Most records of one kind a pass reads (`checks.max_records`); sets the page budget.
    pub max_records: u64,
}

/// Pages one kind may fetch in one pass: enough for `max_records` rows, plus the short last page
/// of each of its (at most two) listings.
struct Budget {
    pages_left: u64,
    max_records: u64,
}

impl Budget {
    fn new(settings: &SyncSettings) -> Self {
        Self {
            pages_left: settings.max_records.div_ceil(u64::from(PAGE_SIZE)) + 2,
            max_records: settings.max_records,
        }
    }
}

/// Whether a kind last fully read at `last_full` must be re-read in full now.
pub fn full_due(last_full: Option<Timestamp>, settings: &SyncSettings, now: Timestamp) -> bool {
    match last_full {
        None => true,
        Some(at) => now.duration_since(at).unsigned_abs() >= settings.full_resync,
    }
}

/// Syncs customers (everything when `full`); returns every customer number in use afterwards.
pub async fn customers(
    client: &ShopClient,
    store: &Store,
    cursor: &mut SyncCursor,
    full: bool,
    settings: &SyncSettings,
    pass_start: Timestamp,
    batch: &mut Batch,
) -> Result<Vec<u32>, SyncError> {
    let shop = client.name();
    let budget = &mut Budget::new(settings);
    let mut mirror: HashMap<i64, CustomerEntry> = store.customers(shop)?.into_iter().collect();
    let fields = ("fields", "id,customerNumber,isInactive".to_owned());
    let since = cursor.customers_since.filter(|_| !full);
    let rows: Vec<CustomerRow> = match since {
        Some(since) => {
            let since = since
                .checked_sub(span(CHANGED_SINCE_MARGIN))
                .unwrap_or(since);
            let query = vec![("changedSince", oslo_local(since)), fields];
            fetch_all(client, "/customer", query, None, budget)
                .await?
                .into_rows()
        }
        None => {
            let active = vec![("isInactive", "false".to_owned()), fields.clone()];
            let inactive = vec![("isInactive", "true".to_owned()), fields];
            let mut rows = fetch_all(client, "/customer", active, None, budget)
                .await?
                .into_rows();
            rows.extend(
                fetch_all(client, "/customer", inactive, None, budget)
                    .await?
                    .into_rows(),
            );
            rows
        }
    };
    let fresh: HashMap<i64, CustomerEntry> = rows
        .into_iter()
        .map(|r| {
            (
                r.id,
                CustomerEntry {
                    number: r.customer_number,
                    inactive: r.is_inactive,
                },
            )
        })
        .collect();
    // The mirror is stored as one value per kind (see `store::mirror`): note whether anything
    // changed and rewrite it once, instead of one sled write per row.
    let mut changed = false;
    if since.is_none() {
        let before = mirror.len();
        mirror.retain(|id, _| fresh.contains_key(id));
        changed |= mirror.len() != before;
        cursor.customers_full = Some(pass_start);
    }
    for (id, entry) in fresh {
        changed |= mirror.insert(id, entry) != Some(entry);
    }
    if changed {
        batch.put_customers(shop, &mirror);
    }
    cursor.customers_since = Some(pass_start);
    Ok(mirror.values().map(|e| e.number).collect())
}

/// Syncs invoices (everything when `full`); returns every invoice number in use afterwards.
pub async fn invoices(
    client: &ShopClient,
    store: &Store,
    cursor: &mut SyncCursor,
    full: bool,
    settings: &SyncSettings,
    pass_start: Timestamp,
    batch: &mut Batch,
) -> Result<Vec<u32>, SyncError> {
    let shop = client.name();
    let budget = &mut Budget::new(settings);
    let mut mirror: HashMap<i64, InvoiceEntry> = store.invoices(shop)?.into_iter().collect();
    let window_from = oslo_date(pass_start)
        .checked_sub(span(settings.invoice_window))
        .unwrap_or(ALL_DATES.0)
        .max(ALL_DATES.0);

    // Older invoices are read only on a full sync; the window is read on every pass, unless its
    // digest says nothing changed.
    let older = if full {
        Some(
            fetch_all::<InvoiceRow>(
                client,
                "/invoice",
                dates(ALL_DATES.0, window_from),
                None,
                budget,
            )
            .await?
            .into_rows(),
        )
    } else {
        None
    };
    let known = cursor
        .invoice_digest
        .as_deref()
        .filter(|_| !full && cursor.invoice_window_from == Some(window_from));
    let window = fetch_all::<InvoiceRow>(
        client,
        "/invoice",
        dates(window_from, ALL_DATES.1),
        Some(known.unwrap_or(ASK_FOR_DIGEST)),
        budget,
    )
    .await?;

    if known.is_none() && matches!(window, Paged::NotModified) {
        // Our placeholder tag matches no digest Tripletex ever sent: a 304 to it is not an answer.
        return Err(SyncError::Tripletex(TripletexError::Malformed {
            path: "/invoice".to_owned(),
            reason: "Tripletex answered 304 Not Modified to an If-None-Match it never sent"
                .to_owned(),
        }));
    }
    let in_window = |e: &InvoiceEntry| e.date.is_none_or(|d| d >= window_from);
    // As for customers: one rewrite of the stored mirror if anything changed.
    let mut changed = false;
    let mut replace = |rows: Vec<InvoiceRow>, scope: &dyn Fn(&InvoiceEntry) -> bool| {
        let fresh: HashMap<i64, InvoiceEntry> = rows
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    InvoiceEntry {
                        number: r.invoice_number,
                        date: Some(r.invoice_date),
                    },
                )
            })
            .collect();
        let before = mirror.len();
        mirror.retain(|id, e| !scope(e) || fresh.contains_key(id));
        changed |= mirror.len() != before;
        for (id, entry) in fresh {
            changed |= mirror.insert(id, entry) != Some(entry);
        }
    };
    if let Some(older) = older {
        replace(older, &|e| !in_window(e));
        cursor.invoices_full = Some(pass_start);
    }
    if let Some((rows, digest)) = window.into_page() {
        replace(rows, &in_window);
        cursor.invoice_window_from = Some(window_from);
        cursor.invoice_digest = digest;
    }
    if changed {
        batch.put_invoices(shop, &mirror);
    }
    Ok(mirror.values().map(|e| e.number).collect())
}

/// Rows of every page, and the first page's `versionDigest`; `NotModified` on a 304.
async fn fetch_all<T: Row>(
    client: &ShopClient,
    path: &str,
    mut query: Vec<(&'static str, String)>,
    if_none_match: Option<&str>,
    budget: &mut Budget,
) -> Result<Paged<T>, SyncError> {
    let refuse = |reason: String| {
        SyncError::Tripletex(TripletexError::Paging {
            path: path.to_owned(),
            reason,
        })
    };
    query.push(("sorting", "id".to_owned()));
    query.push(("count", PAGE_SIZE.to_string()));
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    let mut digest = None;
    let mut from = 0u64;
    loop {
        if budget.pages_left == 0 {
            return Err(refuse(format!(
                "more than {} records in one pass (checks.max_records)",
                budget.max_records
            )));
        }
        budget.pages_left -= 1;
        let mut q = query.clone();
        q.push(("from", from.to_string()));
        let tag = if from == 0 { if_none_match } else { None };
        let page = match client.list::<T>(path, &q, tag).await? {
            Fetched::NotModified => return Ok(Paged::NotModified),
            Fetched::Page(page) => page,
        };
        if from == 0 {
            digest = page.version_digest;
        }
        // Sorted by id, no row can come twice: a repeat means the server ignores `from`.
        if let Some(again) = page.rows.iter().find(|r| !seen.insert(r.id())) {
            return Err(refuse(format!(
                "the page at from={from} repeats row id {} already read",
                again.id()
            )));
        }
        let n = page.rows.len() as u64;
        // `fullResultSize` is "not exact", but an empty list it says is not empty is no answer.
        if from == 0
            && n == 0
            && let Some(total) = page.full_result_size.filter(|t| *t > 0)
        {
            return Err(refuse(format!(
                "the first page has no rows although fullResultSize says {total}"
            )));
        }
        rows.extend(page.rows);
        from += n;
        // `fullResultSize` is "not exact": it ends paging only where it agrees with the rows.
        if n < u64::from(PAGE_SIZE) || page.full_result_size == Some(from) {
            return Ok(Paged::Rows(rows, digest));
        }
    }
}

enum Paged<T> {
    NotModified,
    Rows(Vec<T>, Option<String>),
}

impl<T> Paged<T> {
    fn into_page(self) -> Option<(Vec<T>, Option<String>)> {
        match self {
            Self::NotModified => None,
            Self::Rows(rows, digest) => Some((rows, digest)),
        }
    }

    /// For requests sent without `If-None-Match`, which cannot be answered with 304.
    fn into_rows(self) -> Vec<T> {
        self.into_page().map(|(r, _)| r).unwrap_or_default()
    }
}

fn dates(from: Date, to: Date) -> Vec<(&'static str, String)> {
    vec![
        ("invoiceDateFrom", from.to_string()),
        ("invoiceDateTo", to.to_string()),
        ("fields", "id,invoiceNumber,invoiceDate".to_owned()),
    ]
}

/// `changedSince` as Oslo local time, `YYYY-MM-DDTHH:MM:SS`: Tripletex is a Norwegian server.
/// When summer time ends, 02:00–03:00 happens twice; a wall time in that hour could be read as
/// its later occurrence, so step it back until every reading of it is at or before `at`.
fn oslo_local(at: Timestamp) -> String {
    let tz = oslo();
    let mut local = at.to_zoned_datetime(tz.clone()).datetime();
    while tz
        .to_ambiguous_timestamp(local)
        .later()
        .is_ok_and(|latest| latest > at)
    {
        local -= Span::new().hours(1);
    }
    local.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

fn span(d: Duration) -> Span {
    Span::new().seconds(d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_since_is_oslo_wall_time() {
        let winter: Timestamp = "2026-01-15T10:30:00Z".parse().unwrap();
        assert_eq!(oslo_local(winter), "2026-01-15T11:30:00");
        let summer: Timestamp = "2026-07-15T10:30:00Z".parse().unwrap();
        assert_eq!(oslo_local(summer), "2026-07-15T12:30:00");
    }

    #[test]
    fn changed_since_in_the_repeated_october_hour_reaches_back_an_hour() {
        // 2026-10-25: Oslo goes from 03:00 CEST back to 02:00 CET at 01:00Z.
        let first_0230: Timestamp = "2026-10-25T00:30:00Z".parse().unwrap(); // 02:30 CEST
        let second_0230: Timestamp = "2026-10-25T01:30:00Z".parse().unwrap(); // 02:30 CET
        // Read as 02:30 CET, "02:30" would skip the hour after the first 02:30: send 01:30.
        assert_eq!(oslo_local(first_0230), "2026-10-25T01:30:00");
        // The second 02:30 is the later reading already.
        assert_eq!(oslo_local(second_0230), "2026-10-25T02:30:00");
        // Around the change nothing moves.
        let after: Timestamp = "2026-10-25T02:30:00Z".parse().unwrap(); // 03:30 CET
        assert_eq!(oslo_local(after), "2026-10-25T03:30:00");
    }
}

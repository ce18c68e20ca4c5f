//! The mirror: per shop, every customer and invoice number in use, keyed by Tripletex id.
//!
//! Keyed by id (not number) so that a number used twice shows up as two entries. Each shop's
//! customers and invoices are one value each (100 000 entries per shop stay one small read and
//! one write, not 100 000 sled operations): fixed-width records sorted by id, customers `id i64 BE,
//! number u32 BE, inactive u8`; invoices `id i64 BE, number u32 BE, date as i32 BE days since
//! 1970-01-01 (i32::MIN = none)`. A sync replaces a kind's whole value, and only when it changed.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::{Batch, Store, StoreError, decode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerEntry {
    pub number: u32,
    pub inactive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoiceEntry {
    pub number: u32,
    pub date: Option<Date>,
}

/// Where incremental sync continues from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncCursor {
    /// Starts of the last full resync, per kind (one kind's failure must not skip the other's).
    pub customers_full: Option<jiff::Timestamp>,
    pub invoices_full: Option<jiff::Timestamp>,
    /// Start of the last pass that read customers; the next asks for `changedSince` before it.
    pub customers_since: Option<jiff::Timestamp>,
    /// The trailing invoice window last read, and the `versionDigest` of its first page.
    pub invoice_window_from: Option<Date>,
    pub invoice_digest: Option<String>,
}

const EPOCH: Date = Date::constant(1970, 1, 1);
const CUSTOMER_WIDTH: usize = 13;
const INVOICE_WIDTH: usize = 16;

// Before schema 2 a release stored one key per entry under `mirror/{shop}/customers/` (and
// `invoices/`); the migration to schema 2 removes them (see `schema`).
fn customers_key(shop: &str) -> String {
    format!("mirror/{shop}/customers")
}

fn invoices_key(shop: &str) -> String {
    format!("mirror/{shop}/invoices")
}

/// A key of the layout before schema 2: `mirror/{shop}/customers/` or `.../invoices/`, then the
/// id as 8 bytes (which may contain `/`; shop names cannot).
pub(super) fn is_per_entry_key(key: &[u8]) -> bool {
    let Some(rest) = key.strip_prefix(b"mirror/") else {
        return false;
    };
    let Some(slash) = rest.iter().position(|&b| b == b'/') else {
        return false;
    };
    let tail = &rest[slash + 1..];
    [&b"customers/"[..], b"invoices/"]
        .iter()
        .any(|kind| tail.strip_prefix(*kind).is_some_and(|id| id.len() == 8))
}

impl Store {
    pub fn customers(&self, shop: &str) -> Result<Vec<(i64, CustomerEntry)>, StoreError> {
        let value = self
            .db
            .get(customers_key(shop).as_bytes())
            .map_err(self.sled())?;
        Ok(match value {
            Some(v) => v
                .chunks_exact(CUSTOMER_WIDTH)
                .filter_map(decode_customer)
                .collect(),
            None => Vec::new(),
        })
    }

    pub fn invoices(&self, shop: &str) -> Result<Vec<(i64, InvoiceEntry)>, StoreError> {
        let value = self
            .db
            .get(invoices_key(shop).as_bytes())
            .map_err(self.sled())?;
        Ok(match value {
            Some(v) => v
                .chunks_exact(INVOICE_WIDTH)
                .filter_map(decode_invoice)
                .collect(),
            None => Vec::new(),
        })
    }

    pub fn cursor(&self, shop: &str) -> Result<SyncCursor, StoreError> {
        let key = format!("cursor/{shop}");
        Ok(match self.db.get(key.as_bytes()).map_err(self.sled())? {
            // Without a cursor the next sync is a full one: slower, never wrong.
            Some(v) => decode(key.as_bytes(), &v).unwrap_or_else(|e| {
                super::skip_corrupt(&e);
                SyncCursor::default()
            }),
            None => SyncCursor::default(),
        })
    }
}

impl Batch {
    /// Replaces the shop's whole customer mirror with `entries` (any order).
    pub fn put_customers<'a>(
        &mut self,
        shop: &str,
        entries: impl IntoIterator<Item = (&'a i64, &'a CustomerEntry)>,
    ) {
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort_unstable_by_key(|(id, _)| **id);
        let mut v = Vec::with_capacity(entries.len() * CUSTOMER_WIDTH);
        for (id, entry) in entries {
            v.extend_from_slice(&id.to_be_bytes());
            v.extend_from_slice(&entry.number.to_be_bytes());
            v.push(u8::from(entry.inactive));
        }
        self.inner.insert(customers_key(shop).into_bytes(), v);
    }

    /// Replaces the shop's whole invoice mirror with `entries` (any order).
    pub fn put_invoices<'a>(
        &mut self,
        shop: &str,
        entries: impl IntoIterator<Item = (&'a i64, &'a InvoiceEntry)>,
    ) {
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort_unstable_by_key(|(id, _)| **id);
        let mut v = Vec::with_capacity(entries.len() * INVOICE_WIDTH);
        for (id, entry) in entries {
            let days = entry
                .date
                .and_then(|d| EPOCH.until(d).ok())
                .map_or(i32::MIN, |s| s.get_days());
            v.extend_from_slice(&id.to_be_bytes());
            v.extend_from_slice(&entry.number.to_be_bytes());
            v.extend_from_slice(&days.to_be_bytes());
        }
        self.inner.insert(invoices_key(shop).into_bytes(), v);
    }

    pub fn put_cursor(&mut self, shop: &str, cursor: &SyncCursor) {
        self.put_json(format!("cursor/{shop}").into_bytes(), cursor);
    }
}

fn decode_customer(v: &[u8]) -> Option<(i64, CustomerEntry)> {
    let id = i64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let number = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?);
    Some((
        id,
        CustomerEntry {
            number,
            inactive: *v.get(12)? != 0,
        },
    ))
}

fn decode_invoice(v: &[u8]) -> Option<(i64, InvoiceEntry)> {
    let id = i64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let number = u32::from_be_bytes(v.get(8..12)?.try_into().ok()?);
    let days = i32::from_be_bytes(v.get(12..16)?.try_into().ok()?);
    let date = (days != i32::MIN)
        .then(|| {
            EPOCH
                .checked_add(jiff::Span::new().days(i64::from(days)))
                .ok()
        })
        .flatten();
    Some((id, InvoiceEntry { number, date }))
}

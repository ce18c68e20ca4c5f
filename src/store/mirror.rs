//! The mirror: per shop, every customer and invoice number in use, keyed by Tripletex id.
//!
//! Keyed by id (not number) so that a number used twice shows up as two entries. Values are
//! fixed-width bytes (100 000 entries per shop stay small): customers `number u32 BE, inactive u8`;
//! invoices `number u32 BE, date as i32 BE days since 1970-01-01 (i32::MIN = none)`.

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

fn customer_prefix(shop: &str) -> String {
    format!("mirror/{shop}/customers/")
}

fn invoice_prefix(shop: &str) -> String {
    format!("mirror/{shop}/invoices/")
}

fn key(prefix: &str, id: i64) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn id_of(prefix: &str, key: &[u8]) -> Option<i64> {
    let tail: [u8; 8] = key.get(prefix.len()..)?.try_into().ok()?;
    Some(i64::from_be_bytes(tail))
}

impl Store {
    pub fn customers(&self, shop: &str) -> Result<Vec<(i64, CustomerEntry)>, StoreError> {
        let prefix = customer_prefix(shop);
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(prefix.as_bytes()) {
            let (k, v) = kv?;
            if let (Some(id), Some(entry)) = (id_of(&prefix, &k), decode_customer(&v)) {
                out.push((id, entry));
            }
        }
        Ok(out)
    }

    pub fn invoices(&self, shop: &str) -> Result<Vec<(i64, InvoiceEntry)>, StoreError> {
        let prefix = invoice_prefix(shop);
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(prefix.as_bytes()) {
            let (k, v) = kv?;
            if let (Some(id), Some(entry)) = (id_of(&prefix, &k), decode_invoice(&v)) {
                out.push((id, entry));
            }
        }
        Ok(out)
    }

    pub fn cursor(&self, shop: &str) -> Result<SyncCursor, StoreError> {
        let key = format!("cursor/{shop}");
        Ok(match self.db.get(key.as_bytes())? {
            Some(v) => decode(key.as_bytes(), &v)?,
            None => SyncCursor::default(),
        })
    }
}

impl Batch {
    pub fn put_customer(&mut self, shop: &str, id: i64, entry: CustomerEntry) {
        let mut v = entry.number.to_be_bytes().to_vec();
        v.push(u8::from(entry.inactive));
        self.inner.insert(key(&customer_prefix(shop), id), v);
    }

    pub fn remove_customer(&mut self, shop: &str, id: i64) {
        self.inner.remove(key(&customer_prefix(shop), id));
    }

    pub fn put_invoice(&mut self, shop: &str, id: i64, entry: InvoiceEntry) {
        let days = entry
            .date
            .and_then(|d| EPOCH.until(d).ok())
            .map_or(i32::MIN, |s| s.get_days());
        let mut v = entry.number.to_be_bytes().to_vec();
        v.extend_from_slice(&days.to_be_bytes());
        self.inner.insert(key(&invoice_prefix(shop), id), v);
    }

    pub fn remove_invoice(&mut self, shop: &str, id: i64) {
        self.inner.remove(key(&invoice_prefix(shop), id));
    }

    pub fn put_cursor(&mut self, shop: &str, cursor: &SyncCursor) {
        self.put_json(format!("cursor/{shop}").into_bytes(), cursor);
    }
}

fn decode_customer(v: &[u8]) -> Option<CustomerEntry> {
    let number = u32::from_be_bytes(v.get(..4)?.try_into().ok()?);
    Some(CustomerEntry {
        number,
        inactive: *v.get(4)? != 0,
    })
}

fn decode_invoice(v: &[u8]) -> Option<InvoiceEntry> {
    let number = u32::from_be_bytes(v.get(..4)?.try_into().ok()?);
    let days = i32::from_be_bytes(v.get(4..8)?.try_into().ok()?);
    let date = (days != i32::MIN)
        .then(|| {
            EPOCH
                .checked_add(jiff::Span::new().days(i64::from(days)))
                .ok()
        })
        .flatten();
    Some(InvoiceEntry { number, date })
}

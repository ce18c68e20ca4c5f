//! Keeps each shop's mirror of numbers in use current, cheaply, for every check kind alike.
//!
//! A full sync pages through every record of a kind with `count=1000` and `fields` cut to what the
//! checks need (the kind's spec says which listings cover everything: customers active and
//! inactive, invoices by date). Between full syncs a pass reads what its kind's `Reads` allows:
//! customers `changedSince` the previous pass's start (minus a margin), the trailing invoice
//! window with `If-None-Match` on its `versionDigest`, so an idle pass costs one request per kind.
//! A full resync every `checks.full_resync` catches deletions, back-dated invoices and status
//! changes. Invariants: nothing is written to the batch or the cursor unless every request of
//! that kind succeeded and every answer passed [`crate::tripletex::page`]'s checks, so a failed or
//! malformed sync never leaves a half-updated (or wiped) mirror; paging always ends: at a short
//! page, at `fullResultSize`, with an error at a page that repeats a row already read, and with an
//! error past the page budget `checks.max_records` allows one kind in one pass. Nothing reads as
//! "no rows" unless Tripletex said so: a 304 counts only as the answer to a digest it sent, and an
//! empty first page whose `fullResultSize` claims rows is an error.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::civil::Date;
use jiff::{Span, Timestamp};

use crate::checks::kinds::{Entry, Reads};
use crate::checks::{CheckKind, KindSpec};
use crate::clock::{oslo, oslo_date, span};
use crate::store::{Batch, KindCursor, Store, StoreError, SyncCursor};
use crate::tripletex::model::Record;
use crate::tripletex::{Fetched, ShopClient, TripletexError};

pub const PAGE_SIZE: u32 = 1000;
/// `changedSince` reaches back this far before the previous pass's start: clocks differ.
const CHANGED_SINCE_MARGIN: Duration = Duration::from_secs(10 * 60);
/// Dates no dated record precedes and none reaches.
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
    /// The trailing date window a [`Reads::DateWindow`] kind re-reads every pass
    /// (`checks.invoice_window`).
    pub invoice_window: Duration,
    /// Most records of one kind a pass reads (`checks.max_records`); sets the page budget.
    pub max_records: u64,
}

/// Pages one kind may fetch in one pass: enough for `max_records` rows, plus the short last page
/// of each of its listings (a full read of a [`Reads::ChangedSince`] kind makes one per filter, a
/// [`Reads::DateWindow`] kind at most two).
struct Budget {
    pages_left: u64,
    max_records: u64,
}

impl Budget {
    fn new(settings: &SyncSettings, spec: &KindSpec) -> Self {
        let listings = match spec.list.reads {
            Reads::ChangedSince { full } => full.len().max(1) as u64,
            Reads::DateWindow { .. } => 2,
        };
        Self {
            pages_left: settings.max_records.div_ceil(u64::from(PAGE_SIZE)) + listings,
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

/// What one kind's sync in a pass is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub kind: CheckKind,
    /// Read everything, not just what changed.
    pub full: bool,
    pub pass_start: Timestamp,
}

/// Syncs the mirror of `job.kind`; returns every number of that kind in use afterwards.
pub async fn run(
    client: &ShopClient,
    store: &Store,
    job: Job,
    settings: &SyncSettings,
    cursor: &mut SyncCursor,
    batch: &mut Batch,
) -> Result<Vec<u32>, SyncError> {
    let shop = client.name();
    let spec = job.kind.spec();
    let kind_cursor = cursor.of_mut(job.kind);
    let (mut mirror, job, corrupt): (HashMap<i64, Entry>, Job, bool) =
        match store.mirror(shop, job.kind) {
            Ok(entries) => (entries.into_iter().collect(), job, false),
            // Broken records: forget where the last sync ended (digests, windows) and read
            // everything, so nothing of the lost tail stays missing.
            Err(StoreError::MirrorMalformed { .. }) => {
                *kind_cursor = KindCursor::default();
                (HashMap::new(), Job { full: true, ..job }, true)
            }
            Err(e) => return Err(e.into()),
        };
    let cursor = kind_cursor;
    let mut read = Reader {
        client,
        spec,
        budget: Budget::new(settings, spec),
        job,
    };
    // The mirror is stored as one value per kind (see `store::mirror`): the readers say whether
    // anything changed, so it is rewritten once, instead of one sled write per row.
    let changed = match spec.list.reads {
        Reads::ChangedSince { full } => read.changed_since(full, &mut mirror, cursor).await?,
        Reads::DateWindow { from, to } => {
            let window = settings.invoice_window;
            read.date_window((from, to), window, &mut mirror, cursor)
                .await?
        }
    };
    if changed || corrupt {
        batch.put_mirror(shop, job.kind, &mirror);
    }
    Ok(mirror.values().filter_map(|e| e.number).collect())
}

/// Reads one kind's records for one pass.
struct Reader<'a> {
    client: &'a ShopClient,
    spec: &'static KindSpec,
    budget: Budget,
    job: Job,
}

impl Reader<'_> {
    /// [`Reads::ChangedSince`]: every listing of `filters` on a full read, else what changed.
    async fn changed_since(
        &mut self,
        filters: &[&[(&'static str, &'static str)]],
        mirror: &mut HashMap<i64, Entry>,
        cursor: &mut KindCursor,
    ) -> Result<bool, SyncError> {
        let fields = ("fields", self.spec.list.fields.to_owned());
        let since = cursor.since.filter(|_| !self.job.full);
        let rows = match since {
            Some(since) => {
                let since = since
                    .checked_sub(span(CHANGED_SINCE_MARGIN))
                    .unwrap_or(since);
                let query = vec![("changedSince", oslo_local(since)), fields];
                self.fetch_all(query, None).await?.into_rows()
            }
            None => {
                let mut rows = Vec::new();
                for filter in filters {
                    let mut query: Vec<_> =
                        filter.iter().map(|&(k, v)| (k, v.to_owned())).collect();
                    query.push(fields.clone());
                    rows.extend(self.fetch_all(query, None).await?.into_rows());
                }
                rows
            }
        };
        // A full read replaces every record; changes only add or update.
        let changed = merge(mirror, rows, |_| since.is_none());
        if since.is_none() {
            cursor.full = Some(self.job.pass_start);
        }
        cursor.since = Some(self.job.pass_start);
        Ok(changed)
    }

    /// [`Reads::DateWindow`]: older dates only on a full read; the trailing `window` every pass,
    /// unless its digest says nothing changed.
    async fn date_window(
        &mut self,
        (from, to): (&'static str, &'static str),
        window: Duration,
        mirror: &mut HashMap<i64, Entry>,
        cursor: &mut KindCursor,
    ) -> Result<bool, SyncError> {
        let window_from = oslo_date(self.job.pass_start)
            .checked_sub(span(window))
            .unwrap_or(ALL_DATES.0)
            .max(ALL_DATES.0);
        let fields = self.spec.list.fields;
        let dates = |first: Date, last: Date| {
            vec![
                (from, first.to_string()),
                (to, last.to_string()),
                ("fields", fields.to_owned()),
            ]
        };
        let older = if self.job.full {
            let query = dates(ALL_DATES.0, window_from);
            Some(self.fetch_all(query, None).await?.into_rows())
        } else {
            None
        };
        let known = cursor
            .digest
            .as_deref()
            .filter(|_| !self.job.full && cursor.window_from == Some(window_from));
        let recent = self
            .fetch_all(
                dates(window_from, ALL_DATES.1),
                Some(known.unwrap_or(ASK_FOR_DIGEST)),
            )
            .await?;
        if known.is_none() && matches!(recent, Paged::NotModified) {
            // Our placeholder tag matches no digest Tripletex ever sent: a 304 to it is not an answer.
            return Err(SyncError::Tripletex(TripletexError::Malformed {
                path: self.spec.list.path.to_owned(),
                reason: "Tripletex answered 304 Not Modified to an If-None-Match it never sent"
                    .to_owned(),
            }));
        }

        let in_window = |e: &Entry| e.date().is_none_or(|d| d >= window_from);
        let mut changed = false;
        if let Some(older) = older {
            changed |= merge(mirror, older, |e| !in_window(e));
            cursor.full = Some(self.job.pass_start);
        }
        if let Some((rows, digest)) = recent.into_page() {
            changed |= merge(mirror, rows, in_window);
            cursor.window_from = Some(window_from);
            cursor.digest = digest;
        }
        Ok(changed)
    }

    /// [`fetch_all`] of this kind within this pass's budget.
    async fn fetch_all(
        &mut self,
        query: Vec<(&'static str, String)>,
        if_none_match: Option<&str>,
    ) -> Result<Paged, SyncError> {
        fetch_all(
            self.client,
            self.spec,
            query,
            if_none_match,
            &mut self.budget,
        )
        .await
    }
}

/// Replaces the mirror's records that `scope` covers with `rows`; whether anything changed.
fn merge(
    mirror: &mut HashMap<i64, Entry>,
    rows: Vec<Record>,
    scope: impl Fn(&Entry) -> bool,
) -> bool {
    let fresh: HashMap<i64, Entry> = rows.into_iter().map(|r| (r.id, r.entry)).collect();
    let before = mirror.len();
    mirror.retain(|id, e| !scope(e) || fresh.contains_key(id));
    let mut changed = mirror.len() != before;
    for (id, entry) in fresh {
        changed |= mirror.insert(id, entry) != Some(entry);
    }
    changed
}

/// Rows of every page, and the first page's `versionDigest`; `NotModified` on a 304.
async fn fetch_all(
    client: &ShopClient,
    kind: &KindSpec,
    mut query: Vec<(&'static str, String)>,
    if_none_match: Option<&str>,
    budget: &mut Budget,
) -> Result<Paged, SyncError> {
    let path = kind.list.path;
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
        let page = match client.list(kind, &q, tag).await? {
            Fetched::NotModified => return Ok(Paged::NotModified),
            Fetched::Page(page) => page,
        };
        if from == 0 {
            digest = page.version_digest;
        }
        // Sorted by id, no row can come twice: a repeat means the server ignores `from`.
        if let Some(again) = page.rows.iter().find(|r| !seen.insert(r.id)) {
            return Err(refuse(format!(
                "the page at from={from} repeats row id {} already read",
                again.id
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

enum Paged {
    NotModified,
    Rows(Vec<Record>, Option<String>),
}

impl Paged {
    fn into_page(self) -> Option<(Vec<Record>, Option<String>)> {
        match self {
            Self::NotModified => None,
            Self::Rows(rows, digest) => Some((rows, digest)),
        }
    }

    /// For requests sent without `If-None-Match`, which cannot be answered with 304.
    fn into_rows(self) -> Vec<Record> {
        self.into_page().map(|(r, _)| r).unwrap_or_default()
    }
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

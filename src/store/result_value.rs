//! How a check's latest result is laid out in its one sled value (schema 10): ~200 bytes where
//! the lean JSON of schemas 7 to 9 took ~430 (field names, two RFC 3339 times, the evidence's
//! numbers as text), read on every pass and by every `status`.
//!
//! A tag byte [`PACKED`]; the verdict (a byte: 0 ok, 1 warn, 2 conflict, 3 error, 4 unknown); a
//! varint saying which fields follow (the bits below); the check's time and the verdict's `since`
//! (times, see `packed`); the summary (its length, a varint, and its UTF-8 bytes); the count of
//! numbers in use (a varint); then the fields the bits name, in bit order. A run is its first
//! number, its last less its first and its count (varints); a list of runs or numbers is its
//! length and its items, duplicates each as the difference from the one before (they ascend);
//! growth is an `f64`'s eight little-endian bytes. The kind is not stored: it is the key's.
//!
//! Invariants: a result reads back exactly what was written; a verdict this build does not know
//! reads as `unknown` (never `ok`, as in JSON); fields of bits this build does not know (a newer
//! release's, after its known ones) are left unread, so a newer record reads; a value cut short,
//! or with bytes after its known fields and no unknown bit, is [`Malformed`], never a shorter
//! result.

use super::packed::{
    Malformed, put_date, put_signed, put_text, put_time, put_varint, take_count, take_date,
    take_signed, take_text, take_time, take_varint,
};
use crate::checks::{CheckKind, CheckOutcome, Evidence, Run, Verdict};
use crate::store::ResultRecord;

/// The first byte of a packed result; a JSON one (schemas 1 to 9) starts with `{`.
pub(super) const PACKED: u8 = 0xAA;

const PASS_FAILED: u64 = 1;
const FIX: u64 = 1 << 1;
const SHOP_RUN: u64 = 1 << 2;
const FOREIGN_RUNS: u64 = 1 << 3;
const BELOW_SHOP_START: u64 = 1 << 4;
const DUPLICATES: u64 = 1 << 5;
const TRIPLETEX_RUN: u64 = 1 << 6;
const HEADROOM: u64 = 1 << 7;
const FORECAST: u64 = 1 << 8;
const GROWTH: u64 = 1 << 9;
/// Every bit this build writes and reads.
const KNOWN: u64 = (1 << 10) - 1;

const VERDICTS: [Verdict; 5] = [
    Verdict::Ok,
    Verdict::Warn,
    Verdict::Conflict,
    Verdict::Error,
    Verdict::Unknown,
];

/// The packed value of `record`.
pub(super) fn pack(record: &ResultRecord) -> Vec<u8> {
    let (outcome, e) = (&record.outcome, &record.outcome.evidence);
    let mut fields = 0;
    let mut set = |bit, on: bool| {
        if on {
            fields |= bit;
        }
    };
    set(PASS_FAILED, record.pass_failed);
    set(FIX, outcome.fix.is_some());
    set(SHOP_RUN, e.shop_run.is_some());
    set(FOREIGN_RUNS, !e.foreign_runs_in_shop_range.is_empty());
    set(BELOW_SHOP_START, e.below_shop_start.is_some());
    set(DUPLICATES, !e.duplicates.is_empty());
    set(TRIPLETEX_RUN, e.tripletex_run.is_some());
    set(HEADROOM, e.headroom.is_some());
    set(FORECAST, e.forecast_exhausted_on.is_some());
    set(GROWTH, e.growth_per_day.is_some());

    let mut out = Vec::with_capacity(64 + outcome.summary.len());
    out.push(PACKED);
    let verdict = VERDICTS.iter().position(|v| *v == outcome.verdict);
    out.push(verdict.expect("every verdict is listed") as u8);
    put_varint(&mut out, fields);
    put_time(&mut out, record.checked_at);
    put_time(&mut out, record.since);
    put_text(&mut out, &outcome.summary);
    put_varint(&mut out, u64::from(e.numbers_in_use));
    if let Some(fix) = &outcome.fix {
        put_text(&mut out, fix);
    }
    e.shop_run.iter().for_each(|r| put_run(&mut out, r));
    if !e.foreign_runs_in_shop_range.is_empty() {
        put_varint(&mut out, e.foreign_runs_in_shop_range.len() as u64);
        e.foreign_runs_in_shop_range
            .iter()
            .for_each(|r| put_run(&mut out, r));
    }
    e.below_shop_start.iter().for_each(|r| put_run(&mut out, r));
    if !e.duplicates.is_empty() {
        put_varint(&mut out, e.duplicates.len() as u64);
        let mut before = 0i64;
        for &n in &e.duplicates {
            put_signed(&mut out, i64::from(n) - before);
            before = i64::from(n);
        }
    }
    e.tripletex_run.iter().for_each(|r| put_run(&mut out, r));
    if let Some(headroom) = e.headroom {
        put_varint(&mut out, u64::from(headroom));
    }
    if let Some(date) = e.forecast_exhausted_on {
        put_date(&mut out, date);
    }
    if let Some(growth) = e.growth_per_day {
        out.extend(growth.to_le_bytes());
    }
    out
}

/// The result of `kind` stored packed as `value`.
pub(super) fn unpack(value: &[u8], kind: CheckKind) -> Result<ResultRecord, Malformed> {
    let Some((&PACKED, rest)) = value.split_first() else {
        return Err(Malformed::NotPacked);
    };
    let (&verdict, mut rest) = rest.split_first().ok_or(Malformed::EndsEarly)?;
    let verdict = VERDICTS
        .get(usize::from(verdict))
        .copied()
        .unwrap_or(Verdict::Unknown);
    let r = &mut rest;
    let fields = take_varint(r).ok_or(Malformed::EndsEarly)?;
    let has = |bit| fields & bit != 0;
    let checked_at = take_time(r)?;
    let since = take_time(r)?;
    let summary = take_text(r)?;
    let mut e = Evidence {
        numbers_in_use: take_u32(r)?,
        ..Evidence::default()
    };
    let fix = has(FIX).then(|| take_text(r)).transpose()?;
    e.shop_run = has(SHOP_RUN).then(|| take_run(r)).transpose()?;
    if has(FOREIGN_RUNS) {
        let count = take_count(r)?;
        e.foreign_runs_in_shop_range = (0..count).map(|_| take_run(r)).collect::<Result<_, _>>()?;
    }
    e.below_shop_start = has(BELOW_SHOP_START).then(|| take_run(r)).transpose()?;
    if has(DUPLICATES) {
        let count = take_count(r)?;
        let mut before = 0i64;
        for _ in 0..count {
            let step = take_signed(r).ok_or(Malformed::EndsEarly)?;
            before = before.checked_add(step).ok_or(Malformed::OutOfRange)?;
            let n = u32::try_from(before).map_err(|_| Malformed::OutOfRange)?;
            e.duplicates.push(n);
        }
    }
    e.tripletex_run = has(TRIPLETEX_RUN).then(|| take_run(r)).transpose()?;
    e.headroom = has(HEADROOM).then(|| take_u32(r)).transpose()?;
    e.forecast_exhausted_on = has(FORECAST).then(|| take_date(r)).transpose()?;
    if has(GROWTH) {
        let (bytes, after) = r.split_first_chunk::<8>().ok_or(Malformed::EndsEarly)?;
        e.growth_per_day = Some(f64::from_le_bytes(*bytes));
        *r = after;
    }
    if fields & !KNOWN == 0 && !r.is_empty() {
        return Err(Malformed::Trailing);
    }
    Ok(ResultRecord {
        outcome: CheckOutcome {
            kind,
            verdict,
            summary,
            fix,
            evidence: e,
        },
        checked_at,
        since,
        pass_failed: has(PASS_FAILED),
    })
}

fn put_run(out: &mut Vec<u8>, run: &Run) {
    put_varint(out, u64::from(run.first));
    put_signed(out, i64::from(run.last) - i64::from(run.first));
    put_varint(out, u64::from(run.count));
}

fn take_run(rest: &mut &[u8]) -> Result<Run, Malformed> {
    let first = take_u32(rest)?;
    let span = take_signed(rest).ok_or(Malformed::EndsEarly)?;
    let last = i64::from(first)
        .checked_add(span)
        .ok_or(Malformed::OutOfRange)?;
    let last = u32::try_from(last).map_err(|_| Malformed::OutOfRange)?;
    let count = take_u32(rest)?;
    Ok(Run { first, last, count })
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, Malformed> {
    let n = take_varint(rest).ok_or(Malformed::EndsEarly)?;
    u32::try_from(n).map_err(|_| Malformed::OutOfRange)
}

#[cfg(test)]
#[path = "result_value_tests.rs"]
mod tests;

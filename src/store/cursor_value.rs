//! How a shop's sync cursor is laid out in its one sled value (schema 9), the one record an idle
//! pass writes: ~90 bytes where the JSON of schemas 6 to 8 took ~340 (five RFC 3339 times and
//! their field names), and no JSON to encode or decode on every pass.
//!
//! A tag byte [`PACKED`], then per kind whose cursor holds anything: the kind's name (its mirror's,
//! as in the key layout: a length byte and the bytes), the length of the rest of its block as a
//! varint, a byte saying which fields follow (bit 0 `full`, 1 `since`, 2 `window_from`, 3
//! `digest`, 4 `checked`), and those fields in that order: a time as its zigzag-coded seconds
//! since 1970 and its nanoseconds (both varints), a date as its zigzag-coded year, month and day,
//! a digest as its length (varint) and its bytes.
//!
//! Invariants: a cursor reads back exactly (to the nanosecond) what was written; a kind this
//! build does not know, and fields of bits it does not know (a newer release's, after its known
//! ones), are skipped by the block's length, so a newer record reads; a value cut inside a kind's
//! block is [`Malformed`], never a shorter cursor. (Cut between two blocks, it reads as a cursor
//! without the later kinds, whose next sync is then a full one: slower, never wrong. sled writes
//! a value whole, so neither happens short of a damaged file.)

use super::mirror::{KindCursor, SyncCursor};
use super::packed::{Malformed, put_date, put_time, put_varint, take_date, take_time, take_varint};
use crate::checks::CheckKind;

/// The first byte of a packed cursor; a JSON cursor (schemas 6 to 8) starts with `{`.
pub(super) const PACKED: u8 = 0xA9;

const FULL: u8 = 1;
const SINCE: u8 = 1 << 1;
const WINDOW_FROM: u8 = 1 << 2;
const DIGEST: u8 = 1 << 3;
const CHECKED: u8 = 1 << 4;

/// The packed value of `cursor`.
pub(super) fn pack(cursor: &SyncCursor) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(PACKED);
    let mut block = Vec::with_capacity(64);
    for kind in CheckKind::ALL {
        let c = cursor.of(kind);
        block.clear();
        let mut fields = 0;
        for (bit, time) in [(FULL, c.full), (SINCE, c.since)] {
            if let Some(time) = time {
                fields |= bit;
                put_time(&mut block, time);
            }
        }
        if let Some(date) = c.window_from {
            fields |= WINDOW_FROM;
            put_date(&mut block, date);
        }
        if let Some(digest) = &c.digest {
            fields |= DIGEST;
            put_varint(&mut block, digest.len() as u64);
            block.extend_from_slice(digest.as_bytes());
        }
        if let Some(time) = c.checked {
            fields |= CHECKED;
            put_time(&mut block, time);
        }
        if fields == 0 {
            continue;
        }
        let name = kind.spec().mirror.as_bytes();
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        put_varint(&mut out, block.len() as u64 + 1);
        out.push(fields);
        out.extend_from_slice(&block);
    }
    out
}

/// The cursor of a stored packed value.
pub(super) fn unpack(value: &[u8]) -> Result<SyncCursor, Malformed> {
    let Some((&PACKED, mut rest)) = value.split_first() else {
        return Err(Malformed::NotPacked);
    };
    let truncated = Malformed::EndsEarly;
    let mut cursor = SyncCursor::default();
    while let Some((&name_len, after)) = rest.split_first() {
        let name = after.get(..usize::from(name_len)).ok_or(truncated)?;
        rest = &after[name.len()..];
        let len = take_varint(&mut rest).ok_or(truncated)?;
        let len = usize::try_from(len).map_err(|_| truncated)?;
        let block = rest.get(..len).ok_or(truncated)?;
        rest = &rest[len..];
        let kind = CheckKind::ALL
            .into_iter()
            .find(|k| k.spec().mirror.as_bytes() == name);
        if let Some(kind) = kind {
            *cursor.of_mut(kind) = unpack_kind(block)?;
        }
    }
    Ok(cursor)
}

/// One kind's block: the field byte and the fields it names (bits it does not know, last, are
/// left unread).
fn unpack_kind(block: &[u8]) -> Result<KindCursor, Malformed> {
    let truncated = Malformed::EndsEarly;
    let (&fields, mut rest) = block.split_first().ok_or(truncated)?;
    let mut c = KindCursor::default();
    let has = |bit| fields & bit != 0;
    if has(FULL) {
        c.full = Some(take_time(&mut rest)?);
    }
    if has(SINCE) {
        c.since = Some(take_time(&mut rest)?);
    }
    if has(WINDOW_FROM) {
        c.window_from = Some(take_date(&mut rest)?);
    }
    if has(DIGEST) {
        let len = take_varint(&mut rest).ok_or(truncated)?;
        let len = usize::try_from(len).map_err(|_| truncated)?;
        let digest = rest.get(..len).ok_or(truncated)?;
        rest = &rest[len..];
        let digest = std::str::from_utf8(digest).map_err(|_| Malformed::OutOfRange)?;
        c.digest = Some(digest.to_owned());
    }
    if has(CHECKED) {
        c.checked = Some(take_time(&mut rest)?);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use jiff::civil::Date;

    use super::*;

    fn full_cursor() -> SyncCursor {
        let at = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        let mut cursor = SyncCursor::default();
        let customers = cursor.of_mut(CheckKind::CustomerNumbers);
        customers.full = at("2026-12-06T20:42:33.729123726Z");
        customers.since = at("2026-12-06T20:42:39.444485353Z");
        customers.checked = at("2026-12-06T20:42:39.444485353Z");
        let invoices = cursor.of_mut(CheckKind::InvoiceNumbers);
        invoices.full = at("1969-12-31T23:59:59.5Z");
        invoices.window_from = Some(Date::new(2026, 10, 5).unwrap());
        invoices.digest = Some("b3ba1ff53ed206c5".into());
        invoices.checked = at("2026-12-06T20:42:39Z");
        cursor
    }

    /// A shop's cursor packs in under 100 bytes (the JSON took ~340) and reads back to the
    /// nanosecond; an empty one is the tag alone.
    #[test]
    fn a_cursor_packs_small_and_round_trips() {
        let cursor = full_cursor();
        let packed = pack(&cursor);
        assert!(packed.len() < 100, "{} bytes", packed.len());
        assert_eq!(unpack(&packed).unwrap(), cursor);
        assert_eq!(pack(&SyncCursor::default()), [PACKED]);
        assert_eq!(unpack(&[PACKED]).unwrap(), SyncCursor::default());
    }

    /// A newer release's kind, and a newer field after the known ones, are skipped.
    #[test]
    fn a_newer_cursor_reads() {
        let cursor = full_cursor();
        let mut newer = pack(&cursor);
        // A kind this build does not know, its block a field byte and three bytes.
        newer.extend([5, b'o', b'r', b'd', b'e', b'r', 4, FULL, 1, 2, 3]);
        assert_eq!(unpack(&newer).unwrap(), cursor);
        // The customers' block, with a field of bit 7 after its known ones.
        let mut one = SyncCursor::default();
        *one.of_mut(CheckKind::CustomerNumbers) = cursor.of(CheckKind::CustomerNumbers).clone();
        let mut packed = pack(&one);
        let name_len = usize::from(packed[1]);
        let len_at = 2 + name_len;
        packed[len_at] += 2;
        packed[len_at + 1] |= 1 << 7;
        packed.extend([9, 9]);
        assert_eq!(unpack(&packed).unwrap(), one);
    }

    /// A value cut short, or a JSON cursor, is never a shorter cursor.
    #[test]
    fn a_cursor_that_is_not_whole_is_malformed() {
        let packed = pack(&full_cursor());
        // Cut anywhere but after the tag or between the two kinds' blocks (which leaves a
        // whole value of fewer kinds).
        let name_len = usize::from(packed[1]);
        let first_ends = 2 + name_len + 1 + usize::from(packed[2 + name_len]);
        for cut in 0..packed.len() {
            let whole = cut == 1 || cut == first_ends;
            assert_eq!(unpack(&packed[..cut]).is_ok(), whole, "cut at {cut}");
        }
        assert_eq!(unpack(b"{}"), Err(Malformed::NotPacked));
        let mut bad_date = vec![PACKED, 8];
        bad_date.extend(b"invoices");
        bad_date.extend([4, WINDOW_FROM, 0, 13, 1]);
        assert_eq!(unpack(&bad_date), Err(Malformed::OutOfRange));
    }
}

//! How a shop's mirror of one kind is laid out in its one sled value: the records sorted by id,
//! each field stored as its difference from the record before.
//!
//! Schema 7 (packed): a tag byte [`PACKED`], the record count as a varint, then per record, each a
//! LEB128 varint, signed ones zigzag-coded: the id's difference from the previous id (the first
//! from 0), the number's from the previous number (0 = none), the version (-1 = deleted), and the
//! kind's tail: a flag as one byte (0/1), a date as 0 (none) or 1 + its zigzag-coded difference in
//! days from the previous date. A shop's ids, numbers and dates mostly climb together, so most
//! fields take one byte: a 50-customer mirror is ~200 bytes, not 850.
//!
//! Schemas 4 to 6 (fixed): no tag, records of `id i64 BE, number u32 BE (0 = none), version i32
//! BE`, then the tail: a flag as one byte, a date as i32 BE days since 1970-01-01 (i32::MIN =
//! none); 17 bytes a customer, 20 an invoice. Still read (the move to schema 7 repacks every
//! mirror, and reading both costs one byte's test); never written. A fixed value cannot begin
//! with the tag: its first byte is the top byte of an id, 0 for every id from 0 to 2^56
//! (Tripletex's ids are positive).
//!
//! Invariant: a value is read whole or not at all ([`Malformed`]): a truncated or overlong value,
//! or one whose count disagrees with its records, is never a shorter mirror.

use jiff::civil::Date;

use super::packed::{
    Malformed, put_signed, put_varint, take_signed, take_varint, unzigzag, zigzag,
};
use crate::checks::kinds::{Entry, Tail, TailValue, Version};

/// The first byte of a packed value.
const PACKED: u8 = 0xA7;
const EPOCH: Date = Date::constant(1970, 1, 1);
/// The stored version of a deleted record.
const DELETED: i32 = -1;
/// Bytes of a fixed record's id, number and version, before the tail.
const FIXED_HEAD: usize = 16;
/// The fewest bytes a packed record takes (id, number, version, tail): bounds what a count may
/// ask to allocate.
const PACKED_MIN: usize = 4;

/// The packed value of `sorted` (sorted by id) for a kind whose tail is `tail`.
pub(super) fn pack(tail: Tail, sorted: &[(&i64, &Entry)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + sorted.len() * PACKED_MIN);
    out.push(PACKED);
    put_varint(&mut out, sorted.len() as u64);
    let (mut id_before, mut number_before, mut days_before) = (0i64, 0i64, 0i64);
    for &(&id, entry) in sorted {
        put_signed(&mut out, id.wrapping_sub(id_before));
        id_before = id;
        let number = i64::from(entry.number.unwrap_or(0));
        put_signed(&mut out, number - number_before);
        number_before = number;
        put_signed(&mut out, i64::from(stored_version(entry.version)));
        match (tail, entry.tail) {
            (Tail::Flag(_), TailValue::Flag(flag)) => out.push(u8::from(flag)),
            (Tail::Date(_), TailValue::Date(Some(date))) => {
                let days = days_since_epoch(date);
                put_varint(&mut out, zigzag(days - days_before) + 1);
                days_before = days;
            }
            // An entry of another tail cannot come from this kind's rows.
            (Tail::Flag(_), _) => out.push(0),
            (Tail::Date(_), _) => out.push(0),
        }
    }
    out
}

/// Whether `value` is in the packed layout (schema 7), not schema 4's.
pub(super) fn is_packed(value: &[u8]) -> bool {
    value.first() == Some(&PACKED)
}

/// The records of a stored value of either layout, in stored (id) order.
pub(super) fn unpack(value: &[u8], tail: Tail) -> Result<Vec<(i64, Entry)>, Malformed> {
    match value.split_first() {
        Some((&PACKED, rest)) => unpack_packed(rest, tail),
        _ => unpack_fixed(value, tail),
    }
}

fn unpack_packed(mut rest: &[u8], tail: Tail) -> Result<Vec<(i64, Entry)>, Malformed> {
    let truncated = |count| Malformed::Truncated { count };
    let count = take_varint(&mut rest).ok_or(Malformed::NoCount)?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let mut entries = Vec::with_capacity(count.min(rest.len() / PACKED_MIN));
    let (mut id, mut number, mut days) = (0i64, 0i64, 0i64);
    for _ in 0..count {
        let mut field = || take_signed(&mut rest).ok_or(truncated(count));
        id = id.wrapping_add(field()?);
        number = number.wrapping_add(field()?);
        let version = field()?;
        let tail = match tail {
            Tail::Flag(_) => {
                let (&flag, after) = rest.split_first().ok_or(truncated(count))?;
                rest = after;
                TailValue::Flag(flag != 0)
            }
            Tail::Date(_) => match take_varint(&mut rest).ok_or(truncated(count))? {
                0 => TailValue::Date(None),
                coded => {
                    days = days.wrapping_add(unzigzag(coded - 1));
                    TailValue::Date(date_from_days(days))
                }
            },
        };
        let entry = Entry {
            // Out of range only in a value this layout never writes: read as no number.
            number: u32::try_from(number).ok().filter(|&n| n != 0),
            tail,
            version: read_version(i32::try_from(version).unwrap_or(0)),
        };
        entries.push((id, entry));
    }
    if !rest.is_empty() {
        return Err(Malformed::Trailing);
    }
    Ok(entries)
}

fn unpack_fixed(value: &[u8], tail: Tail) -> Result<Vec<(i64, Entry)>, Malformed> {
    let width = FIXED_HEAD
        + match tail {
            Tail::Flag(_) => 1,
            Tail::Date(_) => 4,
        };
    if !value.len().is_multiple_of(width) {
        return Err(Malformed::NotWholeRecords { width });
    }
    Ok(value
        .chunks_exact(width)
        .map(|record| {
            let be4 = |at: usize| <[u8; 4]>::try_from(&record[at..at + 4]).expect("4 bytes");
            let id = i64::from_be_bytes(record[..8].try_into().expect("8 bytes"));
            let number = u32::from_be_bytes(be4(8));
            let tail = match tail {
                Tail::Flag(_) => TailValue::Flag(record[FIXED_HEAD] != 0),
                Tail::Date(_) => TailValue::Date(match i32::from_be_bytes(be4(FIXED_HEAD)) {
                    i32::MIN => None,
                    days => date_from_days(i64::from(days)),
                }),
            };
            let entry = Entry {
                number: (number != 0).then_some(number),
                tail,
                version: read_version(i32::from_be_bytes(be4(12))),
            };
            (id, entry)
        })
        .collect())
}

fn stored_version(version: Version) -> i32 {
    match version {
        // Tripletex's versions are int32: never above i32::MAX.
        Version::Seen(v) => i32::try_from(v).unwrap_or(i32::MAX),
        Version::Deleted => DELETED,
    }
}

fn read_version(stored: i32) -> Version {
    match stored {
        DELETED => Version::Deleted,
        // Nothing else below 0 is written; read it as the oldest version, never as news.
        seen => Version::Seen(u32::try_from(seen).unwrap_or(0)),
    }
}

fn days_since_epoch(date: Date) -> i64 {
    EPOCH
        .until(date)
        .map_or(0, |span| i64::from(span.get_days()))
}

fn date_from_days(days: i64) -> Option<Date> {
    EPOCH
        .checked_add(jiff::Span::new().try_days(days).ok()?)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(number: Option<u32>, version: Version) -> Entry {
        Entry {
            number,
            tail: TailValue::Flag(number.is_some_and(|n| n % 2 == 0)),
            version,
        }
    }

    /// Every field's extremes survive packing, and a shop's usual mirror packs to a few bytes
    /// a record.
    #[test]
    fn packed_values_round_trip_and_are_small() {
        let flag = Tail::Flag("isInactive");
        let date = Tail::Date("invoiceDate");
        let extremes = [
            (
                i64::MIN,
                customer(Some(u32::MAX), Version::Seen(i32::MAX as u32)),
            ),
            (-1, customer(None, Version::Deleted)),
            (0, customer(Some(1), Version::Seen(0))),
            (i64::MAX, customer(Some(7), Version::Seen(3))),
        ];
        let sorted: Vec<_> = extremes.iter().map(|(id, e)| (id, e)).collect();
        assert_eq!(unpack(&pack(flag, &sorted), flag).unwrap(), extremes);

        let invoices: Vec<(i64, Entry)> = (0..50)
            .map(|i| {
                let day = Date::constant(2026, 10, 1).checked_add(jiff::Span::new().days(i));
                let entry = Entry {
                    number: Some(50_000 + i as u32),
                    tail: TailValue::Date(if i == 7 { None } else { day.ok() }),
                    version: Version::Seen(1),
                };
                (12_000_000 + i * 3, entry)
            })
            .chain([(
                99_999_999,
                Entry {
                    number: None,
                    tail: TailValue::Date(Some(Date::constant(1900, 1, 1))),
                    version: Version::Deleted,
                },
            )])
            .collect();
        let sorted: Vec<_> = invoices.iter().map(|(id, e)| (id, e)).collect();
        let packed = pack(date, &sorted);
        assert!(packed.len() < 51 * 5, "{} bytes", packed.len());
        assert_eq!(unpack(&packed, date).unwrap(), invoices);
        assert_eq!(unpack(&pack(date, &[]), date).unwrap(), []);
    }

    /// A value cut short, with bytes after it, or whose count promises more is never a shorter
    /// mirror; neither is a fixed value that is not whole records.
    #[test]
    fn a_value_that_is_not_whole_is_malformed() {
        let flag = Tail::Flag("isInactive");
        let entries: Vec<_> = (1..=3)
            .map(|id| (id, customer(Some(id as u32), Version::Seen(0))))
            .collect();
        let sorted: Vec<_> = entries.iter().map(|(id, e)| (id, e)).collect();
        let packed = pack(flag, &sorted);
        for cut in 1..packed.len() {
            assert!(unpack(&packed[..cut], flag).is_err(), "cut at {cut}");
        }
        let mut longer = packed.clone();
        longer.push(0);
        assert_eq!(unpack(&longer, flag), Err(Malformed::Trailing));
        let mut huge_count = vec![PACKED];
        put_varint(&mut huge_count, u64::MAX);
        assert_eq!(
            unpack(&huge_count, flag),
            Err(Malformed::Truncated { count: usize::MAX })
        );
        assert_eq!(
            unpack(&[0; 18], flag),
            Err(Malformed::NotWholeRecords { width: 17 })
        );
        assert_eq!(unpack(&[PACKED], flag), Err(Malformed::NoCount));
        // A varint longer than 64 bits is not read as some other number.
        let mut overlong = vec![PACKED];
        overlong.extend([0xFF; 9]);
        overlong.push(0x02);
        assert_eq!(unpack(&overlong, flag), Err(Malformed::NoCount));
    }
}

//! The varints the packed values are made of (a mirror's, see `mirror_value`; a check's
//! history, see `history_value`; a sync cursor, see `cursor_value`; a check's result, see
//! `result_value`), the times and dates made of them, and why such a value may not be read.
//!
//! Unsigned LEB128: seven bits a byte, lowest first, the top bit set on every byte but the last;
//! signed numbers zigzag-coded first (0, -1, 1, -2, … as 0, 1, 2, 3, …), so a small difference
//! either way takes one byte. A time is its zigzag-coded seconds since 1970 and its nanoseconds; a
//! date its zigzag-coded year, then a byte each for month and day; text its length and its UTF-8
//! bytes. Invariant: a varint is read
//! whole or not at all: one that ends early or runs past 64 bits is `None`, never a different
//! number.

use jiff::Timestamp;
use jiff::civil::Date;

/// Why a stored packed value cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("not whole {width}-byte records")]
    NotWholeRecords { width: usize },
    #[error("it is not a packed value of its kind")]
    NotPacked,
    #[error("it ends before its record count")]
    NoCount,
    #[error("a record holds a time or number out of range")]
    OutOfRange,
    #[error("its records end before its count of {count} does")]
    Truncated { count: usize },
    #[error("bytes follow its last record")]
    Trailing,
    #[error("it ends inside a field")]
    EndsEarly,
}

pub(super) fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

pub(super) fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(super) fn put_signed(out: &mut Vec<u8>, n: i64) {
    put_varint(out, zigzag(n));
}

/// The varint at the start of `rest`, which then starts after it; `None` if `rest` ends inside
/// it or it runs past 64 bits.
pub(super) fn take_varint(rest: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for (i, &byte) in rest.iter().enumerate().take(10) {
        // The tenth byte holds only the 64th bit.
        if i == 9 && byte > 1 {
            return None;
        }
        n |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Some(n);
        }
    }
    None
}

pub(super) fn take_signed(rest: &mut &[u8]) -> Option<i64> {
    take_varint(rest).map(unzigzag)
}

pub(super) fn put_time(out: &mut Vec<u8>, time: Timestamp) {
    put_signed(out, time.as_second());
    put_signed(out, i64::from(time.subsec_nanosecond()));
}

pub(super) fn take_time(rest: &mut &[u8]) -> Result<Timestamp, Malformed> {
    let seconds = take_signed(rest).ok_or(Malformed::EndsEarly)?;
    let nanos = take_signed(rest).ok_or(Malformed::EndsEarly)?;
    let nanos = i32::try_from(nanos).map_err(|_| Malformed::OutOfRange)?;
    Timestamp::new(seconds, nanos).map_err(|_| Malformed::OutOfRange)
}

/// Text as its length (a varint) and its UTF-8 bytes.
pub(super) fn put_text(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

pub(super) fn take_text(rest: &mut &[u8]) -> Result<String, Malformed> {
    let len = take_count(rest)?;
    let (bytes, after) = rest.split_at(len);
    *rest = after;
    String::from_utf8(bytes.to_vec()).map_err(|_| Malformed::OutOfRange)
}

/// A length or count: never more than the bytes left (each item takes one at least), so a
/// damaged count cannot make a reader allocate for it.
pub(super) fn take_count(rest: &mut &[u8]) -> Result<usize, Malformed> {
    let n = take_varint(rest).ok_or(Malformed::EndsEarly)?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= rest.len())
        .ok_or(Malformed::EndsEarly)
}

pub(super) fn put_date(out: &mut Vec<u8>, date: Date) {
    put_signed(out, i64::from(date.year()));
    out.extend([date.month() as u8, date.day() as u8]);
}

pub(super) fn take_date(rest: &mut &[u8]) -> Result<Date, Malformed> {
    let year = take_signed(rest).ok_or(Malformed::EndsEarly)?;
    let (&[month, day], after) = rest.split_first_chunk::<2>().ok_or(Malformed::EndsEarly)?;
    *rest = after;
    let year = i16::try_from(year).map_err(|_| Malformed::OutOfRange)?;
    Date::new(year, month as i8, day as i8).map_err(|_| Malformed::OutOfRange)
}

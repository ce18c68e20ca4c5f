//! The varints the packed values are made of (a mirror's, see `mirror_value`; a check's
//! history, see `history_value`; a sync cursor, see `cursor_value`), and why such a value may not be read.
//!
//! Unsigned LEB128: seven bits a byte, lowest first, the top bit set on every byte but the last;
//! signed numbers zigzag-coded first (0, -1, 1, -2, … as 0, 1, 2, 3, …), so a small difference
//! either way takes one byte. Invariant: a varint is read whole or not at all: one that ends early
//! or runs past 64 bits is `None`, never a different number.

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

//! How one check's history of a shop is laid out in its one sled value (schema 8): the points
//! oldest first, each stored as its difference from the point before.
//!
//! A tag byte [`PACKED`], the point count as a varint, then per point: its time in milliseconds
//! since 1970 as the zigzag-coded difference from the previous point's (the first from 0), and the
//! shop's highest number as 0 (none) or 1 + the zigzag-coded difference from the previous highest
//! number. A point every 6 h takes ~5 bytes, so the 90 days a forecast reads (~360 points a
//! check) are ~2 KB in one read; as a key per point (schemas 5 to 7) they were ~32 KB in 360
//! keys, all read and decoded from JSON on every pass.
//!
//! Invariants: times are kept to the millisecond (what the keys of schemas 5 to 7 kept); a value
//! is read whole or not at all ([`Malformed`]).

use jiff::Timestamp;

use super::packed::{
    Malformed, put_signed, put_varint, take_signed, take_varint, unzigzag, zigzag,
};
use crate::checks::HistoryPoint;

/// The first byte of a packed history (another than a mirror's, so neither is read as the other).
const PACKED: u8 = 0xA8;

/// The packed value of `points` (oldest first).
pub(super) fn pack(points: &[HistoryPoint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + points.len() * 5);
    out.push(PACKED);
    put_varint(&mut out, points.len() as u64);
    let (mut ms_before, mut high_before) = (0i64, 0i64);
    for point in points {
        let ms = point.at.as_millisecond();
        put_signed(&mut out, ms.wrapping_sub(ms_before));
        ms_before = ms;
        match point.shop_high {
            None => out.push(0),
            Some(high) => {
                let high = i64::from(high);
                put_varint(&mut out, zigzag(high - high_before) + 1);
                high_before = high;
            }
        }
    }
    out
}

/// The points of a stored value, oldest first.
pub(super) fn unpack(value: &[u8]) -> Result<Vec<HistoryPoint>, Malformed> {
    let Some((&PACKED, mut rest)) = value.split_first() else {
        return Err(Malformed::NotPacked);
    };
    let count = take_varint(&mut rest).ok_or(Malformed::NoCount)?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let truncated = Malformed::Truncated { count };
    // Each point takes at least two bytes: bounds what a count may ask to allocate.
    let mut points = Vec::with_capacity(count.min(rest.len() / 2));
    let (mut ms, mut high) = (0i64, 0i64);
    for _ in 0..count {
        ms = ms.wrapping_add(take_signed(&mut rest).ok_or(truncated)?);
        let shop_high = match take_varint(&mut rest).ok_or(truncated)? {
            0 => None,
            coded => {
                high = high.wrapping_add(unzigzag(coded - 1));
                Some(u32::try_from(high).map_err(|_| Malformed::OutOfRange)?)
            }
        };
        let at = Timestamp::from_millisecond(ms).map_err(|_| Malformed::OutOfRange)?;
        points.push(HistoryPoint { at, shop_high });
    }
    if !rest.is_empty() {
        return Err(Malformed::Trailing);
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: &str, shop_high: Option<u32>) -> HistoryPoint {
        HistoryPoint {
            at: at.parse().unwrap(),
            shop_high,
        }
    }

    /// Points every 6 h for 90 days take about five bytes each and read back the same; the
    /// extremes too.
    #[test]
    fn a_history_packs_small_and_round_trips() {
        let start: Timestamp = "2026-09-01T00:00:00.123Z".parse().unwrap();
        let points: Vec<HistoryPoint> = (0..360)
            .map(|i| HistoryPoint {
                at: start + jiff::SignedDuration::from_hours(6 * i),
                shop_high: (i != 7).then_some(50 + (i / 8) as u32),
            })
            .collect();
        let packed = pack(&points);
        assert!(packed.len() < 360 * 6, "{} bytes", packed.len());
        assert_eq!(unpack(&packed).unwrap(), points);
        let extremes = [
            point("1970-01-01T00:00:00Z", Some(u32::MAX)),
            point("1969-12-31T23:59:59.999Z", Some(0)),
            point("2100-01-01T00:00:00Z", None),
        ];
        assert_eq!(unpack(&pack(&extremes)).unwrap(), extremes);
        assert_eq!(unpack(&pack(&[])).unwrap(), []);
    }

    /// A value cut short, with bytes after it, or without the tag is never a shorter history.
    #[test]
    fn a_history_that_is_not_whole_is_malformed() {
        let points = [
            point("2026-09-01T00:00:00Z", Some(1)),
            point("2026-09-02T00:00:00Z", Some(2)),
        ];
        let packed = pack(&points);
        for cut in 0..packed.len() {
            assert!(unpack(&packed[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = packed.clone();
        longer.push(0);
        assert_eq!(unpack(&longer), Err(Malformed::Trailing));
        assert_eq!(
            unpack(br#"{"at":"2026-09-01T00:00:00Z"}"#),
            Err(Malformed::NotPacked)
        );
        // A highest number beyond u32, a time beyond what a timestamp holds.
        let mut beyond = vec![PACKED, 1, 0];
        put_varint(&mut beyond, zigzag(i64::from(u32::MAX) + 1) + 1);
        assert_eq!(unpack(&beyond), Err(Malformed::OutOfRange));
        let mut late = vec![PACKED, 1];
        put_signed(&mut late, i64::MAX / 2);
        late.push(0);
        assert_eq!(unpack(&late), Err(Malformed::OutOfRange));
    }
}

//! How a shop's session metadata is laid out in its one sled value (schema 10): ~25 bytes where
//! the lean JSON of schemas 7 to 9 took ~190 (two RFC 3339 times and the field names). Written
//! at every mint and, for every shop at once, by the stop's `revoked` records.
//!
//! A tag byte [`PACKED`]; the state (a byte: 0 valid, 1 renewing, 2 key_rejected, 3 revoked, 4
//! unknown); a varint saying which fields follow (bit 0 `minted_at`, 1 `expires_at`, 2
//! `company_id`, 3 `employee_id`, 4 `detail`); those fields in that order: times (see `packed`),
//! ids as zigzag-coded varints, the detail as its length (a varint) and its UTF-8 bytes.
//!
//! Invariants: a record reads back exactly what was written; a state this build does not know
//! reads as `unknown` (as in JSON); fields of bits this build does not know (a newer release's,
//! after its known ones) are left unread; a value cut short, or with bytes after its known
//! fields and no unknown bit, is [`Malformed`]. Never a token: the record has no field for one.

use super::packed::{
    Malformed, put_signed, put_text, put_time, put_varint, take_signed, take_text, take_time,
    take_varint,
};
use crate::store::{SessionRecord, SessionState};

/// The first byte of a packed session; a JSON one (schemas 1 to 9) starts with `{`.
pub(super) const PACKED: u8 = 0xAB;

const MINTED_AT: u64 = 1;
const EXPIRES_AT: u64 = 1 << 1;
const COMPANY_ID: u64 = 1 << 2;
const EMPLOYEE_ID: u64 = 1 << 3;
const DETAIL: u64 = 1 << 4;
/// Every bit this build writes and reads.
const KNOWN: u64 = (1 << 5) - 1;

const STATES: [SessionState; 5] = [
    SessionState::Valid,
    SessionState::Renewing,
    SessionState::KeyRejected,
    SessionState::Revoked,
    SessionState::Unknown,
];

/// The packed value of `record`.
pub(super) fn pack(record: &SessionRecord) -> Vec<u8> {
    let bits = [
        (MINTED_AT, record.minted_at.is_some()),
        (EXPIRES_AT, record.expires_at.is_some()),
        (COMPANY_ID, record.company_id.is_some()),
        (EMPLOYEE_ID, record.employee_id.is_some()),
        (DETAIL, record.detail.is_some()),
    ];
    let fields = bits
        .iter()
        .filter(|(_, on)| *on)
        .fold(0, |f, (bit, _)| f | bit);
    let mut out = Vec::with_capacity(32 + record.detail.as_ref().map_or(0, String::len));
    out.push(PACKED);
    let state = STATES.iter().position(|s| *s == record.state);
    out.push(state.expect("every state is listed") as u8);
    put_varint(&mut out, fields);
    for time in [record.minted_at, record.expires_at].into_iter().flatten() {
        put_time(&mut out, time);
    }
    for id in [record.company_id, record.employee_id]
        .into_iter()
        .flatten()
    {
        put_signed(&mut out, id);
    }
    if let Some(detail) = &record.detail {
        put_text(&mut out, detail);
    }
    out
}

/// The session metadata stored packed as `value`.
pub(super) fn unpack(value: &[u8]) -> Result<SessionRecord, Malformed> {
    let Some((&PACKED, rest)) = value.split_first() else {
        return Err(Malformed::NotPacked);
    };
    let (&state, mut rest) = rest.split_first().ok_or(Malformed::EndsEarly)?;
    let r = &mut rest;
    let fields = take_varint(r).ok_or(Malformed::EndsEarly)?;
    let has = |bit| fields & bit != 0;
    let id = |r: &mut &[u8]| take_signed(r).ok_or(Malformed::EndsEarly);
    let record = SessionRecord {
        state: STATES
            .get(usize::from(state))
            .copied()
            .unwrap_or(SessionState::Unknown),
        minted_at: has(MINTED_AT).then(|| take_time(r)).transpose()?,
        expires_at: has(EXPIRES_AT).then(|| take_time(r)).transpose()?,
        company_id: has(COMPANY_ID).then(|| id(r)).transpose()?,
        employee_id: has(EMPLOYEE_ID).then(|| id(r)).transpose()?,
        detail: has(DETAIL).then(|| take_text(r)).transpose()?,
    };
    if fields & !KNOWN == 0 && !r.is_empty() {
        return Err(Malformed::Trailing);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;

    fn full() -> SessionRecord {
        let at = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        SessionRecord {
            state: SessionState::KeyRejected,
            minted_at: at("2026-12-06T21:35:27.032185707Z"),
            expires_at: at("2026-12-12T23:00:00Z"),
            company_id: Some(1001),
            employee_id: Some(-7),
            detail: Some("Tripletex rejected the employee key (422 …)".into()),
        }
    }

    /// Every field reads back exactly; a minted session packs in under 30 bytes (its JSON ~190).
    #[test]
    fn a_session_packs_small_and_round_trips() {
        assert_eq!(unpack(&pack(&full())).unwrap(), full());
        let minted = SessionRecord {
            state: SessionState::Valid,
            detail: None,
            employee_id: Some(4242),
            ..full()
        };
        let packed = pack(&minted);
        assert!(packed.len() < 30, "{} bytes", packed.len());
        assert_eq!(unpack(&packed).unwrap(), minted);
        let empty = SessionRecord::default();
        assert_eq!(unpack(&pack(&empty)).unwrap(), empty);
    }

    /// A newer state reads as `unknown`; a newer field after the known ones is left unread; a
    /// value cut short or with bytes it cannot account for is malformed.
    #[test]
    fn newer_sessions_read_and_damaged_ones_do_not() {
        let mut newer = pack(&full());
        newer[1] = 200;
        assert_eq!(unpack(&newer).unwrap().state, SessionState::Unknown);
        let mut newer = pack(&full());
        newer[2] |= 1 << 6;
        newer.extend([1, 2]);
        assert_eq!(unpack(&newer).unwrap(), full());

        let packed = pack(&full());
        for cut in 0..packed.len() {
            assert!(unpack(&packed[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = packed;
        longer.push(0);
        assert_eq!(unpack(&longer), Err(Malformed::Trailing));
        assert_eq!(unpack(br#"{"state":"valid"}"#), Err(Malformed::NotPacked));
    }
}

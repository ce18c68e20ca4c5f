use jiff::Timestamp;
use jiff::civil::Date;

use super::*;

fn run(first: u32, last: u32, count: u32) -> Run {
    Run { first, last, count }
}

/// A result with every field set, a conflict's.
fn full() -> ResultRecord {
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    ResultRecord {
        outcome: CheckOutcome {
            kind: CheckKind::CustomerNumbers,
            verdict: Verdict::Conflict,
            summary: "conflict: Tripletex's own series found inside the shop's range at \
                      10000–10042 (shop's run 1–800)"
                .into(),
            fix: Some("In Tripletex: Customer › Settings › set customer number to 100000.".into()),
            evidence: Evidence {
                numbers_in_use: 843,
                shop_run: Some(run(1, 800, 800)),
                foreign_runs_in_shop_range: vec![run(10_000, 10_042, 43), run(20_000, 20_000, 1)],
                below_shop_start: Some(run(0, 0, 1)),
                duplicates: vec![3, 17, 4_000_000_000],
                tripletex_run: Some(run(100_000, 100_039, 40)),
                headroom: Some(89_199),
                forecast_exhausted_on: Some(Date::new(2031, 5, 2).unwrap()),
                growth_per_day: Some(12.345_678_9),
            },
        },
        checked_at: at("2026-12-06T20:42:39.444485353Z"),
        since: at("1969-12-31T23:59:59.5Z"),
        pass_failed: true,
    }
}

/// A typical `ok` result, as the lean JSON of schemas 7 to 9 held it.
fn ok_json() -> &'static str {
    r#"{"outcome":{"kind":"customer_numbers","verdict":"ok","summary":"ok: shop's run 1–1200, 98799 numbers left before 100000, no forecast yet (needs 7 days of history); Tripletex's own series seen at 100000–100039","evidence":{"numbers_in_use":1240,"shop_run":{"first":1,"last":1200,"count":1200},"tripletex_run":{"first":100000,"last":100039,"count":40},"headroom":98799}},"checked_at":"2026-12-06T21:35:27.032185707Z","since":"2026-12-06T21:35:27.032185707Z"}"#
}

/// Every field reads back exactly; a typical `ok` result packs in under half its JSON.
#[test]
fn a_result_packs_small_and_round_trips() {
    let record = full();
    assert_eq!(unpack(&pack(&record), record.outcome.kind).unwrap(), record);
    let ok: ResultRecord = serde_json::from_str(ok_json()).unwrap();
    let packed = pack(&ok);
    assert_eq!(unpack(&packed, CheckKind::CustomerNumbers).unwrap(), ok);
    assert!(
        packed.len() * 2 < ok_json().len(),
        "{} bytes against {}",
        packed.len(),
        ok_json().len()
    );
    let bare = ResultRecord::next(
        None,
        crate::checks::not_yet_checked(ok.outcome.kind),
        ok.since,
    );
    assert_eq!(unpack(&pack(&bare), bare.outcome.kind).unwrap(), bare);
}

/// A newer release's verdict reads as `unknown`, and its newer fields (bits after the known
/// ones, at the end) are left unread.
#[test]
fn a_newer_result_reads() {
    let record = full();
    let mut newer = pack(&record);
    newer[1] = 9;
    let read = unpack(&newer, record.outcome.kind).unwrap();
    assert_eq!(read.verdict(), Verdict::Unknown);

    let mut plain = record.clone();
    plain.outcome.evidence.growth_per_day = None;
    plain.outcome.evidence.forecast_exhausted_on = None;
    let mut newer = pack(&plain);
    // The field varint is two bytes (bit 7 is set); add bit 12 and a field of three bytes.
    assert!(newer[2] & 0x80 != 0);
    newer[3] |= 1 << (12 - 7);
    newer.extend([1, 2, 3]);
    assert_eq!(unpack(&newer, plain.outcome.kind).unwrap(), plain);
}

/// A value cut short, with bytes it cannot account for, or in JSON, is never a result.
#[test]
fn a_result_that_is_not_whole_is_malformed() {
    let record = full();
    let packed = pack(&record);
    for cut in 0..packed.len() {
        assert!(
            unpack(&packed[..cut], record.outcome.kind).is_err(),
            "cut at {cut}"
        );
    }
    let mut longer = packed.clone();
    longer.push(0);
    assert_eq!(
        unpack(&longer, record.outcome.kind),
        Err(Malformed::Trailing)
    );
    assert_eq!(
        unpack(ok_json().as_bytes(), CheckKind::CustomerNumbers),
        Err(Malformed::NotPacked)
    );
}

/// Damaged numbers that would overflow while decoding are out of range, never a panic.
#[test]
fn damaged_numbers_are_out_of_range() {
    let mut max = vec![0xFE];
    max.extend([0xFF; 8]);
    max.push(0x01);
    // Two duplicates: 1, then a step of i64::MAX.
    let mut duplicates = vec![PACKED, 0, 0x20, 0, 0, 0, 0, 0, 0, 2, 2];
    duplicates.extend(&max);
    // A shop run from 1 spanning i64::MAX.
    let mut run = vec![PACKED, 0, 0x04, 0, 0, 0, 0, 0, 0, 1];
    run.extend(&max);
    run.push(0);
    for value in [duplicates, run] {
        assert_eq!(
            unpack(&value, CheckKind::CustomerNumbers),
            Err(Malformed::OutOfRange),
            "{value:?}"
        );
    }
}

//! Time as a parameter.
//!
//! Everything that decides by time (session expiry at Oslo midnight, renewal, forecasts,
//! `changedSince` windows, the simulator's token checks) reads it from a [`Clock`], so tests move
//! time instead of waiting for it. Calendar questions are answered in Europe/Oslo with the bundled
//! tz database, never by assuming UTC or a fixed offset. A configured `Duration` becomes a jiff
//! span for timestamp arithmetic in one place ([`span`]).

use std::sync::{Arc, Mutex};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ZonedDateTime};

/// A source of "now".
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The clock every component shares.
pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; for tests and the simulator.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(start),
        })
    }

    pub fn set(&self, to: Timestamp) {
        *self.now.lock().expect("clock lock") = to;
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now = now.checked_add(span(by)).expect("clock stays in range");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().expect("clock lock")
    }
}

/// The most seconds a jiff span holds (about 20 000 years).
const MAX_SPAN_SECONDS: i64 = 631_107_417_600;

/// `d` as a span of seconds (and nanoseconds) for timestamp arithmetic. Beyond jiff's range it
/// saturates, where a conversion would fail; no configured duration comes near it.
pub fn span(d: std::time::Duration) -> Span {
    Span::try_from(d).unwrap_or_else(|_| Span::new().seconds(MAX_SPAN_SECONDS))
}

/// Tripletex's time zone: token expiry and "today" are Norwegian.
pub fn oslo() -> TimeZone {
    TimeZone::get("Europe/Oslo").expect("the bundled tz database has Europe/Oslo")
}

/// The calendar date in Oslo at instant `at`.
pub fn oslo_date(at: Timestamp) -> Date {
    at.to_zoned_datetime(oslo()).date()
}

/// 00:00 Europe/Oslo at the start of `date` (DST-safe: the tz database decides the offset).
pub fn oslo_midnight(date: Date) -> Timestamp {
    let zoned: ZonedDateTime = date
        .to_zoned_datetime(oslo())
        .expect("every Oslo date has a start of day");
    zoned.timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslo_midnight_follows_dst() {
        // Winter: UTC+1, so midnight is 23:00 UTC the day before.
        let winter = oslo_midnight(Date::constant(2026, 1, 15));
        assert_eq!(winter.to_string(), "2026-01-14T23:00:00Z");
        // Summer: UTC+2.
        let summer = oslo_midnight(Date::constant(2026, 7, 15));
        assert_eq!(summer.to_string(), "2026-07-14T22:00:00Z");
    }

    #[test]
    fn oslo_date_differs_from_utc_date_late_in_the_evening() {
        let at: Timestamp = "2026-03-28T23:30:00Z".parse().unwrap();
        assert_eq!(oslo_date(at), Date::constant(2026, 3, 29));
    }

    #[test]
    fn a_duration_is_its_span_and_saturates_beyond_jiffs_range() {
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let later = at.checked_add(span(std::time::Duration::from_millis(90_500)));
        assert_eq!(later.unwrap().to_string(), "2026-01-01T00:01:30.5Z");
        let huge = span(std::time::Duration::from_secs(u64::MAX));
        assert_eq!(huge.get_seconds(), MAX_SPAN_SECONDS);
        assert!(at.checked_add(huge).is_err(), "out of range, not a panic");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        clock.advance(std::time::Duration::from_secs(90));
        assert_eq!(clock.now().to_string(), "2026-01-01T00:01:30Z");
    }
}

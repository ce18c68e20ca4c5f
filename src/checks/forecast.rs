//! When will the shop's own run reach Tripletex's series?
//!
//! Owns the least-squares line through (time, shop's highest number). Invariants: the fit is
//! computed in exact integer arithmetic (`i128` over whole seconds), so a history that grows by an
//! integer amount per whole day predicts the exact day rather than "the day ± a rounding error";
//! it falls back to `f64` only when the integers would overflow. Pure: `now` is an argument.
//!
//! A line through seconds of data is noise (a renumbering seconds after the first pass once
//! "forecast" 9352.6 numbers a day), so a forecast is made only from [`enough_history`]: points
//! spanning at least [`MIN_SPAN_DAYS`] days, of which at least [`MIN_DAYS_APART`] lie a day or more
//! apart. Until then there is no forecast, and so no `warn` from one.

use jiff::{SignedDuration, Timestamp};

const SECONDS_PER_DAY: i128 = 86_400;
/// The least time between the oldest and the newest point of a forecast.
pub const MIN_SPAN_DAYS: i64 = 7;
/// The least number of points a day or more apart (counted from the oldest) in a forecast.
pub const MIN_DAYS_APART: usize = 3;

/// Whether `points` (in any order) are enough history to forecast from.
pub fn enough_history(points: &[(Timestamp, u32)]) -> bool {
    let mut times: Vec<i64> = points.iter().map(|(at, _)| at.as_second()).collect();
    times.sort_unstable();
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return false;
    };
    let day = SECONDS_PER_DAY as i64;
    let (mut apart, mut counted) = (1, first);
    for &t in &times[1..] {
        if t - counted >= day {
            apart += 1;
            counted = t;
        }
    }
    last - first >= MIN_SPAN_DAYS * day && apart >= MIN_DAYS_APART
}

/// A fitted growth rate and, if the run is growing, when it reaches the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    pub growth_per_day: f64,
    /// `None` when the run is not growing or the date is beyond what a timestamp can hold.
    pub reaches_target_at: Option<Timestamp>,
}

/// Fits `points` (which should include the current point `(now, current)`) and projects from
/// `current` at `now` to `target`. `None` with fewer than two points or no spread in time.
pub fn fit(
    points: impl IntoIterator<Item = (Timestamp, u32)>,
    now: Timestamp,
    current: u32,
    target: u32,
) -> Option<Forecast> {
    // Time relative to `now` keeps the magnitudes (and so the overflow risk) small.
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0i128, 0i128, 0i128, 0i128, 0i128);
    for (at, high) in points {
        let x = i128::from(at.as_second() - now.as_second());
        let y = i128::from(high);
        n += 1;
        sx += x;
        sy += y;
        sxx = sxx.checked_add(x.checked_mul(x)?)?;
        sxy = sxy.checked_add(x.checked_mul(y)?)?;
    }
    if n < 2 {
        return None;
    }
    // slope (numbers per second) = num / den; den > 0 unless every point has the same time.
    let num = n.checked_mul(sxy)?.checked_sub(sx.checked_mul(sy)?)?;
    let den = n.checked_mul(sxx)?.checked_sub(sx.checked_mul(sx)?)?;
    if den <= 0 {
        return None;
    }
    let growth_per_day = num as f64 * SECONDS_PER_DAY as f64 / den as f64;
    if num <= 0 {
        return Some(Forecast {
            growth_per_day,
            reaches_target_at: None,
        });
    }
    let missing = u128::from(target.saturating_sub(current));
    let (num, den) = (num.unsigned_abs(), den.unsigned_abs());
    // Rounding up: the target is reached at the first whole second the line is at or above it.
    let seconds = match missing.checked_mul(den) {
        Some(scaled) => scaled.div_ceil(num),
        None => (missing as f64 * den as f64 / num as f64).ceil() as u128,
    };
    let reaches_target_at = i64::try_from(seconds)
        .ok()
        .and_then(|s| now.checked_add(SignedDuration::from_secs(s)).ok());
    Some(Forecast {
        growth_per_day,
        reaches_target_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn days(d: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * d)
    }

    #[test]
    fn exact_on_an_integer_line() {
        let now = ts("2026-02-01T10:00:00Z");
        let points: Vec<_> = (0..=30)
            .map(|d| (now - days(30 - d), 1000 + 10 * d as u32))
            .collect();
        let f = fit(points, now, 1300, 100_000).unwrap();
        assert_eq!(f.growth_per_day, 10.0);
        assert_eq!(f.reaches_target_at, Some(now + days(9870)));
    }

    #[test]
    fn no_forecast_without_two_points_in_time() {
        let now = ts("2026-02-01T10:00:00Z");
        assert_eq!(fit([], now, 5, 10), None);
        assert_eq!(fit([(now, 5)], now, 5, 10), None);
        assert_eq!(fit([(now, 5), (now, 6)], now, 6, 10), None);
    }

    #[test]
    fn flat_or_shrinking_runs_never_reach_the_target() {
        let now = ts("2026-02-01T10:00:00Z");
        let flat = fit([(now - days(3), 5), (now, 5)], now, 5, 10).unwrap();
        assert_eq!(flat.growth_per_day, 0.0);
        assert_eq!(flat.reaches_target_at, None);
        let shrinking = fit([(now - days(3), 8), (now, 5)], now, 5, 10).unwrap();
        assert_eq!(shrinking.growth_per_day, -1.0);
        assert_eq!(shrinking.reaches_target_at, None);
    }

    #[test]
    fn enough_history_needs_a_week_and_three_days_apart() {
        let now = ts("2026-02-01T10:00:00Z");
        let seconds: Vec<_> = (0..100)
            .map(|s| (now - SignedDuration::from_secs(s), 5))
            .collect();
        assert!(!enough_history(&seconds), "a hundred points within seconds");
        let two_ends = [(now - days(30), 1), (now, 5)];
        assert!(!enough_history(&two_ends), "a month, but two points");
        let six_days = [(now - days(6), 1), (now - days(3), 3), (now, 5)];
        assert!(!enough_history(&six_days), "three points, six days");
        let week = [(now - days(7), 1), (now - days(3), 3), (now, 5)];
        assert!(enough_history(&week));
        let bunched = [
            (now - days(7), 1),
            (now - SignedDuration::from_hours(1), 3),
            (now, 5),
        ];
        assert!(!enough_history(&bunched), "the last two are an hour apart");
        assert!(!enough_history(&[]));
    }

    #[test]
    fn absurdly_slow_growth_gives_a_rate_but_no_date() {
        let now = ts("2026-02-01T10:00:00Z");
        let start = ts("-009000-01-01T00:00:00Z");
        let f = fit([(start, 1), (now, 2)], now, 2, u32::MAX).unwrap();
        assert!(f.growth_per_day > 0.0);
        assert_eq!(f.reaches_target_at, None);
    }
}

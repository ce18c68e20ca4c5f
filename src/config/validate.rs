//! The main file's meaning: every number and duration within a range an operator would expect,
//! and the relations between them (renewal fits in a token's life, passes come before renewal).
//!
//! Invariant: whatever passes here cannot overflow or panic later (durations fit jiff spans,
//! numbers fit Tripletex's 32-bit ids). Each range is documented in docs/configuration.md's table; keep both in
//! step.

use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::time::Duration;

use url::Url;

use super::raw::{RawConfig, RawWebhooks};
use super::{
    Blame, ChecksConfig, ConfigError, RateLimitConfig, TokenConfig, TripletexConfig, WebhooksConfig,
};
use crate::checks::Policy;

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);
/// humantime's year (365.25 days), so "10y" is exactly the limit.
const TEN_YEARS: Duration = Duration::from_secs(315_576_000);

pub(super) const SESSION_VALID_DAYS: RangeInclusive<u32> = 2..=366;
pub(super) const REQUEST_TIMEOUT: RangeInclusive<Duration> = SECOND..=Duration::from_secs(600);
pub(super) const PER_SECOND: RangeInclusive<u32> = 1..=1000;
pub(super) const BURST: RangeInclusive<u32> = 1..=1000;
pub(super) const RESERVE: RangeInclusive<u32> = 0..=10_000;
pub(super) const MAX_CONCURRENT_SHOPS: RangeInclusive<u32> = 1..=1000;
pub(super) const INTERVAL: RangeInclusive<Duration> = SECOND..=Duration::from_secs(30 * 86_400);
pub(super) const FULL_RESYNC_MAX: Duration = Duration::from_secs(366 * 86_400);
pub(super) const INVOICE_WINDOW: RangeInclusive<Duration> = DAY..=TEN_YEARS;
pub(super) const HISTORY: RangeInclusive<Duration> = DAY..=TEN_YEARS;
pub(super) const CLUSTER_GAP: RangeInclusive<u32> = 1..=i32::MAX as u32;
pub(super) const FORECAST_WARN_DAYS: RangeInclusive<u32> = 0..=3660;
pub(super) const HEADROOM_WARN: RangeInclusive<u32> = 0..=i32::MAX as u32;
pub(super) const MAX_RECORDS: RangeInclusive<u32> = 1000..=100_000_000;
pub(super) const PASS_DEADLINE: RangeInclusive<Duration> = SECOND..=DAY;
pub(super) const RECONCILE_MAX: Duration = Duration::from_secs(30 * 86_400);
pub(super) const NOTIFY_TIMEOUT: RangeInclusive<Duration> = SECOND..=Duration::from_secs(300);
pub(super) const NOTIFY_MAX_AGE: RangeInclusive<Duration> =
    Duration::from_secs(3600)..=Duration::from_secs(90 * 86_400);
pub(super) const NOTIFY_MAX_PENDING: RangeInclusive<u32> = 1000..=10_000_000;
pub(super) const NOTIFY_RETRY_MIN: RangeInclusive<Duration> = SECOND..=Duration::from_secs(3600);
pub(super) const NOTIFY_RETRY_MAX: RangeInclusive<Duration> = SECOND..=DAY;

/// `[webhooks]` once `public_url` is set; `interval` is `checks.interval`.
pub(super) fn webhooks(
    raw: &RawWebhooks,
    blame: &Blame<'_>,
    secret: TokenConfig,
    interval: Duration,
) -> Result<WebhooksConfig, ConfigError> {
    // Tripletex calls https only; plain http to loopback is the simulator in tests.
    let public_url = parse_base_url(&raw.public_url).map_err(|problem| {
        blame.err(
            "webhooks.public_url",
            problem,
            "use the https URL your reverse proxy serves for tripletex-sync, e.g. https://sync.example.com/tripletex",
        )
    })?;
    let listen = raw.listen.trim().parse().map_err(|_| {
        blame.err(
            "webhooks.listen",
            format!("{:?} is not an IP address and port", raw.listen),
            "e.g. listen = \"127.0.0.1:8788\" (the address your reverse proxy forwards to)",
        )
    })?;
    let reconcile_interval = duration_in(
        blame,
        "webhooks.reconcile_interval",
        raw.reconcile_interval,
        interval.max(SECOND)..=RECONCILE_MAX.max(interval),
        "6h is a good value; it must not be shorter than checks.interval",
    )?;
    Ok(WebhooksConfig {
        public_url,
        listen,
        secret,
        reconcile_interval,
    })
}

pub(super) fn main(
    raw: &RawConfig,
    blame: &Blame<'_>,
    consumer_token: TokenConfig,
) -> Result<(TripletexConfig, RateLimitConfig, ChecksConfig), ConfigError> {
    let t = &raw.tripletex;
    let base_url = parse_base_url(&t.base_url).map_err(|problem| {
        blame.err(
            "tripletex.base_url",
            problem,
            "use https://tripletex.no/v2 (or https://api-test.tripletex.tech/v2); plain http only for 127.0.0.1/localhost",
        )
    })?;
    let days = in_range(
        blame,
        "tripletex.session_valid_days",
        t.session_valid_days,
        SESSION_VALID_DAYS,
        "7 is a good value; a token dies at 00:00 Oslo time at the start of its expirationDate",
    )?;
    // A token minted late in the Oslo evening lives (days − 1) days and a bit; renewal starts
    // renew_before plus up to a quarter of it (max 2 h) of jitter ahead; a spring-forward day
    // is an hour short. All of that must fit, or a fresh token is due for renewal at once.
    let renew = t.renew_before;
    let renew_span = renew
        .saturating_add((renew / 4).min(Duration::from_secs(7200)))
        .saturating_add(Duration::from_secs(3600));
    let shortest_life = Duration::from_secs(u64::from(days - 1) * 86_400);
    if renew_span >= shortest_life {
        return Err(blame.err(
            "tripletex.renew_before",
            format!(
                "{} would renew a fresh {days}-day token at once (a token minted late in the evening lives only {} days)",
                humantime::format_duration(renew),
                days - 1
            ),
            "make it shorter, e.g. \"1d\" with session_valid_days = 7",
        ));
    }
    let request_timeout = duration_in(
        blame,
        "tripletex.request_timeout",
        t.request_timeout,
        REQUEST_TIMEOUT,
        "e.g. \"30s\"",
    )?;

    let r = &raw.rate_limit;
    let positive = |key: &str, value: u32, range: RangeInclusive<u32>, fix: &str| {
        let value = in_range(blame, key, value, range, fix)?;
        Ok::<_, ConfigError>(NonZeroU32::new(value).expect("ranges start at 1"))
    };
    let rate_limit = RateLimitConfig {
        per_second: positive("rate_limit.per_second", r.per_second, PER_SECOND, "e.g. 2")?,
        burst: positive("rate_limit.burst", r.burst, BURST, "e.g. 5")?,
        reserve: in_range(blame, "rate_limit.reserve", r.reserve, RESERVE, "e.g. 20")?,
        max_concurrent_shops: positive(
            "rate_limit.max_concurrent_shops",
            r.max_concurrent_shops,
            MAX_CONCURRENT_SHOPS,
            "e.g. 32",
        )?
        .get() as usize,
    };

    let c = &raw.checks;
    let interval = duration_in(
        blame,
        "checks.interval",
        c.interval,
        INTERVAL,
        "e.g. \"1h\"",
    )?;
    if c.jitter > interval {
        return Err(blame.err(
            "checks.jitter",
            "is longer than checks.interval".into(),
            "make it a fraction of the interval, e.g. \"5m\" for \"1h\"",
        ));
    }
    duration_in(
        blame,
        "checks.full_resync",
        c.full_resync,
        interval..=FULL_RESYNC_MAX,
        "at least checks.interval, e.g. \"24h\"",
    )?;
    // Tokens count as dead EXPIRY_MARGIN early, so a pass must come before that too.
    if interval
        .saturating_add(c.jitter)
        .saturating_add(crate::tripletex::EXPIRY_MARGIN)
        >= renew
    {
        return Err(blame.err(
            "checks.interval",
            format!(
                "interval + jitter ({}) is not shorter than tripletex.renew_before ({}): a session could expire between two passes",
                humantime::format_duration(interval + c.jitter),
                humantime::format_duration(renew)
            ),
            "shorten checks.interval or lengthen tripletex.renew_before",
        ));
    }
    let checks = ChecksConfig {
        interval,
        jitter: c.jitter,
        full_resync: c.full_resync,
        invoice_window: duration_in(
            blame,
            "checks.invoice_window",
            c.invoice_window,
            INVOICE_WINDOW,
            "e.g. \"62d\"",
        )?,
        history: duration_in(blame, "checks.history", c.history, HISTORY, "e.g. \"90d\"")?,
        policy: Policy {
            cluster_gap: in_range(
                blame,
                "checks.cluster_gap",
                c.cluster_gap,
                CLUSTER_GAP,
                "e.g. 1000",
            )?,
            forecast_warn_days: in_range(
                blame,
                "checks.forecast_warn_days",
                c.forecast_warn_days,
                FORECAST_WARN_DAYS,
                "e.g. 90",
            )?,
            headroom_warn: in_range(
                blame,
                "checks.headroom_warn",
                c.headroom_warn,
                HEADROOM_WARN,
                "e.g. 500",
            )?,
        },
        max_records: u64::from(in_range(
            blame,
            "checks.max_records",
            c.max_records,
            MAX_RECORDS,
            "e.g. 2000000 (the default)",
        )?),
        pass_deadline: duration_in(
            blame,
            "checks.pass_deadline",
            c.pass_deadline,
            PASS_DEADLINE,
            "e.g. \"30m\" (the default)",
        )?,
    };
    let tripletex = TripletexConfig {
        base_url,
        consumer_token,
        session_valid_days: days,
        renew_before: renew,
        request_timeout,
    };
    Ok((tripletex, rate_limit, checks))
}

pub(super) fn in_range(
    blame: &Blame<'_>,
    key: &str,
    value: u32,
    range: RangeInclusive<u32>,
    fix: &str,
) -> Result<u32, ConfigError> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(blame.err(
        key,
        format!(
            "{value} is out of range: must be from {} to {}",
            range.start(),
            range.end()
        ),
        fix,
    ))
}

pub(super) fn duration_in(
    blame: &Blame<'_>,
    key: &str,
    value: Duration,
    range: RangeInclusive<Duration>,
    fix: &str,
) -> Result<Duration, ConfigError> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(blame.err(
        key,
        format!(
            "{} is out of range: must be from {} to {}",
            humantime::format_duration(value),
            humantime::format_duration(*range.start()),
            humantime::format_duration(*range.end())
        ),
        fix,
    ))
}

/// A base URL (paths are appended to it, so without a trailing slash), never echoed with its
/// user info: a password there must not reach a log.
pub(super) fn parse_base_url(text: &str) -> Result<Url, String> {
    parse_url(text.trim_end_matches('/'), text)
}

/// An endpoint URL (`notify.url`), taken as written: its path is the platform's, slash and all.
pub(super) fn parse_endpoint_url(text: &str) -> Result<Url, String> {
    parse_url(text, text)
}

/// `text` as an https URL (http for loopback) without user info, query or fragment; `written`
/// is what the operator wrote, for messages.
fn parse_url(text: &str, written: &str) -> Result<Url, String> {
    let shown = redact(written);
    let url = Url::parse(text).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{:?} carries a user name or password; tokens are sent by tripletex-sync, never in the URL",
            redact(url.as_str())
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "{shown:?} is plain http to a non-loopback host: tokens would cross the network unencrypted"
            ));
        }
        other => {
            return Err(format!(
                "{shown:?} has scheme {other:?}; only https is allowed"
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{shown:?} carries a query or fragment"));
    }
    Ok(url)
}

/// `text` with anything before an `@` in its authority replaced by `…`.
fn redact(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let authority_end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    match text[start..authority_end].rfind('@') {
        Some(at) => format!("{}…{}", &text[..start], &text[start + at..]),
        None => text.to_owned(),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `[metrics] listen`: empty for off, else an address to bind.
pub(super) fn metrics_listen(
    text: &str,
    blame: &Blame<'_>,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        blame.err(
            "metrics.listen",
            format!("{text:?} is not an address and port"),
            "e.g. \"127.0.0.1:9187\" (keep it on loopback or a private network), or \"\" for no endpoint",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_never_shown() {
        assert_eq!(redact("https://u:pw@host/v2"), "https://…@host/v2");
        assert_eq!(redact("https://host/v2?a=b@c"), "https://host/v2?a=b@c");
        assert_eq!(redact("u:pw@host"), "…@host");
        for bad in [
            "https://u:s3cret@tripletex.no/v2",
            "https://:s3cret@tripletex.no/v2",
            "https://s3cret@tripletex.no/v2",
            "ht tp://u:s3cret@x/",
            "https://u:s3cret@exa mple.com/",
        ] {
            let e = parse_base_url(bad).unwrap_err();
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}

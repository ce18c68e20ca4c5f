//! Sending one message: a signed POST, and the platform's answer summarised as an [`Answer`].
//!
//! This is the one delivery path: `notify test` uses it now, the outbox's delivery loop will
//! retry with it. Invariants: every attempt carries the three Standard Webhooks headers
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`) over the exact body bytes it sends;
//! an attempt takes at most the configured timeout, connecting included; redirects are not
//! followed (a 3xx is the platform's answer: the signed POST must reach `notify.url` itself, and
//! a redirected POST would arrive as a GET elsewhere); nothing an answer says quotes the secret,
//! and the URL it names has no user info (config refuses one).

use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::message::Message;
use crate::config::NotifyConfig;
use crate::secrets::Signer;

/// What the platform made of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx: the message is the platform's now.
    Delivered { status: StatusCode, took: Duration },
    /// Any other status; `retry_after` when the platform said when to come back.
    Refused {
        status: StatusCode,
        retry_after: Option<Duration>,
        took: Duration,
    },
    /// No HTTP answer (refused connection, DNS, TLS, timeout): `problem` says which, and names
    /// the URL.
    Failed { problem: String },
}

impl Answer {
    pub fn delivered(&self) -> bool {
        matches!(self, Answer::Delivered { .. })
    }
}

/// One line: `delivered: 204 in 35 ms`, `refused: 401 Unauthorized in 3 ms (…)`,
/// `failed: connection refused to URL`.
impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Delivered { status, took } => {
                write!(
                    f,
                    "delivered: {} in {} ms",
                    status.as_u16(),
                    took.as_millis()
                )
            }
            Answer::Refused {
                status,
                retry_after,
                took,
            } => {
                write!(f, "refused: {status} in {} ms", took.as_millis())?;
                if let Some(wait) = retry_after {
                    write!(f, ", retry after {}", humantime::format_duration(*wait))?;
                }
                match hint(*status) {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
            Answer::Failed { problem } => write!(f, "failed: {problem}"),
        }
    }
}

/// What an operator should make of a refusal, where the status says.
fn hint(status: StatusCode) -> Option<&'static str> {
    match status.as_u16() {
        401 | 403 => Some(
            "the platform rejected the signature: check that it uses the same secret as notify.secret_file",
        ),
        404 | 405 => Some("check notify.url: the platform takes notifications elsewhere"),
        300..=399 => Some("the platform redirects: set notify.url to where it points"),
        429 | 503 => Some("the platform asks to come back later"),
        _ => None,
    }
}

/// The HTTP client notifications go through: no redirects (see the module docs).
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tripletex-sync/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `message` once, signed by `signer`, to `target.url` within `target.timeout`. Every
/// outcome is an [`Answer`]: whether to retry is the caller's decision.
pub async fn send(
    client: &reqwest::Client,
    target: &NotifyConfig,
    signer: &Signer,
    message: &Message,
) -> Answer {
    let body = message.body();
    let timestamp = message.timestamp.as_second();
    let signature = signer.sign(&message.id, timestamp, &body);
    let started = Instant::now();
    let sent = client
        .post(target.url.clone())
        .timeout(target.timeout)
        .header(CONTENT_TYPE, "application/json")
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let took = started.elapsed();
    match sent {
        Ok(response) if response.status().is_success() => Answer::Delivered {
            status: response.status(),
            took,
        },
        Ok(response) => Answer::Refused {
            status: response.status(),
            retry_after: retry_after(response.headers(), Timestamp::now()),
            took,
        },
        Err(e) => Answer::Failed {
            problem: format!(
                "{} to {}",
                transport_problem(&e, target.timeout),
                target.url
            ),
        },
    }
}

/// `Retry-After` as a wait from `now`: delay-seconds or an HTTP date (RFC 9110); a date in the
/// past is no wait; anything else is as if it were absent.
fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = now.until(at).ok()?.total(jiff::Unit::Second).ok()?;
    Some(Duration::from_secs(wait.max(0.0).ceil() as u64))
}

/// Why no HTTP answer came, in a few words, without reqwest's own text (which repeats the URL
/// and nests its causes).
fn transport_problem(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let mut innermost = None;
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                kind => format!("{kind}"),
            };
        }
        innermost = Some(cause.to_string());
        source = cause.source();
    }
    innermost.unwrap_or_else(|| "the request could not be sent".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now: Timestamp = "2026-12-06T06:00:00Z".parse().unwrap();
        let wait = |v: &str| retry_after(&headers(v), now);
        assert_eq!(wait("30"), Some(Duration::from_secs(30)));
        assert_eq!(wait(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            wait("Sun, 06 Dec 2026 06:02:00 GMT"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(wait("Sun, 06 Dec 2026 05:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(wait("soon"), None);
        assert_eq!(wait("-5"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn answers_are_one_line_with_a_hint_where_the_status_has_one() {
        let ms = Duration::from_millis;
        let refused = |status: u16, retry_after| Answer::Refused {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after,
            took: ms(3),
        };
        assert_eq!(
            Answer::Delivered {
                status: StatusCode::NO_CONTENT,
                took: ms(35)
            }
            .to_string(),
            "delivered: 204 in 35 ms"
        );
        assert_eq!(
            refused(401, None).to_string(),
            "refused: 401 Unauthorized in 3 ms (the platform rejected the signature: check that it uses the same secret as notify.secret_file)"
        );
        assert_eq!(
            refused(429, Some(Duration::from_secs(30))).to_string(),
            "refused: 429 Too Many Requests in 3 ms, retry after 30s (the platform asks to come back later)"
        );
        assert_eq!(
            refused(500, None).to_string(),
            "refused: 500 Internal Server Error in 3 ms"
        );
        assert!(refused(308, None).to_string().contains("redirects"));
        assert!(refused(404, None).to_string().contains("notify.url"));
        assert!(!refused(500, None).delivered());
    }
}

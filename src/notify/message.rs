//! One message to the platform: its id, type, time and data, and the JSON body it is sent as.
//!
//! Invariants: a message's `id` (`msg_` + 26 random base32 characters) is fixed when the message
//! is made and never changes, so a retry is the same message to the platform (Standard Webhooks
//! receivers deduplicate by `webhook-id`); `timestamp` is whole seconds, so the body's RFC 3339
//! time and the `webhook-timestamp` header are the same instant. The body's shape is
//! contrib/notify/message.schema.json (a test checks every message made here against it).

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use crate::checks::{CheckOutcome, Verdict};

/// Crockford's base32 alphabet, lower case: no i, l, o, u to misread.
const ID_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// 26 base32 characters: 130 random bits, as many characters as a ULID.
const ID_CHARS: usize = 26;

/// What a message is about: the body's `type` (docs/notify.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `notify test`: proves the URL and the secret, carries nothing the platform acts on.
    Test,
    /// A check's verdict changed (a shop's first verdict too).
    CheckVerdict,
    /// Tripletex refused a shop's employee key.
    KeyRejected,
    /// A shop's employee key works again.
    KeyAccepted,
    /// The integration's consumer token expires within 30 days.
    ConsumerTokenExpiring,
    /// Tripletex refused the integration's consumer token.
    ConsumerTokenRejected,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Test => "test",
            Kind::CheckVerdict => "check.verdict",
            Kind::KeyRejected => "session.key_rejected",
            Kind::KeyAccepted => "session.key_accepted",
            Kind::ConsumerTokenExpiring => "consumer_token.expiring",
            Kind::ConsumerTokenRejected => "consumer_token.rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `msg_…`, the `webhook-id` header; the same on every attempt.
    pub id: String,
    /// The body's `type`: a [`Kind`]'s name, or (read back from the outbox) one a newer release
    /// wrote.
    pub kind: String,
    /// When the message was made, whole seconds.
    pub timestamp: Timestamp,
    pub data: Value,
}

/// The body as sent: `{"type", "timestamp", "data"}`.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: Timestamp,
    data: &'a Value,
}

impl Message {
    /// A message made at `now` (cut to whole seconds), with a fresh id.
    pub fn new(kind: Kind, now: Timestamp, data: Value) -> Self {
        let id: String = (0..ID_CHARS)
            .map(|_| char::from(ID_ALPHABET[fastrand::usize(..ID_ALPHABET.len())]))
            .collect();
        Self {
            id: format!("msg_{id}"),
            kind: kind.as_str().to_owned(),
            timestamp: Timestamp::from_second(now.as_second()).expect("cut from a valid time"),
            data,
        }
    }

    /// The `test` message of `notify test`, naming the host it was sent from (nothing secret).
    pub fn test(host: &str, now: Timestamp) -> Self {
        Self::new(
            Kind::Test,
            now,
            json!({"message": "tripletex-sync notify test", "host": host}),
        )
    }

    /// `check.verdict`: `shop`'s `outcome` was recorded at `checked_at`, its verdict `was`
    /// before (`null` for a first verdict) and is so `since`.
    pub fn verdict(
        shop: &str,
        outcome: &CheckOutcome,
        was: Verdict,
        since: Timestamp,
        checked_at: Timestamp,
    ) -> Self {
        let was = (was != Verdict::Unknown).then_some(was.as_str());
        Self::new(
            Kind::CheckVerdict,
            checked_at,
            json!({
                "shop": shop,
                "check": outcome.kind.as_str(),
                "verdict": outcome.verdict.as_str(),
                "was": was,
                "summary": outcome.summary,
                "fix": outcome.fix,
                "since": since,
                "checked_at": checked_at,
            }),
        )
    }

    /// `session.key_rejected`: Tripletex refused `shop`'s employee key; `remedy` says what to do.
    pub fn key_rejected(shop: &str, remedy: &str, now: Timestamp) -> Self {
        Self::new(
            Kind::KeyRejected,
            now,
            json!({"shop": shop, "remedy": remedy}),
        )
    }

    /// `session.key_accepted`: `shop`'s employee key works again.
    pub fn key_accepted(shop: &str, now: Timestamp) -> Self {
        Self::new(Kind::KeyAccepted, now, json!({"shop": shop}))
    }

    /// `consumer_token.expiring`: the integration's consumer token expires at `expires_at`.
    pub fn consumer_token_expiring(expires_at: Timestamp, days_left: i64, now: Timestamp) -> Self {
        Self::new(
            Kind::ConsumerTokenExpiring,
            now,
            json!({"expires_at": expires_at, "days_left": days_left}),
        )
    }

    /// `consumer_token.rejected`: Tripletex refused the consumer token; `remedy` says what to do.
    pub fn consumer_token_rejected(remedy: &str, now: Timestamp) -> Self {
        Self::new(Kind::ConsumerTokenRejected, now, json!({"remedy": remedy}))
    }

    /// The JSON body; signed and sent exactly as returned.
    pub fn body(&self) -> String {
        serde_json::to_string(&Body {
            kind: &self.kind,
            timestamp: self.timestamp,
            data: &self.data,
        })
        .expect("a JSON value and a timestamp serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-06T06:17:42.5Z".parse().unwrap()
    }

    #[test]
    fn ids_are_msg_and_26_base32_characters_and_differ() {
        let a = Message::test("web1", now());
        let b = Message::test("web1", now());
        for m in [&a, &b] {
            let rest = m.id.strip_prefix("msg_").unwrap();
            assert_eq!(rest.len(), ID_CHARS, "{}", m.id);
            assert!(rest.bytes().all(|c| ID_ALPHABET.contains(&c)), "{}", m.id);
        }
        assert_ne!(a.id, b.id);
        // Stable: the body does not touch the id, and a clone is the same message.
        assert_eq!(a.clone().id, a.id);
    }

    #[test]
    fn the_body_is_type_whole_second_rfc3339_and_data() {
        let m = Message::test("web1", now());
        let body: Value = serde_json::from_str(&m.body()).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "test",
                "timestamp": "2026-12-06T06:17:42Z",
                "data": {"message": "tripletex-sync notify test", "host": "web1"},
            })
        );
        assert_eq!(m.timestamp.as_second(), now().as_second());
    }
}

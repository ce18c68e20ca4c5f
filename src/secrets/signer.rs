//! The Standard Webhooks signer of notifications to the platform: the one place the notify
//! secret's text is read after loading. It checks the secret's format (`whsec_` + base64 of at
//! least [`MIN_SIGNING_KEY`] bytes), then keeps the key inside `standardwebhooks::Webhook`, which
//! never shows it (nor does [`Signer`]'s `Debug`).

use secrecy::{ExposeSecret, SecretString};

/// Fewest key bytes a notify secret may decode to (Standard Webhooks asks for 24 to 64).
pub const MIN_SIGNING_KEY: usize = 24;

/// Why a secret is no Standard Webhooks secret; never quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    #[error("does not start with whsec_")]
    NoPrefix,
    #[error("is not base64 after whsec_")]
    NotBase64,
    #[error("decodes to {0} bytes, fewer than {MIN_SIGNING_KEY}")]
    TooShort(usize),
}

/// Signs messages to the platform the Standard Webhooks way: `v1,` + base64 HMAC-SHA256 of
/// `id.timestamp.body`, keyed with the base64-decoded part of a `whsec_…` secret. Holds the key
/// (inside `standardwebhooks::Webhook`), never shows it.
pub struct Signer {
    webhook: standardwebhooks::Webhook,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([REDACTED])")
    }
}

impl Signer {
    /// Checks the format (`whsec_` + standard base64 of at least [`MIN_SIGNING_KEY`] bytes)
    /// before the library sees it: `standardwebhooks` takes the prefix as optional and any key
    /// length, and a typo there would only show as the platform refusing every message.
    pub fn new(secret: &SecretString) -> Result<Self, SigningKeyError> {
        use base64::Engine as _;
        let text = secret.expose_secret();
        let encoded = text
            .strip_prefix("whsec_")
            .ok_or(SigningKeyError::NoPrefix)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SigningKeyError::NotBase64)?;
        if key.len() < MIN_SIGNING_KEY {
            return Err(SigningKeyError::TooShort(key.len()));
        }
        let webhook =
            standardwebhooks::Webhook::new(text).map_err(|_| SigningKeyError::NotBase64)?;
        Ok(Self { webhook })
    }

    /// The `webhook-signature` header of `body` sent as message `id` at unix second `timestamp`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        self.webhook
            .sign(id, timestamp, body.as_bytes())
            // The library refuses only a payload that is not UTF-8, which a &str cannot be.
            .expect("a str payload is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example, and its refusals without the secret.
    #[test]
    fn signs_like_the_standard_and_refuses_other_formats() {
        let s = |t: &str| SecretString::from(t.to_owned());
        let signer = Signer::new(&s("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")).unwrap();
        assert_eq!(
            signer.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                r#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        assert!(!format!("{signer:?}").contains("C2FV"));
        for (bad, wants) in [
            (
                "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                SigningKeyError::NoPrefix,
            ),
            ("whsec_C2FVsBQI!!!", SigningKeyError::NotBase64),
            // 23 bytes: one short.
            (
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                SigningKeyError::TooShort(23),
            ),
        ] {
            assert_eq!(Signer::new(&s(bad)).unwrap_err(), wants, "{bad}");
        }
        // 24 bytes: the edge.
        assert!(Signer::new(&s("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).is_ok());
    }
}

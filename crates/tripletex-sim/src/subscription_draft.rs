//! What a client sends as a `Subscription` body: reading it, laying it over the current
//! subscription (a `PUT` is partial) and validating the result as a whole.
//!
//! Invariants: every refusal is a 422 naming the field, and no message ever echoes
//! `authHeaderValue` or `hmacSharedSecret`; a target URL is absolute and HTTPS, except that plain
//! `http://` to a loopback host is allowed so tests can receive callbacks; a client may set
//! `status` only to `ACTIVE` or `DISABLED` (the `DISABLED_*` states are Tripletex's verdicts, and
//! `DISABLED_MISUSE` cannot be lifted by the client), or echo the current one unchanged.

use std::net::IpAddr;

use hyper::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use url::{Host, Url};

use super::api::Request;
use super::error::ApiError;
use super::events::{self, EventInfo};
use super::fields::Selection;
use super::subscriptions::{AuthHeader, Subscription, SubscriptionStatus};

/// A subscription as the client wants it: the body's fields over the current ones (a `PUT` is
/// partial), validated as a whole.
pub(crate) struct Draft {
    pub(crate) event: &'static EventInfo,
    pub(crate) target_url: Url,
    pub(crate) fields: Option<String>,
    pub(crate) selection: Selection,
    pub(crate) status: SubscriptionStatus,
    pub(crate) auth_header: Option<AuthHeader>,
    pub(crate) hmac_shared_secret: Option<SecretString>,
}

impl Draft {
    pub(crate) fn read(
        body: &Map<String, Value>,
        current: Option<&Subscription>,
    ) -> Result<Self, ApiError> {
        let event = match (text(body, "event")?, current) {
            (Some(name), _) => events::find(name.trim())
                .ok_or_else(|| ApiError::validation("event", "Ukjent hendelse. Se /v2/event."))?,
            (None, Some(current)) => current.event,
            (None, None) => return Err(ApiError::missing("event")),
        };
        let target_url = match (text(body, "targetUrl")?, current) {
            (Some(url), _) => target_url(url)?,
            (None, Some(current)) => current.target_url.clone(),
            (None, None) => return Err(ApiError::missing("targetUrl")),
        };
        let fields = match text(body, "fields")? {
            Some(fields) => Some(fields.to_owned()).filter(|f| !f.trim().is_empty()),
            None => current.and_then(|c| c.fields.clone()),
        };
        let selection = Selection::parse(fields.as_deref())
            .and_then(|selection| match event.sample() {
                Some(sample) => selection.validate(&sample).map(|()| selection),
                None => Ok(selection),
            })
            .map_err(|error| ApiError::validation("fields", &error.message))?;
        let current_status = current.map(|c| c.status);
        let status = match text(body, "status")? {
            // Echoing the object back unchanged is fine, whatever its status.
            Some(sent) if current_status.is_some_and(|s| s.as_str() == sent) => {
                current_status.unwrap_or(SubscriptionStatus::Active)
            }
            Some("ACTIVE") if current_status == Some(SubscriptionStatus::DisabledMisuse) => {
                return Err(ApiError::validation(
                    "status",
                    "Abonnementet er sperret for misbruk og kan ikke aktiveres.",
                ));
            }
            Some("ACTIVE") => SubscriptionStatus::Active,
            Some("DISABLED") => SubscriptionStatus::Disabled,
            Some(_) => {
                return Err(ApiError::validation(
                    "status",
                    "Kan bare settes til ACTIVE eller DISABLED.",
                ));
            }
            None => current_status.unwrap_or(SubscriptionStatus::Active),
        };
        let name = text(body, "authHeaderName")?
            .map(str::to_owned)
            .or_else(|| current.and_then(|c| c.auth_header.as_ref().map(|h| h.name.clone())));
        let value = text(body, "authHeaderValue")?
            .map(|value| SecretString::from(value.to_owned()))
            .or_else(|| current.and_then(|c| c.auth_header.as_ref().map(|h| h.value.clone())));
        let hmac_shared_secret = text(body, "hmacSharedSecret")?
            .map(|value| SecretString::from(value.to_owned()))
            .or_else(|| current.and_then(|c| c.hmac_shared_secret.clone()));
        Ok(Self {
            event,
            target_url,
            fields,
            selection,
            status,
            auth_header: auth_header(name, value)?,
            hmac_shared_secret,
        })
    }
}

fn auth_header(
    name: Option<String>,
    value: Option<SecretString>,
) -> Result<Option<AuthHeader>, ApiError> {
    match (name, value) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ApiError::missing("authHeaderValue")),
        (None, Some(_)) => Err(ApiError::missing("authHeaderName")),
        (Some(name), Some(value)) => {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ApiError::validation(
                    "authHeaderName",
                    "Ugyldig navn på HTTP-header.",
                ));
            }
            // The message must not echo the value: it is a secret.
            if HeaderValue::from_str(value.expose_secret()).is_err() {
                return Err(ApiError::validation(
                    "authHeaderValue",
                    "Ugyldig verdi for HTTP-header.",
                ));
            }
            Ok(Some(AuthHeader { name, value }))
        }
    }
}

/// Absolute, with a host, and HTTPS; `http://` only to a loopback host (the simulator's own
/// allowance for tests; Tripletex itself insists on HTTPS).
fn target_url(text: &str) -> Result<Url, ApiError> {
    let invalid = |message| ApiError::validation("targetUrl", message);
    let url = Url::parse(text.trim()).map_err(|_| invalid("Må være en absolutt URL."))?;
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return Err(invalid("Må være en absolutt URL.")),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(invalid("Må bruke HTTPS.")),
    }
}

/// A string field: `None` when absent or null, 422 when another type.
fn text<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::validation(name, "Må være en tekst.")),
    }
}

pub(crate) fn json_body(request: &Request) -> Result<Value, ApiError> {
    serde_json::from_slice(&request.body)
        .map_err(|_| ApiError::new(422, 22000, "Request body is not valid JSON"))
}

pub(crate) fn object(value: &Value) -> Result<&Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::new(422, 16000, "Expected a Subscription object"))
}

pub(crate) fn array(value: &Value) -> Result<&Vec<Value>, ApiError> {
    value
        .as_array()
        .ok_or_else(|| ApiError::new(422, 16000, "Expected a list of Subscription objects"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_are_absolute_https_or_loopback_http() {
        assert!(target_url("https://sync.example.com/hook").is_ok());
        assert!(target_url("https://user:pw@sync.example.com/hook").is_ok());
        assert!(target_url("http://127.0.0.1:8788/hook").is_ok());
        assert!(target_url("http://[::1]:8788/hook").is_ok());
        assert!(target_url("http://localhost/hook").is_ok());
        for bad in [
            "/relative",
            "sync.example.com/hook",
            "http://sync.example.com/hook",
            "ftp://127.0.0.1/x",
            "",
        ] {
            let error = target_url(bad).unwrap_err();
            assert_eq!((error.status, error.code), (422, 18000), "{bad}");
        }
    }

    #[test]
    fn header_errors_never_echo_the_value() {
        let error = auth_header(
            Some("X-Hook".into()),
            Some(SecretString::from("bad\nsecret")),
        )
        .unwrap_err();
        assert!(!format!("{error:?}").contains("secret"));
    }
}

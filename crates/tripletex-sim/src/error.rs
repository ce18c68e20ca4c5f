//! `ApiError`: the one error body shape every failing simulator response uses.
//!
//! Invariants: `requestId` in the body always equals the response's `x-tlx-request-id` header
//! (the server fills it in when rendering); messages never contain a token.

use serde_json::{Value, json};

/// A Tripletex error response before it gets its request id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} (code {code}): {message}")]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: u32,
    pub(crate) message: String,
    /// `(field, message)` pairs; rendered as `null` when empty, like Tripletex.
    pub(crate) validation: Vec<(String, String)>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            validation: Vec::new(),
        }
    }

    /// An injected or otherwise bare status: Tripletex's documented code for it, if any.
    pub(crate) fn from_status(status: u16) -> Self {
        let (code, message) = match status {
            400 => (4000, "Bad request"),
            401 => (3000, "Unauthorized"),
            403 => (9000, "Forbidden"),
            404 => (6000, "Object not found"),
            409 => (7000, "Conflict"),
            422 => (18000, "Validation failed"),
            429 => (0, "Too many requests"),
            500 => (1000, "Internal error"),
            503 => (0, "Service unavailable"),
            _ => (0, "Simulated failure"),
        };
        Self::new(status, code, message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(404, 6000, "Object not found")
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(401, 3000, message)
    }

    pub(crate) fn forbidden(message: &str) -> Self {
        Self::new(403, 9000, message)
    }

    pub(crate) fn too_many_requests() -> Self {
        Self::from_status(429)
    }

    /// 422 code 18000 naming the offending field.
    pub(crate) fn validation(field: &str, message: &str) -> Self {
        Self {
            validation: vec![(field.to_owned(), message.to_owned())],
            ..Self::new(422, 18000, "Validering feilet.")
        }
    }

    pub(crate) fn missing(field: &str) -> Self {
        Self::validation(field, "Kan ikke være null.")
    }

    pub(crate) fn illegal_field(message: String) -> Self {
        Self::new(400, 11000, message)
    }

    pub(crate) fn illegal_sorting(message: String) -> Self {
        Self::new(422, 17000, message)
    }

    pub(crate) fn body(&self, request_id: &str) -> Value {
        let validation = if self.validation.is_empty() {
            Value::Null
        } else {
            self.validation
                .iter()
                .map(|(field, message)| {
                    json!({"field": field, "message": message, "path": null, "rootId": null})
                })
                .collect()
        };
        json!({
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "link": "https://tripletex.no/v2-docs/",
            "developerMessage": null,
            "validationMessages": validation,
            "requestId": request_id,
        })
    }
}

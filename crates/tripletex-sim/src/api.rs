//! Routing and caller identification: which operation a request is, and which
//! (consumer, employee) pair it belongs to for rate limiting and fault matching.
//!
//! Invariants: paths here are already percent-decoded and relative to `/v2`; anything not routed
//! is a 404 with code 6000; identification never fails a request (that is authentication's job,
//! in `session.rs`), it only decides whose window and faults apply.

use bytes::Bytes;
use hyper::Method;
use jiff::Timestamp;
use serde_json::Value;

use super::error::ApiError;
use super::events::{self, EventRoute};
use super::state::World;
use super::{records, session};

/// What the server hands to the handlers. Its `Debug` shows no query, body or header: they may
/// carry tokens or webhook secrets.
pub(crate) struct Request {
    pub(crate) method: Method,
    /// Decoded, relative to `/v2`, e.g. `/token/session/>whoAmI`.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) authorization: Option<String>,
    pub(crate) if_none_match: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// The last value of query parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A handler's answer, before headers and request id.
#[derive(Debug)]
pub(crate) enum Reply {
    Json(u16, Value),
    Empty(u16),
    Error(ApiError),
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        Reply::Error(error)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    CreateSession { legacy: bool },
    WhoAmI,
    ConsumerToken,
    DeleteSession(String),
    Customers,
    Invoices,
    Events(EventRoute),
}

impl Route {
    pub(crate) fn find(method: &Method, path: &str) -> Option<Route> {
        if let Some(route) = EventRoute::find(method, path) {
            return Some(Route::Events(route));
        }
        let route = match (method, path) {
            (&Method::POST, "/token/session/:create") => Route::CreateSession { legacy: false },
            (&Method::PUT, "/token/session/:create") => Route::CreateSession { legacy: true },
            (&Method::GET, "/token/session/>whoAmI") => Route::WhoAmI,
            (&Method::GET, "/token/consumer/byToken") => Route::ConsumerToken,
            (&Method::GET, "/customer") => Route::Customers,
            (&Method::GET, "/invoice") => Route::Invoices,
            (&Method::DELETE, _) => {
                let token = path.strip_prefix("/token/session/")?;
                if token.is_empty() || token.contains('/') {
                    return None;
                }
                Route::DeleteSession(token.to_owned())
            }
            _ => return None,
        };
        Some(route)
    }
}

/// The caller as far as rate limiting and faults care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) consumer_token: String,
    pub(crate) employee_token: String,
}

/// Who is calling: the tokens in a `:create` request when both are known, else the session's
/// tokens when the Basic password is a session we minted (live or not).
pub(crate) fn identify(world: &World, route: &Route, request: &Request) -> Option<Identity> {
    match route {
        Route::CreateSession { legacy } => {
            let credentials = session::Credentials::read(request, *legacy).ok()?;
            let known = world.consumers.contains_key(&credentials.consumer_token)
                && world.employees.contains_key(&credentials.employee_token);
            known.then_some(Identity {
                consumer_token: credentials.consumer_token,
                employee_token: credentials.employee_token,
            })
        }
        _ => {
            let (_, token) = session::basic_credentials(request.authorization.as_deref()?)?;
            let found = world.sessions.get(&token)?;
            Some(Identity {
                consumer_token: found.consumer_token.clone(),
                employee_token: found.employee_token.clone(),
            })
        }
    }
}

/// Runs the operation.
pub(crate) fn handle(world: &mut World, route: &Route, request: &Request, now: Timestamp) -> Reply {
    let outcome = match route {
        Route::CreateSession { legacy } => session::create(world, request, *legacy),
        Route::WhoAmI => session::authenticate(world, request, now)
            .and_then(|caller| session::who_am_i(world, &caller, request)),
        Route::ConsumerToken => session::authenticate(world, request, now)
            .and_then(|_| session::consumer_token(world, request)),
        Route::DeleteSession(token) => session::authenticate(world, request, now)
            .and_then(|caller| session::delete(world, &caller, token)),
        Route::Customers => session::authenticate(world, request, now)
            .and_then(|caller| records::customers(world, &caller, request)),
        Route::Invoices => session::authenticate(world, request, now)
            .and_then(|caller| records::invoices(world, &caller, request)),
        Route::Events(route) => events::handle(world, route, request, now),
    };
    outcome.unwrap_or_else(Reply::Error)
}

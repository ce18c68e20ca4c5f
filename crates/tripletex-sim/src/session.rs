//! Session tokens: minting (`:create`, POST and legacy PUT), HTTP Basic authentication,
//! `>whoAmI` and `DELETE /token/session/{token}`.
//!
//! Invariants: a session minted with `expirationDate = D` authenticates only while
//! `now < 00:00 Europe/Oslo at the start of D` (by the injected clock), so a date of today or
//! earlier yields a token that is dead on arrival, as on the real API; a revoked employee token
//! kills its sessions; tokens never appear in an error message.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Value, json};

use super::URL_BASE;
use super::api::{Reply, Request};
use super::error::ApiError;
use super::faults::has_path_prefix;
use super::fields::Selection;
use super::state::{Session, World};
use oslo_clock::oslo_midnight;

/// The three values `:create` takes, from the JSON body (POST) or the query (legacy PUT).
#[derive(Debug)]
pub(crate) struct Credentials {
    pub(crate) consumer_token: String,
    pub(crate) employee_token: String,
    pub(crate) expiration_date: Option<String>,
}

impl Credentials {
    pub(crate) fn read(request: &Request, legacy: bool) -> Result<Self, ApiError> {
        if legacy {
            let text = |name| request.param(name).unwrap_or_default().to_owned();
            return Ok(Self {
                consumer_token: text("consumerToken"),
                employee_token: text("employeeToken"),
                expiration_date: request.param("expirationDate").map(str::to_owned),
            });
        }
        let body: Value = serde_json::from_slice(&request.body)
            .map_err(|_| ApiError::new(400, 4000, "Request body is not valid JSON"))?;
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            consumer_token: text("consumerToken").unwrap_or_default(),
            employee_token: text("employeeToken").unwrap_or_default(),
            expiration_date: text("expirationDate"),
        })
    }
}

/// `Basic base64(user:password)` → (user, password).
pub(crate) fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Mints whatever date it is given: a date of today or earlier gives a token that is dead on
/// arrival rather than an error (observed on api-test).
pub(crate) fn create(
    world: &mut World,
    request: &Request,
    legacy: bool,
) -> Result<Reply, ApiError> {
    let credentials = Credentials::read(request, legacy)?;
    let expiration = match credentials.expiration_date.as_deref().map(str::trim) {
        None | Some("") => return Err(ApiError::missing("expirationDate")),
        Some(text) => text
            .parse::<Date>()
            .map_err(|_| ApiError::validation("expirationDate", "Ugyldig dato."))?,
    };
    // Tripletex answers an unknown token with a validation error naming the argument
    // (Tripletex/tripletex-api2 issue #53: `arg:consumerToken`, "… is invalid or does not exist.").
    let Some(&consumer_id) = world.consumers.get(&credentials.consumer_token) else {
        return Err(ApiError::validation(
            "arg:consumerToken",
            "The consumer token is invalid or does not exist.",
        ));
    };
    let employee = match world.employees.get(&credentials.employee_token) {
        Some(employee) if !employee.revoked => employee,
        _ => {
            return Err(ApiError::validation(
                "arg:employeeToken",
                "The employee token is invalid or does not exist.",
            ));
        }
    };
    let (employee_id, company_id) = (employee.id, employee.company_id);
    check_integrations(world, company_id)?;
    let id = world.next_id();
    let token = mint_token(id);
    world.sessions.insert(
        token.clone(),
        Session {
            consumer_token: credentials.consumer_token,
            employee_token: credentials.employee_token,
            company_id,
            expiration,
        },
    );
    let status = if legacy { 200 } else { 201 };
    Ok(Reply::Json(
        status,
        json!({"value": {
            "id": id,
            "version": 0,
            "url": format!("{URL_BASE}/token/session/{id}"),
            "consumerToken": {"id": consumer_id},
            "employeeToken": {"id": employee_id},
            "expirationDate": expiration.to_string(),
            "token": token,
        }}),
    ))
}

/// Looks like Tripletex's: base64 of a small JSON with the token id and a random part.
fn mint_token(id: i64) -> String {
    let random: String = (0..4)
        .map(|_| format!("{:08x}", fastrand::u32(..)))
        .collect::<Vec<_>>()
        .join("-");
    STANDARD.encode(format!(r#"{{"tokenId":{id},"token":"{random}"}}"#))
}

fn check_integrations(world: &World, company_id: i64) -> Result<(), ApiError> {
    let enabled = world
        .companies
        .get(&company_id)
        .is_some_and(|company| company.integrations_enabled);
    if enabled {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "The company does not have the Integrations add-on (Integrasjoner) activated",
        ))
    }
}

/// The authenticated caller of a request.
#[derive(Debug)]
pub(crate) struct Caller {
    pub(crate) company_id: i64,
    pub(crate) employee_id: i64,
    /// The id of the employee token the session came from (webhook subscriptions belong to it).
    pub(crate) token_id: i64,
}

pub(crate) fn authenticate(
    world: &World,
    request: &Request,
    now: Timestamp,
) -> Result<Caller, ApiError> {
    let unauthorized = || ApiError::unauthorized("Unauthorized");
    let (user, token) = request
        .authorization
        .as_deref()
        .and_then(basic_credentials)
        .ok_or_else(unauthorized)?;
    let session = world.sessions.get(&token).ok_or_else(unauthorized)?;
    if now >= oslo_midnight(session.expiration) {
        return Err(unauthorized());
    }
    let employee = match world.employees.get(&session.employee_token) {
        Some(employee) if !employee.revoked => employee,
        _ => return Err(unauthorized()),
    };
    let user = user.trim();
    if !(user.is_empty() || user == "0" || user == session.company_id.to_string()) {
        return Err(unauthorized());
    }
    check_integrations(world, session.company_id)?;
    if employee
        .denied
        .iter()
        .any(|prefix| has_path_prefix(&request.path, prefix))
    {
        return Err(ApiError::forbidden(
            "You do not have access to this resource",
        ));
    }
    Ok(Caller {
        company_id: session.company_id,
        employee_id: employee.employee_id,
        token_id: employee.id,
    })
}

pub(crate) fn who_am_i(
    world: &World,
    caller: &Caller,
    request: &Request,
) -> Result<Reply, ApiError> {
    let company_name = world
        .companies
        .get(&caller.company_id)
        .map(|company| company.name.as_str())
        .unwrap_or_default();
    let info = json!({
        "employeeId": caller.employee_id,
        "actualEmployeeId": caller.employee_id,
        "employee": {"id": caller.employee_id, "url": format!("{URL_BASE}/employee/{}", caller.employee_id)},
        "companyId": caller.company_id,
        "company": {"id": caller.company_id, "name": company_name, "url": format!("{URL_BASE}/company/{}", caller.company_id)},
        "language": "no",
        "loggedInWithConnect": false,
        "employeeIsProxy": false,
    });
    let fields = Selection::parse(request.param("fields"))?;
    fields.validate(&info)?;
    Ok(Reply::Json(200, json!({"value": fields.apply(&info)})))
}

/// `GET /token/consumer/byToken?token=`: the consumer token's record, with its
/// `expirationDate` (null when it does not expire); an unknown token is not found.
pub(crate) fn consumer_token(world: &World, request: &Request) -> Result<Reply, ApiError> {
    let token = request
        .param("token")
        .ok_or_else(|| ApiError::missing("token"))?;
    let id = *world.consumers.get(token).ok_or_else(ApiError::not_found)?;
    let expires = world.consumer_expiry.get(token).map(|d| d.to_string());
    let record = json!({
        "id": id,
        "version": 0,
        "url": format!("{URL_BASE}/token/consumer/{id}"),
        "apiConsumer": {"id": id, "url": format!("{URL_BASE}/token/consumer/{id}")},
        "token": token,
        "expirationDate": expires,
    });
    let fields = Selection::parse(request.param("fields"))?;
    fields.validate(&record)?;
    Ok(Reply::Json(200, json!({"value": fields.apply(&record)})))
}

/// Deletes `token` if it is a session of the caller's company (deleting another company's
/// session would be a cross-tenant hole, so that looks like "not found").
pub(crate) fn delete(world: &mut World, caller: &Caller, token: &str) -> Result<Reply, ApiError> {
    let owned = world
        .sessions
        .get(token)
        .is_some_and(|session| session.company_id == caller.company_id);
    if !owned {
        return Err(ApiError::not_found());
    }
    world.sessions.remove(token);
    Ok(Reply::Empty(204))
}

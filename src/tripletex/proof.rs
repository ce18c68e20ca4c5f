//! What proves a freshly minted session token, before the session puts it in use:
//! `GET /token/session/>whoAmI` answers 200 naming a positive `employeeId` and `companyId`, and
//! with the shop's `company_id` set, that company.
//!
//! Invariants: an answer without both ids is a malformed answer, never a proof; a key that logs
//! in to another company than the shop's is a rejected key naming both companies
//! ([`KeyRefusal::OtherCompany`], logged as `session.wrong_company`), whether Tripletex says so
//! with a whoAmI of that company or with a 401 to the shop's (then a whoAmI as the key's owner
//! tells which company it is); the token is only sent, never logged nor put in an error.

use reqwest::StatusCode;

use super::body::read_json;
use super::error::{KeyRefusal, TripletexError};
use super::model::WhoAmI;
use super::observer::SESSION_WHOAMI;
use super::pipeline::{Auth, Call, Pipeline};

/// The path of whoAmI.
const WHO_AM_I: &str = "/token/session/>whoAmI";

/// `GET /token/session/>whoAmI` with a new token: it works, it names its employee and company,
/// and the company is the shop's `company_id` (when set). With `company_id` set, a 401 may mean
/// the key cannot reach that company rather than a dead token: whoAmI as the key's owner tells.
pub(super) async fn prove(pipe: &Pipeline, auth: Auth<'_>) -> Result<WhoAmI, TripletexError> {
    let configured = pipe.company_id;
    let who = match who_am_i(pipe, auth, false).await? {
        Some(who) => who,
        // The token died at once: Tripletex and we disagree about the date. Never use it.
        None if configured == 0 => return Err(TripletexError::Unauthorized),
        None => match who_am_i(pipe, auth, true).await? {
            Some(own) if own.company_id != configured => own,
            _ => return Err(TripletexError::Unauthorized),
        },
    };
    if configured != 0 && who.company_id != configured {
        tracing::warn!(
            event = "session.wrong_company",
            shop = %pipe.name,
            company_id = configured,
            key_company_id = who.company_id,
            "the employee key logs in to another company than the shop's company_id; session refused"
        );
        return Err(TripletexError::KeyRejected(KeyRefusal::OtherCompany {
            shop: pipe.name.clone(),
            configured,
            actual: who.company_id,
        }));
    }
    Ok(who)
}

/// One whoAmI, as the shop's company or (`as_key_owner`) the key owner's; `None` on a 401.
async fn who_am_i(
    pipe: &Pipeline,
    auth: Auth<'_>,
    as_key_owner: bool,
) -> Result<Option<WhoAmI>, TripletexError> {
    let query = [("fields", "employeeId,companyId".to_owned())];
    let call = Call {
        as_key_owner,
        ..Call::get(SESSION_WHOAMI, WHO_AM_I, &query)
    };
    let who = pipe.send(&call, Some(auth)).await?;
    if who.status() == StatusCode::UNAUTHORIZED {
        return Ok(None);
    }
    if who.status() == StatusCode::FORBIDDEN {
        return Err(TripletexError::Forbidden {
            access: "read its own login (whoAmI)".into(),
        });
    }
    let answer: serde_json::Value = read_json(who, pipe.api.settings.max_body).await?;
    WhoAmI::parse(&answer)
        .map(Some)
        .map_err(|reason| TripletexError::Malformed {
            path: WHO_AM_I.to_owned(),
            reason,
        })
}

//! Who is calling an admin endpoint: the one place authentication sits.
//!
//! Every admin operation takes an [`AdminSession`] as its first parameter. It is a
//! poem-openapi security scheme, so the OpenAPI document marks the operation as secured and
//! poem-openapi runs [`check_session`] before the handler (and before its body is parsed):
//!
//! 1. the session cookie must decrypt, and the session it names must be live in Postgres
//!    (not logged out, not expired), else 401;
//! 2. a state-changing request (anything but GET, HEAD, OPTIONS) must carry the session's
//!    CSRF token in `X-CSRF-Token`, else 403;
//! 3. the session must be within its rate limit, else 429.
//!
//! The handler then attributes what it does with [`AdminSession::actor`].

use poem::Request;
use poem_openapi::auth::ApiKey;
use poem_openapi::payload::Json;
use poem_openapi::SecurityScheme;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::errors::{ApiError, ApiFailure};
use super::{session_cookie, AppState};
use crate::auth::Session;
use crate::event_store::Actor;

/// The header a state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The name of [`AdminSession`]'s security scheme in the OpenAPI document.
pub const SESSION_SCHEME: &str = "AdminSession";

/// An admin session: the `botfleet_session` cookie set by `POST /auth/login`. Requests
/// other than GET must also send the session's `csrf_token` (from the login answer or
/// `GET /auth/me`) in the `X-CSRF-Token` header.
#[derive(SecurityScheme)]
#[oai(
    rename = "AdminSession",
    ty = "api_key",
    key_name = "botfleet_session",
    key_in = "cookie",
    checker = "check_session"
)]
pub struct AdminSession(pub Session);

impl AdminSession {
    /// The admin, as the actor of the events this request causes.
    pub fn actor(&self) -> Actor {
        Actor::Admin(Some(self.0.admin_id))
    }

    pub fn admin_id(&self) -> Uuid {
        self.0.admin_id
    }
}

/// Run by poem-openapi for every operation that takes an [`AdminSession`]; the cookie's
/// presence was checked already (its absence is a 401 from poem-openapi).
async fn check_session(request: &Request, _cookie: ApiKey) -> poem::Result<Session> {
    let state = request.data::<AppState>().ok_or_else(|| {
        tracing::error!("the application state is not attached to the request");
        poem::Error::from(ApiFailure::Internal(Json(ApiError::new(
            "internal",
            "an internal error occurred; it has been logged",
        ))))
    })?;
    let token = session_cookie::read(request)
        .ok_or_else(|| ApiFailure::unauthorized("the session cookie is not valid; log in again"))?;
    let session = state
        .auth
        .sessions
        .find(&token)
        .await
        .map_err(|e| ApiFailure::internal("looking up a session failed", &e))?
        .ok_or_else(|| {
            ApiFailure::unauthorized("the session has ended or expired; log in again")
        })?;
    if !request.method().is_safe() {
        let given = request.header(CSRF_HEADER).unwrap_or_default();
        let expected = session.csrf_token.expose();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ApiFailure::Forbidden(Json(ApiError::new(
                "csrf",
                format!(
                    "a {} request needs the session's CSRF token in {CSRF_HEADER}",
                    request.method()
                ),
            )))
            .into());
        }
    }
    state
        .limits
        .per_session
        .check(session.id)
        .map_err(|retry| {
            ApiFailure::too_many_requests("too many requests in this session; slow down", retry)
        })?;
    tracing::Span::current().record("admin_id", tracing::field::display(session.admin_id));
    Ok(session)
}

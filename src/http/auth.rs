//! `/auth`: logging in and out, and who the session belongs to.
//!
//! The session token travels only in the encrypted cookie; what the answers carry is the
//! admin, the session's expiry, and the CSRF token that state-changing requests must echo.

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use aggregates::text::InvalidField;

use super::errors::{error_responses, ApiError, ApiFailure};
use super::guard::AdminSession;
use super::limits::ClientIp;
use super::strict_json::Strict;
use super::{session_cookie, ApiTags, Wired};
use crate::auth::accounts::AdminEmail;
use crate::auth::{passwords, Auth, LoginError, Session};
use crate::secrets::Redacted;

/// An admin's credentials. (No `Debug`: it holds a password.)
#[derive(Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    #[oai(write_only)]
    pub password: String,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AdminView {
    pub id: Uuid,
    pub email: String,
}

/// The session just started, or the current one.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionView {
    pub admin: AdminView,
    /// Send it back in the `X-CSRF-Token` header of every POST, PUT, PATCH and DELETE.
    pub csrf_token: String,
    /// The session ends then, or at logout, whichever comes first.
    pub expires_at: DateTime<Utc>,
}

impl From<Session> for SessionView {
    fn from(session: Session) -> Self {
        Self {
            admin: AdminView {
                id: session.admin_id,
                email: session.email,
            },
            csrf_token: session.csrf_token.expose().to_owned(),
            expires_at: session.expires_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum SessionResponse {
    #[oai(status = 200)]
    Ok(Json<SessionView>),
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// The session is over; the cookie is cleared.
    #[oai(status = 204)]
    LoggedOut,
}

error_responses! {
    /// What `POST /auth/login` answers when it does not succeed.
    pub enum LoginFailure {
        BadRequest, Unauthorized, PayloadTooLarge, UnsupportedMediaType, Unprocessable,
        TooManyRequests, Internal,
    }
}

error_responses! {
    /// What `POST /auth/logout` answers when it does not succeed.
    pub enum LogoutError { BadRequest, Unauthorized, Forbidden, TooManyRequests, Internal }
}

error_responses! {
    /// What `GET /auth/me` answers when it does not succeed.
    pub enum SessionError { BadRequest, Unauthorized, TooManyRequests, Internal }
}

/// What the auth API uses.
pub struct AuthDeps {
    pub auth: Auth,
    /// Whether the session cookie is marked Secure (PUBLIC_URL is https).
    pub secure_cookies: bool,
}

pub struct AuthApi(pub Wired<AuthDeps>);

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Log in
    ///
    /// Checks the email and password and sets the session cookie (HttpOnly, SameSite=Strict,
    /// Secure behind https). After five failures for one account or from one address,
    /// logins from it are refused with 429 for fifteen minutes.
    #[oai(path = "/auth/login", method = "post")]
    async fn login(
        &self,
        request: &Request,
        body: Json<Strict<LoginRequest>>,
    ) -> Result<SessionResponse, LoginFailure> {
        let body = body.0 .0;
        let email = AdminEmail::parse(&body.email)
            .map_err(|reason| ApiFailure::invalid(InvalidField::new("email", reason)))?;
        let password = Redacted::new(body.password);
        let length = password.expose().chars().count();
        if length == 0 || length > passwords::MAX_LENGTH {
            return Err(ApiFailure::invalid(InvalidField::new(
                "password",
                format!("must be 1 to {} characters", passwords::MAX_LENGTH),
            ))
            .into());
        }
        let ip = request.data::<ClientIp>().and_then(|ip| ip.0);
        let failure = match self.0.auth.login(&email, password, ip).await {
            Ok(logged_in) => {
                session_cookie::set(
                    request,
                    &logged_in.token,
                    self.0.auth.sessions.ttl(),
                    self.0.secure_cookies,
                );
                return Ok(SessionResponse::Ok(Json(logged_in.session.into())));
            }
            Err(LoginError::Invalid) => ApiFailure::Unauthorized(Json(ApiError::new(
                "invalid_credentials",
                "the email or password is wrong",
            ))),
            Err(LoginError::Locked(retry)) => ApiFailure::too_many_requests(
                "too many failed logins for this account or address; try again later",
                retry,
            ),
            Err(LoginError::Store(e)) => ApiFailure::internal("logging in failed", &e),
        };
        Err(failure.into())
    }

    /// Log out
    ///
    /// Ends the session on the server (the cookie stops working everywhere) and clears it.
    #[oai(path = "/auth/logout", method = "post")]
    async fn logout(
        &self,
        auth: AdminSession,
        request: &Request,
    ) -> Result<LogoutResponse, LogoutError> {
        self.0
            .auth
            .sessions
            .end(auth.0.id)
            .await
            .map_err(|e| ApiFailure::internal("ending a session failed", &e))?;
        session_cookie::clear(request, self.0.secure_cookies);
        tracing::info!(admin_id = %auth.admin_id(), "admin logged out");
        Ok(LogoutResponse::LoggedOut)
    }

    /// The current session
    ///
    /// Who is logged in, until when, and the CSRF token to send with writes.
    #[oai(path = "/auth/me", method = "get")]
    async fn me(&self, auth: AdminSession) -> Result<SessionResponse, SessionError> {
        Ok(SessionResponse::Ok(Json(auth.0.into())))
    }
}

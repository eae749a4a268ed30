//! `/admins`, `/auth/password` and `/lockouts`: the admins administering themselves.
//!
//! Admin accounts are plain tables, not events (see migration 0010): what is recorded is who
//! added or disabled an account (`created_by`, `disabled_by`) and a log line.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use aggregates::text::InvalidField;

use super::errors::{error_responses, ApiFailure};
use super::guard::AdminSession;
use super::strict_json::Strict;
use super::{ApiTags, Wired};
use crate::auth::accounts::{AdminEmail, CreateAdminError};
use crate::auth::admins::{self, AdminAccount, DisableError, PasswordError};
use crate::auth::{passwords, throttle};
use crate::secrets::Redacted;

/// An admin account (never its password).
#[derive(Debug, Clone, Object)]
pub struct AdminAccountView {
    pub id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    /// Who added the account (`admin:<id>`); absent for the first admin and the CLI's.
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<String>,
    /// Set while the account is disabled: it cannot log in.
    #[oai(skip_serializing_if_is_none)]
    pub disabled_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub disabled_by: Option<String>,
    /// Sessions live now.
    pub live_sessions: i64,
}

impl From<AdminAccount> for AdminAccountView {
    fn from(row: AdminAccount) -> Self {
        Self {
            id: row.id,
            email: row.email,
            created_at: row.created_at,
            created_by: row.created_by,
            disabled_at: row.disabled_at,
            disabled_by: row.disabled_by,
            live_sessions: row.live_sessions,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct AdminList {
    pub items: Vec<AdminAccountView>,
}

/// A new admin. (No `Debug`: it holds a password.)
#[derive(Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct NewAdminRequest {
    pub email: String,
    /// At least 12 characters.
    #[oai(write_only)]
    pub password: String,
}

/// A password change. (No `Debug`: it holds passwords.)
#[derive(Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    #[oai(write_only)]
    pub current_password: String,
    /// At least 12 characters.
    #[oai(write_only)]
    pub new_password: String,
}

/// Logins from this account or address are refused until `locked_until`.
#[derive(Debug, Clone, Object)]
pub struct LockoutView {
    /// `account:<email>` or `ip:<address>`.
    pub subject: String,
    pub locked_until: DateTime<Utc>,
}

impl From<throttle::Lockout> for LockoutView {
    fn from(row: throttle::Lockout) -> Self {
        Self {
            subject: row.subject,
            locked_until: row.locked_until,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct LockoutList {
    pub items: Vec<LockoutView>,
}

#[derive(ApiResponse)]
pub enum AdminListResponse {
    #[oai(status = 200)]
    Ok(Json<AdminList>),
}

#[derive(ApiResponse)]
pub enum AdminCreatedResponse {
    /// The admin can log in.
    #[oai(status = 201)]
    Created(Json<AdminAccountView>),
}

#[derive(ApiResponse)]
pub enum AdminResponse {
    #[oai(status = 200)]
    Ok(Json<AdminAccountView>),
}

#[derive(ApiResponse)]
pub enum PasswordChangedResponse {
    /// Changed; the admin's other sessions have ended.
    #[oai(status = 204)]
    Changed,
}

#[derive(ApiResponse)]
pub enum LockoutListResponse {
    #[oai(status = 200)]
    Ok(Json<LockoutList>),
}

#[derive(ApiResponse)]
pub enum LockoutLiftedResponse {
    /// The lock is lifted and its failures forgotten.
    #[oai(status = 204)]
    Lifted,
}

error_responses! {
    /// What `GET /admins` and `GET /lockouts` answer when they do not succeed.
    pub enum AdminReadError { BadRequest, Unauthorized, TooManyRequests, Internal }
}

error_responses! {
    /// What `POST /admins` answers when it does not succeed.
    pub enum AdminCreateError {
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType,
        Unprocessable, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What disabling or enabling an admin answers when it does not succeed.
    pub enum AdminActionError {
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What `POST /auth/password` answers when it does not succeed.
    pub enum PasswordChangeError {
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType,
        Unprocessable, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What `DELETE /lockouts/{subject}` answers when it does not succeed.
    pub enum LockoutLiftError {
        BadRequest, Unauthorized, Forbidden, NotFound, TooManyRequests, Internal,
    }
}

/// Administers admin accounts: all it needs is the database.
pub struct AdminsApi(pub Wired<sqlx::PgPool>);

#[OpenApi(tag = "ApiTags::Auth")]
impl AdminsApi {
    /// List admins
    ///
    /// Every admin account, oldest first, with whether it is disabled and its live sessions.
    #[oai(path = "/admins", method = "get")]
    async fn list(&self, _auth: AdminSession) -> Result<AdminListResponse, AdminReadError> {
        Ok(AdminListResponse::Ok(Json(AdminList {
            items: self.accounts().await?,
        })))
    }

    /// Add an admin
    ///
    /// The new admin logs in with this email and password. 409 when the email is taken.
    #[oai(path = "/admins", method = "post")]
    async fn add(
        &self,
        auth: AdminSession,
        body: Json<Strict<NewAdminRequest>>,
    ) -> Result<AdminCreatedResponse, AdminCreateError> {
        let body = body.0 .0;
        let account = self
            .add_admin(&auth, &body.email, Redacted::new(body.password))
            .await?;
        Ok(AdminCreatedResponse::Created(Json(account)))
    }

    /// Disable an admin
    ///
    /// Their sessions end and they cannot log in until enabled again. 409 for your own
    /// account, or the last enabled admin.
    #[oai(path = "/admins/:id/disable", method = "post")]
    async fn disable(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
    ) -> Result<AdminResponse, AdminActionError> {
        Ok(AdminResponse::Ok(Json(
            self.disable_admin(&auth, id.0).await?,
        )))
    }

    /// Enable an admin
    ///
    /// A disabled admin can log in again.
    #[oai(path = "/admins/:id/enable", method = "post")]
    async fn enable(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
    ) -> Result<AdminResponse, AdminActionError> {
        Ok(AdminResponse::Ok(Json(
            self.enable_admin(&auth, id.0).await?,
        )))
    }

    /// Change your password
    ///
    /// Needs the current password. Your other sessions end; this one goes on.
    #[oai(path = "/auth/password", method = "post")]
    async fn password(
        &self,
        auth: AdminSession,
        body: Json<Strict<PasswordChangeRequest>>,
    ) -> Result<PasswordChangedResponse, PasswordChangeError> {
        let body = body.0 .0;
        self.change_password(
            &auth,
            Redacted::new(body.current_password),
            Redacted::new(body.new_password),
        )
        .await?;
        Ok(PasswordChangedResponse::Changed)
    }

    /// List login lockouts
    ///
    /// Accounts and addresses whose logins are refused after too many failures.
    #[oai(path = "/lockouts", method = "get")]
    async fn lockouts(&self, _auth: AdminSession) -> Result<LockoutListResponse, AdminReadError> {
        Ok(LockoutListResponse::Ok(Json(LockoutList {
            items: self.locked().await?,
        })))
    }

    /// Lift a login lockout
    ///
    /// `subject` as listed (`account:<email>` or `ip:<address>`, URL-encoded). 404 when it is
    /// not locked.
    #[oai(path = "/lockouts/:subject", method = "delete")]
    async fn lift(
        &self,
        auth: AdminSession,
        subject: Path<String>,
    ) -> Result<LockoutLiftedResponse, LockoutLiftError> {
        self.lift_lockout(&auth, &subject.0).await?;
        Ok(LockoutLiftedResponse::Lifted)
    }
}

/// What the API does, for its operations and for the admin console alike.
impl AdminsApi {
    pub async fn accounts(&self) -> Result<Vec<AdminAccountView>, ApiFailure> {
        Ok(admins::list(&self.0)
            .await
            .map_err(|e| ApiFailure::internal("listing admins failed", &e))?
            .into_iter()
            .map(AdminAccountView::from)
            .collect())
    }

    pub async fn add_admin(
        &self,
        auth: &AdminSession,
        email: &str,
        password: Redacted,
    ) -> Result<AdminAccountView, ApiFailure> {
        let email = AdminEmail::parse(email)
            .map_err(|reason| ApiFailure::invalid(InvalidField::new("email", reason)))?;
        let id = admins::add(&self.0, &email, password, &auth.actor().to_string())
            .await
            .map_err(|e| match e {
                CreateAdminError::Exists => {
                    ApiFailure::conflict("email: an admin with this email already exists")
                }
                CreateAdminError::WeakPassword(reason) => {
                    ApiFailure::invalid(InvalidField::new("password", reason))
                }
                CreateAdminError::Failed(e) => {
                    ApiFailure::internal("adding an admin failed", e.as_ref())
                }
            })?;
        self.account(id).await
    }

    pub async fn disable_admin(
        &self,
        auth: &AdminSession,
        id: Uuid,
    ) -> Result<AdminAccountView, ApiFailure> {
        admins::disable(&self.0, id, auth.admin_id())
            .await
            .map_err(|e| match e {
                DisableError::NotFound => ApiFailure::not_found("admin"),
                e @ (DisableError::Yourself | DisableError::LastAdmin) => {
                    ApiFailure::conflict(e.to_string())
                }
                DisableError::Database(e) => ApiFailure::internal("disabling an admin failed", &e),
            })?;
        self.account(id).await
    }

    pub async fn enable_admin(
        &self,
        auth: &AdminSession,
        id: Uuid,
    ) -> Result<AdminAccountView, ApiFailure> {
        let found = admins::enable(&self.0, id, auth.admin_id())
            .await
            .map_err(|e| ApiFailure::internal("enabling an admin failed", &e))?;
        if !found {
            return Err(ApiFailure::not_found("admin"));
        }
        self.account(id).await
    }

    pub async fn change_password(
        &self,
        auth: &AdminSession,
        current: Redacted,
        new: Redacted,
    ) -> Result<(), ApiFailure> {
        if current.expose().chars().count() > passwords::MAX_LENGTH {
            return Err(ApiFailure::invalid(InvalidField::new(
                "current_password",
                "is not your current password",
            )));
        }
        admins::change_password(&self.0, auth.admin_id(), current, new, auth.0.id)
            .await
            .map_err(|e| match e {
                PasswordError::WrongCurrent => ApiFailure::invalid(InvalidField::new(
                    "current_password",
                    "is not your current password",
                )),
                PasswordError::Weak(reason) => {
                    ApiFailure::invalid(InvalidField::new("new_password", reason))
                }
                PasswordError::Failed(e) => {
                    ApiFailure::internal("changing a password failed", e.as_ref())
                }
            })
    }

    pub async fn locked(&self) -> Result<Vec<LockoutView>, ApiFailure> {
        Ok(throttle::list_locked(&self.0)
            .await
            .map_err(|e| ApiFailure::internal("listing lockouts failed", &e))?
            .into_iter()
            .map(LockoutView::from)
            .collect())
    }

    pub async fn lift_lockout(&self, auth: &AdminSession, subject: &str) -> Result<(), ApiFailure> {
        let lifted = throttle::lift(&self.0, subject)
            .await
            .map_err(|e| ApiFailure::internal("lifting a lockout failed", &e))?;
        if !lifted {
            return Err(ApiFailure::not_found("lockout"));
        }
        tracing::info!(by = %auth.admin_id(), subject, "login lockout lifted");
        Ok(())
    }

    async fn account(&self, id: Uuid) -> Result<AdminAccountView, ApiFailure> {
        admins::find(&self.0, id)
            .await
            .map_err(|e| ApiFailure::internal("reading an admin failed", &e))?
            .map(AdminAccountView::from)
            .ok_or_else(|| ApiFailure::not_found("admin"))
    }
}

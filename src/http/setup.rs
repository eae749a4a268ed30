//! The first admin from a one-time set-up link (see `auth::setup`): `GET /setup?token=…` is a
//! small page with a form, and `POST /auth/setup` is the call it makes (also usable with curl).
//! Both are open: the token is the credential.

use poem::http::StatusCode;
use poem::web::Html;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sqlx::PgPool;

use aggregates::text::InvalidField;

use super::auth::AdminView;
use super::errors::{error_responses, ApiError, ApiFailure};
use super::strict_json::Strict;
use super::{ApiTags, Wired};
use crate::auth::accounts::AdminEmail;
use crate::auth::setup::{redeem, SetupError};
use crate::secrets::Redacted;

/// The token from the set-up link, and the first admin's credentials. (No `Debug`: it holds
/// a password.)
#[derive(Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct SetupRequest {
    #[oai(write_only)]
    pub token: String,
    pub email: String,
    /// At least 12 characters.
    #[oai(write_only)]
    pub password: String,
}

#[derive(ApiResponse)]
pub enum SetupResponse {
    /// The first admin exists; log in with `POST /auth/login`.
    #[oai(status = 201)]
    Created(Json<AdminView>),
}

error_responses! {
    /// What `POST /auth/setup` answers when it does not succeed.
    pub enum SetupFailure {
        BadRequest, Unauthorized, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable,
        TooManyRequests, Internal,
    }
}

pub struct SetupApi(pub Wired<PgPool>);

#[OpenApi(tag = "ApiTags::Auth")]
impl SetupApi {
    /// Create the first admin
    ///
    /// With the token of the one-time set-up link that a start prints while no admin exists
    /// (valid once, for an hour). Refused with 401 once the token is used or expired, and
    /// with 409 when an admin exists.
    #[oai(path = "/auth/setup", method = "post")]
    async fn setup(&self, body: Json<Strict<SetupRequest>>) -> Result<SetupResponse, SetupFailure> {
        let body = body.0 .0;
        let email = AdminEmail::parse(&body.email)
            .map_err(|reason| ApiFailure::invalid(InvalidField::new("email", reason)))?;
        match redeem(&self.0, &body.token, &email, Redacted::new(body.password)).await {
            Ok(id) => Ok(SetupResponse::Created(Json(AdminView {
                id,
                email: email.as_str().to_owned(),
            }))),
            Err(e @ SetupError::InvalidToken) => Err(ApiFailure::Unauthorized(Json(
                ApiError::new("invalid_setup_token", e.to_string()),
            ))
            .into()),
            Err(e @ SetupError::AdminExists) => Err(ApiFailure::conflict(e.to_string()).into()),
            Err(SetupError::WeakPassword(reason)) => {
                Err(ApiFailure::invalid(InvalidField::new("password", reason)).into())
            }
            Err(SetupError::Failed(e)) => {
                Err(ApiFailure::internal("creating the first admin failed", &*e).into())
            }
        }
    }
}

/// `GET /setup`: the form. It reads the token from the link, then takes it out of the
/// address bar, and never loads anything from elsewhere (no referrer can carry the token).
pub fn page() -> Response {
    Html(SETUP_PAGE)
        .with_header("cache-control", "no-store")
        .with_header("referrer-policy", "no-referrer")
        .with_header(
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
        )
        .with_status(StatusCode::OK)
        .into_response()
}

const SETUP_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Botfleet: the first admin</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 26rem; margin: 4rem auto; padding: 0 1rem; }
label { display: block; margin: 1rem 0; }
input { display: block; width: 100%; padding: .4rem; box-sizing: border-box; }
button { padding: .5rem 1rem; }
</style>
</head>
<body>
<h1>Create the first admin</h1>
<form id="setup">
<label>Email <input name="email" type="email" required autocomplete="username"></label>
<label>Password (at least 12 characters)
<input name="password" type="password" minlength="12" required autocomplete="new-password"></label>
<button>Create</button>
</form>
<p id="outcome" role="status"></p>
<script>
const token = new URLSearchParams(location.search).get("token") || "";
history.replaceState(null, "", location.pathname);
document.getElementById("setup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/auth/setup", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token, email: form.get("email"), password: form.get("password") }),
  });
  const body = await response.json().catch(() => ({}));
  document.getElementById("outcome").textContent = response.ok
    ? `${body.email} is the first admin. Log in with POST /auth/login; the API is described at /docs.`
    : body.message || `The server answered ${response.status}.`;
});
</script>
</body>
</html>
"#;

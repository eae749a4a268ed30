//! Who is using the console, and whether a form they sent is theirs.
//!
//! The console shares the API's session: the same `botfleet_session` cookie (HttpOnly,
//! SameSite=Strict), the same server-side session and the same per-session rate limit. Every
//! page takes an [`Admin`]; every state-changing request takes an [`AdminForm`], which also
//! requires the session's CSRF token (a hidden `csrf_token` field in every form, or the
//! `X-CSRF-Token` header htmx sends from the page's `hx-headers`) and, when the browser names
//! the page the request came from (`Origin`), that it is this service.

use poem::http::StatusCode;
use poem::{FromRequest, Request, RequestBody};
use subtle::ConstantTimeEq;

use crate::auth::Session;
use crate::event_store::Actor;
use crate::http::guard::{AdminSession, CSRF_HEADER};
use crate::http::{session_cookie, AppState};

use super::page::PageError;

/// The name of the hidden form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// A signed-in admin, and the application they act on.
pub struct Admin {
    pub session: Session,
    pub state: AppState,
}

impl Admin {
    /// The admin, as the actor of the events their requests cause.
    pub fn actor(&self) -> Actor {
        Actor::Admin(Some(self.session.admin_id))
    }

    /// The session's CSRF token, for the forms of the page.
    pub fn csrf(&self) -> &str {
        self.session.csrf_token.expose()
    }

    /// The session as the API's own operations take it.
    pub fn api_session(&self) -> AdminSession {
        AdminSession(self.session.clone())
    }
}

/// Whether a request was made by htmx (which then follows `HX-Redirect` instead of a 303).
pub fn is_htmx(request: &Request) -> bool {
    request.header("hx-request").is_some()
}

impl<'a> FromRequest<'a> for Admin {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = request
            .data::<AppState>()
            .cloned()
            .ok_or_else(|| PageError::internal_message("the application state is missing"))?;
        let sign_in = || PageError::SignIn {
            // The path as the browser asked for it (the router strips `/console`).
            next: request
                .original_uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            htmx: is_htmx(request),
        };
        let token = session_cookie::read(request).ok_or_else(sign_in)?;
        let session = state
            .auth
            .sessions
            .find(&token)
            .await
            .map_err(|e| PageError::internal("looking up a session failed", &e))?
            .ok_or_else(sign_in)?;
        state
            .limits
            .per_session
            .check(session.id)
            .map_err(|_| PageError::Status {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: "Too many requests in this session: wait a moment and reload.".into(),
            })?;
        tracing::Span::current().record("admin_id", tracing::field::display(session.admin_id));
        Ok(Self { session, state })
    }
}

/// The fields of a form (`application/x-www-form-urlencoded`), in order.
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Self, PageError> {
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if let Some((name, _)) = fields.iter().find(|(_, v)| v.contains('\0')) {
            return Err(PageError::Status {
                status: StatusCode::BAD_REQUEST,
                message: format!("The field {name} contains a NUL character."),
            });
        }
        Ok(Self(fields))
    }

    /// The field's value, when it was sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The field's value, or "" when it was not sent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }

    /// The field's value when it was sent and is not blank.
    pub fn filled(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned)
    }

    /// Every value of a repeated field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A state-changing request from a signed-in admin, its CSRF token checked.
pub struct AdminForm {
    pub admin: Admin,
    pub fields: Fields,
}

/// Whether the browser says the request comes from another site. Browsers send `Origin` on
/// every POST; when present it must be this service (its Host), whatever the cookie says.
pub fn cross_origin(request: &Request) -> bool {
    let Some(origin) = request.header("origin") else {
        return false;
    };
    let host = request.header("host").unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

impl<'a> FromRequest<'a> for AdminForm {
    async fn from_request(request: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let admin = Admin::from_request(request, body).await?;
        let bytes = body
            .take()?
            .into_bytes()
            .await
            .map_err(|e| PageError::internal("reading a form failed", &e))?;
        let fields = Fields::parse(&bytes)?;
        let given = request
            .header(CSRF_HEADER)
            .or_else(|| fields.get(CSRF_FIELD))
            .unwrap_or_default();
        let expected = admin.csrf();
        if cross_origin(request) || !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            tracing::warn!(admin_id = %admin.session.admin_id, "a console form without this session's CSRF token was refused");
            return Err(PageError::Status {
                status: StatusCode::FORBIDDEN,
                message: "This request was refused: it did not carry this session's security \
                          token (CSRF). Reload the page and try again."
                    .into(),
            }
            .into());
        }
        Ok(Self { admin, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_repeat_and_nul_is_refused() {
        let fields = Fields::parse(b"turn=a&turn=b&name=x%20y&blank=%20").unwrap();
        assert_eq!(fields.all("turn"), ["a", "b"]);
        assert_eq!(fields.get("name"), Some("x y"));
        assert_eq!(fields.filled("blank"), None);
        assert!(Fields::parse(b"text=a%00b").is_err());
    }

    #[test]
    fn only_this_origin_may_post() {
        let request = |origin: Option<&str>| {
            let mut builder = Request::builder().header("host", "console.example:8080");
            if let Some(origin) = origin {
                builder = builder.header("origin", origin);
            }
            builder.finish()
        };
        assert!(!cross_origin(&request(None)));
        assert!(!cross_origin(&request(Some(
            "https://console.example:8080"
        ))));
        assert!(cross_origin(&request(Some("https://evil.example"))));
        assert!(cross_origin(&request(Some("null"))));
    }
}

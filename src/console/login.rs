//! Signing in and out. The sign-in form has no session to carry a CSRF token yet; a browser's
//! `Origin` header must name this service instead, so another site cannot sign a visitor in
//! to an account of its choosing.

use maud::html;
use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{handler, Body, Request};

use aggregates::text::InvalidField;

use crate::auth::accounts::AdminEmail;
use crate::auth::LoginError;
use crate::http::limits::ClientIp;
use crate::http::{session_cookie, AppState};
use crate::secrets::Redacted;

use super::page::{bare, see_other, Page, PageError};
use super::session::{cross_origin, AdminForm, Fields};

#[derive(serde::Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

/// Where to go after signing in: a console page, never another site.
fn destination(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/console") && !n.starts_with("/console/login"))
        .filter(|n| !n.contains("//") && !n.contains('\\'))
        .unwrap_or("/console")
        .to_owned()
}

fn sign_in_page(status: StatusCode, email: &str, next: &str, problem: Option<&str>) -> Page {
    Page(Ok(bare(
        status,
        "Sign in",
        html! {
            h1 { span.brand-mark {} "Botfleet" }
            p.muted { "Sign in to the admin console." }
            @if let Some(problem) = problem { div.notice.bad role="alert" { (problem) } }
            form.stack method="post" action="/console/login" {
                input type="hidden" name="next" value=(next);
                label { "Email" input type="email" name="email" value=(email) autocomplete="username" required autofocus; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                button.primary type="submit" { "Sign in" }
            }
        },
    )))
}

/// `GET /console/login`: the sign-in form (or the console, when signed in already).
#[handler]
pub async fn sign_in_form(
    request: &Request,
    state: Data<&AppState>,
    Query(query): Query<SignInQuery>,
) -> Page {
    let next = destination(query.next.as_deref());
    if let Some(token) = session_cookie::read(request) {
        if let Ok(Some(_)) = state.auth.sessions.find(&token).await {
            return Page(Ok(see_other(&next)));
        }
    }
    sign_in_page(StatusCode::OK, "", &next, None)
}

/// `POST /console/login`: checks the credentials as `POST /auth/login` does (the same
/// throttle, the same answer for an unknown email), sets the session cookie, and goes on.
#[handler]
pub async fn submit(request: &Request, state: Data<&AppState>, body: Body) -> Page {
    if cross_origin(request) {
        return Page(Err(PageError::Status {
            status: StatusCode::FORBIDDEN,
            message: "Sign-in forms are accepted from this service's own page only.".into(),
        }));
    }
    let bytes = match body.into_bytes().await {
        Ok(bytes) => bytes,
        Err(e) => return Page(Err(PageError::internal("reading a form failed", &e))),
    };
    let fields = match Fields::parse(&bytes) {
        Ok(fields) => fields,
        Err(e) => return Page(Err(e)),
    };
    let next = destination(fields.get("next"));
    let typed = fields.text("email");
    let email = match AdminEmail::parse(&typed) {
        Ok(email) => email,
        Err(reason) => {
            let problem = InvalidField::new("email", reason).to_string();
            return sign_in_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                &typed,
                &next,
                Some(&problem),
            );
        }
    };
    let password = Redacted::new(fields.text("password"));
    let length = password.expose().chars().count();
    if length == 0 || length > crate::auth::passwords::MAX_LENGTH {
        return sign_in_page(
            StatusCode::UNAUTHORIZED,
            &typed,
            &next,
            Some("The email or password is wrong."),
        );
    }
    let ip = request.data::<ClientIp>().and_then(|ip| ip.0);
    match state.auth.login(&email, password, ip).await {
        Ok(logged_in) => {
            session_cookie::set(
                request,
                &logged_in.token,
                state.auth.sessions.ttl(),
                state.secure_cookies,
            );
            Page(Ok(see_other(&next)))
        }
        Err(LoginError::Invalid) => sign_in_page(
            StatusCode::UNAUTHORIZED,
            &typed,
            &next,
            Some("The email or password is wrong."),
        ),
        Err(LoginError::Locked(retry)) => sign_in_page(
            StatusCode::TOO_MANY_REQUESTS,
            &typed,
            &next,
            Some(&format!(
                "Too many failed sign-ins for this account or address: try again in {} minutes, \
                 or ask another admin to lift the lockout.",
                retry.seconds().div_ceil(60)
            )),
        ),
        Err(LoginError::Store(e)) => Page(Err(PageError::internal("signing in failed", &e))),
    }
}

/// `POST /console/logout`: ends the session on the server and clears the cookie.
#[handler]
pub async fn sign_out(request: &Request, form: AdminForm) -> Page {
    let state = &form.admin.state;
    if let Err(e) = state.auth.sessions.end(form.admin.session.id).await {
        return Page(Err(PageError::internal("ending a session failed", &e)));
    }
    session_cookie::clear(request, state.secure_cookies);
    tracing::info!(admin_id = %form.admin.session.admin_id, "admin signed out of the console");
    Page(Ok(see_other("/console/login")))
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn sign_in_leads_only_to_console_pages() {
        assert_eq!(
            destination(Some("/console/chats?bot_id=x")),
            "/console/chats?bot_id=x"
        );
        for elsewhere in [
            "https://evil.example",
            "//evil.example",
            "/docs",
            "/console//evil",
            "/console/login",
        ] {
            assert_eq!(destination(Some(elsewhere)), "/console", "{elsewhere}");
        }
        assert_eq!(destination(None), "/console");
    }
}

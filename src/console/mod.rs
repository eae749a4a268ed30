//! The admin console: the web interface that `botfleet serve` serves under `/console` (and
//! `/` leads to), for admins and auditors.
//!
//! Pages are HTML rendered on the server (maud, which escapes every value it inserts), with
//! the vendored htmx for the few partial updates (a conversation that refreshes itself, an
//! admin's message sent without leaving the page, health that keeps current). Charts are SVG
//! drawn on the server. Nothing is built apart from `cargo build`.
//!
//! Every page reads what the JSON API reads, in process: the API's own operations
//! (`BotsApi::register`, `ChatsApi::page`, …) and the read models' queries; nothing calls the
//! API over HTTP. Every change goes through the same commands, so it is recorded with the
//! admin as its actor, exactly as through the API.
//!
//! - [`session`]: the signed-in admin, forms and their CSRF token.
//! - [`page`]: the frame, formatting, notices and error pages; [`charts`]: SVG; [`assets`]:
//!   htmx and the stylesheet under content-hashed names.
//! - One file per section: [`login`], [`overview`], [`bots`] (and a bot's [`access`] and
//!   budgets), [`chats`], [`users`], [`failures`], [`audit`], [`operations`], [`admins`].
//!
//! Every answer carries a Content-Security-Policy without inline scripts or styles and with
//! `frame-ancestors 'none'`, and pages are never cached.

pub mod access;
pub mod admins;
pub mod assets;
pub mod audit;
pub mod bots;
pub mod charts;
pub mod chats;
pub mod failures;
pub mod login;
pub mod operations;
pub mod overview;
pub mod page;
pub mod session;
pub mod users;

use poem::error::NotFoundError;
use poem::http::StatusCode;
use poem::middleware::SetHeader;
use poem::{get, post, Endpoint, EndpointExt, Response, Route};

/// What a console page may load and do: its own scripts and styles only (no inline ones),
/// forms and requests to itself only, and never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (nested under `/console` by the HTTP room), with their security
/// headers; a page that does not exist is an HTML 404.
pub fn routes() -> impl Endpoint<Output = Response> {
    Route::new()
        .at("/", get(overview::page))
        .at("/health", get(overview::health_panel))
        .at("/login", get(login::sign_in_form).post(login::submit))
        .at("/logout", post(login::sign_out))
        .at("/assets/:name", get(assets::serve))
        .at("/bots", get(bots::list).post(bots::register))
        .at("/bots/new", get(bots::new_form))
        .at("/bots/:id", get(bots::detail).post(bots::save))
        .at("/bots/:id/token", post(bots::rotate_token))
        .at("/bots/:id/access", get(access::page).post(access::save))
        .at("/bots/:id/access/allow", post(access::allow))
        .at("/bots/:id/access/grant", post(access::grant))
        .at("/bots/:id/enable", post(bots::enable))
        .at("/bots/:id/disable", post(bots::disable))
        .at(
            "/bots/:id/delete",
            get(bots::confirm_delete).post(bots::delete),
        )
        .at("/chats", get(chats::list))
        .at("/chats/:id", get(chats::conversation))
        .at(
            "/chats/:id/messages",
            get(chats::conversation_fragment).post(chats::send),
        )
        .at("/chats/:id/reset", post(chats::reset))
        .at("/users", get(users::list))
        .at(
            "/users/:id/forget",
            get(users::confirm_forget).post(users::forget),
        )
        .at("/failures", get(failures::list))
        .at("/failures/retry", post(failures::retry))
        .at("/audit", get(audit::log))
        .at("/audit/events/:position", get(audit::event_detail))
        .at("/audit/story/:correlation_id", get(audit::story))
        .at("/audit/as-of", get(audit::as_of))
        .at("/operations", get(operations::page))
        .at("/admins", get(admins::page).post(admins::add))
        .at("/admins/:id/disable", post(admins::disable))
        .at("/admins/:id/enable", post(admins::enable))
        .at("/admins/password", post(admins::change_password))
        .at("/admins/lockouts/lift", post(admins::lift_lockout))
        .catch_error(|_: NotFoundError| async {
            page::error_page(
                StatusCode::NOT_FOUND,
                "There is no such page in the console.",
            )
        })
        .with(
            SetHeader::new()
                .overriding("content-security-policy", CONTENT_SECURITY_POLICY)
                .overriding("x-frame-options", "DENY")
                .overriding("x-content-type-options", "nosniff")
                .overriding("referrer-policy", "same-origin"),
        )
        .map_to_response()
}

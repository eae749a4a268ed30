//! The console's frame and its small vocabulary: the page shell (sections, who is signed in,
//! sign-out), how times, money and counts read, pagers, notices and error pages.
//!
//! Every page is HTML built with maud, which escapes every value it inserts: a text written by
//! a stranger on Telegram shows as text, never as markup. The console inserts nothing
//! unescaped (no `PreEscaped` anywhere).

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};

use crate::http::errors::ApiFailure;
use crate::runtime::error_chain::ErrorChain;

use super::assets::{SCRIPT, STYLE};
use super::session::{Admin, CSRF_FIELD};

/// The console's sections, in the order of the top bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Bots,
    Chats,
    Users,
    Failures,
    Audit,
    Operations,
    Admins,
}

impl Section {
    const ALL: [Section; 8] = [
        Section::Overview,
        Section::Bots,
        Section::Chats,
        Section::Users,
        Section::Failures,
        Section::Audit,
        Section::Operations,
        Section::Admins,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Bots => "Bots",
            Section::Chats => "Chats",
            Section::Users => "Telegram users",
            Section::Failures => "Failures",
            Section::Audit => "Audit",
            Section::Operations => "Operations",
            Section::Admins => "Admins",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Section::Overview => "/console",
            Section::Bots => "/console/bots",
            Section::Chats => "/console/chats",
            Section::Users => "/console/users",
            Section::Failures => "/console/failures",
            Section::Audit => "/console/audit",
            Section::Operations => "/console/operations",
            Section::Admins => "/console/admins",
        }
    }
}

/// htmx's settings: no inline style of its own (the Content-Security-Policy forbids it), no
/// `eval`, no scripts from swapped content, and no copies of pages in local storage.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0,"selfRequestsOnly":true}"#;

/// The document head shared by every page.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=(HTMX_CONFIG);
            meta name="referrer" content="same-origin";
            title { (title) " · Botfleet" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href=(STYLE.url());
            script src=(SCRIPT.url()) defer {}
        }
    }
}

/// A page of the console, inside its frame.
pub fn layout(admin: &Admin, section: Section, title: &str, body: Markup) -> Response {
    // htmx sends the token as a header with every request it makes from this page.
    let hx_headers = serde_json::json!({ "X-CSRF-Token": admin.csrf() }).to_string();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body hx-headers=(hx_headers) {
                header.topbar {
                    a.brand href="/console" { span.brand-mark {} "Botfleet" }
                    nav.nav {
                        @for s in Section::ALL {
                            a.active[s == section] href=(s.href()) { (s.label()) }
                        }
                    }
                    div.who {
                        span.email { (admin.session.email) }
                        form method="post" action="/console/logout" {
                            (csrf_field(admin))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

/// A page outside the frame (sign-in, errors before a session).
pub fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { div.signin { div.panel { (body) } } }
        }
    };
    html_response(status, markup)
}

pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        // Pages hold what only a signed-in admin may see: never kept by a cache.
        .header("cache-control", "no-store")
        .body(markup.into_string())
}

/// The hidden field every form carries.
pub fn csrf_field(admin: &Admin) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(admin.csrf()); }
}

/// A one-button form that POSTs to `action` (enable, retry, …).
pub fn post_button(admin: &Admin, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf_field(admin))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// An instant as the console shows it: to the second, with its zone.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) class="nowrap" { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

pub fn time_opt(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span.muted { "—" } },
    }
}

/// Micro-USD as dollars: cents for sums of a cent or more, micro-dollars below.
pub fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let micros = micros.unsigned_abs();
    let dollars = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    if micros == 0 {
        "$0.00".to_owned()
    } else if micros >= 10_000 {
        format!("{sign}${}.{:02}", group(dollars), fraction / 10_000)
    } else {
        let digits = format!("{fraction:06}");
        format!("{sign}$0.{}", digits.trim_end_matches('0'))
    }
}

/// A count with thousands separated.
pub fn count(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", group(n.unsigned_abs()))
}

fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds as a person reads a duration.
pub fn duration_ms(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// A badge for a state.
pub fn badge(text: &str, tone: &str) -> Markup {
    html! { span class=(format!("badge {tone}")) { (text) } }
}

/// What to say when a list is empty, and what to do about it.
pub fn empty(title: &str, next: Markup) -> Markup {
    html! { div.empty { strong { (title) } (next) } }
}

/// A notice after a change, by its code: fixed texts only, so a link cannot make the console
/// say something it did not.
pub fn notice(code: Option<&str>) -> Markup {
    let text = match code {
        Some("registered") => "The bot is registered. It stays disabled until you enable it.",
        Some("saved") => "The settings are saved.",
        Some("token") => "The token is replaced; the old one no longer works here.",
        Some("enabled") => "The bot is enabled: it answers on Telegram.",
        Some("disabled") => "The bot is disabled: it no longer answers.",
        Some("deleted") => "The bot is deleted. Its history stays for auditors.",
        Some("sent") => "Your message is queued; the bot sends it after any answer in progress.",
        Some("reset") => "The conversation starts afresh with the next message.",
        Some("forgotten") => "The person is forgotten: their names and texts now read [forgotten].",
        Some("retried") => "The turns are queued again.",
        Some("admin-added") => "The admin is added and can sign in.",
        Some("admin-disabled") => "The admin is disabled and signed out everywhere.",
        Some("admin-enabled") => "The admin is enabled and can sign in again.",
        Some("password") => "Your password is changed; your other sessions have ended.",
        Some("lifted") => "The lockout is lifted.",
        _ => return html! {},
    };
    html! { div.notice.ok role="status" { (text) } }
}

/// A refusal shown on the page where it happened.
pub fn problem(message: &str) -> Markup {
    html! { div.notice.bad role="alert" { (message) } }
}

/// A link to the next page of a list, when there is one.
pub fn pager(first: Option<&str>, next: Option<String>) -> Markup {
    html! {
        @if first.is_some() || next.is_some() {
            div.pager {
                @if let Some(first) = first { a.button href=(first) { "« First page" } }
                @if let Some(next) = next { a.button href=(next) { "Next page »" } }
            }
        }
    }
}

/// A query string from pairs, the blank ones left out, values percent-encoded.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            serializer.append_pair(name, value);
        }
    }
    let query = serializer.finish();
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

/// Where to go after a change: a 303 for a plain form, `HX-Location` for htmx.
pub fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("location", location)
        .finish()
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No session: sign in, then come back to `next`.
    #[error("sign in first")]
    SignIn { next: String, htmx: bool },
    /// A refusal with its status, told to the admin.
    #[error("{message}")]
    Status { status: StatusCode, message: String },
    /// What the API would have answered.
    #[error("{}", .0.error().message)]
    Api(ApiFailure),
}

impl PageError {
    /// Logs the error with its cause chain; the page says only that it happened.
    pub fn internal(context: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(error), "{context}");
        Self::internal_message(context)
    }

    pub fn internal_message(context: &str) -> Self {
        tracing::error!("{context}");
        Self::Status {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Something went wrong on our side; it has been logged.".into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::Status {
            status: StatusCode::NOT_FOUND,
            message: format!("There is no {what} here."),
        }
    }
}

impl From<ApiFailure> for PageError {
    fn from(failure: ApiFailure) -> Self {
        Self::Api(failure)
    }
}

impl ResponseError for PageError {
    fn status(&self) -> StatusCode {
        match self {
            PageError::SignIn { .. } => StatusCode::SEE_OTHER,
            PageError::Status { status, .. } => *status,
            PageError::Api(failure) => {
                StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn as_response(&self) -> Response {
        match self {
            PageError::SignIn { next, htmx } => {
                let location = format!("/console/login{}", query(&[("next", Some(next.clone()))]));
                if *htmx {
                    // htmx follows this with a full page load.
                    Response::builder().header("hx-redirect", location).finish()
                } else {
                    see_other(&location)
                }
            }
            PageError::Status { status, message } => error_page(*status, message),
            PageError::Api(failure) => error_page(self.status(), &failure.error().message),
        }
    }
}

/// A page that says what went wrong, with a way back.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    bare(
        status,
        status.canonical_reason().unwrap_or("Error"),
        html! {
            h1 { (status.as_u16()) " · " (status.canonical_reason().unwrap_or("Error")) }
            p role="alert" { (message) }
            p { a href="/console" { "Back to the console" } }
        },
    )
}

/// A result a page handler returns.
pub type PageResult = Result<Response, PageError>;

/// Lets handlers return [`PageResult`] to poem.
pub struct Page(pub PageResult);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(response) => response,
            Err(error) => error.as_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_counts_and_durations_read_well() {
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(121), "$0.000121");
        assert_eq!(usd(1_500_000), "$1.50");
        assert_eq!(usd(1_234_567_890), "$1,234.56");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(duration_ms(250), "250 ms");
        assert_eq!(duration_ms(1_520), "1.5 s");
        assert_eq!(query(&[("a", Some("x y".into())), ("b", None)]), "?a=x+y");
        assert_eq!(query(&[("b", None)]), "");
    }

    #[test]
    fn inserted_text_is_escaped() {
        let markup = html! { p { ("<img src=x onerror=alert(1)>") } }.into_string();
        assert_eq!(markup, "<p>&lt;img src=x onerror=alert(1)&gt;</p>");
    }
}

//! What a request may cost before a handler sees it: a body size limit for every route, and
//! a per-address rate limit for the admin API. (The per-session limit needs the session, so
//! it sits in the guard; the per-bot intake limit sits in the webhook.)
//!
//! The limits are token buckets in this process (see `crate::rate_limit`): with several
//! replicas, each enforces its own.

use std::net::IpAddr;
use std::sync::Arc;

use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;
use uuid::Uuid;

use super::errors::{ApiError, ApiFailure};
use crate::rate_limit::RateLimiter;

/// The limits as configured (`RATE_LIMIT_*`, `MAX_REQUEST_BYTES`, `TRUST_FORWARDED_FOR`).
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Admin API requests per minute from one client address (0: no limit).
    pub ip_per_minute: u32,
    /// Admin API requests per minute in one session (0: no limit).
    pub session_per_minute: u32,
    /// Webhook updates per minute for one bot (0: no limit).
    pub bot_per_minute: u32,
    pub max_request_bytes: usize,
    /// Take the client address from the last X-Forwarded-For entry.
    pub trust_forwarded_for: bool,
}

/// The limiters, shared by the middleware, the guard and the webhook.
pub struct Limits {
    pub per_ip: RateLimiter<IpAddr>,
    pub per_session: RateLimiter<Uuid>,
    /// Webhook updates per bot, so that one flooded bot cannot crowd out the others.
    pub per_bot: RateLimiter<Uuid>,
    pub max_request_bytes: usize,
    pub trust_forwarded_for: bool,
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            per_ip: RateLimiter::new(settings.ip_per_minute),
            per_session: RateLimiter::new(settings.session_per_minute),
            per_bot: RateLimiter::new(settings.bot_per_minute),
            max_request_bytes: settings.max_request_bytes,
            trust_forwarded_for: settings.trust_forwarded_for,
        }
    }
}

/// The client's address, as the rate limits and the login throttle count it. `None` when
/// the connection has no IP address (a Unix socket).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

/// Routes open to anyone, which the admin rate limit leaves alone: Telegram's deliveries have
/// their own per-bot limit, and probes and scrapers must not be turned away.
fn is_public(path: &str) -> bool {
    path.starts_with("/telegram/")
        || path == "/health"
        || path.starts_with("/health/")
        || path == "/metrics"
        || path == "/docs"
        || path.starts_with("/docs/")
        || path == "/openapi.yaml"
}

/// Probes and the scrape: they read nothing from their URI, so a NUL in it harms nothing and
/// they keep answering what they are for (their documents list no 400).
fn reads_nothing_from_its_uri(path: &str) -> bool {
    path == "/health" || path.starts_with("/health/") || path == "/metrics"
}

pub struct RequestLimits(pub Arc<Limits>);

impl<E: Endpoint> Middleware<E> for RequestLimits {
    type Output = RequestLimitsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestLimitsEndpoint {
            inner,
            limits: self.0.clone(),
        }
    }
}

pub struct RequestLimitsEndpoint<E> {
    inner: E,
    limits: Arc<Limits>,
}

impl<E: Endpoint> Endpoint for RequestLimitsEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let ip = client_ip(&request, self.limits.trust_forwarded_for);
        request.set_data(ClientIp(ip));

        let max = self.limits.max_request_bytes;
        let declared: Option<u64> = request
            .header("content-length")
            .and_then(|v| v.parse().ok());
        match declared {
            Some(length) if length > max as u64 => return Ok(too_large(max)),
            Some(_) => {}
            // A chunked body says nothing in advance: read it, up to the limit.
            None => match request.take_body().into_bytes_limit(max).await {
                Ok(bytes) => request.set_body(bytes),
                Err(ReadBodyError::PayloadTooLarge) => return Ok(too_large(max)),
                Err(e) => return Err(e.into()),
            },
        }

        let nul = (!reads_nothing_from_its_uri(request.uri().path()))
            .then(|| field_with_nul(request.uri()))
            .flatten();
        if let Some(field) = nul {
            return Ok(Json(
                ApiError::new(
                    "malformed_request",
                    format!("{field}: must not contain the NUL character"),
                )
                .with_field(field),
            )
            .with_status(StatusCode::BAD_REQUEST)
            .into_response());
        }

        if let (false, Some(ip)) = (is_public(request.uri().path()), ip) {
            if let Err(retry) = self.limits.per_ip.check(ip) {
                tracing::info!(%ip, "admin API rate limit reached for an address");
                return Ok(ApiFailure::too_many_requests(
                    "too many requests from this address; slow down",
                    retry,
                )
                .into_response());
            }
        }
        self.inner
            .call(request)
            .await
            .map(IntoResponse::into_response)
    }
}

/// The query parameter (or `path`) that carries a NUL character (`%00`): PostgreSQL cannot
/// store or compare one in text, so it is refused before any handler sees it.
fn field_with_nul(uri: &poem::http::Uri) -> Option<String> {
    let has_nul = |text: &str| text.to_ascii_lowercase().contains("%00");
    if has_nul(uri.path()) {
        return Some("path".to_owned());
    }
    uri.query()?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if has_nul(name) {
            Some("query".to_owned())
        } else {
            has_nul(value).then(|| name.to_owned())
        }
    })
}

fn too_large(max: usize) -> Response {
    Json(ApiError::new(
        "payload_too_large",
        format!("the request body exceeds the limit of {max} bytes"),
    ))
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    .into_response()
}

/// The peer's address, or with `trust_forwarded_for` the last X-Forwarded-For entry: the one
/// our own proxy appended (earlier entries are whatever the client claimed).
fn client_ip(request: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    let forwarded = trust_forwarded_for
        .then(|| request.header("x-forwarded-for"))
        .flatten()
        .and_then(|list| list.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok());
    forwarded.or_else(|| request.remote_addr().as_socket_addr().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::{is_public, reads_nothing_from_its_uri};

    #[test]
    fn only_probes_and_the_scrape_ignore_their_uri() {
        for path in ["/health", "/health/db", "/health/queue", "/metrics"] {
            assert!(reads_nothing_from_its_uri(path), "{path}");
        }
        for path in [
            "/bots",
            "/telegram/x/webhook",
            "/healthz",
            "/metricsx",
            "/docs",
        ] {
            assert!(!reads_nothing_from_its_uri(path), "{path}");
        }
    }

    #[test]
    fn only_telegram_probes_and_docs_are_public() {
        for path in [
            "/telegram/x/webhook",
            "/health",
            "/health/db",
            "/metrics",
            "/docs",
            "/openapi.yaml",
        ] {
            assert!(is_public(path), "{path}");
        }
        for path in ["/bots", "/auth/login", "/chats", "/healthz", "/metricsx"] {
            assert!(!is_public(path), "{path}");
        }
    }
}

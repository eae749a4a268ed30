//! Every HTTP request gets a request id, a tracing span, one log line and its metrics.
//!
//! The id comes from the caller's `X-Request-Id` when it is a sane token (so a proxy's id
//! carries through), else a fresh UUIDv7; it is echoed in the response and is a field of the
//! span, so every log line the request causes carries it (also in LOG_FORMAT=json). Only the
//! path is logged, never headers (cookies) or bodies (passwords, tokens).
//!
//! Metrics are labelled with the route pattern (`/bots/:param0`), which only the router knows:
//! [`RecordRoute`] sits inside the router's error handling and reports the matched pattern to
//! [`RequestLog`], which sits outside everything and so also counts requests the limits
//! refuse.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use poem::{Endpoint, IntoResponse, Middleware, PathPattern, Request, Response};
use tracing::Instrument;
use uuid::Uuid;

const REQUEST_ID_HEADER: &str = "x-request-id";

/// Where the innermost middleware leaves the matched route pattern for the outermost.
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<Arc<str>>>);

/// The outermost middleware: request id, span, log line, HTTP metrics.
pub struct RequestLog;

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestLogEndpoint { inner }
    }
}

pub struct RequestLogEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let request_id = request
            .header(REQUEST_ID_HEADER)
            .filter(|id| is_sane_id(id))
            .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let slot = RouteSlot::default();
        request.set_data(slot.clone());
        let quiet = (method == poem::http::Method::GET && request.header("hx-request").is_some())
            || path.starts_with("/console/assets/");
        let span = tracing::info_span!(
            "request",
            %request_id,
            %method,
            %path,
            route = tracing::field::Empty,
            admin_id = tracing::field::Empty,
        );
        async move {
            let mut response = match self.inner.call(request).await {
                Ok(response) => response.into_response(),
                Err(error) => error.into_response(),
            };
            let status = response.status().as_u16();
            let route = slot.0.get().map_or("unmatched", |r| r.as_ref());
            tracing::Span::current().record("route", route);
            let elapsed = started.elapsed();
            crate::metrics::http_request(method.as_str(), route, status, elapsed.as_secs_f64());
            let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
            // Probes, scrapes and the console's self-refreshing parts (htmx GETs) arrive every
            // few seconds; they are not worth a line each.
            if path.starts_with("/health") || path == "/metrics" || quiet {
                tracing::debug!(status, elapsed_ms, "request finished");
            } else if status >= 500 {
                tracing::warn!(status, elapsed_ms, "request finished");
            } else {
                tracing::info!(status, elapsed_ms, "request finished");
            }
            if let Ok(value) = request_id.parse() {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            Ok(response)
        }
        .instrument(span)
        .await
    }
}

/// Short and plain, so a caller cannot inject anything into our logs through it.
fn is_sane_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The innermost middleware, right around the router: reports the matched route pattern.
pub struct RecordRoute;

impl<E: Endpoint> Middleware<E> for RecordRoute {
    type Output = RecordRouteEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RecordRouteEndpoint { inner }
    }
}

pub struct RecordRouteEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for RecordRouteEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let slot = request.data::<RouteSlot>().cloned();
        let result = self
            .inner
            .call(request)
            .await
            .map(IntoResponse::into_response);
        let pattern = match &result {
            Ok(response) => response.data::<PathPattern>(),
            Err(error) => error.data::<PathPattern>(),
        };
        if let (Some(slot), Some(pattern)) = (slot, pattern) {
            let _ = slot.0.set(pattern.0.clone());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::is_sane_id;

    #[test]
    fn only_plain_request_ids_are_reused() {
        assert!(is_sane_id("0190b5e4-7f3a-7c1e-9d2b-1a2b3c4d5e6f"));
        assert!(!is_sane_id(""));
        assert!(!is_sane_id("id\nforged log line"));
        assert!(!is_sane_id(&"a".repeat(129)));
    }
}

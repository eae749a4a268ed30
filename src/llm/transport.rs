//! The HTTP layer under async-openai: exactly one attempt per call, a request timeout, and
//! failures that keep their HTTP status and `Retry-After`.
//!
//! Why a tower service of our own: async-openai 0.43's default executor wraps every request in
//! its `OpenAIRetryLayer` (up to 3 retries with backoff on 429, 5xx and connect errors), and
//! `Client::build`/`with_http_client` keep that layer. With the crate's `middleware` feature,
//! `Client::with_http_service` replaces the whole executor, so the stack is only
//! [`SingleAttempt`]: one `reqwest` request, no retry layer. Our effect runner owns retries.
//!
//! The same service reads every non-2xx answer itself: async-openai's `OpenAIError::ApiError`
//! keeps the status but drops the headers, so `Retry-After` would be lost. The failure goes back
//! through async-openai as `OpenAIError::Boxed(HttpFailure)`, which `errors.rs` downcasts.
//! Requests and replies are still built and parsed by async-openai's types.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::{ApiError, OpenAIError, WrappedError};
use async_openai::middleware::HttpRequestFactory;
use async_openai::Client;
use openai_reqwest::header::{HeaderMap, AUTHORIZATION};

use super::errors;

/// Connecting may take at most this long, within the overall request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a non-JSON error body becomes the error message.
const MAX_BODY_EXCERPT: usize = 300;

pub(crate) type OpenAiClient = Client<OpenAIConfig>;

/// An async-openai client on `base_url` whose every call is one bounded HTTP request.
pub(crate) fn client(
    base_url: &url::Url,
    api_key: Option<&str>,
    timeout: Duration,
) -> OpenAiClient {
    // reqwest is built with `rustls-no-provider`; installing is idempotent.
    crate::runtime::tls::install_crypto_provider();
    let http = openai_reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(CONNECT_TIMEOUT))
        .build()
        .expect("an HTTP client with a timeout and the installed TLS provider builds");
    // Explicit settings only: no organisation or project headers picked up from the environment.
    let config = OpenAIConfig::new()
        .with_api_base(base_url.as_str().trim_end_matches('/'))
        .with_api_key(api_key.unwrap_or_default())
        .with_org_id("")
        .with_project_id("");
    Client::build(http.clone(), config).with_http_service(SingleAttempt { http })
}

/// A non-2xx answer, read in full: what errors.rs classifies.
#[derive(Debug)]
pub(crate) struct HttpFailure {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The provider's `{"error": {...}}` object, or the start of a non-JSON body as `message`.
    pub error: ApiError,
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.error.message)
    }
}

impl std::error::Error for HttpFailure {}

impl HttpFailure {
    async fn read(response: openai_reqwest::Response) -> Result<Self, openai_reqwest::Error> {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await?;
        let error = match serde_json::from_slice::<WrappedError>(&body) {
            Ok(wrapped) => wrapped.error,
            Err(_) => ApiError {
                message: excerpt(&body)
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned()),
                ..ApiError::default()
            },
        };
        Ok(Self {
            status: status.as_u16(),
            retry_after,
            error,
        })
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    errors::parse_retry_after(
        value("retry-after-ms"),
        value("retry-after"),
        chrono::Utc::now(),
    )
}

/// The body's first characters on one line, or `None` when it is blank.
fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_BODY_EXCERPT)
        .collect();
    (!line.is_empty()).then_some(line)
}

/// The only service under the async-openai client: build the request, send it once.
#[derive(Clone)]
struct SingleAttempt {
    http: openai_reqwest::Client,
}

type Attempt =
    Pin<Box<dyn Future<Output = Result<openai_reqwest::Response, OpenAIError>> + Send + 'static>>;

impl tower::Service<HttpRequestFactory> for SingleAttempt {
    type Response = openai_reqwest::Response;
    type Error = OpenAIError;
    type Future = Attempt;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        Box::pin(async move {
            let mut request = factory.build().await?;
            let api_key = api_key_or_drop_empty(request.headers_mut());
            let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
            if response.status().is_success() {
                return Ok(response);
            }
            let mut failure = HttpFailure::read(response)
                .await
                .map_err(OpenAIError::Reqwest)?;
            // A server that echoes the key back must not get it into our events or logs.
            if let Some(key) = api_key {
                failure.error.message = failure.error.message.replace(&key, "[redacted]");
            }
            Err(OpenAIError::Boxed(Box::new(failure)))
        })
    }
}

/// The API key the request carries; without one (a local compatible server), the request
/// carries no `Authorization` at all rather than async-openai's `Bearer ` with nothing after it.
fn api_key_or_drop_empty(headers: &mut HeaderMap) -> Option<String> {
    let key = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer"))
        .map(|key| key.trim().to_owned());
    match key {
        Some(key) if !key.is_empty() => Some(key),
        Some(_) => {
            headers.remove(AUTHORIZATION);
            None
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_bounded_line() {
        assert_eq!(excerpt(b"  \n "), None);
        assert_eq!(
            excerpt(b"<html>\n  Bad   gateway\n</html>").as_deref(),
            Some("<html> Bad gateway </html>")
        );
        let long = "x".repeat(1000);
        assert_eq!(
            excerpt(long.as_bytes()).map(|s| s.len()),
            Some(MAX_BODY_EXCERPT)
        );
    }

    #[test]
    fn an_empty_bearer_is_dropped_and_a_real_one_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(api_key_or_drop_empty(&mut headers), None);
        assert!(headers.get(AUTHORIZATION).is_none());

        headers.insert(AUTHORIZATION, "Bearer sk-test".parse().unwrap());
        assert_eq!(
            api_key_or_drop_empty(&mut headers).as_deref(),
            Some("sk-test")
        );
        assert!(headers.get(AUTHORIZATION).is_some());
    }
}

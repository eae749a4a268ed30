//! What went wrong with a model call, reduced to what the effect runner needs to decide:
//! may trying again help ([`ErrorClass`]), and how long did the provider ask us to wait.
//!
//! The classes follow OpenAI's error guide: requests the server refused for what they are
//! (bad key, unknown model, invalid request, an account without quota) are `Fatal`; overload,
//! rate limits, timeouts and broken connections are `Retryable`.

use std::time::Duration;

use async_openai::error::OpenAIError;
use chrono::{DateTime, Utc};

use super::transport::HttpFailure;

/// Whether repeating the same request could succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Fatal,
    Retryable,
}

/// A failed model call. `Display` gives one line without secrets or headers.
#[derive(Debug, thiserror::Error)]
pub struct LlmError {
    pub class: ErrorClass,
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// The provider's error code (or type when it sent no code), or ours: `timeout`,
    /// `connection_error`, `transport_error`, `invalid_response`, `invalid_request`,
    /// `response_failed`, `response_incomplete`.
    pub code: Option<String>,
    /// The provider's error message, or a description of a transport failure.
    pub message: String,
    /// From `retry-after-ms` or `Retry-After`, when the server sent one.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for LlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = match self.class {
            ErrorClass::Fatal => "fatal",
            ErrorClass::Retryable => "retryable",
        };
        let mut details = Vec::new();
        if let Some(status) = self.status {
            details.push(format!("HTTP {status}"));
        }
        if let Some(code) = &self.code {
            details.push(code.clone());
        }
        if let Some(wait) = self.retry_after {
            details.push(format!("retry after {}ms", wait.as_millis()));
        }
        write!(f, "{class} LLM error")?;
        if !details.is_empty() {
            write!(f, " ({})", details.join(", "))?;
        }
        let message = self
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        write!(f, ": {message}")
    }
}

impl LlmError {
    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }

    pub(crate) fn new(class: ErrorClass, code: &str, message: impl Into<String>) -> Self {
        Self {
            class,
            status: None,
            code: Some(code.to_owned()),
            message: message.into(),
            retry_after: None,
        }
    }

    /// Classifies whatever async-openai returned.
    pub(crate) fn from_openai(error: OpenAIError) -> Self {
        match error {
            OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpFailure>() {
                Ok(failure) => Self::from_http(*failure),
                Err(other) => {
                    Self::new(ErrorClass::Retryable, "transport_error", other.to_string())
                }
            },
            OpenAIError::Reqwest(error) => Self::from_reqwest(error),
            // Our transport turns every non-2xx answer into `HttpFailure`; kept for safety.
            OpenAIError::ApiError(response) => {
                let api = response.api_error;
                let status = response.status_code.as_u16();
                Self {
                    class: classify(status, api.code.as_deref(), api.r#type.as_deref()),
                    status: Some(status),
                    code: api.code.or(api.r#type),
                    message: api.message,
                    retry_after: None,
                }
            }
            // A 2xx body of the wrong shape: the same request would get the same body.
            OpenAIError::JSONDeserialize(error, _body) => Self::new(
                ErrorClass::Fatal,
                "invalid_response",
                format!("the reply could not be read: {error}"),
            ),
            OpenAIError::InvalidArgument(message) => {
                Self::new(ErrorClass::Fatal, "invalid_request", message)
            }
            OpenAIError::StreamError(error) => {
                Self::new(ErrorClass::Retryable, "transport_error", error.to_string())
            }
            other => Self::new(ErrorClass::Fatal, "invalid_request", other.to_string()),
        }
    }

    fn from_http(failure: HttpFailure) -> Self {
        let api = failure.error;
        let message = if api.message.trim().is_empty() {
            format!("HTTP {}", failure.status)
        } else {
            api.message
        };
        Self {
            class: classify(failure.status, api.code.as_deref(), api.r#type.as_deref()),
            status: Some(failure.status),
            code: api.code.or(api.r#type),
            message,
            retry_after: failure.retry_after,
        }
    }

    fn from_reqwest(error: openai_reqwest::Error) -> Self {
        let (class, code) = if error.is_timeout() {
            (ErrorClass::Retryable, "timeout")
        } else if error.is_connect() {
            (ErrorClass::Retryable, "connection_error")
        } else if error.is_builder() {
            (ErrorClass::Fatal, "invalid_request")
        } else {
            (ErrorClass::Retryable, "transport_error")
        };
        let message = if error.is_timeout() {
            "no complete answer within the request timeout".to_owned()
        } else {
            error_chain(&error.without_url())
        };
        Self::new(class, code, message)
    }
}

/// Codes (or types) of a 429 that mean the account cannot pay, not that it is going too fast.
const BILLING_CODES: &[&str] = &[
    "insufficient_quota",
    "billing_hard_limit_reached",
    "billing_not_active",
    "access_terminated",
];

/// The class of an HTTP failure, from its status and the provider's error code and type.
pub(crate) fn classify(status: u16, code: Option<&str>, kind: Option<&str>) -> ErrorClass {
    let billing = |value: Option<&str>| value.is_some_and(|v| BILLING_CODES.contains(&v));
    match status {
        429 if billing(code) || billing(kind) => ErrorClass::Fatal,
        429 | 408 | 409 => ErrorClass::Retryable,
        500..=599 => ErrorClass::Retryable,
        // 400, 401, 403, 404, 422 and any other refusal: the same request is refused again.
        _ => ErrorClass::Fatal,
    }
}

/// The wait a server asked for: `retry-after-ms` (OpenAI, milliseconds) wins over
/// `Retry-After` (seconds, or an HTTP date).
pub(crate) fn parse_retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let number = |value: &str| {
        value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    if let Some(ms) = retry_after_ms.and_then(number) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = retry_after?;
    if let Some(seconds) = number(value) {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = DateTime::parse_from_rfc2822(value.trim()).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// An error and its causes on one line ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::{Fatal, Retryable};

    #[test]
    fn refusals_are_fatal() {
        assert_eq!(classify(400, Some("invalid_request_error"), None), Fatal);
        assert_eq!(classify(401, Some("invalid_api_key"), None), Fatal);
        assert_eq!(classify(403, None, None), Fatal);
        assert_eq!(classify(404, Some("model_not_found"), None), Fatal);
        assert_eq!(classify(422, None, None), Fatal);
    }

    #[test]
    fn a_429_is_fatal_only_for_billing() {
        assert_eq!(
            classify(429, Some("insufficient_quota"), Some("insufficient_quota")),
            Fatal
        );
        assert_eq!(classify(429, None, Some("insufficient_quota")), Fatal);
        assert_eq!(
            classify(429, Some("billing_hard_limit_reached"), None),
            Fatal
        );
        assert_eq!(classify(429, Some("billing_not_active"), None), Fatal);
        assert_eq!(classify(429, Some("access_terminated"), None), Fatal);
        assert_eq!(
            classify(429, Some("rate_limit_exceeded"), Some("requests")),
            Retryable
        );
        assert_eq!(classify(429, None, None), Retryable);
    }

    #[test]
    fn overload_and_conflicts_are_retryable() {
        for status in [408, 409, 500, 502, 503, 504, 529] {
            assert_eq!(classify(status, None, None), Retryable, "{status}");
        }
    }

    #[test]
    fn retry_after_prefers_milliseconds_then_seconds_then_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after(Some("1500"), Some("9"), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(None, Some("2"), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(None, Some("0.5"), now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after(None, Some("Thu, 01 Jan 2026 00:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(None, Some("Wed, 31 Dec 2025 23:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(Some("-1"), Some("soon"), now), None);
        assert_eq!(parse_retry_after(None, None, now), None);
    }

    #[test]
    fn display_is_one_line_with_the_facts() {
        let error = LlmError {
            class: Retryable,
            status: Some(429),
            code: Some("rate_limit_exceeded".into()),
            message: "Rate limit reached.\nTry again.".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            error.to_string(),
            "retryable LLM error (HTTP 429, rate_limit_exceeded, retry after 2000ms): \
             Rate limit reached. Try again."
        );
        let timeout = LlmError::new(Retryable, "timeout", "no answer");
        assert_eq!(
            timeout.to_string(),
            "retryable LLM error (timeout): no answer"
        );
    }
}

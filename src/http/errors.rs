//! The one error shape of the API: a status, a machine-readable code, a message, and the
//! field at fault when there is one. Internal errors are logged with their cause chain and
//! answered with a generic message.

use poem::error::{MethodNotAllowedError, NotFoundError};
use poem::{IntoResponse, Response};
use poem_openapi::error::{
    AuthorizationError, ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use aggregates::bot::BotError;
use aggregates::text::InvalidField;

use crate::event_store::CommandError;
use crate::rate_limit::RetryAfter;
use crate::runtime::error_chain::ErrorChain;

#[derive(Debug, Clone, Object)]
pub struct ApiError {
    /// A stable code: `invalid_field`, `malformed_request`, `not_found`, `conflict`, ...
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault, when one is.
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(error: &str, message: impl Into<String>) -> Self {
        Self {
            error: error.to_owned(),
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

#[derive(Debug, ApiResponse)]
pub enum ApiFailure {
    /// The request could not be read: malformed JSON, a missing field, a wrong type.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    /// No valid admin session.
    #[oai(status = 401)]
    Unauthorized(Json<ApiError>),
    /// A state-changing request without the session's `X-CSRF-Token`.
    #[oai(status = 403)]
    Forbidden(Json<ApiError>),
    #[oai(status = 404)]
    NotFound(Json<ApiError>),
    /// The request contradicts the current state (e.g. enabling a deleted bot).
    #[oai(status = 409)]
    Conflict(Json<ApiError>),
    /// A field's value is not acceptable; `field` names it.
    #[oai(status = 422)]
    Unprocessable(Json<ApiError>),
    /// Too many requests (or failed logins): wait `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ApiError>, #[oai(header = "Retry-After")] u64),
    #[oai(status = 500)]
    Internal(Json<ApiError>),
    #[oai(status = 503)]
    Unavailable(Json<ApiError>),
}

impl ApiFailure {
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(Json(ApiError::new(
            "not_found",
            format!("no {what} with this id"),
        )))
    }

    pub fn invalid(field: InvalidField) -> Self {
        Self::Unprocessable(Json(
            ApiError::new("invalid_field", field.to_string()).with_field(field.field),
        ))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(Json(ApiError::new("unauthorized", message)))
    }

    pub fn too_many_requests(message: impl Into<String>, retry: RetryAfter) -> Self {
        Self::TooManyRequests(
            Json(ApiError::new("too_many_requests", message)),
            retry.seconds(),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(Json(ApiError::new("conflict", message)))
    }

    /// Logs the error with its whole cause chain; the client learns only that it happened.
    pub fn internal(context: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(error), "{context}");
        Self::Internal(Json(ApiError::new(
            "internal",
            "an internal error occurred; it has been logged",
        )))
    }
}

impl From<CommandError<BotError>> for ApiFailure {
    fn from(error: CommandError<BotError>) -> Self {
        match error {
            CommandError::Rejected(BotError::Invalid(field)) => ApiFailure::invalid(field),
            CommandError::Rejected(BotError::NotFound) => ApiFailure::not_found("bot"),
            CommandError::Rejected(
                e @ (BotError::AlreadyExists | BotError::Deleted(_) | BotError::NotEnabled),
            ) => ApiFailure::conflict(e.to_string()),
            CommandError::Conflict => ApiFailure::Unavailable(Json(ApiError::new(
                "busy",
                "the bot is being changed concurrently; try again",
            ))),
            e @ CommandError::Store(_) => ApiFailure::internal("a bot command failed", &e),
        }
    }
}

/// Turns the errors poem and poem-openapi raise before a handler runs (unreadable body, bad
/// parameter, unknown route) into the same JSON shape as every other error.
pub async fn render_framework_error(error: poem::Error) -> Response {
    let status = error.status();
    let body = if let Some(e) = error.downcast_ref::<ParseRequestPayloadError>() {
        let mut body = ApiError::new("malformed_request", e.reason.clone());
        body.field = field_in_message(&e.reason);
        body
    } else if let Some(e) = error.downcast_ref::<ParseParamError>() {
        ApiError::new("malformed_request", format!("{}: {}", e.name, e.reason)).with_field(e.name)
    } else if let Some(e) = error.downcast_ref::<ParsePathError>() {
        // poem-openapi names path parameters by position, so name the part instead.
        ApiError::new("malformed_request", format!("path: {}", e.reason)).with_field("path")
    } else if let Some(e) = error.downcast_ref::<ContentTypeError>() {
        ApiError::new("unsupported_media_type", e.to_string())
    } else if error.is::<AuthorizationError>() {
        // No session cookie at all: the guard never ran.
        ApiError::new(
            "unauthorized",
            "log in first: this endpoint needs an admin session",
        )
    } else if error.is::<NotFoundError>() {
        ApiError::new("not_found", "no such route")
    } else if error.is::<MethodNotAllowedError>() {
        ApiError::new("method_not_allowed", "this route does not take this method")
    } else {
        // Our own ApiFailure values, and anything else that already carries its response.
        return error.into_response();
    };
    Json(body).with_status(status).into_response()
}

/// serde and poem-openapi name the offending field in backticks or quotes; pull it out.
fn field_in_message(message: &str) -> Option<String> {
    for marker in ["field `", "field \""] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            let end = rest.find(['`', '"'])?;
            return Some(rest[..end].to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::field_in_message;

    #[test]
    fn the_field_is_found_in_serde_and_poem_messages() {
        assert_eq!(
            field_in_message("missing field `token` at line 1").as_deref(),
            Some("token")
        );
        assert_eq!(
            field_in_message("failed to parse field \"name\": expected string").as_deref(),
            Some("name")
        );
        assert_eq!(field_in_message("expected value at line 1"), None);
    }
}

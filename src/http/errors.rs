//! The one error shape of the API: a status, a machine-readable code, a message, and the
//! field at fault when there is one. Internal errors are logged with their cause chain and
//! answered with a generic message.
//!
//! Handlers build an [`ApiFailure`]; each operation declares, with [`error_responses!`], the
//! statuses it can answer with, and only those: the OpenAPI document then tells the truth per
//! operation, including the statuses the guard (401, 403, 429), the body limit (413) and the
//! request parser (400, 415) answer before the handler runs.

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
#[oai(skip_serializing_if_is_none)]
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

/// Every error the API produces, before an operation's own enum narrows it down. It is also
/// what the guard and the middleware answer with directly.
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
    /// The body is larger than `MAX_REQUEST_BYTES`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ApiError>),
    /// The body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ApiError>),
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

/// Declares an operation's error responses: an `ApiResponse` enum with only the listed
/// variants (each a status of [`ApiFailure`]'s), and the conversion from [`ApiFailure`], so
/// that handlers keep building `ApiFailure`s and `?` narrows them. A failure whose status the
/// operation did not declare is a bug: it is logged and answered as 500, which every
/// operation declares.
///
/// ```ignore
/// error_responses! {
///     /// What `GET /bots/{id}` answers when it does not succeed.
///     pub enum BotReadError { BadRequest, Unauthorized, NotFound, TooManyRequests, Internal }
/// }
/// ```
macro_rules! error_responses {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident),+ $(,)? }) => {
        $crate::http::errors::error_responses!(@munch [$(#[$meta])* $vis enum $name] [] [] $($variant)+);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] BadRequest $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// The request could not be read (malformed JSON, a missing or unknown field, a
            /// wrong type, a malformed parameter); `field` names it when it can.
            #[oai(status = 400)] BadRequest(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)* $crate::http::errors::ApiFailure::BadRequest(body) => Self::BadRequest(body),] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] Unauthorized $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// Not authenticated: no valid admin session (the login: a wrong email or
            /// password; the webhook: a wrong secret token).
            #[oai(status = 401)] Unauthorized(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)* $crate::http::errors::ApiFailure::Unauthorized(body) => Self::Unauthorized(body),] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] Forbidden $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// A state-changing request without the session's `X-CSRF-Token`.
            #[oai(status = 403)] Forbidden(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)* $crate::http::errors::ApiFailure::Forbidden(body) => Self::Forbidden(body),] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] NotFound $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// Nothing has this id.
            #[oai(status = 404)] NotFound(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)* $crate::http::errors::ApiFailure::NotFound(body) => Self::NotFound(body),] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] Conflict $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// The request contradicts the current state.
            #[oai(status = 409)] Conflict(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)* $crate::http::errors::ApiFailure::Conflict(body) => Self::Conflict(body),] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] PayloadTooLarge $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// The body is larger than `MAX_REQUEST_BYTES`.
            #[oai(status = 413)] PayloadTooLarge(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)* $crate::http::errors::ApiFailure::PayloadTooLarge(body) => Self::PayloadTooLarge(body),] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] UnsupportedMediaType $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// The body is not `application/json`.
            #[oai(status = 415)] UnsupportedMediaType(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)* $crate::http::errors::ApiFailure::UnsupportedMediaType(body) => Self::UnsupportedMediaType(body),] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] Unprocessable $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// A value is not acceptable; `field` names it.
            #[oai(status = 422)] Unprocessable(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)* $crate::http::errors::ApiFailure::Unprocessable(body) => Self::Unprocessable(body),] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] TooManyRequests $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// Too many requests (or failed logins): wait `Retry-After` seconds.
            #[oai(status = 429)] TooManyRequests(
                poem_openapi::payload::Json<$crate::http::errors::ApiError>,
                #[oai(header = "Retry-After")] u64,
            ),
        ] [$($arm)* $crate::http::errors::ApiFailure::TooManyRequests(body, retry) => Self::TooManyRequests(body, retry),] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] Internal $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// An internal error; it is logged with its cause, and not shown.
            #[oai(status = 500)] Internal(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)*] $($rest)*);
    };
    (@munch $head:tt [$($decl:tt)*] [$($arm:tt)*] Unavailable $($rest:ident)*) => {
        $crate::http::errors::error_responses!(@munch $head [$($decl)*
            /// Try again shortly: the write stands but its read model lags
            /// (`read_model_lagging`), or the resource kept changing concurrently (`busy`).
            #[oai(status = 503)] Unavailable(poem_openapi::payload::Json<$crate::http::errors::ApiError>),
        ] [$($arm)* $crate::http::errors::ApiFailure::Unavailable(body) => Self::Unavailable(body),] $($rest)*);
    };
    (@munch [$(#[$meta:meta])* $vis:vis enum $name:ident] [$($decl:tt)*] [$($arm:tt)*]) => {
        $(#[$meta])*
        #[derive(Debug, poem_openapi::ApiResponse)]
        $vis enum $name { $($decl)* }

        impl From<$crate::http::errors::ApiFailure> for $name {
            fn from(failure: $crate::http::errors::ApiFailure) -> Self {
                #[allow(unreachable_patterns)]
                match failure {
                    $($arm)*
                    $crate::http::errors::ApiFailure::Internal(body) => Self::Internal(body),
                    undeclared => {
                        tracing::error!(failure = ?undeclared, operation = stringify!($name), "an operation failed with a status it does not declare");
                        Self::Internal(poem_openapi::payload::Json($crate::http::errors::ApiError::new(
                            "internal",
                            "an internal error occurred; it has been logged",
                        )))
                    }
                }
            }
        }
    };
}
pub(crate) use error_responses;

impl ApiFailure {
    /// The error as the client reads it (for a page that shows it rather than answer JSON).
    pub fn error(&self) -> &ApiError {
        match self {
            Self::BadRequest(body)
            | Self::Unauthorized(body)
            | Self::Forbidden(body)
            | Self::NotFound(body)
            | Self::Conflict(body)
            | Self::PayloadTooLarge(body)
            | Self::UnsupportedMediaType(body)
            | Self::Unprocessable(body)
            | Self::TooManyRequests(body, _)
            | Self::Internal(body)
            | Self::Unavailable(body) => &body.0,
        }
    }

    /// The HTTP status this failure answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::PayloadTooLarge(_) => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Unprocessable(_) => 422,
            Self::TooManyRequests(..) => 429,
            Self::Internal(_) => 500,
            Self::Unavailable(_) => 503,
        }
    }

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
    } else if error.is::<poem::error::ParsePathError>() {
        // poem's router: a path segment whose percent-encoding is not UTF-8.
        ApiError::new(
            "malformed_request",
            "path: a percent-encoded part is not UTF-8",
        )
        .with_field("path")
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

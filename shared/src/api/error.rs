//! The one place errors become HTTP: every failure is an [`ApiError`], answered as
//! `{"error": {"code", "message", "requestId", "details"?}}` with the right status. Internal
//! details (SDK messages, table names, SQL) are logged here, once, and never sent to the client.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::{full, Body};
use crate::error::{FieldError, StoreError, ValidationError};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or invalid credentials.
    #[error("{0}")]
    Auth(String),
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such route, or no such resource for this caller.
    #[error("{0}")]
    NotFound(String),
    /// Invalid input.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The route exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Methods the route has.
        allow: Vec<&'static str>,
    },
    /// The request conflicts with stored state.
    #[error("{0}")]
    Conflict(String),
    /// The same message is still being answered (a retried chat submit).
    #[error("this message is still being answered; wait for its reply, then retry")]
    TurnInProgress,
    /// The `Idempotency-Key` was used before with a different request (code `IDEMPOTENCY_KEY_REUSED`).
    #[error("this Idempotency-Key was already used for a different request; use a new key for a new request")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still being processed (code
    /// `IDEMPOTENCY_KEY_IN_PROGRESS`).
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyKeyInProgress,
    /// The body or an item is too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body did not arrive in time (code `REQUEST_TIMEOUT`, 408).
    #[error("{0}")]
    RequestTimeout(String),
    /// The request target is too long (code `URI_TOO_LONG`, 414).
    #[error("{0}")]
    UriTooLong(String),
    /// The request's headers are too large (code `HEADERS_TOO_LARGE`, 431).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// Too many requests.
    #[error("{message}")]
    RateLimited {
        /// Explanation.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// The caller has as many chat streams open as allowed (code `RATE_LIMIT`).
    #[error("too many chat streams are open at once; wait for one to finish")]
    TooManyStreams {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A token budget is spent.
    #[error("{message}")]
    Budget {
        /// Explanation.
        message: String,
        /// Seconds until the budget's window ends.
        retry_after: u64,
    },
    /// The caller's plan does not include it (code `PLAN`, 403, with the plan's models).
    #[error("{message}")]
    Plan {
        /// Explanation.
        message: String,
        /// The models the plan allows.
        allowed: Vec<String>,
    },
    /// The deployment's monthly spend cap is reached (code `SPEND_CAP`, 503).
    #[error("the deployment's spending limit for this month is reached; chat is paused until the month ends (UTC)")]
    SpendCap {
        /// Seconds until the month ends.
        retry_after: u64,
    },
    /// Chat is switched off (code `CHAT_DISABLED`, 503).
    #[error("chat is switched off for maintenance; conversations can still be read and organised")]
    ChatDisabled,
    /// The model provider failed.
    #[error("{0}")]
    Provider(String),
    /// A dependency is throttling or down; retry later.
    #[error("service unavailable")]
    Unavailable(#[source] Option<crate::error::BoxError>),
    /// A bug or misconfiguration.
    #[error("internal error")]
    Internal(#[source] Option<crate::error::BoxError>),
    /// A reaction to a message that is not an assistant reply (code `NOT_AN_ASSISTANT_MESSAGE`, 400).
    #[error("{0}")]
    NotReactable(String),
    /// Import jobs are off: no files bucket (code `IMPORTS_DISABLED`, 501, as attachments).
    #[error("{0}")]
    ImportsDisabled(String),
    /// An attached file's problem (its code and status from [`ApiError::file_code`]).
    #[error("{0}")]
    File(crate::files::FileError),
}

impl From<crate::files::FileError> for ApiError {
    fn from(e: crate::files::FileError) -> Self {
        use crate::files::FileError;
        match e {
            FileError::NotFound => ApiError::NotFound("file not found".to_owned()),
            FileError::Invalid(v) => ApiError::Validation(v),
            FileError::Store(s) => s.into(),
            FileError::Blob(crate::blobs::BlobError::Unavailable(m)) => ApiError::Unavailable(Some(m.into())),
            FileError::Blob(crate::blobs::BlobError::Internal(m)) => ApiError::Internal(Some(m.into())),
            other => ApiError::File(other),
        }
    }
}

impl From<crate::import::jobs::ImportJobError> for ApiError {
    fn from(e: crate::import::jobs::ImportJobError) -> Self {
        use crate::import::jobs::ImportJobError;
        match e {
            ImportJobError::Disabled => ApiError::ImportsDisabled(e.to_string()),
            ImportJobError::NotFound => ApiError::NotFound(e.to_string()),
            ImportJobError::State(m) => ApiError::Conflict(m),
            ImportJobError::Invalid(v) => ApiError::Validation(v),
            ImportJobError::Store(s) => s.into(),
            ImportJobError::Blob(crate::blobs::BlobError::Unavailable(m)) => ApiError::Unavailable(Some(m.into())),
            ImportJobError::Blob(crate::blobs::BlobError::Internal(m)) => ApiError::Internal(Some(m.into())),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("conversation not found".to_owned()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::InvalidCursor => {
                ApiError::Validation(ValidationError::field("cursor", "is not a cursor this listing issued"))
            }
            StoreError::TooLarge(m) => ApiError::PayloadTooLarge(m),
            StoreError::RateLimited { retry_after } => ApiError::RateLimited {
                message: "the per-minute request limit is reached; retry after the minute ends".to_owned(),
                retry_after,
            },
            StoreError::BudgetExceeded { window, retry_after } => ApiError::Budget {
                message: if window == crate::store::rules::DOLLAR_WINDOW {
                    "your plan's dollar budget for this month is spent; it renews when the month ends (UTC)".to_owned()
                } else {
                    format!("your {window} token budget is spent; it renews when the {window} ends (UTC)")
                },
                retry_after,
            },
            StoreError::TooManyStreams { retry_after } => ApiError::TooManyStreams { retry_after },
            StoreError::Unavailable(source) => ApiError::Unavailable(Some(source)),
            other @ StoreError::Internal { .. } => ApiError::Internal(Some(Box::new(other))),
        }
    }
}

impl From<crate::chat::ChatError> for ApiError {
    fn from(e: crate::chat::ChatError) -> Self {
        use crate::chat::ChatError;
        match e {
            ChatError::Validation(v) => ApiError::Validation(v),
            ChatError::NoSuchRoute => ApiError::NotFound("no such route".to_owned()),
            ChatError::ConversationNotFound => ApiError::NotFound("conversation not found".to_owned()),
            ChatError::TurnInProgress => ApiError::TurnInProgress,
            ChatError::ReadOnly => ApiError::Forbidden(ChatError::ReadOnly.to_string()),
            ChatError::NoProvider => ApiError::Internal(Some("no model provider configured".into())),
            ChatError::Store(s) => s.into(),
            ChatError::File(f) => f.into(),
            ChatError::Plan { message, allowed } => ApiError::Plan { message, allowed },
            ChatError::SpendCap { retry_after } => ApiError::SpendCap { retry_after },
            ChatError::Disabled => ApiError::ChatDisabled,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDetail<'a> {
    code: &'static str,
    message: String,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a [FieldError]>,
    /// `PLAN`: the models the caller's plan allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed: Option<&'a [String]>,
}

/// Seconds a client should wait after a 503, or a 409 `IDEMPOTENCY_KEY_IN_PROGRESS`.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 1;

impl ApiError {
    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Auth(_) => "AUTH",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Validation(_) => "VALIDATION",
            ApiError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::TurnInProgress => "TURN_IN_PROGRESS",
            ApiError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ApiError::IdempotencyKeyInProgress => "IDEMPOTENCY_KEY_IN_PROGRESS",
            ApiError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            ApiError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::RequestTimeout(_) => "REQUEST_TIMEOUT",
            ApiError::UriTooLong(_) => "URI_TOO_LONG",
            ApiError::HeadersTooLarge(_) => "HEADERS_TOO_LARGE",
            ApiError::RateLimited { .. } | ApiError::TooManyStreams { .. } => "RATE_LIMIT",
            ApiError::Budget { .. } => "BUDGET",
            ApiError::Plan { .. } => "PLAN",
            ApiError::SpendCap { .. } => "SPEND_CAP",
            ApiError::ChatDisabled => "CHAT_DISABLED",
            ApiError::Provider(_) => "PROVIDER",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
            ApiError::NotReactable(_) => "NOT_AN_ASSISTANT_MESSAGE",
            ApiError::ImportsDisabled(_) => "IMPORTS_DISABLED",
            ApiError::File(e) => Self::file_code(e).0,
        }
    }

    /// The code a request refused by a limit counts under in the `Refusals` metric (`None`: not
    /// a refusal). The response's code, except for the stream cap, answered `RATE_LIMIT` like
    /// the per-minute limit but counted apart as `TOO_MANY_STREAMS`.
    pub fn refusal_code(&self) -> Option<&'static str> {
        match self {
            ApiError::RateLimited { .. } | ApiError::Budget { .. } => Some(self.code()),
            ApiError::TooManyStreams { .. } => Some("TOO_MANY_STREAMS"),
            ApiError::Plan { .. } | ApiError::SpendCap { .. } | ApiError::ChatDisabled => Some(self.code()),
            _ => None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Validation(_) | ApiError::NotReactable(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::TurnInProgress | ApiError::IdempotencyKeyInProgress => {
                StatusCode::CONFLICT
            }
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RateLimited { .. } | ApiError::TooManyStreams { .. } | ApiError::Budget { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Plan { .. } => StatusCode::FORBIDDEN,
            ApiError::Provider(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) | ApiError::SpendCap { .. } | ApiError::ChatDisabled => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ImportsDisabled(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::File(e) => Self::file_code(e).1,
        }
    }

    /// The code and status of a file error.
    fn file_code(e: &crate::files::FileError) -> (&'static str, StatusCode) {
        use crate::files::FileError;
        match e {
            FileError::Disabled => ("ATTACHMENTS_DISABLED", StatusCode::NOT_IMPLEMENTED),
            FileError::UnsupportedType(_) => ("FILE_TYPE", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            FileError::TooLarge { .. } | FileError::Dimensions { .. } => {
                ("FILE_TOO_LARGE", StatusCode::PAYLOAD_TOO_LARGE)
            }
            FileError::Quota(_) => ("FILE_QUOTA", StatusCode::PAYLOAD_TOO_LARGE),
            FileError::TypeMismatch(_) => ("FILE_TYPE_MISMATCH", StatusCode::UNPROCESSABLE_ENTITY),
            FileError::NotUploaded => ("FILE_NOT_UPLOADED", StatusCode::CONFLICT),
            FileError::Expired => ("UPLOAD_EXPIRED", StatusCode::GONE),
            FileError::State(_) => ("FILE_STATE", StatusCode::CONFLICT),
            FileError::InUse(_) => ("FILE_IN_USE", StatusCode::CONFLICT),
            FileError::Unsupported(_) => ("ATTACHMENT_UNSUPPORTED", StatusCode::BAD_REQUEST),
            // Mapped to other variants by `From<FileError>`.
            FileError::NotFound => ("NOT_FOUND", StatusCode::NOT_FOUND),
            FileError::Invalid(_) => ("VALIDATION", StatusCode::BAD_REQUEST),
            FileError::Store(_) | FileError::Blob(_) => ("INTERNAL", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The message for the client: never an internal detail.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::MethodNotAllowed { allow } => format!("method not allowed; allowed: {}", allow.join(", ")),
            ApiError::Unavailable(_) => "the service is temporarily unavailable; retry shortly".to_owned(),
            ApiError::Internal(_) => "internal error; quote the request id when reporting it".to_owned(),
            other => other.to_string(),
        }
    }

    /// Logs the error once (server faults with their source chain) and builds the response.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        match &self {
            ApiError::Internal(source) | ApiError::Unavailable(source) => {
                let chain = source.as_deref().map(|e| error_chain(e)).unwrap_or_default();
                if matches!(self, ApiError::Internal(_)) {
                    tracing::error!(code = self.code(), error = %chain, "request failed");
                } else {
                    tracing::warn!(code = self.code(), error = %chain, "dependency unavailable");
                }
            }
            _ => {}
        }
        let details = match &self {
            ApiError::Validation(v) if !v.fields.is_empty() => Some(v.fields.as_slice()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
                request_id,
                details,
                allowed: match &self {
                    ApiError::Plan { allowed, .. } => Some(allowed.as_slice()),
                    _ => None,
                },
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":{"code":"INTERNAL"}}"#.to_vec());
        let mut response = Response::new(full(Bytes::from(bytes)));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match &self {
            ApiError::MethodNotAllowed { allow } => {
                if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                    headers.insert(header::ALLOW, v);
                }
            }
            ApiError::RateLimited { retry_after, .. }
            | ApiError::TooManyStreams { retry_after }
            | ApiError::Budget { retry_after, .. }
            | ApiError::SpendCap { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::Unavailable(_) | ApiError::IdempotencyKeyInProgress => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER));
            }
            ApiError::Auth(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// `error: cause: cause` for logs.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

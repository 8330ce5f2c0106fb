//! Typed errors of the inner layers. `ValidationError` comes from parsing input; `StoreError` from
//! the storage adapters. Both keep their source; the single mapping to HTTP lives in `api::error`.

use std::fmt;

use serde::Serialize;

/// Boxed source error of an adapter (SDK error, SQLite error), kept for logs, never shown to clients.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as the client sent it (`title`, `messages[2].content`, ...).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Input that does not parse: a message for people and field-level details for programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// A summary.
    pub message: String,
    /// The fields at fault (may be empty for whole-body problems).
    pub fields: Vec<FieldError>,
}

impl ValidationError {
    /// One field is invalid.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        Self {
            message: format!("{field}: {message}"),
            fields: vec![FieldError { field, message }],
        }
    }

    /// The request as a whole is invalid.
    pub fn body(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// Several fields are invalid.
    pub fn fields(fields: Vec<FieldError>) -> Self {
        let message = match fields.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self { message, fields }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ValidationError {}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The conversation (or message) does not exist, or belongs to someone else: the two are
    /// deliberately indistinguishable.
    #[error("not found")]
    NotFound,
    /// An invariant would break: the id is taken, or a concurrent change won.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A pagination cursor that this listing did not issue (tampered, truncated or from another listing).
    #[error("invalid pagination cursor")]
    InvalidCursor,
    /// The item would exceed what the store can hold; nothing was written.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The per-minute request limit is reached (chat turns are counted by the store).
    #[error("rate limit reached")]
    RateLimited {
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// A token budget (or the month's dollar budget) is spent.
    #[error("the {window} budget is spent")]
    BudgetExceeded {
        /// `day`, `month` or [`crate::store::rules::DOLLAR_WINDOW`].
        window: &'static str,
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// The caller has as many chat streams open as allowed.
    #[error("too many concurrent chat streams")]
    TooManyStreams {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The store is throttling or unreachable after retries; the caller may retry later.
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else (a bug, corrupt data, a misconfigured table).
    #[error("store failure: {context}")]
    Internal {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// An internal failure with context.
    pub fn internal(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Internal {
            context: context.into(),
            source: source.into(),
        }
    }
}

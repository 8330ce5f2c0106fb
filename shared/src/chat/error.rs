//! What a chat turn can fail with before it streams. `api::error` maps it to HTTP, once.

use crate::error::{StoreError, ValidationError};

/// A refused or failed chat turn (nothing was streamed).
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The request is invalid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// This deployment does not serve that chat route.
    #[error("no such route")]
    NoSuchRoute,
    /// The conversation does not exist or is not the caller's.
    #[error("conversation not found")]
    ConversationNotFound,
    /// The conversation is shared with the caller to read only (a viewer).
    #[error("this conversation is shared with you to read; only its owner and collaborators can chat in it")]
    ReadOnly,
    /// The same message is still being answered (a retried submit while its turn streams).
    #[error("this message is still being answered")]
    TurnInProgress,
    /// No model provider is configured (a function built without chat).
    #[error("no model provider configured")]
    NoProvider,
    /// The store refused (rate limit, budget, stream cap, not found) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller's plan does not include what the turn asks for (a model, web search,
    /// attachments); `allowed` lists the plan's models.
    #[error("{message}")]
    Plan {
        /// What is not in the plan.
        message: String,
        /// The models the plan allows.
        allowed: Vec<String>,
    },
    /// The deployment's spend cap for the month is reached.
    #[error("the deployment's spending limit for this month is reached; chat is paused until the month ends (UTC)")]
    SpendCap {
        /// Seconds until the month ends.
        retry_after: u64,
    },
    /// Chat is switched off on this function (`ATHENA_CHAT_ENABLED=false`).
    #[error("chat is switched off for maintenance; conversations can still be read and organised")]
    Disabled,
    /// An attached file was refused (not the caller's, not ready, in another conversation, not
    /// readable by the provider).
    #[error(transparent)]
    File(#[from] crate::files::FileError),
}

//! Model providers behind one port, [`ChatModel`]: a request (system prompt, alternating
//! messages, tools) in, a stream of [`ModelEvent`]s out.
//!
//! - [`bedrock::BedrockModel`]: Bedrock `ConverseStream` through `aws-sdk-bedrockruntime`.
//! - [`openai::OpenAiModel`]: any OpenAI-compatible streaming chat-completions server
//!   (OpenRouter, Ollama, vLLM, llama.cpp).
//! - [`scripted::ScriptedModel`]: deterministic replies for tests and offline demos; only ever
//!   used when chosen explicitly (`ATHENA_PROVIDER=scripted`).
//!
//! Errors before the first event ([`ChatModel::stream`] returning `Err`) are candidates for the
//! fallback chain when [`ProviderError::is_fallback_worthy`]; errors inside the stream are not.

pub mod bedrock;
pub mod openai;
pub mod scripted;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::domain::{FileFormat, FileId, FinishReason, Usage};

/// A message of the model's context.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMessage {
    /// `user` or `assistant` (tool results travel in user messages, as Bedrock wants).
    pub role: ModelRole,
    /// Its blocks.
    pub content: Vec<ModelContent>,
}

/// Roles the model sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelRole {
    /// The person (and tool results).
    User,
    /// The model.
    Assistant,
}

/// A block of a message.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelContent {
    /// Text.
    Text(String),
    /// The model called a tool.
    ToolUse {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments.
        input: Value,
    },
    /// A tool's answer.
    ToolResult {
        /// Call id it answers.
        id: String,
        /// The result (JSON).
        content: Value,
        /// Whether the tool failed.
        is_error: bool,
    },
    /// A file the user attached, not read yet: the turn replaces it with [`ModelContent::File`]
    /// (its bytes) or with a note, before the request leaves (`chat::attachments`).
    FileRef {
        /// The file.
        id: FileId,
        /// Its format.
        format: FileFormat,
        /// Its name as uploaded.
        filename: String,
        /// Its estimated input tokens.
        tokens: u64,
    },
    /// A file's bytes: an image block or a document block (Bedrock), an image part or text
    /// (OpenAI-compatible).
    File {
        /// Its format.
        format: FileFormat,
        /// Its name as uploaded (a document block's name is derived from it).
        filename: String,
        /// The bytes.
        bytes: bytes::Bytes,
    },
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    /// Name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its input.
    pub input_schema: Value,
}

/// What to ask the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRequest {
    /// Model id (Bedrock model or inference-profile id, or the provider's model name).
    pub model: String,
    /// System prompt.
    pub system: String,
    /// Context, alternating user/assistant, starting with user.
    pub messages: Vec<ModelMessage>,
    /// Most output tokens.
    pub max_tokens: u32,
    /// Tools offered.
    pub tools: Vec<ToolSpec>,
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `end_turn`
    EndTurn,
    /// `stop_sequence`
    StopSequence,
    /// `max_tokens`
    MaxTokens,
    /// `tool_use`
    ToolUse,
    /// `content_filtered` / `guardrail_intervened`
    ContentFiltered,
    /// Anything else, as the provider said it.
    Other(String),
}

impl StopReason {
    /// The AI SDK finish reason it maps to.
    pub fn finish_reason(&self) -> FinishReason {
        match self {
            StopReason::EndTurn | StopReason::StopSequence => FinishReason::Stop,
            StopReason::MaxTokens => FinishReason::Length,
            StopReason::ToolUse => FinishReason::ToolCalls,
            StopReason::ContentFiltered => FinishReason::ContentFilter,
            StopReason::Other(_) => FinishReason::Other,
        }
    }
}

/// One event of a model's reply stream.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelEvent {
    /// More text.
    TextDelta(String),
    /// A complete tool call (its JSON input joined and parsed).
    ToolUse {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments.
        input: Value,
    },
    /// The model stopped.
    Stop(StopReason),
    /// Token usage (Bedrock sends it after the stop).
    Usage(Usage),
}

/// What a provider can fail with. Messages are for logs and are never sent to clients as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider throttled us.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The provider is unavailable (5xx, connection failure).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The request was refused (bad model id, no access, context too long).
    #[error("refused: {0}")]
    Refused(String),
    /// The stream broke after it started.
    #[error("stream failed: {0}")]
    Stream(String),
}

impl ProviderError {
    /// Whether the next model of the fallback chain should be tried (only before any output).
    pub fn is_fallback_worthy(&self) -> bool {
        matches!(
            self,
            ProviderError::Throttled(_) | ProviderError::Unavailable(_) | ProviderError::Timeout(_)
        )
    }

    /// The machine-readable code stored with a failed reply.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Throttled(_) => "PROVIDER_THROTTLED",
            ProviderError::Unavailable(_) => "PROVIDER_UNAVAILABLE",
            ProviderError::Timeout(_) => "PROVIDER_TIMEOUT",
            ProviderError::Refused(_) => "PROVIDER_REFUSED",
            ProviderError::Stream(_) => "PROVIDER_STREAM",
        }
    }
}

/// The system prompt of a title request (`chat` sends it; the scripted model recognises it).
pub const TITLE_SYSTEM_PROMPT: &str = "You name conversations. Reply with a title of at most six words for the \
conversation that starts with the user's message: no quotes, no final punctuation, nothing else.";

/// A reply stream.
pub type ModelStream = BoxStream<'static, Result<ModelEvent, ProviderError>>;

/// A model provider.
#[async_trait]
pub trait ChatModel: Send + Sync + 'static {
    /// The provider's name, for logs and metrics.
    fn provider(&self) -> &'static str;

    /// Starts a reply. `Err` means nothing was produced (fallback may apply).
    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ProviderError>;

    /// Whether the provider takes files of this format (attaching one it does not take is
    /// refused before the turn starts). Every format by default.
    fn accepts(&self, format: FileFormat) -> bool {
        let _ = format;
        true
    }
}

/// The configured provider ([`ProviderConfig`](crate::config::ProviderConfig)).
pub async fn from_config(config: &crate::config::ProviderConfig) -> Arc<dyn ChatModel> {
    use crate::config::ProviderConfig;
    match config {
        ProviderConfig::Bedrock => Arc::new(bedrock::BedrockModel::from_env().await),
        ProviderConfig::OpenAi {
            base_url,
            api_key,
            model,
        } => Arc::new(openai::OpenAiModel::new(
            base_url.clone(),
            api_key.clone(),
            model.clone(),
        )),
        ProviderConfig::Scripted => Arc::new(scripted::ScriptedModel),
    }
}

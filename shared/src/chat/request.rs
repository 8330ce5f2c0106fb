//! A chat request as the turn sees it: parsed and validated by the HTTP layer (`api::chat`),
//! whichever client shape it came in (the seed's `{messages, model, conversationId, webSearch}`
//! or the AI SDK's `{id, messages[parts], trigger, messageId}`).

use crate::catalog::ModelInfo;
use crate::domain::{ClientMessageId, ConversationId, FileId, MessagePart, Role};

/// What the client asks the turn to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Answer the newest user message (`submit-message`, or the seed's body).
    Submit,
    /// Replace the last reply (`regenerate-message`), optionally naming it.
    Regenerate(Option<String>),
}

/// One message the client sent, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingMessage {
    /// `user` or `assistant` (the system prompt is the server's).
    pub role: Role,
    /// Its text.
    pub text: String,
    /// The client's id for it (idempotent submits), when it gave a valid one.
    pub client_id: Option<ClientMessageId>,
    /// On an assistant message: the user's answers to its tool approval requests (the AI SDK's
    /// tool parts with `approval.approved` set).
    pub approvals: Vec<ApprovalAnswer>,
    /// On a user message: the files it attaches (the AI SDK's `file` parts naming
    /// `/api/files/{id}`), in order.
    pub files: Vec<FileId>,
    /// The attached files' parts, once the turn checked and attached them (`files::attach`).
    pub attachments: Vec<MessagePart>,
}

/// The user's answer to a tool call's approval request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalAnswer {
    /// The approval's id.
    pub approval_id: String,
    /// The tool call it is for.
    pub tool_call_id: String,
    /// Approved (run the call) or denied.
    pub approved: bool,
    /// The reason the user gave.
    pub reason: Option<String>,
}

/// A validated chat request.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// The conversation (the client's chat id, or a new server-made id).
    pub conversation_id: ConversationId,
    /// What to do.
    pub trigger: Trigger,
    /// The client's messages, in order (a submit ends with the user's new message).
    pub messages: Vec<IncomingMessage>,
    /// The model the client asked for, already checked against the catalog.
    pub model: Option<&'static ModelInfo>,
    /// Whether the client allows the web search tool this turn.
    pub web_search: bool,
    /// The caller's bearer token, for MCP servers configured to receive it (never logged).
    pub caller_token: Option<String>,
}

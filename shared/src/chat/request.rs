//! A chat request as the turn sees it: parsed and validated by the HTTP layer (`api::chat`),
//! whichever client shape it came in (the seed's `{messages, model, conversationId, webSearch}`
//! or the AI SDK's `{id, messages[parts], trigger, messageId}`).

use crate::catalog::ModelInfo;
use crate::domain::{ClientMessageId, ConversationId, Role};

/// What the client asks the turn to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Answer the newest user message (`submit-message`, or the seed's body).
    Submit,
    /// Replace the last reply (`regenerate-message`), optionally naming it.
    Regenerate(Option<String>),
}

/// One message the client sent, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingMessage {
    /// `user` or `assistant` (the system prompt is the server's).
    pub role: Role,
    /// Its text.
    pub text: String,
    /// The client's id for it (idempotent submits), when it gave a valid one.
    pub client_id: Option<ClientMessageId>,
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
}

//! Messages: roles, finish reasons, tool parts, usage, and the message itself.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ClientMessageId, ConversationId, FileId, MessageId, Timestamp, UserId};
use crate::error::ValidationError;

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person chatting.
    User,
    /// The model.
    Assistant,
    /// A system instruction.
    System,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "system" => Ok(Role::System),
            "tool" => Ok(Role::Tool),
            _ => Err(ValidationError::field(
                "role",
                "must be one of user, assistant, system, tool",
            )),
        }
    }
}

/// Why a reply ended (the AI SDK's finish reasons, plus `aborted` for a client that went away).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// The output token limit was reached.
    Length,
    /// A content filter or guardrail stopped it.
    ContentFilter,
    /// The model asked for tools.
    ToolCalls,
    /// The provider failed mid-reply; the partial text is kept.
    Error,
    /// The client disconnected or stopped the reply; the partial text is kept.
    Aborted,
    /// Anything else.
    Other,
}

/// A structured part of a message: tool calls and their results, and (on replies that called
/// tools) the text between them, in the order the model produced them. A message whose parts have
/// no `Text` part (plain replies, and replies stored before text parts existed) has its whole
/// text first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum MessagePart {
    /// A run of the reply's text (the message's `content` is every text part joined).
    Text {
        /// The text.
        text: String,
    },
    /// The model called a tool.
    #[serde(rename_all = "camelCase")]
    ToolCall {
        /// Id linking the call to its result.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// The arguments, as the model gave them.
        input: serde_json::Value,
        /// The call is an action that needs the user's approval before it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approval: Option<Approval>,
    },
    /// A file the user attached: a reference to a stored file (its bytes are kept apart, in
    /// the bucket or on disk).
    #[serde(rename_all = "camelCase")]
    File {
        /// The file.
        file_id: FileId,
        /// Its media type (checked against its bytes).
        media_type: String,
        /// Its name as uploaded.
        filename: String,
        /// Its size, bytes.
        size: u64,
        /// Its estimated input tokens.
        #[serde(default)]
        tokens: u64,
    },
    /// A tool answered.
    #[serde(rename_all = "camelCase")]
    ToolResult {
        /// Id of the call this answers.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// What the tool returned.
        output: serde_json::Value,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

/// The approval a tool call waits for, or the user's answer to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The approval's id (the AI SDK's `approvalId`).
    pub id: String,
    /// `None` while waiting; the user's answer once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
    /// The reason the user gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MessagePart {
    /// The id of the approval this part waits for (an unanswered approval request).
    pub fn awaited_approval(&self) -> Option<&str> {
        match self {
            MessagePart::ToolCall {
                approval: Some(Approval { id, approved: None, .. }),
                ..
            } => Some(id),
            _ => None,
        }
    }
}

impl Message {
    /// The result of tool call `call_id` among the parts: its output and whether it failed.
    pub fn tool_result(&self, call_id: &str) -> Option<(&serde_json::Value, bool)> {
        self.parts.iter().find_map(|part| match part {
            MessagePart::ToolResult {
                tool_call_id,
                output,
                is_error,
                ..
            } if tool_call_id == call_id => Some((output, *is_error)),
            _ => None,
        })
    }

    /// The files attached to this message, in order.
    pub fn files(&self) -> impl Iterator<Item = &FileId> {
        self.parts.iter().filter_map(|part| match part {
            MessagePart::File { file_id, .. } => Some(file_id),
            _ => None,
        })
    }

    /// The ids of the approvals this message waits for, in order (empty: none).
    pub fn awaited_approvals(&self) -> Vec<&str> {
        self.parts.iter().filter_map(MessagePart::awaited_approval).collect()
    }
}

/// Token usage as the provider reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A message of a conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Its id, a ULID: messages sort by id.
    pub id: MessageId,
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// The client's id for it, when the client gave one (idempotent submits). Every version of
    /// an edited message keeps the client's id; the newest version answers to it.
    pub client_id: Option<ClientMessageId>,
    /// The message it answers or follows. `None`: the message before it in id order (messages
    /// stored before branches existed, and those added through the messages API), or none for
    /// the first. Two messages with the same parent are versions of one another (siblings).
    pub parent_id: Option<MessageId>,
    /// Who wrote it.
    pub role: Role,
    /// Its text, stored verbatim.
    pub content: String,
    /// Tool calls and results, when there were any.
    pub parts: Vec<MessagePart>,
    /// The model that wrote it (assistant messages).
    pub model: Option<String>,
    /// Token usage (assistant messages).
    pub usage: Option<Usage>,
    /// Milliseconds from request to last token (assistant messages).
    pub latency_ms: Option<u64>,
    /// Why the reply ended (assistant messages).
    pub finish_reason: Option<FinishReason>,
    /// The error code when the reply failed part-way.
    pub error: Option<String>,
    /// Who wrote it, when not the conversation's owner: a collaborator the conversation is
    /// shared with (their user messages; `None` for the owner's and for replies).
    pub author: Option<UserId>,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl Message {
    /// A plain message with only text.
    pub fn text(id: MessageId, conversation_id: ConversationId, role: Role, content: String, at: Timestamp) -> Self {
        Self {
            id,
            conversation_id,
            client_id: None,
            parent_id: None,
            role,
            content,
            parts: Vec::new(),
            model: None,
            usage: None,
            latency_ms: None,
            finish_reason: None,
            error: None,
            author: None,
            created_at: at,
        }
    }
}

//! What a turn tells its client, independent of the wire format (`api::chat` encodes it).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::domain::{ConversationId, MessageId};

/// One event of a streaming turn, in order: `Start`, then per model call `StartStep`, text and
/// tool events, `FinishStep`; then `Finish` (success, or a stop/partial reply) or `Error`.
/// Checkpoints store them as JSON (`{"t": "text", "v": ...}`), so a resumed stream replays them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "kebab-case")]
pub enum TurnEvent {
    /// The reply begins: its message id and metadata (the conversation id).
    Start {
        /// The assistant message's id.
        message_id: MessageId,
        /// Metadata for the client.
        metadata: Value,
    },
    /// A model call begins.
    StartStep,
    /// A piece of the reply's text.
    Text(String),
    /// The model called a tool.
    ToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments.
        input: Value,
    },
    /// A tool answered.
    ToolResult {
        /// Call id.
        id: String,
        /// What it returned.
        output: Value,
        /// Whether it failed.
        is_error: bool,
    },
    /// A tool call that is an action waits for the user's approval (the reply then ends).
    ToolApprovalRequest {
        /// The approval's id (the client answers it).
        approval_id: String,
        /// The call it is for.
        tool_call_id: String,
    },
    /// The user denied a call: it did not run.
    ToolDenied {
        /// The call.
        id: String,
    },
    /// A model call ended.
    FinishStep,
    /// The turn ended; metadata: model, usage, latency, finish reason.
    Finish {
        /// Metadata for the client.
        metadata: Value,
    },
    /// The turn failed after it started streaming; the message is safe to show.
    Error {
        /// What the client is told.
        message: String,
    },
}

/// A running turn: its conversation and the receiving end of its events. Dropping it tells the
/// turn the client went away (the reply is then stored as `aborted`).
#[derive(Debug)]
pub struct TurnStream {
    /// The conversation the turn runs in.
    pub conversation_id: ConversationId,
    /// The events, as the turn produces them (bounded: a slow client slows the relay, not memory).
    pub events: mpsc::Receiver<TurnEvent>,
    /// Soft-limit headers (the caller is at 80 % of a budget): `x-athena-budget-remaining-*`.
    pub budget_headers: Vec<(&'static str, String)>,
}

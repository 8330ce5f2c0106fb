//! The turn a conversation is running (or ran last): what resuming its stream and stopping it
//! need to find it.

use super::{MessageId, Timestamp};

/// The newest turn admitted in a conversation. Written by the admitting write; the turn's events
/// are kept as checkpoints while it streams (see `store::Streams`), so its stream can be resumed
/// and its partial reply shown even from another instance than the one generating it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveTurn {
    /// The turn's id (`store::TurnStart::turn_id`).
    pub turn_id: String,
    /// The id its reply is (or will be) stored under.
    pub reply_id: MessageId,
    /// The message the reply answers.
    pub parent_id: MessageId,
    /// When it was admitted.
    pub started_at: Timestamp,
    /// Until when it may still be running (its stream slot's lease): past it, a turn that left
    /// no final checkpoint died (a crash or a timeout of its instance).
    pub deadline: Timestamp,
    /// Someone asked it to stop (`POST /api/chat/{id}/stop`).
    pub stop_requested: bool,
}

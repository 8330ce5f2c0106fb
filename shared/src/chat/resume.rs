//! A turn seen from outside the task that runs it, through its checkpoints (so from any instance):
//! resuming its stream ([`resume`], the AI SDK's `reconnectToStream`), stopping it ([`stop`]), and
//! its partial reply while it streams or after it died ([`in_progress`]).

use std::sync::Arc;

use tokio::sync::mpsc;

use super::checkpoint::decode;
use super::events::{TurnEvent, TurnStream};
use super::{serves, ChatError};
use crate::domain::{
    Conversation, ConversationId, FinishReason, LiveTurn, Message, MessagePart, Role, Solution, UserId,
};
use crate::error::StoreError;
use crate::state::AppState;
use crate::store::{Checkpoint, Settlement, TurnFinish};

/// How long after its end a turn's stream can still be resumed, in seconds: a client that
/// reconnects a little late still gets the whole reply.
pub const RESUME_WINDOW_SECS: i64 = 60;

/// The error code of a reply rebuilt from the checkpoints of a turn that never stored it (its
/// instance died, or its finishing write failed).
pub const INTERRUPTED: &str = "INTERRUPTED";

/// Events buffered between the follower and a slow client.
const CHANNEL_EVENTS: usize = 32;

/// The stream of the conversation's running (or just finished) turn, from its `start`, then
/// followed live until it ends; `None` when there is nothing to resume (no such conversation
/// for the caller, no turn, a turn that ended more than [`RESUME_WINDOW_SECS`] ago, or resumable
/// streams are off).
#[tracing::instrument(name = "chat.resume", skip_all, fields(conversation = %id))]
pub async fn resume(
    state: &Arc<AppState>,
    user: &UserId,
    solution: Option<Solution>,
    id: ConversationId,
) -> Result<Option<TurnStream>, ChatError> {
    serves(state, solution)?;
    if !state.config.chat.resumable_streams {
        return Ok(None);
    }
    let live = match state.store.live_turn(user, &id).await {
        Ok(Some(live)) => live,
        // Another user's conversation is as absent as a missing one.
        Ok(None) | Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let first = state.store.checkpoints(user, &id, &live.turn_id, None).await?;
    let now = state.now();
    match first.iter().find(|c| c.last) {
        Some(last) if (now - last.at).num_seconds() > RESUME_WINDOW_SECS => return Ok(None),
        None if now > live.deadline => return Ok(None),
        _ => {}
    }
    let (tx, events) = mpsc::channel(CHANNEL_EVENTS);
    let follower = follow(Arc::clone(state), user.clone(), id.clone(), live, first, tx);
    tokio::spawn(tracing::Instrument::instrument(follower, tracing::Span::current()));
    Ok(Some(TurnStream {
        conversation_id: id,
        events,
        budget_headers: Vec::new(),
    }))
}

/// Sends the checkpoints' events, then polls for newer ones every checkpoint interval, until the
/// final checkpoint, the turn's deadline or the client leaves.
async fn follow(
    state: Arc<AppState>,
    user: UserId,
    id: ConversationId,
    live: LiveTurn,
    mut batch: Vec<Checkpoint>,
    tx: mpsc::Sender<TurnEvent>,
) {
    let mut seen: Option<u32> = None;
    loop {
        for checkpoint in batch {
            seen = Some(checkpoint.seq);
            for event in decode(&checkpoint.events).unwrap_or_default() {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            if checkpoint.last {
                return;
            }
        }
        if state.now() > live.deadline {
            // The turn's instance died: what it checkpointed is all there is.
            let _ = tx
                .send(TurnEvent::Error {
                    message: "The reply was interrupted before it finished.".to_owned(),
                })
                .await;
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(state.config.chat.checkpoint_interval) => {}
            () = tx.closed() => return,
        }
        batch = match state.store.checkpoints(&user, &id, &live.turn_id, seen).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "reading checkpoints failed; the resumed stream ends");
                let _ = tx
                    .send(TurnEvent::Error {
                        message: format!(
                            "{}: the reply could not be read. Reload to see it.",
                            super::STORE_UNAVAILABLE
                        ),
                    })
                    .await;
                return;
            }
        };
    }
}

/// Asks the conversation's running turn to stop; `Ok(None)` when none is running. The turn stops
/// at its next checkpoint (within a checkpoint interval), keeps its partial reply as `aborted`
/// and settles its usage; it returns the reply's id.
#[tracing::instrument(name = "chat.stop", skip_all, fields(conversation = %id))]
pub async fn stop(
    state: &AppState,
    user: &UserId,
    solution: Option<Solution>,
    id: ConversationId,
) -> Result<Option<LiveTurn>, ChatError> {
    serves(state, solution)?;
    let (conversation, messages) = match state.store.get_conversation_with_messages(user, &id).await {
        Ok(found) => found,
        Err(StoreError::NotFound) => return Err(ChatError::ConversationNotFound),
        Err(e) => return Err(e.into()),
    };
    let Some(live) = conversation.live else {
        return Ok(None);
    };
    if state.now() > live.deadline || messages.iter().any(|m| m.id == live.reply_id) {
        return Ok(None);
    }
    match state.store.request_stop(user, &id, &live.turn_id).await {
        Ok(()) => Ok(Some(live)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The message the conversation's newest turn answered, when that turn is known to have ended
/// without storing its reply: its final checkpoint exists (the finishing write failed), or it
/// left no checkpoint at all well after its admission (the admission reported a failure, so it
/// never ran), or its deadline passed. `None` otherwise. Reads the store only when the request
/// resubmits the message that turn answered and its reply is missing (so a turn after one that
/// failed before any output still makes 2 store calls before its first byte).
pub(super) async fn ended_without_reply(
    state: &AppState,
    user: &UserId,
    existing: Option<&(Conversation, Vec<Message>)>,
    request: &super::ChatRequest,
) -> Option<crate::domain::MessageId> {
    let (conversation, messages) = existing?;
    let live = conversation.live.as_ref()?;
    let resubmitted = request.messages.last().and_then(|m| m.client_id.as_ref())?;
    let answered = messages.iter().find(|m| m.id == live.parent_id)?;
    if answered.client_id.as_ref() != Some(resubmitted) || messages.iter().any(|m| m.id == live.reply_id) {
        return None;
    }
    let now = state.now();
    if now > live.deadline {
        return Some(live.parent_id.clone());
    }
    let checkpoints = state
        .store
        .checkpoints(user, &conversation.id, &live.turn_id, None)
        .await
        .ok()?;
    // A running turn writes its first checkpoint (its `start`) within one interval; allow a
    // few more and the finishing write's own retries before calling a silent turn dead.
    let interval = chrono::Duration::from_std(state.config.chat.checkpoint_interval).unwrap_or_default();
    let grace = interval * 3 + chrono::Duration::seconds(5);
    let ended = checkpoints.iter().any(|c| c.last) || (checkpoints.is_empty() && now - live.started_at > grace);
    ended.then(|| live.parent_id.clone())
}

/// How a reply that is not stored (yet) is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Its turn is still streaming: the text so far.
    Streaming,
}

/// The reply of the conversation's newest turn when it is not among `messages`:
/// - the turn is still running: the partial reply from its checkpoints, to show as
///   [`Progress::Streaming`] (not stored);
/// - the turn ended without storing it (its instance died, or its finishing write failed):
///   the reply is rebuilt from its checkpoints and stored now (idempotent per turn, like the
///   turn's own finish), with the error [`INTERRUPTED`]; it is returned inside `messages`.
pub async fn in_progress(
    state: &AppState,
    user: &UserId,
    conversation: &mut Conversation,
    messages: &mut Vec<Message>,
) -> Option<(Message, Progress)> {
    let live = conversation.live.clone()?;
    if messages.iter().any(|m| m.id == live.reply_id) {
        return None;
    }
    let checkpoints = match state
        .store
        .checkpoints(user, &conversation.id, &live.turn_id, None)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "reading a running turn's checkpoints failed");
            return None;
        }
    };
    let ended = checkpoints.iter().any(|c| c.last) || state.now() > live.deadline;
    let mut reply = assemble(conversation, &live, &checkpoints, state.now())?;
    reply.parent_id = Some(live.parent_id.clone());
    if !ended {
        return Some((reply, Progress::Streaming));
    }
    reply.finish_reason = Some(FinishReason::Error);
    reply.error = Some(INTERRUPTED.to_owned());
    let repair = TurnFinish {
        payer: user.clone(),
        owner: user.clone(),
        conversation_id: conversation.id.clone(),
        turn_id: live.turn_id.clone(),
        reply: Some(reply.clone()),
        lease: None,
        settlement: Settlement::default(),
        started: live.started_at,
        stats: None,
        title: None,
        checkpoint: None,
    };
    match state.store.finish_turn(&repair).await {
        Ok(()) => {
            tracing::warn!(turn = %live.turn_id, "stored the reply of an interrupted turn from its checkpoints");
            // Re-read: the repair may have been done before (then the reply is the stored one).
            if let Ok((c, m)) = state.store.get_conversation_with_messages(user, &conversation.id).await {
                *conversation = c;
                *messages = m;
            }
        }
        Err(e) => tracing::warn!(error = %e, "storing the reply of an interrupted turn failed"),
    }
    None
}

/// The reply the checkpoints hold so far: its text and its tool calls and results; `None` when
/// they hold neither.
fn assemble(
    conversation: &Conversation,
    live: &LiveTurn,
    checkpoints: &[Checkpoint],
    now: crate::domain::Timestamp,
) -> Option<Message> {
    let mut text = String::new();
    let mut parts = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    for checkpoint in checkpoints {
        for event in decode(&checkpoint.events).unwrap_or_default() {
            match event {
                TurnEvent::Text(delta) => text.push_str(&delta),
                TurnEvent::ToolCall { id, name, input } => {
                    names.push((id.clone(), name.clone()));
                    parts.push(MessagePart::ToolCall {
                        tool_call_id: id,
                        tool_name: name,
                        input,
                        approval: None,
                    });
                }
                TurnEvent::ToolResult { id, output, is_error } => {
                    let tool_name = names
                        .iter()
                        .find(|(call, _)| *call == id)
                        .map(|(_, name)| name.clone())
                        .unwrap_or_default();
                    parts.push(MessagePart::ToolResult {
                        tool_call_id: id,
                        tool_name,
                        output,
                        is_error,
                    });
                }
                _ => {}
            }
        }
    }
    if text.is_empty() && parts.is_empty() {
        return None;
    }
    let mut reply = Message::text(
        live.reply_id.clone(),
        conversation.id.clone(),
        Role::Assistant,
        text,
        now,
    );
    reply.parts = parts;
    reply.model = Some(conversation.model.clone());
    Some(reply)
}

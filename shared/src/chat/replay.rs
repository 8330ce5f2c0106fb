//! Replaying a stored reply: a retried submit (same message id, same text) whose turn already
//! finished gets that reply again as a stream, with no model call and no write.

use serde_json::json;
use tokio::sync::mpsc;

use super::events::{TurnEvent, TurnStream};
use crate::domain::{Approval, Conversation, Message, MessagePart};

/// The stored reply's events, in the order a live turn sends them; `messageMetadata` says it
/// is a replay.
pub(super) fn events(conversation: &Conversation, reply: Message) -> Vec<TurnEvent> {
    let mut events = vec![
        TurnEvent::Start {
            message_id: reply.id.clone(),
            metadata: json!({"conversationId": conversation.id.as_str()}),
        },
        TurnEvent::StartStep,
    ];
    let has_text_parts = reply.parts.iter().any(|p| matches!(p, MessagePart::Text { .. }));
    if !has_text_parts && !reply.content.is_empty() {
        events.push(TurnEvent::Text(reply.content));
    }
    let denied: Vec<String> = reply
        .parts
        .iter()
        .filter_map(|p| match p {
            MessagePart::ToolCall {
                tool_call_id,
                approval: Some(Approval {
                    approved: Some(false), ..
                }),
                ..
            } => Some(tool_call_id.clone()),
            _ => None,
        })
        .collect();
    for part in reply.parts {
        match part {
            MessagePart::Text { text } => events.push(TurnEvent::Text(text)),
            MessagePart::ToolCall {
                tool_call_id,
                tool_name,
                input,
                approval,
            } => {
                events.push(TurnEvent::ToolCall {
                    id: tool_call_id.clone(),
                    name: tool_name,
                    input,
                });
                if let Some(approval) = approval {
                    events.push(TurnEvent::ToolApprovalRequest {
                        approval_id: approval.id,
                        tool_call_id: tool_call_id.clone(),
                    });
                }
            }
            MessagePart::ToolResult {
                tool_call_id,
                output,
                is_error,
                ..
            } => events.push(if denied.contains(&tool_call_id) {
                TurnEvent::ToolDenied { id: tool_call_id }
            } else {
                TurnEvent::ToolResult {
                    id: tool_call_id,
                    output,
                    is_error,
                }
            }),
            // Files belong to user messages; a reply never has one.
            MessagePart::File { .. } => {}
        }
    }
    events.push(TurnEvent::FinishStep);
    events.push(TurnEvent::Finish {
        metadata: json!({
            "conversationId": conversation.id.as_str(),
            "model": reply.model,
            "finishReason": reply.finish_reason,
            "usage": reply.usage,
            "latencyMs": reply.latency_ms,
            "replayed": true,
        }),
    });
    events
}

/// A stream of the stored reply.
pub(super) fn spawn(conversation: Conversation, reply: Message) -> TurnStream {
    let events = events(&conversation, reply);
    let (tx, rx) = mpsc::channel(events.len().max(1));
    for event in events {
        // The channel holds them all; the receiver cannot be gone yet.
        if tx.try_send(event).is_err() {
            break;
        }
    }
    TurnStream {
        conversation_id: conversation.id,
        events: rx,
        budget_headers: Vec::new(),
    }
}

//! Stored history to the model's context.

use serde_json::Value;

use crate::catalog::ModelInfo;
use crate::domain::{Approval, Message, MessagePart, Role};
use crate::llm::{ModelContent, ModelMessage, ModelRole};

/// Converts stored history into the model's context: user/assistant alternation (consecutive
/// messages of one role merged), starting with a user message, trimmed from the oldest end to
/// fit the model's window (estimated at 3 characters per token), the newest message always kept.
pub fn context_for(history: &[Message], model: &ModelInfo, system: &str) -> Vec<ModelMessage> {
    let budget_chars = (model.context_window as usize)
        .saturating_sub(model.max_output_tokens.min(16_000) as usize)
        .saturating_mul(3)
        .saturating_sub(system.len());
    let mut kept: Vec<&Message> = Vec::new();
    let mut used = 0usize;
    for m in history.iter().rev() {
        if !matches!(m.role, Role::User | Role::Assistant) {
            continue;
        }
        let size = m.content.len()
            + 16
            + m.parts
                .iter()
                .map(|p| match p {
                    MessagePart::Text { .. } => 0,
                    MessagePart::ToolCall { input, .. } => input.to_string().len() + 64,
                    MessagePart::ToolResult { output, .. } => output.to_string().len() + 64,
                    MessagePart::File { tokens, .. } => {
                        usize::try_from(*tokens).unwrap_or(usize::MAX / 8).saturating_mul(3) + 64
                    }
                })
                .sum::<usize>();
        if !kept.is_empty() && used + size > budget_chars {
            break;
        }
        used += size;
        kept.push(m);
    }
    kept.reverse();
    let mut out: Vec<ModelMessage> = Vec::new();
    for m in kept {
        if out.is_empty() && m.role == Role::Assistant {
            continue;
        }
        if m.role == Role::Assistant && !m.parts.is_empty() {
            for message in reply_context(&m.content, &m.parts) {
                push(&mut out, message);
            }
            continue;
        }
        let role = if m.role == Role::User {
            ModelRole::User
        } else {
            ModelRole::Assistant
        };
        push(
            &mut out,
            ModelMessage {
                role,
                content: user_content(m),
            },
        );
    }
    out
}

/// A message's blocks: its attached files first (as Anthropic advises, and as the AI SDK sends
/// them), not read yet ([`ModelContent::FileRef`]), then its text. A message with files and no
/// text says so in a line (Bedrock refuses a blank text block and a document without text).
fn user_content(m: &Message) -> Vec<ModelContent> {
    let mut content: Vec<ModelContent> = m
        .parts
        .iter()
        .filter_map(|part| match part {
            MessagePart::File {
                file_id,
                media_type,
                filename,
                tokens,
                ..
            } => crate::domain::FileFormat::from_media_type(media_type).map(|format| ModelContent::FileRef {
                id: file_id.clone(),
                format,
                filename: filename.clone(),
                tokens: *tokens,
            }),
            _ => None,
        })
        .collect();
    if !m.content.trim().is_empty() || content.is_empty() {
        content.push(ModelContent::Text(m.content.clone()));
    } else {
        content.push(ModelContent::Text(
            "(The user sent these files without a message.)".to_owned(),
        ));
    }
    content
}

/// Adds a message, merged into the last one when it has the same role (text joined by a blank
/// line, other blocks appended).
fn push(out: &mut Vec<ModelMessage>, message: ModelMessage) {
    match out.last_mut() {
        Some(last) if last.role == message.role => {
            for block in message.content {
                match (last.content.last_mut(), block) {
                    (Some(ModelContent::Text(t)), ModelContent::Text(more)) => {
                        t.push_str("\n\n");
                        t.push_str(&more);
                    }
                    (_, block) => last.content.push(block),
                }
            }
        }
        _ => out.push(message),
    }
}

/// A reply that called tools, as the model's context: per step, the assistant's text and tool
/// calls, then a user message with their results, in the order they happened. A call with no
/// result (it waited for an approval that never came, or its turn died) gets an error result,
/// since a provider refuses a tool call without one; a denied call's result says so. A reply
/// whose parts have no text part has its whole text first.
pub fn reply_context(text: &str, parts: &[MessagePart]) -> Vec<ModelMessage> {
    let mut out = Vec::new();
    let mut assistant: Vec<ModelContent> = Vec::new();
    let mut calls: Vec<(String, Option<&Approval>)> = Vec::new();
    let mut results: Vec<ModelContent> = Vec::new();
    if !text.is_empty() && !parts.iter().any(|p| matches!(p, MessagePart::Text { .. })) {
        assistant.push(ModelContent::Text(text.to_owned()));
    }
    let flush = |assistant: &mut Vec<ModelContent>,
                 calls: &mut Vec<(String, Option<&Approval>)>,
                 results: &mut Vec<ModelContent>,
                 out: &mut Vec<ModelMessage>| {
        if assistant.is_empty() {
            return;
        }
        for (id, approval) in calls.drain(..) {
            let answered = results
                .iter()
                .any(|r| matches!(r, ModelContent::ToolResult { id: rid, .. } if *rid == id));
            if !answered {
                let content = match approval {
                    Some(Approval {
                        approved: Some(false),
                        reason,
                        ..
                    }) => denial(reason.as_deref()),
                    Some(_) => {
                        Value::String("Not run: it waited for the user's approval, which never came.".to_owned())
                    }
                    None => Value::String("Not run: the turn ended before the tool answered.".to_owned()),
                };
                results.push(ModelContent::ToolResult {
                    id,
                    content,
                    is_error: true,
                });
            }
        }
        out.push(ModelMessage {
            role: ModelRole::Assistant,
            content: std::mem::take(assistant),
        });
        if !results.is_empty() {
            out.push(ModelMessage {
                role: ModelRole::User,
                content: std::mem::take(results),
            });
        }
    };
    for part in parts {
        match part {
            MessagePart::Text { text } => {
                if !results.is_empty() {
                    flush(&mut assistant, &mut calls, &mut results, &mut out);
                }
                if !text.is_empty() {
                    assistant.push(ModelContent::Text(text.clone()));
                }
            }
            MessagePart::ToolCall {
                tool_call_id,
                tool_name,
                input,
                approval,
            } => {
                if !results.is_empty() {
                    flush(&mut assistant, &mut calls, &mut results, &mut out);
                }
                assistant.push(ModelContent::ToolUse {
                    id: tool_call_id.clone(),
                    name: tool_name.clone(),
                    input: input.clone(),
                });
                calls.push((tool_call_id.clone(), approval.as_ref()));
            }
            MessagePart::ToolResult {
                tool_call_id,
                output,
                is_error,
                ..
            } => results.push(ModelContent::ToolResult {
                id: tool_call_id.clone(),
                content: output.clone(),
                is_error: *is_error,
            }),
            // Files belong to user messages; a reply never has one.
            MessagePart::File { .. } => {}
        }
    }
    flush(&mut assistant, &mut calls, &mut results, &mut out);
    out
}

/// What the model reads for a call the user denied.
pub fn denial(reason: Option<&str>) -> Value {
    match reason {
        Some(r) if !r.trim().is_empty() => Value::String(format!("The user denied this tool call: {r}")),
        _ => Value::String("The user denied this tool call.".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MODELS;
    use crate::domain::{self, ConversationId};

    fn msg(role: Role, text: &str) -> Message {
        let ids = crate::domain::IdGenerator::new();
        Message::text(
            ids.message_id(),
            ConversationId::parse("c").unwrap_or_else(|_| unreachable!()),
            role,
            text.to_owned(),
            domain::now(),
        )
    }

    #[test]
    fn context_alternates_starts_with_the_user_and_merges_runs() {
        let history = vec![
            msg(Role::Assistant, "hello"),
            msg(Role::User, "a"),
            msg(Role::User, "b"),
            msg(Role::Assistant, "c"),
            msg(Role::User, "d"),
        ];
        let context = context_for(&history, &MODELS[0], "sys");
        let roles: Vec<_> = context.iter().map(|m| m.role).collect();
        assert_eq!(roles, [ModelRole::User, ModelRole::Assistant, ModelRole::User]);
        assert_eq!(context[0].content, vec![ModelContent::Text("a\n\nb".to_owned())]);
    }

    #[test]
    fn context_is_trimmed_to_the_window_keeping_the_newest() {
        let mut small = MODELS[0].clone();
        small.context_window = 1_000;
        small.max_output_tokens = 100;
        let big = "x".repeat(1_500);
        let history = vec![
            msg(Role::User, &big),
            msg(Role::Assistant, &big),
            msg(Role::User, "newest"),
        ];
        let context = context_for(&history, &small, "");
        assert_eq!(context.len(), 1);
        assert_eq!(context[0].content, vec![ModelContent::Text("newest".to_owned())]);
    }

    #[test]
    fn a_reply_with_tools_replays_step_by_step_and_every_call_gets_a_result() {
        let call = |id: &str, approval: Option<Approval>| MessagePart::ToolCall {
            tool_call_id: id.to_owned(),
            tool_name: "mes_x".to_owned(),
            input: serde_json::json!({}),
            approval,
        };
        let parts = vec![
            MessagePart::Text { text: "a".to_owned() },
            call("c1", None),
            MessagePart::ToolResult {
                tool_call_id: "c1".to_owned(),
                tool_name: "mes_x".to_owned(),
                output: serde_json::json!({"ok": 1}),
                is_error: false,
            },
            MessagePart::Text { text: "b".to_owned() },
            call(
                "c2",
                Some(Approval {
                    id: "ap".to_owned(),
                    approved: None,
                    reason: None,
                }),
            ),
            call(
                "c3",
                Some(Approval {
                    id: "ap3".to_owned(),
                    approved: Some(false),
                    reason: Some("no".to_owned()),
                }),
            ),
        ];
        let out = reply_context("ab", &parts);
        let roles: Vec<_> = out.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                ModelRole::Assistant,
                ModelRole::User,
                ModelRole::Assistant,
                ModelRole::User
            ]
        );
        assert!(
            matches!(&out[0].content[..], [ModelContent::Text(t), ModelContent::ToolUse { id, .. }] if t == "a" && id == "c1")
        );
        assert!(matches!(&out[1].content[..], [ModelContent::ToolResult { id, is_error: false, .. }] if id == "c1"));
        assert!(matches!(&out[3].content[..], [
            ModelContent::ToolResult { id: a, is_error: true, content: waited },
            ModelContent::ToolResult { id: b, is_error: true, content: denied },
        ] if a == "c2" && b == "c3" && waited.as_str().is_some_and(|w| w.contains("approval"))
            && denied == &serde_json::json!("The user denied this tool call: no")));
        // A reply stored before text parts existed: its whole text first.
        let old = reply_context("all the text", &parts[1..3]);
        assert!(matches!(&out[0].content[0], ModelContent::Text(_)));
        assert!(
            matches!(&old[0].content[..], [ModelContent::Text(t), ModelContent::ToolUse { .. }] if t == "all the text")
        );
    }
}

//! Answering tool approvals: a chat request whose last message is the assistant's reply with
//! the user's answers (the AI SDK's `addToolApprovalResponse` flow) continues that reply.

use super::plan::{branch, Planned, TurnPlan};
use super::request::ChatRequest;
use super::ChatError;
use crate::catalog::Catalog;
use crate::domain::{Approval, Conversation, Message, MessagePart, Role, Timestamp, Tree};
use crate::error::ValidationError;
use crate::store::TurnWrite;

/// A submit whose last message is an assistant message answering tool approvals (the AI SDK's
/// `addToolApprovalResponse` flow): the stored reply of that id, waiting for exactly those
/// approvals, is continued. Answered before: a finished continuation is replayed, a running one
/// is [`ChatError::TurnInProgress`]. A reply the answers do not fit is a validation error.
pub(super) fn plan_continue(
    request: ChatRequest,
    existing: Option<(Conversation, Vec<Message>)>,
    catalog: &Catalog,
    now: Timestamp,
) -> Result<Planned, ChatError> {
    let Some((conversation, all)) = existing else {
        return Err(ChatError::ConversationNotFound);
    };
    let Some(incoming) = request.messages.last() else {
        return Err(ValidationError::field("messages", "must end with the user's new message").into());
    };
    let tree = Tree::new(&all);
    let id = incoming.client_id.as_ref().map(|c| c.as_str()).unwrap_or_default();
    let Some(i) = all
        .iter()
        .position(|m| m.id.as_str() == id && m.role == Role::Assistant)
    else {
        return Err(ValidationError::field(
            "messages",
            "the last message answers tool approvals but is not a reply of this conversation",
        )
        .into());
    };
    let stored = &all[i];
    let awaiting: Vec<String> = stored.awaited_approvals().into_iter().map(str::to_owned).collect();
    if awaiting.is_empty() {
        let answered_not_run = stored.parts.iter().any(|p| match p {
            MessagePart::ToolCall {
                tool_call_id,
                approval: Some(Approval {
                    approved: Some(true), ..
                }),
                ..
            } => stored.tool_result(tool_call_id).is_none(),
            _ => false,
        });
        let live = conversation.live.as_ref().is_some_and(|l| l.reply_id == stored.id);
        if answered_not_run && live {
            return Err(ChatError::TurnInProgress);
        }
        if !stored
            .parts
            .iter()
            .any(|p| matches!(p, MessagePart::ToolCall { approval: Some(_), .. }))
        {
            return Err(ValidationError::field("messages", "the reply asked for no approval").into());
        }
        let reply = stored.clone();
        return Ok(Planned::Replay { conversation, reply });
    }
    let mut reply = stored.clone();
    for part in &mut reply.parts {
        if let MessagePart::ToolCall {
            tool_call_id,
            approval: Some(approval),
            ..
        } = part
        {
            if approval.approved.is_some() {
                continue;
            }
            let Some(answer) = incoming
                .approvals
                .iter()
                .find(|a| a.approval_id == approval.id && &a.tool_call_id == tool_call_id)
            else {
                return Err(ValidationError::field(
                    "messages",
                    format!(
                        "the approval {} (tool call {tool_call_id}) is not answered",
                        approval.id
                    ),
                )
                .into());
            };
            approval.approved = Some(answer.approved);
            approval.reason = answer.reason.clone().filter(|r| !r.trim().is_empty());
        }
    }
    let parent = tree.parent(i);
    let answers = parent.map_or_else(|| reply.id.clone(), |p| all[p].id.clone());
    let history = branch(&tree, parent);
    let model = request
        .model
        .or_else(|| stored.model.as_deref().and_then(|m| catalog.get(m)))
        .or_else(|| catalog.get(&conversation.model))
        .unwrap_or_else(|| catalog.default_model());
    Ok(Planned::Run(TurnPlan {
        write: TurnWrite::Continue {
            reply: reply.clone(),
            awaiting,
        },
        conversation,
        history,
        answers,
        model,
        created: false,
        regenerate: false,
        web_search: request.web_search,
        started_at: now,
        continues: Some(Box::new(reply)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::request::{ApprovalAnswer, IncomingMessage, Trigger};
    use crate::domain::{self, ClientMessageId, ConversationId, IdGenerator, LiveTurn, UserId};

    fn conversation_with_pending(approved: Option<bool>) -> (Conversation, Vec<Message>) {
        let ids = IdGenerator::new();
        let now = domain::now();
        let c = Conversation::new(
            ConversationId::parse("c1").unwrap_or_else(|_| unreachable!()),
            UserId::parse("u").unwrap_or_else(|_| unreachable!()),
            "t",
            Catalog::all().models()[0].id,
            None,
            now,
        );
        let question = Message::text(ids.message_id(), c.id.clone(), Role::User, "make one".into(), now);
        let mut reply = Message::text(
            ids.message_id(),
            c.id.clone(),
            Role::Assistant,
            "Let me check. ".into(),
            now,
        );
        reply.parent_id = Some(question.id.clone());
        reply.parts = vec![
            MessagePart::Text {
                text: "Let me check. ".into(),
            },
            MessagePart::ToolCall {
                tool_call_id: "call1".into(),
                tool_name: "mes_create_work_order".into(),
                input: serde_json::json!({"machineId": "PRESS-02"}),
                approval: Some(Approval {
                    id: "ap1".into(),
                    approved,
                    reason: None,
                }),
            },
        ];
        (c, vec![question, reply])
    }

    fn answering(reply: &Message, approval: &str, call: &str, approved: bool) -> ChatRequest {
        ChatRequest {
            conversation_id: ConversationId::parse("c1").unwrap_or_else(|_| unreachable!()),
            trigger: Trigger::Submit,
            messages: vec![IncomingMessage {
                role: Role::Assistant,
                text: "Let me check. ".into(),
                client_id: ClientMessageId::parse(reply.id.as_str()).ok(),
                approvals: vec![ApprovalAnswer {
                    approval_id: approval.into(),
                    tool_call_id: call.into(),
                    approved,
                    reason: Some("fine".into()),
                }],
                files: Vec::new(),
                attachments: Vec::new(),
            }],
            model: None,
            web_search: false,
            caller_token: None,
        }
    }

    #[test]
    fn an_answered_approval_continues_the_reply_it_belongs_to() {
        let catalog = Catalog::all();
        let (c, messages) = conversation_with_pending(None);
        let reply = messages[1].clone();
        let planned = plan_continue(
            answering(&reply, "ap1", "call1", true),
            Some((c, messages.clone())),
            &catalog,
            domain::now(),
        );
        let Ok(Planned::Run(plan)) = planned else {
            panic!("expected a turn, got {planned:?}");
        };
        let continued = plan.continues.as_deref().unwrap_or_else(|| panic!("continues"));
        assert_eq!(continued.id, reply.id);
        assert!(continued.awaited_approvals().is_empty());
        assert!(
            matches!(&continued.parts[1], MessagePart::ToolCall { approval: Some(Approval { approved: Some(true), reason: Some(r), .. }), .. } if r == "fine")
        );
        assert!(matches!(&plan.write, TurnWrite::Continue { awaiting, .. } if awaiting == &["ap1".to_owned()]));
        assert_eq!(plan.answers, messages[0].id);
        assert_eq!(
            plan.history.len(),
            1,
            "the history ends with the question; the reply comes from its parts"
        );
    }

    #[test]
    fn answers_that_do_not_fit_are_validation_errors() {
        let catalog = Catalog::all();
        let (c, messages) = conversation_with_pending(None);
        let reply = messages[1].clone();
        for (approval, call) in [("other", "call1"), ("ap1", "other-call")] {
            let planned = plan_continue(
                answering(&reply, approval, call, true),
                Some((c.clone(), messages.clone())),
                &catalog,
                domain::now(),
            );
            assert!(
                matches!(planned, Err(ChatError::Validation(_))),
                "{approval}/{call}: {planned:?}"
            );
        }
        let mut stranger = messages[1].clone();
        stranger.id = crate::domain::MessageId::root();
        let planned = plan_continue(
            answering(&stranger, "ap1", "call1", true),
            Some((c, messages)),
            &catalog,
            domain::now(),
        );
        assert!(matches!(planned, Err(ChatError::Validation(_))), "{planned:?}");
        let planned = plan_continue(answering(&reply, "ap1", "call1", true), None, &catalog, domain::now());
        assert!(matches!(planned, Err(ChatError::ConversationNotFound)));
    }

    #[test]
    fn answered_before_is_replayed_or_in_progress_while_its_turn_runs() {
        let catalog = Catalog::all();
        let (mut c, messages) = conversation_with_pending(Some(true));
        let reply = messages[1].clone();
        let planned = plan_continue(
            answering(&reply, "ap1", "call1", true),
            Some((c.clone(), messages.clone())),
            &catalog,
            domain::now(),
        );
        assert!(matches!(planned, Ok(Planned::Replay { .. })), "{planned:?}");
        let now = domain::now();
        c.live = Some(LiveTurn {
            turn_id: "t2".into(),
            reply_id: reply.id.clone(),
            parent_id: messages[0].id.clone(),
            started_at: now,
            deadline: now,
            stop_requested: false,
        });
        let planned = plan_continue(
            answering(&reply, "ap1", "call1", true),
            Some((c, messages)),
            &catalog,
            domain::now(),
        );
        assert!(matches!(planned, Err(ChatError::TurnInProgress)), "{planned:?}");
    }
}

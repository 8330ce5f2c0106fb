//! Planning a turn: pure, no store, no clock of its own. Given the request and what the store
//! holds, decide which conversation, which history, which model, and what admitting the turn
//! writes.

use super::request::{ChatRequest, IncomingMessage, Trigger};
use super::{ChatError, TITLE_CHARS};
use crate::catalog::{Catalog, ModelInfo};
use crate::domain::{self, Conversation, IdGenerator, Message, Role, Solution, Timestamp, Title, UserId};
use crate::error::ValidationError;
use crate::store::TurnWrite;

/// What [`plan_turn`] needs.
#[derive(Debug)]
pub struct PlanInput<'a> {
    /// The caller.
    pub owner: &'a UserId,
    /// The chat route's solution (`None`: the general chat).
    pub solution: Option<Solution>,
    /// The validated request.
    pub request: ChatRequest,
    /// The conversation and its history, when it exists and is the caller's.
    pub existing: Option<(Conversation, Vec<Message>)>,
    /// The deployment's models.
    pub catalog: &'a Catalog,
    /// Makes message ids.
    pub ids: &'a IdGenerator,
    /// When the turn starts.
    pub now: Timestamp,
}

/// The decided turn.
#[derive(Clone, Debug)]
pub struct TurnPlan {
    /// The conversation (new, or as stored).
    pub conversation: Conversation,
    /// The history the model sees, oldest first, ending with the message to answer; empty
    /// assistant placeholders left out.
    pub history: Vec<Message>,
    /// The model asked for, else the conversation's, else the default.
    pub model: &'static ModelInfo,
    /// What admitting the turn writes.
    pub write: TurnWrite,
    /// Whether the turn creates the conversation.
    pub created: bool,
    /// Whether the turn regenerates the last reply.
    pub regenerate: bool,
    /// Whether the client allows web search.
    pub web_search: bool,
    /// When the turn starts.
    pub started_at: Timestamp,
}

/// Decides the turn. Refuses a submit that does not end with a user message, a regenerate of a
/// conversation that does not exist, and a regenerate with no reply to replace.
pub fn plan_turn(input: PlanInput<'_>) -> Result<TurnPlan, ChatError> {
    let PlanInput {
        owner,
        solution,
        request,
        existing,
        catalog,
        ids,
        now,
    } = input;
    if request.trigger == Trigger::Submit && request.messages.last().map(|m| m.role) != Some(Role::User) {
        return Err(ValidationError::field("messages", "must end with the user's new message").into());
    }
    let model_of = |conversation: &Conversation| {
        request
            .model
            .or_else(|| catalog.get(&conversation.model))
            .unwrap_or_else(|| catalog.default_model())
    };
    let (conversation, mut history, model, write, created) = match (existing, &request.trigger) {
        (Some((conversation, mut history)), Trigger::Submit) => {
            let model = model_of(&conversation);
            let newest = request
                .messages
                .last()
                .cloned()
                .map(|m| message(ids, &conversation, m, now));
            let write = match newest {
                // A resubmit of a stored message: the history has it already, only the turn is admitted.
                Some(m) if is_stored(&history, &m) => TurnWrite::Check,
                Some(m) => {
                    history.push(m.clone());
                    TurnWrite::Append { message: m }
                }
                None => TurnWrite::Check,
            };
            (conversation, history, model, write, false)
        }
        (Some((conversation, mut history)), Trigger::Regenerate(target)) => {
            let model = model_of(&conversation);
            let remove = take_last_reply(&mut history, target.as_deref());
            if history.last().map(|m| m.role) != Some(Role::User) {
                return Err(ValidationError::field("messageId", "there is no reply to regenerate").into());
            }
            let preview = history.last().map(|m| domain::preview(&m.content));
            (
                conversation,
                history,
                model,
                TurnWrite::Regenerate { remove, preview },
                false,
            )
        }
        (None, Trigger::Regenerate(_)) => return Err(ChatError::ConversationNotFound),
        (None, Trigger::Submit) => {
            let model = request.model.unwrap_or_else(|| catalog.default_model());
            let first_user = request
                .messages
                .iter()
                .find(|m| m.role == Role::User)
                .map(|m| m.text.as_str())
                .unwrap_or_default();
            let conversation = Conversation::new(
                request.conversation_id.clone(),
                owner.clone(),
                Title::from_first_message(first_user, TITLE_CHARS).as_str(),
                model.id,
                solution,
                now,
            );
            let messages: Vec<Message> = request
                .messages
                .iter()
                .cloned()
                .map(|m| message(ids, &conversation, m, now))
                .collect();
            let write = TurnWrite::Create {
                conversation: conversation.clone(),
                messages: messages.clone(),
            };
            (conversation, messages, model, write, true)
        }
    };
    history.retain(|m| !(m.role == Role::Assistant && m.content.trim().is_empty() && m.parts.is_empty()));
    Ok(TurnPlan {
        conversation,
        history,
        model,
        write,
        created,
        regenerate: matches!(request.trigger, Trigger::Regenerate(_)),
        web_search: request.web_search,
        started_at: now,
    })
}

/// A stored message made from one the client sent.
fn message(ids: &IdGenerator, conversation: &Conversation, m: IncomingMessage, at: Timestamp) -> Message {
    let mut message = Message::text(ids.message_id(), conversation.id.clone(), m.role, m.text, at);
    message.client_id = m.client_id;
    message
}

/// Whether the history already holds a message with `m`'s client id.
fn is_stored(history: &[Message], m: &Message) -> bool {
    m.client_id
        .as_ref()
        .is_some_and(|c| history.iter().any(|h| h.client_id.as_ref() == Some(c)))
}

/// Removes the last reply when it is the newest message and matches `target` (its id or client
/// id; `None` matches any).
fn take_last_reply(history: &mut Vec<Message>, target: Option<&str>) -> Option<Message> {
    let i = history.iter().rposition(|m| m.role == Role::Assistant)?;
    let m = &history[i];
    let matches = match target {
        None => true,
        Some(t) => m.id.as_str() == t || m.client_id.as_ref().is_some_and(|c| c.as_str() == t),
    };
    (i + 1 == history.len() && matches).then(|| history.remove(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientMessageId, ConversationId};

    fn user() -> UserId {
        UserId::parse("u").unwrap_or_else(|_| unreachable!())
    }

    fn incoming(role: Role, text: &str, client_id: Option<&str>) -> IncomingMessage {
        IncomingMessage {
            role,
            text: text.to_owned(),
            client_id: client_id.and_then(|c| ClientMessageId::parse(c).ok()),
        }
    }

    fn request(trigger: Trigger, messages: Vec<IncomingMessage>) -> ChatRequest {
        ChatRequest {
            conversation_id: ConversationId::parse("c1").unwrap_or_else(|_| unreachable!()),
            trigger,
            messages,
            model: None,
            web_search: false,
        }
    }

    fn plan(
        catalog: &Catalog,
        request: ChatRequest,
        existing: Option<(Conversation, Vec<Message>)>,
    ) -> Result<TurnPlan, ChatError> {
        let ids = IdGenerator::new();
        let owner = user();
        plan_turn(PlanInput {
            owner: &owner,
            solution: Some(Solution::Support),
            request,
            existing,
            catalog,
            ids: &ids,
            now: domain::now(),
        })
    }

    fn stored(catalog: &Catalog, history: &[(Role, &str, Option<&str>)]) -> (Conversation, Vec<Message>) {
        let ids = IdGenerator::new();
        let c = Conversation::new(
            ConversationId::parse("c1").unwrap_or_else(|_| unreachable!()),
            user(),
            "t",
            catalog.models()[1].id,
            None,
            domain::now(),
        );
        let messages = history
            .iter()
            .map(|(role, text, cid)| message(&ids, &c, incoming(*role, text, *cid), domain::now()))
            .collect();
        (c, messages)
    }

    #[test]
    fn a_new_conversation_is_created_with_its_messages_a_title_and_the_default_model() {
        let catalog = Catalog::all();
        let p = plan(
            &catalog,
            request(
                Trigger::Submit,
                vec![incoming(Role::User, "  How do\n I fix it?", None)],
            ),
            None,
        );
        let Ok(p) = p else { panic!("planned") };
        assert!(p.created && !p.regenerate);
        assert_eq!(p.conversation.title, "How do I fix it?");
        assert_eq!(p.conversation.solution_type, Some(Solution::Support));
        assert_eq!(p.model.id, catalog.default_model().id);
        assert!(matches!(&p.write, TurnWrite::Create { messages, .. } if messages.len() == 1));
        assert_eq!(p.history.len(), 1);
    }

    #[test]
    fn a_submit_appends_unless_the_client_id_is_stored_and_keeps_the_conversations_model() {
        let catalog = Catalog::all();
        let existing = stored(
            &catalog,
            &[(Role::User, "q1", Some("m1")), (Role::Assistant, "a1", None)],
        );
        let model = existing.0.model.clone();
        let again = plan(
            &catalog,
            request(Trigger::Submit, vec![incoming(Role::User, "q1", Some("m1"))]),
            Some(existing.clone()),
        );
        assert!(matches!(again.as_ref().map(|p| &p.write), Ok(TurnWrite::Check)));
        let next = plan(
            &catalog,
            request(Trigger::Submit, vec![incoming(Role::User, "q2", Some("m2"))]),
            Some(existing),
        );
        let Ok(next) = next else { panic!("planned") };
        assert!(matches!(&next.write, TurnWrite::Append { message } if message.content == "q2"));
        assert_eq!(next.history.len(), 3);
        assert_eq!(next.model.id, model);
    }

    #[test]
    fn a_regenerate_removes_the_last_reply_and_needs_one_to_exist() {
        let catalog = Catalog::all();
        let existing = stored(&catalog, &[(Role::User, "q1", None), (Role::Assistant, "a1", None)]);
        let p = plan(&catalog, request(Trigger::Regenerate(None), vec![]), Some(existing));
        let Ok(p) = p else { panic!("planned") };
        assert!(p.regenerate);
        assert!(
            matches!(&p.write, TurnWrite::Regenerate { remove: Some(m), preview: Some(q) } if m.content == "a1" && q == "q1")
        );
        assert_eq!(p.history.len(), 1);
        let nothing = stored(&catalog, &[(Role::Assistant, "hello", None)]);
        assert!(matches!(
            plan(&catalog, request(Trigger::Regenerate(None), vec![]), Some(nothing)),
            Err(ChatError::Validation(_))
        ));
        assert!(matches!(
            plan(&catalog, request(Trigger::Regenerate(None), vec![]), None),
            Err(ChatError::ConversationNotFound)
        ));
    }

    #[test]
    fn a_submit_must_end_with_a_user_message() {
        let catalog = Catalog::all();
        let p = plan(
            &catalog,
            request(Trigger::Submit, vec![incoming(Role::Assistant, "hi", None)]),
            None,
        );
        assert!(matches!(p, Err(ChatError::Validation(_))));
    }
}

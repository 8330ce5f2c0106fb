//! Planning a turn: pure, no store, no clock of its own. Given the request and what the store
//! holds, decide which conversation, which history, which model, and what admitting the turn
//! writes.

use super::request::{ChatRequest, IncomingMessage, Trigger};
use super::{ChatError, TITLE_CHARS};
use crate::catalog::{Catalog, ModelInfo};
use crate::domain::{
    self, Conversation, FinishReason, IdGenerator, Message, MessageId, Role, Solution, Timestamp, Title, Tree, UserId,
};
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
    /// The conversation and every message (all branches, id order), when it exists and is the
    /// caller's.
    pub existing: Option<(Conversation, Vec<Message>)>,
    /// The deployment's models.
    pub catalog: &'a Catalog,
    /// Makes message ids.
    pub ids: &'a IdGenerator,
    /// When the turn starts.
    pub now: Timestamp,
    /// How long a turn may run (its stream slot's lease): a resubmitted message younger than
    /// this without a reply is a turn still in progress.
    pub turn_window: chrono::Duration,
    /// The message whose newest turn is known to have ended without storing its reply (its
    /// finishing write failed, or its admission reported a failure and it never ran): a
    /// resubmit of it is answered again at once instead of waiting out `turn_window`.
    pub ended_turn: Option<MessageId>,
}

/// What to do with a request.
// Made once per request and moved once: boxing either variant would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Planned {
    /// Run the model: a new, edited or resubmitted message, or a regenerate.
    Run(TurnPlan),
    /// A retried submit whose reply is already stored: send that reply again, call no model,
    /// store nothing.
    Replay {
        /// The conversation.
        conversation: Conversation,
        /// The stored reply.
        reply: Message,
    },
}

/// The decided turn.
#[derive(Clone, Debug)]
pub struct TurnPlan {
    /// The conversation (new, or as stored).
    pub conversation: Conversation,
    /// The history the model sees: the branch from the first message to the message to answer,
    /// in order; empty assistant placeholders left out.
    pub history: Vec<Message>,
    /// The user message the reply answers (the reply's parent).
    pub answers: MessageId,
    /// The model asked for, else the conversation's, else the default.
    pub model: &'static ModelInfo,
    /// What admitting the turn writes.
    pub write: TurnWrite,
    /// Whether the turn creates the conversation.
    pub created: bool,
    /// Whether the turn regenerates a reply.
    pub regenerate: bool,
    /// Whether the client allows web search.
    pub web_search: bool,
    /// When the turn starts.
    pub started_at: Timestamp,
    /// A reply continued after the user answered its tool approvals (the answers recorded): the
    /// turn runs the approved calls and goes on in the same message.
    pub continues: Option<Box<Message>>,
}

/// Decides the turn, on the conversation's message tree:
/// - a new user message continues the active branch (`Append`; it names a conversation that
///   still has the default title);
/// - a stored client message id with new text is an **edit**: a new version beside the stored
///   one (same parent), the earlier version and its replies kept (`Edit`);
/// - a stored client message id with the same text is a **retry**: its finished reply is replayed
///   ([`Planned::Replay`]); without one, a turn younger than `turn_window` is still running
///   ([`ChatError::TurnInProgress`]), an older one failed and is answered again (`Check`);
/// - a regenerate answers the user message of the named reply (or of the active branch's last
///   reply) again; the replaced reply stays as a sibling (`Regenerate`).
///
/// Refuses a submit that does not end with a user message, a regenerate of a conversation that
/// does not exist, and a regenerate with no user message to answer.
pub fn plan_turn(input: PlanInput<'_>) -> Result<Planned, ChatError> {
    let PlanInput {
        owner,
        solution,
        request,
        existing,
        catalog,
        ids,
        now,
        turn_window,
        ended_turn,
    } = input;
    if request.trigger == Trigger::Submit
        && request
            .messages
            .last()
            .is_some_and(|m| m.role == Role::Assistant && !m.approvals.is_empty())
    {
        return super::approvals::plan_continue(request, existing, catalog, now);
    }
    if request.trigger == Trigger::Submit && request.messages.last().map(|m| m.role) != Some(Role::User) {
        return Err(ValidationError::field("messages", "must end with the user's new message").into());
    }
    let model_of = |conversation: &Conversation| {
        request
            .model
            .or_else(|| catalog.get(&conversation.model))
            .unwrap_or_else(|| catalog.default_model())
    };
    let (conversation, history, answers, model, write, created) = match (existing, &request.trigger) {
        (Some((conversation, all)), Trigger::Submit) => {
            let tree = Tree::new(&all);
            let model = model_of(&conversation);
            let Some(newest) = request.messages.last().cloned() else {
                return Err(ValidationError::field("messages", "must end with the user's new message").into());
            };
            let stored = newest.client_id.as_ref().and_then(|c| tree.by_client_id(c.as_str()));
            match stored {
                Some(i) if all[i].content == newest.text && all[i].files().eq(newest.files.iter()) => {
                    if let Some(reply) = finished_reply(&tree, i) {
                        return Ok(Planned::Replay {
                            conversation,
                            reply: all[reply].clone(),
                        });
                    }
                    if now - all[i].created_at < turn_window && ended_turn.as_ref() != Some(&all[i].id) {
                        return Err(ChatError::TurnInProgress);
                    }
                    let history = branch(&tree, Some(i));
                    let answers = all[i].id.clone();
                    (conversation, history, answers, model, TurnWrite::Check, false)
                }
                Some(i) => {
                    let parent = tree.parent(i);
                    let mut version = message(ids, &conversation, newest, now);
                    // A new version of the first message is a root too: it names the root
                    // explicitly (no parent at all would make it follow the newest message).
                    version.parent_id = Some(parent.map_or_else(MessageId::root, |p| all[p].id.clone()));
                    let mut history = branch(&tree, parent);
                    history.push(version.clone());
                    let answers = version.id.clone();
                    (
                        conversation,
                        history,
                        answers,
                        model,
                        TurnWrite::Edit { message: version },
                        false,
                    )
                }
                None => {
                    let leaf = tree.leaf(conversation.active_leaf.as_ref());
                    let first_user = !all.iter().any(|m| m.role == Role::User);
                    let title = (first_user && Title::is_default(&conversation.title))
                        .then(|| Title::from_first_message(&newest.text, TITLE_CHARS).as_str().to_owned());
                    let mut m = message(ids, &conversation, newest, now);
                    m.parent_id = leaf.map(|l| all[l].id.clone());
                    let mut history = branch(&tree, leaf);
                    history.push(m.clone());
                    let answers = m.id.clone();
                    let mut conversation = conversation;
                    if let Some(title) = &title {
                        conversation.title = title.clone();
                    }
                    (
                        conversation,
                        history,
                        answers,
                        model,
                        TurnWrite::Append { message: m, title },
                        false,
                    )
                }
            }
        }
        (Some((conversation, all)), Trigger::Regenerate(target)) => {
            let tree = Tree::new(&all);
            let model = model_of(&conversation);
            let named = match target {
                Some(t) => Some(
                    all.iter()
                        .position(|m| m.id.as_str() == t)
                        .or_else(|| tree.by_client_id(t))
                        .ok_or_else(|| ValidationError::field("messageId", "is not a message of this conversation"))?,
                ),
                None => tree.leaf(conversation.active_leaf.as_ref()),
            };
            // A reply is answered again from its user message; a user message left without a
            // reply (its turn failed) is answered again itself.
            let question = named.and_then(|i| match all[i].role {
                Role::Assistant => tree.parent(i),
                _ => Some(i),
            });
            let Some(q) = question.filter(|q| all[*q].role == Role::User) else {
                return Err(ValidationError::field("messageId", "there is no reply to regenerate").into());
            };
            let history = branch(&tree, Some(q));
            let write = TurnWrite::Regenerate {
                leaf: all[q].id.clone(),
                preview: Some(domain::preview(&all[q].content)),
            };
            let answers = all[q].id.clone();
            (conversation, history, answers, model, write, false)
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
            let mut messages: Vec<Message> = Vec::with_capacity(request.messages.len());
            for m in request.messages.iter().cloned() {
                let mut stored = message(ids, &conversation, m, now);
                stored.parent_id = messages.last().map(|p: &Message| p.id.clone());
                messages.push(stored);
            }
            let answers = messages
                .last()
                .map(|m| m.id.clone())
                .ok_or_else(|| ValidationError::field("messages", "must end with the user's new message"))?;
            let write = TurnWrite::Create {
                conversation: conversation.clone(),
                messages: messages.clone(),
            };
            (conversation, messages, answers, model, write, true)
        }
    };
    let mut history = history;
    history.retain(|m| !(m.role == Role::Assistant && m.content.trim().is_empty() && m.parts.is_empty()));
    Ok(Planned::Run(TurnPlan {
        conversation,
        history,
        answers,
        model,
        write,
        created,
        regenerate: matches!(request.trigger, Trigger::Regenerate(_)),
        web_search: request.web_search,
        started_at: now,
        continues: None,
    }))
}

/// The messages of the branch ending at `leaf` (none for `None`), in order.
pub(super) fn branch(tree: &Tree<'_>, leaf: Option<usize>) -> Vec<Message> {
    leaf.map(|l| tree.path_to(l))
        .unwrap_or_default()
        .into_iter()
        .map(|i| tree.messages()[i].clone())
        .collect()
}

/// The newest reply to message `i` that finished (not cut short by an error or a disconnect).
fn finished_reply(tree: &Tree<'_>, i: usize) -> Option<usize> {
    let all = tree.messages();
    tree.children(Some(i)).into_iter().rev().find(|c| {
        all[*c].role == Role::Assistant
            && !matches!(all[*c].finish_reason, Some(FinishReason::Error | FinishReason::Aborted))
    })
}

/// A stored message made from one the client sent.
fn message(ids: &IdGenerator, conversation: &Conversation, m: IncomingMessage, at: Timestamp) -> Message {
    let mut message = Message::text(ids.message_id(), conversation.id.clone(), m.role, m.text, at);
    message.client_id = m.client_id;
    message.parts = m.attachments;
    message
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
            approvals: Vec::new(),
            files: Vec::new(),
            attachments: Vec::new(),
        }
    }

    fn request(trigger: Trigger, messages: Vec<IncomingMessage>) -> ChatRequest {
        ChatRequest {
            conversation_id: ConversationId::parse("c1").unwrap_or_else(|_| unreachable!()),
            trigger,
            messages,
            model: None,
            web_search: false,
            caller_token: None,
        }
    }

    fn plan_at(
        catalog: &Catalog,
        request: ChatRequest,
        existing: Option<(Conversation, Vec<Message>)>,
        now: Timestamp,
    ) -> Result<Planned, ChatError> {
        let ids = IdGenerator::new();
        let owner = user();
        plan_turn(PlanInput {
            owner: &owner,
            solution: Some(Solution::Support),
            request,
            existing,
            catalog,
            ids: &ids,
            now,
            turn_window: chrono::Duration::seconds(300),
            ended_turn: None,
        })
    }

    fn run(planned: Result<Planned, ChatError>) -> TurnPlan {
        match planned {
            Ok(Planned::Run(plan)) => plan,
            other => panic!("expected a turn to run, got {other:?}"),
        }
    }

    fn plan(
        catalog: &Catalog,
        request: ChatRequest,
        existing: Option<(Conversation, Vec<Message>)>,
    ) -> Result<Planned, ChatError> {
        plan_at(catalog, request, existing, domain::now())
    }

    /// A stored conversation: `(role, text, client id, parent index)`, all created `at`.
    fn stored_at(
        catalog: &Catalog,
        history: &[(Role, &str, Option<&str>, Option<usize>)],
        at: Timestamp,
    ) -> (Conversation, Vec<Message>) {
        let ids = IdGenerator::new();
        let c = Conversation::new(
            ConversationId::parse("c1").unwrap_or_else(|_| unreachable!()),
            user(),
            "t",
            catalog.models()[1].id,
            None,
            at,
        );
        let mut messages: Vec<Message> = Vec::new();
        for (role, text, cid, parent) in history {
            let mut m = message(&ids, &c, incoming(*role, text, *cid), at);
            m.parent_id = parent.map(|p| messages[p].id.clone());
            if *role == Role::Assistant {
                m.finish_reason = Some(FinishReason::Stop);
            }
            messages.push(m);
        }
        (c, messages)
    }

    fn stored(
        catalog: &Catalog,
        history: &[(Role, &str, Option<&str>, Option<usize>)],
    ) -> (Conversation, Vec<Message>) {
        stored_at(catalog, history, domain::now())
    }

    fn texts(messages: &[Message]) -> Vec<&str> {
        messages.iter().map(|m| m.content.as_str()).collect()
    }

    #[test]
    fn a_new_conversation_is_created_with_its_messages_a_title_and_the_default_model() {
        let catalog = Catalog::all();
        let p = run(plan(
            &catalog,
            request(
                Trigger::Submit,
                vec![incoming(Role::User, "  How do\n I fix it?", None)],
            ),
            None,
        ));
        assert!(p.created && !p.regenerate);
        assert_eq!(p.conversation.title, "How do I fix it?");
        assert_eq!(p.conversation.solution_type, Some(Solution::Support));
        assert_eq!(p.model.id, catalog.default_model().id);
        assert!(matches!(&p.write, TurnWrite::Create { messages, .. } if messages.len() == 1));
        assert_eq!(p.history.len(), 1);
        assert_eq!(p.answers, p.history[0].id);
    }

    #[test]
    fn a_new_message_continues_the_active_branch_and_keeps_the_conversations_model() {
        let catalog = Catalog::all();
        let existing = stored(
            &catalog,
            &[
                (Role::User, "q1", Some("m1"), None),
                (Role::Assistant, "a1", None, Some(0)),
            ],
        );
        let model = existing.0.model.clone();
        let reply_id = existing.1[1].id.clone();
        let next = run(plan(
            &catalog,
            request(Trigger::Submit, vec![incoming(Role::User, "q2", Some("m2"))]),
            Some(existing),
        ));
        assert!(
            matches!(&next.write, TurnWrite::Append { message, title: None } if message.content == "q2" && message.parent_id.as_ref() == Some(&reply_id))
        );
        assert_eq!(texts(&next.history), ["q1", "a1", "q2"]);
        assert_eq!(next.model.id, model);
    }

    #[test]
    fn the_first_user_message_names_a_conversation_that_has_the_default_title() {
        let catalog = Catalog::all();
        let (mut c, messages) = stored(&catalog, &[]);
        c.title = domain::DEFAULT_TITLE.to_owned();
        let p = run(plan(
            &catalog,
            request(
                Trigger::Submit,
                vec![incoming(Role::User, "Why did line 3 stop?", None)],
            ),
            Some((c.clone(), messages.clone())),
        ));
        assert!(matches!(&p.write, TurnWrite::Append { title: Some(t), .. } if t == "Why did line 3 stop?"));
        assert_eq!(p.conversation.title, "Why did line 3 stop?");
        c.title = "Named by hand".to_owned();
        let p = run(plan(
            &catalog,
            request(Trigger::Submit, vec![incoming(Role::User, "Why?", None)]),
            Some((c, messages)),
        ));
        assert!(matches!(&p.write, TurnWrite::Append { title: None, .. }));
    }

    #[test]
    fn an_edited_message_becomes_a_sibling_of_the_stored_version() {
        let catalog = Catalog::all();
        let existing = stored(
            &catalog,
            &[
                (Role::User, "q1", Some("m1"), None),
                (Role::Assistant, "a1", None, Some(0)),
                (Role::User, "q2", Some("m2"), Some(1)),
                (Role::Assistant, "a2", None, Some(2)),
            ],
        );
        let a1 = existing.1[1].id.clone();
        let p = run(plan(
            &catalog,
            request(Trigger::Submit, vec![incoming(Role::User, "q2, edited", Some("m2"))]),
            Some(existing),
        ));
        let TurnWrite::Edit { message } = &p.write else {
            panic!("expected an edit, got {:?}", p.write)
        };
        assert_eq!(
            message.parent_id.as_ref(),
            Some(&a1),
            "the same parent as the stored version"
        );
        assert_eq!(message.client_id.as_ref().map(|c| c.as_str()), Some("m2"));
        assert_eq!(texts(&p.history), ["q1", "a1", "q2, edited"]);
        assert_eq!(p.answers, message.id);
    }

    #[test]
    fn an_edited_first_message_is_a_second_root_beside_the_first() {
        let catalog = Catalog::all();
        let existing = stored(
            &catalog,
            &[
                (Role::User, "q1", Some("m1"), None),
                (Role::Assistant, "a1", None, Some(0)),
            ],
        );
        let p = run(plan(
            &catalog,
            request(Trigger::Submit, vec![incoming(Role::User, "q1, edited", Some("m1"))]),
            Some(existing.clone()),
        ));
        let TurnWrite::Edit { message } = &p.write else {
            panic!("expected an edit, got {:?}", p.write)
        };
        assert_eq!(texts(&p.history), ["q1, edited"], "the edit starts its own branch");
        let mut all = existing.1;
        all.push(message.clone());
        let tree = Tree::new(&all);
        assert_eq!(tree.parent(2), None, "a root, not a follower of the reply");
        assert_eq!(tree.siblings(2), [0, 2], "two versions of the first message");
    }

    #[test]
    fn a_retried_submit_replays_a_finished_reply_and_never_runs_twice() {
        let catalog = Catalog::all();
        let existing = stored(
            &catalog,
            &[
                (Role::User, "q1", Some("m1"), None),
                (Role::Assistant, "a1", None, Some(0)),
            ],
        );
        let again = plan(
            &catalog,
            request(Trigger::Submit, vec![incoming(Role::User, "q1", Some("m1"))]),
            Some(existing),
        );
        assert!(matches!(again, Ok(Planned::Replay { reply, .. }) if reply.content == "a1"));
    }

    #[test]
    fn a_retried_submit_without_a_reply_is_in_progress_then_runs_again_once_the_turn_expired() {
        let catalog = Catalog::all();
        let at = domain::now();
        let existing = stored_at(&catalog, &[(Role::User, "q1", Some("m1"), None)], at);
        let retry = request(Trigger::Submit, vec![incoming(Role::User, "q1", Some("m1"))]);
        assert!(matches!(
            plan_at(
                &catalog,
                retry.clone(),
                Some(existing.clone()),
                at + chrono::Duration::seconds(5)
            ),
            Err(ChatError::TurnInProgress)
        ));
        let later = run(plan_at(
            &catalog,
            retry,
            Some(existing.clone()),
            at + chrono::Duration::seconds(301),
        ));
        assert!(matches!(later.write, TurnWrite::Check));
        assert_eq!(later.answers, existing.1[0].id);
        // A turn known to have ended without its reply is answered again at once.
        let ids = IdGenerator::new();
        let owner = user();
        let now_again = plan_turn(PlanInput {
            owner: &owner,
            solution: Some(Solution::Support),
            request: request(Trigger::Submit, vec![incoming(Role::User, "q1", Some("m1"))]),
            existing: Some(existing.clone()),
            catalog: &catalog,
            ids: &ids,
            now: at + chrono::Duration::seconds(5),
            turn_window: chrono::Duration::seconds(300),
            ended_turn: Some(existing.1[0].id.clone()),
        });
        assert!(matches!(run(now_again).write, TurnWrite::Check));
    }

    #[test]
    fn a_regenerate_keeps_the_old_reply_and_answers_its_question_again() {
        let catalog = Catalog::all();
        let existing = stored(
            &catalog,
            &[(Role::User, "q1", None, None), (Role::Assistant, "a1", None, Some(0))],
        );
        let q1 = existing.1[0].id.clone();
        let p = run(plan(
            &catalog,
            request(Trigger::Regenerate(None), vec![]),
            Some(existing.clone()),
        ));
        assert!(p.regenerate);
        assert!(matches!(&p.write, TurnWrite::Regenerate { leaf, preview: Some(q) } if *leaf == q1 && q == "q1"));
        assert_eq!(texts(&p.history), ["q1"]);
        let named = existing.1[1].id.to_string();
        let p = run(plan(
            &catalog,
            request(Trigger::Regenerate(Some(named)), vec![]),
            Some(existing),
        ));
        assert_eq!(p.answers, q1);
        let nothing = stored(&catalog, &[(Role::Assistant, "hello", None, None)]);
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

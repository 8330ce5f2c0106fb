//! Continuing a reply that stopped to wait for tool approvals ([`TurnWrite::Continue`]): the
//! admission rewrites the stored reply with the answers, the same turn's finish stores the
//! continued reply over it, and nothing else may write over it.
//!
//! Refusals, on both stores: a message that is missing, or no longer awaits exactly the
//! approvals answered, is a `Conflict`; a conversation that is not the caller's is `NotFound`
//! (as for every turn write), whoever's message the id names.

use super::*;
use shared::domain::Approval;

/// A reply to `q` that stopped to wait for the approval `a1` of a `send_email` call; `content`
/// is its text.
fn awaiting_reply(ids: &IdGenerator, c: &Conversation, q: &Message, content: &str) -> Message {
    let mut m = text(ids, c, Role::Assistant, content, at(2));
    m.parent_id = Some(q.id.clone());
    m.parts = vec![
        // (Parts are capped at 128 KB: a long text is the content's only.)
        MessagePart::Text {
            text: "Let me send it.".to_owned(),
        },
        call("call-1", Some(approval("a1", None))),
    ];
    m.model = Some("m".to_owned());
    m.usage = Some(Usage {
        input_tokens: 10,
        output_tokens: 20,
        ..Usage::default()
    });
    m.finish_reason = Some(FinishReason::ToolCalls);
    m
}

fn approval(id: &str, approved: Option<bool>) -> Approval {
    Approval {
        id: id.to_owned(),
        approved,
        reason: approved.map(|_| "fine by me".to_owned()),
    }
}

fn call(id: &str, approval: Option<Approval>) -> MessagePart {
    MessagePart::ToolCall {
        tool_call_id: id.to_owned(),
        tool_name: "send_email".to_owned(),
        input: serde_json::json!({ "to": "bob@example.com" }),
        approval,
    }
}

/// `m` with its approval `a1` answered (what the admission stores).
fn answered(m: &Message) -> Message {
    let mut m = m.clone();
    for part in &mut m.parts {
        if let MessagePart::ToolCall { approval, .. } = part {
            *approval = Some(self::approval("a1", Some(true)));
        }
    }
    m
}

/// `m` continued: the tool's result and `more` text after it (what the finish stores).
fn continued(m: &Message, more: &str) -> Message {
    let mut m = m.clone();
    m.content.push_str(more);
    m.parts.push(MessagePart::ToolResult {
        tool_call_id: "call-1".to_owned(),
        tool_name: "send_email".to_owned(),
        output: serde_json::json!({ "sent": true }),
        is_error: false,
    });
    m.parts.push(MessagePart::Text {
        text: "Sent.".to_owned(),
    });
    m.finish_reason = Some(FinishReason::Stop);
    m.usage = Some(Usage {
        input_tokens: 30,
        output_tokens: 40,
        ..Usage::default()
    });
    m
}

fn continue_write(reply: &Message, awaiting: &[&str]) -> TurnWrite {
    TurnWrite::Continue {
        reply: reply.clone(),
        awaiting: awaiting.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// A conversation of `owner` holding a question and a reply (stored by a turn's finish) that
/// awaits `a1`; `content` is the reply's text.
async fn with_awaiting_reply(
    h: &dyn Harness,
    ids: &IdGenerator,
    owner: &UserId,
    content: &str,
) -> (Conversation, Message, Message) {
    let c = conversation(ids, owner, at(0));
    let q = text(ids, &c, Role::User, "email bob", at(1));
    let create = TurnWrite::Create {
        conversation: c.clone(),
        messages: vec![q.clone()],
    };
    h.store()
        .begin_turn(&turn(ids, &c, create, limits(0, 0, 0, 0)))
        .await
        .expect("create");
    let r = awaiting_reply(ids, &c, &q, content);
    h.store()
        .finish_turn(&TurnFinish {
            reply: Some(r.clone()),
            ..charge(&c, None, 0)
        })
        .await
        .expect("the awaiting reply");
    assert_eq!(
        read(h, &c).await,
        (2, vec![q.clone(), r.clone()]),
        "a normal reply finish"
    );
    (c, q, r)
}

/// The conversation's message count and its messages.
async fn read(h: &dyn Harness, c: &Conversation) -> (u64, Vec<Message>) {
    let (stored, messages) = h
        .store()
        .get_conversation_with_messages(&c.owner, &c.id)
        .await
        .expect("read");
    (stored.message_count, messages)
}

/// A long text of multi-byte characters (`reps` × 7 bytes).
fn long(reps: usize) -> String {
    "é🙂a".repeat(reps)
}

pub(super) async fn a_continued_reply_is_rewritten_at_admission_and_stored_over_at_its_finish(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    // Over one chunk (300 KB) already: two pieces.
    let (c, q, r) = with_awaiting_reply(h, &ids, &alice, &long(50_000)).await;
    let admitted = answered(&r);
    let start = turn(&ids, &c, continue_write(&admitted, &["a1"]), limits(0, 0, 0, 0));
    h.store().begin_turn(&start).await.expect("continue");
    assert_eq!(
        read(h, &c).await,
        (2, vec![q.clone(), admitted.clone()]),
        "the admission recorded the answer (and its mark is not read back)"
    );
    // The continued reply: more text (four pieces), more parts.
    let done = continued(&admitted, &long(100_000));
    let finish = TurnFinish {
        turn_id: start.turn_id.clone(),
        reply: Some(done.clone()),
        ..charge(&c, None, 0)
    };
    h.store().finish_turn(&finish).await.expect("finish");
    assert_eq!(
        read(h, &c).await,
        (2, vec![q.clone(), done.clone()]),
        "stored over the admitted version, not counted again"
    );
    let (stored, _) = h
        .store()
        .get_conversation_with_messages(&alice, &c.id)
        .await
        .expect("read");
    assert_eq!(stored.active_leaf.as_ref(), Some(&done.id));
    // The same finish again (a retry) is a no-op, whatever it carries.
    let retry = TurnFinish {
        reply: Some(continued(&admitted, "something else")),
        ..finish.clone()
    };
    h.store().finish_turn(&retry).await.expect("retry");
    assert_eq!(read(h, &c).await, (2, vec![q.clone(), done.clone()]));
    // Answering a1 again: it is answered already.
    let again = h
        .store()
        .begin_turn(&turn(&ids, &c, continue_write(&admitted, &["a1"]), limits(0, 0, 0, 0)))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(read(h, &c).await, (2, vec![q.clone(), done.clone()]), "nothing changed");
}

pub(super) async fn a_second_round_of_approvals_continues_again_and_a_shorter_version_leaves_no_chunk(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let (c, q, r) = with_awaiting_reply(h, &ids, &alice, "Let me send it.").await;
    let start = turn(&ids, &c, continue_write(&answered(&r), &["a1"]), limits(0, 0, 0, 0));
    h.store().begin_turn(&start).await.expect("first continue");
    // The continued reply is long (four pieces) and waits again, for a2.
    let mut waiting = continued(&answered(&r), &long(100_000));
    waiting.parts.push(call("call-2", Some(approval("a2", None))));
    waiting.finish_reason = Some(FinishReason::ToolCalls);
    h.store()
        .finish_turn(&TurnFinish {
            turn_id: start.turn_id.clone(),
            reply: Some(waiting.clone()),
            ..charge(&c, None, 0)
        })
        .await
        .expect("first finish");
    assert_eq!(read(h, &c).await, (2, vec![q.clone(), waiting.clone()]));
    let stale = h
        .store()
        .begin_turn(&turn(&ids, &c, continue_write(&waiting, &["a1"]), limits(0, 0, 0, 0)))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    // The second round rewrites it shorter (one piece): no chunk of the longer one survives.
    let mut second = waiting.clone();
    second.content = "short now".to_owned();
    second.parts = vec![
        MessagePart::Text {
            text: "short now".to_owned(),
        },
        call("call-2", Some(approval("a2", Some(false)))),
    ];
    let start = turn(&ids, &c, continue_write(&second, &["a2"]), limits(0, 0, 0, 0));
    h.store().begin_turn(&start).await.expect("second continue");
    assert_eq!(read(h, &c).await, (2, vec![q.clone(), second.clone()]));
    let mut done = second.clone();
    done.content.push_str(", and done.");
    done.finish_reason = Some(FinishReason::Stop);
    h.store()
        .finish_turn(&TurnFinish {
            turn_id: start.turn_id.clone(),
            reply: Some(done.clone()),
            ..charge(&c, None, 0)
        })
        .await
        .expect("second finish");
    assert_eq!(read(h, &c).await, (2, vec![q, done]));
}

pub(super) async fn a_continue_that_does_not_match_is_refused_and_writes_nothing(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let mallory = user(&unique("mallory"));
    let (c, q, r) = with_awaiting_reply(h, &ids, &alice, "Let me send it.").await;
    let admitted = answered(&r);
    // One request a minute and one stream: a refused continue must take neither.
    let one = limits(1, 0, 0, 1);
    for awaiting in [&["a2"][..], &["a1", "a2"][..], &[][..]] {
        let refused = h
            .store()
            .begin_turn(&turn(&ids, &c, continue_write(&admitted, awaiting), one.clone()))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{awaiting:?}: {refused:?}"
        );
    }
    // A message that does not exist.
    let mut missing = admitted.clone();
    missing.id = ids.message_id();
    let refused = h
        .store()
        .begin_turn(&turn(&ids, &c, continue_write(&missing, &["a1"]), one.clone()))
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    // Someone else's: the conversation is not theirs.
    let foreign = TurnStart {
        payer: mallory.clone(),
        owner: mallory.clone(),
        ..turn(&ids, &c, continue_write(&admitted, &["a1"]), one.clone())
    };
    let refused = h.store().begin_turn(&foreign).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    // Mallory's own conversation of the same id holds no such message.
    let mut theirs = conversation(&ids, &mallory, at(0));
    theirs.id = c.id.clone();
    h.store()
        .create_conversation(&theirs, &[])
        .await
        .expect("mallory's own");
    let refused = h.store().begin_turn(&foreign).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(read(h, &c).await, (2, vec![q.clone(), r.clone()]), "nothing written");
    // None of them took the minute's request or the stream: the right answer is admitted.
    let begun = h
        .store()
        .begin_turn(&turn(&ids, &c, continue_write(&admitted, &["a1"]), one))
        .await
        .expect("the matching continue");
    assert!(begun.lease.is_some());
    assert_eq!(read(h, &c).await, (2, vec![q, admitted]));
}

pub(super) async fn a_finish_from_another_turn_does_not_overwrite_a_stored_message(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let (c, q, r) = with_awaiting_reply(h, &ids, &alice, "Let me send it.").await;
    // Before any continue: a finish carrying the stored reply's id stores nothing.
    let intruder = continued(&r, " (not this)");
    h.store()
        .finish_turn(&TurnFinish {
            reply: Some(intruder.clone()),
            ..charge(&c, None, 0)
        })
        .await
        .expect("a finish that stores nothing");
    assert_eq!(read(h, &c).await, (2, vec![q.clone(), r.clone()]));
    // After a continue: only its own turn's finish writes over it.
    let admitted = answered(&r);
    let start = turn(&ids, &c, continue_write(&admitted, &["a1"]), limits(0, 0, 0, 0));
    h.store().begin_turn(&start).await.expect("continue");
    h.store()
        .finish_turn(&TurnFinish {
            reply: Some(continued(&admitted, " (another turn)")),
            ..charge(&c, None, 0)
        })
        .await
        .expect("another turn's finish");
    assert_eq!(
        read(h, &c).await,
        (2, vec![q.clone(), admitted.clone()]),
        "another turn's finish did not overwrite it"
    );
    let done = continued(&admitted, " Sent.");
    h.store()
        .finish_turn(&TurnFinish {
            turn_id: start.turn_id.clone(),
            reply: Some(done.clone()),
            ..charge(&c, None, 0)
        })
        .await
        .expect("its own finish");
    assert_eq!(read(h, &c).await, (2, vec![q, done]));
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        a_continued_reply_is_rewritten_at_admission_and_stored_over_at_its_finish,
        a_second_round_of_approvals_continues_again_and_a_shorter_version_leaves_no_chunk,
        a_continue_that_does_not_match_is_refused_and_writes_nothing,
        a_finish_from_another_turn_does_not_overwrite_a_stored_message,
    ]
);

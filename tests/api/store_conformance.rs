//! One conformance suite, run against both stores: the embedded SQLite store and the DynamoDB
//! store on a real DynamoDB-API server (moto) started by the tests. Every behaviour the API
//! relies on is pinned here, so the two stores cannot drift apart.

mod accounting;
mod backfill;
mod continued;
mod feedback;
mod files;
mod import_jobs;
mod imports;
mod links;
mod organize;
mod projects;
mod prompts;
mod search;
mod sharing;

use std::sync::Arc;

use athena_tests::unique;
use chrono::{Duration, TimeZone, Utc};
use futures::{stream, StreamExt};
use shared::domain::{
    AnalyticsEvent, AuditEntry, ClientMessageId, Conversation, ConversationId, FinishReason, IdGenerator, Message,
    MessagePart, Role, Solution, SolutionFilter, Timestamp, Usage, UserId,
};
use shared::error::StoreError;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;
use shared::store::prelude::*;
use shared::store::{
    rules, ActiveLeaf, Appended, ConversationPatch, HeldKey, ListConversations, ListMessages, Reservation,
    SavedResponse, Settlement, Store, StreamLease, Touch, TurnBegun, TurnFinish, TurnLimits, TurnStart, TurnWrite,
    MAX_CONTENT_BYTES,
};

/// A store under test plus a raw view of what it holds.
#[async_trait::async_trait]
trait Harness: Send + Sync {
    fn store(&self) -> Arc<dyn Store>;
    /// Items/rows stored for a conversation (its owner and id), read around the store's API.
    async fn raw_count(&self, c: &Conversation) -> u64;
}

#[async_trait::async_trait]
impl Harness for Arc<EmbeddedStore> {
    fn store(&self) -> Arc<dyn Store> {
        self.clone()
    }
    async fn raw_count(&self, c: &Conversation) -> u64 {
        self.raw_row_count(&c.owner, &c.id).await.expect("raw count")
    }
}

#[async_trait::async_trait]
impl Harness for Arc<DynamoStore> {
    fn store(&self) -> Arc<dyn Store> {
        self.clone()
    }
    async fn raw_count(&self, c: &Conversation) -> u64 {
        use aws_sdk_dynamodb::types::AttributeValue;
        let out = self
            .client()
            .query()
            .table_name(&self.tables().conversations)
            .key_condition_expression("pk = :pk")
            // Turn receipts, the live-turn marker and checkpoints are bookkeeping (they
            // expire), not the conversation's data.
            .filter_expression("NOT begins_with(sk, :receipt) AND sk <> :live AND NOT begins_with(sk, :stream)")
            .expression_attribute_values(":live", AttributeValue::S("LIVE".to_owned()))
            .expression_attribute_values(":stream", AttributeValue::S("STREAM#".to_owned()))
            .expression_attribute_values(":pk", AttributeValue::S(format!("CONV#{}#{}", c.owner, c.id)))
            .expression_attribute_values(":receipt", AttributeValue::S("TURN#".to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("raw query");
        out.count as u64
    }
}

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("user id")
}

fn at(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(1_760_000_000_000 + ms)
        .single()
        .expect("timestamp")
}

fn conversation(ids: &IdGenerator, owner: &UserId, updated: Timestamp) -> Conversation {
    Conversation::new(
        ids.conversation_id(),
        owner.clone(),
        "New conversation",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        None,
        updated,
    )
}

fn text(ids: &IdGenerator, c: &Conversation, role: Role, content: &str, at: Timestamp) -> Message {
    Message::text(ids.message_id(), c.id.clone(), role, content.to_owned(), at)
}

async fn created(h: &dyn Harness, ids: &IdGenerator, owner: &UserId) -> Conversation {
    let c = conversation(ids, owner, shared::domain::now());
    h.store().create_conversation(&c, &[]).await.expect("create");
    c
}

async fn a_conversation_round_trips_with_every_field(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let mut c = conversation(&ids, &alice, at(0));
    c.title = "Ünïcødé 🚀 title".to_owned();
    c.is_shared = true;
    c.solution_type = Some(Solution::ChangeManagement);
    let mut m = text(&ids, &c, Role::Assistant, "reply", at(5));
    m.client_id = Some(ClientMessageId::parse("client-1").expect("id"));
    m.model = Some("us.anthropic.claude-haiku-4-5-20251001-v1:0".to_owned());
    m.usage = Some(Usage {
        input_tokens: 12,
        output_tokens: 34,
        cache_read_tokens: 5,
        cache_write_tokens: 0,
    });
    m.latency_ms = Some(987);
    m.finish_reason = Some(FinishReason::ToolCalls);
    m.error = Some("PROVIDER".to_owned());
    m.parts = vec![
        MessagePart::Text {
            text: "Let me look.".to_owned(),
        },
        MessagePart::ToolCall {
            tool_call_id: "t1".to_owned(),
            tool_name: "webSearch".to_owned(),
            input: serde_json::json!({"query": "MTBF", "n": 3, "nested": {"ok": true}}),
            approval: None,
        },
        MessagePart::ToolCall {
            tool_call_id: "t2".to_owned(),
            tool_name: "mes_create_work_order".to_owned(),
            input: serde_json::json!({"machineId": "PRESS-02"}),
            approval: Some(shared::domain::Approval {
                id: "ap1".to_owned(),
                approved: Some(false),
                reason: Some("not now".to_owned()),
            }),
        },
        MessagePart::ToolResult {
            tool_call_id: "t1".to_owned(),
            tool_name: "webSearch".to_owned(),
            output: serde_json::json!([{"title": "x", "score": 0.5}]),
            is_error: false,
        },
    ];
    h.store()
        .create_conversation(&c, std::slice::from_ref(&m))
        .await
        .expect("create");
    let (got, messages) = h
        .store()
        .get_conversation_with_messages(&alice, &c.id)
        .await
        .expect("get");
    assert_eq!(got.title, c.title);
    assert_eq!(got.solution_type, Some(Solution::ChangeManagement));
    assert!(got.is_shared);
    assert_eq!(got.message_count, 1);
    assert_eq!(got.last_message.as_deref(), Some("reply"));
    assert_eq!(got.updated_at, at(5));
    assert_eq!(messages, vec![m]);
}

async fn listing_puts_pinned_first_then_newest(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("lister"));
    let store = h.store();
    let mut made = Vec::new();
    for i in 0..6 {
        let c = conversation(&ids, &owner, at(i * 10));
        store.create_conversation(&c, &[]).await.expect("create");
        made.push(c);
    }
    // Pin the two oldest; touch the third by appending a message (it becomes the newest).
    for c in &made[0..2] {
        let patch = ConversationPatch {
            is_pinned: Some(true),
            ..Default::default()
        };
        store
            .update_conversation(&owner, &c.id, &patch, at(100))
            .await
            .expect("pin");
    }
    let m = text(&ids, &made[2], Role::User, "bump", at(500));
    store
        .append_message(&owner, &m, &Touch::default())
        .await
        .expect("append");
    let page = store
        .list_conversations(&owner, &ListConversations::default())
        .await
        .expect("list");
    let order: Vec<_> = page.items.iter().map(|c| c.id.clone()).collect();
    assert_eq!(page.items.len(), 6);
    assert!(page.items[0].is_pinned && page.items[1].is_pinned);
    assert_eq!(
        order[2], made[2].id,
        "the conversation touched last comes first after the pinned ones"
    );
    assert_eq!(order[3..], [made[5].id.clone(), made[4].id.clone(), made[3].id.clone()]);
    assert_eq!(page.items[2].last_message.as_deref(), Some("bump"));
    for pair in page.items.windows(2) {
        assert!(
            (pair[0].is_pinned, pair[0].updated_at) >= (pair[1].is_pinned, pair[1].updated_at),
            "out of order"
        );
    }
    assert!(page.next_cursor.is_none());
}

async fn two_hundred_messages_in_one_millisecond_keep_their_order(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("burst"));
    let c = created(h, &ids, &owner).await;
    let same = at(7);
    for i in 0..200 {
        let m = text(&ids, &c, Role::User, &format!("message {i}"), same);
        h.store()
            .append_message(&owner, &m, &Touch::default())
            .await
            .expect("append");
    }
    let (_, messages) = h
        .store()
        .get_conversation_with_messages(&owner, &c.id)
        .await
        .expect("get");
    let contents: Vec<_> = messages.iter().map(|m| m.content.clone()).collect();
    let expected: Vec<_> = (0..200).map(|i| format!("message {i}")).collect();
    assert_eq!(contents, expected);
    let listed = h
        .store()
        .list_messages(&owner, &c.id, &ListMessages::default())
        .await
        .expect("list");
    assert_eq!(listed.items, messages);
}

async fn paging_through_a_thousand_conversations_has_no_duplicate_and_no_gap(h: &dyn Harness) {
    let ids = Arc::new(IdGenerator::new());
    let owner = user(&unique("pager"));
    let store = h.store();
    let base = shared::domain::now();
    let made: Vec<ConversationId> = stream::iter(0..1000)
        .map(|i| {
            let (store, ids, owner) = (store.clone(), ids.clone(), owner.clone());
            async move {
                // Many share a millisecond on purpose; every tenth is pinned.
                let mut c = conversation(&ids, &owner, base + Duration::milliseconds(i / 7));
                c.is_pinned = i % 10 == 0;
                store.create_conversation(&c, &[]).await.expect("create");
                c.id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_conversations(
                &owner,
                &ListConversations {
                    limit: Some(37),
                    cursor: cursor.clone(),
                    ..Default::default()
                },
            )
            .await
            .expect("page");
        pages += 1;
        seen.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 1000usize.div_ceil(37));
    assert_eq!(seen.len(), 1000);
    let mut unique_ids: Vec<_> = seen.iter().map(|c| c.id.clone()).collect();
    unique_ids.sort();
    unique_ids.dedup();
    assert_eq!(unique_ids.len(), 1000, "a conversation was listed twice");
    let mut expected = made.clone();
    expected.sort();
    assert_eq!(unique_ids, expected, "a conversation was never listed");
    for pair in seen.windows(2) {
        assert!((pair[0].is_pinned, pair[0].updated_at) >= (pair[1].is_pinned, pair[1].updated_at));
    }
    assert_eq!(seen.iter().filter(|c| c.is_pinned).count(), 100);
}

async fn a_tampered_or_foreign_cursor_is_refused(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("cursor"));
    for _ in 0..3 {
        created(h, &ids, &owner).await;
    }
    let query = ListConversations {
        limit: Some(1),
        ..Default::default()
    };
    let page = h.store().list_conversations(&owner, &query).await.expect("page");
    let cursor = page.next_cursor.expect("a next page");
    let mut tampered = cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'x' { b'y' } else { b'x' };
    for bad in [
        String::from_utf8(tampered).expect("utf8"),
        "garbage".to_owned(),
        format!("{cursor}x"),
    ] {
        let q = ListConversations {
            cursor: Some(bad),
            ..query.clone()
        };
        let err = h.store().list_conversations(&owner, &q).await.expect_err("tampered");
        assert!(matches!(err, StoreError::InvalidCursor), "{err:?}");
    }
    // A cursor is bound to its listing: another owner, or another filter, cannot use it.
    let q = ListConversations {
        cursor: Some(cursor.clone()),
        ..query.clone()
    };
    let mallory = user(&unique("mallory"));
    assert!(matches!(
        h.store().list_conversations(&mallory, &q).await,
        Err(StoreError::InvalidCursor)
    ));
    let filtered = ListConversations {
        solution: Some(SolutionFilter::General),
        ..q
    };
    assert!(matches!(
        h.store().list_conversations(&owner, &filtered).await,
        Err(StoreError::InvalidCursor)
    ));
}

async fn creating_an_existing_id_is_a_conflict_and_changes_nothing(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("conflict"));
    let c = created(h, &ids, &owner).await;
    let mut again = c.clone();
    again.title = "Overwritten?".to_owned();
    let err = h.store().create_conversation(&again, &[]).await.expect_err("conflict");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let m = text(&ids, &again, Role::User, "hi", at(1));
    let err = h
        .store()
        .create_conversation(&again, std::slice::from_ref(&m))
        .await
        .expect_err("conflict with messages");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let stored = h.store().get_conversation(&owner, &c.id).await.expect("get");
    assert_eq!(stored.title, c.title);
    assert_eq!(h.raw_count(&c).await, 1, "the failed create wrote no message");
}

/// Conversation ids are chosen by clients and scoped to their owner: another user creating an id
/// someone already holds gets a conversation of their own (no conflict that would tell them the
/// id exists), and from then on the two are separate in every read and write.
async fn two_owners_can_each_have_a_conversation_with_the_same_id(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let s = h.store();
    let alice = user(&unique("alice"));
    let bob = user(&unique("bob"));
    let shared_id = ConversationId::parse(&unique("chat")).expect("id");
    let mut a = conversation(&ids, &alice, at(0));
    a.id = shared_id.clone();
    a.title = "Alice's".to_owned();
    let a1 = text(&ids, &a, Role::User, "alice asks", at(1));
    s.create_conversation(&a, std::slice::from_ref(&a1))
        .await
        .expect("alice creates");
    // Bob picks the same id (his client's choice): a new conversation of his, not a conflict.
    let mut b = conversation(&ids, &bob, at(2));
    b.id = shared_id.clone();
    b.title = "Bob's".to_owned();
    s.create_conversation(&b, &[]).await.expect("bob creates the same id");
    // Only his own copy conflicts now, for either of them.
    for mine in [&a, &b] {
        let err = s.create_conversation(mine, &[]).await.expect_err("own id");
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    }
    // Messages, client ids and turns stay in their own conversation.
    let mut b1 = text(&ids, &b, Role::User, "bob asks", at(3));
    b1.client_id = Some(ClientMessageId::parse("ui-1").expect("client id"));
    s.begin_turn(&turn(
        &ids,
        &b,
        TurnWrite::Append {
            message: b1.clone(),
            title: None,
        },
        limits(0, 0, 0, 0),
    ))
    .await
    .expect("bob's turn");
    let b2 = text(&ids, &b, Role::Assistant, "bob's answer", at(4));
    s.finish_turn(&TurnFinish {
        reply: Some(b2.clone()),
        ..charge(&b, None, 0)
    })
    .await
    .expect("bob's reply");
    // The same client id in Alice's conversation is hers to use: not a duplicate of Bob's.
    let mut a2 = text(&ids, &a, Role::User, "alice again", at(5));
    a2.client_id = b1.client_id.clone();
    assert_eq!(
        s.append_message(&alice, &a2, &Touch::default()).await.expect("append"),
        Appended::Stored
    );
    // Her conversation and its two messages (and, in DynamoDB, the client id's marker).
    let alice_items = h.raw_count(&a).await;
    assert!(alice_items >= 3, "{alice_items}");
    let found = s
        .find_by_client_id(&bob, &shared_id, &ClientMessageId::parse("ui-1").expect("client id"))
        .await
        .expect("find");
    assert_eq!(found.map(|m| m.id), Some(b1.id.clone()));
    let contents = |messages: Vec<Message>| messages.into_iter().map(|m| m.content).collect::<Vec<_>>();
    let (got_a, messages_a) = s.get_conversation_with_messages(&alice, &shared_id).await.expect("a");
    let (got_b, messages_b) = s.get_conversation_with_messages(&bob, &shared_id).await.expect("b");
    assert_eq!((got_a.title.as_str(), got_a.owner.clone()), ("Alice's", alice.clone()));
    assert_eq!((got_b.title.as_str(), got_b.owner.clone()), ("Bob's", bob.clone()));
    assert_eq!(contents(messages_a), ["alice asks", "alice again"]);
    assert_eq!(contents(messages_b), ["bob asks", "bob's answer"]);
    assert_eq!((got_a.message_count, got_b.message_count), (2, 2));
    assert_eq!(got_b.active_leaf.as_ref(), Some(&b2.id));
    let page = s
        .list_messages(
            &bob,
            &shared_id,
            &ListMessages {
                limit: Some(1),
                cursor: None,
            },
        )
        .await
        .expect("page");
    assert_eq!(contents(page.items), ["bob asks"]);
    // Each lists only their own.
    for (who, title) in [(&alice, "Alice's"), (&bob, "Bob's")] {
        let listed = s
            .list_conversations(who, &ListConversations::default())
            .await
            .expect("list");
        assert_eq!(
            listed
                .items
                .iter()
                .map(|c| (c.id.clone(), c.title.as_str()))
                .collect::<Vec<_>>(),
            [(shared_id.clone(), title)]
        );
    }
    // A change, a regenerate, a delete of a message, a clear: each touches only its owner's.
    let renamed = ConversationPatch {
        title: Some("Bob renamed".to_owned()),
        is_pinned: Some(true),
        ..ConversationPatch::default()
    };
    s.update_conversation(&bob, &shared_id, &renamed, at(6))
        .await
        .expect("update");
    s.begin_turn(&turn(
        &ids,
        &b,
        TurnWrite::Regenerate {
            leaf: b1.id.clone(),
            preview: Some("bob asks".to_owned()),
        },
        limits(0, 0, 0, 0),
    ))
    .await
    .expect("regenerate");
    let err = s
        .delete_message(&bob, &shared_id, &a1.id)
        .await
        .expect_err("not his message");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let (still_a, messages_a) = s.get_conversation_with_messages(&alice, &shared_id).await.expect("a");
    assert_eq!(
        (still_a.title.as_str(), still_a.is_pinned, still_a.active_leaf.as_ref()),
        ("Alice's", false, Some(&a2.id))
    );
    assert_eq!(contents(messages_a), ["alice asks", "alice again"]);
    assert_eq!(s.clear_messages(&bob, &shared_id).await.expect("clear"), 2);
    assert_eq!(h.raw_count(&a).await, alice_items, "alice's items are untouched");
    // Bob deletes his: Alice's is whole, and hers to delete.
    assert_eq!(s.delete_conversation(&bob, &shared_id).await.expect("delete"), 0);
    assert_eq!(h.raw_count(&b).await, 0, "bob's items are gone");
    assert!(matches!(
        s.get_conversation(&bob, &shared_id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(h.raw_count(&a).await, alice_items, "alice's items are untouched");
    let (_, messages_a) = s.get_conversation_with_messages(&alice, &shared_id).await.expect("a");
    assert_eq!(contents(messages_a), ["alice asks", "alice again"]);
    assert_eq!(s.delete_conversation(&alice, &shared_id).await.expect("delete"), 2);
    assert_eq!(h.raw_count(&a).await, 0);
}

async fn a_hundred_concurrent_appends_are_all_stored(h: &dyn Harness) {
    let ids = Arc::new(IdGenerator::new());
    let owner = user(&unique("concurrent"));
    let c = created(h, &ids, &owner).await;
    let store = h.store();
    let results: Vec<_> = stream::iter(0..100)
        .map(|i| {
            let (store, ids, owner, c) = (store.clone(), ids.clone(), owner.clone(), c.clone());
            async move {
                let m = text(&ids, &c, Role::User, &format!("m{i}"), shared::domain::now());
                store.append_message(&owner, &m, &Touch::default()).await
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    assert!(results.iter().all(|r| matches!(r, Ok(Appended::Stored))), "{results:?}");
    let (conv, messages) = store.get_conversation_with_messages(&owner, &c.id).await.expect("get");
    assert_eq!(messages.len(), 100);
    assert_eq!(conv.message_count, 100);
    let mut contents: Vec<_> = messages.iter().map(|m| m.content.clone()).collect();
    contents.sort();
    let mut expected: Vec<_> = (0..100).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(contents, expected);
}

async fn deleting_a_conversation_removes_every_item(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("cascade"));
    let c = created(h, &ids, &owner).await;
    let big = "x".repeat(700 * 1024); // spans chunk items in DynamoDB
    for (i, content) in ["a", big.as_str(), "c"].into_iter().enumerate() {
        let mut m = text(&ids, &c, Role::User, content, at(i as i64));
        m.client_id = Some(ClientMessageId::parse(&format!("cid{i}")).expect("id"));
        h.store()
            .append_message(&owner, &m, &Touch::default())
            .await
            .expect("append");
    }
    for i in 0..40 {
        let m = text(&ids, &c, Role::Assistant, &format!("r{i}"), at(10 + i));
        h.store()
            .append_message(&owner, &m, &Touch::default())
            .await
            .expect("append");
    }
    assert!(h.raw_count(&c).await >= 44);
    // Someone else cannot delete it.
    let err = h
        .store()
        .delete_conversation(&user("intruder"), &c.id)
        .await
        .expect_err("not theirs");
    assert!(matches!(err, StoreError::NotFound));
    assert!(h.raw_count(&c).await >= 44);
    let deleted = h.store().delete_conversation(&owner, &c.id).await.expect("delete");
    assert_eq!(deleted, 43);
    assert_eq!(h.raw_count(&c).await, 0, "items left behind");
    assert!(matches!(
        h.store().get_conversation(&owner, &c.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        h.store().delete_conversation(&owner, &c.id).await,
        Err(StoreError::NotFound)
    ));
    let listed = h
        .store()
        .list_conversations(&owner, &ListConversations::default())
        .await
        .expect("list");
    assert!(listed.items.is_empty());
}

async fn another_owners_conversation_is_not_found_everywhere(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let bob = user(&unique("bob"));
    let c = created(h, &ids, &alice).await;
    let m = text(&ids, &c, Role::User, "secret", at(1));
    h.store()
        .append_message(&alice, &m, &Touch::default())
        .await
        .expect("append");
    let s = h.store();
    let nf = |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    nf(s.get_conversation(&bob, &c.id).await.map(drop));
    nf(s.get_conversation_with_messages(&bob, &c.id).await.map(drop));
    nf(s.update_conversation(&bob, &c.id, &ConversationPatch::default(), at(2))
        .await
        .map(drop));
    nf(s.list_messages(&bob, &c.id, &ListMessages::default()).await.map(drop));
    let mine = text(&ids, &c, Role::User, "injected", at(3));
    nf(s.append_message(&bob, &mine, &Touch::default()).await.map(drop));
    nf(s.clear_messages(&bob, &c.id).await.map(drop));
    nf(s.delete_message(&bob, &c.id, &m.id).await);
    nf(
        s.find_by_client_id(&bob, &c.id, &ClientMessageId::parse("x").expect("id"))
            .await
            .map(drop),
    );
    nf(s.delete_conversation(&bob, &c.id).await.map(drop));
    assert!(s
        .list_conversations(&bob, &ListConversations::default())
        .await
        .expect("list")
        .items
        .is_empty());
    let (_, messages) = s
        .get_conversation_with_messages(&alice, &c.id)
        .await
        .expect("alice still has it");
    assert_eq!(messages, vec![m]);
}

async fn unicode_and_large_contents_round_trip_byte_for_byte(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("bytes"));
    let c = created(h, &ids, &owner).await;
    let unicode = "Zażółć gęślą jaźń — 日本語 — 🧪🔧⚙️ — \u{200d}\u{feff} — \"quotes\" \\ back\nslash\ttab";
    let hundred_kb: String = unicode.chars().cycle().take(100 * 1024).collect();
    let one_and_half_mb: String = "ab€🙂".chars().cycle().take(1_500_000 / 3).collect();
    assert!(one_and_half_mb.len() > 400 * 1024);
    let mut stored = Vec::new();
    for (i, content) in [unicode.to_owned(), hundred_kb, one_and_half_mb]
        .into_iter()
        .enumerate()
    {
        let m = text(&ids, &c, Role::Assistant, &content, at(i as i64));
        h.store()
            .append_message(&owner, &m, &Touch::default())
            .await
            .expect("append");
        stored.push(m);
    }
    let (conv, messages) = h
        .store()
        .get_conversation_with_messages(&owner, &c.id)
        .await
        .expect("get");
    assert_eq!(messages.len(), 3);
    for (a, b) in messages.iter().zip(&stored) {
        assert_eq!(a.content.as_bytes(), b.content.as_bytes());
    }
    assert_eq!(conv.last_message.as_deref().map(|p| p.chars().count()), Some(280));
    // Paged listing reassembles chunked messages too.
    let mut cursor = None;
    let mut paged = Vec::new();
    loop {
        let page = h
            .store()
            .list_messages(&owner, &c.id, &ListMessages { limit: Some(1), cursor })
            .await
            .expect("page");
        paged.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, stored);
}

async fn an_oversized_message_is_refused_before_anything_is_written(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("huge"));
    let c = created(h, &ids, &owner).await;
    let before = h.raw_count(&c).await;
    let m = text(&ids, &c, Role::Assistant, &"z".repeat(MAX_CONTENT_BYTES + 1), at(1));
    let err = h
        .store()
        .append_message(&owner, &m, &Touch::default())
        .await
        .expect_err("too large");
    assert!(matches!(err, StoreError::TooLarge(_)), "{err:?}");
    assert_eq!(h.raw_count(&c).await, before);
    let conv = h.store().get_conversation(&owner, &c.id).await.expect("get");
    assert_eq!(conv.message_count, 0);
    // Exactly at the limit is fine.
    let m = text(&ids, &c, Role::Assistant, &"z".repeat(MAX_CONTENT_BYTES), at(2));
    h.store()
        .append_message(&owner, &m, &Touch::default())
        .await
        .expect("at the limit");
}

async fn a_patch_changes_only_what_it_names(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("patch"));
    let c = created(h, &ids, &owner).await;
    let patch = ConversationPatch {
        title: Some("Renamed".to_owned()),
        ..Default::default()
    };
    let later = c.updated_at + Duration::seconds(5);
    let got = h
        .store()
        .update_conversation(&owner, &c.id, &patch, later)
        .await
        .expect("patch");
    assert_eq!(got.title, "Renamed");
    assert_eq!(got.model, c.model);
    assert!(!got.is_pinned && !got.is_shared);
    assert_eq!(got.updated_at, later);
    assert_eq!(got.created_at, c.created_at);
    let patch = ConversationPatch {
        is_pinned: Some(true),
        is_shared: Some(true),
        model: Some("us.anthropic.claude-opus-4-5-20251101-v1:0".to_owned()),
        ..Default::default()
    };
    let got = h
        .store()
        .update_conversation(&owner, &c.id, &patch, later)
        .await
        .expect("patch");
    assert_eq!(got.title, "Renamed");
    assert!(got.is_pinned && got.is_shared);
    assert_eq!(got.model, "us.anthropic.claude-opus-4-5-20251101-v1:0");
    assert_eq!(h.store().get_conversation(&owner, &c.id).await.expect("get"), got);
    let missing = ConversationId::parse("does-not-exist").expect("id");
    assert!(matches!(
        h.store().update_conversation(&owner, &missing, &patch, later).await,
        Err(StoreError::NotFound)
    ));
}

async fn listing_filters_by_solution(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("solutions"));
    for (i, solution) in [
        None,
        Some(Solution::Maintenance),
        Some(Solution::Maintenance),
        Some(Solution::Support),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = conversation(&ids, &owner, at(i as i64));
        c.solution_type = solution;
        h.store().create_conversation(&c, &[]).await.expect("create");
    }
    let count = |filter| {
        let store = h.store();
        let owner = owner.clone();
        async move {
            let q = ListConversations {
                solution: filter,
                ..Default::default()
            };
            store.list_conversations(&owner, &q).await.expect("list").items
        }
    };
    assert_eq!(count(None).await.len(), 4);
    assert_eq!(count(Some(SolutionFilter::General)).await.len(), 1);
    let maintenance = count(Some(SolutionFilter::Only(Solution::Maintenance))).await;
    assert_eq!(maintenance.len(), 2);
    assert!(maintenance
        .iter()
        .all(|c| c.solution_type == Some(Solution::Maintenance)));
    assert_eq!(count(Some(SolutionFilter::Only(Solution::Requirements))).await.len(), 0);
}

async fn clearing_messages_keeps_the_conversation(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("clear"));
    let c = created(h, &ids, &owner).await;
    for i in 0..30 {
        let mut m = text(&ids, &c, Role::User, &format!("m{i}"), at(i));
        m.client_id = Some(ClientMessageId::parse(&format!("c{i}")).expect("id"));
        h.store()
            .append_message(&owner, &m, &Touch::default())
            .await
            .expect("append");
    }
    assert_eq!(h.store().clear_messages(&owner, &c.id).await.expect("clear"), 30);
    let (conv, messages) = h
        .store()
        .get_conversation_with_messages(&owner, &c.id)
        .await
        .expect("get");
    assert!(messages.is_empty());
    assert_eq!(conv.message_count, 0);
    assert_eq!(conv.last_message, None);
    assert_eq!(h.raw_count(&c).await, 1, "only the conversation remains");
    assert_eq!(h.store().clear_messages(&owner, &c.id).await.expect("clear again"), 0);
    // Client ids are free again after a clear.
    let mut m = text(&ids, &c, Role::User, "again", at(100));
    m.client_id = Some(ClientMessageId::parse("c0").expect("id"));
    assert_eq!(
        h.store()
            .append_message(&owner, &m, &Touch::default())
            .await
            .expect("append"),
        Appended::Stored
    );
}

async fn a_repeated_client_id_is_stored_once(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("idem"));
    let c = created(h, &ids, &owner).await;
    let client_id = ClientMessageId::parse("ui-msg-1").expect("id");
    let mut first = text(&ids, &c, Role::User, "hello", at(1));
    first.client_id = Some(client_id.clone());
    assert_eq!(
        h.store()
            .append_message(&owner, &first, &Touch::default())
            .await
            .expect("first"),
        Appended::Stored
    );
    let mut retry = text(&ids, &c, Role::User, "hello", at(2));
    retry.client_id = Some(client_id.clone());
    assert_eq!(
        h.store()
            .append_message(&owner, &retry, &Touch::default())
            .await
            .expect("retry"),
        Appended::Duplicate(first.id.clone())
    );
    let found = h
        .store()
        .find_by_client_id(&owner, &c.id, &client_id)
        .await
        .expect("find");
    assert_eq!(found, Some(first));
    let conv = h.store().get_conversation(&owner, &c.id).await.expect("get");
    assert_eq!(conv.message_count, 1);
}

async fn deleting_the_last_message_repoints_the_preview(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("regen"));
    let c = created(h, &ids, &owner).await;
    let q = text(&ids, &c, Role::User, "question", at(1));
    let a = text(&ids, &c, Role::Assistant, "answer", at(2));
    for m in [&q, &a] {
        h.store()
            .append_message(&owner, m, &Touch::default())
            .await
            .expect("append");
    }
    h.store().delete_message(&owner, &c.id, &a.id).await.expect("delete");
    let (conv, messages) = h
        .store()
        .get_conversation_with_messages(&owner, &c.id)
        .await
        .expect("get");
    assert_eq!(messages, vec![q.clone()]);
    assert_eq!(conv.last_message.as_deref(), Some("question"));
    assert_eq!(conv.message_count, 1);
    assert!(matches!(
        h.store().delete_message(&owner, &c.id, &a.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_touch_renames_the_conversation_with_the_append(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("touch"));
    let c = created(h, &ids, &owner).await;
    let m = text(&ids, &c, Role::User, "How do I compute MTBF?", at(1));
    let touch = Touch {
        title: Some("How do I compute MTBF?".to_owned()),
    };
    h.store().append_message(&owner, &m, &touch).await.expect("append");
    let conv = h.store().get_conversation(&owner, &c.id).await.expect("get");
    assert_eq!(conv.title, "How do I compute MTBF?");
}

async fn analytics_events_are_recorded_and_read_back_by_day(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let day = Utc::now();
    let tag = unique("evt");
    let events: Vec<AnalyticsEvent> = (0..60)
        .map(|i| AnalyticsEvent {
            id: ids.next_ulid(),
            event_type: if i % 2 == 0 { "api_call" } else { "message_sent" }.to_owned(),
            solution_type: Some(Solution::Support),
            user_id: Some(tag.clone()),
            conversation_id: None,
            model: Some("m".to_owned()),
            metadata: serde_json::json!({"inputTokens": i, "costMicroUsd": 1234}),
            timestamp: shared::domain::now(),
        })
        .collect();
    h.store().record_events(&events).await.expect("record");
    let read = h
        .store()
        .events_of_day(&day.format("%Y-%m-%d").to_string())
        .await
        .expect("read");
    let mine: Vec<_> = read
        .into_iter()
        .filter(|e| e.user_id.as_deref() == Some(tag.as_str()))
        .collect();
    assert_eq!(mine, events);
}

// ---------------------------------------------------------------- chat turn admission and audit

fn limits(rpm: u64, day: u64, month: u64, streams: u32) -> TurnLimits {
    TurnLimits {
        requests_per_minute: rpm,
        tokens_per_day: day,
        tokens_per_month: month,
        nano_usd_per_month: 0,
        max_streams: streams,
        lease_secs: 300,
    }
}

fn turn(ids: &IdGenerator, c: &Conversation, write: TurnWrite, limits: TurnLimits) -> TurnStart {
    TurnStart {
        payer: c.owner.clone(),
        owner: c.owner.clone(),
        conversation_id: c.id.clone(),
        write,
        limits,
        turn_id: ids.next_ulid(),
        now: shared::domain::now(),
        reservation: 0,
        reservation_nano_usd: 0,
        reply_id: shared::domain::IdGenerator::new().message_id(),
        reply_parent: shared::domain::MessageId::root(),
    }
}

/// A turn reserving `reservation` tokens.
fn reserving(ids: &IdGenerator, c: &Conversation, write: TurnWrite, limits: TurnLimits, reservation: u64) -> TurnStart {
    TurnStart {
        reservation,
        reply_id: shared::domain::IdGenerator::new().message_id(),
        reply_parent: shared::domain::MessageId::root(),
        ..turn(ids, c, write, limits)
    }
}

fn charge(c: &Conversation, lease: Option<StreamLease>, tokens: u64) -> TurnFinish {
    settle(c, lease, Settlement::charge(tokens))
}

fn settle(c: &Conversation, lease: Option<StreamLease>, settlement: Settlement) -> TurnFinish {
    TurnFinish {
        payer: c.owner.clone(),
        owner: c.owner.clone(),
        conversation_id: c.id.clone(),
        turn_id: ulid::Ulid::new().to_string(),
        reply: None,
        lease,
        settlement,
        started: shared::domain::now(),
        stats: None,
        title: None,
        checkpoint: None,
    }
}

async fn the_token_budget_is_exact_under_concurrent_turns(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let c = created(h, &ids, &user(&unique("budget"))).await;
    // Budget 50 tokens a day, one stream at a time: twenty concurrent clients each run turns
    // charging 10 tokens until refused. The slot serializes the turns, so exactly five fit.
    let l = limits(0, 50, 1_000, 1);
    let results: Vec<(u32, u32)> = stream::iter(0..20)
        .map(|_| {
            let (store, ids, c, l) = (h.store(), &ids, &c, l.clone());
            async move {
                let (mut ok, mut budget) = (0u32, 0u32);
                loop {
                    match store
                        .begin_turn(&reserving(ids, c, TurnWrite::Check, l.clone(), 10))
                        .await
                    {
                        Ok(begun) => {
                            ok += 1;
                            let exact = Settlement {
                                reserved: 10,
                                actual: 10,
                                ..Settlement::default()
                            };
                            store.finish_turn(&settle(c, begun.lease, exact)).await.expect("finish");
                        }
                        Err(StoreError::TooManyStreams { retry_after }) => {
                            assert_eq!(retry_after, shared::store::STREAM_RETRY_AFTER);
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        }
                        Err(StoreError::BudgetExceeded { window, retry_after }) => {
                            assert_eq!(window, "day");
                            assert!((1..=86_400).contains(&retry_after), "{retry_after}");
                            budget += 1;
                            return (ok, budget);
                        }
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let ok: u32 = results.iter().map(|r| r.0).sum();
    let refused: u32 = results.iter().map(|r| r.1).sum();
    assert_eq!((ok, refused), (5, 20), "exactly 50 / 10 turns fit the budget");
    // Charges are atomic: 40 concurrent charges of 1 token all count towards the month budget.
    let c2 = created(h, &ids, &user(&unique("month"))).await;
    stream::iter(0..40)
        .map(|_| {
            let store = h.store();
            let c2 = &c2;
            async move { store.finish_turn(&charge(c2, None, 1)).await.expect("charge") }
        })
        .buffer_unordered(20)
        .collect::<Vec<_>>()
        .await;
    let under = h
        .store()
        .begin_turn(&turn(&ids, &c2, TurnWrite::Check, limits(0, 0, 41, 0)))
        .await;
    assert!(under.is_ok(), "40 < 41: {under:?}");
    let over = h
        .store()
        .begin_turn(&turn(&ids, &c2, TurnWrite::Check, limits(0, 0, 40, 0)))
        .await;
    assert!(
        matches!(over, Err(StoreError::BudgetExceeded { window: "month", .. })),
        "{over:?}"
    );
}

/// Checks what the day (`day`) or month budget item of `c`'s owner holds is exactly `spent`, by
/// turns reserving nothing (admitted while `tokens < budget`, writing nothing else).
async fn assert_spent(h: &dyn Harness, ids: &IdGenerator, c: &Conversation, day: bool, spent: u64) {
    let probe = |budget: u64| async move {
        let l = if day {
            limits(0, budget, 0, 0)
        } else {
            limits(0, 0, budget, 0)
        };
        h.store().begin_turn(&turn(ids, c, TurnWrite::Check, l)).await
    };
    let admitted = probe(spent + 1).await;
    assert!(admitted.is_ok(), "less than {} spent: {admitted:?}", spent + 1);
    if spent > 0 {
        let refused = probe(spent).await;
        assert!(
            matches!(refused, Err(StoreError::BudgetExceeded { .. })),
            "{spent} spent: {refused:?}"
        );
    }
}

async fn a_reservation_that_does_not_fit_is_refused_and_writes_nothing(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("reserve"));
    let c = created(h, &ids, &owner).await;
    let l = limits(10, 1_000, 5_000, 1);
    let append = |content: &str| TurnWrite::Append {
        message: text(&ids, &c, Role::User, content, shared::domain::now()),
        title: None,
    };
    let first = h
        .store()
        .begin_turn(&reserving(&ids, &c, append("first"), l.clone(), 600))
        .await
        .expect("600 of 1,000 fits");
    assert_spent(h, &ids, &c, true, 600).await;
    assert_spent(h, &ids, &c, false, 600).await;
    h.store()
        .finish_turn(&settle(
            &c,
            first.lease,
            Settlement {
                reserved: 600,
                actual: 600,
                ..Settlement::default()
            },
        ))
        .await
        .expect("finish");
    // 600 + 500 > 1,000: refused although 600 < 1,000; nothing written (no message, no
    // reservation, no slot taken, no request counted).
    let refused = h
        .store()
        .begin_turn(&reserving(&ids, &c, append("does not fit"), l.clone(), 500))
        .await;
    assert!(
        matches!(refused, Err(StoreError::BudgetExceeded { window: "day", .. })),
        "{refused:?}"
    );
    // A reservation over the whole budget is refused whatever was spent.
    let never = h
        .store()
        .begin_turn(&reserving(&ids, &c, append("never fits"), limits(0, 0, 500, 0), 501))
        .await;
    assert!(
        matches!(never, Err(StoreError::BudgetExceeded { window: "month", .. })),
        "{never:?}"
    );
    let (_, messages) = h
        .store()
        .get_conversation_with_messages(&owner, &c.id)
        .await
        .expect("read");
    assert_eq!(
        messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["first"],
        "the refused turns stored nothing"
    );
    assert_spent(h, &ids, &c, true, 600).await;
    // Exactly what is left fits (600 + 400 = 1,000), and takes the one slot: the refused
    // turns held none.
    let last = h
        .store()
        .begin_turn(&reserving(&ids, &c, append("exactly"), l.clone(), 400))
        .await
        .expect("400 fits exactly");
    assert!(last.lease.is_some());
    // Only the 2 admitted turns counted against the per-minute limit (the refused ones did not,
    // the probes reserve under a limit of 0).
    let rpm = h
        .store()
        .begin_turn(&turn(&ids, &c, TurnWrite::Check, limits(2, 0, 0, 0)))
        .await;
    assert!(
        matches!(rpm, Err(StoreError::RateLimited { .. })),
        "only the 2 admitted turns were counted: {rpm:?}"
    );
}

async fn a_reservation_is_settled_down_and_up(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let c = created(h, &ids, &user(&unique("settle"))).await;
    let l = limits(0, 1_000, 5_000, 0);
    h.store()
        .begin_turn(&reserving(&ids, &c, TurnWrite::Check, l.clone(), 400))
        .await
        .expect("admitted");
    assert_spent(h, &ids, &c, true, 400).await;
    // The turn cost less: the difference goes back (a negative ADD).
    let down = Settlement {
        reserved: 400,
        actual: 130,
        ..Settlement::default()
    };
    h.store()
        .finish_turn(&settle(&c, None, down))
        .await
        .expect("settle down");
    assert_spent(h, &ids, &c, true, 130).await;
    assert_spent(h, &ids, &c, false, 130).await;
    // It cost more (a tool loop): the excess is charged.
    h.store()
        .begin_turn(&reserving(&ids, &c, TurnWrite::Check, l.clone(), 300))
        .await
        .expect("admitted");
    assert_spent(h, &ids, &c, true, 430).await;
    let up = Settlement {
        reserved: 300,
        actual: 900,
        ..Settlement::default()
    };
    h.store().finish_turn(&settle(&c, None, up)).await.expect("settle up");
    assert_spent(h, &ids, &c, true, 1_030).await;
    assert_spent(h, &ids, &c, false, 1_030).await;
    // A reservation on a month-only budget is still counted in the day item, and settled there.
    let c2 = created(h, &ids, &user(&unique("month-only"))).await;
    h.store()
        .begin_turn(&reserving(&ids, &c2, TurnWrite::Check, limits(0, 0, 5_000, 0), 250))
        .await
        .expect("admitted");
    assert_spent(h, &ids, &c2, true, 250).await;
    let settled = Settlement {
        reserved: 250,
        actual: 20,
        ..Settlement::default()
    };
    h.store()
        .finish_turn(&settle(&c2, None, settled))
        .await
        .expect("settle");
    assert_spent(h, &ids, &c2, true, 20).await;
    assert_spent(h, &ids, &c2, false, 20).await;
}

async fn concurrent_turns_never_overshoot_a_budget_by_more_than_the_reservations_in_flight(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let c = created(h, &ids, &user(&unique("inflight"))).await;
    // Budget 3,000, stream cap off: of 20 concurrent turns reserving 400 each, 7 fit (2,800).
    let l = limits(0, 3_000, 0, 0);
    let results: Vec<Result<TurnBegun, StoreError>> = stream::iter(0..20)
        .map(|_| {
            let (store, ids, c, l) = (h.store(), &ids, &c, l.clone());
            async move { store.begin_turn(&reserving(ids, c, TurnWrite::Check, l, 400)).await }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::BudgetExceeded { window: "day", .. })))
        .count();
    assert_eq!((admitted, refused), (7, 13), "{results:?}");
    assert_spent(h, &ids, &c, true, 2_800).await;
    // They settle concurrently below their reservations: the budget holds what they cost.
    stream::iter(0..admitted)
        .map(|_| {
            let (store, c) = (h.store(), &c);
            let cost = Settlement {
                reserved: 400,
                actual: 250,
                ..Settlement::default()
            };
            async move { store.finish_turn(&settle(c, None, cost)).await.expect("settle") }
        })
        .buffer_unordered(20)
        .collect::<Vec<_>>()
        .await;
    assert_spent(h, &ids, &c, true, 7 * 250).await;
    // Twenty clients run turns (reserve 400, cost 250) until refused: the budget is never
    // overshot, because every turn in flight holds its reservation.
    let c2 = created(h, &ids, &user(&unique("inflight-loop"))).await;
    let oks: Vec<u64> = stream::iter(0..20)
        .map(|_| {
            let (store, ids, c2, l) = (h.store(), &ids, &c2, l.clone());
            async move {
                let mut ok = 0u64;
                loop {
                    match store
                        .begin_turn(&reserving(ids, c2, TurnWrite::Check, l.clone(), 400))
                        .await
                    {
                        Ok(_) => {
                            ok += 1;
                            let cost = Settlement {
                                reserved: 400,
                                actual: 250,
                                ..Settlement::default()
                            };
                            store.finish_turn(&settle(c2, None, cost)).await.expect("settle");
                        }
                        Err(StoreError::BudgetExceeded { .. }) => return ok,
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let ok: u64 = oks.iter().sum();
    assert!((7..=11).contains(&ok), "{ok} turns of 250 (reserving 400) under 3,000");
    assert_spent(h, &ids, &c2, true, ok * 250).await;
}

async fn the_stream_cap_is_exact_under_concurrency(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let c = created(h, &ids, &user(&unique("streams"))).await;
    let l = limits(0, 0, 0, 3);
    let results: Vec<Result<TurnBegun, StoreError>> = stream::iter(0..12)
        .map(|_| {
            let (store, ids, c, l) = (h.store(), &ids, &c, l.clone());
            async move { store.begin_turn(&turn(ids, c, TurnWrite::Check, l)).await }
        })
        .buffer_unordered(12)
        .collect()
        .await;
    let leases: Vec<StreamLease> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(|b| b.lease.clone()))
        .collect();
    let capped = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::TooManyStreams { .. })))
        .count();
    assert_eq!((leases.len(), capped), (3, 9), "{results:?}");
    let mut slots: Vec<u32> = leases.iter().map(|l| l.slot).collect();
    slots.sort_unstable();
    assert_eq!(slots, [0, 1, 2]);
    // Ending one turn frees exactly one slot.
    h.store()
        .finish_turn(&charge(&c, Some(leases[0].clone()), 0))
        .await
        .expect("release");
    let again = h.store().begin_turn(&turn(&ids, &c, TurnWrite::Check, l.clone())).await;
    assert!(matches!(&again, Ok(TurnBegun { lease: Some(_) })), "{again:?}");
    let full = h.store().begin_turn(&turn(&ids, &c, TurnWrite::Check, l)).await;
    assert!(matches!(full, Err(StoreError::TooManyStreams { .. })), "{full:?}");
}

async fn a_slot_is_released_when_the_turn_ends_in_error(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let owner = user(&unique("abort"));
    let c = created(h, &ids, &owner).await;
    let l = limits(0, 0, 0, 1);
    let begun = h
        .store()
        .begin_turn(&turn(&ids, &c, TurnWrite::Check, l.clone()))
        .await
        .expect("admitted");
    // The conversation is deleted while the reply streams: the reply cannot be stored, but the
    // slot is still released and the tokens still charged.
    h.store().delete_conversation(&owner, &c.id).await.expect("delete");
    let mut reply = text(&ids, &c, Role::Assistant, "partial", shared::domain::now());
    reply.finish_reason = Some(FinishReason::Aborted);
    let end = TurnFinish {
        reply: Some(reply),
        ..charge(&c, begun.lease, 5)
    };
    h.store().finish_turn(&end).await.expect("finish without the reply");
    assert_eq!(
        h.raw_count(&c).await,
        0,
        "nothing was written for the deleted conversation"
    );
    let c2 = created(h, &ids, &owner).await;
    let next = h.store().begin_turn(&turn(&ids, &c2, TurnWrite::Check, l)).await;
    assert!(next.is_ok(), "the slot was released: {next:?}");
}

async fn an_expired_lease_is_reclaimed_and_its_late_end_frees_nothing(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let c = created(h, &ids, &user(&unique("lease"))).await;
    let l = limits(0, 0, 0, 1);
    // A turn that began 400 s ago on an instance that crashed: its 300 s lease has run out.
    let crashed = TurnStart {
        now: shared::domain::now() - Duration::seconds(400),
        ..turn(&ids, &c, TurnWrite::Check, l.clone())
    };
    let old = h.store().begin_turn(&crashed).await.expect("admitted").lease;
    let new = h
        .store()
        .begin_turn(&turn(&ids, &c, TurnWrite::Check, l.clone()))
        .await
        .expect("the expired lease is reclaimed")
        .lease;
    assert_eq!(old.as_ref().map(|l| l.slot), new.as_ref().map(|l| l.slot));
    // The crashed turn's late end must not free the slot its successor holds.
    h.store().finish_turn(&charge(&c, old, 0)).await.expect("late end");
    let third = h.store().begin_turn(&turn(&ids, &c, TurnWrite::Check, l.clone())).await;
    assert!(matches!(third, Err(StoreError::TooManyStreams { .. })), "{third:?}");
    h.store().finish_turn(&charge(&c, new, 0)).await.expect("end");
    assert!(h.store().begin_turn(&turn(&ids, &c, TurnWrite::Check, l)).await.is_ok());
}

async fn the_turn_rate_limit_is_exact_under_concurrency(h: &dyn Harness) {
    // Every turn at one instant, 15 s into its minute: all fall into one window.
    let now = athena_tests::mid_minute();
    let ids = IdGenerator::new();
    let owner = user(&unique("rpm"));
    let c = created(h, &ids, &owner).await;
    let l = limits(4, 0, 0, 0);
    // The other routes count in the same per-minute counter.
    let window = now.timestamp() - now.timestamp().rem_euclid(60);
    h.store()
        .increment_counter(&shared::store::schema::rate_key(owner.as_str()), window, 120)
        .await
        .expect("count");
    let results: Vec<Result<TurnBegun, StoreError>> = stream::iter(0..10)
        .map(|_| {
            let (store, ids, c, l) = (h.store(), &ids, &c, l.clone());
            async move {
                let start = TurnStart {
                    now,
                    ..turn(ids, c, TurnWrite::Check, l)
                };
                store.begin_turn(&start).await
            }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let limited = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::RateLimited { retry_after }) if (1..=60).contains(retry_after)))
        .count();
    assert_eq!((ok, limited), (3, 7), "{results:?}");
}

async fn begin_turn_writes_what_it_admits_and_nothing_when_refused(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let mallory = user(&unique("mallory"));
    // Create with the first message.
    let mut c = conversation(&ids, &alice, shared::domain::now());
    c.title = "Press line".to_owned();
    let mut first = text(&ids, &c, Role::User, "hello", shared::domain::now());
    first.client_id = Some(ClientMessageId::parse("client-1").expect("client id"));
    let create = TurnWrite::Create {
        conversation: c.clone(),
        messages: vec![first.clone()],
    };
    h.store()
        .begin_turn(&turn(&ids, &c, create.clone(), limits(0, 0, 0, 0)))
        .await
        .expect("create");
    let again = h.store().begin_turn(&turn(&ids, &c, create, limits(0, 0, 0, 0))).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    // Someone else's conversation is not found, and nothing is written.
    let foreign = TurnStart {
        payer: mallory.clone(),
        owner: mallory.clone(),
        ..turn(
            &ids,
            &c,
            TurnWrite::Append {
                message: text(&ids, &c, Role::User, "injected", shared::domain::now()),
                title: None,
            },
            limits(0, 0, 0, 0),
        )
    };
    assert!(matches!(
        h.store().begin_turn(&foreign).await,
        Err(StoreError::NotFound)
    ));
    // A resubmitted client id is admitted without a second copy.
    let mut resubmit = text(&ids, &c, Role::User, "hello", shared::domain::now());
    resubmit.client_id = first.client_id.clone();
    h.store()
        .begin_turn(&turn(
            &ids,
            &c,
            TurnWrite::Append {
                message: resubmit,
                title: None,
            },
            limits(0, 0, 0, 0),
        ))
        .await
        .expect("resubmit admitted");
    // The reply, then a regenerate that keeps it as a sibling of the one to come.
    let reply = text(&ids, &c, Role::Assistant, "a long answer", shared::domain::now());
    h.store()
        .finish_turn(&TurnFinish {
            reply: Some(reply.clone()),
            ..charge(&c, None, 0)
        })
        .await
        .expect("reply");
    let (stored, messages) = h
        .store()
        .get_conversation_with_messages(&alice, &c.id)
        .await
        .expect("read");
    assert_eq!(
        messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["hello", "a long answer"]
    );
    assert_eq!((stored.message_count, stored.title.as_str()), (2, "Press line"));
    assert_eq!(stored.last_message.as_deref(), Some("a long answer"));
    // A refused turn writes nothing: over the budget, the message is not appended.
    h.store().finish_turn(&charge(&c, None, 10)).await.expect("charge");
    let refused = h
        .store()
        .begin_turn(&turn(
            &ids,
            &c,
            TurnWrite::Append {
                message: text(&ids, &c, Role::User, "over budget", shared::domain::now()),
                title: None,
            },
            limits(0, 10, 0, 0),
        ))
        .await;
    assert!(
        matches!(refused, Err(StoreError::BudgetExceeded { window: "day", .. })),
        "{refused:?}"
    );
    assert_eq!(
        stored.active_leaf.as_ref(),
        Some(&reply.id),
        "the reply ends the active branch"
    );
    let regenerate = TurnWrite::Regenerate {
        leaf: first.id.clone(),
        preview: Some("hello".to_owned()),
    };
    h.store()
        .begin_turn(&turn(&ids, &c, regenerate, limits(0, 0, 0, 0)))
        .await
        .expect("regenerate");
    let (stored, messages) = h
        .store()
        .get_conversation_with_messages(&alice, &c.id)
        .await
        .expect("read");
    assert_eq!(
        messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["hello", "a long answer"],
        "the replaced reply is kept"
    );
    assert_eq!(
        (
            stored.message_count,
            stored.last_message.as_deref(),
            stored.active_leaf.as_ref()
        ),
        (2, Some("hello"), Some(&first.id)),
        "the active branch ends at the question again"
    );
    // Partition: conversation, 2 messages, client-id marker (DynamoDB) / conversation + 2 messages (SQLite).
    assert!(h.raw_count(&c).await <= 4);
}

async fn audit_entries_are_listed_newest_first_paged_and_per_user(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let bob = user(&unique("bob"));
    let entry = |who: &UserId, n: usize| {
        shared::audit::entry(
            &ids,
            who,
            shared::audit::action::CONVERSATION_CREATE,
            Some(format!("c{n}")),
            if n % 2 == 0 { "ok" } else { "NOT_FOUND" },
            Some("req"),
            365,
        )
    };
    let mine: Vec<AuditEntry> = (0..7).map(|n| entry(&alice, n)).collect();
    let theirs: Vec<AuditEntry> = (0..2).map(|n| entry(&bob, n)).collect();
    h.store().record_activity(&[], &mine[..4]).await.expect("record");
    h.store().record_activity(&[], &theirs).await.expect("record");
    h.store().record_activity(&[], &mine[4..]).await.expect("record");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = h
            .store()
            .list_audit(&alice, Some(3), cursor.as_deref())
            .await
            .expect("page");
        pages += 1;
        seen.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected = mine.clone();
    expected.reverse();
    let strip = |v: &[AuditEntry]| -> Vec<(String, String, Option<String>, String)> {
        v.iter()
            .map(|e| (e.id.clone(), e.user_id.clone(), e.resource.clone(), e.status.clone()))
            .collect()
    };
    assert_eq!(strip(&seen), strip(&expected));
    assert_eq!(pages, 3);
    assert!(seen
        .iter()
        .all(|e| e.at == expected.iter().find(|x| x.id == e.id).map(|x| x.at).unwrap_or_default()));
    // Bob sees only his own, and alice's cursor means nothing in bob's listing.
    let bobs = h.store().list_audit(&bob, None, None).await.expect("bob");
    assert_eq!(bobs.items.len(), 2);
    assert!(bobs.items.iter().all(|e| e.user_id == bob.as_str()));
    let first = h.store().list_audit(&alice, Some(3), None).await.expect("alice");
    let foreign = h.store().list_audit(&bob, Some(3), first.next_cursor.as_deref()).await;
    assert!(matches!(foreign, Err(StoreError::InvalidCursor)), "{foreign:?}");
}

async fn an_edit_stores_a_new_version_under_the_same_client_id_and_keeps_the_old_one(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let c = conversation(&ids, &alice, shared::domain::now());
    let mut q = text(&ids, &c, Role::User, "first question", shared::domain::now());
    q.client_id = Some(ClientMessageId::parse("ui-1").expect("client id"));
    let create = TurnWrite::Create {
        conversation: c.clone(),
        messages: vec![q.clone()],
    };
    h.store()
        .begin_turn(&turn(&ids, &c, create, limits(0, 0, 0, 0)))
        .await
        .expect("create");
    let mut a = text(&ids, &c, Role::Assistant, "first answer", shared::domain::now());
    a.parent_id = Some(q.id.clone());
    h.store()
        .finish_turn(&TurnFinish {
            reply: Some(a.clone()),
            ..charge(&c, None, 0)
        })
        .await
        .expect("reply");
    // The edit: the same client id, the stored version's parent (none: it is the first).
    let mut edited = text(&ids, &c, Role::User, "first question, rephrased", shared::domain::now());
    edited.client_id = q.client_id.clone();
    h.store()
        .begin_turn(&turn(
            &ids,
            &c,
            TurnWrite::Edit {
                message: edited.clone(),
            },
            limits(0, 0, 0, 0),
        ))
        .await
        .expect("edit");
    let (stored, messages) = h
        .store()
        .get_conversation_with_messages(&alice, &c.id)
        .await
        .expect("read");
    assert_eq!(
        messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["first question", "first answer", "first question, rephrased"],
        "every version is kept"
    );
    assert_eq!(messages[1].parent_id.as_ref(), Some(&q.id), "parents round-trip");
    assert_eq!(stored.active_leaf.as_ref(), Some(&edited.id));
    assert_eq!(stored.last_message.as_deref(), Some("first question, rephrased"));
    let newest = h
        .store()
        .find_by_client_id(&alice, &c.id, q.client_id.as_ref().expect("client id"))
        .await
        .expect("find");
    assert_eq!(
        newest.map(|m| m.id),
        Some(edited.id.clone()),
        "the client id answers with the newest version"
    );
    // Switching back to the first version's branch.
    let patch = ConversationPatch {
        active_leaf: Some(ActiveLeaf {
            id: a.id.clone(),
            preview: Some("first answer".to_owned()),
        }),
        ..ConversationPatch::default()
    };
    let switched = h
        .store()
        .update_conversation(&alice, &c.id, &patch, shared::domain::now())
        .await
        .expect("switch");
    assert_eq!(
        (switched.active_leaf.as_ref(), switched.last_message.as_deref()),
        (Some(&a.id), Some("first answer"))
    );
    // A message appended through the messages API continues the branch it was added to.
    let follow = text(&ids, &c, Role::User, "and then?", shared::domain::now());
    h.store()
        .append_message(&alice, &follow, &Touch::default())
        .await
        .expect("append");
    let (stored, _) = h
        .store()
        .get_conversation_with_messages(&alice, &c.id)
        .await
        .expect("read");
    assert_eq!(stored.active_leaf.as_ref(), Some(&follow.id));
    // Clearing the messages clears the active leaf too.
    h.store().clear_messages(&alice, &c.id).await.expect("clear");
    let cleared = h.store().get_conversation(&alice, &c.id).await.expect("read");
    assert_eq!((cleared.active_leaf, cleared.message_count), (None, 0));
}

async fn an_append_in_a_turn_names_a_conversation_that_has_the_default_title(h: &dyn Harness) {
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let c = conversation(&ids, &alice, shared::domain::now());
    h.store().create_conversation(&c, &[]).await.expect("create");
    let q = text(&ids, &c, Role::User, "Why did line 3 stop?", shared::domain::now());
    let append = TurnWrite::Append {
        message: q.clone(),
        title: Some("Why did line 3 stop?".to_owned()),
    };
    h.store()
        .begin_turn(&turn(&ids, &c, append, limits(0, 0, 0, 0)))
        .await
        .expect("append");
    let stored = h.store().get_conversation(&alice, &c.id).await.expect("read");
    assert_eq!(
        (stored.title.as_str(), stored.active_leaf.as_ref(), stored.message_count),
        ("Why did line 3 stop?", Some(&q.id), 1)
    );
}

fn saved(body: &str, location: Option<&str>) -> SavedResponse {
    SavedResponse {
        status: 201,
        body: body.to_owned(),
        location: location.map(str::to_owned),
    }
}

async fn reserved(h: &dyn Harness, owner: &UserId, key: &str, fingerprint: &str, now: Timestamp) -> HeldKey {
    match h.store().reserve_key(owner, key, fingerprint, now).await {
        Ok(Reservation::Reserved(held)) => held,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

async fn an_idempotency_key_is_reserved_once_then_replayed_and_never_reused(h: &dyn Harness) {
    let owner = user(&unique("idem"));
    let store = h.store();
    let t = at(0);
    let held = reserved(h, &owner, "key-1", "fp-a", t).await;
    // While the first request runs: the same request is in progress, another is a mismatch.
    let again = store.reserve_key(&owner, "key-1", "fp-a", t).await.expect("again");
    assert_eq!(again, Reservation::InProgress);
    let other = store.reserve_key(&owner, "key-1", "fp-b", t).await.expect("other");
    assert_eq!(other, Reservation::Mismatch);
    // Completed: the same request replays the response; another is still a mismatch.
    let response = saved(r#"{"id":"c1","title":"\u00e9 ünïcode"}"#, Some("/api/conversations/c1"));
    store.complete_key(&held, &response, t).await.expect("complete");
    let replay = store
        .reserve_key(&owner, "key-1", "fp-a", at(1_000))
        .await
        .expect("replay");
    assert_eq!(replay, Reservation::Replay(response.clone()));
    let other = store
        .reserve_key(&owner, "key-1", "fp-b", at(1_000))
        .await
        .expect("other");
    assert_eq!(other, Reservation::Mismatch);
    // A response without a location round-trips as such; keys are case-sensitive and may hold
    // any printable ASCII.
    let key = "Key 2/with:punctuation~!#";
    let held = reserved(h, &owner, key, "fp-a", t).await;
    store
        .complete_key(&held, &saved("{}", None), t)
        .await
        .expect("complete");
    let replay = store.reserve_key(&owner, key, "fp-a", t).await.expect("replay");
    assert_eq!(replay, Reservation::Replay(saved("{}", None)));
    reserved(h, &owner, &key.to_uppercase(), "fp-a", t).await;
}

async fn a_released_idempotency_key_is_free_again_and_a_stale_holder_changes_nothing(h: &dyn Harness) {
    let owner = user(&unique("idem-release"));
    let store = h.store();
    let first = reserved(h, &owner, "k", "fp-a", at(0)).await;
    store.release_key(&first).await.expect("release");
    // Free again, even for another request.
    let second = reserved(h, &owner, "k", "fp-b", at(0)).await;
    assert_ne!(first.token, second.token);
    // The first holder no longer holds it: its complete and release change nothing.
    store
        .complete_key(&first, &saved("{}", None), at(0))
        .await
        .expect("stale complete");
    store.release_key(&first).await.expect("stale release");
    let still = store.reserve_key(&owner, "k", "fp-b", at(0)).await.expect("still");
    assert_eq!(still, Reservation::InProgress);
    // A completed key is not released by its holder.
    store
        .complete_key(&second, &saved("{\"n\":2}", None), at(0))
        .await
        .expect("complete");
    store.release_key(&second).await.expect("release after complete");
    let replay = store.reserve_key(&owner, "k", "fp-b", at(0)).await.expect("replay");
    assert_eq!(replay, Reservation::Replay(saved("{\"n\":2}", None)));
}

async fn idempotency_keys_expire_after_a_day_and_abandoned_reservations_after_their_lease(h: &dyn Harness) {
    let owner = user(&unique("idem-expiry"));
    let store = h.store();
    let day_ms = rules::IDEMPOTENCY_TTL_SECS * 1000;
    let lease_ms = rules::IDEMPOTENCY_LEASE_SECS * 1000;
    // A reservation whose request never finished frees itself when its lease ends.
    let abandoned = reserved(h, &owner, "crashed", "fp-a", at(0)).await;
    let during = store.reserve_key(&owner, "crashed", "fp-a", at(lease_ms - 1_000)).await;
    assert_eq!(during.expect("during"), Reservation::InProgress);
    let taken = reserved(h, &owner, "crashed", "fp-b", at(lease_ms)).await;
    // Its late end saves nothing over the new holder's reservation.
    store
        .complete_key(&abandoned, &saved("{}", None), at(lease_ms))
        .await
        .expect("late");
    let now = store
        .reserve_key(&owner, "crashed", "fp-b", at(lease_ms))
        .await
        .expect("now");
    assert_eq!(now, Reservation::InProgress);
    store.release_key(&taken).await.expect("release");
    // A completed key is replayed for 24 hours, then it is as if it had never been used.
    let held = reserved(h, &owner, "done", "fp-a", at(0)).await;
    store
        .complete_key(&held, &saved("{}", None), at(0))
        .await
        .expect("complete");
    let late = store
        .reserve_key(&owner, "done", "fp-a", at(day_ms - 1_000))
        .await
        .expect("late");
    assert_eq!(late, Reservation::Replay(saved("{}", None)));
    reserved(h, &owner, "done", "fp-b", at(day_ms)).await;
}

async fn idempotency_keys_are_scoped_per_user(h: &dyn Harness) {
    let (alice, bob) = (user(&unique("idem-alice")), user(&unique("idem-bob")));
    let store = h.store();
    let held = reserved(h, &alice, "shared-key", "fp-a", at(0)).await;
    // Bob's identical key is his own, whatever alice's state.
    let bobs = reserved(h, &bob, "shared-key", "fp-a", at(0)).await;
    store
        .complete_key(&held, &saved("{\"who\":\"alice\"}", None), at(0))
        .await
        .expect("alice");
    store
        .complete_key(&bobs, &saved("{\"who\":\"bob\"}", None), at(0))
        .await
        .expect("bob");
    let alices = store
        .reserve_key(&alice, "shared-key", "fp-a", at(0))
        .await
        .expect("alice");
    assert_eq!(alices, Reservation::Replay(saved("{\"who\":\"alice\"}", None)));
    let bobs = store.reserve_key(&bob, "shared-key", "fp-a", at(0)).await.expect("bob");
    assert_eq!(bobs, Reservation::Replay(saved("{\"who\":\"bob\"}", None)));
}

async fn concurrent_reservations_of_one_key_reserve_it_once(h: &dyn Harness) {
    let owner = user(&unique("idem-race"));
    let results: Vec<Result<Reservation, StoreError>> = stream::iter(0..16)
        .map(|_| {
            let (store, owner) = (h.store(), &owner);
            async move { store.reserve_key(owner, "raced", "fp-a", at(0)).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let reserved = results
        .iter()
        .filter(|r| matches!(r, Ok(Reservation::Reserved(_))))
        .count();
    let waiting = results
        .iter()
        .filter(|r| matches!(r, Ok(Reservation::InProgress)))
        .count();
    assert_eq!((reserved, waiting), (1, 15), "{results:?}");
}

async fn an_oversized_response_is_not_saved_and_its_key_stays_held(h: &dyn Harness) {
    let owner = user(&unique("idem-large"));
    let store = h.store();
    let held = reserved(h, &owner, "big", "fp-a", at(0)).await;
    let big = saved(&"x".repeat(rules::MAX_SAVED_RESPONSE_BYTES + 1), None);
    let refused = store.complete_key(&held, &big, at(0)).await;
    assert!(matches!(refused, Err(StoreError::TooLarge(_))), "{refused:?}");
    let still = store.reserve_key(&owner, "big", "fp-a", at(0)).await.expect("still");
    assert_eq!(still, Reservation::InProgress);
    let largest = saved(&"x".repeat(rules::MAX_SAVED_RESPONSE_BYTES), None);
    store
        .complete_key(&held, &largest, at(0))
        .await
        .expect("the largest fits");
    let replay = store.reserve_key(&owner, "big", "fp-a", at(0)).await.expect("replay");
    assert_eq!(replay, Reservation::Replay(largest));
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        an_edit_stores_a_new_version_under_the_same_client_id_and_keeps_the_old_one,
        an_append_in_a_turn_names_a_conversation_that_has_the_default_title,
        a_conversation_round_trips_with_every_field,
        listing_puts_pinned_first_then_newest,
        two_hundred_messages_in_one_millisecond_keep_their_order,
        paging_through_a_thousand_conversations_has_no_duplicate_and_no_gap,
        a_tampered_or_foreign_cursor_is_refused,
        creating_an_existing_id_is_a_conflict_and_changes_nothing,
        two_owners_can_each_have_a_conversation_with_the_same_id,
        a_hundred_concurrent_appends_are_all_stored,
        deleting_a_conversation_removes_every_item,
        another_owners_conversation_is_not_found_everywhere,
        unicode_and_large_contents_round_trip_byte_for_byte,
        an_oversized_message_is_refused_before_anything_is_written,
        a_patch_changes_only_what_it_names,
        listing_filters_by_solution,
        clearing_messages_keeps_the_conversation,
        a_repeated_client_id_is_stored_once,
        deleting_the_last_message_repoints_the_preview,
        a_touch_renames_the_conversation_with_the_append,
        analytics_events_are_recorded_and_read_back_by_day,
        the_token_budget_is_exact_under_concurrent_turns,
        a_reservation_that_does_not_fit_is_refused_and_writes_nothing,
        a_reservation_is_settled_down_and_up,
        concurrent_turns_never_overshoot_a_budget_by_more_than_the_reservations_in_flight,
        the_stream_cap_is_exact_under_concurrency,
        a_slot_is_released_when_the_turn_ends_in_error,
        an_expired_lease_is_reclaimed_and_its_late_end_frees_nothing,
        the_turn_rate_limit_is_exact_under_concurrency,
        begin_turn_writes_what_it_admits_and_nothing_when_refused,
        audit_entries_are_listed_newest_first_paged_and_per_user,
        an_idempotency_key_is_reserved_once_then_replayed_and_never_reused,
        a_released_idempotency_key_is_free_again_and_a_stale_holder_changes_nothing,
        idempotency_keys_expire_after_a_day_and_abandoned_reservations_after_their_lease,
        idempotency_keys_are_scoped_per_user,
        concurrent_reservations_of_one_key_reserve_it_once,
        an_oversized_response_is_not_saved_and_its_key_stays_held,
    ]
);

/// A database file written before branches existed (no `parent_id`, no `active_leaf`, a unique
/// client-id index) and before ids were scoped to owners (`conversations.id` its primary key)
/// opens, keeps its messages as one line, takes edits, and is keyed by owner.
#[tokio::test]
async fn an_embedded_database_from_before_branches_is_migrated_in_place() {
    let dir = std::env::temp_dir().join(format!("athena-migrate-{}", unique("db")));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TABLE conversations (id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL, \
             is_pinned INTEGER NOT NULL, is_shared INTEGER NOT NULL, model TEXT NOT NULL, solution_type TEXT, \
             bucket TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_message TEXT, \
             message_count INTEGER NOT NULL DEFAULT 0, rank INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE messages (conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE, \
             id TEXT NOT NULL, client_id TEXT, role TEXT NOT NULL, content TEXT NOT NULL, parts TEXT, model TEXT, \
             usage TEXT, latency_ms INTEGER, finish_reason TEXT, error TEXT, created_at TEXT NOT NULL, \
             PRIMARY KEY (conversation_id, id)) WITHOUT ROWID;
             CREATE UNIQUE INDEX messages_client_id ON messages (conversation_id, client_id) WHERE client_id IS NOT NULL;
             INSERT INTO conversations VALUES ('old', 'alice', 'Old one', 0, 0, 'm', NULL, 'general', \
               '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:02.000Z', 'a1', 2, 1);
             INSERT INTO messages VALUES ('old', '01JH0000000000000000000001', 'ui-1', 'user', 'q1', NULL, NULL, NULL, \
               NULL, NULL, NULL, '2025-01-01T00:00:01.000Z');
             INSERT INTO messages VALUES ('old', '01JH0000000000000000000002', NULL, 'assistant', 'a1', NULL, NULL, NULL, \
               NULL, 'stop', NULL, '2025-01-01T00:00:02.000Z');",
        )
        .expect("old schema");
    }
    let store = EmbeddedStore::open(&path).expect("migrated on open");
    let alice = user("alice");
    let id = ConversationId::parse("old").expect("id");
    let (c, messages) = store.get_conversation_with_messages(&alice, &id).await.expect("read");
    assert_eq!((c.active_leaf.as_ref(), messages.len()), (None, 2));
    assert!(
        messages.iter().all(|m| m.parent_id.is_none()),
        "old messages form one line"
    );
    let ids = IdGenerator::new();
    let mut edited = text(&ids, &c, Role::User, "q1, edited", shared::domain::now());
    edited.client_id = Some(ClientMessageId::parse("ui-1").expect("client id"));
    store
        .begin_turn(&turn(&ids, &c, TurnWrite::Edit { message: edited }, limits(0, 0, 0, 0)))
        .await
        .expect("an edit reuses the client id");
    // The rows are keyed by owner now: each message took its conversation's owner, and another
    // user may hold the same id.
    assert_eq!(store.raw_row_count(&alice, &id).await.expect("count"), 4);
    let mut theirs = conversation(&ids, &user("bob"), at(0));
    theirs.id = id.clone();
    store.create_conversation(&theirs, &[]).await.expect("bob's own 'old'");
    let (_, messages) = store.get_conversation_with_messages(&alice, &id).await.expect("read");
    assert_eq!(messages.len(), 3, "alice's messages stay hers");
    // Projects came with the migration: the old conversation moves into one.
    let p = shared::domain::Project {
        id: ids.project_id(),
        owner: alice.clone(),
        name: "P".to_owned(),
        description: String::new(),
        instructions: String::new(),
        default_model: None,
        default_solution: None,
        created_at: at(0),
        updated_at: at(0),
    };
    store
        .create_project(&p, 100)
        .await
        .expect("a project in a migrated file");
    let patch = ConversationPatch {
        project: Some(Some(p.id.clone())),
        ..ConversationPatch::default()
    };
    let moved = store
        .update_conversation(&alice, &id, &patch, at(1))
        .await
        .expect("move");
    assert_eq!(moved.project_id, Some(p.id));
    drop(store);
    assert!(EmbeddedStore::open(&path).is_ok(), "a migrated file opens again");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store whose endpoint does not answer reports `Unavailable`, not an internal error.
#[tokio::test]
async fn an_unreachable_dynamodb_is_reported_as_unavailable() {
    let store = athena_tests::unreachable_dynamo_store(
        2,
        shared::store::dynamo::Tables {
            conversations: "t".to_owned(),
            events: "e".to_owned(),
        },
    )
    .await;
    let err = store
        .get_conversation(&user("u"), &ConversationId::parse("c").expect("id"))
        .await
        .expect_err("unreachable");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

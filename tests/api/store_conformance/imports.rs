//! Imported conversations (`Conversations::import_conversation`): stored whole whatever their
//! size (on DynamoDB more than one transaction holds past 100 items), marked with their source,
//! listed once, and never written twice.

use super::*;
use shared::domain::ImportSource;

/// `n` messages: a line of `n - 10`, then ten versions of the last reply (siblings), some with
/// a client id (a marker item each on DynamoDB).
fn branched(ids: &IdGenerator, c: &Conversation, n: usize) -> Vec<Message> {
    let mut messages: Vec<Message> = Vec::with_capacity(n);
    for i in 0..n {
        let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
        let mut m = text(ids, c, role, &format!("message {i} Ünïcødé"), at(i as i64));
        let line = n - 10;
        m.parent_id = match i {
            0 => None,
            i if i < line => Some(messages[i - 1].id.clone()),
            _ => Some(messages[line - 2].id.clone()),
        };
        if i % 7 == 0 {
            m.client_id = Some(ClientMessageId::parse(&format!("client-{i}")).expect("client id"));
        }
        messages.push(m);
    }
    messages
}

async fn an_import_of_any_size_is_stored_whole_once_and_marked(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    for n in [12usize, 260] {
        let mut c = conversation(&ids, &alice, at(0));
        c.imported_from = Some(ImportSource::Chatgpt);
        c.title = format!("Imported {n}");
        let messages = branched(&ids, &c, n);
        // The version shown is the first of the ten siblings, not the newest message.
        let leaf = messages[n - 10].clone();
        c.active_leaf = Some(leaf.id.clone());
        store.import_conversation(&c, &messages).await.expect("import");
        let (stored, back) = store.get_conversation_with_messages(&alice, &c.id).await.expect("read");
        assert_eq!(back, messages, "{n}: every message, in order, as given");
        assert_eq!(stored.message_count, n as u64);
        assert_eq!(stored.imported_from, Some(ImportSource::Chatgpt));
        assert_eq!(stored.active_leaf, Some(leaf.id.clone()));
        assert_eq!(
            stored.last_message.as_deref(),
            Some(leaf.content.as_str()),
            "the preview is the leaf's"
        );
        assert_eq!(stored.updated_at, messages[n - 1].created_at);
        let raw = h.raw_count(&c).await;
        let again = store.import_conversation(&c, &messages).await.expect_err("a re-import");
        assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
        assert_eq!(h.raw_count(&c).await, raw, "{n}: nothing written twice");
    }
    let listed = store
        .list_conversations(&alice, &ListConversations::default())
        .await
        .expect("list");
    let titles: Vec<&str> = listed.items.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert!(listed
        .items
        .iter()
        .all(|c| c.imported_from == Some(ImportSource::Chatgpt)));
    // Another owner's import of the same ids is theirs.
    let bob = user(&unique("bob"));
    let mut theirs = listed.items[0].clone();
    theirs.owner = bob.clone();
    store.import_conversation(&theirs, &[]).await.expect("bob's own");
    assert_eq!(
        store
            .get_conversation(&bob, &theirs.id)
            .await
            .expect("bob's")
            .imported_from,
        Some(ImportSource::Chatgpt)
    );
    // A conversation made here has no source.
    let here = created(h, &ids, &alice).await;
    assert_eq!(
        store
            .get_conversation(&alice, &here.id)
            .await
            .expect("get")
            .imported_from,
        None
    );
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        an_import_of_any_size_is_stored_whole_once_and_marked,
        a_conversation_id_is_claimed_by_one_owner_across_all_owners,
        counters_imported_under_a_key_are_added_once
    ]
);

/// DynamoDB: an import interrupted after its hidden conversation was written (some message items
/// missing, the conversation still marked `importing`) is invisible (no read, listing or append
/// sees it), and importing it again finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_large_import_is_hidden_and_the_next_import_finishes_it() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::store::schema::{conversation_pk, META};

    let store = Arc::new(athena_tests::dynamo_store().await);
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let mut c = conversation(&ids, &alice, at(0));
    c.imported_from = Some(ImportSource::Claude);
    let messages = branched(&ids, &c, 140);
    store.import_conversation(&c, &messages).await.expect("import");
    // Undo its end: hidden again (as the import leaves it before it is shown), and the last 40
    // message heads gone.
    let table = &store.tables().conversations;
    let pk = conversation_pk(alice.as_str(), c.id.as_str());
    let hide = |pk: String| {
        store
            .client()
            .update_item()
            .table_name(table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(META.to_owned()))
            .update_expression("SET importing = :yes, gsi1pk = :hidden REMOVE gsi2pk")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(
                ":hidden",
                AttributeValue::S(shared::store::schema::importing_pk(alice.as_str())),
            )
            .send()
    };
    hide(pk.clone()).await.expect("mark");
    for m in &messages[100..] {
        store
            .client()
            .delete_item()
            .table_name(table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key(
                "sk",
                AttributeValue::S(shared::store::schema::message_sk(m.id.as_str())),
            )
            .send()
            .await
            .expect("delete");
    }
    let hidden = store.get_conversation(&alice, &c.id).await.expect_err("hidden");
    assert!(matches!(hidden, StoreError::NotFound), "{hidden:?}");
    let listed = store
        .list_conversations(&alice, &ListConversations::default())
        .await
        .expect("list");
    assert!(listed.items.is_empty(), "not listed while importing");
    let late = text(&ids, &c, Role::User, "late", at(500));
    let appended = store.append_message(&alice, &late, &Touch::default()).await;
    assert!(matches!(appended, Err(StoreError::NotFound)), "{appended:?}");
    // The same import again: finished, nothing doubled.
    store.import_conversation(&c, &messages).await.expect("resumed");
    let (stored, back) = store.get_conversation_with_messages(&alice, &c.id).await.expect("read");
    assert_eq!(back, messages);
    assert_eq!(stored.message_count, 140);
    let listed = store
        .list_conversations(&alice, &ListConversations::default())
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    let again = store.import_conversation(&c, &messages).await.expect_err("done");
    assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
    // An import interrupted for good is still its owner's: erasing the account finds it.
    let mut other = conversation(&ids, &alice, at(1));
    other.imported_from = Some(ImportSource::Claude);
    let more = branched(&ids, &other, 120);
    store.import_conversation(&other, &more).await.expect("import");
    let other_pk = conversation_pk(alice.as_str(), other.id.as_str());
    hide(other_pk.clone()).await.expect("mark");
    let erased = store.erase_user(&alice, at(600)).await.expect("erase");
    assert_eq!(erased.conversations, 2, "the shown one and the hidden one");
    for pk in [pk, other_pk] {
        let left = store
            .client()
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .consistent_read(true)
            .send()
            .await
            .expect("query");
        assert_eq!(left.count, 0, "nothing of the conversation is left");
    }
}

/// `Conversations::claim_conversation_id` (athena-migrate): an id is claimed once across every
/// owner; its owner may claim it again (a rerun), another owner is refused and changes nothing.
async fn a_conversation_id_is_claimed_by_one_owner_across_all_owners(h: &dyn Harness) {
    let store = h.store();
    let alice = user(&unique("alice"));
    let bob = user(&unique("bob"));
    let id = ConversationId::parse(&unique("clx0seedid")).expect("id");
    store
        .claim_conversation_id(&alice, &id)
        .await
        .expect("unclaimed: alice's now");
    store
        .claim_conversation_id(&alice, &id)
        .await
        .expect("alice's again: a rerun");
    let refused = store
        .claim_conversation_id(&bob, &id)
        .await
        .expect_err("alice holds it");
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused:?}");
    // The refusal wrote nothing: the id is still alice's, and bob's own ids are unaffected.
    store.claim_conversation_id(&alice, &id).await.expect("still alice's");
    let other = ConversationId::parse(&unique("clx0other")).expect("id");
    store.claim_conversation_id(&bob, &other).await.expect("bob's own id");
    let refused = store
        .claim_conversation_id(&alice, &other)
        .await
        .expect_err("bob holds it");
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused:?}");
    // Who holds an id, read without claiming it (the dry run's check).
    assert_eq!(
        store.conversation_id_claimant(&id).await.expect("read"),
        Some(alice.clone())
    );
    assert_eq!(
        store.conversation_id_claimant(&other).await.expect("read"),
        Some(bob.clone())
    );
    let free = ConversationId::parse(&unique("clx0free")).expect("id");
    assert_eq!(store.conversation_id_claimant(&free).await.expect("read"), None);
}

/// `Stats::import_stats` (athena-migrate's counters rebuilt from history): the rows of a key are
/// added once, atomically; another key adds again; too many rows are refused with nothing written.
async fn counters_imported_under_a_key_are_added_once(h: &dyn Harness) {
    use shared::domain::StatsDelta;
    use shared::store::StatsUpdate;
    let store = h.store();
    let model = unique("model");
    let row = |day: &str, solution: &str, requests: u64| StatsUpdate {
        day: day.to_owned(),
        solution: solution.to_owned(),
        model: model.clone(),
        delta: StatsDelta {
            requests,
            messages: requests * 2,
            conversations: 1,
            users: std::collections::BTreeSet::from(["u1".to_owned()]),
            ..StatsDelta::default()
        },
    };
    let rows = vec![row("2025-10-09", "manufacturing", 2), row("2025-10-10", "general", 5)];
    let key = unique("prisma");
    let requests = || async {
        let all = store.stats_between("2025-10-09", "2025-10-10").await.expect("stats");
        all.iter()
            .filter(|r| r.model == model)
            .map(|r| (r.day.clone(), r.solution.clone(), r.stats.requests, r.stats.messages))
            .collect::<Vec<_>>()
    };
    assert!(!store.stats_imported(&key).await.expect("read"));
    assert!(store.import_stats(&key, &rows).await.expect("import"));
    assert!(store.stats_imported(&key).await.expect("read"));
    let once = vec![
        ("2025-10-09".to_owned(), "manufacturing".to_owned(), 2, 4),
        ("2025-10-10".to_owned(), "general".to_owned(), 5, 10),
    ];
    assert_eq!(requests().await, once);
    assert!(
        !store.import_stats(&key, &rows).await.expect("again"),
        "the same key: nothing"
    );
    assert_eq!(requests().await, once, "not added twice");
    let other = unique("prisma");
    assert!(store.import_stats(&other, &rows[..1]).await.expect("another key"));
    assert_eq!(requests().await[0].2, 4, "another key adds");
    let third = unique("prisma");
    let many = vec![rows[0].clone(); shared::store::ports::MAX_IMPORTED_STATS_ROWS + 1];
    let refused = store.import_stats(&third, &many).await.expect_err("too many rows");
    assert!(matches!(refused, StoreError::TooLarge(_)), "{refused:?}");
    assert!(!store.stats_imported(&third).await.expect("read"), "nothing written");
    assert_eq!(requests().await[0].2, 4);
}

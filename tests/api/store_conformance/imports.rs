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
    [an_import_of_any_size_is_stored_whole_once_and_marked]
);

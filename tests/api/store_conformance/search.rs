//! Full-text search at the store: the index follows every write and delete of messages and
//! titles, ranks title hits first, then by relevance, then newest, finds a word of one message
//! among hundreds, and never reads another owner's index. On DynamoDB the index is written by
//! the stream consumer, driven with the real records of moto's stream (`Indexed::settle`).

use super::*;
use athena_tests::indexed::{Indexed, IntoIndexed};
use shared::store::{IndexHit, IndexQuery};

fn terms(q: &str) -> Vec<String> {
    shared::domain::text::query_terms(q).expect("a valid query")
}

pub(super) async fn hits(store: &dyn Store, owner: &UserId, q: &str) -> Vec<IndexHit> {
    store
        .search_index(
            owner,
            &IndexQuery {
                terms: terms(q),
                solution: None,
                offset: 0,
                limit: 1000,
            },
        )
        .await
        .expect("search")
}

pub(super) fn message_ids(hits: &[IndexHit]) -> Vec<String> {
    hits.iter()
        .map(|h| {
            h.message_id
                .as_ref()
                .map_or_else(|| format!("title:{}", h.conversation_id), ToString::to_string)
        })
        .collect()
}

async fn append(store: &dyn Store, owner: &UserId, m: &Message) {
    store.append_message(owner, m, &Touch::default()).await.expect("append");
}

/// The scaled-down "9,000th of 10,000 messages" (the benchmark does 10,000): a word of one
/// message among 300 is found, with its text; a word of every message pages through all of them.
async fn a_word_of_one_message_among_hundreds_is_found(ix: Indexed) {
    let store = ix.store.as_ref();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let mut needle = None;
    let mut old_one = None;
    for k in 0..3 {
        let c = conversation(&ids, &alice, at(k));
        store.create_conversation(&c, &[]).await.expect("create");
        for i in 0..100 {
            let n = k * 100 + i + 1;
            let body = if n == 270 {
                format!("message {n}: the Zephyrine valve leaks again, common issue")
            } else if n == 30 {
                // As long as the others (equal relevance), with a rare word of its own.
                format!("message {n}: quillwort reading nominal, common issue")
            } else {
                format!("message {n}: pressure reading nominal, common issue")
            };
            let m = text(&ids, &c, Role::User, &body, at(1000 + n));
            if n == 270 {
                needle = Some(m.id.clone());
            }
            if n == 30 {
                old_one = Some(m.id.to_string());
            }
            append(store, &alice, &m).await;
        }
    }
    ix.settle().await;
    let found = hits(store, &alice, "zephyrine").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].message_id, needle);
    assert_eq!(found[0].role, Some(Role::User));
    assert!(found[0].text.as_deref().is_some_and(|t| t.contains("Zephyrine valve")));
    assert!(
        hits(store, &alice, "zephyrine pressure").await.is_empty(),
        "every word must match"
    );
    assert_eq!(hits(store, &alice, "VALVE zephyrine").await.len(), 1);
    // A rare word with words of every message (on DynamoDB more than a first round's 200
    // postings: the common words are looked up for the rare word's documents only) and with a
    // word of every other message (absent from the rare word's).
    for q in ["common zephyrine", "issue zephyrine common", "zephyrine message"] {
        let found = hits(store, &alice, q).await;
        assert_eq!(
            message_ids(&found),
            vec![needle.as_ref().expect("needle").to_string()],
            "{q}"
        );
    }
    assert!(hits(store, &alice, "nominal zephyrine").await.is_empty());
    // The same for a rare word of an old message (on DynamoDB beyond the common words' first
    // round: their postings of it are read by key).
    for q in ["quillwort common", "nominal reading quillwort"] {
        let found = hits(store, &alice, q).await;
        assert_eq!(message_ids(&found), vec![old_one.clone().expect("old")], "{q}");
    }
    assert!(hits(store, &alice, "quillwort pressure").await.is_empty());
    // A word of every message: pages of the same ranking, newest first (equal relevance).
    let common = hits(store, &alice, "common").await;
    assert_eq!(common.len(), 300);
    // The needle's message is longer (BM25 weighs a match in a longer text less): last; the
    // others score the same and come newest first.
    assert_eq!(common[299].message_id, needle);
    let newest_first = message_ids(&common[..299]);
    let mut sorted = newest_first.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(newest_first, sorted, "equal scores: newest first");
    let page = store
        .search_index(
            &alice,
            &IndexQuery {
                terms: terms("common"),
                solution: None,
                offset: 290,
                limit: 20,
            },
        )
        .await
        .expect("page");
    assert_eq!(message_ids(&page), message_ids(&common[290..]));
}

/// Title hits first, then more occurrences (relevance), then the newest.
async fn titles_rank_first_then_relevance_then_recency(ix: Indexed) {
    let store = ix.store.as_ref();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let mut titled = conversation(&ids, &alice, at(0));
    titled.title = "Budget planning".to_owned();
    let plain = conversation(&ids, &alice, at(1));
    store.create_conversation(&titled, &[]).await.expect("create");
    store.create_conversation(&plain, &[]).await.expect("create");
    let once_old = text(&ids, &plain, Role::User, "the budget is set for this year", at(10));
    let thrice = text(
        &ids,
        &plain,
        Role::Assistant,
        "budget budget budget for this year",
        at(11),
    );
    let once_new = text(&ids, &plain, Role::User, "the budget is set for next year", at(12));
    for m in [&once_old, &thrice, &once_new] {
        append(store, &alice, m).await;
    }
    ix.settle().await;
    let found = hits(store, &alice, "budget").await;
    assert_eq!(
        message_ids(&found),
        vec![
            format!("title:{}", titled.id),
            thrice.id.to_string(),
            once_new.id.to_string(),
            once_old.id.to_string()
        ]
    );
    assert_eq!((found[0].text.as_deref(), found[0].role), (None, None));
    assert_eq!(found[1].role, Some(Role::Assistant));
    assert_eq!(found[1].created_at, Some(at(11)));
    // The default title is not indexed: "conversation" finds nothing.
    assert!(hits(store, &alice, "new conversation").await.is_empty());
}

/// Another owner's index is never read, whatever the ids.
async fn another_owners_index_is_never_read(ix: Indexed) {
    let store = ix.store.as_ref();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let mut c = conversation(&ids, &alice, at(0));
    c.title = "Secret merger".to_owned();
    store.create_conversation(&c, &[]).await.expect("create");
    append(
        store,
        &alice,
        &text(&ids, &c, Role::User, "the secret merger plan", at(1)),
    )
    .await;
    let mut same_id = conversation(&ids, &bob, at(0));
    same_id.id = c.id.clone();
    store.create_conversation(&same_id, &[]).await.expect("bob's own");
    ix.settle().await;
    assert_eq!(hits(store, &alice, "merger").await.len(), 2);
    assert!(hits(store, &bob, "merger").await.is_empty());
    assert!(hits(store, &bob, "secret").await.is_empty());
}

/// Every path that removes or changes text updates the index: a deleted message, cleared
/// messages, a renamed and a deleted conversation.
async fn removed_and_changed_text_leaves_the_index(ix: Indexed) {
    let store = ix.store.as_ref();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let mut c = conversation(&ids, &alice, at(0));
    c.title = "Gearbox overhaul".to_owned();
    let first = text(&ids, &c, Role::User, "gearbox noise at startup", at(1));
    store
        .create_conversation(&c, std::slice::from_ref(&first))
        .await
        .expect("create");
    let second = text(&ids, &c, Role::Assistant, "check the gearbox oil", at(2));
    append(store, &alice, &second).await;
    ix.settle().await;
    assert_eq!(hits(store, &alice, "gearbox").await.len(), 3);

    store
        .delete_message(&alice, &c.id, &second.id)
        .await
        .expect("delete one");
    let renamed = ConversationPatch {
        title: Some("Pump inspection".to_owned()),
        ..ConversationPatch::default()
    };
    store
        .update_conversation(&alice, &c.id, &renamed, at(3))
        .await
        .expect("rename");
    ix.settle().await;
    assert_eq!(
        message_ids(&hits(store, &alice, "gearbox").await),
        vec![first.id.to_string()]
    );
    assert!(hits(store, &alice, "oil").await.is_empty());
    assert_eq!(
        message_ids(&hits(store, &alice, "pump").await),
        vec![format!("title:{}", c.id)]
    );

    store.clear_messages(&alice, &c.id).await.expect("clear");
    ix.settle().await;
    assert!(hits(store, &alice, "gearbox").await.is_empty());
    append(store, &alice, &text(&ids, &c, Role::User, "gearbox again", at(4))).await;
    store.delete_conversation(&alice, &c.id).await.expect("delete");
    ix.settle().await;
    assert!(hits(store, &alice, "gearbox").await.is_empty());
    assert!(
        hits(store, &alice, "pump").await.is_empty(),
        "the title's postings went with it"
    );
}

athena_tests::on_both_stores!(
    |store| store.indexed().await,
    [
        a_word_of_one_message_among_hundreds_is_found,
        titles_rank_first_then_relevance_then_recency,
        another_owners_index_is_never_read,
        removed_and_changed_text_leaves_the_index,
    ]
);

/// A database file made before search existed gets its index filled from what it holds.
#[tokio::test]
async fn an_embedded_database_from_before_search_is_indexed_on_open() {
    let dir = std::env::temp_dir().join(format!("athena-migrate-{}", unique("search")));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("old.db");
    let ids = IdGenerator::new();
    let alice = user("alice");
    let mut c = conversation(&ids, &alice, at(0));
    c.title = "Kiln temperatures".to_owned();
    let m = text(&ids, &c, Role::User, "the kiln overheats", at(1));
    {
        let store = EmbeddedStore::open(&path).expect("open");
        store
            .create_conversation(&c, std::slice::from_ref(&m))
            .await
            .expect("create");
    }
    {
        // What a file of the previous version holds: no index, no triggers.
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(
            "DROP TRIGGER messages_search_ai; DROP TRIGGER messages_search_au; DROP TRIGGER messages_search_ad;
             DROP TRIGGER conversations_search_ai; DROP TRIGGER conversations_search_au;
             DROP TRIGGER conversations_search_ad; DROP TABLE search_fts; DROP TABLE search_docs;",
        )
        .expect("back to the previous schema");
    }
    let store = EmbeddedStore::open(&path).expect("migrated on open");
    assert_eq!(
        message_ids(&hits(&store, &alice, "kiln").await),
        vec![format!("title:{}", c.id), m.id.to_string()]
    );
    append(
        &store,
        &alice,
        &text(&ids, &c, Role::Assistant, "lower the kiln setpoint", at(2)),
    )
    .await;
    assert_eq!(
        hits(&store, &alice, "kiln").await.len(),
        3,
        "and kept in sync from then on"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

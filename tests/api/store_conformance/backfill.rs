//! The search index's backfill on DynamoDB (`DynamoStore::backfill_scan_page`,
//! `backfill_owner`): the same writes made on two tables, one indexed by the stream consumer
//! from moto's real stream records, the other never indexed (its stream is simply not read),
//! then backfilled: both end with exactly the same postings and the same ranking; a rerun
//! changes nothing; one user's backfill touches only their postings.

use super::search::{hits, message_ids};
use super::*;
use athena_tests::indexed::{raw_postings, Indexed, IntoIndexed};
use shared::domain::MessageId;
use shared::store::dynamo::{Backfilled, ScanPosition};

/// A history of two users, built once and written on each table (the same ids on both).
struct History {
    alice: UserId,
    bob: UserId,
    kiln: Conversation,
    first: Vec<Message>,
    appended: Vec<Message>,
    gone: (Conversation, Message),
    trashed: (Conversation, Message),
    cleared: (Conversation, Message),
    theirs: (Conversation, Message),
    /// Alice's "kiln" messages, most relevant first: three times in a short text, then once in
    /// two texts of equal length (the newer first), then once in a message over one item.
    ranked: Vec<MessageId>,
}

fn titled(ids: &IdGenerator, owner: &UserId, title: &str, at_ms: i64, body: &str) -> (Conversation, Message) {
    let mut c = conversation(ids, owner, at(at_ms));
    c.title = title.to_owned();
    let m = text(ids, &c, Role::User, body, at(at_ms + 1));
    (c, m)
}

fn history(ids: &IdGenerator, alice: &UserId, bob: &UserId) -> History {
    let mut kiln = conversation(ids, alice, at(0));
    kiln.title = "Furnace notes".to_owned();
    let strong = text(ids, &kiln, Role::User, "kiln kiln kiln", at(1));
    let older = text(ids, &kiln, Role::Assistant, "the kiln overheats at night again", at(2));
    let newer = text(ids, &kiln, Role::User, "why does the kiln overheat often", at(3));
    let mut big = "kiln log".to_owned();
    while big.len() < shared::store::dynamo::CHUNK_BYTES + 10_000 {
        big.push_str(" reading nominal");
    }
    let chunked = text(ids, &kiln, Role::Assistant, &big, at(4));
    History {
        alice: alice.clone(),
        bob: bob.clone(),
        ranked: vec![
            strong.id.clone(),
            newer.id.clone(),
            older.id.clone(),
            chunked.id.clone(),
        ],
        first: vec![strong, older],
        appended: vec![newer, chunked],
        kiln,
        gone: titled(ids, alice, "Kiln warranty", 10, "kiln warranty claim"),
        trashed: titled(ids, alice, "Kiln trash", 20, "kiln in the trash"),
        cleared: titled(ids, alice, "Cleared", 30, "kiln cleared away"),
        theirs: titled(ids, bob, "Bob's kiln", 40, "kiln glaze zirconium"),
    }
}

/// Writes the history on `store`: a renamed title, a chunked message, a conversation deleted for
/// good, one in the trash, one cleared, another user's.
async fn write_history(store: &dyn Store, h: &History) {
    store.create_conversation(&h.kiln, &h.first).await.expect("create");
    for m in &h.appended {
        store
            .append_message(&h.alice, m, &Touch::default())
            .await
            .expect("append");
    }
    // Renamed: the stream sees an insert then a modify; the backfill sees the final title.
    let patch = ConversationPatch {
        title: Some("Kiln temperatures".to_owned()),
        ..ConversationPatch::default()
    };
    store
        .update_conversation(&h.alice, &h.kiln.id, &patch, at(5))
        .await
        .expect("rename");
    for (c, m) in [&h.gone, &h.trashed, &h.cleared, &h.theirs] {
        store
            .create_conversation(c, std::slice::from_ref(m))
            .await
            .expect("create");
    }
    store
        .delete_conversation(&h.alice, &h.gone.0.id)
        .await
        .expect("delete for good");
    store
        .trash_conversation(&h.alice, &h.trashed.0.id, at(22))
        .await
        .expect("trash");
    store.clear_messages(&h.alice, &h.cleared.0.id).await.expect("clear");
}

/// Every segment of a parallel Scan, page by page (small pages: many checkpoints), from the
/// start.
async fn backfill_table(store: &DynamoStore, segments: u32) -> Backfilled {
    let mut total = Backfilled::default();
    for segment in 0..segments {
        let mut at: Option<ScanPosition> = None;
        loop {
            let page = store
                .backfill_scan_page(segment, segments, at.as_ref(), Some(4))
                .await
                .expect("a backfill page");
            total.add(&page.done);
            match page.next {
                Some(next) => at = Some(next),
                None => break,
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_writes_exactly_the_postings_the_stream_writes() {
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let streamed: Indexed = athena_tests::dynamo_store().await.indexed().await;
    let unindexed = Arc::new(athena_tests::dynamo_store().await);
    let h = history(&ids, &alice, &bob);
    write_history(streamed.store.as_ref(), &h).await;
    write_history(unindexed.as_ref(), &h).await;
    streamed.settle().await;
    let expected = raw_postings(streamed.dynamo.as_ref().expect("dynamo").0.as_ref()).await;
    assert!(!expected.is_empty());

    // Never indexed: nothing found.
    assert!(raw_postings(&unindexed).await.is_empty());
    assert!(hits(unindexed.as_ref(), &h.alice, "kiln").await.is_empty());

    let first = backfill_table(&unindexed, 3).await;
    assert_eq!(
        raw_postings(&unindexed).await,
        expected,
        "the stream's postings, item for item"
    );
    assert_eq!(first.postings, expected.len() as u64);
    assert!(
        first.items_read > first.documents,
        "every item is scanned, some are indexed"
    );

    // Ranking as usual: the title hit, then relevance, then the newest; the trashed
    // conversation's postings exist (as the stream's do) and the deleted one has none.
    let found = hits(unindexed.as_ref(), &h.alice, "kiln").await;
    assert_eq!(found, hits(streamed.store.as_ref(), &h.alice, "kiln").await);
    let mut wanted = vec![format!("title:{}", h.trashed.0.id), format!("title:{}", h.kiln.id)];
    wanted.sort_by(|a, b| b.cmp(a));
    let titles: Vec<String> = message_ids(&found)
        .into_iter()
        .filter(|k| k.starts_with("title:"))
        .collect();
    let mut sorted_titles = titles.clone();
    sorted_titles.sort_by(|a, b| b.cmp(a));
    assert_eq!(sorted_titles, wanted, "{found:?}");
    let ours: Vec<String> = message_ids(&found)
        .into_iter()
        .filter(|k| h.ranked.iter().any(|m| m.as_str() == k))
        .collect();
    assert_eq!(ours, h.ranked.iter().map(ToString::to_string).collect::<Vec<_>>());
    assert!(found.iter().all(|hit| hit.conversation_id != h.gone.0.id));
    let gone_id = h.gone.0.id.to_string();
    assert!(raw_postings(&unindexed)
        .await
        .iter()
        .all(|p| !p.get("sk").is_some_and(|sk| sk.contains(&gone_id))));

    // Another user's words are indexed under their own owner only.
    assert!(hits(unindexed.as_ref(), &h.alice, "zirconium").await.is_empty());
    assert_eq!(hits(unindexed.as_ref(), &h.bob, "zirconium").await.len(), 1);
    let bob_prefix = format!("S(\"SRCH#{}#", h.bob);
    let zirconium: Vec<_> = raw_postings(&unindexed)
        .await
        .into_iter()
        .filter(|p| p.get("pk").is_some_and(|pk| pk.ends_with("#zirconium\")")))
        .collect();
    assert_eq!(zirconium.len(), 1);
    assert!(zirconium[0]["pk"].contains(&bob_prefix), "{zirconium:?}");

    // A rerun writes the same items: nothing changes.
    let second = backfill_table(&unindexed, 2).await;
    assert_eq!(second.postings, first.postings);
    assert_eq!(raw_postings(&unindexed).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_backfill_indexes_only_their_conversations() {
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let store = athena_tests::dynamo_store().await;
    let h = history(&ids, &alice, &bob);
    write_history(&store, &h).await;
    let done = store.backfill_owner(&h.alice).await.expect("backfill alice");
    assert!(done.postings > 0);
    let postings = raw_postings(&store).await;
    assert_eq!(postings.len() as u64, done.postings);
    let alice_prefix = format!("S(\"SRCH#{}#", h.alice);
    assert!(
        postings.iter().all(|p| p["pk"].starts_with(&alice_prefix)),
        "{postings:?}"
    );
    // Two titles, the ranked messages and the trashed conversation's message.
    assert_eq!(hits(&store, &h.alice, "kiln").await.len(), 2 + h.ranked.len() + 1);
    assert!(
        hits(&store, &h.bob, "zirconium").await.is_empty(),
        "bob's are not indexed yet"
    );
    store.backfill_owner(&h.bob).await.expect("backfill bob");
    assert_eq!(hits(&store, &h.bob, "zirconium").await.len(), 1);
}

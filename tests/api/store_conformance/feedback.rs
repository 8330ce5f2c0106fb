//! Reactions and bookmarks: one reaction per user and message (a second replaces the first and
//! keeps its creation time), read per user and conversation; bookmarks unique per message,
//! listed newest first with paging, removed with their conversation (the owner's) and, with
//! reactions, when the conversation goes; the batch title read sees only live conversations.

use super::*;
use shared::domain::MessageId;
use shared::store::{Bookmark, Reaction, Thumb};

fn reaction(c: &Conversation, m: &Message, who: &UserId, value: Thumb, at: Timestamp) -> Reaction {
    Reaction {
        conversation_id: c.id.clone(),
        message_id: m.id.clone(),
        user: who.clone(),
        value,
        comment: Some("Ünïcødé 🚀 comment".to_owned()),
        solution: "maintenance".to_owned(),
        model: "us.anthropic.claude-haiku-4-5-20251001-v1:0".to_owned(),
        created_at: at,
        updated_at: at,
    }
}

fn bookmark(ids: &IdGenerator, c: &Conversation, m: &MessageId, who: &UserId, note: Option<&str>) -> Bookmark {
    Bookmark {
        id: ids.next_ulid(),
        user: who.clone(),
        owner: c.owner.clone(),
        conversation_id: c.id.clone(),
        message_id: m.clone(),
        note: note.map(str::to_owned),
        title: c.title.clone(),
        excerpt: "excerpt".to_owned(),
        created_at: at(0),
    }
}

async fn a_reaction_is_one_per_user_and_message_and_replaced_in_place(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let c = conversation(&ids, &alice, at(0));
    let (q, a1, a2) = (
        text(&ids, &c, Role::User, "q", at(1)),
        text(&ids, &c, Role::Assistant, "a1", at(2)),
        text(&ids, &c, Role::Assistant, "a2", at(3)),
    );
    store
        .create_conversation(&c, &[q, a1.clone(), a2.clone()])
        .await
        .expect("create");
    let first = reaction(&c, &a1, &alice, Thumb::Up, at(10));
    assert_eq!(store.put_reaction(&alice, &first).await.expect("put"), None);
    let mut second = reaction(&c, &a1, &alice, Thumb::Down, at(20));
    second.comment = None;
    let replaced = store.put_reaction(&alice, &second).await.expect("replace");
    assert_eq!(replaced, Some(first.clone()), "the replaced reaction is returned");
    let other = reaction(&c, &a2, &alice, Thumb::Up, at(30));
    store.put_reaction(&alice, &other).await.expect("put");
    // Another user's reaction in the same conversation (a shared conversation, later).
    let bobs = reaction(&c, &a1, &bob, Thumb::Up, at(40));
    store.put_reaction(&alice, &bobs).await.expect("put");
    let mine = store.reactions(&alice, &c.id, &alice).await.expect("read");
    let kept = Reaction {
        created_at: at(10),
        ..second.clone()
    };
    assert_eq!(
        mine,
        vec![kept.clone(), other.clone()],
        "one per message, first createdAt kept"
    );
    assert_eq!(store.reactions(&alice, &c.id, &bob).await.expect("read"), vec![bobs]);
    // Keyed by the conversation's owner: under another owner's key there is nothing.
    assert_eq!(store.reactions(&bob, &c.id, &alice).await.expect("read"), vec![]);
    let removed = store
        .delete_reaction(&alice, &c.id, &a1.id, &alice)
        .await
        .expect("delete");
    assert_eq!(removed, Some(kept));
    let again = store
        .delete_reaction(&alice, &c.id, &a1.id, &alice)
        .await
        .expect("delete again");
    assert_eq!(again, None, "a second delete finds nothing");
    assert_eq!(store.reactions(&alice, &c.id, &alice).await.expect("read"), vec![other]);
    // Clearing the messages and deleting the conversation take the reactions with them.
    store.clear_messages(&alice, &c.id).await.expect("clear");
    assert_eq!(store.reactions(&alice, &c.id, &alice).await.expect("read"), vec![]);
    assert_eq!(store.reactions(&alice, &c.id, &bob).await.expect("read"), vec![]);
    store
        .put_reaction(&alice, &reaction(&c, &a2, &alice, Thumb::Up, at(50)))
        .await
        .expect("put");
    store.delete_conversation(&alice, &c.id).await.expect("delete");
    assert_eq!(h.raw_count(&c).await, 0, "nothing of the conversation is left");
    // A reaction arriving after the delete (it read the conversation before) is refused and
    // leaves nothing behind.
    let late = store
        .put_reaction(&alice, &reaction(&c, &a2, &alice, Thumb::Down, at(60)))
        .await
        .expect_err("the conversation is gone");
    assert!(matches!(late, StoreError::NotFound), "{late:?}");
    assert_eq!(h.raw_count(&c).await, 0, "no orphaned reaction");
}

async fn bookmarks_are_unique_per_message_listed_newest_first_and_go_with_their_conversation(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let c = conversation(&ids, &alice, at(0));
    let d = conversation(&ids, &alice, at(1));
    let msgs: Vec<Message> = (0..3)
        .map(|i| text(&ids, &c, Role::User, &format!("m{i}"), at(i)))
        .collect();
    store.create_conversation(&c, &msgs).await.expect("create");
    let dm = text(&ids, &d, Role::Assistant, "d", at(5));
    store
        .create_conversation(&d, std::slice::from_ref(&dm))
        .await
        .expect("create");
    let mut made = Vec::new();
    for m in &msgs {
        let b = bookmark(&ids, &c, &m.id, &alice, None);
        assert_eq!(store.put_bookmark(&b).await.expect("put"), b);
        made.push(b);
    }
    let on_d = bookmark(&ids, &d, &dm.id, &alice, Some("note"));
    store.put_bookmark(&on_d).await.expect("put");
    // Bookmarking a message again replaces the note, keeps the id and the place.
    let again = bookmark(&ids, &c, &msgs[0].id, &alice, Some("Ünïcødé 🚀 note"));
    let stored = store.put_bookmark(&again).await.expect("again");
    let first = Bookmark {
        note: Some("Ünïcødé 🚀 note".to_owned()),
        ..made[0].clone()
    };
    assert_eq!(stored, first);
    let all = store.list_bookmarks(&alice, None, 10).await.expect("list");
    assert_eq!(
        all,
        vec![on_d.clone(), made[2].clone(), made[1].clone(), first.clone()],
        "newest first, one per message"
    );
    let page = store.list_bookmarks(&alice, None, 2).await.expect("page");
    assert_eq!(page, all[..2].to_vec());
    let next = store
        .list_bookmarks(&alice, Some(&page[1].id), 2)
        .await
        .expect("next page");
    assert_eq!(next, all[2..].to_vec());
    assert_eq!(store.list_bookmarks(&bob, None, 10).await.expect("list"), vec![]);
    // Bob's bookmark lives under Bob (a shared conversation, later), recording Alice as owner.
    let bobs = bookmark(&ids, &c, &msgs[1].id, &bob, None);
    store.put_bookmark(&bobs).await.expect("put");
    assert!(!store
        .delete_bookmark(&bob, &alice, &c.id, &msgs[0].id)
        .await
        .expect("delete"));
    assert!(store
        .delete_bookmark(&alice, &alice, &c.id, &msgs[1].id)
        .await
        .expect("delete"));
    assert!(!store
        .delete_bookmark(&alice, &alice, &c.id, &msgs[1].id)
        .await
        .expect("delete again"));
    assert_eq!(
        store.list_bookmarks(&bob, None, 10).await.expect("list"),
        vec![bobs.clone()]
    );
    // The batch title read sees live conversations only.
    let keys = vec![
        (alice.clone(), c.id.clone()),
        (alice.clone(), d.id.clone()),
        (bob.clone(), c.id.clone()),
    ];
    let titles = store.conversation_titles(&keys).await.expect("titles");
    assert_eq!(titles.len(), 2, "{titles:?}");
    store.trash_conversation(&alice, &d.id, at(100)).await.expect("trash");
    let titles = store.conversation_titles(&keys).await.expect("titles");
    assert_eq!(
        titles.keys().cloned().collect::<Vec<_>>(),
        vec![(alice.clone(), c.id.clone())],
        "a trashed conversation is not readable"
    );
    // Deleting the conversation removes its owner's bookmarks on it, not the others'.
    store.delete_conversation(&alice, &c.id).await.expect("delete");
    assert_eq!(store.list_bookmarks(&alice, None, 10).await.expect("list"), vec![on_d]);
    assert_eq!(store.list_bookmarks(&bob, None, 10).await.expect("list"), vec![bobs]);
    // Erasing Bob removes his bookmarks.
    store.erase_user(&bob, shared::domain::now()).await.expect("erase");
    assert_eq!(store.list_bookmarks(&bob, None, 10).await.expect("list"), vec![]);
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        a_reaction_is_one_per_user_and_message_and_replaced_in_place,
        bookmarks_are_unique_per_message_listed_newest_first_and_go_with_their_conversation,
    ]
);

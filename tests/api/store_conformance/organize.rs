//! Organising: folders (per owner, nested one level, deleted with their subfolders, their
//! conversations moved out on every shelf), tags (normalised by the API, listed with counts,
//! filtered on), the archive and the trash (restorable, hidden from every other read and write,
//! due for purging after 30 days), and listings that combine every filter with the same order
//! and cursors on both stores.

use super::*;
use shared::domain::{Folder, FolderId, Shelf, TRASH_DAYS};
use shared::store::{FolderDeleted, TagCount};

fn folder(ids: &IdGenerator, owner: &UserId, name: &str, parent: Option<&Folder>, at: Timestamp) -> Folder {
    Folder {
        id: ids.folder_id(),
        owner: owner.clone(),
        name: name.to_owned(),
        parent_id: parent.map(|p| p.id.clone()),
        created_at: at,
        updated_at: at,
    }
}

fn query(shelf: Shelf) -> ListConversations {
    ListConversations {
        shelf,
        ..ListConversations::default()
    }
}

/// Every page of a listing, ids in order (pages of `limit`).
async fn all_ids(store: &dyn Store, owner: &UserId, q: &ListConversations, limit: u32) -> Vec<ConversationId> {
    let mut q = q.clone();
    q.limit = Some(limit);
    let mut out = Vec::new();
    loop {
        let page = store.list_conversations(owner, &q).await.expect("list");
        out.extend(page.items.into_iter().map(|c| c.id));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

async fn patch(store: &dyn Store, owner: &UserId, c: &Conversation, p: ConversationPatch, t: i64) -> Conversation {
    store.update_conversation(owner, &c.id, &p, at(t)).await.expect("patch")
}

async fn folders_are_their_owners_and_nest_and_delete_with_their_subfolders(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let plant = folder(&ids, &alice, "Plant A", None, at(0));
    let line = folder(&ids, &alice, "Line 3", Some(&plant), at(1));
    let other = folder(&ids, &alice, "Other", None, at(2));
    for f in [&plant, &line, &other] {
        store.create_folder(f, 10).await.expect("create");
    }
    assert_eq!(store.get_folder(&alice, &line.id).await.expect("get"), line);
    assert_eq!(
        store.list_folders(&alice).await.expect("list"),
        vec![plant.clone(), line.clone(), other.clone()]
    );
    assert!(matches!(
        store.create_folder(&plant, 10).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_folder(&folder(&ids, &alice, "x", None, at(3)), 3).await,
        Err(StoreError::Conflict(m)) if m.contains("at most 3 folders")
    ));
    // Bob sees and touches nothing of Alice's.
    assert_eq!(store.list_folders(&bob).await.expect("list"), vec![]);
    assert!(matches!(
        store.get_folder(&bob, &plant.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_folder(&bob, &plant.id).await,
        Err(StoreError::NotFound)
    ));
    let mut bobs = plant.clone();
    bobs.owner = bob.clone();
    assert!(store.replace_folder(&bobs, plant.updated_at).await.is_err());
    // A rename over a stale version is a conflict; over the current one it lands.
    let mut renamed = plant.clone();
    renamed.name = "Plant A (north)".to_owned();
    renamed.updated_at = at(10);
    assert!(matches!(
        store.replace_folder(&renamed, at(99)).await,
        Err(StoreError::Conflict(_))
    ));
    store.replace_folder(&renamed, plant.updated_at).await.expect("rename");
    assert_eq!(store.get_folder(&alice, &plant.id).await.expect("get"), renamed);
    // Conversations in the folder and in its subfolder, on every shelf, move out when it goes.
    let in_plant = created(h, &ids, &alice).await;
    let in_line = created(h, &ids, &alice).await;
    let in_other = created(h, &ids, &alice).await;
    let into = |f: &Folder| ConversationPatch {
        folder: Some(Some(f.id.clone())),
        ..ConversationPatch::default()
    };
    patch(store.as_ref(), &alice, &in_plant, into(&plant), 20).await;
    patch(store.as_ref(), &alice, &in_line, into(&line), 21).await;
    patch(store.as_ref(), &alice, &in_other, into(&other), 22).await;
    store
        .trash_conversation(&alice, &in_line.id, at(23))
        .await
        .expect("trash");
    let deleted = store.delete_folder(&alice, &plant.id).await.expect("delete");
    assert_eq!(
        deleted,
        FolderDeleted {
            folders: 2,
            conversations: 2
        }
    );
    assert_eq!(store.list_folders(&alice).await.expect("list"), vec![other.clone()]);
    assert_eq!(
        store
            .get_conversation(&alice, &in_plant.id)
            .await
            .expect("kept")
            .folder_id,
        None
    );
    let restored = store
        .restore_conversation(&alice, &in_line.id, at(24))
        .await
        .expect("restore");
    assert_eq!(restored.folder_id, None, "the trashed one moved out too");
    assert_eq!(
        store
            .get_conversation(&alice, &in_other.id)
            .await
            .expect("other")
            .folder_id,
        Some(other.id.clone())
    );
    let by_folder = ListConversations {
        folder: Some(plant.id.clone()),
        ..ListConversations::default()
    };
    assert_eq!(all_ids(store.as_ref(), &alice, &by_folder, 10).await, vec![]);
    assert!(matches!(
        store.delete_folder(&alice, &plant.id).await,
        Err(StoreError::NotFound)
    ));
    let missing = FolderId::parse("missing").expect("id");
    assert!(matches!(
        store.get_folder(&alice, &missing).await,
        Err(StoreError::NotFound)
    ));
}

async fn tags_are_set_listed_counted_and_filtered(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let a = created(h, &ids, &alice).await;
    let b = created(h, &ids, &alice).await;
    let c = created(h, &ids, &alice).await;
    let tags = |t: &[&str]| ConversationPatch {
        tags: Some(t.iter().map(|s| (*s).to_owned()).collect()),
        ..ConversationPatch::default()
    };
    let a = patch(store.as_ref(), &alice, &a, tags(&["line 3", "yield"]), 10).await;
    assert_eq!(a.tags, vec!["line 3".to_owned(), "yield".to_owned()]);
    patch(store.as_ref(), &alice, &b, tags(&["yield", "a#b"]), 11).await;
    patch(store.as_ref(), &alice, &c, tags(&["a"]), 12).await;
    let counted = |t: &str, n: u64| TagCount {
        tag: t.to_owned(),
        conversations: n,
    };
    assert_eq!(
        store.list_tags(&alice).await.expect("tags"),
        vec![
            counted("yield", 2),
            counted("a", 1),
            counted("a#b", 1),
            counted("line 3", 1)
        ]
    );
    let by_tag = |t: &str| ListConversations {
        tag: Some(t.to_owned()),
        ..ListConversations::default()
    };
    assert_eq!(
        all_ids(store.as_ref(), &alice, &by_tag("yield"), 1).await,
        vec![b.id.clone(), a.id.clone()],
        "newest first, one per page"
    );
    assert_eq!(
        all_ids(store.as_ref(), &alice, &by_tag("a"), 10).await,
        vec![c.id.clone()],
        "tag a is not a prefix of tag a#b"
    );
    // Replacing the tags moves the conversation between tags at once.
    patch(store.as_ref(), &alice, &a, tags(&["line 4"]), 13).await;
    assert_eq!(all_ids(store.as_ref(), &alice, &by_tag("line 3"), 10).await, vec![]);
    assert_eq!(
        all_ids(store.as_ref(), &alice, &by_tag("line 4"), 10).await,
        vec![a.id.clone()]
    );
    // Another patch (a title) keeps the tags.
    let renamed = patch(
        store.as_ref(),
        &alice,
        &a,
        ConversationPatch {
            title: Some("Renamed".to_owned()),
            ..ConversationPatch::default()
        },
        14,
    )
    .await;
    assert_eq!(renamed.tags, vec!["line 4".to_owned()]);
    // Trashed conversations are not counted nor found by tag; restored, they are again.
    store.trash_conversation(&alice, &b.id, at(15)).await.expect("trash");
    assert_eq!(
        store.list_tags(&alice).await.expect("tags"),
        vec![counted("a", 1), counted("line 4", 1)],
        "b's tags are not counted while it is in the trash"
    );
    assert_eq!(all_ids(store.as_ref(), &alice, &by_tag("yield"), 10).await, vec![]);
    let mut trash_by_tag = by_tag("yield");
    trash_by_tag.shelf = Shelf::Trash;
    trash_by_tag.now = Some(at(16));
    assert_eq!(
        all_ids(store.as_ref(), &alice, &trash_by_tag, 10).await,
        vec![b.id.clone()]
    );
    store
        .restore_conversation(&alice, &b.id, at(16))
        .await
        .expect("restore");
    assert_eq!(
        all_ids(store.as_ref(), &alice, &by_tag("yield"), 10).await,
        vec![b.id.clone()]
    );
    // A deleted conversation's tags go with it; Bob has none of Alice's.
    store.delete_conversation(&alice, &c.id).await.expect("delete");
    assert!(!store
        .list_tags(&alice)
        .await
        .expect("tags")
        .iter()
        .any(|t| t.tag == "a"));
    assert_eq!(store.list_tags(&bob).await.expect("tags"), vec![]);
    assert_eq!(all_ids(store.as_ref(), &bob, &by_tag("yield"), 10).await, vec![]);
}

async fn the_archive_and_the_trash_are_shelves_apart(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let kept = created(h, &ids, &alice).await;
    let archived = created(h, &ids, &alice).await;
    let trashed = created(h, &ids, &alice).await;
    let m = text(&ids, &trashed, Role::User, "keep me", at(1));
    store
        .append_message(&alice, &m, &Touch::default())
        .await
        .expect("append");
    let archive = ConversationPatch {
        archived: Some(true),
        ..ConversationPatch::default()
    };
    let a = patch(store.as_ref(), &alice, &archived, archive.clone(), 10).await;
    assert!(a.archived_at.is_some());
    // Archiving again keeps when it was first archived.
    let again = patch(store.as_ref(), &alice, &archived, archive, 11).await;
    assert_eq!(again.archived_at, a.archived_at);
    // Bob cannot trash or restore Alice's.
    assert!(matches!(
        store.trash_conversation(&bob, &trashed.id, at(12)).await,
        Err(StoreError::NotFound)
    ));
    let before = store.get_conversation(&alice, &trashed.id).await.expect("read");
    let t = store
        .trash_conversation(&alice, &trashed.id, at(12))
        .await
        .expect("trash");
    assert_eq!(t.trashed_at, Some(at(12)));
    assert_eq!(t.updated_at, before.updated_at, "trashing does not touch it");
    assert!(matches!(
        store.trash_conversation(&alice, &trashed.id, at(13)).await,
        Err(StoreError::NotFound)
    ));
    let now = Some(at(20));
    let on = |shelf: Shelf| ListConversations {
        shelf,
        now,
        ..ListConversations::default()
    };
    assert_eq!(
        all_ids(store.as_ref(), &alice, &on(Shelf::Active), 10).await,
        vec![kept.id.clone()]
    );
    assert_eq!(
        all_ids(store.as_ref(), &alice, &on(Shelf::Archived), 10).await,
        vec![archived.id.clone()]
    );
    assert_eq!(
        all_ids(store.as_ref(), &alice, &on(Shelf::Trash), 10).await,
        vec![trashed.id.clone()]
    );
    assert_eq!(all_ids(store.as_ref(), &bob, &on(Shelf::Trash), 10).await, vec![]);
    // In the trash it is gone for every other read and write.
    assert!(matches!(
        store.get_conversation(&alice, &trashed.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_conversation_with_messages(&alice, &trashed.id).await,
        Err(StoreError::NotFound)
    ));
    let late = text(&ids, &trashed, Role::User, "late", at(14));
    assert!(matches!(
        store.append_message(&alice, &late, &Touch::default()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .update_conversation(
                &alice,
                &trashed.id,
                &ConversationPatch {
                    is_pinned: Some(true),
                    ..ConversationPatch::default()
                },
                at(15)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    // Restored, it is back as it was, messages and all; restoring twice is not found.
    let back = store
        .restore_conversation(&alice, &trashed.id, at(21))
        .await
        .expect("restore");
    assert_eq!(back.trashed_at, None);
    let (_, messages) = store
        .get_conversation_with_messages(&alice, &trashed.id)
        .await
        .expect("read");
    assert_eq!(messages.len(), 1);
    assert!(matches!(
        store.restore_conversation(&alice, &trashed.id, at(22)).await,
        Err(StoreError::NotFound)
    ));
    // An archived conversation trashed and restored goes back to the archive.
    store
        .trash_conversation(&alice, &archived.id, at(23))
        .await
        .expect("trash");
    store
        .restore_conversation(&alice, &archived.id, at(24))
        .await
        .expect("restore");
    assert_eq!(
        all_ids(store.as_ref(), &alice, &on(Shelf::Archived), 10).await,
        vec![archived.id.clone()]
    );
    // Due for purging after 30 days: not listed, not restorable; "delete forever" still works.
    store.trash_conversation(&alice, &kept.id, at(30)).await.expect("trash");
    let later = at(30) + Duration::days(TRASH_DAYS) + Duration::seconds(1);
    let mut due = on(Shelf::Trash);
    due.now = Some(later);
    assert_eq!(all_ids(store.as_ref(), &alice, &due, 10).await, vec![]);
    assert!(matches!(
        store.restore_conversation(&alice, &kept.id, later).await,
        Err(StoreError::NotFound)
    ));
    store
        .delete_conversation(&alice, &kept.id)
        .await
        .expect("delete forever");
    assert_eq!(h.raw_count(&kept).await, 0);
}

async fn listings_combine_filters_keep_their_order_and_refuse_foreign_cursors(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let f = folder(&ids, &alice, "F", None, at(0));
    store.create_folder(&f, 10).await.expect("folder");
    let mut made = Vec::new();
    for i in 0..6 {
        let mut c = conversation(&ids, &alice, at(i));
        c.solution_type = if i % 2 == 0 { Some(Solution::Maintenance) } else { None };
        store.create_conversation(&c, &[]).await.expect("create");
        made.push(c);
    }
    for (i, c) in made.iter().enumerate() {
        let p = ConversationPatch {
            folder: (i < 4).then(|| Some(f.id.clone())),
            tags: Some(if i % 3 == 0 { vec!["x".to_owned()] } else { vec![] }),
            is_pinned: Some(i == 1 || i == 2),
            ..ConversationPatch::default()
        };
        patch(store.as_ref(), &alice, c, p, 100 + i as i64).await;
    }
    let ids_of = |idx: &[usize]| idx.iter().map(|&i| made[i].id.clone()).collect::<Vec<_>>();
    let in_folder = ListConversations {
        folder: Some(f.id.clone()),
        ..ListConversations::default()
    };
    // Pinned first (2 was patched after 1), then newest.
    assert_eq!(
        all_ids(store.as_ref(), &alice, &in_folder, 2).await,
        ids_of(&[2, 1, 3, 0])
    );
    let pinned = ListConversations {
        pinned: Some(true),
        ..in_folder.clone()
    };
    assert_eq!(all_ids(store.as_ref(), &alice, &pinned, 1).await, ids_of(&[2, 1]));
    let unpinned_everywhere = ListConversations {
        pinned: Some(false),
        ..ListConversations::default()
    };
    assert_eq!(
        all_ids(store.as_ref(), &alice, &unpinned_everywhere, 2).await,
        ids_of(&[5, 4, 3, 0])
    );
    let maintenance_in_folder = ListConversations {
        solution: Some(SolutionFilter::Only(Solution::Maintenance)),
        ..in_folder.clone()
    };
    assert_eq!(
        all_ids(store.as_ref(), &alice, &maintenance_in_folder, 1).await,
        ids_of(&[2, 0])
    );
    let general_tagged = ListConversations {
        solution: Some(SolutionFilter::General),
        tag: Some("x".to_owned()),
        ..ListConversations::default()
    };
    assert_eq!(all_ids(store.as_ref(), &alice, &general_tagged, 1).await, ids_of(&[3]));
    let tagged_in_folder = ListConversations {
        tag: Some("x".to_owned()),
        ..in_folder.clone()
    };
    assert_eq!(
        all_ids(store.as_ref(), &alice, &tagged_in_folder, 1).await,
        ids_of(&[3, 0])
    );
    // A cursor of one listing is refused by another.
    let mut first = in_folder.clone();
    first.limit = Some(1);
    let cursor = store
        .list_conversations(&alice, &first)
        .await
        .expect("page")
        .next_cursor
        .expect("more");
    let other = ListConversations {
        cursor: Some(cursor),
        limit: Some(1),
        ..pinned.clone()
    };
    assert!(matches!(
        store.list_conversations(&alice, &other).await,
        Err(StoreError::InvalidCursor)
    ));
    // The archive keeps the same filters.
    patch(
        store.as_ref(),
        &alice,
        &made[3],
        ConversationPatch {
            archived: Some(true),
            ..ConversationPatch::default()
        },
        200,
    )
    .await;
    assert_eq!(
        all_ids(store.as_ref(), &alice, &in_folder, 10).await,
        ids_of(&[2, 1, 0])
    );
    let archived_in_folder = ListConversations {
        shelf: Shelf::Archived,
        ..in_folder.clone()
    };
    assert_eq!(
        all_ids(store.as_ref(), &alice, &archived_in_folder, 10).await,
        ids_of(&[3])
    );
    let archived_tagged = ListConversations {
        shelf: Shelf::Archived,
        tag: Some("x".to_owned()),
        ..ListConversations::default()
    };
    assert_eq!(
        all_ids(store.as_ref(), &alice, &archived_tagged, 10).await,
        ids_of(&[3])
    );
    assert_eq!(
        all_ids(store.as_ref(), &alice, &query(Shelf::Archived), 10).await,
        ids_of(&[3])
    );
}

/// Eight folder creates racing at a cap of three: exactly three pass, the others are refused.
async fn racing_creates_cannot_pass_the_folder_cap_together(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let folders: Vec<Folder> = (0..8)
        .map(|i| folder(&ids, &alice, &format!("r{i}"), None, at(i)))
        .collect();
    let results = futures::future::join_all(folders.iter().map(|f| store.create_folder(f, 3))).await;
    for r in &results {
        assert!(matches!(r, Ok(()) | Err(StoreError::Conflict(_))), "{r:?}");
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3, "{results:?}");
    assert_eq!(store.list_folders(&alice).await.expect("list").len(), 3);
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        folders_are_their_owners_and_nest_and_delete_with_their_subfolders,
        racing_creates_cannot_pass_the_folder_cap_together,
        tags_are_set_listed_counted_and_filtered,
        the_archive_and_the_trash_are_shelves_apart,
        listings_combine_filters_keep_their_order_and_refuse_foreign_cursors,
    ]
);

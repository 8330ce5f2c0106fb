//! Projects: created, read, listed, patched and deleted per owner; the per-user cap; a
//! conversation's project (set at creation or by a patch, cleared by a patch) and the listing
//! filtered by it; deleting a project detaches or deletes its conversations.

use super::*;
use shared::domain::{Project, ProjectId};
use shared::store::{ProjectConversations, ProjectPatch};

fn project(ids: &IdGenerator, owner: &UserId, name: &str, at: Timestamp) -> Project {
    Project {
        id: ids.project_id(),
        owner: owner.clone(),
        name: name.to_owned(),
        description: "Ünïcødé description 🚀".to_owned(),
        instructions: "Answer in French.\n<b>keep</b> this".to_owned(),
        default_model: Some("us.anthropic.claude-haiku-4-5-20251001-v1:0".to_owned()),
        default_solution: Some(Solution::Maintenance),
        created_at: at,
        updated_at: at,
    }
}

async fn a_project_round_trips_and_is_its_owners_alone(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let first = project(&ids, &alice, "First", at(0));
    let mut second = project(&ids, &alice, "Second", at(1));
    second.default_model = None;
    second.default_solution = None;
    second.description = String::new();
    store.create_project(&first, 100).await.expect("create");
    store.create_project(&second, 100).await.expect("create");
    assert_eq!(store.get_project(&alice, &first.id).await.expect("get"), first);
    assert_eq!(
        store.list_projects(&alice).await.expect("list"),
        vec![first.clone(), second.clone()],
        "oldest first"
    );
    let err = store.create_project(&first, 100).await.expect_err("same id");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Bob sees none of it and changes none of it.
    assert_eq!(store.list_projects(&bob).await.expect("list"), vec![]);
    let not_found = |r: Result<_, StoreError>| matches!(r, Err(StoreError::NotFound));
    assert!(not_found(store.get_project(&bob, &first.id).await.map(|_| ())));
    let patch = ProjectPatch {
        name: Some("Bob's".to_owned()),
        ..ProjectPatch::default()
    };
    assert!(not_found(
        store.update_project(&bob, &first.id, &patch, at(5)).await.map(|_| ())
    ));
    assert!(not_found(
        store
            .delete_project(&bob, &first.id, ProjectConversations::Delete)
            .await
            .map(|_| ())
    ));
    assert_eq!(store.get_project(&alice, &first.id).await.expect("still"), first);
    let missing = ProjectId::parse("missing").expect("id");
    assert!(not_found(store.get_project(&alice, &missing).await.map(|_| ())));
}

async fn the_project_cap_refuses_one_more_and_writes_nothing(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    for i in 0..3 {
        store
            .create_project(&project(&ids, &alice, &format!("p{i}"), at(i)), 3)
            .await
            .expect("under the cap");
    }
    let err = store
        .create_project(&project(&ids, &alice, "one more", at(9)), 3)
        .await
        .expect_err("at the cap");
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("at most 3 projects")),
        "{err:?}"
    );
    assert_eq!(store.list_projects(&alice).await.expect("list").len(), 3);
    // Another user's cap is their own.
    store
        .create_project(&project(&ids, &user(&unique("bob")), "b", at(0)), 3)
        .await
        .expect("bob's first");
}

async fn a_project_patch_changes_only_what_it_names(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let p = project(&ids, &alice, "Before", at(0));
    store.create_project(&p, 100).await.expect("create");
    let renamed = store
        .update_project(
            &alice,
            &p.id,
            &ProjectPatch {
                name: Some("After".to_owned()),
                default_solution: Some(None),
                ..ProjectPatch::default()
            },
            at(10),
        )
        .await
        .expect("patch");
    let expected = Project {
        name: "After".to_owned(),
        default_solution: None,
        updated_at: at(10),
        ..p.clone()
    };
    assert_eq!(renamed, expected);
    assert_eq!(store.get_project(&alice, &p.id).await.expect("read back"), expected);
    let cleared = store
        .update_project(
            &alice,
            &p.id,
            &ProjectPatch {
                instructions: Some(String::new()),
                default_model: Some(None),
                ..ProjectPatch::default()
            },
            at(20),
        )
        .await
        .expect("patch");
    assert_eq!((cleared.instructions.as_str(), cleared.default_model), ("", None));
    assert_eq!(cleared.name, "After");
}

/// `n` conversations of `owner` in `project` (or none), created at increasing times.
async fn in_project(
    h: &dyn Harness,
    ids: &IdGenerator,
    owner: &UserId,
    project: Option<&ProjectId>,
    n: i64,
) -> Vec<Conversation> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut c = conversation(ids, owner, at(i));
        c.project_id = project.cloned();
        h.store().create_conversation(&c, &[]).await.expect("create");
        out.push(c);
    }
    out
}

fn listing(project: &ProjectId, limit: u32, cursor: Option<String>) -> ListConversations {
    ListConversations {
        project: Some(project.clone()),
        limit: Some(limit),
        cursor,
        ..ListConversations::default()
    }
}

async fn conversations_are_listed_by_project_and_moved_in_and_out(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let p = project(&ids, &alice, "P", at(0));
    store.create_project(&p, 100).await.expect("create");
    let outside = in_project(h, &ids, &alice, None, 4).await;
    let inside = in_project(h, &ids, &alice, Some(&p.id), 5).await;
    let read = store.get_conversation(&alice, &inside[0].id).await.expect("read");
    assert_eq!(read.project_id.as_ref(), Some(&p.id));
    // Paged by 2 through the filter: newest first, no gap, no duplicate.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_conversations(&alice, &listing(&p.id, 2, cursor.take()))
            .await
            .expect("page");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|c| c.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = inside.iter().rev().map(|c| c.id.clone()).collect();
    assert_eq!(seen, expected);
    // A cursor of the unfiltered listing is not one of the project's.
    let all = store
        .list_conversations(
            &alice,
            &ListConversations {
                limit: Some(1),
                ..ListConversations::default()
            },
        )
        .await
        .expect("all");
    let err = store
        .list_conversations(&alice, &listing(&p.id, 2, all.next_cursor))
        .await
        .expect_err("foreign cursor");
    assert!(matches!(err, StoreError::InvalidCursor), "{err:?}");
    // Move one in, one out.
    let moved_in = store
        .update_conversation(
            &alice,
            &outside[0].id,
            &ConversationPatch {
                project: Some(Some(p.id.clone())),
                ..ConversationPatch::default()
            },
            at(100),
        )
        .await
        .expect("move in");
    assert_eq!(moved_in.project_id.as_ref(), Some(&p.id));
    let moved_out = store
        .update_conversation(
            &alice,
            &inside[0].id,
            &ConversationPatch {
                project: Some(None),
                ..ConversationPatch::default()
            },
            at(101),
        )
        .await
        .expect("move out");
    assert_eq!(moved_out.project_id, None);
    let page = store
        .list_conversations(&alice, &listing(&p.id, 100, None))
        .await
        .expect("list");
    assert_eq!(page.items.len(), 5);
    assert_eq!(page.items[0].id, outside[0].id, "the newest first");
    assert!(page.items.iter().all(|c| c.id != inside[0].id));
    // A patch that names no project leaves it.
    let renamed = store
        .update_conversation(
            &alice,
            &outside[0].id,
            &ConversationPatch {
                title: Some("Renamed".to_owned()),
                ..ConversationPatch::default()
            },
            at(102),
        )
        .await
        .expect("rename");
    assert_eq!(renamed.project_id.as_ref(), Some(&p.id));
}

async fn deleting_a_project_detaches_or_deletes_its_conversations(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let (kept, gone) = (
        project(&ids, &alice, "Kept", at(0)),
        project(&ids, &alice, "Gone", at(1)),
    );
    store.create_project(&kept, 100).await.expect("create");
    store.create_project(&gone, 100).await.expect("create");
    let other = in_project(h, &ids, &alice, None, 1).await;
    let detached = in_project(h, &ids, &alice, Some(&kept.id), 3).await;
    let deleted = in_project(h, &ids, &alice, Some(&gone.id), 2).await;
    for c in &deleted {
        let m = text(&ids, c, Role::User, "hello", at(50));
        store
            .append_message(&alice, &m, &Touch::default())
            .await
            .expect("append");
    }
    let n = store
        .delete_project(&alice, &kept.id, ProjectConversations::Detach)
        .await
        .expect("detach");
    assert_eq!(n, 3);
    for c in &detached {
        let read = store.get_conversation(&alice, &c.id).await.expect("kept");
        assert_eq!(read.project_id, None);
    }
    let n = store
        .delete_project(&alice, &gone.id, ProjectConversations::Delete)
        .await
        .expect("delete");
    assert_eq!(n, 2);
    for c in &deleted {
        let err = store.get_conversation(&alice, &c.id).await.expect_err("deleted");
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        assert_eq!(h.raw_count(c).await, 0, "every item of the conversation is gone");
    }
    store.get_conversation(&alice, &other[0].id).await.expect("untouched");
    assert_eq!(store.list_projects(&alice).await.expect("list"), vec![]);
    let err = store
        .delete_project(&alice, &kept.id, ProjectConversations::Detach)
        .await
        .expect_err("already deleted");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// Eight creates racing at a cap of three: exactly three pass, the others are refused, and the
/// owner holds three projects (on DynamoDB the cap revision makes the count and the put one).
async fn racing_creates_cannot_pass_the_project_cap_together(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let projects: Vec<Project> = (0..8).map(|i| project(&ids, &alice, &format!("r{i}"), at(i))).collect();
    let results = futures::future::join_all(projects.iter().map(|p| store.create_project(p, 3))).await;
    let passed = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        assert!(matches!(r, Ok(()) | Err(StoreError::Conflict(_))), "{r:?}");
    }
    assert_eq!(passed, 3, "{results:?}");
    assert_eq!(store.list_projects(&alice).await.expect("list").len(), 3);
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        a_project_round_trips_and_is_its_owners_alone,
        the_project_cap_refuses_one_more_and_writes_nothing,
        racing_creates_cannot_pass_the_project_cap_together,
        a_project_patch_changes_only_what_it_names,
        conversations_are_listed_by_project_and_moved_in_and_out,
        deleting_a_project_detaches_or_deletes_its_conversations,
    ]
);

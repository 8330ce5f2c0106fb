//! Saved prompts: created, read, listed, patched and deleted per owner, and the per-user cap.

use super::*;
use shared::domain::{PromptId, SavedPrompt};
use shared::store::PromptPatch;

fn prompt(ids: &IdGenerator, owner: &UserId, title: &str, at: Timestamp) -> SavedPrompt {
    SavedPrompt {
        id: ids.prompt_id(),
        owner: owner.clone(),
        title: title.to_owned(),
        text: "Why is {{machine}} down? Ünïcødé 🚀".to_owned(),
        tags: vec!["maintenance".to_owned(), "mtbf".to_owned()],
        created_at: at,
        updated_at: at,
    }
}

async fn a_prompt_round_trips_is_patched_and_deleted_by_its_owner_alone(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let first = prompt(&ids, &alice, "First", at(0));
    let second = SavedPrompt {
        tags: Vec::new(),
        ..prompt(&ids, &alice, "Second", at(1))
    };
    store.create_prompt(&first, 500).await.expect("create");
    store.create_prompt(&second, 500).await.expect("create");
    assert_eq!(store.get_prompt(&alice, &first.id).await.expect("get"), first);
    assert_eq!(
        store.list_prompts(&alice).await.expect("list"),
        vec![first.clone(), second.clone()]
    );
    let err = store.create_prompt(&first, 500).await.expect_err("same id");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.list_prompts(&bob).await.expect("list"), vec![]);
    let patch = PromptPatch {
        tags: Some(vec!["x".to_owned()]),
        ..PromptPatch::default()
    };
    let not_found = |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound));
    assert!(not_found(store.get_prompt(&bob, &first.id).await.map(|_| ())));
    assert!(not_found(
        store.update_prompt(&bob, &first.id, &patch, at(5)).await.map(|_| ())
    ));
    assert!(not_found(store.delete_prompt(&bob, &first.id).await));
    let patched = store
        .update_prompt(&alice, &first.id, &patch, at(5))
        .await
        .expect("patch");
    let expected = SavedPrompt {
        tags: vec!["x".to_owned()],
        updated_at: at(5),
        ..first.clone()
    };
    assert_eq!(patched, expected);
    assert_eq!(store.get_prompt(&alice, &first.id).await.expect("read back"), expected);
    store.delete_prompt(&alice, &first.id).await.expect("delete");
    assert!(not_found(store.delete_prompt(&alice, &first.id).await));
    assert_eq!(store.list_prompts(&alice).await.expect("list"), vec![second]);
    let missing = PromptId::parse("missing").expect("id");
    assert!(not_found(store.get_prompt(&alice, &missing).await.map(|_| ())));
}

async fn the_prompt_cap_refuses_one_more_and_writes_nothing(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    for i in 0..2 {
        store
            .create_prompt(&prompt(&ids, &alice, &format!("p{i}"), at(i)), 2)
            .await
            .expect("under the cap");
    }
    let err = store
        .create_prompt(&prompt(&ids, &alice, "one more", at(9)), 2)
        .await
        .expect_err("at the cap");
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("at most 2 saved prompts")),
        "{err:?}"
    );
    assert_eq!(store.list_prompts(&alice).await.expect("list").len(), 2);
}

/// Eight creates racing at a cap of three: exactly three pass, the others are refused.
async fn racing_creates_cannot_pass_the_prompt_cap_together(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let prompts: Vec<SavedPrompt> = (0..8).map(|i| prompt(&ids, &alice, &format!("r{i}"), at(i))).collect();
    let results = futures::future::join_all(prompts.iter().map(|p| store.create_prompt(p, 3))).await;
    for r in &results {
        assert!(matches!(r, Ok(()) | Err(StoreError::Conflict(_))), "{r:?}");
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3, "{results:?}");
    assert_eq!(store.list_prompts(&alice).await.expect("list").len(), 3);
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        a_prompt_round_trips_is_patched_and_deleted_by_its_owner_alone,
        the_prompt_cap_refuses_one_more_and_writes_nothing,
        racing_creates_cannot_pass_the_prompt_cap_together,
    ]
);

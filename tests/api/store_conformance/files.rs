//! Attached files' records: stored, read, listed per owner (oldest first), replaced only while
//! they meet the expected condition (pending to ready once; attached to one conversation), and
//! deleted; another owner sees and changes none of it.

use super::*;
use shared::domain::{FileFormat, FileId, FileStatus, StoredFile};
use shared::store::FileCondition;

fn file(ids: &IdGenerator, owner: &UserId, name: &str, at: Timestamp) -> StoredFile {
    StoredFile {
        id: ids.file_id(),
        owner: owner.clone(),
        filename: name.to_owned(),
        format: FileFormat::Pdf,
        size: 1_234,
        status: FileStatus::Pending,
        conversation_id: None,
        tokens: 0,
        created_at: at,
        upload_expires_at: at + Duration::minutes(5),
    }
}

async fn a_file_round_trips_and_is_its_owners_alone(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let first = file(&ids, &alice, "Ünïcødé manual (v2).pdf", at(0));
    let second = file(&ids, &alice, "b.pdf", at(1));
    store.put_file(&first).await.expect("put");
    store.put_file(&second).await.expect("put");
    assert_eq!(store.get_file(&alice, &first.id).await.expect("get"), first);
    assert_eq!(
        store.list_files(&alice).await.expect("list"),
        vec![first.clone(), second.clone()]
    );
    let err = store.put_file(&first).await.expect_err("same id");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.list_files(&bob).await.expect("list"), vec![]);
    assert!(matches!(
        store.get_file(&bob, &first.id).await,
        Err(StoreError::NotFound)
    ));
    // Bob's delete of Alice's file removes nothing.
    store
        .delete_files(&bob, std::slice::from_ref(&first.id))
        .await
        .expect("delete");
    assert_eq!(store.get_file(&alice, &first.id).await.expect("still"), first);
    store
        .delete_files(&alice, &[first.id.clone(), FileId::parse("missing").expect("id")])
        .await
        .expect("delete");
    assert!(matches!(
        store.get_file(&alice, &first.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_files(&alice).await.expect("list"), vec![second]);
}

async fn a_file_becomes_ready_once_and_joins_one_conversation(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let alice = user(&unique("alice"));
    let pending = file(&ids, &alice, "a.pdf", at(0));
    store.put_file(&pending).await.expect("put");
    let mut ready = pending.clone();
    ready.status = FileStatus::Ready;
    ready.size = 1_000;
    ready.tokens = 1_000;
    store.replace_file(&ready, FileCondition::Pending).await.expect("ready");
    assert_eq!(store.get_file(&alice, &pending.id).await.expect("get"), ready);
    let err = store
        .replace_file(&ready, FileCondition::Pending)
        .await
        .expect_err("ready twice");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    let (one, two) = (
        ConversationId::parse("c-one").expect("id"),
        ConversationId::parse("c-two").expect("id"),
    );
    let mut attached = ready.clone();
    attached.conversation_id = Some(one.clone());
    store
        .replace_file(&attached, FileCondition::AttachableTo(&one))
        .await
        .expect("attach");
    // Again to the same conversation is fine (a retried or edited message).
    store
        .replace_file(&attached, FileCondition::AttachableTo(&one))
        .await
        .expect("again");
    let mut stolen = ready.clone();
    stolen.conversation_id = Some(two.clone());
    let err = store
        .replace_file(&stolen, FileCondition::AttachableTo(&two))
        .await
        .expect_err("taken");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_file(&alice, &pending.id).await.expect("get"), attached);

    // A pending file cannot be attached; a missing one is not found.
    let other = file(&ids, &alice, "b.pdf", at(1));
    store.put_file(&other).await.expect("put");
    let mut early = other.clone();
    early.conversation_id = Some(one.clone());
    let err = store
        .replace_file(&early, FileCondition::AttachableTo(&one))
        .await
        .expect_err("pending");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let ghost = file(&ids, &alice, "ghost.pdf", at(2));
    let err = store
        .replace_file(&ghost, FileCondition::Pending)
        .await
        .expect_err("missing");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        a_file_round_trips_and_is_its_owners_alone,
        a_file_becomes_ready_once_and_joins_one_conversation,
    ]
);

//! Import jobs (`ImportJobs`): stored, read by their owner and by the worker's key (the owner's
//! prefix and the job id, nobody else's), updated only over the version read, listed newest
//! first with paging, deleted; every call scoped to the owner.

use super::*;
use shared::domain::file::owner_prefix;
use shared::domain::import_job::{ItemResult, Status, Totals};
use shared::domain::{ImportJob, ImportJobId, ImportJobStatus};

fn job(ids: &IdGenerator, owner: &UserId, now: Timestamp) -> ImportJob {
    let now = Utc.timestamp_millis_opt(now.timestamp_millis()).single().expect("ms");
    ImportJob {
        id: ImportJobId::parse(&ids.next_ulid()).expect("id"),
        owner: owner.clone(),
        source: "chatgpt".to_owned(),
        bytes: 48_000_000,
        filename: Some("conversations.json".to_owned()),
        status: ImportJobStatus::AwaitingUpload,
        created_at: now,
        updated_at: now,
        upload_expires_at: now + Duration::minutes(5),
        attempts: 0,
        totals: Totals::default(),
        failures: Vec::new(),
        failures_omitted: 0,
        error: None,
    }
}

async fn a_job_is_read_by_its_owner_and_by_its_key_and_updated_over_the_version_read(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let now = shared::domain::now();
    let j = job(&ids, &alice, now);
    store.put_import_job(&j).await.expect("put");
    let err = store.put_import_job(&j).await.expect_err("twice");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_import_job(&alice, &j.id).await.expect("get"), j);
    assert_eq!(
        store.find_import_job(&owner_prefix(&alice), &j.id).await.expect("find"),
        j
    );
    // Another owner, or another owner's prefix, finds nothing.
    let err = store.get_import_job(&bob, &j.id).await.expect_err("bob");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store
        .find_import_job(&owner_prefix(&bob), &j.id)
        .await
        .expect_err("bob's prefix");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    // Updated over the version read; a stale version is a conflict and changes nothing.
    let mut running = j.clone();
    running.status = ImportJobStatus::Running;
    running.attempts = 1;
    running.updated_at = j.updated_at + Duration::milliseconds(5);
    running.record(ItemResult {
        index: 3,
        title: Some("Bad".to_owned()),
        status: Status::Failed,
        conversation_id: None,
        code: Some("INVALID_ITEM".to_owned()),
        message: Some("no mapping".to_owned()),
    });
    store.update_import_job(&running, j.updated_at).await.expect("update");
    assert_eq!(store.get_import_job(&alice, &j.id).await.expect("get"), running);
    let mut stale = j.clone();
    stale.status = ImportJobStatus::Done;
    stale.updated_at = j.updated_at + Duration::milliseconds(9);
    let err = store.update_import_job(&stale, j.updated_at).await.expect_err("stale");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_import_job(&alice, &j.id).await.expect("get"), running);
    // A job that is not there (another owner's id) is not found, not created.
    let mut missing = job(&ids, &bob, now);
    missing.id = j.id.clone();
    let err = store
        .update_import_job(&missing, missing.updated_at)
        .await
        .expect_err("bob's update");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    // Deleting: another owner's call deletes nothing; the owner's does.
    store
        .delete_import_job(&bob, &j.id)
        .await
        .expect("bob's delete is a no-op");
    assert!(store.get_import_job(&alice, &j.id).await.is_ok());
    store.delete_import_job(&alice, &j.id).await.expect("delete");
    let err = store.get_import_job(&alice, &j.id).await.expect_err("gone");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    store
        .delete_import_job(&alice, &j.id)
        .await
        .expect("deleting again is fine");
}

async fn an_owners_jobs_are_listed_newest_first_a_page_at_a_time(h: &dyn Harness) {
    let store = h.store();
    let ids = IdGenerator::new();
    let (alice, bob) = (user(&unique("alice")), user(&unique("bob")));
    let now = shared::domain::now();
    let mut made = Vec::new();
    for _ in 0..5 {
        let j = job(&ids, &alice, now);
        store.put_import_job(&j).await.expect("put");
        made.push(j.id);
    }
    store.put_import_job(&job(&ids, &bob, now)).await.expect("bob's");
    made.reverse();
    let mut seen = Vec::new();
    let mut before: Option<ImportJobId> = None;
    loop {
        let page = store.list_import_jobs(&alice, before.as_ref(), 2).await.expect("list");
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        assert!(page.iter().all(|j| j.owner == alice), "only alice's");
        before = page.last().map(|j| j.id.clone());
        seen.extend(page.into_iter().map(|j| j.id));
    }
    assert_eq!(seen, made, "newest first, every job once");
    assert_eq!(store.list_import_jobs(&bob, None, 10).await.expect("bob").len(), 1);
}

athena_tests::on_both_stores!(
    |store| &Arc::new(store),
    [
        a_job_is_read_by_its_owner_and_by_its_key_and_updated_over_the_version_read,
        an_owners_jobs_are_listed_newest_first_a_page_at_a_time,
    ]
);

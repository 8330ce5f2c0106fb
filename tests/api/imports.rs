//! Import jobs (`/api/imports`, issue 18 item 3: files larger than a request body) on both
//! stores, with real parts: the embedded store with its directory of files (the upload posted to
//! the gateway's own `/local/uploads`, whose arrival runs the worker in-process), DynamoDB with
//! S3 on moto's server (the upload posted to the bucket as an S3 presigned POST; the bucket's
//! "Object Created" event delivered to the worker's Lambda handler, as EventBridge does).
//! The worker imports what the synchronous route imports; a re-delivered event or a rerun writes
//! nothing twice; sizes, non-exports and bad items end in the job; another user's job is never
//! visible, touchable or run.

use std::sync::Arc;

use athena_tests::tokens::{self, as_user};
use athena_tests::{on_both_stores, spawn_shared_state, workspace_root, Reply, TestApp};
use serde_json::{json, Value};
use shared::blobs::Blobs;
use shared::domain::file::owner_prefix;
use shared::domain::{ImportJobId, ImportJobStatus, UserId};
use shared::state::AppState;
use shared::store::Store;

use super::files::{post_form, Backend};

const ALICE: &str = "alice-0001";
const BOB: &str = "bob-0002";
const CAROL: &str = "carol-0003";
/// The largest export file these tests' deployment takes.
const MAX_UPLOAD: u64 = 200_000;

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("tests/fixtures").join(name)).expect("fixture")
}

/// A gateway on a store with its files, the state the worker runs on, and the blob store.
struct Imports {
    app: TestApp,
    state: Arc<AppState>,
    blobs: Arc<dyn Blobs>,
    /// S3 on moto (the test delivers the bucket's events); else the directory store (its upload
    /// route runs the worker).
    s3: bool,
}

async fn imports_app<S: Backend>(store: S) -> Imports {
    let blobs = store.blobs().await;
    let s3 = blobs.describe().starts_with("s3://");
    let mut config = tokens::jwt_config(tokens::verifier());
    config.files.max_import_upload_bytes = MAX_UPLOAD;
    let store: Arc<dyn Store> = Arc::new(store);
    let state = Arc::new(AppState::new(config, Arc::clone(&store)).with_blobs(Arc::clone(&blobs)));
    let options = shared::local::ServeOptions::for_config(&state.config);
    let app = spawn_shared_state(Arc::clone(&state), store, options).await;
    Imports { app, state, blobs, s3 }
}

impl Imports {
    async fn create(&self, user: &str, body: Value) -> Reply {
        as_user(&self.app, user, "POST", "/api/imports", Some(body)).await
    }

    /// Creates a job for `file` and answers it (201 checked).
    async fn job_for(&self, user: &str, source: &str, file: &[u8]) -> Value {
        let created = self
            .create(
                user,
                json!({"source": source, "bytes": file.len(), "filename": "conversations.json"}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        created.json
    }

    /// Writes an object as an upload would (without the form), in the bucket or the directory.
    async fn put_object(&self, key: &str, bytes: &[u8]) {
        let where_ = self.blobs.describe();
        match where_.strip_prefix("s3://") {
            Some(bucket) => {
                athena_tests::moto_s3_client()
                    .0
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(bytes.to_vec().into())
                    .send()
                    .await
                    .expect("put object");
            }
            None => {
                let path = std::path::Path::new(&where_).join(key);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, bytes).expect("write");
            }
        }
    }

    /// Delivers the bucket's "Object Created" event of `key` to the worker's Lambda handler.
    async fn deliver(&self, key: &str) -> String {
        let event = json!({"detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "files"}, "object": {"key": key, "size": 1}}});
        shared::lambda::import_uploads(&self.state, &event)
            .await
            .expect("the worker handles the event")
            .to_string()
    }

    /// Posts the job's upload form with `file`; on S3 the test is the bucket's notification.
    async fn upload(&self, job: &Value, file: &[u8]) {
        let posted = post_form(&self.app, &job["upload"], "application/json", file).await;
        assert!(posted.status().is_success(), "upload: {}", posted.status());
        if self.s3 {
            self.deliver(key_of(job)).await;
        }
    }

    async fn get(&self, user: &str, id: &str) -> Reply {
        as_user(&self.app, user, "GET", &format!("/api/imports/{id}"), None).await
    }

    /// The job once it has ended (the directory store's worker runs in the background).
    async fn settled(&self, user: &str, id: &str) -> Value {
        for _ in 0..500 {
            let r = self.get(user, id).await;
            assert_eq!(r.status, 200, "{}", r.text);
            if matches!(r.json["status"].as_str(), Some("done" | "failed")) {
                return r.json;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("import job {id} never ended");
    }

    async fn titles(&self, user: &str) -> Vec<String> {
        let r = as_user(&self.app, user, "GET", "/api/conversations", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let mut titles: Vec<String> = r.json["conversations"]
            .as_array()
            .or(r.json.as_array())
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["title"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        titles.sort();
        titles
    }

    async fn conversation_ids(&self, user: &str) -> Vec<String> {
        let r = as_user(&self.app, user, "GET", "/api/conversations", None).await;
        let mut ids: Vec<String> = r.json["conversations"]
            .as_array()
            .or(r.json.as_array())
            .map(|cs| cs.iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

fn key_of(job: &Value) -> &str {
    job["upload"]["fields"]["key"].as_str().expect("the form's key")
}

fn id_of(job: &Value) -> &str {
    job["id"].as_str().expect("id")
}

/// A conversation's export without what differs between two owners' copies.
fn comparable(doc: &Value) -> Value {
    let mut doc = doc.clone();
    for path in [["conversation", "owner"], ["conversation", "userId"]] {
        if let Some(o) = doc[path[0]].as_object_mut() {
            o.remove(path[1]);
        }
    }
    if let Some(o) = doc.as_object_mut() {
        o.remove("exportedAt");
    }
    doc
}

async fn a_chatgpt_export_uploaded_through_the_form_is_imported_by_the_worker(i: Imports) {
    let file = fixture_bytes("chatgpt-conversations.json");
    let created = i
        .create(
            ALICE,
            json!({"source": "chatgpt", "bytes": file.len(), "filename": "conversations.json"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let job = created.json.clone();
    assert_eq!(job["status"], "awaiting_upload");
    assert_eq!(
        (job["source"].as_str(), job["bytes"].as_u64()),
        (Some("chatgpt"), Some(file.len() as u64))
    );
    assert_eq!(
        created.header("location"),
        Some(format!("/api/imports/{}", id_of(&job)).as_str())
    );
    let key = key_of(&job).to_owned();
    let alice = UserId::parse(ALICE).expect("user");
    assert_eq!(key, format!("imports/{}/{}", owner_prefix(&alice), id_of(&job)));
    assert_eq!(job["upload"]["fields"]["Content-Type"], "application/json");
    assert_eq!(
        job["upload"]["maxBytes"], job["bytes"],
        "the form accepts the declared size"
    );

    i.upload(&job, &file).await;
    let done = i.settled(ALICE, id_of(&job)).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["totals"], json!({"imported": 2, "skipped": 0, "failed": 0}));
    assert_eq!(done["failures"], json!([]));
    assert!(done.get("upload").is_none(), "the form is shown once");
    assert!(
        i.blobs.head(&key).await.expect("head").is_none(),
        "the upload is deleted"
    );

    // Texts and timestamps kept: what the synchronous route imports for Bob, exactly.
    let sync = as_user(
        &i.app,
        BOB,
        "POST",
        "/api/import?source=chatgpt",
        Some(serde_json::from_slice(&file).expect("json")),
    )
    .await;
    assert_eq!(sync.status, 200, "{}", sync.text);
    let ids = i.conversation_ids(ALICE).await;
    assert_eq!(ids.len(), 2);
    assert_eq!(ids, i.conversation_ids(BOB).await, "ids derived from ChatGPT's");
    for id in &ids {
        let path = format!("/api/conversations/{id}/export");
        let (a, b) = (
            as_user(&i.app, ALICE, "GET", &path, None).await,
            as_user(&i.app, BOB, "GET", &path, None).await,
        );
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(comparable(&a.json), comparable(&b.json));
        assert_eq!(a.json["conversation"]["importedFrom"], "chatgpt");
    }
    let r = as_user(&i.app, ALICE, "GET", "/api/conversations", None).await;
    let listed = r.json.to_string();
    assert!(listed.contains("Press 2 maintenance plan"), "{listed}");
    assert!(
        listed.contains("2024-03-01T08:00:00.123Z"),
        "the conversation's own time: {listed}"
    );
}

async fn the_same_upload_delivered_twice_or_rerun_imports_once(i: Imports) {
    let file = fixture_bytes("chatgpt-conversations.json");
    let job = i.job_for(ALICE, "chatgpt", &file).await;
    i.upload(&job, &file).await;
    let done = i.settled(ALICE, id_of(&job)).await;
    assert_eq!(done["totals"]["imported"], 2, "{done}");
    // The event again (S3 delivers at least once): the job and the conversations stay as they are.
    let again = i.deliver(key_of(&job)).await;
    assert!(again.contains("finished"), "{again}");
    assert_eq!(i.get(ALICE, id_of(&job)).await.json, done);
    assert_eq!(i.conversation_ids(ALICE).await.len(), 2);

    // A run cut off after one conversation (a Lambda timeout) and its progress write, found
    // `running` by the retry: it resumes, skipping what is stored, and keeps the counts it
    // wrote (the first conversation is not counted again as skipped). (Carol: her first
    // conversation stored as the cut-off run would have.)
    let mut one: Value = serde_json::from_slice(&file).expect("json");
    one.as_array_mut().expect("array").truncate(1);
    let first = as_user(&i.app, CAROL, "POST", "/api/import?source=chatgpt", Some(one)).await;
    assert_eq!(first.json["totals"]["imported"], 1, "{}", first.text);
    let second = i.job_for(CAROL, "chatgpt", &file).await;
    let store = Arc::clone(&i.state.store);
    let id = ImportJobId::parse(id_of(&second)).expect("id");
    let carol = UserId::parse(CAROL).expect("user");
    let mut stored = store.get_import_job(&carol, &id).await.expect("job");
    let read_at = stored.updated_at;
    stored.status = ImportJobStatus::Running;
    stored.attempts = 1;
    stored.totals.imported = 1;
    stored.updated_at = read_at + chrono::Duration::milliseconds(1);
    store.update_import_job(&stored, read_at).await.expect("running");
    i.put_object(key_of(&second), &file).await;
    let outcome = i.deliver(key_of(&second)).await;
    assert!(outcome.contains("Finished(Done)"), "{outcome}");
    let resumed = i.settled(CAROL, id_of(&second)).await;
    assert_eq!(
        resumed["totals"],
        json!({"imported": 2, "skipped": 0, "failed": 0}),
        "nothing written twice, nothing counted twice: {resumed}"
    );
    assert_eq!(i.conversation_ids(CAROL).await.len(), 2);
    assert_eq!(i.conversation_ids(ALICE).await.len(), 2);
}

async fn declared_sizes_and_bad_input_are_refused(i: Imports) {
    for (body, field) in [
        (json!({"bytes": MAX_UPLOAD + 1}), "bytes"),
        (json!({"bytes": 0}), "bytes"),
        (json!({"bytes": 10, "source": "gemini"}), "source"),
        (json!({"bytes": 10, "filename": "a/b.json"}), "filename"),
    ] {
        let r = i.create(ALICE, body.clone()).await;
        assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{body}: {}", r.text);
        assert!(r.text.contains(field), "{body}: {}", r.text);
    }
    for body in [
        json!({}),
        json!({"bytes": "ten"}),
        json!({"bytes": 10, "extra": 1}),
        json!({"bytes": 1.5}),
    ] {
        let r = i.create(ALICE, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    // An object larger than declared (the form would refuse it; written around the form): the
    // worker refuses it, imports nothing and deletes it.
    let file = fixture_bytes("chatgpt-conversations.json");
    let job = i.job_for(ALICE, "chatgpt", &file[..file.len() - 10]).await;
    i.put_object(key_of(&job), &file).await;
    i.deliver(key_of(&job)).await;
    let failed = i.settled(ALICE, id_of(&job)).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "UPLOAD_TOO_LARGE", "{failed}");
    assert_eq!(failed["totals"], json!({"imported": 0, "skipped": 0, "failed": 0}));
    assert!(i.conversation_ids(ALICE).await.is_empty());
    assert!(i.blobs.head(key_of(&job)).await.expect("head").is_none());
    // The form itself pins the size: the directory store refuses a larger file outright.
    if !i.s3 {
        let job = i.job_for(ALICE, "chatgpt", &file[..10]).await;
        let posted = post_form(&i.app, &job["upload"], "application/json", &file).await;
        assert_eq!(posted.status().as_u16(), 400);
        assert_eq!(i.get(ALICE, id_of(&job)).await.json["status"], "awaiting_upload");
    }
}

async fn a_file_that_is_no_export_fails_its_job_and_stores_nothing(i: Imports) {
    let file = b"this is not JSON, it is a letter".to_vec();
    let job = i.job_for(ALICE, "auto", &file).await;
    i.upload(&job, &file).await;
    let failed = i.settled(ALICE, id_of(&job)).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "NOT_AN_EXPORT", "{failed}");
    assert!(failed["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(i.conversation_ids(ALICE).await.is_empty());
    assert!(i.blobs.head(key_of(&job)).await.expect("head").is_none());
}

async fn per_item_errors_are_reported_while_the_rest_imports(i: Imports) {
    let good: Value = serde_json::from_slice(&fixture_bytes("chatgpt-conversations.json")).expect("json");
    let good = good.as_array().expect("array");
    let file = serde_json::to_vec(&json!([good[0], {"not": "a conversation"}, good[1], 42])).expect("bytes");
    let job = i.job_for(ALICE, "auto", &file).await;
    i.upload(&job, &file).await;
    let done = i.settled(ALICE, id_of(&job)).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["totals"], json!({"imported": 2, "skipped": 0, "failed": 2}));
    let failures = done["failures"].as_array().expect("failures");
    let indexes: Vec<u64> = failures.iter().filter_map(|f| f["index"].as_u64()).collect();
    assert_eq!(indexes, [1, 3], "{done}");
    assert!(failures
        .iter()
        .all(|f| f["status"] == "failed" && f["code"].is_string()));
    assert_eq!(done["failuresOmitted"], 0);
    assert_eq!(i.titles(ALICE).await.len(), 2);
}

async fn another_users_job_is_not_found_anywhere_and_a_key_naming_another_owner_runs_nothing(i: Imports) {
    let file = fixture_bytes("chatgpt-conversations.json");
    let job = i.job_for(ALICE, "chatgpt", &file).await;
    let id = id_of(&job);
    for method in ["GET", "DELETE"] {
        let r = as_user(&i.app, BOB, method, &format!("/api/imports/{id}"), None).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{method}: {}", r.text);
    }
    let listed = as_user(&i.app, BOB, "GET", "/api/imports", None).await;
    assert_eq!(listed.json, json!([]), "{}", listed.text);
    // Bob's prefix with Alice's job id (Bob's own upload form cannot name it; written around the
    // form): logged and ignored; Alice's job waits for her own upload.
    let bob = UserId::parse(BOB).expect("user");
    let forged = format!("imports/{}/{id}", owner_prefix(&bob));
    i.put_object(&forged, &file).await;
    let outcome = i.deliver(&forged).await;
    assert!(outcome.contains("no such job"), "{outcome}");
    assert_eq!(i.get(ALICE, id).await.json["status"], "awaiting_upload");
    assert!(i.conversation_ids(ALICE).await.is_empty() && i.conversation_ids(BOB).await.is_empty());
    // A key of no job at all, and a key outside imports/.
    for key in [
        format!("imports/{}/01JDNOJOB00000000000000000", owner_prefix(&bob)),
        "uploads/x/y".to_owned(),
    ] {
        assert!(i.deliver(&key).await.contains("Ignored"), "{key}");
    }
    // Alice's own upload still runs.
    i.upload(&job, &file).await;
    assert_eq!(i.settled(ALICE, id).await["status"], "done");
    assert!(i.conversation_ids(BOB).await.is_empty());
}

async fn the_job_list_pages_newest_first_and_finished_jobs_delete(i: Imports) {
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(id_of(&i.job_for(ALICE, "auto", b"[]").await).to_owned());
    }
    i.job_for(BOB, "auto", b"[]").await;
    made.reverse();
    let mut seen = Vec::new();
    let mut path = "/api/imports?limit=2".to_owned();
    loop {
        let r = as_user(&i.app, ALICE, "GET", &path, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.json.as_array().expect("array");
        assert!(page.len() <= 2);
        seen.extend(page.iter().filter_map(|j| j["id"].as_str().map(str::to_owned)));
        match r.header("x-next-cursor") {
            Some(c) => path = format!("/api/imports?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, made, "newest first, each once, Alice's only");
    let r = as_user(&i.app, ALICE, "GET", "/api/imports?cursor=forged.cursor", None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = as_user(&i.app, ALICE, "GET", "/api/imports?limit=0", None).await;
    assert_eq!(r.status, 400, "{}", r.text);

    // A never-uploaded job deletes; a running one is refused; a finished one deletes with its upload.
    let r = as_user(&i.app, ALICE, "DELETE", &format!("/api/imports/{}", made[0]), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(i.get(ALICE, &made[0]).await.status, 404);
    let store = Arc::clone(&i.state.store);
    let alice = UserId::parse(ALICE).expect("user");
    let id = ImportJobId::parse(&made[1]).expect("id");
    let mut running = store.get_import_job(&alice, &id).await.expect("job");
    let read_at = running.updated_at;
    running.status = ImportJobStatus::Running;
    running.updated_at = read_at + chrono::Duration::milliseconds(1);
    store.update_import_job(&running, read_at).await.expect("running");
    let r = as_user(&i.app, ALICE, "DELETE", &format!("/api/imports/{}", made[1]), None).await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"), "{}", r.text);
    let file = b"[]".to_vec();
    let job = i.job_for(ALICE, "auto", &file).await;
    i.upload(&job, &file).await;
    assert_eq!(
        i.settled(ALICE, id_of(&job)).await["totals"],
        json!({"imported": 0, "skipped": 0, "failed": 0})
    );
    let r = as_user(&i.app, ALICE, "DELETE", &format!("/api/imports/{}", id_of(&job)), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(i.get(ALICE, id_of(&job)).await.status, 404);
}

on_both_stores!(
    |store| imports_app(store).await,
    [
        a_chatgpt_export_uploaded_through_the_form_is_imported_by_the_worker,
        the_same_upload_delivered_twice_or_rerun_imports_once,
        declared_sizes_and_bad_input_are_refused,
        a_file_that_is_no_export_fails_its_job_and_stores_nothing,
        per_item_errors_are_reported_while_the_rest_imports,
        another_users_job_is_not_found_anywhere_and_a_key_naming_another_owner_runs_nothing,
        the_job_list_pages_newest_first_and_finished_jobs_delete,
    ]
);

/// Without file storage (a function without `ATHENA_FILES_BUCKET`) every route says so.
#[tokio::test]
async fn without_file_storage_import_jobs_are_disabled() {
    let store: Arc<dyn Store> = Arc::new(athena_tests::embedded_store());
    let app = athena_tests::spawn_app(store, tokens::jwt_config(tokens::verifier())).await;
    for (method, path, body) in [
        ("POST", "/api/imports", Some(json!({"bytes": 10}))),
        ("GET", "/api/imports", None),
        ("GET", "/api/imports/01JDIMPJ0000000000000000AA", None),
    ] {
        let r = as_user(&app, ALICE, method, path, body).await;
        assert_eq!(
            (r.status, r.code()),
            (501, "IMPORTS_DISABLED"),
            "{method} {path}: {}",
            r.text
        );
    }
}

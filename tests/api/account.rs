//! "Delete my account data" (issue 18), on both stores: a user who chatted, reacted to a reply,
//! bookmarked a message, organised, uploaded, shared a link and was audited erases everything; afterwards the raw tables (every SQLite table read around
//! the store; every DynamoDB item of both tables, scanned) hold nothing that names the user or
//! their analytics hash, their file objects are gone, another user's data is untouched, and the
//! erasure itself is audited under a pseudonymous id.

use std::sync::Arc;

use athena_tests::indexed::IntoIndexed;
use athena_tests::tokens::{self, claims, hs256, SECRET};
use athena_tests::{dynamo_store, spawn_state, unique, with_bearer, TestApp};
use serde_json::{json, Value};
use shared::blobs::disk::DiskBlobs;
use shared::domain::{FileId, UserId};
use shared::state::AppState;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;
use shared::store::prelude::*;

/// A gateway with two JWT users, the scripted model and a directory file store.
async fn app(store: Arc<dyn Store>, files: &std::path::Path) -> TestApp {
    let blobs = DiskBlobs::open(files.to_str().expect("utf-8 path")).expect("file store");
    let state = AppState::new(tokens::jwt_config(tokens::verifier()), Arc::clone(&store))
        .with_chat(
            Arc::new(shared::llm::scripted::ScriptedModel),
            shared::chat::ChatConfig::default(),
        )
        .with_blobs(Arc::new(blobs));
    spawn_state(state, store).await
}

/// Everything a user leaves behind: conversations (one chatted in, one archived in a folder
/// with tags, one in the trash), a project, a prompt, a pending upload with its object, an
/// idempotency record, audit entries, analytics events and counters, budgets, rate counters.
/// Returns the object's path.
async fn leave_traces(app: &TestApp, token: &str, user: &str, files: &std::path::Path) -> Vec<std::path::PathBuf> {
    let call = |method: &'static str, path: String, body: Option<Value>| async move {
        let r = with_bearer(app, token, method, &path, body).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.text
        );
        r
    };
    let chat = call(
        "POST",
        "/api/chat/maintenance".to_owned(),
        Some(json!({"messages": [{"role": "user", "content": "Press 2 trips its alarm"}]})),
    )
    .await;
    assert!(chat.text.contains("text-delta"), "{}", chat.text);
    // A reaction to the reply and a bookmark of the question (the user's own marks).
    let chats = call("GET", "/api/conversations?solutionType=maintenance".to_owned(), None).await;
    let chat_id = chats.json[0]["id"].as_str().expect("chat id").to_owned();
    let messages = call("GET", format!("/api/conversations/{chat_id}/messages"), None).await;
    let (question, reply) = (
        athena_tests::id_of_role(&messages.json, "user"),
        athena_tests::id_of_role(&messages.json, "assistant"),
    );
    call(
        "PUT",
        format!("/api/conversations/{chat_id}/messages/{reply}/reaction"),
        Some(json!({"value": "down", "comment": "the alarm code is wrong"})),
    )
    .await;
    call(
        "PUT",
        format!("/api/conversations/{chat_id}/messages/{question}/bookmark"),
        Some(json!({"note": "ask maintenance"})),
    )
    .await;
    let folder = call("POST", "/api/folders".to_owned(), Some(json!({"name": "Plant A"}))).await;
    let c = call(
        "POST",
        "/api/conversations".to_owned(),
        Some(json!({"title": "kept in a folder"})),
    )
    .await;
    let id = c.json["id"].as_str().expect("id").to_owned();
    // A share link to it (its lookup item is keyed by the token's hash, not by the user).
    let link = call("POST", format!("/api/conversations/{id}/links"), Some(json!({}))).await;
    assert!(link.json["token"].is_string());
    call(
        "PATCH",
        format!("/api/conversations/{id}"),
        Some(json!({"folderId": folder.json["id"], "tags": ["line 3"], "isArchived": true})),
    )
    .await;
    let t = call(
        "POST",
        "/api/conversations".to_owned(),
        Some(json!({"title": "trashed"})),
    )
    .await;
    call(
        "DELETE",
        format!("/api/conversations/{}", t.json["id"].as_str().expect("id")),
        None,
    )
    .await;
    call("POST", "/api/projects".to_owned(), Some(json!({"name": "Line 3"}))).await;
    call(
        "POST",
        "/api/prompts".to_owned(),
        Some(json!({"title": "MTBF", "text": "Compute MTBF for {{machine}}"})),
    )
    .await;
    let keyed = app
        .send(
            app.client
                .post(format!("{}/api/conversations", app.base))
                .bearer_auth(token)
                .header("idempotency-key", "k-1")
                .json(&json!({"title": "keyed"})),
        )
        .await;
    assert_eq!(keyed.status, 201, "{}", keyed.text);
    let upload = call(
        "POST",
        "/api/files".to_owned(),
        Some(json!({"filename": "notes.txt", "mediaType": "text/plain", "size": 5})),
    )
    .await;
    // The browser's upload, as the form would store it.
    let file_id = FileId::parse(upload.json["file"]["id"].as_str().expect("file id")).expect("id");
    let owner = UserId::parse(user).expect("user");
    let stored = app.store.get_file(&owner, &file_id).await.expect("file record");
    let object = files.join(stored.upload_key());
    std::fs::create_dir_all(object.parent().expect("parent")).expect("dir");
    std::fs::write(&object, b"hello").expect("object");
    // An import job whose export file was uploaded (and not imported yet).
    let job = call("POST", "/api/imports".to_owned(), Some(json!({"bytes": 5}))).await;
    assert_eq!(job.status, 201, "{}", job.text);
    let import = files.join(job.json["upload"]["fields"]["key"].as_str().expect("key"));
    std::fs::create_dir_all(import.parent().expect("parent")).expect("dir");
    std::fs::write(&import, b"[   ]").expect("object");
    vec![object, import]
}

const ALICE: &str = "erasure-alice-0001";
const BOB: &str = "erasure-bob-0002";

/// The whole scenario on one store; `raw` dumps every stored item as text; `settle` brings the
/// search index up to date (DynamoDB: the stream consumer, driven with moto's stream records).
async fn erasing_leaves_nothing<F, Fut, S, SFut>(store: Arc<dyn Store>, raw: F, settle: S)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
    S: Fn() -> SFut,
    SFut: std::future::Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(unique("athena-erase-files"));
    let app = app(Arc::clone(&store), &dir).await;
    let (alice, bob) = (hs256(&claims(ALICE), SECRET), hs256(&claims(BOB), SECRET));
    let alice_object = leave_traces(&app, &alice, ALICE, &dir).await;
    let bob_object = leave_traces(&app, &bob, BOB, &dir).await;
    // Events and counters are written in the background: wait until nothing more arrives.
    let hash = shared::analytics::user_hash(&UserId::parse(ALICE).expect("id"));
    // (Unchanged over three checks in a row: one quiet interval on a loaded machine is not enough.)
    let mut seen = raw().await.len();
    let mut quiet = 0;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = raw().await.len();
        quiet = if now == seen { quiet + 1 } else { 0 };
        if quiet == 3 {
            break;
        }
        seen = now;
    }
    settle().await;
    let before = raw().await;
    assert!(before.iter().any(|row| row.contains(ALICE)), "alice's items are stored");
    assert!(
        before
            .iter()
            .any(|row| row.contains(&format!("SRCH#{ALICE}#")) || row.starts_with("search_fts")),
        "alice's messages are indexed for search"
    );
    assert!(
        before.iter().any(|row| row.contains(&hash)),
        "alice's analytics are stored"
    );
    for (table, key) in [("reactions:", "REACT#"), ("bookmarks:", "MARK#")] {
        assert!(
            before
                .iter()
                .any(|row| row.contains(ALICE) && (row.starts_with(table) || row.contains(key))),
            "alice's {table} are stored"
        );
    }
    assert!(
        before
            .iter()
            .any(|row| (row.contains("SHARE#") || row.starts_with("share_links:")) && row.contains(ALICE)),
        "alice's share link is stored"
    );
    // No confirmation: nothing happens.
    let refused = with_bearer(&app, &alice, "DELETE", "/api/account", None).await;
    assert_eq!(
        (refused.status, refused.json["error"]["code"].as_str()),
        (400, Some("VALIDATION"))
    );
    // Nothing is gone; the refused request may only have opened a new rate-limit window (a
    // counter item per minute: the request counts like any other).
    let after_refused = raw().await;
    let gone: Vec<&String> = before
        .iter()
        .filter(|r| !r.contains("rpm#") && !after_refused.contains(r))
        .collect();
    assert!(gone.is_empty(), "a refused erasure removed {gone:#?}");
    let extra: Vec<&String> = after_refused.iter().filter(|r| !before.contains(r)).collect();
    assert!(
        extra.iter().all(|r| r.contains("rpm#")),
        "a refused erasure wrote {extra:#?}"
    );
    let erased = with_bearer(&app, &alice, "DELETE", "/api/account?confirm=true", None).await;
    assert_eq!(erased.status, 200, "{}", erased.text);
    assert_eq!(erased.json["conversations"], json!(4), "{}", erased.text);
    assert_eq!(erased.json["files"], json!(1));
    let audit_id = erased.json["auditId"].as_str().expect("audit id").to_owned();
    // The deletions' stream records take the postings out (DynamoDB).
    settle().await;
    let after = raw().await;
    let left: Vec<&String> = after
        .iter()
        .filter(|row| row.contains(ALICE) || row.contains(&hash))
        .collect();
    assert!(left.is_empty(), "items of alice left: {left:#?}");
    assert!(
        alice_object.iter().all(|o| !o.exists()),
        "alice's uploaded objects are gone"
    );
    // The erasure is audited, under an id that is not hers.
    assert!(audit_id.starts_with("erased-") && !audit_id.contains(ALICE));
    assert!(after
        .iter()
        .any(|row| row.contains(&audit_id) && row.contains("account.erase")));
    // Bob is untouched: his items, his object, his conversations through the API.
    assert!(after.iter().any(|row| row.contains(BOB)));
    assert!(bob_object.iter().all(|o| o.exists()));
    let his = with_bearer(&app, &bob, "GET", "/api/conversations?archived=true", None).await;
    assert_eq!(his.json.as_array().map(Vec::len), Some(1));
    let trash = with_bearer(&app, &bob, "GET", "/api/trash", None).await;
    assert_eq!(trash.json.as_array().map(Vec::len), Some(1));
    // Alice starts from nothing; erasing again finds nothing.
    let mine = with_bearer(&app, &alice, "GET", "/api/conversations", None).await;
    assert_eq!(mine.json, json!([]));
    let again = with_bearer(&app, &alice, "DELETE", "/api/account?confirm=true", None).await;
    assert_eq!(
        (again.json["conversations"].clone(), again.json["files"].clone()),
        (json!(0), json!(0))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_an_account_leaves_no_row_of_the_user_in_sqlite() {
    let dir = std::env::temp_dir().join(unique("athena-erase-db"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("athena.db");
    let store = Arc::new(EmbeddedStore::open(&path).expect("store"));
    let raw = || {
        let path = path.clone();
        async move {
            // Read around the store: every row of every table, as text.
            let conn = rusqlite::Connection::open(&path).expect("open");
            let tables: Vec<String> = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .expect("tables")
                .query_map([], |r| r.get(0))
                .expect("tables")
                .collect::<Result<_, _>>()
                .expect("tables");
            let mut rows = Vec::new();
            for table in tables {
                let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).expect("select");
                let columns = stmt.column_count();
                let mut q = stmt.query([]).expect("query");
                while let Some(row) = q.next().expect("row") {
                    let mut text = format!("{table}:");
                    for i in 0..columns {
                        let v: rusqlite::types::Value = row.get(i).expect("value");
                        text.push_str(&format!(" {v:?}"));
                    }
                    rows.push(text);
                }
            }
            rows
        }
    };
    erasing_leaves_nothing(store, raw, || async {}).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_an_account_leaves_no_item_of_the_user_in_dynamodb() {
    let indexed = dynamo_store().await.indexed().await;
    let store = Arc::clone(&indexed.dynamo.as_ref().expect("dynamodb").0);
    let scanned = Arc::clone(&store);
    let raw = move || {
        let store: Arc<DynamoStore> = Arc::clone(&scanned);
        async move {
            // Every item of both tables (a Scan: the test's own raw view, never the store's).
            let mut rows = Vec::new();
            for table in [store.tables().conversations.clone(), store.tables().events.clone()] {
                let mut start = None;
                loop {
                    let out = store
                        .client()
                        .scan()
                        .table_name(&table)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .expect("scan");
                    for item in out.items.unwrap_or_default() {
                        // As JSON (maps in key order): the same item reads as the same text.
                        let item: serde_json::Value = serde_dynamo::from_item(item).expect("an item as JSON");
                        rows.push(format!("{table}: {item}"));
                    }
                    match out.last_evaluated_key {
                        Some(k) if !k.is_empty() => start = Some(k),
                        _ => break,
                    }
                }
            }
            rows
        }
    };
    let settle = move || {
        let indexed = indexed.clone();
        async move {
            indexed.settle().await;
        }
    };
    erasing_leaves_nothing(store, raw, settle).await;
}

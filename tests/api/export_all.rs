//! Exporting everything (issue 18, deliverable 3): `GET /api/export` on both stores. The JSON is
//! one `athena.export` envelope holding exactly the one-conversation exports; the Markdown is a
//! zip with one `<title>-<id>.md` per conversation (checked byte by byte: headers, CRCs, the
//! central directory); another user's conversations are never in it; the body is produced as the
//! client reads it (a bounded read-ahead: flat memory).

use std::sync::Arc;

use athena_tests::tokens::{self, as_user};
use athena_tests::{on_both_stores, spawn_app, workspace_root, TestApp};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use shared::api::{export_all, routes::Scope, ApiRequest, AppState};
use shared::config::Config;
use shared::domain::{Conversation, IdGenerator, Message, Role};
use shared::store::counting::CountingStore;
use shared::store::Store;

const ALICE: &str = "alice-0001";
const BOB: &str = "bob-0002";

async fn seed(app: &TestApp) -> Vec<String> {
    let text =
        std::fs::read_to_string(workspace_root().join("tests/fixtures/chatgpt-conversations.json")).expect("fixture");
    let file: Value = serde_json::from_str(&text).expect("json");
    let r = as_user(app, ALICE, "POST", "/api/import", Some(file)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut ids: Vec<String> = r.json["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|i| i["conversationId"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let made = as_user(
        app,
        ALICE,
        "POST",
        "/api/conversations",
        Some(json!({"id": "made-here", "title": "Made here / ü"})),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let said = as_user(
        app,
        ALICE,
        "POST",
        "/api/conversations/made-here/messages",
        Some(json!({"role": "user", "content": "Hello"})),
    )
    .await;
    assert_eq!(said.status, 201, "{}", said.text);
    ids.push("made-here".to_owned());
    // "Everything" is the default list and the archive; the trash is not exported.
    let archived = as_user(
        app,
        ALICE,
        "PATCH",
        "/api/conversations/made-here",
        Some(json!({"isArchived": true})),
    )
    .await;
    assert_eq!(archived.status, 200, "{}", archived.text);
    let binned = as_user(
        app,
        ALICE,
        "POST",
        "/api/conversations",
        Some(json!({"id": "in-the-trash", "title": "In the trash"})),
    )
    .await;
    assert_eq!(binned.status, 201, "{}", binned.text);
    let trashed = as_user(app, ALICE, "DELETE", "/api/conversations/in-the-trash", None).await;
    assert_eq!(trashed.status, 200, "{}", trashed.text);
    // The rest of the account goes with it: a folder, a tag.
    let folder = as_user(app, ALICE, "POST", "/api/folders", Some(json!({"name": "Plant A"}))).await;
    assert_eq!(folder.status, 201, "{}", folder.text);
    let tagged = as_user(
        app,
        ALICE,
        "PATCH",
        "/api/conversations/made-here",
        Some(json!({"tags": ["Kept"], "folderId": folder.json["id"]})),
    )
    .await;
    assert_eq!(tagged.status, 200, "{}", tagged.text);
    let bobs = as_user(
        app,
        BOB,
        "POST",
        "/api/conversations",
        Some(json!({"id": "bobs-secret", "title": "Bob's secret plan"})),
    )
    .await;
    assert_eq!(bobs.status, 201, "{}", bobs.text);
    ids
}

/// The files of a zip, read from its local headers; the central directory is checked against
/// them.
fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
    let mut files = Vec::new();
    let mut at = 0;
    while bytes[at..].starts_with(&[0x50, 0x4b, 0x03, 0x04]) {
        let (crc, size, name_len, extra) = (u32_at(at + 14), u32_at(at + 18), u16_at(at + 26), u16_at(at + 28));
        assert_eq!(u16_at(at + 8), 0, "stored");
        let name = String::from_utf8(bytes[at + 30..at + 30 + name_len].to_vec()).expect("utf-8 name");
        let start = at + 30 + name_len + extra;
        let data = &bytes[start..start + size];
        assert_eq!(crc32fast::hash(data) as usize, crc, "{name}: CRC-32");
        files.push((name, String::from_utf8(data.to_vec()).expect("utf-8 Markdown")));
        at = start + size;
    }
    let end = bytes.len() - 22;
    assert!(bytes[end..].starts_with(&[0x50, 0x4b, 0x05, 0x06]), "an end record");
    assert_eq!(u16_at(end + 10), files.len(), "every file in the directory");
    assert_eq!(u32_at(end + 16), at, "the directory follows the files");
    assert_eq!(u32_at(end + 12), end - at, "the directory's size");
    files
}

async fn raw(app: &TestApp, user: &str, path: &str) -> (u16, String, Vec<u8>) {
    let res = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(tokens::token(user))
        .send()
        .await
        .expect("send");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ct, res.bytes().await.expect("body").to_vec())
}

async fn everything_exports_as_json_and_as_a_zip_of_markdown_and_only_the_callers(app: TestApp) {
    let ids = seed(&app).await;
    let r = as_user(&app, ALICE, "GET", "/api/export", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment; filename=\"athena-export-") && d.ends_with(".json\"")),
        "{:?}",
        r.header("content-disposition")
    );
    let doc = &r.json;
    assert_eq!(
        (doc["format"].clone(), doc["version"].clone()),
        (json!("athena.export"), json!(1))
    );
    let conversations = doc["conversations"].as_array().cloned().unwrap_or_default();
    let mut exported: Vec<String> = conversations
        .iter()
        .filter_map(|c| c["conversation"]["id"].as_str().map(str::to_owned))
        .collect();
    exported.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(exported, expected, "every conversation of Alice's, once");
    assert!(!r.text.contains("Bob's secret plan"), "never another user's");
    for c in &conversations {
        let id = c["conversation"]["id"].as_str().unwrap_or_default();
        let one = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}/export"), None).await;
        let (mut a, mut b) = (c.clone(), one.json.clone());
        a["exportedAt"] = Value::Null;
        b["exportedAt"] = Value::Null;
        assert_eq!(a, b, "{id}: exactly the one-conversation export");
    }
    // The rest of Alice's data, and none of Bob's.
    let account = &doc["account"];
    assert_eq!(account["folders"][0]["name"], json!("Plant A"), "{account}");
    assert_eq!(account["tags"], json!([{"tag": "kept", "conversations": 1}]));
    assert!(account["usage"]["byModel"].is_object(), "{account}");
    let actions: Vec<&str> = account["audit"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        actions.contains(&"conversations.import") && actions.contains(&"folder.create"),
        "{actions:?}"
    );
    assert!(!account.to_string().contains("bob"), "{account}");
    // The envelope imports back: everything is already there.
    let again = as_user(&app, ALICE, "POST", "/api/import", Some(doc.clone())).await;
    assert_eq!(again.json["totals"], json!({"imported": 0, "skipped": 3, "failed": 0}));

    // Markdown: a zip, one readable page per conversation.
    let checked = as_user(&app, ALICE, "GET", "/api/export?format=markdown", None).await;
    assert_eq!(checked.status, 200);
    let (status, ct, bytes) = raw(&app, ALICE, "/api/export?format=markdown").await;
    assert_eq!((status, ct.as_str()), (200, "application/zip"));
    let mut files = unzip(&bytes);
    let account_file = files
        .iter()
        .position(|(n, _)| n == "account.json")
        .expect("account.json");
    let (_, account_json) = files.remove(account_file);
    let in_zip: Value = serde_json::from_str(&account_json).expect("account.json is JSON");
    assert_eq!(in_zip["folders"][0]["name"], json!("Plant A"));
    assert_eq!(files.len(), conversations.len());
    for c in &conversations {
        let id = c["conversation"]["id"].as_str().unwrap_or_default();
        let suffix = format!("-{id}.md");
        let named: Vec<&str> = files
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| n.ends_with(&suffix))
            .collect();
        assert_eq!(named.len(), 1, "{id}: one file, named after it");
        let title = &named[0][..named[0].len() - suffix.len()];
        assert!(
            !title.is_empty()
                && title
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{named:?}"
        );
    }
    assert!(files.iter().any(|(n, _)| n == "made-here-made-here.md"), "a safe title");
    let plan = files
        .iter()
        .find(|(n, _)| n.starts_with("press-2-maintenance-plan-"))
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    assert!(plan.starts_with("# Press 2 maintenance plan\n"), "{plan}");
    assert!(plan.contains("The first week of April is 17 days late"), "{plan}");
    assert!(
        !plan.contains("Pushing it to April"),
        "the other branch is not shown: {plan}"
    );
    assert!(files.iter().all(|(_, t)| !t.contains("Bob's secret")));

    // Bob's export is Bob's alone; a bad format is 400; no caller is 401.
    let bobs = as_user(&app, BOB, "GET", "/api/export", None).await;
    let theirs: Vec<&str> = bobs.json["conversations"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["conversation"]["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(theirs, ["bobs-secret"]);
    let (_, _, bob_zip) = raw(&app, BOB, "/api/export?format=markdown").await;
    assert_eq!(unzip(&bob_zip).len(), 2, "his conversation and account.json");
    let bad = as_user(&app, ALICE, "GET", "/api/export?format=pdf", None).await;
    assert_eq!((bad.status, bad.code()), (400, "VALIDATION"));
    assert_eq!(app.call("GET", "/api/export", None).await.status, 401);
    // Audited.
    let audit = as_user(&app, ALICE, "GET", "/api/audit", None).await;
    assert!(audit.text.contains("conversations.export"), "{}", audit.text);
    // Nothing to export: an empty envelope, an empty zip.
    let nobody = as_user(&app, "carol-0003", "GET", "/api/export", None).await;
    assert_eq!(nobody.json["conversations"], json!([]));
    let (_, _, empty_zip) = raw(&app, "carol-0003", "/api/export?format=markdown").await;
    let names: Vec<String> = unzip(&empty_zip).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["account.json"]);
}

on_both_stores!(
    |store| spawn_app(Arc::new(store), tokens::jwt_config(tokens::verifier())).await,
    [everything_exports_as_json_and_as_a_zip_of_markdown_and_only_the_callers]
);

/// Streaming (the tests' paths: `export_all::streaming::<store>::...`).
mod streaming {
    use super::*;

    /// The export is written as it is read: with the client holding the first chunk and reading no
    /// further, at most the read-ahead's conversations have been read from the store; reading on
    /// brings the rest. (Flat memory: what is held is bounded by the read-ahead, not the account.)
    async fn the_export_is_produced_as_the_client_reads_it(store: Arc<dyn Store>) {
        let counting = Arc::new(CountingStore::new(store));
        let state = Arc::new(AppState::new(Config::local(), Arc::clone(&counting) as Arc<dyn Store>));
        let ids = IdGenerator::new();
        let owner = athena_tests::local_user();
        let n = 12;
        for i in 0..n {
            let c = Conversation::new(
                ids.conversation_id(),
                owner.clone(),
                format!("C{i}"),
                "m",
                None,
                shared::domain::now(),
            );
            let m = Message::text(
                ids.message_id(),
                c.id.clone(),
                Role::User,
                format!("text {i}"),
                c.created_at,
            );
            counting.inner().create_conversation(&c, &[m]).await.expect("create");
        }
        for format in ["json", "markdown"] {
            counting.take();
            let req = ApiRequest::get("/api/export", &[("format", format)], "r-1");
            let response = shared::api::handle(&state, Scope::All, req).await;
            assert_eq!(response.status(), 200);
            let mut body = response.into_body();
            let first = body.frame().await.expect("a first chunk").expect("infallible");
            assert!(first.is_data());
            let read = || {
                counting
                    .snapshot()
                    .iter()
                    .filter(|c| **c == "get_conversation_with_messages")
                    .count()
            };
            let bound = export_all::READ_AHEAD + 2;
            // Give the producer every chance to run ahead (the bound holds whatever the timing;
            // the wait only lets a producer that ignored it show it).
            for _ in 0..50 {
                if read() > bound {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert!(
                read() <= bound,
                "{format}: {} of {n} read before the client read on",
                read()
            );
            let mut chunks = 1;
            while let Some(frame) = body.frame().await {
                if frame.expect("infallible").is_data() {
                    chunks += 1;
                }
            }
            assert_eq!(read(), n, "{format}: then every one");
            assert!(chunks > n, "{format}: one chunk per conversation at least ({chunks})");
        }
    }

    on_both_stores!([the_export_is_produced_as_the_client_reads_it]);
}

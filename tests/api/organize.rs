//! Organising over HTTP (issue 18), on both stores: folders (create, nest one level, rename,
//! move, delete with their conversations moved out), tags (normalised, at most 20, listed with
//! counts), the listing's filters (folder, tag, solution, pinned, archived) with their errors,
//! the trash (delete moves there, restore, delete forever, empty, 404 everywhere else, files
//! deleted only when purged), the housekeeping's purge and retention, each audited; and
//! another user's folder, tag or trashed conversation is never visible or touchable.

use std::sync::Arc;

use athena_tests::tokens::{self, claims, hs256, SECRET};
use athena_tests::{embedded_store, on_both_stores, spawn_app, spawn_shared_state, with_bearer, TestApp};
use serde_json::{json, Value};
use shared::config::Config;
use shared::domain::{ManualClock, TRASH_DAYS};
use shared::state::AppState;
use shared::store::Store;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(id).collect()
}

async fn ok(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> Value {
    let r = app.call(method, path, body).await;
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {} {}",
        r.status,
        r.text
    );
    r.json
}

async fn refused(app: &TestApp, method: &str, path: &str, body: Option<Value>, status: u16, code: &str) {
    let r = app.call(method, path, body).await;
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (status, Some(code)),
        "{method} {path}: {}",
        r.text
    );
}

async fn conversation(app: &TestApp, body: Value) -> String {
    id(&ok(app, "POST", "/api/conversations", Some(body)).await)
}

/// The actions of the local user's audit entries, newest first.
async fn audited(app: &TestApp) -> Vec<String> {
    let r = ok(app, "GET", "/api/audit", None).await;
    r.as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn folders_nest_one_level_and_take_their_conversations_out_when_deleted(app: TestApp) {
    let plant = ok(&app, "POST", "/api/folders", Some(json!({"name": "  Plant A "}))).await;
    assert_eq!(
        (plant["name"].clone(), plant["parentId"].clone()),
        (json!("Plant A"), Value::Null)
    );
    let line = ok(
        &app,
        "POST",
        "/api/folders",
        Some(json!({"name": "Line 3", "parentId": id(&plant)})),
    )
    .await;
    assert_eq!(line["parentId"], json!(id(&plant)));
    // One level only, a real parent, a real name.
    refused(
        &app,
        "POST",
        "/api/folders",
        Some(json!({"name": "Deep", "parentId": id(&line)})),
        400,
        "VALIDATION",
    )
    .await;
    refused(
        &app,
        "POST",
        "/api/folders",
        Some(json!({"name": "x", "parentId": "01NOSUCHFOLDER"})),
        404,
        "NOT_FOUND",
    )
    .await;
    refused(
        &app,
        "POST",
        "/api/folders",
        Some(json!({"name": "   "})),
        400,
        "VALIDATION",
    )
    .await;
    refused(
        &app,
        "POST",
        "/api/folders",
        Some(json!({"name": "x".repeat(65)})),
        400,
        "VALIDATION",
    )
    .await;
    refused(
        &app,
        "POST",
        "/api/folders",
        Some(json!({"name": "x", "color": "red"})),
        400,
        "VALIDATION",
    )
    .await;
    let plant_path = format!("/api/folders/{}", id(&plant));
    // A folder with a subfolder cannot go under another; a folder cannot go under itself.
    let other = ok(&app, "POST", "/api/folders", Some(json!({"name": "Other"}))).await;
    refused(
        &app,
        "PATCH",
        &plant_path,
        Some(json!({"parentId": id(&other)})),
        400,
        "VALIDATION",
    )
    .await;
    refused(
        &app,
        "PATCH",
        &plant_path,
        Some(json!({"parentId": id(&plant)})),
        400,
        "VALIDATION",
    )
    .await;
    refused(&app, "PATCH", &plant_path, Some(json!({})), 400, "VALIDATION").await;
    let renamed = ok(&app, "PATCH", &plant_path, Some(json!({"name": "Plant A north"}))).await;
    assert_eq!(renamed["name"], "Plant A north");
    assert!(renamed["updatedAt"].as_str() > plant["updatedAt"].as_str());
    let line_path = format!("/api/folders/{}", id(&line));
    let moved = ok(&app, "PATCH", &line_path, Some(json!({"parentId": null}))).await;
    assert_eq!(moved["parentId"], Value::Null);
    ok(&app, "PATCH", &line_path, Some(json!({"parentId": id(&plant)}))).await;
    assert_eq!(
        ok(&app, "GET", "/api/folders", None).await.as_array().map(Vec::len),
        Some(3)
    );
    // Conversations go into folders and are listed by folder.
    let a = conversation(&app, json!({"title": "A"})).await;
    let b = conversation(&app, json!({"title": "B"})).await;
    ok(
        &app,
        "PATCH",
        &format!("/api/conversations/{a}"),
        Some(json!({"folderId": id(&plant)})),
    )
    .await;
    let in_line = ok(
        &app,
        "PATCH",
        &format!("/api/conversations/{b}"),
        Some(json!({"folderId": id(&line)})),
    )
    .await;
    assert_eq!(in_line["folderId"], json!(id(&line)));
    refused(
        &app,
        "PATCH",
        &format!("/api/conversations/{b}"),
        Some(json!({"folderId": "01NOSUCHFOLDER"})),
        404,
        "NOT_FOUND",
    )
    .await;
    let listed = ok(
        &app,
        "GET",
        &format!("/api/conversations?folderId={}", id(&plant)),
        None,
    )
    .await;
    assert_eq!(
        ids(&listed),
        vec![a.clone()],
        "its own conversations, not its subfolder's"
    );
    refused(
        &app,
        "GET",
        "/api/conversations?folderId=not%20an%20id",
        None,
        400,
        "VALIDATION",
    )
    .await;
    // Deleting the top folder takes its subfolder; both conversations move to no folder.
    let deleted = ok(&app, "DELETE", &plant_path, None).await;
    assert_eq!(deleted, json!({"success": true, "folders": 2, "conversations": 2}));
    for c in [&a, &b] {
        let got = ok(&app, "GET", &format!("/api/conversations/{c}"), None).await;
        assert_eq!(got["folderId"], Value::Null);
    }
    assert_eq!(ids(&ok(&app, "GET", "/api/folders", None).await), vec![id(&other)]);
    refused(&app, "GET", &plant_path, None, 404, "NOT_FOUND").await;
    let actions = audited(&app).await;
    for action in ["folder.create", "folder.update", "folder.delete"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

async fn tags_are_normalised_counted_and_filter_the_listing(app: TestApp) {
    let a = conversation(&app, json!({"title": "A", "solutionType": "maintenance"})).await;
    let b = conversation(&app, json!({"title": "B"})).await;
    let tagged = ok(
        &app,
        "PATCH",
        &format!("/api/conversations/{a}"),
        Some(json!({"tags": ["  Line   3 ", "line 3", "YIELD"]})),
    )
    .await;
    assert_eq!(tagged["tags"], json!(["line 3", "yield"]));
    ok(
        &app,
        "PATCH",
        &format!("/api/conversations/{b}"),
        Some(json!({"tags": ["yield"], "isPinned": true})),
    )
    .await;
    let too_many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    refused(
        &app,
        "PATCH",
        &format!("/api/conversations/{b}"),
        Some(json!({"tags": too_many})),
        400,
        "VALIDATION",
    )
    .await;
    refused(
        &app,
        "PATCH",
        &format!("/api/conversations/{b}"),
        Some(json!({"tags": ["x".repeat(33)]})),
        400,
        "VALIDATION",
    )
    .await;
    refused(
        &app,
        "PATCH",
        &format!("/api/conversations/{b}"),
        Some(json!({"tags": [" "]})),
        400,
        "VALIDATION",
    )
    .await;
    // The refusals changed nothing.
    let b_now = ok(&app, "GET", &format!("/api/conversations/{b}"), None).await;
    assert_eq!(b_now["tags"], json!(["yield"]));
    assert_eq!(
        ok(&app, "GET", "/api/tags", None).await,
        json!([{"tag": "yield", "conversations": 2}, {"tag": "line 3", "conversations": 1}])
    );
    let by = |q: &str| format!("/api/conversations?{q}");
    assert_eq!(
        ids(&ok(&app, "GET", &by("tag=YIELD"), None).await),
        vec![b.clone(), a.clone()]
    );
    assert_eq!(ids(&ok(&app, "GET", &by("tag=Line%203"), None).await), vec![a.clone()]);
    assert_eq!(
        ids(&ok(&app, "GET", &by("tag=yield&pinned=false"), None).await),
        vec![a.clone()]
    );
    assert_eq!(
        ids(&ok(&app, "GET", &by("tag=yield&solutionType=general"), None).await),
        vec![b.clone()]
    );
    assert_eq!(ids(&ok(&app, "GET", &by("pinned=true"), None).await), vec![b.clone()]);
    refused(&app, "GET", &by("pinned=yes"), None, 400, "VALIDATION").await;
    refused(&app, "GET", &by("archived=1"), None, 400, "VALIDATION").await;
    refused(
        &app,
        "GET",
        &by(&format!("tag={}", "x".repeat(40))),
        None,
        400,
        "VALIDATION",
    )
    .await;
    // Archived: out of the default list, in the archive, filters still apply.
    let archived = ok(
        &app,
        "PATCH",
        &format!("/api/conversations/{a}"),
        Some(json!({"isArchived": true})),
    )
    .await;
    assert_eq!(archived["isArchived"], json!(true));
    assert_eq!(ids(&ok(&app, "GET", &by(""), None).await), vec![b.clone()]);
    assert_eq!(ids(&ok(&app, "GET", &by("archived=true"), None).await), vec![a.clone()]);
    assert_eq!(
        ids(&ok(&app, "GET", &by("archived=true&tag=yield"), None).await),
        vec![a.clone()]
    );
    ok(
        &app,
        "PATCH",
        &format!("/api/conversations/{a}"),
        Some(json!({"isArchived": false})),
    )
    .await;
    assert_eq!(
        ids(&ok(&app, "GET", &by(""), None).await),
        vec![b.clone(), a.clone()],
        "b is pinned"
    );
}

async fn the_trash_keeps_a_deleted_conversation_until_it_is_restored_or_purged(app: TestApp) {
    let a = conversation(&app, json!({"title": "A"})).await;
    let b = conversation(&app, json!({"title": "B"})).await;
    ok(
        &app,
        "POST",
        &format!("/api/conversations/{a}/messages"),
        Some(json!({"role": "user", "content": "keep me"})),
    )
    .await;
    ok(
        &app,
        "PATCH",
        &format!("/api/conversations/{a}"),
        Some(json!({"tags": ["kept"]})),
    )
    .await;
    let deleted = ok(&app, "DELETE", &format!("/api/conversations/{a}"), None).await;
    assert_eq!(deleted, json!({"success": true}));
    // Gone from every route but the trash.
    let path = format!("/api/conversations/{a}");
    refused(&app, "GET", &path, None, 404, "NOT_FOUND").await;
    refused(&app, "PATCH", &path, Some(json!({"title": "x"})), 404, "NOT_FOUND").await;
    refused(&app, "GET", &format!("{path}/messages"), None, 404, "NOT_FOUND").await;
    refused(
        &app,
        "POST",
        &format!("{path}/messages"),
        Some(json!({"role": "user", "content": "x"})),
        404,
        "NOT_FOUND",
    )
    .await;
    refused(&app, "DELETE", &path, None, 404, "NOT_FOUND").await;
    assert_eq!(ids(&ok(&app, "GET", "/api/conversations", None).await), vec![b.clone()]);
    assert_eq!(ok(&app, "GET", "/api/tags", None).await, json!([]));
    let trash = ok(&app, "GET", "/api/trash", None).await;
    assert_eq!(ids(&trash), vec![a.clone()]);
    let trashed_at = trash[0]["trashedAt"].as_str().expect("trashedAt");
    let purge_at = trash[0]["purgeAt"].as_str().expect("purgeAt");
    let days = chrono::DateTime::parse_from_rfc3339(purge_at).expect("ts")
        - chrono::DateTime::parse_from_rfc3339(trashed_at).expect("ts");
    assert_eq!(days.num_days(), TRASH_DAYS);
    // Restored: everything is back.
    let restored = ok(&app, "POST", &format!("/api/trash/{a}/restore"), None).await;
    assert_eq!(
        (restored["title"].clone(), restored["tags"].clone()),
        (json!("A"), json!(["kept"]))
    );
    assert!(restored.get("trashedAt").is_none());
    let full = ok(&app, "GET", &path, None).await;
    assert_eq!(full["messages"].as_array().map(Vec::len), Some(1));
    refused(&app, "POST", &format!("/api/trash/{a}/restore"), None, 404, "NOT_FOUND").await;
    // "Delete forever" only takes what is in the trash; "permanent" skips the trash.
    refused(&app, "DELETE", &format!("/api/trash/{a}"), None, 404, "NOT_FOUND").await;
    ok(&app, "DELETE", &path, None).await;
    ok(&app, "DELETE", &format!("/api/trash/{a}"), None).await;
    refused(&app, "POST", &format!("/api/trash/{a}/restore"), None, 404, "NOT_FOUND").await;
    assert_eq!(ok(&app, "GET", "/api/trash", None).await, json!([]));
    ok(&app, "DELETE", &format!("/api/conversations/{b}?permanent=true"), None).await;
    assert_eq!(ok(&app, "GET", "/api/trash", None).await, json!([]));
    refused(
        &app,
        "DELETE",
        &format!("/api/conversations/{b}?permanent=maybe"),
        None,
        400,
        "VALIDATION",
    )
    .await;
    // Empty the trash.
    let c = conversation(&app, json!({"title": "C"})).await;
    let d = conversation(&app, json!({"title": "D"})).await;
    for x in [&c, &d] {
        ok(&app, "DELETE", &format!("/api/conversations/{x}"), None).await;
    }
    assert_eq!(
        ids(&ok(&app, "GET", "/api/trash", None).await),
        vec![d.clone(), c.clone()]
    );
    assert_eq!(
        ok(&app, "DELETE", "/api/trash", None).await,
        json!({"success": true, "deleted": 2})
    );
    assert_eq!(ok(&app, "GET", "/api/trash", None).await, json!([]));
    let actions = audited(&app).await;
    for action in [
        "conversation.delete",
        "conversation.restore",
        "conversation.purge",
        "trash.empty",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

on_both_stores!(
    |store| spawn_app(Arc::new(store), Config::local()).await,
    [
        folders_nest_one_level_and_take_their_conversations_out_when_deleted,
        tags_are_normalised_counted_and_filter_the_listing,
        the_trash_keeps_a_deleted_conversation_until_it_is_restored_or_purged,
    ]
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_folders_tags_and_trash_are_never_visible_or_touchable() {
    let app = athena_tests::spawn_chat_app(
        Arc::new(embedded_store()),
        tokens::jwt_config(tokens::verifier()),
        shared::chat::ChatConfig::default(),
    )
    .await;
    let alice = hs256(&claims("alice-0001"), SECRET);
    let bob = hs256(&claims("bob-0002"), SECRET);
    let f = with_bearer(&app, &alice, "POST", "/api/folders", Some(json!({"name": "Alice's"}))).await;
    assert_eq!(f.status, 201, "{}", f.text);
    let folder = id(&f.json);
    let c = with_bearer(
        &app,
        &alice,
        "POST",
        "/api/conversations",
        Some(json!({"title": "secret"})),
    )
    .await;
    let conv = id(&c.json);
    let t = with_bearer(
        &app,
        &alice,
        "PATCH",
        &format!("/api/conversations/{conv}"),
        Some(json!({"tags": ["secret-tag"], "folderId": folder})),
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let trashed = with_bearer(
        &app,
        &alice,
        "POST",
        "/api/conversations",
        Some(json!({"title": "trashed"})),
    )
    .await;
    let gone = id(&trashed.json);
    assert_eq!(
        with_bearer(&app, &alice, "DELETE", &format!("/api/conversations/{gone}"), None)
            .await
            .status,
        200
    );
    let attacks: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/folders/{folder}"), None),
        (
            "PATCH",
            format!("/api/folders/{folder}"),
            Some(json!({"name": "pwned"})),
        ),
        ("DELETE", format!("/api/folders/{folder}"), None),
        (
            "POST",
            "/api/folders".to_owned(),
            Some(json!({"name": "x", "parentId": folder})),
        ),
        ("PATCH", format!("/api/conversations/{conv}"), Some(json!({"tags": []}))),
        ("POST", format!("/api/trash/{gone}/restore"), None),
        ("DELETE", format!("/api/trash/{gone}"), None),
        ("DELETE", format!("/api/conversations/{conv}"), None),
    ];
    for (method, path, body) in attacks {
        let r = with_bearer(&app, &bob, method, &path, body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
    }
    // Bob's own (empty) conversation in a folder of Alice's id is refused too.
    let own = with_bearer(&app, &bob, "POST", "/api/conversations", Some(json!({}))).await;
    let r = with_bearer(
        &app,
        &bob,
        "PATCH",
        &format!("/api/conversations/{}", id(&own.json)),
        Some(json!({"folderId": folder})),
    )
    .await;
    assert_eq!(r.status, 404);
    for (path, expected) in [
        ("/api/folders".to_owned(), json!([])),
        ("/api/tags".to_owned(), json!([])),
        ("/api/trash".to_owned(), json!([])),
        (format!("/api/conversations?folderId={folder}"), json!([])),
        ("/api/conversations?tag=secret-tag".to_owned(), json!([])),
    ] {
        let r = with_bearer(&app, &bob, "GET", &path, None).await;
        assert_eq!((r.status, r.json.clone()), (200, expected), "{path}");
    }
    let emptied = with_bearer(&app, &bob, "DELETE", "/api/trash", None).await;
    assert_eq!(emptied.json, json!({"success": true, "deleted": 0}));
    // Alice's things are untouched.
    let mine = with_bearer(&app, &alice, "GET", "/api/trash", None).await;
    assert_eq!(ids(&mine.json), vec![gone]);
    let tags = with_bearer(&app, &alice, "GET", "/api/tags", None).await;
    assert_eq!(tags.json, json!([{"tag": "secret-tag", "conversations": 1}]));
    let f = with_bearer(&app, &alice, "GET", &format!("/api/folders/{folder}"), None).await;
    assert_eq!(f.json["name"], "Alice's");
}

/// Housekeeping on a store: a conversation trashed 30 days ago is purged; with
/// `ATHENA_RETENTION_DAYS` an untouched one goes to the trash, a pinned or recent one stays.
async fn housekeeping_purges_the_old_trash_and_applies_retention(store: Arc<dyn Store>) {
    let clock = Arc::new(ManualClock::new(shared::domain::now()));
    let config = Config {
        retention_days: 90,
        ..Config::local()
    };
    let state = Arc::new(AppState::new(config, store.clone()).with_clock(clock.clone()));
    let options = shared::local::ServeOptions::for_config(&state.config);
    let app = spawn_shared_state(Arc::clone(&state), store.clone(), options).await;
    let old = conversation(&app, json!({"title": "old"})).await;
    ok(
        &app,
        "POST",
        &format!("/api/conversations/{old}/messages"),
        Some(json!({"role": "user", "content": "x"})),
    )
    .await;
    let pinned = conversation(&app, json!({"title": "pinned"})).await;
    ok(
        &app,
        "PATCH",
        &format!("/api/conversations/{pinned}"),
        Some(json!({"isPinned": true})),
    )
    .await;
    let doomed = conversation(&app, json!({"title": "doomed"})).await;
    ok(&app, "DELETE", &format!("/api/conversations/{doomed}"), None).await;
    clock.advance(chrono::Duration::days(29));
    assert_eq!(
        shared::api::organize::housekeeping(&state).await.expect("housekeeping"),
        (0, 0),
        "29 days: nothing is due"
    );
    clock.advance(chrono::Duration::days(2));
    let fresh = conversation(&app, json!({"title": "fresh"})).await;
    let (retired, purged) = shared::api::organize::housekeeping(&state).await.expect("housekeeping");
    assert_eq!(
        (retired, purged),
        (0, 1),
        "31 days: the trashed one is purged, nothing is 90 days old"
    );
    assert_eq!(ok(&app, "GET", "/api/trash", None).await, json!([]));
    refused(
        &app,
        "POST",
        &format!("/api/trash/{doomed}/restore"),
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    clock.advance(chrono::Duration::days(60));
    let (retired, purged) = shared::api::organize::housekeeping(&state).await.expect("housekeeping");
    assert_eq!(
        (retired, purged),
        (1, 0),
        "91 days untouched: 'old' goes to the trash, 'pinned' stays"
    );
    assert_eq!(ids(&ok(&app, "GET", "/api/trash", None).await), vec![old.clone()]);
    assert_eq!(
        ids(&ok(&app, "GET", "/api/conversations", None).await),
        vec![pinned.clone(), fresh]
    );
    // Restorable for 30 days like anything else in the trash, with its message.
    ok(&app, "POST", &format!("/api/trash/{old}/restore"), None).await;
    let back = ok(&app, "GET", &format!("/api/conversations/{old}"), None).await;
    assert_eq!(back["messages"].as_array().map(Vec::len), Some(1));
}

/// The housekeeping tests (paths `organize::housekeeping::<store>::...`).
mod housekeeping {
    use super::*;
    on_both_stores!(
        |store| Arc::new(store) as Arc<dyn Store>,
        [housekeeping_purges_the_old_trash_and_applies_retention]
    );
}

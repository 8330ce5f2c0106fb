//! The conversations and messages API over real HTTP (reqwest) against the gateway, on both
//! stores. Every response is also checked against `docs/openapi.yaml`.

use std::sync::Arc;

use athena_tests::{
    embedded_store, mid_minute, parse_sse, post_chat, spawn_app, spawn_chat_app, spawn_state, text_of, Reply, TestApp,
};
use serde_json::{json, Value};
use shared::api::AppState;
use shared::chat::ChatConfig;
use shared::config::{AuthMode, Config, Cors};
use shared::domain::{Clock, ManualClock, UserId};
use shared::store::counting::CountingStore;
use shared::store::Store;

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

async fn the_seed_flow_works_end_to_end(app: TestApp) {
    // Create, as the seed frontend does.
    let created = app
        .call(
            "POST",
            "/api/conversations",
            Some(json!({"title": "New conversation", "model": SONNET})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/conversations/{id}").as_str())
    );
    assert_eq!(created.json["title"], "New conversation");
    assert_eq!(created.json["isPinned"], false);
    assert_eq!(created.json["isShared"], false);
    assert_eq!(created.json["model"], SONNET);
    assert_eq!(created.json["solutionType"], Value::Null);
    assert_eq!(created.json["lastMessage"], Value::Null);
    assert!(created.json["createdAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.len() == 24));

    // Add messages.
    let messages_path = format!("/api/conversations/{id}/messages");
    let first = app
        .call(
            "POST",
            &messages_path,
            Some(json!({"role": "user", "content": "Hello, Claude!"})),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json["role"], "user");
    assert_eq!(first.json["content"], "Hello, Claude!");
    assert_eq!(first.json["conversationId"], id.as_str());
    let second = app
        .call(
            "POST",
            &messages_path,
            Some(json!({"role": "assistant", "content": "Hi there!"})),
        )
        .await;
    assert_eq!(second.status, 201);

    // List: the conversation carries its last message.
    let list = app.call("GET", "/api/conversations", None).await;
    assert_eq!(list.status, 200);
    let listed = list.json.as_array().expect("array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["lastMessage"], "Hi there!");
    assert_eq!(listed[0]["messageCount"], 2);
    assert!(list.header("x-next-cursor").is_none());

    // Messages in order.
    let messages = app.call("GET", &messages_path, None).await;
    let contents: Vec<&str> = messages
        .json
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(contents, ["Hello, Claude!", "Hi there!"]);

    // Patch.
    let path = format!("/api/conversations/{id}");
    let patched = app
        .call(
            "PATCH",
            &path,
            Some(json!({"title": "Updated title", "isPinned": true, "isShared": true, "model": HAIKU})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["title"], "Updated title");
    assert_eq!(patched.json["isPinned"], true);
    assert_eq!(patched.json["isShared"], true);
    assert_eq!(patched.json["model"], HAIKU);
    assert!(patched.json["updatedAt"].as_str() >= created.json["updatedAt"].as_str());

    // Get with messages.
    let got = app.call("GET", &path, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json["title"], "Updated title");
    assert_eq!(got.json["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(got.json["messages"][0]["content"], "Hello, Claude!");

    // Clear.
    let cleared = app.call("DELETE", &messages_path, None).await;
    assert_eq!(cleared.status, 200);
    assert_eq!(cleared.json, json!({"success": true, "deletedCount": 2}));
    let got = app.call("GET", &path, None).await;
    assert_eq!(got.json["messages"], json!([]));

    // Delete.
    let deleted = app.call("DELETE", &path, None).await;
    assert_eq!(deleted.json, json!({"success": true}));
    let gone = app.call("GET", &path, None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.code(), "NOT_FOUND");
    assert_eq!(app.call("DELETE", &path, None).await.status, 404);
}

async fn invalid_input_is_refused_with_field_details_and_nothing_is_stored(app: TestApp) {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"title": ""}), "title"),
        (json!({"title": "x".repeat(101)}), "title"),
        (json!({"model": "gpt-4"}), "model"),
        (json!({"solutionType": "finance"}), "solutionType"),
        (json!({"title": 5}), "title"),
        (json!({"id": "../../etc"}), "id"),
        (json!({"ownerId": "someone-else"}), "ownerId"),
    ];
    for (body, field) in cases {
        let r = app.call("POST", "/api/conversations", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text);
        assert_eq!(r.code(), "VALIDATION");
        assert_eq!(r.json["error"]["details"][0]["field"], field, "{body}");
        assert!(r.json["error"]["requestId"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(r.header("x-request-id"), r.json["error"]["requestId"].as_str());
    }
    // Several problems at once are all reported.
    let r = app
        .call(
            "POST",
            "/api/conversations",
            Some(json!({"title": "", "model": "gpt-4"})),
        )
        .await;
    assert_eq!(r.json["error"]["details"].as_array().map(Vec::len), Some(2));
    let listed = app.call("GET", "/api/conversations", None).await;
    assert_eq!(listed.json, json!([]), "nothing was stored");

    let created = app.call("POST", "/api/conversations", None).await;
    assert_eq!(
        created.status, 201,
        "an empty body creates with defaults: {}",
        created.text
    );
    assert_eq!(created.json["title"], "New conversation");
    assert_eq!(created.json["model"], SONNET);
    let id = created.json["id"].as_str().expect("id").to_owned();
    let path = format!("/api/conversations/{id}");

    for (body, field) in [
        (json!({"isPinned": "yes"}), "isPinned"),
        (json!({"ownerId": "x"}), "ownerId"),
        (json!({"createdAt": "2020-01-01T00:00:00.000Z"}), "createdAt"),
        (json!({"model": "gpt-4"}), "model"),
        (json!({"title": "   "}), "title"),
    ] {
        let r = app.call("PATCH", &path, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json["error"]["details"][0]["field"], field, "{body}");
    }
    let r = app.call("PATCH", &path, Some(json!({}))).await;
    assert_eq!(r.status, 400);

    let messages = format!("{path}/messages");
    for (body, field) in [
        (json!({"role": "hacker", "content": "x"}), "role"),
        (json!({"role": "user", "content": ""}), "content"),
        (json!({"role": "user", "content": "a\u{0}b"}), "content"),
        (json!({"role": "user", "content": "x".repeat(10_001)}), "content"),
        (json!({"role": "user"}), "content"),
        (
            json!({"role": "user", "content": "ok", "conversationId": "other"}),
            "conversationId",
        ),
        (
            json!({"role": "user", "content": "ok", "clientId": "bad id!"}),
            "clientId",
        ),
    ] {
        let r = app.call("POST", &messages, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text);
        assert_eq!(r.json["error"]["details"][0]["field"], field, "{body} -> {}", r.text);
    }
    // Exactly at the limit is accepted, multi-byte characters counted as characters.
    let at_limit = "é".repeat(10_000);
    let r = app
        .call("POST", &messages, Some(json!({"role": "user", "content": at_limit})))
        .await;
    assert_eq!(r.status, 201);
    let got = app.call("GET", &path, None).await;
    assert_eq!(
        got.json["title"], "New conversation",
        "the failed patches changed nothing"
    );
    assert_eq!(got.json["messages"].as_array().map(Vec::len), Some(1));

    // Bad ids, limits and cursors.
    for bad in ["/api/conversations/bad%20id", "/api/conversations/%2e%2e%2fx/messages"] {
        let r = app.call("GET", bad, None).await;
        assert_eq!(r.status, 400, "{bad}");
    }
    for query in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=not-a-cursor",
        "solutionType=finance",
    ] {
        let r = app.call("GET", &format!("/api/conversations?{query}"), None).await;
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(r.code(), "VALIDATION");
    }

    // An optional field may be null, meaning the same as leaving it out; a required one may not.
    let nulls = json!({"id": null, "title": null, "model": null, "solutionType": null});
    let r = app.call("POST", "/api/conversations", Some(nulls)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (r.json["title"].as_str(), r.json["model"].as_str()),
        (Some("New conversation"), Some(SONNET))
    );
    let all_null = json!({"title": null, "isPinned": null, "isShared": null, "model": null});
    let r = app.call("PATCH", &path, Some(all_null)).await;
    assert_eq!(r.status, 400, "only nulls is nothing to update: {}", r.text);
    let r = app
        .call("PATCH", &path, Some(json!({"title": null, "isPinned": true})))
        .await;
    assert_eq!(
        (r.status, r.json["title"].as_str()),
        (200, Some("New conversation")),
        "{}",
        r.text
    );
    let r = app
        .call(
            "POST",
            &messages,
            Some(json!({"role": "user", "content": "x", "clientId": null})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .call("POST", &messages, Some(json!({"role": "user", "content": null})))
        .await;
    assert_eq!(
        (r.status, r.json["error"]["details"][0]["field"].as_str()),
        (400, Some("content"))
    );

    // Titles: trimmed first (so padding does not count), then 1 to 100 characters without
    // control characters, C1 included.
    let padded = format!(" \t{}\n\u{a0}", "x".repeat(100));
    let r = app.call("PATCH", &path, Some(json!({"title": padded}))).await;
    assert_eq!(
        (r.status, r.json["title"].as_str()),
        (200, Some("x".repeat(100).as_str())),
        "{}",
        r.text
    );
    for bad in ["a\tb", "a\u{9c}b", "\u{85}"] {
        let r = app.call("PATCH", &path, Some(json!({"title": bad}))).await;
        assert_eq!(r.status, 400, "{bad:?}");
    }
}

async fn malformed_bodies_get_clear_errors(app: TestApp) {
    let url = format!("{}/api/conversations", app.base);
    let send = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut req = app.client.post(&url).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        app.send(req)
    };
    let r = send(b"{\"title\": ".to_vec(), Some("application/json")).await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"));
    let r = send(b"[1, 2]".to_vec(), Some("application/json")).await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"));
    let r = send(b"{\"title\": \"a\"} trailing".to_vec(), Some("application/json")).await;
    assert_eq!(r.status, 400);
    let r = send(
        b"{\"title\": \"a\", \"title\": \"b\"}".to_vec(),
        Some("application/json"),
    )
    .await;
    assert_eq!(r.status, 400, "duplicate keys are refused");
    let r = send(
        vec![b'{', b'"', b't', 0xff, 0xfe, b'"', b':', b'1', b'}'],
        Some("application/json"),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"));
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let r = send(format!("{{\"title\": {deep}}}").into_bytes(), Some("application/json")).await;
    assert_eq!(r.status, 400);
    // The local gateway (like a bearer-token request) reads JSON whatever the content type says:
    // the seed's own `fetch` posts JSON as text/plain. Anything not a JSON object is still a 400.
    let r = send(b"title=x".to_vec(), Some("application/x-www-form-urlencoded")).await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"));
    let r = send(b"{\"title\": \"x\"}".to_vec(), None).await;
    assert_eq!(r.status, 201);
    let r = send(b"{\"title\": \"x\"}".to_vec(), Some("text/plain;charset=UTF-8")).await;
    assert_eq!(r.status, 201);
    let r = send(
        b"[\"id\", \"title\", null, \"support\"]".to_vec(),
        Some("application/json"),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"), "an array is not an object");
    let r = send(b"{\"title\": \"x\"}".to_vec(), Some("application/json; charset=utf-8")).await;
    assert_eq!(r.status, 201);
    let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = send(huge.into_bytes(), Some("application/json")).await;
    assert_eq!((r.status, r.code()), (413, "PAYLOAD_TOO_LARGE"));
    let listed = app.call("GET", "/api/conversations", None).await;
    assert_eq!(
        listed.json.as_array().map(Vec::len),
        Some(3),
        "only the three valid creates were stored"
    );
}

async fn unknown_routes_and_methods_are_answered_precisely(app: TestApp) {
    let r = app.call("GET", "/api/nothing-here", None).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
    let r = app.call("PUT", "/api/conversations", None).await;
    assert_eq!((r.status, r.code()), (405, "METHOD_NOT_ALLOWED"));
    assert_eq!(r.header("allow"), Some("GET, POST, OPTIONS"));
    let r = app.call("POST", "/api/conversations/abc", None).await;
    assert_eq!(r.header("allow"), Some("GET, PATCH, DELETE, OPTIONS"));
    let r = app.call("PATCH", "/api/conversations/abc/messages", None).await;
    assert_eq!(r.header("allow"), Some("GET, POST, DELETE, OPTIONS"));
    let r = app.call("GET", "/api/conversations", None).await;
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

async fn a_client_chosen_id_is_kept_and_a_taken_one_conflicts(app: TestApp) {
    let r = app
        .call(
            "POST",
            "/api/conversations",
            Some(json!({"id": "chat_Xy9-abc", "solutionType": "maintenance"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json["id"], "chat_Xy9-abc");
    assert_eq!(r.json["solutionType"], "maintenance");
    let again = app
        .call(
            "POST",
            "/api/conversations",
            Some(json!({"id": "chat_Xy9-abc", "title": "Overwrite"})),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "CONFLICT"));
    let got = app.call("GET", "/api/conversations/chat_Xy9-abc", None).await;
    assert_eq!(got.json["title"], "New conversation");
}

/// Conversation ids are the client's choice and scoped to the caller: another user's client
/// choosing an id someone already holds gets a conversation of its own (201, never a 409 that
/// would say the id exists), chats in it, and changes it, while the first user's stays whole.
async fn another_users_id_is_a_new_conversation_of_the_callers(app: TestApp) {
    let id = athena_tests::unique("chat");
    let path = format!("/api/conversations/{id}");
    let created = app
        .call(
            "POST",
            "/api/conversations",
            Some(json!({"id": id, "title": "Alice's"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let added = app
        .call(
            "POST",
            &format!("{path}/messages"),
            Some(json!({"role": "user", "content": "private"})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let alices = app.call("GET", &path, None).await;
    let mut config = Config::local();
    config.auth = AuthMode::None {
        user: UserId::parse("bob").expect("user"),
    };
    let bob = spawn_chat_app(Arc::clone(&app.store), config, ChatConfig::default()).await;
    let his = bob
        .call("POST", "/api/conversations", Some(json!({"id": id, "title": "Bob's"})))
        .await;
    assert_eq!(his.status, 201, "{}", his.text);
    assert_eq!(
        (
            his.json["id"].as_str(),
            his.json["title"].as_str(),
            his.json["messageCount"].as_u64()
        ),
        (Some(id.as_str()), Some("Bob's"), Some(0))
    );
    assert_eq!(
        his.header("location"),
        Some(path.as_str()),
        "the same path names each caller's own"
    );
    let again = bob
        .call("POST", "/api/conversations", Some(json!({"id": id, "title": "Again"})))
        .await;
    assert_eq!(
        (again.status, again.code()),
        (409, "CONFLICT"),
        "only his own id conflicts"
    );
    let (status, _, body) = post_chat(
        &bob,
        "/api/chat",
        json!({"id": id, "messages": [{"id": "b-1", "role": "user", "parts": [{"type": "text", "text": "bob asks #deltas:2"}]}], "trigger": "submit-message"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(text_of(&parse_sse(&body)), "w0 w1 ");
    let renamed = bob.call("PATCH", &path, Some(json!({"title": "Bob renamed"}))).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let bobs = bob.call("GET", &path, None).await;
    assert_eq!(bobs.json["title"], "Bob renamed");
    let contents: Vec<&str> = bobs.json["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(contents, ["bob asks #deltas:2", "w0 w1 "]);
    let listed = bob.call("GET", "/api/conversations", None).await;
    assert_eq!(listed.json.as_array().map(Vec::len), Some(1));
    // Alice's is exactly as it was; Bob deleting his leaves it.
    assert_eq!(app.call("GET", &path, None).await.json, alices.json);
    assert_eq!(bob.call("DELETE", &path, None).await.status, 200);
    assert_eq!(bob.call("GET", &path, None).await.status, 404);
    let still = app.call("GET", &path, None).await;
    assert_eq!(still.json, alices.json, "alice's conversation is untouched");
}

async fn a_repeated_client_message_id_is_stored_once(app: TestApp) {
    let id = app.call("POST", "/api/conversations", None).await.json["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/conversations/{id}/messages");
    let body = json!({"role": "user", "content": "submit once", "clientId": "ui-1"});
    let first = app.call("POST", &path, Some(body.clone())).await;
    assert_eq!(first.status, 201);
    let retry = app.call("POST", &path, Some(body)).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json["id"], first.json["id"]);
    assert_eq!(
        app.call("GET", &path, None).await.json.as_array().map(Vec::len),
        Some(1)
    );
}

async fn lists_page_with_a_cursor_header(app: TestApp) {
    for i in 0..7 {
        let solution = if i % 2 == 0 { json!("support") } else { Value::Null };
        let r = app
            .call(
                "POST",
                "/api/conversations",
                Some(json!({"title": format!("c{i}"), "solutionType": solution})),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let mut titles = Vec::new();
    let mut next = Some("/api/conversations?limit=3".to_owned());
    while let Some(path) = next.take() {
        let r = app.call("GET", &path, None).await;
        assert_eq!(r.status, 200);
        titles.extend(
            r.json
                .as_array()
                .expect("array")
                .iter()
                .map(|c| c["title"].as_str().unwrap_or("").to_owned()),
        );
        next = r
            .header("x-next-cursor")
            .map(|c| format!("/api/conversations?limit=3&cursor={c}"));
    }
    assert_eq!(titles, ["c6", "c5", "c4", "c3", "c2", "c1", "c0"]);
    let support = app.call("GET", "/api/conversations?solutionType=support", None).await;
    assert_eq!(support.json.as_array().map(Vec::len), Some(4));
    let general = app.call("GET", "/api/conversations?solutionType=general", None).await;
    assert_eq!(general.json.as_array().map(Vec::len), Some(3));

    let id = app.call("POST", "/api/conversations", None).await.json["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/conversations/{id}/messages");
    for i in 0..5 {
        app.call("POST", &path, Some(json!({"role": "user", "content": format!("m{i}")})))
            .await;
    }
    let page = app.call("GET", &format!("{path}?limit=2"), None).await;
    let cursor = page.header("x-next-cursor").expect("cursor").to_owned();
    let rest = app.call("GET", &format!("{path}?limit=10&cursor={cursor}"), None).await;
    let contents: Vec<&str> = rest
        .json
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(contents, ["m2", "m3", "m4"]);
    assert!(rest.header("x-next-cursor").is_none());
    // A conversation-list cursor is not a message-list cursor.
    let list_cursor = app.call("GET", "/api/conversations?limit=1", None).await;
    let c = list_cursor.header("x-next-cursor").expect("cursor");
    let r = app.call("GET", &format!("{path}?cursor={c}"), None).await;
    assert_eq!(r.status, 400);
}

async fn the_health_check_reads_the_store_and_needs_no_credentials(app: TestApp) {
    let r = app.call("GET", "/api/health", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "ok");
    assert_eq!(r.json["checks"]["store"]["status"], "ok");
    assert_eq!(r.json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = app.call("POST", "/api/health", None).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, OPTIONS")));
    // Behind API Gateway a request without authorizer claims is refused everywhere else.
    let mut config = Config::local();
    config.auth = shared::config::AuthMode::ApiGateway;
    let guarded = spawn_app(Arc::clone(&app.store), config).await;
    assert_eq!(guarded.call("GET", "/api/conversations", None).await.status, 401);
    let r = guarded.call("GET", "/api/health", None).await;
    assert_eq!((r.status, r.json["status"].as_str()), (200, Some("ok")), "{}", r.text);
}

/// A POST with an `Idempotency-Key` header (and a JSON body).
async fn post_with_key(app: &TestApp, path: &str, key: &str, body: Value) -> Reply {
    app.send(
        app.client
            .post(format!("{}{path}", app.base))
            .header("idempotency-key", key)
            .json(&body),
    )
    .await
}

async fn conversation_count(app: &TestApp) -> usize {
    let list = app.call("GET", "/api/conversations", None).await;
    list.json.as_array().map_or(0, Vec::len)
}

async fn an_idempotency_key_does_the_work_once_and_replays_the_same_response(app: TestApp) {
    let body = json!({"title": "Once", "model": SONNET});
    let first = post_with_key(&app, "/api/conversations", "create-1", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let retry = post_with_key(&app, "/api/conversations", "create-1", body).await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.text, first.text, "the same body, byte for byte");
    assert_eq!(retry.header("location"), first.header("location"));
    assert!(retry.header("location").is_some());
    assert_eq!(retry.header("content-type"), Some("application/json"));
    assert_ne!(retry.header("x-request-id"), first.header("x-request-id"));
    assert_eq!(conversation_count(&app).await, 1);

    // Messages: one stored, the same answer twice.
    let id = first.json["id"].as_str().expect("id").to_owned();
    let path = format!("/api/conversations/{id}/messages");
    let message = json!({"role": "user", "content": "sent once"});
    let first = post_with_key(&app, &path, "message-1", message.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let retry = post_with_key(&app, &path, "message-1", message.clone()).await;
    assert_eq!((retry.status, retry.header("idempotent-replayed")), (201, Some("true")));
    assert_eq!(retry.text, first.text);
    assert_eq!(retry.header("location"), None);
    let stored = app.call("GET", &path, None).await;
    assert_eq!(stored.json.as_array().map(Vec::len), Some(1));

    // The same key for the same body on another route is another request.
    let other = post_with_key(&app, "/api/conversations", "message-1", message).await;
    assert_eq!(
        (other.status, other.code()),
        (422, "IDEMPOTENCY_KEY_REUSED"),
        "{}",
        other.text
    );
}

async fn a_reused_idempotency_key_with_another_body_is_refused_and_writes_nothing(app: TestApp) {
    let first = post_with_key(&app, "/api/conversations", "k", json!({"title": "First"})).await;
    assert_eq!(first.status, 201);
    let other = post_with_key(&app, "/api/conversations", "k", json!({"title": "Second"})).await;
    assert_eq!(
        (other.status, other.code()),
        (422, "IDEMPOTENCY_KEY_REUSED"),
        "{}",
        other.text
    );
    assert!(other.json["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Idempotency-Key")));
    assert_eq!(conversation_count(&app).await, 1);
    // The first request is still replayed, and a new key is a new request.
    let replay = post_with_key(&app, "/api/conversations", "k", json!({"title": "First"})).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let fresh = post_with_key(&app, "/api/conversations", "k2", json!({"title": "Second"})).await;
    assert_eq!((fresh.status, fresh.header("idempotent-replayed")), (201, None));
    assert_eq!(conversation_count(&app).await, 2);
}

async fn concurrent_requests_with_one_idempotency_key_create_one_conversation(app: TestApp) {
    let body = json!({"title": "Raced"});
    let replies =
        futures::future::join_all((0..8).map(|_| post_with_key(&app, "/api/conversations", "raced", body.clone())))
            .await;
    let created: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(created.len(), 1, "{replies:?}");
    for r in &replies {
        match (r.status, r.header("idempotent-replayed")) {
            (201, None) => {}
            (201, Some("true")) => assert_eq!(r.text, created[0].text),
            (409, None) => {
                assert_eq!(r.code(), "IDEMPOTENCY_KEY_IN_PROGRESS");
                assert_eq!(r.header("retry-after"), Some("1"));
            }
            other => panic!("unexpected {other:?}: {}", r.text),
        }
    }
    assert_eq!(conversation_count(&app).await, 1);
}

async fn a_failed_request_releases_its_idempotency_key(app: TestApp) {
    // A message to a conversation that does not exist yet: 404, and the key is free again.
    let path = "/api/conversations/later/messages";
    let message = json!({"role": "user", "content": "hello"});
    let missing = post_with_key(&app, path, "m-1", message.clone()).await;
    assert_eq!(missing.status, 404);
    let created = app
        .call("POST", "/api/conversations", Some(json!({"id": "later"})))
        .await;
    assert_eq!(created.status, 201);
    let stored = post_with_key(&app, path, "m-1", message).await;
    assert_eq!(
        (stored.status, stored.header("idempotent-replayed")),
        (201, None),
        "{}",
        stored.text
    );
    // A conflict is not saved either: once the id is free, the same request succeeds.
    let taken = post_with_key(&app, "/api/conversations", "c-1", json!({"id": "later"})).await;
    assert_eq!((taken.status, taken.code()), (409, "CONFLICT"));
    // Deleted for good (a trashed conversation keeps its id until it is purged).
    assert_eq!(
        app.call("DELETE", "/api/conversations/later?permanent=true", None)
            .await
            .status,
        200
    );
    let again = post_with_key(&app, "/api/conversations", "c-1", json!({"id": "later"})).await;
    assert_eq!(
        (again.status, again.header("idempotent-replayed")),
        (201, None),
        "{}",
        again.text
    );
}

async fn an_invalid_idempotency_key_is_refused_before_anything_is_written(app: TestApp) {
    let long = "k".repeat(256);
    for bad in [long.as_str(), "", "caf\u{e9}"] {
        let value = reqwest::header::HeaderValue::from_bytes(bad.as_bytes()).expect("header value");
        let r = app
            .send(
                app.client
                    .post(format!("{}/api/conversations", app.base))
                    .header("idempotency-key", value)
                    .json(&json!({})),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{bad:?}: {}", r.text);
        assert_eq!(r.json["error"]["details"][0]["field"], "Idempotency-Key");
    }
    let longest = "k".repeat(255);
    assert_eq!(
        post_with_key(&app, "/api/conversations", &longest, json!({}))
            .await
            .status,
        201
    );
    assert_eq!(conversation_count(&app).await, 1);
}

async fn without_an_idempotency_key_nothing_changes_and_no_store_call_is_added(app: TestApp) {
    let counting = Arc::new(CountingStore::new(Arc::clone(&app.store)));
    let counted = spawn_app(counting.clone(), Config::local()).await;
    let body = json!({"title": "No key"});
    let first = counted.call("POST", "/api/conversations", Some(body.clone())).await;
    let second = counted.call("POST", "/api/conversations", Some(body.clone())).await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_ne!(first.json["id"], second.json["id"], "two requests, two conversations");
    assert_eq!(first.header("idempotent-replayed"), None);
    // Besides the rate limit, the audit entry and the analytics event (unchanged by this feature).
    let relevant = |calls: Vec<&'static str>| -> Vec<&'static str> {
        calls
            .into_iter()
            .filter(|c| c.ends_with("_key") || *c == "create_conversation")
            .collect()
    };
    assert_eq!(
        relevant(counting.take()),
        ["create_conversation", "create_conversation"]
    );
    // With a key: one reservation before the work and the saved response after it.
    let keyed = post_with_key(&counted, "/api/conversations", "counted", body).await;
    assert_eq!(keyed.status, 201);
    assert_eq!(
        relevant(counting.take()),
        ["reserve_key", "create_conversation", "complete_key"]
    );
}

athena_tests::on_both_stores!(
    |store| spawn_app(Arc::new(store), Config::local()).await,
    [
        the_seed_flow_works_end_to_end,
        invalid_input_is_refused_with_field_details_and_nothing_is_stored,
        malformed_bodies_get_clear_errors,
        unknown_routes_and_methods_are_answered_precisely,
        a_client_chosen_id_is_kept_and_a_taken_one_conflicts,
        another_users_id_is_a_new_conversation_of_the_callers,
        a_repeated_client_message_id_is_stored_once,
        lists_page_with_a_cursor_header,
        the_health_check_reads_the_store_and_needs_no_credentials,
        an_idempotency_key_does_the_work_once_and_replays_the_same_response,
        a_reused_idempotency_key_with_another_body_is_refused_and_writes_nothing,
        concurrent_requests_with_one_idempotency_key_create_one_conversation,
        a_failed_request_releases_its_idempotency_key,
        an_invalid_idempotency_key_is_refused_before_anything_is_written,
        without_an_idempotency_key_nothing_changes_and_no_store_call_is_added,
    ]
);

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let mut config = Config::local();
    config.cors = Cors::Origins(vec!["https://app.example".to_owned()]);
    let app = spawn_app(Arc::new(embedded_store()), config).await;
    let preflight = |origin: &'static str| {
        app.send(
            app.client
                .request(reqwest::Method::OPTIONS, format!("{}/api/conversations", app.base))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type"),
        )
    };
    let ok = preflight("https://app.example").await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, POST, OPTIONS"));
    assert!(ok
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("content-type")));
    let evil = preflight("https://evil.example").await;
    assert_eq!(evil.header("access-control-allow-origin"), None);
    assert_eq!(evil.header("access-control-allow-methods"), None);
    let get = app
        .send(
            app.client
                .get(format!("{}/api/conversations", app.base))
                .header("origin", "https://app.example"),
        )
        .await;
    assert_eq!(get.header("access-control-allow-origin"), Some("https://app.example"));
    assert!(get
        .header("access-control-expose-headers")
        .is_some_and(|h| h.contains("x-next-cursor")));
    // A browser may read the soft-limit headers of a chat response.
    assert!(
        get.header("access-control-expose-headers").is_some_and(
            |h| h.contains("x-athena-budget-remaining-tokens") && h.contains("x-athena-budget-remaining-usd")
        )
    );
}

#[tokio::test]
async fn an_unavailable_store_answers_503_with_retry_after_and_no_internals() {
    let store = athena_tests::unreachable_dynamo_store(
        1,
        shared::store::dynamo::Tables {
            conversations: "secret-table-name".to_owned(),
            events: "secret-events".to_owned(),
        },
    )
    .await;
    let app = spawn_app(Arc::new(store), Config::local()).await;
    for (method, path) in [
        ("GET", "/api/conversations"),
        ("POST", "/api/conversations"),
        ("GET", "/api/conversations/abc"),
    ] {
        let r = app.call(method, path, None).await;
        assert_eq!((r.status, r.code()), (503, "UNAVAILABLE"), "{method} {path}");
        assert_eq!(r.header("retry-after"), Some("1"));
        for leak in ["secret-table-name", "dispatch", "127.0.0.1", "connect", "Dynamo"] {
            assert!(!r.text.contains(leak), "{leak} leaked: {}", r.text);
        }
    }
    let health = app.call("GET", "/api/health", None).await;
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "unavailable");
    assert_eq!(health.json["checks"]["store"]["status"], "unavailable");
    assert_eq!(health.header("retry-after"), Some("5"));
    for leak in ["secret-table-name", "dispatch", "127.0.0.1", "connect", "Dynamo"] {
        assert!(!health.text.contains(leak), "{leak} leaked: {}", health.text);
    }
}

#[tokio::test]
async fn request_ids_are_taken_from_the_client_when_plain_and_made_otherwise() {
    let app = spawn_app(Arc::new(embedded_store()), Config::local()).await;
    let r = app
        .send(
            app.client
                .get(format!("{}/api/conversations", app.base))
                .header("x-request-id", "trace-123"),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-123"));
    let r = app
        .send(
            app.client
                .get(format!("{}/api/conversations", app.base))
                .header("x-request-id", "<script>"),
        )
        .await;
    assert_ne!(r.header("x-request-id"), Some("<script>"));
    assert_eq!(r.header("x-request-id").map(str::len), Some(26));
}

#[tokio::test]
async fn health_checks_reuse_one_store_read_for_a_few_seconds() {
    // GET /api/health needs no credentials, so each instance remembers the store's answer for
    // health::REUSE_FOR: a flood costs one read per instance per window, not one per request.
    let counting = Arc::new(CountingStore::new(Arc::new(embedded_store())));
    let clock = Arc::new(ManualClock::new(mid_minute()));
    let state = AppState::new(Config::local(), Arc::clone(&counting) as Arc<dyn Store>)
        .with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let app = spawn_state(state, Arc::clone(&counting) as Arc<dyn Store>).await;
    for _ in 0..5 {
        let r = app.call("GET", "/api/health", None).await;
        assert_eq!((r.status, r.json["status"].as_str()), (200, Some("ok")), "{}", r.text);
    }
    assert_eq!(counting.count(), 1, "{:?}", counting.snapshot());
    let window = chrono::Duration::from_std(shared::api::health::REUSE_FOR).expect("window");
    clock.advance(window - chrono::Duration::milliseconds(1));
    app.call("GET", "/api/health", None).await;
    assert_eq!(counting.count(), 1, "still inside the window");
    clock.advance(chrono::Duration::milliseconds(1));
    let r = app.call("GET", "/api/health", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(counting.count(), 2, "a new window reads the store again");
}

//! Sharing a conversation with named users over real HTTP (bearer tokens, scripted model), on
//! both stores: a viewer reads and is refused every write with `403`; a collaborator chats in
//! the owner's conversation, pays for it and is named on their messages; anyone else gets the
//! same `404` as for a conversation that does not exist; a revoked share stops at once;
//! sharing by verified e-mail; the owner's management routes and their errors; the trash and
//! erasure take shares with them.

use std::sync::Arc;

use athena_tests::tokens::{claims, hs256, jwt_config, token, verifier, with_bearer, SECRET};
use athena_tests::{spawn_chat_app, unique, Reply, TestApp};
use serde_json::{json, Value};
use shared::chat::ChatConfig;
use shared::store::Store;

async fn app(store: Arc<dyn Store>) -> TestApp {
    let mut config = jwt_config(verifier());
    // A token budget on everyone, so what each user is charged can be read back.
    config.plans = shared::config::plans::parse(
        r#"{"default": {"tokensPerDay": 1000000}}"#,
        None,
        shared::config::plans::Inherited {
            tokens_per_day: 0,
            tokens_per_month: 0,
            requests_per_minute: 0,
            concurrent_streams: 3,
            max_output_tokens: 4096,
            catalog: &shared::catalog::Catalog::all(),
        },
    )
    .expect("plans");
    spawn_chat_app(store, config, ChatConfig::default()).await
}

/// A conversation of `owner` with one finished turn; its id.
async fn conversation_with_a_turn(app: &TestApp, owner: &str) -> String {
    let id = unique("shared");
    let turn = with_bearer(
        app,
        owner,
        "POST",
        "/api/chat",
        Some(json!({"id": id, "messages": [{"role": "user", "content": "#deltas:3 the owner asks"}]})),
    )
    .await;
    assert_eq!(turn.status, 200, "{}", turn.text);
    id
}

async fn share(app: &TestApp, owner: &str, id: &str, body: Value) -> Reply {
    with_bearer(
        app,
        owner,
        "PUT",
        &format!("/api/conversations/{id}/shares"),
        Some(body),
    )
    .await
}

async fn tokens_today(app: &TestApp, bearer: &str) -> u64 {
    let usage = with_bearer(app, bearer, "GET", "/api/usage", None).await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    usage.json["budgets"]["tokensToday"]["used"].as_u64().expect("used")
}

/// Every write a viewer might try, with its body.
fn writes(id: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let c = format!("/api/conversations/{id}");
    vec![
        ("PATCH", c.clone(), Some(json!({"title": "changed"}))),
        ("DELETE", c.clone(), None),
        (
            "POST",
            format!("{c}/messages"),
            Some(json!({"role": "user", "content": "injected"})),
        ),
        ("DELETE", format!("{c}/messages"), None),
        (
            "PUT",
            format!("{c}/active-branch"),
            Some(json!({"messageId": "01JDNOSUCHMESSAGE000000000"})),
        ),
        ("GET", format!("{c}/shares"), None),
        (
            "PUT",
            format!("{c}/shares"),
            Some(json!({"userId": "someone-else", "role": "viewer"})),
        ),
        ("DELETE", format!("{c}/shares?userId=someone-else"), None),
        ("POST", format!("/api/chat/{id}/stop"), None),
    ]
}

async fn a_viewer_reads_and_every_write_is_refused_with_403(store: Arc<dyn Store>) {
    let app = app(store).await;
    let (alice, bob, carol) = (token(&unique("alice")), unique("bob"), token(&unique("carol")));
    let bob_token = token(&bob);
    let id = conversation_with_a_turn(&app, &alice).await;
    let shared = share(&app, &alice, &id, json!({"userId": bob, "role": "viewer"})).await;
    assert_eq!(shared.status, 200, "{}", shared.text);
    assert_eq!(
        (shared.json["userId"].as_str(), shared.json["role"].as_str()),
        (Some(bob.as_str()), Some("viewer"))
    );
    // Bob reads it as Alice does (without what her replies cost: see
    // `a_grantee_sees_the_content_not_the_owners_filing_or_costs`).
    let path = format!("/api/conversations/{id}");
    let hers = with_bearer(&app, &alice, "GET", &path, None).await;
    let his = with_bearer(&app, &bob_token, "GET", &path, None).await;
    assert_eq!(his.status, 200, "{}", his.text);
    let mut without_usage = hers.json["messages"].clone();
    for m in without_usage.as_array_mut().expect("messages") {
        m.as_object_mut().expect("a message").remove("usage");
    }
    assert_eq!(his.json["messages"], without_usage);
    let listed = with_bearer(&app, &bob_token, "GET", &format!("{path}/messages"), None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json.as_array().map(Vec::len), Some(2));
    let export = with_bearer(&app, &bob_token, "GET", &format!("{path}/export?format=markdown"), None).await;
    assert_eq!(export.status, 200, "{}", export.text);
    // ... and finds it under "shared with me", not among his own.
    let mine = with_bearer(&app, &bob_token, "GET", "/api/shared", None).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(mine.json.as_array().map(Vec::len), Some(1));
    assert_eq!(mine.json[0]["conversation"]["id"], json!(id));
    assert_eq!(mine.json[0]["role"], "viewer");
    let own = with_bearer(&app, &bob_token, "GET", "/api/conversations", None).await;
    assert_eq!(own.json, json!([]));
    // Every write: 403 for him (he knows it exists), the 404 of a missing one for Carol.
    for (method, path, body) in writes(&id) {
        let r = with_bearer(&app, &bob_token, method, &path, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "FORBIDDEN"),
            "bob {method} {path}: {}",
            r.text
        );
        let c = with_bearer(&app, &carol, method, &path, body.clone()).await;
        let missing = path.replace(&id, "01JDNOSUCHCONVERSATION0000");
        let m = with_bearer(&app, &carol, method, &missing, body).await;
        assert_eq!((c.status, c.code()), (m.status, m.code()), "carol {method} {path}");
        assert_eq!(
            c.json["error"]["message"], m.json["error"]["message"],
            "carol {method} {path}"
        );
    }
    let chat = with_bearer(
        &app,
        &bob_token,
        "POST",
        "/api/chat",
        Some(json!({"id": id, "messages": [{"role": "user", "content": "#deltas:3 may I?"}]})),
    )
    .await;
    assert_eq!((chat.status, chat.code()), (403, "FORBIDDEN"), "{}", chat.text);
    // Carol reads nothing of it.
    for path in [path.clone(), format!("{path}/messages")] {
        let r = with_bearer(&app, &carol, "GET", &path, None).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "carol GET {path}");
    }
    // Nothing changed.
    let after = with_bearer(&app, &alice, "GET", &path, None).await;
    assert_eq!(after.json["messages"], hers.json["messages"]);
    assert_eq!(after.json["title"], hers.json["title"]);
}

async fn a_collaborator_chats_in_the_owners_conversation_and_pays_for_it(store: Arc<dyn Store>) {
    let app = app(store).await;
    let (alice, bob) = (token(&unique("alice")), unique("bob"));
    let bob_token = token(&bob);
    let id = conversation_with_a_turn(&app, &alice).await;
    let shared = share(&app, &alice, &id, json!({"userId": bob, "role": "collaborator"})).await;
    assert_eq!(shared.status, 200, "{}", shared.text);
    let (alice_before, bob_before) = (tokens_today(&app, &alice).await, tokens_today(&app, &bob_token).await);
    assert_eq!(bob_before, 0);
    let turn = with_bearer(
        &app,
        &bob_token,
        "POST",
        "/api/chat",
        Some(json!({"id": id, "messages": [{"role": "user", "content": "#deltas:3 the collaborator asks"}]})),
    )
    .await;
    assert_eq!(turn.status, 200, "{}", turn.text);
    // In Alice's conversation, his message named as his.
    let hers = with_bearer(&app, &alice, "GET", &format!("/api/conversations/{id}"), None).await;
    let messages = hers.json["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 4, "{}", hers.text);
    assert_eq!(messages[2]["content"], "#deltas:3 the collaborator asks");
    assert_eq!(messages[2]["authorId"], json!(bob));
    assert_eq!(
        messages[0].get("authorId"),
        None,
        "the owner's own message names no one"
    );
    assert_eq!(messages[3]["role"], "assistant");
    assert_eq!(messages[3].get("authorId"), None);
    // Charged to Bob, not to Alice.
    let usage = &messages[3]["usage"];
    let reply_tokens = usage["inputTokens"].as_u64().expect("input") + usage["outputTokens"].as_u64().expect("output");
    assert_eq!(
        tokens_today(&app, &bob_token).await,
        reply_tokens,
        "bob pays the reply's tokens"
    );
    assert_eq!(
        tokens_today(&app, &alice).await,
        alice_before,
        "alice pays nothing for his turn"
    );
    // No conversation of that id appeared in Bob's own account.
    let own = with_bearer(&app, &bob_token, "GET", "/api/conversations", None).await;
    assert_eq!(own.json, json!([]));
    // He adds a message and switches versions; he may not rename, delete or share it.
    let added = with_bearer(
        &app,
        &bob_token,
        "POST",
        &format!("/api/conversations/{id}/messages"),
        Some(json!({"role": "user", "content": "a note"})),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json["authorId"], json!(bob));
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/conversations/{id}"),
            Some(json!({"title": "mine now"})),
        ),
        ("DELETE", format!("/api/conversations/{id}"), None),
        ("GET", format!("/api/conversations/{id}/shares"), None),
    ] {
        let r = with_bearer(&app, &bob_token, method, &path, body).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "FORBIDDEN"),
            "bob {method} {path}: {}",
            r.text
        );
    }
    // The audit log has the share under Alice.
    let audit = with_bearer(&app, &alice, "GET", "/api/audit", None).await;
    assert!(
        audit.json["entries"]
            .as_array()
            .or(audit.json.as_array())
            .expect("entries")
            .iter()
            .any(|e| e["action"] == "conversation.share" && e["resource"] == json!(id)),
        "{}",
        audit.text
    );
}

async fn a_revoked_share_stops_at_once_and_tells_nothing(store: Arc<dyn Store>) {
    let app = app(store).await;
    let (alice, bob) = (token(&unique("alice")), unique("bob"));
    let bob_token = token(&bob);
    let id = conversation_with_a_turn(&app, &alice).await;
    share(&app, &alice, &id, json!({"userId": bob, "role": "collaborator"})).await;
    let path = format!("/api/conversations/{id}");
    assert_eq!(with_bearer(&app, &bob_token, "GET", &path, None).await.status, 200);
    let revoked = with_bearer(&app, &alice, "DELETE", &format!("{path}/shares?userId={bob}"), None).await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    let again = with_bearer(&app, &alice, "DELETE", &format!("{path}/shares?userId={bob}"), None).await;
    assert_eq!((again.status, again.code()), (404, "NOT_FOUND"));
    for p in [path.clone(), format!("{path}/messages")] {
        let r = with_bearer(&app, &bob_token, "GET", &p, None).await;
        let missing = with_bearer(
            &app,
            &bob_token,
            "GET",
            &p.replace(&id, "01JDNOSUCHCONVERSATION0000"),
            None,
        )
        .await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "GET {p}");
        assert_eq!(r.json["error"]["message"], missing.json["error"]["message"]);
    }
    let list = with_bearer(&app, &bob_token, "GET", "/api/shared", None).await;
    assert_eq!(list.json, json!([]));
    // A chat turn of his with that id is his own new conversation: Alice's is not touched.
    let before = with_bearer(&app, &alice, "GET", &path, None).await;
    let turn = with_bearer(
        &app,
        &bob_token,
        "POST",
        "/api/chat",
        Some(json!({"id": id, "messages": [{"role": "user", "content": "#deltas:3 still there?"}]})),
    )
    .await;
    assert_eq!(turn.status, 200, "{}", turn.text);
    let after = with_bearer(&app, &alice, "GET", &path, None).await;
    assert_eq!(after.json["messages"], before.json["messages"]);
}

async fn a_share_by_address_reaches_whoever_signs_in_with_it_verified(store: Arc<dyn Store>) {
    let app = app(store).await;
    let alice = token(&unique("alice"));
    let address = format!("{}@Example.COM", unique("dana"));
    let id = conversation_with_a_turn(&app, &alice).await;
    let shared = share(&app, &alice, &id, json!({"email": address, "role": "viewer"})).await;
    assert_eq!(shared.status, 200, "{}", shared.text);
    assert_eq!(
        shared.json["email"],
        json!(address.to_lowercase()),
        "stored lower-cased"
    );
    let signed = |verified: Value| {
        let mut c = claims(&unique("dana"));
        c["email"] = json!(address.clone());
        c["email_verified"] = verified;
        hs256(&c, SECRET)
    };
    let path = format!("/api/conversations/{id}");
    for (verified, status) in [
        (json!(true), 200),
        (json!("true"), 200),
        (json!(false), 404),
        (Value::Null, 404),
    ] {
        let r = with_bearer(&app, &signed(verified.clone()), "GET", &path, None).await;
        assert_eq!(r.status, status, "email_verified {verified}: {}", r.text);
    }
    let list = with_bearer(&app, &signed(json!(true)), "GET", "/api/shared", None).await;
    assert_eq!(list.json.as_array().map(Vec::len), Some(1), "{}", list.text);
}

async fn the_owner_manages_shares_and_every_bad_request_is_a_clear_error(store: Arc<dyn Store>) {
    let app = app(store).await;
    let (alice_id, bob) = (unique("alice"), unique("bob"));
    let alice = token(&alice_id);
    let id = conversation_with_a_turn(&app, &alice).await;
    for (body, field) in [
        (json!({"role": "viewer"}), "userId"),
        (
            json!({"userId": bob, "email": "b@example.com", "role": "viewer"}),
            "userId",
        ),
        (json!({"userId": bob, "role": "owner"}), "role"),
        (json!({"userId": "not a valid id!", "role": "viewer"}), "userId"),
        (json!({"email": "no-at-sign", "role": "viewer"}), "email"),
        (json!({"userId": alice_id, "role": "viewer"}), "userId"),
    ] {
        let r = share(&app, &alice, &id, body.clone()).await;
        assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{body}: {}", r.text);
        assert!(r.text.contains(field), "{body}: {}", r.text);
    }
    let first = share(&app, &alice, &id, json!({"userId": bob, "role": "viewer"})).await;
    let changed = share(&app, &alice, &id, json!({"userId": bob, "role": "collaborator"})).await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.json["role"], "collaborator");
    assert_eq!(
        changed.json["createdAt"], first.json["createdAt"],
        "a change keeps when it was shared"
    );
    let listed = with_bearer(&app, &alice, "GET", &format!("/api/conversations/{id}/shares"), None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json.as_array().map(Vec::len), Some(1));
    assert_eq!(listed.json[0]["role"], "collaborator");
    // Not on someone else's conversation, nor one that does not exist.
    let other = token(&unique("mallory"));
    let theirs = share(&app, &other, &id, json!({"userId": bob, "role": "viewer"})).await;
    assert_eq!((theirs.status, theirs.code()), (404, "NOT_FOUND"));
    let unshare_none = with_bearer(&app, &alice, "DELETE", &format!("/api/conversations/{id}/shares"), None).await;
    assert_eq!((unshare_none.status, unshare_none.code()), (400, "VALIDATION"));
}

async fn a_grantee_removes_what_was_shared_with_them_and_the_owner_keeps_it(store: Arc<dyn Store>) {
    let app = app(store).await;
    let (alice, bob) = (token(&unique("alice")), unique("bob"));
    let bob_token = token(&bob);
    let id = conversation_with_a_turn(&app, &alice).await;
    share(&app, &alice, &id, json!({"userId": bob, "role": "viewer"})).await;
    // The owner has nothing to leave; a stranger neither.
    let own = with_bearer(&app, &alice, "DELETE", &format!("/api/shared/{id}"), None).await;
    assert_eq!((own.status, own.code()), (404, "NOT_FOUND"));
    let stranger = with_bearer(
        &app,
        &token(&unique("carol")),
        "DELETE",
        &format!("/api/shared/{id}"),
        None,
    )
    .await;
    assert_eq!((stranger.status, stranger.code()), (404, "NOT_FOUND"));
    let left = with_bearer(&app, &bob_token, "DELETE", &format!("/api/shared/{id}"), None).await;
    assert_eq!(left.status, 204, "{}", left.text);
    assert_eq!(
        with_bearer(&app, &bob_token, "GET", "/api/shared", None).await.json,
        json!([])
    );
    let path = format!("/api/conversations/{id}");
    assert_eq!(with_bearer(&app, &bob_token, "GET", &path, None).await.status, 404);
    let hers = with_bearer(&app, &alice, "GET", &path, None).await;
    assert_eq!(hers.status, 200);
    assert_eq!(hers.json["messages"].as_array().map(Vec::len), Some(2));
    let shares = with_bearer(&app, &alice, "GET", &format!("{path}/shares"), None).await;
    assert_eq!(shares.json, json!([]));
}

async fn the_trash_and_an_erasure_take_shares_with_them(store: Arc<dyn Store>) {
    let app = app(store).await;
    let (alice, bob) = (token(&unique("alice")), unique("bob"));
    let bob_token = token(&bob);
    let id = conversation_with_a_turn(&app, &alice).await;
    share(&app, &alice, &id, json!({"userId": bob, "role": "viewer"})).await;
    let path = format!("/api/conversations/{id}");
    let trashed = with_bearer(&app, &alice, "DELETE", &path, None).await;
    assert!(trashed.status < 300, "{}", trashed.text);
    assert_eq!(
        with_bearer(&app, &bob_token, "GET", &path, None).await.status,
        404,
        "trashed"
    );
    assert_eq!(
        with_bearer(&app, &bob_token, "GET", "/api/shared", None).await.json,
        json!([])
    );
    let restored = with_bearer(&app, &alice, "POST", &format!("/api/trash/{id}/restore"), None).await;
    assert!(restored.status < 300, "{}", restored.text);
    assert_eq!(
        with_bearer(&app, &bob_token, "GET", &path, None).await.status,
        200,
        "restored"
    );
    // Bob erases his account: what was shared with him goes; Alice's conversation stays hers.
    let erased = with_bearer(&app, &bob_token, "DELETE", "/api/account?confirm=true", None).await;
    assert_eq!(erased.status, 200, "{}", erased.text);
    let shares = with_bearer(&app, &alice, "GET", &format!("{path}/shares"), None).await;
    assert_eq!(shares.json, json!([]));
    assert_eq!(with_bearer(&app, &alice, "GET", &path, None).await.status, 200);
}

async fn a_viewer_marks_a_shared_conversation_for_themselves_and_loses_the_marks_with_access(store: Arc<dyn Store>) {
    let app = app(Arc::clone(&store)).await;
    let (alice_id, bob) = (unique("alice"), unique("bob"));
    let (alice, bob_token) = (token(&alice_id), token(&bob));
    let id = conversation_with_a_turn(&app, &alice).await;
    share(&app, &alice, &id, json!({"userId": bob, "role": "viewer"})).await;
    let path = format!("/api/conversations/{id}");
    let reply = with_bearer(&app, &alice, "GET", &path, None).await.json["messages"][1]["id"]
        .as_str()
        .expect("reply id")
        .to_owned();
    let marks = format!("{path}/messages/{reply}");
    let reacted = with_bearer(
        &app,
        &bob_token,
        "PUT",
        &format!("{marks}/reaction"),
        Some(json!({"value": "down", "comment": "too vague"})),
    )
    .await;
    assert_eq!(reacted.status, 200, "{}", reacted.text);
    let marked = with_bearer(
        &app,
        &bob_token,
        "PUT",
        &format!("{marks}/bookmark"),
        Some(json!({"note": "ask again"})),
    )
    .await;
    assert_eq!(marked.status, 200, "{}", marked.text);
    // His reaction shows to him, not to Alice (hers is her own: none).
    let his = with_bearer(&app, &bob_token, "GET", &path, None).await;
    assert_eq!(his.json["messages"][1]["reaction"]["value"], "down", "{}", his.text);
    let hers = with_bearer(&app, &alice, "GET", &path, None).await;
    assert_eq!(hers.json["messages"][1]["reaction"], Value::Null, "{}", hers.text);
    let listed = with_bearer(&app, &bob_token, "GET", "/api/bookmarks", None).await;
    assert_eq!(listed.json.as_array().map(Vec::len), Some(1), "{}", listed.text);
    // Revoked: his bookmark no longer lists (no excerpt of her conversation reaches him).
    let revoked = with_bearer(&app, &alice, "DELETE", &format!("{path}/shares?userId={bob}"), None).await;
    assert_eq!(revoked.status, 204);
    let listed = with_bearer(&app, &bob_token, "GET", "/api/bookmarks", None).await;
    assert_eq!(listed.json, json!([]), "{}", listed.text);
    let refused = with_bearer(
        &app,
        &bob_token,
        "PUT",
        &format!("{marks}/reaction"),
        Some(json!({"value": "up"})),
    )
    .await;
    assert_eq!((refused.status, refused.code()), (404, "NOT_FOUND"));
    // Shared again, then he erases his account: his reaction in her conversation goes too.
    share(&app, &alice, &id, json!({"userId": bob, "role": "viewer"})).await;
    let erased = with_bearer(&app, &bob_token, "DELETE", "/api/account?confirm=true", None).await;
    assert_eq!(erased.status, 200, "{}", erased.text);
    let left = store
        .reactions(
            &shared::domain::UserId::parse(&alice_id).expect("alice"),
            &shared::domain::ConversationId::parse(&id).expect("id"),
            &shared::domain::UserId::parse(&bob).expect("bob"),
        )
        .await
        .expect("reactions");
    assert!(left.is_empty(), "{left:?}");
}

/// A grantee sees the conversation's content, not how its owner files it (pin, folder, tags,
/// archive) nor what its replies cost: in the conversation, its messages, `/api/shared` and an
/// export. The owner still sees all of it.
async fn a_grantee_sees_the_content_not_the_owners_filing_or_costs(store: Arc<dyn Store>) {
    let app = app(store).await;
    let (alice, bob) = (token(&unique("alice")), unique("bob"));
    let bob_token = token(&bob);
    let id = conversation_with_a_turn(&app, &alice).await;
    let folder = with_bearer(&app, &alice, "POST", "/api/folders", Some(json!({"name": "Job hunt"}))).await;
    assert_eq!(folder.status, 201, "{}", folder.text);
    let folder_id = folder.json["id"].clone();
    let filed = with_bearer(
        &app,
        &alice,
        "PATCH",
        &format!("/api/conversations/{id}"),
        Some(json!({"isPinned": true, "folderId": folder_id, "tags": ["private"], "isArchived": true})),
    )
    .await;
    assert_eq!(filed.status, 200, "{}", filed.text);
    let shared = share(&app, &alice, &id, json!({"userId": bob, "role": "viewer"})).await;
    assert_eq!(shared.status, 200, "{}", shared.text);

    let hers = with_bearer(&app, &alice, "GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(
        (
            &hers.json["isPinned"],
            &hers.json["folderId"],
            &hers.json["tags"],
            &hers.json["isArchived"]
        ),
        (&json!(true), &folder_id, &json!(["private"]), &json!(true))
    );
    assert!(hers.json["messages"][1]["usage"].is_object(), "{}", hers.text);

    let his = with_bearer(&app, &bob_token, "GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(his.status, 200, "{}", his.text);
    assert_eq!(
        (
            &his.json["isPinned"],
            &his.json["folderId"],
            &his.json["tags"],
            &his.json["isArchived"]
        ),
        (&json!(false), &Value::Null, &json!([]), &json!(false)),
        "{}",
        his.text
    );
    assert_eq!(his.json["messages"][1]["content"], hers.json["messages"][1]["content"]);
    assert_eq!(his.json["messages"][1].get("usage"), None, "{}", his.text);
    let listed = with_bearer(
        &app,
        &bob_token,
        "GET",
        &format!("/api/conversations/{id}/messages"),
        None,
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json[1].get("usage"), None, "{}", listed.text);
    let mine = with_bearer(&app, &bob_token, "GET", "/api/shared", None).await;
    assert_eq!(mine.json[0]["conversation"]["tags"], json!([]), "{}", mine.text);
    assert_eq!(mine.json[0]["conversation"]["folderId"], Value::Null);
    let export = with_bearer(
        &app,
        &bob_token,
        "GET",
        &format!("/api/conversations/{id}/export"),
        None,
    )
    .await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert!(!export.text.contains("private"), "{}", export.text);
    assert_eq!(export.json["conversation"]["isPinned"], json!(false));
    assert!(
        export.json["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .all(|m| m["usage"].is_null()),
        "{}",
        export.text
    );
    let own_export = with_bearer(&app, &alice, "GET", &format!("/api/conversations/{id}/export"), None).await;
    assert!(
        own_export.json["messages"][1]["usage"].is_object(),
        "{}",
        own_export.text
    );
}

athena_tests::on_both_stores!([
    a_viewer_reads_and_every_write_is_refused_with_403,
    a_collaborator_chats_in_the_owners_conversation_and_pays_for_it,
    a_revoked_share_stops_at_once_and_tells_nothing,
    a_share_by_address_reaches_whoever_signs_in_with_it_verified,
    the_owner_manages_shares_and_every_bad_request_is_a_clear_error,
    the_trash_and_an_erasure_take_shares_with_them,
    a_grantee_removes_what_was_shared_with_them_and_the_owner_keeps_it,
    a_viewer_marks_a_shared_conversation_for_themselves_and_loses_the_marks_with_access,
    a_grantee_sees_the_content_not_the_owners_filing_or_costs,
]);

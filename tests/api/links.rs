//! Share links over HTTP (issue 20), on both stores, with two users and an anonymous reader: a
//! link shows exactly its snapshot (the active branch as it was; no later message until a
//! refresh, never another branch, no owner, model or usage), counts its views, stops working
//! when revoked, expired or trashed (the one `404` a wrong token gets), only its owner manages
//! it, and "continue" copies it into the reader's own account.

use std::sync::Arc;

use athena_tests::tokens::{self, as_user};
use athena_tests::{on_both_stores, spawn_app, TestApp};
use serde_json::{json, Value};
use shared::domain::{Conversation, ConversationId, IdGenerator, Message, Role, Usage, UserId};

const ALICE: &str = "links-alice-0001";
const BOB: &str = "links-bob-0002";
const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

fn config() -> shared::config::Config {
    let mut config = tokens::jwt_config(tokens::verifier());
    config.rate_limit_per_minute = 0;
    config
}

/// Alice's conversation with two versions of the reply: `[question, first, second]` (the
/// second, newest, is shown until the active branch moves), the replies with model and usage.
async fn branched(app: &TestApp) -> (String, [String; 3]) {
    let ids = IdGenerator::new();
    let owner = UserId::parse(ALICE).expect("user");
    let now = shared::domain::now();
    let c = Conversation::new(
        ConversationId::parse(&ids.next_ulid()).expect("id"),
        owner,
        "Press 2 alarm",
        HAIKU,
        Some(shared::domain::Solution::Maintenance),
        now,
    );
    let q = Message::text(
        ids.message_id(),
        c.id.clone(),
        Role::User,
        "Why does press 2 trip?".into(),
        now,
    );
    let reply = |text: &str| {
        let mut m = Message::text(ids.message_id(), c.id.clone(), Role::Assistant, text.into(), now);
        m.parent_id = Some(q.id.clone());
        m.model = Some(HAIKU.to_owned());
        m.usage = Some(Usage {
            input_tokens: 11,
            output_tokens: 22,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        });
        m
    };
    let (first, second) = (reply("Check the relief valve."), reply("Check the pressure sensor."));
    app.store
        .create_conversation(&c, &[q.clone(), first.clone(), second.clone()])
        .await
        .expect("create");
    (
        c.id.to_string(),
        [q.id.to_string(), first.id.to_string(), second.id.to_string()],
    )
}

fn message_ids(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn create_link(app: &TestApp, conversation: &str, body: Value) -> Value {
    let r = as_user(
        app,
        ALICE,
        "POST",
        &format!("/api/conversations/{conversation}/links"),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json
}

async fn a_link_shows_exactly_its_snapshot_until_it_is_refreshed(app: TestApp) {
    let (id, [q, first, second]) = branched(&app).await;
    let shown = as_user(
        &app,
        ALICE,
        "PUT",
        &format!("/api/conversations/{id}/active-branch"),
        Some(json!({"messageId": first})),
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    let before = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(before.json["isShared"], json!(false));
    let link = create_link(&app, &id, json!({"expiresInDays": 7})).await;
    let token = link["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 22);
    assert_eq!(link["url"], json!(format!("/api/share/{token}")));
    assert_eq!(
        (link["views"].clone(), link["messageCount"].clone()),
        (json!(0), json!(2))
    );
    assert!(link["expiresAt"].is_string());
    // Anyone, without an account.
    let read = app.call("GET", &format!("/api/share/{token}"), None).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(message_ids(&read.json), vec![q.clone(), first.clone()]);
    assert_eq!(
        (
            read.json["title"].clone(),
            read.json["solutionType"].clone(),
            read.json["views"].clone()
        ),
        (json!("Press 2 alarm"), json!("maintenance"), json!(1))
    );
    assert_eq!(read.header("cache-control"), Some("no-store"));
    assert_eq!(read.header("referrer-policy"), Some("no-referrer"));
    for secret in [
        ALICE,
        &second,
        "pressure sensor",
        "usage",
        "model",
        "conversationId",
        HAIKU,
        &id,
    ] {
        assert!(!read.text.contains(secret), "the link shows {secret}: {}", read.text);
    }
    let again = app.call("GET", &format!("/api/share/{token}"), None).await;
    assert_eq!(again.json["views"], json!(2));
    // Shared now; a later message is not in the link until it is refreshed.
    let now_shared = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(now_shared.json["isShared"], json!(true));
    let added = as_user(
        &app,
        ALICE,
        "POST",
        &format!("/api/conversations/{id}/messages"),
        Some(json!({"role": "user", "content": "And the second shift?"})),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let later = app.call("GET", &format!("/api/share/{token}"), None).await;
    assert_eq!(message_ids(&later.json), vec![q.clone(), first.clone()]);
    assert!(!later.text.contains("second shift"));
    let link_path = format!("/api/conversations/{id}/links/{}", link["id"].as_str().expect("id"));
    let refreshed = as_user(&app, ALICE, "PATCH", &link_path, Some(json!({"refresh": true}))).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(refreshed.json["views"], json!(3), "a refresh keeps the count");
    assert!(refreshed.json.get("token").is_none(), "the token is shown once");
    let conversation = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}"), None).await;
    let now_read = app.call("GET", &format!("/api/share/{token}"), None).await;
    assert_eq!(
        message_ids(&now_read.json),
        message_ids(&conversation.json),
        "the branch shown now"
    );
    assert!(now_read.text.contains("second shift"));
    // Never another branch: every version not on the path shown is absent.
    let path = message_ids(&conversation.json);
    let others: Vec<String> = conversation.json["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["siblings"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(str::to_owned))
        .filter(|s| !path.contains(s))
        .collect();
    assert_eq!(others.len(), 1, "one version off the path: {}", conversation.text);
    assert!(
        others.iter().all(|o| !now_read.text.contains(o.as_str())),
        "never another branch"
    );
    // The owner's list: no token.
    let listed = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}/links"), None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json.as_array().map(Vec::len), Some(1));
    assert_eq!(listed.json[0]["views"], json!(4));
    assert!(listed.json[0].get("token").is_none() && !listed.text.contains(&token));
}

async fn revoked_expired_trashed_and_wrong_tokens_get_the_same_404(app: TestApp) {
    let (id, _) = branched(&app).await;
    let link = create_link(&app, &id, json!({})).await;
    assert_eq!(link["expiresAt"], Value::Null);
    let token = link["token"].as_str().expect("token").to_owned();
    let path = format!("/api/share/{token}");
    assert_eq!(app.call("GET", &path, None).await.status, 200);
    let gone = |r: &athena_tests::Reply| (r.status, r.code().to_owned(), r.json["error"]["message"].clone());
    let wrong = app.call("GET", "/api/share/AAAAAAAAAAAAAAAAAAAAAA", None).await;
    let expected = gone(&wrong);
    assert_eq!((expected.0, expected.1.as_str()), (404, "NOT_FOUND"));
    let malformed = app.call("GET", "/api/share/x", None).await;
    assert_eq!(gone(&malformed), expected);
    // Expired (its expiry set in the past through the store): 404, listed as expired, unshared.
    let owner = UserId::parse(ALICE).expect("user");
    let cid = ConversationId::parse(&id).expect("id");
    let lid = shared::domain::LinkId::parse(link["id"].as_str().expect("id")).expect("link id");
    let past = shared::domain::now() - chrono::Duration::minutes(1);
    let update = shared::store::LinkUpdate {
        expires_at: Some(Some(past)),
        ..Default::default()
    };
    app.store
        .update_link(&owner, &cid, &lid, &update, past)
        .await
        .expect("expire");
    assert_eq!(gone(&app.call("GET", &path, None).await), expected);
    let listed = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}/links"), None).await;
    assert_eq!(listed.json[0]["isExpired"], json!(true));
    let c = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(c.json["isShared"], json!(false), "an expired link shares nothing");
    // Extended again, then revoked.
    let link_path = format!("/api/conversations/{id}/links/{lid}");
    let extended = as_user(&app, ALICE, "PATCH", &link_path, Some(json!({"expiresInDays": null}))).await;
    assert_eq!(
        (extended.status, extended.json["isExpired"].clone()),
        (200, json!(false))
    );
    assert_eq!(app.call("GET", &path, None).await.status, 200);
    let revoked = as_user(&app, ALICE, "DELETE", &link_path, None).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(gone(&app.call("GET", &path, None).await), expected);
    assert_eq!(as_user(&app, ALICE, "DELETE", &link_path, None).await.status, 404);
    // In the trash: its links stop at once, and a restore does not bring them back.
    let other = create_link(&app, &id, json!({"expiresInDays": 30})).await;
    let other_path = format!("/api/share/{}", other["token"].as_str().expect("token"));
    assert_eq!(app.call("GET", &other_path, None).await.status, 200);
    assert_eq!(
        as_user(&app, ALICE, "DELETE", &format!("/api/conversations/{id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(gone(&app.call("GET", &other_path, None).await), expected);
    let restored = as_user(&app, ALICE, "POST", &format!("/api/trash/{id}/restore"), None).await;
    assert_eq!(
        (restored.status, restored.json["isShared"].clone()),
        (200, json!(false))
    );
    assert_eq!(gone(&app.call("GET", &other_path, None).await), expected);
}

async fn only_the_owner_sees_and_manages_a_conversations_links(app: TestApp) {
    let (id, _) = branched(&app).await;
    let link = create_link(&app, &id, json!({})).await;
    let lid = link["id"].as_str().expect("id").to_owned();
    let token = link["token"].as_str().expect("token").to_owned();
    let mine = as_user(&app, BOB, "POST", "/api/conversations", Some(json!({"title": "Bob's"}))).await;
    let bobs = mine.json["id"].as_str().expect("id").to_owned();
    let attacks: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/conversations/{id}/links"), None),
        ("POST", format!("/api/conversations/{id}/links"), Some(json!({}))),
        (
            "PATCH",
            format!("/api/conversations/{id}/links/{lid}"),
            Some(json!({"refresh": true})),
        ),
        ("DELETE", format!("/api/conversations/{id}/links/{lid}"), None),
        // Alice's link id under Bob's own conversation.
        (
            "PATCH",
            format!("/api/conversations/{bobs}/links/{lid}"),
            Some(json!({"expiresInDays": 1})),
        ),
        ("DELETE", format!("/api/conversations/{bobs}/links/{lid}"), None),
    ];
    for (method, path, body) in attacks {
        let r = as_user(&app, BOB, method, &path, body).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{method} {path}: {}", r.text);
        assert!(!r.text.contains(&token));
    }
    let theirs = as_user(&app, BOB, "GET", &format!("/api/conversations/{bobs}/links"), None).await;
    assert_eq!(theirs.json, json!([]));
    // Alice's link is untouched.
    let read = app.call("GET", &format!("/api/share/{token}"), None).await;
    assert_eq!((read.status, read.json["views"].clone()), (200, json!(1)));
    // Managing needs an account; reading does not.
    let anonymous = app.call("GET", &format!("/api/conversations/{id}/links"), None).await;
    assert_eq!(anonymous.status, 401);
}

async fn continuing_copies_the_snapshot_into_the_readers_own_account(app: TestApp) {
    let (id, [q, first, _]) = branched(&app).await;
    as_user(
        &app,
        ALICE,
        "PUT",
        &format!("/api/conversations/{id}/active-branch"),
        Some(json!({"messageId": first})),
    )
    .await;
    let link = create_link(&app, &id, json!({})).await;
    let continue_path = format!("/api/share/{}/continue", link["token"].as_str().expect("token"));
    let anonymous = app.call("POST", &continue_path, None).await;
    assert_eq!(anonymous.status, 401);
    let copy = as_user(&app, BOB, "POST", &continue_path, None).await;
    assert_eq!(copy.status, 201, "{}", copy.text);
    let copy_id = copy.json["id"].as_str().expect("id").to_owned();
    assert_ne!(copy_id, id);
    assert_eq!(
        copy.header("location"),
        Some(format!("/api/conversations/{copy_id}").as_str())
    );
    assert_eq!(
        (
            copy.json["importedFrom"].clone(),
            copy.json["title"].clone(),
            copy.json["isShared"].clone()
        ),
        (json!("share"), json!("Press 2 alarm"), json!(false))
    );
    let contents: Vec<&str> = copy.json["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().expect("content"))
        .collect();
    assert_eq!(contents, vec!["Why does press 2 trip?", "Check the relief valve."]);
    assert!(!message_ids(&copy.json).contains(&q), "new message ids");
    // Bob's own now: he reads and chats in it; Alice's account did not change.
    let his = as_user(&app, BOB, "GET", &format!("/api/conversations/{copy_id}"), None).await;
    assert_eq!(his.status, 200);
    let hers = as_user(&app, ALICE, "GET", &format!("/api/conversations/{copy_id}"), None).await;
    assert_eq!(hers.status, 404);
    let alices = as_user(&app, ALICE, "GET", "/api/conversations", None).await;
    assert_eq!(alices.json.as_array().map(Vec::len), Some(1));
    let wrong = as_user(&app, BOB, "POST", "/api/share/AAAAAAAAAAAAAAAAAAAAAA/continue", None).await;
    assert_eq!(wrong.status, 404);
}

async fn links_are_validated_and_capped_at_twenty_live_ones(app: TestApp) {
    let (id, _) = branched(&app).await;
    let path = format!("/api/conversations/{id}/links");
    for bad in [
        json!({"expiresInDays": 0}),
        json!({"expiresInDays": 366}),
        json!({"expiresInDays": "7"}),
        json!({"expiresInDays": 1.5}),
        json!({"other": 1}),
    ] {
        let r = as_user(&app, ALICE, "POST", &path, Some(bad.clone())).await;
        assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{bad}: {}", r.text);
    }
    for _ in 0..20 {
        create_link(&app, &id, json!({"expiresInDays": 1})).await;
    }
    let over = as_user(&app, ALICE, "POST", &path, Some(json!({}))).await;
    assert_eq!((over.status, over.code()), (409, "CONFLICT"), "{}", over.text);
    let listed = as_user(&app, ALICE, "GET", &path, None).await;
    assert_eq!(listed.json.as_array().map(Vec::len), Some(20));
    let lid = listed.json[0]["id"].as_str().expect("id");
    let empty = as_user(&app, ALICE, "PATCH", &format!("{path}/{lid}"), Some(json!({}))).await;
    assert_eq!((empty.status, empty.code()), (400, "VALIDATION"));
    // Unsharing the conversation revokes them all.
    let unshared = as_user(
        &app,
        ALICE,
        "PATCH",
        &format!("/api/conversations/{id}"),
        Some(json!({"isShared": false})),
    )
    .await;
    assert_eq!(
        (unshared.status, unshared.json["isShared"].clone()),
        (200, json!(false))
    );
    let listed = as_user(&app, ALICE, "GET", &path, None).await;
    assert_eq!(listed.json, json!([]));
}

on_both_stores!(
    |store| spawn_app(Arc::new(store), config()).await,
    [
        a_link_shows_exactly_its_snapshot_until_it_is_refreshed,
        revoked_expired_trashed_and_wrong_tokens_get_the_same_404,
        only_the_owner_sees_and_manages_a_conversations_links,
        continuing_copies_the_snapshot_into_the_readers_own_account,
        links_are_validated_and_capped_at_twenty_live_ones,
    ]
);

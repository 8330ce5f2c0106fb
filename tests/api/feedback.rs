//! Reactions and bookmarks over HTTP (issue 20, item 3), on both stores: a reaction per user and
//! assistant reply, changeable and removable, shown on the caller's own messages; bookmarks on
//! any message, listed newest first with a cursor; another user can neither react to, bookmark,
//! nor see anything of a conversation that is not theirs (404, never 403); and the analytics
//! summary's thumbs-down rate is exactly what the stored reactions say.

use std::sync::Arc;

use athena_tests::tokens::{self, as_user};
use athena_tests::{on_both_stores, spawn_state, Reply, TestApp};
use serde_json::{json, Value};
use shared::domain::{ConversationId, UserId};
use shared::state::AppState;
use shared::store::{Store, Thumb};

const ALICE: &str = "feedback-alice-0001";
const BOB: &str = "feedback-bob-0002";

/// A gateway with two JWT users (Alice an administrator) and the scripted model.
async fn app(store: Arc<dyn Store>) -> TestApp {
    let mut config = tokens::jwt_config(tokens::verifier());
    config.admins = vec![UserId::parse(ALICE).expect("admin")];
    config.rate_limit_per_minute = 0;
    let state = AppState::new(config, Arc::clone(&store)).with_chat(
        Arc::new(shared::llm::scripted::ScriptedModel),
        shared::chat::ChatConfig::default(),
    );
    spawn_state(state, store).await
}

/// A chat turn of `who` in the maintenance chat: the new conversation's id, its question's id and
/// its reply's id.
async fn chatted(app: &TestApp, who: &str, text: &str) -> (String, String, String) {
    let chat = as_user(
        app,
        who,
        "POST",
        "/api/chat/maintenance",
        Some(json!({"messages": [{"role": "user", "content": text}]})),
    )
    .await;
    assert_eq!(chat.status, 200, "{}", chat.text);
    let listed = as_user(app, who, "GET", "/api/conversations", None).await;
    let id = listed.json[0]["id"].as_str().expect("id").to_owned();
    let messages = as_user(app, who, "GET", &format!("/api/conversations/{id}/messages"), None).await;
    (
        id,
        athena_tests::id_of_role(&messages.json, "user"),
        athena_tests::id_of_role(&messages.json, "assistant"),
    )
}

fn reaction_path(id: &str, message: &str) -> String {
    format!("/api/conversations/{id}/messages/{message}/reaction")
}

fn bookmark_path(id: &str, message: &str) -> String {
    format!("/api/conversations/{id}/messages/{message}/bookmark")
}

/// The `reaction` field of message `message` in a list of messages.
fn reaction_of(messages: &Value, message: &str) -> Option<Value> {
    messages
        .as_array()
        .and_then(|all| all.iter().find(|m| m["id"] == message))
        .and_then(|m| m.get("reaction").cloned())
}

fn code(r: &Reply) -> (u16, Option<&str>) {
    (r.status, r.json["error"]["code"].as_str())
}

async fn a_reaction_is_one_per_user_changeable_and_shown_on_the_callers_messages(app: TestApp) {
    let (id, question, reply) = chatted(&app, ALICE, "Press 2 trips its alarm").await;
    let path = reaction_path(&id, &reply);
    let up = as_user(&app, ALICE, "PUT", &path, Some(json!({"value": "up"}))).await;
    assert_eq!(up.status, 200, "{}", up.text);
    assert_eq!(
        (up.json["value"].clone(), up.json["comment"].clone()),
        (json!("up"), Value::Null)
    );
    let listed = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}/messages"), None).await;
    assert_eq!(
        reaction_of(&listed.json, &reply),
        Some(json!({"value": "up", "comment": null}))
    );
    assert_eq!(reaction_of(&listed.json, &question), None, "user messages carry none");
    // A second PUT replaces the first (one per user and message), keeping its creation time.
    let down = as_user(
        &app,
        ALICE,
        "PUT",
        &path,
        Some(json!({"value": "down", "comment": "Alarm E-42 is a sensor fault, not overheating."})),
    )
    .await;
    assert_eq!(down.status, 200, "{}", down.text);
    assert_eq!(down.json["createdAt"], up.json["createdAt"]);
    let read = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(
        reaction_of(&read.json["messages"], &reply),
        Some(json!({"value": "down", "comment": "Alarm E-42 is a sensor fault, not overheating."}))
    );
    let stored = app
        .store
        .reactions(
            &UserId::parse(ALICE).expect("id"),
            &ConversationId::parse(&id).expect("id"),
            &UserId::parse(ALICE).expect("id"),
        )
        .await
        .expect("stored");
    assert_eq!(stored.len(), 1, "one reaction per user and message");
    assert_eq!(stored[0].value, Thumb::Down);
    // Only assistant replies take reactions; bad bodies are refused with their field.
    let on_question = as_user(
        &app,
        ALICE,
        "PUT",
        &reaction_path(&id, &question),
        Some(json!({"value": "up"})),
    )
    .await;
    assert_eq!(code(&on_question), (400, Some("NOT_AN_ASSISTANT_MESSAGE")));
    for body in [
        json!({"value": "meh"}),
        json!({"value": "up", "comment": "x".repeat(1001)}),
        json!({"value": "up", "extra": true}),
        json!({}),
    ] {
        let r = as_user(&app, ALICE, "PUT", &path, Some(body.clone())).await;
        assert_eq!(code(&r), (400, Some("VALIDATION")), "{body}");
    }
    let missing = as_user(
        &app,
        ALICE,
        "PUT",
        &reaction_path(&id, "01JNOSUCHMESSAGE0000000000"),
        Some(json!({"value": "up"})),
    )
    .await;
    assert_eq!(code(&missing), (404, Some("NOT_FOUND")));
    // Removing is idempotent; the message then shows `null`.
    assert_eq!(as_user(&app, ALICE, "DELETE", &path, None).await.status, 204);
    assert_eq!(as_user(&app, ALICE, "DELETE", &path, None).await.status, 204);
    let listed = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}/messages"), None).await;
    assert_eq!(reaction_of(&listed.json, &reply), Some(Value::Null));
}

async fn another_user_cannot_react_bookmark_or_see_marks_of_a_conversation_not_theirs(app: TestApp) {
    let (id, question, reply) = chatted(&app, ALICE, "Why is line 3 slow?").await;
    let put = as_user(
        &app,
        ALICE,
        "PUT",
        &reaction_path(&id, &reply),
        Some(json!({"value": "down", "comment": "secret"})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let marked = as_user(
        &app,
        ALICE,
        "PUT",
        &bookmark_path(&id, &question),
        Some(json!({"note": "secret note"})),
    )
    .await;
    assert_eq!(marked.status, 200, "{}", marked.text);
    // Bob: every route answers as for a conversation that does not exist.
    let nowhere = "01JNOSUCHCONVERSATION00000";
    for (method, path, body) in [
        ("PUT", reaction_path(&id, &reply), Some(json!({"value": "up"}))),
        ("DELETE", reaction_path(&id, &reply), None),
        ("PUT", bookmark_path(&id, &question), Some(json!({}))),
        ("DELETE", bookmark_path(&id, &question), None),
        ("GET", format!("/api/conversations/{id}/messages"), None),
        ("PUT", reaction_path(nowhere, &reply), Some(json!({"value": "up"}))),
        ("DELETE", bookmark_path(nowhere, &question), None),
    ] {
        let r = as_user(&app, BOB, method, &path, body).await;
        assert_eq!(code(&r), (404, Some("NOT_FOUND")), "{method} {path}");
        assert!(!r.text.contains("secret"), "{method} {path}: {}", r.text);
    }
    let his = as_user(&app, BOB, "GET", "/api/bookmarks", None).await;
    assert_eq!((his.status, his.json.clone()), (200, json!([])));
    // Bob's own conversation shows no reaction of anyone else's.
    let (bobs, _, bobs_reply) = chatted(&app, BOB, "Mine").await;
    let listed = as_user(&app, BOB, "GET", &format!("/api/conversations/{bobs}/messages"), None).await;
    assert_eq!(reaction_of(&listed.json, &bobs_reply), Some(Value::Null));
    // Alice's marks are intact.
    let listed = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}/messages"), None).await;
    assert_eq!(
        reaction_of(&listed.json, &reply).map(|r| r["value"].clone()),
        Some(json!("down"))
    );
    let hers = as_user(&app, ALICE, "GET", "/api/bookmarks", None).await;
    assert_eq!(hers.json.as_array().map(Vec::len), Some(1));
}

async fn bookmarks_are_listed_newest_first_with_a_cursor_and_go_with_their_conversation(app: TestApp) {
    let (first, question, _) = chatted(&app, ALICE, "What is the MTBF of press 2?").await;
    let (second, _, reply) = chatted(&app, ALICE, "And of press 3?").await;
    let a = as_user(
        &app,
        ALICE,
        "PUT",
        &bookmark_path(&first, &question),
        Some(json!({"note": "ask again"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["excerpt"], "What is the MTBF of press 2?");
    // An empty body bookmarks without a note.
    let b = app
        .send(
            app.client
                .put(format!("{}{}", app.base, bookmark_path(&second, &reply)))
                .bearer_auth(tokens::token(ALICE)),
        )
        .await;
    assert_eq!((b.status, b.json["note"].clone()), (200, Value::Null), "{}", b.text);
    // Bookmarking again replaces the note and keeps the bookmark's place.
    let again = as_user(
        &app,
        ALICE,
        "PUT",
        &bookmark_path(&first, &question),
        Some(json!({"note": "Ünïcødé 🚀"})),
    )
    .await;
    assert_eq!(
        (again.json["note"].clone(), again.json["createdAt"].clone()),
        (json!("Ünïcødé 🚀"), a.json["createdAt"].clone())
    );
    let too_long = as_user(
        &app,
        ALICE,
        "PUT",
        &bookmark_path(&first, &question),
        Some(json!({"note": "x".repeat(501)})),
    )
    .await;
    assert_eq!(code(&too_long), (400, Some("VALIDATION")));
    let renamed = as_user(
        &app,
        ALICE,
        "PATCH",
        &format!("/api/conversations/{first}"),
        Some(json!({"title": "Press 2 MTBF"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let all = as_user(&app, ALICE, "GET", "/api/bookmarks", None).await;
    let rows: Vec<(Value, Value, Value)> = all
        .json
        .as_array()
        .expect("array")
        .iter()
        .map(|b| (b["conversationId"].clone(), b["title"].clone(), b["note"].clone()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (json!(second), all.json[0]["title"].clone(), Value::Null),
            (json!(first), json!("Press 2 MTBF"), json!("Ünïcødé 🚀")),
        ],
        "newest first, with the current title"
    );
    let page = as_user(&app, ALICE, "GET", "/api/bookmarks?limit=1", None).await;
    assert_eq!(page.json.as_array().map(Vec::len), Some(1));
    let cursor = page.header("x-next-cursor").expect("cursor").to_owned();
    let next = as_user(
        &app,
        ALICE,
        "GET",
        &format!("/api/bookmarks?limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(next.json[0]["conversationId"], json!(first));
    assert_eq!(next.header("x-next-cursor"), None);
    let bad = as_user(&app, ALICE, "GET", "/api/bookmarks?cursor=forged", None).await;
    assert_eq!(code(&bad), (400, Some("VALIDATION")));
    let bobs_cursor = as_user(
        &app,
        BOB,
        "GET",
        &format!("/api/bookmarks?limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(bobs_cursor.status, 400, "a cursor is the caller's own");
    // Removing is idempotent.
    assert_eq!(
        as_user(&app, ALICE, "DELETE", &bookmark_path(&second, &reply), None)
            .await
            .status,
        204
    );
    assert_eq!(
        as_user(&app, ALICE, "DELETE", &bookmark_path(&second, &reply), None)
            .await
            .status,
        204
    );
    // Deleting the conversation for good removes its owner's bookmarks on it.
    assert_eq!(
        as_user(&app, ALICE, "DELETE", &format!("/api/conversations/{first}"), None)
            .await
            .status,
        200
    );
    let purged = as_user(&app, ALICE, "DELETE", &format!("/api/trash/{first}"), None).await;
    assert!((200..300).contains(&purged.status), "{}", purged.text);
    let left = as_user(&app, ALICE, "GET", "/api/bookmarks", None).await;
    assert_eq!(left.json, json!([]));
}

async fn the_thumbs_down_rate_on_the_summary_equals_the_stored_reactions(app: TestApp) {
    let mut conversations = Vec::new();
    for (who, value) in [
        (ALICE, "up"),
        (ALICE, "down"),
        (ALICE, "down"),
        (BOB, "up"),
        (BOB, "down"),
    ] {
        let (id, _, reply) = chatted(&app, who, "Status of press 2?").await;
        let r = as_user(
            &app,
            who,
            "PUT",
            &reaction_path(&id, &reply),
            Some(json!({"value": value})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        conversations.push((who, id, reply));
    }
    // Changed (up to down) and removed (Bob's down): the counters follow.
    let (who, id, reply) = &conversations[0];
    as_user(
        &app,
        who,
        "PUT",
        &reaction_path(id, reply),
        Some(json!({"value": "down"})),
    )
    .await;
    let (who, id, reply) = &conversations[4];
    assert_eq!(
        as_user(&app, who, "DELETE", &reaction_path(id, reply), None)
            .await
            .status,
        204
    );
    // What the stores hold, read around the API.
    let (mut up, mut down) = (0u64, 0u64);
    let mut model = None;
    for (who, id, _) in &conversations {
        let user = UserId::parse(who).expect("id");
        for r in app
            .store
            .reactions(&user, &ConversationId::parse(id).expect("id"), &user)
            .await
            .expect("reactions")
        {
            model = Some(r.model.clone());
            match r.value {
                Thumb::Up => up += 1,
                Thumb::Down => down += 1,
            }
        }
    }
    assert_eq!((up, down), (1, 3));
    let summary = as_user(&app, ALICE, "GET", "/api/analytics/summary", None).await;
    assert_eq!(summary.status, 200, "{}", summary.text);
    assert_eq!(
        summary.json["feedback"],
        json!([{
            "solution": "maintenance",
            "model": model.expect("a model"),
            "thumbsUp": up,
            "thumbsDown": down,
            "thumbsDownRate": down as f64 / (up + down) as f64,
        }])
    );
    assert_eq!(
        (
            summary.json["totals"]["thumbsUp"].clone(),
            summary.json["totals"]["thumbsDown"].clone()
        ),
        (json!(up), json!(down))
    );
    assert_eq!(summary.json["bySolution"][0]["thumbsDownRate"], json!(0.75));
    // Every change is an analytics event.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let events = app.store.events_of_day(&today).await.expect("events");
    let feedback: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type == "feedback")
        .filter_map(|e| e.metadata["action"].as_str())
        .collect();
    assert_eq!(feedback.iter().filter(|a| **a == "set").count(), 5);
    assert_eq!(feedback.iter().filter(|a| **a == "changed").count(), 1);
    assert_eq!(feedback.iter().filter(|a| **a == "removed").count(), 1);
    // Not an administrator: no summary.
    let bob = as_user(&app, BOB, "GET", "/api/analytics/summary", None).await;
    assert_eq!(bob.status, 403);
}

on_both_stores!(
    |store| app(Arc::new(store)).await,
    [
        a_reaction_is_one_per_user_changeable_and_shown_on_the_callers_messages,
        another_user_cannot_react_bookmark_or_see_marks_of_a_conversation_not_theirs,
        bookmarks_are_listed_newest_first_with_a_cursor_and_go_with_their_conversation,
        the_thumbs_down_rate_on_the_summary_equals_the_stored_reactions,
    ]
);

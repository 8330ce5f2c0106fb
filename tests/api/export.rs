//! Exporting one conversation (issue 18, deliverable 3) over HTTP, on both stores: a
//! conversation with a tool reply (the sample MES server's `mes_machine_status`, called by the
//! scripted model) and an edited question (two versions) exports EVERY message as JSON with its
//! parent and the active leaf, and its active branch only as Markdown; another user's or a
//! missing conversation is 404 in both formats; a bad `format` is 400.

use std::sync::Arc;

use athena_mes::{MesServer, Options, Plant};
use athena_tests::sse::post_chat;
use athena_tests::tokens::{self, as_user};
use athena_tests::{on_both_stores, spawn_app, spawn_state, TestApp};
use serde_json::{json, Value};
use shared::chat::ChatConfig;
use shared::config::{Config, McpServerConfig};
use shared::domain::{Message, MessagePart, Solution};
use shared::state::AppState;
use shared::store::Store;

const CHAT: &str = "/api/chat/manufacturing";
const ID: &str = "export-me";

async fn mes() -> MesServer {
    athena_mes::serve(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        Plant::sample(),
        Options::default(),
    )
    .await
    .expect("the MES server starts")
}

async fn app_with_mes(store: Arc<dyn Store>, mes: &MesServer) -> TestApp {
    let mut server = McpServerConfig::new("mes", &mes.url());
    server.solutions = Some(vec![Some(Solution::Manufacturing)]);
    let chat = ChatConfig {
        mcp: vec![server],
        ..ChatConfig::default()
    };
    let state = AppState::new(Config::local(), Arc::clone(&store))
        .with_chat(Arc::new(shared::llm::scripted::ScriptedModel), chat);
    spawn_state(state, store).await
}

/// Posts user message `id` with `text` (the server keeps the history); returns the stream.
async fn say(app: &TestApp, id: &str, text: &str, edit: bool) -> String {
    let mut body = json!({"id": ID, "trigger": "submit-message",
        "messages": [{"id": id, "role": "user", "parts": [{"type": "text", "text": text}]}]});
    if edit {
        body["messageId"] = json!(id);
    }
    let (status, _, stream) = post_chat(app, CHAT, body).await;
    assert_eq!(status, 200, "{stream}");
    stream
}

fn ids(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.id.to_string()).collect()
}

async fn export(app: &TestApp, format: Option<&str>) -> athena_tests::Reply {
    let query = format.map(|f| format!("?format={f}")).unwrap_or_default();
    let r = app
        .call("GET", &format!("/api/conversations/{ID}/export{query}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

async fn every_branch_is_in_the_json_and_the_active_one_in_the_markdown(store: Arc<dyn Store>) {
    let mes = mes().await;
    let app = app_with_mes(store, &mes).await;
    let created = app
        .call(
            "POST",
            "/api/conversations",
            Some(json!({"id": ID, "title": "Press 2: status", "solutionType": "manufacturing"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    say(
        &app,
        "q1",
        "How is press 2? #tool:mes_machine_status?machineId=PRESS-02",
        false,
    )
    .await;
    say(&app, "q2", "And the oven? #deltas:2", false).await;
    say(&app, "q2", "And the press line? #deltas:3", true).await;
    let stored = app.stored(ID).await;
    assert_eq!(
        stored.len(),
        6,
        "q1, its tool reply, q2, its reply, q2 edited, its reply"
    );
    let [q1, a1, q2, a2, q2b, a2b] = &stored[..] else {
        unreachable!()
    };
    assert!(
        a1.parts.iter().any(|p| matches!(p, MessagePart::ToolResult { .. })),
        "the reply called the tool: {:?}",
        a1.parts
    );

    // JSON (the default): every message of both branches, with parents and the active leaf.
    let r = export(&app, None).await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"press-2-status-{ID}.json\"").as_str())
    );
    let doc = &r.json;
    assert_eq!(
        (doc["format"].clone(), doc["version"].clone()),
        (json!("athena.conversation"), json!(1))
    );
    assert_eq!(doc["conversation"]["id"], ID);
    assert_eq!(doc["conversation"]["solutionType"], "manufacturing");
    assert_eq!(doc["conversation"]["activeLeafId"], a2b.id.as_str());
    let messages = doc["messages"].as_array().cloned().unwrap_or_default();
    let exported: Vec<&str> = messages.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(exported, ids(&stored), "every message of every branch, in order");
    let parents: Vec<Value> = messages.iter().map(|m| m["parentId"].clone()).collect();
    assert_eq!(
        parents,
        [
            Value::Null,
            json!(q1.id.as_str()),
            json!(a1.id.as_str()),
            json!(q2.id.as_str()),
            json!(a1.id.as_str()),
            json!(q2b.id.as_str()),
        ],
        "the edit is a sibling of the first version"
    );
    let texts: Vec<&str> = messages.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(texts[2], "And the oven? #deltas:2");
    assert_eq!(texts[4], "And the press line? #deltas:3");
    assert_eq!(
        (messages[2]["clientId"].clone(), messages[4]["clientId"].clone()),
        (json!("q2"), json!("q2"))
    );
    let tool_parts: Vec<&str> = messages[1]["parts"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["type"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        tool_parts.contains(&"tool-call") && tool_parts.contains(&"tool-result"),
        "{tool_parts:?}"
    );
    assert_eq!(
        messages[1]["parts"][tool_parts.iter().position(|t| *t == "tool-call").unwrap_or(0)]["toolName"],
        "mes_machine_status"
    );
    assert!(
        messages[1]["usage"]["outputTokens"].as_u64().is_some(),
        "{}",
        messages[1]
    );
    assert_eq!(messages[3]["finishReason"], "stop");
    assert_eq!(messages[0]["usage"], Value::Null, "every field present");
    assert_eq!(export(&app, Some("json")).await.json["messages"], doc["messages"]);

    // Markdown: the active branch only, with the tool line and a note about the other version.
    let r = export(&app, Some("markdown")).await;
    assert_eq!(r.header("content-type"), Some("text/markdown; charset=utf-8"));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"press-2-status-{ID}.md\"").as_str())
    );
    let page = &r.text;
    assert!(
        page.starts_with("# Press 2: status\n\nSolution: manufacturing · Model: "),
        "{page}"
    );
    assert!(
        page.contains("## You\n\nHow is press 2? #tool:mes_machine_status"),
        "{page}"
    );
    assert!(
        page.contains("> Tool mes_machine_status({\"machineId\":\"PRESS-02\"}) -> "),
        "{page}"
    );
    assert!(
        page.contains("And the press line?") && page.contains(&a2b.content.trim_end().to_string()),
        "{page}"
    );
    assert!(
        !page.contains("And the oven?"),
        "the other version is not shown: {page}"
    );
    assert_eq!(page.matches("## You").count(), 2, "{page}");
    assert_eq!(page.matches("## Athena").count(), 2, "{page}");
    assert!(page.contains("other versions"), "{page}");

    // Showing the first version of q2: the active leaf and the Markdown follow.
    let switched = app
        .call(
            "PUT",
            &format!("/api/conversations/{ID}/active-branch"),
            Some(json!({"messageId": q2.id.as_str()})),
        )
        .await;
    assert_eq!(switched.status, 200, "{}", switched.text);
    assert_eq!(
        export(&app, None).await.json["conversation"]["activeLeafId"],
        a2.id.as_str()
    );
    let page = export(&app, Some("markdown")).await.text;
    assert!(
        page.contains("And the oven?") && !page.contains("And the press line?"),
        "{page}"
    );
}

on_both_stores!([every_branch_is_in_the_json_and_the_active_one_in_the_markdown]);

/// Isolation and validation (the tests' paths: `export::isolation::<store>::...`).
mod isolation {
    use super::*;

    async fn another_users_or_a_missing_conversation_is_404_and_a_bad_format_400(app: TestApp) {
        let created = as_user(
            &app,
            "alice-0001",
            "POST",
            "/api/conversations",
            Some(json!({"id": "alices", "title": "Secret plan"})),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.text);
        for format in ["", "?format=json", "?format=markdown"] {
            let path = format!("/api/conversations/alices/export{format}");
            let theirs = as_user(&app, "bob-0002", "GET", &path, None).await;
            assert_eq!((theirs.status, theirs.code()), (404, "NOT_FOUND"), "{path}");
            assert!(!theirs.text.contains("Secret plan"), "{path}");
            let missing = as_user(
                &app,
                "alice-0001",
                "GET",
                &format!("/api/conversations/nobody/export{format}"),
                None,
            )
            .await;
            assert_eq!(missing.status, 404, "{path}");
            let mine = as_user(&app, "alice-0001", "GET", &path, None).await;
            assert_eq!(mine.status, 200, "{path}: {}", mine.text);
            assert!(mine.text.contains("Secret plan"), "{path}");
        }
        for bad in ["pdf", "JSON", "md", ""] {
            let r = as_user(
                &app,
                "alice-0001",
                "GET",
                &format!("/api/conversations/alices/export?format={bad}"),
                None,
            )
            .await;
            assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{bad}: {}", r.text);
            assert!(
                r.text.contains("format") && r.text.contains("must be json or markdown"),
                "{}",
                r.text
            );
        }
        let bad_id = as_user(
            &app,
            "alice-0001",
            "GET",
            "/api/conversations/not%20an%20id/export",
            None,
        )
        .await;
        assert_eq!(bad_id.status, 400);
        let unauthenticated = app.call("GET", "/api/conversations/alices/export", None).await;
        assert_eq!(unauthenticated.status, 401);
        let post = as_user(&app, "alice-0001", "POST", "/api/conversations/alices/export", None).await;
        assert_eq!(post.status, 405);
    }

    on_both_stores!(
        |store| spawn_app(Arc::new(store), tokens::jwt_config(tokens::verifier())).await,
        [another_users_or_a_missing_conversation_is_404_and_a_bad_format_400]
    );
}

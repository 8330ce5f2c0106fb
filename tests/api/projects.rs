//! Projects over HTTP (issue 17), on both stores: CRUD with validation and audit, a
//! conversation created in a project takes its defaults, the conversation listing filters by
//! project, a conversation moves in and out, deleting a project requires saying what happens
//! to its conversations; another user's project is a 404 on every route; the 101st project is
//! refused; and a project's instructions reach the model's system prompt after the solution's.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use athena_tests::sse::post_chat;
use athena_tests::tokens::{self, claims, hs256, SECRET};
use athena_tests::{embedded_store, on_both_stores, spawn_app, spawn_chat_app, spawn_state, with_bearer, TestApp};
use serde_json::{json, Value};
use shared::chat::{system_prompt, ChatConfig};
use shared::config::Config;
use shared::domain::Solution;
use shared::llm::scripted::ScriptedModel;
use shared::llm::{ChatModel, ModelRequest, ModelStream, ProviderError};
use shared::state::AppState;
use shared::store::Store;

const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

async fn created(app: &TestApp, body: Value) -> Value {
    let r = app.call("POST", "/api/projects", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().expect("id");
    assert_eq!(r.header("location"), Some(format!("/api/projects/{id}").as_str()));
    r.json
}

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("id")
}

/// The actions of the local user's audit entries, newest first.
async fn audited(app: &TestApp) -> Vec<(String, String)> {
    let r = app.call("GET", "/api/audit", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["resource"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn projects_are_created_read_patched_and_validated(app: TestApp) {
    let p = created(
        &app,
        json!({"name": "  Line 3  ", "description": "Commissioning", "instructions": "Be brief.",
               "defaultModel": HAIKU, "defaultSolution": "maintenance"}),
    )
    .await;
    assert_eq!(p["name"], "Line 3", "trimmed");
    assert_eq!(
        (p["defaultModel"].clone(), p["defaultSolution"].clone()),
        (json!(HAIKU), json!("maintenance"))
    );
    let bare = created(&app, json!({"name": "Bare"})).await;
    assert_eq!(
        (
            bare["description"].clone(),
            bare["instructions"].clone(),
            bare["defaultModel"].clone()
        ),
        (json!(""), json!(""), Value::Null)
    );
    let list = app.call("GET", "/api/projects", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json, json!([p.clone(), bare.clone()]), "oldest first");
    let path = format!("/api/projects/{}", id(&p));
    assert_eq!(app.call("GET", &path, None).await.json, p);
    let patched = app
        .call(
            "PATCH",
            &path,
            Some(json!({"instructions": "Be thorough.", "defaultModel": null})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(
        (
            patched.json["instructions"].clone(),
            patched.json["defaultModel"].clone(),
            patched.json["name"].clone()
        ),
        (json!("Be thorough."), Value::Null, json!("Line 3"))
    );
    // Bounds and types, each naming its field, nothing stored.
    let refusals = [
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": "ok", "description": "é".repeat(1001)}), "description"),
        (json!({"name": "ok", "instructions": "x".repeat(8001)}), "instructions"),
        (json!({"name": "ok", "defaultModel": "gpt-nope"}), "defaultModel"),
    ];
    for (body, field) in refusals {
        let r = app.call("POST", "/api/projects", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json["error"]["code"], "VALIDATION");
        assert_eq!(r.json["error"]["details"][0]["field"], field, "{body}");
    }
    assert_eq!(
        app.call("GET", "/api/projects", None)
            .await
            .json
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let empty = app.call("PATCH", &path, Some(json!({}))).await;
    assert_eq!(empty.status, 400);
    let unknown = app.call("PATCH", &path, Some(json!({"owner": "me"}))).await;
    assert_eq!(unknown.status, 400);
    let missing = app.call("GET", "/api/projects/01JH8Q3V6W2K9RZTBXN4MCP7PR", None).await;
    assert_eq!(
        (missing.status, missing.json["error"]["message"].clone()),
        (404, json!("project not found"))
    );
    let malformed = app.call("GET", "/api/projects/bad%20id", None).await;
    assert_eq!(malformed.status, 400);
    let actions = audited(&app).await;
    assert!(
        actions.contains(&("project.create".to_owned(), id(&p).to_owned())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("project.update".to_owned(), id(&p).to_owned())),
        "{actions:?}"
    );
}

async fn a_conversation_in_a_project_takes_its_defaults_and_is_listed_by_it(app: TestApp) {
    let p = created(
        &app,
        json!({"name": "P", "defaultModel": HAIKU, "defaultSolution": "maintenance"}),
    )
    .await;
    let pid = id(&p).to_owned();
    let c = app
        .call("POST", "/api/conversations", Some(json!({"projectId": pid})))
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    assert_eq!(
        (
            c.json["model"].clone(),
            c.json["solutionType"].clone(),
            c.json["projectId"].clone()
        ),
        (json!(HAIKU), json!("maintenance"), json!(pid))
    );
    let explicit = app
        .call(
            "POST",
            "/api/conversations",
            Some(json!({"projectId": pid, "solutionType": "support",
                        "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"})),
        )
        .await;
    assert_eq!(explicit.status, 201);
    assert_eq!(
        explicit.json["solutionType"], "support",
        "the body wins over the defaults"
    );
    let outside = app.call("POST", "/api/conversations", Some(json!({}))).await;
    assert_eq!(outside.json["projectId"], Value::Null);
    let unknown = app
        .call(
            "POST",
            "/api/conversations",
            Some(json!({"projectId": "01JH8Q3V6W2K9RZTBXN4MCP7PR"})),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.json["error"]["message"].clone()),
        (404, json!("project not found"))
    );
    let listed = app
        .call("GET", &format!("/api/conversations?projectId={pid}"), None)
        .await;
    assert_eq!(listed.status, 200);
    let ids: Vec<&str> = listed.json.as_array().expect("list").iter().map(id).collect();
    assert_eq!(ids, vec![id(&explicit.json), id(&c.json)]);
    // Out of the project, then into it again; a missing project is a 404 and changes nothing.
    let path = format!("/api/conversations/{}", id(&c.json));
    let out = app.call("PATCH", &path, Some(json!({"projectId": null}))).await;
    assert_eq!((out.status, out.json["projectId"].clone()), (200, Value::Null));
    let bad = app
        .call("PATCH", &path, Some(json!({"projectId": "01JH8Q3V6W2K9RZTBXN4MCP7PR"})))
        .await;
    assert_eq!(bad.status, 404);
    let back = app.call("PATCH", &path, Some(json!({"projectId": pid}))).await;
    assert_eq!(back.json["projectId"], json!(pid));
    let shown = app.call("GET", &path, None).await;
    assert_eq!(shown.json["projectId"], json!(pid));
    let malformed = app.call("GET", "/api/conversations?projectId=a%20b", None).await;
    assert_eq!(malformed.status, 400);
}

async fn deleting_a_project_says_what_happens_to_its_conversations(app: TestApp) {
    let kept = created(&app, json!({"name": "Kept"})).await;
    let gone = created(&app, json!({"name": "Gone"})).await;
    let mut in_kept = Vec::new();
    let mut in_gone = Vec::new();
    for (project, out) in [(&kept, &mut in_kept), (&gone, &mut in_gone)] {
        for _ in 0..2 {
            let c = app
                .call("POST", "/api/conversations", Some(json!({"projectId": id(project)})))
                .await;
            let cid = id(&c.json).to_owned();
            let m = app
                .call(
                    "POST",
                    &format!("/api/conversations/{cid}/messages"),
                    Some(json!({"role": "user", "content": "hello"})),
                )
                .await;
            assert_eq!(m.status, 201);
            out.push(cid);
        }
    }
    let kept_path = format!("/api/projects/{}", id(&kept));
    for query in ["", "?conversations=", "?conversations=keep"] {
        let r = app.call("DELETE", &format!("{kept_path}{query}"), None).await;
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(r.json["error"]["details"][0]["field"], "conversations");
    }
    assert_eq!(app.call("GET", &kept_path, None).await.status, 200, "nothing deleted");
    let detached = app
        .call("DELETE", &format!("{kept_path}?conversations=detach"), None)
        .await;
    assert_eq!(detached.json, json!({"success": true, "conversations": 2}));
    for cid in &in_kept {
        let c = app.call("GET", &format!("/api/conversations/{cid}"), None).await;
        assert_eq!((c.status, c.json["projectId"].clone()), (200, Value::Null));
        assert_eq!(c.json["messages"].as_array().map(Vec::len), Some(1));
    }
    let deleted = app
        .call(
            "DELETE",
            &format!("/api/projects/{}?conversations=delete", id(&gone)),
            None,
        )
        .await;
    assert_eq!(deleted.json, json!({"success": true, "conversations": 2}));
    for cid in &in_gone {
        let c = app.call("GET", &format!("/api/conversations/{cid}"), None).await;
        assert_eq!(c.status, 404);
    }
    assert_eq!(app.call("GET", &kept_path, None).await.status, 404);
    assert_eq!(app.call("GET", "/api/projects", None).await.json, json!([]));
    let actions = audited(&app).await;
    assert!(
        actions.contains(&("project.delete".to_owned(), id(&gone).to_owned())),
        "{actions:?}"
    );
}

on_both_stores!(
    |store| spawn_app(Arc::new(store), Config::local()).await,
    [
        projects_are_created_read_patched_and_validated,
        a_conversation_in_a_project_takes_its_defaults_and_is_listed_by_it,
        deleting_a_project_says_what_happens_to_its_conversations,
    ]
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101st_project_is_a_conflict() {
    let config = Config {
        rate_limit_per_minute: 0,
        ..Config::local()
    };
    let app = spawn_app(Arc::new(embedded_store()), config).await;
    for i in 0..100 {
        created(&app, json!({"name": format!("p{i}")})).await;
    }
    let r = app
        .call("POST", "/api/projects", Some(json!({"name": "one more"})))
        .await;
    assert_eq!((r.status, r.json["error"]["code"].clone()), (409, json!("CONFLICT")));
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("at most 100 projects"));
    assert_eq!(
        app.call("GET", "/api/projects", None)
            .await
            .json
            .as_array()
            .map(Vec::len),
        Some(100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_project_is_not_found_on_every_route() {
    let app = spawn_chat_app(
        Arc::new(embedded_store()),
        tokens::jwt_config(tokens::verifier()),
        ChatConfig::default(),
    )
    .await;
    let alice = hs256(&claims("alice-0001"), SECRET);
    let bob = hs256(&claims("bob-0002"), SECRET);
    let p = with_bearer(&app, &alice, "POST", "/api/projects", Some(json!({"name": "Alice's"}))).await;
    assert_eq!(p.status, 201);
    let pid = id(&p.json).to_owned();
    let path = format!("/api/projects/{pid}");
    let attacks: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", path.clone(), None),
        ("PATCH", path.clone(), Some(json!({"name": "pwned"}))),
        ("DELETE", format!("{path}?conversations=delete"), None),
        ("POST", "/api/conversations".to_owned(), Some(json!({"projectId": pid}))),
    ];
    for (method, path, body) in attacks {
        let r = with_bearer(&app, &bob, method, &path, body).await;
        assert_eq!(r.status, 404, "{method} {path}");
    }
    let theirs = with_bearer(&app, &bob, "GET", "/api/projects", None).await;
    assert_eq!(theirs.json, json!([]));
    let mine = with_bearer(&app, &alice, "GET", &path, None).await;
    assert_eq!((mine.status, mine.json["name"].clone()), (200, json!("Alice's")));
}

/// The chat turn of a project's conversation (the tests' paths: `projects::chat::<store>::...`).
mod chat {
    use super::*;

    /// The scripted model, remembering every request (to see the system prompt a turn sent).
    #[derive(Default)]
    struct Recording(Mutex<Vec<ModelRequest>>);

    #[async_trait]
    impl ChatModel for Recording {
        fn provider(&self) -> &'static str {
            "scripted"
        }
        async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ProviderError> {
            self.0.lock().expect("lock").push(request.clone());
            ScriptedModel.stream(request).await
        }
    }

    async fn a_projects_instructions_reach_the_system_prompt_after_the_solutions(store: Arc<dyn Store>) {
        let model = Arc::new(Recording::default());
        let state = AppState::new(Config::local(), Arc::clone(&store)).with_chat(model.clone(), ChatConfig::default());
        let app = spawn_state(state, store).await;
        let p = created(&app, json!({"name": "FR", "instructions": "Always answer in French."})).await;
        for (chat_id, project) in [("in-project", json!(id(&p))), ("no-project", Value::Null)] {
            let c = app
                .call(
                    "POST",
                    "/api/conversations",
                    Some(json!({"id": chat_id, "solutionType": "maintenance", "projectId": project})),
                )
                .await;
            assert_eq!(c.status, 201, "{}", c.text);
            let body = json!({"id": chat_id, "trigger": "submit-message",
                "messages": [{"id": format!("u-{chat_id}"), "role": "user", "parts": [{"type": "text", "text": "hi"}]}]});
            let (status, _, _) = post_chat(&app, "/api/chat/maintenance", body).await;
            assert_eq!(status, 200);
        }
        let requests = model.0.lock().expect("lock").clone();
        let expert = system_prompt(Some(Solution::Maintenance)).trim_end();
        let main: Vec<&ModelRequest> = requests.iter().filter(|r| r.system.starts_with(expert)).collect();
        assert_eq!(main.len(), 2, "one turn per conversation");
        let block = "<project_instructions>\nAlways answer in French.\n</project_instructions>";
        assert!(main[0].system.ends_with(block), "{}", main[0].system);
        assert!(!main[1].system.contains("<project_instructions>"), "{}", main[1].system);
    }

    on_both_stores!([a_projects_instructions_reach_the_system_prompt_after_the_solutions]);
}

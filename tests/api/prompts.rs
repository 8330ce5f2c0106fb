//! Saved prompts over HTTP (issue 17), on both stores: CRUD with validation, the list searched
//! by title and filtered by tag, the deployment's shared prompts beside the user's (read-only),
//! another user's prompt is a 404, and a conversation started from a prompt in one call (the
//! filled prompt as its first user message, with a solution, model and project).

use std::sync::Arc;

use athena_tests::{on_both_stores, spawn_app, TestApp};
use serde_json::{json, Value};
use shared::config::prompts::parse;
use shared::config::Config;

const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

fn config() -> Config {
    Config {
        rate_limit_per_minute: 0,
        shared_prompts: parse(
            r#"[{"id": "shared-mtbf", "title": "MTBF of a machine", "text": "Compute the MTBF of {{machine}}.", "tags": ["maintenance"]}]"#,
        )
        .expect("shared prompts"),
        ..Config::local()
    }
}

async fn created(app: &TestApp, body: Value) -> Value {
    let r = app.call("POST", "/api/prompts", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json
}

fn ids(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect()
}

async fn prompts_are_saved_searched_filtered_and_beside_the_shared_ones(app: TestApp) {
    let down = created(
        &app,
        json!({"title": "Why is it down?", "text": "Why is {{machine}} down since {{ since }}?", "tags": ["Maintenance", "triage"]}),
    )
    .await;
    assert_eq!(down["variables"], json!(["machine", "since"]));
    assert_eq!(down["tags"], json!(["maintenance", "triage"]));
    assert_eq!(down["shared"], json!(false));
    let yields = created(&app, json!({"title": "Yield report", "text": "Summarize yield."})).await;
    let (down_id, yields_id) = (down["id"].as_str().expect("id"), yields["id"].as_str().expect("id"));
    let all = app.call("GET", "/api/prompts", None).await;
    assert_eq!(ids(&all.json), vec!["shared-mtbf", down_id, yields_id], "shared first");
    let searched = app.call("GET", "/api/prompts?q=YIELD", None).await;
    assert_eq!(ids(&searched.json), vec![yields_id]);
    let tagged = app.call("GET", "/api/prompts?tag=maintenance", None).await;
    assert_eq!(ids(&tagged.json), vec!["shared-mtbf", down_id]);
    let shared = app.call("GET", "/api/prompts/shared-mtbf", None).await;
    assert_eq!(
        (shared.json["shared"].clone(), shared.json["createdAt"].clone()),
        (json!(true), Value::Null)
    );
    for (method, body) in [("PATCH", Some(json!({"title": "mine"}))), ("DELETE", None)] {
        let r = app.call(method, "/api/prompts/shared-mtbf", body).await;
        assert_eq!(r.status, 403, "{method}");
    }
    let path = format!("/api/prompts/{down_id}");
    let patched = app
        .call("PATCH", &path, Some(json!({"text": "Is {{machine}} up?"})))
        .await;
    assert_eq!(
        (patched.status, patched.json["variables"].clone()),
        (200, json!(["machine"]))
    );
    for (body, field) in [
        (json!({"title": " ", "text": "x"}), "title"),
        (json!({"title": "t", "text": "  "}), "text"),
        (json!({"title": "t", "text": "x".repeat(20_001)}), "text"),
        (json!({"title": "t", "text": "x", "tags": ["a b"]}), "tags"),
    ] {
        let r = app.call("POST", "/api/prompts", Some(body)).await;
        assert_eq!(
            (r.status, r.json["error"]["details"][0]["field"].clone()),
            (400, json!(field))
        );
    }
    assert_eq!(app.call("DELETE", &path, None).await.status, 200);
    assert_eq!(app.call("GET", &path, None).await.status, 404);
}

async fn a_template_starts_a_conversation_in_one_call(app: TestApp) {
    let p = created(&app, json!({"title": "Down", "text": "Why is {{machine}} down?"})).await;
    let project = app
        .call(
            "POST",
            "/api/projects",
            Some(json!({"name": "Line 3", "defaultSolution": "maintenance"})),
        )
        .await;
    let project_id = project.json["id"].as_str().expect("id").to_owned();
    let path = format!("/api/prompts/{}/conversations", p["id"].as_str().expect("id"));
    let started = app
        .call(
            "POST",
            &path,
            Some(json!({"variables": {"machine": "PRESS-02"}, "model": HAIKU, "projectId": project_id})),
        )
        .await;
    assert_eq!(started.status, 201, "{}", started.text);
    let c = &started.json;
    assert_eq!(
        (
            c["model"].clone(),
            c["solutionType"].clone(),
            c["projectId"].clone(),
            c["messageCount"].clone()
        ),
        (json!(HAIKU), json!("maintenance"), json!(project_id), json!(1))
    );
    assert_eq!(c["messages"][0]["role"], "user");
    assert_eq!(c["messages"][0]["content"], "Why is PRESS-02 down?");
    assert_eq!(c["title"], "Why is PRESS-02 down?");
    let id = c["id"].as_str().expect("id");
    assert_eq!(
        started.header("location"),
        Some(format!("/api/conversations/{id}").as_str())
    );
    let stored = app.call("GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(stored.json["messages"][0]["content"], "Why is PRESS-02 down?");
    // The shared prompt works the same way; a missing variable, an unknown one, a missing
    // prompt or project are refused and nothing is created.
    let shared = app
        .call(
            "POST",
            "/api/prompts/shared-mtbf/conversations",
            Some(json!({"variables": {"machine": "SMT-1"}, "id": "from-shared"})),
        )
        .await;
    assert_eq!(shared.json["messages"][0]["content"], "Compute the MTBF of SMT-1.");
    let before = app.call("GET", "/api/conversations", None).await.json;
    for (body, status, field) in [
        (json!({}), 400, json!("variables.machine")),
        (
            json!({"variables": {"machine": "a", "typo": "b"}}),
            400,
            json!("variables.typo"),
        ),
        (
            json!({"variables": {"machine": "a"}, "projectId": "nope"}),
            404,
            Value::Null,
        ),
    ] {
        let r = app.call("POST", &path, Some(body.clone())).await;
        assert_eq!(
            (r.status, r.json["error"]["details"][0]["field"].clone()),
            (status, field),
            "{body}"
        );
    }
    let missing = app
        .call("POST", "/api/prompts/nope/conversations", Some(json!({})))
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(app.call("GET", "/api/conversations", None).await.json, before);
}

on_both_stores!(
    |store| spawn_app(Arc::new(store), config()).await,
    [
        prompts_are_saved_searched_filtered_and_beside_the_shared_ones,
        a_template_starts_a_conversation_in_one_call,
    ]
);

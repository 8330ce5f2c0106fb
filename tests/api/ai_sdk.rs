//! The real Vercel AI SDK client (npm `ai`: 6.0.48 as in the seed frontend, the newest 6.x and
//! 5.x) reads Athena's stream from the gateway: `DefaultChatTransport` posts, `readUIMessageStream`
//! validates every chunk against the SDK's strict schemas and assembles the message, which must
//! equal the one Athena stored.

use std::process::Command;
use std::sync::Arc;

use athena_tests::{embedded_store, spawn_chat_app, workspace_root, TestApp};
use serde_json::{json, Value};
use shared::chat::ChatConfig;
use shared::config::Config;
use shared::domain::Role;

const VERSIONS: [&str; 3] = ["ai-6-0-48", "ai-6-latest", "ai-5"];

/// Runs the SDK client script; returns its JSON answer.
async fn sdk_turn(app: &TestApp, package: &str, path: &str, chat_id: &str, text: &str, extra: Value) -> Value {
    let script = workspace_root().join("tests/js/ai_sdk_client.mjs");
    let api = format!("{}{path}", app.base);
    let (package, chat_id, text) = (package.to_owned(), chat_id.to_owned(), text.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(package)
            .arg(api)
            .arg(chat_id)
            .arg(text)
            .arg(extra.to_string())
            .current_dir(workspace_root().join("tests/js"))
            .output()
    })
    .await
    .expect("join")
    .expect("node runs (npm ci in tests/js is done by scripts/tools.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line")
}

fn text_parts(message: &Value) -> String {
    message["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect()
}

async fn stored_reply(app: &TestApp, chat_id: &str) -> shared::domain::Message {
    app.stored(chat_id)
        .await
        .into_iter()
        .rev()
        .find(|m| m.role == Role::Assistant)
        .expect("a reply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_the_sdk_assembles_is_the_message_athena_stored() {
    let app = spawn_chat_app(Arc::new(embedded_store()), Config::local(), ChatConfig::default()).await;
    for (i, package) in VERSIONS.iter().enumerate() {
        let chat_id = format!("sdk-chat-{i}");
        let answer = sdk_turn(
            &app,
            package,
            "/api/chat/maintenance",
            &chat_id,
            "Unicode é ✓ and \"quotes\" #deltas:40",
            json!({"model": "us.anthropic.claude-haiku-4-5-20251001-v1:0"}),
        )
        .await;
        let message = &answer["message"];
        assert!(answer["error"].is_null(), "{package}: {answer}");
        let stored = stored_reply(&app, &chat_id).await;
        assert_eq!(message["role"], "assistant", "{package}");
        assert_eq!(
            message["id"],
            stored.id.as_str(),
            "{package}: the SDK keeps the server's message id"
        );
        assert_eq!(text_parts(message), stored.content, "{package}");
        assert_eq!(stored.content.split_whitespace().count(), 40);
        let usage = stored.usage.expect("usage");
        assert_eq!(
            message["metadata"]["usage"]["outputTokens"], usage.output_tokens,
            "{package}"
        );
        assert_eq!(
            message["metadata"]["model"],
            "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(message["metadata"]["conversationId"], chat_id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_reports_a_provider_failure_and_keeps_the_partial_text() {
    let app = spawn_chat_app(Arc::new(embedded_store()), Config::local(), ChatConfig::default()).await;
    for (i, package) in VERSIONS.iter().enumerate() {
        let chat_id = format!("sdk-fail-{i}");
        let answer = sdk_turn(
            &app,
            package,
            "/api/chat",
            &chat_id,
            "#deltas:6 #fail-after:3",
            json!({}),
        )
        .await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains("interrupted"), "{package}: {answer}");
        assert_eq!(text_parts(&answer["partial"]), "w0 w1 w2 ", "{package}");
        assert_eq!(stored_reply(&app, &chat_id).await.content, "w0 w1 w2 ");
    }
}

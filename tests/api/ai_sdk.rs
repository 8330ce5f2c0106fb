//! The real Vercel AI SDK client (npm `ai`: 6.0.48 as in the seed frontend, the newest 6.x and
//! 5.x) against the gateway. One turn: `DefaultChatTransport` posts, `readUIMessageStream`
//! validates every chunk against the SDK's strict schemas and assembles the message, which must
//! equal the one Athena stored. The flows beyond one turn (`tests/js/ai_sdk_flows.mjs`) run the
//! SDK's own chat class headless (`AbstractChat`, what `useChat` wraps) on both stores: editing a
//! sent message, regenerating after an edit, a retried submit, naming a pre-created conversation,
//! and the seed's content-type-less `fetch`; each checks the client's messages and what the
//! server stored and shows.

use std::process::Command;
use std::sync::Arc;

use athena_tests::{embedded_store, local_user, spawn_chat_app, workspace_root, TestApp};
use serde_json::{json, Value};
use shared::chat::ChatConfig;
use shared::config::Config;
use shared::domain::{ConversationId, Role};

pub(crate) const VERSIONS: [&str; 3] = ["ai-6-0-48", "ai-6-latest", "ai-5"];
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// Runs `node tests/js/<script> <args...>` in `tests/js`; returns the JSON of its last line.
async fn node(script: &str, args: Vec<String>) -> Value {
    let script = workspace_root().join("tests/js").join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args(args)
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

/// Runs the SDK client script; returns its JSON answer.
async fn sdk_turn(app: &TestApp, package: &str, path: &str, chat_id: &str, text: &str, extra: Value) -> Value {
    node(
        "ai_sdk_client.mjs",
        vec![
            package.to_owned(),
            format!("{}{path}", app.base),
            chat_id.to_owned(),
            text.to_owned(),
            extra.to_string(),
        ],
    )
    .await
}

/// Runs one flow of `ai_sdk_flows.mjs` with `package`; fails the test if the script itself threw.
pub(crate) async fn sdk_flow(app: &TestApp, package: &str, flow: &str, args: Value) -> Value {
    let answer = node(
        "ai_sdk_flows.mjs",
        vec![package.to_owned(), app.base.clone(), flow.to_owned(), args.to_string()],
    )
    .await;
    assert!(answer.get("error").is_none(), "{package} {flow}: {answer}");
    answer
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

// ---- Flows beyond one turn, through the SDK's own chat class, on both stores ----

/// `(role, text)` of each message of a client's list (`UIMessage`s).
fn client_view(messages: &Value) -> Vec<(String, String)> {
    messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["role"].as_str().unwrap_or_default().to_owned(), text_parts(m)))
        .collect()
}

/// `(role, content)` of each message the server shows (`GET /api/conversations/{id}`).
fn server_view(conversation: &Value) -> Vec<(String, String)> {
    conversation["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn turns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(r, t)| ((*r).to_owned(), (*t).to_owned())).collect()
}

/// Every step of a `chat` flow ended with the client ready and without an error.
fn steps_ok<'a>(package: &str, answer: &'a Value) -> &'a Vec<Value> {
    let steps = answer["steps"].as_array().expect("steps");
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["status"], "ready", "{package} step {i}: {step}");
        assert!(step["error"].is_null(), "{package} step {i}: {step}");
    }
    steps
}

/// The other version beside `current` in a message's `siblings` (exactly two versions).
fn other_version(package: &str, message: &Value) -> String {
    let siblings = message["siblings"].as_array().cloned().unwrap_or_default();
    assert_eq!(siblings.len(), 2, "{package}: two versions: {message}");
    assert!(siblings.contains(&message["id"]), "{package}: {message}");
    siblings
        .iter()
        .find(|s| **s != message["id"])
        .and_then(Value::as_str)
        .expect("the other version")
        .to_owned()
}

const FIRST: &str = "First question";
const SECOND: &str = "Second question";
const EDITED: &str = "Second question, edited";

/// The client's edit flow: `chat.sendMessage({text, messageId})` on the second user message.
async fn the_sdk_chat_edit_is_answered_and_the_old_version_is_kept(app: TestApp) {
    for package in VERSIONS {
        let chat_id = format!("sdk-edit-{package}");
        let answer = sdk_flow(
            &app,
            package,
            "chat",
            json!({"chatId": chat_id, "path": "/api/chat", "steps": [
                {"send": FIRST}, {"send": SECOND}, {"edit": EDITED, "user": 1}
            ]}),
        )
        .await;
        let steps = steps_ok(package, &answer);
        let (before, after) = (&steps[1]["messages"], &steps[2]["messages"]);
        let first_turn = [("user", FIRST), ("assistant", "Scripted reply to: First question")];
        assert_eq!(
            client_view(after),
            turns(&[
                first_turn[0],
                first_turn[1],
                ("user", EDITED),
                ("assistant", "Scripted reply to: Second question, edited"),
            ]),
            "{package}: the client ends with the edit and the reply to it"
        );
        let edited_id = after[2]["id"].as_str().expect("id").to_owned();
        assert_eq!(before[2]["id"], edited_id, "{package}: an edit keeps the message's id");
        assert_ne!(after[3]["id"], before[3]["id"], "{package}: a new reply");
        // What the transport posted for the edit (PROTOCOLS.md §6).
        let request = &answer["requests"][2];
        assert_eq!(request["trigger"], "submit-message", "{package}");
        assert_eq!(request["messageId"], edited_id.as_str(), "{package}");
        assert_eq!(
            client_view(&request["messages"]),
            turns(&[first_turn[0], first_turn[1], ("user", EDITED)])
        );

        // The server shows the edited branch, the ids the client holds, and two versions of the
        // question.
        let shown = app.call("GET", &format!("/api/conversations/{chat_id}"), None).await;
        assert_eq!(shown.status, 200, "{package}: {}", shown.text);
        assert_eq!(server_view(&shown.json), client_view(after), "{package}");
        let messages = shown.json["messages"].as_array().expect("messages");
        assert_eq!(messages[2]["clientId"], edited_id.as_str(), "{package}");
        assert_eq!(messages[1]["id"], after[1]["id"], "{package}");
        assert_eq!(
            messages[3]["id"], after[3]["id"],
            "{package}: the client holds the stored reply's id"
        );
        assert_eq!(messages[3]["parentId"], messages[2]["id"], "{package}");
        let old_version = other_version(package, &messages[2]);

        // The old version is still stored: switching to it shows it with its own reply.
        let switched = app
            .call(
                "PUT",
                &format!("/api/conversations/{chat_id}/active-branch"),
                Some(json!({"messageId": old_version})),
            )
            .await;
        assert_eq!(switched.status, 200, "{package}: {}", switched.text);
        assert_eq!(server_view(&switched.json), client_view(before), "{package}");
        assert_eq!(switched.json["messages"][3]["id"], before[3]["id"], "{package}");
        assert_eq!(
            app.stored(&chat_id).await.len(),
            6,
            "{package}: both questions, both versions of the second, three replies"
        );
    }
}

/// `chat.regenerate()` after an edit: the new reply answers the edited question, and the reply
/// to the edit stays as its other version.
async fn the_sdk_chat_regenerates_the_reply_to_an_edited_question(app: TestApp) {
    for package in VERSIONS {
        let chat_id = format!("sdk-regen-{package}");
        let answer = sdk_flow(
            &app,
            package,
            "chat",
            json!({"chatId": chat_id, "path": "/api/chat", "steps": [
                {"send": FIRST}, {"send": SECOND}, {"edit": EDITED, "user": 1}, {"regenerate": true}
            ]}),
        )
        .await;
        let steps = steps_ok(package, &answer);
        let (edited, regenerated) = (&steps[2]["messages"], &steps[3]["messages"]);
        assert_eq!(
            client_view(regenerated),
            turns(&[
                ("user", FIRST),
                ("assistant", "Scripted reply to: First question"),
                ("user", EDITED),
                ("assistant", "Scripted reply to: Second question, edited"),
            ]),
            "{package}: the regenerated reply answers the edited question"
        );
        let new_reply = regenerated[3]["id"].as_str().expect("id").to_owned();
        let edit_reply = edited[3]["id"].as_str().expect("id").to_owned();
        assert_ne!(new_reply, edit_reply, "{package}: a new reply");
        let request = &answer["requests"][3];
        assert_eq!(request["trigger"], "regenerate-message", "{package}");
        assert_eq!(
            client_view(&request["messages"]).last().map(|(_, t)| t.as_str()),
            Some(EDITED),
            "{package}: the list ends with the edited question"
        );

        let shown = app.call("GET", &format!("/api/conversations/{chat_id}"), None).await;
        assert_eq!(shown.status, 200, "{package}: {}", shown.text);
        assert_eq!(server_view(&shown.json), client_view(regenerated), "{package}");
        let messages = shown.json["messages"].as_array().expect("messages");
        assert_eq!(messages[3]["id"], new_reply.as_str(), "{package}");
        assert_eq!(messages[3]["parentId"], messages[2]["id"], "{package}");
        assert_eq!(
            other_version(package, &messages[3]),
            edit_reply,
            "{package}: the earlier reply is the other version"
        );
        // The question still has its two versions (checked inside).
        other_version(package, &messages[2]);
        let stored = app.stored(&chat_id).await;
        assert_eq!(stored.len(), 7, "{package}");
        let replies_to_edit = stored
            .iter()
            .filter(|m| m.role == Role::Assistant && m.content == "Scripted reply to: Second question, edited")
            .count();
        assert_eq!(
            replies_to_edit, 2,
            "{package}: the reply to the edit and its regeneration"
        );
    }
}

/// A network retry: the same submit (chat id, message id, text) sent twice through the transport.
async fn a_retried_sdk_submit_is_replayed_and_stored_once(app: TestApp) {
    for package in VERSIONS {
        let chat_id = format!("sdk-retry-{package}");
        let answer = sdk_flow(
            &app,
            package,
            "retry",
            json!({"chatId": chat_id, "path": "/api/chat", "messageId": "u-retry", "text": "Once, please"}),
        )
        .await;
        let attempts = answer["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 2);
        for (i, attempt) in attempts.iter().enumerate() {
            assert!(attempt["error"].is_null(), "{package} attempt {i}: {attempt}");
            assert_eq!(
                text_parts(&attempt["message"]),
                "Scripted reply to: Once, please",
                "{package} attempt {i}"
            );
            assert_eq!(attempt["start"]["type"], "start", "{package} attempt {i}");
        }
        let reply_id = attempts[0]["start"]["messageId"]
            .as_str()
            .expect("messageId")
            .to_owned();
        assert_eq!(
            attempts[1]["start"]["messageId"],
            reply_id.as_str(),
            "{package}: the retry streams the stored reply"
        );
        assert_eq!(attempts[1]["message"]["id"], reply_id.as_str(), "{package}");
        assert_eq!(
            attempts[1]["message"]["metadata"]["replayed"], true,
            "{package}: no second turn"
        );
        let shown = app.call("GET", &format!("/api/conversations/{chat_id}"), None).await;
        assert_eq!(
            server_view(&shown.json),
            turns(&[
                ("user", "Once, please"),
                ("assistant", "Scripted reply to: Once, please"),
            ]),
            "{package}"
        );
        assert_eq!(shown.json["messages"][1]["id"], reply_id.as_str(), "{package}");
        assert_eq!(app.stored(&chat_id).await.len(), 2, "{package}: one reply stored");
    }
}

/// Seed 001's flow: create the conversation first (titled "New conversation"), then chat in it;
/// the first message names it (at most 50 characters, cut at a word boundary), later ones don't.
async fn a_precreated_conversation_is_named_by_the_first_sdk_message(app: TestApp) {
    let question = "How often should the hydraulic filters on press line 3 be replaced before they clog?";
    let title = "How often should the hydraulic filters on press";
    for package in VERSIONS {
        // Either the chat's id is the conversation's, or a client-made chat id with the
        // conversation named in the body (`conversationId` wins).
        for by_body in [false, true] {
            let created = app
                .call(
                    "POST",
                    "/api/conversations",
                    Some(json!({"solutionType": "maintenance"})),
                )
                .await;
            assert_eq!(created.status, 201, "{}", created.text);
            assert_eq!(created.json["title"], "New conversation");
            let id = created.json["id"].as_str().expect("id").to_owned();
            let (chat_id, body) = if by_body {
                (format!("sdk-title-{package}"), json!({"conversationId": id}))
            } else {
                (id.clone(), json!({}))
            };
            let answer = sdk_flow(
                &app,
                package,
                "chat",
                json!({"chatId": chat_id, "path": "/api/chat/maintenance", "body": body, "steps": [
                    {"send": question}, {"send": "And the pump seals?"}
                ]}),
            )
            .await;
            let steps = steps_ok(package, &answer);
            assert_eq!(steps[1]["messages"][3]["metadata"]["conversationId"], id.as_str());
            let shown = app.call("GET", &format!("/api/conversations/{id}"), None).await;
            assert_eq!(shown.status, 200, "{package}: {}", shown.text);
            assert_eq!(shown.json["title"], title, "{package} (by body: {by_body})");
            assert!(title.len() <= 50 && question.starts_with(&format!("{title} ")));
            assert_eq!(shown.json["solutionType"], "maintenance");
            assert_eq!(
                server_view(&shown.json),
                client_view(&steps[1]["messages"]),
                "{package} (by body: {by_body})"
            );
            if by_body {
                let other = app.call("GET", &format!("/api/conversations/{chat_id}"), None).await;
                assert_eq!(other.status, 404, "{package}: no conversation under the chat's id");
            }
        }
    }
}

/// Seed 000's test call, verbatim, from Node: no content type, so `text/plain;charset=UTF-8`, and
/// the short model alias.
async fn the_seed_fetch_without_a_content_type_creates_a_sonnet_conversation(app: TestApp) {
    let answer = sdk_flow(&app, "ai-6-latest", "seed-fetch", json!({})).await;
    assert_eq!(answer["requestContentType"], "text/plain;charset=UTF-8");
    assert_eq!(answer["status"], 201, "{answer}");
    assert_eq!(answer["json"]["title"], "Test");
    assert_eq!(answer["json"]["model"], SONNET, "the catalog's newest Sonnet");
    let id = ConversationId::parse(answer["json"]["id"].as_str().expect("id")).expect("id");
    let stored = app.store.get_conversation(&local_user(), &id).await.expect("stored");
    assert_eq!((stored.title.as_str(), stored.model.as_str()), ("Test", SONNET));
}

/// A page reload mid-answer with each SDK version: the first client stops (its fetch aborted,
/// the turn runs on), the reloaded client resumes the stream and assembles the whole reply,
/// equal to the one stored, which ran to its end.
async fn a_reloaded_sdk_client_resumes_the_stream_and_gets_the_whole_reply(app: TestApp) {
    for (i, package) in VERSIONS.iter().enumerate() {
        let chat_id = format!("sdk-resume-{i}-{}", athena_tests::unique("r"));
        let answer = sdk_flow(
            &app,
            package,
            "resume",
            json!({"chatId": chat_id, "path": "/api/chat/support", "text": "#deltas:60 #delay:15 go on"}),
        )
        .await;
        assert_eq!(answer["status"], "ready", "{package}: {answer}");
        assert!(answer["chatError"].is_null(), "{package}: {answer}");
        let stored = stored_reply(&app, &chat_id).await;
        assert_eq!(
            stored.finish_reason,
            Some(shared::domain::FinishReason::Stop),
            "{package}: ran to its end"
        );
        let resumed = answer["resumed"].as_array().expect("messages");
        assert_eq!(
            resumed
                .iter()
                .map(|m| m["role"].as_str().unwrap_or_default())
                .collect::<Vec<_>>(),
            ["user", "assistant"],
            "{package}: {answer}"
        );
        let reply = &resumed[1];
        assert_eq!(reply["id"], stored.id.as_str(), "{package}");
        assert_eq!(text_parts(reply), stored.content, "{package}: the whole reply");
        assert_eq!(stored.content.split_whitespace().count(), 60);
        let stopped = answer["stopped"]
            .as_array()
            .and_then(|m| m.last())
            .expect("a partial reply");
        assert!(
            text_parts(stopped).len() < stored.content.len(),
            "{package}: the first client had only part of it"
        );
    }
}

athena_tests::on_both_stores!(
    |store| spawn_chat_app(Arc::new(store), Config::local(), ChatConfig::default()).await,
    [
        a_reloaded_sdk_client_resumes_the_stream_and_gets_the_whole_reply,
        the_sdk_chat_edit_is_answered_and_the_old_version_is_kept,
        the_sdk_chat_regenerates_the_reply_to_an_edited_question,
        a_retried_sdk_submit_is_replayed_and_stored_once,
        a_precreated_conversation_is_named_by_the_first_sdk_message,
        the_seed_fetch_without_a_content_type_creates_a_sonnet_conversation,
    ]
);

/// The sample MES server and a gateway whose manufacturing chat uses it (embedded store).
async fn mes_app() -> (TestApp, athena_mes::MesServer) {
    let mes = athena_mes::serve(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        athena_mes::Plant::sample(),
        athena_mes::Options::default(),
    )
    .await
    .expect("the MES server starts");
    let mut server = shared::config::McpServerConfig::new("mes", &mes.url());
    server.solutions = Some(vec![Some(shared::domain::Solution::Manufacturing)]);
    let chat = ChatConfig {
        mcp: vec![server],
        ..ChatConfig::default()
    };
    (
        spawn_chat_app(Arc::new(embedded_store()), Config::local(), chat).await,
        mes,
    )
}

/// Numbers as f64 (JavaScript writes `0.0` as `0`).
fn numbers_as_floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect()),
        other => other.clone(),
    }
}

/// A UIMessage's parts as the stored view shows them: step boundaries left out, and of a tool
/// part only what both sides carry (type, call id, state, input, output, approval).
fn comparable(parts: &Value) -> Vec<Value> {
    parts
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p["type"] != "step-start")
        .map(|p| {
            if p["type"] == "text" {
                json!({"type": "text", "text": p["text"]})
            } else {
                numbers_as_floats(
                    &json!({"type": p["type"], "toolCallId": p["toolCallId"], "state": p["state"],
                    "input": p["input"], "output": p["output"], "approval": p["approval"]}),
                )
            }
        })
        .collect()
}

/// Issue 16's "done when", through the real client: a read tool called and answered in one
/// turn; an action stopped for approval, approved by `addToolApprovalResponse` (the automatic
/// second request) and run once, or denied and never run; the stored conversation shows what
/// the client shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_runs_mcp_tools_and_the_approval_flow() {
    let (app, mes) = mes_app().await;
    for (i, package) in ["ai-6-0-48", "ai-6-latest"].iter().enumerate() {
        // A read tool, one turn.
        let chat_id = format!("sdk-mcp-read-{i}");
        let answer = sdk_flow(
            &app,
            package,
            "chat",
            json!({"chatId": chat_id, "path": "/api/chat/manufacturing",
                "steps": [{"send": "How is press 2? #tool:mes_machine_status?machineId=PRESS-02"}]}),
        )
        .await;
        let step = &answer["steps"][0];
        assert!(step["error"].is_null(), "{package}: {step}");
        let reply = &step["messages"][1];
        let tool = reply["parts"]
            .as_array()
            .and_then(|parts| parts.iter().find(|p| p["type"] == "tool-mes_machine_status"))
            .unwrap_or_else(|| panic!("{package}: no tool part in {reply}"));
        assert_eq!(tool["state"], "output-available", "{package}");
        assert_eq!(tool["output"]["machines"][0]["id"], "PRESS-02", "{package}");
        let shown = app.call("GET", &format!("/api/conversations/{chat_id}"), None).await;
        assert_eq!(
            comparable(&shown.json["messages"][1]["parts"]),
            comparable(&reply["parts"]),
            "{package}"
        );

        // An action, approved: run once, in the same message.
        let before = mes.plant.created_work_orders().len();
        let chat_id = format!("sdk-mcp-approve-{i}");
        let answer = sdk_flow(
            &app,
            package,
            "approval",
            json!({"chatId": chat_id, "path": "/api/chat/manufacturing", "approved": true,
                "text": "Open one. #tool:mes_create_work_order?machineId=PRESS-02&title=Check_the_relief_valve&priority=high"}),
        )
        .await;
        assert!(answer["chatError"].is_null(), "{package}: {answer}");
        assert_eq!(answer["status"], "ready", "{package}");
        let asked = &answer["asked"][1];
        let final_reply = &answer["final"][1];
        assert_eq!(
            answer["final"].as_array().map(Vec::len),
            Some(2),
            "{package}: one reply"
        );
        assert_eq!(asked["id"], final_reply["id"], "{package}: the same message went on");
        let second = &answer["requests"][1];
        assert_eq!(
            second["messages"]
                .as_array()
                .and_then(|m| m.last())
                .map(|m| m["role"].clone()),
            Some(json!("assistant"))
        );
        let tool = final_reply["parts"]
            .as_array()
            .and_then(|parts| parts.iter().find(|p| p["type"] == "tool-mes_create_work_order"))
            .unwrap_or_else(|| panic!("{package}: no tool part in {final_reply}"));
        assert_eq!(tool["state"], "output-available", "{package}: {tool}");
        assert_eq!(tool["approval"]["approved"], true, "{package}");
        assert_eq!(mes.plant.created_work_orders().len(), before + 1, "{package}: run once");
        assert_eq!(
            tool["output"]["id"],
            mes.plant.created_work_orders()[before].id,
            "{package}"
        );
        let shown = app.call("GET", &format!("/api/conversations/{chat_id}"), None).await;
        assert_eq!(shown.json["messages"].as_array().map(Vec::len), Some(2), "{package}");
        assert_eq!(
            comparable(&shown.json["messages"][1]["parts"]),
            comparable(&final_reply["parts"]),
            "{package}: the stored reply is the client's"
        );

        // An action, denied: never run.
        let before = mes.plant.created_work_orders().len();
        let chat_id = format!("sdk-mcp-deny-{i}");
        let answer = sdk_flow(
            &app,
            package,
            "approval",
            json!({"chatId": chat_id, "path": "/api/chat/manufacturing", "approved": false, "reason": "not now",
                "text": "#tool:mes_create_work_order?machineId=CNC-05&title=Spindle&priority=low"}),
        )
        .await;
        assert!(answer["chatError"].is_null(), "{package}: {answer}");
        let final_reply = &answer["final"][1];
        let tool = final_reply["parts"]
            .as_array()
            .and_then(|parts| parts.iter().find(|p| p["type"] == "tool-mes_create_work_order"))
            .unwrap_or_else(|| panic!("{package}: no tool part in {final_reply}"));
        assert_eq!(tool["state"], "output-denied", "{package}: {tool}");
        assert_eq!(
            mes.plant.created_work_orders().len(),
            before,
            "{package}: never run when denied"
        );
        assert!(text_parts(final_reply).contains("denied"), "{package}: {final_reply}");
        let shown = app.call("GET", &format!("/api/conversations/{chat_id}"), None).await;
        assert_eq!(
            comparable(&shown.json["messages"][1]["parts"]),
            comparable(&final_reply["parts"]),
            "{package}"
        );
    }
}

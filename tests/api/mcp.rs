//! Domain tools over MCP (issue 16): the sample MES server (`examples/mes`, rmcp's server side)
//! in-process on a loopback port, the gateway with the scripted model calling its tools by
//! directive (`#tool:NAME?k=v`), on both stores. A read tool is called and answered in one turn;
//! an action waits for approval, runs once when approved (never when denied), and the continued
//! reply is one stored message; the stored parts are shown in the AI SDK's shapes and replayed
//! into the next turn's context; a server that fails is a tool error, never a failed turn.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use athena_mes::{MesServer, Options, Plant};
use athena_tests::sse::{chunk_types, parse_sse, post_chat, text_of};
use athena_tests::{embedded_store, on_both_stores, spawn_state, TestApp};
use serde_json::{json, Value};
use shared::chat::ChatConfig;
use shared::config::{Config, McpServerConfig};
use shared::domain::{MessagePart, Role, Solution};
use shared::llm::scripted::ScriptedModel;
use shared::llm::{ChatModel, ModelContent, ModelRequest, ModelStream, ProviderError};
use shared::state::AppState;
use shared::store::Store;

const PATH: &str = "/api/chat/manufacturing";

async fn mes(options: Options) -> MesServer {
    athena_mes::serve(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        Plant::sample(),
        options,
    )
    .await
    .expect("the MES server starts")
}

fn server(url: &str) -> McpServerConfig {
    let mut config = McpServerConfig::new("mes", url);
    config.solutions = Some(vec![Some(Solution::Manufacturing), Some(Solution::Maintenance)]);
    config.forward_user = Some("x-athena-user".to_owned());
    config
}

/// The scripted model, remembering every request (to see the context a turn sent).
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

async fn app_with(store: Arc<dyn Store>, chat: ChatConfig) -> (TestApp, Arc<Recording>) {
    let model = Arc::new(Recording::default());
    let state = AppState::new(Config::local(), Arc::clone(&store)).with_chat(model.clone(), chat);
    (spawn_state(state, store).await, model)
}

fn chat_with(servers: Vec<McpServerConfig>) -> ChatConfig {
    ChatConfig {
        mcp: servers,
        ..ChatConfig::default()
    }
}

/// Posts one user message in conversation `chat_id`; returns the status and the chunks.
async fn say(app: &TestApp, chat_id: &str, text: &str) -> (u16, Vec<Value>) {
    let body = json!({"id": chat_id, "trigger": "submit-message",
        "messages": [{"id": format!("u-{}", ulid::Ulid::new()), "role": "user", "parts": [{"type": "text", "text": text}]}]});
    let (status, _, body) = post_chat(app, PATH, body).await;
    (status, parse_sse(&body))
}

fn chunk<'a>(chunks: &'a [Value], kind: &str) -> &'a Value {
    chunks
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} chunk in {:?}", chunk_types(chunks)))
}

/// The conversation as `GET /api/conversations/{id}` shows it.
async fn shown(app: &TestApp, chat_id: &str) -> Value {
    let reply = app.call("GET", &format!("/api/conversations/{chat_id}"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// The continuation body the AI SDK posts after `addToolApprovalResponse`: the messages, the last
/// one the assistant's with the answered tool part.
fn answer(chat_id: &str, reply: &Value, approved: bool, reason: Option<&str>) -> Value {
    let mut parts: Vec<Value> = reply["parts"].as_array().expect("parts").clone();
    for part in &mut parts {
        if part["state"] == "approval-requested" {
            part["state"] = json!("approval-responded");
            let mut approval = json!({"id": part["approval"]["id"], "approved": approved});
            if let Some(r) = reason {
                approval["reason"] = json!(r);
            }
            part["approval"] = approval;
        }
    }
    json!({"id": chat_id, "trigger": "submit-message", "messageId": reply["id"],
        "messages": [{"id": reply["id"], "role": "assistant", "parts": parts}]})
}

async fn a_read_tool_is_called_and_answered_in_one_turn(store: Arc<dyn Store>) {
    let mes = mes(Options::default()).await;
    let (app, model) = app_with(store, chat_with(vec![server(&mes.url())])).await;
    let (status, chunks) = say(
        &app,
        "mcp-read",
        "How is press 2? #tool:mes_machine_status?machineId=PRESS-02",
    )
    .await;
    assert_eq!(status, 200);
    let types = chunk_types(&chunks);
    let call = chunk(&chunks, "tool-input-available");
    assert_eq!(call["toolName"], "mes_machine_status");
    assert_eq!(call["input"], json!({"machineId": "PRESS-02"}));
    let output = chunk(&chunks, "tool-output-available");
    assert_eq!(output["output"]["machines"][0]["id"], "PRESS-02");
    assert_eq!(output["output"]["machines"][0]["status"], "down");
    assert!(
        text_of(&chunks).contains("E-214"),
        "the model read the result: {}",
        text_of(&chunks)
    );
    // The tool's result belongs to its step, and the turn ended normally.
    let result_at = types.iter().position(|t| t == "tool-output-available").expect("result");
    assert_eq!(types[result_at + 1], "finish-step", "{types:?}");
    assert!(
        !types.iter().any(|t| t == "error" || t == "tool-approval-request"),
        "{types:?}"
    );
    // The model was offered the MES tools (and only in the chats configured for them).
    let mut offered: Vec<String> = model.0.lock().expect("lock")[0]
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    offered.sort();
    assert_eq!(
        offered,
        [
            "mes_create_work_order",
            "mes_line_oee",
            "mes_machine_status",
            "mes_open_work_orders"
        ]
    );
    // The caller's id reached the server (forwardUser).
    assert!(mes.plant.seen_users().contains(&"local-user".to_owned()));
    // Stored in order: text, the call, its result, the answer; shown in the AI SDK's shapes.
    let stored = app.stored("mcp-read").await;
    let reply = stored.iter().rfind(|m| m.role == Role::Assistant).expect("reply");
    let kinds: Vec<&str> = reply
        .parts
        .iter()
        .map(|p| match p {
            MessagePart::Text { .. } => "text",
            MessagePart::ToolCall { .. } => "call",
            MessagePart::ToolResult { .. } => "result",
            MessagePart::File { .. } => "file",
        })
        .collect();
    assert_eq!(kinds, ["text", "call", "result", "text"]);
    let view = shown(&app, "mcp-read").await;
    let parts = &view["messages"][1]["parts"];
    assert_eq!(parts[0], json!({"type": "text", "text": "Let me check. "}));
    assert_eq!(parts[1]["type"], "tool-mes_machine_status");
    assert_eq!(parts[1]["state"], "output-available");
    assert_eq!(parts[1]["output"]["machines"][0]["id"], "PRESS-02");
    assert!(parts[2]["text"].as_str().is_some_and(|t| t.starts_with("Tools said:")));
    // The general chat is not configured for the MES: no tools there.
    let (_, chunks) = say_on(&app, "/api/chat", "mcp-general", "#tool:mes_machine_status").await;
    assert!(!chunk_types(&chunks).iter().any(|t| t.starts_with("tool-")));
}

async fn say_on(app: &TestApp, path: &str, chat_id: &str, text: &str) -> (u16, Vec<Value>) {
    let body = json!({"id": chat_id, "messages": [{"role": "user", "content": text}]});
    let (status, _, body) = post_chat(app, path, body).await;
    (status, parse_sse(&body))
}

async fn an_action_waits_for_approval_and_runs_once_when_approved(store: Arc<dyn Store>) {
    let mes = mes(Options::default()).await;
    let (app, model) = app_with(store, chat_with(vec![server(&mes.url())])).await;
    let (status, chunks) = say(
        &app,
        "mcp-approve",
        "Open one. #tool:mes_create_work_order?machineId=PRESS-02&title=Check_the_relief_valve&priority=high",
    )
    .await;
    assert_eq!(status, 200);
    let request = chunk(&chunks, "tool-approval-request");
    // Exactly the two fields ai 6.0.48's strict schema allows.
    assert_eq!(request.as_object().map(|o| o.len()), Some(3), "{request}");
    let call_id = chunk(&chunks, "tool-input-available")["toolCallId"].clone();
    assert_eq!(request["toolCallId"], call_id);
    let reply_id = chunk(&chunks, "start")["messageId"].clone();
    assert_eq!(
        chunk(&chunks, "finish")["messageMetadata"]["finishReason"],
        "tool-calls"
    );
    assert!(
        mes.plant.created_work_orders().is_empty(),
        "an action never runs before approval"
    );
    let view = shown(&app, "mcp-approve").await;
    let reply = view["messages"][1].clone();
    assert_eq!(reply["id"], reply_id);
    let tool = &reply["parts"][1];
    assert_eq!(tool["type"], "tool-mes_create_work_order");
    assert_eq!(tool["state"], "approval-requested");
    assert_eq!(tool["approval"], json!({"id": request["approvalId"]}));

    let body = answer("mcp-approve", &reply, true, None);
    let (status, _, text) = post_chat(&app, PATH, body.clone()).await;
    assert_eq!(status, 200, "{text}");
    let chunks = parse_sse(&text);
    assert_eq!(
        chunk(&chunks, "start")["messageId"],
        reply_id,
        "the same message goes on"
    );
    let output = chunk(&chunks, "tool-output-available");
    assert_eq!(output["toolCallId"], call_id);
    assert_eq!(output["output"]["id"], "WO-1005");
    assert!(text_of(&chunks).contains("WO-1005"));
    let created = mes.plant.created_work_orders();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].title, "Check the relief valve");
    // One stored reply (the same id), with the answer and the result.
    let stored = app.stored("mcp-approve").await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[1].id.as_str(), reply_id);
    assert!(stored[1].awaited_approvals().is_empty());
    assert_eq!(stored[1].finish_reason, Some(shared::domain::FinishReason::Stop));
    let view = shown(&app, "mcp-approve").await;
    let tool = &view["messages"][1]["parts"][1];
    assert_eq!(tool["state"], "output-available");
    assert_eq!(tool["approval"]["approved"], true);
    assert_eq!(tool["output"]["id"], "WO-1005");
    // The continuation's model call saw the call and its result.
    let last = model.0.lock().expect("lock").last().cloned().expect("a request");
    assert!(last.messages.iter().any(|m| m
        .content
        .iter()
        .any(|c| matches!(c, ModelContent::ToolResult { content, .. } if content["id"] == "WO-1005"))));
    // The same answer sent again (a network retry) replays the stored reply: no second order.
    let (status, _, text) = post_chat(&app, PATH, body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("WO-1005"));
    assert_eq!(mes.plant.created_work_orders().len(), 1, "run once");
    // Who approved what is in the audit log.
    let mut approved = None;
    for _ in 0..50 {
        let audit = app.call("GET", "/api/audit", None).await;
        approved = audit
            .json
            .as_array()
            .and_then(|entries| entries.iter().find(|e| e["action"] == "tool.approve").cloned());
        if approved.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let approved = approved.expect("a tool.approve entry");
    assert_eq!(
        approved["resource"],
        format!(
            "mcp-approve/mes_create_work_order/{}",
            call_id.as_str().unwrap_or_default()
        )
    );
    // The next turn's context replays the whole reply: text, call, result, answer.
    let (status, _) = say(&app, "mcp-approve", "Thanks").await;
    assert_eq!(status, 200);
    let last = model.0.lock().expect("lock").last().cloned().expect("a request");
    let blocks: Vec<&str> = last
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .map(|c| match c {
            ModelContent::Text(_) => "text",
            ModelContent::ToolUse { .. } => "use",
            ModelContent::ToolResult { .. } => "result",
            ModelContent::FileRef { .. } | ModelContent::File { .. } => "file",
        })
        .collect();
    assert_eq!(
        blocks,
        ["text", "text", "use", "result", "text", "text"],
        "{:?}",
        last.messages
    );
}

async fn a_denied_action_never_runs(store: Arc<dyn Store>) {
    let mes = mes(Options::default()).await;
    let (app, _) = app_with(store, chat_with(vec![server(&mes.url())])).await;
    let (_, chunks) = say(
        &app,
        "mcp-deny",
        "#tool:mes_create_work_order?machineId=CNC-05&title=Spindle_noise&priority=low",
    )
    .await;
    chunk(&chunks, "tool-approval-request");
    let reply = shown(&app, "mcp-deny").await["messages"][1].clone();
    let (status, _, text) = post_chat(
        &app,
        PATH,
        answer("mcp-deny", &reply, false, Some("not during the shift")),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let chunks = parse_sse(&text);
    let call_id = reply["parts"][1]["toolCallId"].clone();
    assert_eq!(
        chunk(&chunks, "tool-output-denied"),
        &json!({"type": "tool-output-denied", "toolCallId": call_id})
    );
    assert!(!chunk_types(&chunks).iter().any(|t| t == "tool-output-available"));
    assert!(
        text_of(&chunks).contains("denied"),
        "the model read the denial: {}",
        text_of(&chunks)
    );
    assert!(mes.plant.created_work_orders().is_empty(), "never run when denied");
    let tool = shown(&app, "mcp-deny").await["messages"][1]["parts"][1].clone();
    assert_eq!(tool["state"], "output-denied");
    assert_eq!(tool["approval"]["approved"], false);
    assert_eq!(tool["approval"]["reason"], "not during the shift");
}

async fn a_failing_tool_server_is_a_tool_error_not_a_failed_turn(store: Arc<dyn Store>) {
    let server_up = mes(Options::default()).await;
    let url = server_up.url();
    let (app, _) = app_with(store, chat_with(vec![server(&url)])).await;
    // Listed while up (the list is cached), then the server goes away before the call.
    let (status, _) = say(&app, "mcp-down", "#tool:mes_line_oee?lineId=L1").await;
    assert_eq!(status, 200);
    server_up.shutdown().await;
    let (status, chunks) = say(&app, "mcp-down", "again #tool:mes_line_oee?lineId=L2").await;
    assert_eq!(status, 200);
    let failed = chunk(&chunks, "tool-output-error");
    assert!(
        failed["errorText"].as_str().is_some_and(|e| e.contains("mes")),
        "{failed}"
    );
    assert_eq!(chunk(&chunks, "finish")["messageMetadata"]["finishReason"], "stop");
    let stored = app.stored("mcp-down").await;
    let reply = stored.last().expect("reply");
    assert!(reply.error.is_none(), "the turn did not fail: {reply:?}");
    assert!(reply
        .parts
        .iter()
        .any(|p| matches!(p, MessagePart::ToolResult { is_error: true, .. })));
}

on_both_stores!([
    a_read_tool_is_called_and_answered_in_one_turn,
    an_action_waits_for_approval_and_runs_once_when_approved,
    a_denied_action_never_runs,
    a_failing_tool_server_is_a_tool_error_not_a_failed_turn,
]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_answers_that_do_not_fit_are_refused() {
    let mes = mes(Options::default()).await;
    let (app, _) = app_with(Arc::new(embedded_store()), chat_with(vec![server(&mes.url())])).await;
    let (_, chunks) = say(
        &app,
        "mcp-bad",
        "#tool:mes_create_work_order?machineId=PRESS-01&title=T&priority=low",
    )
    .await;
    chunk(&chunks, "tool-approval-request");
    let reply = shown(&app, "mcp-bad").await["messages"][1].clone();
    // Not a reply of this conversation.
    let mut wrong_id = answer("mcp-bad", &reply, true, None);
    wrong_id["messages"][0]["id"] = json!("01J0000000000000000000000X");
    let r = app.call("POST", PATH, Some(wrong_id)).await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{}", r.text);
    // Another approval id than the one awaited.
    let mut wrong_approval = answer("mcp-bad", &reply, true, None);
    wrong_approval["messages"][0]["parts"][1]["approval"]["id"] = json!("approval_other");
    let r = app.call("POST", PATH, Some(wrong_approval)).await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{}", r.text);
    // A user message cannot answer approvals.
    let mut as_user = answer("mcp-bad", &reply, true, None);
    as_user["messages"][0]["role"] = json!("user");
    let r = app.call("POST", PATH, Some(as_user)).await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{}", r.text);
    // A conversation that does not exist.
    let r = app
        .call("POST", PATH, Some(answer("mcp-nowhere", &reply, true, None)))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    // None of it ran the action or changed the stored reply.
    assert!(mes.plant.created_work_orders().is_empty());
    assert_eq!(
        shown(&app, "mcp-bad").await["messages"][1]["parts"][1]["state"],
        "approval-requested"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_turns_budget_are_not_run() {
    let mes = mes(Options::default()).await;
    let mut chat = chat_with(vec![server(&mes.url())]);
    chat.max_tool_calls = 1;
    let (app, _) = app_with(Arc::new(embedded_store()), chat).await;
    let (_, chunks) = say(
        &app,
        "mcp-budget",
        "#tool:mes_machine_status?machineId=PRESS-01 #tool:mes_machine_status?machineId=PRESS-02",
    )
    .await;
    let outputs: Vec<&Value> = chunks.iter().filter(|c| c["type"] == "tool-output-available").collect();
    assert_eq!(outputs.len(), 1, "{:?}", chunk_types(&chunks));
    let refused = chunk(&chunks, "tool-output-error");
    assert!(
        refused["errorText"]
            .as_str()
            .is_some_and(|e| e.contains("1 tool calls")),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_headers_reach_the_server_and_a_refused_server_offers_nothing() {
    let mes = mes(Options {
        api_key: Some("s3cret-key".to_owned()),
    })
    .await;
    let mut good = server(&mes.url());
    good.bearer = Some("s3cret-key".into());
    let (app, model) = app_with(Arc::new(embedded_store()), chat_with(vec![good])).await;
    let (_, chunks) = say(&app, "mcp-key", "#tool:mes_open_work_orders?lineId=L1").await;
    assert!(chunk(&chunks, "tool-output-available")["output"]["count"]
        .as_u64()
        .is_some_and(|n| n >= 1));
    let mut wrong = server(&mes.url());
    wrong.bearer = Some("wrong".into());
    let (app, model_wrong) = app_with(Arc::new(embedded_store()), chat_with(vec![wrong])).await;
    let (status, chunks) = say(&app, "mcp-nokey", "#tool:mes_open_work_orders?lineId=L1").await;
    assert_eq!(status, 200, "a server that refuses us does not fail the turn");
    assert!(!chunk_types(&chunks).iter().any(|t| t.starts_with("tool-")));
    assert!(model_wrong.0.lock().expect("lock")[0].tools.is_empty());
    assert!(!model.0.lock().expect("lock")[0].tools.is_empty());
}

/// A bearer token kept in Secrets Manager (moto's, the tests' DynamoDB-API server speaks it too)
/// is read at run time and sent; a secret that cannot be read leaves the server's tools out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_kept_in_secrets_manager_is_read_at_run_time() {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let mes = mes(Options {
        api_key: Some("from-secrets-manager".to_owned()),
    })
    .await;
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "athena-tests"))
        .endpoint_url(athena_tests::moto_endpoint())
        .build();
    let secrets = aws_sdk_secretsmanager::Client::from_conf(conf);
    let name = athena_tests::unique("mes-token");
    secrets
        .create_secret()
        .name(&name)
        .secret_string(json!({"token": "from-secrets-manager"}).to_string())
        .send()
        .await
        .expect("secret created");
    for (key, works) in [("token", true), ("missing", false)] {
        let mut config = server(&mes.url());
        config.bearer = Some(shared::config::Secret::Stored {
            id: name.clone(),
            key: Some(key.to_owned()),
        });
        let chat = chat_with(vec![config.clone()]);
        let store: Arc<dyn Store> = Arc::new(embedded_store());
        let model = Arc::new(Recording::default());
        let mut state = AppState::new(Config::local(), Arc::clone(&store)).with_chat(model.clone(), chat);
        state.mcp = Arc::new(shared::mcp::McpTools::with_secrets_client(&[config], secrets.clone()));
        let app = spawn_state(state, store).await;
        let (status, chunks) = say(&app, "mcp-secret", "#tool:mes_open_work_orders?lineId=L1").await;
        assert_eq!(status, 200);
        let called = chunk_types(&chunks).iter().any(|t| t == "tool-output-available");
        assert_eq!(called, works, "key {key}: {:?}", chunk_types(&chunks));
        assert_eq!(!model.0.lock().expect("lock")[0].tools.is_empty(), works, "key {key}");
    }
}

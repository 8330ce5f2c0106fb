//! Every sample event in `events/` (the files `sam local invoke -e` and `cargo lambda invoke
//! --data-file` use) goes through the real Lambda handler, and the answer is checked: status,
//! and body against `docs/openapi.yaml`. The chat events are function-URL events carrying a real
//! HS256 token (signed with the sample secret `events/README.md` names), answered by the chat
//! function on the scripted model.

use std::sync::Arc;

use athena_tests::openapi::OpenApi;
use athena_tests::{embedded_store, workspace_root, Reply};
use http_body_util::BodyExt;
use shared::api::AppState;
use shared::config::{AuthMode, Config};
use shared::domain::{ConversationId, Role, UserId};
use shared::local::{seed_sample_events, SAMPLE_USER};
use shared::store::Store;

/// The user the events' authorizer claims name.
const USER: &str = SAMPLE_USER;
/// The HS256 secret, issuer and audience the chat events' bearer token was signed for.
const SAMPLE_SECRET: &[u8] = b"athena-sample-events-secret-never-deploy-0001";
const SAMPLE_ISSUER: &str = "https://auth.athena.example.com";
const SAMPLE_AUDIENCE: &str = "athena-web";

fn expected_status(name: &str) -> u16 {
    if name.starts_with("files-") && name.contains("invalid") {
        // An unsupported file type: 415 FILE_TYPE.
        415
    } else if name.contains("invalid") {
        400
    } else if name.contains("forbidden") {
        403
    } else if name.contains("idle") {
        // Nothing running in the sample conversation: nothing to resume, nothing to stop.
        204
    } else if name.contains("function-url") {
        // A function URL carries no authorizer claims: under ATHENA_AUTH=apigw it is refused.
        401
    } else if name.contains("create") {
        201
    } else {
        200
    }
}

async fn seeded_state() -> Arc<AppState> {
    Arc::new(seeded(AuthMode::ApiGateway).await)
}

/// The chat function's state: function-URL auth (the function verifies the bearer token itself)
/// and the scripted model.
async fn seeded_chat_state() -> Arc<AppState> {
    let verifier = shared::auth::JwtVerifier::hs256(SAMPLE_SECRET, SAMPLE_ISSUER, SAMPLE_AUDIENCE);
    let state = seeded(AuthMode::Jwt(Arc::new(verifier))).await;
    Arc::new(state.with_chat(
        Arc::new(shared::llm::scripted::ScriptedModel),
        shared::chat::ChatConfig::default(),
    ))
}

/// The conversations function with file storage, as deployed (the template sets
/// `ATHENA_FILES_BUCKET`): a directory store stands in for the bucket.
async fn seeded_files_state() -> Arc<AppState> {
    let dir = std::env::temp_dir().join(format!("athena-events-files-{}", ulid::Ulid::new()));
    let blobs = shared::blobs::disk::DiskBlobs::open(dir.to_str().expect("utf-8 temp dir")).expect("files dir");
    Arc::new(seeded(AuthMode::ApiGateway).await.with_blobs(Arc::new(blobs)))
}

async fn seeded(auth: AuthMode) -> AppState {
    let store = Arc::new(embedded_store());
    // What `athena-local --seed-sample-events` stores (events/README.md); a second run stores
    // nothing.
    let now = shared::domain::now();
    assert!(seed_sample_events(store.as_ref(), now).await.expect("seed"));
    assert!(!seed_sample_events(store.as_ref(), now).await.expect("seed again"));
    let mut config = Config::local();
    config.auth = auth;
    AppState::new(config, store as Arc<dyn Store>)
}

#[tokio::test]
async fn every_sample_event_is_answered_as_documented() {
    let dir = workspace_root().join("events");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("events/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 16,
        "expected a sample event for every route, found {}",
        files.len()
    );
    let openapi = OpenApi::shared();
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.starts_with("streams-") || name.starts_with("worker-") {
            // DynamoDB stream and S3 events, not HTTP: the_sample_stream_event_indexes_its_message_and_title,
            // the_sample_upload_event_runs_its_import_job.
            continue;
        }
        let function: &'static str = if name.starts_with("messages-") {
            "messages"
        } else if name.starts_with("conversations-") || name.starts_with("files-") || name.starts_with("imports-") {
            "conversations"
        } else if name.starts_with("chat-") {
            "chat"
        } else if name.starts_with("analytics-") {
            "analytics"
        } else if name.starts_with("export-") {
            "export"
        } else {
            panic!("{name}: event files are named <function>-<case>.json");
        };
        let text = std::fs::read_to_string(&path).expect("read");
        let event =
            lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name} is not a Lambda HTTP event: {e}"));
        let method = event.method().as_str().to_owned();
        let uri_path = shared::api::routes::normalize(event.uri().path()).to_owned();
        let state = if function == "chat" {
            seeded_chat_state().await
        } else if name.starts_with("files-") || name.starts_with("imports-") {
            // Without a bucket (a function outside the template) attachments and import jobs are off: 501.
            let off = lambda_http::request::from_str(&text).expect("event");
            let response = shared::lambda::respond(&seeded_state().await, function, off).await;
            let status = response.status().as_u16();
            let body = match response.into_body() {
                lambda_http::Body::Text(t) => t,
                other => String::from_utf8(other.collect().await.expect("body").to_bytes().to_vec()).expect("utf8"),
            };
            assert_eq!(status, 501, "{name} without file storage: {body}");
            let code = if name.starts_with("imports-") {
                "IMPORTS_DISABLED"
            } else {
                "ATTACHMENTS_DISABLED"
            };
            assert!(body.contains(code), "{name}: {body}");
            seeded_files_state().await
        } else {
            seeded_state().await
        };
        let response = shared::lambda::respond(&state, function, event).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match response.into_body() {
            lambda_http::Body::Text(t) => t,
            lambda_http::Body::Empty => String::new(),
            other => String::from_utf8(other.collect().await.expect("body").to_bytes().to_vec()).expect("utf8"),
        };
        assert_eq!(status, expected_status(&name), "{name}: {body}");
        let reply = Reply {
            status,
            headers: reqwest::header::HeaderMap::from_iter(headers.iter().filter_map(|(k, v)| {
                Some((
                    reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()).ok()?,
                    reqwest::header::HeaderValue::from_bytes(v.as_bytes()).ok()?,
                ))
            })),
            json: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
            text: body,
        };
        if let Err(problem) = openapi.check(&method, &uri_path, &reply) {
            panic!("{name}: the answer does not match docs/openapi.yaml: {problem}");
        }
        assert!(reply.header("x-request-id").is_some_and(|id| !id.is_empty()), "{name}");
        if function == "chat" && method == "POST" && status == 200 {
            // A whole UI message stream, and both sides of the turn stored for the caller.
            assert_eq!(
                reply.header("x-vercel-ai-ui-message-stream"),
                Some("v1"),
                "{name}: {}",
                reply.text
            );
            assert!(reply.text.contains(r#""type":"text-delta""#), "{name}: {}", reply.text);
            assert!(
                reply.text.trim_end().ends_with("data: [DONE]"),
                "{name}: {}",
                reply.text
            );
            let event_json: serde_json::Value = serde_json::from_str(&text).expect("json");
            let body: serde_json::Value =
                serde_json::from_str(event_json["body"].as_str().expect("a chat event has a body")).expect("body json");
            let conversation = body["id"]
                .as_str()
                .or(body["conversationId"].as_str())
                .expect("conversation id");
            let owner = UserId::parse(USER).expect("user");
            let (_, messages) = state
                .store
                .get_conversation_with_messages(&owner, &ConversationId::parse(conversation).expect("id"))
                .await
                .expect("the conversation is stored");
            let roles: Vec<Role> = messages.iter().rev().take(2).map(|m| m.role).collect();
            assert_eq!(roles, vec![Role::Assistant, Role::User], "{name}");
        }
    }
}

#[tokio::test]
async fn a_chat_event_with_a_tampered_token_is_refused() {
    let state = seeded_chat_state().await;
    let text = std::fs::read_to_string(workspace_root().join("events/chat-stream.json")).expect("read");
    let tampered = text.replace("Bearer eyJ", "Bearer eyX");
    assert_ne!(text, tampered);
    let event = lambda_http::request::from_str(&tampered).expect("event");
    let response = shared::lambda::respond(&state, "chat", event).await;
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn a_request_from_another_user_sees_nothing_of_alices() {
    let state = seeded_state().await;
    let text = std::fs::read_to_string(workspace_root().join("events/conversations-get.json")).expect("read");
    let text = text.replace(USER, "user-mallory-0666");
    let event = lambda_http::request::from_str(&text).expect("event");
    let response = shared::lambda::respond(&state, "conversations", event).await;
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn a_function_answers_only_its_own_routes() {
    let state = seeded_state().await;
    let text = std::fs::read_to_string(workspace_root().join("events/messages-list.json")).expect("read");
    let event = lambda_http::request::from_str(&text).expect("event");
    let response = shared::lambda::respond(&state, "conversations", event).await;
    assert_eq!(response.status().as_u16(), 404);
}

/// `events/streams-index.json` (a message inserted and a conversation renamed, as the stream
/// delivers them to the `streams` function) goes through the function's handler on DynamoDB
/// (moto): the message's and the new title's words are indexed, applying it again changes
/// nothing, and a store that does not answer reports the first record for a retry.
#[tokio::test]
async fn the_sample_stream_event_indexes_its_message_and_title() {
    use shared::store::{IndexQuery, Search};
    let text = std::fs::read_to_string(workspace_root().join("events/streams-index.json")).expect("read");
    let event: shared::reactions::StreamEvent = serde_json::from_str(&text).expect("a DynamoDB stream event");
    let store = athena_tests::dynamo_store().await;
    let response = shared::lambda::consume(&store, &event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let owner = UserId::parse(USER).expect("user");
    let search = |q: &str| {
        let query = IndexQuery {
            terms: shared::domain::text::query_terms(q).expect("query"),
            solution: None,
            offset: 0,
            limit: 10,
        };
        let (store, owner) = (&store, &owner);
        async move { store.search_index(owner, &query).await.expect("search") }
    };
    let hydraulic = search("hydraulic").await;
    assert_eq!(hydraulic.len(), 1, "{hydraulic:?}");
    assert_eq!(
        hydraulic[0].message_id.as_ref().map(|m| m.as_str()),
        Some("01JDMSG0000000000000000AB2")
    );
    assert_eq!(hydraulic[0].role, Some(Role::Assistant));
    let valve = search("valve").await;
    assert_eq!(valve.len(), 2, "the new title and the message: {valve:?}");
    assert_eq!(valve[0].message_id, None, "the title first");
    assert!(
        search("conversation").await.is_empty(),
        "the default title is not indexed"
    );
    let again = shared::lambda::consume(&store, &event).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(search("valve").await.len(), 2, "idempotent");
    let down = athena_tests::unreachable_dynamo_store(1, store.tables().clone()).await;
    let failed = shared::lambda::consume(&down, &event).await;
    let json = serde_json::to_value(&failed).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "111000000000000000000001"}]})
    );
}

/// `events/worker-imports-object-created.json` (the EventBridge event of an export file uploaded
/// to `imports/`) through the worker's handler: the job it names is imported and `done`, the
/// object deleted; delivered again, nothing changes; on another user's job the key is ignored.
#[tokio::test]
async fn the_sample_upload_event_runs_its_import_job() {
    use shared::domain::import_job::{ImportJob, ImportJobStatus, Totals};
    use shared::store::ImportJobs;
    let text =
        std::fs::read_to_string(workspace_root().join("events/worker-imports-object-created.json")).expect("read");
    let event: serde_json::Value = serde_json::from_str(&text).expect("json");
    let keys = shared::lambda::created_keys(&event);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    let dir = std::env::temp_dir().join(format!("athena-events-imports-{}", ulid::Ulid::new()));
    let blobs = shared::blobs::disk::DiskBlobs::open(dir.to_str().expect("utf-8")).expect("files dir");
    let store = Arc::new(embedded_store());
    let state = AppState::new(Config::local(), store.clone() as Arc<dyn Store>).with_blobs(Arc::new(blobs));
    let path = dir.join(key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::read(workspace_root().join("tests/fixtures/chatgpt-conversations.json")).expect("fixture");
    std::fs::write(&path, &file).expect("upload");
    let now = shared::domain::now();
    let job = |owner: &str| ImportJob {
        id: shared::domain::ImportJobId::parse("01JDIMPJ0000000000000000AA").expect("id"),
        owner: UserId::parse(owner).expect("user"),
        source: "chatgpt".to_owned(),
        bytes: file.len() as u64,
        filename: None,
        status: ImportJobStatus::AwaitingUpload,
        created_at: now,
        updated_at: now,
        upload_expires_at: now,
        attempts: 0,
        totals: Totals::default(),
        failures: Vec::new(),
        failures_omitted: 0,
        error: None,
    };
    // Another user's job of that id: the key names alice's prefix, so it is not theirs.
    store.put_import_job(&job("user-bob-0002")).await.expect("bob's job");
    let answer = shared::lambda::import_uploads(&state, &event).await.expect("handled");
    assert!(answer.to_string().contains("no such job"), "{answer}");
    assert!(path.exists(), "an object naming no job of its owner is left alone");
    store
        .delete_import_job(&UserId::parse("user-bob-0002").expect("user"), &job("x").id)
        .await
        .expect("delete");
    store.put_import_job(&job(USER)).await.expect("alice's job");
    let answer = shared::lambda::import_uploads(&state, &event).await.expect("handled");
    assert!(answer.to_string().contains("Finished(Done)"), "{answer}");
    let owner = UserId::parse(USER).expect("user");
    let done = store.get_import_job(&owner, &job(USER).id).await.expect("job");
    assert_eq!(done.status, ImportJobStatus::Done);
    assert!(done.totals.imported >= 1, "{:?}", done.totals);
    assert!(!path.exists(), "the upload is deleted once imported");
    let again = shared::lambda::import_uploads(&state, &event).await.expect("handled");
    assert!(again.to_string().contains("finished"), "{again}");
    assert_eq!(
        store.get_import_job(&owner, &done.id).await.expect("job"),
        done,
        "a second delivery changes nothing"
    );
}

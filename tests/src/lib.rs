//! The toolkit of Athena's integration tests (`tests/api`, `tests/bedrock_env`): a real
//! DynamoDB-API server (moto) started on a free loopback port, fresh tables per test, both stores
//! ready to be driven by one suite ([`on_both_stores!`]), an in-process gateway whose every answer is
//! checked against `docs/openapi.yaml` ([`TestApp`]), chat posting and stream parsing ([`sse`]),
//! bearer tokens ([`tokens`]), stub servers ([`stub`]), a mock Bedrock endpoint
//! ([`bedrock_mock`]), a store that fails or stalls on demand ([`faults`]) and a throwaway
//! PostgreSQL server ([`postgres`], for `athena-migrate`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{Credentials, Region};
use shared::store::dynamo::{DynamoStore, Tables};
use shared::store::embedded::EmbeddedStore;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The Python that has moto installed: `MOTO_PYTHON`, else the workspace's `.venv`, else `python3`.
fn moto_python() -> PathBuf {
    if let Ok(path) = std::env::var("MOTO_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// An S3 client of this test process's moto server (path-style, test credentials), and its
/// credentials.
pub fn moto_s3_client() -> (aws_sdk_s3::Client, aws_sdk_s3::config::Credentials) {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let credentials = Credentials::new("test", "test", None, None, "athena-tests");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials.clone())
        .endpoint_url(moto_endpoint())
        .force_path_style(true)
        .build();
    (aws_sdk_s3::Client::from_conf(config), credentials)
}

/// The endpoint of this test process's moto server, started on first use. The server is moto's own
/// application run by `tests/moto_serial.py`, which applies requests one at a time (moto's
/// backends are not thread-safe; DynamoDB's per-item writes are atomic, and the concurrency tests
/// rely on that). It is started through a small shell watchdog that stops it when the test
/// process ends.
pub fn moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let port = free_port();
        let python = moto_python();
        let server = workspace_root().join("tests/moto_serial.py");
        let server = format!(
            "'{}' '{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1",
            python.display(),
            server.display()
        );
        serve_until_exit(&server, "", port, || {
            format!(
                "moto's server ({}; run `scripts/test.sh` once, or set MOTO_PYTHON)",
                python.display()
            )
        });
        format!("http://127.0.0.1:{port}")
    })
}

/// Starts `server` (a shell command line) in the background under a watchdog shell that stops
/// it (then runs `stop`, a shell command line) when this test process ends, and waits up to 60 s
/// for `port` to listen; panics with `describe()` otherwise. The watchdog outlives nothing, so
/// there is no child to wait for.
pub(crate) fn serve_until_exit(server: &str, stop: &str, port: u16, describe: impl Fn() -> String) {
    let script = format!(
        "{server} & m=$!; while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill $m; {stop}",
        parent = std::process::id()
    );
    #[allow(clippy::zombie_processes)]
    let started = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = started {
        panic!("could not start the watchdog of {}: {e}", describe());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} did not listen on port {port} within 60 s",
            describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An SDK client for an endpoint, with test credentials.
pub async fn dynamo_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "athena-tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A unique suffix for table names and ids.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A DynamoDB store on fresh tables of the shared moto server.
pub async fn dynamo_store() -> DynamoStore {
    let client = dynamo_client(moto_endpoint()).await;
    let name = unique("athena");
    let store = DynamoStore::new(
        client,
        Tables {
            events: format!("{name}-events"),
            conversations: name,
        },
    );
    store.create_tables().await.expect("creating tables on moto");
    store
}

/// An embedded store in memory.
pub fn embedded_store() -> EmbeddedStore {
    EmbeddedStore::in_memory().expect("opening an in-memory SQLite store")
}

/// A DynamoDB store whose endpoint does not answer (a free loopback port): every call fails after
/// `max_attempts` attempts.
pub async fn unreachable_dynamo_store(max_attempts: u32, tables: Tables) -> DynamoStore {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    let client = dynamo_client(&format!("http://127.0.0.1:{}", free_port())).await;
    let config = client
        .config()
        .to_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), tables)
}

pub mod bedrock_mock;
mod both;
pub mod faults;
pub mod indexed;
pub mod openapi;
pub mod postgres;
pub mod probes;
pub mod sse;
pub mod stub;
pub mod tokens;

pub use sse::{chunk_types, open_chat, parse_sse, post_chat, text_of};
pub use stub::stub_server;
pub use tokens::{as_user, with_bearer};

use std::sync::Arc;

use shared::api::AppState;
use shared::config::Config;
use shared::domain::{ConversationId, Message, UserId};
use shared::store::Store;

/// A fixed instant 15 s into a minute (2026-03-02T09:30:15Z). Tests of the per-minute windows run
/// at it (a `ManualClock` in the gateway's state, `TurnStart::now` for the stores), so all their
/// requests fall into one window whenever the test runs, instead of waiting for a minute boundary
/// to pass.
pub fn mid_minute() -> shared::domain::Timestamp {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2026, 3, 2, 9, 30, 15)
        .single()
        .expect("a valid instant")
}

/// The user every request is made as under `Config::local()` (no authentication).
pub fn local_user() -> UserId {
    UserId::parse("local-user").expect("user")
}

/// A running in-process gateway (the same `serve` the `athena-local` binary runs) on a free port.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// A plain HTTP client.
    pub client: reqwest::Client,
    /// The store behind it.
    pub store: Arc<dyn Store>,
    openapi: Arc<openapi::OpenApi>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A response, its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (`Null` when empty or not JSON).
    pub json: serde_json::Value,
    /// Body as text.
    pub text: String,
}

impl Reply {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// Starts a gateway on `store` with `config` (no model provider).
pub async fn spawn_app(store: Arc<dyn Store>, config: Config) -> TestApp {
    spawn_state(AppState::new(config, Arc::clone(&store)), store).await
}

/// Starts a gateway with the chat routes on the scripted model.
pub async fn spawn_chat_app(store: Arc<dyn Store>, config: Config, chat: shared::chat::ChatConfig) -> TestApp {
    let state =
        AppState::new(config, Arc::clone(&store)).with_chat(Arc::new(shared::llm::scripted::ScriptedModel), chat);
    spawn_state(state, store).await
}

/// Starts a gateway on a prepared state.
pub async fn spawn_state(state: AppState, store: Arc<dyn Store>) -> TestApp {
    let options = shared::local::ServeOptions::for_config(&state.config);
    spawn_state_with(state, store, options).await
}

/// Starts a gateway on a prepared state with its own connection limits and timeouts.
pub async fn spawn_state_with(state: AppState, store: Arc<dyn Store>, options: shared::local::ServeOptions) -> TestApp {
    spawn_shared_state(Arc::new(state), store, options).await
}

/// Starts a gateway on a state the test keeps a handle on (to run a service on it as well).
pub async fn spawn_shared_state(
    state: Arc<AppState>,
    store: Arc<dyn Store>,
    options: shared::local::ServeOptions,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(shared::local::serve_with(state, listener, options, async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: shared::http::client(None),
        store,
        openapi: openapi::OpenApi::shared(),
        _shutdown: tx,
    }
}

impl TestApp {
    /// Sends a request with an optional JSON body; checks the response against `docs/openapi.yaml`.
    pub async fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    /// The messages stored in the local user's conversation `id` (read from the store itself).
    pub async fn stored(&self, id: &str) -> Vec<Message> {
        let id = ConversationId::parse(id).expect("id");
        self.store
            .get_conversation_with_messages(&local_user(), &id)
            .await
            .expect("conversation stored")
            .1
    }

    /// Sends a prepared request; checks the response against `docs/openapi.yaml`.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let req = req.build().expect("request");
        let method = req.method().as_str().to_owned();
        let path = req.url().path().to_owned();
        let res = self.client.execute(req).await.expect("send");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        let reply = Reply {
            status,
            headers,
            json,
            text,
        };
        if let Err(problem) = self.openapi.check(&method, &path, &reply) {
            panic!(
                "{method} {path} -> {status} does not match docs/openapi.yaml: {problem}\nbody: {}",
                reply.text
            );
        }
        reply
    }
}

/// The id of the first message with `role` in a JSON list of messages (a messages listing).
pub fn id_of_role(messages: &serde_json::Value, role: &str) -> String {
    messages
        .as_array()
        .and_then(|all| all.iter().find(|m| m["role"] == role))
        .and_then(|m| m["id"].as_str())
        .expect("a message with that role")
        .to_owned()
}

//! Helpers shared by Athena's integration tests: a real DynamoDB-API server (moto) started on a
//! free loopback port, fresh tables per test, and both stores ready to be driven by one suite.

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

fn moto_binary() -> PathBuf {
    if let Ok(path) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

/// The endpoint of this test process's moto server, started on first use. The server is started
/// through a small shell watchdog that stops it when the test process ends.
pub fn moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let port = free_port();
        let binary = moto_binary();
        let script = format!(
            "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill $m",
            binary.display(),
            parent = std::process::id()
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("could not start moto_server (run `bash .ci/run` once, or set MOTO_SERVER)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server ({}) did not listen on port {port} within 60 s",
                binary.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
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

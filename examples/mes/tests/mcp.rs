//! The server end to end through rmcp's own Streamable HTTP client.

use std::{collections::HashMap, net::SocketAddr};

use athena_mes::{serve, MesServer, Options, Plant};
use http::{HeaderName, HeaderValue};
use rmcp::{
    model::{CallToolRequestParams, CallToolResult, JsonObject, Tool},
    service::RunningService,
    transport::{streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport},
    RoleClient, ServiceExt,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Client = RunningService<RoleClient, ()>;

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start(options: Options) -> MesServer {
    // The workspace builds reqwest with rustls but no built-in crypto provider (the binaries use
    // the AWS SDK's aws-lc-rs): install it, as the backend does, before any client is built.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    serve(local(), Plant::sample(), options).await.expect("bind")
}

async fn connect(config: StreamableHttpClientTransportConfig) -> Client {
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("initialize")
}

fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

async fn call(client: &Client, name: &'static str, arguments: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args(arguments)))
        .await
        .expect("call_tool")
}

/// The structured content, checked to equal the JSON of the one text item.
fn structured(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    let value = result.structured_content.clone().expect("structuredContent");
    assert_eq!(result.content.len(), 1);
    let text = result.content[0].as_text().expect("text content");
    let from_text: Value = serde_json::from_str(&text.text).expect("text is JSON");
    assert_eq!(from_text, value);
    value
}

fn error_text(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    result.content[0].as_text().expect("text").text.clone()
}

fn tool<'a>(tools: &'a [Tool], name: &str) -> &'a Tool {
    tools.iter().find(|tool| tool.name == name).expect(name)
}

#[tokio::test]
async fn initialize_and_list_tools() {
    let server = start(Options::default()).await;
    let client = connect(StreamableHttpClientTransportConfig::with_uri(server.url())).await;

    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|server| server.name.as_str()),
        Some("athena-mes")
    );
    assert!(info
        .instructions
        .as_deref()
        .is_some_and(|text| text.contains("manufacturing")));

    let tools = client.list_all_tools().await.expect("list tools");
    let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["create_work_order", "line_oee", "machine_status", "open_work_orders"]
    );

    for name in ["machine_status", "line_oee", "open_work_orders"] {
        let annotations = tool(&tools, name).annotations.clone().expect("annotations");
        assert_eq!(annotations.read_only_hint, Some(true), "{name}");
        assert_eq!(annotations.destructive_hint, Some(false), "{name}");
        assert_eq!(annotations.idempotent_hint, Some(true), "{name}");
        assert_eq!(annotations.open_world_hint, Some(false), "{name}");
    }
    let create = tool(&tools, "create_work_order")
        .annotations
        .clone()
        .expect("annotations");
    assert_eq!(create.read_only_hint, Some(false));
    assert_eq!(create.destructive_hint, Some(false));
    assert_eq!(create.idempotent_hint, Some(false));
    assert_eq!(create.open_world_hint, Some(false));

    for tool in &tools {
        let schema = Value::Object(tool.input_schema.as_ref().clone());
        assert_eq!(schema["type"], "object", "{}: {schema}", tool.name);
        assert!(schema["properties"].is_object(), "{}: {schema}", tool.name);
        let text = schema.to_string();
        for needle in ["$schema", "$ref", "$defs", "definitions"] {
            assert!(!text.contains(needle), "{} has {needle}: {text}", tool.name);
        }
        assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()));
    }
    let schema = &tool(&tools, "create_work_order").input_schema;
    assert_eq!(schema["required"], json!(["machineId", "title", "priority"]));
    assert_eq!(
        schema["properties"]["priority"],
        json!({"description": "How urgent the work is.", "type": "string", "enum": ["low", "medium", "high", "urgent"]})
    );
    assert_eq!(
        tool(&tools, "machine_status").input_schema["properties"]["machineId"]["type"],
        "string"
    );

    client.cancel().await.expect("cancel");
    server.shutdown().await;
}

#[tokio::test]
async fn read_tools() {
    let server = start(Options::default()).await;
    let client = connect(StreamableHttpClientTransportConfig::with_uri(server.url())).await;

    let all = structured(&call(&client, "machine_status", json!({})).await);
    assert_eq!(all["count"], 8);
    let press = structured(&call(&client, "machine_status", json!({"machineId": "PRESS-02"})).await);
    assert_eq!(press["count"], 1);
    let press = &press["machines"][0];
    assert_eq!(press["status"], "down");
    assert_eq!(press["lineId"], "L1");
    assert!(press["alarm"].as_str().is_some_and(|alarm| alarm.contains("E-214")));
    let l2 = structured(&call(&client, "machine_status", json!({"lineId": "L2"})).await);
    assert_eq!(l2["count"], 3);
    assert!(l2["machines"]
        .as_array()
        .expect("array")
        .iter()
        .all(|machine| machine["lineId"] == "L2"));

    let unknown = call(&client, "machine_status", json!({"machineId": "PRESS-99"})).await;
    assert!(error_text(&unknown).contains("unknown machine `PRESS-99`"));
    let unknown = call(&client, "machine_status", json!({"lineId": "L9"})).await;
    assert!(error_text(&unknown).contains("unknown line `L9`"));

    let oee = structured(&call(&client, "line_oee", json!({"lineId": "L1"})).await);
    assert_eq!(oee["shift"], "A");
    assert_eq!(oee["plannedMinutes"], 450);
    assert_eq!(oee["runMinutes"], 365);
    assert_eq!(oee["availability"], 0.8111);
    assert_eq!(oee["performance"], 0.9534);
    assert_eq!(oee["quality"], 0.9805);
    let (a, p, q) = (
        oee["availability"].as_f64().expect("a"),
        oee["performance"].as_f64().expect("p"),
        oee["quality"].as_f64().expect("q"),
    );
    let product = (a * p * q * 10_000.0).round() / 10_000.0;
    assert_eq!(oee["oee"].as_f64(), Some(product));
    let top = oee["topDowntime"].as_array().expect("top downtime");
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["minutes"], 46);
    assert!(top[0]["reason"]
        .as_str()
        .is_some_and(|reason| reason.contains("PRESS-02")));
    let oee_c = structured(&call(&client, "line_oee", json!({"lineId": "L3", "shift": "C"})).await);
    assert_eq!(oee_c["shift"], "C");
    assert_eq!(oee_c["lineName"], "Paint");
    assert!(error_text(&call(&client, "line_oee", json!({"lineId": "L7"})).await).contains("unknown line"));

    let orders = structured(&call(&client, "open_work_orders", json!({})).await);
    assert_eq!(orders["count"], 4);
    assert_eq!(orders["workOrders"][0]["id"], "WO-1001");
    let urgent = structured(&call(&client, "open_work_orders", json!({"priority": "urgent"})).await);
    assert_eq!(urgent["count"], 1);
    assert_eq!(urgent["workOrders"][0]["machineId"], "PRESS-02");
    let l3 = structured(&call(&client, "open_work_orders", json!({"lineId": "L3"})).await);
    assert_eq!(l3["count"], 1);
    assert_eq!(l3["workOrders"][0]["id"], "WO-1003");

    client.cancel().await.expect("cancel");
    server.shutdown().await;
}

#[tokio::test]
async fn create_work_order() {
    let server = start(Options::default()).await;
    let client = connect(StreamableHttpClientTransportConfig::with_uri(server.url())).await;

    let created = structured(
        &call(
            &client,
            "create_work_order",
            json!({"machineId": "PRESS-02", "title": "Replace hydraulic pump seal", "priority": "high",
                   "description": "E-214 again"}),
        )
        .await,
    );
    assert_eq!(created["id"], "WO-1005");
    assert_eq!(created["status"], "open");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["machineId"], "PRESS-02");
    assert!(created["createdAt"].as_str().is_some_and(|at| at.ends_with('Z')));

    let orders = structured(&call(&client, "open_work_orders", json!({"machineId": "PRESS-02"})).await);
    assert_eq!(orders["count"], 2);
    assert_eq!(orders["workOrders"][1]["id"], "WO-1005");

    let recorded = server.plant.created_work_orders();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].id, "WO-1005");
    assert_eq!(recorded[0].title, "Replace hydraulic pump seal");
    assert_eq!(recorded[0].description.as_deref(), Some("E-214 again"));

    let unknown = call(
        &client,
        "create_work_order",
        json!({"machineId": "MILL-99", "title": "x", "priority": "low"}),
    )
    .await;
    assert!(error_text(&unknown).contains("unknown machine `MILL-99`"));
    let empty = call(
        &client,
        "create_work_order",
        json!({"machineId": "CNC-05", "title": " ", "priority": "low"}),
    )
    .await;
    assert!(error_text(&empty).contains("title"));
    let long = call(
        &client,
        "create_work_order",
        json!({"machineId": "CNC-05", "title": "t".repeat(201), "priority": "low"}),
    )
    .await;
    assert!(error_text(&long).contains("at most 200"));
    // A priority outside the enum does not deserialize; rmcp reports that as a tool error too.
    let bad = call(
        &client,
        "create_work_order",
        json!({"machineId": "CNC-05", "title": "t", "priority": "asap"}),
    )
    .await;
    assert!(error_text(&bad).contains("unknown variant `asap`"));
    assert_eq!(server.plant.created_work_orders().len(), 1);

    client.cancel().await.expect("cancel");
    server.shutdown().await;
}

/// Sends one raw HTTP/1.1 request and returns the response head and body.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

fn post(addr: SocketAddr, path: &str, extra_headers: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\n{extra_headers}content-length: {}\r\n\
         connection: close\r\n\r\n{INITIALIZE}",
        INITIALIZE.len()
    )
}

#[tokio::test]
async fn api_key_is_enforced() {
    let server = start(Options {
        api_key: Some("s3cret".into()),
    })
    .await;

    let response = raw(server.addr, &post(server.addr, "/mcp", "")).await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains(r#""error":"unauthorized""#), "{response}");
    let response = raw(
        server.addr,
        &post(server.addr, "/mcp", "authorization: Bearer wrong\r\n"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let response = raw(
        server.addr,
        &post(server.addr, "/mcp", "authorization: Bearer s3cret\r\n"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // rmcp's client without the key cannot initialize; with it, it can.
    let without = ()
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(server.url()),
        ))
        .await;
    assert!(without.is_err());
    let client = connect(StreamableHttpClientTransportConfig::with_uri(server.url()).auth_header("s3cret")).await;
    let tools = client.list_all_tools().await.expect("list tools");
    assert_eq!(tools.len(), 4);

    client.cancel().await.expect("cancel");
    server.shutdown().await;
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let server = start(Options::default()).await;
    let response = raw(server.addr, &post(server.addr, "/", "")).await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    let response = raw(
        server.addr,
        &format!(
            "GET /mcp/x HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            server.addr
        ),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    server.shutdown().await;
}

#[tokio::test]
async fn user_header_is_recorded() {
    let server = start(Options::default()).await;
    let headers = HashMap::from([(
        HeaderName::from_static("x-athena-user"),
        HeaderValue::from_static("user-42"),
    )]);
    let client = connect(StreamableHttpClientTransportConfig::with_uri(server.url()).custom_headers(headers)).await;
    structured(&call(&client, "machine_status", json!({"machineId": "CNC-05"})).await);
    assert_eq!(server.plant.seen_users(), ["user-42"]);
    client.cancel().await.expect("cancel");

    let headers = HashMap::from([(
        HeaderName::from_static("x-athena-user"),
        HeaderValue::from_static("user-7"),
    )]);
    let client = connect(StreamableHttpClientTransportConfig::with_uri(server.url()).custom_headers(headers)).await;
    structured(&call(&client, "open_work_orders", json!({})).await);
    assert_eq!(server.plant.seen_users(), ["user-42", "user-7"]);
    client.cancel().await.expect("cancel");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let server = start(Options::default()).await;
    let addr = server.addr;
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

//! MCP tool calls (issue 16): what Athena's way of calling a tool costs against the sample MES
//! server on loopback, side by side in one run. Athena opens an MCP session per call
//! (`initialize`, the `initialized` notification, `tools/call`, then the session's `DELETE`), so
//! nothing is held between turns of a Lambda instance that may be frozen; the baseline is one
//! long-lived rmcp session making only the `tools/call` requests. The tool list is fetched once
//! per instance and reused for its TTL: listing cold against the cached list.

use std::time::Instant;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;
use shared::config::McpServerConfig;
use shared::domain::{Solution, UserId};
use shared::mcp::{Caller, McpTools};

use crate::report::{percentile, Row};
use crate::Options;

/// Milliseconds since `start`.
fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// How to reproduce these rows.
const COMMAND: &str = "cargo run --release -p athena-bench -- mcp";

/// Tool calls per measurement.
const CALLS: usize = 300;

pub async fn mcp(_options: &Options) -> Result<Vec<Row>, String> {
    shared::http::install_crypto_provider();
    let mes = athena_mes::serve(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        athena_mes::Plant::sample(),
        athena_mes::Options::default(),
    )
    .await
    .map_err(|e| format!("the MES server did not start: {e}"))?;
    let mut config = McpServerConfig::new("mes", &mes.url());
    config.solutions = Some(vec![Some(Solution::Manufacturing)]);
    let user = UserId::parse("bench-user").map_err(|e| e.to_string())?;
    let caller = Caller {
        user: &user,
        token: None,
    };
    let input = json!({"machineId": "PRESS-02"});

    // Listing: cold (a new instance), then from the cache.
    let mut cold_list = Vec::new();
    let mut tool = None;
    for _ in 0..30 {
        let tools = McpTools::new(std::slice::from_ref(&config));
        let start = Instant::now();
        let offered = tools.offered(Some(Solution::Manufacturing), caller).await;
        cold_list.push(ms(start));
        tool = offered.into_iter().find(|t| t.name == "mes_machine_status");
    }
    let tool = tool.ok_or("the MES server offered no machine_status tool")?;
    let tools = McpTools::new(std::slice::from_ref(&config));
    tools.offered(Some(Solution::Manufacturing), caller).await;
    let mut warm_list = Vec::new();
    for _ in 0..CALLS {
        let start = Instant::now();
        tools.offered(Some(Solution::Manufacturing), caller).await;
        warm_list.push(ms(start));
    }

    // Calls: Athena's (a session per call), then one long-lived session, alternating in rounds
    // so that a noisy moment hits both.
    let session = ()
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(mes.url()),
        ))
        .await
        .map_err(|e| format!("the baseline session did not start: {e}"))?;
    let mut athena = Vec::new();
    let mut baseline = Vec::new();
    let arguments = input.as_object().cloned();
    for _ in 0..CALLS {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let start = Instant::now();
        let called = tools.call(&tool, &input, caller, deadline).await;
        athena.push(ms(start));
        if called.is_error {
            return Err(format!("a call failed: {:?}", called.output));
        }
        let mut params = CallToolRequestParams::new("machine_status");
        params.arguments = arguments.clone();
        let start = Instant::now();
        session.call_tool(params).await.map_err(|e| e.to_string())?;
        baseline.push(ms(start));
    }
    let _ = session.cancel().await;
    mes.shutdown().await;

    let (a50, a95) = (percentile(&athena, 50.0), percentile(&athena, 95.0));
    let (b50, b95) = (percentile(&baseline, 50.0), percentile(&baseline, 95.0));
    let (c50, w50) = (percentile(&cold_list, 50.0), percentile(&warm_list, 50.0));
    Ok(vec![
        Row {
            area: "8 MCP tools",
            metric: format!(
                "one tool call on loopback, Athena's session per call (initialize + call + close) vs one long-lived session, p50 / p95 of {CALLS}"
            ),
            measured: format!("{a50:.2} / {a95:.2} ms vs {b50:.2} / {b95:.2} ms"),
            target: "none (measured for planning)".to_owned(),
            ratio: format!("{:.1}× at p50", a50 / b50.max(1e-9)),
            met: None,
            command: COMMAND.to_owned(),
            key: Some("mcp_call_p50_ms".to_owned()),
            value: a50,
        },
        Row {
            area: "8 MCP tools",
            metric: "listing a server's tools: a new instance (cold) vs the instance's cached list, p50".to_owned(),
            measured: format!("{c50:.2} ms vs {w50:.4} ms"),
            target: "none".to_owned(),
            ratio: format!("{:.0}×", c50 / w50.max(1e-9)),
            met: None,
            command: COMMAND.to_owned(),
            key: Some("mcp_list_cold_p50_ms".to_owned()),
            value: c50,
        },
    ])
}

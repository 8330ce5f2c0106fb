//! The deployment's MCP tool servers, through the official Rust MCP SDK (`rmcp`, streamable HTTP
//! over reqwest): their tools listed once per instance and reused for `listTtlSecs`, offered to
//! the model beside web search under the server's name (`mes_machine_status`), and called with a
//! timeout, an output cap and the caller's identity when the configuration passes it through.
//!
//! Safety: servers come from the deployment's configuration only (`config::mcp`); every address
//! a server name resolves to is checked when it connects (no link-local or metadata address,
//! whatever DNS says), redirects are not followed, responses are capped before they are decoded,
//! and a failing server reaches the model as a tool error, never as a failed turn.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::{mcp::forbidden_ip, McpServerConfig, Secret};
use crate::domain::{Solution, UserId};

/// Largest response body or SSE event accepted from a server (before decoding).
const MAX_RESPONSE_BYTES: usize = 2 * 1024 * 1024;
/// Longest name a model provider takes for a tool (Bedrock: `[a-zA-Z0-9_-]{1,64}`).
const MAX_TOOL_NAME: usize = 64;

/// A tool of an MCP server, as offered to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteTool {
    /// The name the model sees: `<server>_<tool>`.
    pub name: String,
    /// The server's name.
    pub server: String,
    /// The tool's own name on its server.
    pub tool: String,
    /// What it does (the server's description).
    pub description: String,
    /// Its input's JSON Schema (an object schema).
    pub input_schema: Value,
    /// It waits for the user's approval before it runs: configured as an action, or not
    /// configured read-only and not annotated `readOnlyHint: true` by its server.
    pub action: bool,
}

/// Who a call is made for.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The signed-in user.
    pub user: &'a UserId,
    /// Their bearer token, when the request carried one (passed through only to servers
    /// configured with `forwardToken`).
    pub token: Option<&'a str>,
}

/// What a call returned.
#[derive(Clone, Debug, PartialEq)]
pub struct Called {
    /// The output (structured content, or the text content, cut to the server's cap).
    pub output: Value,
    /// The tool (or its server) failed.
    pub is_error: bool,
}

impl Called {
    fn error(message: impl Into<String>) -> Self {
        Self {
            output: Value::String(message.into()),
            is_error: true,
        }
    }
}

struct Server {
    config: McpServerConfig,
    listed: Mutex<Option<(Instant, Arc<Vec<RemoteTool>>)>>,
    /// Its headers and bearer token with their secrets read, reused for its list TTL.
    resolved: Mutex<Option<(Instant, Arc<Resolved>)>>,
}

/// A server's headers and bearer token, secrets read (never logged).
struct Resolved {
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    bearer: Option<String>,
}

/// The deployment's MCP servers (empty when none is configured).
pub struct McpTools {
    servers: Vec<Server>,
    client: reqwest::Client,
    /// Secrets Manager, made when a configured secret is first read.
    secrets: tokio::sync::OnceCell<aws_sdk_secretsmanager::Client>,
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field(
                "servers",
                &self.servers.iter().map(|s| &s.config.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The deployment's tool servers as a chat turn uses them: [`McpTools`] in the chat function
/// (and athena-local, and tests), [`NoToolServers`] in the state every other function builds, so
/// that their binaries link no MCP client (`crate::lambda::run_chat`).
#[async_trait::async_trait]
pub trait ToolServers: Send + Sync {
    /// Whether no server is configured.
    fn is_empty(&self) -> bool;
    /// The tools offered in `solution`'s chat ([`McpTools::offered`]).
    async fn offered(&self, solution: Option<Solution>, caller: Caller<'_>) -> Vec<RemoteTool>;
    /// Calls `tool` ([`McpTools::call`]).
    async fn call(
        &self,
        tool: &RemoteTool,
        input: &Value,
        caller: Caller<'_>,
        deadline: tokio::time::Instant,
    ) -> Called;
}

#[async_trait::async_trait]
impl ToolServers for McpTools {
    fn is_empty(&self) -> bool {
        McpTools::is_empty(self)
    }

    async fn offered(&self, solution: Option<Solution>, caller: Caller<'_>) -> Vec<RemoteTool> {
        McpTools::offered(self, solution, caller).await
    }

    async fn call(
        &self,
        tool: &RemoteTool,
        input: &Value,
        caller: Caller<'_>,
        deadline: tokio::time::Instant,
    ) -> Called {
        McpTools::call(self, tool, input, caller, deadline).await
    }
}

/// No tool server: the state of a function that runs no chat turn.
#[derive(Debug, Default)]
pub struct NoToolServers;

#[async_trait::async_trait]
impl ToolServers for NoToolServers {
    fn is_empty(&self) -> bool {
        true
    }

    async fn offered(&self, _solution: Option<Solution>, _caller: Caller<'_>) -> Vec<RemoteTool> {
        Vec::new()
    }

    async fn call(
        &self,
        tool: &RemoteTool,
        _input: &Value,
        _caller: Caller<'_>,
        _deadline: tokio::time::Instant,
    ) -> Called {
        Called::error(format!("the tool server {} is not configured", tool.server))
    }
}

impl McpTools {
    /// The servers of a configuration.
    pub fn new(configs: &[McpServerConfig]) -> Self {
        Self {
            servers: configs
                .iter()
                .map(|config| Server {
                    config: config.clone(),
                    listed: Mutex::new(None),
                    resolved: Mutex::new(None),
                })
                .collect(),
            client: client(),
            secrets: tokio::sync::OnceCell::new(),
        }
    }

    /// The servers of a configuration, reading stored secrets with `secrets` (tests: a Secrets
    /// Manager client for a local endpoint).
    pub fn with_secrets_client(configs: &[McpServerConfig], secrets: aws_sdk_secretsmanager::Client) -> Self {
        let tools = Self::new(configs);
        let _ = tools.secrets.set(secrets);
        tools
    }

    /// The server's headers and bearer token, secrets read from Secrets Manager (reused for the
    /// server's list TTL, so a rotated secret is picked up).
    async fn resolve(&self, server: &Server) -> Result<Arc<Resolved>, String> {
        let mut cached = server.resolved.lock().await;
        if let Some((at, resolved)) = cached.as_ref() {
            if at.elapsed() < server.config.list_ttl {
                return Ok(Arc::clone(resolved));
            }
        }
        let mut headers = Vec::with_capacity(server.config.headers.len());
        for (name, value) in &server.config.headers {
            let value = self.secret_value(value).await?;
            headers.push((header_name(name)?, header_value(&value)?));
        }
        let bearer = match &server.config.bearer {
            Some(b) => Some(self.secret_value(b).await?),
            None => None,
        };
        let resolved = Arc::new(Resolved { headers, bearer });
        *cached = Some((Instant::now(), Arc::clone(&resolved)));
        Ok(resolved)
    }

    async fn secret_value(&self, secret: &Secret) -> Result<String, String> {
        let (id, key) = match secret {
            Secret::Value(v) => return Ok(v.clone()),
            Secret::Stored { id, key } => (id, key),
        };
        let client = self
            .secrets
            .get_or_init(|| async {
                let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(crate::http::sdk_http_client())
                    .load()
                    .await;
                aws_sdk_secretsmanager::Client::new(&config)
            })
            .await;
        // Boxed: the SDK's future is deep, and this runs inside the turn's own.
        let out = Box::pin(client.get_secret_value().secret_id(id).send())
            .await
            .map_err(|e| {
                format!(
                    "reading the secret {id} failed: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| format!("the secret {id} has no string value"))?;
        match key {
            None => Ok(text.to_owned()),
            Some(k) => serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|json| json.get(k.as_str()).and_then(Value::as_str).map(str::to_owned))
                .ok_or_else(|| format!("the secret {id} is not JSON with a string field {k}")),
        }
    }

    /// Whether no server is configured.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The tools offered in `solution`'s chat: every serving server's (allowed) tools, listed
    /// concurrently, each list reused for its TTL. A server that cannot be listed is left out of
    /// this turn (its last list is used while it is younger than ten TTLs).
    pub async fn offered(&self, solution: Option<Solution>, caller: Caller<'_>) -> Vec<RemoteTool> {
        let lists = self
            .servers
            .iter()
            .filter(|s| s.config.serves(solution))
            .map(|s| self.list(s, caller));
        futures::future::join_all(lists)
            .await
            .into_iter()
            .flat_map(|tools| tools.iter().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// The tool named `name` (as the model sees it) in `solution`'s chat, if offered there.
    pub async fn find(&self, solution: Option<Solution>, caller: Caller<'_>, name: &str) -> Option<RemoteTool> {
        let server = self
            .servers
            .iter()
            .find(|s| s.config.serves(solution) && name.starts_with(&format!("{}_", s.config.name)))?;
        self.list(server, caller).await.iter().find(|t| t.name == name).cloned()
    }

    async fn list(&self, server: &Server, caller: Caller<'_>) -> Arc<Vec<RemoteTool>> {
        let mut listed = server.listed.lock().await;
        let ttl = server.config.list_ttl;
        if let Some((at, tools)) = listed.as_ref() {
            if at.elapsed() < ttl {
                return Arc::clone(tools);
            }
        }
        let started = Instant::now();
        let fetched = tokio::time::timeout(server.config.timeout, async {
            let resolved = self.resolve(server).await?;
            let service = self.connect(&server.config, &resolved, caller).await?;
            let tools = service.list_all_tools().await.map_err(|e| e.to_string());
            let _ = service.cancel().await;
            tools
        })
        .await
        .unwrap_or_else(|_| Err("listing its tools timed out".to_owned()));
        match fetched {
            Ok(tools) => {
                let tools = Arc::new(remote_tools(&server.config, tools));
                tracing::info!(server = %server.config.name, tools = tools.len(), ms = started.elapsed().as_millis() as u64, "listed MCP tools");
                *listed = Some((Instant::now(), Arc::clone(&tools)));
                tools
            }
            Err(e) => {
                tracing::warn!(server = %server.config.name, error = %e, "listing MCP tools failed");
                match listed.as_ref() {
                    Some((at, tools)) if at.elapsed() < ttl * 10 => Arc::clone(tools),
                    _ => Arc::new(Vec::new()),
                }
            }
        }
    }

    /// Calls `tool` with `input` for `caller`, within the server's timeout and `deadline`.
    /// Every failure (unreachable server, timeout, protocol error, the tool's own error) is a
    /// [`Called`] with `is_error`, for the model to read.
    #[tracing::instrument(name = "mcp.call", skip_all, fields(server = %tool.server, tool = %tool.tool))]
    pub async fn call(
        &self,
        tool: &RemoteTool,
        input: &Value,
        caller: Caller<'_>,
        deadline: tokio::time::Instant,
    ) -> Called {
        let Some(server) = self.servers.iter().find(|s| s.config.name == tool.server) else {
            return Called::error(format!("the tool server {} is not configured", tool.server));
        };
        let arguments = match input {
            Value::Object(map) => map.clone(),
            Value::Null => serde_json::Map::new(),
            _ => return Called::error("the tool's input must be a JSON object"),
        };
        let until = (tokio::time::Instant::now() + server.config.timeout).min(deadline);
        let started = Instant::now();
        let outcome = tokio::time::timeout_at(until, async {
            let resolved = self.resolve(server).await?;
            let service = self.connect(&server.config, &resolved, caller).await?;
            let mut params = CallToolRequestParams::new(tool.tool.clone());
            params.arguments = Some(arguments);
            let result = service.call_tool(params).await.map_err(|e| e.to_string());
            let _ = service.cancel().await;
            result
        })
        .await;
        let ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(Ok(result)) => {
                let called = output_of(result, server.config.max_output_chars);
                tracing::info!(ms, is_error = called.is_error, "MCP tool called");
                called
            }
            Ok(Err(e)) => {
                tracing::warn!(ms, error = %e, "MCP tool call failed");
                Called::error(format!("the tool server {} failed: {}", tool.server, short(&e)))
            }
            Err(_) => {
                tracing::warn!(ms, "MCP tool call timed out");
                Called::error(format!("the tool server {} did not answer in time", tool.server))
            }
        }
    }

    async fn connect(
        &self,
        config: &McpServerConfig,
        resolved: &Resolved,
        caller: Caller<'_>,
    ) -> Result<RunningService<RoleClient, ()>, String> {
        let mut headers: HashMap<http::HeaderName, http::HeaderValue> = resolved.headers.iter().cloned().collect();
        if let Some(name) = &config.forward_user {
            headers.insert(header_name(name)?, header_value(caller.user.as_str())?);
        }
        let mut transport = StreamableHttpClientTransportConfig::with_uri(config.url.as_str())
            .custom_headers(headers)
            .max_json_response_size(MAX_RESPONSE_BYTES)
            .max_sse_event_size(MAX_RESPONSE_BYTES)
            .reinit_on_expired_session(true);
        let bearer = resolved
            .bearer
            .as_deref()
            .or(if config.forward_token { caller.token } else { None });
        if let Some(token) = bearer {
            transport = transport.auth_header(token);
        }
        let transport = StreamableHttpClientTransport::with_client(self.client.clone(), transport);
        ().serve(transport).await.map_err(|e| e.to_string())
    }
}

fn header_name(name: &str) -> Result<http::HeaderName, String> {
    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("bad header name {name}"))
}

fn header_value(value: &str) -> Result<http::HeaderValue, String> {
    http::HeaderValue::from_str(value).map_err(|_| "a header value is not valid".to_owned())
}

/// An error message cut to a readable length (the model reads it).
fn short(e: &str) -> String {
    e.chars().take(300).collect()
}

/// The listed tools the configuration allows, named for the model, actions marked.
fn remote_tools(config: &McpServerConfig, tools: Vec<rmcp::model::Tool>) -> Vec<RemoteTool> {
    tools
        .into_iter()
        .filter(|t| {
            config
                .tools
                .as_ref()
                .is_none_or(|allowed| allowed.iter().any(|a| a == t.name.as_ref()))
        })
        .filter_map(|t| {
            let tool = t.name.to_string();
            let name = format!("{}_{}", config.name, tool);
            if name.len() > MAX_TOOL_NAME || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                tracing::warn!(server = %config.name, tool = %tool, "a tool name a model cannot take: left out");
                return None;
            }
            let read_only_hint = t.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true);
            let action = config.actions.contains(&tool) || (!config.read_only.contains(&tool) && !read_only_hint);
            let mut schema = Value::Object((*t.input_schema).clone());
            if let Some(map) = schema.as_object_mut() {
                map.remove("$schema");
                map.entry("type").or_insert_with(|| Value::String("object".to_owned()));
            }
            Some(RemoteTool {
                name,
                server: config.name.clone(),
                description: t
                    .description
                    .map(|d| d.to_string())
                    .or(t.title)
                    .unwrap_or_else(|| tool.clone()),
                tool,
                input_schema: schema,
                action,
            })
        })
        .collect()
}

/// A call's result as the model reads it: the structured content when there is one, else the
/// text content (JSON when it is JSON); other content kinds are named, not inlined.
fn output_of(result: CallToolResult, max_chars: usize) -> Called {
    let is_error = result.is_error.unwrap_or(false);
    let output = match result.structured_content {
        Some(structured) if !is_error => structured,
        _ => {
            let texts: Vec<String> = result
                .content
                .iter()
                .map(|block| match block {
                    ContentBlock::Text(t) => t.text.clone(),
                    ContentBlock::Image(_) => "[image omitted]".to_owned(),
                    ContentBlock::Audio(_) => "[audio omitted]".to_owned(),
                    _ => "[resource omitted]".to_owned(),
                })
                .collect();
            let joined = texts.join("\n");
            match serde_json::from_str::<Value>(&joined) {
                Ok(json) if texts.len() == 1 && (json.is_object() || json.is_array()) => json,
                _ => Value::String(joined),
            }
        }
    };
    Called {
        output: cap(output, max_chars),
        is_error,
    }
}

/// The output, or (when its JSON is longer than `max_chars`) its JSON text cut there and marked.
pub fn cap(output: Value, max_chars: usize) -> Value {
    let text = match &output {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= max_chars {
        return output;
    }
    let mut cut: String = text.chars().take(max_chars).collect();
    cut.push_str(&format!(" … [cut: the output was longer than {max_chars} characters]"));
    Value::String(cut)
}

/// The HTTP client for MCP servers: no redirects, connect timeout, and a resolver that refuses
/// link-local and metadata addresses whatever a name resolves to.
fn client() -> reqwest::Client {
    let build = || {
        crate::http::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .dns_resolver(Arc::new(SafeResolver))
            .build()
    };
    match build() {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "building the MCP client failed; MCP servers will be unreachable");
            crate::http::client(Some(Duration::from_secs(1)))
        }
    }
}

/// Resolves with the system resolver, then drops every forbidden address; a name with nothing
/// left does not resolve.
struct SafeResolver;

impl reqwest::dns::Resolve for SafeResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| !forbidden_ip(a.ip())).collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves only to forbidden (link-local or metadata) addresses").into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ContentBlock as Content, Tool, ToolAnnotations};

    fn tool(name: &str, read_only: Option<bool>) -> Tool {
        let schema: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "properties": {"machineId": {"type": "string"}}
        }))
        .unwrap_or_default();
        let mut t = Tool::new(name.to_owned(), format!("does {name}"), Arc::new(schema));
        if let Some(r) = read_only {
            let mut a = ToolAnnotations::default();
            a.read_only_hint = Some(r);
            t.annotations = Some(a);
        }
        t
    }

    #[test]
    fn tools_are_named_for_the_server_filtered_and_actions_marked() {
        let mut config = McpServerConfig::new("mes", "http://127.0.0.1:1/mcp");
        config.tools = Some(vec!["status".into(), "create".into(), "delete".into(), "forced".into()]);
        config.actions = vec!["forced".into()];
        let tools = remote_tools(
            &config,
            vec![
                tool("status", Some(true)),
                tool("create", Some(false)),
                tool("delete", None),
                tool("forced", Some(true)),
                tool("hidden", Some(true)),
            ],
        );
        let summary: Vec<(&str, bool)> = tools.iter().map(|t| (t.name.as_str(), t.action)).collect();
        assert_eq!(
            summary,
            [
                ("mes_status", false),
                ("mes_create", true),
                ("mes_delete", true),
                ("mes_forced", true)
            ]
        );
        assert_eq!(tools[0].input_schema["type"], "object");
        assert!(tools[0].input_schema.get("$schema").is_none());
        let mut read_only = config.clone();
        read_only.read_only = vec!["delete".into()];
        assert!(!remote_tools(&read_only, vec![tool("delete", None)])[0].action);
    }

    #[test]
    fn outputs_prefer_structured_content_and_are_capped() {
        let mut result = CallToolResult::success(vec![Content::text("{\"a\":1}")]);
        assert_eq!(output_of(result.clone(), 100).output, serde_json::json!({"a": 1}));
        result.structured_content = Some(serde_json::json!({"b": 2}));
        assert_eq!(output_of(result, 100).output, serde_json::json!({"b": 2}));
        let failed = CallToolResult::error(vec![Content::text("unknown machine X")]);
        assert_eq!(
            output_of(failed, 100),
            Called {
                output: Value::String("unknown machine X".into()),
                is_error: true
            }
        );
        let long = cap(Value::String("x".repeat(50)), 10);
        assert!(long
            .as_str()
            .is_some_and(|s| s.starts_with("xxxxxxxxxx …") && s.contains("longer than 10")));
    }

    #[tokio::test]
    async fn names_that_resolve_to_forbidden_addresses_do_not_resolve() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "169.254.169.254".parse().unwrap_or_else(|_| unreachable!());
        assert!(SafeResolver.resolve(name).await.is_err());
        let name: reqwest::dns::Name = "localhost".parse().unwrap_or_else(|_| unreachable!());
        assert!(SafeResolver.resolve(name).await.is_ok());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_tool_error_and_lists_nothing() {
        let config = McpServerConfig::new("down", "http://127.0.0.1:9/mcp");
        let tools = McpTools::new(&[config]);
        let user = UserId::parse("u").unwrap_or_else(|_| unreachable!());
        let caller = Caller {
            user: &user,
            token: None,
        };
        assert!(tools.offered(None, caller).await.is_empty());
        let tool = RemoteTool {
            name: "down_x".into(),
            server: "down".into(),
            tool: "x".into(),
            description: String::new(),
            input_schema: serde_json::json!({"type": "object"}),
            action: false,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let called = tools.call(&tool, &serde_json::json!({}), caller, deadline).await;
        assert!(called.is_error, "{called:?}");
    }
}

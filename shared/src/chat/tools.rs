//! The tools a turn offers the model (web search, when configured and allowed, and the MCP
//! servers' tools for the chat's solution) and running them.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{ChatConfig, SearchConfig};
use crate::domain::{Solution, UserId};
use crate::llm::ToolSpec;
use crate::mcp::{Caller, RemoteTool};
use crate::state::AppState;

/// Longest tool output kept in the context, characters of its JSON.
pub const MAX_TOOL_OUTPUT_CHARS: usize = 16 * 1024;

/// The tools of one turn.
#[derive(Clone, Debug, Default)]
pub(super) struct Toolbox {
    /// Web search is offered.
    web_search: bool,
    /// The MCP tools offered.
    mcp: Vec<RemoteTool>,
    /// Who the turn runs for (MCP servers may receive the user id or token).
    user: Option<UserId>,
    token: Option<String>,
}

impl Toolbox {
    /// The tools offered in `solution`'s chat: web search when the deployment has a search API
    /// and the client allows it, and the MCP servers' tools (listed, or from their cache).
    pub(super) async fn for_turn(
        state: &AppState,
        solution: Option<Solution>,
        web_search: bool,
        mcp_allowed: bool,
        user: &UserId,
        token: Option<String>,
    ) -> Self {
        let mcp = if state.mcp.is_empty() || !mcp_allowed {
            Vec::new()
        } else {
            let caller = Caller {
                user,
                token: token.as_deref(),
            };
            state.mcp.offered(solution, caller).await
        };
        Self {
            web_search: web_search && state.config.chat.search.is_some(),
            mcp,
            user: Some(user.clone()),
            token,
        }
    }

    /// The tools as the model sees them.
    pub(super) fn specs(&self) -> Vec<ToolSpec> {
        let mut specs = Vec::new();
        if self.web_search {
            specs.push(web_search_spec());
        }
        specs.extend(self.mcp.iter().map(|t| ToolSpec {
            name: t.name.clone(),
            description: t.description.clone(),
            input_schema: t.input_schema.clone(),
        }));
        specs
    }

    /// Whether a call of `name` waits for the user's approval (an MCP action).
    pub(super) fn needs_approval(&self, name: &str) -> bool {
        self.mcp.iter().any(|t| t.name == name && t.action)
    }

    /// Runs one tool call: its output and whether it failed (failures are shown to the model as
    /// tool errors, never raised).
    #[tracing::instrument(name = "chat.tool", skip_all, fields(tool = name))]
    pub(super) async fn run(
        &self,
        state: &AppState,
        name: &str,
        input: &Value,
        deadline: tokio::time::Instant,
    ) -> (Value, bool) {
        if name == "webSearch" && self.web_search {
            return run(&state.config.chat, name, input).await;
        }
        match (self.mcp.iter().find(|t| t.name == name), &self.user) {
            (Some(tool), Some(user)) => {
                let caller = Caller {
                    user,
                    token: self.token.as_deref(),
                };
                let called = state.mcp.call(tool, input, caller, deadline).await;
                (called.output, called.is_error)
            }
            _ => (Value::String(format!("unknown tool {name}")), true),
        }
    }
}

fn web_search_spec() -> ToolSpec {
    ToolSpec {
        name: "webSearch".to_owned(),
        description: "Search the web for current information. Returns result titles, URLs and snippets.".to_owned(),
        input_schema: json!({
            "type": "object",
            "properties": {"query": {"type": "string", "description": "The search query"}},
            "required": ["query"]
        }),
    }
}

/// Runs one tool call: its output and whether it failed (failures are shown to the model as
/// tool errors, never raised).
#[tracing::instrument(name = "chat.tool", skip_all, fields(tool = name))]
pub async fn run(chat: &ChatConfig, name: &str, input: &Value) -> (Value, bool) {
    match (name, &chat.search) {
        ("webSearch", Some(search)) => {
            let query = input["query"].as_str().unwrap_or_default();
            match web_search(search, query).await {
                Ok(v) => (v, false),
                Err(e) => {
                    tracing::warn!(error = %e, "web search failed");
                    (Value::String("the search service failed".to_owned()), true)
                }
            }
        }
        _ => (Value::String(format!("unknown tool {name}")), true),
    }
}

/// Calls the search API; the answer is trimmed to keep the context small.
async fn web_search(search: &SearchConfig, query: &str) -> Result<Value, String> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| crate::http::client(Some(Duration::from_secs(10))));
    let mut req = client
        .post(&search.url)
        .json(&json!({"query": query, "max_results": 5}));
    if let Some(key) = &search.api_key {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("search answered {}", res.status()));
    }
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    let results = body.get("results").cloned().unwrap_or(body);
    let text = results.to_string();
    if text.len() > MAX_TOOL_OUTPUT_CHARS {
        let cut: String = text.chars().take(MAX_TOOL_OUTPUT_CHARS).collect();
        return Ok(Value::String(cut));
    }
    Ok(results)
}

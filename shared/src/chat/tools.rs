//! The tools a turn offers the model (web search, when configured and allowed) and running them.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{ChatConfig, SearchConfig};
use crate::llm::ToolSpec;

/// Longest tool output kept in the context, characters of its JSON.
pub const MAX_TOOL_OUTPUT_CHARS: usize = 16 * 1024;

/// The tools offered this turn: web search when the deployment has a search API and the client
/// allows it.
pub fn offered(chat: &ChatConfig, web_search: bool) -> Vec<ToolSpec> {
    match (&chat.search, web_search) {
        (Some(_), true) => vec![web_search_spec()],
        _ => Vec::new(),
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

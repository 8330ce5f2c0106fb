//! Any OpenAI-compatible streaming chat-completions server: OpenRouter (seeds 003/004), Ollama,
//! vLLM, llama.cpp. Server-sent events are parsed with `eventsource-stream`.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `ATHENA_OPENAI_BASE_URL` | base URL (…`/v1`) | `https://openrouter.ai/api/v1` |
//! | `ATHENA_OPENAI_API_KEY` | bearer token (not needed by local servers) | unset |
//! | `ATHENA_OPENAI_MODEL` | one model name for every request (e.g. `llama3.1` on Ollama) | unset: the catalog id mapped to OpenRouter's name |

use std::collections::BTreeMap;

use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ChatModel, ModelContent, ModelEvent, ModelRequest, ModelRole, ModelStream, ProviderError, StopReason};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::domain::{FileFormat, FileKind, Usage};

/// The OpenAI-compatible provider.
#[derive(Clone)]
pub struct OpenAiModel {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    model_override: Option<String>,
}

impl std::fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("OpenAiModel")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// OpenRouter's names for the catalog's Bedrock ids.
fn openrouter_name(bedrock_id: &str) -> &str {
    match bedrock_id {
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0" => "anthropic/claude-sonnet-4.5",
        "us.anthropic.claude-haiku-4-5-20251001-v1:0" => "anthropic/claude-haiku-4.5",
        "us.anthropic.claude-opus-4-5-20251101-v1:0" => "anthropic/claude-opus-4.5",
        "us.anthropic.claude-sonnet-4-20250514-v1:0" => "anthropic/claude-sonnet-4",
        other => other,
    }
}

impl OpenAiModel {
    /// A provider for `base_url`.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>, model_override: Option<String>) -> Self {
        Self {
            http: crate::http::client(None),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            model_override,
        }
    }

    fn body(&self, request: &ModelRequest) -> Value {
        let mut messages = vec![json!({"role": "system", "content": request.system})];
        for m in &request.messages {
            let mut text = String::new();
            let mut tool_calls = Vec::new();
            let mut images = Vec::new();
            for c in &m.content {
                match c {
                    ModelContent::Text(t) => text.push_str(t),
                    // Images as data-URL image parts; text documents inline, delimited; other
                    // documents never get here (`accepts` refuses them before the turn).
                    ModelContent::File {
                        format,
                        filename,
                        bytes,
                    } => match format.kind() {
                        FileKind::Image => images.push(json!({
                            "type": "image_url",
                            "image_url": {"url": format!("data:{};base64,{}", format.media_type(), BASE64.encode(bytes))},
                        })),
                        FileKind::Document => {
                            let body = String::from_utf8_lossy(bytes);
                            text.push_str(&format!("<document name=\"{filename}\">\n{body}\n</document>\n\n"));
                        }
                    },
                    ModelContent::FileRef { filename, .. } => {
                        text.push_str(&format!("[The attached file {filename} could not be read.]\n\n"));
                    }
                    ModelContent::ToolUse { id, name, input } => tool_calls.push(json!({
                        "id": id, "type": "function",
                        "function": {"name": name, "arguments": input.to_string()}
                    })),
                    ModelContent::ToolResult { id, content, .. } => messages.push(json!({
                        "role": "tool", "tool_call_id": id, "content": content.to_string()
                    })),
                }
            }
            let role = match m.role {
                ModelRole::User => "user",
                ModelRole::Assistant => "assistant",
            };
            if !images.is_empty() {
                let mut parts = vec![json!({"type": "text", "text": text})];
                parts.extend(images);
                messages.push(json!({"role": role, "content": parts}));
            } else if !tool_calls.is_empty() {
                messages.push(json!({"role": role, "content": text, "tool_calls": tool_calls}));
            } else if !text.is_empty() {
                messages.push(json!({"role": role, "content": text}));
            }
        }
        let model = self
            .model_override
            .clone()
            .unwrap_or_else(|| openrouter_name(&request.model).to_owned());
        let mut body = json!({
            "model": model,
            "messages": messages,
            "stream": true,
            "max_tokens": request.max_tokens,
            "stream_options": {"include_usage": true},
        });
        if !request.tools.is_empty() {
            body["tools"] = Value::Array(
                request
                    .tools
                    .iter()
                    .map(|t| {
                        json!({"type": "function", "function": {
                            "name": t.name, "description": t.description, "parameters": t.input_schema
                        }})
                    })
                    .collect(),
            );
        }
        body
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<ChunkUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct Delta {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallDelta>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    index: u32,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

fn status_error(status: reqwest::StatusCode, body: String) -> ProviderError {
    let message = format!("HTTP {status}: {}", body.chars().take(300).collect::<String>());
    match status.as_u16() {
        429 => ProviderError::Throttled(message),
        408 | 504 => ProviderError::Timeout(message),
        500..=599 => ProviderError::Unavailable(message),
        _ => ProviderError::Refused(message),
    }
}

fn finish(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFiltered,
        other => StopReason::Other(other.to_owned()),
    }
}

#[async_trait]
impl ChatModel for OpenAiModel {
    /// Images (image parts) and text documents (inline); chat-completions APIs have no portable
    /// PDF or DOCX input.
    fn accepts(&self, format: FileFormat) -> bool {
        format.kind() == FileKind::Image || format.is_text()
    }

    fn provider(&self) -> &'static str {
        "openai"
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ProviderError> {
        let mut call = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&self.body(&request));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.map_err(|e| {
            if e.is_timeout() {
                ProviderError::Timeout(e.to_string())
            } else {
                ProviderError::Unavailable(e.to_string())
            }
        })?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(status_error(status, body));
        }
        let events = response.bytes_stream().eventsource();
        // Tool calls arrive as fragments keyed by index; they are complete at the finish reason.
        let stream = events
            .scan(BTreeMap::<u32, (String, String, String)>::new(), |tools, event| {
                let out: Vec<Result<ModelEvent, ProviderError>> = match event {
                    Err(e) => vec![Err(ProviderError::Stream(e.to_string()))],
                    Ok(event) if event.data.trim() == "[DONE]" => Vec::new(),
                    Ok(event) => match serde_json::from_str::<Chunk>(&event.data) {
                        Err(e) => vec![Err(ProviderError::Stream(format!("unreadable chunk: {e}")))],
                        Ok(chunk) => {
                            let mut out = Vec::new();
                            for choice in chunk.choices {
                                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                                    out.push(Ok(ModelEvent::TextDelta(text)));
                                }
                                for call in choice.delta.tool_calls {
                                    let entry = tools.entry(call.index).or_default();
                                    if let Some(id) = call.id {
                                        entry.0 = id;
                                    }
                                    if let Some(f) = call.function {
                                        if let Some(name) = f.name {
                                            entry.1 = name;
                                        }
                                        if let Some(args) = f.arguments {
                                            entry.2.push_str(&args);
                                        }
                                    }
                                }
                                if let Some(reason) = choice.finish_reason {
                                    for (_, (id, name, args)) in std::mem::take(tools) {
                                        let input = if args.trim().is_empty() {
                                            Ok(json!({}))
                                        } else {
                                            serde_json::from_str(&args)
                                                .map_err(|e| ProviderError::Stream(format!("tool arguments: {e}")))
                                        };
                                        out.push(input.map(|input| ModelEvent::ToolUse { id, name, input }));
                                    }
                                    out.push(Ok(ModelEvent::Stop(finish(&reason))));
                                }
                            }
                            if let Some(u) = chunk.usage {
                                out.push(Ok(ModelEvent::Usage(Usage {
                                    input_tokens: u.prompt_tokens,
                                    output_tokens: u.completion_tokens,
                                    ..Usage::default()
                                })));
                            }
                            out
                        }
                    },
                };
                futures::future::ready(Some(futures::stream::iter(out)))
            })
            .flatten();
        Ok(stream.boxed())
    }
}

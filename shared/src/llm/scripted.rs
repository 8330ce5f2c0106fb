//! A deterministic model for tests and offline demos (`ATHENA_PROVIDER=scripted`). It answers
//! the last user message; directives in that message script its behaviour:
//!
//! | directive | effect |
//! |---|---|
//! | `#deltas:N` | reply with exactly N text deltas `w0 `, `w1 `, … |
//! | `#delay:MS` | wait MS milliseconds before each delta |
//! | `#first-delay:MS` | wait MS milliseconds before the first delta |
//! | `#throttle:SUBSTR` | refuse with a throttling error before streaming when the model id contains SUBSTR |
//! | `#refuse` | refuse the request (not fallback-worthy) |
//! | `#fail-after:N` | break the stream after N deltas |
//! | `#search:QUERY` | first call the `webSearch` tool with QUERY (when offered), then answer with its result |
//! | `#tool:NAME?k=v&k2=v2` | first say "Let me check." and call the offered tool NAME with `{"k": "v", "k2": v2}` (`_` is a space; numbers stay numbers; several directives: several calls in one step), then answer `Tools said: <results>` |
//!
//! Without directives it streams `Scripted reply to: <message>` word by word. A title request
//! (system prompt [`super::TITLE_SYSTEM_PROMPT`]) is answered with the message's first five
//! words, capitalised. Usage is exact
//! and predictable: input tokens = characters of system prompt and context / 4 (rounded up),
//! output tokens = number of text deltas.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;

use super::{ChatModel, ModelContent, ModelEvent, ModelRequest, ModelRole, ModelStream, ProviderError, StopReason};
use crate::domain::Usage;

/// The scripted provider.
#[derive(Clone, Debug, Default)]
pub struct ScriptedModel;

fn directive<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("#{name}:");
    let start = text.find(&key)? + key.len();
    let rest = &text[start..];
    Some(rest.split_whitespace().next().unwrap_or(""))
}

fn number(text: &str, name: &str) -> Option<u64> {
    directive(text, name).and_then(|v| v.parse().ok())
}

/// The input-token count the scripted model reports for a request.
pub fn input_tokens(request: &ModelRequest) -> u64 {
    let mut chars = request.system.chars().count();
    for m in &request.messages {
        for c in &m.content {
            chars += match c {
                ModelContent::Text(t) => t.chars().count(),
                ModelContent::ToolUse { input, .. } => input.to_string().chars().count(),
                ModelContent::ToolResult { content, .. } => content.to_string().chars().count(),
                ModelContent::File { bytes, .. } => bytes.len(),
                ModelContent::FileRef { filename, .. } => filename.chars().count(),
            };
        }
    }
    (chars as u64).div_ceil(4)
}

#[async_trait]
impl ChatModel for ScriptedModel {
    fn provider(&self) -> &'static str {
        "scripted"
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ProviderError> {
        let last_user_text = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == ModelRole::User && m.content.iter().any(|c| matches!(c, ModelContent::Text(_))))
            .and_then(|m| {
                m.content.iter().find_map(|c| match c {
                    ModelContent::Text(t) => Some(t.clone()),
                    _ => None,
                })
            })
            .unwrap_or_default();
        if let Some(substr) = directive(&last_user_text, "throttle") {
            if !substr.is_empty() && request.model.contains(substr) {
                return Err(ProviderError::Throttled(format!(
                    "scripted throttling of {}",
                    request.model
                )));
            }
        }
        if last_user_text.contains("#refuse") {
            return Err(ProviderError::Refused("scripted refusal".to_owned()));
        }
        let input = input_tokens(&request);
        if request.system == super::TITLE_SYSTEM_PROMPT {
            // A title request: the first five words of the message, capitalised, directives left out.
            let title: Vec<String> = last_user_text
                .split_whitespace()
                .filter(|w| !w.starts_with('#'))
                .take(5)
                .map(|w| {
                    let mut chars = w.chars();
                    chars
                        .next()
                        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
                })
                .collect();
            let (deltas, count) = words(title.join(" "));
            return Ok(async_stream(deltas, None, None, None, input, count));
        }
        // A tool round: call the tools unless their results are already in the context (results
        // given after the user's last text: earlier turns' results do not count).
        let results = results_since_last_text(&request);
        let tool_result = results.first().cloned();
        if results.is_empty() {
            if let Some(query) = directive(&last_user_text, "search") {
                if request.tools.iter().any(|t| t.name == "webSearch") {
                    let events = vec![
                        Ok(ModelEvent::ToolUse {
                            id: format!("tooluse_scripted_{}", request.messages.len()),
                            name: "webSearch".to_owned(),
                            input: json!({"query": query.replace('_', " ")}),
                        }),
                        Ok(ModelEvent::Stop(StopReason::ToolUse)),
                        Ok(ModelEvent::Usage(Usage {
                            input_tokens: input,
                            output_tokens: 1,
                            ..Usage::default()
                        })),
                    ];
                    return Ok(futures::stream::iter(events).boxed());
                }
            }
            let calls = tool_directives(&last_user_text, &request);
            if !calls.is_empty() {
                let count = calls.len() as u64;
                let mut events: Vec<Result<ModelEvent, ProviderError>> =
                    vec![Ok(ModelEvent::TextDelta("Let me check. ".to_owned()))];
                events.extend(calls.into_iter().map(Ok));
                events.push(Ok(ModelEvent::Stop(StopReason::ToolUse)));
                events.push(Ok(ModelEvent::Usage(Usage {
                    input_tokens: input,
                    output_tokens: 1 + count,
                    ..Usage::default()
                })));
                return Ok(futures::stream::iter(events).boxed());
            }
        }
        if directive(&last_user_text, "tool").is_some() && !results.is_empty() {
            let said: Vec<String> = results.iter().map(ToString::to_string).collect();
            let (deltas, count) = words(format!("Tools said: {}", said.join(" | ")));
            return Ok(async_stream(deltas, None, None, None, input, count));
        }
        // Deltas are made as the stream is read (a long scripted reply is never held whole here).
        let (deltas, count): (Deltas, u64) = match (number(&last_user_text, "deltas"), &tool_result) {
            (_, Some(result)) => words(format!("Search said: {result}")),
            (Some(n), None) => (Box::new((0..n).map(|i| format!("w{i} "))), n),
            (None, None) => words(match attachments_seen(&request) {
                Some(files) => format!("Scripted reply to: {last_user_text} (attachments: {files})"),
                None => format!("Scripted reply to: {last_user_text}"),
            }),
        };
        let delay = number(&last_user_text, "delay").map(Duration::from_millis);
        let first_delay = number(&last_user_text, "first-delay").map(Duration::from_millis);
        let fail_after = number(&last_user_text, "fail-after");
        let stream = async_stream(deltas, delay, first_delay, fail_after, input, count);
        Ok(stream)
    }
}

/// The files of the last user message with text, as the scripted reply names them
/// (`name media-type bytes`, comma-separated), so a demo or a test sees what reached the model.
fn attachments_seen(request: &ModelRequest) -> Option<String> {
    let last = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == ModelRole::User && m.content.iter().any(|c| matches!(c, ModelContent::Text(_))))?;
    let files: Vec<String> = last
        .content
        .iter()
        .filter_map(|c| match c {
            ModelContent::File {
                format,
                filename,
                bytes,
            } => Some(format!("{filename} {} {} bytes", format.media_type(), bytes.len())),
            ModelContent::FileRef { filename, .. } => Some(format!("{filename} unreadable")),
            _ => None,
        })
        .collect();
    (!files.is_empty()).then(|| files.join(", "))
}

/// The tool results given after the user's last text (this turn's tool rounds).
fn results_since_last_text(request: &ModelRequest) -> Vec<serde_json::Value> {
    let last_text = request
        .messages
        .iter()
        .rposition(|m| m.role == ModelRole::User && m.content.iter().any(|c| matches!(c, ModelContent::Text(_))));
    let mut out = Vec::new();
    for (i, m) in request.messages.iter().enumerate() {
        let Some(from) = last_text else { break };
        if i < from {
            continue;
        }
        // In the message with the text itself, only results after its last text block count.
        let start = if i == from {
            m.content
                .iter()
                .rposition(|c| matches!(c, ModelContent::Text(_)))
                .map_or(0, |p| p + 1)
        } else {
            0
        };
        for c in m.content.iter().skip(start) {
            if let ModelContent::ToolResult { content, .. } = c {
                out.push(content.clone());
            }
        }
    }
    out
}

/// The tool calls `#tool:NAME?key=value&key=value` directives ask for (each offered tool once;
/// `_` in a value is a space, a value that parses as a number is one).
fn tool_directives(text: &str, request: &ModelRequest) -> Vec<ModelEvent> {
    let mut calls = Vec::new();
    for (n, token) in text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("#tool:"))
        .enumerate()
    {
        let (name, query) = token.split_once('?').unwrap_or((token, ""));
        if !request.tools.iter().any(|t| t.name == name) {
            continue;
        }
        let mut input = serde_json::Map::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = v.replace('_', " ");
            let value = v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n));
            input.insert(k.to_owned(), value);
        }
        calls.push(ModelEvent::ToolUse {
            id: format!("tooluse_{}_{n}", request.messages.len()),
            name: name.to_owned(),
            input: serde_json::Value::Object(input),
        });
    }
    calls
}

/// The text deltas of a reply, made on demand.
type Deltas = Box<dyn Iterator<Item = String> + Send>;

/// A text split after each space, and how many pieces that makes.
fn words(text: String) -> (Deltas, u64) {
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    let count = words.len() as u64;
    (Box::new(words.into_iter()), count)
}

fn async_stream(
    deltas: Deltas,
    delay: Option<Duration>,
    first_delay: Option<Duration>,
    fail_after: Option<u64>,
    input: u64,
    count: u64,
) -> ModelStream {
    let texts = futures::stream::iter(deltas.enumerate()).then(move |(i, text)| async move {
        if i == 0 {
            if let Some(d) = first_delay {
                tokio::time::sleep(d).await;
            }
        }
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if fail_after.is_some_and(|n| i as u64 >= n) {
            return Err(ProviderError::Stream("scripted stream failure".to_owned()));
        }
        Ok(ModelEvent::TextDelta(text))
    });
    // Stop after the first error, like a real broken stream.
    let texts = texts.scan(false, |failed, item| {
        if *failed {
            return futures::future::ready(None);
        }
        *failed = item.is_err();
        futures::future::ready(Some(item))
    });
    let tail = futures::stream::iter(vec![
        Ok(ModelEvent::Stop(StopReason::EndTurn)),
        Ok(ModelEvent::Usage(Usage {
            input_tokens: input,
            output_tokens: count,
            ..Usage::default()
        })),
    ]);
    let failing = fail_after.is_some_and(|n| n < count);
    if failing {
        texts.boxed()
    } else {
        texts.chain(tail).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ModelMessage;

    fn request(text: &str, model: &str) -> ModelRequest {
        ModelRequest {
            model: model.to_owned(),
            system: "sys!".to_owned(),
            messages: vec![ModelMessage {
                role: ModelRole::User,
                content: vec![ModelContent::Text(text.to_owned())],
            }],
            max_tokens: 100,
            tools: Vec::new(),
        }
    }

    #[tokio::test]
    async fn directives_script_deltas_failures_and_throttling() {
        let model = ScriptedModel;
        let events: Vec<_> = model
            .stream(request("#deltas:3", "m"))
            .await
            .map(|s| s.collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{e}"))
            .await;
        assert_eq!(events.len(), 5);
        assert_eq!(events[0], Ok(ModelEvent::TextDelta("w0 ".to_owned())));
        assert_eq!(
            events[4],
            Ok(ModelEvent::Usage(Usage {
                // "sys!" and "#deltas:3": 13 characters, 4 tokens at 4 characters per token.
                input_tokens: 4,
                output_tokens: 3,
                ..Usage::default()
            }))
        );
        let failing: Vec<_> = model
            .stream(request("#deltas:5 #fail-after:2", "m"))
            .await
            .map(|s| s.collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{e}"))
            .await;
        assert_eq!(failing.len(), 3);
        assert!(failing[2].is_err());
        assert!(matches!(
            model.stream(request("#throttle:sonnet", "claude-sonnet")).await,
            Err(ProviderError::Throttled(_))
        ));
        assert!(model.stream(request("#throttle:sonnet", "claude-haiku")).await.is_ok());
    }
}

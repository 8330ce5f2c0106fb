//! ChatGPT's `conversations.json`: an array of conversations, each a tree of nodes
//! (`mapping`: node id -> `{id, message, parent, children}`) whose `current_node` is the leaf
//! shown. Every node with a message becomes an Athena message whose parent is its nearest
//! ancestor that became one, so the branches (edits, regenerations) stay versions of one another;
//! nodes without a message (the root) and empty system messages (ChatGPT's hidden preamble) are
//! passed through.
//!
//! Content types: `text` and `multimodal_text` (string parts; an image is `[image]`), `code`
//! (a fenced block), `execution_output`, `tether_quote`, `tether_browsing_display`, `thoughts`,
//! `reasoning_recap`, `user_editable_context`; any other type keeps its text (`text`, string
//! `parts` or `result`) or, with none, becomes `[unsupported content: <type>]`.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::{assemble, from_unix_seconds, new_conversation, Context, Draft, ItemError, Prepared};
use crate::domain::{ImportSource, Role};

#[derive(Deserialize)]
struct Conv {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    create_time: Option<f64>,
    #[serde(default)]
    update_time: Option<f64>,
    mapping: HashMap<String, Node>,
    #[serde(default)]
    current_node: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    default_model_slug: Option<String>,
}

#[derive(Deserialize)]
struct Node {
    #[serde(default)]
    message: Option<Msg>,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    children: Vec<String>,
}

#[derive(Deserialize)]
struct Msg {
    author: Author,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    create_time: Option<f64>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct Author {
    role: String,
}

/// One conversation of `conversations.json`.
pub(super) fn prepare(item: Value, ctx: &Context<'_>) -> Result<Prepared, ItemError> {
    let raw_title = item.get("title").and_then(Value::as_str).map(str::to_owned);
    let conv: Conv = serde_json::from_value(item)
        .map_err(|e| ItemError::invalid(format!("not a ChatGPT conversation: {e}"), raw_title.as_deref()))?;
    let title = conv.title.as_deref();
    let source_created = conv.create_time.and_then(from_unix_seconds);
    let created = source_created.unwrap_or(ctx.now);
    // Without an id of its own, the conversation is known by its title, time and first node.
    let source_id = conv
        .conversation_id
        .clone()
        .or_else(|| conv.id.clone())
        .unwrap_or_else(|| {
            format!(
                "{}@{:?}#{}",
                title.unwrap_or_default(),
                source_created.map(|t| t.timestamp_millis()),
                conv.mapping.keys().min().map_or("", String::as_str)
            )
        });
    let key = format!("chatgpt:{source_id}");
    let updated = conv.update_time.and_then(from_unix_seconds);
    let conversation = new_conversation(
        ctx,
        &key,
        title,
        conv.default_model_slug.as_deref(),
        source_created,
        updated,
    )?;

    // Roots: nodes without a parent in the mapping, in a stable order.
    let mut roots: Vec<&String> = conv
        .mapping
        .iter()
        .filter(|(_, n)| n.parent.as_ref().is_none_or(|p| !conv.mapping.contains_key(p)))
        .map(|(id, _)| id)
        .collect();
    roots.sort();
    if roots.is_empty() && !conv.mapping.is_empty() {
        return Err(ItemError::invalid("the mapping has no root node", title));
    }
    // Depth first, children in their listed order (ChatGPT lists them oldest first): a parent
    // always before its replies. Each stack entry carries the draft its node hangs from.
    let mut drafts: Vec<Draft> = Vec::new();
    let mut draft_of: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack: Vec<(&str, Option<usize>)> = roots.iter().rev().map(|r| (r.as_str(), None)).collect();
    while let Some((node_id, hangs_from)) = stack.pop() {
        if !seen.insert(node_id) {
            continue;
        }
        let Some(node) = conv.mapping.get(node_id) else {
            continue;
        };
        let mut below = hangs_from;
        if let Some(msg) = &node.message {
            let text = content_text(msg.content.as_ref());
            let role = role_of(&msg.author.role);
            let hidden = role == Role::System && text.trim().is_empty();
            if !hidden {
                let at = msg
                    .create_time
                    .and_then(from_unix_seconds)
                    .or_else(|| hangs_from.and_then(|p| drafts.get(p)).map(|d| d.created_at))
                    .unwrap_or(created);
                let model = msg
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get("model_slug"))
                    .and_then(Value::as_str)
                    .filter(|_| role == Role::Assistant)
                    .map(str::to_owned);
                let content = if role_is_known(&msg.author.role) {
                    text
                } else {
                    format!("[{}] {text}", msg.author.role)
                };
                draft_of.insert(node_id, drafts.len());
                below = Some(drafts.len());
                drafts.push(Draft {
                    source_id: node_id.to_owned(),
                    parent: hangs_from,
                    role,
                    content,
                    model,
                    created_at: at,
                });
            }
        }
        for child in node.children.iter().rev() {
            stack.push((child.as_str(), below));
        }
    }
    // The leaf shown: the current node, or its nearest ancestor that became a message.
    let mut leaf = None;
    let mut cursor = conv.current_node.as_deref();
    let mut steps = 0usize;
    while let Some(id) = cursor {
        if let Some(&d) = draft_of.get(id) {
            leaf = Some(d);
            break;
        }
        steps += 1;
        if steps > conv.mapping.len() {
            break;
        }
        cursor = conv.mapping.get(id).and_then(|n| n.parent.as_deref());
    }
    Ok(assemble(ImportSource::Chatgpt, &key, conversation, drafts, leaf))
}

fn role_is_known(role: &str) -> bool {
    matches!(role, "user" | "assistant" | "system" | "tool")
}

/// ChatGPT's author roles; anything else is shown as a tool's output (with its role named).
fn role_of(role: &str) -> Role {
    match role {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        _ => Role::Tool,
    }
}

/// A message's text, whatever its content type.
fn content_text(content: Option<&Value>) -> String {
    let Some(content) = content else {
        return String::new();
    };
    let kind = content.get("content_type").and_then(Value::as_str).unwrap_or("text");
    let field = |name: &str| content.get(name).and_then(Value::as_str).map(str::to_owned);
    let joined = |names: &[&str]| {
        names
            .iter()
            .filter_map(|n| field(n))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let parts = || {
        content.get("parts").and_then(Value::as_array).map(|parts| {
            parts
                .iter()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => match o.get("content_type").and_then(Value::as_str) {
                        Some("image_asset_pointer") => Some("[image]".to_owned()),
                        Some("audio_transcription") => o.get("text").and_then(Value::as_str).map(str::to_owned),
                        Some(other) => Some(
                            o.get("text")
                                .and_then(Value::as_str)
                                .map_or_else(|| format!("[{other}]"), str::to_owned),
                        ),
                        None => o.get("text").and_then(Value::as_str).map(str::to_owned),
                    },
                    _ => None,
                })
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        })
    };
    match kind {
        "text" | "multimodal_text" => parts().unwrap_or_default(),
        "code" => {
            let language = field("language").filter(|l| l != "unknown").unwrap_or_default();
            format!("```{language}\n{}\n```", field("text").unwrap_or_default())
        }
        "execution_output" => field("text").unwrap_or_default(),
        "tether_quote" => joined(&["title", "text"]),
        "tether_browsing_display" => field("result").unwrap_or_default(),
        "thoughts" => content
            .get("thoughts")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| t.get("content").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n\n")
            })
            .unwrap_or_default(),
        "reasoning_recap" => field("content").unwrap_or_default(),
        "user_editable_context" => joined(&["user_profile", "user_instructions"]),
        other => field("text")
            .or_else(|| parts().filter(|p| !p.is_empty()))
            .or_else(|| field("result"))
            .unwrap_or_else(|| format!("[unsupported content: {other}]")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn content_types_become_text() {
        let text = json!({"content_type": "text", "parts": ["Hello", "world"]});
        assert_eq!(content_text(Some(&text)), "Hello\nworld");
        let image = json!({"content_type": "multimodal_text", "parts": [{"content_type": "image_asset_pointer"}, "What is this?"]});
        assert_eq!(content_text(Some(&image)), "[image]\nWhat is this?");
        let code = json!({"content_type": "code", "language": "python", "text": "print(1)"});
        assert_eq!(content_text(Some(&code)), "```python\nprint(1)\n```");
        let odd = json!({"content_type": "hologram"});
        assert_eq!(content_text(Some(&odd)), "[unsupported content: hologram]");
        let odd_text = json!({"content_type": "hologram", "text": "kept"});
        assert_eq!(content_text(Some(&odd_text)), "kept");
    }
}

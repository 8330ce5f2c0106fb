//! Claude's `conversations.json`: an array of `{uuid, name, created_at, updated_at,
//! chat_messages: [{uuid, sender: human|assistant, text, content[], created_at, ...}]}`. Messages
//! follow one another in order; when a message names its parent (`parent_message_uuid`, in newer
//! exports) and that parent came before it, the branch is kept, and `current_leaf_message_uuid`
//! names the leaf shown.
//!
//! A message's text is its `content` blocks in order: `text` as is, `tool_use` as a
//! `> Tool <name>(<input>)` line, `tool_result` as its text, `thinking` left out (the model's
//! reasoning, not the answer); another block type keeps its `text` or becomes `[<type>]`.
//! Without content blocks the message's `text` is used. Attachments and files are named as
//! `📎 <file name>` lines (their bytes are not in the export).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::{assemble, from_rfc3339, new_conversation, Context, Draft, ItemError, Prepared};
use crate::domain::{ImportSource, Role};

#[derive(Deserialize)]
struct Conv {
    uuid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    chat_messages: Vec<Msg>,
    #[serde(default)]
    current_leaf_message_uuid: Option<String>,
}

#[derive(Deserialize)]
struct Msg {
    #[serde(default)]
    uuid: Option<String>,
    sender: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    parent_message_uuid: Option<String>,
    #[serde(default)]
    attachments: Vec<Value>,
    #[serde(default)]
    files: Vec<Value>,
}

/// One conversation of Claude's `conversations.json`.
pub(super) fn prepare(item: Value, ctx: &Context<'_>) -> Result<Prepared, ItemError> {
    let raw_title = item.get("name").and_then(Value::as_str).map(str::to_owned);
    let conv: Conv = serde_json::from_value(item)
        .map_err(|e| ItemError::invalid(format!("not a Claude conversation: {e}"), raw_title.as_deref()))?;
    let title = conv.name.as_deref().filter(|n| !n.trim().is_empty());
    let time = |raw: &Option<String>, field: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, ItemError> {
        raw.as_deref()
            .map(|r| {
                from_rfc3339(r).ok_or_else(|| ItemError::invalid(format!("{field} is not a timestamp: {r}"), title))
            })
            .transpose()
    };
    let source_created = time(&conv.created_at, "created_at")?;
    let created = source_created.unwrap_or(ctx.now);
    let updated = time(&conv.updated_at, "updated_at")?;
    let key = format!("claude:{}", conv.uuid);
    let conversation = new_conversation(ctx, &key, title, None, source_created, updated)?;
    let mut drafts: Vec<Draft> = Vec::with_capacity(conv.chat_messages.len());
    let mut by_uuid: HashMap<String, usize> = HashMap::new();
    for (i, m) in conv.chat_messages.iter().enumerate() {
        let role = match m.sender.as_str() {
            "human" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ItemError::invalid(
                    format!("chat_messages[{i}].sender is {other:?}: expected human or assistant"),
                    title,
                ))
            }
        };
        let at = time(&m.created_at, &format!("chat_messages[{i}].created_at"))?
            .or_else(|| drafts.last().map(|d| d.created_at))
            .unwrap_or(created);
        let parent = match m.parent_message_uuid.as_deref() {
            Some(p) => by_uuid.get(p).copied(),
            None => drafts.len().checked_sub(1),
        };
        let source_id = m.uuid.clone().unwrap_or_else(|| format!("#{i}"));
        by_uuid.insert(source_id.clone(), drafts.len());
        drafts.push(Draft {
            source_id,
            parent,
            role,
            content: message_text(m),
            model: None,
            created_at: at,
        });
    }
    let leaf = conv
        .current_leaf_message_uuid
        .as_deref()
        .and_then(|u| by_uuid.get(u).copied())
        .or_else(|| drafts.len().checked_sub(1));
    Ok(assemble(ImportSource::Claude, &key, conversation, drafts, leaf))
}

/// A message's text: its content blocks, or its `text`; then its attachments' names.
fn message_text(m: &Msg) -> String {
    let mut blocks: Vec<String> = Vec::new();
    for block in &m.content {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("text");
        let text = block.get("text").and_then(Value::as_str).map(str::to_owned);
        let shown = match kind {
            "text" => text,
            "thinking" => None,
            "tool_use" => Some(format!(
                "> Tool {}({})",
                block.get("name").and_then(Value::as_str).unwrap_or("tool"),
                block.get("input").map(Value::to_string).unwrap_or_default()
            )),
            "tool_result" => Some(match block.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Some(other) => other.to_string(),
                None => String::new(),
            }),
            other => Some(text.unwrap_or_else(|| format!("[{other}]"))),
        };
        if let Some(s) = shown.filter(|s| !s.is_empty()) {
            blocks.push(s);
        }
    }
    if blocks.is_empty() {
        if let Some(text) = m.text.as_deref().filter(|t| !t.is_empty()) {
            blocks.push(text.to_owned());
        }
    }
    for file in m.attachments.iter().chain(&m.files) {
        if let Some(name) = file.get("file_name").and_then(Value::as_str) {
            blocks.push(format!("📎 {name}"));
        }
    }
    blocks.join("\n\n")
}

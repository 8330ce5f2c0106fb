//! Athena's own JSON (`athena.conversation`, version 1, `docs/export.md`): the document
//! [`crate::api::export::ConversationExport`] writes, read back. Ids are kept (conversation and
//! messages), so importing an export into the account it came from finds every conversation
//! already there; into another account it recreates them as they were. The project is not kept
//! (it is the exporting account's); the model is kept when this deployment has it.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use super::{title_of, Context, ItemError, Prepared};
use crate::domain::{
    ts, ClientMessageId, Conversation, ConversationId, FinishReason, ImportSource, Message, MessageId, MessagePart,
    Role, Solution, Timestamp, Usage,
};

/// The `format` field of a JSON export of one conversation (`docs/export.md`).
pub const FORMAT_NAME: &str = "athena.conversation";
/// The version of the JSON export's schema; a change that an importer of this version could not
/// read gets a new one.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    conversation: Meta,
    messages: Vec<Msg>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    id: String,
    title: String,
    model: String,
    #[serde(default)]
    solution_type: Option<Solution>,
    #[serde(default)]
    is_pinned: bool,
    #[serde(default)]
    is_shared: bool,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
    #[serde(default)]
    active_leaf_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Msg {
    id: String,
    #[serde(default)]
    parent_id: Option<String>,
    role: Role,
    content: String,
    #[serde(default)]
    parts: Vec<MessagePart>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    finish_reason: Option<FinishReason>,
    #[serde(default)]
    error: Option<String>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(default)]
    client_id: Option<String>,
}

/// One `athena.conversation` document.
pub(super) fn prepare(item: Value, ctx: &Context<'_>) -> Result<Prepared, ItemError> {
    let raw_title = item
        .get("conversation")
        .and_then(|c| c.get("title"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let title = raw_title.as_deref();
    let format = item.get("format").and_then(Value::as_str);
    if format != Some(FORMAT_NAME) {
        return Err(ItemError {
            code: "UNSUPPORTED",
            message: format!("format is {format:?}: expected {FORMAT_NAME:?}"),
            title: raw_title,
        });
    }
    let version = item.get("version").and_then(Value::as_u64);
    if version != Some(u64::from(FORMAT_VERSION)) {
        return Err(ItemError {
            code: "UNSUPPORTED",
            message: format!("version {version:?} of {FORMAT_NAME}: this importer reads version {FORMAT_VERSION}"),
            title: raw_title,
        });
    }
    let doc: Doc = serde_path_to_error::deserialize(item)
        .map_err(|e| ItemError::invalid(format!("not an Athena conversation: {e}"), title))?;
    let bad = |what: String| ItemError::invalid(what, title);
    let meta = doc.conversation;
    let id = ConversationId::parse(&meta.id).map_err(|e| bad(format!("conversation.id: {e}")))?;
    let mut c = Conversation::new(
        id.clone(),
        ctx.owner.clone(),
        title_of(Some(&meta.title)),
        ctx.model(Some(&meta.model)),
        meta.solution_type,
        meta.created_at,
    );
    c.updated_at = meta.updated_at.max(meta.created_at);
    c.is_pinned = meta.is_pinned;
    c.is_shared = meta.is_shared;
    c.imported_from = Some(ImportSource::Athena);
    // Every version of an edited message keeps the client's id; the store keeps one message per
    // client id (the newest version answers to it), so the older versions lose theirs.
    let mut newest_of_client: HashSet<String> = HashSet::new();
    let mut keeps_client = vec![false; doc.messages.len()];
    for (i, m) in doc.messages.iter().enumerate().rev() {
        if let Some(client) = &m.client_id {
            keeps_client[i] = newest_of_client.insert(client.clone());
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut messages = Vec::with_capacity(doc.messages.len());
    let mut previous: Option<String> = None;
    for (i, m) in doc.messages.into_iter().enumerate() {
        let mid = MessageId::parse(&m.id).map_err(|e| bad(format!("messages[{i}].id: {e}")))?;
        if previous.as_deref().is_some_and(|p| p >= m.id.as_str()) {
            return Err(bad(format!("messages[{i}]: messages must be in id order")));
        }
        let parent = match m.parent_id {
            Some(p) if seen.contains(&p) => {
                Some(MessageId::parse(&p).map_err(|e| bad(format!("messages[{i}].parentId: {e}")))?)
            }
            Some(p) => return Err(bad(format!("messages[{i}].parentId {p} is not an earlier message"))),
            None => None,
        };
        let client_id = match m.client_id {
            Some(raw) if keeps_client[i] => {
                Some(ClientMessageId::parse(&raw).map_err(|e| bad(format!("messages[{i}].clientId: {e}")))?)
            }
            _ => None,
        };
        seen.insert(m.id.clone());
        previous = Some(m.id);
        messages.push(Message {
            id: mid,
            conversation_id: id.clone(),
            client_id,
            parent_id: parent,
            role: m.role,
            content: m.content,
            parts: m.parts,
            model: m.model,
            usage: m.usage,
            latency_ms: m.latency_ms,
            finish_reason: m.finish_reason,
            error: m.error,
            author: None,
            created_at: m.created_at,
        });
    }
    c.active_leaf = match meta.active_leaf_id {
        Some(leaf) if seen.contains(&leaf) => {
            Some(MessageId::parse(&leaf).map_err(|e| bad(format!("conversation.activeLeafId: {e}")))?)
        }
        Some(leaf) => {
            return Err(bad(format!(
                "conversation.activeLeafId {leaf} is not one of its messages"
            )))
        }
        None => None,
    };
    Ok(Prepared {
        conversation: c,
        messages,
    })
}

//! Response shapes, exactly the seed's JSON (camelCase, Prisma's timestamp format), plus the
//! fields Athena adds (`solutionType`, `lastMessage`, `messageCount`, usage on messages).
//! The owner is never part of a response.

use serde::Serialize;

use crate::domain::{
    ts, Conversation, FinishReason, FolderId, ImportSource, Message, MessageId, MessagePart, ProjectId, Role, Solution,
    Timestamp, Tree, Usage,
};

/// A conversation as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView<'a> {
    id: &'a str,
    title: &'a str,
    is_pinned: bool,
    is_shared: bool,
    model: &'a str,
    solution_type: Option<Solution>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
    last_message: Option<&'a str>,
    message_count: u64,
    project_id: Option<&'a str>,
    folder_id: Option<&'a str>,
    tags: &'a [String],
    is_archived: bool,
    #[serde(skip_serializing_if = "Option::is_none", with = "ts::option")]
    trashed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", with = "ts::option")]
    purge_at: Option<Timestamp>,
    imported_from: Option<ImportSource>,
}

impl<'a> From<&'a Conversation> for ConversationView<'a> {
    fn from(c: &'a Conversation) -> Self {
        Self {
            id: c.id.as_str(),
            title: &c.title,
            is_pinned: c.is_pinned,
            // A live link's expiry passes without a write: decided at read time.
            is_shared: c.shared_at(crate::domain::now()),
            model: &c.model,
            solution_type: c.solution_type,
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_message: c.last_message.as_deref(),
            message_count: c.message_count,
            project_id: c.project_id.as_ref().map(ProjectId::as_str),
            folder_id: c.folder_id.as_ref().map(FolderId::as_str),
            tags: &c.tags,
            is_archived: c.archived_at.is_some(),
            trashed_at: c.trashed_at,
            purge_at: c.purge_at(),
            imported_from: c.imported_from,
        }
    }
}

impl ConversationView<'_> {
    /// The view a grantee (viewer or collaborator) gets: the owner's own organising is left out
    /// (pin, project, folder, tags, archive, import origin read as for a conversation that has
    /// none), so sharing a conversation shares its content, not how its owner files it.
    pub fn for_grantee(mut self) -> Self {
        self.is_pinned = false;
        self.project_id = None;
        self.folder_id = None;
        self.tags = &[];
        self.is_archived = false;
        self.imported_from = None;
        self
    }
}

/// What a grantee's export holds: the conversation without its owner's organising and the
/// messages without their usage, as [`ConversationView::for_grantee`] and
/// [`ConversationWithMessages::for_grantee`] show them.
pub fn redact_for_grantee(conversation: &mut Conversation, messages: &mut [Message]) {
    conversation.is_pinned = false;
    conversation.project_id = None;
    conversation.folder_id = None;
    conversation.tags.clear();
    conversation.archived_at = None;
    conversation.imported_from = None;
    for m in messages {
        m.usage = None;
    }
}

/// A conversation with its messages (`GET /api/conversations/{id}`).
#[derive(Serialize)]
pub struct ConversationWithMessages<'a> {
    #[serde(flatten)]
    conversation: ConversationView<'a>,
    messages: Vec<MessageView<'a>>,
}

impl<'a> ConversationWithMessages<'a> {
    /// The conversation with its active branch: `all` is every message (id order); the view
    /// holds the path to the active leaf, each message with its parent and its versions.
    pub fn new(c: &'a Conversation, all: &'a [Message]) -> Self {
        Self {
            conversation: c.into(),
            messages: active_branch(c, all),
        }
    }

    /// The view a grantee gets: [`ConversationView::for_grantee`], and no message shows its
    /// usage (the tokens and cost the owner, or another collaborator, paid for).
    pub fn for_grantee(mut self) -> Self {
        self.conversation = self.conversation.for_grantee();
        for m in &mut self.messages {
            m.usage = None;
        }
        self
    }

    /// Shows the caller's reactions on its assistant messages ([`show_reactions`]).
    pub fn show_reactions(&mut self, reactions: &'a [crate::store::Reaction]) {
        show_reactions(&mut self.messages, reactions);
    }

    /// Adds the reply its newest turn is still streaming, when the active branch ends with the
    /// message it answers (another branch may be shown meanwhile).
    pub fn push_streaming(&mut self, reply: &'a Message) {
        let answers = reply.parent_id.as_ref().map(MessageId::as_str);
        if answers.is_none() || self.messages.last().map(|m| m.id) != answers {
            return;
        }
        let mut view = MessageView::from(reply);
        view.siblings = Some(vec![reply.id.as_str()]);
        view.status = Some("streaming");
        self.messages.push(view);
    }
}

/// The messages of `c`'s active branch, in order, each with its parent and its versions
/// (`siblings`: the ids of every version at its place, oldest first, itself included).
pub fn active_branch<'a>(c: &Conversation, all: &'a [Message]) -> Vec<MessageView<'a>> {
    let tree = Tree::new(all);
    tree.active_path(c.active_leaf.as_ref())
        .into_iter()
        .map(|i| {
            let mut view = MessageView::from(&all[i]);
            view.parent_id = tree.parent(i).map(|p| all[p].id.as_str());
            view.siblings = Some(tree.siblings(i).into_iter().map(|s| all[s].id.as_str()).collect());
            view
        })
        .collect()
}

/// A message as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView<'a> {
    id: &'a str,
    role: Role,
    content: &'a str,
    conversation_id: &'a str,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    /// The message it answers or follows (`null` for the first); on branch views, always set.
    parent_id: Option<&'a str>,
    /// On branch views: the ids of every version at this place, oldest first, itself included.
    #[serde(skip_serializing_if = "Option::is_none")]
    siblings: Option<Vec<&'a str>>,
    /// The reply's text and tool parts in the AI SDK's UIMessage part shapes (only on messages
    /// that called tools).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<FinishReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// The collaborator who wrote it (absent on the owner's messages and on replies).
    #[serde(skip_serializing_if = "Option::is_none")]
    author_id: Option<&'a str>,
    /// `"streaming"` on a reply still being written (not stored yet); absent on stored messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    /// On assistant messages of a listing or a conversation read: the caller's own reaction
    /// (`null` when they gave none); absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    reaction: Option<Option<ReactionView<'a>>>,
}

/// A reaction as a message shows it: the caller's own.
#[derive(Serialize)]
pub struct ReactionView<'a> {
    value: crate::store::Thumb,
    comment: Option<&'a str>,
}

impl<'a> From<&'a crate::store::Reaction> for ReactionView<'a> {
    fn from(r: &'a crate::store::Reaction) -> Self {
        Self {
            value: r.value,
            comment: r.comment.as_deref(),
        }
    }
}

impl MessageView<'_> {
    /// The message's id.
    pub fn id(&self) -> &str {
        self.id
    }

    /// The view a grantee gets: without the usage (the tokens and cost someone else paid for).
    pub fn for_grantee(mut self) -> Self {
        self.usage = None;
        self
    }
}

/// Shows on each assistant message of `views` the caller's reaction among `reactions` (the
/// caller's reactions in the conversation, read in one Query), `null` when none.
pub fn show_reactions<'a>(views: &mut [MessageView<'a>], reactions: &'a [crate::store::Reaction]) {
    let by_message: std::collections::HashMap<&str, &'a crate::store::Reaction> =
        reactions.iter().map(|r| (r.message_id.as_str(), r)).collect();
    for view in views
        .iter_mut()
        .filter(|v| v.role == Role::Assistant && v.status.is_none())
    {
        view.reaction = Some(by_message.get(view.id).map(|r| ReactionView::from(*r)));
    }
}

impl<'a> From<&'a Message> for MessageView<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            id: m.id.as_str(),
            role: m.role,
            content: &m.content,
            conversation_id: m.conversation_id.as_str(),
            created_at: m.created_at,
            client_id: m.client_id.as_ref().map(|c| c.as_str()),
            parent_id: m.parent_id.as_ref().map(|p| p.as_str()),
            siblings: None,
            parts: ui_parts(m),
            model: m.model.as_deref(),
            usage: m.usage,
            latency_ms: m.latency_ms,
            finish_reason: m.finish_reason,
            error: m.error.as_deref(),
            author_id: m.author.as_ref().map(|a| a.as_str()),
            status: None,
            reaction: None,
        }
    }
}

/// A message's parts as the AI SDK's UIMessage parts: `{type: "text", text}`, a user's files as
/// `{type: "file", mediaType, url: "/api/files/{id}", filename}` (before the text, as the SDK
/// sends them), and
/// `{type: "tool-<name>", toolCallId, state, input, output | errorText, approval?}`, with `state`
/// `input-available`, `approval-requested`, `approval-responded`, `output-available`,
/// `output-error` or `output-denied`. A message without tool parts has none.
pub fn ui_parts(m: &Message) -> Vec<serde_json::Value> {
    use serde_json::json;
    if m.parts.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // The whole text first, except on a message of attached files: its files come first and its
    // text last, as the AI SDK's `sendMessage({text, files})` builds the message.
    let text_first = !m.parts.iter().any(|p| matches!(p, MessagePart::File { .. }));
    let whole_text = !m.content.is_empty() && !m.parts.iter().any(|p| matches!(p, MessagePart::Text { .. }));
    if whole_text && text_first {
        out.push(json!({"type": "text", "text": m.content}));
    }
    for part in &m.parts {
        match part {
            MessagePart::Text { text } => out.push(json!({"type": "text", "text": text})),
            MessagePart::ToolCall {
                tool_call_id,
                tool_name,
                input,
                approval,
            } => {
                let result = m.tool_result(tool_call_id);
                let mut view = json!({
                    "type": format!("tool-{tool_name}"),
                    "toolCallId": tool_call_id,
                    "input": input,
                });
                let state = match (approval, result) {
                    (Some(a), _) if a.approved == Some(false) => "output-denied",
                    (_, Some((output, true))) => {
                        view["errorText"] = json!(output.as_str().map_or_else(|| output.to_string(), str::to_owned));
                        "output-error"
                    }
                    (_, Some((output, false))) => {
                        view["output"] = output.clone();
                        "output-available"
                    }
                    (Some(a), None) if a.approved.is_none() => "approval-requested",
                    (Some(_), None) => "approval-responded",
                    (None, None) => "input-available",
                };
                view["state"] = json!(state);
                if let Some(a) = approval {
                    view["approval"] = serde_json::to_value(a).unwrap_or_default();
                }
                out.push(view);
            }
            MessagePart::File {
                file_id,
                media_type,
                filename,
                ..
            } => out.push(json!({
                "type": "file",
                "mediaType": media_type,
                "url": format!("/api/files/{file_id}"),
                "filename": filename,
            })),
            MessagePart::ToolResult { .. } => {}
        }
    }
    if whole_text && !text_first {
        out.push(json!({"type": "text", "text": m.content}));
    }
    out
}

/// `{"success": true}`
#[derive(Serialize)]
pub struct Success {
    /// Always true.
    pub success: bool,
}

/// `{"success": true, "deletedCount": n}`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cleared {
    /// Always true.
    pub success: bool,
    /// How many messages were deleted.
    pub deleted_count: u64,
}

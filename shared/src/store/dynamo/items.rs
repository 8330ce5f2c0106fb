//! The items of the conversations table and their conversions to and from the domain.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::schema;
use super::{from_item, put_if_absent, to_item, Item};
use crate::domain::{
    ts, ClientMessageId, Conversation, ConversationId, FinishReason, FolderId, ImportSource, Message, MessageId,
    MessagePart, ProjectId, Role, Solution, SolutionFilter, Usage, UserId,
};
use crate::error::StoreError;
use crate::store::{check_message_size, pin_base, rules, MAX_CONTENT_BYTES};

/// Bytes of content per item. DynamoDB's item limit is 400 KB including attribute names and the
/// other attributes; 300 KB of content leaves ample room for them.
pub const CHUNK_BYTES: usize = 300 * 1024;

/// More than the number of continuation chunks a message can have ([`MAX_CONTENT_BYTES`] cut
/// into pieces of at least `CHUNK_BYTES - 3`, a piece's cut moving back at most three bytes to
/// a character boundary): a replacing write deletes every chunk index from its own count up to
/// this, so no chunk of a longer old version survives.
pub(super) const MAX_CHUNKS: usize = MAX_CONTENT_BYTES.div_ceil(CHUNK_BYTES - 3);

/// The conversation item (`sk = META`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConversationItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) id: String,
    pub(super) owner_id: String,
    pub(super) title: String,
    pub(super) is_pinned: bool,
    pub(super) is_shared: bool,
    pub(super) model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) solution_type: Option<Solution>,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_message: Option<String>,
    #[serde(default)]
    pub(super) message_count: u64,
    pub(super) pin_base: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gsi1pk: Option<String>,
    pub(super) gsi1sk: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gsi2pk: Option<String>,
    pub(super) gsi2sk: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) deleting: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) active_leaf: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) folder_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) archived_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) trashed_at: Option<String>,
    /// When a conversation in the trash is purged (epoch seconds); absent otherwise. Not the
    /// table's TTL attribute: the purge deletes the whole conversation at once (housekeeping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) purge_at: Option<i64>,
    /// The `byDay` index key: the day it was last touched, or (in the trash) the day it is purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) day_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gsi3pk: Option<String>,
    #[serde(default)]
    pub(super) gsi3sk: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gsi4pk: Option<String>,
    #[serde(default)]
    pub(super) gsi4sk: i64,
    /// Bumped by every change of the organising attributes (folder, project, tags, archive,
    /// trash): the optimistic condition of the next one.
    #[serde(default)]
    pub(super) rev: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) imported_from: Option<ImportSource>,
    /// Set while a large import writes its messages in batches (the conversation is hidden
    /// meanwhile, like one being deleted): `Conversations::import_conversation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) importing: Option<bool>,
    /// Until when a share link answers ([`Conversation::shared_until`]), written by the links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) shared_until: Option<String>,
    /// Bumped by every change of the conversation's share links, with `sharedUntil`: the
    /// optimistic condition of the next one (`dynamo/links.rs`, `commit_links`).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(super) links_rev: u64,
    /// Bumped by every share with a user or address: the optimistic condition of the next one
    /// (`dynamo/sharing.rs`, `put_grant`), so concurrent shares cannot pass the cap together.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(super) grants_rev: u64,
}

/// The index keys of a conversation on its shelf (`None`: not in that sparse index).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct IndexKeys {
    pub(super) gsi1pk: String,
    pub(super) gsi2pk: String,
    pub(super) gsi3pk: Option<String>,
    pub(super) gsi4pk: Option<String>,
    pub(super) day_key: String,
    pub(super) rank: i64,
}

impl IndexKeys {
    pub(super) fn of(c: &Conversation) -> Self {
        let (owner, shelf) = (c.owner.as_str(), c.shelf());
        Self {
            gsi1pk: schema::owner_shelf_pk(owner, shelf),
            gsi2pk: schema::owner_solution_shelf_pk(owner, SolutionFilter::of(c.solution_type).bucket(), shelf),
            gsi3pk: c
                .folder_id
                .as_ref()
                .map(|f| schema::folder_pk(owner, f.as_str(), shelf)),
            gsi4pk: c
                .project_id
                .as_ref()
                .map(|p| schema::project_pk(owner, p.as_str(), shelf)),
            day_key: match c.purge_at() {
                Some(purge) => schema::purge_day_key(&purge, c.id.as_str()),
                None => schema::touched_day_key(&c.updated_at, c.id.as_str()),
            },
            rank: rules::shelf_rank(c),
        }
    }
}

impl ConversationItem {
    pub(super) fn from_domain(c: &Conversation) -> Self {
        let keys = IndexKeys::of(c);
        let rank = keys.rank;
        Self {
            pk: schema::conversation_pk(c.owner.as_str(), c.id.as_str()),
            sk: schema::META.to_owned(),
            id: c.id.to_string(),
            owner_id: c.owner.to_string(),
            title: c.title.clone(),
            is_pinned: c.is_pinned,
            is_shared: c.is_shared,
            model: c.model.clone(),
            solution_type: c.solution_type,
            created_at: ts::format(&c.created_at),
            updated_at: ts::format(&c.updated_at),
            last_message: c.last_message.clone(),
            message_count: c.message_count,
            pin_base: pin_base(c.is_pinned, &c.id),
            gsi1pk: Some(keys.gsi1pk),
            gsi1sk: rank,
            gsi2pk: Some(keys.gsi2pk),
            gsi2sk: rank,
            deleting: None,
            active_leaf: c.active_leaf.as_ref().map(ToString::to_string),
            project_id: c.project_id.as_ref().map(ToString::to_string),
            folder_id: c.folder_id.as_ref().map(ToString::to_string),
            tags: c.tags.clone(),
            archived_at: c.archived_at.as_ref().map(ts::format),
            trashed_at: c.trashed_at.as_ref().map(ts::format),
            purge_at: c.purge_at().map(|t| t.timestamp()),
            day_key: Some(keys.day_key.clone()),
            gsi3pk: keys.gsi3pk,
            gsi3sk: rank,
            gsi4pk: keys.gsi4pk,
            gsi4sk: rank,
            rev: 0,
            imported_from: c.imported_from,
            importing: None,
            shared_until: c.shared_until.as_ref().map(ts::format),
            links_rev: 0,
            grants_rev: 0,
        }
    }

    /// Whether `owner` may see it: theirs, no delete under way, not in the trash.
    pub(super) fn visible_to(&self, owner: &UserId) -> bool {
        self.owned_by(owner) && self.trashed_at.is_none()
    }

    /// Whether it is `owner`'s and no delete is under way (on any shelf, the trash included).
    pub(super) fn owned_by(&self, owner: &UserId) -> bool {
        self.owner_id == owner.as_str() && !self.deleting.unwrap_or(false) && !self.importing.unwrap_or(false)
    }

    pub(super) fn into_domain(self) -> Result<Conversation, StoreError> {
        Ok(Conversation {
            id: ConversationId::parse(&self.id).map_err(|e| StoreError::internal("stored conversation id", e))?,
            owner: UserId::parse(&self.owner_id).map_err(|e| StoreError::internal("stored owner id", e))?,
            title: self.title,
            is_pinned: self.is_pinned,
            is_shared: self.is_shared,
            model: self.model,
            solution_type: self.solution_type,
            created_at: rules::parse_ts(&self.created_at)?,
            updated_at: rules::parse_ts(&self.updated_at)?,
            last_message: self.last_message,
            message_count: self.message_count,
            active_leaf: self
                .active_leaf
                .map(|id| MessageId::parse(&id))
                .transpose()
                .map_err(|e| StoreError::internal("stored active leaf", e))?,
            live: None,
            project_id: self
                .project_id
                .map(|id| ProjectId::parse(&id))
                .transpose()
                .map_err(|e| StoreError::internal("stored project id", e))?,
            folder_id: self
                .folder_id
                .map(|id| FolderId::parse(&id))
                .transpose()
                .map_err(|e| StoreError::internal("stored folder id", e))?,
            tags: self.tags,
            archived_at: self.archived_at.as_deref().map(rules::parse_ts).transpose()?,
            trashed_at: self.trashed_at.as_deref().map(rules::parse_ts).transpose()?,
            imported_from: self.imported_from,
            shared_until: self.shared_until.as_deref().map(rules::parse_ts).transpose()?,
        })
    }
}

/// A message item (`sk = MSG#<ulid>`); content beyond [`CHUNK_BYTES`] lives in chunk items.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MessageItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) id: String,
    pub(super) conversation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) parent_id: Option<String>,
    pub(super) role: Role,
    pub(super) content: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) chunks: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) parts: Vec<MessagePart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    /// A collaborator's user id on the messages they wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) author: Option<String>,
    pub(super) created_at: String,
    /// The ids of the approvals the message waits for, as a JSON array ([`awaiting_key`]);
    /// absent when it waits for none. Bookkeeping: the condition of a continuing write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) awaiting: Option<String>,
    /// The turn whose admission continued this reply ([`crate::store::TurnWrite::Continue`]):
    /// that turn's finish may store the continued reply over it. Bookkeeping, never read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) writer: Option<String>,
}

/// The `awaiting` attribute of a message waiting for the approvals `ids` (in order), `None` for
/// none: a JSON array, so that no id can be confused with two.
pub(super) fn awaiting_key<S: AsRef<str>>(ids: &[S]) -> Result<Option<String>, StoreError> {
    if ids.is_empty() {
        return Ok(None);
    }
    let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&ids)
        .map(Some)
        .map_err(|e| StoreError::internal("serializing awaited approvals", e))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// A continuation chunk of a message's content.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ChunkItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) content: String,
}

/// A client-id marker: makes a client's message id unique within its conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ClientIdItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) message_id: String,
}

/// Splits `text` into pieces of at most `max` bytes, on character boundaries.
pub(super) fn split_content(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// How a message's client-id marker is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Marker {
    /// Only if the client id is new in the conversation (idempotent submits).
    IfAbsent,
    /// Pointing at this message whatever it pointed at (a new version of an edited message).
    Overwrite,
    /// Only if the client id is new or already points at this message (a replaced message).
    IfAbsentOrSame,
}

/// The items storing one message of `owner`'s conversation: head, chunks, client-id marker. Each
/// is a conditional put, except a marker written with [`Marker::Overwrite`].
pub(super) fn message_items(
    table: &str,
    owner: &UserId,
    message: &Message,
    marker: Marker,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    check_message_size(message)?;
    let pk = schema::conversation_pk(owner.as_str(), message.conversation_id.as_str());
    let pieces = split_content(&message.content, CHUNK_BYTES);
    let head = head_item(&pk, message, &pieces, None)?;
    let mut items = vec![put_if_absent(table, to_item(&head)?)];
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        items.push(put_if_absent(table, to_item(&chunk_item(&pk, message, i, piece))?));
    }
    if let Some(client_id) = &message.client_id {
        items.push(marker_item(table, &pk, message, client_id, marker)?);
    }
    Ok(items)
}

/// The head item of `message` (its first piece of content), marked with `writer` when given.
fn head_item(pk: &str, message: &Message, pieces: &[&str], writer: Option<&str>) -> Result<MessageItem, StoreError> {
    Ok(MessageItem {
        pk: pk.to_owned(),
        sk: schema::message_sk(message.id.as_str()),
        id: message.id.to_string(),
        conversation_id: message.conversation_id.to_string(),
        client_id: message.client_id.as_ref().map(ToString::to_string),
        parent_id: message.parent_id.as_ref().map(ToString::to_string),
        role: message.role,
        content: pieces.first().copied().unwrap_or_default().to_owned(),
        chunks: (pieces.len().saturating_sub(1)) as u32,
        parts: message.parts.clone(),
        model: message.model.clone(),
        usage: message.usage,
        latency_ms: message.latency_ms,
        finish_reason: message.finish_reason,
        error: message.error.clone(),
        author: message.author.as_ref().map(ToString::to_string),
        created_at: ts::format(&message.created_at),
        awaiting: awaiting_key(&message.awaited_approvals())?,
        writer: writer.map(str::to_owned),
    })
}

/// The `i`th (1-based) continuation chunk of `message`.
fn chunk_item(pk: &str, message: &Message, i: usize, piece: &str) -> ChunkItem {
    ChunkItem {
        pk: pk.to_owned(),
        sk: schema::chunk_sk(message.id.as_str(), i),
        content: piece.to_owned(),
    }
}

/// The client-id marker of `message`, written as `marker` says.
fn marker_item(
    table: &str,
    pk: &str,
    message: &Message,
    client_id: &ClientMessageId,
    marker: Marker,
) -> Result<TransactWriteItem, StoreError> {
    let marker_item = ClientIdItem {
        pk: pk.to_owned(),
        sk: schema::client_id_sk(client_id.as_str()),
        message_id: message.id.to_string(),
    };
    let item = to_item(&marker_item)?;
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(item.clone()));
    let put = match marker {
        Marker::IfAbsent => return Ok(put_if_absent(table, item)),
        Marker::Overwrite => put,
        Marker::IfAbsentOrSame => put
            .condition_expression("attribute_not_exists(#pk) OR messageId = :id")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":id", AttributeValue::S(message.id.to_string())),
    };
    Ok(TransactWriteItem::builder()
        .put(put.build().map_err(|e| StoreError::internal("building a put", e))?)
        .build())
}

/// What a replacing write of a stored message ([`replace_items`]) requires of it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Replace<'a> {
    /// A continuing admission: the stored message waits for exactly `awaiting` (so it exists);
    /// the new version is marked as writable by the turn `writer`.
    Awaiting {
        /// The approval ids it must still await, in order (not empty).
        awaiting: &'a [String],
        /// The admitting turn's id.
        writer: &'a str,
    },
    /// A continued reply's finish: the stored message carries the mark of this turn id; the new
    /// version carries none.
    Writer(&'a str),
}

/// The items replacing the stored message `message.id` by `message`: the head first (a put
/// conditioned as `replace` says: when it fails the whole transaction is cancelled, so nothing
/// else needs a condition), then its chunks (unconditional puts), deletes of every chunk index
/// past the new version's up to [`MAX_CHUNKS`] (a longer old version leaves nothing behind), and
/// the client-id marker if any (put if absent or already pointing at this message).
pub(super) fn replace_items(
    table: &str,
    owner: &UserId,
    message: &Message,
    replace: Replace<'_>,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    check_message_size(message)?;
    let pk = schema::conversation_pk(owner.as_str(), message.conversation_id.as_str());
    let pieces = split_content(&message.content, CHUNK_BYTES);
    let writer = match replace {
        Replace::Awaiting { writer, .. } => Some(writer),
        Replace::Writer(_) => None,
    };
    let head = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(to_item(&head_item(&pk, message, &pieces, writer)?)?))
        .expression_attribute_names("#pk", schema::PK);
    let head = match replace {
        Replace::Awaiting { awaiting, .. } => {
            let expected = awaiting_key(awaiting)?.ok_or_else(|| {
                StoreError::Conflict(format!(
                    "message {} awaits no approval: nothing to continue",
                    message.id
                ))
            })?;
            head.condition_expression("attribute_exists(#pk) AND #awaiting = :expected")
                .expression_attribute_names("#awaiting", "awaiting")
                .expression_attribute_values(":expected", AttributeValue::S(expected))
        }
        Replace::Writer(turn) => head
            .condition_expression("attribute_exists(#pk) AND #writer = :writer")
            .expression_attribute_names("#writer", "writer")
            .expression_attribute_values(":writer", AttributeValue::S(turn.to_owned())),
    };
    let head = head
        .build()
        .map_err(|e| StoreError::internal("building a message put", e))?;
    let mut items = vec![TransactWriteItem::builder().put(head).build()];
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(table)
            .set_item(Some(to_item(&chunk_item(&pk, message, i, piece))?))
            .build()
            .map_err(|e| StoreError::internal("building a chunk put", e))?;
        items.push(TransactWriteItem::builder().put(put).build());
    }
    for i in pieces.len()..=MAX_CHUNKS {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(table)
            .set_key(Some(super::sdk_key(
                pk.clone(),
                schema::chunk_sk(message.id.as_str(), i),
            )))
            .build()
            .map_err(|e| StoreError::internal("building a chunk delete", e))?;
        items.push(TransactWriteItem::builder().delete(delete).build());
    }
    if let Some(client_id) = &message.client_id {
        items.push(marker_item(table, &pk, message, client_id, Marker::IfAbsentOrSame)?);
    }
    Ok(items)
}

/// Reassembles messages from a run of `MSG#` items (heads followed by their chunks).
pub(super) fn assemble_messages(items: Vec<Item>) -> Result<Vec<Message>, StoreError> {
    let mut out: Vec<(MessageItem, u32)> = Vec::new();
    for item in items {
        let sk = match item.get(schema::SK) {
            Some(AttributeValue::S(sk)) => sk.clone(),
            _ => return Err(StoreError::internal("assembling messages", "item without a sort key")),
        };
        if !sk.starts_with(schema::MSG_PREFIX) {
            continue;
        }
        if sk.contains("#C") {
            let chunk: ChunkItem = from_item(item)?;
            match out.last_mut() {
                Some((head, seen)) if chunk.sk.starts_with(&head.sk) => {
                    head.content.push_str(&chunk.content);
                    *seen += 1;
                }
                _ => return Err(StoreError::internal("assembling messages", "chunk without its message")),
            }
        } else {
            out.push((from_item(item)?, 0));
        }
    }
    out.into_iter()
        .map(|(head, seen)| {
            if seen != head.chunks {
                return Err(StoreError::internal(
                    "assembling messages",
                    "message with missing chunks",
                ));
            }
            head_into_domain(head)
        })
        .collect()
}

fn head_into_domain(head: MessageItem) -> Result<Message, StoreError> {
    Ok(Message {
        id: MessageId::parse(&head.id).map_err(|e| StoreError::internal("stored message id", e))?,
        conversation_id: ConversationId::parse(&head.conversation_id)
            .map_err(|e| StoreError::internal("stored conversation id", e))?,
        client_id: head
            .client_id
            .map(|c| ClientMessageId::parse(&c))
            .transpose()
            .map_err(|e| StoreError::internal("stored client id", e))?,
        parent_id: head
            .parent_id
            .map(|p| MessageId::parse(&p))
            .transpose()
            .map_err(|e| StoreError::internal("stored parent id", e))?,
        role: head.role,
        content: head.content,
        parts: head.parts,
        model: head.model,
        usage: head.usage,
        latency_ms: head.latency_ms,
        finish_reason: head.finish_reason,
        error: head.error,
        author: head
            .author
            .map(|a| UserId::parse(&a))
            .transpose()
            .map_err(|e| StoreError::internal("stored author", e))?,
        created_at: rules::parse_ts(&head.created_at)?,
    })
}

/// The conditional put creating a conversation (as [`rules::as_created`] with its first messages).
pub(super) fn conversation_item(
    table: &str,
    conversation: &Conversation,
    messages: &[Message],
) -> Result<TransactWriteItem, StoreError> {
    let meta = ConversationItem::from_domain(&rules::as_created(conversation, messages));
    Ok(put_if_absent(table, to_item(&meta)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_splits_on_character_boundaries_and_rejoins_exactly() {
        let text = "é🙂a".repeat(1000);
        let pieces = split_content(&text, 7);
        assert!(pieces.iter().all(|p| p.len() <= 7));
        assert_eq!(pieces.concat(), text);
        assert_eq!(split_content("", 7), vec![""]);
    }

    #[test]
    fn the_largest_message_has_fewer_chunks_than_a_replacing_write_deletes() {
        // Four-byte characters one byte off the chunk size: every cut moves back three bytes.
        let text = format!("a{}", "🙂".repeat((MAX_CONTENT_BYTES - 1) / 4));
        assert!(text.len() <= MAX_CONTENT_BYTES);
        let chunks = split_content(&text, CHUNK_BYTES).len() - 1;
        assert!(chunks < MAX_CHUNKS, "{chunks} chunks");
    }
}

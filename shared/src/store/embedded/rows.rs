//! Row mapping (rows to the domain) and the statements several capabilities share.

use rusqlite::{params, Connection, OptionalExtension};

use super::sql_err;
use crate::domain::{
    ts, ClientMessageId, Conversation, ConversationId, FolderId, ImportSource, Message, MessageId, ProjectId, Role,
    Solution, SolutionFilter, UserId,
};
use crate::error::StoreError;
use crate::store::{check_message_size, rules};

pub(super) const CONVERSATION_COLUMNS: &str =
    "id, owner, title, is_pinned, is_shared, model, solution_type, created_at, updated_at, last_message, message_count, rank, active_leaf, project_id, folder_id, tags, archived_at, trashed_at, imported_from, shared_until";

pub(super) fn row_to_conversation(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(Result<Conversation, StoreError>, i64)> {
    let id: String = row.get(0)?;
    let owner: String = row.get(1)?;
    let solution: Option<String> = row.get(6)?;
    let created: String = row.get(7)?;
    let updated: String = row.get(8)?;
    let count: i64 = row.get(10)?;
    let rank: i64 = row.get(11)?;
    let title: String = row.get(2)?;
    let pinned: bool = row.get(3)?;
    let shared: bool = row.get(4)?;
    let model: String = row.get(5)?;
    let last_message: Option<String> = row.get(9)?;
    let active_leaf: Option<String> = row.get(12)?;
    let project: Option<String> = row.get(13)?;
    let folder: Option<String> = row.get(14)?;
    let tags: Option<String> = row.get(15)?;
    let archived: Option<String> = row.get(16)?;
    let trashed: Option<String> = row.get(17)?;
    let imported: Option<String> = row.get(18)?;
    let shared_until: Option<String> = row.get(19)?;
    let build = || -> Result<Conversation, StoreError> {
        Ok(Conversation {
            id: ConversationId::parse(&id).map_err(|e| StoreError::internal("stored id", e))?,
            owner: UserId::parse(&owner).map_err(|e| StoreError::internal("stored owner", e))?,
            title,
            is_pinned: pinned,
            is_shared: shared,
            model,
            solution_type: solution
                .map(|s| s.parse::<Solution>())
                .transpose()
                .map_err(|e| StoreError::internal("stored solution", e))?,
            created_at: rules::parse_ts(&created)?,
            updated_at: rules::parse_ts(&updated)?,
            last_message,
            message_count: u64::try_from(count).unwrap_or(0),
            active_leaf: active_leaf
                .map(|l| MessageId::parse(&l))
                .transpose()
                .map_err(|e| StoreError::internal("stored active leaf", e))?,
            live: None,
            project_id: project
                .map(|p| ProjectId::parse(&p))
                .transpose()
                .map_err(|e| StoreError::internal("stored project id", e))?,
            folder_id: folder
                .map(|f| FolderId::parse(&f))
                .transpose()
                .map_err(|e| StoreError::internal("stored folder id", e))?,
            tags: match tags {
                None => Vec::new(),
                Some(json) => serde_json::from_str(&json).map_err(|e| StoreError::internal("stored tags", e))?,
            },
            archived_at: archived.as_deref().map(rules::parse_ts).transpose()?,
            trashed_at: trashed.as_deref().map(rules::parse_ts).transpose()?,
            imported_from: imported
                .map(|s| {
                    ImportSource::from_name(&s)
                        .ok_or_else(|| StoreError::internal("stored import source", format!("unknown source {s}")))
                })
                .transpose()?,
            shared_until: shared_until.as_deref().map(rules::parse_ts).transpose()?,
        })
    };
    Ok((build(), rank))
}

pub(super) const MESSAGE_COLUMNS: &str =
    "id, conversation_id, client_id, role, content, parts, model, usage, latency_ms, finish_reason, error, created_at, parent_id, author";

pub(super) fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Message, StoreError>> {
    let id: String = row.get(0)?;
    let conversation: String = row.get(1)?;
    let client_id: Option<String> = row.get(2)?;
    let role: String = row.get(3)?;
    let content: String = row.get(4)?;
    let parts: Option<String> = row.get(5)?;
    let model: Option<String> = row.get(6)?;
    let usage: Option<String> = row.get(7)?;
    let latency: Option<i64> = row.get(8)?;
    let finish: Option<String> = row.get(9)?;
    let error: Option<String> = row.get(10)?;
    let created: String = row.get(11)?;
    let parent: Option<String> = row.get(12)?;
    let author: Option<String> = row.get(13)?;
    let build = || -> Result<Message, StoreError> {
        let bad = |what: &'static str| move |e: serde_json::Error| StoreError::internal(what, e);
        Ok(Message {
            id: MessageId::parse(&id).map_err(|e| StoreError::internal("stored message id", e))?,
            conversation_id: ConversationId::parse(&conversation).map_err(|e| StoreError::internal("stored id", e))?,
            client_id: client_id
                .map(|c| ClientMessageId::parse(&c))
                .transpose()
                .map_err(|e| StoreError::internal("stored client id", e))?,
            parent_id: parent
                .map(|p| MessageId::parse(&p))
                .transpose()
                .map_err(|e| StoreError::internal("stored parent id", e))?,
            role: role
                .parse::<Role>()
                .map_err(|e| StoreError::internal("stored role", e))?,
            content,
            parts: parts
                .map(|p| serde_json::from_str(&p))
                .transpose()
                .map_err(bad("stored parts"))?
                .unwrap_or_default(),
            model,
            usage: usage
                .map(|u| serde_json::from_str(&u))
                .transpose()
                .map_err(bad("stored usage"))?,
            latency_ms: latency.and_then(|l| u64::try_from(l).ok()),
            finish_reason: finish
                .map(|f| serde_json::from_value(serde_json::Value::String(f)))
                .transpose()
                .map_err(bad("stored finish reason"))?,
            error,
            author: author
                .map(|a| UserId::parse(&a))
                .transpose()
                .map_err(|e| StoreError::internal("stored author", e))?,
            created_at: rules::parse_ts(&created)?,
        })
    };
    Ok(build())
}

/// The serialized columns of a message: parts, usage, finish reason.
type Serialized = (Option<String>, Option<String>, Option<String>);

fn serialized(m: &Message) -> Result<Serialized, StoreError> {
    let json = |v: Result<String, serde_json::Error>| v.map_err(|e| StoreError::internal("serializing", e));
    let parts = if m.parts.is_empty() {
        None
    } else {
        Some(json(serde_json::to_string(&m.parts))?)
    };
    let usage = m.usage.map(|u| json(serde_json::to_string(&u))).transpose()?;
    let finish = m
        .finish_reason
        .map(|f| serde_json::to_value(f).map(|v| v.as_str().unwrap_or_default().to_owned()))
        .transpose()
        .map_err(|e| StoreError::internal("serializing", e))?;
    Ok((parts, usage, finish))
}

/// Replaces every column of the stored message `m.id` of `owner`'s conversation by `m`'s, with
/// the continued-reply mark `writer` (`None` clears it). Returns whether a row was replaced.
pub(super) fn replace_message(
    tx: &rusqlite::Transaction<'_>,
    owner: &str,
    m: &Message,
    writer: Option<&str>,
) -> Result<bool, StoreError> {
    check_message_size(m)?;
    let (parts, usage, finish) = serialized(m)?;
    let changed = tx
        .execute(
            "UPDATE messages SET client_id = ?4, role = ?5, content = ?6, parts = ?7, model = ?8, usage = ?9, \
             latency_ms = ?10, finish_reason = ?11, error = ?12, created_at = ?13, parent_id = ?14, writer = ?15, author = ?16 \
             WHERE owner = ?1 AND conversation_id = ?2 AND id = ?3",
            params![
                owner,
                m.conversation_id.as_str(),
                m.id.as_str(),
                m.client_id.as_ref().map(ClientMessageId::as_str),
                m.role.as_str(),
                m.content,
                parts,
                m.model,
                usage,
                m.latency_ms.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
                finish,
                m.error,
                ts::format(&m.created_at),
                m.parent_id.as_ref().map(MessageId::as_str),
                writer,
                m.author.as_ref().map(UserId::as_str),
            ],
        )
        .map_err(sql_err("replacing a message"))?;
    Ok(changed == 1)
}

/// The stored message `message` of `owner`'s conversation `id`, with its continued-reply mark.
pub(super) fn message_with_writer(
    conn: &Connection,
    owner: &str,
    id: &str,
    message: &str,
) -> Result<Option<(Message, Option<String>)>, StoreError> {
    let row = conn
        .query_row(
            &format!(
                "SELECT {MESSAGE_COLUMNS}, writer FROM messages WHERE owner = ?1 AND conversation_id = ?2 AND id = ?3"
            ),
            params![owner, id, message],
            |r| Ok((row_to_message(r)?, r.get::<_, Option<String>>(14)?)),
        )
        .optional()
        .map_err(sql_err("reading a message"))?;
    row.map(|(m, writer)| m.map(|m| (m, writer))).transpose()
}

/// Inserts a message of `owner`'s conversation.
pub(super) fn insert_message(tx: &rusqlite::Transaction<'_>, owner: &str, m: &Message) -> Result<(), StoreError> {
    check_message_size(m)?;
    let (parts, usage, finish) = serialized(m)?;
    let result = tx.execute(
        &format!(
            "INSERT INTO messages (owner, {MESSAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ),
        params![
            owner,
            m.id.as_str(),
            m.conversation_id.as_str(),
            m.client_id.as_ref().map(ClientMessageId::as_str),
            m.role.as_str(),
            m.content,
            parts,
            m.model,
            usage,
            m.latency_ms.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
            finish,
            m.error,
            ts::format(&m.created_at),
            m.parent_id.as_ref().map(MessageId::as_str),
            m.author.as_ref().map(UserId::as_str),
        ],
    );
    match result {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(code, _)) if code.code == rusqlite::ErrorCode::ConstraintViolation => {
            Err(StoreError::Conflict(format!("message {} already exists", m.id)))
        }
        Err(e) => Err(sql_err("inserting a message")(e)),
    }
}

/// Tags as stored: a JSON array, or NULL when there are none.
pub(super) fn tags_json(tags: &[String]) -> Result<Option<String>, StoreError> {
    if tags.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(tags)
        .map(Some)
        .map_err(|e| StoreError::internal("encoding tags", e))
}

/// `owner`'s conversation `id`, trashed or not (the trash's own routes).
pub(super) fn any_conversation(conn: &Connection, owner: &str, id: &str) -> Result<Conversation, StoreError> {
    conn.query_row(
        &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1 AND owner = ?2"),
        params![id, owner],
        row_to_conversation,
    )
    .optional()
    .map_err(sql_err("reading a conversation"))?
    .map_or(Err(StoreError::NotFound), |(c, _)| c)
}

/// Whether `owner` has a conversation `id`, on any shelf.
pub(super) fn conversation_exists(conn: &Connection, owner: &str, id: &str) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM conversations WHERE owner = ?1 AND id = ?2)",
        params![owner, id],
        |r| r.get(0),
    )
    .map_err(sql_err("reading a conversation"))
}

/// `owner`'s conversation `id`, unless it is in the trash.
pub(super) fn owned_conversation(conn: &Connection, owner: &str, id: &str) -> Result<Conversation, StoreError> {
    let row = conn
        .query_row(
            &format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1 AND owner = ?2 AND trashed_at IS NULL"
            ),
            params![id, owner],
            row_to_conversation,
        )
        .optional()
        .map_err(sql_err("reading a conversation"))?;
    match row {
        Some((conversation, _)) => conversation,
        None => Err(StoreError::NotFound),
    }
}

/// Messages of `owner`'s conversation `id`, oldest first, after `after`, at most `limit`.
pub(super) fn messages_of(
    conn: &Connection,
    owner: &str,
    id: &str,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<Message>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE owner = ?1 AND conversation_id = ?2 AND id > ?3 ORDER BY id LIMIT ?4"
        ))
        .map_err(sql_err("listing messages"))?;
    let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let rows = stmt
        .query_map(params![owner, id, after.unwrap_or(""), limit], row_to_message)
        .map_err(sql_err("listing messages"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sql_err("listing messages"))??);
    }
    Ok(out)
}

/// The newest version of a client's message in `owner`'s conversation `id`.
pub(super) fn find_client(
    conn: &Connection,
    owner: &str,
    id: &str,
    client_id: &str,
) -> Result<Option<Message>, StoreError> {
    conn.query_row(
        &format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE owner = ?1 AND conversation_id = ?2 AND client_id = ?3 \
             ORDER BY id DESC LIMIT 1"
        ),
        params![owner, id, client_id],
        row_to_message,
    )
    .optional()
    .map_err(sql_err("finding a client id"))?
    .transpose()
}

pub(super) fn insert_conversation(
    tx: &rusqlite::Transaction<'_>,
    c: &Conversation,
    messages: &[Message],
) -> Result<(), StoreError> {
    let stored = rules::as_created(c, messages);
    let result = tx.execute(
        &format!("INSERT INTO conversations ({CONVERSATION_COLUMNS}, bucket) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"),
        params![
            stored.id.as_str(),
            stored.owner.as_str(),
            stored.title,
            stored.is_pinned,
            stored.is_shared,
            stored.model,
            stored.solution_type.map(Solution::as_str),
            ts::format(&stored.created_at),
            ts::format(&stored.updated_at),
            stored.last_message,
            i64::try_from(stored.message_count).unwrap_or(0),
            rules::shelf_rank(&stored),
            stored.active_leaf.as_ref().map(MessageId::as_str),
            stored.project_id.as_ref().map(ProjectId::as_str),
            stored.folder_id.as_ref().map(FolderId::as_str),
            tags_json(&stored.tags)?,
            stored.archived_at.as_ref().map(ts::format),
            stored.trashed_at.as_ref().map(ts::format),
            stored.imported_from.map(ImportSource::as_str),
            stored.shared_until.as_ref().map(ts::format),
            SolutionFilter::of(stored.solution_type).bucket(),
        ],
    );
    match result {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(code, _)) if code.code == rusqlite::ErrorCode::ConstraintViolation => {
            return Err(StoreError::Conflict(format!("conversation {} already exists", c.id)));
        }
        Err(e) => return Err(sql_err("creating a conversation")(e)),
    }
    for m in messages {
        insert_message(tx, stored.owner.as_str(), m).map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("a message id or client message id is repeated".to_owned()),
            other => other,
        })?;
    }
    Ok(())
}

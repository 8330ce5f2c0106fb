//! The embedded adapter: SQLite in one file (bundled, nothing to install), the default when no
//! DynamoDB table is configured. It mirrors the DynamoDB store's semantics: the same listing rank,
//! the same cursors, the same conflicts, the same size limits, cascade delete in one transaction.
//!
//! SQLite calls are blocking, so each runs on Tokio's blocking pool behind one connection mutex
//! (WAL journal, so a crash never leaves a half-written change).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    check_message_size, cursor, listing_rank, page_size, Activity, Appended, ConversationPatch, Conversations,
    Counters, ListConversations, ListMessages, Messages, Page, Stats, StreamLease, Touch, TurnBegun, TurnFinish,
    TurnStart, TurnWrite, Turns, DEFAULT_PAGE,
};
use crate::domain::{
    self, ts, AnalyticsEvent, AuditEntry, ClientMessageId, Conversation, ConversationId, Message, MessageId, Role,
    Solution, SolutionFilter, StatsDelta, StatsRow, Timestamp, UserId,
};
use crate::error::StoreError;

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS conversations (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    title         TEXT NOT NULL,
    is_pinned     INTEGER NOT NULL,
    is_shared     INTEGER NOT NULL,
    model         TEXT NOT NULL,
    solution_type TEXT,
    bucket        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    last_message  TEXT,
    message_count INTEGER NOT NULL DEFAULT 0,
    rank          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, rank DESC, id DESC);
CREATE INDEX IF NOT EXISTS conversations_by_owner_solution ON conversations (owner, bucket, rank DESC, id DESC);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    client_id       TEXT,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    parts           TEXT,
    model           TEXT,
    usage           TEXT,
    latency_ms      INTEGER,
    finish_reason   TEXT,
    error           TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (conversation_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_id ON messages (conversation_id, client_id) WHERE client_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    id         TEXT PRIMARY KEY,
    day        TEXT NOT NULL,
    body       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_day ON events (day, id);
CREATE TABLE IF NOT EXISTS stats (
    day      TEXT NOT NULL,
    solution TEXT NOT NULL,
    model    TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (day, solution, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    key        TEXT PRIMARY KEY,
    count      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budgets (
    key        TEXT PRIMARY KEY,
    tokens     INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_slots (
    owner      TEXT NOT NULL,
    slot       INTEGER NOT NULL,
    turn       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (owner, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    owner      TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
"#;

/// The SQLite store.
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
    event_ttl: Duration,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn sql_err(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| match e {
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(Box::new(e))
        }
        other => StoreError::internal(context, other),
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the database file, creating its folder and schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::internal("creating the database folder", e))?;
        }
        let conn = Connection::open(path).map_err(sql_err("opening the database"))?;
        Self::init(conn)
    }

    /// A store in memory (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(sql_err("opening the database"))?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql_err("busy timeout"))?;
        conn.execute_batch(SCHEMA).map_err(sql_err("creating the schema"))?;
        let now = chrono::Utc::now().timestamp();
        conn.execute("DELETE FROM events WHERE expires_at < ?1", params![now])
            .map_err(sql_err("expiring events"))?;
        for table in ["counters", "budgets", "stream_slots", "audit"] {
            conn.execute(&format!("DELETE FROM {table} WHERE expires_at < ?1"), params![now])
                .map_err(sql_err("expiring counters"))?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            event_ttl: Duration::from_secs(90 * 24 * 3600),
        })
    }

    /// Sets how long analytics events are kept.
    pub fn with_event_ttl(mut self, ttl: Duration) -> Self {
        self.event_ttl = ttl;
        self
    }

    /// How many rows (conversation and messages) exist for a conversation id, whoever owns it:
    /// a diagnostic that lets tests check a cascade left nothing behind.
    pub async fn raw_row_count(&self, id: &ConversationId) -> Result<u64, StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            conn.query_row(
                "SELECT (SELECT COUNT(*) FROM conversations WHERE id = ?1) + (SELECT COUNT(*) FROM messages WHERE conversation_id = ?1)",
                params![id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sql_err("counting rows"))
        })
        .await
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = match conn.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::internal("the blocking task failed", e))?
    }
}

const CONVERSATION_COLUMNS: &str =
    "id, owner, title, is_pinned, is_shared, model, solution_type, created_at, updated_at, last_message, message_count, rank";

fn row_to_conversation(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Result<Conversation, StoreError>, i64)> {
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
            created_at: parse_ts(&created)?,
            updated_at: parse_ts(&updated)?,
            last_message,
            message_count: u64::try_from(count).unwrap_or(0),
        })
    };
    Ok((build(), rank))
}

fn parse_ts(raw: &str) -> Result<Timestamp, StoreError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::internal("stored timestamp", e))
}

const MESSAGE_COLUMNS: &str =
    "id, conversation_id, client_id, role, content, parts, model, usage, latency_ms, finish_reason, error, created_at";

fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Message, StoreError>> {
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
    let build = || -> Result<Message, StoreError> {
        let bad = |what: &'static str| move |e: serde_json::Error| StoreError::internal(what, e);
        Ok(Message {
            id: MessageId::parse(&id).map_err(|e| StoreError::internal("stored message id", e))?,
            conversation_id: ConversationId::parse(&conversation).map_err(|e| StoreError::internal("stored id", e))?,
            client_id: client_id
                .map(|c| ClientMessageId::parse(&c))
                .transpose()
                .map_err(|e| StoreError::internal("stored client id", e))?,
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
            created_at: parse_ts(&created)?,
        })
    };
    Ok(build())
}

fn insert_message(tx: &rusqlite::Transaction<'_>, m: &Message) -> Result<(), StoreError> {
    check_message_size(m)?;
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
    let result = tx.execute(
        &format!("INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
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

fn owned_conversation(conn: &Connection, owner: &str, id: &str) -> Result<Conversation, StoreError> {
    let row = conn
        .query_row(
            &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1 AND owner = ?2"),
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

fn messages_of(
    conn: &Connection,
    id: &str,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<Message>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
        ))
        .map_err(sql_err("listing messages"))?;
    let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let rows = stmt
        .query_map(params![id, after.unwrap_or(""), limit], row_to_message)
        .map_err(sql_err("listing messages"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sql_err("listing messages"))??);
    }
    Ok(out)
}

fn find_client(conn: &Connection, id: &str, client_id: &str) -> Result<Option<Message>, StoreError> {
    conn.query_row(
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND client_id = ?2"),
        params![id, client_id],
        row_to_message,
    )
    .optional()
    .map_err(sql_err("finding a client id"))?
    .transpose()
}

fn insert_conversation(
    tx: &rusqlite::Transaction<'_>,
    c: &Conversation,
    messages: &[Message],
) -> Result<(), StoreError> {
    let updated = messages.last().map_or(c.updated_at, |m| c.updated_at.max(m.created_at));
    let result = tx.execute(
        &format!("INSERT INTO conversations ({CONVERSATION_COLUMNS}, bucket) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
        params![
            c.id.as_str(),
            c.owner.as_str(),
            c.title,
            c.is_pinned,
            c.is_shared,
            c.model,
            c.solution_type.map(Solution::as_str),
            ts::format(&c.created_at),
            ts::format(&updated),
            messages.last().map(|m| domain::preview(&m.content)).or(c.last_message.clone()),
            if messages.is_empty() { i64::try_from(c.message_count).unwrap_or(0) } else { messages.len() as i64 },
            listing_rank(c.is_pinned, &c.id, updated),
            SolutionFilter::of(c.solution_type).bucket(),
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
        insert_message(tx, m).map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("a message id or client message id is repeated".to_owned()),
            other => other,
        })?;
    }
    Ok(())
}

fn append_in(tx: &rusqlite::Transaction<'_>, owner: &str, m: &Message, touch: &Touch) -> Result<Appended, StoreError> {
    let current = owned_conversation(tx, owner, m.conversation_id.as_str())?;
    if let Some(client_id) = &m.client_id {
        if let Some(existing) = find_client(tx, m.conversation_id.as_str(), client_id.as_str())? {
            return Ok(Appended::Duplicate(existing.id));
        }
    }
    insert_message(tx, m)?;
    tx.execute(
        "UPDATE conversations SET updated_at = ?1, last_message = ?2, message_count = message_count + 1, \
         rank = ?3, title = COALESCE(?4, title) WHERE id = ?5",
        params![
            ts::format(&m.created_at),
            domain::preview(&m.content),
            listing_rank(current.is_pinned, &current.id, m.created_at),
            touch.title,
            m.conversation_id.as_str()
        ],
    )
    .map_err(sql_err("touching a conversation"))?;
    Ok(Appended::Stored)
}

fn stats_in(
    tx: &rusqlite::Transaction<'_>,
    day: &str,
    solution: &str,
    model: &str,
    delta: &StatsDelta,
) -> Result<(), StoreError> {
    let current: Option<String> = tx
        .query_row(
            "SELECT body FROM stats WHERE day = ?1 AND solution = ?2 AND model = ?3",
            params![day, solution, model],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err("reading stats"))?;
    let mut stats: StatsDelta = match current {
        Some(body) => serde_json::from_str(&body).map_err(|e| StoreError::internal("stored stats", e))?,
        None => Default::default(),
    };
    stats.merge(delta);
    let body = serde_json::to_string(&stats).map_err(|e| StoreError::internal("serializing stats", e))?;
    tx.execute(
        "INSERT INTO stats (day, solution, model, body) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (day, solution, model) DO UPDATE SET body = excluded.body",
        params![day, solution, model, body],
    )
    .map_err(sql_err("writing stats"))?;
    Ok(())
}

#[async_trait]
impl Conversations for EmbeddedStore {
    async fn create_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        let c = conversation.clone();
        let messages = messages.to_vec();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            insert_conversation(&tx, &c, &messages)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    async fn get_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<Conversation, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| owned_conversation(conn, &owner, &id)).await
    }

    async fn get_conversation_with_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<Message>), StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            let c = owned_conversation(&tx, &owner, &id)?;
            let messages = messages_of(&tx, &id, None, None)?;
            Ok((c, messages))
        })
        .await
    }

    async fn list_conversations(
        &self,
        owner: &UserId,
        query: &ListConversations,
    ) -> Result<Page<Conversation>, StoreError> {
        let limit = page_size(query.limit, DEFAULT_PAGE);
        let bucket = query.solution.map(SolutionFilter::bucket);
        let scope = cursor::conversations_scope(owner.as_str(), bucket);
        let start: Option<(i64, String)> = match &query.cursor {
            None => None,
            Some(c) => Some(cursor::decode(&scope, c)?),
        };
        let owner = owner.to_string();
        let (rows, more) = self
            .with(move |conn| {
                let (rank, after) = start.unwrap_or((i64::MAX, String::new()));
                let first = after.is_empty();
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations \
                     WHERE owner = ?1 AND (?2 IS NULL OR bucket = ?2) \
                     AND (?3 OR rank < ?4 OR (rank = ?4 AND id < ?5)) \
                     ORDER BY rank DESC, id DESC LIMIT ?6"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(sql_err("listing conversations"))?;
                let rows = stmt
                    .query_map(
                        params![owner, bucket, first, rank, after, i64::from(limit) + 1],
                        row_to_conversation,
                    )
                    .map_err(sql_err("listing conversations"))?;
                let mut out = Vec::new();
                for row in rows {
                    let (c, rank) = row.map_err(sql_err("listing conversations"))?;
                    out.push((c?, rank));
                }
                let more = out.len() > limit as usize;
                out.truncate(limit as usize);
                Ok((out, more))
            })
            .await?;
        let next_cursor = match (more, rows.last()) {
            (true, Some((c, rank))) => Some(cursor::encode(&scope, &(rank, c.id.as_str()))?),
            _ => None,
        };
        Ok(Page {
            items: rows.into_iter().map(|(c, _)| c).collect(),
            next_cursor,
        })
    }

    async fn update_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        let (owner, id, patch) = (owner.to_string(), id.clone(), patch.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let current = owned_conversation(&tx, &owner, id.as_str())?;
            let pinned = patch.is_pinned.unwrap_or(current.is_pinned);
            tx.execute(
                "UPDATE conversations SET title = COALESCE(?1, title), is_pinned = ?2, is_shared = COALESCE(?3, is_shared), \
                 model = COALESCE(?4, model), updated_at = ?5, rank = ?6 WHERE id = ?7",
                params![
                    patch.title,
                    pinned,
                    patch.is_shared,
                    patch.model,
                    ts::format(&now),
                    listing_rank(pinned, &id, now),
                    id.as_str()
                ],
            )
            .map_err(sql_err("updating a conversation"))?;
            let updated = owned_conversation(&tx, &owner, id.as_str())?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(updated)
        })
        .await
    }

    async fn delete_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            owned_conversation(&tx, &owner, &id)?;
            let deleted = tx
                .execute("DELETE FROM messages WHERE conversation_id = ?1", params![id])
                .map_err(sql_err("deleting messages"))?;
            tx.execute("DELETE FROM conversations WHERE id = ?1", params![id])
                .map_err(sql_err("deleting a conversation"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(deleted as u64)
        })
        .await
    }
}

#[async_trait]
impl Messages for EmbeddedStore {
    async fn append_message(&self, owner: &UserId, message: &Message, touch: &Touch) -> Result<Appended, StoreError> {
        check_message_size(message)?;
        let (owner, m, touch) = (owner.to_string(), message.clone(), touch.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let appended = append_in(&tx, &owner, &m, &touch)?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(appended)
        })
        .await
    }

    async fn list_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
        query: &ListMessages,
    ) -> Result<Page<Message>, StoreError> {
        let scope = cursor::messages_scope(owner.as_str(), id.as_str());
        let after: Option<String> = match &query.cursor {
            None => None,
            Some(c) => {
                let last: String = cursor::decode(&scope, c)?;
                MessageId::parse(&last).map_err(|_| StoreError::InvalidCursor)?;
                Some(last)
            }
        };
        let limit = query.limit.map(|l| page_size(Some(l), DEFAULT_PAGE) as usize);
        let (owner, id) = (owner.to_string(), id.to_string());
        let (mut messages, more) = self
            .with(move |conn| {
                let tx = conn.transaction().map_err(sql_err("begin"))?;
                owned_conversation(&tx, &owner, &id)?;
                let mut messages = messages_of(&tx, &id, after.as_deref(), limit.map(|l| l + 1))?;
                let more = limit.is_some_and(|l| messages.len() > l);
                if let Some(l) = limit {
                    messages.truncate(l);
                }
                Ok((messages, more))
            })
            .await?;
        let next_cursor = match (more, messages.last_mut()) {
            (true, Some(last)) => Some(cursor::encode(&scope, &last.id.to_string())?),
            _ => None,
        };
        Ok(Page {
            items: messages,
            next_cursor,
        })
    }

    async fn find_by_client_id(
        &self,
        owner: &UserId,
        id: &ConversationId,
        client_id: &ClientMessageId,
    ) -> Result<Option<Message>, StoreError> {
        let (owner, id, client_id) = (owner.to_string(), id.to_string(), client_id.to_string());
        self.with(move |conn| {
            owned_conversation(conn, &owner, &id)?;
            find_client(conn, &id, &client_id)
        })
        .await
    }

    async fn delete_message(&self, owner: &UserId, id: &ConversationId, message: &MessageId) -> Result<(), StoreError> {
        let (owner, id, message) = (owner.to_string(), id.to_string(), message.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            owned_conversation(&tx, &owner, &id)?;
            let n = tx
                .execute(
                    "DELETE FROM messages WHERE conversation_id = ?1 AND id = ?2",
                    params![id, message],
                )
                .map_err(sql_err("deleting a message"))?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let newest: Option<String> = tx
                .query_row(
                    "SELECT content FROM messages WHERE conversation_id = ?1 ORDER BY id DESC LIMIT 1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err("newest message"))?;
            tx.execute(
                "UPDATE conversations SET last_message = ?1, message_count = message_count - 1 WHERE id = ?2",
                params![newest.as_deref().map(domain::preview), id],
            )
            .map_err(sql_err("touching a conversation"))?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    async fn clear_messages(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            owned_conversation(&tx, &owner, &id)?;
            let n = tx
                .execute("DELETE FROM messages WHERE conversation_id = ?1", params![id])
                .map_err(sql_err("clearing messages"))?;
            tx.execute(
                "UPDATE conversations SET last_message = NULL, message_count = message_count - ?1 WHERE id = ?2",
                params![n as i64, id],
            )
            .map_err(sql_err("touching a conversation"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl Turns for EmbeddedStore {
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        self.begin_turn_impl(start).await
    }

    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        self.finish_turn_impl(finish).await
    }
}

#[async_trait]
impl Activity for EmbeddedStore {
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError> {
        let ttl = self.event_ttl.as_secs() as i64;
        let rows = events
            .iter()
            .map(|e| {
                serde_json::to_string(e)
                    .map(|body| {
                        (
                            e.id.clone(),
                            e.timestamp.format("%Y-%m-%d").to_string(),
                            body,
                            e.timestamp.timestamp() + ttl,
                        )
                    })
                    .map_err(|err| StoreError::internal("serializing an event", err))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.with(move |conn| {
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            {
                let mut stmt = tx
                    .prepare_cached("INSERT OR REPLACE INTO events (id, day, body, expires_at) VALUES (?1, ?2, ?3, ?4)")
                    .map_err(sql_err("recording events"))?;
                for (id, day, body, expires) in rows {
                    stmt.execute(params![id, day, body, expires])
                        .map_err(sql_err("recording events"))?;
                }
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        self.record_activity_impl(events, audit).await
    }

    async fn events_of_day(&self, day: &str) -> Result<Vec<AnalyticsEvent>, StoreError> {
        let day = day.to_owned();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM events WHERE day = ?1 AND expires_at >= ?2 ORDER BY id")
                .map_err(sql_err("reading events"))?;
            let rows = stmt
                .query_map(params![day, chrono::Utc::now().timestamp()], |r| r.get::<_, String>(0))
                .map_err(sql_err("reading events"))?;
            let mut out = Vec::new();
            for row in rows {
                let body = row.map_err(sql_err("reading events"))?;
                out.push(serde_json::from_str(&body).map_err(|e| StoreError::internal("stored event", e))?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.list_audit_impl(user, limit, cursor).await
    }
}

#[async_trait]
impl Stats for EmbeddedStore {
    async fn add_stats(&self, day: &str, solution: &str, model: &str, delta: &StatsDelta) -> Result<(), StoreError> {
        let (day, solution, model, delta) = (day.to_owned(), solution.to_owned(), model.to_owned(), delta.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            stats_in(&tx, &day, &solution, &model, &delta)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    async fn stats_between(&self, from: &str, to: &str) -> Result<Vec<StatsRow>, StoreError> {
        let (from, to) = (from.to_owned(), to.to_owned());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT day, solution, model, body FROM stats WHERE day >= ?1 AND day <= ?2 ORDER BY day, solution, model",
                )
                .map_err(sql_err("reading stats"))?;
            let rows = stmt
                .query_map(params![from, to], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                })
                .map_err(sql_err("reading stats"))?;
            let mut out = Vec::new();
            for row in rows {
                let (day, solution, model, body) = row.map_err(sql_err("reading stats"))?;
                out.push(StatsRow {
                    day,
                    solution,
                    model,
                    stats: serde_json::from_str(&body).map_err(|e| StoreError::internal("stored stats", e))?,
                });
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Counters for EmbeddedStore {
    async fn increment_counter(&self, key: &str, window_start: i64, ttl_secs: i64) -> Result<u64, StoreError> {
        let key = crate::store::schema::counter_pk(key, window_start);
        self.with(move |conn| {
            conn.query_row(
                "INSERT INTO counters (key, count, expires_at) VALUES (?1, 1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET count = count + 1 RETURNING count",
                params![key, window_start + ttl_secs],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sql_err("incrementing a counter"))
        })
        .await
    }
}

impl EmbeddedStore {
    async fn begin_turn_impl(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        let start = start.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let owner = start.owner.as_str();
            let id = start.conversation_id.as_str();
            let limits = &start.limits;
            let now = start.now.timestamp();
            let (minute_end, day_end, month_end) = super::window_ends(start.now);
            // The conversation first (as DynamoDB reports it first).
            match &start.write {
                TurnWrite::Create { .. } => {
                    let exists: bool = tx
                        .query_row("SELECT EXISTS (SELECT 1 FROM conversations WHERE id = ?1)", params![id], |r| r.get(0))
                        .map_err(sql_err("reading a conversation"))?;
                    if exists {
                        return Err(StoreError::Conflict(format!("conversation {id} already exists")));
                    }
                }
                _ => {
                    owned_conversation(&tx, owner, id)?;
                }
            }
            let rate_key = super::schema::counter_pk(&super::schema::rate_key(owner), minute_end - 60);
            if limits.requests_per_minute > 0 {
                let count: i64 = tx
                    .query_row("SELECT count FROM counters WHERE key = ?1", params![rate_key], |r| r.get(0))
                    .optional()
                    .map_err(sql_err("reading a counter"))?
                    .unwrap_or(0);
                if u64::try_from(count).unwrap_or(0) >= limits.requests_per_minute {
                    return Err(StoreError::RateLimited {
                        retry_after: super::retry_after(start.now, minute_end),
                    });
                }
            }
            let (day_key, month_key) = super::schema::budget_pks(owner, &start.now);
            for (key, budget, window, end) in [
                (&day_key, limits.tokens_per_day, "day", day_end),
                (&month_key, limits.tokens_per_month, "month", month_end),
            ] {
                if budget == 0 {
                    continue;
                }
                let spent: i64 = tx
                    .query_row("SELECT tokens FROM budgets WHERE key = ?1", params![key], |r| r.get(0))
                    .optional()
                    .map_err(sql_err("reading a budget"))?
                    .unwrap_or(0);
                if u64::try_from(spent).unwrap_or(0) >= budget {
                    return Err(StoreError::BudgetExceeded {
                        window,
                        retry_after: super::retry_after(start.now, end),
                    });
                }
            }
            let lease = if limits.max_streams > 0 {
                let mut held = std::collections::HashSet::new();
                {
                    let mut stmt = tx
                        .prepare_cached("SELECT slot FROM stream_slots WHERE owner = ?1 AND expires_at >= ?2")
                        .map_err(sql_err("reading stream slots"))?;
                    let rows = stmt
                        .query_map(params![owner, now], |r| r.get::<_, i64>(0))
                        .map_err(sql_err("reading stream slots"))?;
                    for row in rows {
                        held.insert(row.map_err(sql_err("reading stream slots"))?);
                    }
                }
                let free = (0..limits.max_streams).find(|n| !held.contains(&i64::from(*n)));
                let Some(slot) = free else {
                    return Err(StoreError::TooManyStreams {
                        retry_after: super::STREAM_RETRY_AFTER,
                    });
                };
                let lease = StreamLease {
                    slot,
                    turn_id: start.turn_id.clone(),
                    expires_at: now + limits.lease_secs,
                };
                tx.execute(
                    "INSERT INTO stream_slots (owner, slot, turn, expires_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (owner, slot) DO UPDATE SET turn = excluded.turn, expires_at = excluded.expires_at",
                    params![owner, slot, lease.turn_id, lease.expires_at],
                )
                .map_err(sql_err("taking a stream slot"))?;
                Some(lease)
            } else {
                None
            };
            if limits.requests_per_minute > 0 {
                tx.execute(
                    "INSERT INTO counters (key, count, expires_at) VALUES (?1, 1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET count = count + 1",
                    params![rate_key, minute_end + 60],
                )
                .map_err(sql_err("incrementing a counter"))?;
            }
            match &start.write {
                TurnWrite::Create { conversation, messages } => insert_conversation(&tx, conversation, messages)?,
                TurnWrite::Append { message } => {
                    append_in(&tx, owner, message, &Touch::default())?;
                }
                TurnWrite::Regenerate { remove, preview } => {
                    if let Some(removed) = remove {
                        let n = tx
                            .execute(
                                "DELETE FROM messages WHERE conversation_id = ?1 AND id = ?2",
                                params![id, removed.id.as_str()],
                            )
                            .map_err(sql_err("deleting a message"))?;
                        tx.execute(
                            "UPDATE conversations SET last_message = ?1, message_count = message_count - ?2 WHERE id = ?3",
                            params![preview, n as i64, id],
                        )
                        .map_err(sql_err("touching a conversation"))?;
                    }
                }
                TurnWrite::Check => {}
            }
            tx.commit().map_err(sql_err("commit"))?;
            Ok(TurnBegun { lease })
        })
        .await
    }

    async fn finish_turn_impl(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        if let Some(reply) = &finish.reply {
            check_message_size(reply)?;
        }
        let finish = finish.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let owner = finish.owner.as_str();
            if let Some(reply) = &finish.reply {
                match append_in(&tx, owner, reply, &Touch::default()) {
                    Ok(_) => {}
                    Err(StoreError::NotFound | StoreError::Conflict(_)) => {
                        tracing::warn!("the conversation is gone or the reply exists: the reply is not stored");
                    }
                    Err(e) => return Err(e),
                }
            }
            if finish.tokens > 0 {
                let (day_key, month_key) = super::schema::budget_pks(owner, &finish.started);
                let (_, day_end, month_end) = super::window_ends(finish.started);
                for (key, expires) in [(day_key, day_end + 2 * 86_400), (month_key, month_end + 2 * 86_400)] {
                    tx.execute(
                        "INSERT INTO budgets (key, tokens, expires_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (key) DO UPDATE SET tokens = tokens + excluded.tokens",
                        params![key, i64::try_from(finish.tokens).unwrap_or(i64::MAX), expires],
                    )
                    .map_err(sql_err("charging a budget"))?;
                }
            }
            if let Some(lease) = &finish.lease {
                tx.execute(
                    "DELETE FROM stream_slots WHERE owner = ?1 AND slot = ?2 AND turn = ?3",
                    params![owner, lease.slot, lease.turn_id],
                )
                .map_err(sql_err("releasing a stream slot"))?;
            }
            if let Some(stats) = &finish.stats {
                if let Err(e) = stats_in(&tx, &stats.day, &stats.solution, &stats.model, &stats.delta) {
                    tracing::warn!(error = %e, "the turn's analytics counters failed; writing without them");
                }
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    async fn record_activity_impl(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        let ttl = self.event_ttl.as_secs() as i64;
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            let body = serde_json::to_string(e).map_err(|err| StoreError::internal("serializing an event", err))?;
            rows.push((
                e.id.clone(),
                e.timestamp.format("%Y-%m-%d").to_string(),
                body,
                e.timestamp.timestamp() + ttl,
            ));
        }
        let mut entries = Vec::with_capacity(audit.len());
        for a in audit {
            let body =
                serde_json::to_string(a).map_err(|err| StoreError::internal("serializing an audit entry", err))?;
            entries.push((a.user_id.clone(), a.id.clone(), body, a.expires_at));
        }
        self.with(move |conn| {
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            for (id, day, body, expires) in rows {
                tx.execute(
                    "INSERT OR REPLACE INTO events (id, day, body, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![id, day, body, expires],
                )
                .map_err(sql_err("recording events"))?;
            }
            for (owner, id, body, expires) in entries {
                tx.execute(
                    "INSERT OR REPLACE INTO audit (owner, id, body, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![owner, id, body, expires],
                )
                .map_err(sql_err("recording audit entries"))?;
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    async fn list_audit_impl(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let limit = page_size(limit, DEFAULT_PAGE);
        let scope = format!("audit\0{user}");
        let before: Option<String> = match cursor {
            None => None,
            Some(c) => Some(cursor::decode(&scope, c)?),
        };
        let owner = user.to_string();
        let (mut items, more) = self
            .with(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT body FROM audit WHERE owner = ?1 AND (?2 IS NULL OR id < ?2) AND expires_at >= ?3 \
                         ORDER BY id DESC LIMIT ?4",
                    )
                    .map_err(sql_err("listing audit entries"))?;
                let rows = stmt
                    .query_map(
                        params![owner, before, chrono::Utc::now().timestamp(), i64::from(limit) + 1],
                        |r| r.get::<_, String>(0),
                    )
                    .map_err(sql_err("listing audit entries"))?;
                let mut out: Vec<AuditEntry> = Vec::new();
                for row in rows {
                    let body = row.map_err(sql_err("listing audit entries"))?;
                    out.push(serde_json::from_str(&body).map_err(|e| StoreError::internal("stored audit entry", e))?);
                }
                let more = out.len() > limit as usize;
                Ok((out, more))
            })
            .await?;
        items.truncate(limit as usize);
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => Some(cursor::encode(&scope, &last.id)?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

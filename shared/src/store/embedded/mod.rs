//! The embedded adapter: SQLite in one file (bundled, nothing to install), the default when no
//! DynamoDB table is configured. It mirrors the DynamoDB store's semantics: the same listing rank,
//! the same cursors, the same conflicts, the same size limits, cascade delete in one transaction.
//!
//! SQLite calls are blocking, so each runs on Tokio's blocking pool behind one connection mutex
//! (WAL journal, so a crash never leaves a half-written change).
//!
//! One file per capability (`conversations`, `messages`, `turns`, `activity`, `stats`,
//! `counters`, `idempotency`); `rows` maps rows to the domain and holds the statements several capabilities
//! share; this module holds the schema, opening the database and running a call on it.

mod accounting;
mod accounts;
mod activity;
mod conversations;
mod counters;
mod docs;
mod feedback;
mod files;
mod folders;
mod idempotency;
mod import_jobs;
mod links;
mod messages;
mod projects;
mod prompts;
mod rows;
mod search;
mod sharing;
mod stats;
mod streams;
mod turns;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::domain::{ConversationId, UserId};
use crate::error::StoreError;

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS conversations (
    id            TEXT NOT NULL,
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
    rank          INTEGER NOT NULL,
    active_leaf   TEXT,
    project_id    TEXT,
    folder_id     TEXT,
    tags          TEXT,
    archived_at   TEXT,
    trashed_at    TEXT,
    imported_from TEXT,
    shared_until  TEXT,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, rank DESC, id DESC);
CREATE INDEX IF NOT EXISTS conversations_by_owner_solution ON conversations (owner, bucket, rank DESC, id DESC);
CREATE TABLE IF NOT EXISTS messages (
    owner           TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
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
    parent_id       TEXT,
    writer          TEXT,
    author          TEXT,
    PRIMARY KEY (owner, conversation_id, id),
    FOREIGN KEY (owner, conversation_id) REFERENCES conversations (owner, id) ON DELETE CASCADE
) WITHOUT ROWID;
-- Share links (store::links): keyed by the SHA-256 of the token; the link as JSON, its views
-- counted apart, its snapshot as JSON. Deleted with their conversation.
CREATE TABLE IF NOT EXISTS share_links (
    token_hash      TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    id              TEXT NOT NULL,
    body            TEXT NOT NULL,
    views           INTEGER NOT NULL DEFAULT 0,
    snapshot        TEXT NOT NULL,
    FOREIGN KEY (owner, conversation_id) REFERENCES conversations (owner, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS share_links_by_conversation ON share_links (owner, conversation_id, id);
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
-- Conversation ids claimed by `athena-migrate` across every owner (Conversations::claim_conversation_id).
CREATE TABLE IF NOT EXISTS id_claims (
    id    TEXT PRIMARY KEY,
    owner TEXT NOT NULL
);
-- Counters imported from history (Stats::import_stats): each key adds its rows once.
CREATE TABLE IF NOT EXISTS stats_imports (
    key TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS counters (
    key        TEXT PRIMARY KEY,
    count      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    owner              TEXT NOT NULL,
    day                TEXT NOT NULL,
    solution           TEXT NOT NULL,
    model              TEXT NOT NULL,
    requests           INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_nano_usd      INTEGER NOT NULL,
    PRIMARY KEY (owner, day, solution, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plan_overrides (
    owner TEXT PRIMARY KEY,
    body  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spend (
    month    TEXT PRIMARY KEY,
    nano_usd INTEGER NOT NULL
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
CREATE TABLE IF NOT EXISTS turn_receipts (
    turn_id         TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    expires_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS live_turns (
    owner           TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    turn_id         TEXT NOT NULL,
    reply_id        TEXT NOT NULL,
    parent_id       TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    deadline        TEXT NOT NULL,
    stop            INTEGER NOT NULL DEFAULT 0,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (owner, conversation_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS turn_checkpoints (
    owner           TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    turn_id         TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    events          TEXT NOT NULL,
    last            INTEGER NOT NULL,
    at              TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (owner, conversation_id, turn_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projects (
    owner TEXT NOT NULL,
    id    TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS folders (
    owner TEXT NOT NULL,
    id    TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    owner TEXT NOT NULL,
    id    TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
-- Import jobs (store::import_jobs): the job as JSON; the worker finds one by its id.
CREATE TABLE IF NOT EXISTS import_jobs (
    owner TEXT NOT NULL,
    id    TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS import_jobs_by_id ON import_jobs (id);
CREATE TABLE IF NOT EXISTS prompts (
    owner TEXT NOT NULL,
    id    TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grants (
    owner           TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    grantee         TEXT NOT NULL,
    role            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (owner, conversation_id, grantee),
    UNIQUE (grantee, conversation_id)
) WITHOUT ROWID;
-- Reactions (store::feedback): one per conversation owner, conversation, reacting user and message.
CREATE TABLE IF NOT EXISTS reactions (
    owner           TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    body            TEXT NOT NULL,
    PRIMARY KEY (owner, conversation_id, user_id, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reactions_by_user ON reactions (user_id);
-- Bookmarks (store::feedback): `owner` is the bookmarker, `conv_owner` the conversation's owner.
CREATE TABLE IF NOT EXISTS bookmarks (
    owner           TEXT NOT NULL,
    id              TEXT NOT NULL,
    conv_owner      TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    body            TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS bookmarks_by_message ON bookmarks (owner, conv_owner, conversation_id, message_id);
CREATE INDEX IF NOT EXISTS bookmarks_by_conversation ON bookmarks (conv_owner, conversation_id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    owner       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    token       TEXT,
    status      INTEGER,
    body        TEXT,
    location    TEXT,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID;
"#;

/// Brings a database file made by an earlier version up to this schema: the branch columns
/// (`messages.parent_id`, `conversations.active_leaf`), the continued-reply mark
/// (`messages.writer`), a conversation's project (`conversations.project_id`, indexed; the
/// `projects` table itself comes from [`SCHEMA`]), conversations keyed by owner and id
/// ([`key_by_owner`]), and the client-id index without its uniqueness (every version of an
/// edited message keeps the client's id; appends check for a stored one inside their
/// transaction), and the full-text index (created, filled from what is stored, and kept in sync
/// by triggers from then on: [`search`]).
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let has_column = |table: &str, column: &str| -> Result<bool, StoreError> {
        let mut stmt = conn
            .prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))
            .map_err(sql_err("reading the schema"))?;
        stmt.exists(params![column]).map_err(sql_err("reading the schema"))
    };
    if !has_column("messages", "parent_id")? {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN parent_id TEXT")
            .map_err(sql_err("adding messages.parent_id"))?;
    }
    if !has_column("messages", "writer")? {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN writer TEXT")
            .map_err(sql_err("adding messages.writer"))?;
    }
    if !has_column("messages", "author")? {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN author TEXT")
            .map_err(sql_err("adding messages.author"))?;
    }
    if !has_column("conversations", "active_leaf")? {
        conn.execute_batch("ALTER TABLE conversations ADD COLUMN active_leaf TEXT")
            .map_err(sql_err("adding conversations.active_leaf"))?;
    }
    if !has_column("conversations", "project_id")? {
        conn.execute_batch("ALTER TABLE conversations ADD COLUMN project_id TEXT")
            .map_err(sql_err("adding conversations.project_id"))?;
    }
    for column in ["folder_id", "tags", "archived_at", "trashed_at"] {
        if !has_column("conversations", column)? {
            conn.execute_batch(&format!("ALTER TABLE conversations ADD COLUMN {column} TEXT"))
                .map_err(sql_err("adding the organising columns"))?;
        }
    }
    if !has_column("conversations", "imported_from")? {
        conn.execute_batch("ALTER TABLE conversations ADD COLUMN imported_from TEXT")
            .map_err(sql_err("adding conversations.imported_from"))?;
    }
    if !has_column("conversations", "shared_until")? {
        conn.execute_batch("ALTER TABLE conversations ADD COLUMN shared_until TEXT")
            .map_err(sql_err("adding conversations.shared_until"))?;
    }
    if !has_column("messages", "owner")? {
        key_by_owner(conn)?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS conversations_by_folder ON conversations (owner, folder_id) WHERE folder_id IS NOT NULL; \
         CREATE INDEX IF NOT EXISTS conversations_in_trash ON conversations (trashed_at) WHERE trashed_at IS NOT NULL;",
    )
    .map_err(sql_err("indexing folders and the trash"))?;
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS conversations_by_project ON conversations (owner, project_id) WHERE project_id IS NOT NULL;",
    )
    .map_err(sql_err("indexing projects"))?;
    conn.execute_batch(
        "DROP INDEX IF EXISTS messages_client_id; \
         CREATE INDEX IF NOT EXISTS messages_by_client_id ON messages (owner, conversation_id, client_id) WHERE client_id IS NOT NULL;",
    )
    .map_err(sql_err("indexing client ids"))?;
    search::migrate(conn)
}

/// Rebuilds the two tables of a file whose conversations were keyed by id alone (`id TEXT PRIMARY
/// KEY`, messages without an owner) into the owner-scoped layout of [`SCHEMA`], in one
/// transaction: each message takes its conversation's owner. SQLite cannot change a primary key
/// in place, so the tables are copied, dropped and renamed (foreign keys off meanwhile, as
/// SQLite's documentation prescribes for such a change).
fn key_by_owner(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .map_err(sql_err("keying conversations by owner"))?;
    let rebuilt = (|| {
        let tx = conn.transaction().map_err(sql_err("begin"))?;
        tx.execute_batch(&format!(
            "CREATE TABLE conversations_v2 ({conversations}) WITHOUT ROWID;
             INSERT INTO conversations_v2 ({columns}) SELECT {columns} FROM conversations;
             CREATE TABLE messages_v2 ({messages}) WITHOUT ROWID;
             INSERT INTO messages_v2 (owner, {message_columns}) \
               SELECT c.owner, {qualified} FROM messages m JOIN conversations c ON c.id = m.conversation_id;
             DROP TABLE messages;
             DROP TABLE conversations;
             ALTER TABLE conversations_v2 RENAME TO conversations;
             ALTER TABLE messages_v2 RENAME TO messages;
             CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, rank DESC, id DESC);
             CREATE INDEX IF NOT EXISTS conversations_by_owner_solution ON conversations (owner, bucket, rank DESC, id DESC);",
            conversations = table_body(SCHEMA, "conversations")?,
            messages = table_body(SCHEMA, "messages")?,
            columns = CONVERSATION_TABLE_COLUMNS,
            message_columns = MESSAGE_TABLE_COLUMNS,
            qualified = MESSAGE_TABLE_COLUMNS
                .split(", ")
                .map(|c| format!("m.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
        ))
        .map_err(sql_err("keying conversations by owner"))?;
        let broken: i64 = tx
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0))
            .map_err(sql_err("checking foreign keys"))?;
        if broken != 0 {
            return Err(StoreError::internal(
                "keying conversations by owner",
                format!("{broken} rows break a foreign key"),
            ));
        }
        tx.commit().map_err(sql_err("commit"))
    })();
    conn.execute_batch("PRAGMA foreign_keys = ON")
        .map_err(sql_err("keying conversations by owner"))?;
    rebuilt
}

/// Every column of the `conversations` table.
const CONVERSATION_TABLE_COLUMNS: &str = "id, owner, title, is_pinned, is_shared, model, solution_type, bucket, \
     created_at, updated_at, last_message, message_count, rank, active_leaf, project_id, folder_id, tags, archived_at, \
     trashed_at, imported_from, shared_until";
/// Every column of the `messages` table but the owner (the rebuild takes it from the conversation).
const MESSAGE_TABLE_COLUMNS: &str = "conversation_id, id, client_id, role, content, parts, model, usage, latency_ms, \
     finish_reason, error, created_at, parent_id, writer";

/// The column list of `CREATE TABLE IF NOT EXISTS <table> (...)` in `schema`.
fn table_body(schema: &'static str, table: &str) -> Result<&'static str, StoreError> {
    let head = format!("CREATE TABLE IF NOT EXISTS {table} (");
    let start = schema
        .find(&head)
        .map(|at| at + head.len())
        .ok_or_else(|| StoreError::internal("reading the schema", format!("no table {table}")))?;
    let len = schema[start..]
        .find("\n) WITHOUT ROWID;")
        .ok_or_else(|| StoreError::internal("reading the schema", format!("table {table} has no end")))?;
    Ok(&schema[start..start + len])
}

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

pub(super) fn sql_err(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
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

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql_err("busy timeout"))?;
        conn.execute_batch(SCHEMA).map_err(sql_err("creating the schema"))?;
        migrate(&mut conn)?;
        let now = chrono::Utc::now().timestamp();
        conn.execute("DELETE FROM events WHERE expires_at < ?1", params![now])
            .map_err(sql_err("expiring events"))?;
        for table in [
            "counters",
            "budgets",
            "stream_slots",
            "audit",
            "idempotency_keys",
            "turn_receipts",
            "live_turns",
            "turn_checkpoints",
        ] {
            conn.execute(&format!("DELETE FROM {table} WHERE expires_at < ?1"), params![now])
                .map_err(sql_err("expiring counters"))?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            event_ttl: crate::store::rules::DEFAULT_EVENT_TTL,
        })
    }

    /// Sets how long analytics events are kept.
    pub fn with_event_ttl(mut self, ttl: Duration) -> Self {
        self.event_ttl = ttl;
        self
    }

    /// How many rows (conversation and messages) exist for `owner`'s conversation `id`, read
    /// around the ownership checks: a diagnostic that lets tests check a cascade left nothing
    /// behind.
    pub async fn raw_row_count(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            conn.query_row(
                "SELECT (SELECT COUNT(*) FROM conversations WHERE owner = ?1 AND id = ?2) \
                 + (SELECT COUNT(*) FROM messages WHERE owner = ?1 AND conversation_id = ?2) \
                 + (SELECT COUNT(*) FROM grants WHERE owner = ?1 AND conversation_id = ?2)",
                params![owner, id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sql_err("counting rows"))
        })
        .await
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(super) async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
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

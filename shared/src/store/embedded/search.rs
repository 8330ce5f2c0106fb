//! Full-text search in SQLite: an FTS5 index over `search_docs`, one row per message and one per
//! conversation title, kept in sync by triggers on `messages` and `conversations`, so every path
//! that writes or deletes a message or a title (turns, the messages API, edits, regenerate,
//! clear, conversation and project deletes, foreign-key cascades) updates the index in its own
//! transaction, and nothing can forget to.
//!
//! `search_fts` is an external-content FTS5 table over `search_docs.body` (the text is stored once,
//! in `search_docs`), tokenized by `unicode61` without diacritic folding: the words of
//! [`crate::domain::text`]. A title row has `message_id = ''`; the default title is indexed as
//! empty (every new conversation has it: it would match everything).

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::{sql_err, EmbeddedStore};
use crate::domain::{text::INDEXED_CHARS, ConversationId, MessageId, Role, SolutionFilter, UserId, DEFAULT_TITLE};
use crate::error::StoreError;
use crate::store::{rules, IndexHit, IndexQuery, Search};

/// The index's tables and the triggers that keep it in sync (idempotent: run at every open, after
/// the tables they watch exist in their final shape).
fn schema() -> String {
    format!(
        r#"
CREATE TABLE IF NOT EXISTS search_docs (
    id              INTEGER PRIMARY KEY,
    owner           TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    role            TEXT,
    created_at      TEXT,
    body            TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS search_docs_by_key ON search_docs (owner, conversation_id, message_id);
CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(
    body, content='search_docs', content_rowid='id', tokenize='unicode61 remove_diacritics 0'
);
CREATE TRIGGER IF NOT EXISTS search_docs_ai AFTER INSERT ON search_docs BEGIN
    INSERT INTO search_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER IF NOT EXISTS search_docs_ad AFTER DELETE ON search_docs BEGIN
    INSERT INTO search_fts (search_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER IF NOT EXISTS search_docs_au AFTER UPDATE OF body ON search_docs BEGIN
    INSERT INTO search_fts (search_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO search_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER IF NOT EXISTS messages_search_ai AFTER INSERT ON messages BEGIN
    DELETE FROM search_docs WHERE owner = new.owner AND conversation_id = new.conversation_id AND message_id = new.id;
    INSERT INTO search_docs (owner, conversation_id, message_id, role, created_at, body)
    VALUES (new.owner, new.conversation_id, new.id, new.role, new.created_at, {message_body});
END;
CREATE TRIGGER IF NOT EXISTS messages_search_au AFTER UPDATE OF content, role ON messages BEGIN
    UPDATE search_docs SET body = {message_body}, role = new.role
    WHERE owner = old.owner AND conversation_id = old.conversation_id AND message_id = old.id;
END;
CREATE TRIGGER IF NOT EXISTS messages_search_ad AFTER DELETE ON messages BEGIN
    DELETE FROM search_docs WHERE owner = old.owner AND conversation_id = old.conversation_id AND message_id = old.id;
END;
CREATE TRIGGER IF NOT EXISTS conversations_search_ai AFTER INSERT ON conversations BEGIN
    DELETE FROM search_docs WHERE owner = new.owner AND conversation_id = new.id AND message_id = '';
    INSERT INTO search_docs (owner, conversation_id, message_id, body) VALUES (new.owner, new.id, '', {title_body});
END;
CREATE TRIGGER IF NOT EXISTS conversations_search_au AFTER UPDATE OF title ON conversations
WHEN new.title IS NOT old.title BEGIN
    UPDATE search_docs SET body = {title_body} WHERE owner = old.owner AND conversation_id = old.id AND message_id = '';
END;
CREATE TRIGGER IF NOT EXISTS conversations_search_ad AFTER DELETE ON conversations BEGIN
    DELETE FROM search_docs WHERE owner = old.owner AND conversation_id = old.id;
END;
"#,
        message_body = format_args!("substr(new.content, 1, {INDEXED_CHARS})"),
        title_body = format_args!(
            "CASE WHEN new.title = '{}' THEN '' ELSE substr(new.title, 1, {INDEXED_CHARS}) END",
            DEFAULT_TITLE.replace('\'', "''")
        ),
    )
}

/// Creates the index if this database has none, and fills it from the stored conversations and
/// messages (a database made before search existed), in one transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let existed: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'search_docs'")
        .and_then(|mut s| s.exists([]))
        .map_err(sql_err("reading the schema"))?;
    let tx = conn.transaction().map_err(sql_err("begin"))?;
    tx.execute_batch(&schema())
        .map_err(sql_err("creating the search index"))?;
    if !existed {
        fill(&tx)?;
    }
    tx.commit().map_err(sql_err("commit"))
}

/// Fills `search_docs` (and, through its triggers, `search_fts`) from the stored conversations
/// and messages: what the triggers would have written for each.
fn fill(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "INSERT INTO search_docs (owner, conversation_id, message_id, body) \
             SELECT owner, id, '', CASE WHEN title = ?1 THEN '' ELSE substr(title, 1, {INDEXED_CHARS}) END \
             FROM conversations"
        ),
        params![DEFAULT_TITLE],
    )
    .map_err(sql_err("indexing titles"))?;
    tx.execute_batch(&format!(
        "INSERT INTO search_docs (owner, conversation_id, message_id, role, created_at, body) \
         SELECT owner, conversation_id, id, role, created_at, substr(content, 1, {INDEXED_CHARS}) FROM messages"
    ))
    .map_err(sql_err("indexing messages"))
}

impl EmbeddedStore {
    /// Rebuilds the search index from the stored conversations and messages, in one transaction
    /// (`athena-migrate reindex` on a database file): `search_docs` emptied and derived again
    /// from the tables, then FTS5's `rebuild` (the full-text index made again from
    /// `search_docs`, whatever state it was in). Returns the documents indexed. The triggers
    /// keep the index in sync on every write, so this repairs only a damaged or hand-edited
    /// file; it is idempotent.
    pub async fn rebuild_search_index(&self) -> Result<u64, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            // Without `search_docs`' own triggers: FTS5's 'delete' of rows it may not hold (the
            // index being repaired) is undefined; 'rebuild' then makes `search_fts` whole.
            tx.execute_batch(
                "DROP TRIGGER IF EXISTS search_docs_ai; DROP TRIGGER IF EXISTS search_docs_ad; \
                 DELETE FROM search_docs;",
            )
            .map_err(sql_err("emptying the search index"))?;
            fill(&tx)?;
            tx.execute("INSERT INTO search_fts (search_fts) VALUES ('rebuild')", [])
                .map_err(sql_err("rebuilding the full-text index"))?;
            tx.execute_batch(&schema())
                .map_err(sql_err("restoring the search index's triggers"))?;
            let docs: i64 = tx
                .query_row("SELECT COUNT(*) FROM search_docs", [], |r| r.get(0))
                .map_err(sql_err("counting the search index"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(u64::try_from(docs).unwrap_or(0))
        })
        .await
    }
}

/// The FTS5 query of `terms`: each term a quoted string, all of them required.
fn match_expression(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

type Row = (String, String, Option<String>, Option<String>, String);

fn to_hit((conversation, message, role, created_at, body): Row) -> Result<IndexHit, StoreError> {
    let conversation_id =
        ConversationId::parse(&conversation).map_err(|e| StoreError::internal("indexed conversation id", e))?;
    let message_id = (!message.is_empty())
        .then(|| MessageId::parse(&message))
        .transpose()
        .map_err(|e| StoreError::internal("indexed message id", e))?;
    let role = role
        .map(|r| r.parse::<Role>())
        .transpose()
        .map_err(|e| StoreError::internal("indexed role", e))?;
    let created_at = created_at.as_deref().map(rules::parse_ts).transpose()?;
    let text = message_id.is_some().then_some(body);
    Ok(IndexHit {
        conversation_id,
        message_id,
        role,
        created_at,
        text,
    })
}

#[async_trait]
impl Search for EmbeddedStore {
    #[tracing::instrument(name = "embedded.search_index", skip_all, fields(terms = query.terms.len(), offset = query.offset))]
    async fn search_index(&self, owner: &UserId, query: &IndexQuery) -> Result<Vec<IndexHit>, StoreError> {
        if query.terms.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        let expression = match_expression(&query.terms);
        let (owner, limit, offset) = (owner.to_string(), query.limit as i64, query.offset as i64);
        let bucket = query.solution.map(SolutionFilter::bucket);
        let rows = self
            .with(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT d.conversation_id, d.message_id, d.role, d.created_at, d.body \
                         FROM search_fts JOIN search_docs d ON d.id = search_fts.rowid \
                         WHERE search_fts MATCH ?1 AND d.owner = ?2 \
                         AND (?5 IS NULL OR EXISTS (SELECT 1 FROM conversations c \
                         WHERE c.owner = d.owner AND c.id = d.conversation_id AND c.bucket = ?5)) \
                         ORDER BY d.message_id = '' DESC, bm25(search_fts) ASC, d.created_at DESC, \
                         d.message_id DESC, d.conversation_id DESC \
                         LIMIT ?3 OFFSET ?4",
                    )
                    .map_err(sql_err("searching"))?;
                let rows = stmt
                    .query_map(params![expression, owner, limit, offset, bucket], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(sql_err("searching"))?;
                rows.collect::<Result<Vec<Row>, _>>().map_err(sql_err("searching"))
            })
            .await?;
        rows.into_iter().map(to_hit).collect()
    }
}

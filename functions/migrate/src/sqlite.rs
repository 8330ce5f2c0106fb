//! The original on SQLite (`prisma/dev.db`), opened read-only. Prisma's SQLite connector stores
//! `Boolean` as INTEGER 0/1 and `DateTime` as INTEGER milliseconds since the epoch (ISO-8601
//! text is accepted too). Two cursors, conversations by id and messages by conversation id,
//! merged as they stream: one conversation's messages are held at a time.

use std::collections::HashSet;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::source::{
    check_columns as check, parse_text_millis, Item, Merger, Millis, Received, ReceivedEvent, SourceConversation,
    SourceError, SourceEvent, SourceMessage, CONVERSATIONS, CONVERSATION_COLUMNS, EVENTS, EVENT_COLUMNS, MESSAGES,
    MESSAGE_COLUMNS, SOLUTION_COLUMN,
};

/// An opened, checked SQLite source.
pub struct SqliteSource {
    path: String,
    conn: Connection,
    has_solution: bool,
    has_events: bool,
}

impl SqliteSource {
    /// Opens `path` read-only and checks it holds the Prisma schema's tables and columns.
    pub fn open(path: &str) -> Result<Self, SourceError> {
        if !std::path::Path::new(path).is_file() {
            return Err(SourceError::Open {
                what: path.to_owned(),
                reason: "no such file".to_owned(),
            });
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| SourceError::Open {
                    what: path.to_owned(),
                    reason: e.to_string(),
                })?;
        let conversations = columns(&conn, path, CONVERSATIONS)?;
        let messages = columns(&conn, path, MESSAGES)?;
        check(&conversations, CONVERSATIONS, &CONVERSATION_COLUMNS)?;
        check(&messages, MESSAGES, &MESSAGE_COLUMNS)?;
        let has_events = match columns(&conn, path, EVENTS) {
            Ok(events) => check(&events, EVENTS, &EVENT_COLUMNS).map(|()| true)?,
            Err(SourceError::MissingTable { .. }) => false,
            Err(e) => return Err(e),
        };
        Ok(Self {
            has_events,
            path: path.to_owned(),
            has_solution: conversations.contains(SOLUTION_COLUMN),
            conn,
        })
    }

    /// How many conversations the source holds (the progress bar's length).
    pub fn count(&self) -> Result<u64, SourceError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM conversations", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(read_err)
    }

    /// Whether the database predates seed 001 (no `solutionType` column).
    pub fn has_solution(&self) -> bool {
        self.has_solution
    }

    /// Whether the database has seed 001's `analytics_events` table.
    pub fn has_events(&self) -> bool {
        self.has_events
    }

    /// Streams every analytics event into `tx` (call on a blocking thread), in the table's order.
    pub fn stream_events(self, tx: &tokio::sync::mpsc::Sender<ReceivedEvent>) {
        let sent = (|| -> Result<(), SourceError> {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT id, \"eventType\", \"solutionType\", \"conversationId\", model, metadata, timestamp \
                     FROM analytics_events",
                )
                .map_err(read_err)?;
            let optional = |v: ValueRef<'_>| match v {
                ValueRef::Null => None,
                v => Some(text(v)),
            };
            let rows = stmt
                .query_map([], |r| {
                    Ok(SourceEvent {
                        id: text(r.get_ref(0)?),
                        event_type: text(r.get_ref(1)?),
                        solution_type: optional(r.get_ref(2)?),
                        conversation_id: optional(r.get_ref(3)?),
                        model: optional(r.get_ref(4)?),
                        metadata: optional(r.get_ref(5)?),
                        timestamp: millis(r.get_ref(6)?),
                    })
                })
                .map_err(read_err)?;
            for row in rows {
                if tx.blocking_send(Ok(row.map_err(read_err)?)).is_err() {
                    break;
                }
            }
            Ok(())
        })();
        if let Err(e) = sent {
            let _ = tx.blocking_send(Err(e));
        }
    }

    /// Streams every conversation into `tx` (call on a blocking thread).
    pub fn stream(self, tx: &tokio::sync::mpsc::Sender<Received>) {
        if let Err(e) = self.send_all(tx) {
            let _ = tx.blocking_send(Err(e));
        }
    }

    fn send_all(&self, tx: &tokio::sync::mpsc::Sender<Received>) -> Result<(), SourceError> {
        let solution = if self.has_solution { "\"solutionType\"" } else { "NULL" };
        let mut conversations = self
            .conn
            .prepare(&format!(
                "SELECT id, title, \"isPinned\", \"isShared\", model, {solution}, \"createdAt\", \"updatedAt\" \
                 FROM conversations ORDER BY id"
            ))
            .map_err(read_err)?;
        let mut messages = self
            .conn
            .prepare(
                "SELECT \"conversationId\", id, role, content, \"createdAt\" FROM messages \
                 ORDER BY \"conversationId\", id",
            )
            .map_err(read_err)?;
        let mut message_rows = messages
            .query_map([], |r| {
                Ok((
                    text(r.get_ref(0)?),
                    SourceMessage {
                        id: text(r.get_ref(1)?),
                        role: text(r.get_ref(2)?),
                        content: text(r.get_ref(3)?),
                        created_at: millis(r.get_ref(4)?),
                    },
                ))
            })
            .map_err(read_err)?;
        let rows = conversations
            .query_map([], |r| {
                Ok(SourceConversation {
                    id: text(r.get_ref(0)?),
                    title: text(r.get_ref(1)?),
                    is_pinned: boolean(r.get_ref(2)?),
                    is_shared: boolean(r.get_ref(3)?),
                    model: text(r.get_ref(4)?),
                    solution_type: match r.get_ref(5)? {
                        ValueRef::Null => None,
                        v => Some(text(v)),
                    },
                    created_at: millis(r.get_ref(6)?),
                    updated_at: millis(r.get_ref(7)?),
                    messages: Vec::new(),
                })
            })
            .map_err(read_err)?;
        let mut merger = Merger::new();
        let orphan = |conversation_id: String, messages: u64| {
            tx.blocking_send(Ok(Item::Orphans {
                conversation_id,
                messages,
            }))
            .is_ok()
        };
        for row in rows {
            let mut conversation = row.map_err(read_err)?;
            if !merger
                .fill(&mut conversation, &mut message_rows, orphan)
                .map_err(read_err)?
            {
                return Ok(());
            }
            if tx.blocking_send(Ok(Item::Conversation(conversation))).is_err() {
                return Ok(());
            }
        }
        merger.rest(&mut message_rows, orphan).map_err(read_err)
    }

    /// The file, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }
}

fn read_err(e: rusqlite::Error) -> SourceError {
    SourceError::Read(e.to_string())
}

/// The column names of `table`; [`SourceError::MissingTable`] when it does not exist.
fn columns(conn: &Connection, path: &str, table: &'static str) -> Result<HashSet<String>, SourceError> {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                SourceError::NotADatabase(path.to_owned())
            }
            e => SourceError::Read(e.to_string()),
        })?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<HashSet<String>, _>>())
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                SourceError::NotADatabase(path.to_owned())
            }
            e => SourceError::Read(e.to_string()),
        })?;
    if names.is_empty() {
        return Err(SourceError::MissingTable { table });
    }
    Ok(names)
}

/// A text column (numbers are written out; NULL is empty: the mapping refuses what needs one).
fn text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    }
}

/// Prisma's SQLite `DateTime`: INTEGER milliseconds, or text.
fn millis(v: ValueRef<'_>) -> Millis {
    match v {
        ValueRef::Integer(i) => Ok(i),
        ValueRef::Real(f) if f.is_finite() => Ok(f as i64),
        ValueRef::Text(t) => parse_text_millis(&String::from_utf8_lossy(t)),
        ValueRef::Null => Err("no timestamp (NULL)".to_owned()),
        _ => Err("not a timestamp".to_owned()),
    }
}

/// Prisma's SQLite `Boolean`: INTEGER 0/1 (text `true`/`false` accepted).
fn boolean(v: ValueRef<'_>) -> Result<bool, String> {
    match v {
        ValueRef::Integer(0) => Ok(false),
        ValueRef::Integer(1) => Ok(true),
        ValueRef::Text(b"true") => Ok(true),
        ValueRef::Text(b"false") => Ok(false),
        other => Err(format!("{:?} is not a boolean (0 or 1)", text(other))),
    }
}

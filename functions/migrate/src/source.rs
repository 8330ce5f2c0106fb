//! What a source (SQLite or PostgreSQL) yields: the original's rows, one conversation at a time
//! with all its messages, in a bounded channel (flat memory), and the errors that stop a run
//! before anything is written.

use tokio::sync::mpsc;

/// The tables and columns of the original's Prisma schema (seed 000 and 001), as Prisma names
/// them (`@@map("conversations")`; fields keep their camelCase names as column names).
pub const CONVERSATIONS: &str = "conversations";
/// The messages table.
pub const MESSAGES: &str = "messages";
/// Columns every conversation row must have.
pub const CONVERSATION_COLUMNS: [&str; 7] = ["id", "title", "isPinned", "isShared", "model", "createdAt", "updatedAt"];
/// Added by seed 001; a database migrated before it has none (every conversation is general).
pub const SOLUTION_COLUMN: &str = "solutionType";
/// Columns every message row must have.
pub const MESSAGE_COLUMNS: [&str; 5] = ["id", "role", "content", "conversationId", "createdAt"];

/// Seed 001's analytics events (absent before it).
pub const EVENTS: &str = "analytics_events";
/// Columns the events table must have when it exists (`userId` is not read: every migrated
/// event is `--owner`'s).
pub const EVENT_COLUMNS: [&str; 7] = [
    "id",
    "eventType",
    "solutionType",
    "conversationId",
    "model",
    "metadata",
    "timestamp",
];

/// Why a source cannot be read: the run stops before writing anything (schema checks) or where
/// it stands (a read failing mid-way: conversations already written stay whole; a rerun resumes).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `--from` is neither `sqlite:PATH` nor `postgres://...`.
    #[error("--from must be sqlite:PATH or postgres://USER@HOST:PORT/DB, not {0:?}")]
    BadSpec(String),
    /// The file or server could not be opened.
    #[error("cannot open {what}: {reason}")]
    Open {
        /// The database.
        what: String,
        /// Why.
        reason: String,
    },
    /// The file is not a SQLite database.
    #[error("{0} is not a SQLite database")]
    NotADatabase(String),
    /// A table of the Prisma schema is missing: not the original's database.
    #[error("table {table:?} is missing: this is not the original Athena's Prisma database (expected tables conversations and messages)")]
    MissingTable {
        /// The table.
        table: &'static str,
    },
    /// A column of the Prisma schema is missing.
    #[error("column {column:?} of table {table:?} is missing: this is not the original Athena's Prisma schema")]
    MissingColumn {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
    },
    /// Reading failed part-way.
    #[error("reading the source failed: {0}")]
    Read(String),
}

/// A timestamp of the source, milliseconds since the epoch, or why it could not be read.
pub type Millis = Result<i64, String>;

/// One message row.
#[derive(Clone, Debug)]
pub struct SourceMessage {
    /// Its id (a CUID).
    pub id: String,
    /// `user` or `assistant` (anything else is refused).
    pub role: String,
    /// Its text.
    pub content: String,
    /// When it was created.
    pub created_at: Millis,
}

/// One conversation row with all its messages (in any order: the mapping sorts them).
#[derive(Clone, Debug)]
pub struct SourceConversation {
    /// Its id (a CUID).
    pub id: String,
    /// Its title.
    pub title: String,
    /// `isPinned` (`Err`: not a boolean).
    pub is_pinned: Result<bool, String>,
    /// `isShared`.
    pub is_shared: Result<bool, String>,
    /// Its model id.
    pub model: String,
    /// `solutionType` (absent before seed 001).
    pub solution_type: Option<String>,
    /// `createdAt`.
    pub created_at: Millis,
    /// `updatedAt`.
    pub updated_at: Millis,
    /// Its messages.
    pub messages: Vec<SourceMessage>,
}

/// One analytics event row.
#[derive(Clone, Debug)]
pub struct SourceEvent {
    /// Its id (a CUID).
    pub id: String,
    /// `api_call`, `conversation_created`, `message_sent`, `error`, ….
    pub event_type: String,
    /// `solutionType`.
    pub solution_type: Option<String>,
    /// `conversationId`.
    pub conversation_id: Option<String>,
    /// `model`.
    pub model: Option<String>,
    /// `metadata` (a JSON string).
    pub metadata: Option<String>,
    /// `timestamp`.
    pub timestamp: Millis,
}

/// What a source sends on its events channel.
pub type ReceivedEvent = Result<SourceEvent, SourceError>;

/// What a source sends, in conversation id order.
#[derive(Debug)]
pub enum Item {
    /// A conversation and its messages.
    Conversation(SourceConversation),
    /// Messages whose conversation does not exist (`conversationId`, how many).
    Orphans {
        /// The missing conversation's id.
        conversation_id: String,
        /// How many messages name it.
        messages: u64,
    },
}

/// What a source sends on its channel.
pub type Received = Result<Item, SourceError>;

/// Conversations in flight between the reader and the writer: the reader stays this far ahead.
pub const CHANNEL_DEPTH: usize = 4;

/// Merges conversations (sorted by id) with messages (sorted by conversation id, bytewise) into
/// items, sending each as soon as it is whole. Returns `false` when the receiver is gone.
pub struct Merger {
    pending: Option<(String, SourceMessage)>,
}

impl Merger {
    /// An empty merger.
    pub fn new() -> Self {
        Self { pending: None }
    }

    /// Collects the messages of `conversation` from `messages`, sending the orphans met before
    /// them (messages of smaller conversation ids). `messages` yields `(conversationId, message)`.
    pub fn fill<E>(
        &mut self,
        conversation: &mut SourceConversation,
        messages: &mut impl Iterator<Item = Result<(String, SourceMessage), E>>,
        mut orphan: impl FnMut(String, u64) -> bool,
    ) -> Result<bool, E> {
        loop {
            let next = match self.pending.take() {
                Some(p) => p,
                None => match messages.next() {
                    Some(row) => row?,
                    None => return Ok(true),
                },
            };
            match next.0.as_str().cmp(conversation.id.as_str()) {
                std::cmp::Ordering::Less => {
                    let (missing, count) = self.run_of(next, messages)?;
                    if !orphan(missing, count) {
                        return Ok(false);
                    }
                }
                std::cmp::Ordering::Equal => conversation.messages.push(next.1),
                std::cmp::Ordering::Greater => {
                    self.pending = Some(next);
                    return Ok(true);
                }
            }
        }
    }

    /// Whether a message of a later conversation was read ahead (the last `fill` stopped there,
    /// not at the end of its rows).
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// After the last conversation: every message left is an orphan.
    pub fn rest<E>(
        &mut self,
        messages: &mut impl Iterator<Item = Result<(String, SourceMessage), E>>,
        mut orphan: impl FnMut(String, u64) -> bool,
    ) -> Result<(), E> {
        loop {
            let next = match self.pending.take() {
                Some(p) => p,
                None => match messages.next() {
                    Some(row) => row?,
                    None => return Ok(()),
                },
            };
            let (missing, count) = self.run_of(next, messages)?;
            if !orphan(missing, count) {
                return Ok(());
            }
        }
    }

    /// Counts the run of messages of `first`'s conversation id, keeping the next one pending.
    fn run_of<E>(
        &mut self,
        first: (String, SourceMessage),
        messages: &mut impl Iterator<Item = Result<(String, SourceMessage), E>>,
    ) -> Result<(String, u64), E> {
        let mut count = 1u64;
        for row in messages.by_ref() {
            let row = row?;
            if row.0 == first.0 {
                count += 1;
            } else {
                self.pending = Some(row);
                break;
            }
        }
        Ok((first.0, count))
    }
}

impl Default for Merger {
    fn default() -> Self {
        Self::new()
    }
}

/// [`SourceError::MissingColumn`] for the first of `wanted` that `have` lacks.
pub fn check_columns(
    have: &std::collections::HashSet<String>,
    table: &'static str,
    wanted: &[&'static str],
) -> Result<(), SourceError> {
    match wanted.iter().find(|c| !have.contains(**c)) {
        Some(column) => Err(SourceError::MissingColumn { table, column }),
        None => Ok(()),
    }
}

/// A channel for one run.
pub fn channel() -> (mpsc::Sender<Received>, mpsc::Receiver<Received>) {
    mpsc::channel(CHANNEL_DEPTH)
}

/// Parses an ISO-8601 text timestamp as Prisma's SQLite connector and people write them:
/// RFC 3339 (`2025-01-31T10:00:00.123Z`), or without a zone (`2025-01-31 10:00:00.123`, UTC), or
/// digits alone (milliseconds since the epoch).
pub fn parse_text_millis(raw: &str) -> Millis {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse::<i64>().map_err(|e| format!("{raw:?}: {e}"));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.timestamp_millis());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(raw, format) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    Err(format!("{raw:?} is not a timestamp (epoch milliseconds or ISO-8601)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_timestamps_in_every_accepted_shape() {
        assert_eq!(parse_text_millis("1760000000123"), Ok(1_760_000_000_123));
        assert_eq!(parse_text_millis("2025-10-09T08:53:20.123Z"), Ok(1_760_000_000_123));
        assert_eq!(
            parse_text_millis("2025-10-09T10:53:20.123+02:00"),
            Ok(1_760_000_000_123)
        );
        assert_eq!(parse_text_millis("2025-10-09 08:53:20.123"), Ok(1_760_000_000_123));
        assert_eq!(parse_text_millis("2025-10-09 08:53:20"), Ok(1_760_000_000_000));
        assert!(parse_text_millis("yesterday").is_err());
        assert!(parse_text_millis("").is_err());
    }

    fn m(conv: &str, id: &str) -> Result<(String, SourceMessage), ()> {
        Ok((
            conv.to_owned(),
            SourceMessage {
                id: id.to_owned(),
                role: "user".to_owned(),
                content: String::new(),
                created_at: Ok(0),
            },
        ))
    }

    fn c(id: &str) -> SourceConversation {
        SourceConversation {
            id: id.to_owned(),
            title: String::new(),
            is_pinned: Ok(false),
            is_shared: Ok(false),
            model: String::new(),
            solution_type: None,
            created_at: Ok(0),
            updated_at: Ok(0),
            messages: Vec::new(),
        }
    }

    #[test]
    fn the_merge_gives_each_conversation_its_messages_and_reports_orphans() {
        let rows = vec![
            m("a", "1"),
            m("b", "2"),
            m("b", "3"),
            m("c", "4"),
            m("e", "5"),
            m("e", "6"),
            m("f", "7"),
        ];
        let mut rows = rows.into_iter();
        let mut merger = Merger::new();
        let mut orphans = Vec::new();
        let mut seen = Vec::new();
        for id in ["a", "c", "d"] {
            let mut conv = c(id);
            let more = merger
                .fill(&mut conv, &mut rows, |id, n| {
                    orphans.push((id, n));
                    true
                })
                .expect("rows");
            assert!(more);
            seen.push((
                conv.id.clone(),
                conv.messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
            ));
        }
        merger
            .rest(&mut rows, |id, n| {
                orphans.push((id, n));
                true
            })
            .expect("rows");
        assert_eq!(
            seen,
            vec![
                ("a".to_owned(), vec!["1".to_owned()]),
                ("c".to_owned(), vec!["4".to_owned()]),
                ("d".to_owned(), vec![]),
            ]
        );
        assert_eq!(
            orphans,
            vec![("b".to_owned(), 2), ("e".to_owned(), 2), ("f".to_owned(), 1)]
        );
    }
}

//! The original on PostgreSQL (`DATABASE_URL`). Prisma lays the models out as quoted camelCase
//! columns, `BOOLEAN` and `TIMESTAMP(3)` (UTC, no zone). Timestamps are read as epoch
//! milliseconds in SQL; ids are ordered bytewise (`COLLATE "C"`) so that the two streams merge
//! the same way as on SQLite. Two connections: one streams conversations, the other messages.

use std::collections::{HashSet, VecDeque};

use futures::{pin_mut, StreamExt};
use tokio_postgres::{Client, NoTls, Row};

use crate::source::{
    check_columns as check, Item, Merger, Received, ReceivedEvent, SourceConversation, SourceError, SourceEvent,
    SourceMessage, CONVERSATIONS, CONVERSATION_COLUMNS, EVENTS, EVENT_COLUMNS, MESSAGES, MESSAGE_COLUMNS,
    SOLUTION_COLUMN,
};

/// Messages read ahead of the merge (one batch of the message stream).
const BATCH: usize = 512;

/// An opened, checked PostgreSQL source.
pub struct PostgresSource {
    url: String,
    conversations: Client,
    messages: Client,
    has_solution: bool,
    has_events: bool,
}

async fn connect(url: &str) -> Result<Client, SourceError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| SourceError::Open {
            what: redact(url),
            reason: e.to_string(),
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("athena-migrate: the PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl PostgresSource {
    /// Connects to `url` and checks it holds the Prisma schema's tables and columns.
    pub async fn open(url: &str) -> Result<Self, SourceError> {
        let conversations = connect(url).await?;
        let messages = connect(url).await?;
        let conversation_columns = columns(&conversations, CONVERSATIONS).await?;
        let message_columns = columns(&conversations, MESSAGES).await?;
        check(&conversation_columns, CONVERSATIONS, &CONVERSATION_COLUMNS)?;
        check(&message_columns, MESSAGES, &MESSAGE_COLUMNS)?;
        let has_events = match columns(&conversations, EVENTS).await {
            Ok(events) => check(&events, EVENTS, &EVENT_COLUMNS).map(|()| true)?,
            Err(SourceError::MissingTable { .. }) => false,
            Err(e) => return Err(e),
        };
        Ok(Self {
            has_events,
            url: redact(url),
            has_solution: conversation_columns.contains(SOLUTION_COLUMN),
            conversations,
            messages,
        })
    }

    /// How many conversations the source holds.
    pub async fn count(&self) -> Result<u64, SourceError> {
        let row = self
            .conversations
            .query_one("SELECT COUNT(*) FROM conversations", &[])
            .await
            .map_err(read_err)?;
        let n: i64 = row.try_get(0).map_err(read_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Whether the database predates seed 001 (no `solutionType` column).
    pub fn has_solution(&self) -> bool {
        self.has_solution
    }

    /// The server, for messages (no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the database has seed 001's `analytics_events` table.
    pub fn has_events(&self) -> bool {
        self.has_events
    }

    /// Streams every analytics event into `tx`, in the table's order.
    pub async fn stream_events(self, tx: tokio::sync::mpsc::Sender<ReceivedEvent>) {
        let sent = async {
            let rows = self
                .conversations
                .query_raw(
                    "SELECT id, \"eventType\", \"solutionType\", \"conversationId\", model, metadata, \
                     floor(extract(epoch from timestamp) * 1000)::bigint FROM analytics_events",
                    std::iter::empty::<i32>(),
                )
                .await
                .map_err(read_err)?;
            pin_mut!(rows);
            while let Some(row) = rows.next().await {
                let row = row.map_err(read_err)?;
                let event = SourceEvent {
                    id: get(&row, 0)?,
                    event_type: get::<Option<String>>(&row, 1)?.unwrap_or_default(),
                    solution_type: get(&row, 2)?,
                    conversation_id: get(&row, 3)?,
                    model: get(&row, 4)?,
                    metadata: get(&row, 5)?,
                    timestamp: get::<Option<i64>>(&row, 6)?.ok_or_else(|| "no timestamp (NULL)".to_owned()),
                };
                if tx.send(Ok(event)).await.is_err() {
                    break;
                }
            }
            Ok::<(), SourceError>(())
        }
        .await;
        if let Err(e) = sent {
            let _ = tx.send(Err(e)).await;
        }
    }

    /// Streams every conversation into `tx`.
    pub async fn stream(self, tx: tokio::sync::mpsc::Sender<Received>) {
        if let Err(e) = self.send_all(&tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn send_all(&self, tx: &tokio::sync::mpsc::Sender<Received>) -> Result<(), SourceError> {
        let solution = if self.has_solution {
            "\"solutionType\""
        } else {
            "NULL::text"
        };
        let ms = |column: &str| format!("floor(extract(epoch from \"{column}\") * 1000)::bigint");
        let conversations = self
            .conversations
            .query_raw(
                &format!(
                    "SELECT id, title, \"isPinned\", \"isShared\", model, {solution}, {}, {} \
                     FROM conversations ORDER BY id COLLATE \"C\"",
                    ms("createdAt"),
                    ms("updatedAt")
                ),
                std::iter::empty::<i32>(),
            )
            .await
            .map_err(read_err)?;
        let messages = self
            .messages
            .query_raw(
                &format!(
                    "SELECT \"conversationId\", id, role, content, {} FROM messages \
                     ORDER BY \"conversationId\" COLLATE \"C\", id COLLATE \"C\"",
                    ms("createdAt")
                ),
                std::iter::empty::<i32>(),
            )
            .await
            .map_err(read_err)?;
        pin_mut!(conversations);
        pin_mut!(messages);
        let mut merger = Merger::new();
        // The merge is synchronous: it reads from a buffer of message rows refilled between
        // conversations, so a conversation's messages may span buffers (the merge stops at the
        // buffer's end and continues once it is refilled).
        let mut buffer: VecDeque<Result<(String, SourceMessage), SourceError>> = VecDeque::new();
        let mut messages_done = false;
        let mut orphans: Vec<(String, u64)> = Vec::new();
        while let Some(row) = conversations.next().await {
            let mut conversation = conversation_of(&row.map_err(read_err)?)?;
            loop {
                if buffer.is_empty() && !messages_done {
                    messages_done = refill(&mut messages, &mut buffer).await;
                }
                {
                    let mut rows = std::iter::from_fn(|| buffer.pop_front());
                    merger.fill(&mut conversation, &mut rows, |id, n| {
                        orphans.push((id, n));
                        true
                    })?;
                }
                // Stopped at a greater conversation id, or every message is read: this
                // conversation is whole. Otherwise the buffer ran out: read more.
                if merger.has_pending() || messages_done {
                    break;
                }
            }
            if !send_orphans(tx, &mut orphans).await {
                return Ok(());
            }
            if tx.send(Ok(Item::Conversation(conversation))).await.is_err() {
                return Ok(());
            }
        }
        loop {
            if buffer.is_empty() && !messages_done {
                messages_done = refill(&mut messages, &mut buffer).await;
            }
            {
                let mut rows = std::iter::from_fn(|| buffer.pop_front());
                merger.rest(&mut rows, |id, n| {
                    orphans.push((id, n));
                    true
                })?;
            }
            if messages_done {
                break;
            }
        }
        send_orphans(tx, &mut orphans).await;
        Ok(())
    }
}

/// Sends the orphan runs collected so far (runs cut at a buffer's end as one); `false` when the
/// receiver is gone.
async fn send_orphans(tx: &tokio::sync::mpsc::Sender<Received>, orphans: &mut Vec<(String, u64)>) -> bool {
    merge_orphan_runs(orphans);
    for (conversation_id, messages) in orphans.drain(..) {
        if tx
            .send(Ok(Item::Orphans {
                conversation_id,
                messages,
            }))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

/// Orphan runs cut at a buffer's end are reported as one.
fn merge_orphan_runs(orphans: &mut Vec<(String, u64)>) {
    let mut merged: Vec<(String, u64)> = Vec::with_capacity(orphans.len());
    for (id, n) in orphans.drain(..) {
        match merged.last_mut() {
            Some((last, count)) if *last == id => *count += n,
            _ => merged.push((id, n)),
        }
    }
    *orphans = merged;
}

/// Reads up to [`BATCH`] message rows into `buffer`; `true` when the stream has ended.
async fn refill(
    messages: &mut std::pin::Pin<&mut tokio_postgres::RowStream>,
    buffer: &mut VecDeque<Result<(String, SourceMessage), SourceError>>,
) -> bool {
    for _ in 0..BATCH {
        match messages.next().await {
            Some(row) => buffer.push_back(row.map_err(read_err).and_then(|r| message_of(&r))),
            None => return true,
        }
    }
    false
}

fn read_err(e: tokio_postgres::Error) -> SourceError {
    SourceError::Read(e.to_string())
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, SourceError> {
    row.try_get(i).map_err(read_err)
}

fn conversation_of(row: &Row) -> Result<SourceConversation, SourceError> {
    let ms = |i: usize| -> Result<Result<i64, String>, SourceError> {
        Ok(get::<Option<i64>>(row, i)?.ok_or_else(|| "no timestamp (NULL)".to_owned()))
    };
    let flag = |i: usize| -> Result<Result<bool, String>, SourceError> {
        Ok(get::<Option<bool>>(row, i)?.ok_or_else(|| "NULL is not a boolean".to_owned()))
    };
    Ok(SourceConversation {
        id: get(row, 0)?,
        title: get::<Option<String>>(row, 1)?.unwrap_or_default(),
        is_pinned: flag(2)?,
        is_shared: flag(3)?,
        model: get::<Option<String>>(row, 4)?.unwrap_or_default(),
        solution_type: get(row, 5)?,
        created_at: ms(6)?,
        updated_at: ms(7)?,
        messages: Vec::new(),
    })
}

fn message_of(row: &Row) -> Result<(String, SourceMessage), SourceError> {
    Ok((
        get::<Option<String>>(row, 0)?.unwrap_or_default(),
        SourceMessage {
            id: get(row, 1)?,
            role: get::<Option<String>>(row, 2)?.unwrap_or_default(),
            content: get::<Option<String>>(row, 3)?.unwrap_or_default(),
            created_at: get::<Option<i64>>(row, 4)?.ok_or_else(|| "no timestamp (NULL)".to_owned()),
        },
    ))
}

/// The column names of `table` in the connection's schema; [`SourceError::MissingTable`] when it
/// does not exist.
async fn columns(client: &Client, table: &'static str) -> Result<HashSet<String>, SourceError> {
    let rows = client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )
        .await
        .map_err(read_err)?;
    let names = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<HashSet<String>, _>>()
        .map_err(read_err)?;
    if names.is_empty() {
        return Err(SourceError::MissingTable { table });
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_password_never_shows() {
        assert_eq!(
            super::redact("postgres://athena:s3cret@127.0.0.1:5432/athena"),
            "postgres://athena@127.0.0.1:5432/athena"
        );
        assert_eq!(
            super::redact("postgres://127.0.0.1/athena"),
            "postgres://127.0.0.1/athena"
        );
    }
}

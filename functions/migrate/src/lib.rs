//! `athena-migrate`: the original Athena's Prisma database (seed 000/001: SQLite `prisma/dev.db`
//! or PostgreSQL `DATABASE_URL`) into an Athena store, through the store's ports
//! (`Conversations::claim_conversation_id`, `Conversations::import_conversation`): the same
//! all-or-nothing, resumable write `POST /api/import` uses (on DynamoDB, a large conversation is
//! written hidden, in batches with the SDK's retries, then shown). See `docs/migrate.md`.
//!
//! - **Flat memory**: the source streams conversations by id, each with its messages, through a
//!   bounded channel; one conversation is held at a time (plus [`source::CHANNEL_DEPTH`] read
//!   ahead).
//! - **Faithful**: conversation ids kept (CUIDs are valid Athena ids); titles, flags, model
//!   (kept as stored, flagged when the deployment's catalog does not have it), solution and
//!   timestamps kept to the millisecond; messages ordered by `createdAt`, ties by id, each with
//!   an id derived from its position (Athena orders messages by id) ending in the original's id.
//! - **Idempotent and resumable**: a conversation already there is skipped; one another user
//!   holds is refused; an interrupted run is finished by the next.
//! - **Nothing half-written**: a conversation with a bad row (role, timestamp, flag, id) is
//!   refused whole, with the reason; messages whose conversation does not exist are refused.
//! - **History**: seed 001's analytics events become Athena's, and the daily counters are rebuilt
//!   from them once per day ([`events`]).

pub mod events;
pub mod postgres;
pub mod reindex;
pub mod source;
pub mod sqlite;

use serde::Serialize;
use shared::catalog::Catalog;
use shared::domain::{Conversation, ConversationId, Message, MessageId, Role, Solution, Timestamp, Title, UserId};
use shared::error::StoreError;
use shared::store::Store;

use source::{Item, Received, SourceConversation, SourceError};

/// Command-line arguments read one by one: `--name value` or `--name=value`.
pub struct ArgReader<I> {
    it: I,
    inline: Option<String>,
}

impl<I: Iterator<Item = String>> ArgReader<I> {
    /// Reads `it`.
    pub fn new(it: I) -> Self {
        Self { it, inline: None }
    }

    /// The next argument's name (`--name` of `--name=value`).
    pub fn next_name(&mut self) -> Option<String> {
        let arg = self.it.next()?;
        match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                self.inline = Some(value.to_owned());
                Some(name.to_owned())
            }
            _ => {
                self.inline = None;
                Some(arg)
            }
        }
    }

    /// The value of the argument just named (`what` names it in the error).
    pub fn value(&mut self, what: &str) -> Result<String, String> {
        self.inline
            .take()
            .or_else(|| self.it.next())
            .ok_or(format!("{what} needs a value"))
    }
}

/// Where to read from (`--from`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum From {
    /// `sqlite:PATH` (also `file:PATH`).
    Sqlite(String),
    /// `postgres://...` or `postgresql://...`.
    Postgres(String),
}

impl From {
    /// Parses `--from`.
    pub fn parse(raw: &str) -> Result<Self, SourceError> {
        if let Some(path) = raw.strip_prefix("sqlite:").or_else(|| raw.strip_prefix("file:")) {
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.is_empty() {
                return Ok(From::Sqlite(path.to_owned()));
            }
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(From::Postgres(raw.to_owned()));
        }
        Err(SourceError::BadSpec(raw.to_owned()))
    }
}

/// An opened, checked source.
pub enum Source {
    /// SQLite.
    Sqlite(Box<sqlite::SqliteSource>),
    /// PostgreSQL.
    Postgres(Box<postgres::PostgresSource>),
}

impl Source {
    /// Opens the source and checks its schema: nothing is written before this succeeds.
    pub async fn open(from: &From) -> Result<Self, SourceError> {
        match from {
            From::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || sqlite::SqliteSource::open(&path))
                    .await
                    .map_err(|e| SourceError::Read(e.to_string()))?
                    .map(|s| Source::Sqlite(Box::new(s)))
            }
            From::Postgres(url) => postgres::PostgresSource::open(url)
                .await
                .map(|p| Source::Postgres(Box::new(p))),
        }
    }

    /// How many conversations it holds.
    pub async fn count(&self) -> Result<u64, SourceError> {
        match self {
            Source::Sqlite(s) => s.count(),
            Source::Postgres(p) => p.count().await,
        }
    }

    /// Whether it has seed 001's `solutionType` column.
    pub fn has_solution(&self) -> bool {
        match self {
            Source::Sqlite(s) => s.has_solution(),
            Source::Postgres(p) => p.has_solution(),
        }
    }

    /// Whether it has seed 001's `analytics_events` table.
    pub fn has_events(&self) -> bool {
        match self {
            Source::Sqlite(s) => s.has_events(),
            Source::Postgres(p) => p.has_events(),
        }
    }

    /// Starts streaming its analytics events (none without the table).
    pub fn stream_events(self) -> tokio::sync::mpsc::Receiver<source::ReceivedEvent> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        if !self.has_events() {
            return rx;
        }
        match self {
            Source::Sqlite(s) => {
                tokio::task::spawn_blocking(move || s.stream_events(&tx));
            }
            Source::Postgres(p) => {
                tokio::spawn(async move { p.stream_events(tx).await });
            }
        }
        rx
    }

    /// Starts streaming: conversations in id order, then orphans.
    pub fn stream(self) -> tokio::sync::mpsc::Receiver<Received> {
        let (tx, rx) = source::channel();
        match self {
            Source::Sqlite(s) => {
                tokio::task::spawn_blocking(move || s.stream(&tx));
            }
            Source::Postgres(p) => {
                tokio::spawn(async move { p.stream(tx).await });
            }
        }
        rx
    }
}

/// How a run behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Read and validate everything, write nothing (conversations already there are reported
    /// as skipped; the others as what would be written).
    pub dry_run: bool,
}

/// Read / written / skipped / refused counts of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Read from the source.
    pub read: u64,
    /// Written (with `--dry-run`: that would be written).
    pub written: u64,
    /// Already there: nothing written.
    pub skipped: u64,
    /// Not migrated (see the refusals).
    pub refused: u64,
}

/// Why something was not migrated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// The conversation's id (for orphans: the missing conversation's id).
    pub conversation_id: String,
    /// Machine-readable: `INVALID_ROW`, `ORPHAN_MESSAGES`, `OTHER_OWNER`, `TOO_LARGE`,
    /// `INVALID_EVENT` (an analytics event; `conversationId` is then `(event <id>)`).
    pub code: &'static str,
    /// For people.
    pub reason: String,
}

/// Something kept as stored but worth a look (a model the catalog does not know, a title
/// Athena would not accept as typed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    /// The conversation's id.
    pub conversation_id: String,
    /// For people.
    pub note: String,
}

/// Most refusals and flags listed one by one (the counts are always complete).
pub const MAX_LISTED: usize = 1000;

/// The final report.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `--dry-run`: nothing was written.
    pub dry_run: bool,
    /// Conversations.
    pub conversations: Counts,
    /// Messages.
    pub messages: Counts,
    /// Analytics events (`skipped`: their day's counters were imported before, or they are past
    /// the event retention and are in the counters only).
    pub events: Counts,
    /// Why things were refused (at most [`MAX_LISTED`]).
    pub refusals: Vec<Refusal>,
    /// Kept as stored, flagged (at most [`MAX_LISTED`]).
    pub flags: Vec<Flag>,
}

impl Report {
    fn refuse(&mut self, conversation_id: &str, code: &'static str, reason: String, messages: u64) {
        self.conversations.refused += u64::from(code != "ORPHAN_MESSAGES");
        self.messages.refused += messages;
        if self.refusals.len() < MAX_LISTED {
            self.refusals.push(Refusal {
                conversation_id: conversation_id.to_owned(),
                code,
                reason,
            });
        }
    }

    fn refuse_event(&mut self, event_id: &str, reason: String) {
        self.events.refused += 1;
        if self.refusals.len() < MAX_LISTED {
            self.refusals.push(Refusal {
                conversation_id: format!("(event {event_id})"),
                code: "INVALID_EVENT",
                reason,
            });
        }
    }

    fn flag(&mut self, conversation_id: &str, note: String) {
        if self.flags.len() < MAX_LISTED {
            self.flags.push(Flag {
                conversation_id: conversation_id.to_owned(),
                note,
            });
        }
    }

    /// The report for people, one line per count, refusal and flag.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let verb = if self.dry_run { "would write" } else { "written" };
        for (what, c) in [
            ("conversations", self.conversations),
            ("messages", self.messages),
            ("events", self.events),
        ] {
            let _ = writeln!(
                out,
                "{what:<14} read {:>8}  {verb} {:>8}  skipped {:>8}  refused {:>8}",
                c.read, c.written, c.skipped, c.refused
            );
        }
        for r in &self.refusals {
            let _ = writeln!(out, "refused {} [{}]: {}", r.conversation_id, r.code, r.reason);
        }
        for f in &self.flags {
            let _ = writeln!(out, "note    {}: {}", f.conversation_id, f.note);
        }
        if self.dry_run {
            out.push_str("dry run: nothing was written\n");
        }
        out
    }
}

/// What stops a run (a conversation already written stays whole; rerun to resume).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The store failed (after the SDK's retries): rerun to resume.
    #[error("the store failed on conversation {conversation}: {error} (rerun to resume: what was written stays, nothing is written twice)")]
    Store {
        /// The conversation being written.
        conversation: String,
        /// The store's error.
        error: StoreError,
    },
}

/// A conversation and its messages as Athena stores them, or why not.
pub fn map(
    source: SourceConversation,
    owner: &UserId,
    catalog: &Catalog,
    flags: &mut Vec<String>,
) -> Result<(Conversation, Vec<Message>), String> {
    let id = ConversationId::parse(&source.id).map_err(|e| format!("conversation id {:?}: {e}", source.id))?;
    let created = at(source.created_at, "createdAt")?;
    let updated = at(source.updated_at, "updatedAt")?;
    let is_pinned = source.is_pinned.map_err(|e| format!("isPinned: {e}"))?;
    let is_shared = source.is_shared.map_err(|e| format!("isShared: {e}"))?;
    let solution = match source.solution_type.as_deref().map(str::trim) {
        None | Some("") | Some("general") => None,
        Some(raw) => Some(raw.parse::<Solution>().map_err(|_| {
            format!(
                "solutionType {raw:?} is not one of {}",
                Solution::ALL.map(Solution::as_str).join(", ")
            )
        })?),
    };
    let title = match Title::parse(&source.title) {
        Ok(t) => t.as_str().to_owned(),
        Err(e) => {
            let made = Title::from_first_message(&source.title, shared::domain::MAX_TITLE_CHARS);
            flags.push(format!("title {:?} {e}; stored as {:?}", source.title, made.as_str()));
            made.as_str().to_owned()
        }
    };
    if catalog.get(&source.model).is_none() {
        flags.push(format!(
            "model {:?} is not in this deployment's catalog (kept as stored; new turns need a model of the catalog)",
            source.model
        ));
    }
    // Messages: createdAt, ties by id (bytewise): the same order at every run.
    let mut rows = Vec::with_capacity(source.messages.len());
    for m in source.messages {
        let when = match &m.created_at {
            Ok(ms) => *ms,
            Err(e) => return Err(format!("message {:?}: createdAt: {e}", m.id)),
        };
        rows.push((when, m));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    let mut messages = Vec::with_capacity(rows.len());
    for (seq, (when, m)) in rows.into_iter().enumerate() {
        let role: Role = m.role.parse().map_err(|_| {
            format!(
                "message {:?}: role {:?} is not user, assistant, system or tool",
                m.id, m.role
            )
        })?;
        let at = at(Ok(when), "createdAt").map_err(|e| format!("message {:?}: {e}", m.id))?;
        let message_id = message_id(&source.id, &m.id, at, seq)?;
        let message = Message::text(message_id, id.clone(), role, m.content, at);
        shared::store::check_message_size(&message).map_err(|e| format!("message {:?}: {e}", m.id))?;
        messages.push(message);
    }
    let mut conversation = Conversation::new(id, owner.clone(), title, source.model, solution, created);
    conversation.is_pinned = is_pinned;
    conversation.is_shared = is_shared;
    conversation.updated_at = updated;
    Ok((conversation, messages))
}

/// A message's id: a ULID whose time is its `createdAt` and whose random part starts with its
/// position (Athena orders a conversation's messages by id), then `-` and the original's id
/// when that fits Athena's 64 characters (the ULID alone otherwise). The same message gets the
/// same id at every run.
fn message_id(conversation: &str, original: &str, at: Timestamp, seq: usize) -> Result<MessageId, String> {
    let ulid = shared::import::derived_id_seq(
        &format!("prisma/{conversation}/{original}"),
        at,
        Some(u32::try_from(seq).unwrap_or(u32::MAX)),
    );
    let kept = format!("{ulid}-{original}");
    MessageId::parse(&kept)
        .or_else(|_| MessageId::parse(&ulid))
        .map_err(|e| format!("message {original:?}: no id: {e}"))
}

/// A timestamp from epoch milliseconds.
fn at(ms: source::Millis, column: &str) -> Result<Timestamp, String> {
    let ms = ms.map_err(|e| format!("{column}: {e}"))?;
    chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("{column}: {ms} is out of range"))
}

/// Migrates everything `rx` yields into `store` for `owner`; `tick` is called after each
/// conversation (the progress bar).
pub async fn migrate(
    mut rx: tokio::sync::mpsc::Receiver<Received>,
    store: &dyn Store,
    owner: &UserId,
    catalog: &Catalog,
    options: Options,
    tick: &(dyn Fn(&Report) + Sync),
) -> Result<Report, MigrateError> {
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    while let Some(item) = rx.recv().await {
        match item? {
            Item::Orphans {
                conversation_id,
                messages,
            } => {
                report.messages.read += messages;
                report.refuse(
                    &conversation_id,
                    "ORPHAN_MESSAGES",
                    format!("{messages} message(s) name conversation {conversation_id:?}, which does not exist"),
                    messages,
                );
            }
            Item::Conversation(source) => {
                let source_id = source.id.clone();
                let count = source.messages.len() as u64;
                report.conversations.read += 1;
                report.messages.read += count;
                let mut notes = Vec::new();
                match map(source, owner, catalog, &mut notes) {
                    Err(reason) => report.refuse(&source_id, "INVALID_ROW", reason, count),
                    Ok((conversation, messages)) => {
                        for note in notes {
                            report.flag(&source_id, note);
                        }
                        write(store, &conversation, &messages, options, &mut report).await?;
                    }
                }
                tick(&report);
            }
        }
    }
    Ok(report)
}

/// Everything `athena-migrate` does: the conversations and messages of `from` ([`migrate`]),
/// then its analytics events and the daily counters rebuilt from them
/// ([`events::migrate_events`]; events past `retention` at `now` go into the counters only).
#[allow(clippy::too_many_arguments)]
pub async fn migrate_all(
    from: &From,
    store: &dyn Store,
    owner: &UserId,
    catalog: &Catalog,
    options: Options,
    retention: std::time::Duration,
    now: Timestamp,
    tick: &(dyn Fn(&Report) + Sync),
) -> Result<Report, MigrateError> {
    let source = Source::open(from).await?;
    let mut report = migrate(source.stream(), store, owner, catalog, options, tick).await?;
    events::migrate_events(from, store, owner, options, retention, now, &mut report).await?;
    Ok(report)
}

/// Counts a conversation whose id another owner holds as refused (`OTHER_OWNER`).
fn refuse_other_owner(report: &mut Report, conversation: &Conversation, count: u64) {
    report.refuse(
        conversation.id.as_str(),
        "OTHER_OWNER",
        "another user already holds a conversation of this id (migrated under another --owner); not merged".to_owned(),
        count,
    );
}

/// Writes one conversation (claim, then the all-or-nothing import), counting what happened.
async fn write(
    store: &dyn Store,
    conversation: &Conversation,
    messages: &[Message],
    options: Options,
    report: &mut Report,
) -> Result<(), MigrateError> {
    let count = messages.len() as u64;
    let failed = |error: StoreError| MigrateError::Store {
        conversation: conversation.id.to_string(),
        error,
    };
    if options.dry_run {
        // The real run's refusal of another owner's id, read without claiming it.
        match store.conversation_id_claimant(&conversation.id).await {
            Ok(Some(holder)) if holder != conversation.owner => {
                refuse_other_owner(report, conversation, count);
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => return Err(failed(e)),
        }
        return match store.get_conversation(&conversation.owner, &conversation.id).await {
            Ok(_) => {
                report.conversations.skipped += 1;
                report.messages.skipped += count;
                Ok(())
            }
            Err(StoreError::NotFound) => {
                report.conversations.written += 1;
                report.messages.written += count;
                Ok(())
            }
            Err(e) => Err(failed(e)),
        };
    }
    match store.claim_conversation_id(&conversation.owner, &conversation.id).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            refuse_other_owner(report, conversation, count);
            return Ok(());
        }
        Err(e) => return Err(failed(e)),
    }
    match store.import_conversation(conversation, messages).await {
        Ok(()) => {
            report.conversations.written += 1;
            report.messages.written += count;
            Ok(())
        }
        Err(StoreError::Conflict(_)) => {
            report.conversations.skipped += 1;
            report.messages.skipped += count;
            Ok(())
        }
        Err(StoreError::TooLarge(reason)) => {
            report.refuse(conversation.id.as_str(), "TOO_LARGE", reason, count);
            Ok(())
        }
        Err(e) => Err(failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_names_sqlite_or_postgres() {
        assert_eq!(
            From::parse("sqlite:prisma/dev.db").ok(),
            Some(From::Sqlite("prisma/dev.db".into()))
        );
        assert_eq!(From::parse("file:./dev.db").ok(), Some(From::Sqlite("./dev.db".into())));
        assert_eq!(
            From::parse("postgres://u@localhost/db").ok(),
            Some(From::Postgres("postgres://u@localhost/db".into()))
        );
        assert!(From::parse("mysql://x").is_err());
        assert!(From::parse("sqlite:").is_err());
    }

    #[test]
    fn message_ids_sort_by_position_and_end_in_the_original_id() {
        let t = chrono::DateTime::from_timestamp_millis(1_760_000_000_000).expect("time");
        let a = message_id("c1", "cm0zzzz", t, 0).expect("id");
        let b = message_id("c1", "cm0aaaa", t, 1).expect("id");
        assert!(a.as_str() < b.as_str(), "{a} < {b}");
        assert!(a.as_str().ends_with("-cm0zzzz"));
        assert_eq!(message_id("c1", "cm0zzzz", t, 0).expect("id"), a, "stable");
        let long = "x".repeat(60);
        assert_eq!(message_id("c1", &long, t, 0).expect("id").as_str().len(), 26);
    }
}

//! Storage port: the `Store` trait with every access pattern Athena needs, and its two adapters.
//!
//! - [`dynamo::DynamoStore`]: DynamoDB, the production store (tables keyed by conversation).
//! - [`embedded::EmbeddedStore`]: SQLite in a file, the default when no table is configured.
//!
//! Both share the semantics defined here (ordering keys, cursors, size limits) and are held to them
//! by one conformance suite (`tests/tests/store_conformance.rs`). `docs/data-model.md` lists every
//! access pattern with its key condition and round trips.

pub mod counting;
pub mod cursor;
pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod schema;

use async_trait::async_trait;

use crate::domain::{
    AnalyticsEvent, ClientMessageId, Conversation, ConversationId, Message, MessageId, SolutionFilter, Timestamp,
    UserId,
};
use crate::error::StoreError;

/// Largest message content a store accepts, in bytes (UTF-8). DynamoDB items are limited to 400 KB,
/// so the DynamoDB store splits content into chunk items written in the same transaction; a message
/// above this bound is refused with [`StoreError::TooLarge`] before anything is written.
pub const MAX_CONTENT_BYTES: usize = 2 * 1024 * 1024;
/// Largest serialized `parts` (tool calls and results) of one message, in bytes.
pub const MAX_PARTS_BYTES: usize = 128 * 1024;
/// Largest page a listing returns.
pub const MAX_PAGE: u32 = 100;
/// Page size when the client does not ask for one.
pub const DEFAULT_PAGE: u32 = 50;

/// One page of a listing, with the cursor of the next page when there is one.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items of this page, in listing order.
    pub items: Vec<T>,
    /// Opaque cursor for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// Parameters of the per-owner conversation listing.
#[derive(Clone, Debug, Default)]
pub struct ListConversations {
    /// Restrict to one solution (or the general chat).
    pub solution: Option<SolutionFilter>,
    /// Page size, 1..=[`MAX_PAGE`]; `None` means [`DEFAULT_PAGE`].
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Parameters of a message listing.
#[derive(Clone, Debug, Default)]
pub struct ListMessages {
    /// Page size, 1..=[`MAX_PAGE`]; `None` means every message.
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// The documented, mutable fields of a conversation. `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConversationPatch {
    /// New title (already validated).
    pub title: Option<String>,
    /// Pin or unpin.
    pub is_pinned: Option<bool>,
    /// Share or unshare.
    pub is_shared: Option<bool>,
    /// New model id (already checked against the catalog).
    pub model: Option<String>,
}

/// What appending a message changes on its conversation besides `updatedAt` and the preview.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Touch {
    /// Set the title (the chat names a conversation after its first message).
    pub title: Option<String>,
}

/// Result of an append.
#[derive(Clone, Debug, PartialEq)]
pub enum Appended {
    /// The message was stored.
    Stored,
    /// A message with the same client id was already stored: nothing was written. Carries its id.
    Duplicate(MessageId),
}

/// Per-user limits a chat turn is admitted under (from [`crate::config::Config`]); 0 switches one off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnLimits {
    /// Requests per user per minute (the counter the other routes share).
    pub requests_per_minute: u64,
    /// Tokens (input + output) per user per UTC day.
    pub tokens_per_day: u64,
    /// Tokens per user per UTC calendar month.
    pub tokens_per_month: u64,
    /// Chat streams a user may have open at once.
    pub max_streams: u32,
    /// How long a stream slot is leased for (seconds): a crashed instance's slot frees itself then.
    pub lease_secs: i64,
}

impl TurnLimits {
    /// No limit at all.
    pub fn none() -> Self {
        Self {
            requests_per_minute: 0,
            tokens_per_day: 0,
            tokens_per_month: 0,
            max_streams: 0,
            lease_secs: 300,
        }
    }
}

/// What admitting a chat turn writes besides the limits.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnWrite {
    /// Create the conversation with its first messages (conflict if the id exists).
    Create {
        /// The new conversation.
        conversation: Conversation,
        /// Its first messages.
        messages: Vec<Message>,
    },
    /// Append the user's message to the caller's conversation.
    Append {
        /// The message.
        message: Message,
    },
    /// Regenerate: remove the last reply (if any) and re-point the preview.
    Regenerate {
        /// The reply to remove.
        remove: Option<Message>,
        /// The preview of the newest remaining message.
        preview: Option<String>,
    },
    /// Only check the conversation is the caller's (a resubmitted message already stored).
    Check,
}

/// A chat turn to admit: [`Store::begin_turn`].
#[derive(Clone, Debug)]
pub struct TurnStart {
    /// The caller.
    pub owner: UserId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// What to write.
    pub write: TurnWrite,
    /// The caller's limits.
    pub limits: TurnLimits,
    /// A unique id of this turn (the lease's owner).
    pub turn_id: String,
    /// When the turn starts (windows of the rate limit and budgets).
    pub now: Timestamp,
}

/// A stream slot held by one turn until it is released or `expires_at` (epoch seconds) passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLease {
    /// Slot number, `0..max_streams`.
    pub slot: u32,
    /// The turn holding it.
    pub turn_id: String,
    /// End of the lease, epoch seconds.
    pub expires_at: i64,
}

/// An admitted turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnBegun {
    /// The stream slot, when streams are capped.
    pub lease: Option<StreamLease>,
}

/// Analytics counters to add in the same write as the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsUpdate {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Solution bucket.
    pub solution: String,
    /// Model id.
    pub model: String,
    /// What to add.
    pub delta: crate::analytics::StatsDelta,
}

/// The end of a chat turn: [`Store::finish_turn`].
#[derive(Clone, Debug)]
pub struct TurnFinish {
    /// The caller.
    pub owner: UserId,
    /// The reply to store (with the conversation touched), if there is one.
    pub reply: Option<Message>,
    /// The slot to release.
    pub lease: Option<StreamLease>,
    /// Tokens to charge to the day and month budgets of `started` (0: none).
    pub tokens: u64,
    /// When the turn started: the budget windows charged.
    pub started: Timestamp,
    /// Analytics counters.
    pub stats: Option<StatsUpdate>,
}

/// One audit log entry: who did what to which resource, how it ended, when.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// ULID (time-ordered).
    pub id: String,
    /// The acting user.
    pub user_id: String,
    /// `conversation.create`, `chat.turn`, ...
    pub action: String,
    /// The conversation concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `ok` or the error code.
    pub status: String,
    /// The request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When.
    #[serde(with = "crate::domain::ts")]
    pub at: Timestamp,
    /// Expiry, epoch seconds (retention); not part of the API view.
    #[serde(default, skip_serializing)]
    pub expires_at: i64,
}

/// Seconds from `now` to the end of the rate-limit minute, the UTC day and the UTC month.
pub fn window_ends(now: Timestamp) -> (i64, i64, i64) {
    use chrono::{Datelike, NaiveDate};
    let t = now.timestamp();
    let minute = t - t.rem_euclid(60) + 60;
    let date = now.date_naive();
    let day = date
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(t + 86_400, |d| d.and_utc().timestamp());
    let (y, m) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    let month = NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(t + 31 * 86_400, |d| d.and_utc().timestamp());
    (minute, day, month)
}

/// Seconds until `end` from `now`, at least 1.
pub fn retry_after(now: Timestamp, end: i64) -> u64 {
    u64::try_from(end - now.timestamp()).unwrap_or(1).max(1)
}

/// Seconds a client over the stream cap is asked to wait (a stream's end cannot be predicted).
pub const STREAM_RETRY_AFTER: u64 = 5;

/// Every access pattern of Athena's data. All reads and writes of a conversation are scoped to
/// its owner: another owner's conversation answers [`StoreError::NotFound`], like a missing one.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a conversation, with its first messages if any, atomically.
    /// [`StoreError::Conflict`] when the id exists (whoever owns it).
    async fn create_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError>;

    /// One conversation, without its messages.
    async fn get_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<Conversation, StoreError>;

    /// One conversation and all its messages in order (one Query on DynamoDB).
    async fn get_conversation_with_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<Message>), StoreError>;

    /// The owner's conversations: pinned first, then newest `updatedAt` first.
    async fn list_conversations(
        &self,
        owner: &UserId,
        query: &ListConversations,
    ) -> Result<Page<Conversation>, StoreError>;

    /// Applies a patch and returns the updated conversation; `updatedAt` becomes `now`.
    async fn update_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError>;

    /// Deletes a conversation and every item belonging to it. Returns how many messages went with it.
    async fn delete_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError>;

    /// Appends a message and touches its conversation (updatedAt, preview, count) atomically.
    /// A message whose `client_id` was already stored in this conversation is not stored twice.
    async fn append_message(&self, owner: &UserId, message: &Message, touch: &Touch) -> Result<Appended, StoreError>;

    /// The conversation's messages, oldest first.
    async fn list_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
        query: &ListMessages,
    ) -> Result<Page<Message>, StoreError>;

    /// Finds a message by the client's id.
    async fn find_by_client_id(
        &self,
        owner: &UserId,
        id: &ConversationId,
        client_id: &ClientMessageId,
    ) -> Result<Option<Message>, StoreError>;

    /// Deletes one message (regenerating a reply replaces the last one).
    async fn delete_message(&self, owner: &UserId, id: &ConversationId, message: &MessageId) -> Result<(), StoreError>;

    /// Deletes every message of a conversation, keeping the conversation. Returns how many.
    async fn clear_messages(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError>;

    /// Records analytics events (batched).
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError>;

    /// Analytics events of one UTC day (`YYYY-MM-DD`), for tests and exports.
    async fn events_of_day(&self, day: &str) -> Result<Vec<AnalyticsEvent>, StoreError>;

    /// Adds one to the counter `key` of the window starting at `window_start` (epoch seconds) and
    /// returns the new count. Atomic across every instance; counters expire after `ttl_secs`.
    /// Rate limits are built on it.
    async fn increment_counter(&self, key: &str, window_start: i64, ttl_secs: i64) -> Result<u64, StoreError>;

    /// Adds to the analytics counters of one day × solution × model, atomically.
    async fn add_stats(
        &self,
        day: &str,
        solution: &str,
        model: &str,
        delta: &crate::analytics::StatsDelta,
    ) -> Result<(), StoreError>;

    /// The analytics counters of the days `from..=to` (`YYYY-MM-DD`), one row per day × solution × model.
    async fn stats_between(&self, from: &str, to: &str) -> Result<Vec<crate::analytics::StatsRow>, StoreError>;

    /// Admits a chat turn in one atomic write (one DynamoDB `TransactWriteItems`): counts it
    /// against the per-minute rate limit, checks the day and month token budgets, takes a stream
    /// slot (a lease with an expiry) and writes the user's message (or creates the conversation).
    /// Refusals: [`StoreError::RateLimited`], [`StoreError::BudgetExceeded`],
    /// [`StoreError::TooManyStreams`], [`StoreError::NotFound`] (not the caller's conversation),
    /// [`StoreError::Conflict`] (a create on an existing id). Nothing is written when refused.
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError>;

    /// Ends a chat turn in one atomic write: stores the reply and touches the conversation,
    /// charges the tokens to the budgets, releases the stream slot (only if this turn still holds
    /// it) and adds the analytics counters. A part that can no longer apply (the conversation was
    /// deleted meanwhile, the lease was reclaimed) is dropped and the rest written.
    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError>;

    /// Records analytics events and audit entries together (one `BatchWriteItem` for up to 25).
    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError>;

    /// One user's audit entries, newest first.
    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError>;
}

/// Every day from `from` to `to` inclusive (`YYYY-MM-DD`); empty if either does not parse.
pub fn days_between(from: &str, to: &str) -> Vec<String> {
    let parse = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    let (Some(mut day), Some(last)) = (parse(from), parse(to)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while day <= last {
        out.push(day.format("%Y-%m-%d").to_string());
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// The store the environment asks for: DynamoDB when `ATHENA_TABLE` is set, otherwise the
/// embedded store in `ATHENA_DB` (default `.athena/athena.db`). Inside Lambda the embedded store
/// is refused: `/tmp` does not outlive an instance. `ATHENA_EVENT_TTL_DAYS` (default 90) sets
/// how long analytics events are kept; `ATHENA_CREATE_TABLES=true` creates missing tables (for
/// local DynamoDB-API servers).
pub async fn from_env() -> Result<std::sync::Arc<dyn Store>, crate::config::ConfigError> {
    use crate::config::ConfigError;
    let days = match std::env::var("ATHENA_EVENT_TTL_DAYS") {
        Err(_) => 90,
        Ok(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| ConfigError(format!("ATHENA_EVENT_TTL_DAYS must be a positive integer, not {raw:?}")))?,
    };
    let ttl = std::time::Duration::from_secs(days * 24 * 3600);
    if let Some(tables) = dynamo::Tables::from_env() {
        let client = dynamo::client_from_env().await;
        let store = dynamo::DynamoStore::new(client, tables).with_event_ttl(ttl);
        if std::env::var("ATHENA_CREATE_TABLES").is_ok_and(|v| v == "true") {
            // For local DynamoDB-API servers; production tables come from template.yaml.
            store
                .create_tables()
                .await
                .map_err(|e| ConfigError(format!("creating the DynamoDB tables: {e}")))?;
        }
        return Ok(std::sync::Arc::new(store));
    }
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        return Err(ConfigError(
            "ATHENA_TABLE must name the DynamoDB table inside Lambda".to_owned(),
        ));
    }
    open_embedded(ttl)
}

#[cfg(feature = "embedded")]
fn open_embedded(ttl: std::time::Duration) -> Result<std::sync::Arc<dyn Store>, crate::config::ConfigError> {
    let path = std::env::var("ATHENA_DB").unwrap_or_else(|_| ".athena/athena.db".to_owned());
    let store = embedded::EmbeddedStore::open(&path)
        .map_err(|e| crate::config::ConfigError(format!("opening the embedded store at {path}: {e}")))?;
    Ok(std::sync::Arc::new(store.with_event_ttl(ttl)))
}

/// Built without the embedded store (the Lambda functions): DynamoDB is the only store.
#[cfg(not(feature = "embedded"))]
fn open_embedded(_ttl: std::time::Duration) -> Result<std::sync::Arc<dyn Store>, crate::config::ConfigError> {
    Err(crate::config::ConfigError(
        "ATHENA_TABLE must name the DynamoDB table: this build has no embedded store".to_owned(),
    ))
}

/// What [`probe`] found.
#[derive(Debug)]
pub enum Probe {
    /// The store answered (the probed conversation is never stored, so "not found" is the
    /// expected answer).
    Answered,
    /// The store answered with an error.
    Failed(StoreError),
    /// No answer within the bound.
    TimedOut,
}

/// One bounded read of a conversation that is never stored (`athena-probe`): whether the store
/// answers (the health check) and a way to open its connection early (the Lambda warm-up). One
/// `Query` on DynamoDB, which every function role that reads conversations may do.
pub async fn probe(store: &dyn Store, within: std::time::Duration) -> Probe {
    let (owner, id) = match (UserId::parse("athena-probe"), ConversationId::parse("athena-probe")) {
        (Ok(owner), Ok(id)) => (owner, id),
        (Err(e), _) | (_, Err(e)) => return Probe::Failed(StoreError::internal("the probe's ids", e)),
    };
    match tokio::time::timeout(within, store.get_conversation_with_messages(&owner, &id)).await {
        Ok(Ok(_)) | Ok(Err(StoreError::NotFound)) => Probe::Answered,
        Ok(Err(e)) => Probe::Failed(e),
        Err(_) => Probe::TimedOut,
    }
}

/// Checks the size bounds every store shares, before anything is written.
pub fn check_message_size(message: &Message) -> Result<(), StoreError> {
    if message.content.len() > MAX_CONTENT_BYTES {
        return Err(StoreError::TooLarge(format!(
            "message content is {} bytes; the limit is {} bytes",
            message.content.len(),
            MAX_CONTENT_BYTES
        )));
    }
    if !message.parts.is_empty() {
        let parts = serde_json::to_vec(&message.parts).map_err(|e| StoreError::internal("serializing parts", e))?;
        if parts.len() > MAX_PARTS_BYTES {
            return Err(StoreError::TooLarge(format!(
                "message parts are {} bytes; the limit is {} bytes",
                parts.len(),
                MAX_PARTS_BYTES
            )));
        }
    }
    Ok(())
}

/// Resolves a page size: the API refuses out-of-range values, the stores clamp defensively.
pub fn page_size(limit: Option<u32>, default: u32) -> u32 {
    limit.unwrap_or(default).clamp(1, MAX_PAGE)
}

/// The number that orders a conversation in its owner's listing, descending: pinned ones above
/// every unpinned one, then by `updatedAt`, then by a tiebreak derived from the id so two
/// conversations touched in the same millisecond still have a fixed order in both stores.
/// `rank = pin_base(pinned, id) + updated_at_ms * 1000`; DynamoDB updates compute it in the update
/// expression as `pinBase + :scaledNow`, which is why it is a sum.
pub fn listing_rank(is_pinned: bool, id: &ConversationId, updated_at: Timestamp) -> i64 {
    pin_base(is_pinned, id) + scaled_time(updated_at)
}

/// `updatedAt` in milliseconds times 1000, the time part of [`listing_rank`].
pub fn scaled_time(updated_at: Timestamp) -> i64 {
    updated_at.timestamp_millis().saturating_mul(1000)
}

/// The part of [`listing_rank`] fixed between updates: pinning and the id's tiebreak (0..1000).
pub fn pin_base(is_pinned: bool, id: &ConversationId) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_str().as_bytes());
    let tiebreak = i64::from(u16::from_be_bytes([digest[0], digest[1]]) % 1000);
    if is_pinned {
        PINNED_BASE + tiebreak
    } else {
        tiebreak
    }
}

/// Above any scaled timestamp until the year 5138, far below `i64::MAX`.
const PINNED_BASE: i64 = 100_000_000_000_000_000;

/// Makes message ids: ULIDs, strictly increasing within a process even inside one millisecond, so
/// messages appended in the same millisecond keep their order.
#[derive(Default)]
pub struct IdGenerator {
    inner: std::sync::Mutex<ulid::Generator>,
}

impl std::fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdGenerator")
    }
}

impl IdGenerator {
    /// A new generator.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next ULID (26 characters, Crockford base 32), greater than every one made before here.
    pub fn next_ulid(&self) -> String {
        let mut generator = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // `generate` fails only when 2^80 ids were made in one millisecond; a fresh ULID is then fine.
        generator.generate().unwrap_or_else(|_| ulid::Ulid::new()).to_string()
    }

    /// A new message id.
    pub fn message_id(&self) -> MessageId {
        // A ULID is always a valid id.
        MessageId::parse(&self.next_ulid()).unwrap_or_else(|_| unreachable_id())
    }

    /// A new conversation id.
    pub fn conversation_id(&self) -> ConversationId {
        ConversationId::parse(&self.next_ulid()).unwrap_or_else(|_| unreachable_id())
    }
}

#[cold]
fn unreachable_id() -> ! {
    // ULIDs are 26 Crockford base-32 characters, which `valid_id` always accepts.
    panic!("a ULID failed id validation")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn pinned_conversations_rank_above_any_unpinned_one() {
        let old = chrono::Utc.timestamp_millis_opt(0).single().unwrap_or_default();
        let new = chrono::Utc
            .timestamp_millis_opt(4_000_000_000_000)
            .single()
            .unwrap_or_default();
        let (a, b) = (
            ConversationId::parse("a").unwrap_or_else(|_| unreachable_id()),
            ConversationId::parse("b").unwrap_or_else(|_| unreachable_id()),
        );
        assert!(listing_rank(true, &a, old) > listing_rank(false, &b, new));
        assert!(listing_rank(false, &a, new) > listing_rank(false, &b, old));
        // One millisecond later always ranks higher, whatever the ids' tiebreaks.
        let later = chrono::Utc.timestamp_millis_opt(1).single().unwrap_or_default();
        assert!(listing_rank(false, &a, later) > listing_rank(false, &b, old));
        assert!(listing_rank(false, &b, later) > listing_rank(false, &a, old));
    }

    #[test]
    fn windows_end_at_the_next_minute_utc_midnight_and_first_of_the_month() {
        let at = chrono::Utc
            .with_ymd_and_hms(2025, 12, 31, 23, 59, 30)
            .single()
            .unwrap_or_default();
        let (minute, day, month) = window_ends(at);
        let jan1 = chrono::Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            .timestamp();
        assert_eq!((minute, day, month), (jan1, jan1, jan1));
        assert_eq!(retry_after(at, day), 30);
        let mid = chrono::Utc
            .with_ymd_and_hms(2026, 2, 10, 12, 0, 0)
            .single()
            .unwrap_or_default();
        let march1 = chrono::Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            .timestamp();
        assert_eq!(window_ends(mid).2, march1);
        assert_eq!(retry_after(mid, mid.timestamp() - 5), 1, "never below one second");
    }

    #[test]
    fn ids_made_in_one_millisecond_still_increase() {
        let ids = IdGenerator::new();
        let made: Vec<String> = (0..1000).map(|_| ids.next_ulid()).collect();
        assert!(made.windows(2).all(|w| w[0] < w[1]));
    }
}

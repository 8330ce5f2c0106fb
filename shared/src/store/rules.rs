//! Rules every adapter shares, written once: size bounds, page sizes, the listing rank, a
//! conversation as created, stored timestamps, time windows of the rate limit and the budgets and
//! their expiries, the stream lease, where an analytics event is filed and how long rows are kept,
//! day ranges, idempotency records (their expiries and what a live one means).

use std::time::Duration;

use super::ports::{HeldKey, Reservation, SavedResponse, StoredKey, StreamLease, TurnStart};
use crate::domain::{self, AnalyticsEvent, Conversation, ConversationId, Message, Timestamp, UserId};
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

/// Length of a rate-limit window, in seconds (the limit is per minute).
pub const RATE_WINDOW_SECS: i64 = 60;
/// How long a rate counter is kept from the start of its window, in seconds: its own window and
/// one more, so it never expires while it still counts. The one expiry of every rate counter (the
/// routes' `increment_counter` and the chat turn's admission).
pub const RATE_COUNTER_TTL_SECS: i64 = 2 * RATE_WINDOW_SECS;

/// The rate-limit window a time falls in (epoch seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// Its start: the key of its counter.
    pub start: i64,
    /// Its end (exclusive): when a refused caller may retry.
    pub end: i64,
    /// When its counter expires: `start + RATE_COUNTER_TTL_SECS`.
    pub expires_at: i64,
}

/// The rate-limit window containing `now`.
pub fn rate_window(now: Timestamp) -> RateWindow {
    let t = now.timestamp();
    let start = t - t.rem_euclid(RATE_WINDOW_SECS);
    RateWindow {
        start,
        end: start + RATE_WINDOW_SECS,
        expires_at: start + RATE_COUNTER_TTL_SECS,
    }
}

/// How long a token-budget counter is kept after its window ends, in seconds (two days).
pub const BUDGET_GRACE_SECS: i64 = 2 * 86_400;

/// When the day and month budget counters charged for a turn started at `started` expire (epoch
/// seconds): the end of its UTC day and UTC month, plus [`BUDGET_GRACE_SECS`].
pub fn budget_expiries(started: Timestamp) -> (i64, i64) {
    let (_, day, month) = window_ends(started);
    (day + BUDGET_GRACE_SECS, month + BUDGET_GRACE_SECS)
}

/// The most tokens a budget item may already hold for a turn reserving `reservation` tokens to be
/// admitted under `budget`: `budget - max(reservation, 1)`, so that `tokens + reservation <=
/// budget` and at least one token is left for a turn reserving nothing. `None` when the
/// reservation alone is over the budget: the turn is refused without writing (or asking) anything.
/// Both stores admit with this one rule (DynamoDB's condition `tokens <= :headroom`).
pub fn budget_headroom(budget: u64, reservation: u64) -> Option<u64> {
    budget.checked_sub(reservation.max(1))
}

/// The refusal of a turn over its day budget (`day`) or its month budget: `Retry-After` is the
/// end of that window.
pub fn over_budget(start: &TurnStart, day: bool) -> StoreError {
    let (_, day_end, month_end) = window_ends(start.now);
    let (window, end) = if day { ("day", day_end) } else { ("month", month_end) };
    StoreError::BudgetExceeded {
        window,
        retry_after: retry_after(start.now, end),
    }
}

/// The refusal of a turn over its month's dollar budget: `Retry-After` is the end of the month.
pub fn over_dollar_budget(start: &TurnStart) -> StoreError {
    let (_, _, month_end) = window_ends(start.now);
    StoreError::BudgetExceeded {
        window: DOLLAR_WINDOW,
        retry_after: retry_after(start.now, month_end),
    }
}

/// The `window` of [`StoreError::BudgetExceeded`] for the month's dollar budget.
pub const DOLLAR_WINDOW: &str = "month's dollar";

/// The refusal of a turn whose reservation alone is over its day or month token budget or its
/// dollar budget (one switched on), whatever was spent: both stores check it first and then
/// write (and ask) nothing.
pub fn reservation_over_budget(start: &TurnStart) -> Option<StoreError> {
    let limits = &start.limits;
    let tokens = [(limits.tokens_per_day, true), (limits.tokens_per_month, false)]
        .into_iter()
        .find(|(budget, _)| *budget > 0 && budget_headroom(*budget, start.reservation).is_none())
        .map(|(_, day)| over_budget(start, day));
    tokens.or_else(|| {
        (limits.nano_usd_per_month > 0
            && budget_headroom(limits.nano_usd_per_month, start.reservation_nano_usd).is_none())
        .then(|| over_dollar_budget(start))
    })
}

/// The stream slot `slot` leased to the turn `start` until `now + lease_secs`.
pub fn lease(start: &TurnStart, slot: u32) -> StreamLease {
    StreamLease {
        slot,
        turn_id: start.turn_id.clone(),
        expires_at: start.now.timestamp() + start.limits.lease_secs,
    }
}

/// How long analytics events are kept unless configured otherwise (90 days).
pub const DEFAULT_EVENT_TTL: Duration = Duration::from_secs(crate::config::DEFAULT_EVENT_TTL_DAYS * 24 * 3600);

/// Where an analytics event is filed and until when it is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// Its UTC day, `YYYY-MM-DD` (what [`super::Activity::events_of_day`] reads).
    pub day: String,
    /// When it expires (epoch seconds): its timestamp plus the store's event TTL.
    pub expires_at: i64,
}

/// The day and expiry of an event kept for `ttl`.
pub fn event_row(event: &AnalyticsEvent, ttl: Duration) -> EventRow {
    EventRow {
        day: event.timestamp.format("%Y-%m-%d").to_string(),
        expires_at: event.timestamp.timestamp() + ttl.as_secs() as i64,
    }
}

/// How long a day's analytics counters are kept where the store expires them (DynamoDB's TTL), in days.
pub const STATS_RETENTION_DAYS: i64 = 400;

/// When the analytics counters of `day` (`YYYY-MM-DD`) expire (epoch seconds): its UTC midnight plus
/// [`STATS_RETENTION_DAYS`]; 0 (expire whenever) when the day does not parse.
pub fn stats_expiry(day: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp()) + STATS_RETENTION_DAYS * 24 * 3600)
        .unwrap_or(0)
}

/// [`StoreError::TooLarge`] when one [`crate::store::Stats::import_stats`] call holds more rows
/// than [`crate::store::ports::MAX_IMPORTED_STATS_ROWS`].
pub fn check_imported_rows(rows: &[crate::store::StatsUpdate]) -> Result<(), StoreError> {
    let max = crate::store::ports::MAX_IMPORTED_STATS_ROWS;
    if rows.len() > max {
        return Err(StoreError::TooLarge(format!(
            "{} counter rows in one import; at most {max}",
            rows.len()
        )));
    }
    Ok(())
}

/// Parses a stored timestamp (RFC 3339, as [`domain::ts::format`] writes it).
pub fn parse_ts(raw: &str) -> Result<Timestamp, StoreError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::internal("stored timestamp", e))
}

/// A conversation as stored when it is created with its first messages: `updatedAt` is the later
/// of its own and the last message's time, the preview is the active leaf's (when the
/// conversation names one among them) or else the last message's, the count theirs.
/// Without messages it is stored as given.
pub fn as_created(conversation: &Conversation, messages: &[Message]) -> Conversation {
    let mut stored = conversation.clone();
    if let Some(last) = messages.last() {
        // The preview is the active leaf's when one is named (an import's branch), else the newest.
        let shown = conversation
            .active_leaf
            .as_ref()
            .and_then(|leaf| messages.iter().find(|m| &m.id == leaf))
            .unwrap_or(last);
        stored.updated_at = conversation.updated_at.max(last.created_at);
        stored.last_message = Some(domain::preview(&shown.content));
        stored.message_count = messages.len() as u64;
    }
    stored
}

/// Seconds from `now` to the end of the rate-limit minute, the UTC day and the UTC month.
pub fn window_ends(now: Timestamp) -> (i64, i64, i64) {
    use chrono::{Datelike, NaiveDate};
    let t = now.timestamp();
    let minute = rate_window(now).end;
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

/// The rank of a conversation in the trash listing: newest trashed first (pinning does not
/// count there), the same tiebreak as [`listing_rank`].
pub fn trash_rank(id: &ConversationId, trashed_at: Timestamp) -> i64 {
    pin_base(false, id) + scaled_time(trashed_at)
}

/// The rank a conversation lists under on its shelf: [`trash_rank`] in the trash,
/// [`listing_rank`] elsewhere.
pub fn shelf_rank(c: &Conversation) -> i64 {
    match c.trashed_at {
        Some(t) => trash_rank(&c.id, t),
        None => listing_rank(c.is_pinned, &c.id, c.updated_at),
    }
}

/// Conversations trashed before this are due for purging at `now` ([`crate::domain::TRASH_DAYS`]).
pub fn trash_cutoff(now: Timestamp) -> Timestamp {
    now - chrono::Duration::days(crate::domain::TRASH_DAYS)
}

/// The rank that separates pinned conversations (at or above it) from the others, on the
/// default list and the archive.
pub const PINNED_RANK: i64 = PINNED_BASE;

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
/// How long an idempotency key's response is replayed after the request completed (24 hours).
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// How long a reservation holds its key while the request runs, in seconds: longer than any CRUD
/// request (the Lambda timeout is 10 s), short enough that a crashed request's key frees itself.
pub const IDEMPOTENCY_LEASE_SECS: i64 = 60;
/// How long a finished turn's receipt is kept (3 days): far longer than any retry of its finish.
pub const RECEIPT_TTL_SECS: i64 = 3 * 24 * 3600;

/// Largest encoded checkpoint (a DynamoDB item holds 400 KB; the chat service writes one every
/// second or 16 KB, so only one enormous event comes near it).
pub const MAX_CHECKPOINT_BYTES: usize = 300 * 1024;

/// How long a turn's checkpoints (and its live-turn marker) are kept after they were written:
/// long enough to resume, show or repair the turn; the stored reply is the lasting record.
pub const CHECKPOINT_TTL_SECS: i64 = 24 * 3600;

/// The live-turn marker a turn's admitting write stores.
pub fn live_turn(start: &TurnStart) -> crate::domain::LiveTurn {
    crate::domain::LiveTurn {
        turn_id: start.turn_id.clone(),
        reply_id: start.reply_id.clone(),
        parent_id: start.reply_parent.clone(),
        started_at: start.now,
        deadline: start.now + chrono::Duration::seconds(start.limits.lease_secs),
        stop_requested: false,
    }
}

/// Refuses a checkpoint above [`MAX_CHECKPOINT_BYTES`] before anything is written.
pub fn check_checkpoint(checkpoint: &super::ports::Checkpoint) -> Result<(), StoreError> {
    if checkpoint.events.len() > MAX_CHECKPOINT_BYTES {
        return Err(StoreError::TooLarge(format!(
            "a checkpoint of {} bytes (the limit is {MAX_CHECKPOINT_BYTES})",
            checkpoint.events.len()
        )));
    }
    Ok(())
}
/// Largest response body saved under an idempotency key (a DynamoDB item holds 400 KB); a larger
/// response is not saved and its key is released.
pub const MAX_SAVED_RESPONSE_BYTES: usize = 256 * 1024;

/// A reservation of `key` for `owner`, with a fresh token.
pub fn hold_key(owner: &UserId, key: &str) -> HeldKey {
    HeldKey {
        owner: owner.clone(),
        key: key.to_owned(),
        token: ulid::Ulid::new().to_string(),
    }
}

/// Whether an idempotency record expiring at `expires_at` (epoch seconds) still counts at `now`:
/// an expired record is treated as absent (and overwritten by the next reservation).
pub fn key_is_live(expires_at: i64, now: Timestamp) -> bool {
    expires_at > now.timestamp()
}

/// What a live record means for a request with `fingerprint`: a different request is a
/// mismatch (whether or not the first one finished), the same one is replayed once completed.
pub fn existing_key(stored: StoredKey, fingerprint: &str) -> Reservation {
    if stored.fingerprint != fingerprint {
        return Reservation::Mismatch;
    }
    match stored.response {
        Some(response) => Reservation::Replay(response),
        None => Reservation::InProgress,
    }
}

/// Checks a response fits in an idempotency record, before anything is written.
pub fn check_saved_response(response: &SavedResponse) -> Result<(), StoreError> {
    if response.body.len() > MAX_SAVED_RESPONSE_BYTES {
        return Err(StoreError::TooLarge(format!(
            "the response is {} bytes; at most {MAX_SAVED_RESPONSE_BYTES} bytes are saved for replay",
            response.body.len()
        )));
    }
    Ok(())
}

/// A project with `patch` applied at `now` (what both adapters store on an update).
pub fn patched_project(
    project: &crate::domain::Project,
    patch: &super::ProjectPatch,
    now: Timestamp,
) -> crate::domain::Project {
    let mut p = project.clone();
    if let Some(name) = &patch.name {
        p.name.clone_from(name);
    }
    if let Some(description) = &patch.description {
        p.description.clone_from(description);
    }
    if let Some(instructions) = &patch.instructions {
        p.instructions.clone_from(instructions);
    }
    if let Some(model) = &patch.default_model {
        p.default_model.clone_from(model);
    }
    if let Some(solution) = patch.default_solution {
        p.default_solution = solution;
    }
    p.updated_at = now;
    p
}

/// A saved prompt with `patch` applied at `now`.
pub fn patched_prompt(
    prompt: &crate::domain::SavedPrompt,
    patch: &super::PromptPatch,
    now: Timestamp,
) -> crate::domain::SavedPrompt {
    let mut p = prompt.clone();
    if let Some(title) = &patch.title {
        p.title.clone_from(title);
    }
    if let Some(text) = &patch.text {
        p.text.clone_from(text);
    }
    if let Some(tags) = &patch.tags {
        p.tags.clone_from(tags);
    }
    p.updated_at = now;
    p
}

/// The refusal of a saved prompt beyond the per-user cap.
pub fn too_many_prompts(max: usize) -> StoreError {
    StoreError::Conflict(format!("a user may have at most {max} saved prompts; delete one first"))
}

/// The refusal of a project beyond the per-user cap.
pub fn too_many_projects(max: usize) -> StoreError {
    StoreError::Conflict(format!("a user may have at most {max} projects; delete one first"))
}

/// The refusal of a folder over the per-user cap.
pub fn too_many_folders(max: usize) -> StoreError {
    StoreError::Conflict(format!("a user may have at most {max} folders; delete one first"))
}

/// The refusal of a folder update that lost a race with another.
pub fn folder_changed() -> StoreError {
    StoreError::Conflict("the folder changed meanwhile; read it again".to_owned())
}

/// Tag counts, most used first, then by name.
pub fn sorted_tags(counts: std::collections::HashMap<String, u64>) -> Vec<super::ports::TagCount> {
    let mut tags: Vec<super::ports::TagCount> = counts
        .into_iter()
        .map(|(tag, conversations)| super::ports::TagCount { tag, conversations })
        .collect();
    tags.sort_by(|a, b| b.conversations.cmp(&a.conversations).then_with(|| a.tag.cmp(&b.tag)));
    tags
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
            ConversationId::parse("a").unwrap_or_else(|_| unreachable!()),
            ConversationId::parse("b").unwrap_or_else(|_| unreachable!()),
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
    fn a_rate_window_is_the_minute_and_its_counter_outlives_it_by_one() {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 2, 10, 12, 0, 59)
            .single()
            .unwrap_or_default();
        let w = rate_window(at);
        assert_eq!(w.start, at.timestamp() - 59);
        assert_eq!(w.end, w.start + 60);
        assert_eq!(w.expires_at, w.start + 120);
        assert_eq!(window_ends(at).0, w.end);
        let (day, month) = budget_expiries(at);
        let (_, day_end, month_end) = window_ends(at);
        assert_eq!((day, month), (day_end + 2 * 86_400, month_end + 2 * 86_400));
    }

    #[test]
    fn a_reservation_fits_when_tokens_plus_it_stay_within_the_budget() {
        assert_eq!(budget_headroom(3_000, 400), Some(2_600));
        assert_eq!(
            budget_headroom(3_000, 3_000),
            Some(0),
            "a fresh budget takes a reservation of its size"
        );
        assert_eq!(budget_headroom(3_000, 3_001), None, "never fits, whatever was spent");
        assert_eq!(
            budget_headroom(10, 0),
            Some(9),
            "reserving nothing still needs one token left"
        );
        assert_eq!(budget_headroom(0, 0), None);
        use super::super::ports::Settlement;
        let settle = |reserved, actual| {
            Settlement {
                reserved,
                actual,
                ..Settlement::default()
            }
            .delta()
        };
        assert_eq!(settle(400, 130), -270, "settled down");
        assert_eq!(settle(400, 900), 500, "settled up");
        assert_eq!(settle(0, 0), 0);
        assert_eq!(settle(u64::MAX, 0), -i64::MAX);
    }

    #[test]
    fn stats_expire_400_days_after_their_day() {
        let midnight = chrono::Utc
            .with_ymd_and_hms(2026, 2, 10, 0, 0, 0)
            .single()
            .unwrap_or_default()
            .timestamp();
        assert_eq!(stats_expiry("2026-02-10"), midnight + 400 * 86_400);
        assert_eq!(stats_expiry("not a day"), 0);
    }
    #[test]
    fn a_live_idempotency_record_replays_the_same_request_only() {
        let done = SavedResponse {
            status: 201,
            body: "{}".to_owned(),
            location: None,
        };
        let stored = |response: Option<SavedResponse>| StoredKey {
            fingerprint: "a".to_owned(),
            response,
        };
        assert_eq!(
            existing_key(stored(Some(done.clone())), "a"),
            Reservation::Replay(done.clone())
        );
        assert_eq!(existing_key(stored(Some(done)), "b"), Reservation::Mismatch);
        assert_eq!(existing_key(stored(None), "a"), Reservation::InProgress);
        assert_eq!(existing_key(stored(None), "b"), Reservation::Mismatch);
        let now = chrono::Utc.timestamp_opt(1_000, 0).single().unwrap_or_default();
        assert!(key_is_live(1_001, now));
        assert!(!key_is_live(1_000, now), "a record expiring now is gone");
    }
}

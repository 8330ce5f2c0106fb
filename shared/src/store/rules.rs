//! Rules every adapter shares, written once: size bounds, page sizes, the listing rank, time
//! windows of the rate limit and the budgets and their expiries, day ranges.

use crate::domain::{ConversationId, Message, Timestamp};
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
}

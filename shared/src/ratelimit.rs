//! The per-user, per-minute request limit: one atomic counter per user and minute window,
//! shared by every instance through the store. Chat turns are counted inside the write that
//! admits them; every other request (a replayed chat reply included) is counted here.

use crate::domain::{Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, schema, Counters};

/// Counts one request of `user` at `now` against `limit` per minute (0: no limit). Over the limit:
/// [`StoreError::RateLimited`] with the seconds to the window's end.
pub async fn count(store: &dyn Counters, user: &UserId, now: Timestamp, limit: u64) -> Result<(), StoreError> {
    if limit == 0 {
        return Ok(());
    }
    let window = rules::rate_window(now);
    let count = store
        .increment_counter(
            &schema::rate_key(user.as_str()),
            window.start,
            rules::RATE_COUNTER_TTL_SECS,
        )
        .await?;
    if count > limit {
        return Err(StoreError::RateLimited {
            retry_after: rules::retry_after(now, window.end),
        });
    }
    Ok(())
}

//! Windowed counters in SQLite.

use async_trait::async_trait;
use rusqlite::params;

use super::{sql_err, EmbeddedStore};
use crate::error::StoreError;
use crate::store::Counters;

#[async_trait]
impl Counters for EmbeddedStore {
    #[tracing::instrument(name = "embedded.increment_counter", skip_all, fields(window_start = window_start))]
    async fn increment_counter(&self, key: &str, window_start: i64, ttl_secs: i64) -> Result<u64, StoreError> {
        let key = crate::store::schema::counter_pk(key, window_start);
        self.with(move |conn| {
            conn.query_row(
                "INSERT INTO counters (key, count, expires_at) VALUES (?1, 1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET count = count + 1 RETURNING count",
                params![key, window_start + ttl_secs],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sql_err("incrementing a counter"))
        })
        .await
    }
}

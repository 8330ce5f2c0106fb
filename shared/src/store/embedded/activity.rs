//! Analytics events and the audit log in SQLite.

use async_trait::async_trait;
use rusqlite::params;

use super::{sql_err, EmbeddedStore};
use crate::domain::{AnalyticsEvent, AuditEntry, UserId};
use crate::error::StoreError;
use crate::store::{cursor, page_size, Activity, Page, DEFAULT_PAGE};

#[async_trait]
impl Activity for EmbeddedStore {
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError> {
        let ttl = self.event_ttl.as_secs() as i64;
        let rows = events
            .iter()
            .map(|e| {
                serde_json::to_string(e)
                    .map(|body| {
                        (
                            e.id.clone(),
                            e.timestamp.format("%Y-%m-%d").to_string(),
                            body,
                            e.timestamp.timestamp() + ttl,
                        )
                    })
                    .map_err(|err| StoreError::internal("serializing an event", err))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.with(move |conn| {
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            {
                let mut stmt = tx
                    .prepare_cached("INSERT OR REPLACE INTO events (id, day, body, expires_at) VALUES (?1, ?2, ?3, ?4)")
                    .map_err(sql_err("recording events"))?;
                for (id, day, body, expires) in rows {
                    stmt.execute(params![id, day, body, expires])
                        .map_err(sql_err("recording events"))?;
                }
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        self.record_activity_impl(events, audit).await
    }

    async fn events_of_day(&self, day: &str) -> Result<Vec<AnalyticsEvent>, StoreError> {
        let day = day.to_owned();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM events WHERE day = ?1 AND expires_at >= ?2 ORDER BY id")
                .map_err(sql_err("reading events"))?;
            let rows = stmt
                .query_map(params![day, chrono::Utc::now().timestamp()], |r| r.get::<_, String>(0))
                .map_err(sql_err("reading events"))?;
            let mut out = Vec::new();
            for row in rows {
                let body = row.map_err(sql_err("reading events"))?;
                out.push(serde_json::from_str(&body).map_err(|e| StoreError::internal("stored event", e))?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.list_audit_impl(user, limit, cursor).await
    }
}

impl EmbeddedStore {
    async fn record_activity_impl(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        let ttl = self.event_ttl.as_secs() as i64;
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            let body = serde_json::to_string(e).map_err(|err| StoreError::internal("serializing an event", err))?;
            rows.push((
                e.id.clone(),
                e.timestamp.format("%Y-%m-%d").to_string(),
                body,
                e.timestamp.timestamp() + ttl,
            ));
        }
        let mut entries = Vec::with_capacity(audit.len());
        for a in audit {
            let body =
                serde_json::to_string(a).map_err(|err| StoreError::internal("serializing an audit entry", err))?;
            entries.push((a.user_id.clone(), a.id.clone(), body, a.expires_at));
        }
        self.with(move |conn| {
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            for (id, day, body, expires) in rows {
                tx.execute(
                    "INSERT OR REPLACE INTO events (id, day, body, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![id, day, body, expires],
                )
                .map_err(sql_err("recording events"))?;
            }
            for (owner, id, body, expires) in entries {
                tx.execute(
                    "INSERT OR REPLACE INTO audit (owner, id, body, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![owner, id, body, expires],
                )
                .map_err(sql_err("recording audit entries"))?;
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    async fn list_audit_impl(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let limit = page_size(limit, DEFAULT_PAGE);
        let scope = format!("audit\0{user}");
        let before: Option<String> = match cursor {
            None => None,
            Some(c) => Some(cursor::decode(&scope, c)?),
        };
        let owner = user.to_string();
        let (mut items, more) = self
            .with(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT body FROM audit WHERE owner = ?1 AND (?2 IS NULL OR id < ?2) AND expires_at >= ?3 \
                         ORDER BY id DESC LIMIT ?4",
                    )
                    .map_err(sql_err("listing audit entries"))?;
                let rows = stmt
                    .query_map(
                        params![owner, before, chrono::Utc::now().timestamp(), i64::from(limit) + 1],
                        |r| r.get::<_, String>(0),
                    )
                    .map_err(sql_err("listing audit entries"))?;
                let mut out: Vec<AuditEntry> = Vec::new();
                for row in rows {
                    let body = row.map_err(sql_err("listing audit entries"))?;
                    out.push(serde_json::from_str(&body).map_err(|e| StoreError::internal("stored audit entry", e))?);
                }
                let more = out.len() > limit as usize;
                Ok((out, more))
            })
            .await?;
        items.truncate(limit as usize);
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => Some(cursor::encode(&scope, &last.id)?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

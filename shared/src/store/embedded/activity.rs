//! Analytics events and the audit log in SQLite.

use async_trait::async_trait;
use rusqlite::params;

use super::{sql_err, EmbeddedStore};
use crate::domain::{AnalyticsEvent, AuditEntry, UserId};
use crate::error::StoreError;
use crate::store::{cursor, page_size, rules, Activity, Page, DEFAULT_PAGE};

#[async_trait]
impl Activity for EmbeddedStore {
    #[tracing::instrument(name = "embedded.record_events", skip_all, fields(events = events.len()))]
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError> {
        self.record_activity(events, &[]).await
    }

    #[tracing::instrument(name = "embedded.record_activity", skip_all, fields(events = events.len(), audit = audit.len()))]
    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            let body = serde_json::to_string(e).map_err(|err| StoreError::internal("serializing an event", err))?;
            let row = rules::event_row(e, self.event_ttl);
            rows.push((e.id.clone(), row.day, body, row.expires_at));
        }
        let mut entries = Vec::with_capacity(audit.len());
        for a in audit {
            let body =
                serde_json::to_string(a).map_err(|err| StoreError::internal("serializing an audit entry", err))?;
            entries.push((a.user_id.clone(), a.id.clone(), body, a.expires_at));
        }
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
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO audit (owner, id, body, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(sql_err("recording audit entries"))?;
                for (owner, id, body, expires) in entries {
                    stmt.execute(params![owner, id, body, expires])
                        .map_err(sql_err("recording audit entries"))?;
                }
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.events_of_day", skip_all, fields(day = %day))]
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

    #[tracing::instrument(name = "embedded.list_audit", skip_all, fields(limit = ?limit, paged = cursor.is_some()))]
    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let limit = page_size(limit, DEFAULT_PAGE);
        let scope = cursor::audit_scope(user.as_str());
        let before: Option<String> = match cursor {
            None => None,
            Some(c) => Some(cursor::decode(&scope, c)?),
        };
        let owner = user.to_string();
        let items = self
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
                Ok(out)
            })
            .await?;
        cursor::page(items, limit as usize, &scope, |last| last.id.clone())
    }
}

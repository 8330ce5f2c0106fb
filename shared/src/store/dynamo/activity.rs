//! Analytics events and the audit log on DynamoDB (events table).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::WriteRequest;
use serde::Serialize;

use super::schema;
use super::{classify, from_item, n, s, sdk_key, to_item, DynamoStore, Item};
use crate::domain::{AnalyticsEvent, AuditEntry, UserId};
use crate::error::StoreError;
use crate::store::{cursor, page_size, rules, Activity, Page, DEFAULT_PAGE};

#[async_trait]
impl Activity for DynamoStore {
    #[tracing::instrument(name = "dynamo.record_events", skip_all, fields(events = events.len()))]
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError> {
        self.record_activity(events, &[]).await
    }

    #[tracing::instrument(name = "dynamo.record_activity", skip_all, fields(events = events.len(), audit = audit.len()))]
    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(events.len() + audit.len());
        for e in events {
            requests.push(self.event_request(e)?);
        }
        for a in audit {
            requests.push(audit_request(a)?);
        }
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(25));
            self.batch_write(&self.tables.events, &mut requests).await?;
            requests = rest;
        }
        Ok(())
    }

    #[tracing::instrument(name = "dynamo.events_of_day", skip_all, fields(day = %day))]
    async fn events_of_day(&self, day: &str) -> Result<Vec<AnalyticsEvent>, StoreError> {
        let mut events = Vec::new();
        for shard in 0..schema::EVENT_SHARDS {
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.tables.events)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_values(":pk", s(schema::events_pk(day, shard)))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| classify("Query events", e))?;
                for item in out.items.unwrap_or_default() {
                    events.push(from_item::<AnalyticsEvent>(item)?);
                }
                match out.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
        }
        events.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(events)
    }

    #[tracing::instrument(name = "dynamo.list_audit", skip_all, fields(limit = ?limit, paged = cursor.is_some()))]
    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let limit = page_size(limit, DEFAULT_PAGE);
        let scope = cursor::audit_scope(user.as_str());
        let pk = schema::audit_pk(user.as_str());
        let start = match cursor {
            None => None,
            Some(c) => {
                let last: String = cursor::decode(&scope, c)?;
                Some(sdk_key(pk.clone(), last))
            }
        };
        let out = self
            .client
            .query()
            .table_name(&self.tables.events)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .limit(limit as i32 + 1)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query audit", e))?;
        let mut items = Vec::new();
        for item in out.items.unwrap_or_default() {
            items.push(from_item::<AuditEntry>(item)?);
        }
        cursor::page(items, limit as usize, &scope, |last| last.id.clone())
    }
}

impl DynamoStore {
    /// The put of an event: filed under its day and shard, expiring after the store's event TTL.
    fn event_request(&self, event: &AnalyticsEvent) -> Result<WriteRequest, StoreError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct EventItem<'a> {
            pk: String,
            sk: &'a str,
            #[serde(flatten)]
            event: &'a AnalyticsEvent,
            expires_at: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            user_key: Option<String>,
        }
        let row = rules::event_row(event, self.event_ttl);
        let item = EventItem {
            pk: schema::events_pk(&row.day, event_shard(&event.id)),
            sk: &event.id,
            event,
            expires_at: row.expires_at,
            user_key: event.user_id.as_deref().map(schema::event_user_key),
        };
        let put = aws_sdk_dynamodb::types::PutRequest::builder()
            .set_item(Some(to_item(&item)?))
            .build()
            .map_err(|e| StoreError::internal("building an event put", e))?;
        Ok(WriteRequest::builder().put_request(put).build())
    }
}

/// The put of an audit entry, in its user's partition, expiring when the entry says.
fn audit_request(entry: &AuditEntry) -> Result<WriteRequest, StoreError> {
    let mut item = to_item(entry)?;
    item.insert(schema::PK.to_owned(), s(schema::audit_pk(&entry.user_id)));
    item.insert(schema::SK.to_owned(), s(entry.id.clone()));
    item.insert(schema::TTL_ATTRIBUTE.to_owned(), n(entry.expires_at));
    let put = aws_sdk_dynamodb::types::PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError::internal("building an audit put", e))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// The shard of an event: spread by its id so one busy day does not make one hot partition.
fn event_shard(id: &str) -> u32 {
    id.bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % schema::EVENT_SHARDS
}

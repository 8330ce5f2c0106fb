//! Windowed counters on DynamoDB (events table, expiring by TTL).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::schema;
use super::{classify, n, s, DynamoStore};
use crate::error::StoreError;
use crate::store::Counters;

#[async_trait]
impl Counters for DynamoStore {
    /// One `UpdateItem ... ADD` on the events table (it has the TTL): `pk = CTR#<key>#<window>`.
    #[tracing::instrument(name = "dynamo.increment_counter", skip_all, fields(window_start = window_start))]
    async fn increment_counter(&self, key: &str, window_start: i64, ttl_secs: i64) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.events)
            .key(schema::PK, s(schema::counter_pk(key, window_start)))
            .key(schema::SK, s("-"))
            .update_expression("ADD #count :one SET #ttl = if_not_exists(#ttl, :expires)")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(window_start + ttl_secs))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem counter", e))?;
        match out.attributes.as_ref().and_then(|a| a.get("count")) {
            Some(AttributeValue::N(count)) => count.parse().map_err(|e| StoreError::internal("counter value", e)),
            _ => Err(StoreError::internal("counter value", "missing")),
        }
    }
}

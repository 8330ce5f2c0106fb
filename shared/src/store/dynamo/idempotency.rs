//! `Idempotency-Key` records on DynamoDB: one item per user and key in the conversations table
//! (`pk = IDEM#<owner>`, `sk = <key>`), expiring through the TTL attribute `expiresAt`. A
//! reservation is one conditional `PutItem` (absent or expired) that returns the live item when
//! the condition fails, so every outcome of a reservation is one round trip.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use serde::{Deserialize, Serialize};

use super::schema;
use super::{classify, from_item, n, s, to_item, DynamoStore, Item};
use crate::domain::{Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, HeldKey, Idempotency, Reservation, SavedResponse, StoredKey};

/// Attempts at a reservation whose record vanished between the failed condition and its read.
const RESERVE_ATTEMPTS: u32 = 3;

/// Whether the request holding the key is still running or has its response saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KeyState {
    Pending,
    Done,
}

/// The item of one user's key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdempotencyItem {
    pk: String,
    sk: String,
    fingerprint: String,
    state: KeyState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    /// Epoch seconds; the table's TTL attribute.
    expires_at: i64,
}

impl IdempotencyItem {
    fn stored(self) -> Result<StoredKey, StoreError> {
        let response = match self.state {
            KeyState::Pending => None,
            KeyState::Done => Some(SavedResponse {
                status: self
                    .status
                    .ok_or_else(|| StoreError::internal("idempotency record", "a completed record has no status"))?,
                body: self.body.unwrap_or_default(),
                location: self.location,
            }),
        };
        Ok(StoredKey {
            fingerprint: self.fingerprint,
            response,
        })
    }
}

fn key_of(held: &HeldKey) -> Item {
    super::sdk_key(schema::idempotency_pk(held.owner.as_str()), held.key.clone())
}

#[async_trait]
impl Idempotency for DynamoStore {
    /// One `PutItem` if `attribute_not_exists(pk) OR expiresAt <= :now`, returning the live item
    /// (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) when refused.
    #[tracing::instrument(name = "dynamo.reserve_key", skip_all)]
    async fn reserve_key(
        &self,
        owner: &UserId,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        for _ in 0..RESERVE_ATTEMPTS {
            let held = rules::hold_key(owner, key);
            let item = to_item(&IdempotencyItem {
                pk: schema::idempotency_pk(owner.as_str()),
                sk: key.to_owned(),
                fingerprint: fingerprint.to_owned(),
                state: KeyState::Pending,
                token: Some(held.token.clone()),
                status: None,
                body: None,
                location: None,
                expires_at: now.timestamp() + rules::IDEMPOTENCY_LEASE_SECS,
            })?;
            let result = self
                .client
                .put_item()
                .table_name(&self.tables.conversations)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk) OR #ttl <= :now")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
                .expression_attribute_values(":now", n(now.timestamp()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Reservation::Reserved(held)),
                Err(err) => err,
            };
            let live = match &err {
                SdkError::ServiceError(service) => match service.err() {
                    PutItemError::ConditionalCheckFailedException(refused) => Some(refused.item().cloned()),
                    _ => None,
                },
                _ => None,
            };
            match live {
                None => return Err(classify("PutItem idempotency key", err)),
                Some(Some(item)) => {
                    let stored = from_item::<IdempotencyItem>(item)?.stored()?;
                    return Ok(rules::existing_key(stored, fingerprint));
                }
                // Released between the condition and the answer: try again.
                Some(None) => continue,
            }
        }
        Ok(Reservation::InProgress)
    }

    /// One `UpdateItem` (state, response, 24-hour expiry; the token removed) if `token = :token`
    /// (still this request's): the fingerprint stays the reservation's.
    #[tracing::instrument(name = "dynamo.complete_key", skip_all)]
    async fn complete_key(&self, held: &HeldKey, response: &SavedResponse, now: Timestamp) -> Result<(), StoreError> {
        rules::check_saved_response(response)?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(key_of(held)))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#body", "body")
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":token", s(held.token.clone()))
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":status", n(response.status))
            .expression_attribute_values(":body", s(response.body.clone()))
            .expression_attribute_values(":expires", n(now.timestamp() + rules::IDEMPOTENCY_TTL_SECS));
        let mut expression = "SET #state = :done, #status = :status, #body = :body, #ttl = :expires".to_owned();
        if let Some(location) = &response.location {
            expression.push_str(", #location = :location");
            update = update
                .expression_attribute_names("#location", "location")
                .expression_attribute_values(":location", s(location.clone()));
        }
        expression.push_str(" REMOVE #token");
        match update.update_expression(expression).send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                tracing::warn!("an idempotency reservation expired before its response was saved");
                Ok(())
            }
            Err(e) => Err(classify("UpdateItem idempotency key", e)),
        }
    }

    /// One `DeleteItem` if `token = :token` (still this request's and not completed).
    #[tracing::instrument(name = "dynamo.release_key", skip_all)]
    async fn release_key(&self, held: &HeldKey) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(key_of(held)))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", s(held.token.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(classify("DeleteItem idempotency key", e)),
        }
    }
}

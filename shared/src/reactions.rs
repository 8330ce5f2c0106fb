//! Reactions to the conversations table's DynamoDB stream: what the `streams` Lambda function
//! (and, on DynamoDB, athena-local's [`StreamPoller`]) does with each changed item, off the
//! request path.
//!
//! Each record is classified into the reactions that follow it ([`reactions_of`]), then each is
//! applied in order. Today there is one: [`Reaction::Index`], the full-text search index (a
//! conversation's `META` for its title, a message for its text). A new reaction to the same
//! stream is a new variant, a new arm in [`reactions_of`] (which sees the whole record: its
//! event name, keys, images and `userIdentity`, which tells a TTL deletion by DynamoDB from an
//! application's delete) and in [`apply`], and, when it follows items the filter does not
//! let through yet, a new pattern in the event source mapping's `FilterCriteria` in
//! `template.yaml`. (The trash's purge is not one: conversations carry no TTL, the hourly
//! `housekeeping` function deletes them whole, and their `REMOVE` records unindex them here.)
//!
//! Failures: records are applied in order; the first that fails is reported as a batch item
//! failure (its `SequenceNumber`), so Lambda retries from it (`ReportBatchItemFailures`) and,
//! after the mapping's retries, sends the batch's description to the dead-letter queue. Every
//! reaction is idempotent (a retried record writes the same items again). A record whose item
//! cannot be read is logged and skipped: it would fail every retry.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::store::dynamo::{is_indexed, DynamoStore, IndexChange, IndexWrites};

/// A DynamoDB stream event as Lambda delivers it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct StreamEvent {
    /// The records, in stream order (per shard).
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

/// One record of a DynamoDB stream event (the fields the reactions read).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRecord {
    /// The record's id.
    #[serde(rename = "eventID", default)]
    pub event_id: String,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: String,
    /// The change.
    pub dynamodb: StreamChange,
    /// Who made the change: `{"type": "Service", "principalId": "dynamodb.amazonaws.com"}` for a
    /// TTL deletion, absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<UserIdentity>,
}

/// The `dynamodb` part of a record.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamChange {
    /// The item's key.
    #[serde(default)]
    pub keys: serde_dynamo::Item,
    /// The item after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<serde_dynamo::Item>,
    /// The item before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_image: Option<serde_dynamo::Item>,
    /// The record's position in its shard (the batch item failure's identifier).
    #[serde(default)]
    pub sequence_number: String,
}

/// A record's `userIdentity`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `Service` for a TTL deletion.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `dynamodb.amazonaws.com` for a TTL deletion.
    #[serde(default)]
    pub principal_id: String,
}

/// What Lambda is told: the records to retry from (`ReportBatchItemFailures`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// The first record that failed (at most one: the later ones are retried after it).
    pub batch_item_failures: Vec<ItemFailure>,
}

/// One failed record.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    /// Its `SequenceNumber`.
    pub item_identifier: String,
}

/// One thing to do for a record.
#[derive(Clone, Debug)]
pub enum Reaction {
    /// Bring the search index in line with a changed `META` (title) or message.
    Index(IndexChange),
}

/// The string value of a key attribute.
fn key_string(keys: &serde_dynamo::Item, name: &str) -> Option<String> {
    match keys.get(name) {
        Some(serde_dynamo::AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

/// The reactions that follow `record` (none for an item no reaction follows).
pub fn reactions_of(record: &StreamRecord) -> Vec<Reaction> {
    let change = &record.dynamodb;
    let (Some(pk), Some(sk)) = (
        key_string(&change.keys, crate::store::schema::PK),
        key_string(&change.keys, crate::store::schema::SK),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if is_indexed(&pk, &sk) {
        out.push(Reaction::Index(IndexChange {
            pk,
            sk,
            old: change.old_image.clone().map(Into::into),
            new: change.new_image.clone().map(Into::into),
        }));
    }
    out
}

/// What a batch did (for logs, tests and the benchmark's write units).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records handled.
    pub records: u64,
    /// Search postings written.
    pub index: IndexWrites,
}

/// Applies one reaction.
async fn apply(store: &DynamoStore, reaction: &Reaction, applied: &mut Applied) -> Result<(), StoreError> {
    match reaction {
        Reaction::Index(change) => {
            let w = store.apply_index_change(change).await?;
            applied.index.puts += w.puts;
            applied.index.deletes += w.deletes;
        }
    }
    Ok(())
}

/// Handles a batch of records in order; the first failing record (and so every later one) is
/// reported for a retry.
pub async fn handle(store: &DynamoStore, event: &StreamEvent) -> (BatchResponse, Applied) {
    let mut applied = Applied::default();
    for record in &event.records {
        for reaction in reactions_of(record) {
            if let Err(e) = apply(store, &reaction, &mut applied).await {
                tracing::error!(event_id = %record.event_id, error = %e, "a stream record failed; retried from it");
                let failure = ItemFailure {
                    item_identifier: record.dynamodb.sequence_number.clone(),
                };
                return (
                    BatchResponse {
                        batch_item_failures: vec![failure],
                    },
                    applied,
                );
            }
        }
        applied.records += 1;
    }
    (BatchResponse::default(), applied)
}

#[cfg(feature = "stream-poller")]
mod poller;
#[cfg(feature = "stream-poller")]
pub use poller::StreamPoller;

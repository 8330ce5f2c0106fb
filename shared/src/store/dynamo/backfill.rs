//! The search index's backfill: the postings of conversations and messages the stream consumer
//! never saw (stored before the table had its stream, restored from a backup, or whose records
//! were lost past the dead-letter queue), written by an operator's command (`athena-migrate
//! reindex`), never by a request.
//!
//! Each `META` and message item read is handed to the stream consumer's own posting logic as an
//! insert (`search::index_requests` with no old image), so a backfilled item gets exactly the
//! postings its stream `INSERT` would have written; they are put in `BatchWriteItem`s of 25
//! (unprocessed items retried with backoff). Idempotent: a rerun puts the same items again.
//!
//! The whole table: a **parallel `Scan`** ([`DynamoStore::backfill_scan_page`]), the one Scan of
//! the code base: a maintenance job over every user's data, run by a person, never on a user's
//! request (the rule "no Scan" is about requests: their cost must not grow with the table). Its
//! `FilterExpression` keeps conversation `META` and message items (the read units are those of
//! every item scanned; the filter only trims what crosses the network) and its
//! `ProjectionExpression` the attributes the index reads. One user: the owner index on each shelf
//! (and the hidden conversations of an interrupted import), then a `Query` of each conversation's
//! `META`..messages range ([`DynamoStore::backfill_owner`]).

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, Select};
use serde::{Deserialize, Serialize};

use super::search::{index_requests, INDEXED_ATTRIBUTES};
use super::{classify, s, schema, DynamoStore, Item};
use crate::domain::{Shelf, UserId};
use crate::error::StoreError;
use crate::store::dynamo::IndexChange;

/// Where a segment of the Scan stands: the `LastEvaluatedKey` of its last page (the table's key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPosition {
    /// `pk`.
    pub pk: String,
    /// `sk`.
    pub sk: String,
}

/// What a backfill did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backfilled {
    /// Items read (on a Scan: every item scanned, what the read units are charged for).
    pub items_read: u64,
    /// Conversation titles and messages indexed.
    pub documents: u64,
    /// Postings put (each under 1 KB: one write unit each).
    pub postings: u64,
    /// Read units the service reported for the reads (0 when it reports none).
    pub read_units: f64,
}

impl Backfilled {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Backfilled) {
        self.items_read += other.items_read;
        self.documents += other.documents;
        self.postings += other.postings;
        self.read_units += other.read_units;
    }
}

/// One page of a segment: what it did, and where the segment continues (`None`: it is done).
#[derive(Clone, Debug, PartialEq)]
pub struct BackfillPage {
    /// What the page did.
    pub done: Backfilled,
    /// The segment's next start.
    pub next: Option<ScanPosition>,
}

/// The projection of the index's attributes, with a placeholder name for each.
fn projection() -> (String, Vec<(String, String)>) {
    let names: Vec<(String, String)> = INDEXED_ATTRIBUTES
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("#a{i}"), (*a).to_owned()))
        .collect();
    let expression = names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
    (expression, names)
}

fn string_of(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

impl DynamoStore {
    /// Puts the postings of `items` (conversation `META` and message images as stored; other items
    /// are ignored), as their stream inserts would.
    pub async fn backfill_items(&self, items: Vec<Item>) -> Result<Backfilled, StoreError> {
        let mut done = Backfilled::default();
        let mut requests = Vec::new();
        for item in items {
            let (Some(pk), Some(sk)) = (string_of(&item, schema::PK), string_of(&item, schema::SK)) else {
                continue;
            };
            let change = IndexChange {
                pk,
                sk,
                old: None,
                new: Some(item),
            };
            let (mut puts, writes) = index_requests(&change)?;
            if writes.puts > 0 {
                done.documents += 1;
            }
            done.postings += writes.puts;
            requests.append(&mut puts);
            if requests.len() >= 25 {
                let rest = requests.split_off(requests.len() - requests.len() % 25);
                self.write_in_batches(&mut requests).await?;
                requests = rest;
            }
        }
        self.write_in_batches(&mut requests).await?;
        Ok(done)
    }

    /// Reads one page of segment `segment` (0-based) of a parallel Scan in `segments` from
    /// `start` (`None`: the segment's beginning) and puts the postings of its conversation titles
    /// and messages. `limit`: most items evaluated by the page (`None`: DynamoDB's 1 MB page).
    pub async fn backfill_scan_page(
        &self,
        segment: u32,
        segments: u32,
        start: Option<&ScanPosition>,
        limit: Option<i32>,
    ) -> Result<BackfillPage, StoreError> {
        let (projection, names) = projection();
        let mut scan = self
            .client
            .scan()
            .table_name(&self.tables.conversations)
            .segment(i32::try_from(segment).map_err(|e| StoreError::internal("segment", e))?)
            .total_segments(i32::try_from(segments).map_err(|e| StoreError::internal("segments", e))?)
            .filter_expression(
                "begins_with(#a0, :conv) AND (#a1 = :meta OR (begins_with(#a1, :msg) AND NOT contains(#a1, :chunk)))",
            )
            .projection_expression(projection)
            .expression_attribute_values(":conv", s(schema::CONVERSATION_PREFIX))
            .expression_attribute_values(":meta", s(schema::META))
            .expression_attribute_values(":msg", s(schema::MSG_PREFIX))
            .expression_attribute_values(":chunk", s(schema::CHUNK_MARK))
            .select(Select::SpecificAttributes)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_limit(limit);
        for (name, attribute) in names {
            scan = scan.expression_attribute_names(name, attribute);
        }
        if let Some(start) = start {
            scan = scan
                .exclusive_start_key(schema::PK, s(start.pk.clone()))
                .exclusive_start_key(schema::SK, s(start.sk.clone()));
        }
        let out = scan.send().await.map_err(|e| classify("Scan (search backfill)", e))?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .filter(|key| !key.is_empty())
            .and_then(|key| {
                Some(ScanPosition {
                    pk: string_of(key, schema::PK)?,
                    sk: string_of(key, schema::SK)?,
                })
            });
        let read_units = out
            .consumed_capacity
            .as_ref()
            .and_then(|c| c.capacity_units)
            .unwrap_or(0.0);
        let items_read = u64::try_from(out.scanned_count).unwrap_or(0);
        let mut done = self.backfill_items(out.items.unwrap_or_default()).await?;
        done.items_read = items_read;
        done.read_units = read_units;
        Ok(BackfillPage { done, next })
    }

    /// Backfills one owner's conversations: the owner index on every shelf and the hidden
    /// conversations of an interrupted import, then each conversation's `META` and messages (a
    /// `Query` of its partition's `META`..`MSG$` range). Another user's data is never read.
    pub async fn backfill_owner(&self, owner: &UserId) -> Result<Backfilled, StoreError> {
        let owner = owner.as_str();
        let mut done = Backfilled::default();
        let partitions = Shelf::ALL
            .into_iter()
            .map(|shelf| schema::owner_shelf_pk(owner, shelf))
            .chain(std::iter::once(schema::importing_pk(owner)));
        let (projection, names) = projection();
        for index_pk in partitions {
            for id in self.index_ids(schema::GSI_OWNER, "gsi1pk", &index_pk).await? {
                let items = self
                    .all_pages("Query a conversation (search backfill)", || {
                        let mut query = self
                            .client
                            .query()
                            .table_name(&self.tables.conversations)
                            .key_condition_expression("#a0 = :pk AND #a1 BETWEEN :from AND :to")
                            .expression_attribute_values(":pk", s(schema::conversation_pk(owner, &id)))
                            .expression_attribute_values(":from", s(schema::META))
                            .expression_attribute_values(":to", s(schema::MESSAGES_END))
                            .projection_expression(projection.clone());
                        for (name, attribute) in &names {
                            query = query.expression_attribute_names(name, attribute);
                        }
                        query
                    })
                    .await?;
                let read = items.len() as u64;
                let mut page = self.backfill_items(items).await?;
                page.items_read = read;
                done.add(&page);
            }
        }
        Ok(done)
    }
}

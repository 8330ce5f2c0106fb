//! Erasing a user's data on DynamoDB: every partition keyed by the user, the user's
//! conversations found through the owner index (each shelf), the user's analytics events through
//! the events table's `byUser` index, and the user's hash taken out of the daily counters.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use futures::{stream, StreamExt, TryStreamExt};

use super::schema;
use super::{classify, s, DynamoStore, Item};
use crate::domain::{ConversationId, Shelf, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, Accounts, Conversations, Erased};

/// How many daily-counter partitions are read at once when taking a user's hash out of them.
const STATS_CONCURRENCY: usize = 16;

impl DynamoStore {
    /// Deletes items of `table` by key, 25 a request (unprocessed ones retried). How many.
    pub(super) async fn delete_keys(&self, table: &str, keys: Vec<Item>) -> Result<u64, StoreError> {
        let count = keys.len() as u64;
        for chunk in keys.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    let del = DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(|e| StoreError::internal("building a delete request", e))?;
                    Ok(WriteRequest::builder().delete_request(del).build())
                })
                .collect::<Result<_, StoreError>>()?;
            self.batch_write(table, &mut requests).await?;
        }
        Ok(count)
    }

    /// The keys of every item of partition `pk` of `table` (every page).
    async fn partition_keys(&self, table: &str, pk: &str) -> Result<Vec<Item>, StoreError> {
        self.all_pages("Query a user's partition", || {
            self.client
                .query()
                .table_name(table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_names("#sk", schema::SK)
                .expression_attribute_values(":pk", s(pk))
                .projection_expression("#pk, #sk")
        })
        .await
    }

    /// Takes the user's hash out of the active-user set of every daily counter of `day`.
    async fn forget_in_stats(&self, day: String, hash: &str) -> Result<u64, StoreError> {
        let rows = self
            .all_pages("Query stats", || {
                self.client
                    .query()
                    .table_name(&self.tables.events)
                    .key_condition_expression("#pk = :pk")
                    .filter_expression("contains(#users, :hash)")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#sk", schema::SK)
                    .expression_attribute_names("#users", "users")
                    .expression_attribute_values(":pk", s(schema::stats_pk(&day)))
                    .expression_attribute_values(":hash", s(hash))
                    .projection_expression("#pk, #sk")
            })
            .await?;
        for key in &rows {
            self.client
                .update_item()
                .table_name(&self.tables.events)
                .set_key(Some(key.clone()))
                .update_expression("DELETE #users :hash")
                .expression_attribute_names("#users", "users")
                .expression_attribute_values(":hash", AttributeValue::Ss(vec![hash.to_owned()]))
                .send()
                .await
                .map_err(|e| classify("UpdateItem stats", e))?;
        }
        Ok(rows.len() as u64)
    }
}

#[async_trait]
impl Accounts for DynamoStore {
    /// Conversations: the owner index on each shelf, then each deleted as `delete_conversation`
    /// does (a conversation whose delete was interrupted has left the indexes: it is not found
    /// here, only by finishing its own delete). Partitions keyed by the user (folders, tag
    /// memberships, projects, prompts, file records, idempotency records, audit entries, stream
    /// slots): a keys-only `Query` each, then `BatchWriteItem` deletes. Rate counters and token
    /// budgets: their keys for the periods that can still hold one (the last rate windows, the
    /// last 70 days and 3 months), deleted whether present or not. Analytics events: the
    /// `byUser` index. Daily counters: each day of their retention, the rows whose active-user
    /// set holds the user's hash (a filtered `Query` per day, 16 at once), that hash deleted.
    #[tracing::instrument(name = "dynamo.erase_user", skip_all)]
    async fn erase_user(&self, user: &UserId, now: Timestamp) -> Result<Erased, StoreError> {
        let owner = user.as_str();
        let mut erased = Erased::default();
        let mut ids_seen = Vec::new();
        // Every shelf, and the conversations an interrupted import left hidden.
        let partitions = Shelf::ALL
            .into_iter()
            .map(|shelf| schema::owner_shelf_pk(owner, shelf))
            .chain(std::iter::once(schema::importing_pk(owner)));
        for pk in partitions {
            for id in self.index_ids(schema::GSI_OWNER, "gsi1pk", &pk).await? {
                let id = ConversationId::parse(&id).map_err(|e| StoreError::internal("stored conversation id", e))?;
                ids_seen.push(id.clone());
                match self.delete_conversation(user, &id).await {
                    Ok(_) => erased.conversations += 1,
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // `athena-migrate`'s claims of these ids (each only if it is this user's).
        for id in &ids_seen {
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.tables.events)
                .key(schema::PK, s(schema::claim_pk(id.as_str())))
                .key(schema::SK, s("-"))
                .condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(owner))
                .send()
                .await;
            match deleted {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(classify("DeleteItem claim", e)),
            }
        }
        // Share links left by a conversation whose delete was interrupted (with their lookup items).
        erased.items += self.drop_links(user, None).await?;
        let conversations_table = self.tables.conversations.clone();
        let events_table = self.tables.events.clone();
        for (table, pk) in [
            (&conversations_table, schema::folders_pk(owner)),
            (&conversations_table, schema::tags_pk(owner)),
            (&conversations_table, schema::projects_pk(owner)),
            (&conversations_table, schema::prompts_pk(owner)),
            (&conversations_table, schema::caps_pk(owner)),
            (&conversations_table, schema::files_pk(owner)),
            (&conversations_table, schema::idempotency_pk(owner)),
            (&conversations_table, schema::bookmarks_pk(owner)),
            (&events_table, schema::audit_pk(owner)),
            (&events_table, schema::slot_pk(owner)),
            (&events_table, schema::usage_pk(owner)),
        ] {
            let keys = self.partition_keys(table, &pk).await?;
            erased.items += self.delete_keys(table, keys).await?;
        }
        // Import jobs (IMPJ#<owner prefix>): the user's, page by page (a partition keyed by a hash
        // of the owner could hold another owner's on a collision: never deleted here).
        loop {
            let jobs = crate::store::ImportJobs::list_import_jobs(self, user, None, 100).await?;
            if jobs.is_empty() {
                break;
            }
            for job in &jobs {
                crate::store::ImportJobs::delete_import_job(self, user, &job.id).await?;
                erased.items += 1;
            }
        }
        // Counters and budgets: one item per period; delete the periods that can still exist.
        let key =
            |pk: String| -> Item { HashMap::from([(schema::PK.to_owned(), s(pk)), (schema::SK.to_owned(), s("-"))]) };
        let mut periodic = vec![key(schema::plan_pk(owner))];
        let window = rules::rate_window(now).start;
        for k in 0..4 {
            periodic.push(key(schema::counter_pk(
                &schema::rate_key(owner),
                window - k * rules::RATE_WINDOW_SECS,
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for days_back in 0..70 {
            let at = now - chrono::Duration::days(days_back);
            let (day, month) = schema::budget_pks(owner, &at);
            for pk in [day, month, schema::budget_usd_pk(owner, &at)] {
                if seen.insert(pk.clone()) {
                    periodic.push(key(pk));
                }
            }
        }
        // Deleting a missing item is no error: these count as attempted, not as found.
        self.delete_keys(&events_table, periodic).await?;
        // Analytics events, through the user's index.
        let hash = crate::domain::user_hash(user);
        let events = self
            .all_pages("Query a user's events", || {
                self.client
                    .query()
                    .table_name(&events_table)
                    .index_name(schema::GSI_EVENTS_BY_USER)
                    .key_condition_expression("userKey = :u")
                    .expression_attribute_values(":u", s(schema::event_user_key(&hash)))
            })
            .await?;
        let event_keys: Vec<Item> = events
            .into_iter()
            .map(|item| {
                item.into_iter()
                    .filter(|(k, _)| k == schema::PK || k == schema::SK)
                    .collect::<Item>()
            })
            .collect();
        erased.items += self.delete_keys(&events_table, event_keys).await?;
        // The daily counters of every day they are kept.
        let days: Vec<String> = (0..=rules::STATS_RETENTION_DAYS)
            .map(|d| (now - chrono::Duration::days(d)).format("%Y-%m-%d").to_string())
            .collect();
        let rewritten: Vec<u64> = stream::iter(days)
            .map(|day| self.forget_in_stats(day, &hash))
            .buffer_unordered(STATS_CONCURRENCY)
            .try_collect()
            .await?;
        erased.items += rewritten.iter().sum::<u64>();
        Ok(erased)
    }
}

/// How many days back housekeeping looks in the day index (a run that was missed for longer
/// leaves older days to be found by a wider run: see `docs/data-model.md`).
const LOOKBACK_DAYS: i64 = 31;

impl DynamoStore {
    /// The (owner, id) of every conversation under day-index keys of `kind` for the days from
    /// `last - LOOKBACK_DAYS` to `last`, every shard.
    async fn day_index(&self, kind: &str, last: Timestamp) -> Result<Vec<(UserId, ConversationId)>, StoreError> {
        let keys: Vec<String> = (0..=LOOKBACK_DAYS)
            .rev()
            .flat_map(|back| {
                let day = (last - chrono::Duration::days(back)).format("%Y-%m-%d").to_string();
                (0..schema::DAY_SHARDS).map(move |shard| schema::day_key(kind, &day, shard))
            })
            .collect();
        let pages: Vec<Vec<Item>> = stream::iter(keys)
            .map(|key| {
                self.all_pages("Query the day index", move || {
                    self.client
                        .query()
                        .table_name(&self.tables.conversations)
                        .index_name(schema::GSI_DAY)
                        .key_condition_expression("dayKey = :k")
                        .expression_attribute_values(":k", s(key.clone()))
                })
            })
            .buffered(STATS_CONCURRENCY)
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for item in pages.into_iter().flatten() {
            let Some(AttributeValue::S(pk)) = item.get(schema::PK) else {
                continue;
            };
            let Some((owner, id)) = schema::parse_conversation_pk(pk) else {
                continue;
            };
            let owner = UserId::parse(owner).map_err(|e| StoreError::internal("stored owner", e))?;
            let id = ConversationId::parse(id).map_err(|e| StoreError::internal("stored conversation id", e))?;
            out.push((owner, id));
        }
        Ok(out)
    }
}

#[async_trait]
impl crate::store::Housekeeping for DynamoStore {
    /// The day index's purge days up to today (every shard, one `Query` each), then each
    /// candidate's META (a consistent `GetItem`): in the trash and `purgeAt` passed.
    #[tracing::instrument(name = "dynamo.due_for_purge", skip_all)]
    async fn due_for_purge(&self, now: Timestamp, limit: u32) -> Result<Vec<(UserId, ConversationId)>, StoreError> {
        let mut due = Vec::new();
        for (owner, id) in self.day_index("P", now).await? {
            if due.len() >= limit as usize {
                break;
            }
            match self.read_meta(&owner, &id).await {
                Ok(meta) if meta.trashed_at.is_some() && meta.purge_at.is_some_and(|at| at <= now.timestamp()) => {
                    due.push((owner, id));
                }
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(due)
    }

    /// The day index's touched days up to `before`'s, then each candidate's META: not pinned, not
    /// in the trash, `updatedAt` before `before`: moved to the trash (the organising rewrite).
    #[tracing::instrument(name = "dynamo.trash_untouched", skip_all)]
    async fn trash_untouched(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        let mut moved = 0;
        for (owner, id) in self.day_index("T", before).await? {
            let meta = match self.read_meta(&owner, &id).await {
                Ok(meta) => meta,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            if meta.is_pinned || meta.trashed_at.is_some() {
                continue;
            }
            let updated = rules::parse_ts(&meta.updated_at)?;
            if updated >= before {
                continue;
            }
            match self.trash(&owner, &id, now).await {
                Ok(_) => moved += 1,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }
}

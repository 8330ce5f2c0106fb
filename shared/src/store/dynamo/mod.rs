//! The DynamoDB adapter. Items are (de)serialized with `serde_dynamo`; keys come from
//! [`schema`]. No Scan on any request's path: every read is a GetItem or a Query on a key
//! condition (the one Scan is the search index's backfill, an operator's command: `backfill`).
//!
//! Invariants are enforced by conditional writes: a conversation is created only if absent; every
//! write to a conversation's items checks the owner and that no delete is under way; an append
//! touches the conversation and stores the message (and its chunks and client-id marker) in one
//! transaction. Delete first marks the conversation (so no append can land after it), then
//! removes every item of the partition in batches, then the conversation itself.
//!
//! One file per capability (`conversations`, `messages`, `turns`, `activity`, `stats`,
//! `counters`, `idempotency`); `items` holds the item structs and their conversions; this module holds the store,
//! its tables, the client, table creation, error classification and the transaction and batch
//! helpers every capability uses.

mod accounting;
mod accounts;
mod activity;
mod backfill;
mod conversations;
mod counters;
mod docs;
mod feedback;
mod files;
mod idempotency;
mod import_jobs;
mod items;
mod links;
mod messages;
mod organize;
mod projects;
mod prompts;
pub mod schema;
mod search;
mod sharing;
mod stats;
mod streams;
mod turns;

pub use backfill::{BackfillPage, Backfilled, ScanPosition};
pub use items::CHUNK_BYTES;
pub use search::{
    is_indexed, IndexChange, IndexWrites, ItemImage, FIRST_PAGE as SEARCH_FIRST_PAGE,
    MAX_CANDIDATES as SEARCH_MAX_CANDIDATES, MAX_POSTINGS_PER_TERM,
};

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::builders::KeysAndAttributesBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType as DdbKeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use self::items::ConversationItem;
use self::schema::{KeyType, TableDef};
use crate::domain::{ConversationId, UserId};
use crate::error::{BoxError, StoreError};

type Item = HashMap<String, AttributeValue>;

/// Most items one TransactWriteItems may hold.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// Attempts for a transaction that lost a race with another one (TransactionConflict).
const CONFLICT_ATTEMPTS: u32 = 8;
/// Attempts for a batch write whose items keep coming back unprocessed (throttling).
const BATCH_ATTEMPTS: u32 = 8;

/// Table names.
#[derive(Clone, Debug)]
pub struct Tables {
    /// Conversations, messages, chunks and markers.
    pub conversations: String,
    /// Analytics events.
    pub events: String,
}

/// The DynamoDB store.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
    event_ttl: Duration,
}

/// Builds a DynamoDB client from the environment (region, credentials, `AWS_ENDPOINT_URL_DYNAMODB`)
/// with the SDK's standard retry mode (5 attempts, exponential backoff with jitter: throttling and
/// 5xx are retried) and timeouts (connect 2 s, attempt 3 s, whole operation 8 s: below the CRUD
/// functions' 10 s Lambda timeout, so a stalled call ends as our own UNAVAILABLE error).
pub async fn client_from_env() -> Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        // Compiled-in roots: building the client reads no certificate files (crate::http).
        .http_client(crate::http::sdk_http_client())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(25)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .load()
        .await;
    Client::new(&config)
}

impl DynamoStore {
    /// A store on existing tables.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            tables,
            event_ttl: crate::store::rules::DEFAULT_EVENT_TTL,
        }
    }

    /// Sets how long analytics events are kept (TTL).
    pub fn with_event_ttl(mut self, ttl: Duration) -> Self {
        self.event_ttl = ttl;
        self
    }

    /// The SDK client (tests inspect raw items through it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates the tables from their definitions (tests and the local DynamoDB setup; production
    /// tables come from `template.yaml`), skipping tables that exist. Waits until they are active.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        for (def, name) in [
            (schema::conversations_table(), &self.tables.conversations),
            (schema::events_table(), &self.tables.events),
        ] {
            create_table(&self.client, &def, name).await?;
        }
        Ok(())
    }

    async fn get_meta(&self, owner: &UserId, id: &ConversationId) -> Result<ConversationItem, StoreError> {
        let meta = self.read_meta(owner, id).await?;
        if meta.trashed_at.is_some() {
            return Err(StoreError::NotFound);
        }
        Ok(meta)
    }

    /// The META item of `owner`'s conversation (read consistently), whatever its shelf (the
    /// trash included); not found when it is someone else's or being deleted.
    async fn read_meta(&self, owner: &UserId, id: &ConversationId) -> Result<ConversationItem, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::conversation_pk(owner.as_str(), id.as_str())))
            .key(schema::SK, s(schema::META))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem conversation", e))?;
        let item = out.item.ok_or(StoreError::NotFound)?;
        let meta: ConversationItem = from_item(item)?;
        if !meta.owned_by(owner) {
            return Err(StoreError::NotFound);
        }
        Ok(meta)
    }

    /// Every item a Query returns, page after page (`query` builds the request of each page).
    async fn all_pages(&self, what: &str, query: impl Fn() -> QueryFluentBuilder) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = query()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(what, e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Every item of a conversation's partition whose sort key starts with `prefix`, in order.
    async fn query_partition(
        &self,
        owner: &UserId,
        id: &ConversationId,
        prefix: Option<&str>,
        keys_only: bool,
    ) -> Result<Vec<Item>, StoreError> {
        self.all_pages("Query conversation", || {
            let mut q = self
                .client
                .query()
                .table_name(&self.tables.conversations)
                .consistent_read(true)
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_values(":pk", s(schema::conversation_pk(owner.as_str(), id.as_str())));
            q = match prefix {
                Some(p) => q
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", schema::SK)
                    .expression_attribute_values(":prefix", s(p)),
                None => q.key_condition_expression("#pk = :pk"),
            };
            if keys_only {
                q = q
                    .projection_expression("#pk, #sk")
                    .expression_attribute_names("#sk", schema::SK);
            }
            q
        })
        .await
    }

    /// Every item of a conversation's partition with a sort key in `from..=to`, in order.
    async fn query_range(
        &self,
        owner: &UserId,
        id: &ConversationId,
        from: &str,
        to: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.all_pages("Query conversation", || {
            self.client
                .query()
                .table_name(&self.tables.conversations)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_names("#sk", schema::SK)
                .expression_attribute_values(":pk", s(schema::conversation_pk(owner.as_str(), id.as_str())))
                .expression_attribute_values(":from", s(from))
                .expression_attribute_values(":to", s(to))
        })
        .await
    }

    /// The items of `keys` in the conversations table, in no particular order; a key with no
    /// item is left out. One `BatchGetItem` per 100 keys; keys that come back unprocessed
    /// (throttling) are asked again with backoff, up to [`BATCH_ATTEMPTS`] times, then
    /// `Unavailable`. `shape` sets what every request reads (consistency, projection, names);
    /// `what` names the read in errors.
    async fn batch_get(
        &self,
        what: &str,
        keys: Vec<Item>,
        shape: impl Fn(KeysAndAttributesBuilder) -> KeysAndAttributesBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        let table = &self.tables.conversations;
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut keys: Vec<Item> = chunk.to_vec();
            let mut attempt = 0;
            while !keys.is_empty() {
                attempt += 1;
                let request = shape(KeysAndAttributes::builder().set_keys(Some(std::mem::take(&mut keys))))
                    .build()
                    .map_err(|e| StoreError::internal(what, e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(|e| classify(what, e))?;
                found.extend(out.responses.and_then(|mut r| r.remove(table)).unwrap_or_default());
                keys = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    if attempt >= BATCH_ATTEMPTS {
                        return Err(StoreError::Unavailable(format!("{what}: keys left unprocessed").into()));
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(found)
    }

    /// Deletes items of the conversations table by key in batches of 25, retrying unprocessed
    /// ones with backoff.
    async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        let table = self.tables.conversations.clone();
        self.delete_keys(&table, keys).await.map(|_| ())
    }

    /// Deletes every item of a conversation's partition but the conversation itself (messages,
    /// chunks, markers). Returns how many messages went.
    async fn delete_partition_items(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        let keys = self.query_partition(owner, id, None, true).await?;
        let mut messages = 0u64;
        let mut doomed = Vec::with_capacity(keys.len());
        for k in keys {
            let sk = match k.get(schema::SK) {
                Some(AttributeValue::S(sk)) => sk.clone(),
                _ => continue,
            };
            if sk == schema::META {
                continue;
            }
            if sk.starts_with(schema::MSG_PREFIX) && !sk.contains("#C") {
                messages += 1;
            }
            doomed.push(k);
        }
        self.batch_delete(doomed).await?;
        Ok(messages)
    }

    async fn batch_write(&self, table: &str, requests: &mut Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut attempt = 0;
        while !requests.is_empty() {
            attempt += 1;
            let out = self
                .client
                .batch_write_item()
                .request_items(table, std::mem::take(requests))
                .send()
                .await
                .map_err(|e| classify("BatchWriteItem", e))?;
            *requests = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
            if !requests.is_empty() {
                if attempt >= BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        format!(
                            "{} items still unprocessed after {attempt} batch attempts",
                            requests.len()
                        )
                        .into(),
                    ));
                }
                backoff(attempt).await;
            }
        }
        Ok(())
    }

    /// Runs a transaction, retrying when it lost a race (TransactionConflict). Returns the
    /// cancellation reason codes when a condition failed.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), Vec<Option<String>>>, StoreError> {
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::TooLarge(format!(
                "the write needs {} items; a transaction holds at most {MAX_TRANSACTION_ITEMS}",
                items.len()
            )));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Ok(())),
                Err(err) => err,
            };
            if let SdkError::ServiceError(service) = &err {
                if let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                    cancelled,
                ) = service.err()
                {
                    let codes: Vec<Option<String>> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                        .collect();
                    let conflict = codes.iter().flatten().any(|c| c == "TransactionConflict");
                    let condition = codes.iter().flatten().any(|c| c == "ConditionalCheckFailed");
                    if condition {
                        return Ok(Err(codes));
                    }
                    if conflict && attempt < CONFLICT_ATTEMPTS {
                        backoff(attempt).await;
                        continue;
                    }
                    if conflict {
                        return Err(StoreError::Unavailable(
                            "transaction kept conflicting with concurrent writes".into(),
                        ));
                    }
                }
            }
            return Err(classify("TransactWriteItems", err));
        }
    }
}

async fn backoff(attempt: u32) {
    use rand::Rng;
    let cap = 10u64.saturating_mul(1 << attempt.min(6));
    let jitter = rand::rng().random_range(0..=cap);
    tokio::time::sleep(Duration::from_millis(5 + jitter)).await;
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::internal("serializing an item", e))
}

fn from_item<'a, T: Deserialize<'a>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::internal("deserializing an item", e))
}

fn put_if_absent(table: &str, item: Item) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", schema::PK)
        .build();
    match put {
        Ok(put) => TransactWriteItem::builder().put(put).build(),
        // `build` fails only without a table name or item, both always set here.
        Err(_) => TransactWriteItem::builder().build(),
    }
}

fn sdk_key(pk: String, sk: String) -> Item {
    HashMap::from([(schema::PK.to_owned(), s(pk)), (schema::SK.to_owned(), s(sk))])
}

/// Maps an SDK error: throttling, timeouts and transport failures (after the SDK's retries) are
/// `Unavailable`; anything else is `Internal`. The SDK error is kept as the source, for logs only.
fn classify<E, R>(context: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "LimitExceededException"
            )
        ),
        _ => false,
    };
    let source: BoxError = Box::new(err);
    if unavailable {
        StoreError::Unavailable(source)
    } else {
        StoreError::Internal {
            context: context.to_owned(),
            source,
        }
    }
}

async fn create_table(client: &Client, def: &TableDef, name: &str) -> Result<(), StoreError> {
    fn attr_type(t: KeyType) -> ScalarAttributeType {
        match t {
            KeyType::String => ScalarAttributeType::S,
            KeyType::Number => ScalarAttributeType::N,
        }
    }
    fn key_schema(key: &schema::KeyDef) -> Result<Vec<KeySchemaElement>, StoreError> {
        let mut out = vec![KeySchemaElement::builder()
            .attribute_name(key.hash.0)
            .key_type(DdbKeyType::Hash)
            .build()
            .map_err(|e| StoreError::internal("key schema", e))?];
        if let Some((name, _)) = key.range {
            out.push(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(DdbKeyType::Range)
                    .build()
                    .map_err(|e| StoreError::internal("key schema", e))?,
            );
        }
        Ok(out)
    }
    let mut attributes: Vec<(&str, KeyType)> = Vec::new();
    let mut add = |key: &schema::KeyDef| {
        for (a, t) in std::iter::once(key.hash).chain(key.range) {
            if !attributes.iter().any(|(x, _)| *x == a) {
                attributes.push((a, t));
            }
        }
    };
    add(&def.key);
    for index in &def.indexes {
        add(&index.key);
    }
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&def.key)?));
    if let Some(view) = def.stream {
        req = req.stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::from(view))
                .build()
                .map_err(|e| StoreError::internal("stream specification", e))?,
        );
    }
    for (a, t) in attributes {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a)
                .attribute_type(attr_type(t))
                .build()
                .map_err(|e| StoreError::internal("attribute definition", e))?,
        );
    }
    for index in &def.indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(key_schema(&index.key)?))
                .projection(
                    Projection::builder()
                        .projection_type(if index.keys_only {
                            ProjectionType::KeysOnly
                        } else {
                            ProjectionType::All
                        })
                        .build(),
                )
                .build()
                .map_err(|e| StoreError::internal("index definition", e))?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        // Already there (a second start of the local gateway): nothing to do.
        Err(SdkError::ServiceError(e)) if e.err().is_resource_in_use_exception() => return Ok(()),
        Err(e) => return Err(classify("CreateTable", e)),
    }
    if let Some(ttl) = def.ttl {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .attribute_name(ttl)
                    .enabled(true)
                    .build()
                    .map_err(|e| StoreError::internal("ttl", e))?,
            )
            .send()
            .await
            .map_err(|e| classify("UpdateTimeToLive", e))?;
    }
    for _ in 0..100 {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("DescribeTable", e))?;
        let active = out
            .table
            .and_then(|t| t.table_status)
            .is_some_and(|st| st == aws_sdk_dynamodb::types::TableStatus::Active);
        if active {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(StoreError::Unavailable(
        format!("table {name} did not become active").into(),
    ))
}

fn update_item(update: Result<Update, aws_sdk_dynamodb::error::BuildError>) -> Result<TransactWriteItem, StoreError> {
    update
        .map(|u| TransactWriteItem::builder().update(u).build())
        .map_err(|e| StoreError::internal("building an update", e))
}

fn owner_condition() -> &'static str {
    "attribute_exists(#pk) AND ownerId = :owner AND attribute_not_exists(deleting) AND attribute_not_exists(trashedAt) AND attribute_not_exists(importing)"
}

//! The DynamoDB adapter. Items are (de)serialized with `serde_dynamo`; keys come from
//! [`super::schema`]. No Scan anywhere: every read is a GetItem or a Query on a key condition.
//!
//! Invariants are enforced by conditional writes: a conversation is created only if absent; every
//! write to a conversation's items checks the owner and that no delete is under way; an append
//! touches the conversation and stores the message (and its chunks and client-id marker) in one
//! transaction. Delete first marks the conversation (so no append can land after it), then
//! removes every item of the partition in batches, then the conversation itself.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, GlobalSecondaryIndex, KeySchemaElement,
    KeyType as DdbKeyType, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType, TransactWriteItem,
    Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::schema::{self, KeyType, TableDef};
use super::{
    check_message_size, cursor, listing_rank, page_size, pin_base, scaled_time, Activity, Appended, ConversationPatch,
    Conversations, Counters, ListConversations, ListMessages, Messages, Page, Stats, StreamLease, Touch, TurnBegun,
    TurnFinish, TurnStart, TurnWrite, Turns, DEFAULT_PAGE,
};
use crate::domain::{
    self, ts, AnalyticsEvent, AuditEntry, ClientMessageId, Conversation, ConversationId, FinishReason, Message,
    MessageId, MessagePart, Role, Solution, SolutionFilter, StatsDelta, StatsRow, Timestamp, Usage, UserId,
};
use crate::error::{BoxError, StoreError};

type Item = HashMap<String, AttributeValue>;

/// Bytes of content per item. DynamoDB's item limit is 400 KB including attribute names and the
/// other attributes; 300 KB of content leaves ample room for them.
pub const CHUNK_BYTES: usize = 300 * 1024;
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

impl Tables {
    /// Names from `ATHENA_TABLE` / `ATHENA_EVENTS_TABLE`, `None` when `ATHENA_TABLE` is unset.
    pub fn from_env() -> Option<Self> {
        let conversations = std::env::var(schema::conversations_table().env).ok()?;
        let events = std::env::var(schema::events_table().env).unwrap_or_else(|_| format!("{conversations}-events"));
        Some(Self { conversations, events })
    }
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
            event_ttl: Duration::from_secs(90 * 24 * 3600),
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
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::conversation_pk(id.as_str())))
            .key(schema::SK, s(schema::META))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem conversation", e))?;
        let item = out.item.ok_or(StoreError::NotFound)?;
        let meta: ConversationItem = from_item(item)?;
        if meta.owner_id != owner.as_str() || meta.deleting.unwrap_or(false) {
            return Err(StoreError::NotFound);
        }
        Ok(meta)
    }

    /// Every item of a conversation's partition whose sort key starts with `prefix`, in order.
    async fn query_partition(
        &self,
        id: &ConversationId,
        prefix: Option<&str>,
        keys_only: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.tables.conversations)
                .consistent_read(true)
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_values(":pk", s(schema::conversation_pk(id.as_str())))
                .set_exclusive_start_key(start.take());
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
            let out = q.send().await.map_err(|e| classify("Query conversation", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(items)
    }

    /// Deletes items by key in batches of 25, retrying unprocessed ones with backoff.
    async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
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
            self.batch_write(&self.tables.conversations, &mut requests).await?;
        }
        Ok(())
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

    fn conversation_items(
        table: &str,
        conversation: &Conversation,
        messages: &[Message],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut meta = ConversationItem::from_domain(conversation);
        if let Some(last) = messages.last() {
            meta.last_message = Some(domain::preview(&last.content));
            meta.message_count = messages.len() as u64;
            meta.updated_at = ts::format(&conversation.updated_at.max(last.created_at));
            let rank = listing_rank(
                conversation.is_pinned,
                &conversation.id,
                conversation.updated_at.max(last.created_at),
            );
            meta.gsi1sk = rank;
            meta.gsi2sk = rank;
        }
        Ok(vec![put_if_absent(table, to_item(&meta)?)])
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
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
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

/// The conversation item (`sk = META`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConversationItem {
    pk: String,
    sk: String,
    id: String,
    owner_id: String,
    title: String,
    is_pinned: bool,
    is_shared: bool,
    model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    solution_type: Option<Solution>,
    created_at: String,
    updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_message: Option<String>,
    #[serde(default)]
    message_count: u64,
    pin_base: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    gsi1sk: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    gsi2sk: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleting: Option<bool>,
}

impl ConversationItem {
    fn from_domain(c: &Conversation) -> Self {
        let rank = listing_rank(c.is_pinned, &c.id, c.updated_at);
        Self {
            pk: schema::conversation_pk(c.id.as_str()),
            sk: schema::META.to_owned(),
            id: c.id.to_string(),
            owner_id: c.owner.to_string(),
            title: c.title.clone(),
            is_pinned: c.is_pinned,
            is_shared: c.is_shared,
            model: c.model.clone(),
            solution_type: c.solution_type,
            created_at: ts::format(&c.created_at),
            updated_at: ts::format(&c.updated_at),
            last_message: c.last_message.clone(),
            message_count: c.message_count,
            pin_base: pin_base(c.is_pinned, &c.id),
            gsi1pk: Some(schema::owner_pk(c.owner.as_str())),
            gsi1sk: rank,
            gsi2pk: Some(schema::owner_solution_pk(
                c.owner.as_str(),
                SolutionFilter::of(c.solution_type).bucket(),
            )),
            gsi2sk: rank,
            deleting: None,
        }
    }

    fn into_domain(self) -> Result<Conversation, StoreError> {
        Ok(Conversation {
            id: ConversationId::parse(&self.id).map_err(|e| StoreError::internal("stored conversation id", e))?,
            owner: UserId::parse(&self.owner_id).map_err(|e| StoreError::internal("stored owner id", e))?,
            title: self.title,
            is_pinned: self.is_pinned,
            is_shared: self.is_shared,
            model: self.model,
            solution_type: self.solution_type,
            created_at: parse_ts(&self.created_at)?,
            updated_at: parse_ts(&self.updated_at)?,
            last_message: self.last_message,
            message_count: self.message_count,
        })
    }
}

fn parse_ts(raw: &str) -> Result<Timestamp, StoreError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::internal("stored timestamp", e))
}

/// A message item (`sk = MSG#<ulid>`); content beyond [`CHUNK_BYTES`] lives in chunk items.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageItem {
    pk: String,
    sk: String,
    id: String,
    conversation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    role: Role,
    content: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    chunks: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<MessagePart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    created_at: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A continuation chunk of a message's content.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ChunkItem {
    pk: String,
    sk: String,
    content: String,
}

/// A client-id marker: makes a client's message id unique within its conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientIdItem {
    pk: String,
    sk: String,
    message_id: String,
}

/// Splits `text` into pieces of at most `max` bytes, on character boundaries.
fn split_content(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// The items storing one message: head, chunks, client-id marker. Each is a conditional put.
fn message_items(table: &str, message: &Message) -> Result<Vec<TransactWriteItem>, StoreError> {
    check_message_size(message)?;
    let pk = schema::conversation_pk(message.conversation_id.as_str());
    let pieces = split_content(&message.content, CHUNK_BYTES);
    let head = MessageItem {
        pk: pk.clone(),
        sk: schema::message_sk(message.id.as_str()),
        id: message.id.to_string(),
        conversation_id: message.conversation_id.to_string(),
        client_id: message.client_id.as_ref().map(ToString::to_string),
        role: message.role,
        content: pieces.first().copied().unwrap_or_default().to_owned(),
        chunks: (pieces.len().saturating_sub(1)) as u32,
        parts: message.parts.clone(),
        model: message.model.clone(),
        usage: message.usage,
        latency_ms: message.latency_ms,
        finish_reason: message.finish_reason,
        error: message.error.clone(),
        created_at: ts::format(&message.created_at),
    };
    let mut items = vec![put_if_absent(table, to_item(&head)?)];
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        let chunk = ChunkItem {
            pk: pk.clone(),
            sk: schema::chunk_sk(message.id.as_str(), i),
            content: (*piece).to_owned(),
        };
        items.push(put_if_absent(table, to_item(&chunk)?));
    }
    if let Some(client_id) = &message.client_id {
        let marker = ClientIdItem {
            pk,
            sk: schema::client_id_sk(client_id.as_str()),
            message_id: message.id.to_string(),
        };
        items.push(put_if_absent(table, to_item(&marker)?));
    }
    Ok(items)
}

/// Reassembles messages from a run of `MSG#` items (heads followed by their chunks).
fn assemble_messages(items: Vec<Item>) -> Result<Vec<Message>, StoreError> {
    let mut out: Vec<(MessageItem, u32)> = Vec::new();
    for item in items {
        let sk = match item.get(schema::SK) {
            Some(AttributeValue::S(sk)) => sk.clone(),
            _ => return Err(StoreError::internal("assembling messages", "item without a sort key")),
        };
        if !sk.starts_with(schema::MSG_PREFIX) {
            continue;
        }
        if sk.contains("#C") {
            let chunk: ChunkItem = from_item(item)?;
            match out.last_mut() {
                Some((head, seen)) if chunk.sk.starts_with(&head.sk) => {
                    head.content.push_str(&chunk.content);
                    *seen += 1;
                }
                _ => return Err(StoreError::internal("assembling messages", "chunk without its message")),
            }
        } else {
            out.push((from_item(item)?, 0));
        }
    }
    out.into_iter()
        .map(|(head, seen)| {
            if seen != head.chunks {
                return Err(StoreError::internal(
                    "assembling messages",
                    "message with missing chunks",
                ));
            }
            head_into_domain(head)
        })
        .collect()
}

fn head_into_domain(head: MessageItem) -> Result<Message, StoreError> {
    Ok(Message {
        id: MessageId::parse(&head.id).map_err(|e| StoreError::internal("stored message id", e))?,
        conversation_id: ConversationId::parse(&head.conversation_id)
            .map_err(|e| StoreError::internal("stored conversation id", e))?,
        client_id: head
            .client_id
            .map(|c| ClientMessageId::parse(&c))
            .transpose()
            .map_err(|e| StoreError::internal("stored client id", e))?,
        role: head.role,
        content: head.content,
        parts: head.parts,
        model: head.model,
        usage: head.usage,
        latency_ms: head.latency_ms,
        finish_reason: head.finish_reason,
        error: head.error,
        created_at: parse_ts(&head.created_at)?,
    })
}

/// A cursor position in an owner's listing: the rank and id of the last conversation returned.
#[derive(Serialize, Deserialize)]
struct ListPosition(i64, String);

#[async_trait]
impl Conversations for DynamoStore {
    async fn create_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        let table = &self.tables.conversations;
        let mut items = Self::conversation_items(table, conversation, messages)?;
        for m in messages {
            items.extend(message_items(table, m)?);
        }
        if items.len() == 1 {
            // A lone conversation: a conditional PutItem costs half a transaction.
            let put = items.into_iter().next().and_then(|i| i.put);
            let Some(put) = put else {
                return Err(StoreError::internal("create conversation", "no put"));
            };
            let result = self
                .client
                .put_item()
                .table_name(table)
                .set_item(Some(put.item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", schema::PK)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Err(
                    StoreError::Conflict(format!("conversation {} already exists", conversation.id)),
                ),
                Err(e) => Err(classify("PutItem conversation", e)),
            };
        }
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(codes) if codes.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") => Err(
                StoreError::Conflict(format!("conversation {} already exists", conversation.id)),
            ),
            Err(_) => Err(StoreError::Conflict(
                "a message id or client message id is repeated".to_owned(),
            )),
        }
    }

    async fn get_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<Conversation, StoreError> {
        self.get_meta(owner, id).await?.into_domain()
    }

    async fn get_conversation_with_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<Message>), StoreError> {
        let items = self.query_partition(id, None, false).await?;
        let mut meta: Option<ConversationItem> = None;
        let mut messages = Vec::with_capacity(items.len());
        for item in items {
            match item.get(schema::SK) {
                Some(AttributeValue::S(sk)) if sk == schema::META => meta = Some(from_item(item)?),
                Some(AttributeValue::S(sk)) if sk.starts_with(schema::MSG_PREFIX) => messages.push(item),
                _ => {}
            }
        }
        let meta = meta.ok_or(StoreError::NotFound)?;
        if meta.owner_id != owner.as_str() || meta.deleting.unwrap_or(false) {
            return Err(StoreError::NotFound);
        }
        Ok((meta.into_domain()?, assemble_messages(messages)?))
    }

    async fn list_conversations(
        &self,
        owner: &UserId,
        query: &ListConversations,
    ) -> Result<Page<Conversation>, StoreError> {
        let limit = page_size(query.limit, DEFAULT_PAGE);
        let bucket = query.solution.map(SolutionFilter::bucket);
        let scope = cursor::conversations_scope(owner.as_str(), bucket);
        let (index, pk_attr, sk_attr, pk) = match bucket {
            None => (schema::GSI_OWNER, "gsi1pk", "gsi1sk", schema::owner_pk(owner.as_str())),
            Some(b) => (
                schema::GSI_OWNER_SOLUTION,
                "gsi2pk",
                "gsi2sk",
                schema::owner_solution_pk(owner.as_str(), b),
            ),
        };
        let start = match &query.cursor {
            None => None,
            Some(c) => {
                let ListPosition(rank, id) = cursor::decode(&scope, c)?;
                let id = ConversationId::parse(&id).map_err(|_| StoreError::InvalidCursor)?;
                let mut key = sdk_key(schema::conversation_pk(id.as_str()), schema::META.to_owned());
                key.insert(pk_attr.to_owned(), s(pk.clone()));
                key.insert(sk_attr.to_owned(), n(rank));
                Some(key)
            }
        };
        // Ask for one more than the page so we know whether another page follows.
        let mut items: Vec<Item> = Vec::new();
        let mut start = start;
        let want = limit as usize + 1;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.conversations)
                .index_name(index)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", pk_attr)
                .expression_attribute_values(":pk", s(pk.clone()))
                .scan_index_forward(false)
                .limit((want - items.len()) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query owner index", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() && items.len() < want => start = Some(key),
                _ => break,
            }
        }
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let metas: Vec<ConversationItem> = items.into_iter().map(from_item).collect::<Result<_, _>>()?;
        let next_cursor = match (more, metas.last()) {
            (true, Some(last)) => {
                let rank = if bucket.is_some() { last.gsi2sk } else { last.gsi1sk };
                Some(cursor::encode(&scope, &ListPosition(rank, last.id.clone()))?)
            }
            _ => None,
        };
        Ok(Page {
            items: metas
                .into_iter()
                .map(ConversationItem::into_domain)
                .collect::<Result<_, _>>()?,
            next_cursor,
        })
    }

    async fn update_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        let mut sets = vec!["updatedAt = :now".to_owned()];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::conversation_pk(id.as_str())))
            .key(schema::SK, s(schema::META))
            .condition_expression("attribute_exists(#pk) AND ownerId = :owner AND attribute_not_exists(deleting)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":now", s(ts::format(&now)))
            .return_values(ReturnValue::AllNew);
        if let Some(title) = &patch.title {
            sets.push("title = :title".to_owned());
            req = req.expression_attribute_values(":title", s(title));
        }
        if let Some(shared) = patch.is_shared {
            sets.push("isShared = :shared".to_owned());
            req = req.expression_attribute_values(":shared", AttributeValue::Bool(shared));
        }
        if let Some(model) = &patch.model {
            sets.push("#model = :model".to_owned());
            req = req
                .expression_attribute_names("#model", "model")
                .expression_attribute_values(":model", s(model));
        }
        match patch.is_pinned {
            Some(pinned) => {
                let rank = listing_rank(pinned, id, now);
                sets.push("isPinned = :pinned, pinBase = :pinBase, gsi1sk = :rank, gsi2sk = :rank".to_owned());
                req = req
                    .expression_attribute_values(":pinned", AttributeValue::Bool(pinned))
                    .expression_attribute_values(":pinBase", n(pin_base(pinned, id)))
                    .expression_attribute_values(":rank", n(rank));
            }
            None => {
                sets.push("gsi1sk = pinBase + :scaled, gsi2sk = pinBase + :scaled".to_owned());
                req = req.expression_attribute_values(":scaled", n(scaled_time(now)));
            }
        }
        let out = req
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(|e| match e {
                SdkError::ServiceError(se) if se.err().is_conditional_check_failed_exception() => StoreError::NotFound,
                other => classify("UpdateItem conversation", other),
            })?;
        let item: ConversationItem = from_item(out.attributes.unwrap_or_default())?;
        item.into_domain()
    }

    async fn delete_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        let key = sdk_key(schema::conversation_pk(id.as_str()), schema::META.to_owned());
        // 1. Mark: leaves the listings at once and makes every further append fail its condition.
        //    A delete interrupted after this point can be repeated and finishes the job.
        self.client
            .update_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(key.clone()))
            .update_expression("SET deleting = :yes REMOVE gsi1pk, gsi2pk")
            .condition_expression("attribute_exists(#pk) AND ownerId = :owner")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| match e {
                SdkError::ServiceError(se) if se.err().is_conditional_check_failed_exception() => StoreError::NotFound,
                other => classify("UpdateItem mark deleting", other),
            })?;
        // 2. Remove every other item of the partition.
        let keys = self.query_partition(id, None, true).await?;
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
        // 3. The conversation itself, last.
        self.client
            .delete_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(key))
            .send()
            .await
            .map_err(|e| classify("DeleteItem conversation", e))?;
        Ok(messages)
    }
}

#[async_trait]
impl Messages for DynamoStore {
    async fn append_message(&self, owner: &UserId, message: &Message, touch: &Touch) -> Result<Appended, StoreError> {
        let table = &self.tables.conversations;
        let id = &message.conversation_id;
        let mut sets = vec![
            "updatedAt = :now",
            "lastMessage = :preview",
            "gsi1sk = pinBase + :scaled",
            "gsi2sk = pinBase + :scaled",
        ];
        let mut update = Update::builder()
            .table_name(table)
            .key(schema::PK, s(schema::conversation_pk(id.as_str())))
            .key(schema::SK, s(schema::META))
            .condition_expression("attribute_exists(#pk) AND ownerId = :owner AND attribute_not_exists(deleting)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":now", s(ts::format(&message.created_at)))
            .expression_attribute_values(":preview", s(domain::preview(&message.content)))
            .expression_attribute_values(":scaled", n(scaled_time(message.created_at)))
            .expression_attribute_values(":one", n(1));
        if let Some(title) = &touch.title {
            sets.push("title = :title");
            update = update.expression_attribute_values(":title", s(title));
        }
        let update = update
            .update_expression(format!("SET {} ADD messageCount :one", sets.join(", ")))
            .build()
            .map_err(|e| StoreError::internal("building the conversation update", e))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(message_items(table, message)?);
        match self.transact(items).await? {
            Ok(()) => Ok(Appended::Stored),
            Err(codes) => {
                if codes.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") {
                    return Err(StoreError::NotFound);
                }
                let marker_failed = message.client_id.is_some()
                    && codes.last().and_then(Option::as_deref) == Some("ConditionalCheckFailed");
                if let (true, Some(client_id)) = (marker_failed, &message.client_id) {
                    if let Some(existing) = self.find_by_client_id(owner, id, client_id).await? {
                        return Ok(Appended::Duplicate(existing.id));
                    }
                }
                Err(StoreError::Conflict(format!("message {} already exists", message.id)))
            }
        }
    }

    async fn list_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
        query: &ListMessages,
    ) -> Result<Page<Message>, StoreError> {
        if query.limit.is_none() && query.cursor.is_none() {
            // Every message: one Query of the whole partition checks the owner and reads them all.
            let (_, messages) = self.get_conversation_with_messages(owner, id).await?;
            return Ok(Page {
                items: messages,
                next_cursor: None,
            });
        }
        self.get_meta(owner, id).await?;
        let scope = cursor::messages_scope(owner.as_str(), id.as_str());
        let after: Option<String> = match &query.cursor {
            None => None,
            Some(c) => {
                let last: String = cursor::decode(&scope, c)?;
                MessageId::parse(&last).map_err(|_| StoreError::InvalidCursor)?;
                Some(last)
            }
        };
        let Some(limit) = query.limit.map(|l| page_size(Some(l), DEFAULT_PAGE) as usize) else {
            // No limit: every message (one Query, paged by DynamoDB's 1 MB pages).
            let items = self.query_partition(id, Some(schema::MSG_PREFIX), false).await?;
            let mut messages = assemble_messages(items)?;
            if let Some(after) = after {
                messages.retain(|m| m.id.as_str() > after.as_str());
            }
            return Ok(Page {
                items: messages,
                next_cursor: None,
            });
        };
        // Read heads and chunks until one head past the page is seen (so the last message is whole
        // and we know whether more follow).
        let pk = schema::conversation_pk(id.as_str());
        let mut start = after.map(|last| sdk_key(pk.clone(), schema::chunk_sk(&last, 9999)));
        let mut items: Vec<Item> = Vec::new();
        let mut heads = 0usize;
        let mut more = false;
        'pages: loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.conversations)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_names("#sk", schema::SK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(schema::MSG_PREFIX))
                .limit((limit + 1 - heads.min(limit)) as i32 + 8)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query messages", e))?;
            for item in out.items.unwrap_or_default() {
                let is_head = matches!(item.get(schema::SK), Some(AttributeValue::S(sk)) if !sk.contains("#C"));
                if is_head {
                    if heads == limit {
                        more = true;
                        break 'pages;
                    }
                    heads += 1;
                }
                items.push(item);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let messages = assemble_messages(items)?;
        let next_cursor = match (more, messages.last()) {
            (true, Some(last)) => Some(cursor::encode(&scope, &last.id.to_string())?),
            _ => None,
        };
        Ok(Page {
            items: messages,
            next_cursor,
        })
    }

    async fn find_by_client_id(
        &self,
        owner: &UserId,
        id: &ConversationId,
        client_id: &ClientMessageId,
    ) -> Result<Option<Message>, StoreError> {
        self.get_meta(owner, id).await?;
        let pk = schema::conversation_pk(id.as_str());
        let marker = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(pk, schema::client_id_sk(client_id.as_str()))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem client id", e))?;
        let Some(marker) = marker.item else {
            return Ok(None);
        };
        let marker: ClientIdItem = from_item(marker)?;
        let items = self
            .query_partition(id, Some(&schema::message_sk(&marker.message_id)), false)
            .await?;
        Ok(assemble_messages(items)?.into_iter().next())
    }

    async fn delete_message(&self, owner: &UserId, id: &ConversationId, message: &MessageId) -> Result<(), StoreError> {
        self.get_meta(owner, id).await?;
        let items = self
            .query_partition(id, Some(&schema::message_sk(message.as_str())), false)
            .await?;
        let found = assemble_messages(items.clone())?;
        let Some(found) = found.into_iter().find(|m| &m.id == message) else {
            return Err(StoreError::NotFound);
        };
        let pk = schema::conversation_pk(id.as_str());
        let mut keys: Vec<Item> = items
            .iter()
            .filter_map(|i| match i.get(schema::SK) {
                Some(AttributeValue::S(sk)) => Some(sdk_key(pk.clone(), sk.clone())),
                _ => None,
            })
            .collect();
        if let Some(client_id) = &found.client_id {
            keys.push(sdk_key(pk.clone(), schema::client_id_sk(client_id.as_str())));
        }
        self.batch_delete(keys).await?;
        // Re-point the preview at the newest remaining message.
        let newest = self
            .client
            .query()
            .table_name(&self.tables.conversations)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#sk", schema::SK)
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":prefix", s(schema::MSG_PREFIX))
            .scan_index_forward(false)
            .limit(16)
            .send()
            .await
            .map_err(|e| classify("Query newest message", e))?;
        let newest_head = newest
            .items
            .unwrap_or_default()
            .into_iter()
            .find(|i| matches!(i.get(schema::SK), Some(AttributeValue::S(sk)) if !sk.contains("#C")));
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(pk, schema::META.to_owned())))
            .condition_expression("attribute_exists(#pk) AND ownerId = :owner AND attribute_not_exists(deleting)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":minus", n(-1));
        req = match newest_head {
            Some(head) => {
                // The preview needs only the head's first characters; chunks are never needed.
                let head: MessageItem = from_item(head)?;
                req.update_expression("SET lastMessage = :preview ADD messageCount :minus")
                    .expression_attribute_values(":preview", s(domain::preview(&head.content)))
            }
            None => req.update_expression("REMOVE lastMessage ADD messageCount :minus"),
        };
        req.send().await.map_err(|e| match e {
            SdkError::ServiceError(se) if se.err().is_conditional_check_failed_exception() => StoreError::NotFound,
            other => classify("UpdateItem after message delete", other),
        })?;
        Ok(())
    }

    async fn clear_messages(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        self.get_meta(owner, id).await?;
        let keys = self.query_partition(id, None, true).await?;
        let mut messages = 0u64;
        let mut doomed = Vec::new();
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
        self.client
            .update_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(
                schema::conversation_pk(id.as_str()),
                schema::META.to_owned(),
            )))
            .update_expression("REMOVE lastMessage ADD messageCount :minus")
            .condition_expression("attribute_exists(#pk) AND ownerId = :owner AND attribute_not_exists(deleting)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":minus", n(-(messages as i64)))
            .send()
            .await
            .map_err(|e| match e {
                SdkError::ServiceError(se) if se.err().is_conditional_check_failed_exception() => StoreError::NotFound,
                other => classify("UpdateItem after clear", other),
            })?;
        Ok(messages)
    }
}

#[async_trait]
impl Turns for DynamoStore {
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        self.begin_turn_impl(start).await
    }

    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        self.finish_turn_impl(finish).await
    }
}

#[async_trait]
impl Activity for DynamoStore {
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct EventItem<'a> {
            pk: String,
            sk: &'a str,
            #[serde(flatten)]
            event: &'a AnalyticsEvent,
            expires_at: i64,
        }
        for batch in events.chunks(25) {
            let mut requests = Vec::with_capacity(batch.len());
            for event in batch {
                let day = event.timestamp.format("%Y-%m-%d").to_string();
                let item = EventItem {
                    pk: schema::events_pk(&day, event_shard(&event.id)),
                    sk: &event.id,
                    event,
                    expires_at: event.timestamp.timestamp() + self.event_ttl.as_secs() as i64,
                };
                let put = aws_sdk_dynamodb::types::PutRequest::builder()
                    .set_item(Some(to_item(&item)?))
                    .build()
                    .map_err(|e| StoreError::internal("building an event put", e))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            self.batch_write(&self.tables.events, &mut requests).await?;
        }
        Ok(())
    }

    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        self.record_activity_impl(events, audit).await
    }

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

    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.list_audit_impl(user, limit, cursor).await
    }
}

#[async_trait]
impl Stats for DynamoStore {
    async fn add_stats(&self, day: &str, solution: &str, model: &str, delta: &StatsDelta) -> Result<(), StoreError> {
        let (key, expression, names, values) = stats_expression(day, solution, model, delta);
        self.client
            .update_item()
            .table_name(&self.tables.events)
            .set_key(Some(key))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| classify("UpdateItem stats", e))?;
        Ok(())
    }

    async fn stats_between(&self, from: &str, to: &str) -> Result<Vec<StatsRow>, StoreError> {
        use futures::StreamExt;
        let days = super::days_between(from, to);
        let pages: Vec<Result<Vec<StatsRow>, StoreError>> = futures::stream::iter(days)
            .map(|day| async move {
                let out = self
                    .client
                    .query()
                    .table_name(&self.tables.events)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_values(":pk", s(schema::stats_pk(&day)))
                    .send()
                    .await
                    .map_err(|e| classify("Query stats", e))?;
                Ok(out.items.unwrap_or_default().iter().map(stats_row).collect())
            })
            .buffered(8)
            .collect()
            .await;
        let mut rows = Vec::new();
        for page in pages {
            rows.extend(page?);
        }
        Ok(rows)
    }
}

#[async_trait]
impl Counters for DynamoStore {
    async fn increment_counter(&self, key: &str, window_start: i64, ttl_secs: i64) -> Result<u64, StoreError> {
        self.add_to_counter(key, window_start, ttl_secs).await
    }
}

/// Reads a counter item (numbers, histogram attributes `l<i>`/`t<i>`, the user set).
fn stats_row(item: &Item) -> StatsRow {
    let text = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    };
    let num = |k: &str| match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse::<u64>().unwrap_or(0),
        _ => 0,
    };
    let hist = |prefix: &str| -> Vec<u64> {
        let values: Vec<u64> = (0..=crate::domain::BUCKETS_MS.len())
            .map(|i| num(&format!("{prefix}{i}")))
            .collect();
        if values.iter().all(|v| *v == 0) {
            Vec::new()
        } else {
            values
        }
    };
    StatsRow {
        day: text("day"),
        solution: text("solution"),
        model: text("model"),
        stats: StatsDelta {
            requests: num("requests"),
            errors: num("errors"),
            conversations: num("conversations"),
            messages: num("messages"),
            input_tokens: num("inputTokens"),
            output_tokens: num("outputTokens"),
            cache_read_tokens: num("cacheReadTokens"),
            cache_write_tokens: num("cacheWriteTokens"),
            cost_nano_usd: num("costNanoUsd"),
            latency: hist("l"),
            ttft: hist("t"),
            users: match item.get("users") {
                Some(AttributeValue::Ss(set)) => set.iter().cloned().collect(),
                _ => Default::default(),
            },
        },
    }
}

impl DynamoStore {
    /// One `UpdateItem ... ADD` on the events table (it has the TTL): `pk = CTR#<key>#<window>`.
    async fn add_to_counter(&self, key: &str, window_start: i64, ttl_secs: i64) -> Result<u64, StoreError> {
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

/// What an item of a turn transaction is, to read its cancellation reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Rate,
    Day,
    Month,
    Slot,
    /// The conversation item (create-if-absent or owner check).
    Meta,
    /// A message, chunk or (for a removal) its delete.
    Message,
    /// A client-id marker (a resubmitted message).
    Marker,
    Charge,
    Stats,
}

fn update_item(update: Result<Update, aws_sdk_dynamodb::error::BuildError>) -> Result<TransactWriteItem, StoreError> {
    update
        .map(|u| TransactWriteItem::builder().update(u).build())
        .map_err(|e| StoreError::internal("building an update", e))
}

fn owner_condition() -> &'static str {
    "attribute_exists(#pk) AND ownerId = :owner AND attribute_not_exists(deleting)"
}

impl DynamoStore {
    /// The META update of an append: `updatedAt`, preview, rank, count (owner checked).
    fn touch_update(&self, owner: &UserId, message: &Message) -> Result<TransactWriteItem, StoreError> {
        update_item(
            Update::builder()
                .table_name(&self.tables.conversations)
                .key(schema::PK, s(schema::conversation_pk(message.conversation_id.as_str())))
                .key(schema::SK, s(schema::META))
                .condition_expression(owner_condition())
                .update_expression(
                    "SET updatedAt = :now, lastMessage = :preview, gsi1sk = pinBase + :scaled, gsi2sk = pinBase + :scaled ADD messageCount :one",
                )
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_values(":owner", s(owner.as_str()))
                .expression_attribute_values(":now", s(ts::format(&message.created_at)))
                .expression_attribute_values(":preview", s(domain::preview(&message.content)))
                .expression_attribute_values(":scaled", n(scaled_time(message.created_at)))
                .expression_attribute_values(":one", n(1))
                .build(),
        )
    }

    /// The items of what a turn writes, tagged.
    fn turn_write_items(
        &self,
        owner: &UserId,
        start: &TurnStart,
    ) -> Result<Vec<(Part, TransactWriteItem)>, StoreError> {
        let table = &self.tables.conversations;
        let pk = schema::conversation_pk(start.conversation_id.as_str());
        let mut out = Vec::new();
        let tag_message = |m: &Message, items: Vec<TransactWriteItem>, out: &mut Vec<(Part, TransactWriteItem)>| {
            let last = items.len().saturating_sub(1);
            for (i, item) in items.into_iter().enumerate() {
                let part = if m.client_id.is_some() && i == last {
                    Part::Marker
                } else {
                    Part::Message
                };
                out.push((part, item));
            }
        };
        match &start.write {
            TurnWrite::Create { conversation, messages } => {
                for item in Self::conversation_items(table, conversation, messages)? {
                    out.push((Part::Meta, item));
                }
                for m in messages {
                    tag_message(m, message_items(table, m)?, &mut out);
                }
            }
            TurnWrite::Append { message } => {
                out.push((Part::Meta, self.touch_update(owner, message)?));
                tag_message(message, message_items(table, message)?, &mut out);
            }
            TurnWrite::Regenerate { remove, preview } => {
                let Some(removed) = remove else {
                    out.push((Part::Meta, self.owner_check(owner, &start.conversation_id)?));
                    return Ok(out);
                };
                let mut update = Update::builder()
                    .table_name(table)
                    .key(schema::PK, s(pk.clone()))
                    .key(schema::SK, s(schema::META))
                    .condition_expression(owner_condition())
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_values(":owner", s(owner.as_str()))
                    .expression_attribute_values(":minus", n(-1));
                update = match preview {
                    Some(p) => update
                        .update_expression("SET lastMessage = :preview ADD messageCount :minus")
                        .expression_attribute_values(":preview", s(p.clone())),
                    None => update.update_expression("REMOVE lastMessage ADD messageCount :minus"),
                };
                out.push((Part::Meta, update_item(update.build())?));
                let mut keys = vec![schema::message_sk(removed.id.as_str())];
                let chunks = split_content(&removed.content, CHUNK_BYTES).len().saturating_sub(1);
                keys.extend((1..=chunks).map(|i| schema::chunk_sk(removed.id.as_str(), i)));
                if let Some(c) = &removed.client_id {
                    keys.push(schema::client_id_sk(c.as_str()));
                }
                for sk in keys {
                    let delete = aws_sdk_dynamodb::types::Delete::builder()
                        .table_name(table)
                        .set_key(Some(sdk_key(pk.clone(), sk)))
                        .build()
                        .map_err(|e| StoreError::internal("building a delete", e))?;
                    out.push((Part::Message, TransactWriteItem::builder().delete(delete).build()));
                }
            }
            TurnWrite::Check => out.push((Part::Meta, self.owner_check(owner, &start.conversation_id)?)),
        }
        Ok(out)
    }

    fn owner_check(&self, owner: &UserId, id: &ConversationId) -> Result<TransactWriteItem, StoreError> {
        let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(
                schema::conversation_pk(id.as_str()),
                schema::META.to_owned(),
            )))
            .condition_expression(owner_condition())
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .build()
            .map_err(|e| StoreError::internal("building a condition check", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn budget_check(&self, pk: String, budget: u64) -> Result<TransactWriteItem, StoreError> {
        let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.tables.events)
            .set_key(Some(sdk_key(pk, "-".to_owned())))
            .condition_expression("attribute_not_exists(#tokens) OR #tokens < :budget")
            .expression_attribute_names("#tokens", "tokens")
            .expression_attribute_values(":budget", n(budget))
            .build()
            .map_err(|e| StoreError::internal("building a budget check", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    async fn begin_turn_impl(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        let owner = &start.owner;
        let limits = &start.limits;
        let now = start.now.timestamp();
        let (minute_end, day_end, month_end) = super::window_ends(start.now);
        let mut write = start.write.clone();
        let mut fixed: Vec<(Part, TransactWriteItem)> = Vec::new();
        if limits.requests_per_minute > 0 {
            let window = minute_end - 60;
            fixed.push((
                Part::Rate,
                update_item(
                    Update::builder()
                        .table_name(&self.tables.events)
                        .set_key(Some(sdk_key(
                            schema::counter_pk(&schema::rate_key(owner.as_str()), window),
                            "-".to_owned(),
                        )))
                        .update_expression("ADD #count :one SET #ttl = if_not_exists(#ttl, :expires)")
                        .condition_expression("attribute_not_exists(#count) OR #count < :limit")
                        .expression_attribute_names("#count", "count")
                        .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":expires", n(window + 120))
                        .expression_attribute_values(":limit", n(limits.requests_per_minute))
                        .build(),
                )?,
            ));
        }
        let (day_pk, month_pk) = schema::budget_pks(owner.as_str(), &start.now);
        if limits.tokens_per_day > 0 {
            fixed.push((Part::Day, self.budget_check(day_pk, limits.tokens_per_day)?));
        }
        if limits.tokens_per_month > 0 {
            fixed.push((Part::Month, self.budget_check(month_pk, limits.tokens_per_month)?));
        }
        let slots = limits.max_streams;
        let first_slot = if slots > 0 {
            use rand::Rng;
            rand::rng().random_range(0..slots)
        } else {
            0
        };
        let mut tried = 0u32;
        loop {
            let mut items = fixed.clone();
            let lease = (slots > 0).then(|| StreamLease {
                slot: (first_slot + tried) % slots,
                turn_id: start.turn_id.clone(),
                expires_at: now + limits.lease_secs,
            });
            if let Some(lease) = &lease {
                let put = Put::builder()
                    .table_name(&self.tables.events)
                    .item(schema::PK, s(schema::slot_pk(owner.as_str())))
                    .item(schema::SK, s(lease.slot.to_string()))
                    .item("turnId", s(lease.turn_id.clone()))
                    .item(schema::TTL_ATTRIBUTE, n(lease.expires_at))
                    .condition_expression("attribute_not_exists(#pk) OR #ttl < :now")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
                    .expression_attribute_values(":now", n(now))
                    .build()
                    .map_err(|e| StoreError::internal("building a slot put", e))?;
                items.push((Part::Slot, TransactWriteItem::builder().put(put).build()));
            }
            items.extend(self.turn_write_items(
                owner,
                &TurnStart {
                    write: write.clone(),
                    ..start.clone()
                },
            )?);
            let (parts, items): (Vec<Part>, Vec<TransactWriteItem>) = items.into_iter().unzip();
            let codes = match self.transact(items).await? {
                Ok(()) => return Ok(TurnBegun { lease }),
                Err(codes) => codes,
            };
            let failed: Vec<Part> = parts
                .iter()
                .zip(codes.iter().chain(std::iter::repeat(&None)))
                .filter(|(_, c)| c.as_deref() == Some("ConditionalCheckFailed"))
                .map(|(p, _)| *p)
                .collect();
            let has = |p: Part| failed.contains(&p);
            if has(Part::Meta) {
                return Err(match start.write {
                    TurnWrite::Create { .. } => {
                        StoreError::Conflict(format!("conversation {} already exists", start.conversation_id))
                    }
                    _ => StoreError::NotFound,
                });
            }
            if has(Part::Rate) {
                return Err(StoreError::RateLimited {
                    retry_after: super::retry_after(start.now, minute_end),
                });
            }
            if has(Part::Day) {
                return Err(StoreError::BudgetExceeded {
                    window: "day",
                    retry_after: super::retry_after(start.now, day_end),
                });
            }
            if has(Part::Month) {
                return Err(StoreError::BudgetExceeded {
                    window: "month",
                    retry_after: super::retry_after(start.now, month_end),
                });
            }
            if has(Part::Slot) {
                tried += 1;
                if tried >= slots {
                    return Err(StoreError::TooManyStreams {
                        retry_after: super::STREAM_RETRY_AFTER,
                    });
                }
                continue;
            }
            if has(Part::Marker) {
                // The message was stored by an earlier submit: admit the turn without writing it again.
                if matches!(write, TurnWrite::Append { .. }) {
                    write = TurnWrite::Check;
                    continue;
                }
            }
            return Err(StoreError::Conflict(
                "a message id or client message id is repeated".to_owned(),
            ));
        }
    }

    async fn finish_turn_impl(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        let owner = &finish.owner;
        let mut parts: Vec<(Part, TransactWriteItem)> = Vec::new();
        if let Some(reply) = &finish.reply {
            parts.push((Part::Meta, self.touch_update(owner, reply)?));
            for item in message_items(&self.tables.conversations, reply)? {
                parts.push((Part::Message, item));
            }
        }
        if finish.tokens > 0 {
            let (day_pk, month_pk) = schema::budget_pks(owner.as_str(), &finish.started);
            let (_, day_end, month_end) = super::window_ends(finish.started);
            for (pk, expires) in [(day_pk, day_end + 2 * 86_400), (month_pk, month_end + 2 * 86_400)] {
                parts.push((
                    Part::Charge,
                    update_item(
                        Update::builder()
                            .table_name(&self.tables.events)
                            .set_key(Some(sdk_key(pk, "-".to_owned())))
                            .update_expression("ADD #tokens :n SET #ttl = :expires")
                            .expression_attribute_names("#tokens", "tokens")
                            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
                            .expression_attribute_values(":n", n(finish.tokens))
                            .expression_attribute_values(":expires", n(expires))
                            .build(),
                    )?,
                ));
            }
        }
        if let Some(lease) = &finish.lease {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.tables.events)
                .set_key(Some(sdk_key(schema::slot_pk(owner.as_str()), lease.slot.to_string())))
                .condition_expression("#turn = :turn")
                .expression_attribute_names("#turn", "turnId")
                .expression_attribute_values(":turn", s(lease.turn_id.clone()))
                .build()
                .map_err(|e| StoreError::internal("building a slot release", e))?;
            parts.push((Part::Slot, TransactWriteItem::builder().delete(delete).build()));
        }
        if let Some(stats) = &finish.stats {
            let (key, expression, names, values) =
                stats_expression(&stats.day, &stats.solution, &stats.model, &stats.delta);
            let update = Update::builder()
                .table_name(&self.tables.events)
                .set_key(Some(key))
                .update_expression(expression)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build();
            parts.push((Part::Stats, update_item(update)?));
        }
        for _ in 0..3 {
            if parts.is_empty() {
                return Ok(());
            }
            let (kinds, items): (Vec<Part>, Vec<TransactWriteItem>) = parts.iter().cloned().unzip();
            match self.transact(items).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(codes)) => {
                    let failed: Vec<Part> = kinds
                        .iter()
                        .zip(codes.iter().chain(std::iter::repeat(&None)))
                        .filter(|(_, c)| c.as_deref() == Some("ConditionalCheckFailed"))
                        .map(|(p, _)| *p)
                        .collect();
                    if failed.iter().any(|p| matches!(p, Part::Meta | Part::Message)) {
                        tracing::warn!("the conversation is gone or the reply exists: the reply is not stored");
                        parts.retain(|(p, _)| !matches!(p, Part::Meta | Part::Message));
                    }
                    if failed.contains(&Part::Slot) {
                        // The lease expired and another turn took the slot: it is not ours to free.
                        parts.retain(|(p, _)| *p != Part::Slot);
                    }
                    if failed.is_empty() {
                        return Err(StoreError::internal(
                            "finishing a turn",
                            "the transaction was cancelled",
                        ));
                    }
                }
                Err(StoreError::Internal { context, source }) if kinds.contains(&Part::Stats) => {
                    // Analytics never fail the chat: write the rest without the counters.
                    tracing::warn!(error = %source, context, "the turn's analytics counters failed; writing without them");
                    parts.retain(|(p, _)| *p != Part::Stats);
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::internal("finishing a turn", "the transaction kept failing"))
    }

    fn event_request(&self, event: &AnalyticsEvent) -> Result<WriteRequest, StoreError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct EventItem<'a> {
            pk: String,
            sk: &'a str,
            #[serde(flatten)]
            event: &'a AnalyticsEvent,
            expires_at: i64,
        }
        let day = event.timestamp.format("%Y-%m-%d").to_string();
        let item = EventItem {
            pk: schema::events_pk(&day, event_shard(&event.id)),
            sk: &event.id,
            event,
            expires_at: event.timestamp.timestamp() + self.event_ttl.as_secs() as i64,
        };
        let put = aws_sdk_dynamodb::types::PutRequest::builder()
            .set_item(Some(to_item(&item)?))
            .build()
            .map_err(|e| StoreError::internal("building an event put", e))?;
        Ok(WriteRequest::builder().put_request(put).build())
    }

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

    async fn record_activity_impl(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(events.len() + audit.len());
        for e in events {
            requests.push(self.event_request(e)?);
        }
        for a in audit {
            requests.push(Self::audit_request(a)?);
        }
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(25));
            self.batch_write(&self.tables.events, &mut requests).await?;
            requests = rest;
        }
        Ok(())
    }

    async fn list_audit_impl(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let limit = page_size(limit, DEFAULT_PAGE);
        let scope = format!("audit\0{user}");
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
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => Some(cursor::encode(&scope, &last.id)?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

/// The key and `UpdateItem` expression adding a stats delta to its day × solution × model row.
#[allow(clippy::type_complexity)]
fn stats_expression(
    day: &str,
    solution: &str,
    model: &str,
    delta: &StatsDelta,
) -> (Item, String, HashMap<String, String>, Item) {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut values: Item = HashMap::new();
    let mut adds: Vec<String> = Vec::new();
    let scalars = [
        ("requests", delta.requests),
        ("errors", delta.errors),
        ("conversations", delta.conversations),
        ("messages", delta.messages),
        ("inputTokens", delta.input_tokens),
        ("outputTokens", delta.output_tokens),
        ("cacheReadTokens", delta.cache_read_tokens),
        ("cacheWriteTokens", delta.cache_write_tokens),
        ("costNanoUsd", delta.cost_nano_usd),
    ];
    let hist = delta
        .latency
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("l{i}"), *v))
        .chain(delta.ttft.iter().enumerate().map(|(i, v)| (format!("t{i}"), *v)));
    for (name, value) in scalars.iter().map(|(n, v)| ((*n).to_owned(), *v)).chain(hist) {
        if value == 0 {
            continue;
        }
        adds.push(format!("#{name} :{name}"));
        names.insert(format!("#{name}"), name.clone());
        values.insert(format!(":{name}"), n(value));
    }
    if !delta.users.is_empty() {
        adds.push("#users :users".to_owned());
        names.insert("#users".to_owned(), "users".to_owned());
        values.insert(
            ":users".to_owned(),
            AttributeValue::Ss(delta.users.iter().cloned().collect()),
        );
    }
    let expires = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp()) + 400 * 24 * 3600)
        .unwrap_or(0);
    let mut expression = "SET #day = :day, #solution = :solution, #model = :model, #ttl = :expires".to_owned();
    if !adds.is_empty() {
        expression.push_str(" ADD ");
        expression.push_str(&adds.join(", "));
    }
    for (k, v) in [
        ("#day", "day"),
        ("#solution", "solution"),
        ("#model", "model"),
        ("#ttl", schema::TTL_ATTRIBUTE),
    ] {
        names.insert(k.to_owned(), v.to_owned());
    }
    values.insert(":day".to_owned(), s(day));
    values.insert(":solution".to_owned(), s(solution));
    values.insert(":model".to_owned(), s(model));
    values.insert(":expires".to_owned(), n(expires));
    (
        sdk_key(schema::stats_pk(day), format!("{solution}#{model}")),
        expression,
        names,
        values,
    )
}

/// The shard of an event: spread by its id so one busy day does not make one hot partition.
fn event_shard(id: &str) -> u32 {
    id.bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % schema::EVENT_SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_splits_on_character_boundaries_and_rejoins_exactly() {
        let text = "é🙂a".repeat(1000);
        let pieces = split_content(&text, 7);
        assert!(pieces.iter().all(|p| p.len() <= 7));
        assert_eq!(pieces.concat(), text);
        assert_eq!(split_content("", 7), vec![""]);
    }
}

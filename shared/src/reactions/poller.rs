//! Reading the conversations table's stream in-process, where no Lambda does it: athena-local on
//! DynamoDB (a background task, once a second), the tests and the benchmark (drained after the
//! writes they check). Every shard is read from its oldest record (`TRIM_HORIZON`: what was
//! written while the reader was down is indexed when it starts; applying a record twice writes
//! the same postings), then from where the last read stopped.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;

use super::{handle, Applied, StreamChange, StreamEvent, StreamRecord, UserIdentity};
use crate::error::StoreError;
use crate::store::dynamo::DynamoStore;

/// A reader of one table's stream, keeping each shard's position.
pub struct StreamPoller {
    client: Client,
    stream_arn: String,
    /// Each shard's next iterator; `None` once a closed shard is read to its end.
    shards: HashMap<String, Option<String>>,
}

fn unavailable(context: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{context}: {e}").into())
}

impl StreamPoller {
    /// A reader of `store`'s conversations table's stream (its latest stream, from the table's
    /// description), through `client` (a DynamoDB Streams client of the same account and region).
    pub async fn new(store: &DynamoStore, client: Client) -> Result<Self, StoreError> {
        let table = store
            .client()
            .describe_table()
            .table_name(&store.tables().conversations)
            .send()
            .await
            .map_err(|e| unavailable("DescribeTable", e))?;
        let stream_arn = table
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| StoreError::internal("reading the stream", "the conversations table has no stream"))?;
        Ok(Self {
            client,
            stream_arn,
            shards: HashMap::new(),
        })
    }

    /// A DynamoDB Streams client from the environment (region, credentials, and the endpoint of
    /// `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` or `AWS_ENDPOINT_URL`, read by the SDK: a local
    /// DynamoDB-API server such as moto serves the Streams API on the same port).
    pub async fn client_from_env() -> Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(crate::http::sdk_http_client())
            .load()
            .await;
        Client::new(&config)
    }

    /// Reads every shard up to its newest record and applies the records' reactions to `store`.
    pub async fn drain(&mut self, store: &DynamoStore) -> Result<Applied, StoreError> {
        let stream = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| unavailable("DescribeStream", e))?;
        let shards = stream.stream_description.and_then(|d| d.shards).unwrap_or_default();
        let mut total = Applied::default();
        for shard in shards {
            let Some(id) = shard.shard_id else { continue };
            let iterator = match self.shards.get(&id) {
                Some(Some(it)) => it.clone(),
                Some(None) => continue,
                None => self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&self.stream_arn)
                    .shard_id(&id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .map_err(|e| unavailable("GetShardIterator", e))?
                    .shard_iterator
                    .unwrap_or_default(),
            };
            let mut next = Some(iterator).filter(|i| !i.is_empty());
            while let Some(it) = next.take() {
                let out = self
                    .client
                    .get_records()
                    .shard_iterator(&it)
                    .send()
                    .await
                    .map_err(|e| unavailable("GetRecords", e))?;
                let records = out.records.unwrap_or_default();
                let empty = records.is_empty();
                let event = StreamEvent {
                    records: records.into_iter().map(to_record).collect(),
                };
                let (response, applied) = handle(store, &event).await;
                total.records += applied.records;
                total.index.puts += applied.index.puts;
                total.index.deletes += applied.index.deletes;
                if !response.batch_item_failures.is_empty() {
                    // Keep the position: the next drain reads this batch again.
                    self.shards.insert(id.clone(), Some(it));
                    return Err(StoreError::Unavailable(
                        "a stream record failed; retried next time".into(),
                    ));
                }
                self.shards.insert(id.clone(), out.next_shard_iterator.clone());
                if empty {
                    break;
                }
                next = out.next_shard_iterator;
            }
        }
        Ok(total)
    }

    /// Drains the stream every `period`, forever (athena-local's indexer). A failure is logged
    /// and retried after a doubling pause (at most a minute), so an unreachable stream does not
    /// flood the log.
    pub async fn run(mut self, store: DynamoStore, period: Duration) {
        let mut pause = period;
        loop {
            match self.drain(&store).await {
                Ok(_) => pause = period,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_s = pause.as_secs(), "reading the conversations table's stream failed");
                    pause = (pause * 2).min(Duration::from_secs(60));
                }
            }
            tokio::time::sleep(pause).await;
        }
    }
}

/// A record of the Streams API as Lambda would deliver it.
fn to_record(r: Record) -> StreamRecord {
    let change = r
        .dynamodb
        .unwrap_or_else(|| aws_sdk_dynamodbstreams::types::StreamRecord::builder().build());
    StreamRecord {
        event_id: r.event_id.unwrap_or_default(),
        event_name: r.event_name.map(|n| n.as_str().to_owned()).unwrap_or_default(),
        dynamodb: StreamChange {
            keys: change.keys.map(Into::into).unwrap_or_default(),
            new_image: change.new_image.map(Into::into),
            old_image: change.old_image.map(Into::into),
            sequence_number: change.sequence_number.unwrap_or_default(),
        },
        user_identity: r.user_identity.map(|i| UserIdentity {
            kind: i.r#type.unwrap_or_default(),
            principal_id: i.principal_id.unwrap_or_default(),
        }),
    }
}

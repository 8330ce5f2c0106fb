//! A store with its full-text index brought up to date on demand: the embedded store indexes in
//! the writing transaction (nothing to do); the DynamoDB store's index is written by the stream
//! consumer, driven here with the real records read from moto's DynamoDB Streams API
//! (`DescribeStream`, `GetShardIterator`, `GetRecords`), as the `streams` function gets them.

use std::sync::Arc;

use aws_sdk_dynamodb::config::{Credentials, Region};
use shared::reactions::{Applied, StreamPoller};
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;
use shared::store::Store;
use tokio::sync::Mutex;

/// A store and, on DynamoDB, the reader of its table's stream.
#[derive(Clone)]
pub struct Indexed {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The DynamoDB store and its stream reader.
    pub dynamo: Option<(Arc<DynamoStore>, Arc<Mutex<StreamPoller>>)>,
}

impl Indexed {
    /// Applies every stream record written so far (DynamoDB); what the consumer wrote.
    pub async fn settle(&self) -> Applied {
        match &self.dynamo {
            Some((store, poller)) => poller.lock().await.drain(store).await.expect("draining the stream"),
            None => Applied::default(),
        }
    }
}

/// A DynamoDB Streams client on moto's server.
pub fn streams_client(endpoint: &str) -> aws_sdk_dynamodbstreams::Client {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "athena-tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
}

/// Turns a store into an [`Indexed`] one.
pub trait IntoIndexed {
    /// The store with its index reader.
    fn indexed(self) -> impl std::future::Future<Output = Indexed> + Send;
}

impl IntoIndexed for EmbeddedStore {
    async fn indexed(self) -> Indexed {
        Indexed {
            store: Arc::new(self),
            dynamo: None,
        }
    }
}

impl IntoIndexed for DynamoStore {
    async fn indexed(self) -> Indexed {
        let poller = StreamPoller::new(&self, streams_client(crate::moto_endpoint()))
            .await
            .expect("the conversations table has a stream");
        let store = Arc::new(self);
        Indexed {
            store: store.clone(),
            dynamo: Some((store, Arc::new(Mutex::new(poller)))),
        }
    }
}

/// Every search posting of a DynamoDB store's table, each as its attributes (sorted, values in
/// their debug form so two tables' postings compare), sorted by key: read with a Scan (a test's
/// raw view, not something the application does).
pub async fn raw_postings(store: &DynamoStore) -> Vec<std::collections::BTreeMap<String, String>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .client()
            .scan()
            .table_name(&store.tables().conversations)
            .filter_expression("begins_with(pk, :srch)")
            .expression_attribute_values(":srch", AttributeValue::S("SRCH#".to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scanning the postings");
        for item in page.items.unwrap_or_default() {
            out.push(item.into_iter().map(|(k, v)| (k, format!("{v:?}"))).collect());
        }
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            break;
        }
    }
    out.sort_by(|a: &std::collections::BTreeMap<String, String>, b| {
        (a.get("pk"), a.get("sk")).cmp(&(b.get("pk"), b.get("sk")))
    });
    out
}

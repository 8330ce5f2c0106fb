//! Opening the store the configuration names, and the bounded probe of the health check.

use std::sync::Arc;

use super::{dynamo, Conversations, Store};
use crate::config::{ConfigError, Env, StoreConfig, StoreKind};
use crate::domain::{ConversationId, UserId};
use crate::error::StoreError;

/// Opens the configured store: DynamoDB (creating missing tables when asked, for local
/// DynamoDB-API servers; production tables come from `template.yaml`) or the embedded store.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, ConfigError> {
    if let Some(store) = open_dynamo(config).await? {
        return Ok(Arc::new(store));
    }
    match &config.kind {
        StoreKind::Embedded { path } => open_embedded(path, config.event_ttl),
        StoreKind::Dynamo { .. } | StoreKind::MissingTable => Err(ConfigError(
            "ATHENA_TABLE must name the DynamoDB table inside Lambda".to_owned(),
        )),
    }
}

/// The DynamoDB store, when the configuration names one (creating missing tables when asked):
/// what [`open`] opens, and what the stream consumer and athena-local's indexer use directly.
pub async fn open_dynamo(config: &StoreConfig) -> Result<Option<dynamo::DynamoStore>, ConfigError> {
    let StoreKind::Dynamo {
        conversations_table,
        events_table,
        create_tables,
    } = &config.kind
    else {
        return Ok(None);
    };
    let tables = dynamo::Tables {
        conversations: conversations_table.clone(),
        events: events_table.clone(),
    };
    let client = dynamo::client_from_env().await;
    let store = dynamo::DynamoStore::new(client, tables).with_event_ttl(config.event_ttl);
    if *create_tables {
        store
            .create_tables()
            .await
            .map_err(|e| ConfigError(format!("creating the DynamoDB tables: {e}")))?;
    }
    Ok(Some(store))
}

/// The store the process environment names ([`StoreConfig::read`], then [`open`]).
pub async fn from_env() -> Result<Arc<dyn Store>, ConfigError> {
    let env = Env::process();
    let in_lambda = env.is_set("AWS_LAMBDA_FUNCTION_NAME");
    open(&StoreConfig::read(&env, in_lambda)?).await
}

#[cfg(feature = "embedded")]
fn open_embedded(path: &str, ttl: std::time::Duration) -> Result<Arc<dyn Store>, ConfigError> {
    let store = super::embedded::EmbeddedStore::open(path)
        .map_err(|e| ConfigError(format!("opening the embedded store at {path}: {e}")))?;
    Ok(Arc::new(store.with_event_ttl(ttl)))
}

/// Built without the embedded store (the Lambda functions): DynamoDB is the only store.
#[cfg(not(feature = "embedded"))]
fn open_embedded(_path: &str, _ttl: std::time::Duration) -> Result<Arc<dyn Store>, ConfigError> {
    Err(ConfigError(
        "ATHENA_TABLE must name the DynamoDB table: this build has no embedded store".to_owned(),
    ))
}

/// What [`probe`] found.
#[derive(Debug)]
pub enum Probe {
    /// The store answered (the probed conversation is never stored, so "not found" is the
    /// expected answer).
    Answered,
    /// The store answered with an error.
    Failed(StoreError),
    /// No answer within the bound.
    TimedOut,
}

/// The owner and id of the conversation [`probe`] reads: never stored. `template.yaml` lets the
/// analytics role (which reads no conversation) Query only this conversation's partition
/// (`tests/api/template.rs` checks the key).
pub const PROBE_ID: &str = "athena-probe";

/// One bounded read of a conversation that is never stored ([`PROBE_ID`]): whether the store
/// answers (the health check) and a way to open its connection early (the Lambda warm-up). One
/// `Query` on DynamoDB, which every function role may do (analytics: on this partition only).
pub async fn probe(store: &dyn Conversations, within: std::time::Duration) -> Probe {
    let (owner, id) = match (UserId::parse(PROBE_ID), ConversationId::parse(PROBE_ID)) {
        (Ok(owner), Ok(id)) => (owner, id),
        (Err(e), _) | (_, Err(e)) => return Probe::Failed(StoreError::internal("the probe's ids", e)),
    };
    match tokio::time::timeout(within, store.get_conversation_with_messages(&owner, &id)).await {
        Ok(Ok(_)) | Ok(Err(StoreError::NotFound)) => Probe::Answered,
        Ok(Err(e)) => Probe::Failed(e),
        Err(_) => Probe::TimedOut,
    }
}

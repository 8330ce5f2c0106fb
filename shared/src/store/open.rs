//! Opening the store the configuration names, and the bounded probe of the health check.

use super::{dynamo, Store};
use crate::domain::{ConversationId, UserId};
use crate::error::StoreError;

/// The store the environment asks for: DynamoDB when `ATHENA_TABLE` is set, otherwise the
/// embedded store in `ATHENA_DB` (default `.athena/athena.db`). Inside Lambda the embedded store
/// is refused: `/tmp` does not outlive an instance. `ATHENA_EVENT_TTL_DAYS` (default 90) sets
/// how long analytics events are kept; `ATHENA_CREATE_TABLES=true` creates missing tables (for
/// local DynamoDB-API servers).
pub async fn from_env() -> Result<std::sync::Arc<dyn Store>, crate::config::ConfigError> {
    use crate::config::ConfigError;
    let days = match std::env::var("ATHENA_EVENT_TTL_DAYS") {
        Err(_) => 90,
        Ok(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| ConfigError(format!("ATHENA_EVENT_TTL_DAYS must be a positive integer, not {raw:?}")))?,
    };
    let ttl = std::time::Duration::from_secs(days * 24 * 3600);
    if let Some(tables) = dynamo::Tables::from_env() {
        let client = dynamo::client_from_env().await;
        let store = dynamo::DynamoStore::new(client, tables).with_event_ttl(ttl);
        if std::env::var("ATHENA_CREATE_TABLES").is_ok_and(|v| v == "true") {
            // For local DynamoDB-API servers; production tables come from template.yaml.
            store
                .create_tables()
                .await
                .map_err(|e| ConfigError(format!("creating the DynamoDB tables: {e}")))?;
        }
        return Ok(std::sync::Arc::new(store));
    }
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        return Err(ConfigError(
            "ATHENA_TABLE must name the DynamoDB table inside Lambda".to_owned(),
        ));
    }
    open_embedded(ttl)
}

#[cfg(feature = "embedded")]
fn open_embedded(ttl: std::time::Duration) -> Result<std::sync::Arc<dyn Store>, crate::config::ConfigError> {
    let path = std::env::var("ATHENA_DB").unwrap_or_else(|_| ".athena/athena.db".to_owned());
    let store = super::embedded::EmbeddedStore::open(&path)
        .map_err(|e| crate::config::ConfigError(format!("opening the embedded store at {path}: {e}")))?;
    Ok(std::sync::Arc::new(store.with_event_ttl(ttl)))
}

/// Built without the embedded store (the Lambda functions): DynamoDB is the only store.
#[cfg(not(feature = "embedded"))]
fn open_embedded(_ttl: std::time::Duration) -> Result<std::sync::Arc<dyn Store>, crate::config::ConfigError> {
    Err(crate::config::ConfigError(
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

/// One bounded read of a conversation that is never stored (`athena-probe`): whether the store
/// answers (the health check) and a way to open its connection early (the Lambda warm-up). One
/// `Query` on DynamoDB, which every function role that reads conversations may do.
pub async fn probe(store: &dyn Store, within: std::time::Duration) -> Probe {
    let (owner, id) = match (UserId::parse("athena-probe"), ConversationId::parse("athena-probe")) {
        (Ok(owner), Ok(id)) => (owner, id),
        (Err(e), _) | (_, Err(e)) => return Probe::Failed(StoreError::internal("the probe's ids", e)),
    };
    match tokio::time::timeout(within, store.get_conversation_with_messages(&owner, &id)).await {
        Ok(Ok(_)) | Ok(Err(StoreError::NotFound)) => Probe::Answered,
        Ok(Err(e)) => Probe::Failed(e),
        Err(_) => Probe::TimedOut,
    }
}

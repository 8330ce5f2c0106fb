//! The Lambda adapter: turns `lambda_http` events (API Gateway REST v1, HTTP API v2, function
//! URLs) into [`ApiRequest`]s, runs [`api::handle`] and turns the answer back. Every function's
//! `main` is one call to [`run`].

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::BodyExt;
use lambda_http::request::RequestContext;
use lambda_http::{service_fn, RequestExt};

use crate::api::routes::Scope;
use crate::api::{self, ApiRequest, AppState};
use crate::config::Config;
use crate::{store, telemetry};

/// The error a function's `main` returns.
pub use lambda_http::Error;

/// Initialises logging, configuration and the store once (failing the cold start on bad
/// configuration), then serves `function`'s routes until Lambda stops the process: one request
/// at a time on classic Lambda, up to `AWS_LAMBDA_MAX_CONCURRENCY` at once on Lambda Managed
/// Instances (lambda_http's concurrent runner; the handler shares only `Arc`ed, thread-safe
/// state).
pub async fn run(function: &'static str) -> Result<(), lambda_http::Error> {
    telemetry::init();
    let state = Arc::new(
        init_base()
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?,
    );
    if state.config.runtime.import_worker {
        return run_import_worker(state).await;
    }
    lambda_http::run_concurrent(service_fn(move |event: lambda_http::Request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(respond_with(&state, function, event, None).await) }
    }))
    .await
}

/// The `housekeeping` function, run hourly by an EventBridge schedule: retention
/// (`ATHENA_RETENTION_DAYS`) and the trash's purge ([`api::organize::housekeeping`]), after the
/// day's cost against the trailing week ([`crate::analytics::cost_growth`]). The event's
/// content is not read; the answer (`{"retired", "purged"}`) shows in the invocation's result and
/// its log line. A failure fails the invocation (EventBridge retries it; the next hour's run
/// picks up whatever is left).
pub async fn run_housekeeping() -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{self, LambdaEvent};
    telemetry::init();
    let state = Arc::new(
        init_base()
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?,
    );
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_event: LambdaEvent<serde_json::Value>| {
            let state = Arc::clone(&state);
            async move {
                // First, so that a failing purge does not stop the measure.
                let growth = crate::analytics::cost_growth(&state).await;
                tracing::info!(ratio = growth.and_then(|g| g.ratio), "cost growth measured");
                let (retired, purged) = api::organize::housekeeping(&state).await?;
                tracing::info!(retired, purged, "housekeeping done");
                Ok::<_, lambda_http::Error>(serde_json::json!({"retired": retired, "purged": purged}))
            }
        },
    ))
    .await
}

/// The import jobs' worker (the conversations binary with `ATHENA_IMPORT_WORKER=true`, the
/// template's `ImportWorkerFunction`): invoked asynchronously for each object created under
/// `imports/` in the files bucket (an EventBridge "Object Created" event; a bucket notification's
/// `Records` are read too). A failure (the store or the bucket unreachable) fails the invocation,
/// which Lambda retries; the job resumes (the import is idempotent).
pub async fn run_import_worker(state: Arc<AppState>) -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{self, LambdaEvent};
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<serde_json::Value>| {
            let state = Arc::clone(&state);
            async move { import_uploads(&state, &event.payload).await }
        },
    ))
    .await
}

/// The keys of the objects an S3 event says were created: an EventBridge "Object Created"
/// event's `detail.object.key`, or each `ObjectCreated:*` record's `s3.object.key` of a bucket
/// notification (URL-encoded there, `+` for a space).
pub fn created_keys(event: &serde_json::Value) -> Vec<String> {
    if event["detail-type"].as_str() == Some("Object Created") {
        return event["detail"]["object"]["key"]
            .as_str()
            .map(|k| vec![k.to_owned()])
            .unwrap_or_default();
    }
    event["Records"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|r| r["eventName"].as_str().is_some_and(|n| n.starts_with("ObjectCreated")))
        .filter_map(|r| r["s3"]["object"]["key"].as_str())
        .map(|raw| {
            form_urlencoded::parse(format!("k={raw}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// Hands every created object of `event` to the import worker (tests feed
/// `events/imports-object-created.json` through this). Answers what became of each key.
pub async fn import_uploads(
    state: &AppState,
    event: &serde_json::Value,
) -> Result<serde_json::Value, lambda_http::Error> {
    let mut outcomes = Vec::new();
    for key in created_keys(event) {
        let outcome = crate::import::jobs::object_created(state, &key).await?;
        outcomes.push(serde_json::json!({"key": key, "outcome": format!("{outcome:?}")}));
    }
    Ok(serde_json::json!({"objects": outcomes}))
}

/// The chat and export functions: the same handler, run with Lambda response streaming so each
/// chunk (a chat delta, a conversation of an export) is sent as it is produced (the REST API's
/// streaming integrations, function URLs with `InvokeMode: RESPONSE_STREAM`); concurrently on
/// Lambda Managed Instances, as [`run`].
pub async fn run_streaming(function: &'static str) -> Result<(), lambda_http::Error> {
    telemetry::init();
    let state = init_base()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    serve_streaming(function, Arc::new(state), None).await
}

/// The chat function: [`run_streaming`] with the model provider, the MCP tool servers
/// ([`init_state`]) and the chat turn's handler ([`api::handle_with`]). Only this entry point
/// builds them, so the other functions' binaries link no model client (the Bedrock SDK), no MCP
/// client and no chat turn's code: smaller bootstraps.
pub async fn run_chat() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let state = init_state(true)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    serve_streaming("chat", Arc::new(state), Some(api::chat::post_boxed)).await
}

async fn serve_streaming(
    function: &'static str,
    state: Arc<AppState>,
    chat_turn: Option<api::ChatTurn>,
) -> Result<(), lambda_http::Error> {
    lambda_http::run_with_streaming_response_concurrent(service_fn(move |event: lambda_http::Request| {
        let state = Arc::clone(&state);
        async move {
            let request = from_event(event);
            Ok::<_, Infallible>(api::handle_with(&state, Scope::Function(function), request, chat_turn).await)
        }
    }))
    .await
}

/// The `streams` function: the conversations table's stream records, handed to their reactions
/// ([`crate::reactions`]); failed records are reported for a retry (`ReportBatchItemFailures`).
pub async fn run_stream_consumer() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    let store = store::open_dynamo(&config.store)
        .await?
        .ok_or_else(|| crate::config::ConfigError("the streams function needs ATHENA_TABLE".to_owned()))
        .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    let store = Arc::new(store);
    lambda_http::lambda_runtime::run(service_fn(
        move |event: lambda_http::LambdaEvent<crate::reactions::StreamEvent>| {
            let store = Arc::clone(&store);
            async move { Ok::<_, Infallible>(consume(&store, &event.payload).await) }
        },
    ))
    .await
}

/// One batch of stream records (tests feed `events/streams-*.json` through this).
pub async fn consume(
    store: &store::dynamo::DynamoStore,
    event: &crate::reactions::StreamEvent,
) -> crate::reactions::BatchResponse {
    let (response, applied) = crate::reactions::handle(store, event).await;
    tracing::info!(
        records = applied.records,
        postings_put = applied.index.puts,
        postings_deleted = applied.index.deletes,
        failed = !response.batch_item_failures.is_empty(),
        "stream batch"
    );
    response
}

/// Configuration (read once), store and (for chat) the model provider.
pub async fn init_state(with_chat: bool) -> Result<AppState, crate::config::ConfigError> {
    let mut state = init_base().await?;
    if with_chat {
        state.model = Some(crate::llm::from_config(&state.config.provider).await);
        state.mcp = Arc::new(crate::mcp::McpTools::new(&state.config.chat.mcp));
    }
    Ok(state)
}

/// Configuration, store and files, without a model provider: every function but chat.
async fn init_base() -> Result<AppState, crate::config::ConfigError> {
    let config = Config::from_env()?;
    let store = store::open(&config.store).await?;
    if config.runtime.in_lambda && config.runtime.warm_connections {
        warm_store(store.as_ref()).await;
    }
    let blobs = crate::blobs::from_config(&config.files).await?;
    let mut state = AppState::new(config, store);
    state.blobs = blobs;
    Ok(state)
}

/// Inside Lambda, opens the store's connection during init with one [`store::probe`], so the
/// TCP + TLS handshake to DynamoDB (most of an unwarmed first call: ~750 ms of ~900 ms in
/// published 128 MB measurements) happens in the init phase, not in the first request. Bounded
/// to 2 s; whatever the answer (not found, access denied for the analytics role, timeout), only
/// the pooled connection matters. `ATHENA_WARM_CONNECTIONS=false` turns it off. See
/// `docs/performance.md`.
async fn warm_store(store: &dyn store::Store) {
    let started = std::time::Instant::now();
    let outcome = store::probe(store, std::time::Duration::from_secs(2)).await;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        outcome = ?outcome,
        "store connection warmed"
    );
}

/// Handles one event for `function` (tests feed `events/*.json` through this), chat turns
/// included.
pub async fn respond(
    state: &Arc<AppState>,
    function: &'static str,
    event: lambda_http::Request,
) -> lambda_http::Response<lambda_http::Body> {
    respond_with(state, function, event, Some(api::chat::post_boxed)).await
}

/// [`respond`] with `chat_turn` as the chat turn's handler ([`api::handle_with`]; the buffered
/// functions serve no chat route and link none).
async fn respond_with(
    state: &Arc<AppState>,
    function: &'static str,
    event: lambda_http::Request,
    chat_turn: Option<api::ChatTurn>,
) -> lambda_http::Response<lambda_http::Body> {
    let request = from_event(event);
    let response = api::handle_with(state, Scope::Function(function), request, chat_turn).await;
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let body = if bytes.is_empty() {
        lambda_http::Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => lambda_http::Body::Text(text),
            Err(e) => lambda_http::Body::Binary(e.into_bytes()),
        }
    };
    lambda_http::Response::from_parts(parts, body)
}

/// Converts a Lambda HTTP event into an [`ApiRequest`].
pub fn from_event(event: lambda_http::Request) -> ApiRequest {
    let request_id = event
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .filter(|id| !id.is_empty())
        .or_else(|| match event.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
            Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
            _ => None,
        })
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    let claims = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|jwt| {
            jwt.claims
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect()
        }),
        Some(RequestContext::ApiGatewayV1(ctx)) => {
            ctx.authorizer.fields.get("claims").and_then(|c| c.as_object()).cloned()
        }
        _ => None,
    };
    let query = event
        .query_string_parameters_ref()
        .map(|q| q.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        .unwrap_or_default();
    let (parts, body) = event.into_parts();
    let body = match body {
        lambda_http::Body::Empty => bytes::Bytes::new(),
        lambda_http::Body::Text(t) => bytes::Bytes::from(t),
        lambda_http::Body::Binary(b) => bytes::Bytes::from(b),
        _ => bytes::Bytes::new(),
    };
    ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers,
        body,
        request_id,
        claims,
        any_content_type: false,
    }
}

#[cfg(test)]
mod tests {
    use super::created_keys;

    #[test]
    fn the_created_keys_of_an_eventbridge_event_and_of_a_bucket_notification() {
        let bridge = serde_json::json!({"detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "imports/abc/01J"}}});
        assert_eq!(created_keys(&bridge), ["imports/abc/01J"]);
        let other =
            serde_json::json!({"detail-type": "Object Deleted", "detail": {"object": {"key": "imports/abc/01J"}}});
        assert!(created_keys(&other).is_empty());
        // A bucket notification's keys are URL-encoded; only ObjectCreated records count.
        let notification = serde_json::json!({"Records": [
            {"eventName": "ObjectCreated:Post", "s3": {"object": {"key": "imports/abc/a+b%2Bc"}}},
            {"eventName": "ObjectRemoved:Delete", "s3": {"object": {"key": "imports/abc/gone"}}},
        ]});
        assert_eq!(created_keys(&notification), ["imports/abc/a b+c"]);
        assert!(created_keys(&serde_json::json!({})).is_empty());
    }
}

//! The local gateway: every route of the route table in one process, over HTTP/1.1 with hyper,
//! on the same handlers the Lambda functions run. `athena-local` is this plus `main`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::api::error::ApiError;
use crate::api::routes::Scope;
use crate::api::{self, parse_query, ApiRequest, AppState, Body};

/// Serves until `shutdown` resolves. Connections in flight finish on their own.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: log, breathe, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(respond(&state, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// A request id: the client's `x-request-id` when it is short and plain, else a new ULID.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| ulid::Ulid::new().to_string())
}

/// Most bytes of an oversized body read and dropped before the 413 goes out, so a client still
/// sending reads the answer instead of a reset connection.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// Reads a body of at most `limit` bytes. An oversized one is a 413, answered after draining up
/// to [`DRAIN_BYTES`] more (bounded in time) so the client gets to read it.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let unreadable = || ApiError::Validation(crate::error::ValidationError::body("the body could not be read"));
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| unreadable())?.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > limit {
            let mut drained = buffer.len() + data.len();
            let drain = async {
                while let Some(Ok(frame)) = body.frame().await {
                    drained += frame.data_ref().map_or(0, Bytes::len);
                    if drained > DRAIN_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
            return Err(ApiError::PayloadTooLarge(format!("the body exceeds {limit} bytes")));
        }
        buffer.extend_from_slice(&data);
    }
    Ok(buffer.freeze())
}

async fn respond(state: &Arc<AppState>, req: http::Request<Incoming>) -> http::Response<Body> {
    let (parts, body) = req.into_parts();
    let id = request_id(&parts.headers);
    let limit = state.config.limits.max_body_bytes;
    let body: Bytes = match read_body(body, limit).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(&id),
    };
    let request = ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parse_query(parts.uri.query()),
        headers: parts.headers,
        body,
        request_id: id,
        claims: None,
        any_content_type: false,
    };
    api::handle(state, Scope::All, request).await
}

/// Binds an address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// What can stop the local gateway from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// `ATHENA_ADDR` is not an address.
    #[error("ATHENA_ADDR must be host:port, e.g. 127.0.0.1:3000, not {0:?}")]
    Addr(String),
    /// The port is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Whether the default AWS credential chain yields credentials (within 3 s), so a newcomer without
/// AWS learns at start why chat would fail instead of from the first chat turn.
async fn bedrock_credentials_resolve() -> bool {
    use aws_sdk_dynamodb::config::ProvideCredentials;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let Some(provider) = config.credentials_provider() else {
        return false;
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(3), provider.provide_credentials()).await,
        Ok(Ok(_))
    )
}

/// `athena-local`: reads the environment, opens the store, listens on `ATHENA_ADDR`
/// (default `127.0.0.1:3000`) and serves until Ctrl-C.
pub async fn run_from_env() -> Result<(), StartError> {
    let state = crate::lambda::init_state(true).await?;
    let raw = state.config.runtime.addr.clone();
    let addr: SocketAddr = raw.parse().map_err(|_| StartError::Addr(raw.clone()))?;
    let listener = bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let store_name = state.config.store.describe();
    let provider = state.model.as_ref().map_or("none", |m| m.provider());
    tracing::info!(address = %local, store = %store_name, provider, "athena-local listening");
    eprintln!(
        "athena-local listening on http://{local} (store: {store_name}, model provider: {provider}); Ctrl-C stops it"
    );
    if provider == "bedrock" && !bedrock_credentials_resolve().await {
        eprintln!(
            "athena-local: no AWS credentials found, so chat turns will fail with PROVIDER_UNAVAILABLE. \
             Give it credentials with Bedrock access (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO) \
             or run the offline demo model with ATHENA_PROVIDER=scripted."
        );
    }
    let state = Arc::new(state);
    serve(state, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(StartError::Serve)
}

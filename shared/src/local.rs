//! The local gateway: every route of the route table in one process, over HTTP/1.1 with hyper,
//! on the same handlers the Lambda functions run. `athena-local` is this plus `main`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::error::ApiError;
use crate::api::routes::Scope;
use crate::api::{self, parse_query, ApiRequest, AppState, Body};
use crate::error::ValidationError;

/// How the local gateway bounds what one client can hold: time to send a request, connections.
///
/// What hyper answers by itself, before [`serve`]'s service runs (so without the JSON error shape
/// or the security headers; an empty body and `connection: close`): a request line or header it
/// cannot parse (400), a head larger than hyper's read buffer (about 400 KiB) or with more than
/// 100 header lines (431), and a request target over 65,534 bytes (414). Below those, the
/// limits here ([`ServeOptions::max_uri_bytes`], [`ServeOptions::max_header_bytes`]) answer first,
/// in the usual shape. A head that does not arrive in time gets no answer: hyper closes the
/// connection.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// How long a request's head (request line and headers) may take to arrive, counted from
    /// when hyper starts waiting for it: on a new connection, and on a kept-alive one after its
    /// previous response, so it is also the idle keep-alive timeout. When it passes, hyper
    /// closes the connection.
    pub header_read_timeout: Duration,
    /// How long a request's whole body may take to arrive; then 408 `REQUEST_TIMEOUT`, and the
    /// connection is closed.
    pub body_read_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one ends.
    pub max_connections: usize,
    /// Longest request target (path and query), bytes; longer is 414 `URI_TOO_LONG`.
    pub max_uri_bytes: usize,
    /// Largest request head (each header's name and value, plus 4 bytes each), bytes; larger is
    /// 431 `HEADERS_TOO_LARGE`.
    pub max_header_bytes: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: crate::config::DEFAULT_MAX_CONNECTIONS as usize,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
        }
    }
}

impl ServeOptions {
    /// The defaults, with the connection limit of the configuration (`ATHENA_MAX_CONNECTIONS`).
    pub fn for_config(config: &crate::config::Config) -> Self {
        Self {
            max_connections: usize::try_from(config.runtime.max_connections).unwrap_or(usize::MAX),
            ..Self::default()
        }
    }
}

/// Serves until `shutdown` resolves, with [`ServeOptions::for_config`]. Connections in flight
/// finish on their own.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let options = ServeOptions::for_config(&state.config);
    serve_with(state, listener, options, shutdown).await
}

/// Serves until `shutdown` resolves, bounded by `options`. Connections in flight finish on their
/// own.
pub async fn serve_with(
    state: Arc<AppState>,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(options.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    loop {
        // A slot first: at the limit, new connections wait in the backlog instead of being
        // accepted and starved.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Ok(()),
            },
            () = &mut shutdown => return Ok(()),
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: log, breathe, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(respond(&state, req, &options).await) }
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
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

/// Reads a body of at most `limit` bytes within `timeout`. An oversized one is a 413, answered
/// after draining up to [`DRAIN_BYTES`] more (bounded in time) so the client gets to read it; a
/// body that stops arriving is a 408.
async fn read_body(mut body: Incoming, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let unreadable = || ApiError::Validation(ValidationError::body("the body could not be read"));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buffer = bytes::BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => {
                return Err(ApiError::RequestTimeout(format!(
                    "the body did not arrive within {} s",
                    timeout.as_secs_f64()
                )))
            }
        };
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
            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
            return Err(ApiError::PayloadTooLarge(format!("the body exceeds {limit} bytes")));
        }
        buffer.extend_from_slice(&data);
    }
    Ok(buffer.freeze())
}

/// The head's own limits, checked before routing so the answer has the usual shape (hyper's
/// larger built-in limits answer bare; see [`ServeOptions`]).
fn check_head(parts: &http::request::Parts, options: &ServeOptions) -> Result<(), ApiError> {
    let uri = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri > options.max_uri_bytes {
        return Err(ApiError::UriTooLong(format!(
            "the request target is {uri} bytes; the limit is {} bytes",
            options.max_uri_bytes
        )));
    }
    let head: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if head > options.max_header_bytes {
        return Err(ApiError::HeadersTooLarge(format!(
            "the headers are {head} bytes; the limit is {} bytes",
            options.max_header_bytes
        )));
    }
    Ok(())
}

async fn respond(state: &Arc<AppState>, req: http::Request<Incoming>, options: &ServeOptions) -> http::Response<Body> {
    let (parts, body) = req.into_parts();
    #[cfg(feature = "embedded")]
    if parts.uri.path().starts_with("/local/") {
        if let Some(response) = local_files(state, &parts, body, options).await {
            return response;
        }
        return api::refuse(
            state,
            &ApiRequest {
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                query: Vec::new(),
                request_id: request_id(&parts.headers),
                headers: parts.headers.clone(),
                body: Bytes::new(),
                claims: None,
                any_content_type: false,
            },
            ApiError::NotFound("no such route".to_owned()),
        );
    }
    let checked = check_head(&parts, options);
    let mut request = ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: if checked.is_ok() {
            parse_query(parts.uri.query())
        } else {
            Vec::new()
        },
        request_id: request_id(&parts.headers),
        headers: parts.headers,
        body: Bytes::new(),
        claims: None,
        any_content_type: false,
    };
    let limit = api::body_limit(&state.config, &request.path);
    let read = match checked {
        Ok(()) => read_body(body, limit, options.body_read_timeout).await,
        Err(e) => Err(e),
    };
    match read {
        Ok(bytes) => {
            request.body = bytes;
            api::handle(state, Scope::All, request).await
        }
        Err(error) => {
            // The body was not read (whole): the connection cannot carry another request.
            let mut response = api::refuse(state, &request, error);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// The routes of the directory file store (`athena-local` without a bucket): `POST
/// /local/uploads` takes an upload form (as S3 takes a presigned POST, with CORS for any
/// origin since the form's signature is the credential), `GET /local/files/<key>` a signed
/// download. `None` when no directory store is configured (the path is then unknown).
#[cfg(feature = "embedded")]
async fn local_files(
    state: &Arc<AppState>,
    parts: &http::request::Parts,
    body: Incoming,
    options: &ServeOptions,
) -> Option<http::Response<Body>> {
    use crate::blobs::disk::{Refusal, DOWNLOAD_PREFIX, UPLOAD_PATH};
    let disk = state.blobs.as_deref()?.as_disk()?;
    let now = state.now();
    let path = parts.uri.path();
    let refusal = |r: Refusal| {
        let status = http::StatusCode::from_u16(r.status).unwrap_or(http::StatusCode::BAD_REQUEST);
        let body = serde_json::json!({"error": {"code": r.code, "message": r.message, "requestId": request_id(&parts.headers)}});
        let mut response = http::Response::new(api::full(bytes::Bytes::from(body.to_string())));
        *response.status_mut() = status;
        response
    };
    let mut response = if parts.method == http::Method::OPTIONS {
        let mut r = http::Response::new(api::full(Bytes::new()));
        *r.status_mut() = http::StatusCode::NO_CONTENT;
        r.headers_mut()
            .insert("access-control-allow-methods", HeaderValue::from_static("POST, GET"));
        r.headers_mut()
            .insert("access-control-allow-headers", HeaderValue::from_static("*"));
        r
    } else if path == UPLOAD_PATH && parts.method == http::Method::POST {
        // The largest accepted file (an attachment, or an export file of an import job) and its
        // form fields.
        let largest = crate::domain::file::MAX_DOCUMENT_BYTES.max(state.config.files.max_import_upload_bytes);
        let limit = usize::try_from(largest).unwrap_or(usize::MAX).saturating_add(64 * 1024);
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        match read_body(body, limit, options.body_read_timeout).await {
            Err(e) => refusal(Refusal {
                status: e.status().as_u16(),
                code: e.code(),
                message: e.public_message(),
            }),
            Ok(bytes) => match disk.accept_upload(&content_type, bytes, now).await {
                Ok(key) => {
                    if key.starts_with(crate::domain::import_job::UPLOAD_PREFIX) {
                        // The directory store's analog of the bucket's ObjectCreated
                        // notification: the same worker, in-process, after the answer.
                        let state = Arc::clone(state);
                        tokio::spawn(async move {
                            if let Err(e) = crate::import::jobs::object_created(&state, &key).await {
                                tracing::error!(error = %e, "an import job failed to run; delete it and upload again");
                            }
                        });
                    }
                    let mut r = http::Response::new(api::full(Bytes::new()));
                    *r.status_mut() = http::StatusCode::NO_CONTENT;
                    r
                }
                Err(r) => refusal(r),
            },
        }
    } else if let (Some(key), &http::Method::GET) = (path.strip_prefix(DOWNLOAD_PREFIX), &parts.method) {
        let query = parse_query(parts.uri.query());
        let param = |k: &str| query.iter().find(|(name, _)| name == k).map_or("", |(_, v)| v.as_str());
        match disk
            .download(key, param("expires"), param("name"), param("signature"), now)
            .await
        {
            Ok(bytes) => {
                let mut r = http::Response::new(api::full(bytes));
                let name = param("name").replace(['"', '\\'], "_");
                if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                    r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
                }
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                r
            }
            Err(r) => refusal(r),
        }
    } else {
        refusal(Refusal {
            status: 404,
            code: "NOT_FOUND",
            message: "no such route".to_owned(),
        })
    };
    response
        .headers_mut()
        .insert("access-control-allow-origin", HeaderValue::from_static("*"));
    if response.headers().get(header::CONTENT_TYPE).is_none() && response.status() != http::StatusCode::NO_CONTENT {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Some(response)
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
    /// Storing the sample events' data failed.
    #[error("seeding the sample data failed: {0}")]
    Seed(crate::error::StoreError),
}

/// The user the sample events (`events/*.json`) act as: their authorizer claims and their token
/// name it.
pub const SAMPLE_USER: &str = "user-alice-0001";
/// The conversation the sample events target (`events/README.md`).
pub const SAMPLE_CONVERSATION: &str = "01JDCONV0000000000000000AA";
/// Its first message (the user's), which `events/conversations-active-branch.json` and
/// `events/messages-bookmark-put.json` name.
pub const SAMPLE_MESSAGE: &str = "01JDMSG0000000000000000AA1";
/// The assistant's reply to it, which `events/messages-reaction-put.json` reacts to.
pub const SAMPLE_REPLY: &str = "01JDMSG0000000000000000AA2";

/// Stores the sample events' conversation ([`SAMPLE_CONVERSATION`], owned by [`SAMPLE_USER`],
/// with the user message [`SAMPLE_MESSAGE`] and the reply [`SAMPLE_REPLY`]) unless it is already there; returns whether it
/// stored it. `athena-local --seed-sample-events` runs it on the store the environment names.
pub async fn seed_sample_events(
    store: &dyn crate::store::prelude::Conversations,
    now: crate::domain::Timestamp,
) -> Result<bool, crate::error::StoreError> {
    use crate::domain::{Conversation, ConversationId, Message, MessageId, Role, Solution, UserId};
    use crate::error::StoreError;
    let ids = (
        UserId::parse(SAMPLE_USER),
        ConversationId::parse(SAMPLE_CONVERSATION),
        MessageId::parse(SAMPLE_MESSAGE),
        MessageId::parse(SAMPLE_REPLY),
    );
    let (owner, id, message_id, reply_id) = match ids {
        (Ok(owner), Ok(id), Ok(message_id), Ok(reply_id)) => (owner, id, message_id, reply_id),
        _ => return Err(StoreError::internal("the sample ids", "not valid ids")),
    };
    match store.get_conversation(&owner, &id).await {
        Ok(_) => return Ok(false),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    let conversation = Conversation::new(
        id,
        owner,
        "Press line 2",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        Some(Solution::Maintenance),
        now,
    );
    let message = Message::text(message_id, conversation.id.clone(), Role::User, "MTBF?".to_owned(), now);
    let mut reply = Message::text(
        reply_id,
        conversation.id.clone(),
        Role::Assistant,
        "Press line 2 ran 412 hours between failures last quarter.".to_owned(),
        now,
    );
    reply.parent_id = Some(message.id.clone());
    reply.model = Some(conversation.model.clone());
    store.create_conversation(&conversation, &[message, reply]).await?;
    Ok(true)
}

/// `athena-local --seed-sample-events`: opens the store the environment names (as the functions
/// and `athena-local` do: `ATHENA_TABLE`, `AWS_ENDPOINT_URL_DYNAMODB`, `ATHENA_CREATE_TABLES`) and
/// stores the sample events' data there.
pub async fn seed_sample_events_from_env() -> Result<bool, StartError> {
    let state = crate::lambda::init_state(false).await?;
    seed_sample_events(state.store.as_ref(), crate::domain::now())
        .await
        .map_err(StartError::Seed)
}

/// Whether the default AWS credential chain yields credentials (within 3 s), so a newcomer without
/// AWS learns at start why chat would fail instead of from the first chat turn.
async fn bedrock_credentials_resolve() -> bool {
    use aws_sdk_dynamodb::config::ProvideCredentials;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::http::sdk_http_client())
        .load()
        .await;
    let Some(provider) = config.credentials_provider() else {
        return false;
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(3), provider.provide_credentials()).await,
        Ok(Ok(_))
    )
}

/// Runs the housekeeping at start and then hourly: with `ATHENA_RETENTION_DAYS`, conversations
/// untouched that long go to the trash; conversations due for purging leave the trash for good
/// (with their files); the day's cost against the trailing week is measured (an EMF line with
/// `ATHENA_EMF=true`). The `housekeeping` Lambda function does the same on a schedule.
fn spawn_housekeeping(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            crate::analytics::cost_growth(&state).await;
            match api::organize::housekeeping(&state).await {
                Ok((retired, purged)) => {
                    tracing::info!(retired, purged, "housekeeping: retention and trash purge done");
                }
                Err(e) => tracing::warn!(error = %e, "housekeeping failed; it runs again in an hour"),
            }
        }
    });
}

/// `athena-local`: reads the environment, opens the store, listens on `ATHENA_ADDR`
/// (default `127.0.0.1:3000`) and serves until Ctrl-C.
pub async fn run_from_env() -> Result<(), StartError> {
    run_from_env_with_demo_tools(None).await
}

/// [`run_from_env`], with the sample MES server at `demo_mes` (its MCP URL) as the manufacturing
/// and maintenance chats' tool server when the offline demo model runs (`ATHENA_PROVIDER=scripted`)
/// and no MCP server is configured (`ATHENA_MCP_SERVERS`).
pub async fn run_from_env_with_demo_tools(demo_mes: Option<String>) -> Result<(), StartError> {
    let mut state = crate::lambda::init_state(true).await?;
    let scripted = state.model.as_ref().is_some_and(|m| m.provider() == "scripted");
    if let (Some(url), true, true) = (demo_mes, scripted, state.config.chat.mcp.is_empty()) {
        let mut mes = crate::config::McpServerConfig::new("mes", &url);
        mes.solutions = Some(vec![
            Some(crate::domain::Solution::Manufacturing),
            Some(crate::domain::Solution::Maintenance),
        ]);
        mes.forward_user = Some("x-athena-user".to_owned());
        state.config.chat.mcp = vec![mes];
        state.mcp = Arc::new(crate::mcp::McpTools::new(&state.config.chat.mcp));
        eprintln!(
            "athena-local: the sample MES server ({url}) serves the manufacturing and maintenance chats' tools; \
             try \"#tool:mes_machine_status?machineId=PRESS-02\" or \"#tool:mes_create_work_order?machineId=PRESS-02&title=Check_valve&priority=high\""
        );
    }
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
    #[cfg(feature = "stream-poller")]
    start_stream_indexer(&state.config.store).await;
    let state = Arc::new(state);
    spawn_housekeeping(Arc::clone(&state));
    serve(state, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(StartError::Serve)
}

/// On DynamoDB, the search indexer that the `streams` function runs in AWS, run here by reading
/// the conversations table's stream once a second ([`crate::reactions::StreamPoller`]): search
/// finds what was written within about a second, as deployed.
#[cfg(feature = "stream-poller")]
async fn start_stream_indexer(config: &crate::config::StoreConfig) {
    use crate::reactions::StreamPoller;
    let store = match crate::store::open_dynamo(config).await {
        Ok(Some(store)) => store,
        Ok(None) => return,
        Err(e) => {
            eprintln!("athena-local: search indexing is off ({e})");
            return;
        }
    };
    match StreamPoller::new(&store, StreamPoller::client_from_env().await).await {
        Ok(poller) => {
            tokio::spawn(poller.run(store, std::time::Duration::from_secs(1)));
        }
        Err(e) => eprintln!("athena-local: search indexing is off: the table's stream cannot be read ({e})"),
    }
}

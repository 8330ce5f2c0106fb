//! The HTTP side: rmcp's Streamable HTTP service at `/mcp`, behind an optional bearer key, served
//! with hyper (HTTP/1.1) on a Tokio listener.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{
    body::{Bytes, Incoming},
    service::{service_fn, Service as _},
};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{plant::Plant, tools::MesTools};

/// The path of the MCP endpoint; every other path answers 404.
pub const MCP_PATH: &str = "/mcp";
/// The request header whose values [`Plant::seen_users`] records.
pub const USER_HEADER: &str = "x-athena-user";

/// How the server is run.
#[derive(Clone, Default)]
pub struct Options {
    /// When set, every request must carry `authorization: Bearer <api_key>` (else 401).
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key itself stays out of logs.
        f.debug_struct("Options")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A running server; [`MesServer::shutdown`] (or dropping it) stops it.
pub struct MesServer {
    /// The bound address (the actual port when bound to port 0).
    pub addr: SocketAddr,
    pub plant: Plant,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MesServer {
    /// The MCP endpoint, `http://{addr}/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    /// Stops accepting connections, closes the open ones and the MCP sessions, and waits for the
    /// accept loop to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::warn!(%error, "MES accept loop ended abnormally");
            }
        }
    }
}

impl Drop for MesServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

type ResponseBody = BoxBody<Bytes, Infallible>;
type McpService = TowerToHyperService<StreamableHttpService<MesTools, LocalSessionManager>>;

fn json_error(status: StatusCode, error: &str, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "error": error, "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Compares without stopping at the first differing byte.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn authorized(request: &Request<Incoming>, api_key: &str) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| same_secret(token.trim().as_bytes(), api_key.as_bytes()))
}

async fn handle(
    request: Request<Incoming>,
    mcp: McpService,
    plant: Plant,
    api_key: Option<Arc<str>>,
) -> Result<Response<ResponseBody>, Infallible> {
    if request.uri().path() != MCP_PATH {
        return Ok(json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the MCP endpoint is /mcp",
        ));
    }
    if let Some(api_key) = api_key.as_deref() {
        if !authorized(&request, api_key) {
            let mut response = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token (authorization: Bearer <key>)",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return Ok(response);
        }
    }
    if let Some(user) = request.headers().get(USER_HEADER).and_then(|value| value.to_str().ok()) {
        plant.record_user(user);
    }
    mcp.call(request).await
}

/// Binds `addr` (port 0 picks a free port), spawns the server and returns at once.
///
/// Bound to a loopback address, the server accepts only loopback `Host` headers (rmcp's default
/// protection against DNS rebinding); bound to any other address, it accepts every host.
pub async fn serve(addr: SocketAddr, plant: Plant, options: Options) -> std::io::Result<MesServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();

    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(cancel.child_token());
    if !addr.ip().is_loopback() {
        config = config.disable_allowed_hosts();
        if options.api_key.is_none() {
            tracing::warn!(%addr, "MES server on a non-loopback address without an API key");
        }
    }
    let session_plant = plant.clone();
    let mcp = TowerToHyperService::new(StreamableHttpService::new(
        move || Ok(MesTools::new(session_plant.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    ));
    let api_key: Option<Arc<str>> = options.api_key.map(Arc::from);

    let task = tokio::spawn(accept_loop(listener, mcp, plant.clone(), api_key, cancel.clone()));
    Ok(MesServer {
        addr,
        plant,
        cancel,
        task: Some(task),
    })
}

async fn accept_loop(
    listener: TcpListener,
    mcp: McpService,
    plant: Plant,
    api_key: Option<Arc<str>>,
    cancel: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::warn!(%error, "MES server accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (mcp, plant, api_key) = (mcp.clone(), plant.clone(), api_key.clone());
        let service = service_fn(move |request| handle(request, mcp.clone(), plant.clone(), api_key.clone()));
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "MES connection ended with an error");
                    }
                }
                () = cancel.cancelled() => {}
            }
        });
    }
}

//! `athena-mes`: the sample MES MCP server on its own. Listens on `ATHENA_MES_ADDR` (default
//! 127.0.0.1:3100); requires `authorization: Bearer $ATHENA_MES_API_KEY` when that is set. Ctrl-C
//! stops it.

use std::net::SocketAddr;

use athena_mes::{serve, Options, Plant};
use tracing_subscriber::EnvFilter;

const DEFAULT_ADDR: &str = "127.0.0.1:3100";

#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error("ATHENA_MES_ADDR `{0}` is not a socket address (host:port): {1}")]
    Addr(String, std::net::AddrParseError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("waiting for Ctrl-C: {0}")]
    Signal(std::io::Error),
}

#[tokio::main]
async fn main() -> Result<(), MainError> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();

    let addr_text = std::env::var("ATHENA_MES_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    let addr: SocketAddr = addr_text
        .parse()
        .map_err(|error| MainError::Addr(addr_text.clone(), error))?;
    let api_key = std::env::var("ATHENA_MES_API_KEY").ok().filter(|key| !key.is_empty());
    let with_key = api_key.is_some();

    let server = serve(addr, Plant::sample(), Options { api_key })
        .await
        .map_err(|error| MainError::Bind(addr, error))?;
    tracing::info!(url = %server.url(), api_key = with_key, "athena-mes MCP server listening");

    let stopped = tokio::signal::ctrl_c().await;
    tracing::info!("stopping");
    server.shutdown().await;
    stopped.map_err(MainError::Signal)
}

//! `GET /api/health`: is this deployment able to serve? Unauthenticated, no user data: the
//! version and one bounded read of the store ([`store::probe`]: a key that is never stored).
//! 200 with `status: "ok"`, or 503 with `status: "unavailable"` and `Retry-After` when the
//! store does not answer in time or answers with an error. Load balancers, uptime checks and
//! the seed's `curl /api/health` use it.

use std::time::{Duration, Instant};

use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use super::{AppState, Body};
use crate::store::{self, Probe};

/// How long the store may take before the check says unavailable.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The check.
pub async fn check(state: &AppState) -> Result<Response<Body>, super::ApiError> {
    let started = Instant::now();
    let store_ok = match store::probe(state.store.as_ref(), STORE_TIMEOUT).await {
        Probe::Answered => true,
        Probe::Failed(e) => {
            tracing::warn!(error = %e, "health check: the store answered with an error");
            false
        }
        Probe::TimedOut => {
            tracing::warn!("health check: the store did not answer in time");
            false
        }
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let status = if store_ok { "ok" } else { "unavailable" };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "checks": {"store": {"status": status, "latencyMs": latency_ms}},
    });
    let code = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = super::json(code, &body)?;
    let headers = response.headers_mut();
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !store_ok {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    Ok(response)
}

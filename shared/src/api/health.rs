//! `GET /api/health`: is this deployment able to serve? Unauthenticated, no user data: the
//! version and one bounded read of the store ([`store::probe`]: a key that is never stored).
//! 200 with `status: "ok"`, or 503 with `status: "unavailable"` and `Retry-After` when the
//! store does not answer in time or answers with an error. Load balancers, uptime checks and
//! the seed's `curl /api/health` use it. The store's answer is remembered for [`REUSE_FOR`] per
//! instance (`AppState::health`), so a flood of unauthenticated checks costs at most one store
//! read per instance every few seconds.

use std::time::{Duration, Instant};

use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use super::{AppState, Body};
use crate::store::{self, Probe};

/// How long the store may take before the check says unavailable.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one store answer serves later checks on the same instance.
pub const REUSE_FOR: Duration = Duration::from_secs(5);

/// The check.
pub async fn check(state: &AppState) -> Result<Response<Body>, super::ApiError> {
    let reuse_for = chrono::Duration::from_std(REUSE_FOR).unwrap_or_else(|_| chrono::Duration::seconds(5));
    let (store_ok, latency_ms) = match state.health.fresh(state.now(), reuse_for) {
        Some(remembered) => remembered,
        None => {
            let answer = probe_store(state).await;
            state.health.remember(state.now(), answer.0, answer.1);
            answer
        }
    };
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

/// One bounded read of the store: whether it answered, and in how many milliseconds.
async fn probe_store(state: &AppState) -> (bool, u64) {
    let started = Instant::now();
    let ok = match store::probe(state.store.as_ref(), STORE_TIMEOUT).await {
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
    (ok, started.elapsed().as_millis() as u64)
}

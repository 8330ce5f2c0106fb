//! `GET /api/analytics/summary` (admins only) and `GET /dashboard`, the page that charts it.

use chrono::{Duration, NaiveDate};
use http::{header, HeaderValue, Response, StatusCode};

use super::error::ApiError;
use super::{json, ApiRequest, AppState, Body, Caller};
use crate::analytics::summarize;
use crate::domain::SolutionFilter;
use crate::error::ValidationError;

/// Longest range a summary covers, in days.
pub const MAX_DAYS: i64 = 92;

fn day(req: &ApiRequest, name: &str, default: NaiveDate) -> Result<NaiveDate, ApiError> {
    match req.query_param(name) {
        None => Ok(default),
        Some(raw) => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map_err(|_| ValidationError::field(name, "must be a date YYYY-MM-DD").into()),
    }
}

/// The summary: totals, by solution, by model, daily series.
pub async fn summary(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    if !caller.admin {
        return Err(ApiError::Forbidden("analytics are for administrators".to_owned()));
    }
    let today = state.now().date_naive();
    let to = day(req, "to", today)?;
    let from = day(req, "from", to - Duration::days(29))?;
    if from > to {
        return Err(ValidationError::field("from", "must not be after to").into());
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ValidationError::field("from", format!("the range is at most {MAX_DAYS} days")).into());
    }
    let solution = req
        .query_param("solutionType")
        .map(SolutionFilter::parse)
        .transpose()
        .map_err(|_| ValidationError::field("solutionType", "must be general or a solution name"))?;
    let model = req
        .query_param("model")
        .map(|m| state.config.catalog.parse("model", m).map(|m| m.id))
        .transpose()?;
    let (from, to) = (from.format("%Y-%m-%d").to_string(), to.format("%Y-%m-%d").to_string());
    let mut rows = state.store.stats_between(&from, &to).await?;
    rows.retain(|r| solution.is_none_or(|s| s.bucket() == r.solution) && model.is_none_or(|m| m == r.model));
    json(StatusCode::OK, &summarize(&from, &to, &rows))
}

const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

fn inline_hash(html: &str, tag: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let body = html
        .find(&open)
        .and_then(|start| {
            let rest = &html[start + open.len()..];
            rest.find(&close).map(|end| &rest[..end])
        })
        .unwrap_or_default();
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()))
    )
}

/// The dashboard page: no build step, inline script and style allowed by their hashes only.
pub fn dashboard() -> Result<Response<Body>, ApiError> {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let csp = CSP.get_or_init(|| {
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
            inline_hash(DASHBOARD, "script"),
            inline_hash(DASHBOARD, "style")
        )
    });
    let mut response = Response::new(super::full(DASHBOARD));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(csp) {
        headers.insert("content-security-policy", v);
    }
    Ok(response)
}

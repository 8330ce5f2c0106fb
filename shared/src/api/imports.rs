//! `/api/imports`: import jobs, for export files larger than a request body
//! ([`crate::import::jobs`], `docs/export.md`). `POST` creates a job and answers its upload form
//! (the browser posts the file straight to the bucket; its arrival starts the worker), `GET`
//! shows one job (status, counts, failed items) or lists the caller's jobs newest first,
//! `DELETE` removes a job that is not running, with its uploaded file.

use http::{header, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::files::{origin, whole_number, UploadView};
use super::{input, json, with_cursor, ApiRequest, AppState, Body, Caller};
use crate::blobs::UploadForm;
use crate::domain::import_job::{ItemResult, JobError, Totals, MAX_STORED_RESULTS};
use crate::domain::{ts, ImportJob, ImportJobId, ImportJobStatus, Timestamp};
use crate::error::ValidationError;
use crate::import::jobs::{self, NewJob};
use crate::store::cursor;

/// A job as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobView<'a> {
    id: &'a str,
    status: ImportJobStatus,
    source: &'a str,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
    totals: Totals,
    /// The failed items (at most [`MAX_STORED_RESULTS`], in file order).
    failures: &'a [ItemResult],
    /// Failed items beyond those listed.
    failures_omitted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a JobError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload: Option<UploadView<'a>>,
}

impl<'a> JobView<'a> {
    fn of(job: &'a ImportJob, form: Option<&'a UploadForm>) -> Self {
        debug_assert!(job.failures.len() <= MAX_STORED_RESULTS);
        Self {
            id: job.id.as_str(),
            status: job.status,
            source: &job.source,
            bytes: job.bytes,
            filename: job.filename.as_deref(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            totals: job.totals,
            failures: &job.failures,
            failures_omitted: job.failures_omitted,
            error: job.error.as_ref(),
            upload: form.map(|f| UploadView::of(f, job.upload_expires_at, job.bytes)),
        }
    }
}

/// Body of `POST /api/imports`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    #[serde(default)]
    source: Option<String>,
    #[serde(deserialize_with = "whole_number")]
    bytes: u64,
    #[serde(default)]
    filename: Option<String>,
}

/// Parses the path's `{id}`.
fn job_id(raw: Option<&str>) -> Result<ImportJobId, ApiError> {
    let id = input::conversation_id(raw)?;
    ImportJobId::parse(id.as_str()).map_err(ApiError::from)
}

/// `POST /api/imports`: 201 with the job awaiting its upload and the upload form.
pub async fn create(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let body: CreateBody = input::json_body(req, false)?;
    let new = NewJob {
        source: body.source,
        bytes: body.bytes,
        filename: body.filename,
    };
    let (job, form) = jobs::create(state, &caller.user, new, &origin(req)).await?;
    let mut response = json(StatusCode::CREATED, &JobView::of(&job, Some(&form)))?;
    if let Ok(v) = http::HeaderValue::from_str(&format!("/api/imports/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `GET /api/imports/{id}`: the job.
pub async fn get(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    let job = jobs::get(state, &caller.user, &job_id(id)?).await?;
    json(StatusCode::OK, &JobView::of(&job, None))
}

/// `GET /api/imports?limit&cursor`: the caller's jobs, newest first (20 a page by default);
/// `x-next-cursor` when more follow.
pub async fn list(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let limit = input::limit(req)?.unwrap_or(crate::store::DEFAULT_PAGE) as usize;
    let raw = input::cursor(req)?;
    let scope = format!("imports\0{}", caller.user);
    let before: Option<String> = raw.as_deref().map(|c| cursor::decode(&scope, c)).transpose()?;
    let before = before
        .map(|b| ImportJobId::parse(&b))
        .transpose()
        .map_err(|_| ValidationError::field("cursor", "is not a cursor this listing issued"))?;
    let read = jobs::list(state, &caller.user, before.as_ref(), limit + 1).await?;
    let more = read.len() > limit;
    let page: Vec<&ImportJob> = read.iter().take(limit).collect();
    let next = match (more, page.last()) {
        (true, Some(last)) => Some(cursor::encode(&scope, &last.id.as_str())?),
        _ => None,
    };
    let views: Vec<JobView<'_>> = page.into_iter().map(|j| JobView::of(j, None)).collect();
    Ok(with_cursor(json(StatusCode::OK, &views)?, next))
}

/// `DELETE /api/imports/{id}`: 204; 409 while it runs.
pub async fn delete(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    jobs::delete(state, &caller.user, &job_id(id)?).await?;
    Ok(super::no_content())
}

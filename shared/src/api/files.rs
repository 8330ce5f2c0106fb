//! `/api/files`: attached files. `POST` issues an upload form (the browser posts the file
//! straight to the bucket, never through Athena), `POST /{id}/complete` verifies the upload,
//! `GET` lists or shows files (a ready file with a short-lived download URL), `DELETE` removes a
//! file not attached to a conversation. A message attaches a ready file by its URL
//! (`/api/files/{id}`) in an AI SDK `file` part.

use http::{header, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::{input, json, ApiRequest, AppState, Body, Caller};
use crate::blobs::UploadForm;
use crate::domain::{ts, FileId, FileKind, FileStatus, StoredFile, Timestamp};
use crate::files::{self, NewUpload};

/// A file as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileView<'a> {
    id: &'a str,
    filename: &'a str,
    media_type: &'static str,
    kind: FileKind,
    size: u64,
    status: FileStatus,
    conversation_id: Option<&'a str>,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    download_url: Option<String>,
    #[serde(with = "ts")]
    created_at: Timestamp,
}

impl<'a> FileView<'a> {
    fn of(f: &'a StoredFile, download_url: Option<String>) -> Self {
        Self {
            id: f.id.as_str(),
            filename: &f.filename,
            media_type: f.format.media_type(),
            kind: f.format.kind(),
            size: f.size,
            status: f.status,
            conversation_id: f.conversation_id.as_ref().map(|c| c.as_str()),
            url: f.url(),
            download_url,
            created_at: f.created_at,
        }
    }
}

/// The upload form in a `POST /api/files` or `POST /api/imports` answer: where to post, the
/// form's fields, until when, and the most bytes it accepts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UploadView<'a> {
    url: &'a str,
    fields: &'a std::collections::BTreeMap<String, String>,
    #[serde(with = "ts")]
    expires_at: Timestamp,
    max_bytes: u64,
}

impl<'a> UploadView<'a> {
    pub(super) fn of(form: &'a UploadForm, expires_at: Timestamp, max_bytes: u64) -> Self {
        Self {
            url: &form.url,
            fields: &form.fields,
            expires_at,
            max_bytes,
        }
    }
}

/// Body of `POST /api/files`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    filename: String,
    media_type: String,
    #[serde(deserialize_with = "whole_number")]
    size: u64,
}

/// A whole number as JSON Schema's `integer` (what the contract says) has it: `1000` and
/// `1000.0` alike; fractions, negatives and other types are refused.
pub(super) fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return Ok(u);
    }
    match n.as_f64() {
        // `u64::MAX as f64` rounds up to 2^64, so the bound is exclusive.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        Some(f) if f.fract() == 0.0 && (0.0..u64::MAX as f64).contains(&f) => Ok(f as u64),
        _ => Err(serde::de::Error::custom("must be a whole number of bytes")),
    }
}

/// Parses the path's `{id}`.
fn file_id(raw: Option<&str>) -> Result<FileId, ApiError> {
    let id = input::conversation_id(raw)?;
    FileId::parse(id.as_str()).map_err(ApiError::from)
}

/// The scheme and host the caller reached Athena at (a directory store's forms and downloads
/// point back at Athena).
pub(super) fn origin(req: &ApiRequest) -> String {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = header(header::HOST.as_str()).unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let scheme = header("x-forwarded-proto").unwrap_or_else(|| "http".to_owned());
    format!("{scheme}://{host}")
}

/// `POST /api/files`: 201 with the pending file and its upload form.
pub async fn create(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let body: CreateBody = input::json_body(req, false)?;
    if body.size == 0 {
        return Err(crate::error::ValidationError::field("size", "must be at least 1 byte").into());
    }
    let upload = NewUpload {
        filename: body.filename,
        media_type: body.media_type,
        size: body.size,
    };
    let (file, form): (StoredFile, UploadForm) = files::create(state, &caller.user, upload, &origin(req)).await?;
    let mut response = json(
        StatusCode::CREATED,
        &serde_json::json!({
            "file": FileView::of(&file, None),
            "upload": UploadView::of(&form, file.upload_expires_at, file.size),
        }),
    )?;
    if let Ok(v) = http::HeaderValue::from_str(&file.url()) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `POST /api/files/{id}/complete`: verifies the upload; 200 with the ready file.
pub async fn complete(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let file = files::complete(state, &caller.user, &file_id(id)?).await?;
    let url = files::download_url(state, &file, &origin(req)).await?;
    json(StatusCode::OK, &FileView::of(&file, url))
}

/// `GET /api/files`: the caller's files, oldest first; `?conversationId=` those attached to one
/// conversation.
pub async fn list(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let conversation = match req.query_param("conversationId") {
        Some(raw) => Some(input::conversation_id(Some(raw)).map_err(|_| {
            ApiError::from(crate::error::ValidationError::field(
                "conversationId",
                "must be 1 to 64 characters of letters, digits, '_' or '-'",
            ))
        })?),
        None => None,
    };
    if state.blobs.is_none() {
        return Err(files::FileError::Disabled.into());
    }
    let now = state.now();
    let all = state.store.list_files(&caller.user).await?;
    let views: Vec<FileView<'_>> = all
        .iter()
        .filter(|f| !f.abandoned(now))
        .filter(|f| {
            conversation
                .as_ref()
                .is_none_or(|c| f.conversation_id.as_ref() == Some(c))
        })
        .map(|f| FileView::of(f, None))
        .collect();
    json(StatusCode::OK, &views)
}

/// `GET /api/files/{id}`: the file, with a download URL valid for 15 minutes when it is ready.
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let file = files::get(state, &caller.user, &file_id(id)?).await?;
    let url = files::download_url(state, &file, &origin(req)).await?;
    json(StatusCode::OK, &FileView::of(&file, url))
}

/// `DELETE /api/files/{id}`: 204; 409 while it is attached to a conversation.
pub async fn delete(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    files::delete(state, &caller.user, &file_id(id)?).await?;
    Ok(super::no_content())
}

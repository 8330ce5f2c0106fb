//! `POST /api/import?source=auto|athena|chatgpt|claude`: the caller's conversations from an
//! export file sent as the body (`docs/export.md`). The file is read item by item on a blocking
//! thread and each item stored as soon as it is read ([`crate::import::run`]: a channel of a few
//! items between the two, up to four stored at once), so memory holds the body and a few items,
//! not a parsed copy of the whole file. Each item ends `imported`, `skipped` (already there: a
//! re-import) or `failed` (with a code and a message); a bad item does not stop the others.
//! Files larger than a request body go through import jobs ([`super::imports`]).

use std::sync::Arc;

use futures::StreamExt;
use http::{Response, StatusCode};

use super::error::ApiError;
use super::{input, json, ApiRequest, AppState, Body, Caller};
use crate::error::ValidationError;
use crate::import::{self, run, Context, Report, Source};

/// Imports every item of the body for the caller and answers the report (`200`), or `400`
/// when the body is not an export at all (nothing was read).
pub async fn post(state: &Arc<AppState>, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let source = Source::parse(req.query_param("source"))?;
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ValidationError::body("the body must be an export file (JSON)").into());
    }
    input::json_content_type(req)?;
    let body = req.body.clone();
    let ctx = Context {
        owner: &caller.user,
        catalog: &state.config.catalog,
        now: state.now(),
    };
    let mut report = Report::default();
    let (results, reader) = run::import_items(
        state,
        &ctx,
        source,
        Box::new(move |sink| import::read_items(&body, sink)),
    );
    let mut results = std::pin::pin!(results);
    while let Some(result) = results.next().await {
        report.push(result);
    }
    let read = reader.await.map_err(|e| ApiError::Internal(Some(Box::new(e))))?;
    if let Err((count, e)) = read {
        if count == 0 {
            return Err(ValidationError::body(format!("the body is not an export file: {e}")).into());
        }
        // The file broke after `count` items: those are imported; the rest cannot be read.
        report.push(run::broken_at(count, &e));
    }
    json(StatusCode::OK, &report)
}

//! `POST /api/import?source=auto|athena|chatgpt|claude`: the caller's conversations from an
//! export file sent as the body (`docs/export.md`). The file is read item by item on a blocking
//! thread ([`crate::import::read_items`]) and each item stored as soon as it is read (a channel
//! of a few items between the two, up to four stored at once), so memory holds the body and a
//! few items, not a parsed copy of the whole file. Each item ends `imported`, `skipped` (already there: a re-import) or
//! `failed` (with a code and a message); a bad item does not stop the others.

use std::sync::Arc;

use futures::StreamExt;
use http::{Response, StatusCode};

use super::error::ApiError;
use super::{input, json, ApiRequest, AppState, Body, Caller};
use crate::error::{StoreError, ValidationError};
use crate::import::{self, Context, ItemResult, Report, Source, Status};

/// Items read ahead of the store.
const READ_AHEAD: usize = 4;
/// Items being stored at once.
const IN_FLIGHT: usize = 4;

/// One item handed from the reader to the importer.
type Item = (usize, serde_json::Value);

/// Imports every item of the body for the caller and answers the report (`200`), or `400`
/// when the body is not an export at all (nothing was read).
pub async fn post(state: &Arc<AppState>, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let source = Source::parse(req.query_param("source"))?;
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ValidationError::body("the body must be an export file (JSON)").into());
    }
    input::json_content_type(req)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(READ_AHEAD);
    let body = req.body.clone();
    let reader = tokio::task::spawn_blocking(move || {
        import::read_items(&body, &mut |index, item| tx.blocking_send((index, item)).is_ok())
    });
    let ctx = Context {
        owner: &caller.user,
        catalog: &state.config.catalog,
        now: state.now(),
    };
    let mut report = Report::default();
    // A few items stored at once (each its own conversation), results kept in file order.
    let mut results = futures::stream::poll_fn(|cx| rx.poll_recv(cx))
        .map(|(index, item)| import_one(state, &ctx, source, index, item))
        .buffered(IN_FLIGHT);
    while let Some(result) = results.next().await {
        report.push(result);
    }
    let read = reader.await.map_err(|e| ApiError::Internal(Some(Box::new(e))))?;
    if let Err((count, e)) = read {
        if count == 0 {
            return Err(ValidationError::body(format!("the body is not an export file: {e}")).into());
        }
        // The file broke after `count` items: those are imported; the rest cannot be read.
        report.push(ItemResult {
            index: count,
            title: None,
            status: Status::Failed,
            conversation_id: None,
            code: Some("INVALID_JSON".to_owned()),
            message: Some(format!("the file is not valid JSON from here on: {e}")),
        });
    }
    json(StatusCode::OK, &report)
}

/// Prepares and stores one item.
async fn import_one(
    state: &AppState,
    ctx: &Context<'_>,
    source: Source,
    index: usize,
    item: serde_json::Value,
) -> ItemResult {
    let prepared = match import::prepare(source, item, ctx) {
        Ok(p) => p,
        Err(e) => {
            return ItemResult {
                index,
                title: e.title,
                status: Status::Failed,
                conversation_id: None,
                code: Some(e.code.to_owned()),
                message: Some(e.message),
            }
        }
    };
    let (id, title) = (
        prepared.conversation.id.to_string(),
        prepared.conversation.title.clone(),
    );
    let stored = state
        .store
        .import_conversation(&prepared.conversation, &prepared.messages)
        .await;
    let (status, code, message) = match stored {
        Ok(()) => (Status::Imported, None, None),
        Err(StoreError::Conflict(_)) => (
            Status::Skipped,
            Some("ALREADY_IMPORTED".to_owned()),
            Some("you already have this conversation (it was imported before); nothing was written".to_owned()),
        ),
        Err(e) => {
            let api = ApiError::from(e);
            let message = match &api {
                ApiError::PayloadTooLarge(m) => m.clone(),
                _ => "it could not be stored; import the file again to retry it (what is stored is skipped)".to_owned(),
            };
            if !matches!(api, ApiError::PayloadTooLarge(_)) {
                tracing::warn!(error = %api, index, "an imported conversation could not be stored");
            }
            (Status::Failed, Some(api.code().to_owned()), Some(message))
        }
    };
    ItemResult {
        index,
        title: Some(title),
        status,
        conversation_id: (status != Status::Failed).then_some(id),
        code,
        message,
    }
}

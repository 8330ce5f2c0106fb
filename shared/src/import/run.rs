//! Running an import: the file's items read on a blocking thread ([`super::read_items`] or
//! [`super::read_items_from`]) and handed through a channel of a few items to the store, a few
//! conversations stored at once, results in file order. The synchronous route
//! (`POST /api/import`) and the import jobs' worker ([`super::jobs`]) both run this.

use futures::{Stream, StreamExt};

use super::{Context, FileError, ItemResult, Source, Status};
use crate::error::StoreError;
use crate::state::AppState;

/// Items read ahead of the store.
const READ_AHEAD: usize = 4;
/// Items being stored at once.
const IN_FLIGHT: usize = 4;

/// What reading the file ended with: how many items, or the error that stopped it with how many
/// items came before.
pub type ReadOutcome = Result<usize, (usize, FileError)>;

/// A reader of the file: gives each item to the sink, answers how the reading ended.
pub type ReadFn = Box<dyn FnOnce(&mut dyn FnMut(usize, serde_json::Value) -> bool) -> ReadOutcome + Send>;

/// Starts reading with `read` on a blocking thread and answers the stream of item results (in
/// file order) and the reading's outcome (await it once the stream has ended).
pub fn import_items<'a>(
    state: &'a AppState,
    ctx: &'a Context<'a>,
    source: Source,
    read: ReadFn,
) -> (
    impl Stream<Item = ItemResult> + 'a,
    tokio::task::JoinHandle<ReadOutcome>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, serde_json::Value)>(READ_AHEAD);
    let reader = tokio::task::spawn_blocking(move || read(&mut |index, item| tx.blocking_send((index, item)).is_ok()));
    let results = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(move |(index, item)| import_one(state, ctx, source, index, item))
        .buffered(IN_FLIGHT);
    (results, reader)
}

/// The result that reports a file whose JSON broke after `count` items.
pub fn broken_at(count: usize, e: &FileError) -> ItemResult {
    ItemResult {
        index: count,
        title: None,
        status: Status::Failed,
        conversation_id: None,
        code: Some("INVALID_JSON".to_owned()),
        message: Some(format!("the file is not valid JSON from here on: {e}")),
    }
}

/// The code and message of an item the store refused.
fn refused(index: usize, e: StoreError) -> (&'static str, String) {
    match e {
        StoreError::TooLarge(m) => ("PAYLOAD_TOO_LARGE", m),
        other => {
            tracing::warn!(error = %other, index, "an imported conversation could not be stored");
            let code = match other {
                StoreError::Unavailable(_) => "UNAVAILABLE",
                StoreError::RateLimited { .. } => "RATE_LIMIT",
                _ => "INTERNAL",
            };
            (
                code,
                "it could not be stored; import the file again to retry it (what is stored is skipped)".to_owned(),
            )
        }
    }
}

/// Prepares and stores one item.
async fn import_one(
    state: &AppState,
    ctx: &Context<'_>,
    source: Source,
    index: usize,
    item: serde_json::Value,
) -> ItemResult {
    let prepared = match super::prepare(source, item, ctx) {
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
            let (code, message) = refused(index, e);
            (Status::Failed, Some(code.to_owned()), Some(message))
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

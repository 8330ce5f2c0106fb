//! `/api/conversations/{id}/messages`: list, add, clear.

use http::{Response, StatusCode};
use serde::Deserialize;

use super::error::ApiError;
use super::views::{active_branch, Cleared, MessageView};
use super::{input, json, with_cursor, ApiRequest, AppState, Body, Caller};
use crate::domain::{ClientMessageId, ConversationId, Message, Role};
use crate::error::ValidationError;
use crate::store::{cursor, Appended, Messages, Page, Touch};

/// `GET /api/conversations/{id}/messages?limit&cursor`: the active branch, oldest first (each
/// message with its parent and versions); all of it without `limit`. One read of the
/// conversation; the cursor holds the last id returned (ids grow along a branch).
pub async fn list(
    store: &dyn crate::store::Store,
    caller: &Caller,
    reader: &crate::domain::UserId,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let limit = input::limit(req)?;
    let cursor = input::cursor(req)?;
    let scope = cursor::messages_scope(caller.user.as_str(), id.as_str());
    let after = cursor::message_position(&scope, cursor.as_deref())?;
    // The reader's own reactions (the owner's or a grantee's; `caller` is the conversation's
    // owner): one Query beside the conversation's, merged in memory.
    let ((conversation, all), reactions) = tokio::try_join!(
        store.get_conversation_with_messages(&caller.user, &id),
        store.reactions(&caller.user, &id, reader)
    )?;
    let mut branch = active_branch(&conversation, &all);
    super::views::show_reactions(&mut branch, &reactions);
    let grantee = reader != &caller.user;
    let rest: Vec<MessageView<'_>> = branch
        .into_iter()
        .filter(|m| after.as_deref().is_none_or(|a| m.id() > a))
        .map(|m| if grantee { m.for_grantee() } else { m })
        .collect();
    let page = match limit {
        None => Page {
            items: rest,
            next_cursor: None,
        },
        Some(limit) => {
            let limit = limit as usize;
            let mut rest = rest;
            rest.truncate(limit + 1);
            cursor::page(rest, limit, &scope, |m| m.id().to_owned())?
        }
    };
    Ok(with_cursor(json(StatusCode::OK, &page.items)?, page.next_cursor))
}

/// Body of `POST /api/conversations/{id}/messages`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    role: Role,
    content: String,
    client_id: Option<String>,
}

/// `POST /api/conversations/{id}/messages`: 201 with the message; with a `clientId` already
/// stored, 200 with the stored message and nothing written.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    author: Option<&crate::domain::UserId>,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let body: CreateBody = input::json_body(req, false)?;
    let limits = &state.config.limits;
    let max = match body.role {
        Role::User | Role::System => limits.max_message_chars,
        Role::Assistant | Role::Tool => limits.max_reply_chars,
    };
    input::message_content("content", &body.content, max)?;
    let client_id = body
        .client_id
        .as_deref()
        .map(ClientMessageId::parse)
        .transpose()
        .map_err(|_| ValidationError::field("clientId", "must be 1 to 64 characters of letters, digits, '_' or '-'"))?;
    let mut message = Message::text(state.ids.message_id(), id.clone(), body.role, body.content, state.now());
    message.client_id = client_id.clone();
    message.author = author.cloned();
    match state
        .store
        .append_message(&caller.user, &message, &Touch::default())
        .await?
    {
        Appended::Stored => json(StatusCode::CREATED, &MessageView::from(&message)),
        Appended::Duplicate(_) => {
            let Some(client_id) = client_id else {
                return Err(ApiError::Conflict(format!("message {} already exists", message.id)));
            };
            let stored = state
                .store
                .find_by_client_id(&caller.user, &id, &client_id)
                .await?
                .ok_or_else(|| ApiError::Conflict("the message was deleted while it was being resent".to_owned()))?;
            json(StatusCode::OK, &MessageView::from(&stored))
        }
    }
}

/// `DELETE /api/conversations/{id}/messages`: `{"success": true, "deletedCount": n}`.
pub async fn clear(store: &dyn Messages, caller: &Caller, id: ConversationId) -> Result<Response<Body>, ApiError> {
    let deleted = store.clear_messages(&caller.user, &id).await?;
    json(
        StatusCode::OK,
        &Cleared {
            success: true,
            deleted_count: deleted,
        },
    )
}

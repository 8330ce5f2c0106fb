//! Reactions and bookmarks on messages (`/api/conversations/{id}/messages/{messageId}/reaction`,
//! `.../bookmark`, `GET /api/bookmarks`). Both are the caller's own marks: a reaction is stored with
//! the conversation (under its owner's key) and names the reacting caller; a bookmark is stored
//! under the caller and records the conversation's owner. Handlers take the conversation's
//! `owner` apart from the `caller` (the actor): today they are the same user; the sharing
//! resolver passes the owner of a conversation shared with the caller.
//!
//! Reactions feed analytics (never failing the request): a `feedback` event and the daily
//! counters' thumbs of the message's solution and model ([`crate::analytics::reaction_stats`]).
//! Neither reactions nor bookmarks are audited: they change no access and no shared data, only
//! the caller's own marks (see `docs/security.md`).

use std::collections::HashSet;

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::{input, json, no_content, with_cursor, ApiRequest, AppState, Body, Caller};
use crate::analytics::{reaction_stats, record_event, solution_key, EventInput};
use crate::domain::{ts, ConversationId, Message, MessageId, Role, Solution, Timestamp, UserId};
use crate::error::ValidationError;
use crate::store::feedback::{EXCERPT_CHARS, MAX_COMMENT_CHARS, MAX_NOTE_CHARS};
use crate::store::{cursor, Bookmark, Reaction, Thumb};

/// Body of `PUT .../reaction`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReactionBody {
    value: Thumb,
    comment: Option<String>,
}

/// Body of `PUT .../bookmark` (may be empty).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BookmarkBody {
    note: Option<String>,
}

/// A reaction as `PUT .../reaction` answers it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReactionResponse<'a> {
    conversation_id: &'a str,
    message_id: &'a str,
    value: Thumb,
    comment: Option<&'a str>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
}

/// A bookmark as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BookmarkView<'a> {
    conversation_id: &'a str,
    message_id: &'a str,
    title: &'a str,
    excerpt: &'a str,
    note: Option<&'a str>,
    #[serde(with = "ts")]
    created_at: Timestamp,
}

impl<'a> From<&'a Bookmark> for BookmarkView<'a> {
    fn from(b: &'a Bookmark) -> Self {
        Self {
            conversation_id: b.conversation_id.as_str(),
            message_id: b.message_id.as_str(),
            title: &b.title,
            excerpt: &b.excerpt,
            note: b.note.as_deref(),
            created_at: b.created_at,
        }
    }
}

/// An optional free text: absent or blank is none; otherwise at most `max` characters, no control
/// characters but tab and newlines.
fn optional_text(field: &str, raw: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match raw {
        Some(text) if !text.trim().is_empty() => {
            input::message_content(field, &text, max)?;
            Ok(Some(text))
        }
        _ => Ok(None),
    }
}

/// The message `message` of `owner`'s conversation `id`, with the conversation's solution: one
/// read of the conversation. Not found (either) is a `404` that names neither.
async fn find_message(
    state: &AppState,
    owner: &UserId,
    id: &ConversationId,
    message: &MessageId,
) -> Result<(crate::domain::Conversation, Message), ApiError> {
    let (conversation, messages) = state.store.get_conversation_with_messages(owner, id).await?;
    let found = messages
        .into_iter()
        .find(|m| m.id == *message)
        .ok_or_else(|| ApiError::NotFound("message not found".to_owned()))?;
    Ok((conversation, found))
}

/// Feeds analytics with a reaction change (never fails): the counters of the message's
/// solution and model, and a `feedback` event.
async fn record_reaction(state: &AppState, caller: &Caller, previous: Option<&Reaction>, now: Option<&Reaction>) {
    let Some(any) = now.or(previous) else {
        return;
    };
    let at = state.now();
    let day = at.format("%Y-%m-%d").to_string();
    if let Some(update) = reaction_stats(
        &day,
        &any.solution,
        &any.model,
        previous.map(|r| r.value),
        now.map(|r| r.value),
    ) {
        if let Err(e) = state
            .store
            .add_stats(&update.day, &update.solution, &update.model, &update.delta)
            .await
        {
            tracing::warn!(error = %e, "updating the reaction counters failed");
        }
    }
    let action = match (previous, now) {
        (None, Some(_)) => "set",
        (Some(_), Some(_)) => "changed",
        _ => "removed",
    };
    record_event(
        state.store.as_ref(),
        &state.ids,
        EventInput {
            event_type: "feedback",
            user: caller.user.clone(),
            solution: any.solution.parse::<Solution>().ok(),
            conversation_id: any.conversation_id.to_string(),
            model: any.model.clone(),
            metadata: json!({
                "action": action,
                "messageId": any.message_id.as_str(),
                "value": now.map(|r| r.value.as_str()),
                "previous": previous.map(|r| r.value.as_str()),
                "hasComment": now.is_some_and(|r| r.comment.is_some()),
            }),
        },
    )
    .await;
}

/// `PUT /api/conversations/{id}/messages/{messageId}/reaction`: sets the caller's reaction to an
/// assistant message (replacing theirs); 200 with it.
pub async fn put_reaction(
    state: &AppState,
    caller: &Caller,
    owner: &UserId,
    id: ConversationId,
    message: MessageId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let body: ReactionBody = input::json_body(req, false)?;
    let comment = optional_text("comment", body.comment, MAX_COMMENT_CHARS)?;
    let (conversation, found) = find_message(state, owner, &id, &message).await?;
    if found.role != Role::Assistant {
        return Err(ApiError::NotReactable(
            "reactions are for assistant replies; this message is not one (bookmark it instead)".to_owned(),
        ));
    }
    let now = state.now();
    let mut reaction = Reaction {
        conversation_id: id,
        message_id: message,
        user: caller.user.clone(),
        value: body.value,
        comment,
        solution: solution_key(conversation.solution_type).to_owned(),
        model: found.model.clone().unwrap_or_else(|| conversation.model.clone()),
        created_at: now,
        updated_at: now,
    };
    let previous = state.store.put_reaction(owner, &reaction).await?;
    if let Some(p) = &previous {
        reaction.created_at = p.created_at;
    }
    record_reaction(state, caller, previous.as_ref(), Some(&reaction)).await;
    json(
        StatusCode::OK,
        &ReactionResponse {
            conversation_id: reaction.conversation_id.as_str(),
            message_id: reaction.message_id.as_str(),
            value: reaction.value,
            comment: reaction.comment.as_deref(),
            created_at: reaction.created_at,
            updated_at: reaction.updated_at,
        },
    )
}

/// `DELETE .../reaction`: removes the caller's reaction (204, also when there was none). The
/// conversation must be readable (404 otherwise), the message need not exist any more.
pub async fn delete_reaction(
    state: &AppState,
    caller: &Caller,
    owner: &UserId,
    id: ConversationId,
    message: MessageId,
) -> Result<Response<Body>, ApiError> {
    state.store.get_conversation(owner, &id).await?;
    let previous = state.store.delete_reaction(owner, &id, &message, &caller.user).await?;
    record_reaction(state, caller, previous.as_ref(), None).await;
    Ok(no_content())
}

/// `PUT .../bookmark`: bookmarks a message for the caller (any role), or replaces the note of
/// their bookmark on it; 200 with the bookmark.
pub async fn put_bookmark(
    state: &AppState,
    caller: &Caller,
    owner: &UserId,
    id: ConversationId,
    message: MessageId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let body: BookmarkBody = input::json_body(req, true)?;
    let note = optional_text("note", body.note, MAX_NOTE_CHARS)?;
    let (conversation, found) = find_message(state, owner, &id, &message).await?;
    let bookmark = Bookmark {
        id: state.ids.next_ulid(),
        user: caller.user.clone(),
        owner: owner.clone(),
        conversation_id: id,
        message_id: message,
        note,
        title: conversation.title,
        excerpt: found.content.chars().take(EXCERPT_CHARS).collect(),
        created_at: state.now(),
    };
    let stored = state.store.put_bookmark(&bookmark).await?;
    json(StatusCode::OK, &BookmarkView::from(&stored))
}

/// `DELETE .../bookmark`: removes the caller's bookmark (204, also when there was none). The
/// conversation must be readable (404 otherwise).
pub async fn delete_bookmark(
    state: &AppState,
    caller: &Caller,
    owner: &UserId,
    id: ConversationId,
    message: MessageId,
) -> Result<Response<Body>, ApiError> {
    state.store.get_conversation(owner, &id).await?;
    state.store.delete_bookmark(&caller.user, owner, &id, &message).await?;
    Ok(no_content())
}

/// Where the bookmark list drops what the caller can no longer read. A bookmark stays when its
/// conversation is the caller's own, or when its owner still has it (not deleted, not in the
/// trash) AND still shares it with the caller (`shared`: the conversations of the page whose
/// grant to the caller was found, [`shared_keys`]). `titles` holds the conversations of the page
/// that exist, read in ONE batch read for the whole page (`Feedback::conversation_titles`: one
/// `BatchGetItem` of at most 100 keys on DynamoDB, 0.5 read unit per key, consistent). The
/// current title replaces the stored one where known.
pub fn still_readable(
    caller: &UserId,
    bookmarks: Vec<Bookmark>,
    titles: &std::collections::HashMap<(UserId, ConversationId), String>,
    shared: &HashSet<(UserId, ConversationId)>,
) -> Vec<Bookmark> {
    bookmarks
        .into_iter()
        .filter_map(|mut b| {
            let key = (b.owner.clone(), b.conversation_id.clone());
            let own = b.owner == *caller;
            match titles.get(&key) {
                Some(title) if own || shared.contains(&key) => {
                    b.title.clone_from(title);
                    Some(b)
                }
                None if own => Some(b),
                _ => None,
            }
        })
        .collect()
}

/// Of `keys` (owner, conversation) not the caller's own, those still shared with the caller by
/// that owner: the policy's grant lookup for each (in parallel; one `BatchGetItem` each).
async fn shared_keys(
    state: &AppState,
    caller: &Caller,
    keys: &[(UserId, ConversationId)],
) -> Result<HashSet<(UserId, ConversationId)>, ApiError> {
    let grantees = caller.grantees();
    let others: Vec<&(UserId, ConversationId)> = keys.iter().filter(|(owner, _)| *owner != caller.user).collect();
    let found = futures::future::join_all(others.iter().map(|(_, id)| grant_of(state, &grantees, id))).await;
    let mut shared = HashSet::new();
    for ((owner, id), grant) in others.into_iter().zip(found) {
        if grant?.is_some_and(|g| g.owner == *owner) {
            shared.insert((owner.clone(), id.clone()));
        }
    }
    Ok(shared)
}

async fn grant_of(
    state: &AppState,
    grantees: &[crate::store::Grantee],
    id: &ConversationId,
) -> Result<Option<crate::store::Grant>, crate::error::StoreError> {
    state.store.grant_for(grantees, id).await
}

/// `GET /api/bookmarks?limit&cursor`: the caller's bookmarks, newest first (20 a page by
/// default); `x-next-cursor` when more follow. Two round trips a page: the bookmarks, and one
/// batch read of their conversations ([`still_readable`]).
pub async fn list_bookmarks(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let limit = input::limit(req)?.unwrap_or(crate::store::DEFAULT_PAGE) as usize;
    let raw = input::cursor(req)?;
    let scope = format!("bookmarks\0{}", caller.user);
    let after: Option<String> = raw.as_deref().map(|c| cursor::decode(&scope, c)).transpose()?;
    if after.as_deref().is_some_and(|a| MessageId::parse(a).is_err()) {
        return Err(ValidationError::field("cursor", "is not a cursor this listing issued").into());
    }
    let read = state
        .store
        .list_bookmarks(&caller.user, after.as_deref(), limit + 1)
        .await?;
    let more = read.len() > limit;
    let read: Vec<Bookmark> = read.into_iter().take(limit).collect();
    let next = match (more, read.last()) {
        (true, Some(last)) => Some(cursor::encode(&scope, &last.id)?),
        _ => None,
    };
    let mut seen = HashSet::new();
    let keys: Vec<(UserId, ConversationId)> = read
        .iter()
        .map(|b| (b.owner.clone(), b.conversation_id.clone()))
        .filter(|k| seen.insert(k.clone()))
        .collect();
    let (titles, shared) = tokio::join!(
        state.store.conversation_titles(&keys),
        shared_keys(state, caller, &keys)
    );
    let kept = still_readable(&caller.user, read, &titles?, &shared?);
    let views: Vec<BookmarkView<'_>> = kept.iter().map(BookmarkView::from).collect();
    Ok(with_cursor(json(StatusCode::OK, &views)?, next))
}

//! Share links (issue 20): `/api/conversations/{id}/links[/{linkId}]` for the conversation's
//! owner, `GET /api/share/{token}` for anyone holding a link (no account), and
//! `POST /api/share/{token}/continue` to copy a link's snapshot into one's own account.
//!
//! A link shows a snapshot taken when it was created (or last refreshed): the conversation's
//! title, solution and the messages of its active branch, each with its id, role, text, UI parts
//! (files without their download URL) and time. Never the owner, the model, usage, cost or
//! another branch. The token is shown once, when the link is created: stores keep only its
//! SHA-256, so neither a listing nor a leaked table gives it back.

use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::views::{ui_parts, ConversationWithMessages, Success};
use super::{input, json, ApiRequest, AppState, Body, Caller};
use crate::domain::link::{self, MAX_EXPIRY_DAYS, MAX_LINKS_PER_CONVERSATION, TOKEN_CHARS};
use crate::domain::{
    ts, Conversation, ConversationId, ImportSource, LinkId, Message, ShareLink, SharedMessage, Snapshot, Timestamp,
    Tree, UserId,
};
use crate::error::{StoreError, ValidationError};
use crate::store::LinkUpdate;

/// Reads of one link per minute (`GET /api/share/{token}`), counted per link after it is found
/// (a wrong token costs its one lookup and nothing else).
pub const READS_PER_LINK_PER_MINUTE: u64 = 120;

/// A link as its owner sees it. `token` and `url` only in the answer that created it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkView<'a> {
    id: &'a str,
    conversation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
    #[serde(with = "ts::option")]
    expires_at: Option<Timestamp>,
    #[serde(with = "ts")]
    snapshot_at: Timestamp,
    is_expired: bool,
    views: u64,
    message_count: u64,
}

impl<'a> LinkView<'a> {
    fn of(link: &'a ShareLink, now: Timestamp) -> Self {
        Self {
            id: link.id.as_str(),
            conversation_id: link.conversation_id.as_str(),
            token: None,
            url: None,
            created_at: link.created_at,
            updated_at: link.updated_at,
            expires_at: link.expires_at,
            snapshot_at: link.snapshot_at,
            is_expired: !link.live(now),
            views: link.views,
            message_count: link.message_count,
        }
    }
}

/// What an anonymous reader gets.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SharedView<'a> {
    #[serde(flatten)]
    snapshot: &'a Snapshot,
    #[serde(with = "ts::option")]
    expires_at: Option<Timestamp>,
    views: u64,
}

/// Body of `POST /api/conversations/{id}/links`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    /// Days until it expires (1..=365); absent or `null`: never.
    #[serde(default)]
    expires_in_days: Option<serde_json::Value>,
}

/// Body of `PATCH /api/conversations/{id}/links/{linkId}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    /// Take a new snapshot (later messages and the branch now shown appear); `null` is refused.
    #[serde(default, deserialize_with = "super::projects::nullable")]
    refresh: Option<Option<bool>>,
    /// Days from now until it expires; `null`: never; absent: unchanged.
    #[serde(default, deserialize_with = "super::projects::nullable")]
    expires_in_days: Option<Option<serde_json::Value>>,
}

/// `expiresInDays` as an expiry from `now`: a whole number of days in 1..=365.
fn expiry(raw: Option<&serde_json::Value>, now: Timestamp) -> Result<Option<Timestamp>, ApiError> {
    let Some(raw) = raw.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    // JSON Schema's integers include `7.0`.
    let whole = raw.as_i64().or_else(|| {
        raw.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= 1e9)
            .map(|f| f as i64)
    });
    let days = whole.filter(|d| (1..=MAX_EXPIRY_DAYS).contains(d)).ok_or_else(|| {
        ValidationError::field(
            "expiresInDays",
            format!("must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}, or null (never expires)"),
        )
    })?;
    Ok(Some(now + chrono::Duration::days(days)))
}

fn link_id(raw: Option<&str>) -> Result<LinkId, ApiError> {
    LinkId::parse(raw.unwrap_or_default()).map_err(|_| ApiError::NotFound("share link not found".to_owned()))
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("share link not found".to_owned()),
        other => other.into(),
    }
}

/// The snapshot of `owner`'s conversation `id` as it is now: its active branch only.
async fn snapshot(state: &AppState, owner: &UserId, id: &ConversationId, now: Timestamp) -> Result<Snapshot, ApiError> {
    let (conversation, all) = state.store.get_conversation_with_messages(owner, id).await?;
    Ok(snapshot_of(&conversation, &all, now))
}

/// A snapshot of `c` with messages `all` (every branch): the active branch's messages.
pub fn snapshot_of(c: &Conversation, all: &[Message], now: Timestamp) -> Snapshot {
    let tree = Tree::new(all);
    let messages = tree
        .active_path(c.active_leaf.as_ref())
        .into_iter()
        .map(|i| {
            let m = &all[i];
            let parts = ui_parts(m)
                .into_iter()
                .map(|mut p| {
                    // The owner's file is not the reader's: its name and type, not its URL.
                    if let Some(o) = p.as_object_mut() {
                        o.remove("url");
                    }
                    p
                })
                .collect();
            SharedMessage {
                id: m.id.to_string(),
                role: m.role,
                content: m.content.clone(),
                parts,
                created_at: m.created_at,
            }
        })
        .collect();
    Snapshot {
        title: c.title.clone(),
        solution_type: c.solution_type,
        snapshot_at: now,
        messages,
    }
}

fn encode(snapshot: &Snapshot) -> Result<String, ApiError> {
    serde_json::to_string(snapshot).map_err(|e| ApiError::Internal(Some(Box::new(e))))
}

/// The reader's URL of a token: the API path (a frontend serving its own share page puts the
/// token in its own URL).
fn url_of(token: &str) -> String {
    format!("/api/share/{token}")
}

/// `POST /api/conversations/{id}/links` with `{"expiresInDays"?: 1..365 | null}`: `201` with the
/// link, its `token` and `url` (shown this once). At most 20 live links per conversation
/// (`409 CONFLICT` beyond).
pub async fn create(
    state: &Arc<AppState>,
    _caller: &Caller,
    owner: &UserId,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let body: CreateBody = input::json_body(req, true)?;
    let now = state.now();
    let expires_at = expiry(body.expires_in_days.as_ref(), now)?;
    let snapshot = snapshot(state, owner, &id, now).await?;
    let token = link::new_token();
    let link = ShareLink {
        id: LinkId::parse(&state.ids.next_ulid())?,
        owner: owner.clone(),
        conversation_id: id.clone(),
        token_hash: link::token_hash(&token),
        created_at: now,
        updated_at: now,
        expires_at,
        views: 0,
        snapshot_at: now,
        message_count: snapshot.messages.len() as u64,
    };
    state
        .store
        .create_link(&link, &encode(&snapshot)?, MAX_LINKS_PER_CONVERSATION, now)
        .await?;
    let mut view = LinkView::of(&link, now);
    view.token = Some(&token);
    view.url = Some(url_of(&token));
    let mut response = json(StatusCode::CREATED, &view)?;
    if let Ok(v) = HeaderValue::from_str(&format!("/api/conversations/{id}/links/{}", link.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `GET /api/conversations/{id}/links`: its links, live and expired, oldest first (revoked ones
/// are gone). No tokens.
pub async fn list(
    state: &AppState,
    _caller: &Caller,
    owner: &UserId,
    id: ConversationId,
) -> Result<Response<Body>, ApiError> {
    // The conversation first: another owner's (or a trashed) one is a 404, not an empty list.
    state.store.get_conversation(owner, &id).await?;
    let links = state.store.list_links(owner, &id).await?;
    let now = state.now();
    let views: Vec<LinkView<'_>> = links.iter().map(|l| LinkView::of(l, now)).collect();
    json(StatusCode::OK, &views)
}

/// `PATCH /api/conversations/{id}/links/{linkId}` with `{"refresh"?: true, "expiresInDays"?}`:
/// a new snapshot (same token) and/or a new expiry.
pub async fn update(
    state: &AppState,
    _caller: &Caller,
    owner: &UserId,
    id: ConversationId,
    link: Option<&str>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let link = link_id(link)?;
    let body: PatchBody = input::json_body(req, false)?;
    let now = state.now();
    let refresh = match body.refresh {
        Some(None) => return Err(ValidationError::field("refresh", "must be true or false").into()),
        Some(Some(r)) => Some(r),
        None => None,
    };
    if refresh.is_none() && body.expires_in_days.is_none() {
        return Err(ValidationError::body("nothing to update: send \"refresh\": true, expiresInDays, or both").into());
    }
    let mut update = LinkUpdate::default();
    if let Some(days) = &body.expires_in_days {
        update.expires_at = Some(expiry(days.as_ref(), now)?);
    }
    if refresh == Some(true) {
        let snapshot = snapshot(state, owner, &id, now).await?;
        update.snapshot = Some((encode(&snapshot)?, now, snapshot.messages.len() as u64));
    }
    if update == LinkUpdate::default() {
        // `{"refresh": false}`: nothing changes; the link as it is.
        let links = state.store.list_links(owner, &id).await?;
        let found = links
            .iter()
            .find(|l| l.id == link)
            .ok_or_else(|| ApiError::NotFound("share link not found".to_owned()))?;
        return json(StatusCode::OK, &LinkView::of(found, now));
    }
    let stored = state
        .store
        .update_link(owner, &id, &link, &update, now)
        .await
        .map_err(not_found)?;
    json(StatusCode::OK, &LinkView::of(&stored, now))
}

/// `DELETE /api/conversations/{id}/links/{linkId}`: revokes it at once.
pub async fn delete(
    state: &AppState,
    _caller: &Caller,
    owner: &UserId,
    id: ConversationId,
    link: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let link = link_id(link)?;
    state
        .store
        .delete_link(owner, &id, &link, state.now())
        .await
        .map_err(not_found)?;
    json(StatusCode::OK, &Success { success: true })
}

/// The snapshot a token opens (counting a view), or the one `404` for any token that opens
/// nothing: malformed, wrong, revoked, expired, or its conversation deleted or in the trash.
async fn open(state: &AppState, token: Option<&str>) -> Result<(ShareLink, Snapshot), ApiError> {
    let token = token.unwrap_or_default();
    // Hashing any string gives a key that finds nothing: a malformed token takes the same path
    // (one hash, one lookup) as a wrong one. Only absurd lengths are cut short.
    let hash = link::token_hash(if token.len() <= 4 * TOKEN_CHARS { token } else { "" });
    let shared = state.store.read_link(&hash, state.now()).await.map_err(not_found)?;
    let snapshot: Snapshot =
        serde_json::from_str(&shared.snapshot).map_err(|e| ApiError::Internal(Some(Box::new(e))))?;
    Ok((shared.link, snapshot))
}

/// `GET /api/share/{token}`: the snapshot, without authentication. Each read counts a view; at
/// most [`READS_PER_LINK_PER_MINUTE`] reads of one link a minute (`429` beyond).
pub async fn read(state: &AppState, token: Option<&str>) -> Result<Response<Body>, ApiError> {
    let (link, snapshot) = open(state, token).await?;
    let now = state.now();
    let window = crate::store::rules::rate_window(now);
    let count = state
        .store
        .increment_counter(
            &format!("share#{}", link.token_hash),
            window.start,
            crate::store::rules::RATE_COUNTER_TTL_SECS,
        )
        .await?;
    if count > READS_PER_LINK_PER_MINUTE {
        return Err(ApiError::RateLimited {
            message: format!("this link is read at most {READS_PER_LINK_PER_MINUTE} times a minute; retry later"),
            retry_after: crate::store::rules::retry_after(now, window.end),
        });
    }
    let view = SharedView {
        snapshot: &snapshot,
        expires_at: link.expires_at,
        views: link.views,
    };
    json(StatusCode::OK, &view)
}

/// `POST /api/share/{token}/continue`: the snapshot copied into the caller's account as a new
/// conversation (`importedFrom: "share"`), `201` with it and its `Location`. The copy keeps each
/// message's text and time (tool calls and files stay in the link), in order, as one branch.
pub async fn continue_in_own(
    state: &Arc<AppState>,
    caller: &Caller,
    token: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let (_, snapshot) = open(state, token).await?;
    let now = state.now();
    let id = ConversationId::parse(&state.ids.next_ulid())?;
    let model = state.config.catalog.default_model();
    let mut conversation = Conversation::new(
        id.clone(),
        caller.user.clone(),
        snapshot.title.as_str(),
        model.id,
        snapshot.solution_type,
        now,
    );
    conversation.imported_from = Some(ImportSource::Share);
    let mut messages: Vec<Message> = Vec::with_capacity(snapshot.messages.len());
    for m in &snapshot.messages {
        let mut message = Message::text(
            state.ids.message_id(),
            id.clone(),
            m.role,
            m.content.clone(),
            m.created_at,
        );
        message.parent_id = messages.last().map(|p: &Message| p.id.clone());
        messages.push(message);
    }
    state.store.import_conversation(&conversation, &messages).await?;
    let stored = crate::store::rules::as_created(&conversation, &messages);
    let mut response = json(StatusCode::CREATED, &ConversationWithMessages::new(&stored, &messages))?;
    if let Ok(v) = HeaderValue::from_str(&format!("/api/conversations/{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

//! Sharing a conversation with named users: the owner's routes
//! (`GET|PUT|DELETE /api/conversations/{id}/shares`), the grantee's list
//! (`GET /api/shared`), and [`run`]: the conversation-scoped routes run on a conversation's
//! owner's key once [`super::policy::on_conversation`] decided the caller may.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::domain::{ts, ConversationId, Timestamp, UserId};
use crate::error::{StoreError, ValidationError};
use crate::state::AppState;
use crate::store::sharing::normalize_email;
use crate::store::{Grant, GrantRole, Grantee, MAX_GRANTS_PER_CONVERSATION};

use super::error::ApiError;
use super::routes::Op;
use super::views::ConversationView;
use super::{
    chat, conversations, feedback, idempotency, input, json, links, messages, no_content, with_cursor, ApiRequest,
    Body, Caller,
};

/// How many conversations shared with the caller are read at once for one page of `GET /api/shared`.
const READ_CONCURRENCY: usize = 8;
/// Default page of `GET /api/shared`.
const DEFAULT_PAGE: u32 = 20;

/// Runs a conversation-scoped route on `owner`'s conversation `id` for `caller` (the owner
/// itself, or a grantee the policy allowed). The store is read and written under the owner's
/// key; what is the caller's own stays theirs: their `Idempotency-Key`s, and the authorship of
/// the messages they add.
pub(super) async fn run(
    state: &Arc<AppState>,
    caller: &Caller,
    owner: &UserId,
    req: &ApiRequest,
    (op, id, sub): (Op, ConversationId, Option<&str>),
) -> Result<Response<Body>, ApiError> {
    let on_owner = Caller {
        user: owner.clone(),
        ..caller.clone()
    };
    let grantee = owner != &caller.user;
    let author = grantee.then_some(&caller.user);
    match op {
        Op::GetConversation => conversations::get(state, &on_owner, &caller.user, id).await,
        Op::ExportConversation => conversations::export(state, &on_owner, grantee, id, req).await,
        Op::UpdateConversation => conversations::update(state, &on_owner, id, req).await,
        Op::DeleteConversation => conversations::delete(state, &on_owner, id, req).await,
        Op::SetActiveBranch => conversations::set_active_branch(state, &on_owner, grantee, id, req).await,
        Op::ListMessages => messages::list(state.store.as_ref(), &on_owner, &caller.user, id, req).await,
        Op::CreateMessage => {
            let work = messages::create(state, &on_owner, author, id, req);
            idempotency::once(state, caller, req, work).await
        }
        Op::ClearMessages => {
            // The messages go, and with them the files they attached.
            let response = messages::clear(state.store.as_ref(), &on_owner, id.clone()).await?;
            crate::files::delete_for_conversation(state, owner, Some(&id)).await;
            Ok(response)
        }
        Op::ResumeChat(solution) => chat::resume(state, &on_owner, solution, id, req).await,
        Op::StopChat(solution) => chat::stop(state, &on_owner, solution, id).await,
        Op::ListShares => list(state, owner, id).await,
        Op::ShareConversation => put(state, caller, owner, id, req).await,
        Op::Unshare => delete(state, owner, id, req).await,
        Op::LeaveShared => leave(state, caller, owner, id).await,
        Op::PutReaction => feedback::put_reaction(state, caller, owner, id, input::message_id(sub)?, req).await,
        Op::DeleteReaction => feedback::delete_reaction(state, caller, owner, id, input::message_id(sub)?).await,
        Op::PutBookmark => feedback::put_bookmark(state, caller, owner, id, input::message_id(sub)?, req).await,
        Op::ListLinks => links::list(state, caller, owner, id).await,
        Op::CreateLink => idempotency::once(state, caller, req, links::create(state, caller, owner, id, req)).await,
        Op::UpdateLink => links::update(state, caller, owner, id, sub, req).await,
        Op::DeleteLink => links::delete(state, caller, owner, id, sub).await,
        Op::DeleteBookmark => feedback::delete_bookmark(state, caller, owner, id, input::message_id(sub)?).await,
        _ => Err(ApiError::NotFound("no such route".to_owned())),
    }
}

/// A grant as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShareView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    role: GrantRole,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
}

impl<'a> From<&'a Grant> for ShareView<'a> {
    fn from(g: &'a Grant) -> Self {
        let (user_id, email) = match &g.grantee {
            Grantee::User(u) => (Some(u.as_str()), None),
            Grantee::Email(e) => (None, Some(e.as_str())),
        };
        Self {
            user_id,
            email,
            role: g.role,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

/// `GET /api/conversations/{id}/shares` (the owner): who the conversation is shared with.
async fn list(state: &AppState, owner: &UserId, id: ConversationId) -> Result<Response<Body>, ApiError> {
    let (conversation, grants) = tokio::join!(
        state.store.get_conversation(owner, &id),
        state.store.grants_of(owner, &id)
    );
    conversation?;
    let grants = grants?;
    let views: Vec<ShareView<'_>> = grants.iter().map(ShareView::from).collect();
    json(StatusCode::OK, &views)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ShareBody {
    user_id: Option<String>,
    email: Option<String>,
    role: String,
}

/// Who a request names: exactly one of `userId` and `email`, from the body or the query string.
fn grantee(user_id: Option<&str>, email: Option<&str>) -> Result<Grantee, ApiError> {
    match (user_id, email) {
        (Some(u), None) => UserId::parse(u).map(Grantee::User).map_err(|_| {
            ValidationError::field("userId", "must be 1 to 64 characters of letters, digits, '_' or '-'").into()
        }),
        (None, Some(e)) => normalize_email(e)
            .map(Grantee::Email)
            .ok_or_else(|| ValidationError::field("email", "must be an e-mail address").into()),
        (Some(_), Some(_)) => Err(ValidationError::field("userId", "give either userId or email, not both").into()),
        (None, None) => Err(ValidationError::field("userId", "give the userId or the email to share with").into()),
    }
}

/// `PUT /api/conversations/{id}/shares` `{userId | email, role}` (the owner): shares the
/// conversation, or changes the role it is shared with. `200` with the share.
async fn put(
    state: &AppState,
    caller: &Caller,
    owner: &UserId,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let body: ShareBody = input::json_body(req, false)?;
    let grantee = grantee(body.user_id.as_deref(), body.email.as_deref())?;
    let role = GrantRole::parse(&body.role)
        .ok_or_else(|| ValidationError::field("role", "must be \"viewer\" or \"collaborator\""))?;
    let own = match &grantee {
        Grantee::User(u) => u == owner,
        Grantee::Email(e) => caller.email.as_deref() == Some(e.as_str()),
    };
    if own {
        // (The caller is the owner here, or the first, as-owner attempt of someone who is not:
        // either way the request names the caller.)
        return Err(ValidationError::field("userId", "you cannot share a conversation with yourself").into());
    }
    let now = state.now();
    let grant = Grant {
        conversation_id: id.clone(),
        owner: owner.clone(),
        grantee,
        role,
        created_at: now,
        updated_at: now,
    };
    state.store.put_grant(&grant, MAX_GRANTS_PER_CONVERSATION).await?;
    let stored = state
        .store
        .grants_of(owner, &id)
        .await?
        .into_iter()
        .find(|g| g.grantee == grant.grantee)
        .unwrap_or(grant);
    json(StatusCode::OK, &ShareView::from(&stored))
}

/// `DELETE /api/conversations/{id}/shares?userId=…|email=…` (the owner): revokes a share at
/// once (the grantee's next request is refused). `404` when there is no such share.
async fn delete(
    state: &AppState,
    owner: &UserId,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let grantee = grantee(req.query_param("userId"), req.query_param("email"))?;
    state.store.get_conversation(owner, &id).await?;
    match state.store.delete_grant(owner, &id, &grantee).await {
        Ok(()) => Ok(no_content()),
        Err(StoreError::NotFound) => Err(ApiError::NotFound(
            "the conversation is not shared with this user or address".to_owned(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /api/shared/{id}` (a grantee): removes a conversation shared with the caller from
/// what is shared with them (every grant of theirs on it: by user id and by address). `204`;
/// `404` for the owner (nothing is shared with them) and for anyone without a grant.
async fn leave(
    state: &AppState,
    caller: &Caller,
    owner: &UserId,
    id: ConversationId,
) -> Result<Response<Body>, ApiError> {
    let not_shared = || ApiError::NotFound("conversation not found".to_owned());
    if owner == &caller.user {
        return Err(not_shared());
    }
    let mut left = false;
    for grantee in caller.grantees() {
        match state.store.delete_grant(owner, &id, &grantee).await {
            Ok(()) => left = true,
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if left {
        Ok(no_content())
    } else {
        Err(not_shared())
    }
}

/// One conversation shared with the caller.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SharedView<'a> {
    role: GrantRole,
    /// The owner's user id.
    shared_by: &'a str,
    #[serde(with = "ts")]
    shared_at: Timestamp,
    conversation: ConversationView<'a>,
}

async fn read_shared(state: &AppState, g: &Grant) -> Result<crate::domain::Conversation, StoreError> {
    state.store.get_conversation(&g.owner, &g.conversation_id).await
}

/// The position of a page of `GET /api/shared`: the last grant's `(createdAt, id)`.
#[derive(Serialize, Deserialize)]
struct Position(String, String);

/// `GET /api/shared?limit&cursor`: the conversations shared with the caller (by user id or
/// verified address), newest share first. Those in their owner's trash are left out.
pub(super) async fn shared_with_me(
    state: &AppState,
    caller: &Caller,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let limit = input::limit(req)?.unwrap_or(DEFAULT_PAGE) as usize;
    let scope = format!("shared:{}", caller.user.as_str());
    let after = req
        .query_param("cursor")
        .map(|c| crate::store::cursor::decode::<Position>(&scope, c))
        .transpose()?;
    let grants = state.store.shared_with(&caller.grantees()).await?;
    let start = match &after {
        None => 0,
        Some(Position(at, id)) => grants
            .iter()
            .position(|g| (ts::format(&g.created_at).as_str(), g.conversation_id.as_str()) < (at.as_str(), id.as_str()))
            .unwrap_or(grants.len()),
    };
    let mut page = Vec::with_capacity(limit);
    let mut next = None;
    let mut rest = grants[start..].iter();
    // Reads in small batches until the page is full (trashed conversations are skipped).
    while page.len() < limit {
        let batch: Vec<&Grant> = rest.by_ref().take(limit - page.len()).collect();
        if batch.is_empty() {
            break;
        }
        for chunk in batch.chunks(READ_CONCURRENCY) {
            let read = futures::future::join_all(chunk.iter().map(|g| read_shared(state, g))).await;
            for (g, found) in chunk.iter().zip(read) {
                match found {
                    Ok(c) => page.push(((*g).clone(), c)),
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    if page.len() == limit && rest.next().is_some() {
        if let Some((g, _)) = page.last() {
            next = Some(crate::store::cursor::encode(
                &scope,
                &Position(ts::format(&g.created_at), g.conversation_id.to_string()),
            )?);
        }
    }
    let views: Vec<SharedView<'_>> = page
        .iter()
        .map(|(g, c)| SharedView {
            role: g.role,
            shared_by: g.owner.as_str(),
            shared_at: g.created_at,
            conversation: ConversationView::from(c).for_grantee(),
        })
        .collect();
    Ok(with_cursor(json(StatusCode::OK, &views)?, next))
}

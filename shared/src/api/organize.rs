//! Organising: `/api/folders` (a user's folders, one level of nesting), `/api/tags` (the tags in
//! use, with counts) and `/api/trash` (list, restore, delete forever, empty). Owner-scoped like
//! conversations: another user's folder or trashed conversation is a 404.

use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::views::ConversationView;
use super::{input, json, with_cursor, ApiRequest, AppState, Body, Caller};
use crate::domain::{ts, ConversationId, Folder, FolderId, Shelf, Timestamp, MAX_FOLDERS_PER_USER};
use crate::error::{StoreError, ValidationError};
use crate::store::Organizer;

/// A folder as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderView<'a> {
    id: &'a str,
    name: &'a str,
    parent_id: Option<&'a str>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
}

impl<'a> From<&'a Folder> for FolderView<'a> {
    fn from(f: &'a Folder) -> Self {
        Self {
            id: f.id.as_str(),
            name: &f.name,
            parent_id: f.parent_id.as_ref().map(FolderId::as_str),
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

/// A store error of a folder route: a missing folder is named as such.
fn folder_err(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("folder not found".to_owned()),
        other => other.into(),
    }
}

/// The caller's folder `id` (404 when it is missing or someone else's): what a conversation
/// moved into a folder is checked against.
pub async fn owned_folder(store: &dyn Organizer, caller: &Caller, id: &FolderId) -> Result<Folder, ApiError> {
    store.get_folder(&caller.user, id).await.map_err(folder_err)
}

/// Parses the path's `{id}` as a folder id.
fn folder_id(raw: Option<&str>) -> Result<FolderId, ApiError> {
    let id = input::conversation_id(raw)?;
    FolderId::parse(id.as_str()).map_err(ApiError::from)
}

/// `GET /api/folders`: every folder of the caller, oldest first.
pub async fn list_folders(state: &AppState, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let folders = state.store.list_folders(&caller.user).await?;
    let views: Vec<FolderView<'_>> = folders.iter().map(FolderView::from).collect();
    json(StatusCode::OK, &views)
}

/// Body of `POST /api/folders`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    name: String,
    parent_id: Option<String>,
}

/// Checks that `parent` can hold `child` (the caller's, top-level, not `child` itself) and,
/// when `child` already exists, that `child` has no subfolders (folders nest one level).
async fn check_parent(
    state: &AppState,
    caller: &Caller,
    parent: &FolderId,
    child: Option<&FolderId>,
) -> Result<(), ApiError> {
    if child == Some(parent) {
        return Err(ValidationError::field("parentId", "a folder cannot be inside itself").into());
    }
    let folders = state.store.list_folders(&caller.user).await?;
    let Some(p) = folders.iter().find(|f| &f.id == parent) else {
        return Err(ApiError::NotFound("parent folder not found".to_owned()));
    };
    if p.parent_id.is_some() {
        return Err(
            ValidationError::field("parentId", "must be a top-level folder: folders nest one level deep").into(),
        );
    }
    if let Some(child) = child {
        if folders.iter().any(|f| f.parent_id.as_ref() == Some(child)) {
            return Err(ValidationError::field(
                "parentId",
                "this folder has subfolders, so it must stay at the top level: folders nest one level deep",
            )
            .into());
        }
    }
    Ok(())
}

/// `POST /api/folders` with `{name, parentId?}`: 201 with the folder. 409 at the per-user cap.
pub async fn create_folder(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let body: CreateBody = input::json_body(req, false)?;
    let name = Folder::parse_name(&body.name)?;
    let parent = body
        .parent_id
        .as_deref()
        .map(FolderId::parse)
        .transpose()
        .map_err(|_| ValidationError::field("parentId", "must be a folder id"))?;
    if let Some(parent) = &parent {
        check_parent(state, caller, parent, None).await?;
    }
    let now = state.now();
    let folder = Folder {
        id: state.ids.folder_id(),
        owner: caller.user.clone(),
        name,
        parent_id: parent,
        created_at: now,
        updated_at: now,
    };
    state.store.create_folder(&folder, MAX_FOLDERS_PER_USER).await?;
    let mut response = json(StatusCode::CREATED, &FolderView::from(&folder))?;
    if let Ok(v) = HeaderValue::from_str(&format!("/api/folders/{}", folder.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `GET /api/folders/{id}`.
pub async fn get_folder(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    let folder = owned_folder(state.store.as_ref(), caller, &folder_id(id)?).await?;
    json(StatusCode::OK, &FolderView::from(&folder))
}

/// Body of `PATCH /api/folders/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "super::projects::nullable")]
    parent_id: Option<Option<String>>,
}

/// `PATCH /api/folders/{id}` with `{name?, parentId?}` (`parentId: null` moves it to the top
/// level): the updated folder. 409 when it changed meanwhile.
pub async fn update_folder(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let id = folder_id(id)?;
    let body: PatchBody = input::json_body(req, false)?;
    if body.name.is_none() && body.parent_id.is_none() {
        return Err(ValidationError::body("nothing to update: send at least one of name, parentId").into());
    }
    let name = body.name.as_deref().map(Folder::parse_name).transpose()?;
    let parent = match &body.parent_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => {
            Some(Some(FolderId::parse(raw).map_err(|_| {
                ValidationError::field("parentId", "must be a folder id")
            })?))
        }
    };
    let current = owned_folder(state.store.as_ref(), caller, &id).await?;
    if let Some(Some(parent)) = &parent {
        check_parent(state, caller, parent, Some(&id)).await?;
    }
    let mut next = current.clone();
    if let Some(name) = name {
        next.name = name;
    }
    if let Some(parent) = parent {
        next.parent_id = parent;
    }
    next.updated_at = state.now().max(current.updated_at + chrono::Duration::milliseconds(1));
    state
        .store
        .replace_folder(&next, current.updated_at)
        .await
        .map_err(folder_err)?;
    json(StatusCode::OK, &FolderView::from(&next))
}

/// What `DELETE /api/folders/{id}` answers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FolderDeletedView {
    success: bool,
    folders: u64,
    conversations: u64,
}

/// `DELETE /api/folders/{id}`: the folder and its subfolders; their conversations move to no
/// folder (nothing else about them changes).
pub async fn delete_folder(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    let id = folder_id(id)?;
    let deleted = state.store.delete_folder(&caller.user, &id).await.map_err(folder_err)?;
    json(
        StatusCode::OK,
        &FolderDeletedView {
            success: true,
            folders: deleted.folders,
            conversations: deleted.conversations,
        },
    )
}

/// A tag in use.
#[derive(Serialize)]
struct TagView<'a> {
    tag: &'a str,
    conversations: u64,
}

/// `GET /api/tags`: the caller's tags (on conversations not in the trash), most used first.
pub async fn list_tags(state: &AppState, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let tags = state.store.list_tags(&caller.user).await?;
    let views: Vec<TagView<'_>> = tags
        .iter()
        .map(|t| TagView {
            tag: &t.tag,
            conversations: t.conversations,
        })
        .collect();
    json(StatusCode::OK, &views)
}

/// `GET /api/trash?limit&cursor&solutionType&projectId&folderId&tag&pinned`: the caller's
/// conversations in the trash, newest trashed first, each with `trashedAt` and `purgeAt`.
pub async fn list_trash(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let query = super::conversations::filters(state, req, Shelf::Trash)?;
    let page = state.store.list_conversations(&caller.user, &query).await?;
    let views: Vec<ConversationView<'_>> = page.items.iter().map(ConversationView::from).collect();
    Ok(with_cursor(json(StatusCode::OK, &views)?, page.next_cursor))
}

/// `POST /api/trash/{id}/restore`: the conversation back where it was (archived or not, in its
/// folder, with its tags). 404 when it is not in the caller's trash (or was purged).
pub async fn restore(state: &AppState, caller: &Caller, id: ConversationId) -> Result<Response<Body>, ApiError> {
    let restored = state
        .store
        .restore_conversation(&caller.user, &id, state.now())
        .await
        .map_err(trash_err)?;
    json(StatusCode::OK, &ConversationView::from(&restored))
}

/// `DELETE /api/trash/{id}`: deletes a trashed conversation for good, with its messages and files.
pub async fn delete(state: &Arc<AppState>, caller: &Caller, id: ConversationId) -> Result<Response<Body>, ApiError> {
    delete_forever(state, caller, &id, true).await?;
    json(StatusCode::OK, &super::views::Success { success: true })
}

/// What `DELETE /api/trash` answers.
#[derive(Serialize)]
struct Emptied {
    success: bool,
    deleted: u64,
}

/// `DELETE /api/trash`: deletes every conversation in the caller's trash for good.
pub async fn empty(state: &Arc<AppState>, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let mut deleted = 0;
    loop {
        let query = crate::store::ListConversations {
            shelf: Shelf::Trash,
            now: Some(state.now()),
            limit: Some(crate::store::MAX_PAGE),
            ..Default::default()
        };
        let page = state.store.list_conversations(&caller.user, &query).await?;
        if page.items.is_empty() {
            break;
        }
        for c in &page.items {
            match delete_forever(state, caller, &c.id, true).await {
                Ok(()) => deleted += 1,
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    json(StatusCode::OK, &Emptied { success: true, deleted })
}

/// A missing trashed conversation is named as such.
fn trash_err(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("no such conversation in the trash".to_owned()),
        other => other.into(),
    }
}

/// Deletes a conversation for good (`from_trash`: only one in the trash), then its files.
pub async fn delete_forever(
    state: &Arc<AppState>,
    caller: &Caller,
    id: &ConversationId,
    from_trash: bool,
) -> Result<(), ApiError> {
    if from_trash {
        // Only a trashed one: a visible conversation is not in the trash.
        match state.store.get_conversation(&caller.user, id).await {
            Ok(_) => return Err(trash_err(StoreError::NotFound)),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    state.store.delete_conversation(&caller.user, id).await.map_err(|e| {
        if from_trash {
            trash_err(e)
        } else {
            e.into()
        }
    })?;
    crate::files::delete_for_conversation(state, &caller.user, Some(id)).await;
    Ok(())
}

/// The hourly upkeep (`athena-local`, the `housekeeping` Lambda function): with
/// `ATHENA_RETENTION_DAYS`, conversations untouched that long (not pinned) go to the trash; then
/// every conversation due for purging leaves the trash for good, with its files. Returns
/// (moved to the trash by retention, purged).
pub async fn housekeeping(state: &AppState) -> Result<(u64, u64), StoreError> {
    let now = state.now();
    let days = i64::try_from(state.config.retention_days).unwrap_or(i64::MAX);
    // Off (0), or so long that nothing can be that old.
    let before = chrono::Duration::try_days(days)
        .filter(|_| days > 0)
        .and_then(|d| now.checked_sub_signed(d));
    let retired = match before {
        Some(before) => state.store.trash_untouched(before, now).await?,
        None => 0,
    };
    let mut purged = 0;
    loop {
        let due = state.store.due_for_purge(now, 100).await?;
        if due.is_empty() {
            break;
        }
        for (owner, id) in due {
            match state.store.delete_conversation(&owner, &id).await {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
            crate::files::delete_for_conversation(state, &owner, Some(&id)).await;
            purged += 1;
        }
    }
    Ok((retired, purged))
}

//! `/api/conversations` and `/api/conversations/{id}`: list, create, get, patch, delete; and
//! `/api/conversations/{id}/export`.

use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};
use serde::Deserialize;

use super::error::ApiError;
use super::views::{ConversationView, ConversationWithMessages, Success};
use super::{input, json, with_cursor, ApiRequest, AppState, Body, Caller};
use crate::domain::{
    parse_tag, parse_tags, Conversation, ConversationId, FolderId, MessageId, ProjectId, Shelf, Solution, Title, Tree,
};
use crate::error::{FieldError, ValidationError};
use crate::store::{ActiveLeaf, ConversationPatch, ListConversations, MAX_PAGE};

/// `GET /api/conversations?limit&cursor&solutionType&projectId&folderId&tag&pinned&archived`:
/// pinned first, then newest; the next page's cursor travels in `x-next-cursor` so the body stays
/// the seed's array. `archived=true` lists the archive instead of the default list; the trash has
/// its own route (`GET /api/trash`).
pub async fn list(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let archived = input::flag(req, "archived")?.unwrap_or(false);
    let query = filters(state, req, if archived { Shelf::Archived } else { Shelf::Active })?;
    let page = state.store.list_conversations(&caller.user, &query).await?;
    let views: Vec<ConversationView<'_>> = page.items.iter().map(ConversationView::from).collect();
    Ok(with_cursor(json(StatusCode::OK, &views)?, page.next_cursor))
}

/// The listing filters of the query string, on `shelf`.
pub(super) fn filters(state: &AppState, req: &ApiRequest, shelf: Shelf) -> Result<ListConversations, ApiError> {
    let solution = input::solution_filter(req)?;
    let project = req
        .query_param("projectId")
        .map(ProjectId::parse)
        .transpose()
        .map_err(ApiError::from)?;
    let folder = req
        .query_param("folderId")
        .map(FolderId::parse)
        .transpose()
        .map_err(ApiError::from)?;
    let tag = req.query_param("tag").map(parse_tag).transpose().map_err(|_| {
        ValidationError::field(
            "tag",
            "must be 1 to 32 characters, not blank, without control characters",
        )
    })?;
    Ok(ListConversations {
        solution,
        project,
        folder,
        tag,
        pinned: input::flag(req, "pinned")?,
        shelf,
        now: Some(state.now()),
        limit: Some(input::limit(req)?.unwrap_or(MAX_PAGE)),
        cursor: input::cursor(req)?,
    })
}

/// Body of `POST /api/conversations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    id: Option<String>,
    title: Option<String>,
    model: Option<String>,
    solution_type: Option<Solution>,
    project_id: Option<String>,
}

/// `POST /api/conversations`: 201 with the conversation; 409 when a client-chosen id is taken.
/// In a project (`projectId`, the caller's: 404 otherwise), its default model and solution apply
/// when the body names none.
pub async fn create(state: &Arc<AppState>, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let body: CreateBody = input::json_body(req, true)?;
    let mut problems = Vec::new();
    let id = match body.id.as_deref() {
        None => Some(state.ids.conversation_id()),
        Some(raw) => collect(&mut problems, ConversationId::parse(raw)),
    };
    let title = match body.title.as_deref() {
        None => Some(Title::default_title()),
        Some(raw) => collect(&mut problems, Title::parse(raw)),
    };
    let project_id = body
        .project_id
        .as_deref()
        .map(|raw| collect(&mut problems, ProjectId::parse(raw)));
    let model = match body.model.as_deref() {
        None => Some(None),
        Some(raw) => collect(&mut problems, state.config.catalog.parse("model", raw)).map(Some),
    };
    let (Some(id), Some(title), Some(model), None | Some(Some(_))) = (id, title, model, &project_id) else {
        return Err(ValidationError::fields(problems).into());
    };
    let project = match project_id.flatten() {
        None => None,
        Some(p) => Some(super::projects::owned(state.store.as_ref(), caller, &p).await?),
    };
    let model = match (model, project.as_ref().and_then(|p| p.default_model.as_deref())) {
        (Some(m), _) => m,
        // A default the catalog no longer has falls back to the catalog's default.
        (None, Some(default)) => state
            .config
            .catalog
            .parse("model", default)
            .unwrap_or_else(|_| state.config.catalog.default_model()),
        (None, None) => state.config.catalog.default_model(),
    };
    let solution = body
        .solution_type
        .or_else(|| project.as_ref().and_then(|p| p.default_solution));
    let now = state.now();
    let mut conversation = Conversation::new(id, caller.user.clone(), title.as_str(), model.id, solution, now);
    conversation.project_id = project.map(|p| p.id);
    state.store.create_conversation(&conversation, &[]).await?;
    record(
        state,
        "conversation_created",
        caller,
        &conversation,
        serde_json::json!({"title": conversation.title}),
    );
    let mut response = json(StatusCode::CREATED, &ConversationView::from(&conversation))?;
    if let Ok(v) = HeaderValue::from_str(&format!("/api/conversations/{}", conversation.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Records an analytics event in the background: it never delays or fails the request.
fn record(state: &Arc<AppState>, event: &'static str, caller: &Caller, c: &Conversation, metadata: serde_json::Value) {
    let state = Arc::clone(state);
    let (user, solution, id, model) = (caller.user.clone(), c.solution_type, c.id.to_string(), c.model.clone());
    let task = async move {
        let input = crate::analytics::EventInput {
            event_type: event,
            user,
            solution,
            conversation_id: id,
            model,
            metadata,
        };
        crate::analytics::record_event(state.store.as_ref(), &state.ids, input).await;
    };
    tokio::spawn(tracing::Instrument::instrument(task, tracing::Span::current()));
}

/// Keeps a parse result, or records its field errors.
fn collect<T>(problems: &mut Vec<FieldError>, result: Result<T, ValidationError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            problems.extend(e.fields);
            None
        }
    }
}

/// `GET /api/conversations/{id}`: the conversation with every message, oldest first.
/// A reply still streaming is shown at the end of the active branch with `status: "streaming"`
/// (from its turn's checkpoints); the reply of a turn that died is stored from them first.
/// `caller` is the conversation's owner (whose key it is read under), `reader` who asked (the
/// owner, or a grantee): only the reader's own reactions are shown, and a grantee gets the
/// grantee's view (`ConversationWithMessages::for_grantee`).
pub async fn get(
    state: &AppState,
    caller: &Caller,
    reader: &crate::domain::UserId,
    id: ConversationId,
) -> Result<Response<Body>, ApiError> {
    // The reader's reactions: one Query beside the conversation's, merged in memory.
    let ((mut conversation, mut messages), reactions) = tokio::try_join!(
        state.store.get_conversation_with_messages(&caller.user, &id),
        state.store.reactions(&caller.user, &id, reader)
    )?;
    let streaming = crate::chat::in_progress(state, &caller.user, &mut conversation, &mut messages).await;
    let mut view = ConversationWithMessages::new(&conversation, &messages);
    view.show_reactions(&reactions);
    if let Some((reply, _)) = &streaming {
        view.push_streaming(reply);
    }
    if reader != &caller.user {
        view = view.for_grantee();
    }
    json(StatusCode::OK, &view)
}

/// `GET /api/conversations/{id}/export?format=json|markdown`: the conversation as a download
/// (`Content-Disposition: attachment`). JSON (the default) is Athena's versioned document with
/// every message of every branch (`docs/export.md`); Markdown is the active branch, readable.
/// The reply of a turn that died is stored first, as `GET` does; a reply still streaming is not
/// exported (it is not stored yet). A read: not audited, like `GET`. A `grantee`'s export
/// leaves out what the grantee's view leaves out (`views::redact_for_grantee`).
pub async fn export(
    state: &AppState,
    caller: &Caller,
    grantee: bool,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let format = super::export::Format::parse(req.query_param("format"))?;
    let (mut conversation, mut messages) = state.store.get_conversation_with_messages(&caller.user, &id).await?;
    // Stores an interrupted turn's reply; a reply still streaming is left out.
    let _ = crate::chat::in_progress(state, &caller.user, &mut conversation, &mut messages).await;
    if grantee {
        super::views::redact_for_grantee(&mut conversation, &mut messages);
    }
    let mut response = match format {
        super::export::Format::Json => json(
            StatusCode::OK,
            &super::export::ConversationExport::new(&conversation, &messages, state.now()),
        )?,
        super::export::Format::Markdown => {
            let mut response = Response::new(super::full(super::export::markdown(&conversation, &messages)));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
            response
        }
    };
    if let Ok(v) = HeaderValue::from_str(&super::export::content_disposition(&conversation, format)) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Body of `PATCH /api/conversations/{id}`: only the documented fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    title: Option<String>,
    is_pinned: Option<bool>,
    is_shared: Option<bool>,
    model: Option<String>,
    #[serde(default, deserialize_with = "super::projects::nullable")]
    project_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::projects::nullable")]
    folder_id: Option<Option<String>>,
    tags: Option<Vec<String>>,
    is_archived: Option<bool>,
}

/// `PATCH /api/conversations/{id}`: title, isPinned, isShared, model, projectId (`null` moves
/// it out of its project), folderId (`null`: out of its folder), tags (replaced), isArchived;
/// nothing else.
pub async fn update(
    state: &Arc<AppState>,
    caller: &Caller,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let body: PatchBody = input::json_body(req, false)?;
    let mut problems = Vec::new();
    let title = match body.title.as_deref() {
        None => None,
        Some(raw) => collect(&mut problems, Title::parse(raw)).map(|t| t.as_str().to_owned()),
    };
    let model = match body.model.as_deref() {
        None => None,
        Some(raw) => collect(&mut problems, state.config.catalog.parse("model", raw)).map(|m| m.id.to_owned()),
    };
    let project = match &body.project_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => collect(&mut problems, ProjectId::parse(raw)).map(Some),
    };
    let folder = match &body.folder_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => collect(&mut problems, FolderId::parse(raw)).map(Some),
    };
    let tags = match &body.tags {
        None => None,
        Some(raw) => collect(&mut problems, parse_tags(raw)),
    };
    if !problems.is_empty() {
        return Err(ValidationError::fields(problems).into());
    }
    if let Some(Some(p)) = &project {
        super::projects::owned(state.store.as_ref(), caller, p).await?;
    }
    if let Some(Some(f)) = &folder {
        super::organize::owned_folder(state.store.as_ref(), caller, f).await?;
    }
    let patch = ConversationPatch {
        title,
        is_pinned: body.is_pinned,
        is_shared: body.is_shared,
        model,
        active_leaf: None,
        project,
        folder,
        tags,
        archived: body.is_archived,
    };
    if patch == ConversationPatch::default() {
        return Err(ValidationError::body(
            "nothing to update: send at least one of title, isPinned, isShared, model, projectId, folderId, tags, isArchived",
        )
        .into());
    }
    let mut updated = state
        .store
        .update_conversation(&caller.user, &id, &patch, state.now())
        .await?;
    if patch.is_shared == Some(false) {
        // Unsharing revokes every share link of it.
        state.store.delete_conversation_links(&caller.user, &id).await?;
        updated.shared_until = None;
    }
    if patch.model.is_some() {
        record(
            state,
            "model_switched",
            caller,
            &updated,
            serde_json::json!({"reason": "user"}),
        );
    }
    json(StatusCode::OK, &ConversationView::from(&updated))
}

/// Body of `PUT /api/conversations/{id}/active-branch`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ActiveBranchBody {
    message_id: String,
}

/// `PUT /api/conversations/{id}/active-branch` with `{"messageId"}`: shows the branch through
/// that message (one of the `siblings` a message lists), down to its newest reply. Answers the
/// conversation with its new active branch, as `GET` does. One read, one write.
pub async fn set_active_branch(
    state: &AppState,
    caller: &Caller,
    grantee: bool,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let body: ActiveBranchBody = input::json_body(req, false)?;
    let message_id = MessageId::parse(&body.message_id).map_err(|_| {
        ValidationError::field("messageId", "must be 1 to 64 characters of letters, digits, '_' or '-'")
    })?;
    let (_, all) = state.store.get_conversation_with_messages(&caller.user, &id).await?;
    let tree = Tree::new(&all);
    let chosen = tree
        .index(&message_id)
        .ok_or_else(|| ValidationError::field("messageId", "is not a message of this conversation"))?;
    let leaf = &all[tree.newest_leaf_under(chosen)];
    let patch = ConversationPatch {
        active_leaf: Some(ActiveLeaf {
            id: leaf.id.clone(),
            preview: Some(crate::domain::preview(&leaf.content)),
        }),
        ..ConversationPatch::default()
    };
    let updated = state
        .store
        .update_conversation(&caller.user, &id, &patch, state.now())
        .await?;
    let view = ConversationWithMessages::new(&updated, &all);
    json(StatusCode::OK, &if grantee { view.for_grantee() } else { view })
}

/// `DELETE /api/conversations/{id}`: moves the conversation to the trash (restorable for 30
/// days: `GET /api/trash`); `?permanent=true` deletes it and every message at once, with its
/// files. `{"success": true}` either way.
pub async fn delete(
    state: &Arc<AppState>,
    caller: &Caller,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    if input::flag(req, "permanent")?.unwrap_or(false) {
        super::organize::delete_forever(state, caller, &id, false).await?;
    } else {
        state.store.trash_conversation(&caller.user, &id, state.now()).await?;
        // Its share links are revoked (a restore does not bring them back).
        state.store.delete_conversation_links(&caller.user, &id).await?;
    }
    json(StatusCode::OK, &Success { success: true })
}

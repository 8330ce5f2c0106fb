//! `/api/prompts`, `/api/prompts/{id}` and `/api/prompts/{id}/conversations`: a user's saved
//! prompts (owner-scoped: another user's prompt is a 404) beside the deployment's shared,
//! read-only ones (`ATHENA_SHARED_PROMPTS`), and a conversation started from a prompt (a
//! template: the filled prompt as its first user message, with a solution, model and project)
//! in one call.

use std::collections::BTreeMap;

use http::{header, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::views::ConversationWithMessages;
use super::{input, json, ApiRequest, AppState, Body, Caller};
use crate::config::prompts::SharedPrompt;
use crate::domain::{
    fill, ts, variables, Conversation, ConversationId, Message, PromptId, Role, SavedPrompt, Solution, Timestamp,
    Title, MAX_PROMPTS_PER_USER,
};
use crate::error::{FieldError, StoreError, ValidationError};
use crate::store::PromptPatch;

/// A prompt as the API shows it: the caller's own or a shared one.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptView<'a> {
    id: &'a str,
    title: &'a str,
    text: &'a str,
    tags: &'a [String],
    /// The `{{variables}}` of the text, in order.
    variables: Vec<String>,
    /// A deployment's shared prompt (read-only).
    shared: bool,
    #[serde(with = "opt_ts")]
    created_at: Option<Timestamp>,
    #[serde(with = "opt_ts")]
    updated_at: Option<Timestamp>,
}

mod opt_ts {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<super::Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::ts::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

impl<'a> From<&'a SavedPrompt> for PromptView<'a> {
    fn from(p: &'a SavedPrompt) -> Self {
        Self {
            id: p.id.as_str(),
            title: &p.title,
            text: &p.text,
            tags: &p.tags,
            variables: variables(&p.text),
            shared: false,
            created_at: Some(p.created_at),
            updated_at: Some(p.updated_at),
        }
    }
}

impl<'a> From<&'a SharedPrompt> for PromptView<'a> {
    fn from(p: &'a SharedPrompt) -> Self {
        Self {
            id: p.id.as_str(),
            title: &p.title,
            text: &p.text,
            tags: &p.tags,
            variables: variables(&p.text),
            shared: true,
            created_at: None,
            updated_at: None,
        }
    }
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("prompt not found".to_owned()),
        other => other.into(),
    }
}

fn prompt_id(raw: Option<&str>) -> Result<PromptId, ApiError> {
    let id = input::conversation_id(raw)?;
    PromptId::parse(id.as_str()).map_err(ApiError::from)
}

fn shared<'a>(state: &'a AppState, id: &PromptId) -> Option<&'a SharedPrompt> {
    state.config.shared_prompts.iter().find(|p| p.id == *id)
}

fn read_only(id: &PromptId) -> ApiError {
    ApiError::Forbidden(format!("prompt {id} is shared by the deployment and read-only"))
}

fn collect<T>(problems: &mut Vec<FieldError>, result: Result<T, ValidationError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            problems.extend(e.fields);
            None
        }
    }
}

/// `GET /api/prompts?q&tag`: the deployment's shared prompts, then the caller's own (oldest
/// first); `q` keeps those whose title contains it (case-insensitive), `tag` those with that tag.
pub async fn list(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let q = req.query_param("q").map(str::to_lowercase);
    let tag = req.query_param("tag").map(str::to_lowercase);
    if q.as_deref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ValidationError::field("q", "must be at most 200 characters").into());
    }
    let keep = |title: &str, tags: &[String]| {
        q.as_deref().is_none_or(|q| title.to_lowercase().contains(q))
            && tag.as_deref().is_none_or(|t| tags.iter().any(|x| x == t))
    };
    let own = state.store.list_prompts(&caller.user).await.map_err(store_err)?;
    let views: Vec<PromptView<'_>> = state
        .config
        .shared_prompts
        .iter()
        .filter(|p| keep(&p.title, &p.tags))
        .map(PromptView::from)
        .chain(own.iter().filter(|p| keep(&p.title, &p.tags)).map(PromptView::from))
        .collect();
    json(StatusCode::OK, &views)
}

/// Body of `POST /api/prompts`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    title: String,
    text: String,
    tags: Option<Vec<String>>,
}

/// `POST /api/prompts`: 201 with the prompt; 409 at the cap of 500 prompts.
pub async fn create(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let body: CreateBody = input::json_body(req, false)?;
    let mut problems = Vec::new();
    let title = collect(&mut problems, SavedPrompt::parse_title(&body.title));
    let text = collect(&mut problems, SavedPrompt::parse_text(&body.text));
    let tags = collect(&mut problems, SavedPrompt::parse_tags(&body.tags.unwrap_or_default()));
    let (Some(title), Some(text), Some(tags)) = (title, text, tags) else {
        return Err(ValidationError::fields(problems).into());
    };
    let now = state.now();
    let prompt = SavedPrompt {
        id: state.ids.prompt_id(),
        owner: caller.user.clone(),
        title,
        text,
        tags,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .create_prompt(&prompt, MAX_PROMPTS_PER_USER)
        .await
        .map_err(store_err)?;
    let mut response = json(StatusCode::CREATED, &PromptView::from(&prompt))?;
    if let Ok(v) = HeaderValue::from_str(&format!("/api/prompts/{}", prompt.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `GET /api/prompts/{id}`: a shared prompt or one of the caller's.
pub async fn get(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    let id = prompt_id(id)?;
    if let Some(p) = shared(state, &id) {
        return json(StatusCode::OK, &PromptView::from(p));
    }
    let p = state.store.get_prompt(&caller.user, &id).await.map_err(store_err)?;
    json(StatusCode::OK, &PromptView::from(&p))
}

/// Body of `PATCH /api/prompts/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    title: Option<String>,
    text: Option<String>,
    tags: Option<Vec<String>>,
}

/// `PATCH /api/prompts/{id}`: title, text, tags of one of the caller's prompts (a shared one is
/// `403`).
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let id = prompt_id(id)?;
    if shared(state, &id).is_some() {
        return Err(read_only(&id));
    }
    let body: PatchBody = input::json_body(req, false)?;
    let mut problems = Vec::new();
    let patch = PromptPatch {
        title: body
            .title
            .and_then(|t| collect(&mut problems, SavedPrompt::parse_title(&t))),
        text: body
            .text
            .and_then(|t| collect(&mut problems, SavedPrompt::parse_text(&t))),
        tags: body
            .tags
            .and_then(|t| collect(&mut problems, SavedPrompt::parse_tags(&t))),
    };
    if !problems.is_empty() {
        return Err(ValidationError::fields(problems).into());
    }
    if patch == PromptPatch::default() {
        return Err(ValidationError::body("nothing to update: send at least one of title, text, tags").into());
    }
    let updated = state
        .store
        .update_prompt(&caller.user, &id, &patch, state.now())
        .await
        .map_err(store_err)?;
    json(StatusCode::OK, &PromptView::from(&updated))
}

/// `DELETE /api/prompts/{id}`: one of the caller's prompts (a shared one is `403`).
pub async fn delete(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    let id = prompt_id(id)?;
    if shared(state, &id).is_some() {
        return Err(read_only(&id));
    }
    state.store.delete_prompt(&caller.user, &id).await.map_err(store_err)?;
    json(StatusCode::OK, &super::views::Success { success: true })
}

/// Body of `POST /api/prompts/{id}/conversations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StartBody {
    #[serde(default)]
    variables: Option<BTreeMap<String, String>>,
    id: Option<String>,
    title: Option<String>,
    model: Option<String>,
    solution_type: Option<Solution>,
    project_id: Option<String>,
}

/// `POST /api/prompts/{id}/conversations`: a conversation template in one call. The prompt (a
/// shared one or the caller's) is filled with `variables` (every `{{variable}}` needs a value;
/// a value for a name the text does not have is refused too) and stored as the first user
/// message of a new conversation, with the solution, model and project given (a project's
/// defaults apply as for `POST /api/conversations`). No reply is generated: the client asks for
/// it with a chat request on the conversation (regenerate, or its own first submit).
pub async fn start(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let prompt_id = prompt_id(id)?;
    let body: StartBody = input::json_body(req, true)?;
    let text = match shared(state, &prompt_id) {
        Some(p) => p.text.clone(),
        None => {
            state
                .store
                .get_prompt(&caller.user, &prompt_id)
                .await
                .map_err(store_err)?
                .text
        }
    };
    let content = fill(&text, &body.variables.unwrap_or_default())?;
    if content.chars().count() > state.config.limits.max_message_chars {
        return Err(ValidationError::field(
            "variables",
            format!(
                "the filled prompt is longer than {} characters",
                state.config.limits.max_message_chars
            ),
        )
        .into());
    }
    let mut problems = Vec::new();
    let conversation_id = match body.id.as_deref() {
        None => Some(state.ids.conversation_id()),
        Some(raw) => collect(&mut problems, ConversationId::parse(raw)),
    };
    let title = match body.title.as_deref() {
        None => Some(Title::from_first_message(&content, crate::chat::TITLE_CHARS)),
        Some(raw) => collect(&mut problems, Title::parse(raw)),
    };
    let project_id = body
        .project_id
        .as_deref()
        .map(|raw| collect(&mut problems, crate::domain::ProjectId::parse(raw)));
    let model = match body.model.as_deref() {
        None => Some(None),
        Some(raw) => collect(&mut problems, state.config.catalog.parse("model", raw)).map(Some),
    };
    let (Some(conversation_id), Some(title), Some(model), None | Some(Some(_))) =
        (conversation_id, title, model, &project_id)
    else {
        return Err(ValidationError::fields(problems).into());
    };
    let project = match project_id.flatten() {
        None => None,
        Some(p) => Some(super::projects::owned(state.store.as_ref(), caller, &p).await?),
    };
    let model = match (model, project.as_ref().and_then(|p| p.default_model.as_deref())) {
        (Some(m), _) => m,
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
    let mut conversation = Conversation::new(
        conversation_id,
        caller.user.clone(),
        title.as_str(),
        model.id,
        solution,
        now,
    );
    conversation.project_id = project.map(|p| p.id);
    let message = Message::text(
        state.ids.message_id(),
        conversation.id.clone(),
        Role::User,
        content,
        now,
    );
    state
        .store
        .create_conversation(&conversation, std::slice::from_ref(&message))
        .await?;
    let stored = crate::store::rules::as_created(&conversation, std::slice::from_ref(&message));
    let messages = [message];
    let mut response = json(StatusCode::CREATED, &ConversationWithMessages::new(&stored, &messages))?;
    if let Ok(v) = HeaderValue::from_str(&format!("/api/conversations/{}", stored.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

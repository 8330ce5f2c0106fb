//! `/api/projects` and `/api/projects/{id}`: a user's projects (list, create, get, patch,
//! delete), owner-scoped like conversations (another user's project is a 404).

use http::{header, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};

use super::error::ApiError;
use super::{input, json, ApiRequest, AppState, Body, Caller};
use crate::domain::{ts, Project, ProjectId, Solution, Timestamp, MAX_PROJECTS_PER_USER};
use crate::error::{FieldError, StoreError, ValidationError};
use crate::store::{ProjectConversations, ProjectPatch, Projects};

/// A project as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    instructions: &'a str,
    default_model: Option<&'a str>,
    default_solution: Option<Solution>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
}

impl<'a> From<&'a Project> for ProjectView<'a> {
    fn from(p: &'a Project) -> Self {
        Self {
            id: p.id.as_str(),
            name: &p.name,
            description: &p.description,
            instructions: &p.instructions,
            default_model: p.default_model.as_deref(),
            default_solution: p.default_solution,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A store error of a project route: a missing project is named as such.
fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("project not found".to_owned()),
        other => other.into(),
    }
}

/// The caller's project `id` (404 when it is missing or someone else's): what a conversation
/// naming a project is checked against.
pub async fn owned(store: &dyn Projects, caller: &Caller, id: &ProjectId) -> Result<Project, ApiError> {
    store.get_project(&caller.user, id).await.map_err(store_err)
}

/// Parses the path's `{id}`.
fn project_id(raw: Option<&str>) -> Result<ProjectId, ApiError> {
    // Same alphabet as conversation ids; the path decoding is shared.
    let id = input::conversation_id(raw)?;
    ProjectId::parse(id.as_str()).map_err(ApiError::from)
}

/// A field that may be sent as `null` to clear it: absent is `None`, `null` is `Some(None)`.
pub(super) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST /api/projects`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    name: String,
    description: Option<String>,
    instructions: Option<String>,
    default_model: Option<String>,
    default_solution: Option<Solution>,
}

/// Body of `PATCH /api/projects/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    name: Option<String>,
    description: Option<String>,
    instructions: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    default_model: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    default_solution: Option<Option<Solution>>,
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

/// Checks the optional fields both bodies share, recording problems.
fn texts(
    state: &AppState,
    problems: &mut Vec<FieldError>,
    description: Option<&str>,
    instructions: Option<&str>,
    model: Option<&str>,
) -> (Option<String>, Option<String>, Option<String>) {
    let description = description.and_then(|d| collect(problems, Project::parse_description(d)));
    let instructions = instructions.and_then(|i| collect(problems, Project::parse_instructions(i)));
    let model =
        model.and_then(|m| collect(problems, state.config.catalog.parse("defaultModel", m)).map(|m| m.id.to_owned()));
    (description, instructions, model)
}

/// `GET /api/projects`: the caller's projects, oldest first (at most 100, never paged).
pub async fn list(state: &AppState, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let projects = state.store.list_projects(&caller.user).await.map_err(store_err)?;
    let views: Vec<ProjectView<'_>> = projects.iter().map(ProjectView::from).collect();
    json(StatusCode::OK, &views)
}

/// `POST /api/projects`: 201 with the project; 409 at the cap of 100 projects.
pub async fn create(state: &AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let body: CreateBody = input::json_body(req, false)?;
    let mut problems = Vec::new();
    let name = collect(&mut problems, Project::parse_name(&body.name));
    let (description, instructions, default_model) = texts(
        state,
        &mut problems,
        body.description.as_deref(),
        body.instructions.as_deref(),
        body.default_model.as_deref(),
    );
    let Some(name) = name.filter(|_| problems.is_empty()) else {
        return Err(ValidationError::fields(problems).into());
    };
    let now = state.now();
    let project = Project {
        id: state.ids.project_id(),
        owner: caller.user.clone(),
        name,
        description: description.unwrap_or_default(),
        instructions: instructions.unwrap_or_default(),
        default_model,
        default_solution: body.default_solution,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .create_project(&project, MAX_PROJECTS_PER_USER)
        .await
        .map_err(store_err)?;
    let mut response = json(StatusCode::CREATED, &ProjectView::from(&project))?;
    if let Ok(v) = HeaderValue::from_str(&format!("/api/projects/{}", project.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `GET /api/projects/{id}`.
pub async fn get(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    let project = owned(state.store.as_ref(), caller, &project_id(id)?).await?;
    json(StatusCode::OK, &ProjectView::from(&project))
}

/// `PATCH /api/projects/{id}`: name, description, instructions, defaultModel, defaultSolution
/// (the two defaults cleared by `null`).
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let id = project_id(id)?;
    let body: PatchBody = input::json_body(req, false)?;
    let mut problems = Vec::new();
    let name = body
        .name
        .as_deref()
        .and_then(|n| collect(&mut problems, Project::parse_name(n)));
    let (description, instructions, model) = texts(
        state,
        &mut problems,
        body.description.as_deref(),
        body.instructions.as_deref(),
        body.default_model.as_ref().and_then(Option::as_deref),
    );
    if !problems.is_empty() {
        return Err(ValidationError::fields(problems).into());
    }
    let patch = ProjectPatch {
        name,
        description,
        instructions,
        default_model: body.default_model.map(|m| m.and(model)),
        default_solution: body.default_solution,
    };
    if patch == ProjectPatch::default() {
        return Err(ValidationError::body(
            "nothing to update: send at least one of name, description, instructions, defaultModel, defaultSolution",
        )
        .into());
    }
    let updated = state
        .store
        .update_project(&caller.user, &id, &patch, state.now())
        .await
        .map_err(store_err)?;
    json(StatusCode::OK, &ProjectView::from(&updated))
}

/// Answer of `DELETE /api/projects/{id}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Deleted {
    success: bool,
    /// How many conversations were detached or deleted.
    conversations: u64,
}

/// `DELETE /api/projects/{id}?conversations=detach|delete` (required): its conversations are
/// moved out of it or deleted with it.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let id = project_id(id)?;
    let mode =
        match req.query_param("conversations") {
            Some("detach") => ProjectConversations::Detach,
            Some("delete") => ProjectConversations::Delete,
            _ => return Err(ValidationError::field(
                "conversations",
                "is required: detach (keep the project's conversations, in no project) or delete (delete them with it)",
            )
            .into()),
        };
    let conversations = state
        .store
        .delete_project(&caller.user, &id, mode)
        .await
        .map_err(store_err)?;
    if mode == ProjectConversations::Delete && conversations > 0 {
        crate::files::delete_for_conversation(state, &caller.user, None).await;
    }
    json(
        StatusCode::OK,
        &Deleted {
            success: true,
            conversations,
        },
    )
}

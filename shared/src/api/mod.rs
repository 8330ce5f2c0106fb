//! The HTTP layer, independent of where requests come from: Lambda (through
//! [`crate::lambda`]) and the local gateway (through [`crate::local`]) both build an
//! [`ApiRequest`] and call [`handle`]. Handlers parse and validate, resolve the caller, call the
//! store, and map errors in one place ([`error::ApiError`]).

pub mod account;
pub mod analytics;
pub mod audit;
pub mod chat;
pub mod conversations;
pub mod error;
pub mod export;
pub mod export_all;
pub mod feedback;
pub mod files;
pub mod health;
pub mod idempotency;
pub mod import;
pub mod imports;
pub mod input;
pub mod links;
pub mod messages;
pub mod organize;
pub mod policy;
pub mod projects;
pub mod prompts;
pub mod routes;
pub mod search;
pub mod sharing;
pub mod usage;
pub mod views;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tracing::Instrument;

use crate::config::{AuthMode, Config};
use crate::domain::UserId;
pub use crate::state::AppState;
use error::ApiError;
use routes::{Op, Scope};

/// A response body: whole bytes or a stream (chat). Boxed so every handler returns one type.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A request as the handlers see it, whatever carried it.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    /// Method.
    pub method: Method,
    /// Path, without query string.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The request id (Lambda's, or one we made).
    pub request_id: String,
    /// Claims an API Gateway authorizer verified, when there is one.
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// Whether a JSON body is read whatever its content type. Set by [`handle`] when the request
    /// carries a bearer token (or the deployment has no authentication): no cookies are ever
    /// involved, so a cross-site form or `fetch` cannot carry credentials, and the seed's own
    /// client posts JSON without a content type. Adapters leave it `false`.
    pub any_content_type: bool,
}

impl ApiRequest {
    /// A `GET` of `path` with `query`, no headers and no body (in-process callers: benchmarks,
    /// tests).
    pub fn get(path: &str, query: &[(&str, &str)], request_id: &str) -> Self {
        Self {
            method: Method::GET,
            path: path.to_owned(),
            query: query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            request_id: request_id.to_owned(),
            claims: None,
            any_content_type: false,
        }
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parses a raw query string.
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user; owner of what they create.
    pub user: UserId,
    /// Whether they may read analytics (`ATHENA_ADMINS`, an `admin` group claim, or the local user).
    pub admin: bool,
    /// The values of the plan claim (`ATHENA_PLAN_CLAIM`), in order: the first naming a plan
    /// is the caller's plan unless an admin set another ([`usage::plan_of`]).
    pub plan_claims: Vec<String>,
    /// Their plan: the default until [`usage::plan_of`] resolved it (every routed request).
    pub plan: std::sync::Arc<crate::config::plans::Plan>,
    /// Their e-mail address, lower-cased, when the token carries one marked verified
    /// (`email_verified` true): conversations shared with that address are theirs to open.
    pub email: Option<String>,
}

impl Caller {
    /// Who the caller is to a grant: their user id, and their verified address if any.
    pub fn grantees(&self) -> Vec<crate::store::Grantee> {
        let mut out = vec![crate::store::Grantee::User(self.user.clone())];
        if let Some(email) = &self.email {
            out.push(crate::store::Grantee::Email(email.clone()));
        }
        out
    }
}

/// Resolves the caller from the request according to the auth mode. In the bearer-token modes a
/// request with more than one `Authorization` header is refused (400) before any token is looked
/// at: which one counts would depend on who reads the headers (a proxy, API Gateway, this code).
pub async fn authenticate(config: &Config, req: &ApiRequest) -> Result<Caller, ApiError> {
    if !matches!(config.auth, AuthMode::None { .. }) {
        let count = req.headers.get_all(http::header::AUTHORIZATION).iter().count();
        if count > 1 {
            return Err(ApiError::Validation(crate::error::ValidationError::field(
                "Authorization",
                format!("the header must be sent once, not {count} times"),
            )));
        }
    }
    let claims = match &config.auth {
        AuthMode::None { user } => {
            return Ok(Caller {
                user: user.clone(),
                admin: true,
                plan_claims: Vec::new(),
                plan: config.plans.default_plan().clone(),
                email: None,
            })
        }
        AuthMode::ApiGateway => req
            .claims
            .clone()
            .ok_or_else(|| ApiError::Auth("no verified identity in the request".to_owned()))?,
        AuthMode::Jwt(verifier) => {
            let token = crate::auth::bearer(user_token_header(req)?).map_err(|e| ApiError::Auth(e.to_string()))?;
            verifier.verify(token).await.map_err(|e| match e {
                crate::auth::AuthError::KeysUnavailable(_) => ApiError::Unavailable(Some(Box::new(e))),
                other => ApiError::Auth(other.to_string()),
            })?
        }
    };
    let sub = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::Auth("the token has no subject".to_owned()))?;
    // Subjects are UUIDs or similar; anything else is refused rather than stored as a key.
    let user = UserId::parse(sub).map_err(|_| ApiError::Auth("the token's subject is not usable".to_owned()))?;
    let admin = config.admins.contains(&user) || is_admin_claim(&claims);
    let plan_claims = claim_values(&claims, &config.plans.claim);
    Ok(Caller {
        user,
        admin,
        plan_claims,
        plan: config.plans.default_plan().clone(),
        email: verified_email(&claims),
    })
}

/// The header a SigV4-signed caller puts the user's `Bearer` token in: its `Authorization` header
/// holds the request signature.
pub const USER_AUTHORIZATION: &str = "x-user-authorization";

/// Whether `Authorization` holds an AWS Signature Version 4 (a server calling a chat function URL
/// with `AuthType: AWS_IAM`, where Lambda verified the signature before invoking us).
fn is_sigv4(req: &ApiRequest) -> bool {
    req.headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "))
}

/// The header holding the user's bearer token: `Authorization`, or [`USER_AUTHORIZATION`] (sent
/// once) when `Authorization` is a SigV4 signature. Either way the token itself is verified.
fn user_token_header(req: &ApiRequest) -> Result<Option<&str>, ApiError> {
    if !is_sigv4(req) {
        return Ok(req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()));
    }
    let count = req.headers.get_all(USER_AUTHORIZATION).iter().count();
    if count > 1 {
        return Err(ApiError::Validation(crate::error::ValidationError::field(
            USER_AUTHORIZATION,
            format!("the header must be sent once, not {count} times"),
        )));
    }
    Ok(req.headers.get(USER_AUTHORIZATION).and_then(|v| v.to_str().ok()))
}

/// Whether the request authenticates with a bearer token (or needs none): then its body is not a
/// cross-site simple request's, and JSON is read whatever the content type says.
fn carries_credentials(config: &Config, req: &ApiRequest) -> bool {
    let bearer = user_token_header(req)
        .ok()
        .flatten()
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
    bearer || req.claims.is_some() || matches!(config.auth, AuthMode::None { .. })
}

/// `cognito:groups` or `groups` containing `admin` (a list, or API Gateway's stringified list).
/// The token's `email`, lower-cased and trimmed, only when `email_verified` is true (a boolean,
/// or API Gateway's `"true"`): an unverified address could be anyone's.
fn verified_email(claims: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let verified = match claims.get("email_verified") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    if !verified {
        return None;
    }
    claims
        .get("email")
        .and_then(|v| v.as_str())
        .and_then(crate::store::sharing::normalize_email)
}

fn is_admin_claim(claims: &serde_json::Map<String, serde_json::Value>) -> bool {
    ["cognito:groups", "groups"]
        .iter()
        .any(|key| claim_values(claims, key).iter().any(|g| g == "admin"))
}

/// The values of claim `key`: a list, API Gateway's stringified list (`[a b]` or `[a,b]`), or a
/// single string.
fn claim_values(claims: &serde_json::Map<String, serde_json::Value>, key: &str) -> Vec<String> {
    match claims.get(key) {
        Some(serde_json::Value::Array(values)) => values.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(serde_json::Value::String(values)) => values
            .trim_matches(|c| c == '[' || c == ']')
            .split([',', ' '])
            .map(|v| v.trim_matches('"').to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// A short, stable, non-reversible tag of a user id for logs (never the id itself).
pub fn user_tag(user: &UserId) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(user.as_str().as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Headers allowed in CORS requests.
const CORS_ALLOW_HEADERS: &str = "authorization, content-type, x-request-id, idempotency-key";
/// Headers a browser may read.
const CORS_EXPOSE_HEADERS: &str =
    "x-request-id, x-next-cursor, retry-after, location, idempotent-replayed, content-disposition, \
     x-conversation-id, x-athena-budget-remaining-tokens, x-athena-budget-remaining-usd";

/// The largest body a request to `path` may carry: `ATHENA_MAX_IMPORT_BYTES` for `POST
/// /api/import` (an export file), `ATHENA_MAX_BODY_BYTES` for everything else.
pub fn body_limit(config: &Config, path: &str) -> usize {
    match routes::find(Scope::All, path).map(|m| m.route.pattern) {
        Some(routes::IMPORT_PATH) => config.limits.max_import_bytes.max(config.limits.max_body_bytes),
        _ => config.limits.max_body_bytes,
    }
}

/// Answers a request an adapter refused before routing it (a URI or headers too large, a body too
/// large or too slow to arrive): the error's JSON shape with the same common headers (request id,
/// security headers, CORS) and the same log line as [`handle`]'s answers.
pub fn refuse(state: &AppState, req: &ApiRequest, error: ApiError) -> Response<Body> {
    let origin = req.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let mut response = error_response(state, error, &req.request_id, None);
    finish_headers(state, req, origin, &mut response);
    tracing::info!(
        request_id = %req.request_id,
        method = %req.method,
        route = "unmatched",
        status = response.status().as_u16(),
        user = "-",
        "request"
    );
    response
}

/// An error's response, counted first: `ApiRequests`, `ApiErrors` by code, `AuthFailures` for
/// a 401, and `Refusals` for a request a limit refused (`crate::metrics`).
fn error_response(state: &AppState, error: ApiError, request_id: &str, plan: Option<&str>) -> Response<Body> {
    let now = state.now();
    let outcome = crate::metrics::Outcome {
        error_code: Some(error.code()),
        auth_failure: matches!(error, ApiError::Auth(_)),
    };
    crate::metrics::request(&state.metrics, now, outcome);
    if let Some(code) = error.refusal_code() {
        crate::metrics::refusal(&state.metrics, now, code, plan);
    }
    error.into_response(request_id)
}

/// A chat turn's handler (`POST /api/chat[/{solution}]`: [`chat::post_boxed`]): a function
/// pointer given to [`handle_with`], so that a binary that serves no chat route (every Lambda
/// function but chat) does not link the turn's code.
pub type ChatTurn = for<'a> fn(
    &'a Arc<AppState>,
    &'a Caller,
    Option<crate::domain::Solution>,
    &'a ApiRequest,
) -> futures::future::BoxFuture<'a, Result<Response<Body>, ApiError>>;

/// Handles one request: routing, CORS, the handler, error mapping, common headers and one log
/// line; chat turns included ([`handle_with`] the chat handler).
pub async fn handle(state: &Arc<AppState>, scope: Scope, req: ApiRequest) -> Response<Body> {
    handle_with(state, scope, req, Some(chat::post_boxed)).await
}

/// [`handle`] with `chat_turn` as the chat turn's handler (`None`: a chat turn answers as one
/// without a model provider does; the functions that serve no chat route pass it).
pub async fn handle_with(
    state: &Arc<AppState>,
    scope: Scope,
    mut req: ApiRequest,
    chat_turn: Option<ChatTurn>,
) -> Response<Body> {
    let span = tracing::info_span!("request", request_id = %req.request_id);
    req.any_content_type = carries_credentials(&state.config, &req);
    async move {
        let started = Instant::now();
        let method = req.method.clone();
        let origin = req
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut route_label = "unmatched";
        let mut user = None;
        let mut plan = None;
        let result = route(state, scope, &req, chat_turn, &mut route_label, &mut user, &mut plan).await;
        let mut response = match result {
            Ok(r) => {
                crate::metrics::request(&state.metrics, state.now(), crate::metrics::Outcome::default());
                r
            }
            Err(e) => error_response(state, e, &req.request_id, plan.as_deref()),
        };
        finish_headers(state, &req, origin.as_deref(), &mut response);
        tracing::info!(
            method = %method,
            route = route_label,
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            user = user.as_deref().unwrap_or("-"),
            "request"
        );
        response
    }
    .instrument(span)
    .await
}

async fn route(
    state: &Arc<AppState>,
    scope: Scope,
    req: &ApiRequest,
    chat_turn: Option<ChatTurn>,
    label: &mut &'static str,
    user: &mut Option<String>,
    plan: &mut Option<String>,
) -> Result<Response<Body>, ApiError> {
    let matched = routes::find(scope, &req.path).ok_or_else(|| ApiError::NotFound("no such route".to_owned()))?;
    *label = matched.route.pattern;
    if req.method == Method::OPTIONS {
        for id in [matched.id, matched.sub].into_iter().flatten() {
            // A malformed id is a 400 for the preflight too, as for every other method.
            input::conversation_id(Some(id))?;
        }
        return Ok(preflight(state, req, matched.route));
    }
    let op = matched
        .route
        .ops
        .iter()
        .find(|(m, _)| *m == req.method.as_str())
        .map(|(_, op)| *op)
        .ok_or_else(|| ApiError::MethodNotAllowed {
            allow: allowed_methods(matched.route),
        })?;
    if op == Op::Dashboard {
        // A static page: the data it shows comes from the admin-only summary route.
        return analytics::dashboard();
    }
    if op == Op::Health {
        // No caller and no user data: the version and whether the store answers.
        return health::check(state).await;
    }
    if op == Op::ReadShare {
        // Anyone holding the link's token: no caller (`policy::Rule::Link`).
        return links::read(state, matched.id).await;
    }
    let limit = body_limit(&state.config, &req.path);
    if req.body.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body is {} bytes; the limit is {limit} bytes",
            req.body.len(),
        )));
    }
    let mut caller = authenticate(&state.config, req).await?;
    *user = Some(user_tag(&caller.user));
    caller.plan = usage::plan_of(state, &caller).await?;
    *plan = Some(caller.plan.name.clone());
    if let Op::Chat(solution) = op {
        // A chat turn is counted by the store in the write that admits it (one round trip for the
        // rate limit, budgets, stream cap and the user's message): see `chat::post`.
        let result = turn(chat_turn, state, &caller, solution, req).await;
        if let Err(e) = &result {
            audit_chat_refusal(state, &caller, req, e).await;
        }
        return result;
    }
    rate_limit(state, &caller).await?;
    let id = matched.id;
    let audited = audit_action(op);
    let result = dispatch(state, &caller, req, op, id, matched.sub, chat_turn).await;
    // A share token is a secret: the audit names the conversation it made instead.
    let id = if op == Op::ContinueShare { None } else { id };
    if let Some(action) = audited {
        let status = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        let resource = match (&result, id) {
            (_, Some(id)) => Some(id.to_owned()),
            (Ok(response), None) => response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.rsplit('/').next())
                .map(str::to_owned),
            // A refused create names its id in the body, if it gave one.
            (Err(_), None) => serde_json::from_slice::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|b| b.get("id").and_then(|v| v.as_str()).map(str::to_owned))
                .filter(|id| crate::domain::ConversationId::parse(id).is_ok()),
        };
        let entry = crate::audit::entry(
            &state.ids,
            &caller.user,
            action,
            resource,
            status,
            Some(&req.request_id),
            state.config.audit_retention_days,
        );
        crate::audit::record(state.store.as_ref(), &[entry]).await;
    }
    result
}

/// The audit action of a mutating route (chat turns are audited by the chat itself).
fn audit_action(op: Op) -> Option<&'static str> {
    use crate::audit::action;
    match op {
        Op::CreateConversation => Some(action::CONVERSATION_CREATE),
        Op::UpdateConversation => Some(action::CONVERSATION_UPDATE),
        Op::DeleteConversation => Some(action::CONVERSATION_DELETE),
        Op::SetActiveBranch => Some(action::CONVERSATION_BRANCH),
        Op::CreateProject => Some(action::PROJECT_CREATE),
        Op::UpdateProject => Some(action::PROJECT_UPDATE),
        Op::DeleteProject => Some(action::PROJECT_DELETE),
        Op::CreatePrompt => Some(action::PROMPT_CREATE),
        Op::UpdatePrompt => Some(action::PROMPT_UPDATE),
        Op::DeletePrompt => Some(action::PROMPT_DELETE),
        Op::StartFromPrompt => Some(action::PROMPT_START),
        Op::CreateMessage => Some(action::MESSAGES_ADD),
        Op::ClearMessages => Some(action::MESSAGES_CLEAR),
        Op::StopChat(_) => Some(action::CHAT_STOP),
        Op::CreateFile => Some(action::FILE_CREATE),
        Op::CompleteFile => Some(action::FILE_COMPLETE),
        Op::DeleteFile => Some(action::FILE_DELETE),
        Op::SetUserPlan => Some(action::PLAN_SET),
        Op::ClearUserPlan => Some(action::PLAN_CLEAR),
        Op::CreateFolder => Some(action::FOLDER_CREATE),
        Op::UpdateFolder => Some(action::FOLDER_UPDATE),
        Op::DeleteFolder => Some(action::FOLDER_DELETE),
        Op::RestoreConversation => Some(action::CONVERSATION_RESTORE),
        Op::DeleteForever => Some(action::CONVERSATION_PURGE),
        Op::EmptyTrash => Some(action::TRASH_EMPTY),
        Op::Import | Op::CreateImport => Some(action::CONVERSATIONS_IMPORT),
        Op::DeleteImport => Some(action::IMPORT_DELETE),
        Op::ExportAll => Some(action::CONVERSATIONS_EXPORT),
        Op::ShareConversation => Some(action::CONVERSATION_SHARE),
        Op::Unshare | Op::LeaveShared => Some(action::CONVERSATION_UNSHARE),
        Op::CreateLink => Some(action::LINK_CREATE),
        Op::UpdateLink => Some(action::LINK_UPDATE),
        Op::DeleteLink => Some(action::LINK_DELETE),
        Op::ContinueShare => Some(action::SHARE_CONTINUE),
        _ => None,
    }
}

/// Audits a chat turn the store refused before streaming (budget, stream cap, not found,
/// conflict). Requests refused by the rate limit or as malformed are not audited (only logged):
/// they cost no write today, and a flood of them must not buy one each.
async fn audit_chat_refusal(state: &AppState, caller: &Caller, req: &ApiRequest, e: &ApiError) {
    if !matches!(
        e,
        ApiError::Budget { .. }
            | ApiError::Plan { .. }
            | ApiError::SpendCap { .. }
            | ApiError::TooManyStreams { .. }
            | ApiError::NotFound(_)
            | ApiError::Conflict(_)
    ) {
        return;
    }
    let body: Option<serde_json::Value> = serde_json::from_slice(&req.body).ok();
    let field = |k: &str| {
        body.as_ref()
            .and_then(|b| b.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let resource = field("conversationId")
        .or_else(|| field("id"))
        .filter(|id| crate::domain::ConversationId::parse(id).is_ok());
    let action = if field("trigger").as_deref() == Some("regenerate-message") {
        crate::audit::action::CHAT_REGENERATE
    } else {
        crate::audit::action::CHAT_TURN
    };
    let entry = crate::audit::entry(
        &state.ids,
        &caller.user,
        action,
        resource,
        e.code(),
        Some(&req.request_id),
        state.config.audit_retention_days,
    );
    crate::audit::record(state.store.as_ref(), &[entry]).await;
}

async fn dispatch(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &ApiRequest,
    op: Op,
    id: Option<&str>,
    sub: Option<&str>,
    chat_turn: Option<ChatTurn>,
) -> Result<Response<Body>, ApiError> {
    match op {
        Op::ListConversations => conversations::list(state, caller, req).await,
        Op::CreateConversation => {
            idempotency::once(state, caller, req, conversations::create(state, caller, req)).await
        }
        Op::ListFolders => organize::list_folders(state, caller).await,
        Op::CreateFolder => idempotency::once(state, caller, req, organize::create_folder(state, caller, req)).await,
        Op::GetFolder => organize::get_folder(state, caller, id).await,
        Op::UpdateFolder => organize::update_folder(state, caller, id, req).await,
        Op::DeleteFolder => organize::delete_folder(state, caller, id).await,
        Op::ListTags => organize::list_tags(state, caller).await,
        Op::EraseAccount => account::erase(state, caller, req).await,
        Op::ListTrash => organize::list_trash(state, caller, req).await,
        Op::EmptyTrash => organize::empty(state, caller).await,
        Op::RestoreConversation => organize::restore(state, caller, input::conversation_id(id)?).await,
        Op::DeleteForever => organize::delete(state, caller, input::conversation_id(id)?).await,
        Op::Import => import::post(state, caller, req).await,
        Op::ListImports => imports::list(state, caller, req).await,
        Op::CreateImport => idempotency::once(state, caller, req, imports::create(state, caller, req)).await,
        Op::GetImport => imports::get(state, caller, id).await,
        Op::DeleteImport => imports::delete(state, caller, id).await,
        Op::ExportAll => export_all::get(state, caller, req).await,
        Op::Search => search::search(state, caller, req).await,
        Op::ListFiles => files::list(state, caller, req).await,
        Op::CreateFile => idempotency::once(state, caller, req, files::create(state, caller, req)).await,
        Op::GetFile => files::get(state, caller, id, req).await,
        Op::DeleteFile => files::delete(state, caller, id).await,
        Op::CompleteFile => files::complete(state, caller, id, req).await,
        Op::ListProjects => projects::list(state, caller).await,
        Op::CreateProject => idempotency::once(state, caller, req, projects::create(state, caller, req)).await,
        Op::GetProject => projects::get(state, caller, id).await,
        Op::UpdateProject => projects::update(state, caller, id, req).await,
        Op::DeleteProject => projects::delete(state, caller, id, req).await,
        Op::ListPrompts => prompts::list(state, caller, req).await,
        Op::CreatePrompt => idempotency::once(state, caller, req, prompts::create(state, caller, req)).await,
        Op::GetPrompt => prompts::get(state, caller, id).await,
        Op::UpdatePrompt => prompts::update(state, caller, id, req).await,
        Op::DeletePrompt => prompts::delete(state, caller, id).await,
        Op::StartFromPrompt => idempotency::once(state, caller, req, prompts::start(state, caller, id, req)).await,
        Op::GetConversation
        | Op::ExportConversation
        | Op::UpdateConversation
        | Op::DeleteConversation
        | Op::SetActiveBranch
        | Op::ListMessages
        | Op::CreateMessage
        | Op::ClearMessages
        | Op::ResumeChat(_)
        | Op::StopChat(_)
        | Op::ListShares
        | Op::ShareConversation
        | Op::Unshare
        | Op::LeaveShared
        | Op::PutReaction
        | Op::DeleteReaction
        | Op::PutBookmark
        | Op::DeleteBookmark
        | Op::ListLinks
        | Op::CreateLink
        | Op::UpdateLink
        | Op::DeleteLink => policy::on_conversation(state, caller, req, (op, input::conversation_id(id)?, sub)).await,
        Op::SharedWithMe => sharing::shared_with_me(state, caller, req).await,
        Op::ChatInfo(solution) => chat::info(state, caller, solution),
        Op::Chat(solution) => turn(chat_turn, state, caller, solution, req).await,
        Op::AnalyticsSummary => analytics::summary(state, caller, req).await,
        Op::ListAudit => audit::list(state.store.as_ref(), caller, req).await,
        Op::Usage => usage::get(state, caller).await,
        Op::GetUserPlan => usage::get_user_plan(state, caller, id).await,
        Op::SetUserPlan => usage::set_user_plan(state, caller, id, req).await,
        Op::ClearUserPlan => usage::clear_user_plan(state, caller, id).await,
        Op::ListBookmarks => feedback::list_bookmarks(state, caller, req).await,
        Op::ContinueShare => idempotency::once(state, caller, req, links::continue_in_own(state, caller, id)).await,
        Op::Dashboard | Op::Health | Op::ReadShare => unreachable_route(),
    }
}

/// A chat turn through `chat_turn` ([`handle_with`]); without one, the answer of a turn without
/// a model provider.
async fn turn(
    chat_turn: Option<ChatTurn>,
    state: &Arc<AppState>,
    caller: &Caller,
    solution: Option<crate::domain::Solution>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    match chat_turn {
        Some(turn) => turn(state, caller, solution, req).await,
        None => Err(crate::chat::ChatError::NoProvider.into()),
    }
}

/// Counts the request against the caller's per-minute budget (one atomic counter per user and
/// minute, shared by every instance through the store).
async fn rate_limit(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let limit = caller.plan.requests_per_minute;
    if limit == 0 {
        return Ok(());
    }
    match crate::ratelimit::count(state.store.as_ref(), &caller.user, state.now(), limit).await {
        Err(crate::error::StoreError::RateLimited { retry_after }) => Err(ApiError::RateLimited {
            message: format!("at most {limit} requests per minute; retry after the minute ends"),
            retry_after,
        }),
        other => other.map_err(ApiError::from),
    }
}

/// The dashboard is answered before authentication; it never reaches the handler dispatch.
fn unreachable_route() -> Result<Response<Body>, ApiError> {
    Err(ApiError::NotFound("no such route".to_owned()))
}

fn allowed_methods(route: &routes::Route) -> Vec<&'static str> {
    let mut allow = route.methods();
    allow.push("OPTIONS");
    allow
}

fn preflight(state: &AppState, req: &ApiRequest, route: &routes::Route) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let allow = allowed_methods(route).join(", ");
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&allow) {
        headers.insert(header::ALLOW, v.clone());
        let origin = req.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if origin.and_then(|o| state.config.cors.allow(o)).is_some() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(CORS_ALLOW_HEADERS),
            );
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
    }
    response
}

fn finish_headers(state: &AppState, req: &ApiRequest, origin: Option<&str>, response: &mut Response<Body>) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&req.request_id) {
        headers.insert("x-request-id", v);
    }
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers
        .entry("content-security-policy")
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    if let Some(allowed) = origin.and_then(|o| state.config.cors.allow(o)) {
        if let Ok(v) = HeaderValue::from_str(&allowed) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(CORS_EXPOSE_HEADERS),
            );
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ApiError::Internal(Some(Box::new(e))))?;
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// An empty `204 No Content`.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Sets `x-next-cursor` when another page follows.
pub fn with_cursor(mut response: Response<Body>, cursor: Option<String>) -> Response<Body> {
    if let Some(v) = cursor.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert("x-next-cursor", v);
    }
    response
}

//! The chat turn: the hot path of Athena.
//!
//! 1. Parse the body (the seed's `{messages, model, conversationId, webSearch}` or the AI SDK's
//!    `{id, messages[parts], trigger, messageId}`), validate, resolve the model.
//! 2. Load the conversation with its history (one Query), then admit the turn in one atomic
//!    write (`Store::begin_turn`): the per-minute rate limit, the day and month token budgets, a
//!    stream slot (a lease) and the user's message (idempotent by the client's message id) — or
//!    the new conversation with it (title from the first message, solution set), or for a
//!    regenerate the removal of the last reply. Two round trips before the model is called; a
//!    refusal (`RATE_LIMIT`, `BUDGET`, the stream cap, not found) is a JSON error, never a stream.
//! 3. Stream the model: every delta is written out as it arrives (bounded channel, nothing
//!    buffered whole). Fallback models are tried only before any output went out.
//! 4. On finish, failure or client disconnect: one atomic write (`Store::finish_turn`) stores the
//!    assistant message (model, usage, latency, finish reason, error; partial text kept), charges
//!    the reported tokens to the budgets, releases the slot and adds the analytics counters; then
//!    `finish` and `[DONE]`; then one batch with the analytics events and the audit entry.
//!    Four round trips in all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::api::error::ApiError;
use crate::api::{input, ApiRequest, AppState, Body, Caller};
use crate::catalog::ModelInfo;
use crate::config::ConfigError;
use crate::domain::{
    self, ClientMessageId, Conversation, ConversationId, FinishReason, Message, MessagePart, Role, Solution, Title,
    Usage,
};
use crate::error::{StoreError, ValidationError};
use crate::llm::{ChatModel, ModelContent, ModelEvent, ModelMessage, ModelRequest, ModelRole, ProviderError, ToolSpec};
use crate::store::{StreamLease, TurnFinish, TurnLimits, TurnStart, TurnWrite};
use crate::stream::{Encoder, Protocol};

/// Longest title made from a first message (seed 000: 50 characters).
pub const TITLE_CHARS: usize = 50;
/// Most model calls in one turn (tool-use loop), seed 000's `maxSteps: 5`.
pub const MAX_STEPS: usize = 5;
/// A stream slot's lease outlives the longest allowed reply by this much (seconds).
pub const LEASE_MARGIN_SECS: i64 = 60;

/// Chat settings, from the environment.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// The solution this deployment serves (`ATHENA_SOLUTION`); `None` serves every chat route.
    pub only: Option<Option<Solution>>,
    /// Models tried in order when the chosen one is throttled or unavailable (`ATHENA_FALLBACK_MODELS`).
    pub fallback: Vec<String>,
    /// How long to wait for the first token (`ATHENA_FIRST_TOKEN_TIMEOUT_MS`, default 20000).
    pub first_token_timeout: Duration,
    /// How long a whole reply may take (`ATHENA_TOTAL_TIMEOUT_MS`, default 240000).
    pub total_timeout: Duration,
    /// Most output tokens per reply (`ATHENA_MAX_OUTPUT_TOKENS`, default 4096, capped by the model).
    pub max_output_tokens: u32,
    /// The web search API, if configured.
    pub search: Option<SearchConfig>,
}

/// A search HTTP API: `POST url` with `{"query", "max_results"}` and an optional bearer key,
/// answering JSON (Tavily-style `{"results": [{title, url, content}]}` or any JSON).
#[derive(Clone)]
pub struct SearchConfig {
    /// Endpoint.
    pub url: String,
    /// Bearer key.
    pub api_key: Option<String>,
}

impl std::fmt::Debug for SearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            only: None,
            fallback: Vec::new(),
            first_token_timeout: Duration::from_secs(20),
            total_timeout: Duration::from_secs(240),
            max_output_tokens: 4096,
            search: None,
        }
    }
}

impl ChatConfig {
    /// Reads `ATHENA_SOLUTION`, `ATHENA_FALLBACK_MODELS`, timeouts, `ATHENA_SEARCH_URL`/`_API_KEY`.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        catalog: &crate::catalog::Catalog,
    ) -> Result<Self, ConfigError> {
        let mut c = ChatConfig::default();
        if let Some(s) = get("ATHENA_SOLUTION").filter(|s| !s.trim().is_empty()) {
            c.only = Some(match s.trim() {
                "general" => None,
                other => Some(
                    other
                        .parse::<Solution>()
                        .map_err(|_| ConfigError(format!("ATHENA_SOLUTION: unknown solution {other:?}")))?,
                ),
            });
        }
        if let Some(list) = get("ATHENA_FALLBACK_MODELS") {
            for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let model = catalog
                    .get(id)
                    .ok_or_else(|| ConfigError(format!("ATHENA_FALLBACK_MODELS: {id} is not an allowed model")))?;
                c.fallback.push(model.id.to_owned());
            }
        }
        let ms = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(raw) => raw
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| ConfigError(format!("{key} must be a positive number of milliseconds"))),
            }
        };
        c.first_token_timeout = ms("ATHENA_FIRST_TOKEN_TIMEOUT_MS", c.first_token_timeout)?;
        c.total_timeout = ms("ATHENA_TOTAL_TIMEOUT_MS", c.total_timeout)?;
        if let Some(raw) = get("ATHENA_MAX_OUTPUT_TOKENS") {
            c.max_output_tokens = raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError("ATHENA_MAX_OUTPUT_TOKENS must be a positive integer".to_owned()))?;
        }
        if let Some(url) = get("ATHENA_SEARCH_URL").filter(|u| !u.trim().is_empty()) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError("ATHENA_SEARCH_URL must be an http(s) URL".to_owned()));
            }
            c.search = Some(SearchConfig {
                url,
                api_key: get("ATHENA_SEARCH_API_KEY").filter(|k| !k.is_empty()),
            });
        }
        Ok(c)
    }
}

/// The system prompt of a solution (general chat: `None`). One file per prompt, compiled in.
pub fn system_prompt(solution: Option<Solution>) -> &'static str {
    match solution {
        None => include_str!("../prompts/general.md"),
        Some(Solution::Manufacturing) => include_str!("../prompts/manufacturing.md"),
        Some(Solution::Maintenance) => include_str!("../prompts/maintenance.md"),
        Some(Solution::Support) => include_str!("../prompts/support.md"),
        Some(Solution::ChangeManagement) => include_str!("../prompts/change-management.md"),
        Some(Solution::ImpactAnalysis) => include_str!("../prompts/impact-analysis.md"),
        Some(Solution::Requirements) => include_str!("../prompts/requirements.md"),
    }
}

/// The capabilities a solution's GET lists.
pub fn capabilities(solution: Option<Solution>) -> Vec<String> {
    static ALL: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();
    let all =
        ALL.get_or_init(|| serde_json::from_str(include_str!("../prompts/capabilities.json")).unwrap_or_default());
    let key = solution.map_or("general", Solution::as_str);
    all.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// `GET /api/chat[/solution]`: models, solution, capabilities.
pub fn info(state: &AppState, solution: Option<Solution>) -> Result<Response<Body>, ApiError> {
    check_scope(state, solution)?;
    let catalog = &state.config.catalog;
    crate::api::json(
        StatusCode::OK,
        &json!({
            "models": catalog.models(),
            "defaultModel": catalog.default_model().id,
            "solutionType": solution,
            "capabilities": capabilities(solution),
            "webSearch": state.chat.search.is_some(),
        }),
    )
}

fn check_scope(state: &AppState, solution: Option<Solution>) -> Result<(), ApiError> {
    match state.chat.only {
        Some(only) if only != solution => Err(ApiError::NotFound("no such route".to_owned())),
        _ => Ok(()),
    }
}

/// A message as either client sends it.
#[derive(Deserialize)]
struct IncomingMessage {
    id: Option<String>,
    role: String,
    content: Option<Value>,
    parts: Option<Vec<Value>>,
}

impl IncomingMessage {
    /// The text: the seed's `content` string, or the AI SDK's text parts joined.
    fn text(&self) -> String {
        if let Some(Value::String(s)) = &self.content {
            return s.clone();
        }
        let mut out = String::new();
        for part in self.parts.iter().flatten() {
            if part["type"] == "text" {
                out.push_str(part["text"].as_str().unwrap_or_default());
            }
        }
        out
    }
}

/// The chat body: both shapes, lenient about extra fields the frontend adds to its transport
/// body, strict about the fields it reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatBody {
    id: Option<String>,
    #[serde(default)]
    messages: Vec<IncomingMessage>,
    model: Option<String>,
    conversation_id: Option<String>,
    #[serde(default)]
    web_search: bool,
    trigger: Option<String>,
    message_id: Option<String>,
}

enum Trigger {
    Submit,
    Regenerate(Option<String>),
}

/// `POST /api/chat[/solution]`.
pub async fn post(
    state: &Arc<AppState>,
    caller: &Caller,
    solution: Option<Solution>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    check_scope(state, solution)?;
    let model_port = state
        .model
        .clone()
        .ok_or_else(|| ApiError::Internal(Some("no model provider configured".into())))?;
    let body: ChatBody = input::json_body(req, false)?;
    let protocol = Protocol::negotiate(
        req.query_param("protocol"),
        req.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()),
    );
    let trigger = match body.trigger.as_deref() {
        None | Some("submit-message") => Trigger::Submit,
        Some("regenerate-message") => Trigger::Regenerate(body.message_id.clone()),
        Some(_) => {
            return Err(ValidationError::field("trigger", "must be submit-message or regenerate-message").into())
        }
    };
    let conversation_id = match body.conversation_id.as_deref().or(body.id.as_deref()) {
        Some(raw) => ConversationId::parse(raw).map_err(|_| {
            ValidationError::field(
                "conversationId",
                "must be 1 to 64 characters of letters, digits, '_' or '-'",
            )
        })?,
        None => state.ids.conversation_id(),
    };
    // Validate the client's messages (roles, texts).
    let limits = &state.config.limits;
    let mut incoming = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => {
                return Err(ValidationError::field(
                    format!("messages[{i}].role"),
                    "must be user or assistant (the system prompt is the server's)",
                )
                .into())
            }
        };
        let text = m.text();
        let max = if role == Role::User {
            limits.max_message_chars
        } else {
            limits.max_reply_chars
        };
        input::message_content(&format!("messages[{i}].content"), &text, max)?;
        let client_id = m.id.as_deref().and_then(|id| ClientMessageId::parse(id).ok());
        incoming.push((role, text, client_id));
    }
    if matches!(trigger, Trigger::Submit) && incoming.last().map(|(r, _, _)| *r) != Some(Role::User) {
        return Err(ValidationError::field("messages", "must end with the user's new message").into());
    }
    let existing = match state
        .store
        .get_conversation_with_messages(&caller.user, &conversation_id)
        .await
    {
        Ok(found) => Some(found),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let requested_model = match body.model.as_deref() {
        Some(id) => Some(state.config.catalog.parse("model", id)?),
        None => None,
    };
    let now = state.now();
    let created = existing.is_none();
    let regenerate = matches!(trigger, Trigger::Regenerate(_));
    let (conversation, mut history, model, write) = match (existing, &trigger) {
        (Some((conversation, history)), Trigger::Submit) => {
            let model = requested_model
                .or_else(|| state.config.catalog.get(&conversation.model))
                .unwrap_or_else(|| state.config.catalog.default_model());
            let (_, text, client_id) = incoming.pop().unwrap_or((Role::User, String::new(), None));
            let mut message = Message::text(state.ids.message_id(), conversation.id.clone(), Role::User, text, now);
            message.client_id = client_id;
            let mut history = history;
            // A resubmit of a stored message: the history has it already, only the turn is admitted.
            let stored = message
                .client_id
                .as_ref()
                .is_some_and(|c| history.iter().any(|m| m.client_id.as_ref() == Some(c)));
            let write = if stored {
                TurnWrite::Check
            } else {
                history.push(message.clone());
                TurnWrite::Append { message }
            };
            (conversation, history, model, write)
        }
        (Some((conversation, mut history)), Trigger::Regenerate(target)) => {
            let model = requested_model
                .or_else(|| state.config.catalog.get(&conversation.model))
                .unwrap_or_else(|| state.config.catalog.default_model());
            let last_assistant = history.iter().rposition(|m| m.role == Role::Assistant);
            let target_matches = |m: &Message| match target {
                None => true,
                Some(t) => m.id.as_str() == t || m.client_id.as_ref().is_some_and(|c| c.as_str() == t),
            };
            let mut remove = None;
            if let Some(i) = last_assistant.filter(|i| *i + 1 == history.len() && target_matches(&history[*i])) {
                remove = Some(history.remove(i));
            }
            if history.last().map(|m| m.role) != Some(Role::User) {
                return Err(ValidationError::field("messageId", "there is no reply to regenerate").into());
            }
            let preview = history.last().map(|m| domain::preview(&m.content));
            (conversation, history, model, TurnWrite::Regenerate { remove, preview })
        }
        (None, Trigger::Regenerate(_)) => return Err(ApiError::NotFound("conversation not found".to_owned())),
        (None, Trigger::Submit) => {
            let model = requested_model.unwrap_or_else(|| state.config.catalog.default_model());
            let first_user = incoming
                .iter()
                .find(|(r, _, _)| *r == Role::User)
                .map(|(_, t, _)| t.as_str())
                .unwrap_or_default();
            let conversation = Conversation {
                id: conversation_id.clone(),
                owner: caller.user.clone(),
                title: Title::from_first_message(first_user, TITLE_CHARS).as_str().to_owned(),
                is_pinned: false,
                is_shared: false,
                model: model.id.to_owned(),
                solution_type: solution,
                created_at: now,
                updated_at: now,
                last_message: None,
                message_count: 0,
            };
            let messages: Vec<Message> = incoming
                .into_iter()
                .map(|(role, text, client_id)| {
                    let mut m = Message::text(state.ids.message_id(), conversation.id.clone(), role, text, now);
                    m.client_id = client_id;
                    m
                })
                .collect();
            let write = TurnWrite::Create {
                conversation: conversation.clone(),
                messages: messages.clone(),
            };
            (conversation, messages, model, write)
        }
    };
    // One atomic write admits the turn: rate limit, budgets, stream slot, the user's message.
    let config = &state.config;
    let start = TurnStart {
        owner: caller.user.clone(),
        conversation_id: conversation.id.clone(),
        write,
        limits: TurnLimits {
            requests_per_minute: config.rate_limit_per_minute,
            tokens_per_day: config.token_budget_day,
            tokens_per_month: config.token_budget_month,
            max_streams: config.max_concurrent_streams,
            lease_secs: i64::try_from(state.chat.total_timeout.as_secs()).unwrap_or(240) + LEASE_MARGIN_SECS,
        },
        turn_id: state.ids.next_ulid(),
        now,
    };
    let begun = match state.store.begin_turn(&start).await {
        Ok(begun) => begun,
        // The id exists but is not the caller's: answer as if it did not exist.
        Err(StoreError::Conflict(_)) if created => return Err(ApiError::NotFound("conversation not found".to_owned())),
        Err(e) => return Err(e.into()),
    };
    history.retain(|m| !(m.role == Role::Assistant && m.content.trim().is_empty() && m.parts.is_empty()));
    let tools = match (&state.chat.search, body.web_search) {
        (Some(_), true) => vec![web_search_spec()],
        _ => Vec::new(),
    };
    let turn = Turn {
        state: Arc::clone(state),
        model_port,
        caller: caller.clone(),
        conversation,
        model,
        system: system_prompt(solution),
        context: context_for(&history, model, system_prompt(solution)),
        tools,
        reply_id: state.ids.message_id(),
        protocol,
        solution,
        created,
        regenerate,
        lease: begun.lease,
        started_at: now,
        request_id: req.request_id.clone(),
    };
    Ok(turn.start())
}

fn web_search_spec() -> ToolSpec {
    ToolSpec {
        name: "webSearch".to_owned(),
        description: "Search the web for current information. Returns result titles, URLs and snippets.".to_owned(),
        input_schema: json!({
            "type": "object",
            "properties": {"query": {"type": "string", "description": "The search query"}},
            "required": ["query"]
        }),
    }
}

/// Converts stored history into the model's context: user/assistant alternation (consecutive
/// messages of one role merged), starting with a user message, trimmed from the oldest end to
/// fit the model's window (estimated at 3 characters per token), the newest message always kept.
pub fn context_for(history: &[Message], model: &ModelInfo, system: &str) -> Vec<ModelMessage> {
    let budget_chars = (model.context_window as usize)
        .saturating_sub(model.max_output_tokens.min(16_000) as usize)
        .saturating_mul(3)
        .saturating_sub(system.len());
    let mut kept: Vec<&Message> = Vec::new();
    let mut used = 0usize;
    for m in history.iter().rev() {
        if !matches!(m.role, Role::User | Role::Assistant) {
            continue;
        }
        let size = m.content.len() + 16;
        if !kept.is_empty() && used + size > budget_chars {
            break;
        }
        used += size;
        kept.push(m);
    }
    kept.reverse();
    let mut out: Vec<ModelMessage> = Vec::new();
    for m in kept {
        let role = if m.role == Role::User {
            ModelRole::User
        } else {
            ModelRole::Assistant
        };
        if out.is_empty() && role == ModelRole::Assistant {
            continue;
        }
        let text = m.content.clone();
        match out.last_mut() {
            Some(last) if last.role == role => {
                if let Some(ModelContent::Text(t)) = last.content.last_mut() {
                    t.push_str("\n\n");
                    t.push_str(&text);
                } else {
                    last.content.push(ModelContent::Text(text));
                }
            }
            _ => out.push(ModelMessage {
                role,
                content: vec![ModelContent::Text(text)],
            }),
        }
    }
    out
}

/// One streaming turn, run by a task that feeds the response body through a bounded channel.
struct Turn {
    state: Arc<AppState>,
    model_port: Arc<dyn ChatModel>,
    caller: Caller,
    conversation: Conversation,
    model: &'static ModelInfo,
    system: &'static str,
    context: Vec<ModelMessage>,
    tools: Vec<ToolSpec>,
    reply_id: domain::MessageId,
    protocol: Protocol,
    solution: Option<Solution>,
    created: bool,
    regenerate: bool,
    lease: Option<StreamLease>,
    started_at: domain::Timestamp,
    request_id: String,
}

/// Frees a turn's stream slot if its task ends before `finish_turn` (a panic, a cancelled
/// runtime), so the slot need not wait for the lease to expire.
struct SlotGuard {
    state: Arc<AppState>,
    owner: crate::domain::UserId,
    lease: Option<StreamLease>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (state, owner) = (Arc::clone(&self.state), self.owner.clone());
        runtime.spawn(async move {
            let release = TurnFinish {
                owner,
                reply: None,
                lease: Some(lease),
                tokens: 0,
                started: domain::now(),
                stats: None,
            };
            if let Err(e) = state.store.finish_turn(&release).await {
                tracing::warn!(error = %e, "releasing the stream slot of an interrupted turn failed");
            }
        });
    }
}

/// How a turn ended.
struct Outcome {
    text: String,
    parts: Vec<MessagePart>,
    usage: Usage,
    model: String,
    finish: FinishReason,
    error: Option<(String, String)>,
    first_token: Option<Duration>,
}

/// Sends chunks to the client; remembers when the client went away.
struct Sink {
    tx: mpsc::Sender<Bytes>,
    gone: bool,
}

impl Sink {
    async fn send(&mut self, chunks: impl IntoIterator<Item = Bytes>) {
        for chunk in chunks {
            if self.gone {
                return;
            }
            if self.tx.send(chunk).await.is_err() {
                self.gone = true;
            }
        }
    }
}

impl Turn {
    fn start(self) -> Response<Body> {
        let (tx, mut rx) = mpsc::channel::<Bytes>(32);
        let protocol = self.protocol;
        let conversation_id = self.conversation.id.to_string();
        // The turn outlives the handler: it keeps the request's span (request id, user) so every
        // log line it writes carries them.
        tokio::spawn(tracing::Instrument::instrument(self.run(tx), tracing::Span::current()));
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
            .map(|bytes| Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes)));
        let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
        *response.headers_mut() = protocol.headers();
        if let Ok(v) = http::HeaderValue::from_str(&conversation_id) {
            response.headers_mut().insert("x-conversation-id", v);
        }
        response
    }

    async fn run(self, tx: mpsc::Sender<Bytes>) {
        let started = Instant::now();
        let mut guard = SlotGuard {
            state: Arc::clone(&self.state),
            owner: self.caller.user.clone(),
            lease: self.lease.clone(),
        };
        let mut sink = Sink { tx, gone: false };
        let mut encoder = Encoder::new(self.protocol);
        sink.send(encoder.start(
            self.reply_id.as_str(),
            json!({"conversationId": self.conversation.id.as_str()}),
        ))
        .await;
        let mut outcome = self.generate(&mut sink, &mut encoder, started).await;
        let latency = started.elapsed();
        let finish = if sink.gone {
            FinishReason::Aborted
        } else {
            outcome.finish
        };
        // Store what there is: a reply, a partial reply, or the record of a failure after output.
        // The reply text and parts move into the stored message (a long reply is held once).
        let reply = (!outcome.text.is_empty() || !outcome.parts.is_empty()).then(|| {
            let mut reply = Message::text(
                self.reply_id.clone(),
                self.conversation.id.clone(),
                Role::Assistant,
                std::mem::take(&mut outcome.text),
                domain::now(),
            );
            reply.parts = std::mem::take(&mut outcome.parts);
            reply.model = Some(outcome.model.clone());
            reply.usage = Some(outcome.usage);
            reply.latency_ms = Some(latency.as_millis() as u64);
            reply.finish_reason = Some(finish);
            reply.error = outcome.error.as_ref().map(|(code, _)| code.clone());
            reply
        });
        let answered = self.state.config.catalog.get(&outcome.model).unwrap_or(self.model);
        let record = crate::analytics::TurnRecord {
            solution: self.solution,
            user: self.caller.user.clone(),
            conversation_id: self.conversation.id.to_string(),
            model: answered,
            fell_back_from: (answered.id != self.model.id).then(|| self.model.id.to_owned()),
            usage: outcome.usage,
            latency_ms: latency.as_millis() as u64,
            ttft_ms: outcome.first_token.map(|d| d.as_millis() as u64),
            error: outcome.error.as_ref().map(|(code, _)| code.clone()),
            created_conversation: self.created,
            at: domain::now(),
        };
        // One atomic write: the reply and the conversation's touch, the tokens charged to the
        // budgets (from the usage the model reported), the stream slot released, the counters.
        let config = &self.state.config;
        let charge = config.token_budget_day > 0 || config.token_budget_month > 0;
        let has_reply = reply.is_some();
        let finishing = TurnFinish {
            owner: self.caller.user.clone(),
            reply,
            lease: self.lease.clone(),
            tokens: if charge {
                outcome.usage.input_tokens + outcome.usage.output_tokens
            } else {
                0
            },
            started: self.started_at,
            stats: Some(crate::analytics::turn_stats(&record)),
        };
        let ended = self.state.store.finish_turn(&finishing).await;
        // Released with the reply (or, if that write failed, left to its lease's expiry).
        guard.lease = None;
        let stored = match ended {
            Ok(()) => has_reply,
            Err(e) => {
                tracing::error!(error = %e, "storing the end of the turn failed");
                false
            }
        };
        tracing::info!(
            conversation = %self.conversation.id,
            model = %outcome.model,
            finish = ?finish,
            input_tokens = outcome.usage.input_tokens,
            output_tokens = outcome.usage.output_tokens,
            first_token_ms = outcome.first_token.map(|d| d.as_millis() as u64),
            latency_ms = latency.as_millis() as u64,
            stored,
            error = outcome.error.as_ref().map(|(code, _)| code.as_str()),
            "chat turn"
        );
        if !sink.gone {
            if let Some((_, message)) = &outcome.error {
                let chunks = encoder.error(message);
                sink.send(chunks).await;
                sink.send(encoder.done()).await;
            } else {
                let metadata = self.metadata(&outcome, finish, latency);
                let chunks = encoder.finish(metadata);
                sink.send(chunks).await;
            }
        }
        // The client has everything; record the events and the audit entry (one batch) before the
        // body closes (a Lambda instance may be frozen once it does), bounded in time.
        let events = crate::analytics::turn_events(&self.state.ids, &record);
        let action = if self.regenerate {
            crate::audit::action::CHAT_REGENERATE
        } else {
            crate::audit::action::CHAT_TURN
        };
        let status = outcome.error.as_ref().map_or("ok", |(code, _)| code.as_str());
        let audit = crate::audit::entry(
            &self.state.ids,
            &self.caller.user,
            action,
            Some(self.conversation.id.to_string()),
            status,
            Some(&self.request_id),
            config.audit_retention_days,
        );
        let recording = self.state.store.record_activity(&events, std::slice::from_ref(&audit));
        match tokio::time::timeout(Duration::from_millis(1500), recording).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "recording analytics and audit failed"),
            Err(_) => tracing::warn!("recording analytics and audit timed out"),
        }
        crate::analytics::emit_metrics(&record);
    }

    fn metadata(&self, outcome: &Outcome, finish: FinishReason, latency: Duration) -> Value {
        json!({
            "conversationId": self.conversation.id.as_str(),
            "model": outcome.model,
            "finishReason": finish,
            "usage": outcome.usage,
            "latencyMs": latency.as_millis() as u64,
            "firstTokenMs": outcome.first_token.map(|d| d.as_millis() as u64),
        })
    }

    /// Runs the model (fallback chain, tool loop, timeouts), streaming to the sink.
    async fn generate(&self, sink: &mut Sink, encoder: &mut Encoder, started: Instant) -> Outcome {
        let deadline = tokio::time::Instant::from_std(started + self.state.chat.total_timeout);
        let mut outcome = Outcome {
            text: String::new(),
            parts: Vec::new(),
            usage: Usage::default(),
            model: self.model.id.to_owned(),
            finish: FinishReason::Stop,
            error: None,
            first_token: None,
        };
        let mut candidates: Vec<String> = vec![self.model.id.to_owned()];
        for f in &self.state.chat.fallback {
            if !candidates.contains(f) {
                candidates.push(f.clone());
            }
        }
        let mut context = self.context.clone();
        let mut emitted = false;
        for step in 0..MAX_STEPS {
            sink.send(encoder.start_step()).await;
            let mut tool_calls: Vec<(String, String, Value)> = Vec::new();
            // This step's text is the tail of the reply from here (no second copy while streaming).
            let step_start = outcome.text.len();
            let mut stop = None;
            // Find a model that starts (fallback only while nothing has been emitted).
            let mut stream = None;
            let mut last_error = None;
            for candidate in &candidates {
                if emitted && candidate != &outcome.model {
                    continue;
                }
                let request = ModelRequest {
                    model: candidate.clone(),
                    system: self.system.to_owned(),
                    messages: context.clone(),
                    max_tokens: self.state.chat.max_output_tokens.min(self.model.max_output_tokens),
                    tools: self.tools.clone(),
                };
                let first_deadline = (tokio::time::Instant::now() + self.state.chat.first_token_timeout).min(deadline);
                let attempt = tokio::time::timeout_at(first_deadline, async {
                    let mut s = self.model_port.stream(request).await?;
                    // Peek the first event so an immediate throttle still falls back.
                    match s.next().await {
                        Some(Ok(first)) => Ok((first, s)),
                        Some(Err(e)) => Err(e),
                        None => Err(ProviderError::Stream("the model ended without output".to_owned())),
                    }
                })
                .await
                .unwrap_or_else(|_| Err(ProviderError::Timeout("no first token in time".to_owned())));
                match attempt {
                    Ok(pair) => {
                        if candidate != &outcome.model {
                            tracing::warn!(from = %outcome.model, to = %candidate, "fell back to another model");
                        }
                        outcome.model = candidate.clone();
                        stream = Some(pair);
                        break;
                    }
                    Err(e) if e.is_fallback_worthy() && !emitted => {
                        tracing::warn!(model = %candidate, error = %e, "model failed before output");
                        last_error = Some(e);
                    }
                    Err(e) => {
                        last_error = Some(e);
                        break;
                    }
                }
            }
            let Some((first, mut rest)) = stream else {
                let e = last_error.unwrap_or_else(|| ProviderError::Unavailable("no model available".to_owned()));
                outcome.finish = FinishReason::Error;
                outcome.error = Some((e.code().to_owned(), public_provider_message(&e)));
                return outcome;
            };
            let mut next = Some(Ok(first));
            loop {
                let event = match next.take() {
                    Some(e) => Some(e),
                    None => tokio::select! {
                        e = rest.next() => e,
                        () = tokio::time::sleep_until(deadline) => {
                            Some(Err(ProviderError::Timeout("the reply took longer than allowed".to_owned())))
                        }
                        () = sink.tx.closed() => {
                            sink.gone = true;
                            None
                        }
                    },
                };
                let Some(event) = event else { break };
                match event {
                    Ok(ModelEvent::TextDelta(delta)) => {
                        if outcome.first_token.is_none() {
                            outcome.first_token = Some(started.elapsed());
                        }
                        emitted = true;
                        outcome.text.push_str(&delta);
                        let chunks = encoder.text(&delta);
                        sink.send(chunks).await;
                    }
                    Ok(ModelEvent::ToolUse { id, name, input }) => {
                        emitted = true;
                        let chunks = encoder.tool_call(&id, &name, &input);
                        sink.send(chunks).await;
                        tool_calls.push((id, name, input));
                    }
                    Ok(ModelEvent::Stop(reason)) => stop = Some(reason),
                    Ok(ModelEvent::Usage(u)) => {
                        outcome.usage.input_tokens += u.input_tokens;
                        outcome.usage.output_tokens += u.output_tokens;
                        outcome.usage.cache_read_tokens += u.cache_read_tokens;
                        outcome.usage.cache_write_tokens += u.cache_write_tokens;
                    }
                    Err(e) => {
                        outcome.finish = FinishReason::Error;
                        outcome.error = Some((e.code().to_owned(), public_provider_message(&e)));
                        return outcome;
                    }
                }
                if sink.gone {
                    break;
                }
            }
            if sink.gone {
                outcome.finish = FinishReason::Aborted;
                return outcome;
            }
            sink.send(encoder.finish_step()).await;
            // A stream that ends without saying why was cut short: keep the partial reply, flag it.
            let Some(reason) = stop else {
                let e = ProviderError::Stream("the reply ended without a stop reason".to_owned());
                outcome.finish = FinishReason::Error;
                outcome.error = Some((e.code().to_owned(), public_provider_message(&e)));
                return outcome;
            };
            outcome.finish = reason.finish_reason();
            if tool_calls.is_empty() || step + 1 == MAX_STEPS {
                return outcome;
            }
            // Run the tools and go round again with their results.
            let mut assistant = Vec::new();
            let step_text = outcome.text.get(step_start..).unwrap_or_default();
            if !step_text.is_empty() {
                assistant.push(ModelContent::Text(step_text.to_owned()));
            }
            let mut results = Vec::new();
            for (id, name, input) in tool_calls {
                let (output, is_error) = self.run_tool(&name, &input).await;
                sink.send(encoder.tool_result(&id, &output, is_error)).await;
                outcome.parts.push(MessagePart::ToolCall {
                    tool_call_id: id.clone(),
                    tool_name: name.clone(),
                    input: input.clone(),
                });
                outcome.parts.push(MessagePart::ToolResult {
                    tool_call_id: id.clone(),
                    tool_name: name.clone(),
                    output: output.clone(),
                    is_error,
                });
                assistant.push(ModelContent::ToolUse {
                    id: id.clone(),
                    name,
                    input,
                });
                results.push(ModelContent::ToolResult {
                    id,
                    content: output,
                    is_error,
                });
            }
            context.push(ModelMessage {
                role: ModelRole::Assistant,
                content: assistant,
            });
            context.push(ModelMessage {
                role: ModelRole::User,
                content: results,
            });
        }
        outcome
    }

    async fn run_tool(&self, name: &str, input: &Value) -> (Value, bool) {
        match (name, &self.state.chat.search) {
            ("webSearch", Some(search)) => {
                let query = input["query"].as_str().unwrap_or_default();
                match web_search(search, query).await {
                    Ok(v) => (v, false),
                    Err(e) => {
                        tracing::warn!(error = %e, "web search failed");
                        (Value::String("the search service failed".to_owned()), true)
                    }
                }
            }
            _ => (Value::String(format!("unknown tool {name}")), true),
        }
    }
}

/// What the client is told about a provider failure (no provider internals).
fn public_provider_message(e: &ProviderError) -> String {
    match e {
        ProviderError::Throttled(_) => "The model is busy right now (throttled). Please retry in a moment.",
        ProviderError::Unavailable(_) => "The model service is unavailable right now. Please retry.",
        ProviderError::Timeout(_) => "The model did not answer in time.",
        ProviderError::Refused(_) => "The model refused the request.",
        ProviderError::Stream(_) => "The reply was interrupted by the model service.",
    }
    .to_owned()
}

/// Calls the search API; the answer is trimmed to keep the context small.
async fn web_search(search: &SearchConfig, query: &str) -> Result<Value, String> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| crate::http::client(Some(Duration::from_secs(10))));
    let mut req = client
        .post(&search.url)
        .json(&json!({"query": query, "max_results": 5}));
    if let Some(key) = &search.api_key {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("search answered {}", res.status()));
    }
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    let results = body.get("results").cloned().unwrap_or(body);
    let text = results.to_string();
    if text.len() > 16 * 1024 {
        let cut: String = text.chars().take(16 * 1024).collect();
        return Ok(Value::String(cut));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MODELS;

    fn msg(role: Role, text: &str) -> Message {
        let ids = crate::domain::IdGenerator::new();
        Message::text(
            ids.message_id(),
            ConversationId::parse("c").unwrap_or_else(|_| unreachable!()),
            role,
            text.to_owned(),
            domain::now(),
        )
    }

    #[test]
    fn context_alternates_starts_with_the_user_and_merges_runs() {
        let history = vec![
            msg(Role::Assistant, "hello"),
            msg(Role::User, "a"),
            msg(Role::User, "b"),
            msg(Role::Assistant, "c"),
            msg(Role::User, "d"),
        ];
        let context = context_for(&history, &MODELS[0], "sys");
        let roles: Vec<_> = context.iter().map(|m| m.role).collect();
        assert_eq!(roles, [ModelRole::User, ModelRole::Assistant, ModelRole::User]);
        assert_eq!(context[0].content, vec![ModelContent::Text("a\n\nb".to_owned())]);
    }

    #[test]
    fn context_is_trimmed_to_the_window_keeping_the_newest() {
        let mut small = MODELS[0].clone();
        small.context_window = 1_000;
        small.max_output_tokens = 100;
        let big = "x".repeat(1_500);
        let history = vec![
            msg(Role::User, &big),
            msg(Role::Assistant, &big),
            msg(Role::User, "newest"),
        ];
        let context = context_for(&history, &small, "");
        assert_eq!(context.len(), 1);
        assert_eq!(context[0].content, vec![ModelContent::Text("newest".to_owned())]);
    }

    #[test]
    fn every_solution_has_a_prompt_and_capabilities() {
        for s in std::iter::once(None).chain(Solution::ALL.into_iter().map(Some)) {
            assert!(system_prompt(s).len() > 200, "{s:?}");
            assert!(!capabilities(s).is_empty(), "{s:?}");
        }
    }
}

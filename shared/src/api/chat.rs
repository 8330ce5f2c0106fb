//! The HTTP half of chat: `GET /api/chat[/solution]` (models, capabilities) and
//! `POST /api/chat[/solution]`: the body (either client's shape) parsed and validated into a
//! [`ChatRequest`], the wire protocol negotiated, the turn started ([`crate::chat::start`]) and
//! its [`TurnEvent`]s encoded as the response streams (AI SDK UI message stream or plain text).

use std::sync::Arc;

use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{input, ApiRequest, AppState, Body, Caller};
use crate::chat::{self, ApprovalAnswer, ChatRequest, IncomingMessage, Trigger, TurnEvent, TurnStream};
use crate::domain::{ClientMessageId, ConversationId, FileId, Role, Solution};
use crate::error::ValidationError;
use crate::stream::{Encoder, Protocol};

/// `GET /api/chat[/solution]`: models, solution, capabilities.
/// `GET /api/chat[/solution]`: the caller's models (those of their plan), the solution, its
/// capabilities, whether chat is on.
pub fn info(state: &AppState, caller: &Caller, solution: Option<Solution>) -> Result<Response<Body>, ApiError> {
    chat::serves(state, solution)?;
    let catalog = &state.config.catalog;
    let plan = &caller.plan;
    let models: Vec<_> = catalog.models().iter().filter(|m| plan.allows(m.id)).collect();
    let default = if plan.allows(catalog.default_model().id) {
        Some(catalog.default_model().id)
    } else {
        models.first().map(|m| m.id)
    };
    super::json(
        StatusCode::OK,
        &json!({
            "models": models,
            "defaultModel": default,
            "solutionType": solution,
            "capabilities": chat::capabilities(solution),
            "webSearch": state.config.chat.search.is_some() && plan.web_search,
            "attachments": plan.attachments,
            "plan": plan.name,
            "chatEnabled": state.config.plans.chat_enabled,
            "aliases": catalog
                .aliases()
                .into_iter()
                .filter(|(_, m)| plan.allows(m.id))
                .map(|(alias, m)| (alias, Value::from(m.id)))
                .collect::<serde_json::Map<String, Value>>(),
        }),
    )
}

/// [`post`] as a [`crate::state::ChatTurn`] (the pointer the chat function's state holds).
pub fn post_boxed<'a>(
    state: &'a Arc<AppState>,
    caller: &'a Caller,
    solution: Option<Solution>,
    req: &'a ApiRequest,
) -> futures::future::BoxFuture<'a, Result<Response<Body>, ApiError>> {
    Box::pin(post(state, caller, solution, req))
}

/// `POST /api/chat[/solution]`.
pub async fn post(
    state: &Arc<AppState>,
    caller: &Caller,
    solution: Option<Solution>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    chat::serves(state, solution)?;
    let body: ChatBody = input::json_body(req, false)?;
    let protocol = Protocol::negotiate(
        req.query_param("protocol"),
        req.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()),
    )
    .map_err(|_| ValidationError::field("protocol", "must be text or ui-message"))?;
    let mut request = body.validate(state)?;
    request.caller_token = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::to_owned);
    let turn = chat::start(
        state,
        &caller.user,
        (&caller.grantees(), super::policy::may_chat),
        &caller.plan,
        solution,
        request,
        &req.request_id,
    )
    .await?;
    Ok(streamed(turn, protocol))
}

/// `GET /api/chat[/solution]/{id}/stream`: the AI SDK's `reconnectToStream`. The conversation's
/// running (or just finished) turn replayed from its `start` and followed live; `204` when there
/// is nothing to resume (including another user's conversation, or resumable streams off).
pub async fn resume(
    state: &Arc<AppState>,
    caller: &Caller,
    solution: Option<Solution>,
    id: ConversationId,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let protocol = Protocol::negotiate(
        req.query_param("protocol"),
        req.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()),
    )
    .map_err(|_| ValidationError::field("protocol", "must be text or ui-message"))?;
    match chat::resume(state, &caller.user, solution, id).await? {
        Some(turn) => Ok(streamed(turn, protocol)),
        None => Ok(super::no_content()),
    }
}

/// `POST /api/chat[/solution]/{id}/stop`: asks the conversation's running turn to stop (on
/// whichever instance runs it). `202` with the turn's reply id when one was running (it ends
/// within a checkpoint interval, its partial reply stored as `aborted`); `204` when none was.
pub async fn stop(
    state: &Arc<AppState>,
    caller: &Caller,
    solution: Option<Solution>,
    id: ConversationId,
) -> Result<Response<Body>, ApiError> {
    match chat::stop(state, &caller.user, solution, id).await? {
        Some(live) => super::json(
            StatusCode::ACCEPTED,
            &json!({"stopping": true, "messageId": live.reply_id.as_str()}),
        ),
        None => Ok(super::no_content()),
    }
}

/// A message as either client sends it: `content` a string (or null), `parts` objects with a
/// string `type` (other fields of a part are the AI SDK's and ignored, except a text part's
/// `text`, a string or null).
#[derive(Deserialize)]
struct WireMessage {
    id: Option<String>,
    role: String,
    content: Option<String>,
    parts: Option<Vec<WirePart>>,
}

/// A UIMessage part: text parts' text, and tool parts' approval answers (`tool-<name>` or
/// `dynamic-tool` parts with `approval.approved` set); everything else is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    url: Option<String>,
    tool_call_id: Option<String>,
    approval: Option<WireApproval>,
}

/// A tool part's approval: `{id, approved?, reason?}`.
#[derive(Deserialize)]
struct WireApproval {
    id: String,
    approved: Option<bool>,
    reason: Option<String>,
}

impl WireMessage {
    /// The text: the seed's `content` string, or the AI SDK's text parts joined.
    fn text(&self) -> String {
        if let Some(s) = &self.content {
            return s.clone();
        }
        let mut out = String::new();
        for part in self.parts.iter().flatten() {
            if part.kind == "text" {
                out.push_str(part.text.as_deref().unwrap_or_default());
            }
        }
        out
    }

    /// The files of its `file` parts (message `i` of the body): each names an uploaded file by
    /// its Athena URL (`/api/files/{id}`); inline data and other URLs are refused with the way
    /// to attach instead.
    fn files(&self, i: usize) -> Result<Vec<FileId>, ApiError> {
        let mut out = Vec::new();
        for (j, part) in self.parts.iter().flatten().enumerate() {
            if part.kind != "file" {
                continue;
            }
            let url = part.url.as_deref().unwrap_or_default();
            let Some(id) = crate::domain::file::file_id_of_url(url) else {
                return Err(ValidationError::field(
                    format!("messages[{i}].parts[{j}].url"),
                    "must be the url of a file uploaded with POST /api/files (/api/files/{id}); \
                     inline data URLs and other links are not accepted",
                )
                .into());
            };
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// The approval answers of its tool parts (message `i` of the body).
    fn approvals(&self, i: usize) -> Result<Vec<ApprovalAnswer>, ApiError> {
        let mut out = Vec::new();
        for part in self.parts.iter().flatten() {
            if !(part.kind.starts_with("tool-") || part.kind == "dynamic-tool") {
                continue;
            }
            let Some(WireApproval {
                id,
                approved: Some(approved),
                reason,
            }) = &part.approval
            else {
                continue;
            };
            let Some(call) = part.tool_call_id.as_ref().filter(|c| !c.is_empty() && c.len() <= 128) else {
                return Err(ValidationError::field(
                    format!("messages[{i}].parts"),
                    "a tool part with an approval needs its toolCallId",
                )
                .into());
            };
            if id.is_empty() || id.len() > 128 || reason.as_ref().is_some_and(|r| r.chars().count() > 1_000) {
                return Err(ValidationError::field(
                    format!("messages[{i}].parts"),
                    "an approval needs an id of 1 to 128 characters and a reason of at most 1000",
                )
                .into());
            }
            out.push(ApprovalAnswer {
                approval_id: id.clone(),
                tool_call_id: call.clone(),
                approved: *approved,
                reason: reason.clone(),
            });
        }
        Ok(out)
    }
}

/// The chat body: both shapes, lenient about extra fields the frontend adds to its transport
/// body, strict about the fields it reads. Like every optional field of every body, `null`
/// means the same as leaving the field out.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatBody {
    id: Option<String>,
    messages: Option<Vec<WireMessage>>,
    model: Option<String>,
    conversation_id: Option<String>,
    web_search: Option<bool>,
    trigger: Option<String>,
    message_id: Option<String>,
}

impl ChatBody {
    /// Checks the trigger, the conversation id, every message's role and length, and the model.
    fn validate(self, state: &AppState) -> Result<ChatRequest, ApiError> {
        let trigger = match self.trigger.as_deref() {
            None | Some("submit-message") => Trigger::Submit,
            Some("regenerate-message") => Trigger::Regenerate(self.message_id.clone()),
            Some(_) => {
                return Err(ValidationError::field("trigger", "must be submit-message or regenerate-message").into())
            }
        };
        // `conversationId` wins over `id`, but whichever is sent must be a valid id.
        let parse_id = |field: &str, raw: &str| {
            ConversationId::parse(raw)
                .map_err(|_| ValidationError::field(field, "must be 1 to 64 characters of letters, digits, '_' or '-'"))
        };
        let id = self.id.as_deref().map(|raw| parse_id("id", raw)).transpose()?;
        let conversation_id = match self.conversation_id.as_deref() {
            Some(raw) => parse_id("conversationId", raw)?,
            None => id.unwrap_or_else(|| state.ids.conversation_id()),
        };
        let limits = &state.config.limits;
        let wire = self.messages.unwrap_or_default();
        let mut messages = Vec::with_capacity(wire.len());
        for (i, m) in wire.iter().enumerate() {
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
            let approvals = m.approvals(i)?;
            let files = if role == Role::User { m.files(i)? } else { Vec::new() };
            if files.len() > state.config.files.max_per_message {
                return Err(ValidationError::field(
                    format!("messages[{i}].parts"),
                    format!(
                        "at most {} files may be attached to one message",
                        state.config.files.max_per_message
                    ),
                )
                .into());
            }
            // A reply that only called a tool has no text; answering its approvals is still
            // valid. A message of attachments alone needs no text either.
            let textless = (role == Role::Assistant && !approvals.is_empty()) || !files.is_empty();
            if !(textless && text.trim().is_empty()) {
                input::message_content(&format!("messages[{i}].content"), &text, max)?;
            }
            let client_id = m.id.as_deref().and_then(|id| ClientMessageId::parse(id).ok());
            if role == Role::User && !approvals.is_empty() {
                return Err(ValidationError::field(
                    format!("messages[{i}].parts"),
                    "only an assistant message answers tool approvals",
                )
                .into());
            }
            messages.push(IncomingMessage {
                role,
                text,
                client_id,
                approvals,
                files,
                attachments: Vec::new(),
            });
        }
        let model = match self.model.as_deref() {
            Some(id) => Some(state.config.catalog.parse("model", id)?),
            None => None,
        };
        Ok(ChatRequest {
            conversation_id,
            trigger,
            messages,
            model,
            web_search: self.web_search.unwrap_or(false),
            caller_token: None,
        })
    }
}

/// The streamed response: each event encoded as it arrives; the turn sees the client go away
/// when this body is dropped.
fn streamed(turn: TurnStream, protocol: Protocol) -> Response<Body> {
    let TurnStream {
        conversation_id,
        mut events,
        budget_headers,
    } = turn;
    let mut encoder = Encoder::new(protocol);
    let stream = futures::stream::poll_fn(move |cx| events.poll_recv(cx))
        .flat_map(move |event| futures::stream::iter(encode(&mut encoder, event)))
        .map(|bytes| Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes)));
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    *response.headers_mut() = protocol.headers();
    if let Ok(v) = http::HeaderValue::from_str(conversation_id.as_str()) {
        response.headers_mut().insert("x-conversation-id", v);
    }
    for (name, value) in budget_headers {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

/// One event on the wire.
fn encode(encoder: &mut Encoder, event: TurnEvent) -> Vec<bytes::Bytes> {
    match event {
        TurnEvent::Start { message_id, metadata } => encoder.start(message_id.as_str(), metadata).into_iter().collect(),
        TurnEvent::StartStep => encoder.start_step().into_iter().collect(),
        TurnEvent::Text(delta) => encoder.text(&delta),
        TurnEvent::ToolCall { id, name, input } => encoder.tool_call(&id, &name, &input),
        TurnEvent::ToolResult { id, output, is_error } => {
            encoder.tool_result(&id, &output, is_error).into_iter().collect()
        }
        TurnEvent::ToolApprovalRequest {
            approval_id,
            tool_call_id,
        } => encoder.tool_approval_request(&approval_id, &tool_call_id),
        TurnEvent::ToolDenied { id } => encoder.tool_output_denied(&id),
        TurnEvent::FinishStep => encoder.finish_step(),
        TurnEvent::Finish { metadata } => encoder.finish(metadata),
        TurnEvent::Error { message } => {
            let mut out = encoder.error(&message);
            out.extend(encoder.done());
            out
        }
    }
}

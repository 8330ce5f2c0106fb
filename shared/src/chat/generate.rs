//! Generation: the admitted turn runs in its own task, streams the model (fallback chain, tool
//! loop, timeouts) event by event into a bounded channel, then finishes (`finish`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::estimate::{self, Progress};
use super::events::{TurnEvent, TurnStream};
use super::plan::TurnPlan;
use super::{tools, MAX_STEPS};
use crate::domain::{Approval, FinishReason, MessageId, MessagePart, Solution, Usage, UserId};
use crate::llm::{ChatModel, ModelContent, ModelEvent, ModelMessage, ModelRequest, ModelRole, ModelStream, ToolSpec};
use crate::llm::{ProviderError, StopReason};
use crate::state::AppState;
use crate::store::StreamLease;

/// Events buffered between the turn and a slow client.
const CHANNEL_EVENTS: usize = 32;

/// One admitted turn.
pub(super) struct Turn {
    pub(super) state: Arc<AppState>,
    pub(super) model_port: Arc<dyn ChatModel>,
    /// The caller: who the turn is charged to and recorded as (analytics, audit, their files
    /// and tools).
    pub(super) user: UserId,
    /// The conversation's owner (the caller, or whoever shared it with them as a collaborator):
    /// the conversation's key in the store (admission, checkpoints, the reply).
    pub(super) owner: UserId,
    pub(super) plan: TurnPlan,
    pub(super) system: String,
    pub(super) context: Vec<ModelMessage>,
    pub(super) tools: Vec<ToolSpec>,
    /// The tools' runner (web search, MCP servers), and which calls wait for approval.
    pub(super) toolbox: tools::Toolbox,
    pub(super) reply_id: MessageId,
    pub(super) solution: Option<Solution>,
    /// The turn's id ([`crate::store::TurnStart::turn_id`]): its finish is written once per id.
    pub(super) turn_id: String,
    pub(super) lease: Option<StreamLease>,
    /// Tokens reserved on the budgets at admission (0: budgets off), settled when the turn ends.
    pub(super) reserved: u64,
    /// Nano-dollars reserved on the month's dollar budget (0: no dollar budget).
    pub(super) reserved_nano_usd: u64,
    /// The part of `reserved` for the title request (0 without one).
    pub(super) title_reserved: u64,
    /// The caller's plan.
    pub(super) entitlement: Arc<crate::config::plans::Plan>,
    /// The output cap of the turn's model calls (deployment, plan and model).
    pub(super) output_cap: u32,
    /// The caller's budget items before admission, when a budget is on (the soft limit).
    pub(super) levels_before: Option<crate::store::BudgetLevels>,
    /// What has been sent and streamed so far, for settling a turn whose task dies.
    pub(super) progress: Arc<Progress>,
    pub(super) request_id: String,
    /// A title being written beside the reply (a new conversation, `ATHENA_TITLE_MODEL` set).
    pub(super) title_task: Option<tokio::task::JoinHandle<Option<super::title::Named>>>,
}

/// How the model part of a turn ended.
pub(super) struct Outcome {
    pub(super) text: String,
    pub(super) parts: Vec<MessagePart>,
    pub(super) usage: Usage,
    pub(super) model: String,
    pub(super) finish: FinishReason,
    /// The error code and the message the client may see.
    pub(super) error: Option<(String, String)>,
    pub(super) first_token: Option<Duration>,
    /// The estimated cost of the model calls that ended without reporting usage
    /// ([`estimate::unreported_call`]); charged on top of `usage`.
    pub(super) estimated: u64,
    /// Bytes of `text` already in `Text` parts (the rest goes into one when a tool part follows,
    /// or when the reply is stored with tool parts).
    pub(super) covered: usize,
}

impl Outcome {
    /// Puts the text not yet in a part into a `Text` part (before a tool part, and at the end
    /// of a reply that has tool parts), so the parts keep the order things happened in.
    pub(super) fn seal_text(&mut self) {
        if let Some(rest) = self.text.get(self.covered..).filter(|r| !r.is_empty()) {
            self.parts.push(MessagePart::Text { text: rest.to_owned() });
        }
        self.covered = self.text.len();
    }

    /// Tool calls made so far in this reply (a continued reply's earlier ones included).
    fn tool_calls(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, MessagePart::ToolCall { .. }))
            .count()
    }
}

impl Outcome {
    fn fail(&mut self, e: &ProviderError) {
        self.finish = FinishReason::Error;
        self.error = Some((e.code().to_owned(), public_provider_message(e)));
    }
}

/// Sends events to the client and to the checkpoints; remembers when the client went away and
/// when the turn was asked to stop.
pub(super) struct Sink {
    tx: mpsc::Sender<TurnEvent>,
    /// The client went away.
    pub(super) gone: bool,
    /// A disconnect does not stop the turn (`ATHENA_RESUMABLE_STREAMS`).
    pub(super) resumable: bool,
    /// The checkpoint writer (taken by the finish).
    pub(super) recorder: Option<super::checkpoint::Recorder>,
    /// Set when a stop is requested (`POST .../stop`), from any instance.
    stop: watch::Receiver<bool>,
    /// Keeps the stop signal's sender alive as long as the sink (the writer holds it too).
    _stop_tx: Arc<watch::Sender<bool>>,
    /// The turn was asked to stop.
    pub(super) stopped: bool,
}

impl Sink {
    /// Records the event in the checkpoints, then sends it to the client (if still there).
    pub(super) async fn send(&mut self, event: TurnEvent) {
        if let Some(recorder) = &self.recorder {
            recorder.record(&event);
        }
        self.send_to_client(event).await;
    }

    /// Sends the event to the client only (the finish's last event goes into the final checkpoint).
    pub(super) async fn send_to_client(&mut self, event: TurnEvent) {
        if !self.gone && self.tx.send(event).await.is_err() {
            self.gone = true;
        }
    }

    /// Whether generation should end: asked to stop, or the client left and the turn is not
    /// resumable.
    pub(super) fn should_end(&self) -> bool {
        self.stopped || (self.gone && !self.resumable)
    }

    /// Resolves once a stop is requested (never, if none is).
    async fn until_stopped(&mut self) {
        while !self.stopped {
            if *self.stop.borrow_and_update() {
                self.stopped = true;
                return;
            }
            if self.stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Notes a stop request that arrived (without waiting).
    fn check_stop(&mut self) {
        if *self.stop.borrow() {
            self.stopped = true;
        }
    }
}

impl Turn {
    /// Starts the turn's task and returns its event stream.
    pub(super) fn spawn(self) -> TurnStream {
        let (tx, events) = mpsc::channel(CHANNEL_EVENTS);
        let conversation_id = self.plan.conversation.id.clone();
        // The turn outlives the handler: it keeps the request's span (request id, user) so every
        // log line it writes carries them.
        tokio::spawn(tracing::Instrument::instrument(self.run(tx), tracing::Span::current()));
        TurnStream {
            conversation_id,
            events,
            budget_headers: Vec::new(),
        }
    }

    async fn run(mut self, tx: mpsc::Sender<TurnEvent>) {
        let started = Instant::now();
        let guard = super::finish::SlotGuard::new(&self);
        let (stop_tx, stop) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let recorder = super::checkpoint::Recorder::spawn(
            Arc::clone(&self.state),
            super::checkpoint::TurnKey {
                owner: self.owner.clone(),
                conversation_id: self.plan.conversation.id.clone(),
                turn_id: self.turn_id.clone(),
            },
            Arc::clone(&stop_tx),
        );
        let mut sink = Sink {
            tx,
            gone: false,
            resumable: self.state.config.chat.resumable_streams,
            recorder: Some(recorder),
            stop,
            _stop_tx: stop_tx,
            stopped: false,
        };
        sink.send(TurnEvent::Start {
            message_id: self.reply_id.clone(),
            metadata: json!({"conversationId": self.plan.conversation.id.as_str()}),
        })
        .await;
        let outcome = self.generate(&mut sink, started).await;
        self.finish(outcome, sink, guard, started.elapsed()).await;
    }

    /// Runs the model (fallback chain, tool loop, timeouts), streaming to the sink.
    #[tracing::instrument(name = "chat.generate", skip_all, fields(model = self.plan.model.id))]
    async fn generate(&self, sink: &mut Sink, started: Instant) -> Outcome {
        let deadline = tokio::time::Instant::from_std(started + self.state.config.chat.total_timeout);
        let mut outcome = Outcome {
            text: String::new(),
            parts: Vec::new(),
            usage: Usage::default(),
            model: self.plan.model.id.to_owned(),
            finish: FinishReason::Stop,
            error: None,
            first_token: None,
            estimated: 0,
            covered: 0,
        };
        let candidates = self.candidates();
        let mut context = self.context.clone();
        if let Some(reply) = &self.plan.continues {
            self.continue_reply(reply, sink, &mut outcome, deadline).await;
            context.extend(super::context::reply_context(&outcome.text, &outcome.parts));
        }
        let mut emitted = false;
        for step in 0..MAX_STEPS {
            sink.check_stop();
            if sink.should_end() {
                outcome.finish = FinishReason::Aborted;
                return outcome;
            }
            sink.send(TurnEvent::StartStep).await;
            // A stop while the model has not started (or a tool ran long) ends the turn too.
            let opening = tokio::select! {
                opened = self.open_stream(&candidates, &context, &mut outcome, emitted, deadline) => Some(opened),
                () = sink.until_stopped() => None,
            };
            let (first, rest) = match opening {
                Some(Ok(opened)) => opened,
                Some(Err(e)) => {
                    outcome.fail(&e);
                    return outcome;
                }
                None => {
                    outcome.finish = FinishReason::Aborted;
                    return outcome;
                }
            };
            let input = estimate::input_tokens(&self.system, &context, &self.tools);
            self.progress.sent(input);
            let relayed = relay(first, rest, sink, &mut outcome, &self.progress, started, deadline).await;
            if !relayed.reported {
                outcome.estimated += estimate::unreported_call(input, relayed.streamed_chars);
            }
            emitted |= relayed.emitted;
            if let Some(e) = relayed.error {
                outcome.fail(&e);
                return outcome;
            }
            if sink.should_end() {
                outcome.finish = FinishReason::Aborted;
                return outcome;
            }
            // A stream that ends without saying why was cut short: keep the partial reply, flag it.
            let Some(reason) = relayed.stop else {
                sink.send(TurnEvent::FinishStep).await;
                outcome.fail(&ProviderError::Stream(
                    "the reply ended without a stop reason".to_owned(),
                ));
                return outcome;
            };
            outcome.finish = reason.finish_reason();
            if relayed.tool_calls.is_empty() || step + 1 == MAX_STEPS {
                sink.send(TurnEvent::FinishStep).await;
                return outcome;
            }
            // The step's tool results (and approval requests) belong to the step, as in the AI
            // SDK's own streams.
            let (assistant, results, awaiting) = self.run_tools(relayed.tool_calls, sink, &mut outcome, deadline).await;
            sink.send(TurnEvent::FinishStep).await;
            if awaiting {
                // The reply waits for the user's approval: the client's answer continues it.
                outcome.finish = FinishReason::ToolCalls;
                return outcome;
            }
            context.push(assistant);
            context.push(results);
        }
        outcome
    }

    /// Starts a continued reply from the stored one (its text and parts), then runs the calls
    /// the user approved and reports the denied ones, before the model goes on.
    async fn continue_reply(
        &self,
        reply: &crate::domain::Message,
        sink: &mut Sink,
        outcome: &mut Outcome,
        deadline: tokio::time::Instant,
    ) {
        outcome.text = reply.content.clone();
        outcome.parts = reply.parts.clone();
        if !outcome.text.is_empty() && !outcome.parts.iter().any(|p| matches!(p, MessagePart::Text { .. })) {
            outcome.parts.insert(
                0,
                MessagePart::Text {
                    text: outcome.text.clone(),
                },
            );
        }
        outcome.covered = outcome.text.len();
        let answered: Vec<(String, String, Value, Approval)> = outcome
            .parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::ToolCall {
                    tool_call_id,
                    tool_name,
                    input,
                    approval: Some(approval @ Approval { approved: Some(_), .. }),
                } => Some((tool_call_id.clone(), tool_name.clone(), input.clone(), approval.clone())),
                _ => None,
            })
            .filter(|(id, ..)| reply.tool_result(id).is_none())
            .collect();
        for (id, name, input, approval) in answered {
            let (output, is_error) = if approval.approved == Some(true) {
                let ran = self.toolbox.run(&self.state, &name, &input, deadline).await;
                sink.send(TurnEvent::ToolResult {
                    id: id.clone(),
                    output: ran.0.clone(),
                    is_error: ran.1,
                })
                .await;
                ran
            } else {
                sink.send(TurnEvent::ToolDenied { id: id.clone() }).await;
                (super::context::denial(approval.reason.as_deref()), true)
            };
            outcome.parts.push(MessagePart::ToolResult {
                tool_call_id: id,
                tool_name: name,
                output,
                is_error,
            });
        }
    }

    /// The chosen model, then the fallback models not already in the list.
    fn candidates(&self) -> Vec<String> {
        let mut candidates: Vec<String> = vec![self.plan.model.id.to_owned()];
        for f in &self.state.config.chat.fallback {
            // Only the models of the caller's plan.
            if !candidates.contains(f) && self.entitlement.allows(f) {
                candidates.push(f.clone());
            }
        }
        candidates
    }

    /// Finds a model that starts: the first event within the first-token timeout. Falls back to
    /// the next candidate only while nothing has been emitted (an immediate throttle included).
    async fn open_stream(
        &self,
        candidates: &[String],
        context: &[ModelMessage],
        outcome: &mut Outcome,
        emitted: bool,
        deadline: tokio::time::Instant,
    ) -> Result<(ModelEvent, ModelStream), ProviderError> {
        let chat = &self.state.config.chat;
        let mut last_error = None;
        for candidate in candidates {
            if emitted && candidate != &outcome.model {
                continue;
            }
            let request = ModelRequest {
                model: candidate.clone(),
                system: self.system.clone(),
                messages: context.to_vec(),
                max_tokens: self.output_cap,
                tools: self.tools.clone(),
            };
            let first_deadline = (tokio::time::Instant::now() + chat.first_token_timeout).min(deadline);
            let attempt = tokio::time::timeout_at(first_deadline, async {
                let mut s = self.model_port.stream(request).await?;
                match s.next().await {
                    Some(Ok(first)) => Ok((first, s)),
                    Some(Err(e)) => Err(e),
                    None => Err(ProviderError::Stream("the model ended without output".to_owned())),
                }
            })
            .await
            .unwrap_or_else(|_| Err(ProviderError::Timeout("no first token in time".to_owned())));
            match attempt {
                Ok(opened) => {
                    if candidate != &outcome.model {
                        tracing::warn!(from = %outcome.model, to = %candidate, "fell back to another model");
                    }
                    outcome.model = candidate.clone();
                    return Ok(opened);
                }
                Err(e) if e.is_fallback_worthy() && !emitted => {
                    tracing::warn!(model = %candidate, error = %e, "model failed before output");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| ProviderError::Unavailable("no model available".to_owned())))
    }

    /// Runs the step's tool calls, streams their results, keeps them as message parts, and returns
    /// the assistant and tool-result messages the next step's context needs, and whether a call
    /// waits for the user's approval (an action: it is not run; the reply ends there). Calls past
    /// the turn's tool-call budget are answered with an error instead of running.
    async fn run_tools(
        &self,
        calls: Vec<ToolCall>,
        sink: &mut Sink,
        outcome: &mut Outcome,
        deadline: tokio::time::Instant,
    ) -> (ModelMessage, ModelMessage, bool) {
        let step_text = outcome.text.get(outcome.covered..).unwrap_or_default().to_owned();
        outcome.seal_text();
        let mut assistant = Vec::new();
        if !step_text.is_empty() {
            assistant.push(ModelContent::Text(step_text));
        }
        let mut results = Vec::new();
        let mut awaiting = false;
        let budget = self.state.config.chat.max_tool_calls as usize;
        for ToolCall { id, name, input } in calls {
            let over_budget = outcome.tool_calls() >= budget;
            if !over_budget && self.toolbox.needs_approval(&name) {
                let approval_id = format!("approval_{}", self.state.ids.next_ulid());
                sink.send(TurnEvent::ToolApprovalRequest {
                    approval_id: approval_id.clone(),
                    tool_call_id: id.clone(),
                })
                .await;
                outcome.parts.push(MessagePart::ToolCall {
                    tool_call_id: id.clone(),
                    tool_name: name.clone(),
                    input: input.clone(),
                    approval: Some(Approval {
                        id: approval_id,
                        approved: None,
                        reason: None,
                    }),
                });
                awaiting = true;
                continue;
            }
            outcome.parts.push(MessagePart::ToolCall {
                tool_call_id: id.clone(),
                tool_name: name.clone(),
                input: input.clone(),
                approval: None,
            });
            let (output, is_error) = if over_budget {
                (
                    Value::String(format!(
                        "Not run: this turn already made its {budget} tool calls. Answer with what you have."
                    )),
                    true,
                )
            } else {
                self.toolbox.run(&self.state, &name, &input, deadline).await
            };
            sink.send(TurnEvent::ToolResult {
                id: id.clone(),
                output: output.clone(),
                is_error,
            })
            .await;
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
        (
            ModelMessage {
                role: ModelRole::Assistant,
                content: assistant,
            },
            ModelMessage {
                role: ModelRole::User,
                content: results,
            },
            awaiting,
        )
    }
}

/// A tool call the model made in one step.
struct ToolCall {
    id: String,
    name: String,
    input: Value,
}

/// What relaying one model call produced.
struct Relayed {
    tool_calls: Vec<ToolCall>,
    stop: Option<StopReason>,
    error: Option<ProviderError>,
    emitted: bool,
    /// The call reported its usage.
    reported: bool,
    /// Characters streamed (text, and tool calls as JSON).
    streamed_chars: u64,
}

/// Relays one model call's events to the client as they arrive, until the model stops, fails,
/// runs past the deadline, or the client goes away.
async fn relay(
    first: ModelEvent,
    mut rest: ModelStream,
    sink: &mut Sink,
    outcome: &mut Outcome,
    progress: &Progress,
    started: Instant,
    deadline: tokio::time::Instant,
) -> Relayed {
    let mut relayed = Relayed {
        tool_calls: Vec::new(),
        stop: None,
        error: None,
        emitted: false,
        reported: false,
        streamed_chars: 0,
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
                () = sink.tx.closed(), if !sink.gone => {
                    sink.gone = true;
                    if sink.resumable {
                        // The turn goes on without its client: the stream can be resumed.
                        tracing::info!("the client went away; the turn runs on (resumable)");
                        continue;
                    }
                    None
                }
                changed = sink.stop.changed(), if !sink.stopped => {
                    if changed.is_ok() && *sink.stop.borrow() {
                        sink.stopped = true;
                        tracing::info!("the turn was asked to stop");
                        None
                    } else {
                        continue;
                    }
                }
            },
        };
        let Some(event) = event else { break };
        match event {
            Ok(ModelEvent::TextDelta(delta)) => {
                if outcome.first_token.is_none() {
                    outcome.first_token = Some(started.elapsed());
                }
                relayed.emitted = true;
                let chars = delta.chars().count() as u64;
                relayed.streamed_chars += chars;
                progress.streamed(chars);
                outcome.text.push_str(&delta);
                sink.send(TurnEvent::Text(delta)).await;
            }
            Ok(ModelEvent::ToolUse { id, name, input }) => {
                relayed.emitted = true;
                let chars = (name.chars().count() + input.to_string().chars().count()) as u64;
                relayed.streamed_chars += chars;
                progress.streamed(chars);
                sink.send(TurnEvent::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    input: input.clone(),
                })
                .await;
                relayed.tool_calls.push(ToolCall { id, name, input });
            }
            Ok(ModelEvent::Stop(reason)) => relayed.stop = Some(reason),
            Ok(ModelEvent::Usage(u)) => {
                relayed.reported = true;
                outcome.usage.input_tokens += u.input_tokens;
                outcome.usage.output_tokens += u.output_tokens;
                outcome.usage.cache_read_tokens += u.cache_read_tokens;
                outcome.usage.cache_write_tokens += u.cache_write_tokens;
            }
            Err(e) => {
                relayed.error = Some(e);
                return relayed;
            }
        }
        if sink.should_end() {
            break;
        }
    }
    relayed
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

//! The chat turn: the hot path of Athena. [`start`] reads like the turn's outline:
//!
//! 1. **Admission**: the caller's [`ChatRequest`] (already parsed and validated by the HTTP layer,
//!    `api::chat`) and the conversation with its history (one Query; beside it, in parallel, the
//!    caller's budget levels for the soft limit when their plan has a budget, and the month's
//!    spend when `ATHENA_SPEND_CAP_USD` is set: [`budget`]). The plan's checks ([`budget::check_request`]).
//! 2. **Plan** ([`plan_turn`], pure, unit-tested without a store): which conversation (existing,
//!    or new with a title from the first message), which messages, which model, and what the
//!    admitting write stores (append, create, regenerate, or only check a resubmit).
//! 3. **Context** ([`context_for`]): stored history to the model's alternating messages, trimmed
//!    to its window, under the solution's system prompt ([`system_prompt`]); its estimated cost
//!    plus the output cap is the turn's budget reservation ([`estimate`]).
//! 4. **Admit** in one atomic write ([`crate::store::Turns::begin_turn`]): the per-minute rate
//!    limit, the reservation on the day and month token budgets, a stream slot (a lease) and the
//!    user's message. Two round trips before the model is called; a refusal is an error, never a
//!    stream.
//! 5. **Generate** (`generate`): the model streamed event by event through a bounded channel,
//!    with the fallback chain (before any output), the tool loop (at most [`MAX_STEPS`]) and
//!    the first-token and total timeouts.
//! 6. **Finish** (`finish`): one atomic write stores the reply (partial text kept), settles the
//!    reservation (reported usage, or the estimate when none came), releases the slot, adds the
//!    counters and writes the turn's receipt (so it is retried safely, up to 3 attempts); then
//!    `finish` (or, if it could not be stored, a [`STORE_UNAVAILABLE`] error and a separate slot
//!    release); then one batch with the analytics events and the audit entry. Four round trips
//!    in all.
//!
//! The turn speaks in [`TurnEvent`]s; `api::chat` encodes them for the wire (AI SDK UI message
//! stream or plain text). Errors are [`ChatError`]s, mapped to HTTP once in `api::error`.

mod approvals;
pub mod budget;
mod checkpoint;
mod context;
mod error;
pub mod estimate;
mod events;
mod finish;
mod generate;
mod plan;
mod prompts;
mod replay;
mod request;
mod resume;
mod title;
mod tools;

use std::sync::Arc;

pub use context::context_for;
pub use error::ChatError;
pub use events::{TurnEvent, TurnStream};
pub use finish::STORE_UNAVAILABLE;
pub use plan::{plan_turn, PlanInput, Planned, TurnPlan};
pub use prompts::{capabilities, system_prompt};
pub use request::{ApprovalAnswer, ChatRequest, IncomingMessage, Trigger};
pub use resume::{in_progress, resume, stop, Progress, INTERRUPTED, RESUME_WINDOW_SECS};

use crate::config::plans::Plan;
pub use crate::config::{ChatConfig, SearchConfig};
use crate::domain::{Role, Solution, UserId};
use crate::error::StoreError;
use crate::state::AppState;
use crate::store::{TurnLimits, TurnStart, TurnWrite};

/// Longest title made from a first message (seed 000: 50 characters).
pub const TITLE_CHARS: usize = 50;
/// Most model calls in one turn (tool-use loop), seed 000's `maxSteps: 5`.
pub const MAX_STEPS: usize = 5;
/// A stream slot's lease outlives the longest allowed reply by this much (seconds).
pub const LEASE_MARGIN_SECS: i64 = 60;

/// Whether this deployment serves `solution`'s chat (`ATHENA_SOLUTION` pins one per function).
pub fn serves(state: &AppState, solution: Option<Solution>) -> Result<(), ChatError> {
    match state.config.chat.only {
        Some(only) if only != solution => Err(ChatError::NoSuchRoute),
        _ => Ok(()),
    }
}

/// Runs a chat turn for `user` in `solution`'s chat: admits it (or refuses it before any
/// output) and returns the stream of its events, produced by a task that outlives the call.
#[tracing::instrument(name = "chat.turn", skip_all, fields(solution = solution.map_or("general", Solution::as_str)))]
pub async fn start(
    state: &Arc<AppState>,
    user: &UserId,
    (grantees, may_chat): (&[crate::store::Grantee], fn(crate::store::GrantRole) -> bool),
    entitlement: &Arc<Plan>,
    solution: Option<Solution>,
    request: ChatRequest,
    request_id: &str,
) -> Result<TurnStream, ChatError> {
    serves(state, solution)?;
    if !state.config.plans.chat_enabled {
        return Err(ChatError::Disabled);
    }
    let model_port = state.model.clone().ok_or(ChatError::NoProvider)?;
    let mut request = request;
    let token_budgets = entitlement.tokens_per_day > 0 || entitlement.tokens_per_month > 0;
    let dollars = entitlement.nano_usd_per_month > 0;
    // Side by side with the conversation's Query (no extra round trip): the budgets' levels for
    // the soft limit (when a budget is on) and the deployment's spend (when capped).
    // And the caller's grant on the conversation, in case it is someone else's shared with them.
    let (existing, levels, capped, grant) = tokio::join!(
        load(state, user, &request),
        async {
            if token_budgets || dollars {
                state.store.budget_levels(user, state.now()).await.ok()
            } else {
                None
            }
        },
        budget::check_spend_cap(state),
        state.store.grant_for(grantees, &request.conversation_id),
    );
    let (owner, existing) = match existing? {
        Some(found) => (user.clone(), Some(found)),
        None => match grant? {
            None => (user.clone(), None),
            // Decided by the caller's policy (`api::policy`: a viewer may not chat).
            Some(grant) if !may_chat(grant.role) => return Err(ChatError::ReadOnly),
            // A collaborator's turn: the owner's conversation (one more read), charged to the caller.
            Some(grant) => match load(state, &grant.owner, &request).await? {
                Some(found) => (grant.owner, Some(found)),
                None => return Err(ChatError::ConversationNotFound),
            },
        },
    };
    let owner = &owner;
    budget::check_request(
        entitlement,
        &mut request,
        existing.as_ref().map(|(c, _)| c),
        &state.config.catalog,
    )?;
    attach_files(state, user, &mut request).await?;
    let instructions = project_instructions(state, owner, existing.as_ref().map(|(c, _)| c)).await?;
    let ended_turn = resume::ended_without_reply(state, owner, existing.as_ref(), &request).await;
    let caller_token = request.caller_token.clone();
    let planned = plan_turn(PlanInput {
        owner,
        solution,
        request,
        existing,
        catalog: &state.config.catalog,
        ids: &state.ids,
        now: state.now(),
        turn_window: chrono::Duration::seconds(lease_secs(&state.config)),
        ended_turn,
    })?;
    let plan = match planned {
        Planned::Run(mut plan) => {
            if owner != user {
                // A collaborator's message is attributed to them.
                plan.write.set_author(user);
            }
            plan
        }
        Planned::Replay { conversation, reply } => {
            // Nothing is generated or stored, but the request still counts against the limit.
            crate::ratelimit::count(state.store.as_ref(), user, state.now(), entitlement.requests_per_minute).await?;
            return Ok(replay::spawn(conversation, reply));
        }
    };
    // A stored reply is replayed whatever the spend; a new turn is not started past the cap.
    capped?;
    let system = match &instructions {
        Some(text) => prompts::with_project_instructions(system_prompt(solution), text),
        None => system_prompt(solution).to_owned(),
    };
    let mut context = context_for(&plan.history, plan.model, &system);
    crate::files::load(state, user, &mut context).await;
    let toolbox =
        tools::Toolbox::for_turn(state, solution, plan.web_search, entitlement.tools, user, caller_token).await;
    let tools = toolbox.specs();
    let naming = match (&state.config.chat.title_model, &plan.write) {
        (Some(model), TurnWrite::Create { messages, .. }) => {
            messages.iter().find(|m| m.role == Role::User).map(|m| (model, m))
        }
        (
            Some(model),
            TurnWrite::Append {
                message,
                title: Some(_),
            },
        ) => Some((model, message)),
        _ => None,
    };
    let config = &state.config;
    let title_reserved = match naming {
        Some((_, first)) if token_budgets || dollars => title::reservation(&first.content),
        _ => 0,
    };
    let cap = budget::output_cap(&config.chat, entitlement, plan.model);
    let (reserved, reserved_nano_usd) = if token_budgets || dollars {
        let mut seen = context.clone();
        if let Some(reply) = &plan.continues {
            seen.extend(context::reply_context(&reply.content, &reply.parts));
        }
        let input = estimate::input_tokens(&system, &seen, &tools);
        let title_nano = naming
            .and_then(|(model, _)| config.catalog.get(model))
            .map_or(0, |m| budget::upper_nano_usd(m, title_reserved));
        (
            if token_budgets {
                estimate::reservation(input, cap).saturating_add(title_reserved)
            } else {
                0
            },
            if dollars {
                budget::reservation_nano_usd(plan.model, input, cap).saturating_add(title_nano)
            } else {
                0
            },
        )
    } else {
        (0, 0)
    };
    let turn_id = state.ids.next_ulid();
    // A continued reply keeps its id: the client goes on in the same message.
    let reply_id = plan
        .continues
        .as_ref()
        .map_or_else(|| state.ids.message_id(), |reply| reply.id.clone());
    let lease = admit(
        state,
        (owner, user),
        entitlement,
        &plan,
        &turn_id,
        &reply_id,
        (reserved, reserved_nano_usd),
    )
    .await?;
    let notice = levels.map(|mut levels| {
        levels.tokens_day = levels.tokens_day.saturating_add(reserved);
        levels.tokens_month = levels.tokens_month.saturating_add(reserved);
        levels.nano_usd_month = levels.nano_usd_month.saturating_add(reserved_nano_usd);
        budget::Remaining::of(entitlement, &levels)
    });
    let levels_before = levels;
    if let (Some(reply), TurnWrite::Continue { awaiting, .. }) = (&plan.continues, &plan.write) {
        audit_approvals(state, user, &plan.conversation.id, reply, awaiting, request_id).await;
    }
    let title_task = naming.map(|(model, first)| title::spawn(Arc::clone(&model_port), model.clone(), &first.content));
    let turn = generate::Turn {
        state: Arc::clone(state),
        model_port,
        user: user.clone(),
        owner: owner.clone(),
        context,
        system,
        tools,
        toolbox,
        reply_id,
        solution,
        turn_id,
        lease,
        reserved,
        reserved_nano_usd,
        title_reserved,
        entitlement: Arc::clone(entitlement),
        output_cap: cap,
        levels_before,
        progress: Arc::default(),
        request_id: request_id.to_owned(),
        title_task,
        plan,
    };
    let mut stream = turn.spawn();
    stream.budget_headers = notice.map(|n| n.headers()).unwrap_or_default();
    Ok(stream)
}

/// Records who approved or denied which tool call (one audit entry per answer of this request:
/// `tool.approve` or `tool.deny`, resource `<conversation>/<tool>/<call id>`).
async fn audit_approvals(
    state: &AppState,
    user: &UserId,
    conversation: &crate::domain::ConversationId,
    reply: &crate::domain::Message,
    answered: &[String],
    request_id: &str,
) {
    let entries: Vec<_> = reply
        .parts
        .iter()
        .filter_map(|part| match part {
            crate::domain::MessagePart::ToolCall {
                tool_call_id,
                tool_name,
                approval:
                    Some(crate::domain::Approval {
                        id,
                        approved: Some(approved),
                        ..
                    }),
                ..
            } if answered.contains(id) => Some((tool_call_id, tool_name, *approved)),
            _ => None,
        })
        .map(|(call, name, approved)| {
            crate::audit::entry_at(
                &state.ids,
                user,
                if approved {
                    crate::audit::action::TOOL_APPROVE
                } else {
                    crate::audit::action::TOOL_DENY
                },
                Some(format!("{conversation}/{name}/{call}")),
                "ok",
                Some(request_id),
                state.config.audit_retention_days,
                state.now(),
            )
        })
        .collect();
    crate::audit::record(state.store.as_ref(), &entries).await;
}

/// How long a turn's stream slot is leased: the longest allowed reply and a margin.
/// Checks and attaches the files of the request's newest user message (the only message the
/// turn may store; earlier messages are the stored history). A regenerate attaches nothing.
async fn attach_files(state: &AppState, user: &UserId, request: &mut ChatRequest) -> Result<(), ChatError> {
    if request.trigger != Trigger::Submit {
        return Ok(());
    }
    let conversation = request.conversation_id.clone();
    if let Some(newest) = request.messages.last_mut().filter(|m| m.role == Role::User) {
        newest.attachments = crate::files::attach(state, user, &conversation, &newest.files).await?;
    }
    Ok(())
}

fn lease_secs(config: &crate::config::Config) -> i64 {
    i64::try_from(config.chat.total_timeout.as_secs()).unwrap_or(240) + LEASE_MARGIN_SECS
}

/// The conversation with its history, if it exists and is the caller's (one Query).
#[tracing::instrument(name = "chat.load", skip_all)]
/// The instructions of the conversation's project, if it is in one that still exists.
async fn project_instructions(
    state: &AppState,
    user: &UserId,
    conversation: Option<&crate::domain::Conversation>,
) -> Result<Option<String>, ChatError> {
    let Some(project) = conversation.and_then(|c| c.project_id.as_ref()) else {
        return Ok(None);
    };
    match state.store.get_project(user, project).await {
        Ok(p) => Ok(Some(p.instructions)),
        // Deleted meanwhile: the conversation goes on without them.
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn load(
    state: &AppState,
    user: &UserId,
    request: &ChatRequest,
) -> Result<Option<(crate::domain::Conversation, Vec<crate::domain::Message>)>, ChatError> {
    match state
        .store
        .get_conversation_with_messages(user, &request.conversation_id)
        .await
    {
        Ok(found) => Ok(Some(found)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Admits the planned turn in one atomic write: rate limit, `reserved` tokens on the budgets,
/// stream slot, the user's message (or the new conversation). Returns the stream slot's lease
/// when streams are capped.
#[tracing::instrument(name = "chat.admit", skip_all, fields(conversation = %plan.conversation.id))]
async fn admit(
    state: &AppState,
    (owner, user): (&UserId, &UserId),
    entitlement: &Plan,
    plan: &TurnPlan,
    turn_id: &str,
    reply_id: &crate::domain::MessageId,
    (reserved, reserved_nano_usd): (u64, u64),
) -> Result<Option<crate::store::StreamLease>, ChatError> {
    let config = &state.config;
    let start = TurnStart {
        payer: user.clone(),
        owner: owner.clone(),
        conversation_id: plan.conversation.id.clone(),
        write: plan.write.clone(),
        limits: TurnLimits {
            requests_per_minute: entitlement.requests_per_minute,
            tokens_per_day: entitlement.tokens_per_day,
            tokens_per_month: entitlement.tokens_per_month,
            nano_usd_per_month: entitlement.nano_usd_per_month,
            max_streams: entitlement.concurrent_streams,
            lease_secs: lease_secs(config),
        },
        turn_id: turn_id.to_owned(),
        now: plan.started_at,
        reservation: reserved,
        reservation_nano_usd: reserved_nano_usd,
        reply_id: reply_id.clone(),
        reply_parent: plan.answers.clone(),
    };
    // Conversation ids are scoped to their owner, so a create conflicts only with the caller's
    // own conversation of that id (another request of theirs created it since `load`): a
    // `Conflict`, answered 409 like any other.
    match state.store.begin_turn(&start).await {
        Ok(begun) => Ok(begun.lease),
        Err(e @ (StoreError::Unavailable(_) | StoreError::Internal { .. })) => {
            release_unknown_slot(state, user, turn_id, entitlement.concurrent_streams).await;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// After an admitting write whose outcome is unknown (a timeout may have applied it), frees the
/// stream slot the turn may hold, so the caller's next chat is not refused until the lease ends.
/// Which slot is unknown: each is released only if `turn_id` holds it (idempotent; one call per
/// slot, only on this failure path). The reservation stays charged: settling it could give back
/// tokens that were never reserved. Bounded in time; a failure leaves the slot to its lease.
async fn release_unknown_slot(state: &AppState, user: &UserId, turn_id: &str, slots: u32) {
    let release = async {
        for slot in 0..slots {
            let lease = crate::store::StreamLease {
                slot,
                turn_id: turn_id.to_owned(),
                expires_at: 0,
            };
            state.store.release_slot(user, &lease).await?;
        }
        Ok::<(), StoreError>(())
    };
    match tokio::time::timeout(state.config.chat.store_attempt_timeout, release).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "releasing the slot of a failed admission failed"),
        Err(_) => tracing::warn!("releasing the slot of a failed admission timed out"),
    }
}

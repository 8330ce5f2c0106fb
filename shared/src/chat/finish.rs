//! Finishing a turn: one atomic write (the reply, the budget reservation settled, the slot released, the
//! counters, the turn's receipt), retried a few times since it is idempotent per turn id, then the
//! client's `finish` (or `error`), then the analytics events and the audit entry in one batch,
//! bounded in time, before the body closes. The client hears `finish` only once the write is
//! stored; when it cannot be, the client gets an `error` chunk starting with
//! [`STORE_UNAVAILABLE`], the slot is released on its own and the turn is logged for repair.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::estimate::Progress;
use super::events::TurnEvent;
use super::generate::{Outcome, Sink, Turn};
use crate::analytics::TurnRecord;
use crate::domain::{ConversationId, FinishReason, Message, Role, Timestamp, UserId};
use crate::error::StoreError;
use crate::state::AppState;
use crate::store::{Settlement, StreamLease, TurnFinish};

/// The code the client's `error` chunk starts with when the end of the turn could not be stored
/// (the AI SDK's `error` chunk carries only `errorText`, so the code leads the text).
pub const STORE_UNAVAILABLE: &str = "STORE_UNAVAILABLE";

/// The pauses before the second and third attempts of the finishing write (3 attempts in all).
const FINISH_BACKOFF: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

/// Longest the end of a turn waits for a title still being written.
const TITLE_WAIT: Duration = Duration::from_secs(2);

/// Longest the turn waits for its analytics and audit batch.
const ACTIVITY_TIMEOUT: Duration = Duration::from_millis(1500);

/// Frees a turn's stream slot if its task ends before the finishing write (a panic, a cancelled
/// runtime), so the slot need not wait for the lease to expire, and settles its budget
/// reservation on the estimate of what was sent and streamed (the provider's usage is lost with
/// the task). A title request still running is charged its whole reservation (it may finish).
pub(super) struct SlotGuard {
    state: Arc<AppState>,
    owner: UserId,
    payer: UserId,
    conversation_id: ConversationId,
    turn_id: String,
    lease: Option<StreamLease>,
    reserved: u64,
    reserved_nano_usd: u64,
    title_reserved: u64,
    /// The turn's model, to price the estimate when its dollar reservation is settled.
    model: &'static crate::catalog::ModelInfo,
    progress: Arc<Progress>,
    started: Timestamp,
}

impl SlotGuard {
    pub(super) fn new(turn: &Turn) -> Self {
        Self {
            state: Arc::clone(&turn.state),
            owner: turn.owner.clone(),
            payer: turn.user.clone(),
            conversation_id: turn.plan.conversation.id.clone(),
            turn_id: turn.turn_id.clone(),
            lease: turn.lease.clone(),
            reserved: turn.reserved,
            reserved_nano_usd: turn.reserved_nano_usd,
            title_reserved: turn.title_reserved,
            model: turn.plan.model,
            progress: Arc::clone(&turn.progress),
            started: turn.plan.started_at,
        }
    }

    /// The finishing write took care of the slot and the reservation (or, if it failed, the slot
    /// was released on its own and the reservation stays charged).
    fn disarm(&mut self) {
        self.lease = None;
        self.reserved = 0;
        self.reserved_nano_usd = 0;
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let lease = self.lease.take();
        let reserved = std::mem::take(&mut self.reserved);
        let reserved_nano_usd = std::mem::take(&mut self.reserved_nano_usd);
        if lease.is_none() && reserved == 0 && reserved_nano_usd == 0 {
            return;
        }
        let estimate = self.progress.estimate().saturating_add(self.title_reserved);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (state, owner, payer, started) = (
            Arc::clone(&self.state),
            self.owner.clone(),
            self.payer.clone(),
            self.started,
        );
        let (conversation_id, turn_id) = (self.conversation_id.clone(), self.turn_id.clone());
        let settlement = Settlement {
            reserved,
            actual: if reserved > 0 { estimate } else { 0 },
            reserved_nano_usd,
            actual_nano_usd: if reserved_nano_usd > 0 {
                super::budget::upper_nano_usd(self.model, estimate)
            } else {
                0
            },
        };
        runtime.spawn(async move {
            // The same turn id as the finishing write: if that applied, this changes nothing.
            let release = TurnFinish {
                payer,
                owner,
                conversation_id,
                turn_id,
                reply: None,
                lease,
                settlement,
                started,
                stats: None,
                title: None,
                checkpoint: None,
            };
            if let Err(e) = state.store.finish_turn(&release).await {
                tracing::warn!(error = %e, "releasing the stream slot of an interrupted turn failed");
            }
        });
    }
}

/// The final checkpoint's position and its events before the last one: what the turn writes
/// on its own, ending with a `STORE_UNAVAILABLE` error, when the finishing write fails (so its
/// reply can still be rebuilt from the checkpoints).
struct FinalBatch {
    seq: u32,
    events: Vec<TurnEvent>,
}

impl Turn {
    /// Stores what there is (a reply, a partial reply, or the record of a failure after output),
    /// tells the client how the turn ended and records the turn's activity.
    #[tracing::instrument(name = "chat.finish", skip_all)]
    pub(super) async fn finish(
        &mut self,
        mut outcome: Outcome,
        mut sink: Sink,
        mut guard: SlotGuard,
        latency: Duration,
    ) {
        let finish = if sink.stopped || (sink.gone && !sink.resumable) {
            FinishReason::Aborted
        } else {
            outcome.finish
        };
        let reply = self.reply(&mut outcome, finish, latency);
        let named = self.named().await;
        let record = self.record(&outcome, latency);
        let config = &self.state.config;
        let plan = Arc::clone(&self.entitlement);
        let charge = plan.tokens_per_day > 0 || plan.tokens_per_month > 0;
        let charge_dollars = plan.nano_usd_per_month > 0;
        let has_reply = reply.is_some();
        // What the turn cost: the reported usage, plus the estimate of calls that reported none.
        let actual = outcome.usage.input_tokens
            + outcome.usage.output_tokens
            + outcome.estimated
            + named.as_ref().map_or(0, |n| n.tokens);
        // In dollars: the reported usage at its model's prices, the estimates at the output price.
        let model = config.catalog.get(&outcome.model).unwrap_or(self.plan.model);
        let title_model = config
            .chat
            .title_model
            .as_deref()
            .and_then(|id| config.catalog.get(id))
            .unwrap_or(model);
        let actual_nano_usd = crate::analytics::cost_nano_usd(model, &outcome.usage)
            .saturating_add(super::budget::upper_nano_usd(model, outcome.estimated))
            .saturating_add(super::budget::upper_nano_usd(
                title_model,
                named.as_ref().map_or(0, |n| n.tokens),
            ));
        let remaining = self.levels_before.map(|mut levels| {
            levels.tokens_day = levels.tokens_day.saturating_add(actual);
            levels.tokens_month = levels.tokens_month.saturating_add(actual);
            levels.nano_usd_month = levels.nano_usd_month.saturating_add(actual_nano_usd);
            super::budget::Remaining::of(&plan, &levels)
        });
        // How the stream ends, if the write succeeds; it goes into the final checkpoint.
        let last = match &outcome.error {
            Some((_, message)) => TurnEvent::Error {
                message: message.clone(),
            },
            None => TurnEvent::Finish {
                metadata: self.metadata(&outcome, finish, latency, remaining.as_ref()),
            },
        };
        let tail = match sink.recorder.take() {
            Some(recorder) => recorder.close().await,
            None => super::checkpoint::Tail::default(),
        };
        let (checkpoint, final_batch) = self.final_checkpoint(tail, &last).await;
        let finishing = TurnFinish {
            payer: self.user.clone(),
            owner: self.owner.clone(),
            conversation_id: self.plan.conversation.id.clone(),
            turn_id: self.turn_id.clone(),
            reply,
            lease: self.lease.clone(),
            settlement: Settlement {
                reserved: if charge { self.reserved } else { 0 },
                actual: if charge { actual } else { 0 },
                reserved_nano_usd: if charge_dollars { self.reserved_nano_usd } else { 0 },
                actual_nano_usd: if charge_dollars { actual_nano_usd } else { 0 },
            },
            started: self.plan.started_at,
            stats: Some(crate::analytics::turn_stats(&record)),
            title: named.map(|n| n.title),
            checkpoint,
        };
        let saved = match self.store_finish(&finishing).await {
            Ok(()) => true,
            Err(e) => {
                // The reply, the settlement and the counters are lost: logged for repair (ids
                // only, never the content); the slot is freed on its own.
                tracing::error!(
                    error = %e,
                    conversation = %self.plan.conversation.id,
                    turn = %self.turn_id,
                    repair = true,
                    "storing the end of the turn failed: the turn needs repair"
                );
                self.release_slot().await;
                false
            }
        };
        guard.disarm();
        let stored = saved && has_reply;
        tracing::info!(
            conversation = %self.plan.conversation.id,
            model = %outcome.model,
            finish = ?finish,
            input_tokens = outcome.usage.input_tokens,
            output_tokens = outcome.usage.output_tokens,
            estimated_tokens = outcome.estimated,
            reserved_tokens = self.reserved,
            first_token_ms = outcome.first_token.map(|d| d.as_millis() as u64),
            latency_ms = latency.as_millis() as u64,
            stored,
            error = outcome.error.as_ref().map(|(code, _)| code.as_str()),
            "chat turn"
        );
        let last = if saved {
            last
        } else {
            let failed = TurnEvent::Error {
                message: format!("{STORE_UNAVAILABLE}: the reply could not be saved. Please send your message again."),
            };
            // A resumed stream ends the same way (unless the write did apply after all: the
            // checkpoint is put only if absent).
            let mut events = final_batch.events;
            events.push(failed.clone());
            self.write_checkpoint(final_batch.seq, events, true).await;
            failed
        };
        sink.send_to_client(last).await;
        self.record_activity(&record, &outcome, finish, saved).await;
        crate::analytics::turn_metrics(&self.state.metrics, &record, finish == FinishReason::Aborted);
    }

    /// The final checkpoint (the events not yet checkpointed and `last`) for the finishing write,
    /// and its position. Events too many for one checkpoint (a backlog left by a failing store)
    /// are written first, on their own.
    async fn final_checkpoint(
        &self,
        tail: super::checkpoint::Tail,
        last: &TurnEvent,
    ) -> (Option<crate::store::Checkpoint>, FinalBatch) {
        let mut events = tail.events;
        events.push(last.clone());
        let mut batches = super::checkpoint::split_final(events);
        let mut final_batch = batches.pop().unwrap_or_default();
        let mut seq = tail.seq;
        for batch in batches {
            self.write_checkpoint(seq, batch, false).await;
            seq += 1;
        }
        let checkpoint = match super::checkpoint::encode(&final_batch) {
            Ok(events) => Some(self.checkpoint_at(seq, events, true)),
            Err(e) => {
                tracing::warn!(error = %e, "the final checkpoint cannot be kept");
                None
            }
        };
        final_batch.pop();
        (
            checkpoint,
            FinalBatch {
                seq,
                events: final_batch,
            },
        )
    }

    fn checkpoint_at(&self, seq: u32, events: String, last: bool) -> crate::store::Checkpoint {
        crate::store::Checkpoint {
            owner: self.owner.clone(),
            conversation_id: self.plan.conversation.id.clone(),
            turn_id: self.turn_id.clone(),
            seq,
            events,
            last,
            at: self.state.now(),
        }
    }

    /// Writes one checkpoint outside the finishing write, bounded in time; failures are logged.
    async fn write_checkpoint(&self, seq: u32, events: Vec<TurnEvent>, last: bool) {
        let Ok(encoded) = super::checkpoint::encode(&events) else {
            return;
        };
        let checkpoint = self.checkpoint_at(seq, encoded, last);
        match tokio::time::timeout(
            self.state.config.chat.store_attempt_timeout,
            self.state.store.checkpoint(&checkpoint),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, seq, "writing a checkpoint failed"),
            Err(_) => tracing::warn!(seq, "writing a checkpoint timed out"),
        }
    }

    /// The finishing write, with up to 3 attempts on a store that is unavailable, timed out
    /// (`ChatConfig::store_attempt_timeout`: past it the attempt's outcome is ambiguous, it may
    /// have applied) or failed internally: safe, since a finish is written at most
    /// once per turn id. Other errors (the write can never succeed) are not retried.
    async fn store_finish(&self, finishing: &TurnFinish) -> Result<(), StoreError> {
        let mut attempt = 0;
        let timeout = self.state.config.chat.store_attempt_timeout;
        loop {
            let result = tokio::time::timeout(timeout, self.state.store.finish_turn(finishing))
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("the finishing write timed out".into())));
            let retryable = matches!(result, Err(StoreError::Unavailable(_) | StoreError::Internal { .. }));
            match FINISH_BACKOFF.get(attempt) {
                Some(pause) if retryable => {
                    if let Err(e) = &result {
                        tracing::warn!(error = %e, attempt = attempt + 1, "the finishing write failed; retrying");
                    }
                    tokio::time::sleep(*pause).await;
                    attempt += 1;
                }
                _ => return result,
            }
        }
    }

    /// Frees the stream slot after the finishing write gave up, so the user's next chat is not
    /// refused until the lease ends (the reservation stays charged). Bounded in time.
    async fn release_slot(&self) {
        let Some(lease) = &self.lease else {
            return;
        };
        let release = self.state.store.release_slot(&self.user, lease);
        match tokio::time::timeout(self.state.config.chat.store_attempt_timeout, release).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "releasing the stream slot failed; it frees itself when the lease ends")
            }
            Err(_) => tracing::warn!("releasing the stream slot timed out; it frees itself when the lease ends"),
        }
    }

    /// The title model's title, if it is ready within [`TITLE_WAIT`] of the reply's end (else
    /// the conversation keeps the title made from its first message).
    async fn named(&mut self) -> Option<super::title::Named> {
        let task = self.title_task.take()?;
        let abort = task.abort_handle();
        match tokio::time::timeout(TITLE_WAIT, task).await {
            Ok(Ok(named)) => named,
            Ok(Err(_)) => None,
            Err(_) => {
                abort.abort();
                tracing::warn!("the title was not ready when the reply ended");
                None
            }
        }
    }

    /// The assistant message to store, if the model produced anything. The reply's text and
    /// parts move into it (a long reply is held once).
    fn reply(&self, outcome: &mut Outcome, finish: FinishReason, latency: Duration) -> Option<Message> {
        if outcome.text.is_empty() && outcome.parts.is_empty() {
            return None;
        }
        if !outcome.parts.is_empty() {
            outcome.seal_text();
        }
        let mut reply = Message::text(
            self.reply_id.clone(),
            self.plan.conversation.id.clone(),
            Role::Assistant,
            std::mem::take(&mut outcome.text),
            self.state.now(),
        );
        reply.parent_id = Some(self.plan.answers.clone());
        reply.parts = std::mem::take(&mut outcome.parts);
        reply.model = Some(outcome.model.clone());
        reply.usage = Some(outcome.usage);
        reply.latency_ms = Some(latency.as_millis() as u64);
        reply.finish_reason = Some(finish);
        reply.error = outcome.error.as_ref().map(|(code, _)| code.clone());
        if let Some(earlier) = &self.plan.continues {
            // A continued reply: one message, from its first part to this turn's last.
            reply.created_at = earlier.created_at;
            reply.parent_id = earlier.parent_id.clone();
            let before = earlier.usage.unwrap_or_default();
            reply.usage = Some(crate::domain::Usage {
                input_tokens: before.input_tokens + outcome.usage.input_tokens,
                output_tokens: before.output_tokens + outcome.usage.output_tokens,
                cache_read_tokens: before.cache_read_tokens + outcome.usage.cache_read_tokens,
                cache_write_tokens: before.cache_write_tokens + outcome.usage.cache_write_tokens,
            });
            reply.latency_ms = Some(earlier.latency_ms.unwrap_or(0) + latency.as_millis() as u64);
        }
        Some(reply)
    }

    /// The turn as analytics sees it.
    fn record(&self, outcome: &Outcome, latency: Duration) -> TurnRecord {
        let asked = self.plan.model;
        let answered = self.state.config.catalog.get(&outcome.model).unwrap_or(asked);
        TurnRecord {
            solution: self.solution,
            user: self.user.clone(),
            conversation_id: self.plan.conversation.id.to_string(),
            model: answered,
            fell_back_from: (answered.id != asked.id).then(|| asked.id.to_owned()),
            usage: outcome.usage,
            latency_ms: latency.as_millis() as u64,
            ttft_ms: outcome.first_token.map(|d| d.as_millis() as u64),
            error: outcome.error.as_ref().map(|(code, _)| code.clone()),
            created_conversation: self.plan.created,
            at: self.state.now(),
        }
    }

    /// The `finish` metadata: model, finish reason, usage, latency, time to first token.
    fn metadata(
        &self,
        outcome: &Outcome,
        finish: FinishReason,
        latency: Duration,
        remaining: Option<&super::budget::Remaining>,
    ) -> Value {
        let mut metadata = json!({
            "conversationId": self.plan.conversation.id.as_str(),
            "model": outcome.model,
            "finishReason": finish,
            "usage": outcome.usage,
            "latencyMs": latency.as_millis() as u64,
            "firstTokenMs": outcome.first_token.map(|d| d.as_millis() as u64),
        });
        // At 80 % of a budget: what remains after this turn, so the client can warn.
        if let (Some(budget), Some(map)) = (remaining.and_then(|r| r.metadata()), metadata.as_object_mut()) {
            map.insert("budget".to_owned(), budget);
        }
        metadata
    }

    /// The client has everything; records the events and the audit entry in one batch (the
    /// entry's status is [`STORE_UNAVAILABLE`] when the end of the turn was not `saved`) before
    /// the body closes (a Lambda instance may be frozen once it does), bounded in time.
    async fn record_activity(&self, record: &TurnRecord, outcome: &Outcome, finish: FinishReason, saved: bool) {
        let events = crate::analytics::turn_events(&self.state.ids, record);
        let action = if self.plan.regenerate {
            crate::audit::action::CHAT_REGENERATE
        } else {
            crate::audit::action::CHAT_TURN
        };
        // A client that went away leaves no error code, but the turn did not end `ok`.
        let status = match (finish, &outcome.error) {
            _ if !saved => STORE_UNAVAILABLE,
            (FinishReason::Aborted, _) => "aborted",
            (_, Some((code, _))) => code.as_str(),
            (_, None) => "ok",
        };
        let audit = crate::audit::entry_at(
            &self.state.ids,
            &self.user,
            action,
            Some(self.plan.conversation.id.to_string()),
            status,
            Some(&self.request_id),
            self.state.config.audit_retention_days,
            self.state.now(),
        );
        let recording = self.state.store.record_activity(&events, std::slice::from_ref(&audit));
        match tokio::time::timeout(ACTIVITY_TIMEOUT, recording).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "recording analytics and audit failed"),
            Err(_) => tracing::warn!("recording analytics and audit timed out"),
        }
    }
}

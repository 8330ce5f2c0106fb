//! A store that misbehaves on demand: [`Faults`] wraps any store and, per port method
//! ([`Op`]), fails, stalls, or applies and then reports a failure (the ambiguous timeout), for the
//! next N calls; it counts every call. The chat turn's capabilities are wrapped (turns, activity,
//! messages, conversations); stats, counters and idempotency pass through untouched.
//!
//! ```ignore
//! let faults = Faults::new(inner);
//! faults.inject(Op::FinishTurn, Fault::Fail(Failure::Unavailable), 2);
//! let app = spawn_chat_app(faults.store(), config, chat).await;
//! // ... a chat turn ...
//! assert_eq!(faults.calls(Op::FinishTurn), 3);
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use shared::domain::{
    AnalyticsEvent, AuditEntry, ClientMessageId, Conversation, ConversationId, LiveTurn, Message, MessageId, Timestamp,
    UserId,
};
use shared::error::StoreError;
use shared::store::{
    Activity, Appended, Checkpoint, CheckpointAck, ConversationPatch, Conversations, ListConversations, ListMessages,
    Messages, Page, Store, StoreParts, StreamLease, Streams, Touch, TurnBegun, TurnFinish, TurnStart, Turns,
};

/// A port method the wrapper can break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Turns::begin_turn`]: the admitting write.
    BeginTurn,
    /// [`Turns::finish_turn`]: the finishing write (and the guard's release of a dead turn).
    FinishTurn,
    /// [`Turns::release_slot`]: the separate slot release after a failed finish.
    ReleaseSlot,
    /// [`Activity::record_activity`]: the events + audit batch at the end of a turn.
    RecordActivity,
    /// [`Activity::record_events`].
    RecordEvents,
    /// [`Messages::append_message`].
    AppendMessage,
    /// [`Messages::delete_message`].
    DeleteMessage,
    /// [`Messages::clear_messages`].
    ClearMessages,
    /// [`Conversations::create_conversation`].
    CreateConversation,
    /// [`Streams::checkpoint`]: a checkpoint written while the turn streams.
    Checkpoint,
    /// [`Streams::checkpoints`]: a resumed stream reading the checkpoints.
    ReadCheckpoints,
    /// [`Conversations::get_conversation_with_messages`]: the chat turn's load.
    GetConversationWithMessages,
    /// [`Conversations::update_conversation`].
    UpdateConversation,
    /// [`Conversations::delete_conversation`].
    DeleteConversation,
}

/// The error an injected failure answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// [`StoreError::Unavailable`]: throttled or unreachable.
    Unavailable,
    /// A timeout, as the adapters report one ([`StoreError::Unavailable`] whose source says
    /// "timed out"): the caller cannot know whether the write applied.
    Timeout,
    /// [`StoreError::Internal`].
    Internal,
}

impl Failure {
    /// The error, naming the method it was injected into.
    pub fn error(self, op: Op) -> StoreError {
        match self {
            Failure::Unavailable => StoreError::Unavailable(format!("injected: {op:?} unavailable").into()),
            Failure::Timeout => StoreError::Unavailable(format!("injected: {op:?} timed out").into()),
            Failure::Internal => StoreError::internal(format!("injected: {op:?}"), "injected failure"),
        }
    }
}

/// How one call misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers with the error without calling the store: nothing is written.
    Fail(Failure),
    /// Calls the store (the write applies), then answers with the error anyway: the ambiguous
    /// outcome of a timeout whose request did land.
    ApplyThenFail(Failure),
    /// Waits this long before calling the store (a hung connection). A caller that gives up
    /// first drops the call, which then never applies.
    Stall(Duration),
    /// Calls the store (the write applies), then waits this long before answering (the answer
    /// lost in a slow network).
    ApplyThenStall(Duration),
}

/// Misbehave this many calls in a row: every call from now on.
pub const ALWAYS: usize = usize::MAX;

#[derive(Default)]
struct Plan {
    /// Per method: the fault and how many more calls get it.
    faults: HashMap<Op, (Fault, usize)>,
    /// Per method: every call so far, faulted or not.
    calls: HashMap<Op, usize>,
}

/// The fault-injecting wrapper: see the module's documentation.
pub struct Faults {
    inner: Arc<dyn Store>,
    plan: Mutex<Plan>,
}

impl Faults {
    /// Wraps `inner`, behaving exactly like it until told otherwise.
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            plan: Mutex::new(Plan::default()),
        })
    }

    /// The wrapped store, untouched by any fault (for probes and reads in assertions).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// The store to hand to the code under test: the wrapped capabilities go through the faults.
    pub fn store(self: &Arc<Self>) -> Arc<dyn Store> {
        Arc::new(
            StoreParts::of(Arc::clone(&self.inner))
                .with_turns(Arc::clone(self) as Arc<dyn Turns>)
                .with_activity(Arc::clone(self) as Arc<dyn Activity>)
                .with_messages(Arc::clone(self) as Arc<dyn Messages>)
                .with_conversations(Arc::clone(self) as Arc<dyn Conversations>)
                .with_streams(Arc::clone(self) as Arc<dyn Streams>),
        )
    }

    /// The next `times` calls of `op` get `fault` ([`ALWAYS`]: every call); replaces what was
    /// injected into `op` before.
    pub fn inject(&self, op: Op, fault: Fault, times: usize) {
        self.lock().faults.insert(op, (fault, times));
    }

    /// `op` behaves again.
    pub fn heal(&self, op: Op) {
        self.lock().faults.remove(&op);
    }

    /// How many times `op` was called (faulted or not).
    pub fn calls(&self, op: Op) -> usize {
        self.lock().calls.get(&op).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts the call and takes its fault, if one is due.
    fn take(&self, op: Op) -> Option<Fault> {
        let mut plan = self.lock();
        *plan.calls.entry(op).or_default() += 1;
        let (fault, left) = plan.faults.get_mut(&op)?;
        if *left == 0 {
            return None;
        }
        if *left != ALWAYS {
            *left -= 1;
        }
        Some(*fault)
    }

    /// Runs `call` (the wrapped store's method, not yet started) under `op`'s fault, if any.
    async fn run<T>(&self, op: Op, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match self.take(op) {
            None => call.await,
            Some(Fault::Fail(failure)) => Err(failure.error(op)),
            Some(Fault::ApplyThenFail(failure)) => {
                call.await?;
                Err(failure.error(op))
            }
            Some(Fault::Stall(pause)) => {
                tokio::time::sleep(pause).await;
                call.await
            }
            Some(Fault::ApplyThenStall(pause)) => {
                let result = call.await;
                tokio::time::sleep(pause).await;
                result
            }
        }
    }
}

#[async_trait]
impl Turns for Faults {
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        self.run(Op::BeginTurn, self.inner.begin_turn(start)).await
    }

    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        self.run(Op::FinishTurn, self.inner.finish_turn(finish)).await
    }

    async fn release_slot(&self, owner: &UserId, lease: &StreamLease) -> Result<(), StoreError> {
        self.run(Op::ReleaseSlot, self.inner.release_slot(owner, lease)).await
    }
}

#[async_trait]
impl Streams for Faults {
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<CheckpointAck, StoreError> {
        self.run(Op::Checkpoint, self.inner.checkpoint(checkpoint)).await
    }

    async fn stop_requested(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<bool, StoreError> {
        self.inner.stop_requested(owner, id, turn_id).await
    }

    async fn live_turn(&self, owner: &UserId, id: &ConversationId) -> Result<Option<LiveTurn>, StoreError> {
        self.inner.live_turn(owner, id).await
    }

    async fn checkpoints(
        &self,
        owner: &UserId,
        id: &ConversationId,
        turn_id: &str,
        after: Option<u32>,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        self.run(Op::ReadCheckpoints, self.inner.checkpoints(owner, id, turn_id, after))
            .await
    }

    async fn request_stop(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<(), StoreError> {
        self.inner.request_stop(owner, id, turn_id).await
    }
}

#[async_trait]
impl Activity for Faults {
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError> {
        self.run(Op::RecordEvents, self.inner.record_events(events)).await
    }

    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        self.run(Op::RecordActivity, self.inner.record_activity(events, audit))
            .await
    }

    async fn events_of_day(&self, day: &str) -> Result<Vec<AnalyticsEvent>, StoreError> {
        self.inner.events_of_day(day).await
    }

    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.inner.list_audit(user, limit, cursor).await
    }
}

#[async_trait]
impl Messages for Faults {
    async fn append_message(&self, owner: &UserId, message: &Message, touch: &Touch) -> Result<Appended, StoreError> {
        self.run(Op::AppendMessage, self.inner.append_message(owner, message, touch))
            .await
    }

    async fn list_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
        query: &ListMessages,
    ) -> Result<Page<Message>, StoreError> {
        self.inner.list_messages(owner, id, query).await
    }

    async fn find_by_client_id(
        &self,
        owner: &UserId,
        id: &ConversationId,
        client_id: &ClientMessageId,
    ) -> Result<Option<Message>, StoreError> {
        self.inner.find_by_client_id(owner, id, client_id).await
    }

    async fn delete_message(&self, owner: &UserId, id: &ConversationId, message: &MessageId) -> Result<(), StoreError> {
        self.run(Op::DeleteMessage, self.inner.delete_message(owner, id, message))
            .await
    }

    async fn clear_messages(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        self.run(Op::ClearMessages, self.inner.clear_messages(owner, id)).await
    }
}

#[async_trait]
impl Conversations for Faults {
    async fn create_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        self.run(
            Op::CreateConversation,
            self.inner.create_conversation(conversation, messages),
        )
        .await
    }

    async fn import_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        self.inner.import_conversation(conversation, messages).await
    }

    async fn claim_conversation_id(&self, owner: &UserId, id: &ConversationId) -> Result<(), StoreError> {
        self.inner.claim_conversation_id(owner, id).await
    }

    async fn conversation_id_claimant(&self, id: &ConversationId) -> Result<Option<UserId>, StoreError> {
        self.inner.conversation_id_claimant(id).await
    }

    async fn get_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<Conversation, StoreError> {
        self.inner.get_conversation(owner, id).await
    }

    async fn get_conversation_with_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<Message>), StoreError> {
        self.run(
            Op::GetConversationWithMessages,
            self.inner.get_conversation_with_messages(owner, id),
        )
        .await
    }

    async fn list_conversations(
        &self,
        owner: &UserId,
        query: &ListConversations,
    ) -> Result<Page<Conversation>, StoreError> {
        self.inner.list_conversations(owner, query).await
    }

    async fn update_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.run(
            Op::UpdateConversation,
            self.inner.update_conversation(owner, id, patch, now),
        )
        .await
    }

    async fn delete_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        self.run(Op::DeleteConversation, self.inner.delete_conversation(owner, id))
            .await
    }

    async fn trash_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.inner.trash_conversation(owner, id, now).await
    }

    async fn restore_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.inner.restore_conversation(owner, id, now).await
    }
}

//! A `Store` that delegates to another and records every call, in order, so a test or a
//! benchmark can tell which calls happened before the first byte (or the first token) reached the
//! client (the round-trip counts of `docs/performance.md` and `tests/api/limits.rs`).

use std::sync::{Arc, Mutex, PoisonError};

use crate::domain::{
    AnalyticsEvent, AuditEntry, ClientMessageId, Conversation, ConversationId, LiveTurn, Message, MessageId,
    StatsDelta, StatsRow, Timestamp, UserId,
};
use crate::error::StoreError;
use crate::store::{
    Activity, Appended, Checkpoint, CheckpointAck, ConversationPatch, Conversations, Counters, HeldKey, Idempotency,
    ListConversations, ListMessages, Messages, Page, Reservation, SavedResponse, Stats, StatsUpdate, Store,
    StreamLease, Streams, Touch, TurnBegun, TurnFinish, TurnStart, Turns,
};
use async_trait::async_trait;

/// The instrumented store.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    calls: Mutex<Vec<&'static str>>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, name: &'static str) {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).push(name);
    }

    /// How many calls so far.
    pub fn count(&self) -> usize {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The recorded calls so far, leaving the log as it is.
    pub fn snapshot(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The wrapped store (reads through it are not recorded).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Takes the recorded calls, leaving the log empty.
    pub fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait]
impl Conversations for CountingStore {
    async fn create_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        self.record("create_conversation");
        self.inner.create_conversation(conversation, messages).await
    }

    async fn import_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        self.record("import_conversation");
        self.inner.import_conversation(conversation, messages).await
    }

    async fn claim_conversation_id(&self, owner: &UserId, id: &ConversationId) -> Result<(), StoreError> {
        self.record("claim_conversation_id");
        self.inner.claim_conversation_id(owner, id).await
    }

    async fn conversation_id_claimant(&self, id: &ConversationId) -> Result<Option<UserId>, StoreError> {
        self.record("conversation_id_claimant");
        self.inner.conversation_id_claimant(id).await
    }

    async fn get_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<Conversation, StoreError> {
        self.record("get_conversation");
        self.inner.get_conversation(owner, id).await
    }

    async fn get_conversation_with_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<Message>), StoreError> {
        self.record("get_conversation_with_messages");
        self.inner.get_conversation_with_messages(owner, id).await
    }

    async fn list_conversations(
        &self,
        owner: &UserId,
        query: &ListConversations,
    ) -> Result<Page<Conversation>, StoreError> {
        self.record("list_conversations");
        self.inner.list_conversations(owner, query).await
    }

    async fn update_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.record("update_conversation");
        self.inner.update_conversation(owner, id, patch, now).await
    }

    async fn delete_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        self.record("delete_conversation");
        self.inner.delete_conversation(owner, id).await
    }

    async fn trash_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.record("trash_conversation");
        self.inner.trash_conversation(owner, id, now).await
    }

    async fn restore_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.record("restore_conversation");
        self.inner.restore_conversation(owner, id, now).await
    }
}

#[async_trait]
impl crate::store::ports::Accounting for CountingStore {
    async fn plan_override(&self, user: &UserId) -> Result<Option<crate::store::PlanOverride>, StoreError> {
        self.record("plan_override");
        self.inner.plan_override(user).await
    }

    async fn set_plan_override(
        &self,
        user: &UserId,
        value: Option<&crate::store::PlanOverride>,
    ) -> Result<(), StoreError> {
        self.record("set_plan_override");
        self.inner.set_plan_override(user, value).await
    }

    async fn usage_between(
        &self,
        user: &UserId,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::store::UsageRow>, StoreError> {
        self.record("usage_between");
        self.inner.usage_between(user, from, to).await
    }

    async fn budget_levels(&self, user: &UserId, at: Timestamp) -> Result<crate::store::BudgetLevels, StoreError> {
        self.record("budget_levels");
        self.inner.budget_levels(user, at).await
    }

    async fn month_spend(&self, month: &str) -> Result<u64, StoreError> {
        self.record("month_spend");
        self.inner.month_spend(month).await
    }
}

#[async_trait]
impl crate::store::ports::Accounts for CountingStore {
    async fn erase_user(&self, user: &UserId, now: Timestamp) -> Result<crate::store::Erased, StoreError> {
        self.record("erase_user");
        self.inner.erase_user(user, now).await
    }
}

#[async_trait]
impl crate::store::ports::Housekeeping for CountingStore {
    async fn due_for_purge(&self, now: Timestamp, limit: u32) -> Result<Vec<(UserId, ConversationId)>, StoreError> {
        self.record("due_for_purge");
        self.inner.due_for_purge(now, limit).await
    }

    async fn trash_untouched(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        self.record("trash_untouched");
        self.inner.trash_untouched(before, now).await
    }
}

#[async_trait]
impl crate::store::ports::Organizer for CountingStore {
    async fn create_folder(&self, folder: &crate::domain::Folder, max: usize) -> Result<(), StoreError> {
        self.record("create_folder");
        self.inner.create_folder(folder, max).await
    }

    async fn get_folder(
        &self,
        owner: &UserId,
        id: &crate::domain::FolderId,
    ) -> Result<crate::domain::Folder, StoreError> {
        self.record("get_folder");
        self.inner.get_folder(owner, id).await
    }

    async fn list_folders(&self, owner: &UserId) -> Result<Vec<crate::domain::Folder>, StoreError> {
        self.record("list_folders");
        self.inner.list_folders(owner).await
    }

    async fn replace_folder(&self, folder: &crate::domain::Folder, updated_at: Timestamp) -> Result<(), StoreError> {
        self.record("replace_folder");
        self.inner.replace_folder(folder, updated_at).await
    }

    async fn delete_folder(
        &self,
        owner: &UserId,
        id: &crate::domain::FolderId,
    ) -> Result<crate::store::FolderDeleted, StoreError> {
        self.record("delete_folder");
        self.inner.delete_folder(owner, id).await
    }

    async fn list_tags(&self, owner: &UserId) -> Result<Vec<crate::store::TagCount>, StoreError> {
        self.record("list_tags");
        self.inner.list_tags(owner).await
    }
}

#[async_trait]
impl crate::store::ports::Projects for CountingStore {
    async fn create_project(&self, project: &crate::domain::Project, max: usize) -> Result<(), StoreError> {
        self.record("create_project");
        self.inner.create_project(project, max).await
    }

    async fn get_project(
        &self,
        owner: &UserId,
        id: &crate::domain::ProjectId,
    ) -> Result<crate::domain::Project, StoreError> {
        self.record("get_project");
        self.inner.get_project(owner, id).await
    }

    async fn list_projects(&self, owner: &UserId) -> Result<Vec<crate::domain::Project>, StoreError> {
        self.record("list_projects");
        self.inner.list_projects(owner).await
    }

    async fn update_project(
        &self,
        owner: &UserId,
        id: &crate::domain::ProjectId,
        patch: &crate::store::ports::ProjectPatch,
        now: Timestamp,
    ) -> Result<crate::domain::Project, StoreError> {
        self.record("update_project");
        self.inner.update_project(owner, id, patch, now).await
    }

    async fn delete_project(
        &self,
        owner: &UserId,
        id: &crate::domain::ProjectId,
        conversations: crate::store::ports::ProjectConversations,
    ) -> Result<u64, StoreError> {
        self.record("delete_project");
        self.inner.delete_project(owner, id, conversations).await
    }
}

#[async_trait]
impl crate::store::ports::Prompts for CountingStore {
    async fn create_prompt(&self, prompt: &crate::domain::SavedPrompt, max: usize) -> Result<(), StoreError> {
        self.record("create_prompt");
        self.inner.create_prompt(prompt, max).await
    }

    async fn get_prompt(
        &self,
        owner: &UserId,
        id: &crate::domain::PromptId,
    ) -> Result<crate::domain::SavedPrompt, StoreError> {
        self.record("get_prompt");
        self.inner.get_prompt(owner, id).await
    }

    async fn list_prompts(&self, owner: &UserId) -> Result<Vec<crate::domain::SavedPrompt>, StoreError> {
        self.record("list_prompts");
        self.inner.list_prompts(owner).await
    }

    async fn update_prompt(
        &self,
        owner: &UserId,
        id: &crate::domain::PromptId,
        patch: &crate::store::ports::PromptPatch,
        now: Timestamp,
    ) -> Result<crate::domain::SavedPrompt, StoreError> {
        self.record("update_prompt");
        self.inner.update_prompt(owner, id, patch, now).await
    }

    async fn delete_prompt(&self, owner: &UserId, id: &crate::domain::PromptId) -> Result<(), StoreError> {
        self.record("delete_prompt");
        self.inner.delete_prompt(owner, id).await
    }
}

#[async_trait]
impl crate::store::ports::Files for CountingStore {
    async fn put_file(&self, file: &crate::domain::StoredFile) -> Result<(), StoreError> {
        self.record("put_file");
        self.inner.put_file(file).await
    }

    async fn get_file(
        &self,
        owner: &UserId,
        id: &crate::domain::FileId,
    ) -> Result<crate::domain::StoredFile, StoreError> {
        self.record("get_file");
        self.inner.get_file(owner, id).await
    }

    async fn list_files(&self, owner: &UserId) -> Result<Vec<crate::domain::StoredFile>, StoreError> {
        self.record("list_files");
        self.inner.list_files(owner).await
    }

    async fn replace_file(
        &self,
        file: &crate::domain::StoredFile,
        condition: crate::store::ports::FileCondition<'_>,
    ) -> Result<(), StoreError> {
        self.record("replace_file");
        self.inner.replace_file(file, condition).await
    }

    async fn delete_files(&self, owner: &UserId, ids: &[crate::domain::FileId]) -> Result<(), StoreError> {
        self.record("delete_files");
        self.inner.delete_files(owner, ids).await
    }
}

#[async_trait]
impl Messages for CountingStore {
    async fn append_message(&self, owner: &UserId, message: &Message, touch: &Touch) -> Result<Appended, StoreError> {
        self.record("append_message");
        self.inner.append_message(owner, message, touch).await
    }

    async fn list_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
        query: &ListMessages,
    ) -> Result<Page<Message>, StoreError> {
        self.record("list_messages");
        self.inner.list_messages(owner, id, query).await
    }

    async fn find_by_client_id(
        &self,
        owner: &UserId,
        id: &ConversationId,
        client_id: &ClientMessageId,
    ) -> Result<Option<Message>, StoreError> {
        self.record("find_by_client_id");
        self.inner.find_by_client_id(owner, id, client_id).await
    }

    async fn delete_message(&self, owner: &UserId, id: &ConversationId, message: &MessageId) -> Result<(), StoreError> {
        self.record("delete_message");
        self.inner.delete_message(owner, id, message).await
    }

    async fn clear_messages(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        self.record("clear_messages");
        self.inner.clear_messages(owner, id).await
    }
}

#[async_trait]
impl Turns for CountingStore {
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        self.record("begin_turn");
        self.inner.begin_turn(start).await
    }

    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        self.record("finish_turn");
        self.inner.finish_turn(finish).await
    }

    async fn release_slot(&self, owner: &UserId, lease: &StreamLease) -> Result<(), StoreError> {
        self.record("release_slot");
        self.inner.release_slot(owner, lease).await
    }
}

#[async_trait]
impl Streams for CountingStore {
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<CheckpointAck, StoreError> {
        self.record("checkpoint");
        self.inner.checkpoint(checkpoint).await
    }

    async fn stop_requested(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<bool, StoreError> {
        self.record("stop_requested");
        self.inner.stop_requested(owner, id, turn_id).await
    }

    async fn live_turn(&self, owner: &UserId, id: &ConversationId) -> Result<Option<LiveTurn>, StoreError> {
        self.record("live_turn");
        self.inner.live_turn(owner, id).await
    }

    async fn checkpoints(
        &self,
        owner: &UserId,
        id: &ConversationId,
        turn_id: &str,
        after: Option<u32>,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        self.record("checkpoints");
        self.inner.checkpoints(owner, id, turn_id, after).await
    }

    async fn request_stop(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<(), StoreError> {
        self.record("request_stop");
        self.inner.request_stop(owner, id, turn_id).await
    }
}

#[async_trait]
impl Activity for CountingStore {
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError> {
        self.record("record_events");
        self.inner.record_events(events).await
    }

    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        self.record("record_activity");
        self.inner.record_activity(events, audit).await
    }

    async fn events_of_day(&self, day: &str) -> Result<Vec<AnalyticsEvent>, StoreError> {
        self.record("events_of_day");
        self.inner.events_of_day(day).await
    }

    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.record("list_audit");
        self.inner.list_audit(user, limit, cursor).await
    }
}

#[async_trait]
impl Stats for CountingStore {
    async fn add_stats(&self, day: &str, solution: &str, model: &str, delta: &StatsDelta) -> Result<(), StoreError> {
        self.record("add_stats");
        self.inner.add_stats(day, solution, model, delta).await
    }

    async fn stats_between(&self, from: &str, to: &str) -> Result<Vec<StatsRow>, StoreError> {
        self.record("stats_between");
        self.inner.stats_between(from, to).await
    }

    async fn stats_imported(&self, key: &str) -> Result<bool, StoreError> {
        self.record("stats_imported");
        self.inner.stats_imported(key).await
    }

    async fn import_stats(&self, key: &str, rows: &[StatsUpdate]) -> Result<bool, StoreError> {
        self.record("import_stats");
        self.inner.import_stats(key, rows).await
    }
}

#[async_trait]
impl Counters for CountingStore {
    async fn increment_counter(&self, key: &str, window_start: i64, ttl_secs: i64) -> Result<u64, StoreError> {
        self.record("increment_counter");
        self.inner.increment_counter(key, window_start, ttl_secs).await
    }
}

#[async_trait]
impl Idempotency for CountingStore {
    async fn reserve_key(
        &self,
        owner: &UserId,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        self.record("reserve_key");
        self.inner.reserve_key(owner, key, fingerprint, now).await
    }

    async fn complete_key(&self, held: &HeldKey, response: &SavedResponse, now: Timestamp) -> Result<(), StoreError> {
        self.record("complete_key");
        self.inner.complete_key(held, response, now).await
    }

    async fn release_key(&self, held: &HeldKey) -> Result<(), StoreError> {
        self.record("release_key");
        self.inner.release_key(held).await
    }
}

#[async_trait]
impl crate::store::Search for CountingStore {
    async fn search_index(
        &self,
        owner: &UserId,
        query: &crate::store::IndexQuery,
    ) -> Result<Vec<crate::store::IndexHit>, StoreError> {
        self.record("search_index");
        self.inner.search_index(owner, query).await
    }
}

#[async_trait]
impl crate::store::Sharing for CountingStore {
    async fn put_grant(&self, grant: &crate::store::Grant, max: usize) -> Result<(), StoreError> {
        self.record("put_grant");
        self.inner.put_grant(grant, max).await
    }

    async fn delete_grant(
        &self,
        owner: &UserId,
        id: &ConversationId,
        grantee: &crate::store::Grantee,
    ) -> Result<(), StoreError> {
        self.record("delete_grant");
        self.inner.delete_grant(owner, id, grantee).await
    }

    async fn grants_of(&self, owner: &UserId, id: &ConversationId) -> Result<Vec<crate::store::Grant>, StoreError> {
        self.record("grants_of");
        self.inner.grants_of(owner, id).await
    }

    async fn grant_for(
        &self,
        grantees: &[crate::store::Grantee],
        id: &ConversationId,
    ) -> Result<Option<crate::store::Grant>, StoreError> {
        self.record("grant_for");
        self.inner.grant_for(grantees, id).await
    }

    async fn shared_with(&self, grantees: &[crate::store::Grantee]) -> Result<Vec<crate::store::Grant>, StoreError> {
        self.record("shared_with");
        self.inner.shared_with(grantees).await
    }

    async fn erase_grants(&self, grantees: &[crate::store::Grantee]) -> Result<u64, StoreError> {
        self.record("erase_grants");
        self.inner.erase_grants(grantees).await
    }
}

#[async_trait]
impl crate::store::ports::Feedback for CountingStore {
    async fn put_reaction(
        &self,
        owner: &UserId,
        reaction: &crate::store::Reaction,
    ) -> Result<Option<crate::store::Reaction>, StoreError> {
        self.record("put_reaction");
        self.inner.put_reaction(owner, reaction).await
    }

    async fn delete_reaction(
        &self,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
        user: &UserId,
    ) -> Result<Option<crate::store::Reaction>, StoreError> {
        self.record("delete_reaction");
        self.inner.delete_reaction(owner, id, message, user).await
    }

    async fn reactions(
        &self,
        owner: &UserId,
        id: &ConversationId,
        user: &UserId,
    ) -> Result<Vec<crate::store::Reaction>, StoreError> {
        self.record("reactions");
        self.inner.reactions(owner, id, user).await
    }

    async fn put_bookmark(&self, bookmark: &crate::store::Bookmark) -> Result<crate::store::Bookmark, StoreError> {
        self.record("put_bookmark");
        self.inner.put_bookmark(bookmark).await
    }

    async fn delete_bookmark(
        &self,
        user: &UserId,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
    ) -> Result<bool, StoreError> {
        self.record("delete_bookmark");
        self.inner.delete_bookmark(user, owner, id, message).await
    }

    async fn list_bookmarks(
        &self,
        user: &UserId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::store::Bookmark>, StoreError> {
        self.record("list_bookmarks");
        self.inner.list_bookmarks(user, after, limit).await
    }

    async fn conversation_titles(
        &self,
        keys: &[(UserId, ConversationId)],
    ) -> Result<std::collections::HashMap<(UserId, ConversationId), String>, StoreError> {
        self.record("conversation_titles");
        self.inner.conversation_titles(keys).await
    }
}

#[async_trait]
impl crate::store::links::Links for CountingStore {
    async fn create_link(
        &self,
        link: &crate::domain::ShareLink,
        snapshot: &str,
        max: usize,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.record("create_link");
        self.inner.create_link(link, snapshot, max, now).await
    }

    async fn list_links(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
    ) -> Result<Vec<crate::domain::ShareLink>, StoreError> {
        self.record("list_links");
        self.inner.list_links(owner, conversation).await
    }

    async fn update_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &crate::domain::LinkId,
        update: &crate::store::links::LinkUpdate,
        now: Timestamp,
    ) -> Result<crate::domain::ShareLink, StoreError> {
        self.record("update_link");
        self.inner.update_link(owner, conversation, id, update, now).await
    }

    async fn delete_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &crate::domain::LinkId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.record("delete_link");
        self.inner.delete_link(owner, conversation, id, now).await
    }

    async fn delete_conversation_links(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
    ) -> Result<u64, StoreError> {
        self.record("delete_conversation_links");
        self.inner.delete_conversation_links(owner, conversation).await
    }

    async fn read_link(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<crate::store::links::SharedSnapshot, StoreError> {
        self.record("read_link");
        self.inner.read_link(token_hash, now).await
    }
}

#[async_trait]
impl crate::store::import_jobs::ImportJobs for CountingStore {
    async fn put_import_job(&self, job: &crate::domain::ImportJob) -> Result<(), StoreError> {
        self.record("put_import_job");
        self.inner.put_import_job(job).await
    }

    async fn get_import_job(
        &self,
        owner: &UserId,
        id: &crate::domain::ImportJobId,
    ) -> Result<crate::domain::ImportJob, StoreError> {
        self.record("get_import_job");
        self.inner.get_import_job(owner, id).await
    }

    async fn find_import_job(
        &self,
        owner_prefix: &str,
        id: &crate::domain::ImportJobId,
    ) -> Result<crate::domain::ImportJob, StoreError> {
        self.record("find_import_job");
        self.inner.find_import_job(owner_prefix, id).await
    }

    async fn update_import_job(&self, job: &crate::domain::ImportJob, read_at: Timestamp) -> Result<(), StoreError> {
        self.record("update_import_job");
        self.inner.update_import_job(job, read_at).await
    }

    async fn list_import_jobs(
        &self,
        owner: &UserId,
        before: Option<&crate::domain::ImportJobId>,
        limit: usize,
    ) -> Result<Vec<crate::domain::ImportJob>, StoreError> {
        self.record("list_import_jobs");
        self.inner.list_import_jobs(owner, before, limit).await
    }

    async fn delete_import_job(&self, owner: &UserId, id: &crate::domain::ImportJobId) -> Result<(), StoreError> {
        self.record("delete_import_job");
        self.inner.delete_import_job(owner, id).await
    }
}

//! A store assembled from one implementation per capability. [`StoreParts::of`] takes every
//! capability from one store; `with_*` replaces one, so a wrapper that injects faults or observes
//! one capability implements that capability's few methods and nothing else:
//!
//! ```ignore
//! let store = StoreParts::of(inner).with_activity(Arc::new(FailingActivity));
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use super::ports::{
    Activity, Appended, Checkpoint, CheckpointAck, ConversationPatch, Conversations, Counters, HeldKey, Idempotency,
    ListConversations, ListMessages, Messages, Page, Reservation, SavedResponse, Stats, StatsUpdate, Store,
    StreamLease, Streams, Touch, TurnBegun, TurnFinish, TurnStart, Turns,
};
use crate::domain::{
    AnalyticsEvent, AuditEntry, ClientMessageId, Conversation, ConversationId, LiveTurn, Message, MessageId,
    StatsDelta, StatsRow, Timestamp, UserId,
};
use crate::error::StoreError;

/// One implementation per capability; itself a [`Store`].
#[derive(Clone)]
pub struct StoreParts {
    /// Conversations.
    pub conversations: Arc<dyn Conversations>,
    /// Folders and tags.
    pub organizer: Arc<dyn super::ports::Organizer>,
    /// Plans, usage and spend.
    pub accounting: Arc<dyn super::ports::Accounting>,
    /// A user's data as a whole (erasure).
    pub accounts: Arc<dyn super::ports::Accounts>,
    /// The trash's purge and retention.
    pub housekeeping: Arc<dyn super::ports::Housekeeping>,
    /// Projects.
    pub projects: Arc<dyn super::ports::Projects>,
    /// Saved prompts.
    pub prompts: Arc<dyn super::ports::Prompts>,
    /// Attached files.
    pub files: Arc<dyn super::ports::Files>,
    /// Messages.
    pub messages: Arc<dyn Messages>,
    /// Chat turns.
    pub turns: Arc<dyn Turns>,
    /// Running turns' checkpoints.
    pub streams: Arc<dyn Streams>,
    /// Events and audit.
    pub activity: Arc<dyn Activity>,
    /// Daily counters.
    pub stats: Arc<dyn Stats>,
    /// Windowed counters.
    pub counters: Arc<dyn Counters>,
    /// `Idempotency-Key` records.
    pub idempotency: Arc<dyn Idempotency>,
    /// The full-text index.
    pub search: Arc<dyn super::ports::Search>,
    /// Named-user sharing.
    pub sharing: Arc<dyn super::ports::Sharing>,
    /// Reactions and bookmarks.
    pub feedback: Arc<dyn super::ports::Feedback>,
    /// Share links.
    pub links: Arc<dyn super::links::Links>,
    /// Import jobs.
    pub import_jobs: Arc<dyn super::import_jobs::ImportJobs>,
}

impl std::fmt::Debug for StoreParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreParts")
    }
}

impl StoreParts {
    /// Every capability from `store`.
    pub fn of(store: Arc<dyn Store>) -> Self {
        Self {
            conversations: store.clone(),
            organizer: store.clone(),
            accounting: store.clone(),
            accounts: store.clone(),
            housekeeping: store.clone(),
            projects: store.clone(),
            prompts: store.clone(),
            files: store.clone(),
            messages: store.clone(),
            turns: store.clone(),
            streams: store.clone(),
            activity: store.clone(),
            stats: store.clone(),
            counters: store.clone(),
            idempotency: store.clone(),
            search: store.clone(),
            sharing: store.clone(),
            feedback: store.clone(),
            links: store.clone(),
            import_jobs: store,
        }
    }

    /// Replaces the conversations capability.
    pub fn with_conversations(mut self, part: Arc<dyn Conversations>) -> Self {
        self.conversations = part;
        self
    }

    /// Replaces the projects capability.
    pub fn with_projects(mut self, part: Arc<dyn super::ports::Projects>) -> Self {
        self.projects = part;
        self
    }

    /// Replaces the saved-prompts capability.
    pub fn with_prompts(mut self, part: Arc<dyn super::ports::Prompts>) -> Self {
        self.prompts = part;
        self
    }

    /// Replaces the full-text search capability.
    pub fn with_search(mut self, part: Arc<dyn super::ports::Search>) -> Self {
        self.search = part;
        self
    }

    /// Replaces the reactions-and-bookmarks capability.
    pub fn with_feedback(mut self, part: Arc<dyn super::ports::Feedback>) -> Self {
        self.feedback = part;
        self
    }

    /// Replaces the share-links capability.
    pub fn with_links(mut self, part: Arc<dyn super::links::Links>) -> Self {
        self.links = part;
        self
    }

    /// Replaces the import-jobs capability.
    pub fn with_import_jobs(mut self, part: Arc<dyn super::import_jobs::ImportJobs>) -> Self {
        self.import_jobs = part;
        self
    }

    /// Replaces the messages capability.
    pub fn with_messages(mut self, part: Arc<dyn Messages>) -> Self {
        self.messages = part;
        self
    }

    /// Replaces the turns capability.
    pub fn with_turns(mut self, part: Arc<dyn Turns>) -> Self {
        self.turns = part;
        self
    }

    /// Replaces the streams capability (checkpoints).
    pub fn with_streams(mut self, part: Arc<dyn Streams>) -> Self {
        self.streams = part;
        self
    }

    /// Replaces the activity capability (events and audit).
    pub fn with_activity(mut self, part: Arc<dyn Activity>) -> Self {
        self.activity = part;
        self
    }

    /// Replaces the stats capability.
    pub fn with_stats(mut self, part: Arc<dyn Stats>) -> Self {
        self.stats = part;
        self
    }

    /// Replaces the counters capability.
    pub fn with_counters(mut self, part: Arc<dyn Counters>) -> Self {
        self.counters = part;
        self
    }

    /// Replaces the idempotency capability.
    pub fn with_idempotency(mut self, part: Arc<dyn Idempotency>) -> Self {
        self.idempotency = part;
        self
    }
}

#[async_trait]
impl Conversations for StoreParts {
    async fn create_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        self.conversations.create_conversation(conversation, messages).await
    }

    async fn import_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        self.conversations.import_conversation(conversation, messages).await
    }

    async fn claim_conversation_id(&self, owner: &UserId, id: &ConversationId) -> Result<(), StoreError> {
        self.conversations.claim_conversation_id(owner, id).await
    }

    async fn conversation_id_claimant(&self, id: &ConversationId) -> Result<Option<UserId>, StoreError> {
        self.conversations.conversation_id_claimant(id).await
    }

    async fn get_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<Conversation, StoreError> {
        self.conversations.get_conversation(owner, id).await
    }

    async fn get_conversation_with_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<Message>), StoreError> {
        self.conversations.get_conversation_with_messages(owner, id).await
    }

    async fn list_conversations(
        &self,
        owner: &UserId,
        query: &ListConversations,
    ) -> Result<Page<Conversation>, StoreError> {
        self.conversations.list_conversations(owner, query).await
    }

    async fn update_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.conversations.update_conversation(owner, id, patch, now).await
    }

    async fn delete_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        self.conversations.delete_conversation(owner, id).await
    }

    async fn trash_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.conversations.trash_conversation(owner, id, now).await
    }

    async fn restore_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.conversations.restore_conversation(owner, id, now).await
    }
}

#[async_trait]
impl super::ports::Accounting for StoreParts {
    async fn plan_override(&self, user: &UserId) -> Result<Option<super::ports::PlanOverride>, StoreError> {
        self.accounting.plan_override(user).await
    }

    async fn set_plan_override(
        &self,
        user: &UserId,
        value: Option<&super::ports::PlanOverride>,
    ) -> Result<(), StoreError> {
        self.accounting.set_plan_override(user, value).await
    }

    async fn usage_between(
        &self,
        user: &UserId,
        from: &str,
        to: &str,
    ) -> Result<Vec<super::ports::UsageRow>, StoreError> {
        self.accounting.usage_between(user, from, to).await
    }

    async fn budget_levels(&self, user: &UserId, at: Timestamp) -> Result<super::ports::BudgetLevels, StoreError> {
        self.accounting.budget_levels(user, at).await
    }

    async fn month_spend(&self, month: &str) -> Result<u64, StoreError> {
        self.accounting.month_spend(month).await
    }
}

#[async_trait]
impl super::ports::Accounts for StoreParts {
    async fn erase_user(&self, user: &UserId, now: Timestamp) -> Result<super::ports::Erased, StoreError> {
        self.accounts.erase_user(user, now).await
    }
}

#[async_trait]
impl super::ports::Housekeeping for StoreParts {
    async fn due_for_purge(&self, now: Timestamp, limit: u32) -> Result<Vec<(UserId, ConversationId)>, StoreError> {
        self.housekeeping.due_for_purge(now, limit).await
    }

    async fn trash_untouched(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        self.housekeeping.trash_untouched(before, now).await
    }
}

#[async_trait]
impl super::ports::Organizer for StoreParts {
    async fn create_folder(&self, folder: &crate::domain::Folder, max: usize) -> Result<(), StoreError> {
        self.organizer.create_folder(folder, max).await
    }

    async fn get_folder(
        &self,
        owner: &UserId,
        id: &crate::domain::FolderId,
    ) -> Result<crate::domain::Folder, StoreError> {
        self.organizer.get_folder(owner, id).await
    }

    async fn list_folders(&self, owner: &UserId) -> Result<Vec<crate::domain::Folder>, StoreError> {
        self.organizer.list_folders(owner).await
    }

    async fn replace_folder(&self, folder: &crate::domain::Folder, updated_at: Timestamp) -> Result<(), StoreError> {
        self.organizer.replace_folder(folder, updated_at).await
    }

    async fn delete_folder(
        &self,
        owner: &UserId,
        id: &crate::domain::FolderId,
    ) -> Result<super::ports::FolderDeleted, StoreError> {
        self.organizer.delete_folder(owner, id).await
    }

    async fn list_tags(&self, owner: &UserId) -> Result<Vec<super::ports::TagCount>, StoreError> {
        self.organizer.list_tags(owner).await
    }
}

#[async_trait]
impl crate::store::ports::Projects for StoreParts {
    async fn create_project(&self, project: &crate::domain::Project, max: usize) -> Result<(), StoreError> {
        self.projects.create_project(project, max).await
    }

    async fn get_project(
        &self,
        owner: &UserId,
        id: &crate::domain::ProjectId,
    ) -> Result<crate::domain::Project, StoreError> {
        self.projects.get_project(owner, id).await
    }

    async fn list_projects(&self, owner: &UserId) -> Result<Vec<crate::domain::Project>, StoreError> {
        self.projects.list_projects(owner).await
    }

    async fn update_project(
        &self,
        owner: &UserId,
        id: &crate::domain::ProjectId,
        patch: &crate::store::ports::ProjectPatch,
        now: Timestamp,
    ) -> Result<crate::domain::Project, StoreError> {
        self.projects.update_project(owner, id, patch, now).await
    }

    async fn delete_project(
        &self,
        owner: &UserId,
        id: &crate::domain::ProjectId,
        conversations: crate::store::ports::ProjectConversations,
    ) -> Result<u64, StoreError> {
        self.projects.delete_project(owner, id, conversations).await
    }
}

#[async_trait]
impl crate::store::ports::Files for StoreParts {
    async fn put_file(&self, file: &crate::domain::StoredFile) -> Result<(), StoreError> {
        self.files.put_file(file).await
    }

    async fn get_file(
        &self,
        owner: &UserId,
        id: &crate::domain::FileId,
    ) -> Result<crate::domain::StoredFile, StoreError> {
        self.files.get_file(owner, id).await
    }

    async fn list_files(&self, owner: &UserId) -> Result<Vec<crate::domain::StoredFile>, StoreError> {
        self.files.list_files(owner).await
    }

    async fn replace_file(
        &self,
        file: &crate::domain::StoredFile,
        condition: crate::store::ports::FileCondition<'_>,
    ) -> Result<(), StoreError> {
        self.files.replace_file(file, condition).await
    }

    async fn delete_files(&self, owner: &UserId, ids: &[crate::domain::FileId]) -> Result<(), StoreError> {
        self.files.delete_files(owner, ids).await
    }
}

#[async_trait]
impl crate::store::ports::Prompts for StoreParts {
    async fn create_prompt(&self, prompt: &crate::domain::SavedPrompt, max: usize) -> Result<(), StoreError> {
        self.prompts.create_prompt(prompt, max).await
    }

    async fn get_prompt(
        &self,
        owner: &UserId,
        id: &crate::domain::PromptId,
    ) -> Result<crate::domain::SavedPrompt, StoreError> {
        self.prompts.get_prompt(owner, id).await
    }

    async fn list_prompts(&self, owner: &UserId) -> Result<Vec<crate::domain::SavedPrompt>, StoreError> {
        self.prompts.list_prompts(owner).await
    }

    async fn update_prompt(
        &self,
        owner: &UserId,
        id: &crate::domain::PromptId,
        patch: &crate::store::ports::PromptPatch,
        now: Timestamp,
    ) -> Result<crate::domain::SavedPrompt, StoreError> {
        self.prompts.update_prompt(owner, id, patch, now).await
    }

    async fn delete_prompt(&self, owner: &UserId, id: &crate::domain::PromptId) -> Result<(), StoreError> {
        self.prompts.delete_prompt(owner, id).await
    }
}

#[async_trait]
impl Messages for StoreParts {
    async fn append_message(&self, owner: &UserId, message: &Message, touch: &Touch) -> Result<Appended, StoreError> {
        self.messages.append_message(owner, message, touch).await
    }

    async fn list_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
        query: &ListMessages,
    ) -> Result<Page<Message>, StoreError> {
        self.messages.list_messages(owner, id, query).await
    }

    async fn find_by_client_id(
        &self,
        owner: &UserId,
        id: &ConversationId,
        client_id: &ClientMessageId,
    ) -> Result<Option<Message>, StoreError> {
        self.messages.find_by_client_id(owner, id, client_id).await
    }

    async fn delete_message(&self, owner: &UserId, id: &ConversationId, message: &MessageId) -> Result<(), StoreError> {
        self.messages.delete_message(owner, id, message).await
    }

    async fn clear_messages(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        self.messages.clear_messages(owner, id).await
    }
}

#[async_trait]
impl Turns for StoreParts {
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        self.turns.begin_turn(start).await
    }

    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        self.turns.finish_turn(finish).await
    }

    async fn release_slot(&self, owner: &UserId, lease: &StreamLease) -> Result<(), StoreError> {
        self.turns.release_slot(owner, lease).await
    }
}

#[async_trait]
impl Streams for StoreParts {
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<CheckpointAck, StoreError> {
        self.streams.checkpoint(checkpoint).await
    }

    async fn stop_requested(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<bool, StoreError> {
        self.streams.stop_requested(owner, id, turn_id).await
    }

    async fn live_turn(&self, owner: &UserId, id: &ConversationId) -> Result<Option<LiveTurn>, StoreError> {
        self.streams.live_turn(owner, id).await
    }

    async fn checkpoints(
        &self,
        owner: &UserId,
        id: &ConversationId,
        turn_id: &str,
        after: Option<u32>,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        self.streams.checkpoints(owner, id, turn_id, after).await
    }

    async fn request_stop(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<(), StoreError> {
        self.streams.request_stop(owner, id, turn_id).await
    }
}

#[async_trait]
impl Activity for StoreParts {
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError> {
        self.activity.record_events(events).await
    }

    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError> {
        self.activity.record_activity(events, audit).await
    }

    async fn events_of_day(&self, day: &str) -> Result<Vec<AnalyticsEvent>, StoreError> {
        self.activity.events_of_day(day).await
    }

    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.activity.list_audit(user, limit, cursor).await
    }
}

#[async_trait]
impl Stats for StoreParts {
    async fn add_stats(&self, day: &str, solution: &str, model: &str, delta: &StatsDelta) -> Result<(), StoreError> {
        self.stats.add_stats(day, solution, model, delta).await
    }

    async fn stats_between(&self, from: &str, to: &str) -> Result<Vec<StatsRow>, StoreError> {
        self.stats.stats_between(from, to).await
    }

    async fn stats_imported(&self, key: &str) -> Result<bool, StoreError> {
        self.stats.stats_imported(key).await
    }

    async fn import_stats(&self, key: &str, rows: &[StatsUpdate]) -> Result<bool, StoreError> {
        self.stats.import_stats(key, rows).await
    }
}

#[async_trait]
impl Counters for StoreParts {
    async fn increment_counter(&self, key: &str, window_start: i64, ttl_secs: i64) -> Result<u64, StoreError> {
        self.counters.increment_counter(key, window_start, ttl_secs).await
    }
}

#[async_trait]
impl Idempotency for StoreParts {
    async fn reserve_key(
        &self,
        owner: &UserId,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        self.idempotency.reserve_key(owner, key, fingerprint, now).await
    }

    async fn complete_key(&self, held: &HeldKey, response: &SavedResponse, now: Timestamp) -> Result<(), StoreError> {
        self.idempotency.complete_key(held, response, now).await
    }

    async fn release_key(&self, held: &HeldKey) -> Result<(), StoreError> {
        self.idempotency.release_key(held).await
    }
}

#[async_trait]
impl super::ports::Search for StoreParts {
    async fn search_index(
        &self,
        owner: &UserId,
        query: &super::ports::IndexQuery,
    ) -> Result<Vec<super::ports::IndexHit>, StoreError> {
        self.search.search_index(owner, query).await
    }
}

#[async_trait]
impl super::ports::Sharing for StoreParts {
    async fn put_grant(&self, grant: &super::ports::Grant, max: usize) -> Result<(), StoreError> {
        self.sharing.put_grant(grant, max).await
    }

    async fn delete_grant(
        &self,
        owner: &UserId,
        id: &ConversationId,
        grantee: &super::ports::Grantee,
    ) -> Result<(), StoreError> {
        self.sharing.delete_grant(owner, id, grantee).await
    }

    async fn grants_of(&self, owner: &UserId, id: &ConversationId) -> Result<Vec<super::ports::Grant>, StoreError> {
        self.sharing.grants_of(owner, id).await
    }

    async fn grant_for(
        &self,
        grantees: &[super::ports::Grantee],
        id: &ConversationId,
    ) -> Result<Option<super::ports::Grant>, StoreError> {
        self.sharing.grant_for(grantees, id).await
    }

    async fn shared_with(&self, grantees: &[super::ports::Grantee]) -> Result<Vec<super::ports::Grant>, StoreError> {
        self.sharing.shared_with(grantees).await
    }

    async fn erase_grants(&self, grantees: &[super::ports::Grantee]) -> Result<u64, StoreError> {
        self.sharing.erase_grants(grantees).await
    }
}

#[async_trait]
impl super::ports::Feedback for StoreParts {
    async fn put_reaction(
        &self,
        owner: &UserId,
        reaction: &super::ports::Reaction,
    ) -> Result<Option<super::ports::Reaction>, StoreError> {
        self.feedback.put_reaction(owner, reaction).await
    }

    async fn delete_reaction(
        &self,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
        user: &UserId,
    ) -> Result<Option<super::ports::Reaction>, StoreError> {
        self.feedback.delete_reaction(owner, id, message, user).await
    }

    async fn reactions(
        &self,
        owner: &UserId,
        id: &ConversationId,
        user: &UserId,
    ) -> Result<Vec<super::ports::Reaction>, StoreError> {
        self.feedback.reactions(owner, id, user).await
    }

    async fn put_bookmark(&self, bookmark: &super::ports::Bookmark) -> Result<super::ports::Bookmark, StoreError> {
        self.feedback.put_bookmark(bookmark).await
    }

    async fn delete_bookmark(
        &self,
        user: &UserId,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
    ) -> Result<bool, StoreError> {
        self.feedback.delete_bookmark(user, owner, id, message).await
    }

    async fn list_bookmarks(
        &self,
        user: &UserId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<super::ports::Bookmark>, StoreError> {
        self.feedback.list_bookmarks(user, after, limit).await
    }

    async fn conversation_titles(
        &self,
        keys: &[(UserId, ConversationId)],
    ) -> Result<std::collections::HashMap<(UserId, ConversationId), String>, StoreError> {
        self.feedback.conversation_titles(keys).await
    }
}

#[async_trait]
impl crate::store::links::Links for StoreParts {
    async fn create_link(
        &self,
        link: &crate::domain::ShareLink,
        snapshot: &str,
        max: usize,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.links.create_link(link, snapshot, max, now).await
    }

    async fn list_links(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
    ) -> Result<Vec<crate::domain::ShareLink>, StoreError> {
        self.links.list_links(owner, conversation).await
    }

    async fn update_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &crate::domain::LinkId,
        update: &crate::store::links::LinkUpdate,
        now: Timestamp,
    ) -> Result<crate::domain::ShareLink, StoreError> {
        self.links.update_link(owner, conversation, id, update, now).await
    }

    async fn delete_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &crate::domain::LinkId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.links.delete_link(owner, conversation, id, now).await
    }

    async fn delete_conversation_links(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
    ) -> Result<u64, StoreError> {
        self.links.delete_conversation_links(owner, conversation).await
    }

    async fn read_link(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<crate::store::links::SharedSnapshot, StoreError> {
        self.links.read_link(token_hash, now).await
    }
}

#[async_trait]
impl crate::store::import_jobs::ImportJobs for StoreParts {
    async fn put_import_job(&self, job: &crate::domain::ImportJob) -> Result<(), StoreError> {
        self.import_jobs.put_import_job(job).await
    }

    async fn get_import_job(
        &self,
        owner: &UserId,
        id: &crate::domain::ImportJobId,
    ) -> Result<crate::domain::ImportJob, StoreError> {
        self.import_jobs.get_import_job(owner, id).await
    }

    async fn find_import_job(
        &self,
        owner_prefix: &str,
        id: &crate::domain::ImportJobId,
    ) -> Result<crate::domain::ImportJob, StoreError> {
        self.import_jobs.find_import_job(owner_prefix, id).await
    }

    async fn update_import_job(&self, job: &crate::domain::ImportJob, read_at: Timestamp) -> Result<(), StoreError> {
        self.import_jobs.update_import_job(job, read_at).await
    }

    async fn list_import_jobs(
        &self,
        owner: &UserId,
        before: Option<&crate::domain::ImportJobId>,
        limit: usize,
    ) -> Result<Vec<crate::domain::ImportJob>, StoreError> {
        self.import_jobs.list_import_jobs(owner, before, limit).await
    }

    async fn delete_import_job(&self, owner: &UserId, id: &crate::domain::ImportJobId) -> Result<(), StoreError> {
        self.import_jobs.delete_import_job(owner, id).await
    }
}

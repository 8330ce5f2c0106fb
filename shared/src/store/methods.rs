//! Every method of every store port, listed once, for the stores that only pass calls on:
//! [`StoreParts`](super::StoreParts) (each port to the part that implements it) and
//! [`CountingStore`](super::counting::CountingStore) (each call recorded, then passed to the
//! wrapped store). A method added to a port is added here too (the compiler names the missing
//! method in both impls until it is), and both forwarders follow; the adapters implement it
//! themselves.
//!
//! `for_each_port!(callback)` expands `callback!` once with the whole list, inside a block that
//! imports the ports and the domain types it names. Each entry is
//! `[field] Port { method(arg: Type, ...) -> Ok; ... }`: `field` is the [`StoreParts`](super::StoreParts)
//! field holding the port, `Ok` the method's success type (every port method is `async` and returns
//! `Result<Ok, StoreError>`).

/// Calls `$callback!` with every port and its methods (see the module's documentation).
macro_rules! for_each_port {
    ($callback:ident) => {
        const _: () = {
            #[allow(unused_imports)]
            use $crate::domain::{
                AnalyticsEvent, AuditEntry, ClientMessageId, Conversation, ConversationId, FileId, Folder, FolderId,
                LinkId, LiveTurn, Message, MessageId, Project, ProjectId, PromptId, SavedPrompt, ShareLink, StatsDelta,
                StatsRow, StoredFile, Timestamp, UserId,
            };
            #[allow(unused_imports)]
            use $crate::domain::{ImportJob, ImportJobId};
            #[allow(unused_imports)]
            use $crate::error::StoreError;
            #[allow(unused_imports)]
            use $crate::store::import_jobs::ImportJobs;
            #[allow(unused_imports)]
            use $crate::store::ports::{
                Accounting, Accounts, Activity, Appended, Bookmark, BudgetLevels, Checkpoint, CheckpointAck,
                ConversationPatch, Conversations, Counters, Erased, Feedback, FileCondition, Files, FolderDeleted,
                Grant, Grantee, HeldKey, Housekeeping, Idempotency, IndexHit, IndexQuery, LinkUpdate, Links,
                ListConversations, ListMessages, Messages, Organizer, Page, PlanOverride, ProjectConversations,
                ProjectPatch, Projects, PromptPatch, Prompts, Reaction, Reservation, SavedResponse, Search,
                SharedSnapshot, Sharing, Stats, StatsUpdate, StreamLease, Streams, TagCount, Touch, TurnBegun,
                TurnFinish, TurnStart, Turns, UsageRow,
            };

            $callback! {
                [conversations] Conversations {
                    create_conversation(conversation: &Conversation, messages: &[Message]) -> ();
                    import_conversation(conversation: &Conversation, messages: &[Message]) -> ();
                    claim_conversation_id(owner: &UserId, id: &ConversationId) -> ();
                    conversation_id_claimant(id: &ConversationId) -> Option<UserId>;
                    get_conversation(owner: &UserId, id: &ConversationId) -> Conversation;
                    get_conversation_with_messages(owner: &UserId, id: &ConversationId) -> (Conversation, Vec<Message>);
                    list_conversations(owner: &UserId, query: &ListConversations) -> Page<Conversation>;
                    update_conversation(
                        owner: &UserId,
                        id: &ConversationId,
                        patch: &ConversationPatch,
                        now: Timestamp
                    ) -> Conversation;
                    delete_conversation(owner: &UserId, id: &ConversationId) -> u64;
                    trash_conversation(owner: &UserId, id: &ConversationId, now: Timestamp) -> Conversation;
                    restore_conversation(owner: &UserId, id: &ConversationId, now: Timestamp) -> Conversation;
                }
                [accounting] Accounting {
                    plan_override(user: &UserId) -> Option<PlanOverride>;
                    set_plan_override(user: &UserId, value: Option<&PlanOverride>) -> ();
                    usage_between(user: &UserId, from: &str, to: &str) -> Vec<UsageRow>;
                    budget_levels(user: &UserId, at: Timestamp) -> BudgetLevels;
                    month_spend(month: &str) -> u64;
                }
                [accounts] Accounts {
                    erase_user(user: &UserId, now: Timestamp) -> Erased;
                }
                [housekeeping] Housekeeping {
                    due_for_purge(now: Timestamp, limit: u32) -> Vec<(UserId, ConversationId)>;
                    trash_untouched(before: Timestamp, now: Timestamp) -> u64;
                }
                [organizer] Organizer {
                    create_folder(folder: &Folder, max: usize) -> ();
                    get_folder(owner: &UserId, id: &FolderId) -> Folder;
                    list_folders(owner: &UserId) -> Vec<Folder>;
                    replace_folder(folder: &Folder, updated_at: Timestamp) -> ();
                    delete_folder(owner: &UserId, id: &FolderId) -> FolderDeleted;
                    list_tags(owner: &UserId) -> Vec<TagCount>;
                }
                [projects] Projects {
                    create_project(project: &Project, max: usize) -> ();
                    get_project(owner: &UserId, id: &ProjectId) -> Project;
                    list_projects(owner: &UserId) -> Vec<Project>;
                    update_project(owner: &UserId, id: &ProjectId, patch: &ProjectPatch, now: Timestamp) -> Project;
                    delete_project(owner: &UserId, id: &ProjectId, conversations: ProjectConversations) -> u64;
                }
                [files] Files {
                    put_file(file: &StoredFile) -> ();
                    get_file(owner: &UserId, id: &FileId) -> StoredFile;
                    list_files(owner: &UserId) -> Vec<StoredFile>;
                    replace_file(file: &StoredFile, condition: FileCondition<'_>) -> ();
                    delete_files(owner: &UserId, ids: &[FileId]) -> ();
                }
                [prompts] Prompts {
                    create_prompt(prompt: &SavedPrompt, max: usize) -> ();
                    get_prompt(owner: &UserId, id: &PromptId) -> SavedPrompt;
                    list_prompts(owner: &UserId) -> Vec<SavedPrompt>;
                    update_prompt(owner: &UserId, id: &PromptId, patch: &PromptPatch, now: Timestamp) -> SavedPrompt;
                    delete_prompt(owner: &UserId, id: &PromptId) -> ();
                }
                [messages] Messages {
                    append_message(owner: &UserId, message: &Message, touch: &Touch) -> Appended;
                    list_messages(owner: &UserId, id: &ConversationId, query: &ListMessages) -> Page<Message>;
                    find_by_client_id(
                        owner: &UserId,
                        id: &ConversationId,
                        client_id: &ClientMessageId
                    ) -> Option<Message>;
                    delete_message(owner: &UserId, id: &ConversationId, message: &MessageId) -> ();
                    clear_messages(owner: &UserId, id: &ConversationId) -> u64;
                }
                [turns] Turns {
                    begin_turn(start: &TurnStart) -> TurnBegun;
                    finish_turn(finish: &TurnFinish) -> ();
                    release_slot(owner: &UserId, lease: &StreamLease) -> ();
                }
                [streams] Streams {
                    checkpoint(checkpoint: &Checkpoint) -> CheckpointAck;
                    stop_requested(owner: &UserId, id: &ConversationId, turn_id: &str) -> bool;
                    live_turn(owner: &UserId, id: &ConversationId) -> Option<LiveTurn>;
                    checkpoints(
                        owner: &UserId,
                        id: &ConversationId,
                        turn_id: &str,
                        after: Option<u32>
                    ) -> Vec<Checkpoint>;
                    request_stop(owner: &UserId, id: &ConversationId, turn_id: &str) -> ();
                }
                [activity] Activity {
                    record_events(events: &[AnalyticsEvent]) -> ();
                    record_activity(events: &[AnalyticsEvent], audit: &[AuditEntry]) -> ();
                    events_of_day(day: &str) -> Vec<AnalyticsEvent>;
                    list_audit(user: &UserId, limit: Option<u32>, cursor: Option<&str>) -> Page<AuditEntry>;
                }
                [stats] Stats {
                    add_stats(day: &str, solution: &str, model: &str, delta: &StatsDelta) -> ();
                    stats_between(from: &str, to: &str) -> Vec<StatsRow>;
                    stats_imported(key: &str) -> bool;
                    import_stats(key: &str, rows: &[StatsUpdate]) -> bool;
                }
                [counters] Counters {
                    increment_counter(key: &str, window_start: i64, ttl_secs: i64) -> u64;
                }
                [idempotency] Idempotency {
                    reserve_key(owner: &UserId, key: &str, fingerprint: &str, now: Timestamp) -> Reservation;
                    complete_key(held: &HeldKey, response: &SavedResponse, now: Timestamp) -> ();
                    release_key(held: &HeldKey) -> ();
                }
                [search] Search {
                    search_index(owner: &UserId, query: &IndexQuery) -> Vec<IndexHit>;
                }
                [sharing] Sharing {
                    put_grant(grant: &Grant, max: usize) -> ();
                    delete_grant(owner: &UserId, id: &ConversationId, grantee: &Grantee) -> ();
                    grants_of(owner: &UserId, id: &ConversationId) -> Vec<Grant>;
                    grant_for(grantees: &[Grantee], id: &ConversationId) -> Option<Grant>;
                    shared_with(grantees: &[Grantee]) -> Vec<Grant>;
                    erase_grants(grantees: &[Grantee]) -> u64;
                }
                [feedback] Feedback {
                    put_reaction(owner: &UserId, reaction: &Reaction) -> Option<Reaction>;
                    delete_reaction(
                        owner: &UserId,
                        id: &ConversationId,
                        message: &MessageId,
                        user: &UserId
                    ) -> Option<Reaction>;
                    reactions(owner: &UserId, id: &ConversationId, user: &UserId) -> Vec<Reaction>;
                    put_bookmark(bookmark: &Bookmark) -> Bookmark;
                    delete_bookmark(user: &UserId, owner: &UserId, id: &ConversationId, message: &MessageId) -> bool;
                    list_bookmarks(user: &UserId, after: Option<&str>, limit: usize) -> Vec<Bookmark>;
                    conversation_titles(
                        keys: &[(UserId, ConversationId)]
                    ) -> std::collections::HashMap<(UserId, ConversationId), String>;
                }
                [links] Links {
                    create_link(link: &ShareLink, snapshot: &str, max: usize, now: Timestamp) -> ();
                    list_links(owner: &UserId, conversation: &ConversationId) -> Vec<ShareLink>;
                    update_link(
                        owner: &UserId,
                        conversation: &ConversationId,
                        id: &LinkId,
                        update: &LinkUpdate,
                        now: Timestamp
                    ) -> ShareLink;
                    delete_link(owner: &UserId, conversation: &ConversationId, id: &LinkId, now: Timestamp) -> ();
                    delete_conversation_links(owner: &UserId, conversation: &ConversationId) -> u64;
                    read_link(token_hash: &str, now: Timestamp) -> SharedSnapshot;
                }
                [import_jobs] ImportJobs {
                    put_import_job(job: &ImportJob) -> ();
                    get_import_job(owner: &UserId, id: &ImportJobId) -> ImportJob;
                    find_import_job(owner_prefix: &str, id: &ImportJobId) -> ImportJob;
                    update_import_job(job: &ImportJob, read_at: Timestamp) -> ();
                    list_import_jobs(owner: &UserId, before: Option<&ImportJobId>, limit: usize) -> Vec<ImportJob>;
                    delete_import_job(owner: &UserId, id: &ImportJobId) -> ();
                }
            }
        };
    };
}

pub(crate) use for_each_port;

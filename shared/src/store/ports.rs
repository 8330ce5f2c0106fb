//! The ports: one trait per capability, and the values they take and return. `Store` is their sum.

use async_trait::async_trait;

#[cfg(doc)]
use super::rules::{
    CHECKPOINT_TTL_SECS, DEFAULT_PAGE, IDEMPOTENCY_LEASE_SECS, IDEMPOTENCY_TTL_SECS, MAX_CHECKPOINT_BYTES, MAX_PAGE,
    MAX_SAVED_RESPONSE_BYTES, RECEIPT_TTL_SECS,
};
use crate::domain::{
    AnalyticsEvent, AuditEntry, ClientMessageId, Conversation, ConversationId, FileId, FolderId, LiveTurn, Message,
    MessageId, Project, ProjectId, PromptId, SavedPrompt, Shelf, Solution, SolutionFilter, StatsDelta, StatsRow,
    StoredFile, Timestamp, UserId,
};
use crate::error::StoreError;

pub use super::accounting::{Accounting, BudgetLevels, PlanOverride, Settlement, TurnLimits, UsageRow};
pub use super::cursor::Page;
pub use super::feedback::{Bookmark, Feedback, Reaction, Thumb};
pub use super::import_jobs::ImportJobs;
pub use super::links::{LinkUpdate, Links, SharedSnapshot};
pub use super::organizing::{
    Accounts, Erased, FolderDeleted, Housekeeping, IndexHit, IndexQuery, Organizer, Search, TagCount,
};
pub use super::sharing::{Grant, GrantRole, Grantee, Sharing};

/// Parameters of the per-owner conversation listing.
#[derive(Clone, Debug, Default)]
pub struct ListConversations {
    /// Restrict to one solution (or the general chat).
    pub solution: Option<SolutionFilter>,
    /// Restrict to one project's conversations.
    pub project: Option<ProjectId>,
    /// Restrict to one folder's conversations (not its subfolders').
    pub folder: Option<FolderId>,
    /// Restrict to the conversations carrying this (normalised) tag.
    pub tag: Option<String>,
    /// Restrict to pinned (`true`) or unpinned (`false`) conversations.
    pub pinned: Option<bool>,
    /// The shelf listed: the default list, the archive or the trash (the trash lists newest
    /// trashed first and leaves out what is due for purging).
    pub shelf: Shelf,
    /// The time the trash's purge cutoff is measured from (`None`: the system clock).
    pub now: Option<Timestamp>,
    /// Page size, 1..=[`MAX_PAGE`]; `None` means [`DEFAULT_PAGE`].
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Parameters of a message listing.
#[derive(Clone, Debug, Default)]
pub struct ListMessages {
    /// Page size, 1..=[`MAX_PAGE`]; `None` means every message.
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// The documented, mutable fields of a conversation. `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConversationPatch {
    /// New title (already validated).
    pub title: Option<String>,
    /// Pin or unpin.
    pub is_pinned: Option<bool>,
    /// Share or unshare.
    pub is_shared: Option<bool>,
    /// New model id (already checked against the catalog).
    pub model: Option<String>,
    /// Switch the active branch to this leaf (already checked to be the conversation's).
    pub active_leaf: Option<ActiveLeaf>,
    /// Move into a project (`Some(Some(id))`, already checked to be the owner's) or out of any
    /// (`Some(None)`).
    pub project: Option<Option<ProjectId>>,
    /// Move into a folder (`Some(Some(id))`, already checked to be the owner's) or out of any
    /// (`Some(None)`).
    pub folder: Option<Option<FolderId>>,
    /// Replace the tags (already normalised: [`crate::domain::parse_tags`]).
    pub tags: Option<Vec<String>>,
    /// Archive (`true`: hidden from the default list) or unarchive.
    pub archived: Option<bool>,
}

/// A new active leaf and the preview that goes with it.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveLeaf {
    /// The leaf.
    pub id: MessageId,
    /// Its preview (the conversation's `lastMessage`).
    pub preview: Option<String>,
}

/// What appending a message changes on its conversation besides `updatedAt` and the preview.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Touch {
    /// Set the title (the chat names a conversation after its first message).
    pub title: Option<String>,
}

/// Result of an append.
#[derive(Clone, Debug, PartialEq)]
pub enum Appended {
    /// The message was stored.
    Stored,
    /// A message with the same client id was already stored: nothing was written. Carries its id.
    Duplicate(MessageId),
}

/// What admitting a chat turn writes besides the limits.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnWrite {
    /// Create the conversation with its first messages (conflict if the id exists).
    Create {
        /// The new conversation.
        conversation: Conversation,
        /// Its first messages.
        messages: Vec<Message>,
    },
    /// Append the user's message to the caller's conversation; it becomes the active leaf.
    Append {
        /// The message (its parent: the leaf of the branch it continues).
        message: Message,
        /// A title for a conversation that still has the default one (its first user message).
        title: Option<String>,
    },
    /// A new version of an edited user message: the same client id and the edited version's
    /// parent, so the two are siblings; the client id answers with the new version from now on,
    /// and it becomes the active leaf. The earlier version and its replies stay.
    Edit {
        /// The new version.
        message: Message,
    },
    /// Regenerate: the reply being replaced stays as a sibling of the new one; the active leaf
    /// moves back to the user message both answer (the new reply follows it when it is stored).
    Regenerate {
        /// The user message being answered again.
        leaf: MessageId,
        /// Its preview.
        preview: Option<String>,
    },
    /// Only check the conversation is the caller's (a resubmitted message already stored).
    Check,
    /// Continue a reply that stopped to wait for tool approvals (the client answered them): the
    /// stored message `reply.id` (head and chunks) is replaced by `reply` (same id, the answers
    /// recorded), only if it is the caller's and still awaits exactly `awaiting` (the ids of its
    /// unanswered approvals, [`crate::domain::Message::awaited_approvals`], in order); otherwise
    /// `Conflict` (another request answered them first). The replaced message is marked as
    /// writable by this turn ([`TurnStart::turn_id`]): its finish stores the continued reply
    /// over it.
    Continue {
        /// The reply with the approvals answered.
        reply: Message,
        /// The approvals the stored reply must still await.
        awaiting: Vec<String>,
    },
}

impl TurnWrite {
    /// Marks the user messages this write stores as written by `author` (a collaborator).
    pub fn set_author(&mut self, author: &UserId) {
        let messages: Vec<&mut Message> = match self {
            TurnWrite::Create { messages, .. } => messages.iter_mut().collect(),
            TurnWrite::Append { message, .. } | TurnWrite::Edit { message, .. } => vec![message],
            _ => Vec::new(),
        };
        for m in messages.into_iter().filter(|m| m.role == crate::domain::Role::User) {
            m.author = Some(author.clone());
        }
    }
}

/// A chat turn to admit: [`Turns::begin_turn`].
#[derive(Clone, Debug)]
pub struct TurnStart {
    /// The conversation's owner (whose key the conversation is stored under).
    pub owner: UserId,
    /// Who the turn is charged to: the caller (the owner, or a collaborator the conversation is
    /// shared with). Their rate limit, budgets and stream slots admit it.
    pub payer: UserId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// What to write.
    pub write: TurnWrite,
    /// The caller's limits.
    pub limits: TurnLimits,
    /// A unique id of this turn (the lease's owner).
    pub turn_id: String,
    /// When the turn starts (windows of the rate limit and budgets).
    pub now: Timestamp,
    /// Tokens reserved against the day and month budgets in the admitting write: the turn's
    /// estimated cost (`chat::estimate`). Admitted only if `tokens + max(reservation, 1) <=
    /// budget` for every budget switched on; added to both budget items when either is on.
    /// 0 reserves nothing (the turn still needs one token left, as before reservations).
    pub reservation: u64,
    /// Nano-dollars reserved against the month's dollar budget in the same write (the estimate
    /// priced from the catalog), under the same rule as `reservation`.
    pub reservation_nano_usd: u64,
    /// The id its reply will be stored under: with `turn_id`, `now` and the lease, the
    /// conversation's [`LiveTurn`] marker written in the same atomic write.
    pub reply_id: MessageId,
    /// The message the reply answers (also in the marker).
    pub reply_parent: MessageId,
}

/// A stream slot held by one turn until it is released or `expires_at` (epoch seconds) passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLease {
    /// Slot number, `0..max_streams`.
    pub slot: u32,
    /// The turn holding it.
    pub turn_id: String,
    /// End of the lease, epoch seconds.
    pub expires_at: i64,
}

/// An admitted turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnBegun {
    /// The stream slot, when streams are capped.
    pub lease: Option<StreamLease>,
}

/// Analytics counters to add in the same write as the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsUpdate {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Solution bucket.
    pub solution: String,
    /// Model id.
    pub model: String,
    /// What to add.
    pub delta: StatsDelta,
}

/// The end of a chat turn: [`Turns::finish_turn`].
#[derive(Clone, Debug)]
pub struct TurnFinish {
    /// The conversation's owner.
    pub owner: UserId,
    /// Who the turn is charged to ([`TurnStart::payer`]): budgets settled, slot released and
    /// usage rows added under them.
    pub payer: UserId,
    /// The conversation (where the turn's receipt is kept).
    pub conversation_id: ConversationId,
    /// The turn ([`TurnStart::turn_id`]): the finish is written at most once per turn id, so a
    /// retry of a finish whose first attempt did apply (an ambiguous timeout) changes nothing.
    pub turn_id: String,
    /// The reply to store (with the conversation touched), if there is one: put if no message
    /// of its id exists, or over the stored one when this turn's admission was a
    /// [`TurnWrite::Continue`] of it (the mark it left names this `turn_id`).
    pub reply: Option<Message>,
    /// The slot to release.
    pub lease: Option<StreamLease>,
    /// The budgets' settlement: what was reserved at admission and what the turn cost.
    pub settlement: Settlement,
    /// When the turn started: the budget windows charged.
    pub started: Timestamp,
    /// Analytics counters.
    pub stats: Option<StatsUpdate>,
    /// A title for the conversation, written with the reply (a title model named it).
    pub title: Option<String>,
    /// The turn's last checkpoint (the events not yet checkpointed and the final one), written
    /// in the same atomic write (put if absent).
    pub checkpoint: Option<Checkpoint>,
}

/// A batch of a turn's stream events, kept while it streams so that its stream can be resumed
/// (from any instance) and its partial reply survives a crash: [`Streams::checkpoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The caller.
    pub owner: UserId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The turn.
    pub turn_id: String,
    /// Its position among the turn's checkpoints, from 0: each is written once (put if absent).
    pub seq: u32,
    /// The events, encoded by the chat service (opaque to the store), at most
    /// [`MAX_CHECKPOINT_BYTES`].
    pub events: String,
    /// The turn's final checkpoint: its events end with the turn's `finish` or `error`.
    pub last: bool,
    /// When it was written.
    pub at: Timestamp,
}

/// What a checkpoint write learned about its turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointAck {
    /// Go on.
    Continue,
    /// Stop: someone asked for it ([`Streams::request_stop`]) or the conversation is gone.
    Stop,
}

/// A response saved under an idempotency key, replayed to a retry of the same request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedResponse {
    /// HTTP status (a 2xx: failures are never saved).
    pub status: u16,
    /// The JSON body, as sent.
    pub body: String,
    /// The `location` header, when the response had one.
    pub location: Option<String>,
}

/// An idempotency key reserved by one request: only its holder (the token) completes or releases it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldKey {
    /// The caller: keys are scoped per user.
    pub owner: UserId,
    /// The client's key (already validated).
    pub key: String,
    /// A unique token of this reservation: a reservation that expired and was taken over by
    /// another request is not completed or released by its first holder.
    pub token: String,
}

/// What reserving an idempotency key found: [`Idempotency::reserve_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// The key was free (or its record expired): it is now held by the caller, who does the work
    /// and then completes or releases it.
    Reserved(HeldKey),
    /// The same request completed before: its response, to send again without doing the work.
    Replay(SavedResponse),
    /// The key was used for a different request (another fingerprint): nothing was written.
    Mismatch,
    /// The same request is still being processed under this key: nothing was written.
    InProgress,
}

/// A stored idempotency record that has not expired, as the adapters read it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    /// Fingerprint of the request that reserved the key.
    pub fingerprint: String,
    /// Its response once completed; `None` while the request is in progress.
    pub response: Option<SavedResponse>,
}

/// The mutable fields of a project (already validated). `None` leaves a field as it is; the
/// defaults take `Some(None)` to clear them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProjectPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New instructions.
    pub instructions: Option<String>,
    /// New default model (checked against the catalog), or none.
    pub default_model: Option<Option<String>>,
    /// New default solution, or none.
    pub default_solution: Option<Option<Solution>>,
}

/// What deleting a project does with its conversations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectConversations {
    /// They stay, in no project.
    Detach,
    /// They are deleted with it (each as [`Conversations::delete_conversation`] does).
    Delete,
}

/// A user's projects; every read and write scoped to the owner (another owner's project is
/// [`StoreError::NotFound`]).
#[async_trait]
pub trait Projects: Send + Sync {
    /// Creates a project. [`StoreError::Conflict`] when the owner already has one of this id or
    /// already has `max` projects (nothing written).
    async fn create_project(&self, project: &Project, max: usize) -> Result<(), StoreError>;

    /// One project.
    async fn get_project(&self, owner: &UserId, id: &ProjectId) -> Result<Project, StoreError>;

    /// Every project of the owner, oldest first (at most the per-user cap, so never paged).
    async fn list_projects(&self, owner: &UserId) -> Result<Vec<Project>, StoreError>;

    /// Applies a patch and returns the updated project; `updatedAt` becomes `now`.
    async fn update_project(
        &self,
        owner: &UserId,
        id: &ProjectId,
        patch: &ProjectPatch,
        now: Timestamp,
    ) -> Result<Project, StoreError>;

    /// Deletes a project after detaching or deleting its conversations. Returns how many
    /// conversations were detached or deleted.
    async fn delete_project(
        &self,
        owner: &UserId,
        id: &ProjectId,
        conversations: ProjectConversations,
    ) -> Result<u64, StoreError>;
}

/// The mutable fields of a saved prompt (already validated); `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PromptPatch {
    /// New title.
    pub title: Option<String>,
    /// New text.
    pub text: Option<String>,
    /// New tags.
    pub tags: Option<Vec<String>>,
}

/// A user's saved prompts; every read and write scoped to the owner (another owner's prompt is
/// [`StoreError::NotFound`]).
#[async_trait]
pub trait Prompts: Send + Sync {
    /// Saves a prompt. [`StoreError::Conflict`] when the owner already has one of this id or
    /// already has `max` prompts (nothing written).
    async fn create_prompt(&self, prompt: &SavedPrompt, max: usize) -> Result<(), StoreError>;

    /// One prompt.
    async fn get_prompt(&self, owner: &UserId, id: &PromptId) -> Result<SavedPrompt, StoreError>;

    /// Every prompt of the owner, oldest first (at most the per-user cap, so never paged).
    async fn list_prompts(&self, owner: &UserId) -> Result<Vec<SavedPrompt>, StoreError>;

    /// Applies a patch and returns the updated prompt; `updatedAt` becomes `now`.
    async fn update_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        patch: &PromptPatch,
        now: Timestamp,
    ) -> Result<SavedPrompt, StoreError>;

    /// Deletes a prompt.
    async fn delete_prompt(&self, owner: &UserId, id: &PromptId) -> Result<(), StoreError>;
}

/// What a conditional file write expects of the stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileCondition<'a> {
    /// Still pending (verifying an upload).
    Pending,
    /// Ready, and attached to no conversation or to this one (attaching it).
    AttachableTo(&'a ConversationId),
}

/// A user's attached files (their records; the bytes are the blob store's); every read and write
/// scoped to the owner (another owner's file is [`StoreError::NotFound`]).
#[async_trait]
pub trait Files: Send + Sync {
    /// Stores a new file. [`StoreError::Conflict`] when the owner already has one of this id.
    async fn put_file(&self, file: &StoredFile) -> Result<(), StoreError>;

    /// One file.
    async fn get_file(&self, owner: &UserId, id: &FileId) -> Result<StoredFile, StoreError>;

    /// Every file of the owner, oldest first (bounded by the per-user cap, so never paged).
    async fn list_files(&self, owner: &UserId) -> Result<Vec<StoredFile>, StoreError>;

    /// Replaces a stored file if it still meets `condition`: [`StoreError::Conflict`] when it
    /// does not, [`StoreError::NotFound`] when it is gone.
    async fn replace_file(&self, file: &StoredFile, condition: FileCondition<'_>) -> Result<(), StoreError>;

    /// Deletes files of the owner (missing ones are skipped).
    async fn delete_files(&self, owner: &UserId, ids: &[FileId]) -> Result<(), StoreError>;
}

/// Conversations and their listing; every read and write scoped to the owner.
#[async_trait]
pub trait Conversations: Send + Sync {
    /// Creates a conversation, with its first messages if any, atomically.
    /// [`StoreError::Conflict`] when its owner already has a conversation with this id. Ids are
    /// scoped to their owner: another owner's conversation of the same id is a different
    /// conversation, and creating it is no conflict.
    async fn create_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError>;

    /// Creates an imported conversation with ALL its messages, however many (`POST /api/import`):
    /// [`StoreError::Conflict`] when its owner already has a conversation with this id (a
    /// re-import: nothing written). The conversation is never seen half-written: the embedded
    /// store writes it in one transaction; DynamoDB does too when it fits one
    /// `TransactWriteItems` (100 items), otherwise it writes the conversation hidden (marked
    /// `importing`), its messages in `BatchWriteItem`s, then reveals it; an import interrupted
    /// in between is finished by the next import of the same conversation
    /// (`docs/data-model.md`).
    async fn import_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError>;

    /// Claims conversation id `id` for `owner` across EVERY owner (`athena-migrate`: the
    /// original's ids are global, Athena's are per owner, so migrating one database twice under
    /// two owners must not make two copies): `Ok` when the id was unclaimed (it is now the
    /// owner's) or is already the owner's; [`StoreError::Conflict`] when another owner holds it
    /// (nothing written). Only migrated conversations are claimed; a claim is a small record of
    /// its own (the id and the owner), not the conversation.
    async fn claim_conversation_id(&self, owner: &UserId, id: &ConversationId) -> Result<(), StoreError>;

    /// Who holds the claim of conversation id `id`, if anyone (read only: `athena-migrate
    /// --dry-run` reports another owner's id as refused without claiming it).
    async fn conversation_id_claimant(&self, id: &ConversationId) -> Result<Option<UserId>, StoreError>;

    /// One conversation, without its messages.
    async fn get_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<Conversation, StoreError>;

    /// One conversation and all its messages in order (one Query on DynamoDB).
    async fn get_conversation_with_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<Message>), StoreError>;

    /// The owner's conversations: pinned first, then newest `updatedAt` first.
    async fn list_conversations(
        &self,
        owner: &UserId,
        query: &ListConversations,
    ) -> Result<Page<Conversation>, StoreError>;

    /// Applies a patch and returns the updated conversation; `updatedAt` becomes `now`.
    async fn update_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError>;

    /// Deletes a conversation and every item belonging to it, whatever its shelf (the trash's
    /// "delete forever"). Returns how many messages went with it.
    async fn delete_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError>;

    /// Moves a conversation to the trash (`trashedAt = now`): from then on every read and write
    /// of it answers [`StoreError::NotFound`] but the trash listing ([`Shelf::Trash`]),
    /// [`Conversations::restore_conversation`] and [`Conversations::delete_conversation`]; it is
    /// purged [`crate::domain::TRASH_DAYS`] later. `updatedAt` is left as it was. Not found when
    /// it is not the owner's or already in the trash.
    async fn trash_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError>;

    /// Takes a conversation out of the trash, back to the shelf it left (archived or not, in its
    /// folder, with its tags). Not found when it is not in the owner's trash or is due for
    /// purging at `now`.
    async fn restore_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError>;
}

/// A conversation's messages.
#[async_trait]
pub trait Messages: Send + Sync {
    /// Appends a message and touches its conversation (updatedAt, preview, count) atomically.
    /// A message whose `client_id` was already stored in this conversation is not stored twice.
    async fn append_message(&self, owner: &UserId, message: &Message, touch: &Touch) -> Result<Appended, StoreError>;

    /// The conversation's messages, oldest first.
    async fn list_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
        query: &ListMessages,
    ) -> Result<Page<Message>, StoreError>;

    /// Finds a message by the client's id.
    async fn find_by_client_id(
        &self,
        owner: &UserId,
        id: &ConversationId,
        client_id: &ClientMessageId,
    ) -> Result<Option<Message>, StoreError>;

    /// Deletes one message (regenerating a reply replaces the last one).
    async fn delete_message(&self, owner: &UserId, id: &ConversationId, message: &MessageId) -> Result<(), StoreError>;

    /// Deletes every message of a conversation, keeping the conversation. Returns how many.
    async fn clear_messages(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError>;
}

/// Admitting and finishing a chat turn, each in one atomic write.
#[async_trait]
pub trait Turns: Send + Sync {
    /// Admits a chat turn in one atomic write (one DynamoDB `TransactWriteItems`): counts it
    /// against the per-minute rate limit, reserves [`TurnStart::reservation`] tokens on the day
    /// and month budgets if it fits under each (`tokens + reservation <= budget`), takes a stream
    /// slot (a lease with an expiry) and writes the user's message (or creates the conversation).
    /// Refusals: [`StoreError::RateLimited`], [`StoreError::BudgetExceeded`],
    /// [`StoreError::TooManyStreams`], [`StoreError::NotFound`] (not the caller's conversation),
    /// [`StoreError::Conflict`] (a create on an id the caller already has). Nothing is written
    /// when refused.
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError>;

    /// Ends a chat turn in one atomic write: stores the reply and touches the conversation,
    /// settles the budget reservation ([`Settlement::delta`] added to both budget items), releases
    /// the stream slot (only if this turn still holds it), adds the analytics counters and writes
    /// the turn's receipt (put if absent, expiring after [`RECEIPT_TTL_SECS`]). Idempotent per
    /// [`TurnFinish::turn_id`]: when the receipt exists the turn was finished before and nothing
    /// is written (`Ok`). A part that can no longer apply (the conversation was deleted
    /// meanwhile, the lease was reclaimed) is dropped and the rest written.
    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError>;

    /// Frees a stream slot if `lease`'s turn still holds it, and nothing else (no receipt, no
    /// settlement): what a turn whose finishing write failed does so the caller's next chat is
    /// not refused until the lease ends. Idempotent.
    async fn release_slot(&self, owner: &UserId, lease: &StreamLease) -> Result<(), StoreError>;
}

/// The checkpoints of running turns: resumable streams, stopping a turn from another instance,
/// partial replies that survive a crash. Every checkpoint expires [`CHECKPOINT_TTL_SECS`] after
/// it was written; deleting a conversation deletes its checkpoints and its [`LiveTurn`].
#[async_trait]
pub trait Streams: Send + Sync {
    /// Writes one checkpoint (put if absent: a retry of a write that applied changes nothing)
    /// and tells whether the turn should go on: [`CheckpointAck::Stop`] when a stop was
    /// requested for it or the conversation was deleted (one `TransactWriteItems`: the put and a
    /// condition on the conversation's live-turn item). [`StoreError::TooLarge`] above
    /// [`MAX_CHECKPOINT_BYTES`], nothing written.
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<CheckpointAck, StoreError>;

    /// Whether a stop was requested for the turn (or the conversation is gone): what a turn that
    /// has nothing to checkpoint asks instead (one `GetItem`).
    async fn stop_requested(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<bool, StoreError>;

    /// The conversation's newest turn, if the conversation is the owner's ([`StoreError::NotFound`]
    /// otherwise) and a turn was ever admitted in it.
    async fn live_turn(&self, owner: &UserId, id: &ConversationId) -> Result<Option<LiveTurn>, StoreError>;

    /// The owner's checkpoints of a turn after position `after` (all when `None`), in order.
    async fn checkpoints(
        &self,
        owner: &UserId,
        id: &ConversationId,
        turn_id: &str,
        after: Option<u32>,
    ) -> Result<Vec<Checkpoint>, StoreError>;

    /// Asks the conversation's turn `turn_id` to stop (it notices at its next checkpoint).
    /// [`StoreError::NotFound`] when the conversation is not the owner's or its newest turn is
    /// another one.
    async fn request_stop(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<(), StoreError>;
}

/// Analytics events and the audit log.
#[async_trait]
pub trait Activity: Send + Sync {
    /// Records analytics events (batched).
    async fn record_events(&self, events: &[AnalyticsEvent]) -> Result<(), StoreError>;

    /// Records analytics events and audit entries together (one `BatchWriteItem` for up to 25).
    async fn record_activity(&self, events: &[AnalyticsEvent], audit: &[AuditEntry]) -> Result<(), StoreError>;

    /// Analytics events of one UTC day (`YYYY-MM-DD`), for tests and exports.
    async fn events_of_day(&self, day: &str) -> Result<Vec<AnalyticsEvent>, StoreError>;

    /// One user's audit entries, newest first.
    async fn list_audit(
        &self,
        user: &UserId,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError>;
}

/// Daily analytics counters.
#[async_trait]
pub trait Stats: Send + Sync {
    /// Adds to the analytics counters of one day × solution × model, atomically.
    async fn add_stats(&self, day: &str, solution: &str, model: &str, delta: &StatsDelta) -> Result<(), StoreError>;

    /// The analytics counters of the days `from..=to` (`YYYY-MM-DD`), one row per day × solution × model.
    async fn stats_between(&self, from: &str, to: &str) -> Result<Vec<StatsRow>, StoreError>;

    /// Whether counters were imported under `key` ([`Stats::import_stats`]).
    async fn stats_imported(&self, key: &str) -> Result<bool, StoreError>;

    /// Adds `rows` (counters rebuilt from imported history, `athena-migrate`) at most once per
    /// `key`, atomically: `true` when added now, `false` (nothing written) when a call with this
    /// key added them before. At most [`MAX_IMPORTED_STATS_ROWS`] rows; the record of the key
    /// expires with the counters of its last day (`rules::stats_expiry`).
    async fn import_stats(&self, key: &str, rows: &[StatsUpdate]) -> Result<bool, StoreError>;
}

/// Most counter rows one [`Stats::import_stats`] call adds (one DynamoDB transaction with the
/// key's record).
pub const MAX_IMPORTED_STATS_ROWS: usize = 99;

/// Windowed counters (rate limits).
#[async_trait]
pub trait Counters: Send + Sync {
    /// Adds one to the counter `key` of the window starting at `window_start` (epoch seconds) and
    /// returns the new count. Atomic across every instance; counters expire after `ttl_secs`.
    /// Rate limits are built on it.
    async fn increment_counter(&self, key: &str, window_start: i64, ttl_secs: i64) -> Result<u64, StoreError>;
}

/// `Idempotency-Key` records: a key is reserved (put if absent or expired) before the work, its
/// response saved after, and released when the work failed. Scoped per user: another user's
/// identical key is a different record. Expired records are treated as absent.
#[async_trait]
pub trait Idempotency: Send + Sync {
    /// Reserves `key` for `owner`'s request with this `fingerprint` (a SHA-256 of the request) at
    /// `now`, atomically: [`Reservation::Reserved`] when it was free or expired (held for
    /// [`IDEMPOTENCY_LEASE_SECS`]), otherwise what the live record says, writing nothing.
    async fn reserve_key(
        &self,
        owner: &UserId,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<Reservation, StoreError>;

    /// Saves the response of a held key; it is replayed until [`IDEMPOTENCY_TTL_SECS`] after
    /// `now`. Nothing happens when the reservation is no longer `held`'s (it expired and was taken
    /// over). [`StoreError::TooLarge`] (nothing written) over [`MAX_SAVED_RESPONSE_BYTES`].
    async fn complete_key(&self, held: &HeldKey, response: &SavedResponse, now: Timestamp) -> Result<(), StoreError>;

    /// Deletes a held, not completed reservation, so the request may be retried with the same key.
    /// Nothing happens when it is no longer `held`'s.
    async fn release_key(&self, held: &HeldKey) -> Result<(), StoreError>;
}

/// Every capability: what an adapter implements and what the application state holds. Every
/// read and write of a conversation is scoped to its owner: another owner's conversation answers
/// [`StoreError::NotFound`], like a missing one. Implemented for anything that has all seven
/// capabilities; handlers and services take the one capability they use (`&dyn Conversations`).
pub trait Store:
    Conversations
    + Accounting
    + Organizer
    + Accounts
    + Housekeeping
    + Projects
    + Prompts
    + Files
    + Messages
    + Turns
    + Streams
    + Activity
    + Stats
    + Counters
    + Idempotency
    + Search
    + Sharing
    + Feedback
    + Links
    + ImportJobs
    + 'static
{
}

impl<
        T: Conversations
            + Accounting
            + Organizer
            + Accounts
            + Housekeeping
            + Projects
            + Prompts
            + Files
            + Messages
            + Turns
            + Streams
            + Activity
            + Stats
            + Counters
            + Idempotency
            + Search
            + Sharing
            + Feedback
            + Links
            + ImportJobs
            + 'static,
    > Store for T
{
}

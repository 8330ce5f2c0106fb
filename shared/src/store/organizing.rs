//! The ports of organising and keeping a user's data (re-exported by [`super::ports`]): folders
//! and tags ([`Organizer`]), a user's data as a whole ([`Accounts`]), and the deployment's
//! hourly upkeep ([`Housekeeping`]), and finding it again ([`Search`]).

use async_trait::async_trait;

use crate::domain::{ConversationId, Folder, FolderId, MessageId, Role, SolutionFilter, Timestamp, UserId};
use crate::error::StoreError;

/// What erasing a user's data removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Conversations deleted (every shelf, with their messages).
    pub conversations: u64,
    /// Other items (or rows) deleted or rewritten: folders, tag memberships, projects, prompts,
    /// file records, idempotency records, audit entries, stream slots, budgets, rate counters,
    /// analytics events, and daily counters the user's hash was taken out of.
    pub items: u64,
}

/// A user's data as a whole.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Deletes every item of `user` in every table: conversations on every shelf (with their
    /// messages, markers, checkpoints and tag memberships), folders, projects, saved prompts,
    /// file records (the objects are the caller's to delete first), idempotency records, audit
    /// entries, stream slots, token budgets and rate counters, the user's analytics events, and
    /// the user's hash in the daily counters' active-user sets. Repeating it finds nothing more.
    async fn erase_user(&self, user: &UserId, now: Timestamp) -> Result<Erased, StoreError>;
}

/// The deployment-wide upkeep the trash and retention need (run hourly: `athena-local`, the
/// `housekeeping` Lambda function).
#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Conversations in the trash due for purging at `now` (at most `limit`), as (owner, id):
    /// the caller deletes each (with its files).
    async fn due_for_purge(&self, now: Timestamp, limit: u32) -> Result<Vec<(UserId, ConversationId)>, StoreError>;

    /// Retention: moves every conversation that is not pinned and not in the trash, whose
    /// `updatedAt` is before `before`, to the trash (as trashed at `now`). How many moved.
    async fn trash_untouched(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError>;
}

/// What deleting a folder did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderDeleted {
    /// Folders deleted (the folder and its subfolders).
    pub folders: u64,
    /// Conversations moved out of them (to no folder), on every shelf.
    pub conversations: u64,
}

/// A tag and how many of the owner's conversations (not in the trash) carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagCount {
    /// The tag.
    pub tag: String,
    /// How many conversations carry it.
    pub conversations: u64,
}

/// A user's folders and tags; every read and write scoped to the owner (another owner's folder is
/// [`StoreError::NotFound`]).
#[async_trait]
pub trait Organizer: Send + Sync {
    /// Creates a folder. [`StoreError::Conflict`] when the owner already has one of this id or
    /// already has `max` folders. The parent, if any, is checked by the caller.
    async fn create_folder(&self, folder: &Folder, max: usize) -> Result<(), StoreError>;

    /// One folder.
    async fn get_folder(&self, owner: &UserId, id: &FolderId) -> Result<Folder, StoreError>;

    /// Every folder of the owner, oldest first.
    async fn list_folders(&self, owner: &UserId) -> Result<Vec<Folder>, StoreError>;

    /// Replaces a folder by `folder` if the stored one still has `updated_at` (an optimistic
    /// update: [`StoreError::Conflict`] when it changed meanwhile).
    async fn replace_folder(&self, folder: &Folder, updated_at: Timestamp) -> Result<(), StoreError>;

    /// Deletes a folder and its subfolders; their conversations (on every shelf) move to no folder.
    async fn delete_folder(&self, owner: &UserId, id: &FolderId) -> Result<FolderDeleted, StoreError>;

    /// The owner's tags with their counts, most used first, then by name.
    async fn list_tags(&self, owner: &UserId) -> Result<Vec<TagCount>, StoreError>;
}

/// A search of the owner's index: [`Search::search_index`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexQuery {
    /// The query's distinct words ([`crate::domain::text::query_terms`]): a hit holds every one.
    pub terms: Vec<String>,
    /// Only hits in conversations of this solution (or of the general chat): filtered in the
    /// store, before `offset` and `limit`, so a page of a filtered search is as full as any.
    pub solution: Option<SolutionFilter>,
    /// How many hits of the ranking to skip.
    pub offset: usize,
    /// How many hits to return at most.
    pub limit: usize,
}

/// One hit of the owner's index, not yet checked against its conversation (which may be gone or
/// hidden: the search service resolves it through [`super::Conversations::get_conversation`]).
#[derive(Clone, Debug, PartialEq)]
pub struct IndexHit {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message that matched; `None` when the conversation's title did.
    pub message_id: Option<MessageId>,
    /// The matched message's author.
    pub role: Option<Role>,
    /// When the matched message was stored.
    pub created_at: Option<Timestamp>,
    /// The matched message's indexed text ([`crate::domain::text::indexed_part`]), for its
    /// snippet; `None` for a title hit (the title is read from the conversation).
    pub text: Option<String>,
}

/// Full-text search over the owner's conversation titles and messages. Ranking, the same on every
/// adapter: title hits first, then relevance (BM25 over the query's words), then the newest
/// message first; ties by id. Only the owner's own index is ever read.
#[async_trait]
pub trait Search: Send + Sync {
    /// The owner's hits for `query.terms` (every term in the title or the message), ranked,
    /// `query.offset` skipped, at most `query.limit`.
    async fn search_index(&self, owner: &UserId, query: &IndexQuery) -> Result<Vec<IndexHit>, StoreError>;
}

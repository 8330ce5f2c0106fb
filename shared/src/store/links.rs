//! The port of share links (issue 20, re-exported by [`super::ports`]): read-only snapshots of a
//! conversation that anyone holding a link's token reads without an account.
//!
//! A link is keyed by the SHA-256 of its token ([`crate::domain::link::token_hash`]): reading
//! one is one key lookup, the same for a wrong, revoked or expired token. Every management call
//! is scoped to the owner and the conversation (another owner's link is
//! [`StoreError::NotFound`]). Creating, changing and revoking a link also write the
//! conversation's `sharedUntil` ([`crate::domain::link::shared_until`] of its links), from which
//! `isShared` is computed at read time.

use async_trait::async_trait;

use crate::domain::{ConversationId, LinkId, ShareLink, Timestamp, UserId};
use crate::error::StoreError;

/// A link as a reader gets it: the link (for its expiry and views) and its snapshot, as stored
/// (the JSON of [`crate::domain::Snapshot`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SharedSnapshot {
    /// The link, its view already counted.
    pub link: ShareLink,
    /// The snapshot's JSON.
    pub snapshot: String,
}

/// A change to a link: a new snapshot, a new expiry, or both.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkUpdate {
    /// The new snapshot's JSON, its time and its message count.
    pub snapshot: Option<(String, Timestamp, u64)>,
    /// The new expiry (`Some(None)`: never).
    pub expires_at: Option<Option<Timestamp>>,
}

/// Share links.
#[async_trait]
pub trait Links: Send + Sync {
    /// Stores a new link with its snapshot. [`StoreError::NotFound`] when the conversation is not
    /// the owner's or is in the trash; [`StoreError::Conflict`] when it already has `max` live
    /// links.
    async fn create_link(&self, link: &ShareLink, snapshot: &str, max: usize, now: Timestamp)
        -> Result<(), StoreError>;

    /// The conversation's links (live and expired), oldest first, with their view counts.
    async fn list_links(&self, owner: &UserId, conversation: &ConversationId) -> Result<Vec<ShareLink>, StoreError>;

    /// Changes a link (same token). Returns the link as stored.
    async fn update_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &LinkId,
        update: &LinkUpdate,
        now: Timestamp,
    ) -> Result<ShareLink, StoreError>;

    /// Revokes a link: it stops answering at once.
    async fn delete_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &LinkId,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Revokes every link of a conversation (moved to the trash, unshared, deleted). How many.
    /// A conversation that no longer exists is no error.
    async fn delete_conversation_links(&self, owner: &UserId, conversation: &ConversationId)
        -> Result<u64, StoreError>;

    /// The link whose token hashes to `token_hash`, with its snapshot, counting one view.
    /// [`StoreError::NotFound`] when there is none, it expired at `now`, or its conversation is
    /// gone or in the trash.
    async fn read_link(&self, token_hash: &str, now: Timestamp) -> Result<SharedSnapshot, StoreError>;
}

/// The refusal of a link beyond the per-conversation cap.
pub fn too_many_links(max: usize) -> StoreError {
    StoreError::Conflict(format!(
        "a conversation may have at most {max} live share links; revoke one first"
    ))
}

/// `link` with `update` applied at `now` (every adapter's one rule).
pub fn updated(link: &ShareLink, update: &LinkUpdate, now: Timestamp) -> ShareLink {
    let mut next = link.clone();
    if let Some((_, at, count)) = &update.snapshot {
        next.snapshot_at = *at;
        next.message_count = *count;
    }
    if let Some(expires_at) = update.expires_at {
        next.expires_at = expires_at;
    }
    next.updated_at = now;
    next
}

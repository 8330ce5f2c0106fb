//! The port of what a user marks on messages (re-exported by [`super::ports`]): reactions
//! (thumbs up or down with an optional comment, on assistant messages; one per user and message)
//! and bookmarks (on any message, listed newest first).
//!
//! A reaction lives with the conversation (under its owner's key) and names the reacting user:
//! deleting or purging the conversation, or clearing its messages, removes it with the rest. A
//! bookmark lives with the user who made it (under the bookmarker's key) and records the
//! conversation's owner: erasing the bookmarker removes every bookmark of theirs; deleting a
//! conversation removes its owner's bookmarks on it.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{ts, ConversationId, MessageId, Timestamp, UserId};
use crate::error::StoreError;

/// Most characters of a reaction's comment.
pub const MAX_COMMENT_CHARS: usize = 1000;
/// Most characters of a bookmark's note.
pub const MAX_NOTE_CHARS: usize = 500;
/// Characters of a message a bookmark keeps as its excerpt.
pub const EXCERPT_CHARS: usize = 200;

/// Thumbs up or down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Thumb {
    /// A good reply.
    Up,
    /// A bad one.
    Down,
}

impl Thumb {
    /// `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Thumb::Up => "up",
            Thumb::Down => "down",
        }
    }
}

/// One user's reaction to one assistant message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The assistant message.
    pub message_id: MessageId,
    /// Who reacted (not necessarily the conversation's owner).
    pub user: UserId,
    /// Up or down.
    pub value: Thumb,
    /// Why, if they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The analytics bucket of the conversation (`general` or a solution).
    pub solution: String,
    /// The model that wrote the message.
    pub model: String,
    /// When it was first set.
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    /// When it was last set.
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

/// One user's bookmark of one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bookmark {
    /// Its id, a ULID: bookmarks list newest first by id.
    pub id: String,
    /// Who bookmarked it (whose list it is in).
    pub user: UserId,
    /// The conversation's owner (the key the conversation is stored under).
    pub owner: UserId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message.
    pub message_id: MessageId,
    /// The bookmarker's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The conversation's title when it was bookmarked (the list shows the current one when the
    /// conversation is still there).
    pub title: String,
    /// The start of the message ([`EXCERPT_CHARS`]).
    pub excerpt: String,
    /// When.
    #[serde(with = "ts")]
    pub created_at: Timestamp,
}

/// Reactions and bookmarks.
#[async_trait]
pub trait Feedback: Send + Sync {
    /// Sets `reaction.user`'s reaction to the message in `owner`'s conversation, replacing theirs
    /// (the first `created_at` is kept). Returns the reaction it replaced. One write.
    async fn put_reaction(&self, owner: &UserId, reaction: &Reaction) -> Result<Option<Reaction>, StoreError>;

    /// Removes `user`'s reaction to `message`; returns it (`None`: there was none). One write.
    async fn delete_reaction(
        &self,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
        user: &UserId,
    ) -> Result<Option<Reaction>, StoreError>;

    /// `user`'s reactions in `owner`'s conversation `id`, by message id. One read.
    async fn reactions(&self, owner: &UserId, id: &ConversationId, user: &UserId) -> Result<Vec<Reaction>, StoreError>;

    /// Bookmarks a message for `bookmark.user`: a new bookmark, or the note of the one they had on
    /// that message replaced (its id and `created_at` kept). Returns the stored bookmark.
    async fn put_bookmark(&self, bookmark: &Bookmark) -> Result<Bookmark, StoreError>;

    /// Removes `user`'s bookmark of `message` of `owner`'s conversation `id`: whether there was one.
    async fn delete_bookmark(
        &self,
        user: &UserId,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
    ) -> Result<bool, StoreError>;

    /// `user`'s bookmarks, newest first, from after the bookmark id `after`: at most `limit`.
    /// One read.
    async fn list_bookmarks(
        &self,
        user: &UserId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Bookmark>, StoreError>;

    /// The titles of those of `keys` (owner, conversation) that exist and are not in the trash.
    /// One batch read (at most 100 keys).
    async fn conversation_titles(
        &self,
        keys: &[(UserId, ConversationId)],
    ) -> Result<HashMap<(UserId, ConversationId), String>, StoreError>;
}

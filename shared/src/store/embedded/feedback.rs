//! Reactions and bookmarks in SQLite: table `reactions` (keyed by the conversation's owner, the
//! conversation, the reacting user and the message; the reaction as JSON) and table `bookmarks`
//! (keyed by the bookmarker and the bookmark id, unique per bookmarker and message).

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::rows::conversation_exists;
use super::{sql_err, EmbeddedStore};
use crate::domain::{ConversationId, MessageId, UserId};
use crate::error::StoreError;
use crate::store::{Bookmark, Feedback, Reaction};

fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::internal("stored feedback", e))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::internal("encoding feedback", e))
}

/// Removes the reactions in `owner`'s conversation `id` and its owner's bookmarks on it (with the
/// conversation, inside its delete's transaction).
pub(super) fn delete_for_conversation(tx: &rusqlite::Transaction<'_>, owner: &str, id: &str) -> Result<(), StoreError> {
    clear_reactions(tx, owner, id)?;
    tx.execute(
        "DELETE FROM bookmarks WHERE owner = ?1 AND conv_owner = ?1 AND conversation_id = ?2",
        params![owner, id],
    )
    .map_err(sql_err("deleting a conversation's bookmarks"))?;
    Ok(())
}

/// Removes every reaction in `owner`'s conversation `id` (its messages are cleared).
pub(super) fn clear_reactions(tx: &rusqlite::Transaction<'_>, owner: &str, id: &str) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM reactions WHERE owner = ?1 AND conversation_id = ?2",
        params![owner, id],
    )
    .map_err(sql_err("deleting a conversation's reactions"))?;
    Ok(())
}

/// Removes every reaction and bookmark `user` made, wherever (erasure). How many rows.
pub(super) fn erase(tx: &rusqlite::Transaction<'_>, user: &str) -> Result<u64, StoreError> {
    let reactions = tx
        .execute("DELETE FROM reactions WHERE user_id = ?1", params![user])
        .map_err(sql_err("erasing a user's reactions"))?;
    let bookmarks = tx
        .execute("DELETE FROM bookmarks WHERE owner = ?1", params![user])
        .map_err(sql_err("erasing a user's bookmarks"))?;
    Ok((reactions + bookmarks) as u64)
}

fn reaction_in(
    conn: &rusqlite::Connection,
    owner: &str,
    id: &str,
    user: &str,
    message: &str,
) -> Result<Option<Reaction>, StoreError> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM reactions WHERE owner = ?1 AND conversation_id = ?2 AND user_id = ?3 AND message_id = ?4",
            params![owner, id, user, message],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err("reading a reaction"))?;
    body.as_deref().map(decode).transpose()
}

#[async_trait]
impl Feedback for EmbeddedStore {
    #[tracing::instrument(name = "embedded.put_reaction", skip_all)]
    async fn put_reaction(&self, owner: &UserId, reaction: &Reaction) -> Result<Option<Reaction>, StoreError> {
        let (owner, reaction) = (owner.to_string(), reaction.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let (id, user, message) = (
                reaction.conversation_id.as_str(),
                reaction.user.as_str(),
                reaction.message_id.as_str(),
            );
            // The conversation must be there (on any shelf), as on DynamoDB.
            if !conversation_exists(&tx, &owner, id)? {
                return Err(StoreError::NotFound);
            }
            let previous = reaction_in(&tx, &owner, id, user, message)?;
            let mut stored = reaction.clone();
            if let Some(p) = &previous {
                stored.created_at = p.created_at;
            }
            tx.execute(
                "INSERT INTO reactions (owner, conversation_id, user_id, message_id, body) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (owner, conversation_id, user_id, message_id) DO UPDATE SET body = excluded.body",
                params![owner, id, user, message, encode(&stored)?],
            )
            .map_err(sql_err("writing a reaction"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(previous)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_reaction", skip_all)]
    async fn delete_reaction(
        &self,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
        user: &UserId,
    ) -> Result<Option<Reaction>, StoreError> {
        let (owner, id, message, user) = (owner.to_string(), id.to_string(), message.to_string(), user.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let previous = reaction_in(&tx, &owner, &id, &user, &message)?;
            tx.execute(
                "DELETE FROM reactions WHERE owner = ?1 AND conversation_id = ?2 AND user_id = ?3 AND message_id = ?4",
                params![owner, id, user, message],
            )
            .map_err(sql_err("deleting a reaction"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(previous)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.reactions", skip_all)]
    async fn reactions(&self, owner: &UserId, id: &ConversationId, user: &UserId) -> Result<Vec<Reaction>, StoreError> {
        let (owner, id, user) = (owner.to_string(), id.to_string(), user.to_string());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT body FROM reactions WHERE owner = ?1 AND conversation_id = ?2 AND user_id = ?3 \
                     ORDER BY message_id",
                )
                .map_err(sql_err("reading reactions"))?;
            let bodies: Vec<String> = stmt
                .query_map(params![owner, id, user], |r| r.get(0))
                .map_err(sql_err("reading reactions"))?
                .collect::<Result<_, _>>()
                .map_err(sql_err("reading reactions"))?;
            bodies.iter().map(|b| decode(b)).collect()
        })
        .await
    }

    #[tracing::instrument(name = "embedded.put_bookmark", skip_all)]
    async fn put_bookmark(&self, bookmark: &Bookmark) -> Result<Bookmark, StoreError> {
        let bookmark = bookmark.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let existing: Option<String> = tx
                .query_row(
                    "SELECT body FROM bookmarks WHERE owner = ?1 AND conv_owner = ?2 AND conversation_id = ?3 \
                     AND message_id = ?4",
                    params![
                        bookmark.user.as_str(),
                        bookmark.owner.as_str(),
                        bookmark.conversation_id.as_str(),
                        bookmark.message_id.as_str()
                    ],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err("reading a bookmark"))?;
            let stored = match existing.as_deref().map(decode::<Bookmark>).transpose()? {
                Some(mut old) => {
                    old.note = bookmark.note.clone();
                    tx.execute(
                        "UPDATE bookmarks SET body = ?3 WHERE owner = ?1 AND id = ?2",
                        params![old.user.as_str(), old.id, encode(&old)?],
                    )
                    .map_err(sql_err("writing a bookmark"))?;
                    old
                }
                None => {
                    tx.execute(
                        "INSERT INTO bookmarks (owner, id, conv_owner, conversation_id, message_id, body) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            bookmark.user.as_str(),
                            bookmark.id,
                            bookmark.owner.as_str(),
                            bookmark.conversation_id.as_str(),
                            bookmark.message_id.as_str(),
                            encode(&bookmark)?
                        ],
                    )
                    .map_err(sql_err("writing a bookmark"))?;
                    bookmark
                }
            };
            tx.commit().map_err(sql_err("commit"))?;
            Ok(stored)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_bookmark", skip_all)]
    async fn delete_bookmark(
        &self,
        user: &UserId,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
    ) -> Result<bool, StoreError> {
        let (user, owner, id, message) = (user.to_string(), owner.to_string(), id.to_string(), message.to_string());
        self.with(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM bookmarks WHERE owner = ?1 AND conv_owner = ?2 AND conversation_id = ?3 \
                     AND message_id = ?4",
                    params![user, owner, id, message],
                )
                .map_err(sql_err("deleting a bookmark"))?;
            Ok(n > 0)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.list_bookmarks", skip_all)]
    async fn list_bookmarks(
        &self,
        user: &UserId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Bookmark>, StoreError> {
        let (user, after) = (user.to_string(), after.map(str::to_owned));
        self.with(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT body FROM bookmarks WHERE owner = ?1 AND (?2 IS NULL OR id < ?2) \
                     ORDER BY id DESC LIMIT ?3",
                )
                .map_err(sql_err("listing bookmarks"))?;
            let bodies: Vec<String> = stmt
                .query_map(params![user, after, limit as i64], |r| r.get(0))
                .map_err(sql_err("listing bookmarks"))?
                .collect::<Result<_, _>>()
                .map_err(sql_err("listing bookmarks"))?;
            bodies.iter().map(|b| decode(b)).collect()
        })
        .await
    }

    #[tracing::instrument(name = "embedded.conversation_titles", skip_all, fields(keys = keys.len()))]
    async fn conversation_titles(
        &self,
        keys: &[(UserId, ConversationId)],
    ) -> Result<HashMap<(UserId, ConversationId), String>, StoreError> {
        let keys = keys.to_vec();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare("SELECT title FROM conversations WHERE owner = ?1 AND id = ?2 AND trashed_at IS NULL")
                .map_err(sql_err("reading titles"))?;
            let mut titles = HashMap::new();
            for (owner, id) in keys {
                let title: Option<String> = stmt
                    .query_row(params![owner.as_str(), id.as_str()], |r| r.get(0))
                    .optional()
                    .map_err(sql_err("reading titles"))?;
                if let Some(title) = title {
                    titles.insert((owner, id), title);
                }
            }
            Ok(titles)
        })
        .await
    }
}

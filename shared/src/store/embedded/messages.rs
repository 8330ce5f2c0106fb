//! Messages in SQLite: append, list, find by client id, delete, clear.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::rows::{find_client, insert_message, messages_of, owned_conversation};
use super::{sql_err, EmbeddedStore};
use crate::domain::{self, ts, ClientMessageId, ConversationId, Message, MessageId, UserId};
use crate::error::StoreError;
use crate::store::{
    check_message_size, cursor, listing_rank, page_size, Appended, ListMessages, Messages, Page, Touch, DEFAULT_PAGE,
};

pub(super) fn append_in(
    tx: &rusqlite::Transaction<'_>,
    owner: &str,
    m: &Message,
    touch: &Touch,
) -> Result<Appended, StoreError> {
    owned_conversation(tx, owner, m.conversation_id.as_str())?;
    if let Some(client_id) = &m.client_id {
        if let Some(existing) = find_client(tx, owner, m.conversation_id.as_str(), client_id.as_str())? {
            return Ok(Appended::Duplicate(existing.id));
        }
    }
    insert_and_touch(tx, owner, m, touch.title.as_deref())?;
    Ok(Appended::Stored)
}

/// Inserts a message and touches its conversation: `updatedAt`, preview, count, rank, and the
/// active leaf (the message continues the branch it was added to).
/// The title too, when given.
pub(super) fn insert_and_touch(
    tx: &rusqlite::Transaction<'_>,
    owner: &str,
    m: &Message,
    title: Option<&str>,
) -> Result<(), StoreError> {
    owned_conversation(tx, owner, m.conversation_id.as_str())?;
    insert_message(tx, owner, m)?;
    touch_in(tx, owner, m, title, true)
}

/// Touches `m`'s conversation for `m` (`updatedAt`, preview, rank, active leaf, the title when
/// given), adding one to its count only if `counted` (a continued reply replaced in place is not
/// one more).
pub(super) fn touch_in(
    tx: &rusqlite::Transaction<'_>,
    owner: &str,
    m: &Message,
    title: Option<&str>,
    counted: bool,
) -> Result<(), StoreError> {
    let current = owned_conversation(tx, owner, m.conversation_id.as_str())?;
    tx.execute(
        "UPDATE conversations SET updated_at = ?1, last_message = ?2, message_count = message_count + ?8, \
         rank = ?3, title = COALESCE(?4, title), active_leaf = ?5 WHERE owner = ?6 AND id = ?7",
        params![
            ts::format(&m.created_at),
            domain::preview(&m.content),
            listing_rank(current.is_pinned, &current.id, m.created_at),
            title,
            m.id.as_str(),
            owner,
            m.conversation_id.as_str(),
            i64::from(counted),
        ],
    )
    .map_err(sql_err("touching a conversation"))?;
    Ok(())
}

#[async_trait]
impl Messages for EmbeddedStore {
    #[tracing::instrument(name = "embedded.append_message", skip_all, fields(conversation = %message.conversation_id, message = %message.id))]
    async fn append_message(&self, owner: &UserId, message: &Message, touch: &Touch) -> Result<Appended, StoreError> {
        check_message_size(message)?;
        let (owner, m, touch) = (owner.to_string(), message.clone(), touch.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let appended = append_in(&tx, &owner, &m, &touch)?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(appended)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.list_messages", skip_all, fields(conversation = %id, limit = ?query.limit, paged = query.cursor.is_some()))]
    async fn list_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
        query: &ListMessages,
    ) -> Result<Page<Message>, StoreError> {
        let scope = cursor::messages_scope(owner.as_str(), id.as_str());
        let after = cursor::message_position(&scope, query.cursor.as_deref())?;
        let limit = query.limit.map(|l| page_size(Some(l), DEFAULT_PAGE) as usize);
        let (owner, id) = (owner.to_string(), id.to_string());
        let messages = self
            .with(move |conn| {
                let tx = conn.transaction().map_err(sql_err("begin"))?;
                owned_conversation(&tx, &owner, &id)?;
                messages_of(&tx, &owner, &id, after.as_deref(), limit.map(|l| l + 1))
            })
            .await?;
        match limit {
            Some(limit) => cursor::page(messages, limit, &scope, |last| last.id.to_string()),
            None => Ok(Page {
                items: messages,
                next_cursor: None,
            }),
        }
    }

    #[tracing::instrument(name = "embedded.find_by_client_id", skip_all, fields(conversation = %id))]
    async fn find_by_client_id(
        &self,
        owner: &UserId,
        id: &ConversationId,
        client_id: &ClientMessageId,
    ) -> Result<Option<Message>, StoreError> {
        let (owner, id, client_id) = (owner.to_string(), id.to_string(), client_id.to_string());
        self.with(move |conn| {
            owned_conversation(conn, &owner, &id)?;
            find_client(conn, &owner, &id, &client_id)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_message", skip_all, fields(conversation = %id, message = %message))]
    async fn delete_message(&self, owner: &UserId, id: &ConversationId, message: &MessageId) -> Result<(), StoreError> {
        let (owner, id, message) = (owner.to_string(), id.to_string(), message.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            owned_conversation(&tx, &owner, &id)?;
            let n = tx
                .execute(
                    "DELETE FROM messages WHERE owner = ?1 AND conversation_id = ?2 AND id = ?3",
                    params![owner, id, message],
                )
                .map_err(sql_err("deleting a message"))?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let newest: Option<String> = tx
                .query_row(
                    "SELECT content FROM messages WHERE owner = ?1 AND conversation_id = ?2 ORDER BY id DESC LIMIT 1",
                    params![owner, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err("newest message"))?;
            tx.execute(
                "UPDATE conversations SET last_message = ?1, message_count = message_count - 1 WHERE owner = ?2 AND id = ?3",
                params![newest.as_deref().map(domain::preview), owner, id],
            )
            .map_err(sql_err("touching a conversation"))?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.clear_messages", skip_all, fields(conversation = %id))]
    async fn clear_messages(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            owned_conversation(&tx, &owner, &id)?;
            let n = tx
                .execute(
                    "DELETE FROM messages WHERE owner = ?1 AND conversation_id = ?2",
                    params![owner, id],
                )
                .map_err(sql_err("clearing messages"))?;
            super::feedback::clear_reactions(&tx, &owner, &id)?;
            tx.execute(
                "UPDATE conversations SET last_message = NULL, active_leaf = NULL, message_count = message_count - ?1 \
                 WHERE owner = ?2 AND id = ?3",
                params![n as i64, owner, id],
            )
            .map_err(sql_err("touching a conversation"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(n as u64)
        })
        .await
    }
}

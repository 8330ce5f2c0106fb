//! Conversations in SQLite: create, read, list, update, delete (messages go by cascade).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::rows::{
    any_conversation, insert_conversation, messages_of, owned_conversation, row_to_conversation, tags_json,
    CONVERSATION_COLUMNS,
};
use super::{sql_err, EmbeddedStore};
use crate::domain::{ts, Conversation, ConversationId, Message, Shelf, SolutionFilter, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{
    cursor, listing_rank, page_size, rules, ConversationPatch, Conversations, ListConversations, Page, DEFAULT_PAGE,
};

#[async_trait]
impl Conversations for EmbeddedStore {
    #[tracing::instrument(name = "embedded.create_conversation", skip_all, fields(conversation = %conversation.id, messages = messages.len()))]
    async fn create_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        let c = conversation.clone();
        let messages = messages.to_vec();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            insert_conversation(&tx, &c, &messages)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.import_conversation", skip_all, fields(conversation = %conversation.id, messages = messages.len()))]
    async fn import_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        // One transaction, however many messages.
        self.create_conversation(conversation, messages).await
    }

    #[tracing::instrument(name = "embedded.conversation_id_claimant", skip_all, fields(conversation = %id))]
    async fn conversation_id_claimant(&self, id: &ConversationId) -> Result<Option<UserId>, StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            let holder: Option<String> = conn
                .query_row("SELECT owner FROM id_claims WHERE id = ?1", [&id], |row| row.get(0))
                .optional()
                .map_err(sql_err("read claim"))?;
            holder
                .map(|h| UserId::parse(&h).map_err(|e| StoreError::internal("stored claim owner", e)))
                .transpose()
        })
        .await
    }

    #[tracing::instrument(name = "embedded.claim_conversation_id", skip_all, fields(conversation = %id))]
    async fn claim_conversation_id(&self, owner: &UserId, id: &ConversationId) -> Result<(), StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            tx.execute(
                "INSERT OR IGNORE INTO id_claims (id, owner) VALUES (?1, ?2)",
                rusqlite::params![id, owner],
            )
            .map_err(sql_err("claim id"))?;
            let holder: String = tx
                .query_row("SELECT owner FROM id_claims WHERE id = ?1", [&id], |row| row.get(0))
                .map_err(sql_err("read claim"))?;
            tx.commit().map_err(sql_err("commit"))?;
            if holder == owner {
                Ok(())
            } else {
                Err(StoreError::Conflict(format!(
                    "conversation id {id} belongs to another user"
                )))
            }
        })
        .await
    }

    #[tracing::instrument(name = "embedded.get_conversation", skip_all, fields(conversation = %id))]
    async fn get_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<Conversation, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| owned_conversation(conn, &owner, &id)).await
    }

    #[tracing::instrument(name = "embedded.get_conversation_with_messages", skip_all, fields(conversation = %id))]
    async fn get_conversation_with_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<Message>), StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            let mut c = owned_conversation(&tx, &owner, &id)?;
            c.live = super::streams::live_in(&tx, &owner, &id)?;
            let messages = messages_of(&tx, &owner, &id, None, None)?;
            Ok((c, messages))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.list_conversations", skip_all, fields(solution = ?query.solution, shelf = ?query.shelf, limit = ?query.limit, paged = query.cursor.is_some()))]
    async fn list_conversations(
        &self,
        owner: &UserId,
        query: &ListConversations,
    ) -> Result<Page<Conversation>, StoreError> {
        let limit = page_size(query.limit, DEFAULT_PAGE);
        let bucket = query.solution.map(SolutionFilter::bucket);
        let scope = cursor::conversations_scope(owner.as_str(), query);
        let project = query.project.as_ref().map(ToString::to_string);
        let folder = query.folder.as_ref().map(ToString::to_string);
        let tag = query.tag.clone();
        let pinned = query.pinned;
        let shelf = match query.shelf {
            Shelf::Active => "active",
            Shelf::Archived => "archived",
            Shelf::Trash => "trash",
        };
        let cutoff = ts::format(&rules::trash_cutoff(query.now.unwrap_or_else(chrono::Utc::now)));
        let start = cursor::conversation_position(&scope, query.cursor.as_deref())?;
        let owner = owner.to_string();
        let rows = self
            .with(move |conn| {
                let (rank, after) = start.unwrap_or((i64::MAX, String::new()));
                let first = after.is_empty();
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations \
                     WHERE owner = ?1 AND (CASE ?11 WHEN 'active' THEN trashed_at IS NULL AND archived_at IS NULL \
                     WHEN 'archived' THEN trashed_at IS NULL AND archived_at IS NOT NULL ELSE trashed_at > ?12 END) AND (?2 IS NULL OR bucket = ?2) AND (?7 IS NULL OR project_id = ?7) \
                     AND (?8 IS NULL OR folder_id = ?8) AND (?9 IS NULL OR is_pinned = ?9) \
                     AND (?10 IS NULL OR EXISTS (SELECT 1 FROM json_each(conversations.tags) WHERE value = ?10)) \
                     AND (?3 OR rank < ?4 OR (rank = ?4 AND id < ?5)) \
                     ORDER BY rank DESC, id DESC LIMIT ?6"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(sql_err("listing conversations"))?;
                let rows = stmt
                    .query_map(
                        params![
                            owner,
                            bucket,
                            first,
                            rank,
                            after,
                            i64::from(limit) + 1,
                            project,
                            folder,
                            pinned,
                            tag,
                            shelf,
                            cutoff
                        ],
                        row_to_conversation,
                    )
                    .map_err(sql_err("listing conversations"))?;
                let mut out = Vec::new();
                for row in rows {
                    let (c, rank) = row.map_err(sql_err("listing conversations"))?;
                    out.push((c?, rank));
                }
                Ok(out)
            })
            .await?;
        let page = cursor::page(rows, limit as usize, &scope, |(c, rank)| (*rank, c.id.to_string()))?;
        Ok(page.map(|(c, _)| c))
    }

    #[tracing::instrument(name = "embedded.update_conversation", skip_all, fields(conversation = %id))]
    async fn update_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        let (owner, id, patch) = (owner.to_string(), id.clone(), patch.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let current = owned_conversation(&tx, &owner, id.as_str())?;
            let pinned = patch.is_pinned.unwrap_or(current.is_pinned);
            if let Some(leaf) = &patch.active_leaf {
                tx.execute(
                    "UPDATE conversations SET active_leaf = ?1, last_message = ?2 WHERE owner = ?3 AND id = ?4",
                    params![leaf.id.as_str(), leaf.preview, owner, id.as_str()],
                )
                .map_err(sql_err("switching the active branch"))?;
            }
            if let Some(project) = &patch.project {
                tx.execute(
                    "UPDATE conversations SET project_id = ?1 WHERE owner = ?2 AND id = ?3",
                    params![project.as_ref().map(ToString::to_string), owner, id.as_str()],
                )
                .map_err(sql_err("moving a conversation"))?;
            }
            if let Some(folder) = &patch.folder {
                tx.execute(
                    "UPDATE conversations SET folder_id = ?1 WHERE owner = ?2 AND id = ?3",
                    params![folder.as_ref().map(ToString::to_string), owner, id.as_str()],
                )
                .map_err(sql_err("moving a conversation to a folder"))?;
            }
            if let Some(tags) = &patch.tags {
                tx.execute(
                    "UPDATE conversations SET tags = ?1 WHERE owner = ?2 AND id = ?3",
                    params![tags_json(tags)?, owner, id.as_str()],
                )
                .map_err(sql_err("tagging a conversation"))?;
            }
            if let Some(archived) = patch.archived {
                // Archiving an archived conversation keeps when it was first archived.
                let at = archived.then(|| current.archived_at.unwrap_or(now));
                tx.execute(
                    "UPDATE conversations SET archived_at = ?1 WHERE owner = ?2 AND id = ?3",
                    params![at.as_ref().map(ts::format), owner, id.as_str()],
                )
                .map_err(sql_err("archiving a conversation"))?;
            }
            tx.execute(
                "UPDATE conversations SET title = COALESCE(?1, title), is_pinned = ?2, is_shared = COALESCE(?3, is_shared), \
                 model = COALESCE(?4, model), updated_at = ?5, rank = ?6 WHERE owner = ?7 AND id = ?8",
                params![
                    patch.title,
                    pinned,
                    patch.is_shared,
                    patch.model,
                    ts::format(&now),
                    listing_rank(pinned, &id, now),
                    owner,
                    id.as_str()
                ],
            )
            .map_err(sql_err("updating a conversation"))?;
            let updated = owned_conversation(&tx, &owner, id.as_str())?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(updated)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.trash_conversation", skip_all, fields(conversation = %id))]
    async fn trash_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        let (owner, id) = (owner.to_string(), id.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            owned_conversation(&tx, &owner, id.as_str())?;
            tx.execute(
                "UPDATE conversations SET trashed_at = ?1, rank = ?2 WHERE owner = ?3 AND id = ?4",
                params![ts::format(&now), rules::trash_rank(&id, now), owner, id.as_str()],
            )
            .map_err(sql_err("trashing a conversation"))?;
            let trashed = any_conversation(&tx, &owner, id.as_str())?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(trashed)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.restore_conversation", skip_all, fields(conversation = %id))]
    async fn restore_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        let (owner, id) = (owner.to_string(), id.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let trashed = any_conversation(&tx, &owner, id.as_str())?;
            match trashed.trashed_at {
                Some(at) if at > rules::trash_cutoff(now) => {}
                _ => return Err(StoreError::NotFound),
            }
            tx.execute(
                "UPDATE conversations SET trashed_at = NULL, rank = ?1 WHERE owner = ?2 AND id = ?3",
                params![
                    listing_rank(trashed.is_pinned, &id, trashed.updated_at),
                    owner,
                    id.as_str()
                ],
            )
            .map_err(sql_err("restoring a conversation"))?;
            let restored = owned_conversation(&tx, &owner, id.as_str())?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(restored)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_conversation", skip_all, fields(conversation = %id))]
    async fn delete_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            any_conversation(&tx, &owner, &id)?;
            let deleted = delete_in(&tx, &owner, &id)?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(deleted)
        })
        .await
    }
}

/// Deletes `owner`'s conversation `id` with its messages and stream items inside `tx`. Returns
/// how many messages went with it.
pub(super) fn delete_in(tx: &rusqlite::Transaction<'_>, owner: &str, id: &str) -> Result<u64, StoreError> {
    let deleted = tx
        .execute(
            "DELETE FROM messages WHERE owner = ?1 AND conversation_id = ?2",
            params![owner, id],
        )
        .map_err(sql_err("deleting messages"))?;
    super::streams::delete_all(tx, owner, id)?;
    super::feedback::delete_for_conversation(tx, owner, id)?;
    tx.execute(
        "DELETE FROM grants WHERE owner = ?1 AND conversation_id = ?2",
        params![owner, id],
    )
    .map_err(sql_err("deleting a conversation's grants"))?;
    tx.execute(
        "DELETE FROM conversations WHERE owner = ?1 AND id = ?2",
        params![owner, id],
    )
    .map_err(sql_err("deleting a conversation"))?;
    Ok(deleted as u64)
}

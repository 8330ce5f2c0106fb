//! Share links in SQLite: table `share_links`, keyed by the token's SHA-256, one row per link
//! with its snapshot; deleted with their conversation (foreign key, `ON DELETE CASCADE`).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::rows::owned_conversation;
use super::{sql_err, EmbeddedStore};
use crate::domain::link::shared_until;
use crate::domain::{ts, ConversationId, LinkId, ShareLink, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::links::{too_many_links, updated, LinkUpdate, Links, SharedSnapshot};

fn decode(body: &str, views: i64) -> Result<ShareLink, StoreError> {
    let mut link: ShareLink = serde_json::from_str(body).map_err(|e| StoreError::internal("stored share link", e))?;
    link.views = u64::try_from(views).unwrap_or(0);
    Ok(link)
}

fn encode(link: &ShareLink) -> Result<String, StoreError> {
    serde_json::to_string(link).map_err(|e| StoreError::internal("encoding a share link", e))
}

/// The conversation's links, oldest first.
fn links_of(conn: &Connection, owner: &str, conversation: &str) -> Result<Vec<ShareLink>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT body, views FROM share_links WHERE owner = ?1 AND conversation_id = ?2 ORDER BY id")
        .map_err(sql_err("listing share links"))?;
    let rows = stmt
        .query_map(params![owner, conversation], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(sql_err("listing share links"))?;
    let mut out = Vec::new();
    for row in rows {
        let (body, views) = row.map_err(sql_err("listing share links"))?;
        out.push(decode(&body, views)?);
    }
    Ok(out)
}

/// Writes the conversation's `shared_until` from its links.
fn mark_shared(conn: &Connection, owner: &str, conversation: &str, now: Timestamp) -> Result<(), StoreError> {
    let until = shared_until(&links_of(conn, owner, conversation)?, now);
    conn.execute(
        "UPDATE conversations SET shared_until = ?3 WHERE owner = ?1 AND id = ?2",
        params![owner, conversation, until.as_ref().map(ts::format)],
    )
    .map_err(sql_err("marking a conversation shared"))?;
    Ok(())
}

fn one_link(conn: &Connection, owner: &str, conversation: &str, id: &str) -> Result<(String, ShareLink), StoreError> {
    conn.query_row(
        "SELECT token_hash, body, views FROM share_links WHERE owner = ?1 AND conversation_id = ?2 AND id = ?3",
        params![owner, conversation, id],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
    )
    .optional()
    .map_err(sql_err("reading a share link"))?
    .map_or(Err(StoreError::NotFound), |(hash, body, views)| {
        Ok((hash, decode(&body, views)?))
    })
}

#[async_trait]
impl Links for EmbeddedStore {
    #[tracing::instrument(name = "embedded.create_link", skip_all, fields(link = %link.id))]
    async fn create_link(
        &self,
        link: &ShareLink,
        snapshot: &str,
        max: usize,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (link, snapshot) = (link.clone(), snapshot.to_owned());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let (owner, conversation) = (link.owner.as_str(), link.conversation_id.as_str());
            owned_conversation(&tx, owner, conversation)?;
            if links_of(&tx, owner, conversation)?
                .iter()
                .filter(|l| l.live(now))
                .count()
                >= max
            {
                return Err(too_many_links(max));
            }
            tx.execute(
                "INSERT INTO share_links (token_hash, owner, conversation_id, id, body, views, snapshot) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
                params![
                    link.token_hash,
                    owner,
                    conversation,
                    link.id.as_str(),
                    encode(&link)?,
                    snapshot
                ],
            )
            .map_err(sql_err("creating a share link"))?;
            mark_shared(&tx, owner, conversation, now)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.list_links", skip_all)]
    async fn list_links(&self, owner: &UserId, conversation: &ConversationId) -> Result<Vec<ShareLink>, StoreError> {
        let (owner, conversation) = (owner.to_string(), conversation.to_string());
        self.with(move |conn| links_of(conn, &owner, &conversation)).await
    }

    #[tracing::instrument(name = "embedded.update_link", skip_all, fields(link = %id))]
    async fn update_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &LinkId,
        update: &LinkUpdate,
        now: Timestamp,
    ) -> Result<ShareLink, StoreError> {
        let (owner, conversation, id, update) = (
            owner.to_string(),
            conversation.to_string(),
            id.to_string(),
            update.clone(),
        );
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            owned_conversation(&tx, &owner, &conversation)?;
            let (hash, link) = one_link(&tx, &owner, &conversation, &id)?;
            let next = updated(&link, &update, now);
            match &update.snapshot {
                Some((snapshot, _, _)) => tx.execute(
                    "UPDATE share_links SET body = ?2, snapshot = ?3 WHERE token_hash = ?1",
                    params![hash, encode(&next)?, snapshot],
                ),
                None => tx.execute(
                    "UPDATE share_links SET body = ?2 WHERE token_hash = ?1",
                    params![hash, encode(&next)?],
                ),
            }
            .map_err(sql_err("updating a share link"))?;
            mark_shared(&tx, &owner, &conversation, now)?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(next)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_link", skip_all, fields(link = %id))]
    async fn delete_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &LinkId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (owner, conversation, id) = (owner.to_string(), conversation.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let deleted = tx
                .execute(
                    "DELETE FROM share_links WHERE owner = ?1 AND conversation_id = ?2 AND id = ?3",
                    params![owner, conversation, id],
                )
                .map_err(sql_err("revoking a share link"))?;
            if deleted == 0 {
                return Err(StoreError::NotFound);
            }
            mark_shared(&tx, &owner, &conversation, now)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_conversation_links", skip_all)]
    async fn delete_conversation_links(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
    ) -> Result<u64, StoreError> {
        let (owner, conversation) = (owner.to_string(), conversation.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let deleted = tx
                .execute(
                    "DELETE FROM share_links WHERE owner = ?1 AND conversation_id = ?2",
                    params![owner, conversation],
                )
                .map_err(sql_err("revoking share links"))?;
            tx.execute(
                "UPDATE conversations SET shared_until = NULL WHERE owner = ?1 AND id = ?2",
                params![owner, conversation],
            )
            .map_err(sql_err("marking a conversation unshared"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(u64::try_from(deleted).unwrap_or(0))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.read_link", skip_all)]
    async fn read_link(&self, token_hash: &str, now: Timestamp) -> Result<SharedSnapshot, StoreError> {
        let hash = token_hash.to_owned();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let row = tx
                .query_row(
                    "SELECT l.body, l.views, l.snapshot FROM share_links l JOIN conversations c \
                       ON c.owner = l.owner AND c.id = l.conversation_id \
                     WHERE l.token_hash = ?1 AND c.trashed_at IS NULL",
                    params![hash],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
                )
                .optional()
                .map_err(sql_err("reading a share link"))?;
            let Some((body, views, snapshot)) = row else {
                return Err(StoreError::NotFound);
            };
            let mut link = decode(&body, views)?;
            if !link.live(now) {
                return Err(StoreError::NotFound);
            }
            tx.execute(
                "UPDATE share_links SET views = views + 1 WHERE token_hash = ?1",
                params![hash],
            )
            .map_err(sql_err("counting a view"))?;
            tx.commit().map_err(sql_err("commit"))?;
            link.views += 1;
            Ok(SharedSnapshot { link, snapshot })
        })
        .await
    }
}

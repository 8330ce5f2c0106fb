//! Folders and tags in SQLite: table `folders` (one row per owner and id, the folder as JSON); a
//! conversation names its folder in `conversations.folder_id` and keeps its tags as a JSON array
//! in `conversations.tags`.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};

use super::docs::Docs;
use super::{sql_err, EmbeddedStore};
use crate::domain::{ts, Folder, FolderId, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, FolderDeleted, Housekeeping, Organizer, TagCount};

const DOCS: Docs = Docs::new("folders", "folder");

#[async_trait]
impl Organizer for EmbeddedStore {
    #[tracing::instrument(name = "embedded.create_folder", skip_all, fields(folder = %folder.id))]
    async fn create_folder(&self, folder: &Folder, max: usize) -> Result<(), StoreError> {
        let f = folder.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            if DOCS.count(&tx, f.owner.as_str())? >= max {
                return Err(rules::too_many_folders(max));
            }
            DOCS.insert(&tx, f.owner.as_str(), f.id.as_str(), &f)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.get_folder", skip_all, fields(folder = %id))]
    async fn get_folder(&self, owner: &UserId, id: &FolderId) -> Result<Folder, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| DOCS.get(conn, &owner, &id)).await
    }

    #[tracing::instrument(name = "embedded.list_folders", skip_all)]
    async fn list_folders(&self, owner: &UserId) -> Result<Vec<Folder>, StoreError> {
        let owner = owner.to_string();
        self.with(move |conn| DOCS.list(conn, &owner)).await
    }

    #[tracing::instrument(name = "embedded.replace_folder", skip_all, fields(folder = %folder.id))]
    async fn replace_folder(&self, folder: &Folder, updated_at: Timestamp) -> Result<(), StoreError> {
        let f = folder.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let stored: Folder = DOCS.get(&tx, f.owner.as_str(), f.id.as_str())?;
            if ts::format(&stored.updated_at) != ts::format(&updated_at) {
                return Err(rules::folder_changed());
            }
            DOCS.update(&tx, f.owner.as_str(), f.id.as_str(), &f)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_folder", skip_all, fields(folder = %id))]
    async fn delete_folder(&self, owner: &UserId, id: &FolderId) -> Result<FolderDeleted, StoreError> {
        let (owner, id) = (owner.to_string(), id.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            DOCS.get::<Folder>(&tx, &owner, id.as_str())?;
            let mut doomed = vec![id.to_string()];
            doomed.extend(
                DOCS.list::<Folder>(&tx, &owner)?
                    .into_iter()
                    .filter(|f| f.parent_id.as_ref() == Some(&id))
                    .map(|f| f.id.to_string()),
            );
            let mut deleted = FolderDeleted::default();
            for folder in &doomed {
                deleted.conversations +=
                    tx.execute(
                        "UPDATE conversations SET folder_id = NULL WHERE owner = ?1 AND folder_id = ?2",
                        params![owner, folder],
                    )
                    .map_err(sql_err("moving conversations out of a folder"))? as u64;
                deleted.folders += tx
                    .execute(
                        "DELETE FROM folders WHERE owner = ?1 AND id = ?2",
                        params![owner, folder],
                    )
                    .map_err(sql_err("deleting a folder"))? as u64;
            }
            tx.commit().map_err(sql_err("commit"))?;
            Ok(deleted)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.list_tags", skip_all)]
    async fn list_tags(&self, owner: &UserId) -> Result<Vec<TagCount>, StoreError> {
        let owner = owner.to_string();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT t.value, COUNT(*) FROM conversations c, json_each(c.tags) t \
                     WHERE c.owner = ?1 AND c.tags IS NOT NULL AND c.trashed_at IS NULL GROUP BY t.value",
                )
                .map_err(sql_err("listing tags"))?;
            let rows = stmt
                .query_map(params![owner], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql_err("listing tags"))?;
            let mut counts = HashMap::new();
            for row in rows {
                let (tag, n) = row.map_err(sql_err("listing tags"))?;
                counts.insert(tag, u64::try_from(n).unwrap_or(0));
            }
            Ok(rules::sorted_tags(counts))
        })
        .await
    }
}

#[async_trait]
impl Housekeeping for EmbeddedStore {
    #[tracing::instrument(name = "embedded.due_for_purge", skip_all)]
    async fn due_for_purge(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(UserId, crate::domain::ConversationId)>, StoreError> {
        let cutoff = ts::format(&rules::trash_cutoff(now));
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT owner, id FROM conversations WHERE trashed_at IS NOT NULL AND trashed_at <= ?1 LIMIT ?2",
                )
                .map_err(sql_err("finding expired trash"))?;
            let rows = stmt
                .query_map(params![cutoff, limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql_err("finding expired trash"))?;
            let mut out = Vec::new();
            for row in rows {
                let (owner, id) = row.map_err(sql_err("finding expired trash"))?;
                out.push((
                    UserId::parse(&owner).map_err(|e| StoreError::internal("stored owner", e))?,
                    crate::domain::ConversationId::parse(&id).map_err(|e| StoreError::internal("stored id", e))?,
                ));
            }
            Ok(out)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.trash_untouched", skip_all)]
    async fn trash_untouched(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        let (before, at) = (ts::format(&before), ts::format(&now));
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let ids: Vec<(String, String)> = {
                let mut stmt = tx
                    .prepare("SELECT owner, id FROM conversations WHERE trashed_at IS NULL AND is_pinned = 0 AND updated_at < ?1")
                    .map_err(sql_err("finding untouched conversations"))?;
                let rows = stmt
                    .query_map(params![before], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(sql_err("finding untouched conversations"))?;
                rows.collect::<Result<_, _>>()
                    .map_err(sql_err("finding untouched conversations"))?
            };
            for (owner, id) in &ids {
                let rank = crate::domain::ConversationId::parse(id)
                    .map(|c| rules::trash_rank(&c, now))
                    .map_err(|e| StoreError::internal("stored id", e))?;
                tx.execute(
                    "UPDATE conversations SET trashed_at = ?1, rank = ?2 WHERE owner = ?3 AND id = ?4",
                    params![at, rank, owner, id],
                )
                .map_err(sql_err("trashing an untouched conversation"))?;
            }
            tx.commit().map_err(sql_err("commit"))?;
            Ok(ids.len() as u64)
        })
        .await
    }
}

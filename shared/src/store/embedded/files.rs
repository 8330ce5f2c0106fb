//! Attached files in SQLite: table `files`, one row per owner and id, the file record as JSON
//! (the bytes live on disk beside the database, or in the bucket).

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};

use super::docs::Docs;
use super::{sql_err, EmbeddedStore};
use crate::domain::{FileId, FileStatus, StoredFile, UserId};
use crate::error::StoreError;
use crate::store::{FileCondition, Files};

const DOCS: Docs = Docs::new("files", "file");

/// Whether `stored` meets `condition`.
fn meets(stored: &StoredFile, condition: FileCondition<'_>) -> bool {
    match condition {
        FileCondition::Pending => stored.status == FileStatus::Pending,
        FileCondition::AttachableTo(conversation) => {
            stored.status == FileStatus::Ready && stored.conversation_id.as_ref().is_none_or(|c| c == conversation)
        }
    }
}

#[async_trait]
impl Files for EmbeddedStore {
    #[tracing::instrument(name = "embedded.put_file", skip_all, fields(file = %file.id))]
    async fn put_file(&self, file: &StoredFile) -> Result<(), StoreError> {
        let f = file.clone();
        self.with(move |conn| DOCS.insert(conn, f.owner.as_str(), f.id.as_str(), &f))
            .await
    }

    #[tracing::instrument(name = "embedded.get_file", skip_all, fields(file = %id))]
    async fn get_file(&self, owner: &UserId, id: &FileId) -> Result<StoredFile, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| DOCS.get(conn, &owner, &id)).await
    }

    #[tracing::instrument(name = "embedded.list_files", skip_all)]
    async fn list_files(&self, owner: &UserId) -> Result<Vec<StoredFile>, StoreError> {
        let owner = owner.to_string();
        self.with(move |conn| DOCS.list(conn, &owner)).await
    }

    #[tracing::instrument(name = "embedded.replace_file", skip_all, fields(file = %file.id))]
    async fn replace_file(&self, file: &StoredFile, condition: FileCondition<'_>) -> Result<(), StoreError> {
        let f = file.clone();
        let expected = match condition {
            FileCondition::Pending => None,
            FileCondition::AttachableTo(c) => Some(c.clone()),
        };
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let stored: StoredFile = DOCS.get(&tx, f.owner.as_str(), f.id.as_str())?;
            let condition = match &expected {
                None => FileCondition::Pending,
                Some(c) => FileCondition::AttachableTo(c),
            };
            if !meets(&stored, condition) {
                return Err(StoreError::Conflict(format!("file {} changed meanwhile", f.id)));
            }
            DOCS.update(&tx, f.owner.as_str(), f.id.as_str(), &f)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_files", skip_all, fields(files = ids.len()))]
    async fn delete_files(&self, owner: &UserId, ids: &[FileId]) -> Result<(), StoreError> {
        let owner = owner.to_string();
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            for id in &ids {
                tx.execute("DELETE FROM files WHERE owner = ?1 AND id = ?2", params![owner, id])
                    .map_err(sql_err("deleting a file"))?;
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }
}

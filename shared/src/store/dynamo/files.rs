//! Attached files on DynamoDB: one partition per user in the conversations table
//! (`pk = FILE#<owner>`, `sk = <file id>`), so a user's files (for the quota, and the files of a
//! conversation being deleted) are one Query. A pending file carries `expiresAt`: an upload never
//! verified disappears by TTL a day after its form expired; a ready file has none.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use serde::{Deserialize, Serialize};

use super::schema;
use super::{classify, s, to_item, DynamoStore};
use crate::domain::{FileId, FileStatus, StoredFile, UserId};
use crate::error::StoreError;
use crate::store::{FileCondition, Files};

/// Seconds a pending file's record outlives its upload form.
const PENDING_TTL_SECS: i64 = 86_400;

#[derive(Serialize, Deserialize)]
struct FileItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    file: StoredFile,
    #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

impl FileItem {
    fn of(file: &StoredFile) -> Self {
        Self {
            pk: schema::files_pk(file.owner.as_str()),
            sk: file.id.to_string(),
            file: file.clone(),
            expires_at: (file.status == FileStatus::Pending)
                .then(|| file.upload_expires_at.timestamp() + PENDING_TTL_SECS),
        }
    }
}

#[async_trait]
impl Files for DynamoStore {
    #[tracing::instrument(name = "dynamo.put_file", skip_all, fields(file = %file.id))]
    async fn put_file(&self, file: &StoredFile) -> Result<(), StoreError> {
        self.put_doc("file", file.id.as_str(), &FileItem::of(file), None).await
    }

    #[tracing::instrument(name = "dynamo.get_file", skip_all, fields(file = %id))]
    async fn get_file(&self, owner: &UserId, id: &FileId) -> Result<StoredFile, StoreError> {
        let item: FileItem = self
            .get_doc("file", schema::files_pk(owner.as_str()), id.as_str())
            .await?;
        if item.file.owner != *owner {
            return Err(StoreError::NotFound);
        }
        Ok(item.file)
    }

    #[tracing::instrument(name = "dynamo.list_files", skip_all)]
    async fn list_files(&self, owner: &UserId) -> Result<Vec<StoredFile>, StoreError> {
        let items: Vec<FileItem> = self.list_docs("files", schema::files_pk(owner.as_str())).await?;
        Ok(items.into_iter().map(|item| item.file).collect())
    }

    #[tracing::instrument(name = "dynamo.replace_file", skip_all, fields(file = %file.id))]
    async fn replace_file(&self, file: &StoredFile, condition: FileCondition<'_>) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.conversations)
            .set_item(Some(to_item(&FileItem::of(file))?))
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#status", "status");
        put = match condition {
            FileCondition::Pending => put
                .condition_expression("attribute_exists(#pk) AND #status = :pending")
                .expression_attribute_values(":pending", s("pending")),
            FileCondition::AttachableTo(conversation) => put
                .condition_expression(
                    "attribute_exists(#pk) AND #status = :ready AND \
                     (attribute_not_exists(conversationId) OR conversationId = :conversation)",
                )
                .expression_attribute_values(":ready", s("ready"))
                .expression_attribute_values(":conversation", s(conversation.as_str())),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                // Gone, or not in the expected state: which one decides the answer.
                self.get_file(&file.owner, &file.id).await?;
                Err(StoreError::Conflict(format!("file {} changed meanwhile", file.id)))
            }
            Err(e) => Err(classify("PutItem file", e)),
        }
    }

    #[tracing::instrument(name = "dynamo.delete_files", skip_all, fields(files = ids.len()))]
    async fn delete_files(&self, owner: &UserId, ids: &[FileId]) -> Result<(), StoreError> {
        let keys = ids
            .iter()
            .map(|id| super::sdk_key(schema::files_pk(owner.as_str()), id.to_string()))
            .collect();
        self.batch_delete(keys).await
    }
}

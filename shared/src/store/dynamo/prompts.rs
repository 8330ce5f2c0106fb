//! Saved prompts on DynamoDB: one partition per user in the conversations table
//! (`pk = PRMT#<owner>`, `sk = <prompt id>`), so listing them is one Query.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use serde::{Deserialize, Serialize};

use super::schema;
use super::{classify, s, DynamoStore};
use crate::domain::{PromptId, SavedPrompt, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, PromptPatch, Prompts};

/// A prompt item: its keys and the prompt's attributes.
#[derive(Serialize, Deserialize)]
struct PromptItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    prompt: SavedPrompt,
}

impl PromptItem {
    fn of(prompt: &SavedPrompt) -> Self {
        Self {
            pk: schema::prompts_pk(prompt.owner.as_str()),
            sk: prompt.id.to_string(),
            prompt: prompt.clone(),
        }
    }
}

impl DynamoStore {
    /// Writes `prompt` if absent (`update_of`: over the stored version whose `updatedAt` it names).
    async fn put_prompt(&self, prompt: &SavedPrompt, update_of: Option<&str>) -> Result<(), StoreError> {
        self.put_doc("prompt", prompt.id.as_str(), &PromptItem::of(prompt), update_of)
            .await
    }
}

#[async_trait]
impl Prompts for DynamoStore {
    /// A read of the cap revision, a Query (`Select: COUNT`), one transaction (the prompt and
    /// the revision): racing creates cannot pass the cap together.
    #[tracing::instrument(name = "dynamo.create_prompt", skip_all, fields(prompt = %prompt.id))]
    async fn create_prompt(&self, prompt: &SavedPrompt, max: usize) -> Result<(), StoreError> {
        let owner = prompt.owner.as_str();
        self.create_capped_doc(
            "prompt",
            prompt.id.as_str(),
            owner,
            "prompts",
            schema::prompts_pk(owner),
            &PromptItem::of(prompt),
            max,
            rules::too_many_prompts,
        )
        .await
    }

    #[tracing::instrument(name = "dynamo.get_prompt", skip_all, fields(prompt = %id))]
    async fn get_prompt(&self, owner: &UserId, id: &PromptId) -> Result<SavedPrompt, StoreError> {
        let item: PromptItem = self
            .get_doc("prompt", schema::prompts_pk(owner.as_str()), id.as_str())
            .await?;
        if item.prompt.owner != *owner {
            return Err(StoreError::NotFound);
        }
        Ok(item.prompt)
    }

    #[tracing::instrument(name = "dynamo.list_prompts", skip_all)]
    async fn list_prompts(&self, owner: &UserId) -> Result<Vec<SavedPrompt>, StoreError> {
        let items: Vec<PromptItem> = self.list_docs("prompts", schema::prompts_pk(owner.as_str())).await?;
        Ok(items.into_iter().map(|item| item.prompt).collect())
    }

    /// A read and a PutItem conditioned on the `updatedAt` read (a concurrent update: `Conflict`).
    #[tracing::instrument(name = "dynamo.delete_prompt", skip_all, fields(prompt = %id))]
    async fn delete_prompt(&self, owner: &UserId, id: &PromptId) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::prompts_pk(owner.as_str())))
            .key(schema::SK, s(id.as_str()))
            .condition_expression("attribute_exists(#pk) AND #owner = :owner")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(classify("DeleteItem prompt", e)),
        }
    }

    #[tracing::instrument(name = "dynamo.update_prompt", skip_all, fields(prompt = %id))]
    async fn update_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        patch: &PromptPatch,
        now: Timestamp,
    ) -> Result<SavedPrompt, StoreError> {
        let current = self.get_prompt(owner, id).await?;
        let updated = rules::patched_prompt(&current, patch, now);
        let at = crate::domain::ts::format(&current.updated_at);
        self.put_prompt(&updated, Some(&at)).await?;
        Ok(updated)
    }
}

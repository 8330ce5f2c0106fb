//! Saved prompts in SQLite: table `prompts`, one row per owner and id, the prompt as JSON.

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};

use super::docs::Docs;
use super::{sql_err, EmbeddedStore};
use crate::domain::{PromptId, SavedPrompt, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, PromptPatch, Prompts};

const DOCS: Docs = Docs::new("prompts", "prompt");

#[async_trait]
impl Prompts for EmbeddedStore {
    #[tracing::instrument(name = "embedded.create_prompt", skip_all, fields(prompt = %prompt.id))]
    async fn create_prompt(&self, prompt: &SavedPrompt, max: usize) -> Result<(), StoreError> {
        let p = prompt.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            if DOCS.count(&tx, p.owner.as_str())? >= max {
                return Err(rules::too_many_prompts(max));
            }
            DOCS.insert(&tx, p.owner.as_str(), p.id.as_str(), &p)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.get_prompt", skip_all, fields(prompt = %id))]
    async fn get_prompt(&self, owner: &UserId, id: &PromptId) -> Result<SavedPrompt, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| DOCS.get(conn, &owner, &id)).await
    }

    #[tracing::instrument(name = "embedded.list_prompts", skip_all)]
    async fn list_prompts(&self, owner: &UserId) -> Result<Vec<SavedPrompt>, StoreError> {
        let owner = owner.to_string();
        self.with(move |conn| DOCS.list(conn, &owner)).await
    }

    #[tracing::instrument(name = "embedded.update_prompt", skip_all, fields(prompt = %id))]
    async fn update_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        patch: &PromptPatch,
        now: Timestamp,
    ) -> Result<SavedPrompt, StoreError> {
        let (owner, id, patch) = (owner.to_string(), id.to_string(), patch.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let updated = rules::patched_prompt(&DOCS.get::<SavedPrompt>(&tx, &owner, &id)?, &patch, now);
            DOCS.update(&tx, &owner, &id, &updated)?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(updated)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_prompt", skip_all, fields(prompt = %id))]
    async fn delete_prompt(&self, owner: &UserId, id: &PromptId) -> Result<(), StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let deleted = conn
                .execute("DELETE FROM prompts WHERE owner = ?1 AND id = ?2", params![owner, id])
                .map_err(sql_err("deleting a prompt"))?;
            if deleted == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }
}

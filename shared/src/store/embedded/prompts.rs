//! Saved prompts in SQLite: table `prompts`, one row per owner and id, the prompt as JSON.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{sql_err, EmbeddedStore};
use crate::domain::{PromptId, SavedPrompt, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, PromptPatch, Prompts};

fn encode(p: &SavedPrompt) -> Result<String, StoreError> {
    serde_json::to_string(p).map_err(|e| StoreError::internal("serializing a prompt", e))
}

fn decode(body: &str) -> Result<SavedPrompt, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::internal("stored prompt", e))
}

fn owned(conn: &rusqlite::Connection, owner: &str, id: &str) -> Result<SavedPrompt, StoreError> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM prompts WHERE owner = ?1 AND id = ?2",
            params![owner, id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err("reading a prompt"))?;
    decode(&body.ok_or(StoreError::NotFound)?)
}

#[async_trait]
impl Prompts for EmbeddedStore {
    #[tracing::instrument(name = "embedded.create_prompt", skip_all, fields(prompt = %prompt.id))]
    async fn create_prompt(&self, prompt: &SavedPrompt, max: usize) -> Result<(), StoreError> {
        let p = prompt.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let count: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM prompts WHERE owner = ?1",
                    params![p.owner.as_str()],
                    |r| r.get(0),
                )
                .map_err(sql_err("counting prompts"))?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                return Err(rules::too_many_prompts(max));
            }
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO prompts (owner, id, body) VALUES (?1, ?2, ?3)",
                    params![p.owner.as_str(), p.id.as_str(), encode(&p)?],
                )
                .map_err(sql_err("creating a prompt"))?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("prompt {} already exists", p.id)));
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.get_prompt", skip_all, fields(prompt = %id))]
    async fn get_prompt(&self, owner: &UserId, id: &PromptId) -> Result<SavedPrompt, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| owned(conn, &owner, &id)).await
    }

    #[tracing::instrument(name = "embedded.list_prompts", skip_all)]
    async fn list_prompts(&self, owner: &UserId) -> Result<Vec<SavedPrompt>, StoreError> {
        let owner = owner.to_string();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM prompts WHERE owner = ?1 ORDER BY id")
                .map_err(sql_err("listing prompts"))?;
            let rows = stmt
                .query_map(params![owner], |r| r.get::<_, String>(0))
                .map_err(sql_err("listing prompts"))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(decode(&row.map_err(sql_err("listing prompts"))?)?);
            }
            Ok(out)
        })
        .await
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
            let updated = rules::patched_prompt(&owned(&tx, &owner, &id)?, &patch, now);
            tx.execute(
                "UPDATE prompts SET body = ?1 WHERE owner = ?2 AND id = ?3",
                params![encode(&updated)?, owner, id],
            )
            .map_err(sql_err("updating a prompt"))?;
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

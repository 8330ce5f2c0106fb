//! Erasing a user's data in SQLite: one transaction over every table that holds it.

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};

use super::{sql_err, EmbeddedStore};
use crate::domain::{StatsDelta, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{schema, Accounts, Erased};

/// The tables keyed by owner that go as a whole (the conversations' own rows go with
/// `conversations::delete_in`).
const OWNER_TABLES: [&str; 13] = [
    "id_claims",
    "usage",
    "plan_overrides",
    "projects",
    "prompts",
    "files",
    "import_jobs",
    "folders",
    "idempotency_keys",
    "stream_slots",
    "audit",
    "live_turns",
    "turn_checkpoints",
];

#[async_trait]
impl Accounts for EmbeddedStore {
    #[tracing::instrument(name = "embedded.erase_user", skip_all)]
    async fn erase_user(&self, user: &UserId, _now: Timestamp) -> Result<Erased, StoreError> {
        let owner = user.to_string();
        let hash = crate::domain::user_hash(user);
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let mut erased = Erased::default();
            let ids: Vec<String> = {
                let mut stmt = tx
                    .prepare("SELECT id FROM conversations WHERE owner = ?1")
                    .map_err(sql_err("listing a user's conversations"))?;
                let rows = stmt
                    .query_map(params![owner], |r| r.get(0))
                    .map_err(sql_err("listing a user's conversations"))?;
                rows.collect::<Result<_, _>>()
                    .map_err(sql_err("listing a user's conversations"))?
            };
            for id in &ids {
                super::conversations::delete_in(&tx, &owner, id)?;
            }
            erased.conversations = ids.len() as u64;
            for table in OWNER_TABLES {
                erased.items += tx
                    .execute(&format!("DELETE FROM {table} WHERE owner = ?1"), params![owner])
                    .map_err(sql_err("erasing a user's rows"))? as u64;
            }
            // Reactions the user made in anyone's conversation, and their bookmarks.
            erased.items += super::feedback::erase(&tx, &owner)?;
            // Keys that start with the user's id: rate counters and token budgets.
            for (table, prefix) in [
                ("counters", schema::counter_prefix(&schema::rate_key(&owner))),
                ("budgets", schema::budget_prefix(&owner)),
            ] {
                // `CTR#rpm#<user>#` and `BUD#<user>#`: user ids hold no `#`, so the prefix is exact.
                erased.items += tx
                    .execute(
                        &format!("DELETE FROM {table} WHERE substr(key, 1, length(?1)) = ?1"),
                        params![prefix],
                    )
                    .map_err(sql_err("erasing a user's counters"))? as u64;
            }
            erased.items += tx
                .execute(
                    "DELETE FROM events WHERE json_extract(body, '$.userId') = ?1",
                    params![hash],
                )
                .map_err(sql_err("erasing a user's events"))? as u64;
            // The daily counters keep no row per user: only the user's hash leaves their sets.
            let rows: Vec<(String, String, String, String)> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT day, solution, model, body FROM stats \
                         WHERE EXISTS (SELECT 1 FROM json_each(stats.body, '$.users') WHERE value = ?1)",
                    )
                    .map_err(sql_err("finding a user's counters"))?;
                let rows = stmt
                    .query_map(params![hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(sql_err("finding a user's counters"))?;
                rows.collect::<Result<_, _>>()
                    .map_err(sql_err("finding a user's counters"))?
            };
            for (day, solution, model, body) in rows {
                let mut stats: StatsDelta =
                    serde_json::from_str(&body).map_err(|e| StoreError::internal("stored stats", e))?;
                stats.users.remove(&hash);
                let body = serde_json::to_string(&stats).map_err(|e| StoreError::internal("serializing stats", e))?;
                tx.execute(
                    "UPDATE stats SET body = ?4 WHERE day = ?1 AND solution = ?2 AND model = ?3",
                    params![day, solution, model, body],
                )
                .map_err(sql_err("rewriting a user's counters"))?;
                erased.items += 1;
            }
            tx.commit().map_err(sql_err("commit"))?;
            Ok(erased)
        })
        .await
    }
}

//! Projects in SQLite: table `projects`, one row per owner and id, the project as JSON; a
//! conversation names its project in `conversations.project_id`.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{sql_err, EmbeddedStore};
use crate::domain::{Project, ProjectId, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, ProjectConversations, ProjectPatch, Projects};

fn encode(p: &Project) -> Result<String, StoreError> {
    serde_json::to_string(p).map_err(|e| StoreError::internal("serializing a project", e))
}

fn decode(body: &str) -> Result<Project, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::internal("stored project", e))
}

fn owned(conn: &rusqlite::Connection, owner: &str, id: &str) -> Result<Project, StoreError> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM projects WHERE owner = ?1 AND id = ?2",
            params![owner, id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err("reading a project"))?;
    decode(&body.ok_or(StoreError::NotFound)?)
}

#[async_trait]
impl Projects for EmbeddedStore {
    #[tracing::instrument(name = "embedded.create_project", skip_all, fields(project = %project.id))]
    async fn create_project(&self, project: &Project, max: usize) -> Result<(), StoreError> {
        let p = project.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let count: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM projects WHERE owner = ?1",
                    params![p.owner.as_str()],
                    |r| r.get(0),
                )
                .map_err(sql_err("counting projects"))?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                return Err(rules::too_many_projects(max));
            }
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO projects (owner, id, body) VALUES (?1, ?2, ?3)",
                    params![p.owner.as_str(), p.id.as_str(), encode(&p)?],
                )
                .map_err(sql_err("creating a project"))?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("project {} already exists", p.id)));
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.get_project", skip_all, fields(project = %id))]
    async fn get_project(&self, owner: &UserId, id: &ProjectId) -> Result<Project, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| owned(conn, &owner, &id)).await
    }

    #[tracing::instrument(name = "embedded.list_projects", skip_all)]
    async fn list_projects(&self, owner: &UserId) -> Result<Vec<Project>, StoreError> {
        let owner = owner.to_string();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM projects WHERE owner = ?1 ORDER BY id")
                .map_err(sql_err("listing projects"))?;
            let rows = stmt
                .query_map(params![owner], |r| r.get::<_, String>(0))
                .map_err(sql_err("listing projects"))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(decode(&row.map_err(sql_err("listing projects"))?)?);
            }
            Ok(out)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.update_project", skip_all, fields(project = %id))]
    async fn update_project(
        &self,
        owner: &UserId,
        id: &ProjectId,
        patch: &ProjectPatch,
        now: Timestamp,
    ) -> Result<Project, StoreError> {
        let (owner, id, patch) = (owner.to_string(), id.to_string(), patch.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let updated = rules::patched_project(&owned(&tx, &owner, &id)?, &patch, now);
            tx.execute(
                "UPDATE projects SET body = ?1 WHERE owner = ?2 AND id = ?3",
                params![encode(&updated)?, owner, id],
            )
            .map_err(sql_err("updating a project"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(updated)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_project", skip_all, fields(project = %id, conversations = ?conversations))]
    async fn delete_project(
        &self,
        owner: &UserId,
        id: &ProjectId,
        conversations: ProjectConversations,
    ) -> Result<u64, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            owned(&tx, &owner, &id)?;
            let affected = match conversations {
                ProjectConversations::Detach => {
                    tx.execute(
                        "UPDATE conversations SET project_id = NULL WHERE owner = ?1 AND project_id = ?2",
                        params![owner, id],
                    )
                    .map_err(sql_err("detaching conversations"))? as u64
                }
                ProjectConversations::Delete => {
                    let ids: Vec<String> = {
                        let mut stmt = tx
                            .prepare("SELECT id FROM conversations WHERE owner = ?1 AND project_id = ?2")
                            .map_err(sql_err("listing a project's conversations"))?;
                        let rows = stmt
                            .query_map(params![owner, id], |r| r.get(0))
                            .map_err(sql_err("listing a project's conversations"))?;
                        rows.collect::<Result<_, _>>()
                            .map_err(sql_err("listing a project's conversations"))?
                    };
                    for conversation in &ids {
                        super::conversations::delete_in(&tx, &owner, conversation)?;
                    }
                    ids.len() as u64
                }
            };
            tx.execute("DELETE FROM projects WHERE owner = ?1 AND id = ?2", params![owner, id])
                .map_err(sql_err("deleting a project"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(affected)
        })
        .await
    }
}

//! Projects in SQLite: table `projects`, one row per owner and id, the project as JSON; a
//! conversation names its project in `conversations.project_id`.

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};

use super::docs::Docs;
use super::{sql_err, EmbeddedStore};
use crate::domain::{Project, ProjectId, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, ProjectConversations, ProjectPatch, Projects};

const DOCS: Docs = Docs::new("projects", "project");

#[async_trait]
impl Projects for EmbeddedStore {
    #[tracing::instrument(name = "embedded.create_project", skip_all, fields(project = %project.id))]
    async fn create_project(&self, project: &Project, max: usize) -> Result<(), StoreError> {
        let p = project.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            if DOCS.count(&tx, p.owner.as_str())? >= max {
                return Err(rules::too_many_projects(max));
            }
            DOCS.insert(&tx, p.owner.as_str(), p.id.as_str(), &p)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.get_project", skip_all, fields(project = %id))]
    async fn get_project(&self, owner: &UserId, id: &ProjectId) -> Result<Project, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| DOCS.get(conn, &owner, &id)).await
    }

    #[tracing::instrument(name = "embedded.list_projects", skip_all)]
    async fn list_projects(&self, owner: &UserId) -> Result<Vec<Project>, StoreError> {
        let owner = owner.to_string();
        self.with(move |conn| DOCS.list(conn, &owner)).await
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
            let updated = rules::patched_project(&DOCS.get::<Project>(&tx, &owner, &id)?, &patch, now);
            DOCS.update(&tx, &owner, &id, &updated)?;
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
            DOCS.get::<Project>(&tx, &owner, &id)?;
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

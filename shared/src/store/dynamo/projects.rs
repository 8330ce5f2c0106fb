//! Projects on DynamoDB: one partition per user in the conversations table (`pk = PROJ#<owner>`,
//! `sk = <project id>`), so listing them is one Query; a conversation names its project in its
//! `META` item's `projectId`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::schema;
use super::{classify, s, DynamoStore};
use crate::domain::{ConversationId, Project, ProjectId, Shelf, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, Conversations, ProjectConversations, ProjectPatch, Projects};

/// A project item: its keys and the project's attributes.
#[derive(Serialize, Deserialize)]
struct ProjectItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    project: Project,
}

impl ProjectItem {
    fn of(project: &Project) -> Self {
        Self {
            pk: schema::projects_pk(project.owner.as_str()),
            sk: project.id.to_string(),
            project: project.clone(),
        }
    }
}

impl DynamoStore {
    /// Writes `project` if absent (`update_of`: over the stored version whose `updatedAt` it names).
    async fn put_project(&self, project: &Project, update_of: Option<&str>) -> Result<(), StoreError> {
        self.put_doc("project", project.id.as_str(), &ProjectItem::of(project), update_of)
            .await
    }

    /// The ids of `owner`'s conversations in project `id`, on every shelf (the project index).
    async fn project_conversations(&self, owner: &UserId, id: &ProjectId) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for shelf in Shelf::ALL {
            let pk = schema::project_pk(owner.as_str(), id.as_str(), shelf);
            ids.extend(self.index_ids(schema::GSI_PROJECT, "gsi4pk", &pk).await?);
        }
        Ok(ids)
    }
}

#[async_trait]
impl Projects for DynamoStore {
    /// A read of the cap revision, a Query (`Select: COUNT`), one transaction (the project and
    /// the revision): racing creates cannot pass the cap together.
    #[tracing::instrument(name = "dynamo.create_project", skip_all, fields(project = %project.id))]
    async fn create_project(&self, project: &Project, max: usize) -> Result<(), StoreError> {
        let owner = project.owner.as_str();
        self.create_capped_doc(
            "project",
            project.id.as_str(),
            owner,
            "projects",
            schema::projects_pk(owner),
            &ProjectItem::of(project),
            max,
            rules::too_many_projects,
        )
        .await
    }

    #[tracing::instrument(name = "dynamo.get_project", skip_all, fields(project = %id))]
    async fn get_project(&self, owner: &UserId, id: &ProjectId) -> Result<Project, StoreError> {
        let item: ProjectItem = self
            .get_doc("project", schema::projects_pk(owner.as_str()), id.as_str())
            .await?;
        if item.project.owner != *owner {
            return Err(StoreError::NotFound);
        }
        Ok(item.project)
    }

    #[tracing::instrument(name = "dynamo.list_projects", skip_all)]
    async fn list_projects(&self, owner: &UserId) -> Result<Vec<Project>, StoreError> {
        let items: Vec<ProjectItem> = self.list_docs("projects", schema::projects_pk(owner.as_str())).await?;
        Ok(items.into_iter().map(|item| item.project).collect())
    }

    /// A read and a PutItem conditioned on the `updatedAt` read (a concurrent update: `Conflict`).
    #[tracing::instrument(name = "dynamo.update_project", skip_all, fields(project = %id))]
    async fn update_project(
        &self,
        owner: &UserId,
        id: &ProjectId,
        patch: &ProjectPatch,
        now: Timestamp,
    ) -> Result<Project, StoreError> {
        let current = self.get_project(owner, id).await?;
        let updated = rules::patched_project(&current, patch, now);
        let at = crate::domain::ts::format(&current.updated_at);
        self.put_project(&updated, Some(&at)).await?;
        Ok(updated)
    }

    /// The project's conversations first (each detached by a conditional UpdateItem or deleted
    /// as `delete_conversation` does), the project item last: an interrupted delete can be
    /// repeated and finishes the job.
    #[tracing::instrument(name = "dynamo.delete_project", skip_all, fields(project = %id, conversations = ?conversations))]
    async fn delete_project(
        &self,
        owner: &UserId,
        id: &ProjectId,
        conversations: ProjectConversations,
    ) -> Result<u64, StoreError> {
        self.get_project(owner, id).await?;
        let mut affected = 0;
        for raw in self.project_conversations(owner, id).await? {
            let conversation =
                ConversationId::parse(&raw).map_err(|e| StoreError::internal("stored conversation id", e))?;
            let done = match conversations {
                ProjectConversations::Detach => self.detach(owner, &conversation, id).await?,
                ProjectConversations::Delete => match self.delete_conversation(owner, &conversation).await {
                    Ok(_) => true,
                    Err(StoreError::NotFound) => false,
                    Err(e) => return Err(e),
                },
            };
            affected += u64::from(done);
        }
        self.client
            .delete_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::projects_pk(owner.as_str())))
            .key(schema::SK, s(id.as_str()))
            .send()
            .await
            .map_err(|e| classify("DeleteItem project", e))?;
        Ok(affected)
    }
}

impl DynamoStore {
    /// Takes a conversation out of project `project` (if it is still in it), on any shelf.
    /// Whether it was.
    async fn detach(&self, owner: &UserId, id: &ConversationId, project: &ProjectId) -> Result<bool, StoreError> {
        let result = self
            .rewrite(owner, id, super::organize::Expect::Any, false, |c| {
                let mut next = c.clone();
                if next.project_id.as_ref() == Some(project) {
                    next.project_id = None;
                }
                next
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

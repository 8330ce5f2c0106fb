//! Projects on DynamoDB: one partition per user in the conversations table (`pk = PROJ#<owner>`,
//! `sk = <project id>`), so listing them is one Query; a conversation names its project in its
//! `META` item's `projectId`.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::schema;
use super::{classify, s, DynamoStore, Item};
use crate::domain::{ConversationId, Project, ProjectId, Timestamp, UserId};
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

    /// The ids of `owner`'s conversations in project `id` (the owner index, filtered, every page).
    async fn project_conversations(&self, owner: &UserId, id: &ProjectId) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.conversations)
                .index_name(schema::GSI_OWNER)
                .key_condition_expression("gsi1pk = :pk")
                .filter_expression("projectId = :project")
                .projection_expression("id")
                .expression_attribute_values(":pk", s(schema::owner_pk(owner.as_str())))
                .expression_attribute_values(":project", s(id.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query a project's conversations", e))?;
            for item in out.items.unwrap_or_default() {
                if let Some(AttributeValue::S(conversation)) = item.get("id") {
                    ids.push(conversation.clone());
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(ids)
    }
}

#[async_trait]
impl Projects for DynamoStore {
    /// One Query (`Select: COUNT`) for the cap, one conditional PutItem. Two concurrent creates
    /// at the cap may both pass the count: the cap is a bound on ordinary use, not a guarantee.
    #[tracing::instrument(name = "dynamo.create_project", skip_all, fields(project = %project.id))]
    async fn create_project(&self, project: &Project, max: usize) -> Result<(), StoreError> {
        let count = self
            .count_docs("projects", schema::projects_pk(project.owner.as_str()))
            .await?;
        if count >= max {
            return Err(rules::too_many_projects(max));
        }
        self.put_project(project, None).await
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
    /// Takes a conversation out of project `project` (if it is still in it). Whether it was.
    async fn detach(&self, owner: &UserId, id: &ConversationId, project: &ProjectId) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::conversation_pk(owner.as_str(), id.as_str())))
            .key(schema::SK, s(schema::META))
            .update_expression("REMOVE projectId")
            .condition_expression("ownerId = :owner AND projectId = :project")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":project", s(project.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(classify("UpdateItem detach", e)),
        }
    }
}

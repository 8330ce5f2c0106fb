//! Import jobs on DynamoDB: one item per job in the conversations table, in a partition per
//! owner prefix (`pk = IMPJ#<owner prefix>`, `sk = <job id>`): the worker, which knows a job by
//! its upload's key (`imports/<owner prefix>/<job id>`), reads it with one GetItem; an owner's
//! jobs, newest first, are one Query (ULID ids sort by creation). The item carries its owner:
//! every read checks it. Updates are conditional on the `updatedAt` read.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use serde::{Deserialize, Serialize};

use super::{classify, from_item, s, schema, sdk_key, DynamoStore};
use crate::domain::file::owner_prefix;
use crate::domain::{ts, ImportJob, ImportJobId, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::ImportJobs;

#[derive(Serialize, Deserialize)]
struct JobItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    job: ImportJob,
}

impl JobItem {
    fn of(job: &ImportJob) -> Self {
        Self {
            pk: schema::import_jobs_pk(&owner_prefix(&job.owner)),
            sk: job.id.to_string(),
            job: job.clone(),
        }
    }
}

#[async_trait]
impl ImportJobs for DynamoStore {
    #[tracing::instrument(name = "dynamo.put_import_job", skip_all, fields(job = %job.id))]
    async fn put_import_job(&self, job: &ImportJob) -> Result<(), StoreError> {
        self.put_doc("import job", job.id.as_str(), &JobItem::of(job), None)
            .await
    }

    #[tracing::instrument(name = "dynamo.get_import_job", skip_all, fields(job = %id))]
    async fn get_import_job(&self, owner: &UserId, id: &ImportJobId) -> Result<ImportJob, StoreError> {
        let job = self.find_import_job(&owner_prefix(owner), id).await?;
        if job.owner != *owner {
            return Err(StoreError::NotFound);
        }
        Ok(job)
    }

    #[tracing::instrument(name = "dynamo.find_import_job", skip_all, fields(job = %id))]
    async fn find_import_job(&self, prefix: &str, id: &ImportJobId) -> Result<ImportJob, StoreError> {
        let item: JobItem = self
            .get_doc("import job", schema::import_jobs_pk(prefix), id.as_str())
            .await?;
        if owner_prefix(&item.job.owner) != prefix {
            return Err(StoreError::NotFound);
        }
        Ok(item.job)
    }

    #[tracing::instrument(name = "dynamo.update_import_job", skip_all, fields(job = %job.id))]
    async fn update_import_job(&self, job: &ImportJob, read_at: Timestamp) -> Result<(), StoreError> {
        let at = ts::format(&read_at);
        match self
            .put_doc("import job", job.id.as_str(), &JobItem::of(job), Some(&at))
            .await
        {
            Err(StoreError::Conflict(m)) => {
                // Gone, or changed: which one decides the answer.
                self.get_import_job(&job.owner, &job.id).await?;
                Err(StoreError::Conflict(m))
            }
            other => other,
        }
    }

    #[tracing::instrument(name = "dynamo.list_import_jobs", skip_all)]
    async fn list_import_jobs(
        &self,
        owner: &UserId,
        before: Option<&ImportJobId>,
        limit: usize,
    ) -> Result<Vec<ImportJob>, StoreError> {
        let pk = schema::import_jobs_pk(&owner_prefix(owner));
        let start = before.map(|b| sdk_key(pk.clone(), b.to_string()));
        let out = self
            .client
            .query()
            .table_name(&self.tables.conversations)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query import jobs", e))?;
        let mut jobs = Vec::new();
        for item in out.items.unwrap_or_default() {
            let item: JobItem = from_item(item)?;
            // Another owner of the same prefix (a 96-bit hash collision) is never shown.
            if item.job.owner == *owner {
                jobs.push(item.job);
            }
        }
        Ok(jobs)
    }

    #[tracing::instrument(name = "dynamo.delete_import_job", skip_all, fields(job = %id))]
    async fn delete_import_job(&self, owner: &UserId, id: &ImportJobId) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(
                schema::import_jobs_pk(&owner_prefix(owner)),
                id.to_string(),
            )))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // Missing, or another owner's: nothing to delete for this caller.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(classify("DeleteItem import job", e)),
        }
    }
}

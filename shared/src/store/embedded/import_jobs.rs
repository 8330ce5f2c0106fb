//! Import jobs in SQLite: table `import_jobs`, one row per owner and id, the job as JSON
//! (created by the schema at open, so an older database file gets it too). The worker finds a
//! job by its id (index `import_jobs_by_id`) and the owner prefix of its upload's key.

use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};

use super::docs::Docs;
use super::{sql_err, EmbeddedStore};
use crate::domain::file::owner_prefix;
use crate::domain::{ts, ImportJob, ImportJobId, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::ImportJobs;

const DOCS: Docs = Docs::new("import_jobs", "import job");

#[async_trait]
impl ImportJobs for EmbeddedStore {
    #[tracing::instrument(name = "embedded.put_import_job", skip_all, fields(job = %job.id))]
    async fn put_import_job(&self, job: &ImportJob) -> Result<(), StoreError> {
        let job = job.clone();
        self.with(move |conn| DOCS.insert(conn, job.owner.as_str(), job.id.as_str(), &job))
            .await
    }

    #[tracing::instrument(name = "embedded.get_import_job", skip_all, fields(job = %id))]
    async fn get_import_job(&self, owner: &UserId, id: &ImportJobId) -> Result<ImportJob, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| DOCS.get(conn, &owner, &id)).await
    }

    #[tracing::instrument(name = "embedded.find_import_job", skip_all, fields(job = %id))]
    async fn find_import_job(&self, prefix: &str, id: &ImportJobId) -> Result<ImportJob, StoreError> {
        let (prefix, id) = (prefix.to_owned(), id.to_string());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT owner FROM import_jobs WHERE id = ?1")
                .map_err(sql_err("reading an import job"))?;
            let owners = stmt
                .query_map(params![id], |r| r.get::<_, String>(0))
                .map_err(sql_err("reading an import job"))?
                .collect::<Result<Vec<String>, _>>()
                .map_err(sql_err("reading an import job"))?;
            for owner in owners {
                let job: ImportJob = DOCS.get(conn, &owner, &id)?;
                if owner_prefix(&job.owner) == prefix {
                    return Ok(job);
                }
            }
            Err(StoreError::NotFound)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.update_import_job", skip_all, fields(job = %job.id))]
    async fn update_import_job(&self, job: &ImportJob, read_at: Timestamp) -> Result<(), StoreError> {
        let job = job.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let stored: ImportJob = DOCS.get(&tx, job.owner.as_str(), job.id.as_str())?;
            if ts::format(&stored.updated_at) != ts::format(&read_at) {
                return Err(StoreError::Conflict(format!(
                    "import job {} changed meanwhile; retry",
                    job.id
                )));
            }
            DOCS.update(&tx, job.owner.as_str(), job.id.as_str(), &job)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.list_import_jobs", skip_all)]
    async fn list_import_jobs(
        &self,
        owner: &UserId,
        before: Option<&ImportJobId>,
        limit: usize,
    ) -> Result<Vec<ImportJob>, StoreError> {
        let owner = owner.to_string();
        let before = before.map(ToString::to_string);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM import_jobs WHERE owner = ?1 AND (?2 IS NULL OR id < ?2) \
                     ORDER BY id DESC LIMIT ?3",
                )
                .map_err(sql_err("listing import jobs"))?;
            let rows = stmt
                .query_map(params![owner, before, limit], |r| r.get::<_, String>(0))
                .map_err(sql_err("listing import jobs"))?;
            rows.map(|row| {
                let body = row.map_err(sql_err("listing import jobs"))?;
                serde_json::from_str(&body).map_err(|e| StoreError::internal("stored import job", e))
            })
            .collect()
        })
        .await
    }

    #[tracing::instrument(name = "embedded.delete_import_job", skip_all, fields(job = %id))]
    async fn delete_import_job(&self, owner: &UserId, id: &ImportJobId) -> Result<(), StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM import_jobs WHERE owner = ?1 AND id = ?2",
                params![owner, id],
            )
            .map_err(sql_err("deleting an import job"))?;
            Ok(())
        })
        .await
    }
}

//! The port of import jobs (re-exported by [`super::ports`]): an export file uploaded to the
//! bucket and imported by a worker (`docs/export.md`, "Importing a large file").
//!
//! Every call but [`ImportJobs::find_import_job`] is scoped to the owner (another owner's job is
//! [`StoreError::NotFound`]). The worker knows a job only by its upload's object key, which
//! names the owner by a hash ([`crate::domain::file::owner_prefix`]) and the job by its id:
//! `find_import_job` answers the job only when its owner's prefix is the key's.

use async_trait::async_trait;

use crate::domain::{ImportJob, ImportJobId, Timestamp, UserId};
use crate::error::StoreError;

/// Import jobs.
#[async_trait]
pub trait ImportJobs: Send + Sync {
    /// Stores a new job; [`StoreError::Conflict`] when its id is taken.
    async fn put_import_job(&self, job: &ImportJob) -> Result<(), StoreError>;

    /// The owner's job.
    async fn get_import_job(&self, owner: &UserId, id: &ImportJobId) -> Result<ImportJob, StoreError>;

    /// The job `id` of the owner whose object-key prefix is `owner_prefix` (the worker's lookup).
    async fn find_import_job(&self, owner_prefix: &str, id: &ImportJobId) -> Result<ImportJob, StoreError>;

    /// Replaces the job with `job` if it is still as last read: its stored `updatedAt` is
    /// `read_at`. [`StoreError::Conflict`] when it changed meanwhile, [`StoreError::NotFound`]
    /// when it is gone.
    async fn update_import_job(&self, job: &ImportJob, read_at: Timestamp) -> Result<(), StoreError>;

    /// The owner's jobs, newest first, those older than `before` when given, at most `limit`.
    async fn list_import_jobs(
        &self,
        owner: &UserId,
        before: Option<&ImportJobId>,
        limit: usize,
    ) -> Result<Vec<ImportJob>, StoreError>;

    /// Deletes the owner's job (a missing one is no error).
    async fn delete_import_job(&self, owner: &UserId, id: &ImportJobId) -> Result<(), StoreError>;
}

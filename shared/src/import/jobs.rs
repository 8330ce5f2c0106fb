//! Import jobs (`docs/export.md`, "Importing a large file"): an export file larger than a
//! request body is uploaded with a presigned form to `imports/<owner prefix>/<job id>` in the
//! files bucket (or the directory store), and its arrival starts the import.
//!
//! - [`create`] issues the job and its form (the size range pinned by the form, at most
//!   `ATHENA_MAX_IMPORT_UPLOAD_BYTES`).
//! - [`object_created`] is the one entry of the worker, whatever noticed the upload: on AWS the
//!   bucket's `ObjectCreated` notification invokes the worker function
//!   ([`crate::lambda::run_import_worker`]), in `athena-local` the directory store's upload
//!   route calls it in-process after storing the file. It finds the job from the key (a key
//!   naming no job of that owner is logged and ignored), checks the object's size, claims the job
//!   (`running`, conditional on the job as read: one of two concurrent deliveries wins), streams
//!   the object through the same per-item import as `POST /api/import` (idempotent: a
//!   re-delivered event or a retried invocation skips what is stored), records the counts and
//!   the failed items, and deletes the object.

use futures::StreamExt;

use super::{read_items_from, run, Context, Source};
use crate::blobs::{BlobError, Blobs, BlockingReader, UploadForm};
use crate::domain::import_job::{parse_upload_key, JobError, Totals};
use crate::domain::{file, ImportJob, ImportJobId, ImportJobStatus, Timestamp, UserId};
use crate::error::{StoreError, ValidationError};
use crate::state::AppState;

/// The media type the upload form pins.
pub const MEDIA_TYPE: &str = "application/json";

/// Times a worker may start a job: a job found `running` this often already is failed
/// (`WORKER_FAILED`) instead of being started again.
pub const MAX_ATTEMPTS: u32 = 3;

/// Items between two progress writes of a running job.
const PROGRESS_EVERY: usize = 200;

/// What handling an import job can fail with; each has its HTTP status and code (`api::error`).
#[derive(Debug, thiserror::Error)]
pub enum ImportJobError {
    /// No bucket (or directory) to upload to.
    #[error("imports of large files are not enabled in this deployment (no files bucket)")]
    Disabled,
    /// No such job for this caller.
    #[error("import job not found")]
    NotFound,
    /// Not in the state the operation needs.
    #[error("{0}")]
    State(String),
    /// Invalid input.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

impl From<StoreError> for ImportJobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ImportJobError::NotFound,
            other => ImportJobError::Store(other),
        }
    }
}

fn blobs(state: &AppState) -> Result<&dyn Blobs, ImportJobError> {
    state.blobs.as_deref().ok_or(ImportJobError::Disabled)
}

/// What a client asks to import.
#[derive(Clone, Debug, Default)]
pub struct NewJob {
    /// `auto` (absent), `athena`, `chatgpt` or `claude`.
    pub source: Option<String>,
    /// The file's size, bytes.
    pub bytes: u64,
    /// Its name.
    pub filename: Option<String>,
}

/// Now, to the millisecond (as stored: a job's `updatedAt` is its concurrency token).
fn now_ms(state: &AppState) -> Timestamp {
    let now = state.now();
    chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// Issues a job awaiting its upload and the form that uploads the file.
pub async fn create(
    state: &AppState,
    owner: &UserId,
    new: NewJob,
    origin: &str,
) -> Result<(ImportJob, UploadForm), ImportJobError> {
    let blobs = blobs(state)?;
    let source = match Source::parse(new.source.as_deref())? {
        Source::Auto => "auto",
        Source::Only(s) => s.as_str(),
    };
    let max = state.config.files.max_import_upload_bytes;
    if new.bytes == 0 || new.bytes > max {
        return Err(ValidationError::field("bytes", format!("must be 1 to {max} bytes (the file's size)")).into());
    }
    let filename = new.filename.as_deref().map(file::parse_filename).transpose()?;
    let now = now_ms(state);
    let ttl = chrono::Duration::from_std(state.config.files.upload_ttl).unwrap_or(chrono::Duration::minutes(5));
    let job = ImportJob {
        id: state.ids.import_job_id(),
        owner: owner.clone(),
        source: source.to_owned(),
        bytes: new.bytes,
        filename,
        status: ImportJobStatus::AwaitingUpload,
        created_at: now,
        updated_at: now,
        upload_expires_at: now + ttl,
        attempts: 0,
        totals: Totals::default(),
        failures: Vec::new(),
        failures_omitted: 0,
        error: None,
    };
    let form = blobs
        .upload_form(&job.upload_key(), MEDIA_TYPE, job.bytes, job.upload_expires_at, origin)
        .await?;
    state.store.put_import_job(&job).await?;
    Ok((job, form))
}

/// One of the caller's jobs.
pub async fn get(state: &AppState, owner: &UserId, id: &ImportJobId) -> Result<ImportJob, ImportJobError> {
    blobs(state)?;
    Ok(state.store.get_import_job(owner, id).await?.as_seen_at(state.now()))
}

/// The caller's jobs, newest first, older than `before`, at most `limit`.
pub async fn list(
    state: &AppState,
    owner: &UserId,
    before: Option<&ImportJobId>,
    limit: usize,
) -> Result<Vec<ImportJob>, ImportJobError> {
    blobs(state)?;
    let now = state.now();
    let jobs = state.store.list_import_jobs(owner, before, limit).await?;
    Ok(jobs.into_iter().map(|j| j.as_seen_at(now)).collect())
}

/// Deletes a finished or never-uploaded job and its object; a running one is refused (one
/// whose worker stopped reads as failed: [`ImportJob::as_seen_at`]).
pub async fn delete(state: &AppState, owner: &UserId, id: &ImportJobId) -> Result<(), ImportJobError> {
    let blobs = blobs(state)?;
    let job = state.store.get_import_job(owner, id).await?.as_seen_at(state.now());
    if job.status == ImportJobStatus::Running {
        return Err(ImportJobError::State(format!(
            "import job {id} is running; delete it once it has ended"
        )));
    }
    blobs.delete(&[job.upload_key()]).await?;
    state.store.delete_import_job(owner, id).await?;
    Ok(())
}

/// Deletes the uploads of every import job of `owner` (erasing their account; the jobs go with
/// the rest of their data). How many jobs.
pub async fn delete_all_objects(state: &AppState, owner: &UserId) -> Result<usize, ImportJobError> {
    let Some(blobs) = state.blobs.as_deref() else {
        return Ok(0);
    };
    let mut count = 0;
    let mut before: Option<ImportJobId> = None;
    loop {
        let jobs = state
            .store
            .list_import_jobs(owner, before.as_ref(), crate::store::MAX_PAGE as usize)
            .await?;
        let Some(last) = jobs.last() else {
            return Ok(count);
        };
        before = Some(last.id.clone());
        let keys: Vec<String> = jobs.iter().map(ImportJob::upload_key).collect();
        blobs.delete(&keys).await?;
        count += jobs.len();
    }
}

/// What the worker did with one notice of an uploaded object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do (the reason is logged).
    Ignored(&'static str),
    /// The job ended so.
    Finished(ImportJobStatus),
}

/// Handles the notice that the object `key` was written: imports it if it is the upload of a
/// job awaiting it (or running: a retried invocation), see the module's documentation. Errors
/// are the store's or the bucket's (the invocation fails and is retried); everything about the
/// file itself ends in the job.
pub async fn object_created(state: &AppState, key: &str) -> Result<Outcome, ImportJobError> {
    let blobs = blobs(state)?;
    let Some((prefix, id)) = parse_upload_key(key) else {
        tracing::warn!(key, "an object that is no import upload: ignored");
        return Ok(Outcome::Ignored("not an import upload"));
    };
    let job = match state.store.find_import_job(prefix, &id).await {
        Ok(job) => job,
        Err(StoreError::NotFound) => {
            tracing::warn!(key, "an import upload naming no job of its owner: ignored");
            return Ok(Outcome::Ignored("no such job"));
        }
        Err(e) => return Err(e.into()),
    };
    if job.status.finished() {
        // A re-delivered notice, or the form used again after the job ended: the job stays as it is.
        blobs.delete(&[key.to_owned()]).await?;
        tracing::info!(job = %job.id, "an import upload of a finished job: ignored");
        return Ok(Outcome::Ignored("finished"));
    }
    if job.status == ImportJobStatus::Running && job.attempts >= MAX_ATTEMPTS {
        let message = format!("the import stopped {MAX_ATTEMPTS} times before its end; upload the file again");
        return finish_failed(state, blobs, job, "WORKER_FAILED", message).await;
    }
    let Some(info) = blobs.head(key).await? else {
        if job.status == ImportJobStatus::AwaitingUpload {
            return Ok(Outcome::Ignored("no object yet"));
        }
        let message = "the uploaded file is gone; upload it again with a new job".to_owned();
        return finish_failed(state, blobs, job, "UPLOAD_MISSING", message).await;
    };
    let max = state.config.files.max_import_upload_bytes.min(job.bytes);
    if info.size > max || info.size == 0 {
        let message = format!(
            "the uploaded file is {} bytes; this job takes 1 to {max} bytes (its declared size)",
            info.size
        );
        return finish_failed(state, blobs, job, "UPLOAD_TOO_LARGE", message).await;
    }
    let read_at = job.updated_at;
    let mut job = job;
    // A run that stopped (found `running`) is resumed: its counts as of its last progress write
    // stand, and the items they counted are not counted again (they come out `skipped`).
    let counted = if job.status == ImportJobStatus::Running {
        job.totals.imported + job.totals.skipped + job.totals.failed
    } else {
        job.totals = Totals::default();
        job.failures.clear();
        job.failures_omitted = 0;
        0
    };
    job.status = ImportJobStatus::Running;
    job.attempts += 1;
    job.updated_at = now_ms(state);
    match state.store.update_import_job(&job, read_at).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_) | StoreError::NotFound) => {
            tracing::info!(job = %job.id, "an import job changed meanwhile (another delivery): ignored");
            return Ok(Outcome::Ignored("claimed by another delivery"));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(job = %job.id, bytes = info.size, attempt = job.attempts, counted, "import job started");
    run_job(state, blobs, job, key, info.size, counted).await
}

/// Streams the object through the import and stores the outcome; the first `counted` items'
/// results are in the job's counts already (a resumed run).
async fn run_job(
    state: &AppState,
    blobs: &dyn Blobs,
    mut job: ImportJob,
    key: &str,
    size: u64,
    counted: usize,
) -> Result<Outcome, ImportJobError> {
    let Some(chunks) = blobs.stream(key).await? else {
        let message = "the uploaded file is gone; upload it again with a new job".to_owned();
        return finish_failed(state, blobs, job, "UPLOAD_MISSING", message).await;
    };
    let source = Source::parse(Some(&job.source)).unwrap_or(Source::Auto);
    let owner = job.owner.clone();
    let ctx = Context {
        owner: &owner,
        catalog: &state.config.catalog,
        now: state.now(),
    };
    let reader = BlockingReader::new(chunks, tokio::runtime::Handle::current(), size);
    let (results, reading) =
        run::import_items(state, &ctx, source, Box::new(move |sink| read_items_from(reader, sink)));
    let mut results = std::pin::pin!(results);
    let mut since_progress = 0usize;
    let mut seen = 0usize;
    while let Some(result) = results.next().await {
        seen += 1;
        if seen <= counted {
            continue;
        }
        job.record(result);
        since_progress += 1;
        if since_progress >= PROGRESS_EVERY {
            since_progress = 0;
            let read_at = job.updated_at;
            job.updated_at = now_ms(state).max(read_at + chrono::Duration::milliseconds(1));
            if let Err(e) = state.store.update_import_job(&job, read_at).await {
                // Taken over or deleted: the other run finishes it.
                tracing::warn!(job = %job.id, error = %e, "an import job's progress could not be written; stopping");
                return Ok(Outcome::Ignored("taken over"));
            }
        }
    }
    let read = reading
        .await
        .map_err(|e| ImportJobError::Store(StoreError::internal("the import's reader", e)))?;
    if let Err((count, e)) = read {
        if count == 0 {
            let message = format!("the file is not an export file: {e}");
            return finish_failed(state, blobs, job, "NOT_AN_EXPORT", message).await;
        }
        job.record(run::broken_at(count, &e));
    }
    job.status = ImportJobStatus::Done;
    let totals = job.totals;
    finish(state, blobs, job).await?;
    tracing::info!(
        imported = totals.imported,
        skipped = totals.skipped,
        failed = totals.failed,
        "import job done"
    );
    Ok(Outcome::Finished(ImportJobStatus::Done))
}

/// Ends the job as failed with `code`.
async fn finish_failed(
    state: &AppState,
    blobs: &dyn Blobs,
    mut job: ImportJob,
    code: &str,
    message: String,
) -> Result<Outcome, ImportJobError> {
    tracing::info!(job = %job.id, code, "import job failed");
    job.status = ImportJobStatus::Failed;
    job.error = Some(JobError {
        code: code.to_owned(),
        message,
    });
    finish(state, blobs, job).await?;
    Ok(Outcome::Finished(ImportJobStatus::Failed))
}

/// Stores the ended job, then deletes its object (a failure to delete is logged: the bucket's
/// lifecycle rule on `imports/` removes it within a day). A job changed meanwhile (another run
/// claimed it, or its owner deleted it) keeps the other's outcome, and the object stays for it.
async fn finish(state: &AppState, blobs: &dyn Blobs, mut job: ImportJob) -> Result<(), ImportJobError> {
    let read_at = job.updated_at;
    job.updated_at = now_ms(state).max(read_at + chrono::Duration::milliseconds(1));
    match state.store.update_import_job(&job, read_at).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_) | StoreError::NotFound) => {
            tracing::info!(job = %job.id, "an import job changed meanwhile: its outcome is the other run's");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }
    if let Err(e) = blobs.delete(&[job.upload_key()]).await {
        tracing::warn!(job = %job.id, error = %e, "deleting an imported upload failed");
    }
    Ok(())
}

//! Import jobs (`POST /api/imports`, `docs/export.md`): an export file too large for the request
//! body is uploaded to the bucket (or the directory store) and imported by a worker, which
//! records the outcome here. The per-item result types of an import live here too: the
//! synchronous route answers them, a job stores its failed ones.

use serde::{Deserialize, Serialize};

use super::file::owner_prefix;
use super::{ImportJobId, Timestamp, UserId};

/// Most per-item results a job keeps (its failed items, in file order); the counts cover all.
pub const MAX_STORED_RESULTS: usize = 100;

/// A running job whose worker has written nothing for this long has stopped: its worker runs
/// at most 15 minutes and writes its progress every 200 items.
pub const STALLED_AFTER_SECS: i64 = 20 * 60;

/// A job whose file has not arrived this long after its upload form expired never gets it.
pub const UPLOAD_GIVEN_UP_AFTER_SECS: i64 = 60 * 60;

/// The object-key prefix of uploaded export files.
pub const UPLOAD_PREFIX: &str = "imports/";

/// Per-item outcome in an import report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Stored.
    Imported,
    /// Already there (a re-import): nothing written.
    Skipped,
    /// Not imported: see its code and message.
    Failed,
}

/// One item's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    /// Position in the file's array, from 0.
    pub index: usize,
    /// The conversation's title, when the item could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What happened.
    pub status: Status,
    /// The conversation's id (imported or already there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How many items ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Stored.
    pub imported: usize,
    /// Already there.
    pub skipped: usize,
    /// Not imported.
    pub failed: usize,
}

impl Totals {
    /// Counts one result.
    pub fn count(&mut self, status: Status) {
        match status {
            Status::Imported => self.imported += 1,
            Status::Skipped => self.skipped += 1,
            Status::Failed => self.failed += 1,
        }
    }
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportJobStatus {
    /// Its upload form was issued; the file has not arrived (or not been noticed) yet.
    AwaitingUpload,
    /// The worker is importing it.
    Running,
    /// Every item was read: see the counts and the failed items.
    Done,
    /// The file could not be imported at all: see `error`.
    Failed,
}

impl ImportJobStatus {
    /// Whether the job has ended (done or failed).
    pub fn finished(self) -> bool {
        matches!(self, ImportJobStatus::Done | ImportJobStatus::Failed)
    }
}

/// Why a job failed as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// Machine-readable: `NOT_AN_EXPORT`, `UPLOAD_TOO_LARGE`, `UPLOAD_MISSING`, `WORKER_FAILED`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// An import job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportJob {
    /// Its id.
    pub id: ImportJobId,
    /// Who owns it (and every conversation it imports).
    pub owner: UserId,
    /// `auto`, `athena`, `chatgpt` or `claude`.
    pub source: String,
    /// The declared size of the file, bytes (the most its upload form accepts).
    pub bytes: u64,
    /// The file's name, as the client gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Where it is.
    pub status: ImportJobStatus,
    /// When it was created.
    #[serde(with = "super::ts")]
    pub created_at: Timestamp,
    /// When it last changed (the optimistic-concurrency token of its updates).
    #[serde(with = "super::ts")]
    pub updated_at: Timestamp,
    /// When its upload form expires.
    #[serde(with = "super::ts")]
    pub upload_expires_at: Timestamp,
    /// How many times a worker started it (a retried invocation resumes it).
    #[serde(default)]
    pub attempts: u32,
    /// The counts of every item read so far.
    #[serde(default)]
    pub totals: Totals,
    /// The failed items, in file order, at most [`MAX_STORED_RESULTS`].
    #[serde(default)]
    pub failures: Vec<ItemResult>,
    /// Failed items beyond those kept.
    #[serde(default)]
    pub failures_omitted: usize,
    /// Why the job failed as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
}

impl ImportJob {
    /// The object key its upload form writes to: `imports/<owner prefix>/<job id>` (a hash of
    /// the owner, as attached files' keys: keys and S3 logs carry no user id).
    pub fn upload_key(&self) -> String {
        format!("{UPLOAD_PREFIX}{}/{}", owner_prefix(&self.owner), self.id)
    }

    /// The job as it stands at `now`: a job `running` whose worker has written nothing for
    /// [`STALLED_AFTER_SECS`] reads as `failed` (`WORKER_FAILED`: the worker ran out of time
    /// or its retries; what it imported stays), one still `awaiting_upload`
    /// [`UPLOAD_GIVEN_UP_AFTER_SECS`] after its form expired as `failed` (`UPLOAD_MISSING`).
    /// Decided when read, as a worker that stopped writes nothing; a worker that starts again
    /// (a late retry) shows it running again.
    pub fn as_seen_at(mut self, now: Timestamp) -> Self {
        let error = match self.status {
            ImportJobStatus::Running if (now - self.updated_at).num_seconds() > STALLED_AFTER_SECS => JobError {
                code: "WORKER_FAILED".to_owned(),
                message: "the import stopped before the end of the file (its worker failed or ran out of time); \
                          what it imported stays: upload the file again to import the rest"
                    .to_owned(),
            },
            ImportJobStatus::AwaitingUpload
                if (now - self.upload_expires_at).num_seconds() > UPLOAD_GIVEN_UP_AFTER_SECS =>
            {
                JobError {
                    code: "UPLOAD_MISSING".to_owned(),
                    message: "no file arrived before the upload form expired; create a new import".to_owned(),
                }
            }
            _ => return self,
        };
        self.status = ImportJobStatus::Failed;
        self.error = Some(error);
        self
    }

    /// Records one item's result: counted, and kept when it failed and there is room.
    pub fn record(&mut self, result: ItemResult) {
        self.totals.count(result.status);
        if result.status == Status::Failed {
            if self.failures.len() < MAX_STORED_RESULTS {
                self.failures.push(result);
            } else {
                self.failures_omitted += 1;
            }
        }
    }
}

/// The owner prefix and job id an uploaded object's key names (`imports/<prefix>/<id>`), or
/// `None` for any other key.
pub fn parse_upload_key(key: &str) -> Option<(&str, ImportJobId)> {
    let rest = key.strip_prefix(UPLOAD_PREFIX)?;
    let (prefix, id) = rest.split_once('/')?;
    if prefix.len() != 24 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((prefix, ImportJobId::parse(id).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_key_names_its_owner_prefix_and_job() {
        let owner = UserId::parse("alice").unwrap_or_else(|_| unreachable!());
        let id = ImportJobId::parse("01HR0000000000000000000000").unwrap_or_else(|_| unreachable!());
        let now = chrono::Utc::now();
        let job = ImportJob {
            id: id.clone(),
            owner: owner.clone(),
            source: "auto".to_owned(),
            bytes: 10,
            filename: None,
            status: ImportJobStatus::AwaitingUpload,
            created_at: now,
            updated_at: now,
            upload_expires_at: now,
            attempts: 0,
            totals: Totals::default(),
            failures: Vec::new(),
            failures_omitted: 0,
            error: None,
        };
        let key = job.upload_key();
        assert_eq!(
            parse_upload_key(&key),
            Some((owner_prefix(&owner).as_str(), id.clone()))
        );
        // Never uploaded: failed an hour after its form expired, not before.
        let minute = chrono::Duration::minutes(1);
        assert_eq!(
            job.clone().as_seen_at(now + minute * 60).status,
            ImportJobStatus::AwaitingUpload
        );
        let given_up = job.clone().as_seen_at(now + minute * 61);
        assert_eq!(
            (given_up.status, given_up.error.map(|e| e.code)),
            (ImportJobStatus::Failed, Some("UPLOAD_MISSING".to_owned()))
        );
        // Running: failed once its worker has written nothing for 20 minutes.
        let running = ImportJob {
            status: ImportJobStatus::Running,
            ..job.clone()
        };
        assert_eq!(
            running.clone().as_seen_at(now + minute * 20).status,
            ImportJobStatus::Running
        );
        let stalled = running.as_seen_at(now + minute * 21);
        assert_eq!(
            (stalled.status, stalled.error.map(|e| e.code)),
            (ImportJobStatus::Failed, Some("WORKER_FAILED".to_owned()))
        );
        // Finished jobs stay as they are.
        let done = ImportJob {
            status: ImportJobStatus::Done,
            ..job.clone()
        };
        assert_eq!(done.clone().as_seen_at(now + minute * 600), done);
        assert_eq!(parse_upload_key("uploads/abc/01HR"), None);
        assert_eq!(parse_upload_key("imports/nothex/01HR"), None);
        assert_eq!(parse_upload_key(&format!("{key}/extra")), None);
    }
}

//! File attachments: where the bytes live and the per-user limits.

use super::env::Env;
use super::ConfigError;

/// Default per-user storage quota, bytes (1 GiB).
pub const DEFAULT_FILE_QUOTA_BYTES: u64 = 1 << 30;
/// Default most files on one message.
pub const DEFAULT_MAX_FILES_PER_MESSAGE: u64 = 5;
/// Default largest export file `POST /api/imports` takes, bytes (256 MiB).
pub const DEFAULT_MAX_IMPORT_UPLOAD_BYTES: u64 = 256 << 20;
/// Default lifetime of an upload form, seconds.
pub const DEFAULT_UPLOAD_TTL_SECS: u64 = 300;

/// Where attached files' bytes are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStorage {
    /// An S3 bucket (`ATHENA_FILES_BUCKET`); `endpoint` is the S3 endpoint override of the
    /// environment (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`: a local S3-API server), which
    /// also switches to path-style addressing.
    Bucket {
        /// The bucket.
        name: String,
        /// The endpoint override.
        endpoint: Option<String>,
    },
    /// A directory on this machine (`athena-local` without a bucket): `ATHENA_FILES_DIR`, else
    /// `files/` beside the embedded store's database.
    Directory(String),
    /// No attachments (a Lambda function without a bucket).
    Off,
}

/// The attachment settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesConfig {
    /// Where the bytes live.
    pub storage: FileStorage,
    /// Bytes a user may keep (pending uploads counted at their declared size).
    pub quota_bytes: u64,
    /// Most files on one message.
    pub max_per_message: usize,
    /// How long an upload form is valid.
    pub upload_ttl: std::time::Duration,
    /// Largest export file an import job takes (`POST /api/imports`), bytes.
    pub max_import_upload_bytes: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            storage: FileStorage::Off,
            quota_bytes: DEFAULT_FILE_QUOTA_BYTES,
            max_per_message: DEFAULT_MAX_FILES_PER_MESSAGE as usize,
            upload_ttl: std::time::Duration::from_secs(DEFAULT_UPLOAD_TTL_SECS),
            max_import_upload_bytes: DEFAULT_MAX_IMPORT_UPLOAD_BYTES,
        }
    }
}

impl FilesConfig {
    /// Reads the settings. Outside Lambda, with no bucket, files go to a directory.
    pub fn read(env: &Env<'_>, in_lambda: bool, db_path: Option<&str>) -> Result<Self, ConfigError> {
        let storage = match env.text("ATHENA_FILES_BUCKET") {
            Some(name) => FileStorage::Bucket {
                name,
                endpoint: env
                    .referenced("AWS_ENDPOINT_URL_S3")
                    .or_else(|| env.referenced("AWS_ENDPOINT_URL"))
                    .map(|e| e.trim_end_matches('/').to_owned()),
            },
            None if in_lambda => FileStorage::Off,
            None => FileStorage::Directory(env.text("ATHENA_FILES_DIR").unwrap_or_else(|| {
                let base = db_path
                    .and_then(|p| std::path::Path::new(p).parent())
                    .map(|p| p.to_string_lossy().into_owned())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| ".athena".to_owned());
                format!("{base}/files")
            })),
        };
        let max = env.positive("ATHENA_MAX_FILES_PER_MESSAGE", DEFAULT_MAX_FILES_PER_MESSAGE)?;
        Ok(Self {
            storage,
            quota_bytes: env.positive("ATHENA_FILE_QUOTA_BYTES", DEFAULT_FILE_QUOTA_BYTES)?,
            max_per_message: usize::try_from(max.min(100)).unwrap_or(100),
            upload_ttl: std::time::Duration::from_secs(
                env.positive("ATHENA_UPLOAD_TTL_SECS", DEFAULT_UPLOAD_TTL_SECS)?
                    .min(3_600),
            ),
            max_import_upload_bytes: env.positive("ATHENA_MAX_IMPORT_UPLOAD_BYTES", DEFAULT_MAX_IMPORT_UPLOAD_BYTES)?,
        })
    }
}

//! Attached files in a directory (`athena-local` without a bucket), with the rules of the
//! bucket: uploads by a signed, expiring, single-use form posted to `athena-local` itself
//! (`POST /local/uploads`, multipart, the same form fields a browser sends to S3), the size range
//! and content type pinned by the form, downloads by signed, expiring URLs
//! (`GET /local/files/<key>`). The signing key is random per process: forms and download URLs
//! issued before a restart stop working, like expired ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobError, Blobs, ObjectInfo, UploadForm};
use crate::config::ConfigError;
use crate::domain::Timestamp;

/// The path of the upload route `athena-local` serves.
pub const UPLOAD_PATH: &str = "/local/uploads";
/// The path prefix of the download route `athena-local` serves.
pub const DOWNLOAD_PREFIX: &str = "/local/files/";

/// A directory of objects.
pub struct DiskBlobs {
    dir: PathBuf,
    key: [u8; 32],
}

/// Why an upload or a download is refused: an HTTP status, a code and a message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

fn io(context: &str, e: std::io::Error) -> BlobError {
    BlobError::Internal(format!("{context}: {e}"))
}

/// Whether a key is one Athena makes (`uploads/`, `files/` or `imports/`, then hex and ULID
/// segments).
fn valid_key(key: &str) -> bool {
    (key.starts_with("uploads/") || key.starts_with("files/") || key.starts_with("imports/"))
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

impl DiskBlobs {
    /// Objects under `dir` (created if missing).
    pub fn open(dir: &str) -> Result<Self, ConfigError> {
        std::fs::create_dir_all(dir).map_err(|e| ConfigError(format!("ATHENA_FILES_DIR {dir}: {e}")))?;
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut key[..]);
        Ok(Self {
            dir: PathBuf::from(dir),
            key,
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        if !valid_key(key) {
            return Err(BlobError::Internal(format!("not an object key: {key}")));
        }
        Ok(self.dir.join(key))
    }

    fn sign(&self, parts: &[&str]) -> String {
        aws_sigv4::sign::v4::calculate_signature(self.key, parts.join("\n").as_bytes())
    }

    fn verify(&self, parts: &[&str], signature: &str) -> bool {
        let expected = self.sign(parts);
        // Constant time: compare every byte.
        expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Takes a posted upload form (`multipart/form-data`): checks the signature, the expiry, the
    /// content type and the size range the form pins, and that the form was not used before;
    /// then stores the file.
    /// Answers the stored object's key.
    pub async fn accept_upload(&self, content_type: &str, body: Bytes, now: Timestamp) -> Result<String, Refusal> {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| refuse(400, "VALIDATION", "the upload must be multipart/form-data"))?;
        let mut form = multer::Multipart::new(
            futures::stream::once(async move { Ok::<_, std::io::Error>(body) }),
            boundary,
        );
        let mut fields = BTreeMap::new();
        let mut file: Option<Bytes> = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| refuse(400, "VALIDATION", format!("the upload form is malformed: {e}")))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                file = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| refuse(400, "VALIDATION", format!("the file part is malformed: {e}")))?,
                );
                // S3 ignores what follows the file; so does this.
                break;
            }
            let value = field
                .text()
                .await
                .map_err(|e| refuse(400, "VALIDATION", format!("field {name} is malformed: {e}")))?;
            fields.insert(name, value);
        }
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
        let (key, media_type, expires, max) = (field("key"), field("Content-Type"), field("expires"), field("max"));
        if !self.verify(&[key, media_type, expires, max], field("signature")) {
            return Err(refuse(
                403,
                "UPLOAD_FORBIDDEN",
                "the upload form's signature does not match its fields",
            ));
        }
        let expires: i64 = expires.parse().unwrap_or(0);
        if now.timestamp() > expires {
            return Err(refuse(
                403,
                "UPLOAD_EXPIRED",
                "the upload form has expired; ask for a new one",
            ));
        }
        let file = file.ok_or_else(|| refuse(400, "VALIDATION", "the form has no file field"))?;
        let max: u64 = max.parse().unwrap_or(0);
        if file.is_empty() || file.len() as u64 > max {
            return Err(refuse(
                400,
                "FILE_TOO_LARGE",
                format!("the file must be 1 to {max} bytes, as the form allows"),
            ));
        }
        let path = self
            .path(key)
            .map_err(|_| refuse(403, "UPLOAD_FORBIDDEN", "the upload form names no valid key"))?;
        let promoted = key
            .strip_prefix("uploads/")
            .map(|rest| self.dir.join("files").join(rest));
        if tokio::fs::try_exists(&path).await.unwrap_or(true) || promoted.is_some_and(|p| p.exists()) {
            return Err(refuse(
                409,
                "UPLOAD_USED",
                "this upload form was already used; ask for a new one",
            ));
        }
        write_new(&path, &file)
            .await
            .map(|()| key.to_owned())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => refuse(
                    409,
                    "UPLOAD_USED",
                    "this upload form was already used; ask for a new one",
                ),
                _ => refuse(500, "INTERNAL", "the file could not be stored"),
            })
    }

    /// Serves a download URL: the bytes of `key` when `expires` and `signature` match.
    pub async fn download(
        &self,
        key: &str,
        expires: &str,
        name: &str,
        signature: &str,
        now: Timestamp,
    ) -> Result<Bytes, Refusal> {
        if !self.verify(&[key, expires, name], signature) {
            return Err(refuse(403, "FORBIDDEN", "the download URL's signature does not match"));
        }
        if now.timestamp() > expires.parse::<i64>().unwrap_or(0) {
            return Err(refuse(403, "FORBIDDEN", "the download URL has expired"));
        }
        let path = self.path(key).map_err(|_| refuse(404, "NOT_FOUND", "no such file"))?;
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|_| refuse(404, "NOT_FOUND", "no such file"))
    }
}

/// Writes a new file (never over an existing one), through a temporary file and a rename so a
/// reader never sees half of it.
async fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let tmp = path.with_extension(format!("part-{}", ulid::Ulid::new()));
    tokio::fs::write(&tmp, bytes).await?;
    // hard_link fails if the target exists: the first writer wins.
    let linked = tokio::fs::hard_link(&tmp, path).await;
    let _ = tokio::fs::remove_file(&tmp).await;
    linked
}

fn form_url(origin: &str, path: &str) -> String {
    format!("{}{path}", origin.trim_end_matches('/'))
}

#[async_trait]
impl Blobs for DiskBlobs {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn as_disk(&self) -> Option<&DiskBlobs> {
        Some(self)
    }

    async fn upload_form(
        &self,
        key: &str,
        media_type: &str,
        max_bytes: u64,
        expires_at: Timestamp,
        origin: &str,
    ) -> Result<UploadForm, BlobError> {
        self.path(key)?;
        let expires = expires_at.timestamp().to_string();
        let max = max_bytes.to_string();
        let signature = self.sign(&[key, media_type, &expires, &max]);
        let fields = BTreeMap::from([
            ("key".to_owned(), key.to_owned()),
            ("Content-Type".to_owned(), media_type.to_owned()),
            ("expires".to_owned(), expires),
            ("max".to_owned(), max),
            ("signature".to_owned(), signature),
        ]);
        Ok(UploadForm {
            url: form_url(origin, UPLOAD_PATH),
            fields,
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, BlobError> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                size: meta.len(),
                last_modified: meta.modified().ok().map(chrono::DateTime::<chrono::Utc>::from),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading a file's metadata", e)),
        }
    }

    async fn read(&self, key: &str, max_bytes: u64) -> Result<Option<Bytes>, BlobError> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.len() > max_bytes => {
                return Err(BlobError::Internal(format!("{key} is larger than {max_bytes} bytes")))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading a file", e)),
        }
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading a file", e)),
        }
    }

    async fn stream(&self, key: &str) -> Result<Option<super::Chunks>, BlobError> {
        use tokio::io::AsyncReadExt;
        let file = match tokio::fs::File::open(self.path(key)?).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading a file", e)),
        };
        let chunks = futures::stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut chunk = bytes::BytesMut::with_capacity(64 * 1024);
            match file.read_buf(&mut chunk).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(chunk.freeze()), Some(file))),
                Err(e) => Some((Err(io("reading a file", e)), None)),
            }
        });
        Ok(Some(Box::pin(chunks)))
    }

    async fn promote(&self, from: &str, to: &str) -> Result<(), BlobError> {
        let (from, to) = (self.path(from)?, self.path(to)?);
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("creating a directory", e))?;
        }
        tokio::fs::rename(&from, &to).await.map_err(|e| match e.kind() {
            // Moved meanwhile (a concurrent completion).
            std::io::ErrorKind::NotFound => BlobError::Unavailable("the upload is gone".to_owned()),
            _ => io("moving a file", e),
        })
    }

    async fn delete(&self, keys: &[String]) -> Result<(), BlobError> {
        for key in keys {
            match tokio::fs::remove_file(self.path(key)?).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("deleting a file", e)),
            }
        }
        Ok(())
    }

    async fn download_url(
        &self,
        key: &str,
        filename: &str,
        expires_at: Timestamp,
        origin: &str,
    ) -> Result<String, BlobError> {
        self.path(key)?;
        let expires = expires_at.timestamp().to_string();
        let signature = self.sign(&[key, &expires, filename]);
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("expires", &expires)
            .append_pair("name", filename)
            .append_pair("signature", &signature)
            .finish();
        Ok(format!(
            "{}?{query}",
            form_url(origin, &format!("{DOWNLOAD_PREFIX}{key}"))
        ))
    }
}

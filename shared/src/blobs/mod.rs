//! Where attached files' bytes live, behind one port, [`Blobs`]: an S3 bucket ([`s3::S3Blobs`],
//! in AWS and against a local S3-API server) or a directory on this machine
//! ([`disk::DiskBlobs`], `athena-local`). Either way a browser uploads with the same HTML form
//! POST (multipart, the form's fields then the file), never through Athena's own request body.

#[cfg(feature = "embedded")]
pub mod disk;
pub mod s3;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::files::{FileStorage, FilesConfig};
use crate::domain::Timestamp;

/// A form a browser posts a file with: `multipart/form-data` to `url`, `fields` first, the file
/// last in a field named `file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadForm {
    /// Where to post it.
    pub url: String,
    /// The form's fields, in order.
    pub fields: BTreeMap<String, String>,
}

/// What an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its size, bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: Option<Timestamp>,
}

/// What a blob store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Throttled, unreachable or failing: retry later.
    #[error("file storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or misconfiguration (no credentials, a bad key).
    #[error("file storage error: {0}")]
    Internal(String),
}

/// An object's bytes, chunk by chunk.
pub type Chunks = futures::stream::BoxStream<'static, Result<Bytes, BlobError>>;

/// A blocking [`std::io::Read`] over [`Chunks`], for a reader on a blocking thread (the import's
/// JSON reader): each chunk is awaited on the runtime's handle when the previous one is used up,
/// so one chunk is held at a time. Reading more than `max` bytes fails (an object replaced by a
/// larger one after it was measured).
pub struct BlockingReader {
    chunks: Chunks,
    current: Bytes,
    handle: tokio::runtime::Handle,
    read: u64,
    max: u64,
}

impl BlockingReader {
    /// Reads `chunks` with `handle` (the runtime the stream belongs to), at most `max` bytes.
    pub fn new(chunks: Chunks, handle: tokio::runtime::Handle, max: u64) -> Self {
        Self {
            chunks,
            current: Bytes::new(),
            handle,
            read: 0,
            max,
        }
    }
}

impl std::io::Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use futures::StreamExt;
        while self.current.is_empty() {
            match self.handle.block_on(self.chunks.next()) {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        self.read += n as u64;
        if self.read > self.max {
            return Err(std::io::Error::other(format!(
                "the object is larger than {} bytes",
                self.max
            )));
        }
        Ok(n)
    }
}

/// The bytes of attached files.
#[async_trait]
pub trait Blobs: Send + Sync {
    /// A name for logs.
    fn describe(&self) -> String;

    /// The directory store, whose upload and download routes `athena-local` serves.
    #[cfg(feature = "embedded")]
    fn as_disk(&self) -> Option<&disk::DiskBlobs> {
        None
    }

    /// A form that uploads one object to `key`: exactly `media_type`, 1 to `max_bytes` bytes,
    /// until `expires_at`. `origin` is the scheme and host the caller reached Athena at (a
    /// directory store's forms post back to Athena itself).
    async fn upload_form(
        &self,
        key: &str,
        media_type: &str,
        max_bytes: u64,
        expires_at: Timestamp,
        origin: &str,
    ) -> Result<UploadForm, BlobError>;

    /// The object at `key`, if there is one.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, BlobError>;

    /// The bytes at `key` (`None`: no object), refusing more than `max_bytes`.
    async fn read(&self, key: &str, max_bytes: u64) -> Result<Option<Bytes>, BlobError>;

    /// The bytes at `key` as a stream of chunks (`None`: no object): an import job reads a
    /// large file through it with flat memory.
    async fn stream(&self, key: &str) -> Result<Option<Chunks>, BlobError>;

    /// Moves the object at `from` to `to` (where uploads cannot write).
    async fn promote(&self, from: &str, to: &str) -> Result<(), BlobError>;

    /// Deletes objects (missing ones are fine).
    async fn delete(&self, keys: &[String]) -> Result<(), BlobError>;

    /// A URL that downloads `key` until `expires_at`, named `filename`.
    async fn download_url(
        &self,
        key: &str,
        filename: &str,
        expires_at: Timestamp,
        origin: &str,
    ) -> Result<String, BlobError>;
}

/// The configured blob store (`None`: attachments are off).
pub async fn from_config(config: &FilesConfig) -> Result<Option<Arc<dyn Blobs>>, crate::config::ConfigError> {
    match &config.storage {
        FileStorage::Off => Ok(None),
        FileStorage::Bucket { name, endpoint } => Ok(Some(Arc::new(
            s3::S3Blobs::from_env(name.clone(), endpoint.clone()).await,
        ))),
        #[cfg(feature = "embedded")]
        FileStorage::Directory(dir) => Ok(Some(Arc::new(disk::DiskBlobs::open(dir)?))),
        #[cfg(not(feature = "embedded"))]
        FileStorage::Directory(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> Chunks {
        let parts: Vec<Result<Bytes, BlobError>> = parts.iter().map(|p| Ok(Bytes::from_static(p.as_bytes()))).collect();
        Box::pin(futures::stream::iter(parts))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocking_reader_reads_chunk_by_chunk_up_to_its_limit() {
        let handle = tokio::runtime::Handle::current();
        let items = tokio::task::spawn_blocking(move || {
            let reader = BlockingReader::new(chunks(&["[{\"a\":", "1},", "", "{\"b\":2}]"]), handle, 100);
            serde_json::from_reader::<_, serde_json::Value>(reader).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            items.map(|v| v.as_array().map(Vec::len)),
            Ok(Some(2)),
            "JSON split across chunks"
        );
        let handle = tokio::runtime::Handle::current();
        let over = tokio::task::spawn_blocking(move || {
            let mut reader = BlockingReader::new(chunks(&["0123456789", "0123456789"]), handle, 15);
            let mut all = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut all)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(over.is_err(), "more than the limit is refused");
    }
}

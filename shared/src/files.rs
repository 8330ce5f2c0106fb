//! File attachments, the service: issuing upload forms (with the per-user quota and the
//! per-format caps), verifying uploads (size, the form's expiry, the type from the bytes),
//! attaching files to a message (ownership, readiness, one conversation per file), reading them
//! for the model within Bedrock's per-request limits, and deleting them with their conversation.

use std::collections::HashSet;

use bytes::Bytes;

use crate::blobs::{BlobError, Blobs, UploadForm};
use crate::domain::file::{self, MAX_DOCUMENTS_PER_REQUEST, MAX_FILES_PER_USER, MAX_IMAGES_PER_REQUEST};
use crate::domain::{ConversationId, FileFormat, FileId, FileKind, FileStatus, MessagePart, StoredFile, UserId};
use crate::error::StoreError;
use crate::llm::{ModelContent, ModelMessage};
use crate::state::AppState;
use crate::store::FileCondition;

/// What handling a file can fail with; each has its HTTP status and code (`api::error`).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Attachments are off in this deployment (no bucket).
    #[error("file attachments are not enabled in this deployment")]
    Disabled,
    /// No such file for this caller.
    #[error("file not found")]
    NotFound,
    /// The format is not one Athena accepts.
    #[error("{0} is not an accepted file type; accepted: {accepted}", accepted = FileFormat::accepted())]
    UnsupportedType(String),
    /// Over the format's cap.
    #[error("the file is {size} bytes; {media_type} files may be at most {max} bytes")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// Its type.
        media_type: &'static str,
        /// The cap.
        max: u64,
    },
    /// An image larger than Bedrock takes.
    #[error("the image is {width} x {height} px; images may be at most {max} x {max} px", max = file::MAX_IMAGE_SIDE_PX)]
    Dimensions {
        /// Its width.
        width: usize,
        /// Its height.
        height: usize,
    },
    /// The user's storage quota would be exceeded.
    #[error("{0}")]
    Quota(String),
    /// The bytes are not what was declared.
    #[error("{0}; the upload was discarded")]
    TypeMismatch(file::TypeMismatch),
    /// Completed before anything was uploaded.
    #[error("nothing was uploaded for this file yet: post the upload form first")]
    NotUploaded,
    /// The upload form expired before the upload (or its verification).
    #[error("the upload form expired; ask for a new one with POST /api/files")]
    Expired,
    /// Not in the state the operation needs (completed twice, attached before completion).
    #[error("{0}")]
    State(String),
    /// Attached to another conversation.
    #[error("file {0} is attached to another conversation; upload it again to use it here")]
    InUse(FileId),
    /// The model provider cannot read this type.
    #[error("this deployment's model provider cannot read {0} files")]
    Unsupported(&'static str),
    /// Invalid input.
    #[error(transparent)]
    Invalid(#[from] crate::error::ValidationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// What a client asks to upload.
#[derive(Clone, Debug)]
pub struct NewUpload {
    /// Its name.
    pub filename: String,
    /// Its declared media type.
    pub media_type: String,
    /// Its declared size, bytes (the most the form accepts).
    pub size: u64,
}

fn blobs(state: &AppState) -> Result<&dyn Blobs, FileError> {
    state.blobs.as_deref().ok_or(FileError::Disabled)
}

fn found(e: StoreError) -> FileError {
    match e {
        StoreError::NotFound => FileError::NotFound,
        other => FileError::Store(other),
    }
}

/// Issues an upload form for a new pending file, within the format's cap, the user's file count
/// and byte quota (pending uploads count at their declared size until their form is abandoned).
pub async fn create(
    state: &AppState,
    owner: &UserId,
    upload: NewUpload,
    origin: &str,
) -> Result<(StoredFile, UploadForm), FileError> {
    let blobs = blobs(state)?;
    let filename = file::parse_filename(&upload.filename)?;
    let format = FileFormat::from_media_type(&upload.media_type)
        .ok_or_else(|| FileError::UnsupportedType(upload.media_type.clone()))?;
    if upload.size > format.max_bytes() {
        return Err(FileError::TooLarge {
            size: upload.size,
            media_type: format.media_type(),
            max: format.max_bytes(),
        });
    }
    let now = state.now();
    let (abandoned, held): (Vec<StoredFile>, Vec<StoredFile>) = state
        .store
        .list_files(owner)
        .await?
        .into_iter()
        .partition(|f| f.abandoned(now));
    if !abandoned.is_empty() {
        // Uploads never verified: their objects and records go now (DynamoDB's TTL and the
        // bucket's lifecycle rule would take them within a day; the directory store has neither).
        let keys: Vec<String> = abandoned.iter().map(StoredFile::upload_key).collect();
        let ids: Vec<FileId> = abandoned.into_iter().map(|f| f.id).collect();
        if blobs.delete(&keys).await.is_ok() {
            if let Err(e) = state.store.delete_files(owner, &ids).await {
                tracing::warn!(error = %e, "purging abandoned uploads failed");
            }
        }
    }
    if held.len() >= MAX_FILES_PER_USER {
        return Err(FileError::Quota(format!(
            "you have {MAX_FILES_PER_USER} files, the most allowed; delete some (or their conversations) first"
        )));
    }
    let used: u64 = held.iter().map(|f| f.size).sum();
    let quota = state.config.files.quota_bytes;
    if used.saturating_add(upload.size) > quota {
        return Err(FileError::Quota(format!(
            "this upload would take your files to {} bytes; your quota is {quota} bytes",
            used.saturating_add(upload.size)
        )));
    }
    let ttl = chrono::Duration::from_std(state.config.files.upload_ttl).unwrap_or(chrono::Duration::minutes(5));
    let file = StoredFile {
        id: state.ids.file_id(),
        owner: owner.clone(),
        filename,
        format,
        size: upload.size,
        status: FileStatus::Pending,
        conversation_id: None,
        tokens: 0,
        created_at: now,
        upload_expires_at: now + ttl,
    };
    let form = blobs
        .upload_form(
            &file.upload_key(),
            format.media_type(),
            upload.size,
            file.upload_expires_at,
            origin,
        )
        .await?;
    state.store.put_file(&file).await?;
    Ok((file, form))
}

/// Verifies an upload: the object exists, was written before its form expired, is within the
/// declared size, and its bytes are of the declared type. Then it is moved where uploads cannot
/// reach (a second use of the form cannot change it) and the file is ready. A refused upload
/// is deleted, its record too.
pub async fn complete(state: &AppState, owner: &UserId, id: &FileId) -> Result<StoredFile, FileError> {
    let blobs = blobs(state)?;
    let mut file = state.store.get_file(owner, id).await.map_err(found)?;
    if file.status == FileStatus::Ready {
        return Err(FileError::State(format!("file {id} is already complete")));
    }
    let now = state.now();
    let upload = file.upload_key();
    let discard = |file: &StoredFile| {
        let upload = upload.clone();
        let file = file.clone();
        async move {
            let _ = blobs.delete(&[upload]).await;
            let _ = state
                .store
                .delete_files(&file.owner, std::slice::from_ref(&file.id))
                .await;
        }
    };
    let Some(info) = blobs.head(&upload).await? else {
        if file.abandoned(now) {
            discard(&file).await;
            return Err(FileError::Expired);
        }
        return Err(FileError::NotUploaded);
    };
    if info
        .last_modified
        .is_some_and(|at| at > file.upload_expires_at + chrono::Duration::seconds(5))
    {
        discard(&file).await;
        return Err(FileError::Expired);
    }
    if info.size > file.size || info.size == 0 {
        let (size, max) = (info.size, file.size);
        discard(&file).await;
        return Err(FileError::TooLarge {
            size,
            media_type: file.format.media_type(),
            max,
        });
    }
    let bytes = blobs.read(&upload, file.size).await?.ok_or(FileError::NotUploaded)?;
    if let Err(mismatch) = file::check_type(file.format, &bytes) {
        discard(&file).await;
        return Err(FileError::TypeMismatch(mismatch));
    }
    if file.format.kind() == FileKind::Image {
        match file::image_dimensions(file.format, &bytes) {
            Some((width, height)) if width.max(height) > file::MAX_IMAGE_SIDE_PX => {
                discard(&file).await;
                return Err(FileError::Dimensions { width, height });
            }
            Some(_) => {}
            None => {
                discard(&file).await;
                return Err(FileError::TypeMismatch(file::TypeMismatch {
                    declared: file.format.media_type(),
                    found: "an image whose header cannot be read".to_owned(),
                }));
            }
        }
    }
    if let Err(e) = blobs.promote(&upload, &file.key()).await {
        // A concurrent completion moved it first: say so, not "unavailable".
        if state
            .store
            .get_file(owner, id)
            .await
            .is_ok_and(|f| f.status == FileStatus::Ready)
        {
            return Err(FileError::State(format!("file {id} is already complete")));
        }
        return Err(e.into());
    }
    file.status = FileStatus::Ready;
    file.size = bytes.len() as u64;
    file.tokens = file::estimate_tokens(file.format, &bytes);
    match state.store.replace_file(&file, FileCondition::Pending).await {
        Ok(()) => Ok(file),
        Err(StoreError::Conflict(_)) => Err(FileError::State(format!("file {id} is already complete"))),
        Err(e) => Err(found(e)),
    }
}

/// One of the caller's files.
pub async fn get(state: &AppState, owner: &UserId, id: &FileId) -> Result<StoredFile, FileError> {
    blobs(state)?;
    state.store.get_file(owner, id).await.map_err(found)
}

/// A URL that downloads a ready file for `ttl`.
pub async fn download_url(state: &AppState, file: &StoredFile, origin: &str) -> Result<Option<String>, FileError> {
    if file.status != FileStatus::Ready {
        return Ok(None);
    }
    let expires = state.now() + chrono::Duration::minutes(15);
    Ok(Some(
        blobs(state)?
            .download_url(&file.key(), &file.filename, expires, origin)
            .await?,
    ))
}

/// Deletes one of the caller's files: refused while it is attached to a conversation (it goes
/// with the conversation).
pub async fn delete(state: &AppState, owner: &UserId, id: &FileId) -> Result<(), FileError> {
    let blobs = blobs(state)?;
    let file = state.store.get_file(owner, id).await.map_err(found)?;
    if file.conversation_id.is_some() {
        return Err(FileError::State(format!(
            "file {id} is attached to a conversation; it is deleted with the conversation"
        )));
    }
    blobs.delete(&[file.upload_key(), file.key()]).await?;
    state.store.delete_files(owner, &[file.id]).await?;
    Ok(())
}

/// The ids of the owner's conversations in the trash (every page).
async fn trash_ids(state: &AppState, owner: &UserId) -> Result<Vec<ConversationId>, StoreError> {
    let mut query = crate::store::ListConversations {
        shelf: crate::domain::Shelf::Trash,
        now: Some(state.now()),
        limit: Some(crate::store::MAX_PAGE),
        ..Default::default()
    };
    let mut ids = Vec::new();
    loop {
        let page = state.store.list_conversations(owner, &query).await?;
        ids.extend(page.items.into_iter().map(|c| c.id));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(ids),
        }
    }
}

/// Deletes the objects of every file of `owner` (uploads and verified files), before their
/// records go with the rest of the user's data. An error leaves the records in place.
pub async fn delete_all_objects(state: &AppState, owner: &UserId) -> Result<usize, FileError> {
    let Some(blobs) = state.blobs.as_deref() else {
        return Ok(0);
    };
    let files = state.store.list_files(owner).await?;
    let keys: Vec<String> = files.iter().flat_map(|f| [f.key(), f.upload_key()]).collect();
    for chunk in keys.chunks(500) {
        blobs.delete(chunk).await?;
    }
    Ok(files.len())
}

/// Deletes the files of conversations that are gone: those attached to `conversation`, or with
/// `None`, every attached file whose conversation no longer exists (after a project's
/// conversations were deleted). Objects first, then records, so nothing stored points at a
/// missing object for long; a failure is logged and the next sweep finishes the job.
pub async fn delete_for_conversation(state: &AppState, owner: &UserId, conversation: Option<&ConversationId>) {
    let Some(blobs) = state.blobs.as_deref() else {
        return;
    };
    let files = match state.store.list_files(owner).await {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(error = %e, "listing files to delete with a conversation failed");
            return;
        }
    };
    let mut doomed = Vec::new();
    let mut checked: Vec<(ConversationId, bool)> = Vec::new();
    // A conversation in the trash is not gone: it may be restored with its files.
    let mut trashed: Option<Vec<ConversationId>> = None;
    for f in files {
        let Some(c) = &f.conversation_id else { continue };
        let gone = match conversation {
            Some(target) => c == target,
            None => match checked.iter().find(|(id, _)| id == c) {
                Some((_, gone)) => *gone,
                None => {
                    let hidden = matches!(state.store.get_conversation(owner, c).await, Err(StoreError::NotFound));
                    let gone = if hidden {
                        if trashed.is_none() {
                            match trash_ids(state, owner).await {
                                Ok(ids) => trashed = Some(ids),
                                Err(e) => {
                                    tracing::warn!(error = %e, "listing the trash before deleting files failed");
                                    return;
                                }
                            }
                        }
                        !trashed.as_ref().is_some_and(|ids| ids.contains(c))
                    } else {
                        false
                    };
                    checked.push((c.clone(), gone));
                    gone
                }
            },
        };
        if gone {
            doomed.push(f);
        }
    }
    if doomed.is_empty() {
        return;
    }
    let keys: Vec<String> = doomed.iter().flat_map(|f| [f.key(), f.upload_key()]).collect();
    if let Err(e) = blobs.delete(&keys).await {
        tracing::warn!(error = %e, files = doomed.len(), "deleting a conversation's files failed");
        return;
    }
    let ids: Vec<FileId> = doomed.into_iter().map(|f| f.id).collect();
    if let Err(e) = state.store.delete_files(owner, &ids).await {
        tracing::warn!(error = %e, "deleting a conversation's file records failed");
    }
}

/// The parts of a new message's attachments: each file the caller's, ready, readable by the
/// provider, and attached to no other existing conversation; attaching binds it to
/// `conversation` (a conditional write, so two conversations cannot both take one file).
pub async fn attach(
    state: &AppState,
    owner: &UserId,
    conversation: &ConversationId,
    ids: &[FileId],
) -> Result<Vec<MessagePart>, FileError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    blobs(state)?;
    let mut parts = Vec::with_capacity(ids.len());
    for id in ids {
        let mut file = state.store.get_file(owner, id).await.map_err(found)?;
        if file.status != FileStatus::Ready {
            return Err(FileError::State(format!(
                "file {id} is not complete yet: finish its upload with POST /api/files/{id}/complete"
            )));
        }
        if let Some(model) = &state.model {
            if !model.accepts(file.format) {
                return Err(FileError::Unsupported(file.format.media_type()));
            }
        }
        match file.conversation_id.clone() {
            Some(c) if c == *conversation => {}
            bound => {
                // Bound to a conversation that was never created (its first turn was refused, and
                // the client started another chat): the file moves. Bound to one that exists: in use.
                if let Some(other) = &bound {
                    match state.store.get_conversation(owner, other).await {
                        Err(StoreError::NotFound) => {}
                        Ok(_) => return Err(FileError::InUse(id.clone())),
                        Err(e) => return Err(e.into()),
                    }
                }
                file.conversation_id = Some(conversation.clone());
                let expected = bound.as_ref().unwrap_or(conversation);
                match state
                    .store
                    .replace_file(&file, FileCondition::AttachableTo(expected))
                    .await
                {
                    Ok(()) => {}
                    Err(StoreError::Conflict(_)) => return Err(FileError::InUse(id.clone())),
                    Err(e) => return Err(found(e)),
                }
            }
        }
        parts.push(MessagePart::File {
            file_id: file.id.clone(),
            media_type: file.format.media_type().to_owned(),
            filename: file.filename.clone(),
            size: file.size,
            tokens: file.tokens,
        });
    }
    Ok(parts)
}

/// Reads the files of the model's context (newest first, within Bedrock's per-request limits of
/// 20 images and 5 documents): each [`ModelContent::FileRef`] becomes its bytes, or a line
/// saying it was left out (over the limits, deleted, unreadable). Reads run concurrently.
pub async fn load(state: &AppState, owner: &UserId, context: &mut [ModelMessage]) {
    let blobs = state.blobs.as_deref();
    let (mut images, mut documents) = (0usize, 0usize);
    let mut wanted: Vec<(usize, usize, FileId, FileFormat)> = Vec::new();
    let mut over: HashSet<(usize, usize)> = HashSet::new();
    for (i, m) in context.iter().enumerate().rev() {
        for (j, c) in m.content.iter().enumerate().rev() {
            if let ModelContent::FileRef { id, format, .. } = c {
                let count = match format.kind() {
                    FileKind::Image => &mut images,
                    FileKind::Document => &mut documents,
                };
                let limit = match format.kind() {
                    FileKind::Image => MAX_IMAGES_PER_REQUEST,
                    FileKind::Document => MAX_DOCUMENTS_PER_REQUEST,
                };
                if *count < limit {
                    *count += 1;
                    wanted.push((i, j, id.clone(), *format));
                } else {
                    over.insert((i, j));
                }
            }
        }
    }
    let reads = wanted.iter().map(|(_, _, id, format)| async move {
        let blobs = blobs?;
        let key = StoredFile::key_of(owner, id);
        match blobs.read(&key, format.max_bytes()).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, file = %id, "reading an attached file failed");
                None
            }
        }
    });
    let loaded: Vec<Option<Bytes>> = futures::future::join_all(reads).await;
    for ((i, j, _, format), bytes) in wanted.into_iter().zip(loaded) {
        let ModelContent::FileRef { filename, .. } = &context[i].content[j] else {
            continue;
        };
        let filename = filename.clone();
        context[i].content[j] = match bytes {
            Some(bytes) => ModelContent::File {
                format,
                filename,
                bytes,
            },
            None => ModelContent::Text(format!("[The attached file {filename} is no longer available.]")),
        };
    }
    for (i, j) in over {
        if let ModelContent::FileRef { filename, .. } = &context[i].content[j] {
            context[i].content[j] = ModelContent::Text(format!(
                "[The earlier attachment {filename} is not repeated here: a request carries at most \
                 {MAX_IMAGES_PER_REQUEST} images and {MAX_DOCUMENTS_PER_REQUEST} documents.]"
            ));
        }
    }
}

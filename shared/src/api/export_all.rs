//! `GET /api/export?format=json|markdown`: every conversation of the caller, streamed
//! (`docs/export.md`). The conversations are read a page of the listing at a time, each with its
//! messages, rendered and sent before the next one is read: a producer task writes chunks into a
//! channel of [`READ_AHEAD`] chunks that the response body drains, so memory holds one page of
//! conversations and one conversation's messages, whatever the account's size.
//!
//! - JSON: the `athena.export` envelope (`format`, `version`, `exportedAt`, then
//!   `conversations`: one `athena.conversation` document each, exactly the one-conversation
//!   export's shape).
//! - Markdown: a zip of one `<safe title>-<id>.md` per conversation (the one-conversation
//!   Markdown), stored uncompressed, each file written whole with its CRC-32 known.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};

use super::error::ApiError;
use super::export::{self, ConversationExport, Format};
use super::{AppState, Body, Caller};
use crate::domain::{ts, Conversation, Shelf, Timestamp, UserId};
use crate::store::{ListConversations, Page, MAX_PAGE};

/// The `format` of the JSON export of everything.
pub const ENVELOPE_FORMAT: &str = "athena.export";
/// Chunks rendered ahead of the client.
pub const READ_AHEAD: usize = 2;

/// Answers the export of everything: the first page is read before answering (a store that
/// fails answers 503, not a broken file); the rest streams.
pub async fn get(state: &Arc<AppState>, caller: &Caller, req: &super::ApiRequest) -> Result<Response<Body>, ApiError> {
    let format = Format::parse(req.query_param("format"))?;
    let first = list_page(state, &caller.user, Shelf::Active, None).await?;
    let now = state.now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(READ_AHEAD);
    let producer = Producer {
        state: Arc::clone(state),
        owner: caller.user.clone(),
        format,
        now,
        tx,
    };
    tokio::spawn(async move {
        if let Err(e) = producer.run(first).await {
            // The client already has a 200: the file ends here, unfinished (invalid JSON, a zip
            // without its directory), which every reader reports.
            tracing::warn!(error = %e, "the export of everything stopped part-way");
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|b| Ok::<_, std::convert::Infallible>(http_body::Frame::data(b)));
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let (content_type, extension) = match format {
        Format::Json => ("application/json", "json"),
        Format::Markdown => ("application/zip", "zip"),
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let name = format!(
        "attachment; filename=\"athena-export-{}.{extension}\"",
        now.format("%Y%m%d-%H%M%S")
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// One page of the owner's conversations on `shelf` (everything is the default list, then the
/// archive; the trash is not exported).
async fn list_page(
    state: &AppState,
    owner: &UserId,
    shelf: Shelf,
    cursor: Option<String>,
) -> Result<Page<Conversation>, ApiError> {
    let query = ListConversations {
        limit: Some(MAX_PAGE),
        cursor,
        shelf,
        ..ListConversations::default()
    };
    Ok(state.store.list_conversations(owner, &query).await?)
}

/// Why the producer stopped early.
#[derive(Debug, thiserror::Error)]
enum Stop {
    /// The client went away.
    #[error("the client went away")]
    Gone,
    /// Reading failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

struct Producer {
    state: Arc<AppState>,
    owner: UserId,
    format: Format,
    now: Timestamp,
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

impl Producer {
    async fn send(&self, bytes: Bytes) -> Result<(), Stop> {
        self.tx.send(bytes).await.map_err(|_| Stop::Gone)
    }

    async fn run(self, first: Page<Conversation>) -> Result<(), Stop> {
        let mut zip = Zip::default();
        if self.format == Format::Json {
            let head = format!(
                "{{\"format\":\"{ENVELOPE_FORMAT}\",\"version\":{},\"exportedAt\":\"{}\",\"conversations\":[",
                export::FORMAT_VERSION,
                ts::format(&self.now)
            );
            self.send(Bytes::from(head)).await?;
        }
        let mut page = first;
        let mut shelf = Shelf::Active;
        let mut count = 0usize;
        let mut usage = UsageTotals::default();
        loop {
            for listed in &page.items {
                let read = self
                    .state
                    .store
                    .get_conversation_with_messages(&self.owner, &listed.id)
                    .await;
                let (mut c, mut messages) = match read {
                    Ok(found) => found,
                    // Deleted since the page was read: not in the export.
                    Err(crate::error::StoreError::NotFound) => continue,
                    Err(e) => return Err(ApiError::from(e).into()),
                };
                let _ = crate::chat::in_progress(&self.state, &self.owner, &mut c, &mut messages).await;
                usage.add(&messages);
                let chunk = match self.format {
                    Format::Json => {
                        let mut out = if count == 0 { Vec::new() } else { vec![b','] };
                        serde_json::to_writer(&mut out, &ConversationExport::new(&c, &messages, self.now))
                            .map_err(|e| ApiError::Internal(Some(Box::new(e))))?;
                        Bytes::from(out)
                    }
                    Format::Markdown => zip.file(
                        &export::file_name(&c, Format::Markdown),
                        export::markdown(&c, &messages).as_bytes(),
                        c.updated_at,
                    ),
                };
                count += 1;
                self.send(chunk).await?;
            }
            match (page.next_cursor.take(), shelf) {
                (Some(cursor), _) => page = list_page(&self.state, &self.owner, shelf, Some(cursor)).await?,
                (None, Shelf::Active) => {
                    shelf = Shelf::Archived;
                    page = list_page(&self.state, &self.owner, shelf, None).await?;
                }
                (None, _) => break,
            }
        }
        let account = self.account(usage).await?;
        match self.format {
            Format::Json => {
                let mut tail = b"],\"account\":".to_vec();
                serde_json::to_writer(&mut tail, &account).map_err(|e| ApiError::Internal(Some(Box::new(e))))?;
                tail.push(b'}');
                self.send(Bytes::from(tail)).await
            }
            Format::Markdown => {
                let body = serde_json::to_vec_pretty(&account).map_err(|e| ApiError::Internal(Some(Box::new(e))))?;
                self.send(zip.file(ACCOUNT_FILE, &body, self.now)).await?;
                self.send(zip.finish()).await
            }
        }
    }

    /// The rest of the user's data: folders, tags, projects, saved prompts, usage (summed from
    /// the exported replies) and the audit log (every page).
    async fn account(&self, usage: UsageTotals) -> Result<serde_json::Value, ApiError> {
        let store = self.state.store.as_ref();
        let folders = store.list_folders(&self.owner).await?;
        let tags = store.list_tags(&self.owner).await?;
        let projects = store.list_projects(&self.owner).await?;
        let prompts = store.list_prompts(&self.owner).await?;
        let mut audit = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store.list_audit(&self.owner, Some(MAX_PAGE), cursor.as_deref()).await?;
            audit.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let tags: Vec<serde_json::Value> = tags
            .iter()
            .map(|t| serde_json::json!({"tag": t.tag, "conversations": t.conversations}))
            .collect();
        Ok(serde_json::json!({
            "folders": folders.iter().map(super::organize::FolderView::from).collect::<Vec<_>>(),
            "tags": tags,
            "projects": projects.iter().map(super::projects::ProjectView::from).collect::<Vec<_>>(),
            "prompts": prompts.iter().map(super::prompts::PromptView::from).collect::<Vec<_>>(),
            "usage": usage,
            "audit": audit,
        }))
    }
}

/// The name of the account file in the Markdown zip.
pub const ACCOUNT_FILE: &str = "account.json";

/// Tokens and replies per model, summed over the exported conversations' replies.
#[derive(Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageTotals {
    replies: u64,
    input_tokens: u64,
    output_tokens: u64,
    by_model: std::collections::BTreeMap<String, crate::domain::Usage>,
}

impl UsageTotals {
    fn add(&mut self, messages: &[crate::domain::Message]) {
        for m in messages {
            let (Some(u), Some(model)) = (&m.usage, &m.model) else {
                continue;
            };
            self.replies += 1;
            self.input_tokens += u.input_tokens;
            self.output_tokens += u.output_tokens;
            let total = self.by_model.entry(model.clone()).or_default();
            total.input_tokens += u.input_tokens;
            total.output_tokens += u.output_tokens;
            total.cache_read_tokens += u.cache_read_tokens;
            total.cache_write_tokens += u.cache_write_tokens;
        }
    }
}

/// A zip written as it goes: each file stored (no compression) with its size and CRC-32 in its
/// local header; the central directory (about 100 bytes per file) is kept until the end.
#[derive(Default)]
pub struct Zip {
    offset: u64,
    directory: BytesMut,
    files: u64,
}

impl Zip {
    /// The local header and bytes of one file.
    pub fn file(&mut self, name: &str, data: &[u8], modified: Timestamp) -> Bytes {
        let crc = crc32fast::hash(data);
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let (time, date) = dos_time(modified);
        let name = name.as_bytes();
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        let mut out = BytesMut::with_capacity(30 + name.len() + data.len());
        out.put_u32_le(0x0403_4b50);
        out.put_u16_le(20); // version needed: 2.0
        out.put_u16_le(1 << 11); // UTF-8 names
        out.put_u16_le(0); // stored
        out.put_u16_le(time);
        out.put_u16_le(date);
        out.put_u32_le(crc);
        out.put_u32_le(size);
        out.put_u32_le(size);
        out.put_u16_le(name_len);
        out.put_u16_le(0);
        out.put_slice(name);
        out.put_slice(data);
        let d = &mut self.directory;
        d.put_u32_le(0x0201_4b50);
        d.put_u16_le(20); // made by: 2.0 (MS-DOS attributes)
        d.put_u16_le(20);
        d.put_u16_le(1 << 11);
        d.put_u16_le(0);
        d.put_u16_le(time);
        d.put_u16_le(date);
        d.put_u32_le(crc);
        d.put_u32_le(size);
        d.put_u32_le(size);
        d.put_u16_le(name_len);
        d.put_u16_le(0); // extra
        d.put_u16_le(0); // comment
        d.put_u16_le(0); // disk
        d.put_u16_le(0); // internal attributes
        d.put_u32_le(0); // external attributes
        d.put_u32_le(u32::try_from(self.offset).unwrap_or(u32::MAX));
        d.put_slice(name);
        self.offset += out.len() as u64;
        self.files += 1;
        out.freeze()
    }

    /// The central directory and its end record.
    pub fn finish(self) -> Bytes {
        let mut out = self.directory;
        let entries = u16::try_from(self.files).unwrap_or(u16::MAX);
        let size = u32::try_from(out.len()).unwrap_or(u32::MAX);
        out.put_u32_le(0x0605_4b50);
        out.put_u16_le(0);
        out.put_u16_le(0);
        out.put_u16_le(entries);
        out.put_u16_le(entries);
        out.put_u32_le(size);
        out.put_u32_le(u32::try_from(self.offset).unwrap_or(u32::MAX));
        out.put_u16_le(0);
        out.freeze()
    }
}

/// MS-DOS time and date (local time is UTC here), from 1980 on.
fn dos_time(t: Timestamp) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    let year = u16::try_from(t.year().clamp(1980, 2107) - 1980).unwrap_or(0);
    let date = (year << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    (time, date)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_zip_lists_its_files_with_their_offsets_and_crcs() {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 3, 2, 9, 30, 10)
            .single()
            .unwrap_or_else(|| unreachable!());
        let mut zip = Zip::default();
        let mut all = Vec::new();
        all.extend_from_slice(&zip.file("a-1.md", b"# A\n", at));
        all.extend_from_slice(&zip.file("b-2.md", "# Ü\n".as_bytes(), at));
        all.extend_from_slice(&zip.finish());
        // The end record: two entries, the directory right after the files.
        let end = &all[all.len() - 22..];
        assert_eq!(&end[..4], &[0x50, 0x4b, 0x05, 0x06]);
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 2);
        let dir_offset = u32::from_le_bytes([end[16], end[17], end[18], end[19]]) as usize;
        assert_eq!(&all[dir_offset..dir_offset + 4], &[0x50, 0x4b, 0x01, 0x02]);
        // The second local header starts where the first file ends.
        let second = 30 + "a-1.md".len() + 4;
        assert_eq!(&all[second..second + 4], &[0x50, 0x4b, 0x03, 0x04]);
        let crc = u32::from_le_bytes([all[14], all[15], all[16], all[17]]);
        assert_eq!(crc, crc32fast::hash(b"# A\n"));
        assert_eq!(dos_time(at), ((9 << 11) | (30 << 5) | 5, (46 << 9) | (3 << 5) | 2));
    }
}

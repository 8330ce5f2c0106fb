//! File attachments: the formats Athena accepts, their size caps (Bedrock's Converse limits per
//! block), how a file's real type is read from its bytes (never taken from the client), and the
//! stored record of a file.
//!
//! A file goes through two states: `pending` (an upload form was issued; nothing verified) and
//! `ready` (its bytes were read back, their type checked against the declared one, and the object
//! moved where uploads cannot reach). Only a ready file can be attached to a message; attaching
//! binds it to that conversation, and it is deleted with it.

use serde::{Deserialize, Serialize};

use super::{ConversationId, FileId, Timestamp, UserId};
use crate::error::ValidationError;

/// Largest image Bedrock takes in one image block (3.75 MB).
pub const MAX_IMAGE_BYTES: u64 = 3_750_000;
/// Largest document Bedrock takes in one document block (4.5 MB).
pub const MAX_DOCUMENT_BYTES: u64 = 4_500_000;
/// Most images Bedrock takes in one request.
pub const MAX_IMAGES_PER_REQUEST: usize = 20;
/// Widest and tallest image Bedrock takes, pixels.
pub const MAX_IMAGE_SIDE_PX: usize = 8_000;
/// Most documents Bedrock takes in one request.
pub const MAX_DOCUMENTS_PER_REQUEST: usize = 5;
/// Longest file name (characters).
pub const MAX_FILENAME_CHARS: usize = 255;
/// Most files one user may hold at once (pending and ready).
pub const MAX_FILES_PER_USER: usize = 1000;

/// What a file is to the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Sent as a Converse image block.
    Image,
    /// Sent as a Converse document block.
    Document,
}

/// An accepted file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// `image/png`
    Png,
    /// `image/jpeg`
    Jpeg,
    /// `image/gif`
    Gif,
    /// `image/webp`
    Webp,
    /// `application/pdf`
    Pdf,
    /// `text/plain`
    Txt,
    /// `text/markdown`
    Md,
    /// `text/csv`
    Csv,
    /// `application/vnd.openxmlformats-officedocument.wordprocessingml.document`
    Docx,
}

/// Every accepted format, in the order the docs list them.
pub const FORMATS: [FileFormat; 9] = [
    FileFormat::Png,
    FileFormat::Jpeg,
    FileFormat::Gif,
    FileFormat::Webp,
    FileFormat::Pdf,
    FileFormat::Txt,
    FileFormat::Md,
    FileFormat::Csv,
    FileFormat::Docx,
];

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

impl FileFormat {
    /// The media type a client names it by (and the one stored).
    pub fn media_type(self) -> &'static str {
        match self {
            FileFormat::Png => "image/png",
            FileFormat::Jpeg => "image/jpeg",
            FileFormat::Gif => "image/gif",
            FileFormat::Webp => "image/webp",
            FileFormat::Pdf => "application/pdf",
            FileFormat::Txt => "text/plain",
            FileFormat::Md => "text/markdown",
            FileFormat::Csv => "text/csv",
            FileFormat::Docx => DOCX,
        }
    }

    /// The format of a media type (parameters such as `; charset=utf-8` ignored, case-insensitive).
    pub fn from_media_type(raw: &str) -> Option<Self> {
        let essence = raw.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let format = match essence.as_str() {
            "image/png" => FileFormat::Png,
            "image/jpeg" | "image/jpg" => FileFormat::Jpeg,
            "image/gif" => FileFormat::Gif,
            "image/webp" => FileFormat::Webp,
            "application/pdf" => FileFormat::Pdf,
            "text/plain" => FileFormat::Txt,
            "text/markdown" | "text/x-markdown" => FileFormat::Md,
            "text/csv" => FileFormat::Csv,
            DOCX => FileFormat::Docx,
            _ => return None,
        };
        Some(format)
    }

    /// Image or document.
    pub fn kind(self) -> FileKind {
        match self {
            FileFormat::Png | FileFormat::Jpeg | FileFormat::Gif | FileFormat::Webp => FileKind::Image,
            _ => FileKind::Document,
        }
    }

    /// Its size cap, bytes: Bedrock's per-block limit for its kind.
    pub fn max_bytes(self) -> u64 {
        match self.kind() {
            FileKind::Image => MAX_IMAGE_BYTES,
            FileKind::Document => MAX_DOCUMENT_BYTES,
        }
    }

    /// Whether it is text (checked as UTF-8, and readable by any model as text).
    pub fn is_text(self) -> bool {
        matches!(self, FileFormat::Txt | FileFormat::Md | FileFormat::Csv)
    }

    /// The accepted media types, for error messages.
    pub fn accepted() -> String {
        FORMATS.iter().map(|f| f.media_type()).collect::<Vec<_>>().join(", ")
    }
}

/// Why bytes are not what they were declared to be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the file's content is {found}, not {declared}")]
pub struct TypeMismatch {
    /// The declared media type.
    pub declared: &'static str,
    /// What the bytes are.
    pub found: String,
}

/// Checks bytes against the declared format by their magic bytes. Binary formats must be
/// recognised as exactly that format (a PNG declared as JPEG is refused); text formats must be
/// UTF-8 with no NUL byte and no binary signature (text, Markdown and CSV cannot be told apart
/// by content, so the declared one of the three stands).
pub fn check_type(declared: FileFormat, bytes: &[u8]) -> Result<(), TypeMismatch> {
    let detected = infer::get(bytes);
    let mismatch = |found: String| TypeMismatch {
        declared: declared.media_type(),
        found,
    };
    if declared.is_text() {
        if let Some(kind) = detected.filter(|k| k.matcher_type() != infer::MatcherType::Text) {
            return Err(mismatch(kind.mime_type().to_owned()));
        }
        if bytes.contains(&0) || std::str::from_utf8(bytes).is_err() {
            return Err(mismatch("binary data (not UTF-8 text)".to_owned()));
        }
        return Ok(());
    }
    match detected {
        Some(kind) if FileFormat::from_media_type(kind.mime_type()) == Some(declared) => Ok(()),
        Some(kind) => Err(mismatch(kind.mime_type().to_owned())),
        None => Err(mismatch("of an unrecognised type".to_owned())),
    }
}

/// An image's dimensions from its header, when it is an image whose header can be read.
pub fn image_dimensions(format: FileFormat, bytes: &[u8]) -> Option<(usize, usize)> {
    if format.kind() != FileKind::Image {
        return None;
    }
    imagesize::blob_size(bytes).ok().map(|size| (size.width, size.height))
}

/// Estimated input tokens of a file, for the turn's budget reservation: images by Anthropic's
/// rule (width x height / 750, after scaling the long edge to at most 1568 px; about 1600 at
/// most), text by characters (4 per token), PDFs and DOCX by bytes (their text is a fraction of
/// their size; 1 token per 8 bytes, at least 1000 per PDF page-sized file).
pub fn estimate_tokens(format: FileFormat, bytes: &[u8]) -> u64 {
    let len = bytes.len() as u64;
    match format.kind() {
        FileKind::Image => match imagesize::blob_size(bytes) {
            Ok(size) => {
                let (w, h) = (size.width as f64, size.height as f64);
                let scale = (1568.0 / w.max(h)).min(1.0);
                let tokens = (w * scale) * (h * scale) / 750.0;
                (tokens.ceil() as u64).clamp(1, 1_600)
            }
            Err(_) => 1_600,
        },
        FileKind::Document if format.is_text() => len.div_ceil(4),
        FileKind::Document => (len / 8).max(1_000),
    }
}

/// Checks a file name: trimmed, 1..=255 characters, no control characters, no path separators.
pub fn parse_filename(raw: &str) -> Result<String, ValidationError> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_FILENAME_CHARS {
        return Err(ValidationError::field("filename", "must be 1 to 255 characters"));
    }
    if trimmed.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(ValidationError::field(
            "filename",
            "must not contain control characters or path separators",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A document's name as Bedrock accepts it: letters, digits, whitespace, hyphens, parentheses and
/// square brackets, no two whitespace characters in a row, at most 200 characters; the extension
/// is dropped (Bedrock's format field carries it). Never empty.
pub fn document_name(filename: &str) -> String {
    let stem = match filename.rsplit_once('.') {
        Some((stem, _)) if !stem.trim().is_empty() => stem,
        _ => filename,
    };
    let mut out = String::new();
    for c in stem.chars() {
        let c = if c.is_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
            c
        } else {
            ' '
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
        if out.chars().count() >= 200 {
            break;
        }
    }
    let out = out.trim_end().to_owned();
    if out.is_empty() {
        "document".to_owned()
    } else {
        out
    }
}

/// Where a file is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// An upload form was issued; the bytes are not verified (or not there).
    Pending,
    /// Verified and kept; can be attached.
    Ready,
}

/// A stored file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFile {
    /// Its id.
    pub id: FileId,
    /// Who owns it; every read and write is scoped to the owner.
    pub owner: UserId,
    /// The name the client gave.
    pub filename: String,
    /// Its format (the declared one; a ready file's bytes were checked against it).
    pub format: FileFormat,
    /// Bytes: declared while pending (the most the upload may send), actual once ready.
    pub size: u64,
    /// Pending or ready.
    pub status: FileStatus,
    /// The conversation it is attached to, once attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// Estimated input tokens (ready files).
    #[serde(default)]
    pub tokens: u64,
    /// When the upload form was issued.
    #[serde(with = "super::ts")]
    pub created_at: Timestamp,
    /// When the upload form expires (an object uploaded later is refused).
    #[serde(with = "super::ts")]
    pub upload_expires_at: Timestamp,
}

impl StoredFile {
    /// The object key of its verified bytes.
    pub fn key(&self) -> String {
        Self::key_of(&self.owner, &self.id)
    }

    /// The object key of the verified bytes of `owner`'s file `id`.
    pub fn key_of(owner: &UserId, id: &FileId) -> String {
        format!("files/{}/{}", owner_prefix(owner), id)
    }

    /// The object key its upload form writes to.
    pub fn upload_key(&self) -> String {
        format!("uploads/{}/{}", owner_prefix(&self.owner), self.id)
    }

    /// Its URL in Athena's API (what a message's file part carries).
    pub fn url(&self) -> String {
        format!("/api/files/{}", self.id)
    }

    /// Whether a pending file's upload window is over at `now` (with a grace period for an
    /// upload that started just before expiry), so its bytes can never be verified.
    pub fn abandoned(&self, now: Timestamp) -> bool {
        self.status == FileStatus::Pending && now > self.upload_expires_at + chrono::Duration::minutes(10)
    }
}

/// The object-key prefix of an owner: a hash, so keys (and S3 access logs) carry no user id.
pub fn owner_prefix(owner: &UserId) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(owner.as_str().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The file id in a file part's `url`: Athena's own file URL (`/api/files/{id}`, absolute or
/// relative). `None` for anything else (data URLs, other hosts' paths).
pub fn file_id_of_url(url: &str) -> Option<FileId> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let (_, id) = path.rsplit_once("/api/files/")?;
    FileId::parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_1X1: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0x00, 0x10, 0x00, 0x00, 0x00, 0x08, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89,
    ];

    #[test]
    fn magic_bytes_decide_the_type_not_the_declaration() {
        assert!(check_type(FileFormat::Png, PNG_1X1).is_ok());
        let lie = check_type(FileFormat::Jpeg, PNG_1X1).unwrap_err();
        assert_eq!(lie.found, "image/png");
        assert!(check_type(FileFormat::Pdf, b"%PDF-1.7\n%\xe2\xe3\n1 0 obj").is_ok());
        assert!(check_type(FileFormat::Pdf, b"hello, I am text").is_err());
        assert!(check_type(FileFormat::Txt, b"plain text\nline two").is_ok());
        assert!(check_type(FileFormat::Csv, b"a,b\n1,2\n").is_ok());
        assert!(check_type(FileFormat::Md, PNG_1X1).is_err());
        assert!(check_type(FileFormat::Txt, b"nul\0inside").is_err());
        assert!(check_type(FileFormat::Txt, &[0xff, 0xfe, 0x41]).is_err());
        assert!(check_type(FileFormat::Png, b"").is_err());
        // A zip that is not a Word document is not a DOCX.
        assert!(check_type(FileFormat::Docx, b"PK\x03\x04\x14\x00\x00\x00\x08\x00").is_err());
    }

    #[test]
    fn media_types_round_trip_and_caps_follow_bedrock() {
        for f in FORMATS {
            assert_eq!(FileFormat::from_media_type(f.media_type()), Some(f));
        }
        assert_eq!(
            FileFormat::from_media_type("Text/Plain; charset=utf-8"),
            Some(FileFormat::Txt)
        );
        assert_eq!(FileFormat::from_media_type("application/zip"), None);
        assert_eq!(FileFormat::Png.max_bytes(), 3_750_000);
        assert_eq!(FileFormat::Pdf.max_bytes(), 4_500_000);
    }

    #[test]
    fn image_tokens_follow_the_dimensions() {
        // 16 x 8 px: 128 / 750 rounds up to 1.
        assert_eq!(estimate_tokens(FileFormat::Png, PNG_1X1), 1);
        assert_eq!(estimate_tokens(FileFormat::Txt, &[b'a'; 400]), 100);
        assert_eq!(estimate_tokens(FileFormat::Pdf, &[0; 80_000]), 10_000);
    }

    #[test]
    fn document_names_are_what_bedrock_accepts() {
        assert_eq!(document_name("Q3 report (final).pdf"), "Q3 report (final)");
        assert_eq!(document_name("a__b..c.txt"), "a b c");
        assert_eq!(document_name("...."), "document");
        assert_eq!(document_name("ünïcode  spaces.md"), "ünïcode spaces");
    }

    #[test]
    fn file_urls_name_athena_files_only() {
        let id = "01JD0000000000000000000000";
        assert_eq!(
            file_id_of_url(&format!("/api/files/{id}")).map(|f| f.to_string()),
            Some(id.to_owned())
        );
        assert!(file_id_of_url(&format!("https://athena.example/api/files/{id}?x=1")).is_some());
        assert!(file_id_of_url("data:image/png;base64,AAAA").is_none());
        assert!(file_id_of_url("/api/files/../../etc/passwd").is_none());
    }
}

//! Domain types: conversations, messages, analytics events, audit entries and ids, with the
//! newtypes that parse raw input once at the edge (`ConversationId::parse`, `Title::parse`, ...),
//! and the clock. JSON field names are the seeds' (camelCase); timestamps are RFC 3339 UTC with
//! millisecond precision, as Prisma wrote them. Depends on nothing in the crate but [`crate::error`].

mod activity;
mod branch;
mod conversation;
pub mod file;
mod folder;
mod ids;
pub mod import_job;
pub mod link;
mod live;
mod message;
mod project;
mod prompt;
pub mod text;
mod time;

pub use activity::{user_hash, AnalyticsEvent, AuditEntry, StatsDelta, StatsRow, BUCKETS_MS};
pub use branch::Tree;
pub use conversation::{
    preview, Conversation, ImportSource, Solution, SolutionFilter, Title, DEFAULT_TITLE, MAX_TITLE_CHARS, PREVIEW_CHARS,
};
pub use file::{FileFormat, FileKind, FileStatus, StoredFile};
pub use folder::{
    parse_tag, parse_tags, Folder, Shelf, MAX_FOLDERS_PER_USER, MAX_FOLDER_NAME_CHARS, MAX_TAGS_PER_CONVERSATION,
    MAX_TAG_LEN, TRASH_DAYS,
};
pub use ids::{
    ClientMessageId, ConversationId, FileId, FolderId, IdGenerator, ImportJobId, LinkId, MessageId, ProjectId,
    PromptId, UserId, MAX_ID_LEN,
};
pub use import_job::{ImportJob, ImportJobStatus};
pub use link::{ShareLink, SharedMessage, Snapshot};
pub use live::LiveTurn;
pub use message::{Approval, FinishReason, Message, MessagePart, Role, Usage};
pub use project::{
    Project, MAX_PROJECTS_PER_USER, MAX_PROJECT_DESCRIPTION_CHARS, MAX_PROJECT_INSTRUCTIONS_CHARS,
    MAX_PROJECT_NAME_CHARS,
};
pub use prompt::{
    fill, variables, SavedPrompt, MAX_PROMPTS_PER_USER, MAX_PROMPT_TAGS, MAX_PROMPT_TEXT_CHARS, MAX_PROMPT_TITLE_CHARS,
    MAX_TAG_CHARS,
};
pub use time::{now, ts, Clock, ManualClock, SystemClock, Timestamp};

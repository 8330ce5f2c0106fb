//! The audit log (seed 002's `audit_logs`): every mutating action — creating, patching or
//! deleting a conversation or a project, adding or clearing messages, a chat turn, a regenerate — recorded with
//! who (user id), what (action), which resource (conversation id), how it ended (`ok` or the
//! error code) and when, kept `ATHENA_AUDIT_RETENTION_DAYS` (default 365) by TTL. Users read
//! their own entries through `GET /api/audit`; admins may read anyone's.
//!
//! Recording never fails a request: it is written best-effort, bounded in time, failures logged.

use std::time::Duration;

use crate::domain::{self, AuditEntry, IdGenerator, Timestamp, UserId};
use crate::store::Activity;

/// Longest a request waits for its audit write.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Audit action names.
pub mod action {
    /// `POST /api/conversations/{id}/links`
    pub const LINK_CREATE: &str = "link.create";
    /// `PATCH /api/conversations/{id}/links/{linkId}`
    pub const LINK_UPDATE: &str = "link.update";
    /// `DELETE /api/conversations/{id}/links/{linkId}`
    pub const LINK_DELETE: &str = "link.delete";
    /// `POST /api/share/{token}/continue` (the resource is the new conversation, never the token)
    pub const SHARE_CONTINUE: &str = "share.continue";
    /// `POST /api/conversations`
    pub const CONVERSATION_CREATE: &str = "conversation.create";
    /// `PATCH /api/conversations/{id}`
    pub const CONVERSATION_UPDATE: &str = "conversation.update";
    /// `DELETE /api/conversations/{id}`
    pub const CONVERSATION_DELETE: &str = "conversation.delete";
    /// `PUT /api/conversations/{id}/active-branch`
    pub const CONVERSATION_BRANCH: &str = "conversation.branch";
    /// `POST /api/import` (conversations from an export file; the report lists each one)
    pub const CONVERSATIONS_IMPORT: &str = "conversations.import";
    /// `DELETE /api/imports/{id}` (an import job and its uploaded file)
    pub const IMPORT_DELETE: &str = "import.delete";
    /// `GET /api/export` (every conversation, as a download; `ok` when the download starts)
    pub const CONVERSATIONS_EXPORT: &str = "conversations.export";
    /// `POST /api/projects`
    pub const PROJECT_CREATE: &str = "project.create";
    /// Every item of a user erased (recorded under the pseudonymous `erased-<hash>` id).
    pub const ACCOUNT_ERASE: &str = "account.erase";
    /// A conversation restored from the trash.
    pub const CONVERSATION_RESTORE: &str = "conversation.restore";
    /// A conversation deleted for good from the trash.
    pub const CONVERSATION_PURGE: &str = "conversation.purge";
    /// The trash emptied.
    pub const TRASH_EMPTY: &str = "trash.empty";
    /// A folder created.
    pub const FOLDER_CREATE: &str = "folder.create";
    /// A folder renamed or moved.
    pub const FOLDER_UPDATE: &str = "folder.update";
    /// A folder deleted (its conversations moved to no folder).
    pub const FOLDER_DELETE: &str = "folder.delete";
    /// `PATCH /api/projects/{id}`
    pub const PROJECT_UPDATE: &str = "project.update";
    /// `DELETE /api/projects/{id}`
    pub const PROJECT_DELETE: &str = "project.delete";
    /// `POST /api/prompts`
    pub const PROMPT_CREATE: &str = "prompt.create";
    /// `PATCH /api/prompts/{id}`
    pub const PROMPT_UPDATE: &str = "prompt.update";
    /// `DELETE /api/prompts/{id}`
    pub const PROMPT_DELETE: &str = "prompt.delete";
    /// `POST /api/prompts/{id}/conversations` (the resource is the prompt)
    pub const PROMPT_START: &str = "prompt.start";
    /// `POST /api/conversations/{id}/messages`
    pub const MESSAGES_ADD: &str = "messages.add";
    /// `DELETE /api/conversations/{id}/messages`
    pub const MESSAGES_CLEAR: &str = "messages.clear";
    /// `POST /api/chat[/solution]`
    pub const CHAT_TURN: &str = "chat.turn";
    /// `POST /api/chat[/solution]` with `trigger: regenerate-message`
    pub const CHAT_REGENERATE: &str = "chat.regenerate";
    /// A running chat turn asked to stop.
    pub const CHAT_STOP: &str = "chat.stop";
    /// An upload form was issued.
    pub const FILE_CREATE: &str = "file.create";
    /// An upload was verified (or refused).
    pub const FILE_COMPLETE: &str = "file.complete";
    /// A file was deleted.
    pub const FILE_DELETE: &str = "file.delete";
    /// The user approved a tool call that waited for approval.
    pub const TOOL_APPROVE: &str = "tool.approve";
    /// The user denied a tool call that waited for approval.
    pub const TOOL_DENY: &str = "tool.deny";
    /// An admin set a user's plan (`PUT /api/admin/users/{id}/plan`; resource: the user id).
    pub const PLAN_SET: &str = "plan.set";
    /// An admin removed a user's plan override.
    pub const PLAN_CLEAR: &str = "plan.clear";
    /// A conversation shared with a user or address, or their role changed (resource: the conversation).
    pub const CONVERSATION_SHARE: &str = "conversation.share";
    /// A share revoked (resource: the conversation).
    pub const CONVERSATION_UNSHARE: &str = "conversation.unshare";
}

/// Builds an entry stamped now, kept `retention_days`.
pub fn entry(
    ids: &IdGenerator,
    user: &UserId,
    action: &str,
    resource: Option<String>,
    status: &str,
    request_id: Option<&str>,
    retention_days: u64,
) -> AuditEntry {
    entry_at(
        ids,
        user,
        action,
        resource,
        status,
        request_id,
        retention_days,
        domain::now(),
    )
}

/// Builds an entry stamped `at` (the application clock's now), kept `retention_days`.
#[allow(clippy::too_many_arguments)]
pub fn entry_at(
    ids: &IdGenerator,
    user: &UserId,
    action: &str,
    resource: Option<String>,
    status: &str,
    request_id: Option<&str>,
    retention_days: u64,
    at: Timestamp,
) -> AuditEntry {
    AuditEntry {
        id: ids.next_ulid(),
        user_id: user.to_string(),
        action: action.to_owned(),
        resource,
        status: status.to_owned(),
        request_id: request_id.map(str::to_owned),
        at,
        expires_at: at.timestamp() + i64::try_from(retention_days.saturating_mul(86_400)).unwrap_or(i64::MAX),
    }
}

/// Writes entries best-effort: never fails, waits at most [`WRITE_TIMEOUT`].
pub async fn record(store: &dyn Activity, entries: &[AuditEntry]) {
    match tokio::time::timeout(WRITE_TIMEOUT, store.record_activity(&[], entries)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "recording the audit log failed"),
        Err(_) => tracing::warn!("recording the audit log timed out"),
    }
}

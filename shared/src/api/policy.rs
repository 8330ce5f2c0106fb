//! Who may do what: every route's authorization is decided here, by [`rule`] (what a route
//! needs) and [`allows`] (whether a role has it), and nowhere else. A table test runs every
//! route of [`ROUTES`](super::routes::ROUTES) against every [`Role`].
//!
//! Roles on a conversation: its [`Role::Owner`]; a user it is shared with as
//! [`Role::Collaborator`] (reads and chats in it) or [`Role::Viewer`] (reads it); and
//! [`Role::Link`], an anonymous reader holding a share link, who sees only the link's snapshot.
//! Anyone else has no role ([`Role::None`]) and learns nothing: the answer is the same `404` as
//! for a conversation that does not exist. A role that knows the conversation exists but lacks
//! the right (a viewer writing, a collaborator deleting) gets `403 FORBIDDEN`.

use std::sync::Arc;

use http::{Response, StatusCode};

use crate::domain::ConversationId;
use crate::state::AppState;
use crate::store::GrantRole;

use super::error::ApiError;
use super::routes::Op;
use super::{ApiRequest, Body, Caller};

/// A caller's role on the resource a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The conversation is theirs.
    Owner,
    /// Shared with them to read and chat in.
    Collaborator,
    /// Shared with them to read.
    Viewer,
    /// An anonymous reader with a share link's token.
    Link,
    /// No role: the conversation does not exist for them.
    None,
}

impl Role {
    /// Every role (for table tests).
    pub const ALL: [Role; 5] = [Role::Owner, Role::Collaborator, Role::Viewer, Role::Link, Role::None];
}

/// What a conversation-scoped route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Read the conversation and its messages (owner, collaborator, viewer).
    Read,
    /// Mark it for oneself: reactions and bookmarks (owner, collaborator, viewer).
    Mark,
    /// Chat in it: turns, their stop and resume, versions (owner, collaborator).
    Chat,
    /// Change or remove it, or decide who sees it (the owner only).
    Manage,
}

/// What a route needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No caller: the health check, the dashboard's static page.
    Public,
    /// Any signed-in caller, on what is theirs (their lists, folders, projects, files, usage…):
    /// the store keys every read and write by the caller.
    Signed,
    /// Admins only.
    Admin,
    /// A role on the conversation the path names.
    Conversation(Need),
    /// A share link's token: anyone holding it, no account.
    Link,
}

/// What `op` needs.
pub fn rule(op: Op) -> Rule {
    use Need::*;
    match op {
        Op::Health | Op::Dashboard => Rule::Public,
        Op::AnalyticsSummary | Op::GetUserPlan | Op::SetUserPlan | Op::ClearUserPlan => Rule::Admin,
        // Leaving a conversation shared with one is the grantee's own business (the owner has
        // nothing to leave: `sharing::leave` answers 404 for them).
        Op::LeaveShared => Rule::Conversation(Read),
        // Watching a running turn's stream is reading it.
        Op::GetConversation | Op::ListMessages | Op::ExportConversation | Op::ResumeChat(_) => Rule::Conversation(Read),
        Op::StopChat(_) | Op::SetActiveBranch | Op::CreateMessage => Rule::Conversation(Chat),
        Op::UpdateConversation
        | Op::DeleteConversation
        | Op::ClearMessages
        | Op::ListShares
        | Op::ShareConversation
        | Op::Unshare => Rule::Conversation(Manage),
        // A reaction or a bookmark is the caller's own mark on a conversation they can read.
        Op::PutReaction | Op::DeleteReaction | Op::PutBookmark | Op::DeleteBookmark => Rule::Conversation(Mark),
        // Share links: who sees the conversation is the owner's decision (listing them too: their
        // view counts and expiries are the owner's business).
        Op::ListLinks | Op::CreateLink | Op::UpdateLink | Op::DeleteLink => Rule::Conversation(Manage),
        Op::ReadShare => Rule::Link,
        // The copy is the caller's own new conversation; the handler opens the link first.
        Op::ContinueShare => Rule::Signed,
        // A chat turn names its conversation in the body (new or existing): `chat::post`
        // resolves the role itself, with the same `allows(op, role)`.
        Op::Chat(_) => Rule::Conversation(Chat),
        Op::ListConversations
        | Op::CreateConversation
        | Op::ListFolders
        | Op::CreateFolder
        | Op::GetFolder
        | Op::UpdateFolder
        | Op::DeleteFolder
        | Op::ListTags
        | Op::EraseAccount
        | Op::ListTrash
        | Op::EmptyTrash
        | Op::RestoreConversation
        | Op::DeleteForever
        | Op::Import
        | Op::ListImports
        | Op::CreateImport
        | Op::GetImport
        | Op::DeleteImport
        | Op::ExportAll
        | Op::Search
        | Op::ListProjects
        | Op::CreateProject
        | Op::GetProject
        | Op::UpdateProject
        | Op::DeleteProject
        | Op::ListPrompts
        | Op::CreatePrompt
        | Op::GetPrompt
        | Op::UpdatePrompt
        | Op::DeletePrompt
        | Op::StartFromPrompt
        | Op::ListFiles
        | Op::CreateFile
        | Op::GetFile
        | Op::DeleteFile
        | Op::CompleteFile
        | Op::ChatInfo(_)
        | Op::ListAudit
        | Op::SharedWithMe
        | Op::ListBookmarks
        | Op::Usage => Rule::Signed,
    }
}

/// Whether `role` may do `op`. For [`Rule::Signed`] and [`Rule::Admin`] the role is the
/// caller's on their own data ([`Role::Owner`]); admin rights are checked by the handler's caller
/// (`Caller::admin`) as well.
pub fn allows(op: Op, role: Role) -> bool {
    match (rule(op), role) {
        (Rule::Public, _) => true,
        (Rule::Link, Role::Link) => true,
        (Rule::Link, _) => false,
        (Rule::Signed | Rule::Admin, Role::Owner) => true,
        (Rule::Signed | Rule::Admin, _) => false,
        (Rule::Conversation(_), Role::Owner) => true,
        (Rule::Conversation(Need::Read | Need::Mark), Role::Collaborator | Role::Viewer) => true,
        (Rule::Conversation(Need::Chat), Role::Collaborator) => true,
        (Rule::Conversation(_), _) => false,
    }
}

/// The refusal for a role that may not do `op`: a `404` for no role (the conversation's
/// existence is not revealed), a `403` for a role that knows it exists.
pub fn refusal(op: Op, role: Role) -> ApiError {
    match role {
        Role::None | Role::Link => ApiError::NotFound("conversation not found".to_owned()),
        Role::Viewer => ApiError::Forbidden(format!(
            "you can read this conversation but not {} (it is shared with you as a viewer)",
            doing(op)
        )),
        Role::Collaborator => ApiError::Forbidden(format!(
            "only the conversation's owner can {} (it is shared with you as a collaborator)",
            doing(op)
        )),
        Role::Owner => ApiError::Forbidden("not allowed".to_owned()),
    }
}

impl Role {
    /// The role a grant gives.
    pub fn of_grant(role: GrantRole) -> Self {
        match role {
            GrantRole::Viewer => Role::Viewer,
            GrantRole::Collaborator => Role::Collaborator,
        }
    }
}

/// Runs a conversation-scoped route ([`Rule::Conversation`]) for `caller`.
///
/// First as the caller's own conversation: an owner's request costs nothing more. When that
/// finds nothing (a `404`, or a resume's `204`), the caller's grant on the conversation is looked
/// up (one key lookup): none, and the first answer stands (nothing about anyone else's
/// conversation is revealed); a role [`allows`] refuses is a `403` ([`refusal`]); a role it
/// allows runs the route again on the owner's conversation, as the caller.
pub async fn on_conversation(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &ApiRequest,
    (op, id, sub): (Op, ConversationId, Option<&str>),
) -> Result<Response<Body>, ApiError> {
    let first = super::sharing::run(state, caller, &caller.user, req, (op, id.clone(), sub)).await;
    let nothing = match &first {
        Err(ApiError::NotFound(_)) => true,
        Ok(r) => matches!(op, Op::ResumeChat(_)) && r.status() == StatusCode::NO_CONTENT,
        Err(_) => false,
    };
    if !nothing {
        return first;
    }
    let Some(grant) = state.store.grant_for(&caller.grantees(), &id).await? else {
        return first;
    };
    if grant.owner == caller.user {
        return first;
    }
    let role = Role::of_grant(grant.role);
    if !allows(op, role) {
        return Err(refusal(op, role));
    }
    super::sharing::run(state, caller, &grant.owner, req, (op, id, sub)).await
}

/// Whether a grant's role may chat in the conversation (what `chat::start` asks when the
/// caller is not the conversation's owner): [`allows`] for a chat turn.
pub fn may_chat(role: GrantRole) -> bool {
    allows(Op::Chat(None), Role::of_grant(role))
}

fn doing(op: Op) -> &'static str {
    match rule(op) {
        Rule::Conversation(Need::Chat) => "chat in it",
        Rule::Conversation(Need::Manage) => "change, delete or share it",
        _ => "do this",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::routes::ROUTES;

    /// Who may call each route, as `docs/security.md` ("Sharing") tells it: `O` the owner
    /// (or, for routes on the caller's own data, any signed-in caller), `C` a collaborator, `V`
    /// a viewer, `L` an anonymous holder of a share link, `*` anyone. Admin rights are checked
    /// on top of `O` for the admin routes.
    const TABLE: &[(&str, &str, &str)] = &[
        ("GET", "/api/conversations", "O"),
        ("POST", "/api/conversations", "O"),
        ("GET", "/api/conversations/{id}", "OCV"),
        ("PATCH", "/api/conversations/{id}", "O"),
        ("DELETE", "/api/conversations/{id}", "O"),
        ("GET", "/api/folders", "O"),
        ("POST", "/api/folders", "O"),
        ("GET", "/api/folders/{id}", "O"),
        ("PATCH", "/api/folders/{id}", "O"),
        ("DELETE", "/api/folders/{id}", "O"),
        ("DELETE", "/api/account", "O"),
        ("GET", "/api/tags", "O"),
        ("GET", "/api/trash", "O"),
        ("DELETE", "/api/trash", "O"),
        ("DELETE", "/api/trash/{id}", "O"),
        ("POST", "/api/trash/{id}/restore", "O"),
        ("GET", "/api/search", "O"),
        ("GET", "/api/projects", "O"),
        ("POST", "/api/projects", "O"),
        ("GET", "/api/projects/{id}", "O"),
        ("PATCH", "/api/projects/{id}", "O"),
        ("DELETE", "/api/projects/{id}", "O"),
        ("GET", "/api/files", "O"),
        ("POST", "/api/files", "O"),
        ("GET", "/api/files/{id}", "O"),
        ("DELETE", "/api/files/{id}", "O"),
        ("POST", "/api/files/{id}/complete", "O"),
        ("GET", "/api/prompts", "O"),
        ("POST", "/api/prompts", "O"),
        ("GET", "/api/prompts/{id}", "O"),
        ("PATCH", "/api/prompts/{id}", "O"),
        ("DELETE", "/api/prompts/{id}", "O"),
        ("POST", "/api/prompts/{id}/conversations", "O"),
        ("PUT", "/api/conversations/{id}/active-branch", "OC"),
        ("GET", "/api/conversations/{id}/shares", "O"),
        ("PUT", "/api/conversations/{id}/shares", "O"),
        ("DELETE", "/api/conversations/{id}/shares", "O"),
        ("GET", "/api/shared", "O"),
        ("DELETE", "/api/shared/{id}", "OCV"),
        ("PUT", "/api/conversations/{id}/messages/{messageId}/reaction", "OCV"),
        ("DELETE", "/api/conversations/{id}/messages/{messageId}/reaction", "OCV"),
        ("PUT", "/api/conversations/{id}/messages/{messageId}/bookmark", "OCV"),
        ("DELETE", "/api/conversations/{id}/messages/{messageId}/bookmark", "OCV"),
        ("GET", "/api/bookmarks", "O"),
        ("GET", "/api/conversations/{id}/links", "O"),
        ("POST", "/api/conversations/{id}/links", "O"),
        ("PATCH", "/api/conversations/{id}/links/{linkId}", "O"),
        ("DELETE", "/api/conversations/{id}/links/{linkId}", "O"),
        ("GET", "/api/share/{token}", "L"),
        ("POST", "/api/share/{token}/continue", "O"),
        ("GET", "/api/conversations/{id}/export", "OCV"),
        ("GET", "/api/export", "O"),
        ("POST", "/api/import", "O"),
        ("GET", "/api/imports", "O"),
        ("POST", "/api/imports", "O"),
        ("GET", "/api/imports/{id}", "O"),
        ("DELETE", "/api/imports/{id}", "O"),
        ("GET", "/api/conversations/{id}/messages", "OCV"),
        ("POST", "/api/conversations/{id}/messages", "OC"),
        ("DELETE", "/api/conversations/{id}/messages", "O"),
        ("GET", "/api/chat", "O"),
        ("POST", "/api/chat", "OC"),
        ("GET", "/api/chat/{solution}", "O"),
        ("POST", "/api/chat/{solution}", "OC"),
        ("GET", "/api/chat/{id}/stream", "OCV"),
        ("POST", "/api/chat/{id}/stop", "OC"),
        ("GET", "/api/chat/{solution}/{id}/stream", "OCV"),
        ("POST", "/api/chat/{solution}/{id}/stop", "OC"),
        ("GET", "/api/analytics/summary", "O"),
        ("GET", "/api/audit", "O"),
        ("GET", "/dashboard", "*"),
        ("GET", "/api/usage", "O"),
        ("GET", "/api/admin/users/{id}/plan", "O"),
        ("PUT", "/api/admin/users/{id}/plan", "O"),
        ("DELETE", "/api/admin/users/{id}/plan", "O"),
        ("GET", "/api/health", "*"),
    ];

    /// A route's pattern with the solution chats folded into one row.
    fn row_pattern(pattern: &str) -> String {
        let solutions = crate::domain::Solution::ALL.map(|s| format!("/api/chat/{}", s.as_str()));
        for s in &solutions {
            if let Some(rest) = pattern.strip_prefix(s.as_str()) {
                return format!("/api/chat/{{solution}}{rest}");
            }
        }
        pattern.to_owned()
    }

    /// Every route × every role, against [`TABLE`].
    #[test]
    fn every_route_and_role_is_decided_as_the_table_says() {
        let mut seen = std::collections::HashSet::new();
        for route in ROUTES {
            for (method, op) in route.ops {
                let pattern = row_pattern(route.pattern);
                let Some((_, _, who)) = TABLE.iter().find(|(m, p, _)| m == method && *p == pattern) else {
                    panic!("{method} {pattern} has no row in the table");
                };
                seen.insert((*method, pattern.clone()));
                for role in Role::ALL {
                    let letter = match role {
                        Role::Owner => 'O',
                        Role::Collaborator => 'C',
                        Role::Viewer => 'V',
                        Role::Link => 'L',
                        Role::None => '-',
                    };
                    let expected = *who == "*" || who.contains(letter);
                    assert_eq!(allows(*op, role), expected, "{method} {pattern} as {role:?}");
                }
            }
        }
        for (method, pattern, _) in TABLE {
            assert!(
                seen.contains(&(*method, (*pattern).to_owned())),
                "{method} {pattern} is in the table but not a route"
            );
        }
    }

    #[test]
    fn only_a_collaborator_among_the_grantees_may_chat() {
        assert!(may_chat(GrantRole::Collaborator));
        assert!(!may_chat(GrantRole::Viewer));
    }

    #[test]
    fn no_role_is_told_nothing_and_a_known_role_is_told_why() {
        let op = Op::DeleteConversation;
        assert_eq!(refusal(op, Role::None).code(), "NOT_FOUND");
        assert_eq!(refusal(op, Role::Link).code(), "NOT_FOUND");
        assert_eq!(refusal(op, Role::Viewer).code(), "FORBIDDEN");
        assert_eq!(refusal(op, Role::Collaborator).code(), "FORBIDDEN");
    }
}

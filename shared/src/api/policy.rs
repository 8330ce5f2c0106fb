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

use crate::domain::UserId;

use super::error::ApiError;
use super::routes::Op;

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
        // Watching a running turn's stream is reading it.
        Op::GetConversation | Op::ListMessages | Op::ExportConversation | Op::ResumeChat(_) => Rule::Conversation(Read),
        Op::StopChat(_) | Op::SetActiveBranch | Op::CreateMessage => Rule::Conversation(Chat),
        Op::UpdateConversation | Op::DeleteConversation | Op::ClearMessages => Rule::Conversation(Manage),
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

/// A caller's access to one conversation, once decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The conversation's owner: the store is read and written under their key.
    pub owner: UserId,
    /// The caller's role on it.
    pub role: Role,
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

    /// Every route × every role, against the sharing model of `docs/security.md`.
    #[test]
    fn every_route_and_role_is_decided_as_the_sharing_model_says() {
        for route in ROUTES {
            for (method, op) in route.ops {
                let rule = rule(*op);
                for role in Role::ALL {
                    let expected = match (rule, role) {
                        (Rule::Public, _) => true,
                        (Rule::Link, r) => r == Role::Link,
                        (Rule::Signed | Rule::Admin, r) => r == Role::Owner,
                        (Rule::Conversation(need), r) => match r {
                            Role::Owner => true,
                            Role::Collaborator => need != Need::Manage,
                            Role::Viewer => matches!(need, Need::Read | Need::Mark),
                            Role::Link | Role::None => false,
                        },
                    };
                    assert_eq!(
                        allows(*op, role),
                        expected,
                        "{method} {} as {role:?} ({rule:?})",
                        route.pattern
                    );
                }
                // Writes are never a viewer's; reads never need more than `Read` (but the list
                // of a conversation's share links, the owner's alone).
                if *method == "GET" && *op != Op::ListLinks {
                    assert!(
                        !matches!(rule, Rule::Conversation(Need::Manage)),
                        "{method} {}",
                        route.pattern
                    );
                }
                if *method != "GET" && matches!(rule, Rule::Conversation(_)) {
                    assert_eq!(
                        allows(*op, Role::Viewer),
                        rule == Rule::Conversation(Need::Mark),
                        "{method} {}",
                        route.pattern
                    );
                }
            }
        }
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

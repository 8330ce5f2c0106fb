//! The route table: the single source of truth for which paths exist, which methods they take
//! and which Lambda function serves them. The local gateway serves all of it; each function
//! serves its own group; a test checks `template.yaml` declares exactly these routes.

use crate::domain::Solution;

/// What a (route, method) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `GET /api/conversations`
    ListConversations,
    /// `POST /api/conversations`
    CreateConversation,
    /// `GET /api/conversations/{id}`
    GetConversation,
    /// `PATCH /api/conversations/{id}`
    UpdateConversation,
    /// `DELETE /api/conversations/{id}`
    DeleteConversation,
    /// `GET /api/conversations/{id}/export?format=json|markdown`: one conversation as a download.
    ExportConversation,
    /// `GET /api/folders`
    ListFolders,
    /// `POST /api/folders`
    CreateFolder,
    /// `GET /api/folders/{id}`
    GetFolder,
    /// `PATCH /api/folders/{id}`: rename, move under another folder or to the top level.
    UpdateFolder,
    /// `DELETE /api/folders/{id}`: with its subfolders; their conversations move to no folder.
    DeleteFolder,
    /// `GET /api/tags`: the caller's tags with counts.
    ListTags,
    /// `DELETE /api/account?confirm=true`: erase every item of the caller.
    EraseAccount,
    /// `GET /api/trash`: the caller's trashed conversations.
    ListTrash,
    /// `DELETE /api/trash`: empty the trash.
    EmptyTrash,
    /// `POST /api/trash/{id}/restore`
    RestoreConversation,
    /// `DELETE /api/trash/{id}`: delete a trashed conversation for good.
    DeleteForever,
    /// `POST /api/import?source=auto|athena|chatgpt|claude`: conversations from an export file.
    Import,
    /// `GET /api/imports`: the caller's import jobs, newest first.
    ListImports,
    /// `POST /api/imports`: an import job for a large export file, and its upload form.
    CreateImport,
    /// `GET /api/imports/{id}`: an import job (status, counts, failed items).
    GetImport,
    /// `DELETE /api/imports/{id}`: an import job that is not running, with its upload.
    DeleteImport,
    /// `GET /api/export?format=json|markdown`: every conversation of the caller, streamed.
    ExportAll,
    /// `GET /api/search?q&limit&cursor&solutionType`: full-text search over the caller's conversations.
    Search,
    /// `GET /api/projects`
    ListProjects,
    /// `POST /api/projects`
    CreateProject,
    /// `GET /api/projects/{id}`
    GetProject,
    /// `PATCH /api/projects/{id}`
    UpdateProject,
    /// `DELETE /api/projects/{id}?conversations=detach|delete`
    DeleteProject,
    /// `GET /api/prompts?q&tag`: the shared prompts and the caller's.
    ListPrompts,
    /// `POST /api/prompts`
    CreatePrompt,
    /// `GET /api/prompts/{id}`
    GetPrompt,
    /// `PATCH /api/prompts/{id}`
    UpdatePrompt,
    /// `DELETE /api/prompts/{id}`
    DeletePrompt,
    /// `POST /api/prompts/{id}/conversations`: a conversation started from a prompt (template).
    StartFromPrompt,
    /// `GET /api/files?conversationId`: the caller's files.
    ListFiles,
    /// `POST /api/files`: a pending file and its upload form.
    CreateFile,
    /// `GET /api/files/{id}`: a file (with a download URL when ready).
    GetFile,
    /// `DELETE /api/files/{id}`: a file not attached to a conversation.
    DeleteFile,
    /// `POST /api/files/{id}/complete`: verify an upload.
    CompleteFile,
    /// `PUT /api/conversations/{id}/active-branch`: show another version of a message.
    SetActiveBranch,
    /// `GET /api/conversations/{id}/messages`
    ListMessages,
    /// `POST /api/conversations/{id}/messages`
    CreateMessage,
    /// `DELETE /api/conversations/{id}/messages`
    ClearMessages,
    /// `GET /api/chat[/solution]`: models, solution, capabilities.
    ChatInfo(Option<Solution>),
    /// `POST /api/chat[/solution]`: a streamed reply.
    Chat(Option<Solution>),
    /// `GET /api/chat[/solution]/{id}/stream`: the running turn's stream, resumed (204: none).
    ResumeChat(Option<Solution>),
    /// `POST /api/chat[/solution]/{id}/stop`: stop the running turn.
    StopChat(Option<Solution>),
    /// `GET /api/analytics/summary` (admins).
    AnalyticsSummary,
    /// `GET /dashboard`: the analytics page.
    Dashboard,
    /// `GET /api/audit`: the caller's audit log (admins: anyone's).
    ListAudit,
    /// `GET /api/health`: version and store reachability, no authentication.
    Health,
    /// `GET /api/usage`: the caller's usage, plan and what remains of each budget.
    Usage,
    /// `GET /api/admin/users/{id}/plan` (admins): a user's plan and override.
    GetUserPlan,
    /// `PUT /api/admin/users/{id}/plan` (admins): set a user's plan override.
    SetUserPlan,
    /// `DELETE /api/admin/users/{id}/plan` (admins): remove it.
    ClearUserPlan,
    /// `GET /api/conversations/{id}/shares` (the owner): who it is shared with.
    ListShares,
    /// `PUT /api/conversations/{id}/shares` (the owner): share it with a user or address, or
    /// change their role.
    ShareConversation,
    /// `DELETE /api/conversations/{id}/shares?userId|email` (the owner): revoke a share.
    Unshare,
    /// `GET /api/shared`: the conversations shared with the caller.
    SharedWithMe,
    /// `DELETE /api/shared/{id}`: a grantee removes a conversation shared with them.
    LeaveShared,
    /// `PUT /api/conversations/{id}/messages/{messageId}/reaction`: the caller's thumbs up/down.
    PutReaction,
    /// `DELETE /api/conversations/{id}/messages/{messageId}/reaction`
    DeleteReaction,
    /// `PUT /api/conversations/{id}/messages/{messageId}/bookmark`: bookmark a message (note).
    PutBookmark,
    /// `DELETE /api/conversations/{id}/messages/{messageId}/bookmark`
    DeleteBookmark,
    /// `GET /api/bookmarks?limit&cursor`: the caller's bookmarks, newest first.
    ListBookmarks,
    /// `GET /api/conversations/{id}/links`: the conversation's share links (its owner).
    ListLinks,
    /// `POST /api/conversations/{id}/links`: a share link to a snapshot of it (its owner).
    CreateLink,
    /// `PATCH /api/conversations/{id}/links/{linkId}`: refresh a link's snapshot or change its expiry.
    UpdateLink,
    /// `DELETE /api/conversations/{id}/links/{linkId}`: revoke a link.
    DeleteLink,
    /// `GET /api/share/{token}`: a share link's snapshot, without authentication.
    ReadShare,
    /// `POST /api/share/{token}/continue`: a share link's snapshot copied into the caller's account.
    ContinueShare,
}

/// A path pattern with its methods and function.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// Path pattern; a `{name}` segment matches one non-empty segment (at most two per pattern: the
    /// first is [`Matched::id`], the second [`Matched::sub`]).
    pub pattern: &'static str,
    /// The Lambda function (binary and template resource stem) serving it.
    pub function: &'static str,
    /// Methods and what each does.
    pub ops: &'static [(&'static str, Op)],
}

impl Route {
    /// The methods of this route.
    pub fn methods(&self) -> Vec<&'static str> {
        self.ops.iter().map(|(m, _)| *m).collect()
    }
}

/// The import route's path (its body may be larger than other routes': `api::body_limit`).
pub const IMPORT_PATH: &str = "/api/import";

/// Every route of Athena.
pub const ROUTES: &[Route] = &[
    Route {
        pattern: "/api/conversations",
        function: "conversations",
        ops: &[("GET", Op::ListConversations), ("POST", Op::CreateConversation)],
    },
    Route {
        pattern: "/api/conversations/{id}",
        function: "conversations",
        ops: &[
            ("GET", Op::GetConversation),
            ("PATCH", Op::UpdateConversation),
            ("DELETE", Op::DeleteConversation),
        ],
    },
    Route {
        pattern: "/api/folders",
        function: "conversations",
        ops: &[("GET", Op::ListFolders), ("POST", Op::CreateFolder)],
    },
    Route {
        pattern: "/api/folders/{id}",
        function: "conversations",
        ops: &[
            ("GET", Op::GetFolder),
            ("PATCH", Op::UpdateFolder),
            ("DELETE", Op::DeleteFolder),
        ],
    },
    Route {
        pattern: "/api/account",
        function: "conversations",
        ops: &[("DELETE", Op::EraseAccount)],
    },
    Route {
        pattern: "/api/tags",
        function: "conversations",
        ops: &[("GET", Op::ListTags)],
    },
    Route {
        pattern: "/api/trash",
        function: "conversations",
        ops: &[("GET", Op::ListTrash), ("DELETE", Op::EmptyTrash)],
    },
    Route {
        pattern: "/api/trash/{id}",
        function: "conversations",
        ops: &[("DELETE", Op::DeleteForever)],
    },
    Route {
        pattern: "/api/trash/{id}/restore",
        function: "conversations",
        ops: &[("POST", Op::RestoreConversation)],
    },
    Route {
        pattern: "/api/search",
        function: "conversations",
        ops: &[("GET", Op::Search)],
    },
    Route {
        pattern: "/api/projects",
        function: "conversations",
        ops: &[("GET", Op::ListProjects), ("POST", Op::CreateProject)],
    },
    Route {
        pattern: "/api/projects/{id}",
        function: "conversations",
        ops: &[
            ("GET", Op::GetProject),
            ("PATCH", Op::UpdateProject),
            ("DELETE", Op::DeleteProject),
        ],
    },
    Route {
        pattern: "/api/files",
        function: "conversations",
        ops: &[("GET", Op::ListFiles), ("POST", Op::CreateFile)],
    },
    Route {
        pattern: "/api/files/{id}",
        function: "conversations",
        ops: &[("GET", Op::GetFile), ("DELETE", Op::DeleteFile)],
    },
    Route {
        pattern: "/api/files/{id}/complete",
        function: "conversations",
        ops: &[("POST", Op::CompleteFile)],
    },
    Route {
        pattern: "/api/prompts",
        function: "conversations",
        ops: &[("GET", Op::ListPrompts), ("POST", Op::CreatePrompt)],
    },
    Route {
        pattern: "/api/prompts/{id}",
        function: "conversations",
        ops: &[
            ("GET", Op::GetPrompt),
            ("PATCH", Op::UpdatePrompt),
            ("DELETE", Op::DeletePrompt),
        ],
    },
    Route {
        pattern: "/api/prompts/{id}/conversations",
        function: "conversations",
        ops: &[("POST", Op::StartFromPrompt)],
    },
    Route {
        pattern: "/api/conversations/{id}/active-branch",
        function: "conversations",
        ops: &[("PUT", Op::SetActiveBranch)],
    },
    Route {
        pattern: "/api/conversations/{id}/shares",
        function: "conversations",
        ops: &[
            ("GET", Op::ListShares),
            ("PUT", Op::ShareConversation),
            ("DELETE", Op::Unshare),
        ],
    },
    Route {
        pattern: "/api/shared",
        function: "conversations",
        ops: &[("GET", Op::SharedWithMe)],
    },
    Route {
        pattern: "/api/shared/{id}",
        function: "conversations",
        ops: &[("DELETE", Op::LeaveShared)],
    },
    Route {
        pattern: "/api/conversations/{id}/export",
        function: "conversations",
        ops: &[("GET", Op::ExportConversation)],
    },
    Route {
        pattern: "/api/export",
        function: "export",
        ops: &[("GET", Op::ExportAll)],
    },
    Route {
        pattern: IMPORT_PATH,
        function: "conversations",
        ops: &[("POST", Op::Import)],
    },
    Route {
        pattern: "/api/imports",
        function: "conversations",
        ops: &[("GET", Op::ListImports), ("POST", Op::CreateImport)],
    },
    Route {
        pattern: "/api/imports/{id}",
        function: "conversations",
        ops: &[("GET", Op::GetImport), ("DELETE", Op::DeleteImport)],
    },
    Route {
        pattern: "/api/conversations/{id}/messages",
        function: "messages",
        ops: &[
            ("GET", Op::ListMessages),
            ("POST", Op::CreateMessage),
            ("DELETE", Op::ClearMessages),
        ],
    },
    Route {
        pattern: "/api/conversations/{id}/messages/{messageId}/reaction",
        function: "messages",
        ops: &[("PUT", Op::PutReaction), ("DELETE", Op::DeleteReaction)],
    },
    Route {
        pattern: "/api/conversations/{id}/messages/{messageId}/bookmark",
        function: "messages",
        ops: &[("PUT", Op::PutBookmark), ("DELETE", Op::DeleteBookmark)],
    },
    Route {
        pattern: "/api/bookmarks",
        function: "messages",
        ops: &[("GET", Op::ListBookmarks)],
    },
    Route {
        pattern: "/api/chat",
        function: "chat",
        ops: &[("GET", Op::ChatInfo(None)), ("POST", Op::Chat(None))],
    },
    Route {
        pattern: "/api/chat/manufacturing",
        function: "chat",
        ops: &[
            ("GET", Op::ChatInfo(Some(Solution::Manufacturing))),
            ("POST", Op::Chat(Some(Solution::Manufacturing))),
        ],
    },
    Route {
        pattern: "/api/chat/maintenance",
        function: "chat",
        ops: &[
            ("GET", Op::ChatInfo(Some(Solution::Maintenance))),
            ("POST", Op::Chat(Some(Solution::Maintenance))),
        ],
    },
    Route {
        pattern: "/api/chat/support",
        function: "chat",
        ops: &[
            ("GET", Op::ChatInfo(Some(Solution::Support))),
            ("POST", Op::Chat(Some(Solution::Support))),
        ],
    },
    Route {
        pattern: "/api/chat/change-management",
        function: "chat",
        ops: &[
            ("GET", Op::ChatInfo(Some(Solution::ChangeManagement))),
            ("POST", Op::Chat(Some(Solution::ChangeManagement))),
        ],
    },
    Route {
        pattern: "/api/chat/impact-analysis",
        function: "chat",
        ops: &[
            ("GET", Op::ChatInfo(Some(Solution::ImpactAnalysis))),
            ("POST", Op::Chat(Some(Solution::ImpactAnalysis))),
        ],
    },
    Route {
        pattern: "/api/chat/requirements",
        function: "chat",
        ops: &[
            ("GET", Op::ChatInfo(Some(Solution::Requirements))),
            ("POST", Op::Chat(Some(Solution::Requirements))),
        ],
    },
    Route {
        pattern: "/api/chat/{id}/stream",
        function: "chat",
        ops: &[("GET", Op::ResumeChat(None))],
    },
    Route {
        pattern: "/api/chat/{id}/stop",
        function: "chat",
        ops: &[("POST", Op::StopChat(None))],
    },
    Route {
        pattern: "/api/chat/manufacturing/{id}/stream",
        function: "chat",
        ops: &[("GET", Op::ResumeChat(Some(Solution::Manufacturing)))],
    },
    Route {
        pattern: "/api/chat/manufacturing/{id}/stop",
        function: "chat",
        ops: &[("POST", Op::StopChat(Some(Solution::Manufacturing)))],
    },
    Route {
        pattern: "/api/chat/maintenance/{id}/stream",
        function: "chat",
        ops: &[("GET", Op::ResumeChat(Some(Solution::Maintenance)))],
    },
    Route {
        pattern: "/api/chat/maintenance/{id}/stop",
        function: "chat",
        ops: &[("POST", Op::StopChat(Some(Solution::Maintenance)))],
    },
    Route {
        pattern: "/api/chat/support/{id}/stream",
        function: "chat",
        ops: &[("GET", Op::ResumeChat(Some(Solution::Support)))],
    },
    Route {
        pattern: "/api/chat/support/{id}/stop",
        function: "chat",
        ops: &[("POST", Op::StopChat(Some(Solution::Support)))],
    },
    Route {
        pattern: "/api/chat/change-management/{id}/stream",
        function: "chat",
        ops: &[("GET", Op::ResumeChat(Some(Solution::ChangeManagement)))],
    },
    Route {
        pattern: "/api/chat/change-management/{id}/stop",
        function: "chat",
        ops: &[("POST", Op::StopChat(Some(Solution::ChangeManagement)))],
    },
    Route {
        pattern: "/api/chat/impact-analysis/{id}/stream",
        function: "chat",
        ops: &[("GET", Op::ResumeChat(Some(Solution::ImpactAnalysis)))],
    },
    Route {
        pattern: "/api/chat/impact-analysis/{id}/stop",
        function: "chat",
        ops: &[("POST", Op::StopChat(Some(Solution::ImpactAnalysis)))],
    },
    Route {
        pattern: "/api/chat/requirements/{id}/stream",
        function: "chat",
        ops: &[("GET", Op::ResumeChat(Some(Solution::Requirements)))],
    },
    Route {
        pattern: "/api/chat/requirements/{id}/stop",
        function: "chat",
        ops: &[("POST", Op::StopChat(Some(Solution::Requirements)))],
    },
    Route {
        pattern: "/api/analytics/summary",
        function: "analytics",
        ops: &[("GET", Op::AnalyticsSummary)],
    },
    Route {
        pattern: "/api/audit",
        function: "analytics",
        ops: &[("GET", Op::ListAudit)],
    },
    Route {
        pattern: "/dashboard",
        function: "analytics",
        ops: &[("GET", Op::Dashboard)],
    },
    Route {
        pattern: "/api/usage",
        function: "analytics",
        ops: &[("GET", Op::Usage)],
    },
    Route {
        pattern: "/api/admin/users/{id}/plan",
        function: "analytics",
        ops: &[
            ("GET", Op::GetUserPlan),
            ("PUT", Op::SetUserPlan),
            ("DELETE", Op::ClearUserPlan),
        ],
    },
    Route {
        pattern: "/api/health",
        function: "conversations",
        ops: &[("GET", Op::Health)],
    },
    Route {
        pattern: "/api/conversations/{id}/links",
        function: "conversations",
        ops: &[("GET", Op::ListLinks), ("POST", Op::CreateLink)],
    },
    Route {
        pattern: "/api/conversations/{id}/links/{linkId}",
        function: "conversations",
        ops: &[("PATCH", Op::UpdateLink), ("DELETE", Op::DeleteLink)],
    },
    Route {
        pattern: "/api/share/{token}",
        function: "conversations",
        ops: &[("GET", Op::ReadShare)],
    },
    Route {
        pattern: "/api/share/{token}/continue",
        function: "conversations",
        ops: &[("POST", Op::ContinueShare)],
    },
];

/// Which routes a process serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every route (the local gateway).
    All,
    /// One function's routes.
    Function(&'static str),
}

/// A matched route and its path parameters.
#[derive(Clone, Copy, Debug)]
pub struct Matched<'a> {
    /// The route.
    pub route: &'static Route,
    /// The first parameter segment (`{id}`), raw.
    pub id: Option<&'a str>,
    /// The second parameter segment (`{messageId}` in
    /// `/api/conversations/{id}/messages/{messageId}/...`), raw.
    pub sub: Option<&'a str>,
}

/// Strips an API Gateway stage prefix (`/prod/api/...`) if one is left in the path.
pub fn normalize(path: &str) -> &str {
    if path.starts_with("/api/") || path == "/api" {
        return path;
    }
    match path.find("/api/") {
        Some(i) if !path[..i].is_empty() && !path[1..i].contains('/') => &path[i..],
        _ => path,
    }
}

/// Finds the route for a path within a scope.
pub fn find(scope: Scope, path: &str) -> Option<Matched<'_>> {
    let path = normalize(path);
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES
        .iter()
        .filter(|r| match scope {
            Scope::All => true,
            Scope::Function(f) => r.function == f,
        })
        .find_map(|route| {
            let pattern: Vec<&str> = route.pattern.split('/').collect();
            if pattern.len() != segments.len() {
                return None;
            }
            let mut params = [None, None];
            let mut n = 0;
            for (p, s) in pattern.iter().zip(&segments) {
                if p.starts_with('{') {
                    if s.is_empty() || n == params.len() {
                        return None;
                    }
                    params[n] = Some(*s);
                    n += 1;
                } else if p != s {
                    return None;
                }
            }
            Some(Matched {
                route,
                id: params[0],
                sub: params[1],
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_routes_with_or_without_a_stage_or_trailing_slash() {
        let m = find(Scope::All, "/api/conversations/abc/messages").map(|m| (m.route.function, m.id));
        assert_eq!(m, Some(("messages", Some("abc"))));
        assert!(find(Scope::All, "/prod/api/conversations").is_some());
        assert!(find(Scope::All, "/api/conversations/").is_some());
        assert!(find(Scope::All, "/api/conversations//messages").is_none());
        assert!(find(Scope::All, "/api/other").is_none());
        assert!(find(Scope::Function("messages"), "/api/conversations").is_none());
    }

    #[test]
    fn every_pattern_has_at_most_two_parameters_and_they_are_well_formed() {
        for route in ROUTES {
            let params: Vec<&str> = route.pattern.split('/').filter(|s| s.starts_with('{')).collect();
            assert!(params.len() <= 2, "{}", route.pattern);
            assert!(
                params.iter().all(|p| p.ends_with('}') && p.len() > 2),
                "{}",
                route.pattern
            );
        }
    }
}

//! Conversations: titles, the solution chats, and the conversation itself.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ConversationId, FolderId, MessageId, ProjectId, Shelf, Timestamp, UserId};
use crate::error::ValidationError;

/// Title bounds (characters), seed 000's zod schema: `z.string().min(1).max(100)`.
pub const MAX_TITLE_CHARS: usize = 100;
/// Title used when a conversation is created without one (seed 000).
pub const DEFAULT_TITLE: &str = "New conversation";
/// How many characters of the newest message a conversation keeps as its `lastMessage` preview.
pub const PREVIEW_CHARS: usize = 280;

/// A conversation title: 1..=100 characters, no control characters, surrounding whitespace trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Parses a user-supplied title.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(ValidationError::field("title", "must not be empty"));
        }
        if chars > MAX_TITLE_CHARS {
            return Err(ValidationError::field("title", "must be at most 100 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::field("title", "must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A title made from the first user message: whitespace folded, control characters
    /// dropped, at most `max` characters, cut at the last word boundary that fits (a single word
    /// longer than `max` is cut inside it), trailing spaces and punctuation that ends a clause
    /// (`,;:`) trimmed.
    pub fn from_first_message(text: &str, max: usize) -> Self {
        let folded: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let cut: String = if folded.chars().count() <= max {
            folded
        } else {
            let head: String = folded.chars().take(max).collect();
            let next_is_space = folded.chars().nth(max) == Some(' ');
            match head.rfind(' ') {
                Some(space) if !next_is_space && space > 0 => head[..space].to_owned(),
                _ => head,
            }
        };
        let trimmed = cut.trim_end_matches([' ', ',', ';', ':']);
        if trimmed.is_empty() {
            Self(DEFAULT_TITLE.to_owned())
        } else {
            Self(trimmed.to_owned())
        }
    }

    /// Whether a conversation with this title still has the default one (a first message may
    /// then name it).
    pub fn is_default(title: &str) -> bool {
        title == DEFAULT_TITLE
    }

    /// The default title.
    pub fn default_title() -> Self {
        Self(DEFAULT_TITLE.to_owned())
    }

    /// The title as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The six solution chats. A conversation of the general chat has no solution (`null`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Solution {
    /// Manufacturing reports and insights (MES + engineering).
    Manufacturing,
    /// Maintenance and reliability (MTBF / MTTR).
    Maintenance,
    /// Support and incident management (tickets + RCA + ops).
    Support,
    /// Change management (ECOs + process changes).
    ChangeManagement,
    /// Impact analysis (yield + cost + delivery).
    ImpactAnalysis,
    /// Requirements management (engineering + IT).
    Requirements,
}

impl Solution {
    /// Every solution, in the seed's order.
    pub const ALL: [Solution; 6] = [
        Solution::Manufacturing,
        Solution::Maintenance,
        Solution::Support,
        Solution::ChangeManagement,
        Solution::ImpactAnalysis,
        Solution::Requirements,
    ];

    /// The wire name (`change-management`, ...), also the path segment of its chat route.
    pub fn as_str(self) -> &'static str {
        match self {
            Solution::Manufacturing => "manufacturing",
            Solution::Maintenance => "maintenance",
            Solution::Support => "support",
            Solution::ChangeManagement => "change-management",
            Solution::ImpactAnalysis => "impact-analysis",
            Solution::Requirements => "requirements",
        }
    }
}

impl FromStr for Solution {
    type Err = ValidationError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Solution::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
            ValidationError::field(
                "solutionType",
                "must be one of manufacturing, maintenance, support, change-management, impact-analysis, requirements",
            )
        })
    }
}

/// Which conversations a listing wants: all of them, the general chat's, or one solution's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolutionFilter {
    /// Conversations with no solution (`solutionType=general` in the query string).
    General,
    /// Conversations of one solution.
    Only(Solution),
}

impl SolutionFilter {
    /// Parses the `solutionType` query parameter: `general` or a solution name.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw == "general" {
            Ok(SolutionFilter::General)
        } else {
            raw.parse().map(SolutionFilter::Only)
        }
    }

    /// The bucket name used in index keys: `general` or the solution's name.
    pub fn bucket(self) -> &'static str {
        match self {
            SolutionFilter::General => "general",
            SolutionFilter::Only(s) => s.as_str(),
        }
    }

    /// The filter a conversation with this solution belongs to.
    pub fn of(solution: Option<Solution>) -> Self {
        solution.map_or(SolutionFilter::General, SolutionFilter::Only)
    }
}

/// A conversation: its settings and a preview of its newest message.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// Who owns it; every read and write is scoped to the owner.
    pub owner: UserId,
    /// Its title.
    pub title: String,
    /// Pinned conversations list first.
    pub is_pinned: bool,
    /// Whether it has been shared.
    pub is_shared: bool,
    /// The model id it uses.
    pub model: String,
    /// The solution chat it belongs to; `None` for the general chat.
    pub solution_type: Option<Solution>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it or its messages last changed.
    pub updated_at: Timestamp,
    /// The first characters of its newest message.
    pub last_message: Option<String>,
    /// How many messages it holds (every branch).
    pub message_count: u64,
    /// The newest message of the active branch; `None`: the newest message.
    pub active_leaf: Option<MessageId>,
    /// The newest chat turn admitted in it, as the single-conversation reads return it
    /// (`get_conversation_with_messages`); `None` in listings and before its first turn.
    pub live: Option<super::LiveTurn>,
    /// The project it belongs to, if any.
    pub project_id: Option<ProjectId>,
    /// The folder it is in, if any.
    pub folder_id: Option<FolderId>,
    /// Its tags, normalised ([`super::parse_tags`]), in the order given.
    pub tags: Vec<String>,
    /// When it was archived (hidden from the default list); `None`: not archived.
    pub archived_at: Option<Timestamp>,
    /// When it was moved to the trash; `None`: not in the trash.
    pub trashed_at: Option<Timestamp>,
    /// Where it was imported from (`POST /api/import`); `None` for a conversation made here.
    pub imported_from: Option<ImportSource>,
    /// Until when a share link of it answers (the latest expiry of its live links; the far
    /// future for a link that never expires; `None`: no live link): `isShared` is computed from
    /// it at read time ([`Conversation::shared_at`]).
    pub shared_until: Option<Timestamp>,
}

/// The export an imported conversation came from (`importedFrom` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportSource {
    /// Athena's own JSON export (`docs/export.md`).
    Athena,
    /// ChatGPT's `conversations.json`.
    Chatgpt,
    /// Claude's `conversations.json`.
    Claude,
    /// A share link's snapshot, continued by its reader (`POST /api/share/{token}/continue`).
    Share,
}

impl ImportSource {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportSource::Athena => "athena",
            ImportSource::Chatgpt => "chatgpt",
            ImportSource::Claude => "claude",
            ImportSource::Share => "share",
        }
    }

    /// Parses a wire name (`None` for anything else).
    pub fn from_name(raw: &str) -> Option<Self> {
        [
            ImportSource::Athena,
            ImportSource::Chatgpt,
            ImportSource::Claude,
            ImportSource::Share,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

impl Conversation {
    /// Whether it is shared at `now`: the seed's flag (set by `PATCH isShared`), or a live share
    /// link.
    pub fn shared_at(&self, now: Timestamp) -> bool {
        self.is_shared || self.shared_until.is_some_and(|t| t > now)
    }

    /// A new, empty conversation created `at` (unpinned, unshared, no preview, no messages).
    pub fn new(
        id: ConversationId,
        owner: UserId,
        title: impl Into<String>,
        model: impl Into<String>,
        solution_type: Option<Solution>,
        at: Timestamp,
    ) -> Self {
        Self {
            id,
            owner,
            title: title.into(),
            is_pinned: false,
            is_shared: false,
            model: model.into(),
            solution_type,
            created_at: at,
            updated_at: at,
            last_message: None,
            message_count: 0,
            active_leaf: None,
            live: None,
            project_id: None,
            folder_id: None,
            tags: Vec::new(),
            archived_at: None,
            trashed_at: None,
            imported_from: None,
            shared_until: None,
        }
    }

    /// The shelf it sits on.
    pub fn shelf(&self) -> Shelf {
        Shelf::of(self.archived_at, self.trashed_at)
    }

    /// When a trashed conversation is purged ([`super::TRASH_DAYS`] after it was trashed).
    pub fn purge_at(&self) -> Option<Timestamp> {
        self.trashed_at.map(|t| t + chrono::Duration::days(super::TRASH_DAYS))
    }
}

/// The first `PREVIEW_CHARS` characters of a message, for the conversation list.
pub fn preview(content: &str) -> String {
    content.chars().take(PREVIEW_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("  hi  ").map(|t| t.0), Ok("hi".to_owned()));
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"é".repeat(100)).is_ok());
        assert!(Title::parse(&"é".repeat(101)).is_err());
        assert!(Title::parse("a\u{7}b").is_err());
    }

    #[test]
    fn a_title_from_a_first_message_folds_whitespace_and_cuts_at_the_limit() {
        let t = Title::from_first_message("  How do\n I   build a chat app?  ", 50);
        assert_eq!(t.as_str(), "How do I build a chat app?");
        assert_eq!(
            Title::from_first_message(&"ab".repeat(40), 50).as_str().chars().count(),
            50
        );
        assert_eq!(Title::from_first_message(" \n ", 50).as_str(), DEFAULT_TITLE);
        let question = "How do I compute MTBF for press line 2 when two failures were logged this month?";
        assert_eq!(
            Title::from_first_message(question, 50).as_str(),
            "How do I compute MTBF for press line 2 when two"
        );
        // A word ending exactly at the limit is kept whole.
        assert_eq!(Title::from_first_message("aaaa bbbb cccc", 9).as_str(), "aaaa bbbb");
        assert_eq!(Title::from_first_message("Line 3, yield: why?", 7).as_str(), "Line 3");
        assert_eq!(Title::from_first_message("héllo wörld", 8).as_str(), "héllo");
    }

    #[test]
    fn solutions_round_trip_through_their_wire_names() {
        for s in Solution::ALL {
            assert_eq!(s.as_str().parse::<Solution>(), Ok(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
        assert_eq!(SolutionFilter::parse("general"), Ok(SolutionFilter::General));
        assert!(SolutionFilter::parse("finance").is_err());
    }
}

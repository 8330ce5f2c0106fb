//! Domain types: conversations, messages and analytics events, with the newtypes that parse raw
//! input once at the edge (`ConversationId::parse`, `Title::parse`, ...). JSON field names are the
//! seeds' (camelCase); timestamps are RFC 3339 UTC with millisecond precision, as Prisma wrote them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Longest id we accept for conversations, messages and users (a ULID is 26, a cuid 25, an AI SDK
/// nanoid 16; 64 leaves room for other clients' ids without letting ids become payloads).
pub const MAX_ID_LEN: usize = 64;
/// Title bounds (characters), seed 000's zod schema: `z.string().min(1).max(100)`.
pub const MAX_TITLE_CHARS: usize = 100;
/// Title used when a conversation is created without one (seed 000).
pub const DEFAULT_TITLE: &str = "New conversation";
/// How many characters of the newest message a conversation keeps as its `lastMessage` preview.
pub const PREVIEW_CHARS: usize = 280;

/// A timestamp truncated to milliseconds, so every store round-trips it exactly.
pub type Timestamp = DateTime<Utc>;

/// Now, truncated to the millisecond.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

/// Serde helpers writing timestamps as `2025-01-20T10:00:00.000Z` (Prisma's format).
pub mod ts {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Formats a timestamp the way every Athena response and item does.
    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Serializes as RFC 3339 with milliseconds and `Z`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// Accepts any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

fn valid_id(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_ID_LEN
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses an id: 1..=64 characters of `[A-Za-z0-9_-]`.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                if valid_id(raw) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(ValidationError::field(
                        $field,
                        "must be 1 to 64 characters of letters, digits, '_' or '-'",
                    ))
                }
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A conversation id (server-made ULIDs, or the client's chat id such as an AI SDK nanoid).
    ConversationId,
    "id"
);
id_type!(
    /// A message id: a ULID made by the server, so sorting ids sorts messages by creation.
    MessageId,
    "messageId"
);
id_type!(
    /// The owner of conversations: the `sub` of the caller (or the fixed local user).
    UserId,
    "userId"
);
id_type!(
    /// An id chosen by the client for a message (the AI SDK's UIMessage id); makes submits idempotent.
    ClientMessageId,
    "clientMessageId"
);

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

    /// A title made from the first user message: whitespace folded, at most `max` characters.
    pub fn from_first_message(text: &str, max: usize) -> Self {
        let folded: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let cut: String = folded.chars().filter(|c| !c.is_control()).take(max).collect();
        if cut.is_empty() {
            Self(DEFAULT_TITLE.to_owned())
        } else {
            Self(cut)
        }
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

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person chatting.
    User,
    /// The model.
    Assistant,
    /// A system instruction.
    System,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "system" => Ok(Role::System),
            "tool" => Ok(Role::Tool),
            _ => Err(ValidationError::field(
                "role",
                "must be one of user, assistant, system, tool",
            )),
        }
    }
}

/// Why a reply ended (the AI SDK's finish reasons, plus `aborted` for a client that went away).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// The output token limit was reached.
    Length,
    /// A content filter or guardrail stopped it.
    ContentFilter,
    /// The model asked for tools.
    ToolCalls,
    /// The provider failed mid-reply; the partial text is kept.
    Error,
    /// The client disconnected or stopped the reply; the partial text is kept.
    Aborted,
    /// Anything else.
    Other,
}

/// A structured part of a message besides its text: tool calls and their results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum MessagePart {
    /// The model called a tool.
    #[serde(rename_all = "camelCase")]
    ToolCall {
        /// Id linking the call to its result.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// The arguments, as the model gave them.
        input: serde_json::Value,
    },
    /// A tool answered.
    #[serde(rename_all = "camelCase")]
    ToolResult {
        /// Id of the call this answers.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// What the tool returned.
        output: serde_json::Value,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

/// Token usage as the provider reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// How many messages it holds.
    pub message_count: u64,
}

/// A message of a conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Its id, a ULID: messages sort by id.
    pub id: MessageId,
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// The client's id for it, when the client gave one (idempotent submits).
    pub client_id: Option<ClientMessageId>,
    /// Who wrote it.
    pub role: Role,
    /// Its text, stored verbatim.
    pub content: String,
    /// Tool calls and results, when there were any.
    pub parts: Vec<MessagePart>,
    /// The model that wrote it (assistant messages).
    pub model: Option<String>,
    /// Token usage (assistant messages).
    pub usage: Option<Usage>,
    /// Milliseconds from request to last token (assistant messages).
    pub latency_ms: Option<u64>,
    /// Why the reply ended (assistant messages).
    pub finish_reason: Option<FinishReason>,
    /// The error code when the reply failed part-way.
    pub error: Option<String>,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl Message {
    /// A plain message with only text.
    pub fn text(id: MessageId, conversation_id: ConversationId, role: Role, content: String, at: Timestamp) -> Self {
        Self {
            id,
            conversation_id,
            client_id: None,
            role,
            content,
            parts: Vec::new(),
            model: None,
            usage: None,
            latency_ms: None,
            finish_reason: None,
            error: None,
            created_at: at,
        }
    }
}

/// An analytics event (seed 001's `AnalyticsEvent`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsEvent {
    /// A ULID.
    pub id: String,
    /// `conversation_created`, `message_sent`, `api_call`, `model_switched`, `error`, `performance`.
    pub event_type: String,
    /// The solution, `None` for the general chat.
    pub solution_type: Option<Solution>,
    /// The (hashed) user.
    pub user_id: Option<String>,
    /// The conversation concerned.
    pub conversation_id: Option<String>,
    /// The model concerned.
    pub model: Option<String>,
    /// Free-form details (tokens, latency, cost, error code).
    pub metadata: serde_json::Value,
    /// When it happened.
    #[serde(with = "ts")]
    pub timestamp: Timestamp,
}

/// The first `PREVIEW_CHARS` characters of a message, for the conversation list.
pub fn preview(content: &str) -> String {
    content.chars().take(PREVIEW_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_ulids_cuids_and_nanoids_and_refuse_everything_else() {
        assert!(ConversationId::parse("01JD8X7Q9K3M5N7P9R1T3V5X7Z").is_ok());
        assert!(ConversationId::parse("clx123abc").is_ok());
        assert!(ConversationId::parse("Xy_9-AbC").is_ok());
        for bad in ["", "a b", "../etc", "é", "a/b", &"x".repeat(65), "a\0b"] {
            assert!(ConversationId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

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

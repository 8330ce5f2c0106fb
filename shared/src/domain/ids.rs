//! Ids: the newtypes that parse raw ids once at the edge, and the ULID generator.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Longest id we accept for conversations, messages and users (a ULID is 26, a cuid 25, an AI SDK
/// nanoid 16; 64 leaves room for other clients' ids without letting ids become payloads).
pub const MAX_ID_LEN: usize = 64;

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
    /// A project id: a ULID made by the server.
    ProjectId,
    "projectId"
);
id_type!(
    /// A folder id: a ULID made by the server.
    FolderId,
    "folderId"
);
id_type!(
    /// A saved prompt's id: a ULID made by the server, or a shared prompt's configured id.
    PromptId,
    "promptId"
);
id_type!(
    /// An attached file's id: a ULID made by the server.
    FileId,
    "fileId"
);
id_type!(
    /// An import job's id: a ULID made by the server.
    ImportJobId,
    "importId"
);
id_type!(
    /// An id chosen by the client for a message (the AI SDK's UIMessage id); makes submits idempotent.
    ClientMessageId,
    "clientMessageId"
);
id_type!(
    /// A share link's id: a ULID made by the server (not its token: the id names the link to its
    /// owner; the token opens it).
    LinkId,
    "linkId"
);

impl MessageId {
    /// The parent a message names when it starts the conversation explicitly (a new version of
    /// an edited first message). It is never a message's id (those are ULIDs), so a conversation's
    /// tree reads a message naming it as a root; a message that names no parent at all follows
    /// the one before it instead.
    pub fn root() -> Self {
        Self("root".to_owned())
    }
}

/// Makes message ids: ULIDs, strictly increasing within a process even inside one millisecond, so
/// messages appended in the same millisecond keep their order.
#[derive(Default)]
pub struct IdGenerator {
    inner: std::sync::Mutex<ulid::Generator>,
}

impl std::fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdGenerator")
    }
}

impl IdGenerator {
    /// A new generator.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next ULID (26 characters, Crockford base 32), greater than every one made before here.
    pub fn next_ulid(&self) -> String {
        let mut generator = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // `generate` fails only when 2^80 ids were made in one millisecond; a fresh ULID is then fine.
        generator.generate().unwrap_or_else(|_| ulid::Ulid::new()).to_string()
    }

    /// A new message id.
    pub fn message_id(&self) -> MessageId {
        // A ULID is always a valid id.
        MessageId::parse(&self.next_ulid()).unwrap_or_else(|_| unreachable_id())
    }

    /// A new conversation id.
    pub fn conversation_id(&self) -> ConversationId {
        ConversationId::parse(&self.next_ulid()).unwrap_or_else(|_| unreachable_id())
    }

    /// A new prompt id.
    pub fn prompt_id(&self) -> PromptId {
        PromptId::parse(&self.next_ulid()).unwrap_or_else(|_| unreachable_id())
    }

    /// A new project id.
    pub fn project_id(&self) -> ProjectId {
        ProjectId::parse(&self.next_ulid()).unwrap_or_else(|_| unreachable_id())
    }

    /// A new folder id.
    pub fn folder_id(&self) -> FolderId {
        FolderId::parse(&self.next_ulid()).unwrap_or_else(|_| unreachable_id())
    }

    /// A new file id.
    pub fn file_id(&self) -> FileId {
        FileId::parse(&self.next_ulid()).unwrap_or_else(|_| unreachable_id())
    }

    /// A new import job id.
    pub fn import_job_id(&self) -> ImportJobId {
        ImportJobId::parse(&self.next_ulid()).unwrap_or_else(|_| unreachable_id())
    }
}

#[cold]
fn unreachable_id() -> ! {
    // ULIDs are 26 Crockford base-32 characters, which `valid_id` always accepts.
    panic!("a ULID failed id validation")
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
    fn ids_made_in_one_millisecond_still_increase() {
        let ids = IdGenerator::new();
        let made: Vec<String> = (0..1000).map(|_| ids.next_ulid()).collect();
        assert!(made.windows(2).all(|w| w[0] < w[1]));
    }
}

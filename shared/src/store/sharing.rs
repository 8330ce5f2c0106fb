//! The port of sharing a conversation with named users (re-exported by [`super::ports`]): an
//! owner's grants of [`GrantRole::Viewer`] or [`GrantRole::Collaborator`] to a user id or to a
//! (verified) e-mail address, read back by conversation (the policy's one lookup) and by
//! grantee ("shared with me").
//!
//! A conversation id is shared by one owner only: granting claims the id for its owner
//! ([`super::ports::Conversations::claim_conversation_id`]), so a grantee's lookup by id cannot be
//! answered by another owner's conversation of the same id.

use async_trait::async_trait;

use crate::domain::{ConversationId, Timestamp, UserId};
use crate::error::StoreError;

/// Most users one conversation is shared with.
pub const MAX_GRANTS_PER_CONVERSATION: usize = 50;

/// What a grant lets its grantee do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantRole {
    /// Read the conversation.
    Viewer,
    /// Read it and chat in it (turns charged to the collaborator).
    Collaborator,
}

impl GrantRole {
    /// The wire and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantRole::Viewer => "viewer",
            GrantRole::Collaborator => "collaborator",
        }
    }

    /// Parses the wire and stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "viewer" => Some(GrantRole::Viewer),
            "collaborator" => Some(GrantRole::Collaborator),
            _ => None,
        }
    }
}

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Grantee {
    /// A user id (a token's subject).
    User(UserId),
    /// An e-mail address, lower-cased: whoever signs in with it verified.
    Email(String),
}

impl Grantee {
    /// The stored key: `u:<user id>` or `e:<address>`.
    pub fn key(&self) -> String {
        match self {
            Grantee::User(u) => format!("u:{}", u.as_str()),
            Grantee::Email(e) => format!("e:{e}"),
        }
    }

    /// Parses a stored key.
    pub fn from_key(key: &str) -> Option<Self> {
        if let Some(user) = key.strip_prefix("u:") {
            return UserId::parse(user).ok().map(Grantee::User);
        }
        key.strip_prefix("e:")
            .filter(|e| !e.is_empty())
            .map(|e| Grantee::Email(e.to_owned()))
    }
}

/// One conversation shared with one grantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Its owner (who granted it).
    pub owner: UserId,
    /// Who it is shared with.
    pub grantee: Grantee,
    /// What they may do.
    pub role: GrantRole,
    /// When it was first granted.
    pub created_at: Timestamp,
    /// When its role last changed.
    pub updated_at: Timestamp,
}

/// Named-user sharing.
#[async_trait]
pub trait Sharing: Send + Sync {
    /// Creates or replaces (the role, `updated_at`) the grant of `grant.conversation_id` to
    /// `grant.grantee`, as `grant.owner`: [`StoreError::NotFound`] unless the owner has that
    /// conversation (not in the trash); [`StoreError::Conflict`] past `max` grants on it.
    async fn put_grant(&self, grant: &Grant, max: usize) -> Result<(), StoreError>;

    /// Revokes `owner`'s grant of `id` to `grantee`: [`StoreError::NotFound`] when there is none.
    async fn delete_grant(&self, owner: &UserId, id: &ConversationId, grantee: &Grantee) -> Result<(), StoreError>;

    /// Every grant of `owner`'s conversation `id` (one Query; the owner's list).
    async fn grants_of(&self, owner: &UserId, id: &ConversationId) -> Result<Vec<Grant>, StoreError>;

    /// The grant of conversation `id` to any of `grantees` (a caller's user id and verified
    /// address), the strongest when both have one: the policy's one key lookup for a caller who
    /// is not the conversation's owner.
    async fn grant_for(&self, grantees: &[Grantee], id: &ConversationId) -> Result<Option<Grant>, StoreError>;

    /// Every grant to any of `grantees`, newest first ("shared with me").
    async fn shared_with(&self, grantees: &[Grantee]) -> Result<Vec<Grant>, StoreError>;

    /// Removes every grant to any of `grantees` (account erasure; the grants a user made go with
    /// their conversations).
    async fn erase_grants(&self, grantees: &[Grantee]) -> Result<u64, StoreError>;
}

/// An e-mail address as grants key it: trimmed and lower-cased; `None` unless it looks like one
/// (one `@` with something on each side, at most 254 characters, no spaces or control characters).
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(email)
}

/// A stored timestamp (RFC 3339).
pub(crate) fn parse_time(raw: &str) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The strongest of a caller's grants on one conversation (a collaborator's over a viewer's).
pub fn strongest(grants: Vec<Grant>) -> Option<Grant> {
    grants
        .into_iter()
        .max_by_key(|g| (g.role == GrantRole::Collaborator, g.updated_at))
}

/// Grants newest first (`created_at`, then conversation id, both descending), without
/// repeating a conversation granted to both of a caller's keys (the strongest kept).
pub fn newest_first(grants: Vec<Grant>) -> Vec<Grant> {
    let mut by_id: std::collections::HashMap<ConversationId, Grant> = std::collections::HashMap::new();
    for g in grants {
        match by_id.get(&g.conversation_id) {
            Some(kept) if strongest(vec![kept.clone(), g.clone()]).as_ref() == Some(kept) => {}
            _ => {
                by_id.insert(g.conversation_id.clone(), g);
            }
        }
    }
    let mut out: Vec<Grant> = by_id.into_values().collect();
    out.sort_by(|a, b| (b.created_at, &b.conversation_id).cmp(&(a.created_at, &a.conversation_id)));
    out
}

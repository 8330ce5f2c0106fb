//! Share links (issue 20): a read-only snapshot of a conversation that anyone holding the link's
//! token reads without an account. The token is 128 random bits from the thread's CSPRNG
//! (`rand::rng()`, ChaCha12 seeded from the OS), base64url; stores keep only its SHA-256 (the
//! lookup key), so a leaked table does not hold live tokens.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ts, ConversationId, LinkId, Role, Solution, Timestamp, UserId};

/// Bytes of randomness in a token (128 bits).
pub const TOKEN_BYTES: usize = 16;
/// Characters of a token (base64url, no padding, of [`TOKEN_BYTES`]).
pub const TOKEN_CHARS: usize = 22;
/// Live (unexpired) links a conversation may have at once.
pub const MAX_LINKS_PER_CONVERSATION: usize = 20;
/// The longest expiry a link may be given, in days.
pub const MAX_EXPIRY_DAYS: i64 = 365;

/// A new token: 128 bits from a CSPRNG, base64url without padding (22 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The lookup key of a token: its SHA-256, lowercase hex. Any string hashes (a malformed token
/// simply finds nothing), so every token costs the same one hash and one key lookup.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A share link as its owner manages it (the snapshot itself is kept apart: [`Snapshot`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareLink {
    /// Its id.
    pub id: LinkId,
    /// The conversation's owner (never shown to a reader).
    pub owner: UserId,
    /// The conversation it snapshots.
    pub conversation_id: ConversationId,
    /// SHA-256 of its token ([`token_hash`]): the lookup key.
    pub token_hash: String,
    /// When it was created.
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    /// When it was last changed (refreshed or its expiry changed).
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
    /// When it stops answering; `None`: never.
    #[serde(default, with = "ts::option", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// How many times it was read.
    #[serde(default)]
    pub views: u64,
    /// When its snapshot was taken.
    #[serde(with = "ts")]
    pub snapshot_at: Timestamp,
    /// Messages in its snapshot.
    pub message_count: u64,
}

impl ShareLink {
    /// Whether it answers at `now` (not expired).
    pub fn live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}

/// Until when a conversation with these links is shared: `None` when none is live at `now`, the
/// far future when one never expires, else the latest expiry. Stored on the conversation
/// (`sharedUntil`), so `isShared` is computed at read time and turns false on its own when the
/// last link expires.
pub fn shared_until<'a>(links: impl IntoIterator<Item = &'a ShareLink>, now: Timestamp) -> Option<Timestamp> {
    let mut until: Option<Timestamp> = None;
    for link in links.into_iter().filter(|l| l.live(now)) {
        let end = link.expires_at.unwrap_or_else(forever);
        until = Some(until.map_or(end, |u| u.max(end)));
    }
    until
}

/// The expiry standing for "never" in `sharedUntil` (9999-12-31T00:00:00Z).
pub fn forever() -> Timestamp {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
        .single()
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// A message as a link shows it: no owner, model, usage, latency or conversation id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedMessage {
    /// Its id.
    pub id: String,
    /// Its author.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// Its UI parts (text and tool parts; files without their download URL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<serde_json::Value>,
    /// When it was written.
    #[serde(with = "ts")]
    pub created_at: Timestamp,
}

/// What a link shows: the conversation's title and solution and its active branch, as they were
/// when the snapshot was taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The title.
    pub title: String,
    /// The solution chat; `None`: the general chat.
    pub solution_type: Option<Solution>,
    /// When it was taken.
    #[serde(with = "ts")]
    pub snapshot_at: Timestamp,
    /// The active branch's messages, in order.
    pub messages: Vec<SharedMessage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_22_url_safe_characters_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), TOKEN_CHARS);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}

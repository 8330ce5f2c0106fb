//! Organising conversations: a user's folders (one level of nesting), free tags, and the shelf
//! a conversation sits on (the default list, the archive, the trash).

use serde::{Deserialize, Serialize};

use super::{FolderId, Timestamp, UserId};
use crate::error::ValidationError;

/// Longest folder name (characters).
pub const MAX_FOLDER_NAME_CHARS: usize = 64;
/// Most folders one user may have (top-level and nested together).
pub const MAX_FOLDERS_PER_USER: usize = 200;
/// Most tags on one conversation.
pub const MAX_TAGS_PER_CONVERSATION: usize = 20;
/// Longest tag (characters, after normalising).
pub const MAX_TAG_LEN: usize = 32;
/// How long a conversation stays restorable in the trash (days); then it is purged.
pub const TRASH_DAYS: i64 = 30;

/// A user's folder of conversations. A folder is top-level or inside a top-level folder (one
/// level of nesting); a conversation is in at most one folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    /// Its id.
    pub id: FolderId,
    /// Who owns it; every read and write is scoped to the owner.
    pub owner: UserId,
    /// Its name, 1..=[`MAX_FOLDER_NAME_CHARS`] characters.
    pub name: String,
    /// The top-level folder it is in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<FolderId>,
    /// When it was created.
    #[serde(with = "super::ts")]
    pub created_at: Timestamp,
    /// When it last changed.
    #[serde(with = "super::ts")]
    pub updated_at: Timestamp,
}

impl Folder {
    /// Checks a name: trimmed, 1..=64 characters, no control characters.
    pub fn parse_name(raw: &str) -> Result<String, ValidationError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(ValidationError::field("name", "must not be empty"));
        }
        if chars > MAX_FOLDER_NAME_CHARS {
            return Err(ValidationError::field("name", "must be at most 64 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::field("name", "must not contain control characters"));
        }
        Ok(trimmed.to_owned())
    }
}

/// Where a conversation sits. Only the default shelf's conversations take chat turns and show in
/// the default list; an archived one is read and written as usual but listed apart; a trashed one
/// answers 404 everywhere but the trash routes until it is restored or purged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Shelf {
    /// The default list.
    #[default]
    Active,
    /// Archived: hidden from the default list, kept as it is.
    Archived,
    /// In the trash: restorable for [`TRASH_DAYS`], then purged.
    Trash,
}

impl Shelf {
    /// The suffix of index keys for this shelf (none for the default list, so the keys of the
    /// default list are the ones written before shelves existed).
    pub fn key_suffix(self) -> &'static str {
        match self {
            Shelf::Active => "",
            Shelf::Archived => "#ARCHIVED",
            Shelf::Trash => "#TRASH",
        }
    }

    /// The shelf of a conversation with these marks (the trash wins over the archive).
    pub fn of(archived_at: Option<Timestamp>, trashed_at: Option<Timestamp>) -> Self {
        match (archived_at, trashed_at) {
            (_, Some(_)) => Shelf::Trash,
            (Some(_), None) => Shelf::Archived,
            (None, None) => Shelf::Active,
        }
    }

    /// Every shelf.
    pub const ALL: [Shelf; 3] = [Shelf::Active, Shelf::Archived, Shelf::Trash];
}

/// Normalises one tag: at most 32 characters as sent, not blank, no control characters; then
/// surrounding whitespace trimmed, inner runs of whitespace folded to one space, lower-cased.
pub fn parse_tag(raw: &str) -> Result<String, ValidationError> {
    let chars = raw.chars().count();
    if chars > MAX_TAG_LEN || raw.trim().is_empty() || raw.chars().any(char::is_control) {
        return Err(ValidationError::field(
            "tags",
            "each tag must be 1 to 32 characters, not blank, without control characters",
        ));
    }
    Ok(raw.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase())
}

/// Normalises a conversation's tags ([`parse_tag`] each): at most
/// [`MAX_TAGS_PER_CONVERSATION`] as sent; duplicates (after normalising) are dropped, the first
/// spelling's position kept.
pub fn parse_tags(raw: &[String]) -> Result<Vec<String>, ValidationError> {
    if raw.len() > MAX_TAGS_PER_CONVERSATION {
        return Err(ValidationError::field("tags", "must be at most 20 tags"));
    }
    let mut tags: Vec<String> = Vec::new();
    for t in raw {
        let tag = parse_tag(t)?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_folded_lowercased_and_deduplicated() {
        let raw = vec!["  Line 3 ".to_owned(), "line   3".to_owned(), "ÉCO".to_owned()];
        assert_eq!(parse_tags(&raw), Ok(vec!["line 3".to_owned(), "éco".to_owned()]));
        assert!(parse_tag("   ").is_err());
        assert!(parse_tag(&"x".repeat(33)).is_err());
        assert_eq!(parse_tag(&"x".repeat(32)).map(|t| t.len()), Ok(32));
        assert!(parse_tag("a\u{7}b").is_err());
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(parse_tags(&many).is_err());
        assert_eq!(parse_tags(&many[..20]).map(|t| t.len()), Ok(20));
        // Duplicates count once in what is stored.
        let mut dup = many[..19].to_vec();
        dup.push("T0".to_owned());
        assert_eq!(parse_tags(&dup).map(|t| t.len()), Ok(19));
        // Length is checked as sent: surrounding spaces count.
        assert!(parse_tag(&format!(" {} ", "x".repeat(31))).is_err());
    }

    #[test]
    fn folder_names_are_checked() {
        assert_eq!(Folder::parse_name("  Plant A "), Ok("Plant A".to_owned()));
        assert!(Folder::parse_name("").is_err());
        assert!(Folder::parse_name(&"é".repeat(65)).is_err());
        assert!(Folder::parse_name("a\nb").is_err());
    }

    #[test]
    fn the_trash_wins_over_the_archive() {
        let t = chrono::Utc::now();
        assert_eq!(Shelf::of(None, None), Shelf::Active);
        assert_eq!(Shelf::of(Some(t), None), Shelf::Archived);
        assert_eq!(Shelf::of(Some(t), Some(t)), Shelf::Trash);
        assert_eq!(Shelf::Active.key_suffix(), "");
    }
}

//! Opaque pagination cursors, shared by both stores so a cursor means the same thing everywhere.
//!
//! A cursor is `base64url(json position) "." base64url(tag)`, where the tag is a SHA-256 digest of
//! the listing's scope (owner, filter) and the position. A cursor altered in any way, or presented
//! to another listing (another owner, another filter), fails the check and is refused as
//! [`StoreError::InvalidCursor`]. The tag is an integrity check, not a secret: cursors hold no
//! data the caller may not see, and queries always use the caller's own partition.
//! [`Page`], a listing page with the cursor of the next one, lives here too.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{ConversationId, MessageId};
use crate::error::StoreError;

const TAG_BYTES: usize = 12;

fn tag(scope: &str, payload: &[u8]) -> [u8; TAG_BYTES] {
    let mut hasher = Sha256::new();
    hasher.update(b"athena-cursor-v1\0");
    hasher.update(scope.as_bytes());
    hasher.update([0]);
    hasher.update(payload);
    let digest = hasher.finalize();
    let mut out = [0u8; TAG_BYTES];
    out.copy_from_slice(&digest[..TAG_BYTES]);
    out
}

/// Encodes a position in the listing identified by `scope`.
pub fn encode<P: Serialize>(scope: &str, position: &P) -> Result<String, StoreError> {
    let payload = serde_json::to_vec(position).map_err(|e| StoreError::internal("encoding a cursor", e))?;
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(tag(scope, &payload))
    ))
}

/// Decodes a cursor issued by [`encode`] for the same scope.
pub fn decode<P: DeserializeOwned>(scope: &str, cursor: &str) -> Result<P, StoreError> {
    let (payload, given) = cursor.split_once('.').ok_or(StoreError::InvalidCursor)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| StoreError::InvalidCursor)?;
    let given = URL_SAFE_NO_PAD.decode(given).map_err(|_| StoreError::InvalidCursor)?;
    if given.as_slice() != tag(scope, &payload) {
        return Err(StoreError::InvalidCursor);
    }
    serde_json::from_slice(&payload).map_err(|_| StoreError::InvalidCursor)
}

/// The scope of an owner's conversation listing: the owner and every filter, so a cursor of one
/// listing is refused by another.
pub fn conversations_scope(owner: &str, query: &super::ports::ListConversations) -> String {
    let bucket = query.solution.map_or("*", crate::domain::SolutionFilter::bucket);
    let mut scope = format!("conversations\0{owner}\0{bucket}");
    if let Some(p) = &query.project {
        scope.push_str(&format!("\0{p}"));
    }
    if let Some(f) = &query.folder {
        scope.push_str(&format!("\0folder={f}"));
    }
    if let Some(t) = &query.tag {
        scope.push_str(&format!("\0tag={t}"));
    }
    if let Some(p) = query.pinned {
        scope.push_str(&format!("\0pinned={p}"));
    }
    match query.shelf {
        crate::domain::Shelf::Active => {}
        crate::domain::Shelf::Archived => scope.push_str("\0archived"),
        crate::domain::Shelf::Trash => scope.push_str("\0trash"),
    }
    scope
}

/// The scope of a conversation's message listing.
pub fn messages_scope(owner: &str, conversation: &str) -> String {
    format!("messages\0{owner}\0{conversation}")
}

/// The scope of a user's audit log.
pub fn audit_scope(user: &str) -> String {
    format!("audit\0{user}")
}

/// The position a conversation listing's cursor holds: the rank and the id of the last
/// conversation returned (the next page starts below it).
pub fn conversation_position(scope: &str, cursor: Option<&str>) -> Result<Option<(i64, String)>, StoreError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let (rank, id): (i64, String) = decode(scope, cursor)?;
    ConversationId::parse(&id).map_err(|_| StoreError::InvalidCursor)?;
    Ok(Some((rank, id)))
}

/// The position a message listing's cursor holds: the id of the last message returned (the next
/// page starts after it).
pub fn message_position(scope: &str, cursor: Option<&str>) -> Result<Option<String>, StoreError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let last: String = decode(scope, cursor)?;
    MessageId::parse(&last).map_err(|_| StoreError::InvalidCursor)?;
    Ok(Some(last))
}

/// One page of an over-fetched listing: `items` holds up to `limit + 1` items in listing order
/// (asking for one more than the page tells whether another page follows). The page keeps the
/// first `limit`; when more followed, its cursor is `position` of the last one kept.
pub fn page<T, P: Serialize>(
    mut items: Vec<T>,
    limit: usize,
    scope: &str,
    position: impl FnOnce(&T) -> P,
) -> Result<Page<T>, StoreError> {
    let more = items.len() > limit;
    items.truncate(limit);
    next_page(items, more, scope, position)
}

/// A page of `items`, with the cursor of the next one (`position` of the last item) when `more`
/// items follow.
pub fn next_page<T, P: Serialize>(
    items: Vec<T>,
    more: bool,
    scope: &str,
    position: impl FnOnce(&T) -> P,
) -> Result<Page<T>, StoreError> {
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(encode(scope, &position(last))?),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// One page of a listing, with the cursor of the next page when there is one.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items of this page, in listing order.
    pub items: Vec<T>,
    /// Opaque cursor for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The same page with every item converted by `f`.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }

    /// The same page with every item converted by `f`, or the first error.
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_, _>>()?,
            next_cursor: self.next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_in_its_own_scope_only() {
        let c = encode("a", &(42i64, "x")).unwrap_or_default();
        assert_eq!(decode::<(i64, String)>("a", &c).ok(), Some((42, "x".to_owned())));
        assert!(matches!(
            decode::<(i64, String)>("b", &c),
            Err(StoreError::InvalidCursor)
        ));
    }

    #[test]
    fn an_over_fetched_listing_pages_with_the_cursor_of_its_last_kept_item() {
        let page = page((1..=4).collect::<Vec<i64>>(), 3, "s", |last| *last).unwrap_or_else(|_| unreachable!());
        assert_eq!(page.items, vec![1, 2, 3]);
        let next = page.next_cursor.unwrap_or_default();
        assert_eq!(decode::<i64>("s", &next).ok(), Some(3));
        let last = super::page((1..=3).collect::<Vec<i64>>(), 3, "s", |last| *last).unwrap_or_else(|_| unreachable!());
        assert_eq!((last.items.len(), last.next_cursor), (3, None));
    }

    #[test]
    fn any_altered_character_is_refused() {
        let c = encode("scope", &(1_700_000_000_000i64, "01JD8X7Q9K3M5N7P9R1T3V5X7Z")).unwrap_or_default();
        for i in 0..c.len() {
            let mut bytes = c.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap_or_default();
            if altered != c {
                assert!(decode::<(i64, String)>("scope", &altered).is_err(), "position {i}");
            }
        }
        for junk in ["", ".", "abc", "abc.def", "%%%.%%%"] {
            assert!(decode::<(i64, String)>("scope", junk).is_err());
        }
    }
}

//! Full-text search over a user's own conversations (`GET /api/search`): the store's ranked index
//! hits ([`Search::search_index`]), each resolved against its conversation through
//! [`Conversations::get_conversation`] (a hit whose conversation is gone or hidden from the caller
//! is dropped, whatever state hides it), paged by an opaque cursor, with a plain-text snippet.
//!
//! The cursor holds the position in the index's ranking, scoped to the owner, the query's words
//! and the filter (a cursor of another search is refused).

use std::collections::HashMap;

use crate::domain::text::{self, Snippet};
use crate::domain::{Conversation, ConversationId, MessageId, Role, SolutionFilter, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{cursor, IndexQuery, Page, Store};

/// Most hits in a page (and the default).
pub const MAX_HITS: usize = 20;
/// Index pages read at most to fill one page when hits are dropped (their conversation is gone,
/// hidden or filtered out); the page is shorter, with a cursor, when they did not fill it.
const MAX_ROUNDS: usize = 3;

/// A search: the query's words ([`text::query_terms`]), the filter and the page.
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    /// The query's distinct words, already checked.
    pub terms: Vec<String>,
    /// Only conversations of this solution (or of the general chat).
    pub solution: Option<SolutionFilter>,
    /// Page size, 1..=[`MAX_HITS`]; `None` means [`MAX_HITS`].
    pub limit: Option<usize>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Where a hit matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matched {
    /// The conversation's title.
    Title,
    /// One of its messages.
    Message,
}

/// One search hit.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    /// The conversation, as the caller sees it now.
    pub conversation: Conversation,
    /// The message to jump to; `None` for a title hit.
    pub message_id: Option<MessageId>,
    /// The message's author.
    pub role: Option<Role>,
    /// When the message was stored (the conversation's creation for a title hit).
    pub created_at: Timestamp,
    /// Title or message.
    pub matched: Matched,
    /// The snippet: plain text and the matched ranges.
    pub snippet: Snippet,
}

/// The cursor scope of a search.
fn scope(owner: &UserId, request: &SearchRequest) -> String {
    format!(
        "search\0{owner}\0{}\0{}",
        request.solution.map_or("*", SolutionFilter::bucket),
        request.terms.join("\0")
    )
}

/// One page of `owner`'s hits for `request`.
pub async fn search(store: &dyn Store, owner: &UserId, request: &SearchRequest) -> Result<Page<SearchHit>, StoreError> {
    let limit = request.limit.unwrap_or(MAX_HITS).clamp(1, MAX_HITS);
    let scope = scope(owner, request);
    let mut offset: usize = match request.cursor.as_deref() {
        Some(c) => cursor::decode(&scope, c)?,
        None => 0,
    };
    let mut resolved: HashMap<ConversationId, Option<Conversation>> = HashMap::new();
    let mut hits = Vec::new();
    let mut more = false;
    for _ in 0..MAX_ROUNDS {
        more = false;
        let want = limit - hits.len() + 1;
        let query = IndexQuery {
            terms: request.terms.clone(),
            solution: request.solution,
            offset,
            limit: want,
        };
        let batch = store.search_index(owner, &query).await?;
        let exhausted = batch.len() < want;
        resolve(store, owner, &batch, &mut resolved).await?;
        for hit in batch {
            if hits.len() == limit {
                more = true;
                break;
            }
            offset += 1;
            let conversation = resolved.get(&hit.conversation_id).cloned().flatten();
            let Some(conversation) = conversation else { continue };
            if request
                .solution
                .is_some_and(|f| f != SolutionFilter::of(conversation.solution_type))
            {
                continue;
            }
            if let Some(hit) = to_hit(conversation, hit, &request.terms) {
                hits.push(hit);
            }
        }
        if more || exhausted {
            break;
        }
        // The index holds more, unread: the rounds may end here.
        more = true;
    }
    let next_cursor = if more {
        Some(cursor::encode(&scope, &offset)?)
    } else {
        None
    };
    Ok(Page {
        items: hits,
        next_cursor,
    })
}

/// Reads the conversations of `batch` not read yet, concurrently: `None` for one that is gone
/// or not visible to the owner.
async fn resolve(
    store: &dyn Store,
    owner: &UserId,
    batch: &[crate::store::IndexHit],
    resolved: &mut HashMap<ConversationId, Option<Conversation>>,
) -> Result<(), StoreError> {
    let mut ids: Vec<&ConversationId> = batch
        .iter()
        .map(|h| &h.conversation_id)
        .filter(|id| !resolved.contains_key(*id))
        .collect();
    ids.sort();
    ids.dedup();
    let read = futures::future::join_all(ids.iter().map(|id| store.get_conversation(owner, id))).await;
    for (id, result) in ids.into_iter().zip(read) {
        let conversation = match result {
            Ok(c) => Some(c),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        resolved.insert(id.clone(), conversation);
    }
    Ok(())
}

/// The hit for an index hit in `conversation`; `None` for a message gone, or a title or message
/// whose text no longer holds every word (changed after it was indexed: the index catches up
/// within seconds on DynamoDB; or postings a backfill wrote from an older version).
fn to_hit(conversation: Conversation, hit: crate::store::IndexHit, terms: &[String]) -> Option<SearchHit> {
    match (hit.message_id, hit.text) {
        // The message is gone (the index catches up within seconds on DynamoDB).
        (Some(_), None) => None,
        // A posting of a word the message no longer holds (written from an older version: a
        // backfill's page racing an in-place replacement, docs/search.md "Backfill").
        (Some(_), Some(text)) if !holds_every_term(&text, terms) => None,
        (Some(message_id), Some(text)) => Some(SearchHit {
            snippet: text::snippet(&text, terms),
            created_at: hit.created_at.unwrap_or(conversation.created_at),
            conversation,
            message_id: Some(message_id),
            role: hit.role,
            matched: Matched::Message,
        }),
        (None, _) => {
            if !holds_every_term(text::indexed_part(&conversation.title), terms) {
                return None;
            }
            Some(SearchHit {
                snippet: text::snippet(&conversation.title, terms),
                created_at: conversation.created_at,
                conversation,
                message_id: None,
                role: None,
                matched: Matched::Title,
            })
        }
    }
}

/// Whether the words of `indexed` hold every one of `terms`.
fn holds_every_term(indexed: &str, terms: &[String]) -> bool {
    let words: std::collections::HashSet<String> = text::words(indexed).map(|(_, _, w)| w).collect();
    terms.iter().all(|t| words.contains(t))
}

//! Full-text search on DynamoDB: a per-user inverted index in the conversations table, one
//! posting item per (owner, term, message) and per (owner, term, title), keyed
//! `SRCH#<owner>#<term>` ([`schema::search_pk`]).
//!
//! Writing: [`DynamoStore::apply_index_change`], called by the stream consumer
//! (`shared::reactions`) for each changed conversation or message item, off the request path:
//! a new item's terms are put, a changed one's are diffed (only the postings whose term, count or
//! length changed are written, so touching a conversation's `META` without changing its title
//! writes nothing), a removed one's are deleted. Reading: [`Search::search_index`] Queries one
//! partition per query word (eventually consistent, in parallel, the postings without their
//! partition key: [`POSTING_READ`]): a first page of [`FIRST_PAGE`] postings each, then either
//! the common words' postings of the rare words' documents only (`BatchGetItem`, when those are
//! at most [`MAX_CANDIDATES`]) or the rest of every word; intersects them, ranks the documents
//! (title first, BM25, newest) and reads the page's messages' text with one `BatchGetItem`.
//! Never a Scan.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};

use super::{from_item, s, schema, to_item, DynamoStore, Item};
use crate::domain::text::{index_terms, indexed_part};
use crate::domain::{ConversationId, MessageId, Role, Shelf, SolutionFilter, UserId, DEFAULT_TITLE};
use crate::error::StoreError;
use crate::store::{rules, IndexHit, IndexQuery, Search};

/// An item's image as a stream record carries it.
pub type ItemImage = Item;

/// Most postings read per query word: a word in more of the owner's messages than this is
/// matched in its newest this many (and every title).
pub const MAX_POSTINGS_PER_TERM: usize = 20_000;
/// Postings of each query word read in a search's first round (one small `Query` page per word,
/// in parallel): a word with fewer is read whole by it.
pub const FIRST_PAGE: usize = 200;
/// Most documents a search checks word by word: when some words of a query were read whole in
/// the first round and the documents holding all of them are at most this many, the other
/// (common) words are looked up for those documents only (`BatchGetItem` of their postings)
/// instead of being read whole.
pub const MAX_CANDIDATES: usize = 500;
/// The attributes of a posting a search reads: all but the partition key, which the query names
/// (a fifth of a posting's bytes on the wire).
const POSTING_READ: &[&str] = &["sk", "tf", "len", "role", "at"];
/// BM25's parameters (FTS5's defaults).
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// One stream record of the conversations table, as the index sees it.
#[derive(Clone, Debug, Default)]
pub struct IndexChange {
    /// The item's partition key.
    pub pk: String,
    /// The item's sort key.
    pub sk: String,
    /// Its image before the change (`None` for an insert).
    pub old: Option<ItemImage>,
    /// Its image after the change (`None` for a remove).
    pub new: Option<ItemImage>,
}

/// What applying a change wrote: postings put and deleted (each one write request of one item
/// under 1 KB: one write unit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexWrites {
    /// Postings put.
    pub puts: u64,
    /// Postings deleted.
    pub deletes: u64,
}

/// A posting item.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PostingItem {
    /// Empty when read ([`POSTING_READ`] leaves the partition key out).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pk: String,
    sk: String,
    tf: u32,
    len: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<String>,
}

/// An indexed document (a message or a title) of a stream image.
struct Doc {
    owner: String,
    sk: String,
    terms: BTreeMap<String, u32>,
    len: u32,
    role: Option<Role>,
    at: Option<String>,
}

/// Whether the index follows the item `pk`/`sk`: a conversation's `META` (its title) or a message
/// (not its content chunks: the indexed part of a message always fits its first item).
pub fn is_indexed(pk: &str, sk: &str) -> bool {
    pk.starts_with(schema::CONVERSATION_PREFIX)
        && (sk == schema::META || (sk.starts_with(schema::MSG_PREFIX) && !sk.contains(schema::CHUNK_MARK)))
}

/// The fields of a conversation's `META` image the index reads (its title). Lean on purpose: the
/// backfill reads only these attributes ([`INDEXED_ATTRIBUTES`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitleImage {
    id: String,
    owner_id: String,
    title: String,
}

/// The fields of a message's image the index reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageImage {
    id: String,
    conversation_id: String,
    role: Role,
    content: String,
    created_at: String,
}

/// Every attribute [`doc_of`] reads, for a projection (the backfill's Scan and Queries): the keys,
/// [`TitleImage`]'s and [`MessageImage`]'s fields.
pub(super) const INDEXED_ATTRIBUTES: [&str; 9] = [
    "pk",
    "sk",
    "id",
    "ownerId",
    "title",
    "conversationId",
    "role",
    "content",
    "createdAt",
];

/// The document of an image, `None` when the item is not indexed or cannot be read (logged: a
/// record that can never be read must not block the stream).
fn doc_of(pk: &str, sk: &str, image: Option<&ItemImage>) -> Option<Doc> {
    let image = image?;
    if !is_indexed(pk, sk) {
        return None;
    }
    let parsed = if sk == schema::META {
        from_item::<TitleImage>(image.clone()).map(|c| {
            let title = if c.title == DEFAULT_TITLE { "" } else { c.title.as_str() };
            let (terms, len) = index_terms(title);
            Doc {
                sk: schema::title_posting_sk(&c.id),
                owner: c.owner_id,
                terms,
                len,
                role: None,
                at: None,
            }
        })
    } else {
        from_item::<MessageImage>(image.clone()).and_then(|m| {
            let (owner, _) = schema::parse_conversation_pk(pk)
                .ok_or_else(|| StoreError::internal("a message's partition key", pk.to_owned()))?;
            let (terms, len) = index_terms(&m.content);
            Ok(Doc {
                owner: owner.to_owned(),
                sk: schema::message_posting_sk(&m.id, &m.conversation_id),
                terms,
                len,
                role: Some(m.role),
                at: Some(m.created_at),
            })
        })
    };
    parsed
        .inspect_err(|e| tracing::warn!(pk, sk, error = %e, "an indexed item's image could not be read; skipped"))
        .ok()
}

/// The write requests that bring the index in line with one change (see the module), and their
/// count: the posting logic the stream consumer and the backfill share.
pub(super) fn index_requests(change: &IndexChange) -> Result<(Vec<WriteRequest>, IndexWrites), StoreError> {
    let old = doc_of(&change.pk, &change.sk, change.old.as_ref());
    let new = doc_of(&change.pk, &change.sk, change.new.as_ref());
    let mut requests = Vec::new();
    let mut writes = IndexWrites::default();
    if let Some(new) = &new {
        for (term, &tf) in &new.terms {
            let unchanged = old
                .as_ref()
                .filter(|o| o.owner == new.owner && o.len == new.len && o.role == new.role)
                .and_then(|o| o.terms.get(term))
                .is_some_and(|&was| was == tf);
            if unchanged {
                continue;
            }
            let posting = PostingItem {
                pk: schema::search_pk(&new.owner, term),
                sk: new.sk.clone(),
                tf,
                len: new.len,
                role: new.role,
                at: new.at.clone(),
            };
            let put = PutRequest::builder()
                .set_item(Some(to_item(&posting)?))
                .build()
                .map_err(|e| StoreError::internal("building a posting", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
            writes.puts += 1;
        }
    }
    if let Some(old) = &old {
        for term in old.terms.keys() {
            let kept = new
                .as_ref()
                .is_some_and(|n| n.owner == old.owner && n.sk == old.sk && n.terms.contains_key(term));
            if kept {
                continue;
            }
            let del = DeleteRequest::builder()
                .key(schema::PK, s(schema::search_pk(&old.owner, term)))
                .key(schema::SK, s(old.sk.clone()))
                .build()
                .map_err(|e| StoreError::internal("building a posting delete", e))?;
            requests.push(WriteRequest::builder().delete_request(del).build());
            writes.deletes += 1;
        }
    }
    Ok((requests, writes))
}

impl DynamoStore {
    /// Brings the owner's index in line with one changed item (see the module). Idempotent: a
    /// retried change writes the same postings again.
    #[tracing::instrument(name = "dynamo.apply_index_change", skip_all, fields(sk = %change.sk))]
    pub async fn apply_index_change(&self, change: &IndexChange) -> Result<IndexWrites, StoreError> {
        let (mut requests, writes) = index_requests(change)?;
        self.write_in_batches(&mut requests).await?;
        Ok(writes)
    }

    /// Writes `requests` to the conversations table in `BatchWriteItem`s of 25 (unprocessed items
    /// retried with backoff); `requests` is empty afterwards.
    pub(super) async fn write_in_batches(&self, requests: &mut Vec<WriteRequest>) -> Result<(), StoreError> {
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(25));
            let mut batch = std::mem::replace(requests, rest);
            self.batch_write(&self.tables.conversations, &mut batch).await?;
        }
        Ok(())
    }

    /// One page of the owner's postings of `term`, newest message first (titles first of all),
    /// from `start`, of at most `limit` postings (else 1 MB), without their partition key
    /// ([`POSTING_READ`]); and where the next page starts, if there is one.
    async fn postings_page(
        &self,
        owner: &UserId,
        term: &str,
        start: Option<Item>,
        limit: Option<usize>,
    ) -> Result<(Vec<PostingItem>, Option<Item>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.conversations)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":pk", s(schema::search_pk(owner.as_str(), term)))
            .scan_index_forward(false)
            .set_limit(limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX)))
            .set_exclusive_start_key(start);
        let mut projection = Vec::with_capacity(POSTING_READ.len());
        for (i, attribute) in POSTING_READ.iter().enumerate() {
            let placeholder = format!("#a{i}");
            query = query.expression_attribute_names(&placeholder, *attribute);
            projection.push(placeholder);
        }
        let page = query
            .projection_expression(projection.join(", "))
            .send()
            .await
            .map_err(|e| super::classify("Query postings", e))?;
        let next = page.last_evaluated_key.filter(|k| !k.is_empty());
        let postings = page
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item::<PostingItem>)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((postings, next))
    }

    /// The first round of a search for one word: its first [`FIRST_PAGE`] postings.
    async fn first_postings(&self, owner: &UserId, term: &str) -> Result<TermRead, StoreError> {
        let (postings, next) = self.postings_page(owner, term, None, Some(FIRST_PAGE)).await?;
        Ok(TermRead {
            term: term.to_owned(),
            postings,
            next,
        })
    }

    /// The rest of a word's postings after its first round, page by page (1 MB each), at most
    /// [`MAX_POSTINGS_PER_TERM`] in all.
    async fn whole_list(&self, owner: &UserId, mut read: TermRead) -> Result<TermList, StoreError> {
        while let Some(start) = read.next.take() {
            if read.postings.len() >= MAX_POSTINGS_PER_TERM {
                break;
            }
            let (more, next) = self.postings_page(owner, &read.term, Some(start), None).await?;
            read.postings.extend(more);
            read.next = next;
        }
        read.postings.truncate(MAX_POSTINGS_PER_TERM);
        Ok(TermList::whole(read.postings))
    }

    /// The postings of a word read only in part (`read`), for the documents `candidates`: those
    /// of its first round, and the others by key (`BatchGetItem`s of 100, in parallel). Its
    /// document frequency is known to be over its first round's count, which stands for it.
    async fn members(
        &self,
        owner: &UserId,
        read: TermRead,
        candidates: &HashSet<String>,
    ) -> Result<TermList, StoreError> {
        let df = read.postings.len() + 1;
        let mut found: Vec<PostingItem> = read
            .postings
            .into_iter()
            .filter(|p| candidates.contains(&p.sk))
            .collect();
        let seen: HashSet<String> = found.iter().map(|p| p.sk.clone()).collect();
        let pk = schema::search_pk(owner.as_str(), &read.term);
        let keys: Vec<Item> = candidates
            .iter()
            .filter(|sk| !seen.contains(*sk))
            .map(|sk| super::sdk_key(pk.clone(), sk.clone()))
            .collect();
        let batches = keys
            .chunks(100)
            .map(|chunk| self.batch_get("BatchGetItem postings", chunk.to_vec(), |k| k));
        for item in futures::future::try_join_all(batches).await?.into_iter().flatten() {
            found.push(from_item::<PostingItem>(item)?);
        }
        Ok(TermList { postings: found, df })
    }

    /// Every query word's postings that the ranking needs: one first round (a page of
    /// [`FIRST_PAGE`] per word, in parallel); then, when it read some words whole and the
    /// documents holding them all are few ([`MAX_CANDIDATES`]), the other words' postings of
    /// those documents only; else the rest of every word, in parallel.
    async fn term_lists(&self, owner: &UserId, terms: &[String]) -> Result<Vec<TermList>, StoreError> {
        let reads = futures::future::try_join_all(terms.iter().map(|t| self.first_postings(owner, t))).await?;
        if let Some(candidates) = candidates(&reads) {
            return futures::future::try_join_all(reads.into_iter().map(|read| async {
                if read.next.is_none() {
                    Ok(TermList::whole(read.postings))
                } else {
                    self.members(owner, read, &candidates).await
                }
            }))
            .await;
        }
        futures::future::try_join_all(reads.into_iter().map(|read| self.whole_list(owner, read))).await
    }

    /// The ids of the owner's conversations of `solution` that a search may show (the active and
    /// archived shelves: one keys-and-id `Query` of the solution index each, in parallel);
    /// `None` without a filter. Read in parallel with the postings, so a filtered search takes no
    /// extra round trip and its pages are as full as any.
    async fn solution_conversations(
        &self,
        owner: &UserId,
        solution: Option<SolutionFilter>,
    ) -> Result<Option<HashSet<String>>, StoreError> {
        let Some(solution) = solution else { return Ok(None) };
        let shelf = |shelf: Shelf| {
            self.all_pages("Query conversations of a solution", move || {
                self.client
                    .query()
                    .table_name(&self.tables.conversations)
                    .index_name(schema::GSI_OWNER_SOLUTION)
                    .key_condition_expression("gsi2pk = :pk")
                    .expression_attribute_values(
                        ":pk",
                        s(schema::owner_solution_shelf_pk(
                            owner.as_str(),
                            solution.bucket(),
                            shelf,
                        )),
                    )
                    .projection_expression("id")
            })
        };
        let (active, archived) = futures::future::try_join(shelf(Shelf::Active), shelf(Shelf::Archived)).await?;
        Ok(Some(
            active
                .into_iter()
                .chain(archived)
                .filter_map(|mut item| match item.remove("id") {
                    Some(AttributeValue::S(id)) => Some(id),
                    _ => None,
                })
                .collect(),
        ))
    }

    /// The indexed text of the owner's messages `(conversation, message)`, by message id (one
    /// `BatchGetItem` per 100, retried for unprocessed keys); a message gone since is absent.
    async fn message_texts(
        &self,
        owner: &UserId,
        keys: &[(ConversationId, MessageId)],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut texts = HashMap::new();
        for chunk in keys.chunks(100) {
            let wanted = chunk
                .iter()
                .map(|(conversation, message)| {
                    super::sdk_key(
                        schema::conversation_pk(owner.as_str(), conversation.as_str()),
                        schema::message_sk(message.as_str()),
                    )
                })
                .collect();
            let items = self
                .batch_get("BatchGetItem messages", wanted, |k| {
                    k.projection_expression("id, content")
                })
                .await?;
            for item in items {
                if let (Some(AttributeValue::S(id)), Some(AttributeValue::S(content))) =
                    (item.get("id"), item.get("content"))
                {
                    texts.insert(id.clone(), indexed_part(content).to_owned());
                }
            }
        }
        Ok(texts)
    }
}

/// A word's postings read so far, and where the rest starts (`None`: read whole).
struct TermRead {
    term: String,
    postings: Vec<PostingItem>,
    next: Option<Item>,
}

/// A word's postings as the ranking sees them: all of them, or only those of the candidate
/// documents; and its document frequency (exact, or the lower bound the first round showed).
struct TermList {
    postings: Vec<PostingItem>,
    df: usize,
}

impl TermList {
    fn whole(postings: Vec<PostingItem>) -> Self {
        Self {
            df: postings.len(),
            postings,
        }
    }
}

/// The documents holding every word the first round read whole, when those are some but not
/// all of the words and the documents are at most [`MAX_CANDIDATES`]; else `None` (every word
/// is then read whole).
fn candidates(reads: &[TermRead]) -> Option<HashSet<String>> {
    let mut whole = reads.iter().filter(|r| r.next.is_none());
    let first = whole.next()?;
    if reads.iter().all(|r| r.next.is_none()) {
        return None;
    }
    let mut docs: HashSet<String> = first.postings.iter().map(|p| p.sk.clone()).collect();
    for read in whole {
        let theirs: HashSet<&str> = read.postings.iter().map(|p| p.sk.as_str()).collect();
        docs.retain(|sk| theirs.contains(sk.as_str()));
    }
    (docs.len() <= MAX_CANDIDATES).then_some(docs)
}

/// A ranked document: its posting's sort key, whether it is a title, its score, its time.
struct Ranked {
    sk: String,
    title: bool,
    score: f64,
    role: Option<Role>,
    at: Option<String>,
}

/// Ranks the documents holding every term: `lists` holds each term's postings (all of them, or
/// those of the candidate documents) and its document frequency.
fn rank(lists: Vec<TermList>) -> Vec<Ranked> {
    let mut lens: HashMap<&str, u32> = HashMap::new();
    for p in lists.iter().flat_map(|l| &l.postings) {
        lens.insert(p.sk.as_str(), p.len);
    }
    let avg = (lens.values().map(|&l| f64::from(l)).sum::<f64>() / lens.len().max(1) as f64).max(1.0);
    let docs = lens.len().max(lists.iter().map(|l| l.df).max().unwrap_or(0)).max(1) as f64;
    let mut scored: HashMap<&str, (usize, f64, &PostingItem)> = HashMap::new();
    for list in &lists {
        let df = list.df as f64;
        let idf = (1.0 + (docs - df + 0.5) / (df + 0.5)).ln();
        for p in &list.postings {
            let tf = f64::from(p.tf);
            let weight = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * f64::from(p.len) / avg));
            let entry = scored.entry(p.sk.as_str()).or_insert((0, 0.0, p));
            entry.0 += 1;
            entry.1 += weight;
        }
    }
    let mut ranked: Vec<Ranked> = scored
        .into_values()
        .filter(|(matched, _, _)| *matched == lists.len())
        .map(|(_, score, p)| Ranked {
            sk: p.sk.clone(),
            title: p.sk.starts_with("T#"),
            score,
            role: p.role,
            at: p.at.clone(),
        })
        .collect();
    // Title first, then relevance, then the newest; ties by message id then conversation id,
    // highest first (the embedded store's order).
    ranked.sort_by(|a, b| {
        b.title
            .cmp(&a.title)
            .then(b.score.total_cmp(&a.score))
            .then_with(|| b.at.cmp(&a.at))
            .then_with(|| split_sk(&b.sk).cmp(&split_sk(&a.sk)))
    });
    ranked
}

/// `(message id, conversation id)` of a posting's sort key (`""` for a title's message).
fn split_sk(sk: &str) -> (&str, &str) {
    if let Some(rest) = sk.strip_prefix("M#") {
        rest.split_once('#').unwrap_or((rest, ""))
    } else {
        ("", sk.strip_prefix("T#").unwrap_or(sk))
    }
}

#[async_trait]
impl Search for DynamoStore {
    #[tracing::instrument(name = "dynamo.search_index", skip_all, fields(terms = query.terms.len(), offset = query.offset))]
    async fn search_index(&self, owner: &UserId, query: &IndexQuery) -> Result<Vec<IndexHit>, StoreError> {
        if query.terms.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        let (lists, only) = futures::future::try_join(
            self.term_lists(owner, &query.terms),
            self.solution_conversations(owner, query.solution),
        )
        .await?;
        let page: Vec<Ranked> = rank(lists)
            .into_iter()
            .filter(|r| only.as_ref().is_none_or(|ids| ids.contains(split_sk(&r.sk).1)))
            .skip(query.offset)
            .take(query.limit)
            .collect();
        let mut hits = Vec::with_capacity(page.len());
        for r in &page {
            let (message, conversation) = split_sk(&r.sk);
            let conversation_id =
                ConversationId::parse(conversation).map_err(|e| StoreError::internal("posting conversation id", e))?;
            let message_id = (!r.title)
                .then(|| MessageId::parse(message))
                .transpose()
                .map_err(|e| StoreError::internal("posting message id", e))?;
            hits.push(IndexHit {
                conversation_id,
                message_id,
                role: r.role,
                created_at: r.at.as_deref().map(rules::parse_ts).transpose()?,
                text: None,
            });
        }
        let keys: Vec<(ConversationId, MessageId)> = hits
            .iter()
            .filter_map(|h| Some((h.conversation_id.clone(), h.message_id.clone()?)))
            .collect();
        let mut texts = self.message_texts(owner, &keys).await?;
        for hit in &mut hits {
            if let Some(id) = &hit.message_id {
                hit.text = texts.remove(id.as_str());
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(sk: &str, tf: u32, len: u32) -> PostingItem {
        PostingItem {
            pk: String::new(),
            sk: sk.to_owned(),
            tf,
            len,
            role: Some(Role::User),
            at: Some(format!("2026-01-01T00:00:{:02}Z", sk.len() % 60)),
        }
    }

    fn read(term: &str, sks: &[&str], whole: bool) -> TermRead {
        TermRead {
            term: term.to_owned(),
            postings: sks.iter().map(|sk| posting(sk, 1, 10)).collect(),
            next: (!whole).then(|| super::super::sdk_key("pk".to_owned(), "sk".to_owned())),
        }
    }

    #[test]
    fn candidates_are_the_whole_words_documents_only_when_some_words_are_partial() {
        let rare = read("rare", &["M#a#c", "M#b#c"], true);
        let other = read("other", &["M#b#c", "M#d#c"], true);
        let common = read("common", &["M#x#c"], false);
        assert!(candidates(&[read("a", &["M#a#c"], true), read("b", &["M#a#c"], true)]).is_none());
        assert!(candidates(&[read("a", &["M#a#c"], false), read("b", &["M#a#c"], false)]).is_none());
        let found = candidates(&[rare, other, common]).expect("some words partial");
        assert_eq!(found, HashSet::from(["M#b#c".to_owned()]));
        let many: Vec<String> = (0..=MAX_CANDIDATES).map(|i| format!("M#{i}#c")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(candidates(&[read("wide", &many, true), read("common", &["M#x#c"], false)]).is_none());
        assert!(candidates(&[read("wide", &many[1..], true), read("common", &["M#x#c"], false)]).is_some());
    }

    #[test]
    fn a_partial_words_lower_bound_keeps_its_weight_below_the_rare_words() {
        // "rare" in two documents; "common" known only for them, with a frequency over 200.
        let rare = TermList::whole(vec![posting("M#a#c", 1, 10), posting("M#b#c", 3, 10)]);
        let common = TermList {
            postings: vec![posting("M#a#c", 2, 10), posting("M#b#c", 1, 10)],
            df: FIRST_PAGE + 1,
        };
        let ranked = rank(vec![rare, common]);
        let order: Vec<&str> = ranked.iter().map(|r| r.sk.as_str()).collect();
        // The rare word's three occurrences outweigh the common word's two.
        assert_eq!(order, vec!["M#b#c", "M#a#c"]);
        // Every word must match: a document missing from one list is not ranked.
        let only_one = rank(vec![
            TermList::whole(vec![posting("M#a#c", 1, 10)]),
            TermList {
                postings: vec![],
                df: FIRST_PAGE + 1,
            },
        ]);
        assert!(only_one.is_empty());
    }
}

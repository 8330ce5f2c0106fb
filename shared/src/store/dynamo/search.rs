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
//! partition key: [`POSTING_READ`]), intersects them, ranks the
//! documents (title first, BM25, newest) and reads the page's messages' text with one
//! `BatchGetItem`. Never a Scan.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};

use super::docs::PartitionRead;
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

    /// The owner's postings of `term`, newest message first (titles first of all), at most
    /// [`MAX_POSTINGS_PER_TERM`].
    async fn postings(&self, owner: &UserId, term: &str) -> Result<Vec<PostingItem>, StoreError> {
        let mut out = Vec::new();
        let read = PartitionRead {
            backwards: true,
            projection: POSTING_READ,
            ..PartitionRead::default()
        };
        self.each_page("postings", schema::search_pk(owner.as_str(), term), read, |page| {
            for item in page.items.unwrap_or_default() {
                out.push(from_item::<PostingItem>(item)?);
            }
            Ok(out.len() < MAX_POSTINGS_PER_TERM)
        })
        .await?;
        out.truncate(MAX_POSTINGS_PER_TERM);
        Ok(out)
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

/// A ranked document: its posting's sort key, whether it is a title, its score, its time.
struct Ranked {
    sk: String,
    title: bool,
    score: f64,
    role: Option<Role>,
    at: Option<String>,
}

/// Ranks the documents holding every term: `lists` holds each term's postings.
fn rank(lists: Vec<Vec<PostingItem>>) -> Vec<Ranked> {
    let mut lens: HashMap<&str, u32> = HashMap::new();
    for p in lists.iter().flatten() {
        lens.insert(p.sk.as_str(), p.len);
    }
    let docs = lens.len().max(1) as f64;
    let avg = (lens.values().map(|&l| f64::from(l)).sum::<f64>() / docs).max(1.0);
    let mut scored: HashMap<&str, (usize, f64, &PostingItem)> = HashMap::new();
    for list in &lists {
        let df = list.len() as f64;
        let idf = (1.0 + (docs - df + 0.5) / (df + 0.5)).ln();
        for p in list {
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
        let postings = futures::future::try_join_all(query.terms.iter().map(|t| self.postings(owner, t)));
        let (lists, only) =
            futures::future::try_join(postings, self.solution_conversations(owner, query.solution)).await?;
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

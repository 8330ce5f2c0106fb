//! Owner-scoped documents in the conversations table: one partition per owner and kind
//! (`PROJ#<owner>`, `PRMT#<owner>`, `FILE#<owner>`), `sk` = the document's id, the document's
//! attributes beside the keys. The reads every kind shares.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::{Select, Update};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::schema;
use super::{classify, from_item, s, to_item, DynamoStore, Item};
use crate::error::StoreError;

impl DynamoStore {
    /// Writes `item` (its keys and the document) if absent, or with `update_of`, over the stored
    /// version whose `updatedAt` it names. [`StoreError::Conflict`] when the condition fails;
    /// `noun` and `id` name the document in the message.
    pub(super) async fn put_doc<T: Serialize>(
        &self,
        noun: &str,
        id: &str,
        item: &T,
        update_of: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.conversations)
            .set_item(Some(to_item(item)?))
            .expression_attribute_names("#pk", schema::PK);
        put = match update_of {
            None => put.condition_expression("attribute_not_exists(#pk)"),
            Some(at) => put
                .condition_expression("attribute_exists(#pk) AND updatedAt = :at")
                .expression_attribute_values(":at", s(at)),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(StoreError::Conflict(match update_of {
                    None => format!("{noun} {id} already exists"),
                    Some(_) => format!("{noun} {id} changed meanwhile; retry"),
                }))
            }
            Err(e) => Err(classify(&format!("PutItem {noun}"), e)),
        }
    }

    /// Creates the document `item` (absent; `noun` and `id` name it in a conflict) in `owner`'s
    /// partition `pk` unless that already holds `max` documents (then `too_many(max)`). Safe
    /// against concurrent creates: the owner's revision item of `kind` (`CAPS#<owner>`, `sk =
    /// kind`) is read before the count, and the put and the revision's bump are one transaction
    /// conditioned on the revision being the one read, so of creates racing at the cap only
    /// enough to reach it pass; the others read again and are refused. A delete needs no bump
    /// (a create racing it at worst sees one document more).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_capped_doc<T: Serialize>(
        &self,
        noun: &str,
        id: &str,
        owner: &str,
        kind: &str,
        pk: String,
        item: &T,
        max: usize,
        too_many: fn(usize) -> StoreError,
    ) -> Result<(), StoreError> {
        let table = &self.tables.conversations;
        let put = super::put_if_absent(table, to_item(item)?);
        for attempt in 1..=super::CONFLICT_ATTEMPTS {
            let rev: Option<CapRevision> = match self.get_doc(noun, schema::caps_pk(owner), kind).await {
                Ok(rev) => Some(rev),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e),
            };
            if self.count_docs(noun, pk.clone()).await? >= max {
                return Err(too_many(max));
            }
            let seen = rev.map_or(0, |r| r.rev);
            let mut bump = Update::builder()
                .table_name(table)
                .key(schema::PK, s(schema::caps_pk(owner)))
                .key(schema::SK, s(kind))
                .update_expression("SET #rev = :next")
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_values(":next", super::n(seen + 1));
            bump = if seen == 0 {
                bump.condition_expression("attribute_not_exists(#rev)")
            } else {
                bump.condition_expression("#rev = :seen")
                    .expression_attribute_values(":seen", super::n(seen))
            };
            let codes = match self
                .transact(vec![put.clone(), super::update_item(bump.build())?])
                .await?
            {
                Ok(()) => return Ok(()),
                Err(codes) => codes,
            };
            if codes.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") {
                return Err(StoreError::Conflict(format!("{noun} {id} already exists")));
            }
            // Another create (or the first one's revision) came between the count and the write.
            super::backoff(attempt).await;
        }
        Err(StoreError::Unavailable(
            format!("{noun}s kept being created concurrently; retry").into(),
        ))
    }

    /// The item at (`pk`, `sk`), read consistently ([`StoreError::NotFound`] when there is none);
    /// `what` names it in errors.
    pub(super) async fn get_doc<T: DeserializeOwned>(&self, what: &str, pk: String, sk: &str) -> Result<T, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(pk))
            .key(schema::SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&format!("GetItem {what}"), e))?;
        from_item(out.item.ok_or(StoreError::NotFound)?)
    }

    /// Every item of partition `pk`, in `sk` order (every page, read consistently).
    pub(super) async fn list_docs<T: DeserializeOwned>(&self, what: &str, pk: String) -> Result<Vec<T>, StoreError> {
        let mut docs = Vec::new();
        let read = PartitionRead {
            consistent: true,
            ..PartitionRead::default()
        };
        self.each_page(what, pk, read, |page| {
            for item in page.items.unwrap_or_default() {
                docs.push(from_item(item)?);
            }
            Ok(true)
        })
        .await?;
        Ok(docs)
    }

    /// How many items partition `pk` holds (a consistent `Select: COUNT` Query).
    pub(super) async fn count_docs(&self, what: &str, pk: String) -> Result<usize, StoreError> {
        let mut count = 0usize;
        let read = PartitionRead {
            select: Some(Select::Count),
            consistent: true,
        };
        self.each_page(what, pk, read, |page| {
            count = count.saturating_add(usize::try_from(page.count).unwrap_or(usize::MAX));
            Ok(true)
        })
        .await?;
        Ok(count)
    }

    /// Queries partition `pk` page by page, handing each page to `on_page` until it answers
    /// `false` or the partition ends.
    pub(super) async fn each_page(
        &self,
        what: &str,
        pk: String,
        read: PartitionRead,
        mut on_page: impl FnMut(QueryOutput) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.conversations)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .set_select(read.select.clone())
                .consistent_read(read.consistent)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(&format!("Query {what}"), e))?;
            let next = page.last_evaluated_key.clone().filter(|key| !key.is_empty());
            let more = on_page(page)?;
            match next {
                Some(key) if more => start = Some(key),
                _ => return Ok(()),
            }
        }
    }
}

/// An owner's revision of one kind of capped document ([`DynamoStore::create_capped_doc`]).
#[derive(serde::Deserialize)]
struct CapRevision {
    rev: u64,
}

/// How [`DynamoStore::each_page`] reads a partition.
#[derive(Clone, Debug, Default)]
pub(super) struct PartitionRead {
    /// `Select` (`COUNT` to count without reading items).
    pub(super) select: Option<Select>,
    /// Strongly consistent reads.
    pub(super) consistent: bool,
}

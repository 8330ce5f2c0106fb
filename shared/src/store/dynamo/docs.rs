//! Owner-scoped documents in the conversations table: one partition per owner and kind
//! (`PROJ#<owner>`, `PRMT#<owner>`, `FILE#<owner>`), `sk` = the document's id, the document's
//! attributes beside the keys. The reads every kind shares.

use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::Select;
use serde::de::DeserializeOwned;

use super::schema;
use super::{classify, from_item, s, DynamoStore, Item};
use crate::error::StoreError;

impl DynamoStore {
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
        self.each_page(what, pk, None, |page| {
            for item in page.items.unwrap_or_default() {
                docs.push(from_item(item)?);
            }
            Ok(())
        })
        .await?;
        Ok(docs)
    }

    /// How many items partition `pk` holds (a consistent `Select: COUNT` Query).
    pub(super) async fn count_docs(&self, what: &str, pk: String) -> Result<usize, StoreError> {
        let mut count = 0usize;
        self.each_page(what, pk, Some(Select::Count), |page| {
            count = count.saturating_add(usize::try_from(page.count).unwrap_or(usize::MAX));
            Ok(())
        })
        .await?;
        Ok(count)
    }

    /// Queries partition `pk` page by page (consistently), handing each page to `on_page`.
    async fn each_page(
        &self,
        what: &str,
        pk: String,
        select: Option<Select>,
        mut on_page: impl FnMut(QueryOutput) -> Result<(), StoreError>,
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
                .set_select(select.clone())
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(&format!("Query {what}"), e))?;
            let next = page.last_evaluated_key.clone().filter(|key| !key.is_empty());
            on_page(page)?;
            match next {
                Some(key) => start = Some(key),
                None => return Ok(()),
            }
        }
    }
}

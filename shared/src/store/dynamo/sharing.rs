//! Named-user sharing on DynamoDB. A grant is two items written and deleted together in one
//! transaction: one in the conversation's partition (`GRANT#<grantee>`: the owner's list, gone
//! with the partition) and one in the grantee's (`SHARED#<grantee>`, sort key the conversation
//! id: the policy's `GetItem` and "shared with me"). The grantee's item is put only if absent or
//! the same owner's, so one grantee never has two owners' conversations under one id.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::schema;
use super::{owner_condition, s, sdk_key, DynamoStore, Item};
use crate::domain::{ts, ConversationId, UserId};
use crate::error::StoreError;
use crate::store::sharing::{Grant, GrantRole, Grantee, Sharing};

fn text<'a>(item: &'a Item, key: &str) -> Option<&'a str> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

/// A grant from the grantee's item (`SHARED#<grantee>` / conversation id).
fn from_shared(item: &Item) -> Result<Grant, StoreError> {
    let bad = |what: &str| StoreError::internal("reading a grant", format!("bad or missing {what}"));
    let grantee = text(item, schema::PK)
        .and_then(|pk| pk.strip_prefix("SHARED#"))
        .and_then(Grantee::from_key)
        .ok_or_else(|| bad("grantee"))?;
    let conversation_id = text(item, schema::SK)
        .and_then(|sk| ConversationId::parse(sk).ok())
        .ok_or_else(|| bad("conversation"))?;
    let owner = text(item, "ownerId")
        .and_then(|o| UserId::parse(o).ok())
        .ok_or_else(|| bad("owner"))?;
    let role = text(item, "role")
        .and_then(GrantRole::parse)
        .ok_or_else(|| bad("role"))?;
    let at = |k: &str| {
        text(item, k)
            .and_then(crate::store::sharing::parse_time)
            .ok_or_else(|| bad(k))
    };
    Ok(Grant {
        conversation_id,
        owner,
        grantee,
        role,
        created_at: at("createdAt")?,
        updated_at: at("updatedAt")?,
    })
}

impl DynamoStore {
    /// The grantee's item of `id` for each of `grantees` (one `BatchGetItem`).
    async fn shared_items(&self, grantees: &[Grantee], id: &ConversationId) -> Result<Vec<Grant>, StoreError> {
        if grantees.is_empty() {
            return Ok(Vec::new());
        }
        let keys = grantees
            .iter()
            .map(|g| sdk_key(schema::shared_pk(&g.key()), id.as_str().to_owned()))
            .collect();
        self.batch_get("BatchGetItem grants", keys, |k| k.consistent_read(true))
            .await?
            .iter()
            .map(from_shared)
            .collect()
    }

    /// The transaction of a share: the conversation's `grantsRev` bumped if it is still `rev`
    /// (and the conversation still the owner's, live), the grant in its partition, and the
    /// grantee's item if absent or already this owner's. `before`: the grant it replaces.
    fn grant_put_items(
        &self,
        grant: &Grant,
        before: Option<&Grant>,
        rev: u64,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let created_at = ts::format(&before.map_or(grant.created_at, |g| g.created_at));
        let updated_at = ts::format(&grant.updated_at);
        let key = grant.grantee.key();
        let table = &self.tables.conversations;
        let conversation_pk = schema::conversation_pk(grant.owner.as_str(), grant.conversation_id.as_str());
        let mut bump = Update::builder()
            .table_name(table)
            .set_key(Some(sdk_key(conversation_pk.clone(), schema::META.to_owned())))
            .update_expression("SET #rev = :next")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#rev", "grantsRev")
            .expression_attribute_values(":owner", s(grant.owner.as_str()))
            .expression_attribute_values(":next", super::n(rev + 1));
        bump = if rev == 0 {
            bump.condition_expression(format!("{} AND attribute_not_exists(#rev)", owner_condition()))
        } else {
            bump.condition_expression(format!("{} AND #rev = :seen", owner_condition()))
                .expression_attribute_values(":seen", super::n(rev))
        };
        let bump = bump
            .build()
            .map_err(|e| StoreError::internal("building a share's revision", e))?;
        let forward = Put::builder()
            .table_name(table)
            .item(schema::PK, s(conversation_pk))
            .item(schema::SK, s(schema::grant_sk(&key)))
            .item("ownerId", s(grant.owner.as_str()))
            .item("grantee", s(key.clone()))
            .item("role", s(grant.role.as_str()))
            .item("createdAt", s(created_at.clone()))
            .item("updatedAt", s(updated_at.clone()))
            .build()
            .map_err(|e| StoreError::internal("building a grant put", e))?;
        let reverse = Put::builder()
            .table_name(table)
            .item(schema::PK, s(schema::shared_pk(&key)))
            .item(schema::SK, s(grant.conversation_id.as_str()))
            .item("ownerId", s(grant.owner.as_str()))
            .item("role", s(grant.role.as_str()))
            .item("createdAt", s(created_at))
            .item("updatedAt", s(updated_at))
            .condition_expression("attribute_not_exists(#pk) OR ownerId = :owner")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(grant.owner.as_str()))
            .build()
            .map_err(|e| StoreError::internal("building a grant put", e))?;
        Ok(vec![
            TransactWriteItem::builder().update(bump).build(),
            TransactWriteItem::builder().put(forward).build(),
            TransactWriteItem::builder().put(reverse).build(),
        ])
    }

    fn grant_delete_items(&self, grant: &Grant) -> Result<[TransactWriteItem; 2], StoreError> {
        let table = &self.tables.conversations;
        let key = grant.grantee.key();
        let forward = Delete::builder()
            .table_name(table)
            .set_key(Some(sdk_key(
                schema::conversation_pk(grant.owner.as_str(), grant.conversation_id.as_str()),
                schema::grant_sk(&key),
            )))
            .build()
            .map_err(|e| StoreError::internal("building a grant delete", e))?;
        let reverse = Delete::builder()
            .table_name(table)
            .set_key(Some(sdk_key(
                schema::shared_pk(&key),
                grant.conversation_id.as_str().to_owned(),
            )))
            .condition_expression("attribute_not_exists(#pk) OR ownerId = :owner")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(grant.owner.as_str()))
            .build()
            .map_err(|e| StoreError::internal("building a grant delete", e))?;
        Ok([
            TransactWriteItem::builder().delete(forward).build(),
            TransactWriteItem::builder().delete(reverse).build(),
        ])
    }

    async fn delete_grant_pairs(&self, grants: &[Grant]) -> Result<u64, StoreError> {
        for grant in grants {
            let items = self.grant_delete_items(grant)?.to_vec();
            if let Err(codes) = self.transact(items).await? {
                tracing::warn!(?codes, "a grant changed while it was deleted; it is left as it is");
            }
        }
        Ok(grants.len() as u64)
    }

    /// Deletes the grants of `owner`'s conversation `id` (both items of each): called by
    /// `delete_conversation` before the partition goes.
    pub(super) async fn delete_conversation_grants(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<u64, StoreError> {
        let grants = self.grants_of(owner, id).await?;
        self.delete_grant_pairs(&grants).await
    }
}

#[async_trait]
impl Sharing for DynamoStore {
    #[tracing::instrument(name = "dynamo.put_grant", skip_all, fields(conversation = %grant.conversation_id))]
    async fn put_grant(&self, grant: &Grant, max: usize) -> Result<(), StoreError> {
        for attempt in 1..=super::CONFLICT_ATTEMPTS {
            // The grants and the conversation's `grantsRev`, read together: the transaction
            // below bumps the revision on condition that it is still the one read, so two
            // shares racing at the cap cannot both pass the count.
            let (meta, existing) = tokio::try_join!(
                self.get_meta(&grant.owner, &grant.conversation_id),
                self.grants_of(&grant.owner, &grant.conversation_id)
            )?;
            let before = existing.iter().find(|g| g.grantee == grant.grantee);
            if before.is_none() && existing.len() >= max {
                return Err(StoreError::Conflict(format!(
                    "a conversation can be shared with at most {max} users or addresses"
                )));
            }
            let items = self.grant_put_items(grant, before, meta.grants_rev)?;
            let codes = match self.transact(items).await? {
                Ok(()) => return Ok(()),
                Err(codes) => codes,
            };
            let failed = |i: usize| codes.get(i).and_then(|c| c.as_deref()) == Some("ConditionalCheckFailed");
            if failed(2) {
                return Err(StoreError::Conflict(
                    "another conversation with this id is already shared with this user; \
                     share a copy of the conversation instead"
                        .to_owned(),
                ));
            }
            if !failed(0) {
                return Err(StoreError::internal(
                    "sharing a conversation",
                    "the transaction was cancelled",
                ));
            }
            // The conversation changed since it was read (another share, or it is gone): again.
            super::backoff(attempt).await;
        }
        Err(StoreError::Unavailable(
            "the conversation's shares kept changing concurrently".into(),
        ))
    }

    #[tracing::instrument(name = "dynamo.delete_grant", skip_all, fields(conversation = %id))]
    async fn delete_grant(&self, owner: &UserId, id: &ConversationId, grantee: &Grantee) -> Result<(), StoreError> {
        let grants = self.grants_of(owner, id).await?;
        let grant = grants
            .iter()
            .find(|g| g.grantee == *grantee)
            .ok_or(StoreError::NotFound)?;
        self.delete_grant_pairs(std::slice::from_ref(grant)).await.map(|_| ())
    }

    #[tracing::instrument(name = "dynamo.grants_of", skip_all, fields(conversation = %id))]
    async fn grants_of(&self, owner: &UserId, id: &ConversationId) -> Result<Vec<Grant>, StoreError> {
        let pk = schema::conversation_pk(owner.as_str(), id.as_str());
        let items = self
            .all_pages("Query grants", || {
                self.client
                    .query()
                    .table_name(&self.tables.conversations)
                    .consistent_read(true)
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#sk", schema::SK)
                    .expression_attribute_values(":pk", s(pk.clone()))
                    .expression_attribute_values(":prefix", s(schema::GRANT_PREFIX))
            })
            .await?;
        items
            .iter()
            .map(|item| {
                let mut shared = item.clone();
                let key = text(item, "grantee").unwrap_or_default();
                shared.insert(schema::PK.to_owned(), s(schema::shared_pk(key)));
                shared.insert(schema::SK.to_owned(), s(id.as_str()));
                from_shared(&shared)
            })
            .collect()
    }

    #[tracing::instrument(name = "dynamo.grant_for", skip_all, fields(conversation = %id))]
    async fn grant_for(&self, grantees: &[Grantee], id: &ConversationId) -> Result<Option<Grant>, StoreError> {
        let found = self.shared_items(grantees, id).await?;
        Ok(crate::store::sharing::strongest(found))
    }

    #[tracing::instrument(name = "dynamo.shared_with", skip_all)]
    async fn shared_with(&self, grantees: &[Grantee]) -> Result<Vec<Grant>, StoreError> {
        let mut grants = Vec::new();
        for g in grantees {
            let pk = schema::shared_pk(&g.key());
            let items = self
                .all_pages("Query shared with", || {
                    self.client
                        .query()
                        .table_name(&self.tables.conversations)
                        .key_condition_expression("#pk = :pk")
                        .expression_attribute_names("#pk", schema::PK)
                        .expression_attribute_values(":pk", s(pk.clone()))
                })
                .await?;
            for item in &items {
                grants.push(from_shared(item)?);
            }
        }
        Ok(crate::store::sharing::newest_first(grants))
    }

    #[tracing::instrument(name = "dynamo.erase_grants", skip_all)]
    async fn erase_grants(&self, grantees: &[Grantee]) -> Result<u64, StoreError> {
        let grants = self.shared_with(grantees).await?;
        self.delete_grant_pairs(&grants).await
    }
}

//! Reactions and bookmarks on DynamoDB. A reaction is an item of its conversation's partition
//! (`REACT#<user>#<message>`), so a conversation's delete and a clear of its messages take it
//! with them, and a user's reactions in one conversation are one `Query` on a key prefix. A
//! user's bookmarks are a partition of their own (`MARK#<user>`): `T#<ulid>` items, read
//! backwards for the newest first, and one `K#<owner>#<conversation>#<message>` marker per
//! bookmarked message (one bookmark per message; a conversation's delete finds its owner's
//! bookmarks on it by the marker prefix).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};

use super::schema;
use super::{classify, from_item, put_if_absent, s, sdk_key, to_item, DynamoStore, Item};
use crate::domain::{ConversationId, MessageId, UserId};
use crate::error::StoreError;
use crate::store::{Bookmark, Feedback, Reaction};

/// Attempts at a bookmark write that lost a race with another write of the same message.
const BOOKMARK_ATTEMPTS: u32 = 3;

impl DynamoStore {
    /// Deletes `owner`'s own bookmarks on their conversation `id` (with the conversation): a
    /// `Query` of the markers' prefix, then the markers and their bookmarks in batches.
    pub(super) async fn delete_own_bookmarks(&self, owner: &UserId, id: &ConversationId) -> Result<(), StoreError> {
        let pk = schema::bookmarks_pk(owner.as_str());
        let markers = self
            .all_pages("Query bookmark markers", || {
                self.client
                    .query()
                    .table_name(&self.tables.conversations)
                    .consistent_read(true)
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#sk", schema::SK)
                    .expression_attribute_values(":pk", s(pk.clone()))
                    .expression_attribute_values(
                        ":prefix",
                        s(schema::bookmark_marker_prefix(owner.as_str(), id.as_str())),
                    )
            })
            .await?;
        let mut keys = Vec::with_capacity(markers.len() * 2);
        for marker in markers {
            if let (Some(AttributeValue::S(sk)), Some(AttributeValue::S(bookmark))) =
                (marker.get(schema::SK), marker.get("bookmarkId"))
            {
                keys.push(sdk_key(pk.clone(), schema::bookmark_sk(bookmark)));
                keys.push(sdk_key(pk.clone(), sk.clone()));
            }
        }
        self.batch_delete(keys).await
    }

    /// The id of `user`'s bookmark on a message (its marker, read consistently).
    async fn bookmark_id(
        &self,
        user: &str,
        owner: &str,
        id: &str,
        message: &str,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(
                schema::bookmarks_pk(user),
                schema::bookmark_marker_sk(owner, id, message),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem bookmark marker", e))?;
        Ok(match out.item.as_ref().and_then(|i| i.get("bookmarkId")) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        })
    }
}

#[async_trait]
impl Feedback for DynamoStore {
    /// One `UpdateItem` setting every attribute (`createdAt` only if absent), returning the old
    /// item, then a consistent `GetItem` of the conversation: gone or being deleted, the
    /// reaction is deleted again and the answer is `NotFound`.
    #[tracing::instrument(name = "dynamo.put_reaction", skip_all)]
    async fn put_reaction(&self, owner: &UserId, reaction: &Reaction) -> Result<Option<Reaction>, StoreError> {
        let item = to_item(reaction)?;
        let mut sets = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        for (i, (name, value)) in item.into_iter().enumerate() {
            let (n, v) = (format!("#a{i}"), format!(":a{i}"));
            if name == "createdAt" {
                sets.push(format!("{n} = if_not_exists({n}, {v})"));
            } else {
                sets.push(format!("{n} = {v}"));
            }
            names.insert(n, name);
            values.insert(v, value);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if reaction.comment.is_none() {
            expression.push_str(" REMOVE #comment");
            names.insert("#comment".to_owned(), "comment".to_owned());
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(
                schema::conversation_pk(owner.as_str(), reaction.conversation_id.as_str()),
                schema::reaction_sk(reaction.user.as_str(), reaction.message_id.as_str()),
            )))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify("UpdateItem reaction", e))?;
        // A delete of the conversation marks it first, then deletes its partition: a reaction
        // written after that sweep finds the mark here (read consistently after the write) and
        // takes itself back, so no reaction outlives its conversation.
        match self.read_meta(owner, &reaction.conversation_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                self.batch_delete(vec![sdk_key(
                    schema::conversation_pk(owner.as_str(), reaction.conversation_id.as_str()),
                    schema::reaction_sk(reaction.user.as_str(), reaction.message_id.as_str()),
                )])
                .await?;
                return Err(StoreError::NotFound);
            }
            Err(e) => return Err(e),
        }
        out.attributes.filter(|a| !a.is_empty()).map(from_item).transpose()
    }

    /// One `DeleteItem` returning the old item.
    #[tracing::instrument(name = "dynamo.delete_reaction", skip_all)]
    async fn delete_reaction(
        &self,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
        user: &UserId,
    ) -> Result<Option<Reaction>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(
                schema::conversation_pk(owner.as_str(), id.as_str()),
                schema::reaction_sk(user.as_str(), message.as_str()),
            )))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify("DeleteItem reaction", e))?;
        out.attributes.filter(|a| !a.is_empty()).map(from_item).transpose()
    }

    /// One `Query` (every page) of the `REACT#<user>#` prefix of the conversation's partition.
    #[tracing::instrument(name = "dynamo.reactions", skip_all)]
    async fn reactions(&self, owner: &UserId, id: &ConversationId, user: &UserId) -> Result<Vec<Reaction>, StoreError> {
        let items = self
            .query_partition(owner, id, Some(&schema::reaction_prefix(user.as_str())), false)
            .await?;
        items.into_iter().map(from_item).collect()
    }

    /// A consistent `GetItem` of the message's marker; then either an `UpdateItem` of the
    /// bookmark's note, or one transaction putting the marker (if absent) and the bookmark.
    #[tracing::instrument(name = "dynamo.put_bookmark", skip_all)]
    async fn put_bookmark(&self, bookmark: &Bookmark) -> Result<Bookmark, StoreError> {
        let pk = schema::bookmarks_pk(bookmark.user.as_str());
        for _ in 0..BOOKMARK_ATTEMPTS {
            let existing = self
                .bookmark_id(
                    bookmark.user.as_str(),
                    bookmark.owner.as_str(),
                    bookmark.conversation_id.as_str(),
                    bookmark.message_id.as_str(),
                )
                .await?;
            if let Some(existing) = existing {
                let mut update = self
                    .client
                    .update_item()
                    .table_name(&self.tables.conversations)
                    .set_key(Some(sdk_key(pk.clone(), schema::bookmark_sk(&existing))))
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#note", "note")
                    .return_values(ReturnValue::AllNew);
                update = match &bookmark.note {
                    Some(note) => update
                        .update_expression("SET #note = :note")
                        .expression_attribute_values(":note", s(note.clone())),
                    None => update.update_expression("REMOVE #note"),
                };
                match update.send().await {
                    Ok(out) => return from_item(out.attributes.unwrap_or_default()),
                    // Deleted meanwhile: start again.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                    {
                        continue
                    }
                    Err(e) => return Err(classify("UpdateItem bookmark", e)),
                }
            }
            let mut marker = sdk_key(
                pk.clone(),
                schema::bookmark_marker_sk(
                    bookmark.owner.as_str(),
                    bookmark.conversation_id.as_str(),
                    bookmark.message_id.as_str(),
                ),
            );
            marker.insert("bookmarkId".to_owned(), s(bookmark.id.clone()));
            let mut item = to_item(bookmark)?;
            item.extend(sdk_key(pk.clone(), schema::bookmark_sk(&bookmark.id)));
            let put = Put::builder()
                .table_name(&self.tables.conversations)
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::internal("building a bookmark write", e))?;
            let items = vec![
                put_if_absent(&self.tables.conversations, marker),
                TransactWriteItem::builder().put(put).build(),
            ];
            match self.transact(items).await? {
                Ok(()) => return Ok(bookmark.clone()),
                // Another write bookmarked the message meanwhile: update that one.
                Err(_) => continue,
            }
        }
        Err(StoreError::Unavailable(
            "the bookmark kept changing while it was written".into(),
        ))
    }

    /// A consistent `GetItem` of the marker, then one `BatchWriteItem` deleting it and the
    /// bookmark.
    #[tracing::instrument(name = "dynamo.delete_bookmark", skip_all)]
    async fn delete_bookmark(
        &self,
        user: &UserId,
        owner: &UserId,
        id: &ConversationId,
        message: &MessageId,
    ) -> Result<bool, StoreError> {
        let (user, owner, id, message) = (user.as_str(), owner.as_str(), id.as_str(), message.as_str());
        let Some(bookmark) = self.bookmark_id(user, owner, id, message).await? else {
            return Ok(false);
        };
        let pk = schema::bookmarks_pk(user);
        self.batch_delete(vec![
            sdk_key(pk.clone(), schema::bookmark_sk(&bookmark)),
            sdk_key(pk, schema::bookmark_marker_sk(owner, id, message)),
        ])
        .await?;
        Ok(true)
    }

    /// One `Query` of the `T#` items, backwards, from after `after`, `Limit = limit`.
    #[tracing::instrument(name = "dynamo.list_bookmarks", skip_all)]
    async fn list_bookmarks(
        &self,
        user: &UserId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Bookmark>, StoreError> {
        let pk = schema::bookmarks_pk(user.as_str());
        let start = after.map(|a| sdk_key(pk.clone(), schema::bookmark_sk(a)));
        let out = self
            .client
            .query()
            .table_name(&self.tables.conversations)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#sk", schema::SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(schema::BOOKMARK_PREFIX))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("Query bookmarks", e))?;
        out.items.unwrap_or_default().into_iter().map(from_item).collect()
    }

    /// One `BatchGetItem` per 100 distinct keys (unprocessed keys retried with backoff) of the
    /// conversations' own items.
    #[tracing::instrument(name = "dynamo.conversation_titles", skip_all, fields(keys = keys.len()))]
    async fn conversation_titles(
        &self,
        keys: &[(UserId, ConversationId)],
    ) -> Result<HashMap<(UserId, ConversationId), String>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<Item> = keys
            .iter()
            .filter(|k| seen.insert(*k))
            .map(|(owner, id)| {
                sdk_key(
                    schema::conversation_pk(owner.as_str(), id.as_str()),
                    schema::META.to_owned(),
                )
            })
            .collect();
        let mut titles = HashMap::new();
        for meta in self.conversation_metas(unique, "bookmarks").await? {
            let (Ok(owner), Ok(id)) = (UserId::parse(&meta.owner_id), ConversationId::parse(&meta.id)) else {
                continue;
            };
            if meta.owned_by(&owner) && meta.trashed_at.is_none() {
                titles.insert((owner, id), meta.title);
            }
        }
        Ok(titles)
    }
}

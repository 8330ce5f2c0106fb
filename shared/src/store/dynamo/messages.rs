//! Messages on DynamoDB: append, list, find by client id, delete, clear.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::items::{assemble_messages, message_items, ClientIdItem, Marker, MessageItem};
use super::schema;
use super::{classify, from_item, n, owner_condition, s, sdk_key, DynamoStore, Item};
use crate::domain::{self, ts, ClientMessageId, ConversationId, Message, MessageId, UserId};
use crate::error::StoreError;
use crate::store::{
    cursor, page_size, scaled_time, Appended, Conversations, ListMessages, Messages, Page, Touch, DEFAULT_PAGE,
};

#[async_trait]
impl Messages for DynamoStore {
    #[tracing::instrument(name = "dynamo.append_message", skip_all, fields(conversation = %message.conversation_id, message = %message.id))]
    async fn append_message(&self, owner: &UserId, message: &Message, touch: &Touch) -> Result<Appended, StoreError> {
        let table = &self.tables.conversations;
        let id = &message.conversation_id;
        let mut items = vec![self.touch_update(owner, message, touch.title.as_deref())?];
        items.extend(message_items(table, owner, message, Marker::IfAbsent)?);
        match self.transact(items).await? {
            Ok(()) => Ok(Appended::Stored),
            Err(codes) => {
                if codes.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") {
                    return Err(StoreError::NotFound);
                }
                let marker_failed = message.client_id.is_some()
                    && codes.last().and_then(Option::as_deref) == Some("ConditionalCheckFailed");
                if let (true, Some(client_id)) = (marker_failed, &message.client_id) {
                    if let Some(existing) = self.find_by_client_id(owner, id, client_id).await? {
                        return Ok(Appended::Duplicate(existing.id));
                    }
                }
                Err(StoreError::Conflict(format!("message {} already exists", message.id)))
            }
        }
    }

    #[tracing::instrument(name = "dynamo.list_messages", skip_all, fields(conversation = %id, limit = ?query.limit, paged = query.cursor.is_some()))]
    async fn list_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
        query: &ListMessages,
    ) -> Result<Page<Message>, StoreError> {
        if query.limit.is_none() && query.cursor.is_none() {
            // Every message: one Query of the whole partition checks the owner and reads them all.
            let (_, messages) = self.get_conversation_with_messages(owner, id).await?;
            return Ok(Page {
                items: messages,
                next_cursor: None,
            });
        }
        self.get_meta(owner, id).await?;
        let scope = cursor::messages_scope(owner.as_str(), id.as_str());
        let after = cursor::message_position(&scope, query.cursor.as_deref())?;
        let Some(limit) = query.limit.map(|l| page_size(Some(l), DEFAULT_PAGE) as usize) else {
            // No limit: every message (one Query, paged by DynamoDB's 1 MB pages).
            let items = self.query_partition(owner, id, Some(schema::MSG_PREFIX), false).await?;
            let mut messages = assemble_messages(items)?;
            if let Some(after) = after {
                messages.retain(|m| m.id.as_str() > after.as_str());
            }
            return Ok(Page {
                items: messages,
                next_cursor: None,
            });
        };
        // Read heads and chunks until one head past the page is seen (so the last message is whole
        // and we know whether more follow).
        let pk = schema::conversation_pk(owner.as_str(), id.as_str());
        let mut start = after.map(|last| sdk_key(pk.clone(), schema::chunk_sk(&last, 9999)));
        let mut items: Vec<Item> = Vec::new();
        let mut heads = 0usize;
        let mut more = false;
        'pages: loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.conversations)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_names("#sk", schema::SK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(schema::MSG_PREFIX))
                .limit((limit + 1 - heads.min(limit)) as i32 + 8)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query messages", e))?;
            for item in out.items.unwrap_or_default() {
                let is_head = matches!(item.get(schema::SK), Some(AttributeValue::S(sk)) if !sk.contains("#C"));
                if is_head {
                    if heads == limit {
                        more = true;
                        break 'pages;
                    }
                    heads += 1;
                }
                items.push(item);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        cursor::next_page(assemble_messages(items)?, more, &scope, |last| last.id.to_string())
    }

    #[tracing::instrument(name = "dynamo.find_by_client_id", skip_all, fields(conversation = %id))]
    async fn find_by_client_id(
        &self,
        owner: &UserId,
        id: &ConversationId,
        client_id: &ClientMessageId,
    ) -> Result<Option<Message>, StoreError> {
        self.get_meta(owner, id).await?;
        let pk = schema::conversation_pk(owner.as_str(), id.as_str());
        let marker = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(pk, schema::client_id_sk(client_id.as_str()))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem client id", e))?;
        let Some(marker) = marker.item else {
            return Ok(None);
        };
        let marker: ClientIdItem = from_item(marker)?;
        let items = self
            .query_partition(owner, id, Some(&schema::message_sk(&marker.message_id)), false)
            .await?;
        Ok(assemble_messages(items)?.into_iter().next())
    }

    #[tracing::instrument(name = "dynamo.delete_message", skip_all, fields(conversation = %id, message = %message))]
    async fn delete_message(&self, owner: &UserId, id: &ConversationId, message: &MessageId) -> Result<(), StoreError> {
        self.get_meta(owner, id).await?;
        let items = self
            .query_partition(owner, id, Some(&schema::message_sk(message.as_str())), false)
            .await?;
        let found = assemble_messages(items.clone())?;
        let Some(found) = found.into_iter().find(|m| &m.id == message) else {
            return Err(StoreError::NotFound);
        };
        let pk = schema::conversation_pk(owner.as_str(), id.as_str());
        let mut keys: Vec<Item> = items
            .iter()
            .filter_map(|i| match i.get(schema::SK) {
                Some(AttributeValue::S(sk)) => Some(sdk_key(pk.clone(), sk.clone())),
                _ => None,
            })
            .collect();
        if let Some(client_id) = &found.client_id {
            keys.push(sdk_key(pk.clone(), schema::client_id_sk(client_id.as_str())));
        }
        self.batch_delete(keys).await?;
        // Re-point the preview at the newest remaining message.
        let newest = self
            .client
            .query()
            .table_name(&self.tables.conversations)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#sk", schema::SK)
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":prefix", s(schema::MSG_PREFIX))
            .scan_index_forward(false)
            .limit(16)
            .send()
            .await
            .map_err(|e| classify("Query newest message", e))?;
        let newest_head = newest
            .items
            .unwrap_or_default()
            .into_iter()
            .find(|i| matches!(i.get(schema::SK), Some(AttributeValue::S(sk)) if !sk.contains("#C")));
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(pk, schema::META.to_owned())))
            .condition_expression(owner_condition())
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":minus", n(-1));
        req = match newest_head {
            Some(head) => {
                // The preview needs only the head's first characters; chunks are never needed.
                let head: MessageItem = from_item(head)?;
                req.update_expression("SET lastMessage = :preview ADD messageCount :minus")
                    .expression_attribute_values(":preview", s(domain::preview(&head.content)))
            }
            None => req.update_expression("REMOVE lastMessage ADD messageCount :minus"),
        };
        req.send().await.map_err(|e| match e {
            SdkError::ServiceError(se) if se.err().is_conditional_check_failed_exception() => StoreError::NotFound,
            other => classify("UpdateItem after message delete", other),
        })?;
        Ok(())
    }

    #[tracing::instrument(name = "dynamo.clear_messages", skip_all, fields(conversation = %id))]
    async fn clear_messages(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        self.get_meta(owner, id).await?;
        let messages = self.delete_partition_items(owner, id).await?;
        self.client
            .update_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(
                schema::conversation_pk(owner.as_str(), id.as_str()),
                schema::META.to_owned(),
            )))
            .update_expression("REMOVE lastMessage, activeLeaf ADD messageCount :minus")
            .condition_expression(owner_condition())
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":minus", n(-(messages as i64)))
            .send()
            .await
            .map_err(|e| match e {
                SdkError::ServiceError(se) if se.err().is_conditional_check_failed_exception() => StoreError::NotFound,
                other => classify("UpdateItem after clear", other),
            })?;
        Ok(messages)
    }
}

impl DynamoStore {
    /// The META update of an append (owner checked): `updatedAt`, preview, rank, count, and the
    /// active leaf (an appended message continues the branch it was added to); the title too,
    /// when given (a first message names a conversation that still has the default title).
    pub(super) fn touch_update(
        &self,
        owner: &UserId,
        message: &Message,
        title: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        self.touch_update_counted(owner, message, title, true)
    }

    /// [`Self::touch_update`], adding one to the count only if `counted` (a message replaced in
    /// place, a continued reply, is not one more).
    pub(super) fn touch_update_counted(
        &self,
        owner: &UserId,
        message: &Message,
        title: Option<&str>,
        counted: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut sets = vec![
            "updatedAt = :now",
            "lastMessage = :preview",
            "gsi1sk = pinBase + :scaled",
            "gsi2sk = pinBase + :scaled",
            "gsi3sk = pinBase + :scaled",
            "gsi4sk = pinBase + :scaled",
            "activeLeaf = :leaf",
            "dayKey = :day",
        ];
        let mut update = Update::builder()
            .table_name(&self.tables.conversations)
            .key(
                schema::PK,
                s(schema::conversation_pk(
                    owner.as_str(),
                    message.conversation_id.as_str(),
                )),
            )
            .key(schema::SK, s(schema::META))
            .condition_expression(owner_condition())
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":now", s(ts::format(&message.created_at)))
            .expression_attribute_values(":preview", s(domain::preview(&message.content)))
            .expression_attribute_values(":scaled", n(scaled_time(message.created_at)))
            .expression_attribute_values(":leaf", s(message.id.as_str()))
            .expression_attribute_values(
                ":day",
                s(schema::touched_day_key(
                    &message.created_at,
                    message.conversation_id.as_str(),
                )),
            );
        if counted {
            update = update.expression_attribute_values(":one", n(1));
        }
        if let Some(title) = title {
            sets.push("title = :title");
            update = update.expression_attribute_values(":title", s(title));
        }
        let update = update
            .update_expression(format!(
                "SET {}{}",
                sets.join(", "),
                if counted { " ADD messageCount :one" } else { "" }
            ))
            .build()
            .map_err(|e| StoreError::internal("building the conversation update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

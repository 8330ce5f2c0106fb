//! Conversations on DynamoDB: create, read, list, update, delete.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ReturnValue, WriteRequest};

use super::items::{assemble_messages, conversation_item, message_items, ConversationItem, Marker};
use super::schema;
use super::{classify, from_item, n, s, sdk_key, DynamoStore, Item, MAX_TRANSACTION_ITEMS};
use crate::domain::{Conversation, ConversationId, Message, Shelf, SolutionFilter, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::rules::PINNED_RANK;
use crate::store::{cursor, page_size, rules, ConversationPatch, Conversations, ListConversations, Page, DEFAULT_PAGE};

#[async_trait]
impl Conversations for DynamoStore {
    #[tracing::instrument(name = "dynamo.create_conversation", skip_all, fields(conversation = %conversation.id, messages = messages.len()))]
    async fn create_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        let table = &self.tables.conversations;
        let mut items = vec![conversation_item(table, conversation, messages)?];
        items.extend(self.tag_puts(conversation)?);
        for m in messages {
            items.extend(message_items(table, &conversation.owner, m, Marker::IfAbsent)?);
        }
        if items.len() == 1 {
            // A lone conversation: a conditional PutItem costs half a transaction.
            let put = items.into_iter().next().and_then(|i| i.put);
            let Some(put) = put else {
                return Err(StoreError::internal("create conversation", "no put"));
            };
            let result = self
                .client
                .put_item()
                .table_name(table)
                .set_item(Some(put.item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", schema::PK)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Err(
                    StoreError::Conflict(format!("conversation {} already exists", conversation.id)),
                ),
                Err(e) => Err(classify("PutItem conversation", e)),
            };
        }
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(codes) if codes.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") => Err(
                StoreError::Conflict(format!("conversation {} already exists", conversation.id)),
            ),
            Err(_) => Err(StoreError::Conflict(
                "a message id or client message id is repeated".to_owned(),
            )),
        }
    }

    #[tracing::instrument(name = "dynamo.import_conversation", skip_all, fields(conversation = %conversation.id, messages = messages.len()))]
    async fn import_conversation(&self, conversation: &Conversation, messages: &[Message]) -> Result<(), StoreError> {
        let table = &self.tables.conversations;
        let mut writes = Vec::new();
        for m in messages {
            writes.extend(message_items(table, &conversation.owner, m, Marker::IfAbsent)?);
        }
        if writes.len() < MAX_TRANSACTION_ITEMS {
            // It fits one transaction with its conversation: all or nothing.
            return self.create_conversation(conversation, messages).await;
        }
        // 1. The conversation, hidden (`importing`, out of the listings): put if absent, or over
        //    the hidden one of an import of it that was interrupted (which this one finishes).
        let mut meta = ConversationItem::from_domain(&rules::as_created(conversation, messages));
        let (gsi1pk, gsi2pk) = (meta.gsi1pk.take(), meta.gsi2pk.take());
        // Out of every listing, but still found by its owner's erasure (`Accounts::erase_user`).
        meta.gsi1pk = Some(schema::importing_pk(conversation.owner.as_str()));
        meta.importing = Some(true);
        let result = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(super::to_item(&meta)?))
            .condition_expression("attribute_not_exists(#pk) OR importing = :yes")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                return Err(StoreError::Conflict(format!(
                    "conversation {} already exists",
                    conversation.id
                )))
            }
            Err(e) => return Err(classify("PutItem imported conversation", e)),
        }
        // 2. Its messages (heads, chunks, client-id markers): plain puts, 25 a batch; writing
        //    them again (a resumed import) writes the same items.
        let mut requests = Vec::with_capacity(writes.len());
        for write in writes {
            let Some(put) = write.put else {
                return Err(StoreError::internal(
                    "import conversation",
                    "a message write is not a put",
                ));
            };
            let request = PutRequest::builder()
                .set_item(Some(put.item))
                .build()
                .map_err(|e| StoreError::internal("building a put request", e))?;
            requests.push(WriteRequest::builder().put_request(request).build());
        }
        for chunk in requests.chunks(25) {
            self.batch_write(table, &mut chunk.to_vec()).await?;
        }
        // 3. Shown: back in the listings, the mark removed.
        let mut update = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(sdk_key(meta.pk.clone(), schema::META.to_owned())))
            .update_expression("SET gsi1pk = :g1, gsi2pk = :g2 REMOVE importing")
            .condition_expression("importing = :yes")
            .expression_attribute_values(":yes", AttributeValue::Bool(true));
        for (name, value) in [(":g1", gsi1pk), (":g2", gsi2pk)] {
            let value = value.ok_or_else(|| StoreError::internal("import conversation", "no listing key"))?;
            update = update.expression_attribute_values(name, s(&value));
        }
        update
            .send()
            .await
            .map_err(|e| classify("UpdateItem reveal imported conversation", e))?;
        Ok(())
    }

    /// One conditional `PutItem` on the events table (`CLAIM#<id>`): put if absent or already
    /// the owner's; another owner's claim fails the condition.
    #[tracing::instrument(name = "dynamo.claim_conversation_id", skip_all, fields(conversation = %id))]
    async fn claim_conversation_id(&self, owner: &UserId, id: &ConversationId) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.events)
            .item(schema::PK, s(schema::claim_pk(id.as_str())))
            .item(schema::SK, s("-"))
            .item("owner", s(owner.as_str()))
            .condition_expression("attribute_not_exists(#pk) OR #owner = :owner")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Err(
                StoreError::Conflict(format!("conversation id {id} belongs to another user")),
            ),
            Err(e) => Err(classify("PutItem conversation id claim", e)),
        }
    }

    /// One `GetItem` of `CLAIM#<id>` (consistent).
    #[tracing::instrument(name = "dynamo.conversation_id_claimant", skip_all, fields(conversation = %id))]
    async fn conversation_id_claimant(&self, id: &ConversationId) -> Result<Option<UserId>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.events)
            .key(schema::PK, s(schema::claim_pk(id.as_str())))
            .key(schema::SK, s("-"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem conversation id claim", e))?;
        match out.item.as_ref().and_then(|item| item.get("owner")) {
            None => Ok(None),
            Some(aws_sdk_dynamodb::types::AttributeValue::S(owner)) => UserId::parse(owner)
                .map(Some)
                .map_err(|e| StoreError::internal("stored claim owner", e)),
            Some(_) => Err(StoreError::internal("stored claim owner", "not a string")),
        }
    }

    #[tracing::instrument(name = "dynamo.get_conversation", skip_all, fields(conversation = %id))]
    async fn get_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<Conversation, StoreError> {
        self.get_meta(owner, id).await?.into_domain()
    }

    #[tracing::instrument(name = "dynamo.get_conversation_with_messages", skip_all, fields(conversation = %id))]
    async fn get_conversation_with_messages(
        &self,
        owner: &UserId,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<Message>), StoreError> {
        // From `LIVE` to the last message: the live-turn marker, the conversation and its
        // messages (client-id markers, receipts and checkpoints sort outside the range).
        let items = self.query_range(owner, id, schema::LIVE, schema::MESSAGES_END).await?;
        let mut meta: Option<ConversationItem> = None;
        let mut live = None;
        let mut messages = Vec::with_capacity(items.len());
        for item in items {
            match item.get(schema::SK) {
                Some(AttributeValue::S(sk)) if sk == schema::META => meta = Some(from_item(item)?),
                Some(AttributeValue::S(sk)) if sk == schema::LIVE => live = Some(item),
                Some(AttributeValue::S(sk)) if sk.starts_with(schema::MSG_PREFIX) => messages.push(item),
                _ => {}
            }
        }
        let meta = meta.ok_or(StoreError::NotFound)?;
        if !meta.visible_to(owner) {
            return Err(StoreError::NotFound);
        }
        let mut conversation = meta.into_domain()?;
        if let Some(item) =
            live.filter(|i| matches!(i.get("ownerId"), Some(AttributeValue::S(o)) if o == owner.as_str()))
        {
            conversation.live = super::streams::live_from_item(&item, chrono::Utc::now().timestamp())?;
        }
        Ok((conversation, assemble_messages(messages)?))
    }

    /// One Query on the narrowest key the filters name: the folder index, the project index, the
    /// tag memberships, the owner + solution index or the owner index, each per shelf; the other
    /// filters apply to that partition only (`docs/data-model.md`).
    #[tracing::instrument(name = "dynamo.list_conversations", skip_all, fields(solution = ?query.solution, shelf = ?query.shelf, limit = ?query.limit, paged = query.cursor.is_some()))]
    async fn list_conversations(
        &self,
        owner: &UserId,
        query: &ListConversations,
    ) -> Result<Page<Conversation>, StoreError> {
        let limit = page_size(query.limit, DEFAULT_PAGE);
        let bucket = query.solution.map(SolutionFilter::bucket);
        let scope = cursor::conversations_scope(owner.as_str(), query);
        let shelf = query.shelf;
        let o = owner.as_str();
        let mut filters: Vec<&str> = Vec::new();
        let mut values: Vec<(&str, AttributeValue)> = Vec::new();
        let (index, pk_attr, sk_attr, pk) = if let Some(folder) = &query.folder {
            (
                schema::GSI_FOLDER,
                "gsi3pk",
                "gsi3sk",
                schema::folder_pk(o, folder.as_str(), shelf),
            )
        } else if let Some(project) = &query.project {
            (
                schema::GSI_PROJECT,
                "gsi4pk",
                "gsi4sk",
                schema::project_pk(o, project.as_str(), shelf),
            )
        } else if let (Some(tag), false) = (&query.tag, shelf == Shelf::Trash) {
            return self.list_by_tag(owner, tag, query, &scope, limit).await;
        } else if let Some(b) = bucket {
            (
                schema::GSI_OWNER_SOLUTION,
                "gsi2pk",
                "gsi2sk",
                schema::owner_solution_shelf_pk(o, b, shelf),
            )
        } else {
            (schema::GSI_OWNER, "gsi1pk", "gsi1sk", schema::owner_shelf_pk(o, shelf))
        };
        if let (Some(project), Some(_)) = (&query.project, &query.folder) {
            filters.push("projectId = :project");
            values.push((":project", s(project.as_str())));
        }
        if let (Some(b), true) = (bucket, index != schema::GSI_OWNER_SOLUTION) {
            match b {
                "general" => filters.push("attribute_not_exists(solutionType)"),
                _ => {
                    filters.push("solutionType = :solution");
                    values.push((":solution", s(b)));
                }
            }
        }
        if let Some(tag) = &query.tag {
            filters.push("contains(tags, :tag)");
            values.push((":tag", s(tag)));
        }
        let mut key_condition = "#pk = :pk".to_owned();
        match (query.pinned, shelf) {
            (Some(pinned), Shelf::Trash) => {
                filters.push("isPinned = :pinned");
                values.push((":pinned", AttributeValue::Bool(pinned)));
            }
            (Some(true), _) => {
                key_condition.push_str(" AND #sk >= :pinnedRank");
                values.push((":pinnedRank", n(PINNED_RANK)));
            }
            (Some(false), _) => {
                key_condition.push_str(" AND #sk < :pinnedRank");
                values.push((":pinnedRank", n(PINNED_RANK)));
            }
            (None, _) => {}
        }
        if shelf == Shelf::Trash {
            // Due for purging: TTL deletes it within a few days; it is gone for the reader now.
            filters.push("purgeAt > :now");
            values.push((":now", n(query.now.unwrap_or_else(chrono::Utc::now).timestamp())));
        }
        let start = match cursor::conversation_position(&scope, query.cursor.as_deref())? {
            None => None,
            Some((rank, id)) => {
                let mut key = sdk_key(schema::conversation_pk(o, &id), schema::META.to_owned());
                key.insert(pk_attr.to_owned(), s(pk.clone()));
                key.insert(sk_attr.to_owned(), n(rank));
                Some(key)
            }
        };
        // Ask for one more than the page so we know whether another page follows.
        let mut items: Vec<Item> = Vec::new();
        let mut start = start;
        let want = limit as usize + 1;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.tables.conversations)
                .index_name(index)
                .key_condition_expression(&key_condition)
                .expression_attribute_names("#pk", pk_attr)
                .expression_attribute_values(":pk", s(pk.clone()))
                .scan_index_forward(false)
                .limit((want - items.len()) as i32)
                .set_exclusive_start_key(start.take());
            if key_condition.contains("#sk") {
                request = request.expression_attribute_names("#sk", sk_attr);
            }
            if !filters.is_empty() {
                // The filters apply after `Limit`, so a sparse match may take several pages of
                // the partition; the loop asks again until it has a page or the partition ends.
                request = request.filter_expression(filters.join(" AND "));
            }
            for (name, value) in &values {
                request = request.expression_attribute_values(*name, value.clone());
            }
            let out = request.send().await.map_err(|e| classify("Query conversations", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() && items.len() < want => start = Some(key),
                _ => break,
            }
        }
        // Only the page's items are read; the one beyond it only says that another page follows.
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let metas: Vec<ConversationItem> = items.into_iter().map(from_item).collect::<Result<_, _>>()?;
        cursor::next_page(metas, more, &scope, |last| (last.gsi1sk, last.id.clone()))?
            .try_map(ConversationItem::into_domain)
    }

    /// One consistent GetItem and one conditional UpdateItem (a TransactWriteItems when tags change).
    #[tracing::instrument(name = "dynamo.update_conversation", skip_all, fields(conversation = %id))]
    async fn update_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.patch_conversation(owner, id, patch, now).await
    }

    #[tracing::instrument(name = "dynamo.trash_conversation", skip_all, fields(conversation = %id))]
    async fn trash_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.trash(owner, id, now).await
    }

    #[tracing::instrument(name = "dynamo.restore_conversation", skip_all, fields(conversation = %id))]
    async fn restore_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.restore(owner, id, now).await
    }

    #[tracing::instrument(name = "dynamo.delete_conversation", skip_all, fields(conversation = %id))]
    async fn delete_conversation(&self, owner: &UserId, id: &ConversationId) -> Result<u64, StoreError> {
        let key = sdk_key(
            schema::conversation_pk(owner.as_str(), id.as_str()),
            schema::META.to_owned(),
        );
        // 1. Mark: leaves the listings at once and makes every further append fail its condition.
        //    A delete interrupted after this point can be repeated and finishes the job.
        let marked = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(key.clone()))
            .update_expression("SET deleting = :yes REMOVE gsi1pk, gsi2pk, gsi3pk, gsi4pk")
            .condition_expression("attribute_exists(#pk) AND ownerId = :owner")
            .return_values(ReturnValue::AllOld)
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| match e {
                SdkError::ServiceError(se) if se.err().is_conditional_check_failed_exception() => StoreError::NotFound,
                other => classify("UpdateItem mark deleting", other),
            })?;
        // 2. Remove its tag memberships and every other item of the partition.
        let meta: ConversationItem = from_item(marked.attributes.unwrap_or_default())?;
        self.delete_memberships(&meta).await?;
        self.delete_conversation_grants(owner, id).await?;
        self.delete_own_bookmarks(owner, id).await?;
        self.drop_links(owner, Some(id)).await?;
        let messages = self.delete_partition_items(owner, id).await?;
        // 3. The conversation itself, last.
        self.client
            .delete_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(key))
            .send()
            .await
            .map_err(|e| classify("DeleteItem conversation", e))?;
        Ok(messages)
    }
}

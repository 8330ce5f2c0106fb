//! Share links on DynamoDB, in the conversations table (keys: [`schema::share_pk`],
//! [`schema::links_pk`]):
//!
//! - the lookup item `SHARE#<token hash>` / `LINK` holds the link, its view count and the first
//!   piece of its snapshot: reading a link is one GetItem (plus one Query when the snapshot is
//!   over [`schema::SHARE_CHUNK_BYTES`], 100 KB: its further pieces, `C#<version>#<n>`, in the same
//!   partition), one GetItem of the conversation (gone or in the trash: not found) and one
//!   UpdateItem `ADD views :one`;
//! - the owner's item `LINKS#<owner>` / `<conversation id>#<link id>` names the lookup item:
//!   listing a conversation's links is one Query and one BatchGetItem.
//!
//! A refresh writes the new snapshot's pieces under a new version first, then points the lookup
//! item at them, then deletes the old pieces: a reader never mixes two versions.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, PutRequest, TransactWriteItem, Update, WriteRequest};
use serde::{Deserialize, Serialize};

use super::items::split_content;
use super::{classify, from_item, n, s, schema, sdk_key, to_item, DynamoStore, Item};
use crate::domain::link::shared_until;
use crate::domain::{ts, ConversationId, LinkId, ShareLink, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::links::{too_many_links, updated, LinkUpdate, Links, SharedSnapshot};
use crate::store::rules;

/// The lookup item.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkItem {
    pk: String,
    sk: String,
    link_id: String,
    owner_id: String,
    conversation_id: String,
    created_at: String,
    updated_at: String,
    /// Not the table's TTL attribute (`expiresAt`): an expired link stays listed for its owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link_expires_at: Option<String>,
    #[serde(default)]
    views: u64,
    snapshot_at: String,
    message_count: u64,
    version: String,
    /// Pieces of the snapshot, this item's included.
    chunks: usize,
    #[serde(default)]
    snapshot: String,
}

impl LinkItem {
    fn of(link: &ShareLink, version: &str, chunks: usize, first: &str) -> Self {
        Self {
            pk: schema::share_pk(&link.token_hash),
            sk: schema::SHARE_LINK_SK.to_owned(),
            link_id: link.id.to_string(),
            owner_id: link.owner.to_string(),
            conversation_id: link.conversation_id.to_string(),
            created_at: ts::format(&link.created_at),
            updated_at: ts::format(&link.updated_at),
            link_expires_at: link.expires_at.as_ref().map(ts::format),
            views: link.views,
            snapshot_at: ts::format(&link.snapshot_at),
            message_count: link.message_count,
            version: version.to_owned(),
            chunks,
            snapshot: first.to_owned(),
        }
    }

    fn token_hash(&self) -> &str {
        self.pk.strip_prefix("SHARE#").unwrap_or_default()
    }

    fn to_link(&self) -> Result<ShareLink, StoreError> {
        let bad = |e| StoreError::internal("stored share link", e);
        Ok(ShareLink {
            id: LinkId::parse(&self.link_id).map_err(bad)?,
            owner: UserId::parse(&self.owner_id).map_err(bad)?,
            conversation_id: ConversationId::parse(&self.conversation_id).map_err(bad)?,
            token_hash: self.token_hash().to_owned(),
            created_at: rules::parse_ts(&self.created_at)?,
            updated_at: rules::parse_ts(&self.updated_at)?,
            expires_at: self.link_expires_at.as_deref().map(rules::parse_ts).transpose()?,
            views: self.views,
            snapshot_at: rules::parse_ts(&self.snapshot_at)?,
            message_count: self.message_count,
        })
    }
}

/// The owner's item naming a lookup item.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerLinkItem {
    pk: String,
    sk: String,
    token_hash: String,
}

/// A snapshot version: the time it was written, in milliseconds, and a random suffix.
fn new_version(now: Timestamp) -> String {
    format!("{:013}{:04x}", now.timestamp_millis().max(0), rand::random::<u16>())
}

impl DynamoStore {
    /// The owner's link items of a conversation (`None`: every conversation).
    async fn owner_link_items(
        &self,
        owner: &UserId,
        conversation: Option<&ConversationId>,
    ) -> Result<Vec<OwnerLinkItem>, StoreError> {
        let items = self
            .all_pages("Query share links", || {
                let q = self
                    .client
                    .query()
                    .table_name(&self.tables.conversations)
                    .consistent_read(true)
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_values(":pk", s(schema::links_pk(owner.as_str())));
                match conversation {
                    Some(c) => q
                        .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                        .expression_attribute_names("#sk", schema::SK)
                        .expression_attribute_values(":prefix", s(format!("{c}#"))),
                    None => q.key_condition_expression("#pk = :pk"),
                }
            })
            .await?;
        items.into_iter().map(from_item).collect()
    }

    /// The lookup items of `hashes` (without their snapshot), in no particular order.
    async fn link_items(&self, hashes: &[String]) -> Result<Vec<LinkItem>, StoreError> {
        let keys = hashes
            .iter()
            .map(|h| sdk_key(schema::share_pk(h), schema::SHARE_LINK_SK.to_owned()))
            .collect();
        self.batch_get("BatchGetItem share links", keys, |k| {
            k.consistent_read(true)
                .projection_expression(
                    "#pk, #sk, linkId, ownerId, conversationId, createdAt, updatedAt, linkExpiresAt, #views, snapshotAt, messageCount, #version, #chunks",
                )
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_names("#sk", schema::SK)
                .expression_attribute_names("#views", "views")
                .expression_attribute_names("#version", "version")
                .expression_attribute_names("#chunks", "chunks")
        })
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }

    /// One lookup item, read consistently (the snapshot's first piece included).
    async fn link_item(&self, token_hash: &str) -> Result<LinkItem, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::share_pk(token_hash)))
            .key(schema::SK, s(schema::SHARE_LINK_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem share link", e))?;
        from_item(out.item.ok_or(StoreError::NotFound)?)
    }

    /// The owner's link `id` of `conversation`: its lookup item.
    async fn owned_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &LinkId,
    ) -> Result<LinkItem, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::links_pk(owner.as_str())))
            .key(schema::SK, s(schema::share_link_sk(conversation.as_str(), id.as_str())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem share link of an owner", e))?;
        let pointer: OwnerLinkItem = from_item(out.item.ok_or(StoreError::NotFound)?)?;
        let item = self.link_item(&pointer.token_hash).await?;
        if item.owner_id != owner.as_str() || item.conversation_id != conversation.as_str() {
            return Err(StoreError::NotFound);
        }
        Ok(item)
    }

    /// Writes a snapshot's further pieces (its first goes in the lookup item). Returns the
    /// number of pieces and the first.
    async fn put_pieces<'a>(
        &self,
        token_hash: &str,
        version: &str,
        snapshot: &'a str,
    ) -> Result<(usize, &'a str), StoreError> {
        let pieces = split_content(snapshot, schema::SHARE_CHUNK_BYTES);
        let mut requests = Vec::new();
        for (i, piece) in pieces.iter().enumerate().skip(1) {
            let item = HashMap::from([
                (schema::PK.to_owned(), s(schema::share_pk(token_hash))),
                (schema::SK.to_owned(), s(schema::share_chunk_sk(version, i))),
                ("data".to_owned(), s(*piece)),
            ]);
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::internal("PutRequest share link piece", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for batch in requests.chunks(25) {
            let mut batch = batch.to_vec();
            let table = self.tables.conversations.clone();
            self.batch_write(&table, &mut batch).await?;
        }
        Ok((pieces.len(), pieces.first().copied().unwrap_or_default()))
    }

    /// The keys of a snapshot version's further pieces.
    fn piece_keys(token_hash: &str, version: &str, chunks: usize) -> Vec<Item> {
        (1..chunks)
            .map(|i| sdk_key(schema::share_pk(token_hash), schema::share_chunk_sk(version, i)))
            .collect()
    }

    /// Deletes a link's lookup item, pieces and owner's item.
    async fn drop_link(&self, owner: &UserId, item: &LinkItem) -> Result<(), StoreError> {
        let mut keys = Self::piece_keys(item.token_hash(), &item.version, item.chunks);
        keys.push(sdk_key(item.pk.clone(), item.sk.clone()));
        keys.push(sdk_key(
            schema::links_pk(owner.as_str()),
            schema::share_link_sk(&item.conversation_id, &item.link_id),
        ));
        self.batch_delete(keys).await
    }

    /// Deletes every link of a conversation (`None`: of every conversation of `owner`). How many.
    pub(super) async fn drop_links(
        &self,
        owner: &UserId,
        conversation: Option<&ConversationId>,
    ) -> Result<u64, StoreError> {
        let pointers = self.owner_link_items(owner, conversation).await?;
        let hashes: Vec<String> = pointers.iter().map(|p| p.token_hash.clone()).collect();
        let items = self.link_items(&hashes).await?;
        let mut count = 0;
        for item in items.iter().filter(|i| i.owner_id == owner.as_str()) {
            self.drop_link(owner, item).await?;
            count += 1;
        }
        // Owner's items whose lookup item is already gone (an interrupted delete).
        let found: std::collections::HashSet<&str> = items.iter().map(LinkItem::token_hash).collect();
        let orphans: Vec<Item> = pointers
            .iter()
            .filter(|p| !found.contains(p.token_hash.as_str()))
            .map(|p| sdk_key(p.pk.clone(), p.sk.clone()))
            .collect();
        self.batch_delete(orphans).await?;
        Ok(count)
    }

    /// Writes the conversation's `sharedUntil` from its links as they are now, and with
    /// `create`, adds that link (its lookup item and the owner's item) in the same transaction,
    /// refused with 409 when the conversation already has `max` live links. Every change of a
    /// conversation's links ends here, and each is conditioned on the conversation's `linksRev`
    /// being the one read with the links (and bumps it): a change that raced with another reads
    /// again and retries, so two creates at the cap cannot both pass and `sharedUntil` is
    /// always computed from the links after the last change. A conversation gone meanwhile is
    /// left alone (a create then answers 404).
    async fn commit_links(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        now: Timestamp,
        create: Option<(&ShareLink, &Item, usize)>,
    ) -> Result<(), StoreError> {
        let table = &self.tables.conversations;
        for attempt in 1..=super::CONFLICT_ATTEMPTS {
            let meta = match self.read_meta(owner, conversation).await {
                Ok(meta) => meta,
                Err(StoreError::NotFound) if create.is_none() => return Ok(()),
                Err(e) => return Err(e),
            };
            if create.is_some() && meta.trashed_at.is_some() {
                return Err(StoreError::NotFound);
            }
            let mut links = self.links_of(owner, conversation).await?;
            let mut items = Vec::with_capacity(3);
            if let Some((link, lookup, max)) = create {
                if links.iter().filter(|l| l.live(now)).count() >= max {
                    return Err(too_many_links(max));
                }
                let pointer = OwnerLinkItem {
                    pk: schema::links_pk(link.owner.as_str()),
                    sk: schema::share_link_sk(link.conversation_id.as_str(), link.id.as_str()),
                    token_hash: link.token_hash.clone(),
                };
                items.push(super::put_if_absent(table, lookup.clone()));
                let pointer = Put::builder()
                    .table_name(table)
                    .set_item(Some(to_item(&pointer)?))
                    .build()
                    .map_err(|e| StoreError::internal("building a share link's owner item", e))?;
                items.push(TransactWriteItem::builder().put(pointer).build());
                links.push(link.clone());
            }
            let rev = meta.links_rev;
            let mut update = Update::builder()
                .table_name(table)
                .key(schema::PK, s(meta.pk.clone()))
                .key(schema::SK, s(schema::META))
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_names("#rev", "linksRev")
                .expression_attribute_names("#until", "sharedUntil")
                .expression_attribute_values(":next", n(rev + 1));
            update = if rev == 0 {
                update.condition_expression("attribute_exists(#pk) AND attribute_not_exists(#rev)")
            } else {
                update
                    .condition_expression("attribute_exists(#pk) AND #rev = :seen")
                    .expression_attribute_values(":seen", n(rev))
            };
            update = match shared_until(&links, now) {
                Some(t) => update
                    .update_expression("SET #until = :until, #rev = :next")
                    .expression_attribute_values(":until", s(ts::format(&t))),
                None => update.update_expression("SET #rev = :next REMOVE #until"),
            };
            items.push(super::update_item(update.build())?);
            let codes = match self.transact(items).await? {
                Ok(()) => return Ok(()),
                Err(codes) => codes,
            };
            let failed = |i: usize| codes.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed");
            if create.is_some() && failed(0) {
                return Err(StoreError::Conflict("this share link already exists".to_owned()));
            }
            // The conversation's links changed since they were read (or it is gone): read again.
            super::backoff(attempt).await;
        }
        Err(StoreError::Unavailable(
            "the conversation's share links kept changing concurrently".into(),
        ))
    }

    async fn links_of(&self, owner: &UserId, conversation: &ConversationId) -> Result<Vec<ShareLink>, StoreError> {
        let pointers = self.owner_link_items(owner, Some(conversation)).await?;
        let hashes: Vec<String> = pointers.into_iter().map(|p| p.token_hash).collect();
        let mut links = Vec::new();
        for item in self.link_items(&hashes).await? {
            if item.owner_id == owner.as_str() && item.conversation_id == conversation.as_str() {
                links.push(item.to_link()?);
            }
        }
        links.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(links)
    }
}

#[async_trait]
impl Links for DynamoStore {
    /// A GetItem of the conversation, the links' Query and BatchGetItem (the cap), the pieces
    /// (a snapshot over 100 KB), then one transaction: the lookup, the owner's item and the
    /// conversation's `sharedUntil`, conditioned on no other link change since the count (so two
    /// concurrent creates at the cap cannot both pass).
    #[tracing::instrument(name = "dynamo.create_link", skip_all, fields(link = %link.id))]
    async fn create_link(
        &self,
        link: &ShareLink,
        snapshot: &str,
        max: usize,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.get_meta(&link.owner, &link.conversation_id).await?;
        let version = new_version(now);
        let (chunks, first) = self.put_pieces(&link.token_hash, &version, snapshot).await?;
        let item = to_item(&LinkItem::of(link, &version, chunks, first))?;
        let committed = self
            .commit_links(&link.owner, &link.conversation_id, now, Some((link, &item, max)))
            .await;
        if committed.is_err() {
            // The snapshot's pieces were written for this link only.
            self.batch_delete(Self::piece_keys(&link.token_hash, &version, chunks))
                .await?;
        }
        committed
    }

    #[tracing::instrument(name = "dynamo.list_links", skip_all)]
    async fn list_links(&self, owner: &UserId, conversation: &ConversationId) -> Result<Vec<ShareLink>, StoreError> {
        self.links_of(owner, conversation).await
    }

    #[tracing::instrument(name = "dynamo.update_link", skip_all, fields(link = %id))]
    async fn update_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &LinkId,
        update: &LinkUpdate,
        now: Timestamp,
    ) -> Result<ShareLink, StoreError> {
        self.get_meta(owner, conversation).await?;
        let item = self.owned_link(owner, conversation, id).await?;
        let next = updated(&item.to_link()?, update, now);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(item.pk.clone()))
            .key(schema::SK, s(item.sk.clone()))
            .condition_expression("attribute_exists(#pk) AND ownerId = :owner AND #version = :seen")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":seen", s(item.version.clone()))
            .expression_attribute_values(":updated", s(ts::format(&now)));
        let mut set = vec!["updatedAt = :updated"];
        let mut remove = Vec::new();
        match next.expires_at {
            Some(t) => {
                set.push("linkExpiresAt = :expires");
                request = request.expression_attribute_values(":expires", s(ts::format(&t)));
            }
            None => remove.push("linkExpiresAt"),
        }
        let mut new_version = None;
        if let Some((snapshot, at, count)) = &update.snapshot {
            let version = self::new_version(now);
            let (chunks, first) = self.put_pieces(item.token_hash(), &version, snapshot).await?;
            set.extend([
                "snapshotAt = :at",
                "messageCount = :count",
                "#version = :version",
                "#chunks = :chunks",
                "#snapshot = :snapshot",
            ]);
            request = request
                .expression_attribute_names("#chunks", "chunks")
                .expression_attribute_names("#snapshot", "snapshot")
                .expression_attribute_values(":at", s(ts::format(at)))
                .expression_attribute_values(":count", n(count))
                .expression_attribute_values(":version", s(version.clone()))
                .expression_attribute_values(":chunks", n(chunks))
                .expression_attribute_values(":snapshot", s(first));
            new_version = Some((version, chunks));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let result = request
            .update_expression(expression)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        let stored: LinkItem = match result {
            Ok(out) => from_item(out.attributes.unwrap_or_default())?,
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                if let Some((version, chunks)) = &new_version {
                    self.batch_delete(Self::piece_keys(item.token_hash(), version, *chunks))
                        .await?;
                }
                return Err(StoreError::Conflict("the link changed meanwhile; try again".to_owned()));
            }
            Err(e) => return Err(classify("UpdateItem share link", e)),
        };
        if new_version.is_some() {
            self.batch_delete(Self::piece_keys(item.token_hash(), &item.version, item.chunks))
                .await?;
        }
        self.commit_links(owner, conversation, now, None).await?;
        stored.to_link()
    }

    #[tracing::instrument(name = "dynamo.delete_link", skip_all, fields(link = %id))]
    async fn delete_link(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
        id: &LinkId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let item = self.owned_link(owner, conversation, id).await?;
        self.drop_link(owner, &item).await?;
        self.commit_links(owner, conversation, now, None).await
    }

    #[tracing::instrument(name = "dynamo.delete_conversation_links", skip_all)]
    async fn delete_conversation_links(
        &self,
        owner: &UserId,
        conversation: &ConversationId,
    ) -> Result<u64, StoreError> {
        let count = self.drop_links(owner, Some(conversation)).await?;
        self.commit_links(owner, conversation, crate::domain::now(), None)
            .await?;
        Ok(count)
    }

    /// One GetItem (a wrong, revoked or expired token ends here), one Query for the pieces of a
    /// snapshot over 100 KB, one GetItem of the conversation, one UpdateItem `ADD views`.
    #[tracing::instrument(name = "dynamo.read_link", skip_all)]
    async fn read_link(&self, token_hash: &str, now: Timestamp) -> Result<SharedSnapshot, StoreError> {
        let item = self.link_item(token_hash).await?;
        let mut link = item.to_link()?;
        if !link.live(now) {
            return Err(StoreError::NotFound);
        }
        let mut snapshot = item.snapshot.clone();
        if item.chunks > 1 {
            let mut start: Option<Item> = None;
            let mut pieces = 1;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.tables.conversations)
                    .consistent_read(true)
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#sk", schema::SK)
                    .expression_attribute_values(":pk", s(schema::share_pk(token_hash)))
                    .expression_attribute_values(":prefix", s(schema::share_chunk_prefix(&item.version)))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| classify("Query share link pieces", e))?;
                for piece in out.items.unwrap_or_default() {
                    if let Some(AttributeValue::S(data)) = piece.get("data") {
                        snapshot.push_str(data);
                        pieces += 1;
                    }
                }
                match out.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
            if pieces != item.chunks {
                // Refreshed meanwhile (this version's pieces are going): the reader retries.
                return Err(StoreError::Unavailable("the share link is being refreshed".into()));
            }
        }
        // The conversation: gone, being deleted or in the trash, the link does not answer.
        self.get_meta(&link.owner, &link.conversation_id).await?;
        let counted = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(item.pk.clone()))
            .key(schema::SK, s(item.sk.clone()))
            .update_expression("ADD #views :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#views", "views")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match counted {
            Ok(out) => {
                if let Some(AttributeValue::N(v)) = out.attributes.as_ref().and_then(|a| a.get("views")) {
                    link.views = v.parse().unwrap_or(link.views + 1);
                }
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                return Err(StoreError::NotFound);
            }
            Err(e) => return Err(classify("UpdateItem share link views", e)),
        }
        Ok(SharedSnapshot { link, snapshot })
    }
}

//! Organising conversations on DynamoDB: the META rewrite every organising change goes through
//! (folder, project, tags, archive, trash, restore, and the documented patch fields), the tag
//! memberships (`TAGS#<owner>`), the listing by tag, folders (`FOLD#<owner>`) and the tag counts.
//!
//! A conversation's shelf, folder and project are in its index keys (`gsi1pk`..`gsi4pk`, see
//! [`super::items::IndexKeys`]), so each listing filter is a Query on a key. A change of any of
//! them reads the META item (consistently), computes the new keys and writes them with an
//! optimistic condition on `rev` (bumped by each such change): a concurrent change makes the
//! write fail and it is tried again on a fresh read (a chat turn's touch does not bump `rev`, so
//! turns never make a patch retry). Tag memberships are added and removed in the same
//! transaction as the META update.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::items::{ConversationItem, IndexKeys};
use super::schema;
use super::{classify, from_item, n, s, DynamoStore, Item};
use crate::domain::{ts, Conversation, ConversationId, Folder, FolderId, Shelf, SolutionFilter, Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{cursor, rules, ConversationPatch, FolderDeleted, ListConversations, Organizer, Page, TagCount};

/// Attempts of an organising write that keeps losing its optimistic condition to another one.
const REWRITE_ATTEMPTS: u32 = 4;

/// Which conversations a rewrite applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Not in the trash (every patch, and moving to the trash).
    Visible,
    /// In the trash and not yet due for purging at this epoch second (restoring).
    Trashed(i64),
    /// On any shelf (a folder being emptied moves trashed conversations too).
    Any,
}

/// A tag membership item.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagItem {
    pk: String,
    sk: String,
    conversation_id: String,
}

/// A folder item: its keys and the folder's attributes.
#[derive(Serialize, Deserialize)]
struct FolderItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    folder: Folder,
}

impl FolderItem {
    fn of(folder: &Folder) -> Self {
        Self {
            pk: schema::folders_pk(folder.owner.as_str()),
            sk: folder.id.to_string(),
            folder: folder.clone(),
        }
    }
}

/// An UpdateItem expression under construction.
#[derive(Default)]
struct Expr {
    sets: Vec<String>,
    removes: Vec<String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn set(&mut self, attr: &str, value: AttributeValue) {
        let placeholder = format!(":{attr}");
        self.sets.push(format!("{attr} = {placeholder}"));
        self.values.insert(placeholder, value);
    }

    fn set_or_remove(&mut self, attr: &str, value: Option<AttributeValue>) {
        match value {
            Some(v) => self.set(attr, v),
            None => self.removes.push(attr.to_owned()),
        }
    }

    fn expression(&self) -> String {
        let mut out = String::new();
        if !self.sets.is_empty() {
            out.push_str(&format!("SET {}", self.sets.join(", ")));
        }
        if !self.removes.is_empty() {
            out.push_str(&format!(" REMOVE {}", self.removes.join(", ")));
        }
        out
    }
}

impl DynamoStore {
    /// The conversations' own items of `keys` (read consistently, in batches of 100, unprocessed
    /// keys retried with backoff); missing ones are left out. `what` names the caller in errors.
    pub(super) async fn conversation_metas(
        &self,
        keys: Vec<Item>,
        what: &str,
    ) -> Result<Vec<ConversationItem>, StoreError> {
        self.batch_get(what, keys, |k| k.consistent_read(true))
            .await?
            .into_iter()
            .map(from_item::<ConversationItem>)
            .collect()
    }

    /// Reads the conversation, lets `change` make the new version from the current one, and writes
    /// it: the fields `change` altered, the index keys of its (new) shelf, folder and project, the
    /// tag memberships added or removed, all on condition that `rev` is still the one read.
    /// `touched`: `updatedAt` becomes the new version's (a patch), otherwise it is left alone.
    pub(super) async fn rewrite(
        &self,
        owner: &UserId,
        id: &ConversationId,
        expect: Expect,
        touched: bool,
        change: impl Fn(&Conversation) -> Conversation + Send + Sync,
    ) -> Result<Conversation, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let meta = self.read_meta(owner, id).await?;
            let fits = match expect {
                Expect::Visible => meta.trashed_at.is_none(),
                Expect::Trashed(now) => meta.trashed_at.is_some() && meta.purge_at.is_some_and(|at| at > now),
                Expect::Any => true,
            };
            if !fits {
                return Err(StoreError::NotFound);
            }
            let rev = meta.rev;
            let pin_base = meta.pin_base;
            let before = meta.into_domain()?;
            let after = change(&before);
            match self.write_rewrite(&before, &after, rev, pin_base, touched).await? {
                true => return Ok(after),
                false if attempt < REWRITE_ATTEMPTS => continue,
                false => {
                    return Err(StoreError::Conflict(
                        "the conversation keeps changing; try again".to_owned(),
                    ))
                }
            }
        }
    }

    /// The write of [`Self::rewrite`]; `false` when its condition failed.
    async fn write_rewrite(
        &self,
        before: &Conversation,
        after: &Conversation,
        rev: u64,
        pin_base: i64,
        touched: bool,
    ) -> Result<bool, StoreError> {
        let owner = after.owner.as_str();
        let mut e = Expr::default();
        if after.title != before.title {
            e.set("title", s(&after.title));
        }
        if after.is_shared != before.is_shared {
            e.set("isShared", AttributeValue::Bool(after.is_shared));
        }
        if after.model != before.model {
            e.set("model", s(&after.model));
        }
        if after.active_leaf != before.active_leaf || after.last_message != before.last_message {
            e.set_or_remove("activeLeaf", after.active_leaf.as_ref().map(|l| s(l.as_str())));
            e.set_or_remove("lastMessage", after.last_message.as_ref().map(s));
        }
        let opt_ts = |t: Option<Timestamp>| t.as_ref().map(|t| s(ts::format(t)));
        e.set_or_remove("projectId", after.project_id.as_ref().map(|p| s(p.as_str())));
        e.set_or_remove("folderId", after.folder_id.as_ref().map(|f| s(f.as_str())));
        e.set_or_remove(
            "tags",
            (!after.tags.is_empty()).then(|| AttributeValue::L(after.tags.iter().map(s).collect())),
        );
        e.set_or_remove("archivedAt", opt_ts(after.archived_at));
        e.set_or_remove("trashedAt", opt_ts(after.trashed_at));
        e.set_or_remove("purgeAt", after.purge_at().map(|t| n(t.timestamp())));
        if touched {
            e.set("updatedAt", s(ts::format(&after.updated_at)));
        }
        let new_base = crate::store::pin_base(after.is_pinned, &after.id);
        if after.is_pinned != before.is_pinned || new_base != pin_base {
            e.set("isPinned", AttributeValue::Bool(after.is_pinned));
            e.set("pinBase", n(new_base));
        }
        let keys = IndexKeys::of(after);
        e.set("gsi1pk", s(keys.gsi1pk));
        e.set("gsi2pk", s(keys.gsi2pk));
        e.set_or_remove("gsi3pk", keys.gsi3pk.map(s));
        e.set_or_remove("gsi4pk", keys.gsi4pk.map(s));
        e.set("dayKey", s(keys.day_key));
        for attr in ["gsi1sk", "gsi2sk", "gsi3sk", "gsi4sk"] {
            e.set(attr, n(keys.rank));
        }
        e.set("rev", n(rev.saturating_add(1)));
        e.values.insert(":owner".to_owned(), s(owner));
        e.values.insert(":rev".to_owned(), n(rev));
        let condition = if rev == 0 {
            "ownerId = :owner AND attribute_not_exists(deleting) AND (attribute_not_exists(rev) OR rev = :rev)"
        } else {
            "ownerId = :owner AND attribute_not_exists(deleting) AND rev = :rev"
        };
        let key = conversation_key(owner, after.id.as_str());
        let memberships = self.membership_changes(before, after)?;
        if memberships.is_empty() {
            let result = self
                .client
                .update_item()
                .table_name(&self.tables.conversations)
                .set_key(Some(key))
                .update_expression(e.expression())
                .condition_expression(condition)
                .set_expression_attribute_values(Some(e.values))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(true),
                Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => Ok(false),
                Err(other) => Err(classify("UpdateItem organise conversation", other)),
            };
        }
        let update = Update::builder()
            .table_name(&self.tables.conversations)
            .set_key(Some(key))
            .update_expression(e.expression())
            .condition_expression(condition)
            .set_expression_attribute_values(Some(e.values))
            .build()
            .map_err(|e| StoreError::internal("building the conversation update", e))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(memberships);
        match self.transact(items).await? {
            Ok(()) => Ok(true),
            Err(codes) if codes.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") => Ok(false),
            Err(codes) => Err(StoreError::internal(
                "organising a conversation",
                format!("transaction cancelled: {codes:?}"),
            )),
        }
    }

    /// The membership puts and deletes that take `before`'s tags to `after`'s (a conversation in
    /// the trash has none).
    fn membership_changes(
        &self,
        before: &Conversation,
        after: &Conversation,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let live = |c: &Conversation| -> Vec<String> {
            if c.trashed_at.is_some() {
                Vec::new()
            } else {
                c.tags.clone()
            }
        };
        let (old, new) = (live(before), live(after));
        let owner = after.owner.as_str();
        let mut items = Vec::new();
        for tag in old.iter().filter(|t| !new.contains(t)) {
            let delete = Delete::builder()
                .table_name(&self.tables.conversations)
                .key(schema::PK, s(schema::tags_pk(owner)))
                .key(schema::SK, s(schema::tag_sk(tag, after.id.as_str())))
                .build()
                .map_err(|e| StoreError::internal("building a tag delete", e))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        for tag in new.iter().filter(|t| !old.contains(t)) {
            let item = TagItem {
                pk: schema::tags_pk(owner),
                sk: schema::tag_sk(tag, after.id.as_str()),
                conversation_id: after.id.to_string(),
            };
            let put = Put::builder()
                .table_name(&self.tables.conversations)
                .set_item(Some(super::to_item(&item)?))
                .build()
                .map_err(|e| StoreError::internal("building a tag put", e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        Ok(items)
    }

    /// The tag memberships of a new conversation (puts for the creating transaction).
    pub(super) fn tag_puts(&self, c: &Conversation) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut untagged = c.clone();
        untagged.tags.clear();
        self.membership_changes(&untagged, c)
    }

    /// Deletes the tag memberships of a conversation being deleted (missing ones are skipped).
    pub(super) async fn delete_memberships(&self, c: &ConversationItem) -> Result<(), StoreError> {
        if c.trashed_at.is_some() || c.tags.is_empty() {
            return Ok(());
        }
        let keys = c
            .tags
            .iter()
            .map(|tag| {
                HashMap::from([
                    (schema::PK.to_owned(), s(schema::tags_pk(&c.owner_id))),
                    (schema::SK.to_owned(), s(schema::tag_sk(tag, &c.id))),
                ])
            })
            .collect();
        self.batch_delete(keys).await
    }

    /// The listing by tag (on the default list or the archive): the tag's memberships (one Query),
    /// their META items (BatchGetItem, 100 at a time), filtered, ordered by rank, paged.
    pub(super) async fn list_by_tag(
        &self,
        owner: &UserId,
        tag: &str,
        query: &ListConversations,
        scope: &str,
        limit: u32,
    ) -> Result<Page<Conversation>, StoreError> {
        let memberships = self
            .all_pages("Query tag memberships", || {
                self.client
                    .query()
                    .table_name(&self.tables.conversations)
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#sk", schema::SK)
                    .expression_attribute_values(":pk", s(schema::tags_pk(owner.as_str())))
                    .expression_attribute_values(":prefix", s(schema::tag_prefix(tag)))
                    .projection_expression("conversationId")
            })
            .await?;
        let ids: Vec<String> = memberships
            .into_iter()
            .filter_map(|item| match item.get("conversationId") {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let keys: Vec<Item> = ids.iter().map(|id| conversation_key(owner.as_str(), id)).collect();
        let metas = self.conversation_metas(keys, "tag listing").await?;
        let bucket = query.solution.map(SolutionFilter::bucket);
        let mut rows: Vec<(i64, ConversationItem)> = metas
            .into_iter()
            .filter(|m| m.visible_to(owner))
            .filter(|m| match query.shelf {
                Shelf::Archived => m.archived_at.is_some(),
                _ => m.archived_at.is_none(),
            })
            .filter(|m| bucket.is_none_or(|b| SolutionFilter::of(m.solution_type).bucket() == b))
            .filter(|m| query.pinned.is_none_or(|p| m.is_pinned == p))
            .filter(|m| m.tags.iter().any(|t| t == tag))
            .map(|m| (m.gsi1sk, m))
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.id.cmp(&a.1.id)));
        if let Some((rank, after)) = cursor::conversation_position(scope, query.cursor.as_deref())? {
            rows.retain(|(r, m)| *r < rank || (*r == rank && m.id < after));
        }
        rows.truncate(limit as usize + 1);
        let page = cursor::page(rows, limit as usize, scope, |(rank, m)| (*rank, m.id.clone()))?;
        page.try_map(|(_, m)| m.into_domain())
    }

    /// Moves every conversation of `folder` (on every shelf) to no folder. How many moved.
    async fn empty_folder(&self, owner: &UserId, folder: &FolderId) -> Result<u64, StoreError> {
        let mut moved = 0;
        for shelf in Shelf::ALL {
            let pk = schema::folder_pk(owner.as_str(), folder.as_str(), shelf);
            for id in self.index_ids(schema::GSI_FOLDER, "gsi3pk", &pk).await? {
                let id = ConversationId::parse(&id).map_err(|e| StoreError::internal("stored conversation id", e))?;
                let result = self
                    .rewrite(owner, &id, Expect::Any, false, |c| {
                        let mut next = c.clone();
                        if next.folder_id.as_ref() == Some(folder) {
                            next.folder_id = None;
                        }
                        next
                    })
                    .await;
                match result {
                    Ok(_) => moved += 1,
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(moved)
    }

    /// The conversation ids in partition `pk` of index `index` (every page).
    pub(super) async fn index_ids(&self, index: &str, pk_attr: &str, pk: &str) -> Result<Vec<String>, StoreError> {
        let items = self
            .all_pages("Query index", || {
                self.client
                    .query()
                    .table_name(&self.tables.conversations)
                    .index_name(index)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", pk_attr)
                    .expression_attribute_values(":pk", s(pk))
                    .projection_expression("id")
            })
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|item| match item.get("id") {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            })
            .collect())
    }

    /// A patch as a rewrite: the documented fields, `updatedAt = now`.
    pub(super) async fn patch_conversation(
        &self,
        owner: &UserId,
        id: &ConversationId,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.rewrite(owner, id, Expect::Visible, true, |c| patched(c, patch, now))
            .await
    }

    /// Moves a conversation to the trash.
    pub(super) async fn trash(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.rewrite(owner, id, Expect::Visible, false, |c| {
            let mut next = c.clone();
            next.trashed_at = Some(now);
            next
        })
        .await
    }

    /// Takes a conversation out of the trash.
    pub(super) async fn restore(
        &self,
        owner: &UserId,
        id: &ConversationId,
        now: Timestamp,
    ) -> Result<Conversation, StoreError> {
        self.rewrite(owner, id, Expect::Trashed(now.timestamp()), false, |c| {
            let mut next = c.clone();
            next.trashed_at = None;
            next
        })
        .await
    }
}

/// The key of a conversation's META item.
fn conversation_key(owner: &str, id: &str) -> Item {
    HashMap::from([
        (schema::PK.to_owned(), s(schema::conversation_pk(owner, id))),
        (schema::SK.to_owned(), s(schema::META)),
    ])
}

/// `c` with `patch` applied at `now` (the same rules as the embedded store's update).
pub(super) fn patched(c: &Conversation, patch: &ConversationPatch, now: Timestamp) -> Conversation {
    let mut next = c.clone();
    if let Some(title) = &patch.title {
        next.title = title.clone();
    }
    if let Some(pinned) = patch.is_pinned {
        next.is_pinned = pinned;
    }
    if let Some(shared) = patch.is_shared {
        next.is_shared = shared;
    }
    if let Some(model) = &patch.model {
        next.model = model.clone();
    }
    if let Some(leaf) = &patch.active_leaf {
        next.active_leaf = Some(leaf.id.clone());
        next.last_message = leaf.preview.clone();
    }
    if let Some(project) = &patch.project {
        next.project_id = project.clone();
    }
    if let Some(folder) = &patch.folder {
        next.folder_id = folder.clone();
    }
    if let Some(tags) = &patch.tags {
        next.tags = tags.clone();
    }
    if let Some(archived) = patch.archived {
        next.archived_at = archived.then(|| c.archived_at.unwrap_or(now));
    }
    next.updated_at = now;
    next
}

#[async_trait]
impl Organizer for DynamoStore {
    /// A read of the cap revision, a Query (`Select: COUNT`), one transaction (the folder and
    /// the revision): racing creates cannot pass the cap together.
    #[tracing::instrument(name = "dynamo.create_folder", skip_all, fields(folder = %folder.id))]
    async fn create_folder(&self, folder: &Folder, max: usize) -> Result<(), StoreError> {
        let owner = folder.owner.as_str();
        self.create_capped_doc(
            "folder",
            folder.id.as_str(),
            owner,
            "folders",
            schema::folders_pk(owner),
            &FolderItem::of(folder),
            max,
            rules::too_many_folders,
        )
        .await
    }

    #[tracing::instrument(name = "dynamo.get_folder", skip_all, fields(folder = %id))]
    async fn get_folder(&self, owner: &UserId, id: &FolderId) -> Result<Folder, StoreError> {
        let item: FolderItem = self
            .get_doc("folder", schema::folders_pk(owner.as_str()), id.as_str())
            .await?;
        Ok(item.folder)
    }

    #[tracing::instrument(name = "dynamo.list_folders", skip_all)]
    async fn list_folders(&self, owner: &UserId) -> Result<Vec<Folder>, StoreError> {
        let items: Vec<FolderItem> = self.list_docs("folders", schema::folders_pk(owner.as_str())).await?;
        Ok(items.into_iter().map(|i| i.folder).collect())
    }

    #[tracing::instrument(name = "dynamo.replace_folder", skip_all, fields(folder = %folder.id))]
    async fn replace_folder(&self, folder: &Folder, updated_at: Timestamp) -> Result<(), StoreError> {
        match self
            .put_doc(
                "folder",
                folder.id.as_str(),
                &FolderItem::of(folder),
                Some(&ts::format(&updated_at)),
            )
            .await
        {
            Err(StoreError::Conflict(_)) => match self.get_folder(&folder.owner, &folder.id).await {
                Ok(_) => Err(rules::folder_changed()),
                Err(e) => Err(e),
            },
            other => other,
        }
    }

    /// Moves the conversations of the folder and of its subfolders out (every shelf), then deletes
    /// the subfolders and the folder last, so an interrupted delete can be repeated.
    #[tracing::instrument(name = "dynamo.delete_folder", skip_all, fields(folder = %id))]
    async fn delete_folder(&self, owner: &UserId, id: &FolderId) -> Result<FolderDeleted, StoreError> {
        self.get_folder(owner, id).await?;
        let mut doomed: Vec<FolderId> = self
            .list_folders(owner)
            .await?
            .into_iter()
            .filter(|f| f.parent_id.as_ref() == Some(id))
            .map(|f| f.id)
            .collect();
        doomed.push(id.clone());
        let mut deleted = FolderDeleted::default();
        for folder in &doomed {
            deleted.conversations += self.empty_folder(owner, folder).await?;
            self.client
                .delete_item()
                .table_name(&self.tables.conversations)
                .key(schema::PK, s(schema::folders_pk(owner.as_str())))
                .key(schema::SK, s(folder.as_str()))
                .send()
                .await
                .map_err(|e| classify("DeleteItem folder", e))?;
            deleted.folders += 1;
        }
        Ok(deleted)
    }

    /// One Query over the owner's tag memberships (keys only), counted by tag.
    #[tracing::instrument(name = "dynamo.list_tags", skip_all)]
    async fn list_tags(&self, owner: &UserId) -> Result<Vec<TagCount>, StoreError> {
        let items = self
            .all_pages("Query tags", || {
                self.client
                    .query()
                    .table_name(&self.tables.conversations)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#sk", schema::SK)
                    .expression_attribute_values(":pk", s(schema::tags_pk(owner.as_str())))
                    .projection_expression("#sk")
            })
            .await?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        for item in items {
            if let Some(tag) = item
                .get(schema::SK)
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| tag_of(sk))
            {
                *counts.entry(tag.to_owned()).or_default() += 1;
            }
        }
        Ok(rules::sorted_tags(counts))
    }
}

/// The tag of a membership's sort key (`<len>:<tag>#<conversation>`).
fn tag_of(sk: &str) -> Option<&str> {
    let (len, rest) = sk.split_once(':')?;
    let len: usize = len.parse().ok()?;
    rest.get(..len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_membership_key_gives_back_its_tag_even_with_separators_inside() {
        for tag in ["a", "line 3", "a#b", "x:y#", "éco"] {
            let sk = schema::tag_sk(tag, "01ABC");
            assert_eq!(tag_of(&sk), Some(tag));
            assert!(sk.starts_with(&schema::tag_prefix(tag)));
        }
        // No tag's prefix is another's.
        assert!(!schema::tag_sk("a#b", "c").starts_with(&schema::tag_prefix("a")));
        assert_eq!(tag_of("nonsense"), None);
    }
}

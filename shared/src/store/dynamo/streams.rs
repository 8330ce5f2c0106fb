//! Running turns' checkpoints and live-turn markers: items of the conversation's partition
//! (`LIVE`, `STREAM#<turn>#<seq>`), expiring through the TTL attribute.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};

use super::{classify, n, s, schema, DynamoStore, Item};
use crate::domain::{ConversationId, LiveTurn, MessageId, UserId};
use crate::error::StoreError;
use crate::store::ports::{Checkpoint, CheckpointAck, Streams};
use crate::store::rules;

/// The live-turn item a turn's admitting write puts (unconditioned: the conversation's own item
/// in the same transaction checks the owner).
pub(super) fn live_put(
    table: &str,
    owner: &UserId,
    id: &ConversationId,
    live: &LiveTurn,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .item(schema::PK, s(schema::conversation_pk(owner.as_str(), id.as_str())))
        .item(schema::SK, s(schema::LIVE))
        .item("ownerId", s(owner.as_str()))
        .item("turnId", s(live.turn_id.clone()))
        .item("replyId", s(live.reply_id.as_str()))
        .item("parentId", s(live.parent_id.as_str()))
        .item("startedAt", s(crate::domain::ts::format(&live.started_at)))
        .item("deadline", s(crate::domain::ts::format(&live.deadline)))
        .item(
            schema::TTL_ATTRIBUTE,
            n(live.started_at.timestamp().saturating_add(rules::CHECKPOINT_TTL_SECS)),
        )
        .build()
        .map_err(|e| StoreError::internal("building a live-turn put", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A checkpoint's item, put if absent.
pub(super) fn checkpoint_put(table: &str, checkpoint: &Checkpoint) -> Result<TransactWriteItem, StoreError> {
    rules::check_checkpoint(checkpoint)?;
    let put = Put::builder()
        .table_name(table)
        .item(
            schema::PK,
            s(schema::conversation_pk(
                checkpoint.owner.as_str(),
                checkpoint.conversation_id.as_str(),
            )),
        )
        .item(
            schema::SK,
            s(schema::checkpoint_sk(&checkpoint.turn_id, checkpoint.seq)),
        )
        .item("ownerId", s(checkpoint.owner.as_str()))
        .item("events", s(checkpoint.events.clone()))
        .item("last", AttributeValue::Bool(checkpoint.last))
        .item("at", s(crate::domain::ts::format(&checkpoint.at)))
        .item(
            schema::TTL_ATTRIBUTE,
            n(checkpoint.at.timestamp().saturating_add(rules::CHECKPOINT_TTL_SECS)),
        )
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", schema::PK)
        .build()
        .map_err(|e| StoreError::internal("building a checkpoint put", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::internal("reading a stream item", format!("no {name}"))),
    }
}

fn epoch(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// A live-turn item, unless it expired (TTL deletes late).
pub(super) fn live_from_item(item: &Item, now: i64) -> Result<Option<LiveTurn>, StoreError> {
    if epoch(item, schema::TTL_ATTRIBUTE).is_some_and(|t| t < now) {
        return Ok(None);
    }
    Ok(Some(LiveTurn {
        turn_id: text(item, "turnId")?.to_owned(),
        reply_id: MessageId::parse(text(item, "replyId")?).map_err(|e| StoreError::internal("stored reply id", e))?,
        parent_id: MessageId::parse(text(item, "parentId")?)
            .map_err(|e| StoreError::internal("stored parent id", e))?,
        started_at: rules::parse_ts(text(item, "startedAt")?)?,
        deadline: rules::parse_ts(text(item, "deadline")?)?,
        stop_requested: matches!(item.get("stop"), Some(AttributeValue::Bool(true))),
    }))
}

fn owned_by(item: &Item, owner: &UserId) -> bool {
    matches!(item.get("ownerId"), Some(AttributeValue::S(o)) if o == owner.as_str())
}

#[async_trait]
impl Streams for DynamoStore {
    #[tracing::instrument(name = "dynamo.checkpoint", skip_all, fields(turn = %checkpoint.turn_id, seq = checkpoint.seq, bytes = checkpoint.events.len()))]
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<CheckpointAck, StoreError> {
        let table = &self.tables.conversations;
        let put = checkpoint_put(table, checkpoint)?;
        let check = ConditionCheck::builder()
            .table_name(table)
            .key(
                schema::PK,
                s(schema::conversation_pk(
                    checkpoint.owner.as_str(),
                    checkpoint.conversation_id.as_str(),
                )),
            )
            .key(schema::SK, s(schema::LIVE))
            .condition_expression("attribute_exists(#pk) AND (turnId <> :turn OR attribute_not_exists(#stop))")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#stop", "stop")
            .expression_attribute_values(":turn", s(checkpoint.turn_id.clone()))
            .build()
            .map_err(|e| StoreError::internal("building a stop check", e))?;
        match self
            .transact(vec![put, TransactWriteItem::builder().condition_check(check).build()])
            .await?
        {
            Ok(()) => Ok(CheckpointAck::Continue),
            Err(codes) => {
                let failed = |i: usize| codes.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed");
                // The checkpoint exists already (a retry of a write that applied): fine.
                Ok(if failed(1) {
                    CheckpointAck::Stop
                } else {
                    CheckpointAck::Continue
                })
            }
        }
    }

    #[tracing::instrument(name = "dynamo.stop_requested", skip_all, fields(turn = %turn_id))]
    async fn stop_requested(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::conversation_pk(owner.as_str(), id.as_str())))
            .key(schema::SK, s(schema::LIVE))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem live turn", e))?;
        Ok(match out.item {
            None => true,
            Some(item) if !owned_by(&item, owner) => true,
            Some(item) => {
                matches!(item.get("turnId"), Some(AttributeValue::S(t)) if t == turn_id)
                    && matches!(item.get("stop"), Some(AttributeValue::Bool(true)))
            }
        })
    }

    #[tracing::instrument(name = "dynamo.live_turn", skip_all, fields(conversation = %id))]
    async fn live_turn(&self, owner: &UserId, id: &ConversationId) -> Result<Option<LiveTurn>, StoreError> {
        // The marker and the conversation's own item, next to each other: one Query.
        let out = self
            .client
            .query()
            .table_name(&self.tables.conversations)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :live AND :meta")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#sk", schema::SK)
            .expression_attribute_values(":pk", s(schema::conversation_pk(owner.as_str(), id.as_str())))
            .expression_attribute_values(":live", s(schema::LIVE))
            .expression_attribute_values(":meta", s(schema::META))
            .send()
            .await
            .map_err(|e| classify("Query live turn", e))?;
        let mut live = None;
        let mut visible = false;
        for item in out.items.unwrap_or_default() {
            match item.get(schema::SK) {
                Some(AttributeValue::S(sk)) if sk == schema::META => {
                    let meta: super::items::ConversationItem = super::from_item(item)?;
                    visible = meta.visible_to(owner);
                }
                Some(AttributeValue::S(sk)) if sk == schema::LIVE && owned_by(&item, owner) => {
                    live = live_from_item(&item, chrono::Utc::now().timestamp())?;
                }
                _ => {}
            }
        }
        if !visible {
            return Err(StoreError::NotFound);
        }
        Ok(live)
    }

    #[tracing::instrument(name = "dynamo.checkpoints", skip_all, fields(turn = %turn_id, after = ?after))]
    async fn checkpoints(
        &self,
        owner: &UserId,
        id: &ConversationId,
        turn_id: &str,
        after: Option<u32>,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let from = schema::checkpoint_sk(turn_id, after.map_or(0, |a| a.saturating_add(1)));
        let to = format!("STREAM#{turn_id}#~");
        let now = chrono::Utc::now().timestamp();
        let mut out = Vec::new();
        for item in self.query_range(owner, id, &from, &to).await? {
            if !owned_by(&item, owner) || epoch(&item, schema::TTL_ATTRIBUTE).is_some_and(|t| t < now) {
                continue;
            }
            let sk = text(&item, schema::SK)?;
            let seq = sk
                .rsplit('#')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| StoreError::internal("reading a checkpoint", "a sort key without a position"))?;
            out.push(Checkpoint {
                owner: owner.clone(),
                conversation_id: id.clone(),
                turn_id: turn_id.to_owned(),
                seq,
                events: text(&item, "events")?.to_owned(),
                last: matches!(item.get("last"), Some(AttributeValue::Bool(true))),
                at: rules::parse_ts(text(&item, "at")?)?,
            });
        }
        Ok(out)
    }

    #[tracing::instrument(name = "dynamo.request_stop", skip_all, fields(turn = %turn_id))]
    async fn request_stop(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.conversations)
            .key(schema::PK, s(schema::conversation_pk(owner.as_str(), id.as_str())))
            .key(schema::SK, s(schema::LIVE))
            .update_expression("SET #stop = :yes")
            .condition_expression("attribute_exists(#pk) AND ownerId = :owner AND turnId = :turn")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#stop", "stop")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":turn", s(turn_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(classify("UpdateItem stop", e)),
        }
    }
}

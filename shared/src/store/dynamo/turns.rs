//! Chat turns on DynamoDB: admission and finish, each one transaction.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

use super::items::{conversation_item, message_items, replace_items, Marker, Replace};
use super::schema;
use super::stats::stats_update;
use super::{classify, n, owner_condition, s, sdk_key, update_item, DynamoStore};
use crate::domain::{ConversationId, Message, UserId};
use crate::error::StoreError;
use crate::store::{rules, StreamLease, TurnBegun, TurnFinish, TurnStart, TurnWrite, Turns};

#[async_trait]
impl Turns for DynamoStore {
    #[tracing::instrument(name = "dynamo.begin_turn", skip_all, fields(conversation = %start.conversation_id, turn = %start.turn_id))]
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        let owner = &start.owner;
        let payer = &start.payer;
        let limits = &start.limits;
        let now = start.now.timestamp();
        let rate = rules::rate_window(start.now);
        if let Some(refused) = rules::reservation_over_budget(start) {
            return Err(refused);
        }
        let mut write = start.write.clone();
        let mut fixed: Vec<(Part, TransactWriteItem)> = Vec::new();
        if limits.requests_per_minute > 0 {
            fixed.push((
                Part::Rate,
                update_item(
                    Update::builder()
                        .table_name(&self.tables.events)
                        .set_key(Some(sdk_key(
                            schema::counter_pk(&schema::rate_key(payer.as_str()), rate.start),
                            "-".to_owned(),
                        )))
                        .update_expression("ADD #count :one SET #ttl = if_not_exists(#ttl, :expires)")
                        .condition_expression("attribute_not_exists(#count) OR #count < :limit")
                        .expression_attribute_names("#count", "count")
                        .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":expires", n(rate.expires_at))
                        .expression_attribute_values(":limit", n(limits.requests_per_minute))
                        .build(),
                )?,
            ));
        }
        let (day_pk, month_pk) = schema::budget_pks(payer.as_str(), &start.now);
        let (day_expires, month_expires) = rules::budget_expiries(start.now);
        if limits.tokens_per_day > 0 || limits.tokens_per_month > 0 {
            for (pk, budget, expires, part) in [
                (day_pk, limits.tokens_per_day, day_expires, Part::Day),
                (month_pk, limits.tokens_per_month, month_expires, Part::Month),
            ] {
                if budget == 0 {
                    // This window is off but the other is on: the reservation is still counted.
                    if start.reservation > 0 {
                        fixed.push((Part::Charge, self.budget_add(pk, start.reservation, expires, None)?));
                    }
                    continue;
                }
                let Some(headroom) = rules::budget_headroom(budget, start.reservation) else {
                    // Refused above (`reservation_over_budget`): never an unconditioned reservation.
                    return Err(rules::over_budget(start, part == Part::Day));
                };
                fixed.push((part, self.budget_add(pk, start.reservation, expires, Some(headroom))?));
            }
        }
        if limits.nano_usd_per_month > 0 {
            let Some(headroom) = rules::budget_headroom(limits.nano_usd_per_month, start.reservation_nano_usd) else {
                return Err(rules::over_dollar_budget(start));
            };
            fixed.push((
                Part::Dollars,
                self.budget_add(
                    schema::budget_usd_pk(payer.as_str(), &start.now),
                    start.reservation_nano_usd,
                    month_expires,
                    Some(headroom),
                )?,
            ));
        }
        let slots = limits.max_streams;
        let first_slot = if slots > 0 {
            use rand::Rng;
            rand::rng().random_range(0..slots)
        } else {
            0
        };
        let mut tried = 0u32;
        loop {
            let mut items = fixed.clone();
            let lease = (slots > 0).then(|| rules::lease(start, (first_slot + tried) % slots));
            if let Some(lease) = &lease {
                let put = Put::builder()
                    .table_name(&self.tables.events)
                    .item(schema::PK, s(schema::slot_pk(payer.as_str())))
                    .item(schema::SK, s(lease.slot.to_string()))
                    .item("turnId", s(lease.turn_id.clone()))
                    .item(schema::TTL_ATTRIBUTE, n(lease.expires_at))
                    .condition_expression("attribute_not_exists(#pk) OR #ttl < :now")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
                    .expression_attribute_values(":now", n(now))
                    .build()
                    .map_err(|e| StoreError::internal("building a slot put", e))?;
                items.push((Part::Slot, TransactWriteItem::builder().put(put).build()));
            }
            items.push((
                Part::Live,
                super::streams::live_put(
                    &self.tables.conversations,
                    owner,
                    &start.conversation_id,
                    &rules::live_turn(start),
                )?,
            ));
            items.extend(self.turn_write_items(
                owner,
                &TurnStart {
                    write: write.clone(),
                    ..start.clone()
                },
            )?);
            let (parts, items): (Vec<Part>, Vec<TransactWriteItem>) = items.into_iter().unzip();
            let codes = match self.transact(items).await? {
                Ok(()) => return Ok(TurnBegun { lease }),
                Err(codes) => codes,
            };
            let failed: Vec<Part> = parts
                .iter()
                .zip(codes.iter().chain(std::iter::repeat(&None)))
                .filter(|(_, c)| c.as_deref() == Some("ConditionalCheckFailed"))
                .map(|(p, _)| *p)
                .collect();
            let has = |p: Part| failed.contains(&p);
            if has(Part::Meta) {
                // (A continue too: the conversation is not the caller's, or is being deleted.)
                return Err(match start.write {
                    TurnWrite::Create { .. } => {
                        StoreError::Conflict(format!("conversation {} already exists", start.conversation_id))
                    }
                    _ => StoreError::NotFound,
                });
            }
            if has(Part::Rate) {
                return Err(StoreError::RateLimited {
                    retry_after: rules::retry_after(start.now, rate.end),
                });
            }
            if has(Part::Day) || has(Part::Month) {
                return Err(rules::over_budget(start, has(Part::Day)));
            }
            if has(Part::Dollars) {
                return Err(rules::over_dollar_budget(start));
            }
            if has(Part::Slot) {
                tried += 1;
                if tried >= slots {
                    return Err(StoreError::TooManyStreams {
                        retry_after: rules::STREAM_RETRY_AFTER,
                    });
                }
                continue;
            }
            if has(Part::Continued) {
                return Err(continue_conflict(&write));
            }
            if has(Part::Marker) {
                // The message was stored by an earlier submit: admit the turn without writing it again.
                if matches!(write, TurnWrite::Append { .. }) {
                    write = TurnWrite::Check;
                    continue;
                }
            }
            return Err(StoreError::Conflict(
                "a message id or client message id is repeated".to_owned(),
            ));
        }
    }

    #[tracing::instrument(name = "dynamo.finish_turn", skip_all, fields(conversation = %finish.conversation_id, turn = %finish.turn_id, reply = finish.reply.is_some(), reserved = finish.settlement.reserved, actual = finish.settlement.actual, lease = finish.lease.is_some()))]
    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        let owner = &finish.owner;
        let payer = &finish.payer;
        // The receipt first: put if absent, so a finish that applied before changes nothing.
        let receipt = Put::builder()
            .table_name(&self.tables.conversations)
            .item(
                schema::PK,
                s(schema::conversation_pk(owner.as_str(), finish.conversation_id.as_str())),
            )
            .item(schema::SK, s(schema::receipt_sk(&finish.turn_id)))
            .item(
                schema::TTL_ATTRIBUTE,
                n(finish.started.timestamp().saturating_add(rules::RECEIPT_TTL_SECS)),
            )
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .build()
            .map_err(|e| StoreError::internal("building a turn receipt", e))?;
        let mut parts: Vec<(Part, TransactWriteItem)> =
            vec![(Part::Receipt, TransactWriteItem::builder().put(receipt).build())];
        if let Some(reply) = &finish.reply {
            // Put if absent; a reply this turn continued is found when that fails (below).
            parts.push((Part::Meta, self.touch_update(owner, reply, finish.title.as_deref())?));
            for item in message_items(&self.tables.conversations, owner, reply, Marker::IfAbsent)? {
                parts.push((Part::Message, item));
            }
        }
        if let Some(checkpoint) = &finish.checkpoint {
            parts.push((
                Part::Checkpoint,
                super::streams::checkpoint_put(&self.tables.conversations, checkpoint)?,
            ));
        }
        let delta = finish.settlement.delta();
        if delta != 0 {
            let (day_pk, month_pk) = schema::budget_pks(payer.as_str(), &finish.started);
            let (day_expires, month_expires) = rules::budget_expiries(finish.started);
            for (pk, expires) in [(day_pk, day_expires), (month_pk, month_expires)] {
                // `ADD` takes a negative number: a reservation settled down gives tokens back.
                parts.push((Part::Charge, self.budget_add_item(pk, delta, expires, None)?));
            }
        }
        let delta_usd = finish.settlement.delta_nano_usd();
        if delta_usd != 0 {
            let (_, month_expires) = rules::budget_expiries(finish.started);
            let pk = schema::budget_usd_pk(payer.as_str(), &finish.started);
            parts.push((Part::Charge, self.budget_add_item(pk, delta_usd, month_expires, None)?));
        }
        if let Some(lease) = &finish.lease {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.tables.events)
                .set_key(Some(sdk_key(schema::slot_pk(payer.as_str()), lease.slot.to_string())))
                .condition_expression("#turn = :turn")
                .expression_attribute_names("#turn", "turnId")
                .expression_attribute_values(":turn", s(lease.turn_id.clone()))
                .build()
                .map_err(|e| StoreError::internal("building a slot release", e))?;
            parts.push((Part::Slot, TransactWriteItem::builder().delete(delete).build()));
        }
        if let Some(stats) = &finish.stats {
            parts.push((Part::Stats, stats_update(&self.tables.events, stats)?));
            for item in super::accounting::usage_items(&self.tables.events, payer.as_str(), stats)? {
                parts.push((Part::Usage, item));
            }
        }
        let mut switched = false;
        for _ in 0..4 {
            let (kinds, items): (Vec<Part>, Vec<TransactWriteItem>) = parts.iter().cloned().unzip();
            match self.transact(items).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(codes)) => {
                    let failed: Vec<Part> = kinds
                        .iter()
                        .zip(codes.iter().chain(std::iter::repeat(&None)))
                        .filter(|(_, c)| c.as_deref() == Some("ConditionalCheckFailed"))
                        .map(|(p, _)| *p)
                        .collect();
                    if failed.contains(&Part::Receipt) {
                        // Finished before (an earlier attempt applied): nothing more to write.
                        tracing::info!("the turn was already finished: nothing written");
                        return Ok(());
                    }
                    let mut skip = false;
                    if let Some(reply) = finish
                        .reply
                        .as_ref()
                        .filter(|_| !switched && failed.contains(&Part::Message) && !failed.contains(&Part::Meta))
                    {
                        // The reply exists. If this turn's admission continued it (its mark
                        // names this turn), it is stored over it, and not counted again. Read
                        // only now: a normal turn's finish stays one request. Only this turn's
                        // finish writes over a message with its mark, so the read cannot go
                        // stale but by a delete, which fails the put's condition (`writer`
                        // then absent): the reply is then not stored.
                        switched = true;
                        if self.continued_by(owner, reply, &finish.turn_id).await? {
                            let table = &self.tables.conversations;
                            parts.retain(|(p, _)| !matches!(p, Part::Meta | Part::Message));
                            parts.push((
                                Part::Meta,
                                self.touch_update_counted(owner, reply, finish.title.as_deref(), false)?,
                            ));
                            for item in replace_items(table, owner, reply, Replace::Writer(&finish.turn_id))? {
                                parts.push((Part::Message, item));
                            }
                            skip = true;
                        }
                    }
                    if !skip && failed.iter().any(|p| matches!(p, Part::Meta | Part::Message)) {
                        tracing::warn!("the conversation is gone or the reply exists: the reply is not stored");
                        parts.retain(|(p, _)| !matches!(p, Part::Meta | Part::Message));
                    }
                    if failed.contains(&Part::Checkpoint) {
                        // Written by an earlier attempt whose answer was lost.
                        parts.retain(|(p, _)| *p != Part::Checkpoint);
                    }
                    if failed.contains(&Part::Slot) {
                        // The lease expired and another turn took the slot: it is not ours to free.
                        parts.retain(|(p, _)| *p != Part::Slot);
                    }
                    if failed.is_empty() {
                        return Err(StoreError::internal(
                            "finishing a turn",
                            "the transaction was cancelled",
                        ));
                    }
                }
                Err(StoreError::Internal { context, source }) if kinds.contains(&Part::Stats) => {
                    // Analytics never fail the chat: write the rest without the counters.
                    tracing::warn!(error = %source, context, "the turn's analytics counters failed; writing without them");
                    parts.retain(|(p, _)| *p != Part::Stats);
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::internal("finishing a turn", "the transaction kept failing"))
    }

    #[tracing::instrument(name = "dynamo.release_slot", skip_all, fields(turn = %lease.turn_id, slot = lease.slot))]
    async fn release_slot(&self, owner: &UserId, lease: &StreamLease) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.events)
            .set_key(Some(sdk_key(schema::slot_pk(owner.as_str()), lease.slot.to_string())))
            .condition_expression("#turn = :turn")
            .expression_attribute_names("#turn", "turnId")
            .expression_attribute_values(":turn", s(lease.turn_id.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already released, or another turn holds the slot now: not ours to free.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify("DeleteItem", e)),
        }
    }
}

/// What an item of a turn transaction is, to read its cancellation reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// The turn's receipt (put if absent): its condition failing means the turn was finished.
    Receipt,
    Rate,
    Day,
    Month,
    /// The month's dollar budget (admission).
    Dollars,
    Slot,
    /// The conversation item (create-if-absent or owner check).
    Meta,
    /// A message, chunk or (for a removal) its delete.
    Message,
    /// A client-id marker (a resubmitted message).
    Marker,
    /// The head of a continued reply (its condition: it still awaits the approvals answered).
    Continued,
    Charge,
    Stats,
    /// The user's usage row and the month's spend (finish).
    Usage,
    /// The conversation's live-turn marker (admission).
    Live,
    /// The turn's final checkpoint (finish).
    Checkpoint,
}

impl DynamoStore {
    /// The items of what a turn writes, tagged.
    fn turn_write_items(
        &self,
        owner: &UserId,
        start: &TurnStart,
    ) -> Result<Vec<(Part, TransactWriteItem)>, StoreError> {
        let table = &self.tables.conversations;
        let pk = schema::conversation_pk(owner.as_str(), start.conversation_id.as_str());
        let mut out = Vec::new();
        let tag_message = |m: &Message, items: Vec<TransactWriteItem>, out: &mut Vec<(Part, TransactWriteItem)>| {
            let last = items.len().saturating_sub(1);
            for (i, item) in items.into_iter().enumerate() {
                let part = if m.client_id.is_some() && i == last {
                    Part::Marker
                } else {
                    Part::Message
                };
                out.push((part, item));
            }
        };
        match &start.write {
            TurnWrite::Create { conversation, messages } => {
                out.push((Part::Meta, conversation_item(table, conversation, messages)?));
                for m in messages {
                    tag_message(
                        m,
                        message_items(table, &conversation.owner, m, Marker::IfAbsent)?,
                        &mut out,
                    );
                }
            }
            TurnWrite::Append { message, title } => {
                out.push((Part::Meta, self.touch_update(owner, message, title.as_deref())?));
                tag_message(
                    message,
                    message_items(table, owner, message, Marker::IfAbsent)?,
                    &mut out,
                );
            }
            TurnWrite::Edit { message } => {
                out.push((Part::Meta, self.touch_update(owner, message, None)?));
                // The marker moves to the new version: an overwrite, never a conflict.
                for item in message_items(table, owner, message, Marker::Overwrite)? {
                    out.push((Part::Message, item));
                }
            }
            TurnWrite::Regenerate { leaf, preview } => {
                let mut update = Update::builder()
                    .table_name(table)
                    .key(schema::PK, s(pk.clone()))
                    .key(schema::SK, s(schema::META))
                    .condition_expression(owner_condition())
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_values(":owner", s(owner.as_str()))
                    .expression_attribute_values(":leaf", s(leaf.as_str()));
                update = match preview {
                    Some(p) => update
                        .update_expression("SET activeLeaf = :leaf, lastMessage = :preview")
                        .expression_attribute_values(":preview", s(p.clone())),
                    None => update.update_expression("SET activeLeaf = :leaf REMOVE lastMessage"),
                };
                out.push((Part::Meta, update_item(update.build())?));
            }
            TurnWrite::Check => out.push((Part::Meta, self.owner_check(owner, &start.conversation_id)?)),
            TurnWrite::Continue { reply, awaiting } => {
                if reply.conversation_id != start.conversation_id {
                    return Err(continue_conflict(&start.write));
                }
                out.push((Part::Meta, self.owner_check(owner, &start.conversation_id)?));
                let replace = Replace::Awaiting {
                    awaiting,
                    writer: &start.turn_id,
                };
                for (i, item) in replace_items(table, owner, reply, replace)?.into_iter().enumerate() {
                    out.push((if i == 0 { Part::Continued } else { Part::Message }, item));
                }
            }
        }
        Ok(out)
    }

    /// Whether `owner`'s stored message `reply.id` carries the mark of the turn `turn_id` (its
    /// admission continued it), read consistently.
    async fn continued_by(&self, owner: &UserId, reply: &Message, turn_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(
                schema::conversation_pk(owner.as_str(), reply.conversation_id.as_str()),
                schema::message_sk(reply.id.as_str()),
            )))
            .consistent_read(true)
            .projection_expression("#writer")
            .expression_attribute_names("#writer", "writer")
            .send()
            .await
            .map_err(|e| classify("GetItem message writer", e))?;
        Ok(matches!(
            out.item.as_ref().and_then(|i| i.get("writer")),
            Some(aws_sdk_dynamodb::types::AttributeValue::S(w)) if w == turn_id
        ))
    }

    fn owner_check(&self, owner: &UserId, id: &ConversationId) -> Result<TransactWriteItem, StoreError> {
        let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.tables.conversations)
            .set_key(Some(sdk_key(
                schema::conversation_pk(owner.as_str(), id.as_str()),
                schema::META.to_owned(),
            )))
            .condition_expression(owner_condition())
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .build()
            .map_err(|e| StoreError::internal("building a condition check", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// `ADD tokens :reservation` on a budget item, conditioned on `tokens <= :headroom` (see
    /// [`rules::budget_headroom`]) when given; `None` only for a window that is off.
    fn budget_add(
        &self,
        pk: String,
        reservation: u64,
        expires: i64,
        headroom: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        self.budget_add_item(pk, i64::try_from(reservation).unwrap_or(i64::MAX), expires, headroom)
    }

    /// `ADD tokens :n` (any sign) on a budget item and its expiry, with the admission condition
    /// `attribute_not_exists(tokens) OR tokens <= :headroom` when `headroom` is given.
    fn budget_add_item(
        &self,
        pk: String,
        tokens: i64,
        expires: i64,
        headroom: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.tables.events)
            .set_key(Some(sdk_key(pk, "-".to_owned())))
            .update_expression("ADD #tokens :n SET #ttl = :expires")
            .expression_attribute_names("#tokens", "tokens")
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":n", n(tokens))
            .expression_attribute_values(":expires", n(expires));
        if let Some(headroom) = headroom {
            update = update
                .condition_expression("attribute_not_exists(#tokens) OR #tokens <= :headroom")
                .expression_attribute_values(":headroom", n(headroom));
        }
        update_item(update.build())
    }
}

/// The conflict of a continue whose message is missing or no longer awaits what it answers.
fn continue_conflict(write: &TurnWrite) -> StoreError {
    match write {
        TurnWrite::Continue { reply, awaiting } => StoreError::Conflict(format!(
            "message {} does not exist here or does not await exactly the approvals {awaiting:?}",
            reply.id
        )),
        _ => StoreError::Conflict("a message id or client message id is repeated".to_owned()),
    }
}

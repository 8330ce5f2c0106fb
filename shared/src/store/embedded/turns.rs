//! Chat turns in SQLite: admission and finish, each one immediate transaction.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::messages::{append_in, insert_and_touch, touch_in};
use super::rows::{conversation_exists, insert_conversation, message_with_writer, owned_conversation, replace_message};
use super::stats::stats_in;
use super::{sql_err, EmbeddedStore};
use crate::domain::{Message, UserId};
use crate::error::StoreError;
use crate::store::schema;
use crate::store::{check_message_size, rules, StreamLease, Touch, TurnBegun, TurnFinish, TurnStart, TurnWrite, Turns};

#[async_trait]
impl Turns for EmbeddedStore {
    #[tracing::instrument(name = "embedded.begin_turn", skip_all, fields(conversation = %start.conversation_id, turn = %start.turn_id))]
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        if let Some(refused) = rules::reservation_over_budget(start) {
            return Err(refused);
        }
        let start = start.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let owner = start.owner.as_str();
            let payer = start.payer.as_str();
            let id = start.conversation_id.as_str();
            let limits = &start.limits;
            let now = start.now.timestamp();
            let rate = rules::rate_window(start.now);
            // The conversation first (as DynamoDB reports it first).
            match &start.write {
                TurnWrite::Create { .. } => {
                    let exists = conversation_exists(&tx, owner, id)?;
                    if exists {
                        return Err(StoreError::Conflict(format!("conversation {id} already exists")));
                    }
                }
                _ => {
                    owned_conversation(&tx, owner, id)?;
                }
            }
            let rate_key = schema::counter_pk(&schema::rate_key(payer), rate.start);
            if limits.requests_per_minute > 0 {
                let count: i64 = tx
                    .query_row("SELECT count FROM counters WHERE key = ?1", params![rate_key], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(sql_err("reading a counter"))?
                    .unwrap_or(0);
                if u64::try_from(count).unwrap_or(0) >= limits.requests_per_minute {
                    return Err(StoreError::RateLimited {
                        retry_after: rules::retry_after(start.now, rate.end),
                    });
                }
            }
            let (day_key, month_key) = schema::budget_pks(payer, &start.now);
            for (key, budget, day) in [
                (&day_key, limits.tokens_per_day, true),
                (&month_key, limits.tokens_per_month, false),
            ] {
                if budget == 0 {
                    continue;
                }
                let spent: i64 = tx
                    .query_row("SELECT tokens FROM budgets WHERE key = ?1", params![key], |r| r.get(0))
                    .optional()
                    .map_err(sql_err("reading a budget"))?
                    .unwrap_or(0);
                // `tokens + reservation <= budget` (checked above to be possible at all).
                let fits = rules::budget_headroom(budget, start.reservation)
                    .is_some_and(|headroom| spent <= i64::try_from(headroom).unwrap_or(i64::MAX));
                if !fits {
                    return Err(rules::over_budget(&start, day));
                }
            }
            let usd_key = schema::budget_usd_pk(payer, &start.now);
            if limits.nano_usd_per_month > 0 {
                let spent: i64 = tx
                    .query_row("SELECT tokens FROM budgets WHERE key = ?1", params![usd_key], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(sql_err("reading a budget"))?
                    .unwrap_or(0);
                let fits = rules::budget_headroom(limits.nano_usd_per_month, start.reservation_nano_usd)
                    .is_some_and(|headroom| spent <= i64::try_from(headroom).unwrap_or(i64::MAX));
                if !fits {
                    return Err(rules::over_dollar_budget(&start));
                }
            }
            let lease = if limits.max_streams > 0 {
                let mut held = std::collections::HashSet::new();
                {
                    let mut stmt = tx
                        .prepare_cached("SELECT slot FROM stream_slots WHERE owner = ?1 AND expires_at >= ?2")
                        .map_err(sql_err("reading stream slots"))?;
                    let rows = stmt
                        .query_map(params![payer, now], |r| r.get::<_, i64>(0))
                        .map_err(sql_err("reading stream slots"))?;
                    for row in rows {
                        held.insert(row.map_err(sql_err("reading stream slots"))?);
                    }
                }
                let free = (0..limits.max_streams).find(|n| !held.contains(&i64::from(*n)));
                let Some(slot) = free else {
                    return Err(StoreError::TooManyStreams {
                        retry_after: rules::STREAM_RETRY_AFTER,
                    });
                };
                let lease = rules::lease(&start, slot);
                tx.execute(
                    "INSERT INTO stream_slots (owner, slot, turn, expires_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (owner, slot) DO UPDATE SET turn = excluded.turn, expires_at = excluded.expires_at",
                    params![payer, slot, lease.turn_id, lease.expires_at],
                )
                .map_err(sql_err("taking a stream slot"))?;
                Some(lease)
            } else {
                None
            };
            if (limits.tokens_per_day > 0 || limits.tokens_per_month > 0) && start.reservation > 0 {
                let (day_expires, month_expires) = rules::budget_expiries(start.now);
                let reservation = i64::try_from(start.reservation).unwrap_or(i64::MAX);
                add_tokens(&tx, &day_key, reservation, day_expires)?;
                add_tokens(&tx, &month_key, reservation, month_expires)?;
            }
            if limits.nano_usd_per_month > 0 && start.reservation_nano_usd > 0 {
                let (_, month_expires) = rules::budget_expiries(start.now);
                let reservation = i64::try_from(start.reservation_nano_usd).unwrap_or(i64::MAX);
                add_tokens(&tx, &usd_key, reservation, month_expires)?;
            }
            if limits.requests_per_minute > 0 {
                tx.execute(
                    "INSERT INTO counters (key, count, expires_at) VALUES (?1, 1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET count = count + 1",
                    params![rate_key, rate.expires_at],
                )
                .map_err(sql_err("incrementing a counter"))?;
            }
            match &start.write {
                TurnWrite::Create { conversation, messages } => insert_conversation(&tx, conversation, messages)?,
                TurnWrite::Append { message, title } => {
                    let touch = Touch { title: title.clone() };
                    append_in(&tx, owner, message, &touch)?;
                }
                TurnWrite::Edit { message } => {
                    // A new version under the same client id: inserted whatever versions exist.
                    insert_and_touch(&tx, owner, message, None)?;
                }
                TurnWrite::Regenerate { leaf, preview } => {
                    tx.execute(
                        "UPDATE conversations SET active_leaf = ?1, last_message = ?2 WHERE owner = ?3 AND id = ?4",
                        params![leaf.as_str(), preview, owner, id],
                    )
                    .map_err(sql_err("touching a conversation"))?;
                }
                TurnWrite::Check => {}
                TurnWrite::Continue { reply, awaiting } => {
                    continue_in(&tx, owner, id, reply, awaiting, &start.turn_id)?;
                }
            }
            super::streams::put_live(&tx, owner, id, &rules::live_turn(&start))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(TurnBegun { lease })
        })
        .await
    }

    #[tracing::instrument(name = "embedded.finish_turn", skip_all, fields(conversation = %finish.conversation_id, turn = %finish.turn_id, reply = finish.reply.is_some(), reserved = finish.settlement.reserved, actual = finish.settlement.actual, lease = finish.lease.is_some()))]
    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        if let Some(reply) = &finish.reply {
            check_message_size(reply)?;
        }
        if let Some(checkpoint) = &finish.checkpoint {
            rules::check_checkpoint(checkpoint)?;
        }
        let finish = finish.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let owner = finish.owner.as_str();
            let payer = finish.payer.as_str();
            // The receipt first: a turn finished before (an earlier attempt applied) writes nothing.
            let expires = finish.started.timestamp().saturating_add(rules::RECEIPT_TTL_SECS);
            let written = tx
                .execute(
                    "INSERT INTO turn_receipts (turn_id, conversation_id, expires_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (turn_id) DO NOTHING",
                    params![finish.turn_id, finish.conversation_id.as_str(), expires],
                )
                .map_err(sql_err("writing a turn receipt"))?;
            if written == 0 {
                tracing::info!("the turn was already finished: nothing written");
                return Ok(());
            }
            if let Some(reply) = &finish.reply {
                let touch = Touch {
                    title: finish.title.clone(),
                };
                // A reply this turn continued (its admission left this turn's mark) is stored
                // over its admitted version, not counted again; any other is appended if absent.
                let stored = message_with_writer(&tx, owner, reply.conversation_id.as_str(), reply.id.as_str())?;
                let continued = matches!(&stored, Some((_, Some(writer))) if *writer == finish.turn_id);
                let appended = if continued {
                    replace_message(&tx, owner, reply, None)?;
                    touch_in(&tx, owner, reply, touch.title.as_deref(), false)
                } else {
                    append_in(&tx, owner, reply, &touch).map(|_| ())
                };
                match appended {
                    Ok(_) => {}
                    Err(StoreError::NotFound | StoreError::Conflict(_)) => {
                        tracing::warn!("the conversation is gone or the reply exists: the reply is not stored");
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(checkpoint) = &finish.checkpoint {
                super::streams::put_checkpoint(&tx, checkpoint)?;
            }
            let delta = finish.settlement.delta();
            if delta != 0 {
                let (day_key, month_key) = schema::budget_pks(payer, &finish.started);
                let (day_expires, month_expires) = rules::budget_expiries(finish.started);
                add_tokens(&tx, &day_key, delta, day_expires)?;
                add_tokens(&tx, &month_key, delta, month_expires)?;
            }
            let delta_usd = finish.settlement.delta_nano_usd();
            if delta_usd != 0 {
                let (_, month_expires) = rules::budget_expiries(finish.started);
                add_tokens(
                    &tx,
                    &schema::budget_usd_pk(payer, &finish.started),
                    delta_usd,
                    month_expires,
                )?;
            }
            if let Some(lease) = &finish.lease {
                tx.execute(
                    "DELETE FROM stream_slots WHERE owner = ?1 AND slot = ?2 AND turn = ?3",
                    params![payer, lease.slot, lease.turn_id],
                )
                .map_err(sql_err("releasing a stream slot"))?;
            }
            if let Some(stats) = &finish.stats {
                if let Err(e) = stats_in(&tx, &stats.day, &stats.solution, &stats.model, &stats.delta) {
                    tracing::warn!(error = %e, "the turn's analytics counters failed; writing without them");
                }
                super::accounting::add_usage(&tx, payer, stats)?;
            }
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.release_slot", skip_all, fields(turn = %lease.turn_id, slot = lease.slot))]
    async fn release_slot(&self, owner: &UserId, lease: &StreamLease) -> Result<(), StoreError> {
        let (owner, lease) = (owner.clone(), lease.clone());
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM stream_slots WHERE owner = ?1 AND slot = ?2 AND turn = ?3",
                params![owner.as_str(), lease.slot, lease.turn_id],
            )
            .map_err(sql_err("releasing a stream slot"))?;
            Ok(())
        })
        .await
    }
}

/// A continue's write ([`TurnWrite::Continue`]): replaces the stored message `reply.id` of
/// `owner`'s conversation `id` by `reply`, marked with the admitting turn `turn_id`, only if it
/// exists and still awaits exactly `awaiting` (not empty); otherwise `Conflict`, nothing written.
fn continue_in(
    tx: &rusqlite::Transaction<'_>,
    owner: &str,
    id: &str,
    reply: &Message,
    awaiting: &[String],
    turn_id: &str,
) -> Result<(), StoreError> {
    let conflict = || {
        StoreError::Conflict(format!(
            "message {} does not exist here or does not await exactly the approvals {awaiting:?}",
            reply.id
        ))
    };
    check_message_size(reply)?;
    if awaiting.is_empty() || reply.conversation_id.as_str() != id {
        return Err(conflict());
    }
    let Some((stored, _)) = message_with_writer(tx, owner, id, reply.id.as_str())? else {
        return Err(conflict());
    };
    if stored.awaited_approvals() != awaiting {
        return Err(conflict());
    }
    if !replace_message(tx, owner, reply, Some(turn_id))? {
        return Err(conflict());
    }
    Ok(())
}

/// Adds `tokens` (any sign: a settlement may give tokens back) to a budget row, creating it with
/// its expiry (as DynamoDB's `ADD` on a missing item does).
fn add_tokens(tx: &rusqlite::Transaction<'_>, key: &str, tokens: i64, expires: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO budgets (key, tokens, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET tokens = tokens + excluded.tokens, expires_at = excluded.expires_at",
        params![key, tokens, expires],
    )
    .map_err(sql_err("charging a budget"))?;
    Ok(())
}

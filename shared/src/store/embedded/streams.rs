//! Running turns' checkpoints and live-turn markers in SQLite (`live_turns`, `turn_checkpoints`),
//! expired rows ignored on read and deleted at open, like DynamoDB's TTL.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{sql_err, EmbeddedStore};
use crate::domain::{ts, ConversationId, LiveTurn, MessageId, UserId};
use crate::error::StoreError;
use crate::store::ports::{Checkpoint, CheckpointAck, Streams};
use crate::store::rules;

/// Puts the conversation's live-turn marker (replacing the previous turn's).
pub(super) fn put_live(conn: &Connection, owner: &str, id: &str, live: &LiveTurn) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO live_turns (owner, conversation_id, turn_id, reply_id, parent_id, started_at, deadline, stop, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
        params![
            owner,
            id,
            live.turn_id,
            live.reply_id.as_str(),
            live.parent_id.as_str(),
            ts::format(&live.started_at),
            ts::format(&live.deadline),
            live.started_at.timestamp().saturating_add(rules::CHECKPOINT_TTL_SECS),
        ],
    )
    .map_err(sql_err("writing a live turn"))?;
    Ok(())
}

/// Puts a checkpoint if absent; `false` when it existed.
pub(super) fn put_checkpoint(conn: &Connection, c: &Checkpoint) -> Result<bool, StoreError> {
    rules::check_checkpoint(c)?;
    let written = conn
        .execute(
            "INSERT INTO turn_checkpoints (owner, conversation_id, turn_id, seq, events, last, at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
            params![
                c.owner.as_str(),
                c.conversation_id.as_str(),
                c.turn_id,
                c.seq,
                c.events,
                c.last,
                ts::format(&c.at),
                c.at.timestamp().saturating_add(rules::CHECKPOINT_TTL_SECS),
            ],
        )
        .map_err(sql_err("writing a checkpoint"))?;
    Ok(written > 0)
}

/// The conversation's live turn, unless expired.
pub(super) fn live_in(conn: &Connection, owner: &str, id: &str) -> Result<Option<LiveTurn>, StoreError> {
    let row = conn
        .query_row(
            "SELECT turn_id, reply_id, parent_id, started_at, deadline, stop FROM live_turns \
             WHERE owner = ?1 AND conversation_id = ?2 AND expires_at >= ?3",
            params![owner, id, chrono::Utc::now().timestamp()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            },
        )
        .optional()
        .map_err(sql_err("reading a live turn"))?;
    row.map(|(turn_id, reply, parent, started, deadline, stop)| {
        Ok(LiveTurn {
            turn_id,
            reply_id: MessageId::parse(&reply).map_err(|e| StoreError::internal("stored reply id", e))?,
            parent_id: MessageId::parse(&parent).map_err(|e| StoreError::internal("stored parent id", e))?,
            started_at: rules::parse_ts(&started)?,
            deadline: rules::parse_ts(&deadline)?,
            stop_requested: stop,
        })
    })
    .transpose()
}

/// Deletes a conversation's live turn and checkpoints (the conversation is being deleted).
pub(super) fn delete_all(conn: &Connection, owner: &str, id: &str) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM live_turns WHERE owner = ?1 AND conversation_id = ?2",
        params![owner, id],
    )
    .map_err(sql_err("deleting a live turn"))?;
    conn.execute(
        "DELETE FROM turn_checkpoints WHERE owner = ?1 AND conversation_id = ?2",
        params![owner, id],
    )
    .map_err(sql_err("deleting checkpoints"))?;
    Ok(())
}

/// Whether the turn should stop: a stop was requested for it, or the conversation is gone.
fn stopping(conn: &Connection, owner: &str, id: &str, turn_id: &str) -> Result<bool, StoreError> {
    let row: Option<(String, bool)> = conn
        .query_row(
            "SELECT turn_id, stop FROM live_turns WHERE owner = ?1 AND conversation_id = ?2",
            params![owner, id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql_err("reading a live turn"))?;
    Ok(match row {
        None => true,
        Some((turn, stop)) => turn == turn_id && stop,
    })
}

#[async_trait]
impl Streams for EmbeddedStore {
    #[tracing::instrument(name = "embedded.checkpoint", skip_all, fields(turn = %checkpoint.turn_id, seq = checkpoint.seq, bytes = checkpoint.events.len()))]
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<CheckpointAck, StoreError> {
        rules::check_checkpoint(checkpoint)?;
        let c = checkpoint.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            // As on DynamoDB: the condition fails the whole write.
            if stopping(&tx, c.owner.as_str(), c.conversation_id.as_str(), &c.turn_id)? {
                return Ok(CheckpointAck::Stop);
            }
            put_checkpoint(&tx, &c)?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(CheckpointAck::Continue)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.stop_requested", skip_all, fields(turn = %turn_id))]
    async fn stop_requested(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<bool, StoreError> {
        let (owner, id, turn) = (owner.to_string(), id.to_string(), turn_id.to_owned());
        self.with(move |conn| stopping(conn, &owner, &id, &turn)).await
    }

    #[tracing::instrument(name = "embedded.live_turn", skip_all, fields(conversation = %id))]
    async fn live_turn(&self, owner: &UserId, id: &ConversationId) -> Result<Option<LiveTurn>, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn.transaction().map_err(sql_err("begin"))?;
            super::rows::owned_conversation(&tx, &owner, &id)?;
            live_in(&tx, &owner, &id)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.checkpoints", skip_all, fields(turn = %turn_id, after = ?after))]
    async fn checkpoints(
        &self,
        owner: &UserId,
        id: &ConversationId,
        turn_id: &str,
        after: Option<u32>,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let (owner, id, turn) = (owner.clone(), id.clone(), turn_id.to_owned());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT seq, events, last, at FROM turn_checkpoints \
                     WHERE owner = ?1 AND conversation_id = ?2 AND turn_id = ?3 AND seq > ?4 AND expires_at >= ?5 \
                     ORDER BY seq",
                )
                .map_err(sql_err("reading checkpoints"))?;
            let after = after.map_or(-1, i64::from);
            let rows = stmt
                .query_map(
                    params![owner.as_str(), id.as_str(), turn, after, chrono::Utc::now().timestamp()],
                    |r| {
                        Ok((
                            r.get::<_, u32>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, bool>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    },
                )
                .map_err(sql_err("reading checkpoints"))?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, events, last, at) = row.map_err(sql_err("reading a checkpoint"))?;
                out.push(Checkpoint {
                    owner: owner.clone(),
                    conversation_id: id.clone(),
                    turn_id: turn.clone(),
                    seq,
                    events,
                    last,
                    at: rules::parse_ts(&at)?,
                });
            }
            Ok(out)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.request_stop", skip_all, fields(turn = %turn_id))]
    async fn request_stop(&self, owner: &UserId, id: &ConversationId, turn_id: &str) -> Result<(), StoreError> {
        let (owner, id, turn) = (owner.to_string(), id.to_string(), turn_id.to_owned());
        self.with(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE live_turns SET stop = 1 WHERE owner = ?1 AND conversation_id = ?2 AND turn_id = ?3",
                    params![owner, id, turn],
                )
                .map_err(sql_err("requesting a stop"))?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }
}

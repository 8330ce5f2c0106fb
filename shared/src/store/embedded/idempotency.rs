//! `Idempotency-Key` records in SQLite: table `idempotency_keys`, one row per user and key; a row
//! without a `status` is a reservation in progress. Expired rows (`expires_at <= now`) count as
//! absent and are overwritten by the next reservation (and deleted when the store opens).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{sql_err, EmbeddedStore};
use crate::domain::{Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{rules, HeldKey, Idempotency, Reservation, SavedResponse, StoredKey};

/// A row as read back: fingerprint, status, body, location, expiry.
type KeyRow = (String, Option<u16>, Option<String>, Option<String>, i64);

#[async_trait]
impl Idempotency for EmbeddedStore {
    /// One immediate transaction: read the row; a live one answers, otherwise the reservation is
    /// written over it.
    #[tracing::instrument(name = "embedded.reserve_key", skip_all)]
    async fn reserve_key(
        &self,
        owner: &UserId,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<Reservation, StoreError> {
        let held = rules::hold_key(owner, key);
        let fingerprint = fingerprint.to_owned();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let row: Option<KeyRow> = tx
                .query_row(
                    "SELECT fingerprint, status, body, location, expires_at FROM idempotency_keys \
                     WHERE owner = ?1 AND key = ?2",
                    params![held.owner.as_str(), held.key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(sql_err("reading an idempotency key"))?;
            if let Some((stored, status, body, location, expires_at)) = row {
                if rules::key_is_live(expires_at, now) {
                    let response = status.map(|status| SavedResponse {
                        status,
                        body: body.unwrap_or_default(),
                        location,
                    });
                    let stored = StoredKey {
                        fingerprint: stored,
                        response,
                    };
                    return Ok(rules::existing_key(stored, &fingerprint));
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO idempotency_keys (owner, key, fingerprint, token, status, body, location, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, NULL, NULL, NULL, ?5)",
                params![
                    held.owner.as_str(),
                    held.key,
                    fingerprint,
                    held.token,
                    now.timestamp() + rules::IDEMPOTENCY_LEASE_SECS
                ],
            )
            .map_err(sql_err("reserving an idempotency key"))?;
            tx.commit().map_err(sql_err("commit"))?;
            Ok(Reservation::Reserved(held))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.complete_key", skip_all)]
    async fn complete_key(&self, held: &HeldKey, response: &SavedResponse, now: Timestamp) -> Result<(), StoreError> {
        rules::check_saved_response(response)?;
        let (held, response) = (held.clone(), response.clone());
        self.with(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE idempotency_keys SET token = NULL, status = ?4, body = ?5, location = ?6, expires_at = ?7 \
                 WHERE owner = ?1 AND key = ?2 AND token = ?3",
                    params![
                        held.owner.as_str(),
                        held.key,
                        held.token,
                        response.status,
                        response.body,
                        response.location,
                        now.timestamp() + rules::IDEMPOTENCY_TTL_SECS
                    ],
                )
                .map_err(sql_err("completing an idempotency key"))?;
            if changed == 0 {
                tracing::warn!("an idempotency reservation expired before its response was saved");
            }
            Ok(())
        })
        .await
    }

    #[tracing::instrument(name = "embedded.release_key", skip_all)]
    async fn release_key(&self, held: &HeldKey) -> Result<(), StoreError> {
        let held = held.clone();
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM idempotency_keys WHERE owner = ?1 AND key = ?2 AND token = ?3",
                params![held.owner.as_str(), held.key, held.token],
            )
            .map_err(sql_err("releasing an idempotency key"))?;
            Ok(())
        })
        .await
    }
}

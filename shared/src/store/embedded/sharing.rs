//! Named-user sharing in SQLite: one `grants` row per conversation and grantee, unique per
//! grantee and conversation id (as DynamoDB's grantee item is), deleted with the conversation.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::rows::owned_conversation;
use super::{sql_err, EmbeddedStore};
use crate::domain::{ts, ConversationId, UserId};
use crate::error::StoreError;
use crate::store::sharing::{newest_first, parse_time, strongest, Grant, GrantRole, Grantee, Sharing};

const COLUMNS: &str = "owner, conversation_id, grantee, role, created_at, updated_at";

fn row_to_grant(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Grant, StoreError>> {
    let owner: String = row.get(0)?;
    let id: String = row.get(1)?;
    let grantee: String = row.get(2)?;
    let role: String = row.get(3)?;
    let created: String = row.get(4)?;
    let updated: String = row.get(5)?;
    let bad = |what: &str| StoreError::internal("reading a grant", format!("bad {what}"));
    Ok((|| {
        Ok(Grant {
            owner: UserId::parse(&owner).map_err(|_| bad("owner"))?,
            conversation_id: ConversationId::parse(&id).map_err(|_| bad("conversation"))?,
            grantee: Grantee::from_key(&grantee).ok_or_else(|| bad("grantee"))?,
            role: GrantRole::parse(&role).ok_or_else(|| bad("role"))?,
            created_at: parse_time(&created).ok_or_else(|| bad("createdAt"))?,
            updated_at: parse_time(&updated).ok_or_else(|| bad("updatedAt"))?,
        })
    })())
}

fn collect(conn: &rusqlite::Connection, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Grant>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err("reading grants"))?;
    let rows = stmt.query_map(args, row_to_grant).map_err(sql_err("reading grants"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sql_err("reading grants"))??);
    }
    Ok(out)
}

#[async_trait]
impl Sharing for EmbeddedStore {
    async fn put_grant(&self, grant: &Grant, max: usize) -> Result<(), StoreError> {
        let grant = grant.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let (owner, id, key) = (
                grant.owner.as_str(),
                grant.conversation_id.as_str(),
                grant.grantee.key(),
            );
            owned_conversation(&tx, owner, id)?;
            let holder: Option<String> = tx
                .query_row(
                    "SELECT owner FROM grants WHERE grantee = ?1 AND conversation_id = ?2",
                    params![key, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err("reading a grant"))?;
            match holder.as_deref() {
                Some(h) if h != owner => {
                    return Err(StoreError::Conflict(
                        "another conversation with this id is already shared with this user; \
                         share a copy of the conversation instead"
                            .to_owned(),
                    ))
                }
                Some(_) => {}
                None => {
                    let count: i64 = tx
                        .query_row(
                            "SELECT COUNT(*) FROM grants WHERE owner = ?1 AND conversation_id = ?2",
                            params![owner, id],
                            |r| r.get(0),
                        )
                        .map_err(sql_err("counting grants"))?;
                    if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                        return Err(StoreError::Conflict(format!(
                            "a conversation can be shared with at most {max} users or addresses"
                        )));
                    }
                }
            }
            tx.execute(
                "INSERT INTO grants (owner, conversation_id, grantee, role, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (owner, conversation_id, grantee) DO UPDATE SET role = ?4, updated_at = ?6",
                params![
                    owner,
                    id,
                    key,
                    grant.role.as_str(),
                    ts::format(&grant.created_at),
                    ts::format(&grant.updated_at)
                ],
            )
            .map_err(sql_err("writing a grant"))?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    async fn delete_grant(&self, owner: &UserId, id: &ConversationId, grantee: &Grantee) -> Result<(), StoreError> {
        let (owner, id, key) = (owner.to_string(), id.to_string(), grantee.key());
        self.with(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM grants WHERE owner = ?1 AND conversation_id = ?2 AND grantee = ?3",
                    params![owner, id, key],
                )
                .map_err(sql_err("deleting a grant"))?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn grants_of(&self, owner: &UserId, id: &ConversationId) -> Result<Vec<Grant>, StoreError> {
        let (owner, id) = (owner.to_string(), id.to_string());
        self.with(move |conn| {
            collect(
                conn,
                &format!("SELECT {COLUMNS} FROM grants WHERE owner = ?1 AND conversation_id = ?2 ORDER BY grantee"),
                params![owner, id],
            )
        })
        .await
    }

    async fn grant_for(&self, grantees: &[Grantee], id: &ConversationId) -> Result<Option<Grant>, StoreError> {
        let keys: Vec<String> = grantees.iter().map(Grantee::key).collect();
        let id = id.to_string();
        self.with(move |conn| {
            let mut found = Vec::new();
            for key in &keys {
                found.extend(collect(
                    conn,
                    &format!("SELECT {COLUMNS} FROM grants WHERE grantee = ?1 AND conversation_id = ?2"),
                    params![key, id],
                )?);
            }
            Ok(strongest(found))
        })
        .await
    }

    async fn shared_with(&self, grantees: &[Grantee]) -> Result<Vec<Grant>, StoreError> {
        let keys: Vec<String> = grantees.iter().map(Grantee::key).collect();
        self.with(move |conn| {
            let mut found = Vec::new();
            for key in &keys {
                found.extend(collect(
                    conn,
                    &format!("SELECT {COLUMNS} FROM grants WHERE grantee = ?1"),
                    params![key],
                )?);
            }
            Ok(newest_first(found))
        })
        .await
    }

    async fn erase_grants(&self, grantees: &[Grantee]) -> Result<u64, StoreError> {
        let keys: Vec<String> = grantees.iter().map(Grantee::key).collect();
        self.with(move |conn| {
            let mut n = 0u64;
            for key in &keys {
                n += conn
                    .execute("DELETE FROM grants WHERE grantee = ?1", params![key])
                    .map_err(sql_err("deleting grants"))? as u64;
            }
            Ok(n)
        })
        .await
    }
}

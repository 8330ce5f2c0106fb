//! Owner-scoped documents in SQLite: one table per kind (`projects`, `prompts`, `files`), one
//! row per owner and id, the document as JSON in `body`. The reads and writes every kind shares.

use rusqlite::{params, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::sql_err;
use crate::error::StoreError;

/// A kind of document: its table and its name in error messages.
pub(super) struct Docs {
    table: &'static str,
    noun: &'static str,
}

impl Docs {
    /// The documents of `table` (one of the schema's own tables), called `noun`s.
    pub(super) const fn new(table: &'static str, noun: &'static str) -> Self {
        Self { table, noun }
    }

    /// A document as stored.
    pub(super) fn encode<T: Serialize>(&self, doc: &T) -> Result<String, StoreError> {
        serde_json::to_string(doc).map_err(|e| StoreError::internal(format!("serializing a {}", self.noun), e))
    }

    fn decode<T: DeserializeOwned>(&self, body: &str) -> Result<T, StoreError> {
        serde_json::from_str(body).map_err(|e| StoreError::internal(format!("stored {}", self.noun), e))
    }

    /// The owner's document `id` ([`StoreError::NotFound`] when there is none).
    pub(super) fn get<T: DeserializeOwned>(
        &self,
        conn: &rusqlite::Connection,
        owner: &str,
        id: &str,
    ) -> Result<T, StoreError> {
        let body: Option<String> = conn
            .query_row(
                &format!("SELECT body FROM {} WHERE owner = ?1 AND id = ?2", self.table),
                params![owner, id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err("reading a document"))?;
        self.decode(&body.ok_or(StoreError::NotFound)?)
    }

    /// Every document of the owner, by id (ULIDs: oldest first).
    pub(super) fn list<T: DeserializeOwned>(
        &self,
        conn: &rusqlite::Connection,
        owner: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = conn
            .prepare_cached(&format!("SELECT body FROM {} WHERE owner = ?1 ORDER BY id", self.table))
            .map_err(sql_err("listing documents"))?;
        let rows = stmt
            .query_map(params![owner], |r| r.get::<_, String>(0))
            .map_err(sql_err("listing documents"))?;
        rows.map(|row| self.decode(&row.map_err(sql_err("listing documents"))?))
            .collect()
    }

    /// How many documents the owner has.
    pub(super) fn count(&self, conn: &rusqlite::Connection, owner: &str) -> Result<usize, StoreError> {
        let count: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM {} WHERE owner = ?1", self.table),
                params![owner],
                |r| r.get(0),
            )
            .map_err(sql_err("counting documents"))?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// Stores a new document; [`StoreError::Conflict`] when the owner has one of this id.
    pub(super) fn insert<T: Serialize>(
        &self,
        conn: &rusqlite::Connection,
        owner: &str,
        id: &str,
        doc: &T,
    ) -> Result<(), StoreError> {
        let inserted = conn
            .execute(
                &format!(
                    "INSERT OR IGNORE INTO {} (owner, id, body) VALUES (?1, ?2, ?3)",
                    self.table
                ),
                params![owner, id, self.encode(doc)?],
            )
            .map_err(sql_err("storing a document"))?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("{} {id} already exists", self.noun)));
        }
        Ok(())
    }

    /// Replaces the owner's document `id`.
    pub(super) fn update<T: Serialize>(
        &self,
        conn: &rusqlite::Connection,
        owner: &str,
        id: &str,
        doc: &T,
    ) -> Result<(), StoreError> {
        conn.execute(
            &format!("UPDATE {} SET body = ?3 WHERE owner = ?1 AND id = ?2", self.table),
            params![owner, id, self.encode(doc)?],
        )
        .map_err(sql_err("updating a document"))?;
        Ok(())
    }
}

//! Daily analytics counters in SQLite (one row per day × solution × model, a JSON body).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{sql_err, EmbeddedStore};
use crate::domain::{StatsDelta, StatsRow};
use crate::error::StoreError;
use crate::store::rules::check_imported_rows;
use crate::store::{Stats, StatsUpdate};

pub(super) fn stats_in(
    tx: &rusqlite::Transaction<'_>,
    day: &str,
    solution: &str,
    model: &str,
    delta: &StatsDelta,
) -> Result<(), StoreError> {
    let current: Option<String> = tx
        .query_row(
            "SELECT body FROM stats WHERE day = ?1 AND solution = ?2 AND model = ?3",
            params![day, solution, model],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err("reading stats"))?;
    let mut stats: StatsDelta = match current {
        Some(body) => serde_json::from_str(&body).map_err(|e| StoreError::internal("stored stats", e))?,
        None => Default::default(),
    };
    stats.merge(delta);
    let body = serde_json::to_string(&stats).map_err(|e| StoreError::internal("serializing stats", e))?;
    tx.execute(
        "INSERT INTO stats (day, solution, model, body) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (day, solution, model) DO UPDATE SET body = excluded.body",
        params![day, solution, model, body],
    )
    .map_err(sql_err("writing stats"))?;
    Ok(())
}

#[async_trait]
impl Stats for EmbeddedStore {
    #[tracing::instrument(name = "embedded.add_stats", skip_all, fields(day = %day, solution = %solution, model = %model))]
    async fn add_stats(&self, day: &str, solution: &str, model: &str, delta: &StatsDelta) -> Result<(), StoreError> {
        let (day, solution, model, delta) = (day.to_owned(), solution.to_owned(), model.to_owned(), delta.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            stats_in(&tx, &day, &solution, &model, &delta)?;
            tx.commit().map_err(sql_err("commit"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.stats_imported", skip_all)]
    async fn stats_imported(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.with(move |conn| {
            conn.query_row("SELECT 1 FROM stats_imports WHERE key = ?1", [&key], |_| Ok(()))
                .optional()
                .map(|found| found.is_some())
                .map_err(sql_err("reading a stats import"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.import_stats", skip_all, fields(rows = rows.len()))]
    async fn import_stats(&self, key: &str, rows: &[StatsUpdate]) -> Result<bool, StoreError> {
        check_imported_rows(rows)?;
        let (key, rows) = (key.to_owned(), rows.to_vec());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err("begin"))?;
            let added = tx
                .execute("INSERT OR IGNORE INTO stats_imports (key) VALUES (?1)", [&key])
                .map_err(sql_err("recording a stats import"))?;
            if added == 0 {
                return Ok(false);
            }
            for row in &rows {
                stats_in(&tx, &row.day, &row.solution, &row.model, &row.delta)?;
            }
            tx.commit().map_err(sql_err("commit"))?;
            Ok(true)
        })
        .await
    }

    #[tracing::instrument(name = "embedded.stats_between", skip_all, fields(from = %from, to = %to))]
    async fn stats_between(&self, from: &str, to: &str) -> Result<Vec<StatsRow>, StoreError> {
        let (from, to) = (from.to_owned(), to.to_owned());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT day, solution, model, body FROM stats WHERE day >= ?1 AND day <= ?2 ORDER BY day, solution, model",
                )
                .map_err(sql_err("reading stats"))?;
            let rows = stmt
                .query_map(params![from, to], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                })
                .map_err(sql_err("reading stats"))?;
            let mut out = Vec::new();
            for row in rows {
                let (day, solution, model, body) = row.map_err(sql_err("reading stats"))?;
                out.push(StatsRow {
                    day,
                    solution,
                    model,
                    stats: serde_json::from_str(&body).map_err(|e| StoreError::internal("stored stats", e))?,
                });
            }
            Ok(out)
        })
        .await
    }
}

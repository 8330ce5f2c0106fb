//! Plans, usage and spend in SQLite: tables `plan_overrides` (one JSON row per user), `usage`
//! (one row per user, day, solution and model) and `spend` (one row per month); the dollar
//! budget is a `budgets` row like the token budgets.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{sql_err, EmbeddedStore};
use crate::domain::{Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{schema, Accounting, BudgetLevels, PlanOverride, StatsUpdate, UsageRow};

/// Adds a finished turn's usage to its owner's row of the day and to the month's spend (in the
/// finishing transaction).
pub(super) fn add_usage(tx: &rusqlite::Transaction<'_>, owner: &str, stats: &StatsUpdate) -> Result<(), StoreError> {
    let d = &stats.delta;
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO usage (owner, day, solution, model, requests, input_tokens, output_tokens, \
         cache_read_tokens, cache_write_tokens, cost_nano_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (owner, day, solution, model) DO UPDATE SET requests = requests + excluded.requests, \
         input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens, \
         cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens, \
         cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens, \
         cost_nano_usd = cost_nano_usd + excluded.cost_nano_usd",
        params![
            owner,
            stats.day,
            stats.solution,
            stats.model,
            signed(d.requests),
            signed(d.input_tokens),
            signed(d.output_tokens),
            signed(d.cache_read_tokens),
            signed(d.cache_write_tokens),
            signed(d.cost_nano_usd),
        ],
    )
    .map_err(sql_err("adding usage"))?;
    if d.cost_nano_usd > 0 {
        tx.execute(
            "INSERT INTO spend (month, nano_usd) VALUES (?1, ?2) \
             ON CONFLICT (month) DO UPDATE SET nano_usd = nano_usd + excluded.nano_usd",
            params![stats.day.get(..7).unwrap_or(&stats.day), signed(d.cost_nano_usd)],
        )
        .map_err(sql_err("adding spend"))?;
    }
    Ok(())
}

#[async_trait]
impl Accounting for EmbeddedStore {
    #[tracing::instrument(name = "embedded.plan_override", skip_all)]
    async fn plan_override(&self, user: &UserId) -> Result<Option<PlanOverride>, StoreError> {
        let user = user.to_string();
        self.with(move |conn| {
            let body: Option<String> = conn
                .query_row("SELECT body FROM plan_overrides WHERE owner = ?1", params![user], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql_err("reading a plan override"))?;
            body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::internal("stored plan override", e)))
                .transpose()
        })
        .await
    }

    #[tracing::instrument(name = "embedded.set_plan_override", skip_all)]
    async fn set_plan_override(&self, user: &UserId, value: Option<&PlanOverride>) -> Result<(), StoreError> {
        let user = user.to_string();
        let body = value
            .map(|v| serde_json::to_string(v).map_err(|e| StoreError::internal("serializing a plan override", e)))
            .transpose()?;
        self.with(move |conn| {
            match body {
                Some(body) => conn.execute(
                    "INSERT INTO plan_overrides (owner, body) VALUES (?1, ?2) \
                     ON CONFLICT (owner) DO UPDATE SET body = excluded.body",
                    params![user, body],
                ),
                None => conn.execute("DELETE FROM plan_overrides WHERE owner = ?1", params![user]),
            }
            .map_err(sql_err("writing a plan override"))?;
            Ok(())
        })
        .await
    }

    #[tracing::instrument(name = "embedded.usage_between", skip_all)]
    async fn usage_between(&self, user: &UserId, from: &str, to: &str) -> Result<Vec<UsageRow>, StoreError> {
        let (user, from, to) = (user.to_string(), from.to_owned(), to.to_owned());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT day, solution, model, requests, input_tokens, output_tokens, cache_read_tokens, \
                     cache_write_tokens, cost_nano_usd FROM usage WHERE owner = ?1 AND day >= ?2 AND day <= ?3 \
                     ORDER BY day, solution, model",
                )
                .map_err(sql_err("reading usage"))?;
            let count = |r: &rusqlite::Row<'_>, i: usize| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
            let rows = stmt
                .query_map(params![user, from, to], |r| {
                    Ok(UsageRow {
                        day: r.get(0)?,
                        solution: r.get(1)?,
                        model: r.get(2)?,
                        requests: count(r, 3)?,
                        input_tokens: count(r, 4)?,
                        output_tokens: count(r, 5)?,
                        cache_read_tokens: count(r, 6)?,
                        cache_write_tokens: count(r, 7)?,
                        cost_nano_usd: count(r, 8)?,
                    })
                })
                .map_err(sql_err("reading usage"))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sql_err("reading usage"))
        })
        .await
    }

    #[tracing::instrument(name = "embedded.budget_levels", skip_all)]
    async fn budget_levels(&self, user: &UserId, at: Timestamp) -> Result<BudgetLevels, StoreError> {
        let (day, month) = schema::budget_pks(user.as_str(), &at);
        let usd = schema::budget_usd_pk(user.as_str(), &at);
        self.with(move |conn| {
            let read = |key: &str| -> Result<u64, StoreError> {
                let v: Option<i64> = conn
                    .query_row("SELECT tokens FROM budgets WHERE key = ?1", params![key], |r| r.get(0))
                    .optional()
                    .map_err(sql_err("reading a budget"))?;
                Ok(u64::try_from(v.unwrap_or(0)).unwrap_or(0))
            };
            Ok(BudgetLevels {
                tokens_day: read(&day)?,
                tokens_month: read(&month)?,
                nano_usd_month: read(&usd)?,
            })
        })
        .await
    }

    #[tracing::instrument(name = "embedded.month_spend", skip_all)]
    async fn month_spend(&self, month: &str) -> Result<u64, StoreError> {
        let month = month.to_owned();
        self.with(move |conn| {
            let v: Option<i64> = conn
                .query_row("SELECT nano_usd FROM spend WHERE month = ?1", params![month], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql_err("reading the month's spend"))?;
            Ok(u64::try_from(v.unwrap_or(0)).unwrap_or(0))
        })
        .await
    }
}

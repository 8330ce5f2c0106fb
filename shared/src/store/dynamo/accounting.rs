//! Plans, usage and spend on DynamoDB (events table): a user's plan override at `PLAN#<user>`,
//! usage rows in `USAGE#<user>` (sort key `<day>#<solution>#<model>`, so a month is one key
//! range: one Query), the month's spend at `SPEND#<month>`, the dollar budget at
//! `BUD#<user>#U#<month>` beside the token budgets. Numbers are `ADD`ed in the finishing
//! transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem, Update};

use super::{classify, from_item, n, s, sdk_key, to_item, update_item, DynamoStore, Item};
use crate::domain::{Timestamp, UserId};
use crate::error::StoreError;
use crate::store::{schema, Accounting, BudgetLevels, PlanOverride, StatsUpdate, UsageRow};

/// The usage row's counters, by attribute name.
const COUNTERS: [&str; 6] = [
    "requests",
    "inputTokens",
    "outputTokens",
    "cacheReadTokens",
    "cacheWriteTokens",
    "costNanoUsd",
];

/// How long a usage row is kept after its day (seconds): 400 days, for a year of history.
const USAGE_TTL_SECS: i64 = 400 * 86_400;

fn counters(stats: &StatsUpdate) -> [u64; 6] {
    let d = &stats.delta;
    [
        d.requests,
        d.input_tokens,
        d.output_tokens,
        d.cache_read_tokens,
        d.cache_write_tokens,
        d.cost_nano_usd,
    ]
}

/// The finishing transaction's items for a turn's usage: `ADD` to the owner's row of the day
/// and (when it cost anything) to the month's spend.
pub(super) fn usage_items(
    events: &str,
    owner: &str,
    stats: &StatsUpdate,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let expires = chrono::NaiveDate::parse_from_str(&stats.day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |d| d.and_utc().timestamp())
        .saturating_add(USAGE_TTL_SECS);
    let values = counters(stats);
    let mut expression = String::from("ADD ");
    let mut names = HashMap::new();
    let mut attrs = HashMap::new();
    for (i, (name, value)) in COUNTERS.iter().zip(values).enumerate() {
        if i > 0 {
            expression.push_str(", ");
        }
        expression.push_str(&format!("#c{i} :c{i}"));
        names.insert(format!("#c{i}"), (*name).to_owned());
        attrs.insert(format!(":c{i}"), n(value));
    }
    expression.push_str(" SET #ttl = :expires");
    names.insert("#ttl".to_owned(), schema::TTL_ATTRIBUTE.to_owned());
    attrs.insert(":expires".to_owned(), n(expires));
    let row = Update::builder()
        .table_name(events)
        .set_key(Some(sdk_key(
            schema::usage_pk(owner),
            schema::usage_sk(&stats.day, &stats.solution, &stats.model),
        )))
        .update_expression(expression)
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(attrs))
        .build();
    let mut items = vec![update_item(row)?];
    if stats.delta.cost_nano_usd > 0 {
        let month = stats.day.get(..7).unwrap_or(&stats.day);
        let spend = Update::builder()
            .table_name(events)
            .set_key(Some(sdk_key(schema::spend_pk(month), "-".to_owned())))
            .update_expression("ADD #tokens :n")
            .expression_attribute_names("#tokens", "tokens")
            .expression_attribute_values(":n", n(stats.delta.cost_nano_usd))
            .build();
        items.push(update_item(spend)?);
    }
    Ok(items)
}

fn number(item: &Item, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse::<i64>().map_or(0, |v| u64::try_from(v).unwrap_or(0)),
        _ => 0,
    }
}

#[async_trait]
impl Accounting for DynamoStore {
    #[tracing::instrument(name = "dynamo.plan_override", skip_all)]
    async fn plan_override(&self, user: &UserId) -> Result<Option<PlanOverride>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.events)
            .set_key(Some(sdk_key(schema::plan_pk(user.as_str()), "-".to_owned())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem plan override", e))?;
        match out.item {
            None => Ok(None),
            Some(mut item) => {
                item.remove(schema::PK);
                item.remove(schema::SK);
                from_item(item).map(Some)
            }
        }
    }

    #[tracing::instrument(name = "dynamo.set_plan_override", skip_all)]
    async fn set_plan_override(&self, user: &UserId, value: Option<&PlanOverride>) -> Result<(), StoreError> {
        let pk = schema::plan_pk(user.as_str());
        match value {
            Some(value) => {
                let mut item = to_item(value)?;
                item.insert(schema::PK.to_owned(), s(pk));
                item.insert(schema::SK.to_owned(), s("-"));
                self.client
                    .put_item()
                    .table_name(&self.tables.events)
                    .set_item(Some(item))
                    .send()
                    .await
                    .map_err(|e| classify("PutItem plan override", e))?;
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.tables.events)
                    .set_key(Some(sdk_key(pk, "-".to_owned())))
                    .send()
                    .await
                    .map_err(|e| classify("DeleteItem plan override", e))?;
            }
        }
        Ok(())
    }

    #[tracing::instrument(name = "dynamo.usage_between", skip_all)]
    async fn usage_between(&self, user: &UserId, from: &str, to: &str) -> Result<Vec<UsageRow>, StoreError> {
        let pk = schema::usage_pk(user.as_str());
        // `to` + `$` sorts after every `<to>#...` key (`$` > `#`).
        let (low, high) = (from.to_owned(), format!("{to}$"));
        let items = self
            .all_pages("Query usage", || {
                self.client
                    .query()
                    .table_name(&self.tables.events)
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#sk", schema::SK)
                    .expression_attribute_values(":pk", s(pk.clone()))
                    .expression_attribute_values(":low", s(low.clone()))
                    .expression_attribute_values(":high", s(high.clone()))
            })
            .await?;
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            let Some(AttributeValue::S(sk)) = item.get(schema::SK) else {
                continue;
            };
            // `<day>#<solution>#<model>`: days and solutions hold no `#`; a model id may not either,
            // but everything after the second `#` is the model whatever it holds.
            let mut parts = sk.splitn(3, '#');
            let (Some(day), Some(solution), Some(model)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            rows.push(UsageRow {
                day: day.to_owned(),
                solution: solution.to_owned(),
                model: model.to_owned(),
                requests: number(&item, COUNTERS[0]),
                input_tokens: number(&item, COUNTERS[1]),
                output_tokens: number(&item, COUNTERS[2]),
                cache_read_tokens: number(&item, COUNTERS[3]),
                cache_write_tokens: number(&item, COUNTERS[4]),
                cost_nano_usd: number(&item, COUNTERS[5]),
            });
        }
        Ok(rows)
    }

    #[tracing::instrument(name = "dynamo.budget_levels", skip_all)]
    async fn budget_levels(&self, user: &UserId, at: Timestamp) -> Result<BudgetLevels, StoreError> {
        let (day, month) = schema::budget_pks(user.as_str(), &at);
        let usd = schema::budget_usd_pk(user.as_str(), &at);
        let keys = [&day, &month, &usd]
            .iter()
            .map(|pk| sdk_key((*pk).clone(), "-".to_owned()))
            .collect::<Vec<_>>();
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::internal("building a budget read", e))?;
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.tables.events, request)
            .send()
            .await
            .map_err(|e| classify("BatchGetItem budgets", e))?;
        let mut levels = BudgetLevels::default();
        let items = out
            .responses
            .and_then(|mut r| r.remove(&self.tables.events))
            .unwrap_or_default();
        for item in items {
            let value = number(&item, "tokens");
            match item.get(schema::PK) {
                Some(AttributeValue::S(pk)) if *pk == day => levels.tokens_day = value,
                Some(AttributeValue::S(pk)) if *pk == month => levels.tokens_month = value,
                Some(AttributeValue::S(pk)) if *pk == usd => levels.nano_usd_month = value,
                _ => {}
            }
        }
        // Unprocessed keys (throttling) read as nothing spent: the levels only inform (headers,
        // the usage page); admission is decided by the conditions of the admitting write.
        Ok(levels)
    }

    #[tracing::instrument(name = "dynamo.month_spend", skip_all)]
    async fn month_spend(&self, month: &str) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.events)
            .set_key(Some(sdk_key(schema::spend_pk(month), "-".to_owned())))
            .send()
            .await
            .map_err(|e| classify("GetItem spend", e))?;
        Ok(out.item.map_or(0, |item| number(&item, "tokens")))
    }
}

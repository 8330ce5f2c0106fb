//! Daily analytics counters on DynamoDB (events table, one item per day × solution × model).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::schema;
use super::{classify, n, put_if_absent, s, sdk_key, update_item, DynamoStore, Item};
use crate::domain::{StatsDelta, StatsRow};
use crate::error::StoreError;
use crate::store::{rules, Stats, StatsUpdate};

#[async_trait]
impl Stats for DynamoStore {
    #[tracing::instrument(name = "dynamo.add_stats", skip_all, fields(day = %day, solution = %solution, model = %model))]
    async fn add_stats(&self, day: &str, solution: &str, model: &str, delta: &StatsDelta) -> Result<(), StoreError> {
        let (key, expression, names, values) = stats_expression(day, solution, model, delta);
        self.client
            .update_item()
            .table_name(&self.tables.events)
            .set_key(Some(key))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| classify("UpdateItem stats", e))?;
        Ok(())
    }

    /// One consistent `GetItem` of the key's record.
    #[tracing::instrument(name = "dynamo.stats_imported", skip_all)]
    async fn stats_imported(&self, key: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.events)
            .set_key(Some(Self::stats_import_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem stats import", e))?;
        Ok(out.item.is_some())
    }

    /// One `TransactWriteItems`: the key's record put if absent, and an `UpdateItem ... ADD` per
    /// row (as `add_stats`); the record's condition failing cancels the whole.
    #[tracing::instrument(name = "dynamo.import_stats", skip_all, fields(rows = rows.len()))]
    async fn import_stats(&self, key: &str, rows: &[StatsUpdate]) -> Result<bool, StoreError> {
        rules::check_imported_rows(rows)?;
        let expires = rows.iter().map(|r| rules::stats_expiry(&r.day)).max().unwrap_or(0);
        let mut record = Self::stats_import_key(key);
        record.insert(schema::TTL_ATTRIBUTE.to_owned(), n(expires));
        let mut items = vec![put_if_absent(&self.tables.events, record)];
        for row in rows {
            items.push(stats_update(&self.tables.events, row)?);
        }
        match self.transact(items).await? {
            Ok(()) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    #[tracing::instrument(name = "dynamo.stats_between", skip_all, fields(from = %from, to = %to))]
    async fn stats_between(&self, from: &str, to: &str) -> Result<Vec<StatsRow>, StoreError> {
        use futures::StreamExt;
        let days = crate::store::days_between(from, to);
        let pages: Vec<Result<Vec<StatsRow>, StoreError>> = futures::stream::iter(days)
            .map(|day| async move {
                let out = self
                    .client
                    .query()
                    .table_name(&self.tables.events)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_values(":pk", s(schema::stats_pk(&day)))
                    .send()
                    .await
                    .map_err(|e| classify("Query stats", e))?;
                Ok(out.items.unwrap_or_default().iter().map(stats_row).collect())
            })
            .buffered(8)
            .collect()
            .await;
        let mut rows = Vec::new();
        for page in pages {
            rows.extend(page?);
        }
        Ok(rows)
    }
}

/// A transaction's update adding `row` to its counters item (as `add_stats`).
pub(super) fn stats_update(table: &str, row: &StatsUpdate) -> Result<TransactWriteItem, StoreError> {
    let (key, expression, names, values) = stats_expression(&row.day, &row.solution, &row.model, &row.delta);
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression)
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .build();
    update_item(update)
}

impl DynamoStore {
    /// The record of an import's key.
    fn stats_import_key(key: &str) -> Item {
        sdk_key(schema::stats_import_pk(key), "-".to_owned())
    }
}

/// Reads a counter item (numbers, histogram attributes `l<i>`/`t<i>`, the user set).
fn stats_row(item: &Item) -> StatsRow {
    let text = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    };
    let num = |k: &str| match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse::<u64>().unwrap_or(0),
        _ => 0,
    };
    let signed = |k: &str| match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse::<i64>().unwrap_or(0),
        _ => 0,
    };
    let hist = |prefix: &str| -> Vec<u64> {
        let values: Vec<u64> = (0..=crate::domain::BUCKETS_MS.len())
            .map(|i| num(&format!("{prefix}{i}")))
            .collect();
        if values.iter().all(|v| *v == 0) {
            Vec::new()
        } else {
            values
        }
    };
    StatsRow {
        day: text("day"),
        solution: text("solution"),
        model: text("model"),
        stats: StatsDelta {
            requests: num("requests"),
            errors: num("errors"),
            conversations: num("conversations"),
            messages: num("messages"),
            input_tokens: num("inputTokens"),
            output_tokens: num("outputTokens"),
            cache_read_tokens: num("cacheReadTokens"),
            cache_write_tokens: num("cacheWriteTokens"),
            cost_nano_usd: num("costNanoUsd"),
            latency: hist("l"),
            ttft: hist("t"),
            users: match item.get("users") {
                Some(AttributeValue::Ss(set)) => set.iter().cloned().collect(),
                _ => Default::default(),
            },
            thumbs_up: signed("thumbsUp"),
            thumbs_down: signed("thumbsDown"),
        },
    }
}

/// The key and `UpdateItem` expression adding a stats delta to its day × solution × model row.
#[allow(clippy::type_complexity)]
pub(super) fn stats_expression(
    day: &str,
    solution: &str,
    model: &str,
    delta: &StatsDelta,
) -> (Item, String, HashMap<String, String>, Item) {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut values: Item = HashMap::new();
    let mut adds: Vec<String> = Vec::new();
    let scalars = [
        ("requests", delta.requests),
        ("errors", delta.errors),
        ("conversations", delta.conversations),
        ("messages", delta.messages),
        ("inputTokens", delta.input_tokens),
        ("outputTokens", delta.output_tokens),
        ("cacheReadTokens", delta.cache_read_tokens),
        ("cacheWriteTokens", delta.cache_write_tokens),
        ("costNanoUsd", delta.cost_nano_usd),
    ];
    let hist = delta
        .latency
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("l{i}"), *v))
        .chain(delta.ttft.iter().enumerate().map(|(i, v)| (format!("t{i}"), *v)));
    for (name, value) in scalars.iter().map(|(n, v)| ((*n).to_owned(), *v)).chain(hist) {
        if value == 0 {
            continue;
        }
        adds.push(format!("#{name} :{name}"));
        names.insert(format!("#{name}"), name.clone());
        values.insert(format!(":{name}"), n(value));
    }
    // Signed counters (reactions changed or removed subtract).
    for (name, value) in [("thumbsUp", delta.thumbs_up), ("thumbsDown", delta.thumbs_down)] {
        if value == 0 {
            continue;
        }
        adds.push(format!("#{name} :{name}"));
        names.insert(format!("#{name}"), name.to_owned());
        values.insert(format!(":{name}"), n(value));
    }
    if !delta.users.is_empty() {
        adds.push("#users :users".to_owned());
        names.insert("#users".to_owned(), "users".to_owned());
        values.insert(
            ":users".to_owned(),
            AttributeValue::Ss(delta.users.iter().cloned().collect()),
        );
    }
    let expires = rules::stats_expiry(day);
    let mut expression = "SET #day = :day, #solution = :solution, #model = :model, #ttl = :expires".to_owned();
    if !adds.is_empty() {
        expression.push_str(" ADD ");
        expression.push_str(&adds.join(", "));
    }
    for (k, v) in [
        ("#day", "day"),
        ("#solution", "solution"),
        ("#model", "model"),
        ("#ttl", schema::TTL_ATTRIBUTE),
    ] {
        names.insert(k.to_owned(), v.to_owned());
    }
    values.insert(":day".to_owned(), s(day));
    values.insert(":solution".to_owned(), s(solution));
    values.insert(":model".to_owned(), s(model));
    values.insert(":expires".to_owned(), n(expires));
    (
        sdk_key(schema::stats_pk(day), format!("{solution}#{model}")),
        expression,
        names,
        values,
    )
}

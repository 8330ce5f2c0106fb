//! Usage analytics (seed 001): events, daily counters and CloudWatch metrics.
//!
//! - **Events** (`AnalyticsEvent`): `conversation_created`, `message_sent`, `api_call`,
//!   `model_switched`, `error`, `performance`; user ids hashed, never emails. Kept by TTL.
//! - **Counters** per UTC day × solution × model, updated atomically (DynamoDB `ADD`): requests,
//!   errors, conversations, messages, tokens, cost in nano-dollars (exact integers), fixed
//!   latency and time-to-first-token histograms, and the set of active (hashed) users. A 30-day
//!   dashboard reads 30 partitions, never a scan of events.
//! - **CloudWatch Embedded Metric Format** lines on stdout in Lambda (namespace `Athena`,
//!   dimensions `solution`, `model`), so alarms and dashboards need no API calls.
//!
//! Recording never fails a request: errors are logged, not returned.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use crate::catalog::ModelInfo;
use crate::domain::{AnalyticsEvent, IdGenerator, Solution, Timestamp, Usage, UserId};
pub use crate::domain::{StatsDelta, StatsRow, BUCKETS_MS};
use crate::store::Store;

/// The bucket of a duration.
pub fn bucket(ms: u64) -> usize {
    BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(BUCKETS_MS.len())
}

/// Exact cost in nano-dollars (1e-9 USD): catalog prices are micro-dollars per million tokens,
/// so a token costs `price / 1000` nano-dollars, always an integer.
pub fn cost_nano_usd(model: &ModelInfo, usage: &Usage) -> u64 {
    usage.input_tokens * (model.input_micro_usd_per_mtok / 1000)
        + usage.output_tokens * (model.output_micro_usd_per_mtok / 1000)
        + usage.cache_read_tokens * (model.cache_read_micro_usd_per_mtok / 1000)
        + usage.cache_write_tokens * (model.cache_write_micro_usd_per_mtok / 1000)
}

pub use crate::domain::user_hash;

fn one_hot(ms: u64) -> Vec<u64> {
    let mut h = vec![0; BUCKETS_MS.len() + 1];
    h[bucket(ms)] = 1;
    h
}

/// The `p`-th percentile (0..=1) of a histogram, as the upper bound of its bucket (conservative);
/// `None` when empty. Values in the open bucket report as the last bound.
pub fn percentile(hist: &[u64], p: f64) -> Option<u64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * p).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(BUCKETS_MS.get(i).copied().unwrap_or(BUCKETS_MS[BUCKETS_MS.len() - 1]));
        }
    }
    None
}

/// The counter bucket name of a solution.
pub fn solution_key(solution: Option<Solution>) -> &'static str {
    solution.map_or("general", Solution::as_str)
}

/// One chat turn, as analytics sees it.
#[derive(Clone, Debug)]
pub struct TurnRecord {
    /// The solution chat.
    pub solution: Option<Solution>,
    /// Who.
    pub user: UserId,
    /// Which conversation.
    pub conversation_id: String,
    /// The model that answered (after fallback).
    pub model: &'static ModelInfo,
    /// The model first asked, when a fallback answered instead.
    pub fell_back_from: Option<String>,
    /// Usage reported by the provider.
    pub usage: Usage,
    /// Total latency.
    pub latency_ms: u64,
    /// Time to first token.
    pub ttft_ms: Option<u64>,
    /// The error code when the turn failed.
    pub error: Option<String>,
    /// Whether the turn created the conversation.
    pub created_conversation: bool,
    /// When.
    pub at: Timestamp,
}

/// The analytics events of a chat turn.
pub fn turn_events(ids: &IdGenerator, turn: &TurnRecord) -> Vec<AnalyticsEvent> {
    let user = user_hash(&turn.user);
    let cost = cost_nano_usd(turn.model, &turn.usage);
    let event = |event_type: &str, metadata: serde_json::Value| AnalyticsEvent {
        id: ids.next_ulid(),
        event_type: event_type.to_owned(),
        solution_type: turn.solution,
        user_id: Some(user.clone()),
        conversation_id: Some(turn.conversation_id.clone()),
        model: Some(turn.model.id.to_owned()),
        metadata,
        timestamp: turn.at,
    };
    let mut events = Vec::with_capacity(6);
    if turn.created_conversation {
        events.push(event("conversation_created", json!({})));
    }
    events.push(event("message_sent", json!({})));
    events.push(event(
        "api_call",
        json!({
            "status": if turn.error.is_some() { "error" } else { "ok" },
            "errorCode": turn.error,
            "inputTokens": turn.usage.input_tokens,
            "outputTokens": turn.usage.output_tokens,
            "cacheReadTokens": turn.usage.cache_read_tokens,
            "cacheWriteTokens": turn.usage.cache_write_tokens,
            "costNanoUsd": cost,
            "latencyMs": turn.latency_ms,
            "timeToFirstTokenMs": turn.ttft_ms,
        }),
    ));
    events.push(event(
        "performance",
        json!({"latencyMs": turn.latency_ms, "timeToFirstTokenMs": turn.ttft_ms}),
    ));
    if let Some(from) = &turn.fell_back_from {
        events.push(event("model_switched", json!({"from": from, "reason": "fallback"})));
    }
    if let Some(code) = &turn.error {
        events.push(event("error", json!({"errorCode": code})));
    }
    events
}

/// The counters a chat turn adds: its day × solution × model row.
pub fn turn_stats(turn: &TurnRecord) -> crate::store::StatsUpdate {
    let cost = cost_nano_usd(turn.model, &turn.usage);
    let delta = StatsDelta {
        requests: 1,
        errors: u64::from(turn.error.is_some()),
        conversations: u64::from(turn.created_conversation),
        messages: 1,
        input_tokens: turn.usage.input_tokens,
        output_tokens: turn.usage.output_tokens,
        cache_read_tokens: turn.usage.cache_read_tokens,
        cache_write_tokens: turn.usage.cache_write_tokens,
        cost_nano_usd: cost,
        latency: one_hot(turn.latency_ms),
        ttft: turn.ttft_ms.map(one_hot).unwrap_or_default(),
        users: BTreeSet::from([user_hash(&turn.user)]),
    };
    crate::store::StatsUpdate {
        day: turn.at.format("%Y-%m-%d").to_string(),
        solution: solution_key(turn.solution).to_owned(),
        model: turn.model.id.to_owned(),
        delta,
    }
}

/// Prints the turn's CloudWatch EMF line when running in Lambda (or `ATHENA_EMF=true`).
pub fn emit_metrics(turn: &TurnRecord, enabled: bool) {
    if enabled {
        println!("{}", emf(turn, cost_nano_usd(turn.model, &turn.usage)));
    }
}

/// A non-chat event to record.
#[derive(Clone, Debug)]
pub struct EventInput {
    /// `conversation_created`, `model_switched`, ...
    pub event_type: &'static str,
    /// Who.
    pub user: UserId,
    /// The solution of the conversation.
    pub solution: Option<Solution>,
    /// The conversation.
    pub conversation_id: String,
    /// Its model.
    pub model: String,
    /// Details.
    pub metadata: serde_json::Value,
}

/// Records a non-chat event (conversation created or model switched through the API). Never fails.
pub async fn record_event(store: &dyn Store, ids: &IdGenerator, input: EventInput) {
    let EventInput {
        event_type,
        user,
        solution,
        conversation_id,
        model,
        metadata,
    } = input;
    let (user, model) = (&user, model.as_str());
    let event = AnalyticsEvent {
        id: ids.next_ulid(),
        event_type: event_type.to_owned(),
        solution_type: solution,
        user_id: Some(user_hash(user)),
        conversation_id: Some(conversation_id),
        model: Some(model.to_owned()),
        metadata,
        timestamp: crate::domain::now(),
    };
    if let Err(e) = store.record_events(std::slice::from_ref(&event)).await {
        tracing::warn!(error = %e, "recording an analytics event failed");
    }
    if event_type == "conversation_created" {
        let delta = StatsDelta {
            conversations: 1,
            users: BTreeSet::from([user_hash(user)]),
            ..StatsDelta::default()
        };
        let day = event.timestamp.format("%Y-%m-%d").to_string();
        if let Err(e) = store.add_stats(&day, solution_key(solution), model, &delta).await {
            tracing::warn!(error = %e, "updating analytics counters failed");
        }
    }
}

/// A CloudWatch Embedded Metric Format record for one turn.
pub fn emf(turn: &TurnRecord, cost_nano: u64) -> String {
    let mut record = json!({
        "_aws": {
            "Timestamp": turn.at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Athena",
                "Dimensions": [["solution", "model"], ["solution"]],
                "Metrics": [
                    {"Name": "Requests", "Unit": "Count"},
                    {"Name": "Errors", "Unit": "Count"},
                    {"Name": "Latency", "Unit": "Milliseconds"},
                    {"Name": "TimeToFirstToken", "Unit": "Milliseconds"},
                    {"Name": "InputTokens", "Unit": "Count"},
                    {"Name": "OutputTokens", "Unit": "Count"},
                    {"Name": "CostMicroUsd", "Unit": "None"}
                ]
            }]
        },
        "solution": solution_key(turn.solution),
        "model": turn.model.id,
        "Requests": 1,
        "Errors": u64::from(turn.error.is_some()),
        "Latency": turn.latency_ms,
        "InputTokens": turn.usage.input_tokens,
        "OutputTokens": turn.usage.output_tokens,
        "CostMicroUsd": cost_nano as f64 / 1000.0,
    });
    if let Some(t) = turn.ttft_ms {
        record["TimeToFirstToken"] = json!(t);
    }
    record.to_string()
}

/// Aggregated figures for a group (a solution, a model, a day).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Chat turns.
    pub requests: u64,
    /// Failed turns.
    pub errors: u64,
    /// errors / requests.
    pub error_rate: f64,
    /// Conversations created.
    pub conversations: u64,
    /// Messages sent.
    pub messages: u64,
    /// Distinct active users.
    pub active_users: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost, micro-dollars (nano / 1000, rounded to the nearest).
    pub cost_micro_usd: u64,
    /// Cost, nano-dollars (exact).
    pub cost_nano_usd: u64,
    /// Cost per conversation created, micro-dollars.
    pub cost_per_conversation_micro_usd: Option<u64>,
    /// Latency percentiles (bucket upper bounds, ms).
    pub latency_ms: Percentiles,
    /// Time-to-first-token percentiles (ms).
    pub time_to_first_token_ms: Percentiles,
}

/// p50/p95/p99.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<u64>,
    /// 95th.
    pub p95: Option<u64>,
    /// 99th.
    pub p99: Option<u64>,
}

impl From<&StatsDelta> for Figures {
    fn from(d: &StatsDelta) -> Self {
        let pct = |h: &[u64]| Percentiles {
            p50: percentile(h, 0.50),
            p95: percentile(h, 0.95),
            p99: percentile(h, 0.99),
        };
        Figures {
            requests: d.requests,
            errors: d.errors,
            error_rate: if d.requests == 0 {
                0.0
            } else {
                d.errors as f64 / d.requests as f64
            },
            conversations: d.conversations,
            messages: d.messages,
            active_users: d.users.len() as u64,
            input_tokens: d.input_tokens,
            output_tokens: d.output_tokens,
            cost_micro_usd: (d.cost_nano_usd + 500) / 1000,
            cost_nano_usd: d.cost_nano_usd,
            cost_per_conversation_micro_usd: (d.conversations > 0)
                .then(|| (d.cost_nano_usd / d.conversations + 500) / 1000),
            latency_ms: pct(&d.latency),
            time_to_first_token_ms: pct(&d.ttft),
        }
    }
}

/// The summary the analytics API returns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// First day (inclusive).
    pub from: String,
    /// Last day (inclusive).
    pub to: String,
    /// Everything together.
    pub totals: Figures,
    /// By solution, most conversations first.
    pub by_solution: Vec<Named>,
    /// By model.
    pub by_model: Vec<Named>,
    /// Per day.
    pub daily: Vec<Named>,
    /// By solution and day (for charts of usage over time).
    pub daily_by_solution: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Figures with their group's name.
#[derive(Debug, Serialize)]
pub struct Named {
    /// Solution, model id or day.
    pub name: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// Aggregates counter rows into a summary.
pub fn summarize(from: &str, to: &str, rows: &[StatsRow]) -> Summary {
    let mut totals = StatsDelta::default();
    let mut by_solution: BTreeMap<String, StatsDelta> = BTreeMap::new();
    let mut by_model: BTreeMap<String, StatsDelta> = BTreeMap::new();
    let mut daily: BTreeMap<String, StatsDelta> = BTreeMap::new();
    let mut daily_by_solution: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for row in rows {
        totals.merge(&row.stats);
        by_solution.entry(row.solution.clone()).or_default().merge(&row.stats);
        by_model.entry(row.model.clone()).or_default().merge(&row.stats);
        daily.entry(row.day.clone()).or_default().merge(&row.stats);
        *daily_by_solution
            .entry(row.solution.clone())
            .or_default()
            .entry(row.day.clone())
            .or_default() += row.stats.requests;
    }
    let named = |m: BTreeMap<String, StatsDelta>| -> Vec<Named> {
        m.into_iter()
            .map(|(name, d)| Named {
                name,
                figures: Figures::from(&d),
            })
            .collect()
    };
    let mut solutions = named(by_solution);
    solutions.sort_by(|a, b| {
        (b.figures.conversations, b.figures.requests).cmp(&(a.figures.conversations, a.figures.requests))
    });
    Summary {
        from: from.to_owned(),
        to: to.to_owned(),
        totals: Figures::from(&totals),
        by_solution: solutions,
        by_model: named(by_model),
        daily: named(daily),
        daily_by_solution,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MODELS;

    #[test]
    fn cost_is_exact_in_nano_dollars() {
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cache_read_tokens: 10,
            cache_write_tokens: 4,
        };
        // Sonnet 4.5: 3000 + 15000 + 300 + 3750 nano-dollars per token respectively.
        assert_eq!(
            cost_nano_usd(&MODELS[0], &usage),
            1_000 * 3_000 + 500 * 15_000 + 10 * 300 + 4 * 3_750
        );
    }

    #[test]
    fn percentiles_come_from_bucket_bounds() {
        let mut h = vec![0; BUCKETS_MS.len() + 1];
        for ms in [40, 90, 90, 450, 2_500, 70_000] {
            h[bucket(ms)] += 1;
        }
        assert_eq!(percentile(&h, 0.5), Some(100));
        assert_eq!(percentile(&h, 0.99), Some(60_000));
        assert_eq!(percentile(&[], 0.5), None);
    }
}

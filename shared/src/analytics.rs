//! Usage analytics (seed 001): events, daily counters and CloudWatch metrics.
//!
//! - **Events** (`AnalyticsEvent`): `conversation_created`, `message_sent`, `api_call`,
//!   `model_switched`, `error`, `performance`; user ids hashed, never emails. Kept by TTL.
//! - **Counters** per UTC day × solution × model, updated atomically (DynamoDB `ADD`): requests,
//!   errors, conversations, messages, tokens, cost in nano-dollars (exact integers), fixed
//!   latency and time-to-first-token histograms, and the set of active (hashed) users. A 30-day
//!   dashboard reads 30 partitions, never a scan of events.
//! - **CloudWatch Embedded Metric Format** lines on stdout in Lambda (namespace `Athena`,
//!   dimensions `solution`, `model`; written by [`crate::metrics`]), so alarms and dashboards
//!   need no API calls; hourly, the day's cost against the trailing week ([`cost_growth`]).
//!
//! Recording never fails a request: errors are logged, not returned.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use crate::catalog::ModelInfo;
use crate::domain::{AnalyticsEvent, IdGenerator, Solution, Timestamp, Usage, UserId};
pub use crate::domain::{StatsDelta, StatsRow, BUCKETS_MS};
use crate::metrics::{Emitter, Line, Unit};
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
        ..StatsDelta::default()
    };
    crate::store::StatsUpdate {
        day: turn.at.format("%Y-%m-%d").to_string(),
        solution: solution_key(turn.solution).to_owned(),
        model: turn.model.id.to_owned(),
        delta,
    }
}

/// Writes the turn's CloudWatch EMF line (namespace `Athena`, dimension sets `[solution,
/// model]` and `[solution]`): `Requests`, `Errors`, `Cancelled` (the client stopped the turn or
/// went away before its end: the stream-cancel rate is `Cancelled / Requests`), `Latency`,
/// `TimeToFirstToken` (when a token came), `InputTokens`, `OutputTokens` and `CostMicroUsd` (its
/// daily sum is the cost per day).
pub fn turn_metrics(emitter: &Emitter, turn: &TurnRecord, cancelled: bool) {
    let cost_nano = cost_nano_usd(turn.model, &turn.usage);
    let line = Line::new(turn.at)
        .dimension("solution", solution_key(turn.solution))
        .dimension("model", turn.model.id)
        .directive(&[&["solution", "model"], &["solution"]])
        .metric("Requests", Unit::Count, 1)
        .metric("Errors", Unit::Count, u64::from(turn.error.is_some()))
        .metric("Cancelled", Unit::Count, u64::from(cancelled))
        .metric("Latency", Unit::Milliseconds, turn.latency_ms)
        .metric_if("TimeToFirstToken", Unit::Milliseconds, turn.ttft_ms)
        .metric("InputTokens", Unit::Count, turn.usage.input_tokens)
        .metric("OutputTokens", Unit::Count, turn.usage.output_tokens)
        .metric("CostMicroUsd", Unit::None, cost_nano as f64 / 1000.0);
    emitter.emit(&line);
}

/// Days of history the cost-growth ratio compares today with.
pub const COST_GROWTH_DAYS: u32 = 7;

/// The day's cost against the trailing week, from the daily counters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostGrowth {
    /// `day`'s cost so far, US dollars.
    pub today_usd: f64,
    /// The average daily cost of the [`COST_GROWTH_DAYS`] days before, US dollars.
    pub trailing_daily_usd: f64,
    /// `today_usd / trailing_daily_usd`; `None` while the trailing days cost nothing.
    pub ratio: Option<f64>,
}

/// The cost growth of `day` (`YYYY-MM-DD`) from counter rows covering it and the
/// [`COST_GROWTH_DAYS`] days before (rows of other days are ignored). Days without a row cost
/// nothing: a deployment younger than a week has a low average, hence a high ratio.
pub fn cost_growth_of(rows: &[StatsRow], day: &str) -> Option<CostGrowth> {
    let today = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let first = today - chrono::Days::new(u64::from(COST_GROWTH_DAYS));
    let (mut today_nano, mut trailing_nano) = (0_u64, 0_u64);
    for row in rows {
        match chrono::NaiveDate::parse_from_str(&row.day, "%Y-%m-%d") {
            Ok(d) if d == today => today_nano += row.stats.cost_nano_usd,
            Ok(d) if d >= first && d < today => trailing_nano += row.stats.cost_nano_usd,
            _ => {}
        }
    }
    let today_usd = today_nano as f64 / 1e9;
    let trailing_daily_usd = trailing_nano as f64 / 1e9 / f64::from(COST_GROWTH_DAYS);
    Some(CostGrowth {
        today_usd,
        trailing_daily_usd,
        ratio: (trailing_nano > 0).then(|| today_usd / trailing_daily_usd),
    })
}

/// Hourly (the housekeeping): reads today's counters and the week's before (one Query per day)
/// and writes `CostTodayUsd`, `CostTrailingDailyUsd` and, once the week cost anything,
/// `CostGrowthRatio` (the alarm `CostGrowthAlarm` watches it). Today's cost is the day so far,
/// so the ratio only grows through the day: it crosses its threshold as soon as the day has
/// spent that many typical days. Never fails: errors are logged.
pub async fn cost_growth(state: &crate::state::AppState) -> Option<CostGrowth> {
    let now = state.now();
    let day = now.format("%Y-%m-%d").to_string();
    let first = (now - chrono::Duration::days(i64::from(COST_GROWTH_DAYS)))
        .format("%Y-%m-%d")
        .to_string();
    let rows = match state.store.stats_between(&first, &day).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading the cost counters failed");
            return None;
        }
    };
    let growth = cost_growth_of(&rows, &day)?;
    let line = Line::new(now)
        .metric("CostTodayUsd", Unit::None, growth.today_usd)
        .metric("CostTrailingDailyUsd", Unit::None, growth.trailing_daily_usd)
        .metric_if("CostGrowthRatio", Unit::None, growth.ratio);
    state.metrics.emit(&line);
    Some(growth)
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
    /// Thumbs-up reactions standing (given minus withdrawn).
    pub thumbs_up: u64,
    /// Thumbs-down reactions standing.
    pub thumbs_down: u64,
    /// `thumbs_down / (thumbs_up + thumbs_down)`; `None` without any reaction.
    pub thumbs_down_rate: Option<f64>,
}

/// Standing thumbs of a counter total: a net count below zero (a reaction given before the range
/// and withdrawn in it) counts as none.
fn thumbs(d: &StatsDelta) -> (u64, u64, Option<f64>) {
    let up = u64::try_from(d.thumbs_up).unwrap_or(0);
    let down = u64::try_from(d.thumbs_down).unwrap_or(0);
    let rate = (up + down > 0).then(|| down as f64 / (up + down) as f64);
    (up, down, rate)
}

/// Reactions to one model's replies in one solution (the dashboard's feedback table).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackFigures {
    /// Solution bucket (`general` or a solution).
    pub solution: String,
    /// Model id.
    pub model: String,
    /// Thumbs up standing.
    pub thumbs_up: u64,
    /// Thumbs down standing.
    pub thumbs_down: u64,
    /// `thumbs_down / (thumbs_up + thumbs_down)`; `None` without any reaction.
    pub thumbs_down_rate: Option<f64>,
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
            thumbs_up: thumbs(d).0,
            thumbs_down: thumbs(d).1,
            thumbs_down_rate: thumbs(d).2,
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
    /// Reactions by solution and model (pairs with at least one reaction standing), highest
    /// thumbs-down rate first.
    pub feedback: Vec<FeedbackFigures>,
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
    let mut by_pair: BTreeMap<(String, String), StatsDelta> = BTreeMap::new();
    for row in rows {
        totals.merge(&row.stats);
        if row.stats.thumbs_up != 0 || row.stats.thumbs_down != 0 {
            by_pair
                .entry((row.solution.clone(), row.model.clone()))
                .or_default()
                .merge(&row.stats);
        }
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
        feedback: feedback_of(by_pair),
    }
}

fn feedback_of(by_pair: BTreeMap<(String, String), StatsDelta>) -> Vec<FeedbackFigures> {
    let mut feedback: Vec<FeedbackFigures> = by_pair
        .into_iter()
        .filter_map(|((solution, model), d)| {
            let (thumbs_up, thumbs_down, thumbs_down_rate) = thumbs(&d);
            thumbs_down_rate.map(|_| FeedbackFigures {
                solution,
                model,
                thumbs_up,
                thumbs_down,
                thumbs_down_rate,
            })
        })
        .collect();
    feedback.sort_by(|a, b| {
        b.thumbs_down_rate
            .partial_cmp(&a.thumbs_down_rate)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| (&a.solution, &a.model).cmp(&(&b.solution, &b.model)))
    });
    feedback
}

/// The counters one reaction change adds: `previous` withdrawn, `now` given (either may be
/// absent), on the row of `day` × the message's solution × model. `None` when nothing changes.
pub fn reaction_stats(
    day: &str,
    solution: &str,
    model: &str,
    previous: Option<crate::store::Thumb>,
    now: Option<crate::store::Thumb>,
) -> Option<crate::store::StatsUpdate> {
    use crate::store::Thumb;
    if previous == now {
        return None;
    }
    let mut delta = StatsDelta::default();
    let mut count = |thumb: Thumb, by: i64| match thumb {
        Thumb::Up => delta.thumbs_up += by,
        Thumb::Down => delta.thumbs_down += by,
    };
    if let Some(p) = previous {
        count(p, -1);
    }
    if let Some(n) = now {
        count(n, 1);
    }
    Some(crate::store::StatsUpdate {
        day: day.to_owned(),
        solution: solution.to_owned(),
        model: model.to_owned(),
        delta,
    })
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

    fn turn(ttft_ms: Option<u64>, error: Option<&str>) -> TurnRecord {
        TurnRecord {
            solution: None,
            user: UserId::parse("user-1").unwrap_or_else(|_| unreachable!()),
            conversation_id: "c".to_owned(),
            model: &MODELS[0],
            fell_back_from: None,
            usage: Usage {
                input_tokens: 1_000,
                output_tokens: 10,
                ..Usage::default()
            },
            latency_ms: 1_234,
            ttft_ms,
            error: error.map(str::to_owned),
            created_conversation: false,
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        }
    }

    fn turn_line(turn: &TurnRecord, cancelled: bool) -> serde_json::Value {
        let emitter = Emitter::capture();
        turn_metrics(&emitter, turn, cancelled);
        let lines = emitter.captured();
        assert_eq!(lines.len(), 1);
        lines.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn a_turn_line_is_valid_emf_with_its_cost_and_whether_it_was_cancelled() {
        let line = turn_line(&turn(Some(200), None), true);
        let directives = crate::metrics::tests::valid(&line);
        assert_eq!(directives.len(), 1);
        let (sets, names) = &directives[0];
        assert_eq!(
            sets,
            &[
                vec!["solution".to_owned(), "model".to_owned()],
                vec!["solution".to_owned()]
            ]
        );
        assert_eq!(
            names,
            &[
                "Requests",
                "Errors",
                "Cancelled",
                "Latency",
                "TimeToFirstToken",
                "InputTokens",
                "OutputTokens",
                "CostMicroUsd"
            ]
        );
        assert_eq!(
            (line["solution"].as_str(), line["model"].as_str()),
            (Some("general"), Some(MODELS[0].id))
        );
        assert_eq!(
            (&line["Requests"], &line["Errors"], &line["Cancelled"]),
            (&json!(1), &json!(0), &json!(1))
        );
        assert_eq!(
            (&line["Latency"], &line["TimeToFirstToken"]),
            (&json!(1_234), &json!(200))
        );
        // Sonnet 4.5: 1,000 input tokens at 3,000 and 10 output tokens at 15,000 nano-dollars.
        assert_eq!(line["CostMicroUsd"].as_f64(), Some(3_150.0));
    }

    #[test]
    fn a_failed_turn_without_a_token_counts_an_error_and_names_no_time_to_first_token() {
        let line = turn_line(&turn(None, Some("PROVIDER")), false);
        let (_, names) = &crate::metrics::tests::valid(&line)[0];
        assert!(!names.iter().any(|n| n == "TimeToFirstToken"), "{names:?}");
        assert_eq!((&line["Errors"], &line["Cancelled"]), (&json!(1), &json!(0)));
    }

    fn cost_row(day: &str, model: &str, cost_nano_usd: u64) -> StatsRow {
        StatsRow {
            day: day.to_owned(),
            solution: "general".to_owned(),
            model: model.to_owned(),
            stats: StatsDelta {
                cost_nano_usd,
                ..StatsDelta::default()
            },
        }
    }

    #[test]
    fn cost_growth_is_the_day_over_the_average_of_the_seven_days_before() {
        let dollar = 1_000_000_000;
        let mut rows: Vec<StatsRow> = (1..=7)
            .map(|d| cost_row(&format!("2026-11-{:02}", 22 + d), "a", 2 * dollar))
            .collect();
        rows.push(cost_row("2026-11-30", "a", 5 * dollar));
        rows.push(cost_row("2026-11-30", "b", dollar));
        // Outside the window: ignored.
        rows.push(cost_row("2026-11-22", "a", 100 * dollar));
        let growth = cost_growth_of(&rows, "2026-11-30");
        assert_eq!(
            growth,
            Some(CostGrowth {
                today_usd: 6.0,
                trailing_daily_usd: 2.0,
                ratio: Some(3.0),
            })
        );
    }

    #[test]
    fn cost_growth_has_no_ratio_without_a_baseline() {
        let rows = [cost_row("2026-11-30", "a", 1_000)];
        let growth = cost_growth_of(&rows, "2026-11-30");
        assert_eq!(growth.map(|g| g.ratio), Some(None));
        assert_eq!(cost_growth_of(&rows, "not a day"), None);
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

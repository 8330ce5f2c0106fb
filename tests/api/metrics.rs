//! The operator's EMF metrics (docs/operations.md), captured from the real routes: every
//! response counts in `ApiRequests`, an error in `ApiErrors` by its code, a failed
//! authentication in `AuthFailures`, a request a limit refused in `Refusals` by its code, a chat
//! turn stopped by its client in `Cancelled`; the housekeeping's `CostGrowthRatio` from the
//! stored daily counters. On both stores.

use std::sync::Arc;
use std::time::Duration;

use athena_tests::{mid_minute, open_chat, spawn_state, tokens, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use shared::api::AppState;
use shared::chat::ChatConfig;
use shared::config::Config;
use shared::domain::{ManualClock, StatsDelta};
use shared::metrics::Emitter;
use shared::store::Store;

/// A gateway with the chat routes (scripted model) whose EMF lines are captured; its clock
/// stands still 15 s into a minute when `still` (all requests in one rate-limit window).
async fn measured_app(store: Arc<dyn Store>, config: Config, still: bool) -> (TestApp, Emitter) {
    let metrics = Emitter::capture();
    let mut state = AppState::new(config, Arc::clone(&store))
        .with_chat(Arc::new(shared::llm::scripted::ScriptedModel), ChatConfig::default())
        .with_metrics(metrics.clone());
    if still {
        state = state.with_clock(Arc::new(ManualClock::new(mid_minute())));
    }
    (spawn_state(state, store).await, metrics)
}

/// The sum of `metric` over the captured lines, of those with dimension `code` = `code` when
/// given.
fn total(metrics: &Emitter, metric: &str, code: Option<&str>) -> u64 {
    metrics
        .captured()
        .iter()
        .filter(|line| code.is_none_or(|c| line["code"] == c))
        .filter_map(|line| line[metric].as_u64())
        .sum()
}

/// Each captured line's metric names, checked to be declared under `_aws` (valid EMF).
fn declared(line: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for directive in line["_aws"]["CloudWatchMetrics"].as_array().expect("directives") {
        assert_eq!(directive["Namespace"], "Athena", "{line}");
        for set in directive["Dimensions"].as_array().expect("dimension sets") {
            for key in set.as_array().expect("a dimension set") {
                assert!(line[key.as_str().expect("a key")].is_string(), "{line}");
            }
        }
        for metric in directive["Metrics"].as_array().expect("metrics") {
            let name = metric["Name"].as_str().expect("name");
            assert!(line[name].is_number(), "{name} without a value: {line}");
            names.push(name.to_owned());
        }
    }
    names
}

fn user_message(id: &str, text: &str) -> Value {
    json!({"id": id, "messages": [{"role": "user", "content": text}]})
}

async fn errors_count_by_code_and_limits_count_as_refusals(store: Arc<dyn Store>) {
    let mut config = Config::local();
    config.rate_limit_per_minute = 3;
    let (app, metrics) = measured_app(store, config, true).await;
    assert_eq!(app.call("GET", "/api/conversations", None).await.status, 200);
    assert_eq!(
        (total(&metrics, "ApiRequests", None), total(&metrics, "ApiErrors", None)),
        (1, 0),
        "a success counts as a request only"
    );
    let missing = app.call("GET", "/api/conversations/no-such-one", None).await;
    assert_eq!(missing.code(), "NOT_FOUND");
    assert_eq!(total(&metrics, "ApiErrors", Some("NOT_FOUND")), 1);
    assert_eq!(total(&metrics, "Refusals", None), 0, "a 404 is no refusal");
    // The third request of the minute is admitted; the next two are refused.
    assert_eq!(app.call("GET", "/api/conversations", None).await.status, 200);
    for _ in 0..2 {
        assert_eq!(app.call("GET", "/api/conversations", None).await.code(), "RATE_LIMIT");
    }
    assert_eq!(total(&metrics, "ApiRequests", None), 5);
    assert_eq!(total(&metrics, "ApiErrors", Some("RATE_LIMIT")), 2);
    assert_eq!(total(&metrics, "Refusals", Some("RATE_LIMIT")), 2);
    assert_eq!(total(&metrics, "Refusals", None), 2);
    assert_eq!(total(&metrics, "AuthFailures", None), 0);
    for line in metrics.captured() {
        let names = declared(&line);
        assert!(names.iter().any(|n| n == "ApiRequests" || n == "Refusals"), "{line}");
        if line.get("Refusals").is_some() {
            assert_eq!(line["plan"], "default", "the caller's plan: {line}");
        }
    }
}

async fn a_spent_budget_and_the_stream_cap_count_as_refusals_and_a_stopped_turn_as_cancelled(store: Arc<dyn Store>) {
    let mut config = Config::local();
    config.max_concurrent_streams = 1;
    let (app, metrics) = measured_app(Arc::clone(&store), config, false).await;
    let mut body = Box::pin(open_chat(&app, "/api/chat", user_message("long-one", "#deltas:400 #delay:20")).await);
    body.next().await.expect("a first byte").expect("chunk");
    let capped = app
        .call("POST", "/api/chat", Some(user_message("second", "#deltas:1")))
        .await;
    assert_eq!(capped.code(), "RATE_LIMIT", "{}", capped.text);
    assert_eq!(total(&metrics, "Refusals", Some("TOO_MANY_STREAMS")), 1);
    assert_eq!(total(&metrics, "Refusals", Some("RATE_LIMIT")), 0);
    assert_eq!(
        total(&metrics, "ApiErrors", Some("RATE_LIMIT")),
        1,
        "the response's code"
    );
    // The client stops its turn: the turn's line counts it cancelled.
    let stop = app.call("POST", "/api/chat/long-one/stop", None).await;
    assert_eq!(stop.status, 202, "{}", stop.text);
    while let Some(piece) = body.next().await {
        piece.expect("chunk");
    }
    let mut turn = None;
    for _ in 0..100 {
        turn = metrics.captured().into_iter().find(|l| l.get("Cancelled").is_some());
        if turn.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let turn = turn.expect("the stopped turn's line");
    assert!(declared(&turn).iter().any(|n| n == "Cancelled"), "{turn}");
    assert_eq!(
        (&turn["Requests"], &turn["Cancelled"]),
        (&json!(1), &json!(1)),
        "{turn}"
    );

    // A budget too small for any turn refuses the next one.
    let mut config = Config::local();
    config.token_budget_day = 1;
    let (tight, metrics) = measured_app(store, config, false).await;
    let refused = tight
        .call("POST", "/api/chat", Some(user_message("budget", "hello")))
        .await;
    assert_eq!(refused.code(), "BUDGET", "{}", refused.text);
    assert_eq!(total(&metrics, "Refusals", Some("BUDGET")), 1);
    assert_eq!(total(&metrics, "ApiErrors", Some("BUDGET")), 1);
    assert!(
        !metrics.captured().iter().any(|l| l.get("Cancelled").is_some()),
        "a refused turn writes no turn line"
    );
}

async fn the_housekeeping_measures_the_days_cost_against_the_trailing_week(store: Arc<dyn Store>) {
    let day = |d: i64| {
        (mid_minute() - chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let cost = |usd: u64| StatsDelta {
        requests: 1,
        cost_nano_usd: usd * 1_000_000_000,
        ..StatsDelta::default()
    };
    // Two dollars a day for the week before, one day older (not counted), and today.
    let mut rows: Vec<(i64, &str, u64)> = (1..=7).map(|d| (d, "general", 2)).collect();
    rows.extend([(8, "general", 1_000), (0, "general", 5), (0, "support", 3)]);
    for (d, solution, usd) in rows {
        store
            .add_stats(&day(d), solution, "m", &cost(usd))
            .await
            .expect("counters");
    }
    let metrics = Emitter::capture();
    let state = AppState::new(Config::local(), Arc::clone(&store))
        .with_clock(Arc::new(ManualClock::new(mid_minute())))
        .with_metrics(metrics.clone());
    let growth = shared::analytics::cost_growth(&state).await.expect("measured");
    assert_eq!(growth.ratio, Some(4.0), "{growth:?}");
    let lines = metrics.captured();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(
        declared(line),
        ["CostTodayUsd", "CostTrailingDailyUsd", "CostGrowthRatio"],
        "{line}"
    );
    assert_eq!(
        (
            line["CostTodayUsd"].as_f64(),
            line["CostTrailingDailyUsd"].as_f64(),
            line["CostGrowthRatio"].as_f64()
        ),
        (Some(8.0), Some(2.0), Some(4.0))
    );
    assert_eq!(line["_aws"]["Timestamp"], mid_minute().timestamp_millis());
}

athena_tests::on_both_stores!([
    errors_count_by_code_and_limits_count_as_refusals,
    a_spent_budget_and_the_stream_cap_count_as_refusals_and_a_stopped_turn_as_cancelled,
    the_housekeeping_measures_the_days_cost_against_the_trailing_week,
]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_authentication_counts_as_an_auth_failure() {
    let store: Arc<dyn Store> = Arc::new(athena_tests::embedded_store());
    let (app, metrics) = measured_app(store, tokens::jwt_config(tokens::verifier()), false).await;
    assert_eq!(app.call("GET", "/api/conversations", None).await.status, 401);
    let forged = tokens::with_bearer(&app, "not-a-token", "GET", "/api/conversations", None).await;
    assert_eq!(forged.status, 401);
    assert_eq!(total(&metrics, "AuthFailures", None), 2);
    assert_eq!(total(&metrics, "ApiErrors", Some("AUTH")), 2);
    let ok = tokens::as_user(&app, "alice-0001", "GET", "/api/conversations", None).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        (
            total(&metrics, "AuthFailures", None),
            total(&metrics, "ApiRequests", None)
        ),
        (2, 3)
    );
}

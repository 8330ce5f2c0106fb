//! Analytics: a scripted workload across all seven chat routes with known token counts yields
//! exactly the expected counts, costs (to the nano-dollar) and error rates in the summary, on both
//! stores; the dashboard renders those figures in a real headless browser; analytics failures
//! never fail the chat.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use athena_tests::{embedded_store, local_user, post_chat, spawn_chat_app, tokens, TestApp};
use serde_json::{json, Value};
use shared::analytics::{StatsDelta, StatsRow};
use shared::catalog::MODELS;
use shared::chat::ChatConfig;
use shared::config::Config;
use shared::domain::{AnalyticsEvent, ConversationId, Role, UserId};
use shared::error::StoreError;
use shared::store::{Activity, Page, Stats, Store, StoreParts, Turns};

const ROUTES: [(&str, &str); 7] = [
    ("/api/chat", "general"),
    ("/api/chat/manufacturing", "manufacturing"),
    ("/api/chat/maintenance", "maintenance"),
    ("/api/chat/support", "support"),
    ("/api/chat/change-management", "change-management"),
    ("/api/chat/impact-analysis", "impact-analysis"),
    ("/api/chat/requirements", "requirements"),
];

async fn turn(app: &TestApp, path: &str, id: &str, model: &str, text: &str) {
    let body = json!({"id": id, "model": model, "messages": [{"role": "user", "content": text}]});
    let (status, _, _) = post_chat(app, path, body).await;
    assert_eq!(status, 200);
}

/// Expected figures per solution, computed from what the store holds and the catalog's prices
/// (not through the code under test's cost function).
#[derive(Default, Debug, PartialEq)]
struct Expected {
    requests: u64,
    errors: u64,
    conversations: u64,
    input: u64,
    output: u64,
    cost_nano: u64,
}

async fn run_workload(store: Arc<dyn Store>) -> (TestApp, BTreeMap<String, Expected>) {
    let app = spawn_chat_app(store, Config::local(), ChatConfig::default()).await;
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for (i, (path, solution)) in ROUTES.iter().enumerate() {
        // Per route: i+1 conversations; each gets one or two turns; every third turn fails.
        for c in 0..=i {
            let id = format!("wl-{solution}-{c}");
            let model = &MODELS[(i + c) % 2];
            let turns = 1 + (c % 2);
            for t in 0..turns {
                let n = 3 + i + c + t;
                let failing = (i + c + t) % 3 == 0;
                let text = if failing {
                    format!("turn {t} #deltas:{n} #fail-after:2")
                } else {
                    format!("turn {t} #deltas:{n}")
                };
                turn(&app, path, &id, model.id, &text).await;
                let e = expected.entry((*solution).to_owned()).or_default();
                e.requests += 1;
                e.errors += u64::from(failing);
                e.conversations += u64::from(t == 0);
            }
            // Input tokens as the stored replies report them (failed turns report none).
            let messages = app.stored(&id).await;
            let e = expected.entry((*solution).to_owned()).or_default();
            for m in messages.iter().filter(|m| m.role == Role::Assistant) {
                let usage = m.usage.expect("usage");
                e.input += usage.input_tokens;
                e.output += usage.output_tokens;
                let model = MODELS.iter().find(|x| Some(x.id) == m.model.as_deref()).expect("model");
                e.cost_nano += usage.input_tokens * model.input_micro_usd_per_mtok / 1000
                    + usage.output_tokens * model.output_micro_usd_per_mtok / 1000;
            }
        }
    }
    (app, expected)
}

async fn the_summary_shows_exactly_the_workload(store: Arc<dyn Store>) {
    let (app, expected) = run_workload(store).await;
    let summary = app.call("GET", "/api/analytics/summary", None).await;
    assert_eq!(summary.status, 200, "{}", summary.text);
    let by_solution: BTreeMap<String, &Value> = summary.json["bySolution"]
        .as_array()
        .expect("bySolution")
        .iter()
        .map(|s| (s["name"].as_str().unwrap_or_default().to_owned(), s))
        .collect();
    assert_eq!(by_solution.len(), 7);
    let mut total = Expected::default();
    for (solution, e) in &expected {
        let s = by_solution[solution];
        assert_eq!(s["requests"], e.requests, "{solution}");
        assert_eq!(s["errors"], e.errors, "{solution}");
        assert_eq!(s["conversations"], e.conversations, "{solution}");
        assert_eq!(s["inputTokens"], e.input, "{solution}");
        assert_eq!(s["outputTokens"], e.output, "{solution}");
        assert_eq!(s["costNanoUsd"], e.cost_nano, "{solution}");
        assert_eq!(s["costMicroUsd"], (e.cost_nano + 500) / 1000, "{solution}");
        assert_eq!(s["activeUsers"], 1);
        let rate = s["errorRate"].as_f64().expect("rate");
        assert!((rate - e.errors as f64 / e.requests as f64).abs() < 1e-12, "{solution}");
        assert!(s["latencyMs"]["p50"].as_u64().is_some());
        total.requests += e.requests;
        total.errors += e.errors;
        total.cost_nano += e.cost_nano;
        total.conversations += e.conversations;
    }
    // Most popular first (by conversations created).
    assert_eq!(summary.json["bySolution"][0]["name"], "requirements");
    assert_eq!(summary.json["totals"]["requests"], total.requests);
    assert_eq!(summary.json["totals"]["errors"], total.errors);
    assert_eq!(summary.json["totals"]["costNanoUsd"], total.cost_nano);
    assert_eq!(summary.json["totals"]["conversations"], total.conversations);
    let models: u64 = summary.json["byModel"]
        .as_array()
        .expect("byModel")
        .iter()
        .map(|m| m["requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(models, total.requests);
    // Filters.
    let one = app
        .call("GET", "/api/analytics/summary?solutionType=support", None)
        .await;
    assert_eq!(one.json["totals"]["requests"], expected["support"].requests);
    let bad = app
        .call("GET", "/api/analytics/summary?from=2026-01-01&to=2025-01-01", None)
        .await;
    assert_eq!(bad.status, 400);
    // Events were recorded too, with hashed users only.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let events = app.store.events_of_day(&today).await.expect("events");
    let api_calls = events.iter().filter(|e| e.event_type == "api_call").count() as u64;
    assert_eq!(api_calls, total.requests);
    assert_eq!(
        events.iter().filter(|e| e.event_type == "conversation_created").count() as u64,
        total.conversations
    );
    assert!(events.iter().all(|e| e.user_id.as_deref() != Some("local-user")));
}

athena_tests::on_both_stores!([the_summary_shows_exactly_the_workload]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_are_for_admins_only() {
    use shared::config::AuthMode;
    let mut config = Config::local();
    config.auth = AuthMode::None {
        user: UserId::parse("not-an-admin").expect("user"),
    };
    // AuthMode::None makes the single local user an admin; a JWT caller without the claim is not.
    let app = spawn_chat_app(Arc::new(embedded_store()), config, ChatConfig::default()).await;
    let ok = app.call("GET", "/api/analytics/summary", None).await;
    assert_eq!(ok.status, 200);
    let jwt = tokens::jwt_config(tokens::verifier());
    let app = spawn_chat_app(Arc::new(embedded_store()), jwt, ChatConfig::default()).await;
    let claims = |groups: Value| {
        let mut c = tokens::claims("u1");
        c["cognito:groups"] = groups;
        tokens::hs256(&c, tokens::SECRET)
    };
    let url = format!("{}/api/analytics/summary", app.base);
    let user = app
        .send(app.client.get(&url).bearer_auth(claims(json!(["staff"]))))
        .await;
    assert_eq!((user.status, user.code()), (403, "FORBIDDEN"));
    let admin = app
        .send(app.client.get(&url).bearer_auth(claims(json!(["staff", "admin"]))))
        .await;
    assert_eq!(admin.status, 200);
}

/// Analytics writes always fail (events, audit, the daily counters) and a turn ends without its
/// counters (as the stores write it when the counters fail); every other capability is the
/// embedded store's. Three capabilities are replaced, nothing else is written out.
struct BrokenAnalytics(Arc<dyn Store>);

fn down() -> StoreError {
    StoreError::Unavailable("analytics store down".into())
}

#[async_trait]
impl Activity for BrokenAnalytics {
    async fn record_events(&self, _: &[AnalyticsEvent]) -> Result<(), StoreError> {
        Err(down())
    }
    async fn record_activity(&self, _: &[AnalyticsEvent], _: &[shared::domain::AuditEntry]) -> Result<(), StoreError> {
        Err(down())
    }
    async fn events_of_day(&self, _: &str) -> Result<Vec<AnalyticsEvent>, StoreError> {
        Err(down())
    }
    async fn list_audit(
        &self,
        u: &UserId,
        l: Option<u32>,
        c: Option<&str>,
    ) -> Result<Page<shared::domain::AuditEntry>, StoreError> {
        self.0.list_audit(u, l, c).await
    }
}

#[async_trait]
impl Stats for BrokenAnalytics {
    async fn add_stats(&self, _: &str, _: &str, _: &str, _: &StatsDelta) -> Result<(), StoreError> {
        Err(down())
    }
    async fn stats_between(&self, _: &str, _: &str) -> Result<Vec<StatsRow>, StoreError> {
        Err(down())
    }
    async fn stats_imported(&self, _: &str) -> Result<bool, StoreError> {
        Err(down())
    }
    async fn import_stats(&self, _: &str, _: &[shared::store::StatsUpdate]) -> Result<bool, StoreError> {
        Err(down())
    }
}

#[async_trait]
impl Turns for BrokenAnalytics {
    async fn begin_turn(&self, start: &shared::store::TurnStart) -> Result<shared::store::TurnBegun, StoreError> {
        self.0.begin_turn(start).await
    }
    async fn finish_turn(&self, finish: &shared::store::TurnFinish) -> Result<(), StoreError> {
        // The counters fail: the stores then write the rest without them (as DynamoDB's does).
        let without_stats = shared::store::TurnFinish {
            stats: None,
            ..finish.clone()
        };
        self.0.finish_turn(&without_stats).await
    }
    async fn release_slot(&self, owner: &UserId, lease: &shared::store::StreamLease) -> Result<(), StoreError> {
        self.0.release_slot(owner, lease).await
    }
}

fn broken_analytics(inner: Arc<dyn Store>) -> Arc<dyn Store> {
    let broken = Arc::new(BrokenAnalytics(Arc::clone(&inner)));
    Arc::new(
        StoreParts::of(inner)
            .with_activity(broken.clone())
            .with_stats(broken.clone())
            .with_turns(broken),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_failures_never_fail_the_chat() {
    let store: Arc<dyn Store> = broken_analytics(Arc::new(embedded_store()));
    let app = spawn_chat_app(Arc::clone(&store), Config::local(), ChatConfig::default()).await;
    let res = app
        .client
        .post(format!("{}/api/chat/support", app.base))
        .json(&json!({"id": "still-works", "messages": [{"role": "user", "content": "#deltas:3"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    let body = res.text().await.expect("body");
    assert!(
        body.contains("\"finish\"") && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );
    let created = app
        .call("POST", "/api/conversations", Some(json!({"title": "x"})))
        .await;
    assert_eq!(created.status, 201);
    let user = local_user();
    let (_, messages) = store
        .get_conversation_with_messages(&user, &ConversationId::parse("still-works").expect("id"))
        .await
        .expect("stored");
    assert_eq!(messages.len(), 2);
    let summary = app.call("GET", "/api/analytics/summary", None).await;
    assert_eq!(
        summary.status, 503,
        "reading analytics from a broken store is a clear 503"
    );
}

/// Where Debian's Chromium is, if installed (CI installs it; see scripts/tools.sh).
fn chromium() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// The page at `url` as headless Chromium renders it (scripts run, 10 s of virtual time).
async fn rendered_dom(url: String) -> String {
    let Some(browser) = chromium() else {
        panic!("Chromium is not installed: run scripts/tools.sh (apt-get install chromium)");
    };
    let profile = std::env::temp_dir().join(format!("athena-chromium-{}", ulid::Ulid::new()));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .output()
    })
    .await
    .expect("join")
    .expect("chromium runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of the element with `data-testid="testid"` in a dumped DOM.
fn testid_text(dom: &str, testid: &str) -> String {
    let marker = format!("data-testid=\"{testid}\">");
    let start = dom.find(&marker).map(|i| i + marker.len()).unwrap_or(0);
    dom[start..].split('<').next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_page_shows_what_get_api_usage_returns_in_a_real_browser() {
    let mut config = Config::local();
    config.token_budget_day = 50_000;
    let app = spawn_chat_app(Arc::new(embedded_store()), config, ChatConfig::default()).await;
    for (id, path) in [("mine-1", "/api/chat"), ("mine-2", "/api/chat/support")] {
        let (status, _, body) = post_chat(
            &app,
            path,
            json!({"id": id, "model": MODELS[1].id, "messages": [{"role": "user", "content": "#deltas:5 hi"}]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let usage = app.call("GET", "/api/usage", None).await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    let month = &usage.json["month"]["usage"];
    assert_eq!(month["requests"], 2);
    let dom = rendered_dom(format!("{}/dashboard", app.base)).await;
    assert!(
        dom.contains("id=\"mine\" aria-labelledby=\"mine-title\" data-loaded=\"true\"")
            || dom.contains("data-loaded=\"true\" id=\"mine\""),
        "the usage section did not load: {dom}"
    );
    assert_eq!(
        testid_text(&dom, "usage-plan"),
        usage.json["plan"]["name"].as_str().expect("plan")
    );
    assert_eq!(testid_text(&dom, "usage-month-tokens"), month["tokens"].to_string());
    assert_eq!(
        testid_text(&dom, "usage-today-tokens"),
        usage.json["today"]["usage"]["tokens"].to_string()
    );
    assert_eq!(testid_text(&dom, "usage-month-requests"), "2");
    let cost = month["costUsd"].as_f64().expect("cost");
    let shown = if cost < 0.01 {
        format!("${cost:.6}")
    } else {
        format!("${cost:.2}")
    };
    assert_eq!(testid_text(&dom, "usage-month-cost"), shown);
    let left = usage.json["budgets"]["tokensToday"]["remaining"]
        .as_u64()
        .expect("day budget on");
    assert!(
        testid_text(&dom, "usage-day-left").starts_with(&format!("{left} left, renews ")),
        "{}",
        testid_text(&dom, "usage-day-left")
    );
    assert_eq!(
        testid_text(&dom, "usage-usd-left"),
        "no limit",
        "the default plan has no dollar budget"
    );
    // One row per model and per solution used this month.
    assert_eq!(dom.matches("data-usage=\"solution ").count(), 2, "general and support");
    assert_eq!(dom.matches("data-usage=\"model ").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_the_workloads_figures_in_a_real_browser() {
    let (app, expected) = run_workload(Arc::new(embedded_store())).await;
    // Reactions to some replies: the feedback table shows the summary's thumbs-down rates.
    for (id, value) in [
        ("wl-maintenance-0", "down"),
        ("wl-maintenance-1", "up"),
        ("wl-support-0", "down"),
        ("wl-support-1", "up"),
        ("wl-support-2", "up"),
    ] {
        for m in app.stored(id).await.iter().filter(|m| m.role == Role::Assistant) {
            let path = format!("/api/conversations/{id}/messages/{}/reaction", m.id);
            let r = app.call("PUT", &path, Some(json!({"value": value}))).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    }
    let summary = app.call("GET", "/api/analytics/summary", None).await;
    let feedback = summary.json["feedback"].as_array().cloned().unwrap_or_default();
    assert!(feedback.len() >= 2, "{}", summary.text);
    let requests: u64 = expected.values().map(|e| e.requests).sum();
    let conversations: u64 = expected.values().map(|e| e.conversations).sum();
    let cost_nano: u64 = expected.values().map(|e| e.cost_nano).sum();
    let url = format!("{}/dashboard", app.base);
    let dom = rendered_dom(url).await;
    assert!(
        dom.contains("<body data-loaded=\"true\">"),
        "the page did not load its data: {dom}"
    );
    let value = |testid: &str| testid_text(&dom, testid);
    assert_eq!(value("total-requests"), requests.to_string());
    assert_eq!(value("total-conversations"), conversations.to_string());
    let micro = (cost_nano + 500) / 1000;
    let shown = value("total-cost");
    let expected_cost = if micro < 10_000 {
        format!("${:.6}", micro as f64 / 1e6)
    } else {
        format!("${:.2}", micro as f64 / 1e6)
    };
    assert_eq!(shown, expected_cost);
    let errors: u64 = expected.values().map(|e| e.errors).sum();
    assert_eq!(
        value("total-error-rate"),
        format!("{:.1}%", errors as f64 / requests as f64 * 100.0)
    );
    // One feedback row per solution and model with reactions, as the summary has it.
    assert_eq!(dom.matches("data-feedback=").count(), feedback.len());
    for f in &feedback {
        let key = format!(
            "{}/{}",
            f["solution"].as_str().unwrap_or_default(),
            f["model"].as_str().unwrap_or_default()
        );
        let rate = f["thumbsDownRate"].as_f64().expect("rate");
        assert_eq!(value(&format!("feedback-up-{key}")), f["thumbsUp"].to_string());
        assert_eq!(value(&format!("feedback-down-{key}")), f["thumbsDown"].to_string());
        assert_eq!(value(&format!("feedback-rate-{key}")), format!("{:.1}%", rate * 100.0));
    }
    // One table row per solution, and the charts were drawn.
    assert_eq!(dom.matches("data-solution=").count(), 7);
    assert!(dom.matches("<polyline").count() >= 7, "one usage line per solution");
    assert!(dom.matches("<rect").count() >= 20, "bars for cost, latency and errors");
}

//! Plans, dollar budgets, the spend cap, the kill switch, the soft limit and `GET /api/usage`
//! over real HTTP (scripted model, bearer tokens), on both stores.

use std::sync::Arc;

use athena_tests::tokens::{claims, hs256, jwt_config, token, verifier, with_bearer, SECRET};
use athena_tests::{parse_sse, spawn_chat_app, unique, Reply, TestApp};
use serde_json::{json, Value};
use shared::catalog::Catalog;
use shared::chat::ChatConfig;
use shared::config::plans::{parse, Inherited};
use shared::config::Config;
use shared::domain::UserId;
use shared::store::Store;

const HAIKU: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// A JWT configuration with `plans` (JSON of `ATHENA_PLANS`), `default` the default plan and
/// `admin-1` an administrator.
fn with_plans(plans: &str, default: &str) -> Config {
    let mut config = jwt_config(verifier());
    let catalog = Catalog::all();
    config.plans = parse(
        plans,
        Some(default),
        Inherited {
            tokens_per_day: 0,
            tokens_per_month: 0,
            requests_per_minute: 0,
            concurrent_streams: 3,
            max_output_tokens: 4096,
            catalog: &catalog,
        },
    )
    .expect("plans");
    config.admins = vec![UserId::parse("admin-1").expect("admin")];
    config
}

fn turn(id: &str, model: Option<&str>) -> Value {
    let mut body = json!({"id": id, "messages": [{"role": "user", "content": "#deltas:3 hello"}]});
    if let Some(model) = model {
        body["model"] = json!(model);
    }
    body
}

async fn chat_as(app: &TestApp, bearer: &str, path: &str, body: Value) -> Reply {
    with_bearer(app, bearer, "POST", path, Some(body)).await
}

fn finish(reply: &Reply) -> Value {
    parse_sse(&reply.text)
        .into_iter()
        .find(|c| c["type"] == "finish")
        .unwrap_or_else(|| panic!("a finish chunk: {}", reply.text))
}

const TWO_PLANS: &str = r#"{"free": {"models": ["claude-haiku"], "webSearch": false, "attachments": false},
                            "pro": {}}"#;

async fn a_free_plan_user_is_refused_a_pro_model_and_lists_only_their_models(store: Arc<dyn Store>) {
    let app = spawn_chat_app(store, with_plans(TWO_PLANS, "free"), ChatConfig::default()).await;
    let alice = token(&unique("alice"));
    let info = with_bearer(&app, &alice, "GET", "/api/chat", None).await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.json["plan"], "free");
    let ids: Vec<&str> = info.json["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec![HAIKU], "only the plan's models");
    assert_eq!(info.json["defaultModel"], HAIKU);
    assert_eq!(info.json["attachments"], false);
    let refused = chat_as(&app, &alice, "/api/chat", turn("free-sonnet", Some(SONNET))).await;
    assert_eq!((refused.status, refused.code()), (403, "PLAN"), "{}", refused.text);
    assert_eq!(refused.json["error"]["allowed"], json!([HAIKU]));
    assert!(!refused.text.contains("data:"), "never a stream");
    // Web search is not in the plan either.
    let mut searching = turn("free-search", None);
    searching["webSearch"] = json!(true);
    let refused = chat_as(&app, &alice, "/api/chat", searching).await;
    assert_eq!((refused.status, refused.code()), (403, "PLAN"), "{}", refused.text);
    // Without a model the turn runs on the plan's model, not the deployment's default (Sonnet).
    let ok = chat_as(&app, &alice, "/api/chat", turn("free-default", None)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(finish(&ok)["messageMetadata"]["model"], HAIKU);
    // A pro user (by claim) may use Sonnet and sees every model.
    let mut pro_claims = claims(&unique("bob"));
    pro_claims["plan"] = json!("pro");
    let bob = hs256(&pro_claims, SECRET);
    let ok = chat_as(&app, &bob, "/api/chat", turn("pro-sonnet", Some(SONNET))).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(finish(&ok)["messageMetadata"]["model"], SONNET);
    let info = with_bearer(&app, &bob, "GET", "/api/chat", None).await;
    assert_eq!(info.json["plan"], "pro");
    assert_eq!(
        info.json["models"].as_array().map(Vec::len),
        Some(Catalog::all().models().len())
    );
    // A claim naming no plan falls back to the default.
    let mut odd = claims(&unique("carol"));
    odd["plan"] = json!("platinum");
    let info = with_bearer(&app, &hs256(&odd, SECRET), "GET", "/api/chat", None).await;
    assert_eq!(info.json["plan"], "free");
}

async fn an_admin_override_takes_effect_at_once_and_is_audited(store: Arc<dyn Store>) {
    let app = spawn_chat_app(store, with_plans(TWO_PLANS, "free"), ChatConfig::default()).await;
    let user = unique("dave");
    let dave = token(&user);
    let admin = token("admin-1");
    let path = format!("/api/admin/users/{user}/plan");
    // Only administrators.
    let denied = with_bearer(&app, &dave, "PUT", &path, Some(json!({"plan": "pro"}))).await;
    assert_eq!((denied.status, denied.code()), (403, "FORBIDDEN"));
    let unknown = with_bearer(&app, &admin, "PUT", &path, Some(json!({"plan": "platinum"}))).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, "VALIDATION"),
        "{}",
        unknown.text
    );
    let bad_id = with_bearer(&app, &admin, "GET", "/api/admin/users/a%20b/plan", None).await;
    assert_eq!(bad_id.status, 400, "{}", bad_id.text);
    let refused = chat_as(&app, &dave, "/api/chat", turn("o-1", Some(SONNET))).await;
    assert_eq!(refused.code(), "PLAN");
    let set = with_bearer(&app, &admin, "PUT", &path, Some(json!({"plan": "pro"}))).await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json["override"]["plan"], "pro");
    assert_eq!(set.json["override"]["setBy"], "admin-1");
    // The very next request is on the new plan.
    let ok = chat_as(&app, &dave, "/api/chat", turn("o-2", Some(SONNET))).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let usage = with_bearer(&app, &dave, "GET", "/api/usage", None).await;
    assert_eq!(usage.json["plan"]["name"], "pro");
    let read = with_bearer(&app, &admin, "GET", &path, None).await;
    assert_eq!(read.json["override"]["plan"], "pro");
    assert_eq!(read.json["defaultPlan"], "free");
    // Removed: back to the default at once.
    let cleared = with_bearer(&app, &admin, "DELETE", &path, None).await;
    assert_eq!(cleared.status, 204);
    let refused = chat_as(&app, &dave, "/api/chat", turn("o-3", Some(SONNET))).await;
    assert_eq!(refused.code(), "PLAN", "{}", refused.text);
    // Both changes are in the administrator's audit log, naming the user.
    let audit = with_bearer(&app, &admin, "GET", "/api/audit?limit=10", None).await;
    let actions: Vec<(&str, &str)> = audit
        .json
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or(""), e["resource"].as_str().unwrap_or("")))
        .collect();
    assert!(actions.contains(&("plan.set", user.as_str())), "{actions:?}");
    assert!(actions.contains(&("plan.clear", user.as_str())), "{actions:?}");
}

/// What the turn of `reply` cost, priced from the catalog as Haiku (nano-dollars).
fn haiku_cost(reply: &Reply) -> u64 {
    let usage = &finish(reply)["messageMetadata"]["usage"];
    let model = Catalog::all().get(HAIKU).expect("haiku");
    usage["inputTokens"].as_u64().expect("input") * (model.input_micro_usd_per_mtok / 1000)
        + usage["outputTokens"].as_u64().expect("output") * (model.output_micro_usd_per_mtok / 1000)
}

async fn the_dollar_budget_is_charged_from_the_catalog_prices_and_refuses_when_spent(store: Arc<dyn Store>) {
    let roomy = spawn_chat_app(
        Arc::clone(&store),
        with_plans(r#"{"metered": {"usdPerMonth": 10, "maxOutputTokens": 100}}"#, "metered"),
        ChatConfig::default(),
    )
    .await;
    let user = unique("erin");
    let erin = token(&user);
    let first = chat_as(&roomy, &erin, "/api/chat", turn("usd-1", Some(HAIKU))).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let cost = haiku_cost(&first);
    assert!(cost > 0);
    // The reservation settled to exactly the priced usage.
    let usage = with_bearer(&roomy, &erin, "GET", "/api/usage", None).await;
    let used = usage.json["budgets"]["usdThisMonth"]["used"].as_f64().expect("used");
    assert_eq!((used * 1e9).round() as u64, cost, "{}", usage.text);
    assert_eq!(usage.json["budgets"]["usdThisMonth"]["limit"], 10.0);
    // A budget of exactly what was spent admits no further turn: 429 BUDGET, nothing stored.
    let spent_dollars = cost as f64 / 1e9;
    let tight = spawn_chat_app(
        Arc::clone(&store),
        with_plans(
            &format!(r#"{{"metered": {{"usdPerMonth": {spent_dollars}, "maxOutputTokens": 100}}}}"#),
            "metered",
        ),
        ChatConfig::default(),
    )
    .await;
    let refused = chat_as(&tight, &erin, "/api/chat", turn("usd-2", Some(HAIKU))).await;
    assert_eq!((refused.status, refused.code()), (429, "BUDGET"), "{}", refused.text);
    assert!(refused.json["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("dollar"));
    assert!(refused.header("retry-after").is_some());
    let list = with_bearer(&tight, &erin, "GET", "/api/conversations", None).await;
    let ids: Vec<&str> = list
        .json
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(!ids.contains(&"usd-2"), "the refused turn stored nothing: {ids:?}");
}

async fn the_spend_cap_and_the_kill_switch_stop_chat_but_not_the_other_routes(store: Arc<dyn Store>) {
    let mut config = jwt_config(verifier());
    config.plans.spend_cap_nano_usd = 1;
    let metrics = shared::metrics::Emitter::capture();
    let state = shared::api::AppState::new(config, Arc::clone(&store))
        .with_chat(Arc::new(shared::llm::scripted::ScriptedModel), ChatConfig::default())
        .with_metrics(metrics.clone());
    let capped = athena_tests::spawn_state(state, Arc::clone(&store)).await;
    let grace = token(&unique("grace"));
    // Nothing spent yet: admitted; its cost reaches the cap.
    let first = chat_as(&capped, &grace, "/api/chat", turn("cap-1", Some(HAIKU))).await;
    assert_eq!(first.status, 200, "{}", first.text);
    // Anyone's next turn is refused, before anything is stored.
    let refused = chat_as(&capped, &token(&unique("heidi")), "/api/chat", turn("cap-2", None)).await;
    assert_eq!((refused.status, refused.code()), (503, "SPEND_CAP"), "{}", refused.text);
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=31 * 86_400).contains(&retry), "{retry}");
    let list = with_bearer(&capped, &grace, "GET", "/api/conversations", None).await;
    assert_eq!(list.status, 200, "reading still works");
    // The alarm's metric (0 % before the first turn, then over 100 %) and the refusal by plan.
    let lines = metrics.captured();
    let used: Vec<f64> = lines.iter().filter_map(|l| l["SpendCapUsedPercent"].as_f64()).collect();
    assert_eq!(used.len(), 2, "{lines:?}");
    assert!(used[0] == 0.0 && used[1] >= 100.0, "{used:?}");
    assert!(
        lines
            .iter()
            .any(|l| l["Refusals"] == 1 && l["code"] == "SPEND_CAP" && l["plan"] == "default"),
        "{lines:?}"
    );
    // Below the cap (a higher one), chat goes on.
    let mut config = jwt_config(verifier());
    config.plans.spend_cap_nano_usd = 1_000_000_000;
    let raised = spawn_chat_app(Arc::clone(&store), config, ChatConfig::default()).await;
    let ok = chat_as(&raised, &grace, "/api/chat", turn("cap-3", Some(HAIKU))).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // The kill switch: chat refused with a clear message, CRUD untouched.
    let mut config = jwt_config(verifier());
    config.plans.chat_enabled = false;
    let off = spawn_chat_app(Arc::clone(&store), config, ChatConfig::default()).await;
    let refused = chat_as(&off, &grace, "/api/chat/maintenance", turn("off-1", None)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (503, "CHAT_DISABLED"),
        "{}",
        refused.text
    );
    let info = with_bearer(&off, &grace, "GET", "/api/chat", None).await;
    assert_eq!(info.json["chatEnabled"], false);
    let conversation = with_bearer(&off, &grace, "GET", "/api/conversations/cap-1", None).await;
    assert_eq!(conversation.status, 200, "{}", conversation.text);
    let renamed = with_bearer(
        &off,
        &grace,
        "PATCH",
        "/api/conversations/cap-1",
        Some(json!({"title": "kept"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
}

async fn the_soft_limit_reports_what_remains_at_80_percent(store: Arc<dyn Store>) {
    // Four turns far below a big day budget: no header, no budget in the metadata.
    let roomy = spawn_chat_app(
        Arc::clone(&store),
        with_plans(r#"{"big": {"tokensPerDay": 100000000}}"#, "big"),
        ChatConfig::default(),
    )
    .await;
    let ivan = token(&unique("ivan"));
    let mut input = 0;
    for i in 0..4 {
        let reply = chat_as(&roomy, &ivan, "/api/chat", turn(&format!("soft-{i}"), Some(HAIKU))).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            reply.header("x-athena-budget-remaining-tokens").is_none(),
            "far from 80 %"
        );
        assert!(finish(&reply)["messageMetadata"].get("budget").is_none());
        input = finish(&reply)["messageMetadata"]["usage"]["inputTokens"]
            .as_u64()
            .expect("input");
    }
    let usage = with_bearer(&roomy, &ivan, "GET", "/api/usage", None).await;
    let spent = usage.json["budgets"]["tokensToday"]["used"].as_u64().expect("used");
    assert_eq!(usage.json["budgets"]["softLimit"], false);
    // A plan whose day budget leaves room for one more such turn (its reservation estimates a
    // third of the characters sent, the scripted model reports a quarter: at most twice the
    // reported input) and no more than that: the turn is admitted over 80 % and ends over it.
    let budget = spent + 2 * input + 2;
    let small = spawn_chat_app(
        Arc::clone(&store),
        with_plans(
            &format!(r#"{{"small": {{"tokensPerDay": {budget}, "maxOutputTokens": 1}}}}"#),
            "small",
        ),
        ChatConfig::default(),
    )
    .await;
    let reply = chat_as(&small, &ivan, "/api/chat", turn("soft-4", Some(HAIKU))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let header: u64 = reply
        .header("x-athena-budget-remaining-tokens")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the soft-limit header: {:?}", reply.headers));
    assert!(
        header * 5 <= budget,
        "at most a fifth left after the reservation: {header} of {budget}"
    );
    assert!(
        reply.header("x-athena-budget-remaining-usd").is_none(),
        "no dollar budget"
    );
    let meta = &finish(&reply)["messageMetadata"];
    let cost =
        meta["usage"]["inputTokens"].as_u64().expect("input") + meta["usage"]["outputTokens"].as_u64().expect("output");
    let left = budget - spent - cost;
    assert!(header <= left, "the header counted the reservation: {header} > {left}");
    // What remains after the turn, in the finish metadata and in GET /api/usage alike.
    assert_eq!(meta["budget"]["remainingTokensToday"], json!(left), "{meta}");
    assert_eq!(meta["budget"]["remainingTokens"], json!(left));
    assert_eq!(
        meta["budget"]["remainingTokensThisMonth"],
        Value::Null,
        "the plan has no month budget"
    );
    assert_eq!(meta["budget"]["remainingUsd"], Value::Null);
    let usage = with_bearer(&small, &ivan, "GET", "/api/usage", None).await;
    assert_eq!(usage.json["budgets"]["tokensToday"]["remaining"], json!(left));
    assert_eq!(usage.json["budgets"]["softLimit"], true);
}

async fn usage_is_the_sum_of_the_stored_usage_per_model_and_solution(store: Arc<dyn Store>) {
    let app = spawn_chat_app(
        Arc::clone(&store),
        with_plans(r#"{"pro": {"usdPerMonth": 100}}"#, "pro"),
        ChatConfig::default(),
    )
    .await;
    let sub = unique("kim");
    let kim = token(&sub);
    let turns = [
        ("u-1", "/api/chat", HAIKU),
        ("u-2", "/api/chat/maintenance", HAIKU),
        ("u-3", "/api/chat/maintenance", SONNET),
    ];
    for (id, path, model) in turns {
        let reply = chat_as(&app, &kim, path, turn(id, Some(model))).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // Someone else's turn is not in kim's usage.
    let other = chat_as(&app, &token(&unique("lee")), "/api/chat", turn("u-4", Some(HAIKU))).await;
    assert_eq!(other.status, 200);
    // The stored replies' usage, summed, priced from the catalog.
    let owner = UserId::parse(&sub).expect("user");
    let catalog = Catalog::all();
    let (mut input, mut output, mut cost) = (0u64, 0u64, 0u64);
    let mut by_solution: std::collections::BTreeMap<String, u64> = Default::default();
    let mut by_model: std::collections::BTreeMap<String, u64> = Default::default();
    for (id, path, _) in turns {
        let (_, messages) = store
            .get_conversation_with_messages(&owner, &shared::domain::ConversationId::parse(id).expect("id"))
            .await
            .expect("stored");
        for m in messages.iter().filter(|m| m.usage.is_some()) {
            let u = m.usage.as_ref().expect("usage");
            let model = catalog.get(m.model.as_deref().expect("model")).expect("priced");
            input += u.input_tokens;
            output += u.output_tokens;
            cost += shared::analytics::cost_nano_usd(model, u);
            let solution = if path.ends_with("maintenance") {
                "maintenance"
            } else {
                "general"
            };
            *by_solution.entry(solution.to_owned()).or_default() += u.input_tokens + u.output_tokens;
            *by_model.entry(model.id.to_owned()).or_default() += u.input_tokens + u.output_tokens;
        }
    }
    let usage = with_bearer(&app, &kim, "GET", "/api/usage", None).await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    for window in [&usage.json["today"]["usage"], &usage.json["month"]["usage"]] {
        assert_eq!(window["requests"], 3, "{}", usage.text);
        assert_eq!(window["inputTokens"], input);
        assert_eq!(window["outputTokens"], output);
        assert_eq!(window["tokens"], input + output);
        assert_eq!(((window["costUsd"].as_f64().expect("cost")) * 1e9).round() as u64, cost);
    }
    for (solution, tokens) in &by_solution {
        assert_eq!(
            usage.json["month"]["bySolution"][solution]["tokens"], *tokens,
            "{solution}"
        );
    }
    for (model, tokens) in &by_model {
        assert_eq!(usage.json["month"]["byModel"][model]["tokens"], *tokens, "{model}");
    }
    assert_eq!(usage.json["plan"]["usdPerMonth"], 100.0);
    assert_eq!(
        usage.json["budgets"]["tokensToday"],
        Value::Null,
        "the plan has no token budget"
    );
    let used = usage.json["budgets"]["usdThisMonth"]["used"].as_f64().expect("used");
    assert_eq!(
        (used * 1e9).round() as u64,
        cost,
        "the dollar budget holds the same cost"
    );
}

athena_tests::on_both_stores!([
    a_free_plan_user_is_refused_a_pro_model_and_lists_only_their_models,
    an_admin_override_takes_effect_at_once_and_is_audited,
    the_dollar_budget_is_charged_from_the_catalog_prices_and_refuses_when_spent,
    the_spend_cap_and_the_kill_switch_stop_chat_but_not_the_other_routes,
    the_soft_limit_reports_what_remains_at_80_percent,
    usage_is_the_sum_of_the_stored_usage_per_model_and_solution,
]);

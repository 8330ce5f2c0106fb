//! Plans and usage: which plan a caller is on ([`plan_of`]), `GET /api/usage` (the caller's own
//! tokens and dollars, their plan and what remains of each budget) and the admins' per-user plan
//! override (`GET|PUT|DELETE /api/admin/users/{id}/plan`, audited).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Response;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, ApiRequest, Body, Caller};
use crate::chat::budget::{usd, Remaining};
use crate::config::plans::Plan;
use crate::domain::{Timestamp, UserId};
use crate::error::ValidationError;
use crate::state::AppState;
use crate::store::{PlanOverride, UsageRow};

/// The caller's plan: an admin's override, else the first plan claim naming a plan, else the
/// default. The override is looked up only when the deployment has more than one plan (one
/// read; no cache, so a change applies to the next request).
pub async fn plan_of(state: &AppState, caller: &Caller) -> Result<Arc<Plan>, ApiError> {
    let plans = &state.config.plans;
    if !plans.has_choices() {
        return Ok(plans.default_plan().clone());
    }
    if let Some(over) = state.store.plan_override(&caller.user).await? {
        match plans.get(&over.plan) {
            Some(plan) => return Ok(plan.clone()),
            // A plan removed from the configuration since: the claim and default decide.
            None => tracing::warn!(plan = %over.plan, "a user's plan override names no configured plan"),
        }
    }
    Ok(caller
        .plan_claims
        .iter()
        .find_map(|name| plans.get(name))
        .unwrap_or_else(|| plans.default_plan())
        .clone())
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Totals {
    requests: u64,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    tokens: u64,
    cost_usd: f64,
    #[serde(skip)]
    cost_nano_usd: u64,
}

impl Totals {
    fn add(&mut self, row: &UsageRow) {
        self.requests += row.requests;
        self.input_tokens += row.input_tokens;
        self.output_tokens += row.output_tokens;
        self.cache_read_tokens += row.cache_read_tokens;
        self.cache_write_tokens += row.cache_write_tokens;
        self.tokens += row.input_tokens + row.output_tokens;
        self.cost_nano_usd += row.cost_nano_usd;
        self.cost_usd = usd(self.cost_nano_usd);
    }
}

/// The plan as shown to its user.
fn plan_view(plan: &Plan) -> serde_json::Value {
    let off = |v: u64| (v > 0).then_some(v);
    json!({
        "name": plan.name,
        "tokensPerDay": off(plan.tokens_per_day),
        "tokensPerMonth": off(plan.tokens_per_month),
        "usdPerMonth": (plan.nano_usd_per_month > 0).then(|| plan.usd_per_month()),
        "requestsPerMinute": off(plan.requests_per_minute),
        "concurrentStreams": (plan.concurrent_streams > 0).then_some(plan.concurrent_streams),
        "models": plan.models,
        "maxOutputTokens": plan.max_output_tokens,
        "webSearch": plan.web_search,
        "tools": plan.tools,
        "attachments": plan.attachments,
    })
}

/// `GET /api/usage`: the caller's usage today and this month (in all, per model, per solution),
/// their plan, what remains of each budget and when each renews. Two reads: the month's usage
/// rows (one Query) and the budget items (one batch).
pub async fn get(state: &AppState, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let now = state.now();
    let today = now.format("%Y-%m-%d").to_string();
    let month_start = now.format("%Y-%m-01").to_string();
    let (rows, levels) = tokio::try_join!(
        state.store.usage_between(&caller.user, &month_start, &today),
        state.store.budget_levels(&caller.user, now),
    )?;
    let mut day = Totals::default();
    let mut month = Totals::default();
    let mut by_model: BTreeMap<&str, Totals> = BTreeMap::new();
    let mut by_solution: BTreeMap<&str, Totals> = BTreeMap::new();
    for row in &rows {
        if row.day == today {
            day.add(row);
        }
        month.add(row);
        by_model.entry(&row.model).or_default().add(row);
        by_solution.entry(&row.solution).or_default().add(row);
    }
    let plan = &caller.plan;
    let remaining = Remaining::of(plan, &levels);
    let (_, day_end, month_end) = crate::store::window_ends(now);
    let at = |epoch: i64| chrono::DateTime::<chrono::Utc>::from_timestamp(epoch, 0);
    let (day_end, month_end) = (at(day_end), at(month_end));
    let budget = |limit: Option<u64>, spent: u64, left: Option<u64>, renews: Option<Timestamp>| {
        limit.map(|limit| json!({"limit": limit, "used": spent, "remaining": left, "renewsAt": renews}))
    };
    let body = json!({
        "plan": plan_view(plan),
        "today": {"day": today, "usage": day},
        "month": {"month": &today[..7], "usage": month, "byModel": by_model, "bySolution": by_solution},
        "budgets": {
            "tokensToday": budget((plan.tokens_per_day > 0).then_some(plan.tokens_per_day), levels.tokens_day, remaining.tokens_day, day_end),
            "tokensThisMonth": budget((plan.tokens_per_month > 0).then_some(plan.tokens_per_month), levels.tokens_month, remaining.tokens_month, month_end),
            "usdThisMonth": (plan.nano_usd_per_month > 0).then(|| json!({
                "limit": plan.usd_per_month(),
                "used": usd(levels.nano_usd_month),
                "remaining": remaining.nano_usd_month.map(usd),
                "renewsAt": month_end,
            })),
            "softLimit": remaining.soft_limit,
        },
    });
    super::json(StatusCode::OK, &body)
}

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("plans are set by administrators".to_owned()))
    }
}

fn user_id(id: Option<&str>) -> Result<UserId, ApiError> {
    let raw = id.ok_or_else(|| ApiError::NotFound("no such route".to_owned()))?;
    UserId::parse(raw).map_err(|_| {
        ApiError::Validation(ValidationError::field(
            "id",
            "must be a user id: 1 to 64 characters of letters, digits, '_' or '-'",
        ))
    })
}

async fn user_plan_view(state: &AppState, user: &UserId) -> Result<serde_json::Value, ApiError> {
    let over = state.store.plan_override(user).await?;
    Ok(json!({
        "userId": user,
        "override": over,
        "plans": state.config.plans.plans.keys().collect::<Vec<_>>(),
        "defaultPlan": state.config.plans.default,
    }))
}

/// `GET /api/admin/users/{id}/plan` (admins): the user's override, if any, and the plans.
pub async fn get_user_plan(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    admin_only(caller)?;
    let user = user_id(id)?;
    super::json(StatusCode::OK, &user_plan_view(state, &user).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPlan {
    plan: String,
}

/// `PUT /api/admin/users/{id}/plan` `{"plan": "pro"}` (admins): the user is on that plan from
/// their next request, whatever their claim says.
pub async fn set_user_plan(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    admin_only(caller)?;
    let user = user_id(id)?;
    let body: SetPlan = super::input::json_body(req, false)?;
    let plans = &state.config.plans;
    if plans.get(&body.plan).is_none() {
        return Err(ApiError::Validation(ValidationError::field(
            "plan",
            format!(
                "must be one of this deployment's plans: {}",
                plans.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )));
    }
    let value = PlanOverride {
        plan: body.plan,
        set_by: caller.user.clone(),
        set_at: state.now(),
    };
    state.store.set_plan_override(&user, Some(&value)).await?;
    super::json(StatusCode::OK, &user_plan_view(state, &user).await?)
}

/// `DELETE /api/admin/users/{id}/plan` (admins): back to the claim and the default.
pub async fn clear_user_plan(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<Response<Body>, ApiError> {
    admin_only(caller)?;
    let user = user_id(id)?;
    state.store.set_plan_override(&user, None).await?;
    Ok(super::no_content())
}

//! What a turn may spend and use under the caller's plan: the checks of a request against the
//! plan (models, web search, attachments), the dollar side of the reservation (prices from the
//! catalog), the deployment's spend cap, and what remains of each budget (the soft limit at
//! 80 %: response headers and the stream's finish metadata).

use serde_json::json;

use super::{ChatError, ChatRequest};
use crate::catalog::{Catalog, ModelInfo};
use crate::config::plans::{Plan, NANO_PER_USD};
use crate::domain::Conversation;
use crate::state::AppState;
use crate::store::BudgetLevels;

/// Checks a request against the caller's plan before anything is stored: an explicitly chosen
/// model outside the plan, web search or attachments the plan does not include are refused
/// (`PLAN`). A conversation whose own model (or the deployment's default) is outside the plan
/// goes on with the plan's first model instead.
pub fn check_request(
    plan: &Plan,
    request: &mut ChatRequest,
    existing: Option<&Conversation>,
    catalog: &Catalog,
) -> Result<(), ChatError> {
    let refuse = |message: String| ChatError::Plan {
        message,
        allowed: plan.models.iter().map(|m| (*m).to_owned()).collect(),
    };
    match request.model {
        Some(model) if !plan.allows(model.id) => {
            return Err(refuse(format!(
                "the model {} is not in your plan ({}); choose one of the allowed models",
                model.id, plan.name
            )))
        }
        Some(_) => {}
        None => {
            let would = existing
                .and_then(|c| catalog.get(&c.model))
                .unwrap_or_else(|| catalog.default_model());
            if !plan.allows(would.id) {
                request.model = plan.models.first().and_then(|id| catalog.get(id));
            }
        }
    }
    if request.web_search && !plan.web_search {
        return Err(refuse(format!("web search is not in your plan ({})", plan.name)));
    }
    let attaches = request.messages.last().is_some_and(|m| !m.files.is_empty());
    if attaches && !plan.attachments {
        return Err(refuse(format!("attachments are not in your plan ({})", plan.name)));
    }
    Ok(())
}

/// The output cap of a turn: the deployment's and the plan's, bounded by the model's own.
pub fn output_cap(chat: &crate::config::ChatConfig, plan: &Plan, model: &ModelInfo) -> u32 {
    super::estimate::output_cap(chat, model).min(plan.max_output_tokens)
}

/// Nano-dollars of a reservation: the input estimate at the input price and the output cap at
/// the output price.
pub fn reservation_nano_usd(model: &ModelInfo, input_tokens: u64, max_tokens: u32) -> u64 {
    input_tokens
        .saturating_mul(model.input_micro_usd_per_mtok / 1000)
        .saturating_add(u64::from(max_tokens).saturating_mul(model.output_micro_usd_per_mtok / 1000))
}

/// Nano-dollars of tokens whose split is unknown (estimates, a title), at the output price: an
/// upper bound, output being the dearest.
pub fn upper_nano_usd(model: &ModelInfo, tokens: u64) -> u64 {
    tokens.saturating_mul(model.output_micro_usd_per_mtok / 1000)
}

/// Refuses a new turn when the deployment's spend this month reached `ATHENA_SPEND_CAP_USD`
/// (one read of the month's spend item). Turns already running finish: the cap may be passed
/// by what they cost.
pub async fn check_spend_cap(state: &AppState) -> Result<(), ChatError> {
    let cap = state.config.plans.spend_cap_nano_usd;
    if cap == 0 {
        return Ok(());
    }
    let now = state.now();
    let spent = state.store.month_spend(&now.format("%Y-%m").to_string()).await?;
    let percent = (spent as f64 / cap as f64 * 100.0).min(1000.0);
    tracing::debug!(
        spent_nano_usd = spent,
        cap_nano_usd = cap,
        percent,
        "deployment spend this month"
    );
    // What the `SpendCapNearing` alarm watches (at 80 %).
    state
        .metrics
        .emit(&crate::metrics::Line::new(now).directive(&[&[]]).metric(
            "SpendCapUsedPercent",
            crate::metrics::Unit::Percent,
            percent,
        ));
    if spent >= cap {
        let (_, _, month_end) = crate::store::window_ends(now);
        return Err(ChatError::SpendCap {
            retry_after: crate::store::retry_after(now, month_end),
        });
    }
    Ok(())
}

/// Nano-dollars as dollars (for JSON).
pub fn usd(nano: u64) -> f64 {
    nano as f64 / NANO_PER_USD
}

/// What remains of each budget switched on: tokens today and this month, dollars this month.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Remaining {
    /// Tokens left today (`None`: no day budget).
    pub tokens_day: Option<u64>,
    /// Tokens left this month.
    pub tokens_month: Option<u64>,
    /// Nano-dollars left this month.
    pub nano_usd_month: Option<u64>,
    /// Whether any budget switched on is at least 80 % used (the soft limit).
    pub soft_limit: bool,
}

impl Remaining {
    /// The remaining amounts of `plan`'s budgets when `levels` are spent.
    pub fn of(plan: &Plan, levels: &BudgetLevels) -> Self {
        let left = |budget: u64, spent: u64| (budget > 0).then(|| budget.saturating_sub(spent));
        let soft = |budget: u64, spent: u64| budget > 0 && spent.saturating_mul(5) >= budget.saturating_mul(4);
        Self {
            tokens_day: left(plan.tokens_per_day, levels.tokens_day),
            tokens_month: left(plan.tokens_per_month, levels.tokens_month),
            nano_usd_month: left(plan.nano_usd_per_month, levels.nano_usd_month),
            soft_limit: soft(plan.tokens_per_day, levels.tokens_day)
                || soft(plan.tokens_per_month, levels.tokens_month)
                || soft(plan.nano_usd_per_month, levels.nano_usd_month),
        }
    }

    /// The fewest tokens left in any window.
    pub fn tokens(&self) -> Option<u64> {
        match (self.tokens_day, self.tokens_month) {
            (Some(d), Some(m)) => Some(d.min(m)),
            (d, m) => d.or(m),
        }
    }

    /// The soft-limit headers (`x-athena-budget-remaining-tokens`, `-usd`), when at 80 %.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        if !self.soft_limit {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(t) = self.tokens() {
            out.push((HEADER_TOKENS, t.to_string()));
        }
        if let Some(n) = self.nano_usd_month {
            out.push((HEADER_USD, format!("{:.6}", usd(n))));
        }
        out
    }

    /// The stream's finish metadata entry (`budget`), when at 80 %.
    pub fn metadata(&self) -> Option<serde_json::Value> {
        self.soft_limit.then(|| {
            json!({
                "remainingTokens": self.tokens(),
                "remainingTokensToday": self.tokens_day,
                "remainingTokensThisMonth": self.tokens_month,
                "remainingUsd": self.nano_usd_month.map(usd),
            })
        })
    }
}

/// Header with the fewest tokens left in any budget window (sent at 80 % of any budget).
pub const HEADER_TOKENS: &str = "x-athena-budget-remaining-tokens";
/// Header with the dollars left this month (sent at 80 % of any budget, with a dollar budget).
pub const HEADER_USD: &str = "x-athena-budget-remaining-usd";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::plans::{Inherited, PlansConfig};

    fn plan(day: u64, month: u64, usd_nano: u64) -> Plan {
        let catalog = Catalog::all();
        let mut p = PlansConfig::single(Inherited {
            tokens_per_day: day,
            tokens_per_month: month,
            requests_per_minute: 0,
            concurrent_streams: 0,
            max_output_tokens: 100,
            catalog: &catalog,
        })
        .default_plan()
        .as_ref()
        .clone();
        p.nano_usd_per_month = usd_nano;
        p
    }

    #[test]
    fn the_soft_limit_starts_at_80_percent_of_any_budget() {
        let p = plan(1000, 10_000, 2_000_000_000);
        let levels = |d, m, u| BudgetLevels {
            tokens_day: d,
            tokens_month: m,
            nano_usd_month: u,
        };
        assert!(!Remaining::of(&p, &levels(799, 0, 0)).soft_limit);
        assert!(Remaining::of(&p, &levels(800, 0, 0)).soft_limit);
        assert!(Remaining::of(&p, &levels(0, 8_000, 0)).soft_limit);
        assert!(Remaining::of(&p, &levels(0, 0, 1_600_000_000)).soft_limit);
        let r = Remaining::of(&p, &levels(900, 9_950, 1_700_000_000));
        assert_eq!(r.tokens(), Some(50), "the tighter window");
        assert_eq!(
            r.headers(),
            vec![(HEADER_TOKENS, "50".to_owned()), (HEADER_USD, "0.300000".to_owned())]
        );
        assert!(
            Remaining::of(&p, &levels(0, 0, 0)).headers().is_empty(),
            "nothing below 80 %"
        );
        let off = plan(0, 0, 0);
        let r = Remaining::of(&off, &levels(5, 5, 5));
        assert!(!r.soft_limit && r.tokens().is_none());
    }
}

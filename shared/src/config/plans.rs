//! Plans (`ATHENA_PLANS`): named tiers of what a user may spend and use, the deployment-wide
//! spend cap (`ATHENA_SPEND_CAP_USD`) and the chat kill switch (`ATHENA_CHAT_ENABLED`).
//!
//! `ATHENA_PLANS` is a JSON object of plan name to settings; every setting is optional and
//! defaults to the deployment-wide value (`ATHENA_TOKEN_BUDGET_DAY`, `ATHENA_MODELS`, ...):
//!
//! ```json
//! {"free": {"tokensPerDay": 50000, "tokensPerMonth": 500000, "usdPerMonth": 1,
//!           "requestsPerMinute": 20, "concurrentStreams": 1, "models": ["claude-haiku"],
//!           "maxOutputTokens": 1024, "webSearch": false, "tools": false, "attachments": false},
//!  "pro":  {"usdPerMonth": 50}}
//! ```
//!
//! A user's plan is, in order: an admin's override (`PUT /api/admin/users/{id}/plan`), the first
//! value of the claim `ATHENA_PLAN_CLAIM` (a string, or a list such as `cognito:groups`) that
//! names a plan, then `ATHENA_DEFAULT_PLAN`. Unset `ATHENA_PLANS`: one plan, `default`, made of
//! the deployment-wide values (and no override is ever looked up).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, Env};
use crate::catalog::Catalog;

/// The plan name of a deployment without `ATHENA_PLANS`.
pub const DEFAULT_PLAN: &str = "default";
/// The claim a plan is read from unless `ATHENA_PLAN_CLAIM` names another.
pub const DEFAULT_PLAN_CLAIM: &str = "plan";
/// Most plans a deployment may define.
pub const MAX_PLANS: usize = 32;
/// Nano-dollars in a dollar.
pub const NANO_PER_USD: f64 = 1e9;

/// One plan: what a user on it may spend and use. 0 switches a limit off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Its name (`[a-z0-9_-]`, 1 to 32 characters).
    pub name: String,
    /// Tokens (input + output) per UTC day.
    pub tokens_per_day: u64,
    /// Tokens per UTC calendar month.
    pub tokens_per_month: u64,
    /// Dollars per UTC calendar month, in nano-dollars (priced from the catalog).
    pub nano_usd_per_month: u64,
    /// Requests per minute (every route; chat turns included).
    pub requests_per_minute: u64,
    /// Chat streams open at once.
    pub concurrent_streams: u32,
    /// The catalog ids of the models it may use, in the catalog's order.
    pub models: Vec<&'static str>,
    /// Most output tokens per reply (also capped by the deployment's and the model's).
    pub max_output_tokens: u32,
    /// Whether the web search tool may be used.
    pub web_search: bool,
    /// Whether the deployment's MCP tools may be used.
    pub tools: bool,
    /// Whether files may be attached to messages.
    pub attachments: bool,
}

impl Plan {
    /// Whether the plan may use the catalog model `id`.
    pub fn allows(&self, id: &str) -> bool {
        self.models.contains(&id)
    }

    /// The dollar budget in dollars (for display).
    pub fn usd_per_month(&self) -> f64 {
        self.nano_usd_per_month as f64 / NANO_PER_USD
    }
}

/// The deployment-wide values a plan inherits what it does not set.
#[derive(Clone, Copy, Debug)]
pub struct Inherited<'a> {
    /// `ATHENA_TOKEN_BUDGET_DAY`.
    pub tokens_per_day: u64,
    /// `ATHENA_TOKEN_BUDGET_MONTH`.
    pub tokens_per_month: u64,
    /// `ATHENA_RATE_LIMIT_PER_MINUTE`.
    pub requests_per_minute: u64,
    /// `ATHENA_MAX_CONCURRENT_STREAMS`.
    pub concurrent_streams: u32,
    /// `ATHENA_MAX_OUTPUT_TOKENS`.
    pub max_output_tokens: u32,
    /// `ATHENA_MODELS`.
    pub catalog: &'a Catalog,
}

/// Plans and the deployment-wide spending switches.
#[derive(Clone, Debug, PartialEq)]
pub struct PlansConfig {
    /// Every plan, by name.
    pub plans: BTreeMap<String, std::sync::Arc<Plan>>,
    /// The plan of a user with no override and no plan claim.
    pub default: String,
    /// The claim a user's plan is read from.
    pub claim: String,
    /// The deployment's spend per UTC month, nano-dollars, after which new turns are refused
    /// (0: no cap).
    pub spend_cap_nano_usd: u64,
    /// Whether this function serves chat turns at all (the kill switch).
    pub chat_enabled: bool,
    /// Whether the plans come from `ATHENA_PLANS` (else: the one plan of the deployment-wide
    /// values, rebuilt when those change: [`crate::config::Config::refresh_default_plan`]).
    pub explicit: bool,
}

impl PlansConfig {
    /// One plan made of the deployment-wide values, no cap, chat on.
    pub fn single(inherited: Inherited<'_>) -> Self {
        let plan = inherit(DEFAULT_PLAN, RawPlan::default(), inherited);
        Self {
            plans: BTreeMap::from([(DEFAULT_PLAN.to_owned(), std::sync::Arc::new(plan))]),
            default: DEFAULT_PLAN.to_owned(),
            claim: DEFAULT_PLAN_CLAIM.to_owned(),
            spend_cap_nano_usd: 0,
            chat_enabled: true,
            explicit: false,
        }
    }

    /// Reads `ATHENA_PLANS`, `ATHENA_DEFAULT_PLAN`, `ATHENA_PLAN_CLAIM`, `ATHENA_SPEND_CAP_USD`
    /// and `ATHENA_CHAT_ENABLED`.
    pub fn read(env: &Env<'_>, inherited: Inherited<'_>) -> Result<Self, ConfigError> {
        let mut config = match env.text("ATHENA_PLANS") {
            None => Self::single(inherited),
            Some(raw) => parse(&raw, env.text("ATHENA_DEFAULT_PLAN").as_deref(), inherited)?,
        };
        if env.text("ATHENA_PLANS").is_none() {
            if let Some(name) = env.text("ATHENA_DEFAULT_PLAN").filter(|n| n != DEFAULT_PLAN) {
                return Err(ConfigError(format!(
                    "ATHENA_DEFAULT_PLAN: {name:?} is not a plan (ATHENA_PLANS is unset: the only plan is {DEFAULT_PLAN:?})"
                )));
            }
        }
        if let Some(claim) = env.text("ATHENA_PLAN_CLAIM") {
            config.claim = claim;
        }
        config.spend_cap_nano_usd = match env.text("ATHENA_SPEND_CAP_USD") {
            None => 0,
            Some(raw) => dollars("ATHENA_SPEND_CAP_USD", &raw)?,
        };
        config.chat_enabled = env.flag("ATHENA_CHAT_ENABLED", true)?;
        Ok(config)
    }

    /// The plan named `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<&std::sync::Arc<Plan>> {
        self.plans.get(name)
    }

    /// The default plan.
    pub fn default_plan(&self) -> &std::sync::Arc<Plan> {
        match self.plans.get(&self.default) {
            Some(plan) => plan,
            // `parse` and `single` only build configurations whose default exists.
            None => unreachable!("the default plan is one of the plans"),
        }
    }

    /// Whether a user's plan can differ from the default (more than one plan): only then is an
    /// override looked up.
    pub fn has_choices(&self) -> bool {
        self.plans.len() > 1
    }
}

/// A plan as written in `ATHENA_PLANS`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPlan {
    tokens_per_day: Option<u64>,
    tokens_per_month: Option<u64>,
    usd_per_month: Option<f64>,
    requests_per_minute: Option<u64>,
    concurrent_streams: Option<u32>,
    models: Option<Vec<String>>,
    max_output_tokens: Option<u32>,
    web_search: Option<bool>,
    tools: Option<bool>,
    attachments: Option<bool>,
}

fn inherit(name: &str, raw: RawPlan, d: Inherited<'_>) -> Plan {
    Plan {
        name: name.to_owned(),
        tokens_per_day: raw.tokens_per_day.unwrap_or(d.tokens_per_day),
        tokens_per_month: raw.tokens_per_month.unwrap_or(d.tokens_per_month),
        nano_usd_per_month: 0,
        requests_per_minute: raw.requests_per_minute.unwrap_or(d.requests_per_minute),
        concurrent_streams: raw.concurrent_streams.unwrap_or(d.concurrent_streams),
        models: d.catalog.models().iter().map(|m| m.id).collect(),
        max_output_tokens: raw.max_output_tokens.unwrap_or(d.max_output_tokens),
        web_search: raw.web_search.unwrap_or(true),
        tools: raw.tools.unwrap_or(true),
        attachments: raw.attachments.unwrap_or(true),
    }
}

/// Dollars (a finite, non-negative number) as nano-dollars.
fn dollars(what: &str, raw: &str) -> Result<u64, ConfigError> {
    let usd: f64 = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError(format!("{what}: {raw:?} is not a number of dollars")))?;
    usd_to_nano(what, usd)
}

fn usd_to_nano(what: &str, usd: f64) -> Result<u64, ConfigError> {
    if !usd.is_finite() || !(0.0..=1e9).contains(&usd) {
        return Err(ConfigError(format!(
            "{what}: {usd} must be a number of dollars from 0 to 1000000000"
        )));
    }
    Ok((usd * NANO_PER_USD).round() as u64)
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses `ATHENA_PLANS` (with `ATHENA_DEFAULT_PLAN`, which must name one of them; unset: the
/// first in name order).
pub fn parse(raw: &str, default: Option<&str>, inherited: Inherited<'_>) -> Result<PlansConfig, ConfigError> {
    let bad = |what: String| ConfigError(format!("ATHENA_PLANS: {what}"));
    let raws: BTreeMap<String, RawPlan> = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
    if raws.is_empty() {
        return Err(bad("names no plan".to_owned()));
    }
    if raws.len() > MAX_PLANS {
        return Err(bad(format!("at most {MAX_PLANS} plans")));
    }
    let mut plans = BTreeMap::new();
    for (name, raw) in raws {
        if !valid_name(&name) {
            return Err(bad(format!(
                "{name:?} is not a plan name (1 to 32 of a-z, 0-9, '-', '_')"
            )));
        }
        let models = match &raw.models {
            None => None,
            Some(ids) => {
                let mut wanted = Vec::with_capacity(ids.len());
                for id in ids {
                    let model = inherited
                        .catalog
                        .get(id)
                        .ok_or_else(|| bad(format!("plan {name}: {id:?} is not an allowed model (ATHENA_MODELS)")))?;
                    wanted.push(model.id);
                }
                if wanted.is_empty() {
                    return Err(bad(format!("plan {name}: `models` lists no model")));
                }
                Some(wanted)
            }
        };
        if raw.max_output_tokens == Some(0) {
            return Err(bad(format!("plan {name}: maxOutputTokens must be at least 1")));
        }
        let usd = raw.usd_per_month;
        let mut plan = inherit(&name, raw, inherited);
        if let Some(wanted) = models {
            plan.models.retain(|id| wanted.contains(id));
        }
        if let Some(usd) = usd {
            plan.nano_usd_per_month = usd_to_nano(&format!("ATHENA_PLANS: plan {name}: usdPerMonth"), usd)?;
        }
        plans.insert(name, std::sync::Arc::new(plan));
    }
    let default = match default {
        Some(name) if plans.contains_key(name) => name.to_owned(),
        Some(name) => {
            return Err(ConfigError(format!(
                "ATHENA_DEFAULT_PLAN: {name:?} is not one of the plans of ATHENA_PLANS ({})",
                plans.keys().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
        None => plans.keys().next().cloned().unwrap_or_default(),
    };
    Ok(PlansConfig {
        plans,
        default,
        claim: DEFAULT_PLAN_CLAIM.to_owned(),
        spend_cap_nano_usd: 0,
        chat_enabled: true,
        explicit: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inherited(catalog: &Catalog) -> Inherited<'_> {
        Inherited {
            tokens_per_day: 1000,
            tokens_per_month: 20_000,
            requests_per_minute: 100,
            concurrent_streams: 3,
            max_output_tokens: 4096,
            catalog,
        }
    }

    #[test]
    fn a_plan_inherits_what_it_does_not_set_and_resolves_model_aliases() {
        let catalog = Catalog::all();
        let c = parse(
            r#"{"free": {"tokensPerDay": 10, "models": ["claude-haiku"], "usdPerMonth": 1.5, "webSearch": false},
                "pro": {}}"#,
            Some("free"),
            inherited(&catalog),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let free = c.get("free").map(|p| p.as_ref().clone());
        let free = free.unwrap_or_else(|| panic!("free exists"));
        assert_eq!(free.tokens_per_day, 10);
        assert_eq!(free.tokens_per_month, 20_000, "inherited");
        assert_eq!(free.nano_usd_per_month, 1_500_000_000);
        assert_eq!(free.models, vec!["us.anthropic.claude-haiku-4-5-20251001-v1:0"]);
        assert!(!free.web_search && free.tools && free.attachments);
        let pro = c.get("pro").map(|p| p.models.len());
        assert_eq!(pro, Some(catalog.models().len()), "every allowed model by default");
        assert_eq!(c.default, "free");
        assert!(c.has_choices());
    }

    #[test]
    fn bad_plans_are_refused_with_the_reason() {
        let catalog = Catalog::all();
        let err = |raw: &str, default: Option<&str>| {
            parse(raw, default, inherited(&catalog))
                .err()
                .map(|e| e.0)
                .unwrap_or_default()
        };
        assert!(err("{}", None).contains("names no plan"));
        assert!(err(r#"{"Free": {}}"#, None).contains("not a plan name"));
        assert!(err(r#"{"free": {"models": ["gpt-4"]}}"#, None).contains("not an allowed model"));
        assert!(err(r#"{"free": {"models": []}}"#, None).contains("lists no model"));
        assert!(err(r#"{"free": {"usdPerMonth": -1}}"#, None).contains("usdPerMonth"));
        assert!(err(r#"{"free": {"tokenPerDay": 1}}"#, None).contains("unknown field"));
        assert!(err(r#"{"free": {}}"#, Some("pro")).contains("ATHENA_DEFAULT_PLAN"));
        assert!(err(r#"{"free": {"maxOutputTokens": 0}}"#, None).contains("at least 1"));
    }

    #[test]
    fn dollars_become_exact_nano_dollars() {
        assert_eq!(dollars("x", "12.34").ok(), Some(12_340_000_000));
        assert_eq!(dollars("x", "0").ok(), Some(0));
        assert!(dollars("x", "NaN").is_err());
        assert!(dollars("x", "-0.5").is_err());
        assert!(dollars("x", "lots").is_err());
    }
}

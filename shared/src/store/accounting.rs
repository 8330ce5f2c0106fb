//! The ports of what a user spends and may spend (re-exported by [`super::ports`]): an admin's
//! plan override per user, the per-user usage rows written by every finished turn, the levels
//! of a user's budgets, and the deployment's spend this month (the spend cap).

use async_trait::async_trait;

#[allow(unused_imports)]
use super::ports::{TurnStart, Turns};
use crate::domain::{Timestamp, UserId};
use crate::error::StoreError;

/// Per-user limits a chat turn is admitted under (from [`crate::config::Config`]); 0 switches one off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnLimits {
    /// Requests per user per minute (the counter the other routes share).
    pub requests_per_minute: u64,
    /// Tokens (input + output) per user per UTC day.
    pub tokens_per_day: u64,
    /// Tokens per user per UTC calendar month.
    pub tokens_per_month: u64,
    /// Nano-dollars per user per UTC calendar month (the plan's dollar budget).
    pub nano_usd_per_month: u64,
    /// Chat streams a user may have open at once.
    pub max_streams: u32,
    /// How long a stream slot is leased for (seconds): a crashed instance's slot frees itself then.
    pub lease_secs: i64,
}

impl TurnLimits {
    /// No limit at all.
    pub fn none() -> Self {
        Self {
            requests_per_minute: 0,
            tokens_per_day: 0,
            tokens_per_month: 0,
            nano_usd_per_month: 0,
            max_streams: 0,
            lease_secs: 300,
        }
    }
}

/// Settling a turn's budget reservation: the day and month budget items of the turn's start get
/// `actual - reserved` added (negative when the turn cost less than reserved). Nothing is written
/// when the two are equal (both 0 when budgets are off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Tokens reserved by [`Turns::begin_turn`] ([`TurnStart::reservation`]).
    pub reserved: u64,
    /// What the turn cost: the provider's reported usage, or the estimate when none was reported.
    pub actual: u64,
    /// Nano-dollars reserved on the month's dollar budget ([`TurnStart::reservation_nano_usd`]).
    pub reserved_nano_usd: u64,
    /// What the turn cost in nano-dollars, priced from the catalog.
    pub actual_nano_usd: u64,
}

impl Settlement {
    /// Charges `actual` tokens with nothing reserved (what a turn admitted without a reservation owes).
    pub fn charge(actual: u64) -> Self {
        Self {
            reserved: 0,
            actual,
            ..Self::default()
        }
    }

    /// What to add to the budget items: `actual - reserved`, saturating at the `i64` range.
    pub fn delta(&self) -> i64 {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        signed(self.actual).saturating_sub(signed(self.reserved))
    }

    /// What to add to the month's dollar budget item: `actual_nano_usd - reserved_nano_usd`.
    pub fn delta_nano_usd(&self) -> i64 {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        signed(self.actual_nano_usd).saturating_sub(signed(self.reserved_nano_usd))
    }
}

/// An admin's choice of a user's plan (over their claim and the default).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOverride {
    /// The plan's name (one of `ATHENA_PLANS`).
    pub plan: String,
    /// The admin who set it.
    pub set_by: UserId,
    /// When.
    pub set_at: Timestamp,
}

/// One user's usage of one model in one solution on one UTC day: what the turns that finished
/// that day reported (written in the same atomic write as the reply and the daily counters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageRow {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Solution bucket (`general` or a solution name).
    pub solution: String,
    /// Model id.
    pub model: String,
    /// Chat turns.
    pub requests: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read tokens.
    pub cache_read_tokens: u64,
    /// Cache-write tokens.
    pub cache_write_tokens: u64,
    /// Cost, nano-dollars.
    pub cost_nano_usd: u64,
}

/// What a user's budget items hold now (spent plus what turns in flight reserved).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetLevels {
    /// Tokens of the UTC day.
    pub tokens_day: u64,
    /// Tokens of the UTC month.
    pub tokens_month: u64,
    /// Nano-dollars of the UTC month.
    pub nano_usd_month: u64,
}

/// Plans, usage and spend.
#[async_trait]
pub trait Accounting: Send + Sync {
    /// The admin's plan override of `user`, if any.
    async fn plan_override(&self, user: &UserId) -> Result<Option<PlanOverride>, StoreError>;

    /// Sets (`Some`) or removes (`None`) the plan override of `user`.
    async fn set_plan_override(&self, user: &UserId, value: Option<&PlanOverride>) -> Result<(), StoreError>;

    /// `user`'s usage rows of the days `from..=to` (`YYYY-MM-DD`), in day order.
    async fn usage_between(&self, user: &UserId, from: &str, to: &str) -> Result<Vec<UsageRow>, StoreError>;

    /// What `user`'s day and month budget items hold at `at` (one batch read).
    async fn budget_levels(&self, user: &UserId, at: Timestamp) -> Result<BudgetLevels, StoreError>;

    /// The deployment's spend in the UTC month `month` (`YYYY-MM`), nano-dollars: the cost of
    /// every finished turn, added in its finishing write.
    async fn month_spend(&self, month: &str) -> Result<u64, StoreError>;
}

//! What the application records about itself: analytics events, the daily counters they add up
//! to, and audit entries. Plain data: the analytics and audit services build them, the store keeps them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{ts, Solution, Timestamp};

/// Upper bounds (ms) of the latency histogram buckets; the last bucket is open-ended.
pub const BUCKETS_MS: [u64; 17] = [
    50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 60_000,
];

/// An analytics event (seed 001's `AnalyticsEvent`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsEvent {
    /// A ULID.
    pub id: String,
    /// `conversation_created`, `message_sent`, `api_call`, `model_switched`, `error`, `performance`.
    pub event_type: String,
    /// The solution, `None` for the general chat.
    pub solution_type: Option<Solution>,
    /// The (hashed) user.
    pub user_id: Option<String>,
    /// The conversation concerned.
    pub conversation_id: Option<String>,
    /// The model concerned.
    pub model: Option<String>,
    /// Free-form details (tokens, latency, cost, error code).
    pub metadata: serde_json::Value,
    /// When it happened.
    #[serde(with = "ts")]
    pub timestamp: Timestamp,
}

/// What one counter update adds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsDelta {
    /// Chat turns.
    pub requests: u64,
    /// Failed chat turns.
    pub errors: u64,
    /// Conversations created.
    pub conversations: u64,
    /// User messages sent.
    pub messages: u64,
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
    /// Latency histogram (counts per bucket of [`BUCKETS_MS`], plus one open bucket).
    pub latency: Vec<u64>,
    /// Time-to-first-token histogram.
    pub ttft: Vec<u64>,
    /// Hashed users active.
    pub users: BTreeSet<String>,
    /// Thumbs-up reactions given (net: a reaction changed or removed later subtracts, on the
    /// day of the change, from the row of the message's solution and model).
    #[serde(default)]
    pub thumbs_up: i64,
    /// Thumbs-down reactions given (net, as `thumbs_up`).
    #[serde(default)]
    pub thumbs_down: i64,
}

impl StatsDelta {
    /// Adds another delta into this one.
    pub fn merge(&mut self, other: &StatsDelta) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.conversations += other.conversations;
        self.messages += other.messages;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_nano_usd += other.cost_nano_usd;
        merge_hist(&mut self.latency, &other.latency);
        merge_hist(&mut self.ttft, &other.ttft);
        self.users.extend(other.users.iter().cloned());
        self.thumbs_up += other.thumbs_up;
        self.thumbs_down += other.thumbs_down;
    }
}

fn merge_hist(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// One stored counter row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsRow {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Solution bucket (`general` or a solution).
    pub solution: String,
    /// Model id.
    pub model: String,
    /// The counters.
    pub stats: StatsDelta,
}

/// One audit log entry: who did what to which resource, how it ended, when.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// ULID (time-ordered).
    pub id: String,
    /// The acting user.
    pub user_id: String,
    /// `conversation.create`, `chat.turn`, ...
    pub action: String,
    /// The conversation concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `ok` or the error code.
    pub status: String,
    /// The request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When.
    #[serde(with = "super::ts")]
    pub at: Timestamp,
    /// Expiry, epoch seconds (retention); not part of the API view.
    #[serde(default, skip_serializing)]
    pub expires_at: i64,
}

/// A user id as analytics stores it: a stable SHA-256 tag, not reversible to the id.
pub fn user_hash(user: &super::UserId) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("athena-analytics\0{user}").as_bytes());
    digest[..10].iter().map(|b| format!("{b:02x}")).collect()
}

//! Storage: one port per capability and two adapters held to the same semantics.
//!
//! - [`ports`]: the capability traits ([`Conversations`], [`Messages`], [`Turns`], [`Activity`],
//!   [`Stats`], [`Counters`], [`Idempotency`]) and their sum [`Store`], with the values they take
//!   and return.
//! - [`rules`]: what every adapter shares, written once (size bounds, page sizes, the listing
//!   rank, a conversation as created, stored timestamps, the rate window, budget, lease, event and
//!   stats expiries, day ranges, idempotency records).
//! - [`cursor`]: opaque, scoped pagination cursors, their positions and over-fetched paging.
//! - [`schema`]: DynamoDB key formats and table definitions (in `dynamo/`; the embedded store keys
//!   its counters the same way).
//! - [`compose`]: a store assembled from one capability each ([`StoreParts`]), so a wrapper
//!   (fault injection, a test double) replaces one capability, not every method.
//! - [`counting`]: a wrapper that records every call (round-trip counts in tests and benchmarks).
//! - `methods`: every port method listed once (`for_each_port!`); [`compose`] and [`counting`]
//!   generate their pass-through impls from it, so a new port method is written in its port, in
//!   this list and in the two adapters.
//! - [`dynamo::DynamoStore`]: DynamoDB, the production store (tables keyed by conversation).
//! - [`embedded::EmbeddedStore`]: SQLite in a file, the default when no table is configured
//!   (feature `embedded`).
//!
//! Each adapter is a folder with one file per capability; every capability method runs in a
//! tracing span named `<adapter>.<operation>` (`dynamo.begin_turn`, `embedded.list_messages`).
//!
//! One conformance suite (`tests/api/store_conformance.rs`) holds both adapters to the same
//! behaviour. `docs/data-model.md` lists every access pattern with its key condition and round trips.

pub mod accounting;
pub mod compose;
pub mod counting;
pub mod cursor;
pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod feedback;
pub mod import_jobs;
pub mod links;
mod methods;
mod open;
pub mod organizing;
pub mod ports;
pub mod rules;
pub mod sharing;

pub use dynamo::schema;

pub use compose::StoreParts;
pub use open::{from_env, open, open_dynamo, probe, Probe, PROBE_ID};
pub use ports::{
    Accounting, Accounts, ActiveLeaf, Activity, Appended, Bookmark, BudgetLevels, Checkpoint, CheckpointAck,
    ConversationPatch, Conversations, Counters, Erased, Feedback, FileCondition, Files, FolderDeleted, HeldKey,
    Housekeeping, Idempotency, ImportJobs, IndexHit, IndexQuery, LinkUpdate, Links, ListConversations, ListMessages,
    Messages, Organizer, Page, PlanOverride, ProjectConversations, ProjectPatch, Projects, PromptPatch, Prompts,
    Reaction, Reservation, SavedResponse, Search, Settlement, SharedSnapshot, Stats, StatsUpdate, Store, StoredKey,
    StreamLease, Streams, TagCount, Thumb, Touch, TurnBegun, TurnFinish, TurnLimits, TurnStart, TurnWrite, Turns,
    UsageRow,
};
pub use rules::{
    check_message_size, days_between, listing_rank, page_size, pin_base, retry_after, scaled_time, window_ends,
    CHECKPOINT_TTL_SECS, DEFAULT_PAGE, MAX_CHECKPOINT_BYTES, MAX_CONTENT_BYTES, MAX_PAGE, MAX_PARTS_BYTES,
    RECEIPT_TTL_SECS, STREAM_RETRY_AFTER,
};
pub use sharing::{Grant, GrantRole, Grantee, Sharing, MAX_GRANTS_PER_CONVERSATION};

/// The capability traits, to call store methods on any store: `use shared::store::prelude::*;`.
pub mod prelude {
    pub use super::ports::{
        Accounting, Accounts, Activity, Conversations, Counters, Feedback, Files, Housekeeping, Idempotency,
        ImportJobs, Links, Messages, Organizer, Projects, Prompts, Search, Sharing, Stats, Store, Streams, Turns,
    };
}

//! The application state: everything a request needs, built once per cold start and shared by
//! every invocation (configuration, the store, the id generator, the model provider, the clock).
//! The services (chat, analytics, audit) and the HTTP layer read it; it depends on neither.

use std::sync::{Arc, Mutex, PoisonError};

use crate::config::{ChatConfig, Config};
use crate::domain::{Clock, IdGenerator, SystemClock, Timestamp};
use crate::llm::ChatModel;
use crate::mcp::{McpTools, NoToolServers, ToolServers};
use crate::store::Store;

/// Everything a handler needs.
pub struct AppState {
    /// Configuration (chat settings in `config.chat`).
    pub config: Config,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Id generator (ULIDs, monotonic within the process).
    pub ids: IdGenerator,
    /// The model provider (chat routes only).
    pub model: Option<Arc<dyn ChatModel>>,
    /// Where "now" comes from (the system clock; tests move a manual one).
    pub clock: Arc<dyn Clock>,
    /// The last health check's store answer, reused for a few seconds (`api::health`).
    pub health: HealthMemo,
    /// The deployment's MCP tool servers (`config.chat.mcp`), with their cached tool lists:
    /// none until [`AppState::with_chat`] (or the chat function's init) sets them.
    pub mcp: Arc<dyn ToolServers>,
    /// Where attached files' bytes live (`None`: attachments are off).
    pub blobs: Option<Arc<dyn crate::blobs::Blobs>>,
    /// Where CloudWatch EMF lines go (stdout when `config.runtime.emf`; tests capture them).
    pub metrics: crate::metrics::Emitter,
}

/// One remembered store check: when it ran, whether the store answered, how long it took.
#[derive(Debug, Default)]
pub struct HealthMemo(Mutex<Option<(Timestamp, bool, u64)>>);

impl HealthMemo {
    /// The remembered answer `(store ok, latency ms)` if it is younger than `max_age` at `now`.
    pub fn fresh(&self, now: Timestamp, max_age: chrono::Duration) -> Option<(bool, u64)> {
        let memo = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        memo.filter(|(at, _, _)| now >= *at && now - *at < max_age)
            .map(|(_, ok, latency)| (ok, latency))
    }

    /// Remembers an answer obtained at `at`.
    pub fn remember(&self, at: Timestamp, ok: bool, latency_ms: u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((at, ok, latency_ms));
    }
}

impl AppState {
    /// State from parts, without a model provider.
    pub fn new(mut config: Config, store: Arc<dyn Store>) -> Self {
        config.refresh_default_plan();
        Self {
            store,
            ids: IdGenerator::new(),
            model: None,
            clock: Arc::new(SystemClock),
            health: HealthMemo::default(),
            mcp: Arc::new(NoToolServers),
            blobs: None,
            metrics: crate::metrics::Emitter::from_flag(config.runtime.emf),
            config,
        }
    }

    /// Adds the model provider and chat settings.
    pub fn with_chat(mut self, model: Arc<dyn ChatModel>, chat: ChatConfig) -> Self {
        self.model = Some(model);
        self.mcp = Arc::new(McpTools::new(&chat.mcp));
        self.config.chat = chat;
        self.config.refresh_default_plan();
        self
    }

    /// Sets where attached files' bytes live.
    pub fn with_blobs(mut self, blobs: Arc<dyn crate::blobs::Blobs>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Replaces where EMF lines go (tests: [`crate::metrics::Emitter::capture`]).
    pub fn with_metrics(mut self, metrics: crate::metrics::Emitter) -> Self {
        self.metrics = metrics;
        self
    }

    /// Replaces the clock (tests: a [`crate::domain::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, from the state's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

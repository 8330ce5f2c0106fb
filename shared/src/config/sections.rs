//! The sections of [`super::Config`] beside the request limits: chat, store, provider, runtime.

use std::time::Duration;

use super::{ConfigError, Env};
use crate::catalog::Catalog;
use crate::domain::Solution;

/// Chat settings.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// The solution this deployment serves (`ATHENA_SOLUTION`); `None` serves every chat route.
    pub only: Option<Option<Solution>>,
    /// Models tried in order when the chosen one is throttled or unavailable (`ATHENA_FALLBACK_MODELS`).
    pub fallback: Vec<String>,
    /// How long to wait for the first token (`ATHENA_FIRST_TOKEN_TIMEOUT_MS`, default 20000).
    pub first_token_timeout: Duration,
    /// How long a whole reply may take (`ATHENA_TOTAL_TIMEOUT_MS`, default 240000).
    pub total_timeout: Duration,
    /// Most output tokens per reply (`ATHENA_MAX_OUTPUT_TOKENS`, default 4096, capped by the model).
    pub max_output_tokens: u32,
    /// The web search API, if configured.
    pub search: Option<SearchConfig>,
    /// The deployment's MCP tool servers (`ATHENA_MCP_SERVERS`).
    pub mcp: Vec<super::McpServerConfig>,
    /// Most tool calls in one turn, a continued one included (`ATHENA_MAX_TOOL_CALLS`, default 8):
    /// calls past it are answered with a tool error instead of running.
    pub max_tool_calls: u32,
    /// The model that writes a new conversation's title (`ATHENA_TITLE_MODEL`), if any.
    pub title_model: Option<String>,
    /// A disconnect does not stop a turn, and its stream can be resumed
    /// (`ATHENA_RESUMABLE_STREAMS`, default true).
    pub resumable_streams: bool,
    /// How often a turn checkpoints (`ATHENA_CHECKPOINT_MS`, default 1000).
    pub checkpoint_interval: Duration,
    /// Longest one attempt of the finishing write (or the separate slot release) may take before
    /// it counts as an ambiguous timeout and is retried (default 2 s; not read from the
    /// environment: tests shorten it to stall the write without waiting seconds).
    pub store_attempt_timeout: Duration,
}

/// A search HTTP API: `POST url` with `{"query", "max_results"}` and an optional bearer key,
/// answering JSON (Tavily-style `{"results": [{title, url, content}]}` or any JSON).
#[derive(Clone)]
pub struct SearchConfig {
    /// Endpoint.
    pub url: String,
    /// Bearer key.
    pub api_key: Option<String>,
}

impl std::fmt::Debug for SearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            only: None,
            fallback: Vec::new(),
            first_token_timeout: Duration::from_secs(20),
            total_timeout: Duration::from_secs(240),
            max_output_tokens: 4096,
            search: None,
            mcp: Vec::new(),
            max_tool_calls: 8,
            title_model: None,
            resumable_streams: true,
            checkpoint_interval: Duration::from_secs(1),
            store_attempt_timeout: Duration::from_secs(2),
        }
    }
}

impl ChatConfig {
    /// Reads `ATHENA_SOLUTION`, `ATHENA_FALLBACK_MODELS`, the timeouts, the output cap and
    /// `ATHENA_SEARCH_URL`/`_API_KEY`.
    pub fn read(env: &Env<'_>, catalog: &Catalog) -> Result<Self, ConfigError> {
        let defaults = ChatConfig::default();
        let only = match env.text("ATHENA_SOLUTION").as_deref() {
            None => None,
            Some("general") => Some(None),
            Some(other) => {
                Some(Some(other.parse::<Solution>().map_err(|_| {
                    ConfigError(format!("ATHENA_SOLUTION: unknown solution {other:?}"))
                })?))
            }
        };
        let fallback = env
            .list("ATHENA_FALLBACK_MODELS")
            .iter()
            .map(|id| {
                catalog
                    .get(id)
                    .map(|m| m.id.to_owned())
                    .ok_or_else(|| ConfigError(format!("ATHENA_FALLBACK_MODELS: {id} is not an allowed model")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_output_tokens =
            u32::try_from(env.positive("ATHENA_MAX_OUTPUT_TOKENS", u64::from(defaults.max_output_tokens))?)
                .map_err(|_| ConfigError("ATHENA_MAX_OUTPUT_TOKENS is too large".to_owned()))?;
        let search = env.url("ATHENA_SEARCH_URL")?.map(|url| SearchConfig {
            url,
            api_key: env.secret("ATHENA_SEARCH_API_KEY"),
        });
        let title_model = env
            .text("ATHENA_TITLE_MODEL")
            .map(|id| {
                catalog
                    .get(&id)
                    .map(|m| m.id.to_owned())
                    .ok_or_else(|| ConfigError(format!("ATHENA_TITLE_MODEL: {id} is not an allowed model")))
            })
            .transpose()?;
        Ok(Self {
            only,
            fallback,
            title_model,
            first_token_timeout: env.millis("ATHENA_FIRST_TOKEN_TIMEOUT_MS", defaults.first_token_timeout)?,
            total_timeout: env.millis("ATHENA_TOTAL_TIMEOUT_MS", defaults.total_timeout)?,
            max_output_tokens,
            search,
            mcp: super::mcp::read(env)?,
            max_tool_calls: u32::try_from(env.positive("ATHENA_MAX_TOOL_CALLS", u64::from(defaults.max_tool_calls))?)
                .map_err(|_| ConfigError("ATHENA_MAX_TOOL_CALLS is too large".to_owned()))?,
            resumable_streams: env.flag("ATHENA_RESUMABLE_STREAMS", defaults.resumable_streams)?,
            checkpoint_interval: env.millis("ATHENA_CHECKPOINT_MS", defaults.checkpoint_interval)?,
            store_attempt_timeout: defaults.store_attempt_timeout,
        })
    }

    /// Reads the chat section alone from a lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>, catalog: &Catalog) -> Result<Self, ConfigError> {
        Self::read(&Env::from_lookup(get), catalog)
    }
}

/// Which store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// DynamoDB tables (`ATHENA_TABLE` set).
    Dynamo {
        /// The conversations table.
        conversations_table: String,
        /// The analytics events table.
        events_table: String,
        /// Create missing tables at start (local DynamoDB-API servers).
        create_tables: bool,
    },
    /// The embedded SQLite store in a file.
    Embedded {
        /// The file.
        path: String,
    },
    /// No table named inside Lambda, where the embedded store cannot live (`/tmp` does not
    /// outlive an instance): opening the store fails the cold start with this explanation.
    MissingTable,
}

/// The store's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Which store.
    pub kind: StoreKind,
    /// How long analytics events are kept.
    pub event_ttl: Duration,
}

/// Default retention of analytics events, days.
pub const DEFAULT_EVENT_TTL_DAYS: u64 = 90;

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Embedded {
                path: ".athena/athena.db".to_owned(),
            },
            event_ttl: Duration::from_secs(DEFAULT_EVENT_TTL_DAYS * 86_400),
        }
    }
}

impl StoreConfig {
    /// DynamoDB when `ATHENA_TABLE` is set, otherwise the embedded store in `ATHENA_DB`; inside
    /// Lambda the embedded store is refused ([`StoreKind::MissingTable`]).
    pub fn read(env: &Env<'_>, in_lambda: bool) -> Result<Self, ConfigError> {
        let days = env.positive("ATHENA_EVENT_TTL_DAYS", DEFAULT_EVENT_TTL_DAYS)?;
        let event_ttl = Duration::from_secs(days.saturating_mul(86_400));
        let kind = match env.text("ATHENA_TABLE") {
            Some(table) => StoreKind::Dynamo {
                events_table: env
                    .text("ATHENA_EVENTS_TABLE")
                    .unwrap_or_else(|| format!("{table}-events")),
                conversations_table: table,
                create_tables: env.flag("ATHENA_CREATE_TABLES", false)?,
            },
            None if in_lambda => StoreKind::MissingTable,
            None => StoreKind::Embedded {
                path: env.text("ATHENA_DB").unwrap_or_else(|| ".athena/athena.db".to_owned()),
            },
        };
        Ok(Self { kind, event_ttl })
    }

    /// A name for logs: the table or the file.
    pub fn describe(&self) -> String {
        match &self.kind {
            StoreKind::Dynamo {
                conversations_table, ..
            } => format!("DynamoDB table {conversations_table}"),
            StoreKind::Embedded { path } => format!("embedded {path}"),
            StoreKind::MissingTable => "no store (ATHENA_TABLE unset)".to_owned(),
        }
    }
}

/// Which model provider.
#[derive(Clone, PartialEq, Eq)]
pub enum ProviderConfig {
    /// Claude on Amazon Bedrock (credentials and region from the AWS SDK's own chain).
    Bedrock,
    /// Any OpenAI-compatible chat completions API.
    OpenAi {
        /// Base URL.
        base_url: String,
        /// Bearer key.
        api_key: Option<String>,
        /// A model name that replaces the catalog id.
        model: Option<String>,
    },
    /// The offline scripted model (demo and tests).
    Scripted,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderConfig::Bedrock => f.write_str("Bedrock"),
            ProviderConfig::OpenAi { base_url, model, .. } => f
                .debug_struct("OpenAi")
                .field("base_url", base_url)
                .field("model", model)
                .finish_non_exhaustive(),
            ProviderConfig::Scripted => f.write_str("Scripted"),
        }
    }
}

impl ProviderConfig {
    /// Reads `ATHENA_PROVIDER` and, for `openai`, `ATHENA_OPENAI_*`.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        match env.text("ATHENA_PROVIDER").as_deref() {
            None | Some("bedrock") => Ok(ProviderConfig::Bedrock),
            Some("scripted") => Ok(ProviderConfig::Scripted),
            Some("openai") => Ok(ProviderConfig::OpenAi {
                base_url: env
                    .url("ATHENA_OPENAI_BASE_URL")?
                    .unwrap_or_else(|| "https://openrouter.ai/api/v1".to_owned()),
                api_key: env.secret("ATHENA_OPENAI_API_KEY"),
                model: env.text("ATHENA_OPENAI_MODEL"),
            }),
            Some(other) => Err(ConfigError(format!(
                "ATHENA_PROVIDER must be bedrock, openai or scripted, not {other:?}"
            ))),
        }
    }
}

/// `athena-local`'s connection limit when `ATHENA_MAX_CONNECTIONS` is unset.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// Where the process runs and its switches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set).
    pub in_lambda: bool,
    /// Open the DynamoDB connection during Lambda init (`ATHENA_WARM_CONNECTIONS`).
    pub warm_connections: bool,
    /// Write CloudWatch EMF lines (`ATHENA_EMF`; on in Lambda by default): `crate::metrics`.
    pub emf: bool,
    /// `athena-local`'s listen address (`ATHENA_ADDR`).
    pub addr: String,
    /// Most connections `athena-local` serves at once (`ATHENA_MAX_CONNECTIONS`).
    pub max_connections: u64,
    /// The conversations binary runs as the import jobs' worker, on the bucket's S3 events
    /// (`ATHENA_IMPORT_WORKER`), instead of serving HTTP.
    pub import_worker: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            in_lambda: false,
            warm_connections: true,
            emf: false,
            addr: "127.0.0.1:3000".to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            import_worker: false,
        }
    }
}

impl RuntimeConfig {
    /// Reads the runtime switches.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let in_lambda = env.is_set("AWS_LAMBDA_FUNCTION_NAME");
        Ok(Self {
            in_lambda,
            warm_connections: env.flag("ATHENA_WARM_CONNECTIONS", true)?,
            emf: env.flag("ATHENA_EMF", in_lambda)?,
            addr: env.text("ATHENA_ADDR").unwrap_or_else(|| "127.0.0.1:3000".to_owned()),
            max_connections: env.positive("ATHENA_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)?,
            import_worker: env.flag("ATHENA_IMPORT_WORKER", false)?,
        })
    }

    /// `ATHENA_LOG_FORMAT=text`: human-readable logs (read before the rest, by `telemetry::init`).
    pub fn text_logs(env: &Env<'_>) -> bool {
        env.text("ATHENA_LOG_FORMAT").is_some_and(|v| v == "text")
    }
}

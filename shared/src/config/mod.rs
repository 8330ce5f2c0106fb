//! Configuration: one typed [`Config`], read once from the environment at cold start (chat,
//! store, provider and runtime settings included). A bad value stops the function at init with a
//! clear message instead of failing requests later. Every variable, its default and its meaning
//! are in [`env::VARIABLES`] (rendered in `docs/configuration.md`); each kind of value has one
//! parser in [`env::Env`].

pub mod env;
pub mod files;
pub mod mcp;
pub mod plans;
pub mod prompts;
mod sections;

pub use env::{Env, Variable, VARIABLES};
pub use mcp::{McpServerConfig, Secret};
pub use sections::{
    ChatConfig, ProviderConfig, RuntimeConfig, SearchConfig, StoreConfig, StoreKind, DEFAULT_EVENT_TTL_DAYS,
    DEFAULT_MAX_CONNECTIONS,
};

use crate::catalog::Catalog;
use crate::domain::UserId;

/// A configuration error, reported at cold start.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// How callers are identified.
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// No authentication: every request is this one user. For the local gateway.
    None {
        /// The single user.
        user: UserId,
    },
    /// API Gateway verified a JWT; its claims are in the request context and `sub` is the user.
    ApiGateway,
    /// The function verifies the bearer JWT itself (function URLs, the local gateway).
    Jwt(std::sync::Arc<crate::auth::JwtVerifier>),
}

/// Which origins may call from a browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers at all (same-origin or API Gateway handles CORS).
    Off,
    /// Any origin (`*`); no credentials are involved, tokens travel in `Authorization`.
    Any,
    /// These exact origins.
    Origins(Vec<String>),
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if it is allowed.
    pub fn allow(&self, origin: &str) -> Option<String> {
        match self {
            Cors::Off => None,
            Cors::Any => Some("*".to_owned()),
            Cors::Origins(list) => list.iter().find(|o| o.as_str() == origin).cloned(),
        }
    }
}

/// Size limits of requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body, bytes.
    pub max_body_bytes: usize,
    /// Largest body of `POST /api/import` (an export file sent directly), bytes.
    pub max_import_bytes: usize,
    /// Longest user or system message, characters.
    pub max_message_chars: usize,
    /// Longest assistant or tool message posted through the messages API, characters.
    pub max_reply_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_import_bytes: 5 * 1024 * 1024,
            max_message_chars: 10_000,
            max_reply_chars: 200_000,
        }
    }
}

/// Everything configurable.
#[derive(Clone, Debug)]
pub struct Config {
    /// Caller identification.
    pub auth: AuthMode,
    /// Browser origins.
    pub cors: Cors,
    /// Allowed models.
    pub catalog: Catalog,
    /// Request limits.
    pub limits: Limits,
    /// Requests a user may make per minute, across every instance (0: no limit).
    pub rate_limit_per_minute: u64,
    /// Users who may read analytics (`ATHENA_ADMINS`, comma-separated user ids).
    pub admins: Vec<UserId>,
    /// Tokens a user may spend per UTC day (0: no limit).
    pub token_budget_day: u64,
    /// Tokens a user may spend per UTC month (0: no limit).
    pub token_budget_month: u64,
    /// Chat streams a user may have open at once (0: no limit).
    pub max_concurrent_streams: u32,
    /// Days audit entries are kept.
    pub audit_retention_days: u64,
    /// Days a conversation may stay untouched before it goes to the trash (0: off).
    pub retention_days: u64,
    /// Chat settings (solution, fallback, timeouts, output cap, web search).
    pub chat: ChatConfig,
    /// Which store, and its settings.
    pub store: StoreConfig,
    /// Which model provider.
    pub provider: ProviderConfig,
    /// Where the process runs (Lambda or not) and its switches.
    pub runtime: RuntimeConfig,
    /// The deployment's shared, read-only prompts (`ATHENA_SHARED_PROMPTS`).
    pub shared_prompts: Vec<prompts::SharedPrompt>,
    /// File attachments.
    pub files: files::FilesConfig,
    /// Plans, the spend cap and the chat kill switch.
    pub plans: plans::PlansConfig,
}

/// Default per-user requests per minute.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u64 = 100;
/// Default daily token budget per user.
pub const DEFAULT_TOKEN_BUDGET_DAY: u64 = 1_000_000;
/// Default monthly token budget per user.
pub const DEFAULT_TOKEN_BUDGET_MONTH: u64 = 20_000_000;
/// Default cap on a user's concurrent chat streams.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 3;
/// Default audit retention, days.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 365;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads configuration through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Env::from_lookup(get))
    }

    /// Reads every section from `env`.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let runtime = RuntimeConfig::read(env)?;
        let in_lambda = runtime.in_lambda;
        let local_user = env.text("ATHENA_LOCAL_USER").unwrap_or_else(|| "local-user".to_owned());
        let local_user = UserId::parse(&local_user).map_err(|e| ConfigError(format!("ATHENA_LOCAL_USER: {e}")))?;
        let auth = match env.text("ATHENA_AUTH").as_deref() {
            None if in_lambda => AuthMode::ApiGateway,
            None | Some("none") => {
                if in_lambda && !env.flag("ATHENA_ALLOW_NO_AUTH", false)? {
                    return Err(ConfigError(
                        "ATHENA_AUTH=none inside Lambda would make every caller the same user; set ATHENA_ALLOW_NO_AUTH=true to force it".to_owned(),
                    ));
                }
                AuthMode::None { user: local_user }
            }
            Some("apigw") => AuthMode::ApiGateway,
            Some("jwt") => AuthMode::Jwt(std::sync::Arc::new(jwt_verifier(env)?)),
            Some(other) => {
                return Err(ConfigError(format!(
                    "ATHENA_AUTH must be none, apigw or jwt, not {other:?}"
                )))
            }
        };
        let cors = match env.text("ATHENA_CORS_ORIGINS").as_deref() {
            None => Cors::Off,
            Some("*") => Cors::Any,
            Some(_) => Cors::Origins(
                env.list("ATHENA_CORS_ORIGINS")
                    .into_iter()
                    .map(|o| o.trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        };
        let catalog = Catalog::from_config(
            env.raw("ATHENA_MODELS").as_deref(),
            env.raw("ATHENA_DEFAULT_MODEL").as_deref(),
        )
        .map_err(ConfigError)?;
        let defaults = Limits::default();
        let size = |name: &str, default: usize| -> Result<usize, ConfigError> {
            usize::try_from(env.positive(name, default as u64)?)
                .map_err(|_| ConfigError(format!("{name} is too large")))
        };
        let limits = Limits {
            max_body_bytes: size("ATHENA_MAX_BODY_BYTES", defaults.max_body_bytes)?,
            max_import_bytes: size("ATHENA_MAX_IMPORT_BYTES", defaults.max_import_bytes)?,
            max_message_chars: size("ATHENA_MAX_MESSAGE_CHARS", defaults.max_message_chars)?,
            max_reply_chars: size("ATHENA_MAX_REPLY_CHARS", defaults.max_reply_chars)?,
        };
        let max_concurrent_streams = u32::try_from(env.count(
            "ATHENA_MAX_CONCURRENT_STREAMS",
            u64::from(DEFAULT_MAX_CONCURRENT_STREAMS),
        )?)
        .map_err(|_| ConfigError("ATHENA_MAX_CONCURRENT_STREAMS is too large".to_owned()))?;
        let admins = env
            .list("ATHENA_ADMINS")
            .iter()
            .map(|s| UserId::parse(s).map_err(|e| ConfigError(format!("ATHENA_ADMINS: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let chat = ChatConfig::read(env, &catalog)?;
        let rate_limit_per_minute = env.count("ATHENA_RATE_LIMIT_PER_MINUTE", DEFAULT_RATE_LIMIT_PER_MINUTE)?;
        let token_budget_day = env.count("ATHENA_TOKEN_BUDGET_DAY", DEFAULT_TOKEN_BUDGET_DAY)?;
        let token_budget_month = env.count("ATHENA_TOKEN_BUDGET_MONTH", DEFAULT_TOKEN_BUDGET_MONTH)?;
        let plans = plans::PlansConfig::read(
            env,
            plans::Inherited {
                tokens_per_day: token_budget_day,
                tokens_per_month: token_budget_month,
                requests_per_minute: rate_limit_per_minute,
                concurrent_streams: max_concurrent_streams,
                max_output_tokens: chat.max_output_tokens,
                catalog: &catalog,
            },
        )?;
        Ok(Self {
            auth,
            cors,
            catalog,
            limits,
            rate_limit_per_minute,
            admins,
            token_budget_day,
            token_budget_month,
            max_concurrent_streams,
            audit_retention_days: env.positive("ATHENA_AUDIT_RETENTION_DAYS", DEFAULT_AUDIT_RETENTION_DAYS)?,
            retention_days: env.count("ATHENA_RETENTION_DAYS", 0)?,
            chat,
            files: files::FilesConfig::read(env, in_lambda, env.text("ATHENA_DB").as_deref())?,
            store: StoreConfig::read(env, in_lambda)?,
            provider: ProviderConfig::read(env)?,
            runtime,
            shared_prompts: prompts::read(env)?,
            plans,
        })
    }

    /// A local configuration: no auth, any origin, the whole catalog (tests).
    pub fn local() -> Self {
        Self {
            auth: AuthMode::None {
                user: UserId::parse("local-user").unwrap_or_else(|_| unreachable!("a valid literal id")),
            },
            cors: Cors::Any,
            catalog: Catalog::all(),
            limits: Limits::default(),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            admins: Vec::new(),
            token_budget_day: DEFAULT_TOKEN_BUDGET_DAY,
            token_budget_month: DEFAULT_TOKEN_BUDGET_MONTH,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            audit_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
            retention_days: 0,
            chat: ChatConfig::default(),
            store: StoreConfig::default(),
            provider: ProviderConfig::Scripted,
            runtime: RuntimeConfig::default(),
            shared_prompts: Vec::new(),
            files: files::FilesConfig::default(),
            plans: plans::PlansConfig::single(plans::Inherited {
                tokens_per_day: DEFAULT_TOKEN_BUDGET_DAY,
                tokens_per_month: DEFAULT_TOKEN_BUDGET_MONTH,
                requests_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
                concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
                max_output_tokens: ChatConfig::default().max_output_tokens,
                catalog: &Catalog::all(),
            }),
        }
    }

    /// Rebuilds the single default plan from the deployment-wide values (after a test changed
    /// them); a configuration with `ATHENA_PLANS` is left as it is.
    pub fn refresh_default_plan(&mut self) {
        if self.plans.explicit {
            return;
        }
        let mut single = plans::PlansConfig::single(plans::Inherited {
            tokens_per_day: self.token_budget_day,
            tokens_per_month: self.token_budget_month,
            requests_per_minute: self.rate_limit_per_minute,
            concurrent_streams: self.max_concurrent_streams,
            max_output_tokens: self.chat.max_output_tokens,
            catalog: &self.catalog,
        });
        single.spend_cap_nano_usd = self.plans.spend_cap_nano_usd;
        single.chat_enabled = self.plans.chat_enabled;
        single.claim = std::mem::take(&mut self.plans.claim);
        self.plans = single;
    }
}

/// The verifier of `ATHENA_AUTH=jwt`: issuer and audience, and an HS256 secret or a JWKS URL.
fn jwt_verifier(env: &Env<'_>) -> Result<crate::auth::JwtVerifier, ConfigError> {
    let issuer = env
        .text("ATHENA_JWT_ISSUER")
        .ok_or_else(|| ConfigError("ATHENA_AUTH=jwt needs ATHENA_JWT_ISSUER".to_owned()))?;
    let audience = env
        .text("ATHENA_JWT_AUDIENCE")
        .ok_or_else(|| ConfigError("ATHENA_AUTH=jwt needs ATHENA_JWT_AUDIENCE".to_owned()))?;
    match (env.secret("ATHENA_JWT_SECRET"), env.text("ATHENA_JWKS_URL")) {
        (Some(_), Some(_)) => Err(ConfigError(
            "set ATHENA_JWT_SECRET (HS256) or ATHENA_JWKS_URL (RS256/ES256), not both".to_owned(),
        )),
        (Some(secret), None) => {
            if secret.len() < 32 {
                return Err(ConfigError("ATHENA_JWT_SECRET must be at least 32 bytes".to_owned()));
            }
            Ok(crate::auth::JwtVerifier::hs256(secret.as_bytes(), issuer, audience))
        }
        (None, Some(url)) => {
            if !url.starts_with("https://") && !url.starts_with("http://127.") && !url.starts_with("http://localhost") {
                return Err(ConfigError(
                    "ATHENA_JWKS_URL must be https (or a loopback http URL)".to_owned(),
                ));
            }
            Ok(crate::auth::JwtVerifier::jwks(url, issuer, audience))
        }
        (None, None) => Err(ConfigError(
            "ATHENA_AUTH=jwt needs ATHENA_JWT_SECRET or ATHENA_JWKS_URL".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn no_auth_is_the_local_default_and_refused_in_lambda_unless_forced() {
        assert!(matches!(config(&[]).map(|c| c.auth), Ok(AuthMode::None { .. })));
        let lambda = [("AWS_LAMBDA_FUNCTION_NAME", "f")];
        assert!(matches!(config(&lambda).map(|c| c.auth), Ok(AuthMode::ApiGateway)));
        assert!(config(&[lambda[0], ("ATHENA_AUTH", "none")]).is_err());
        assert!(config(&[lambda[0], ("ATHENA_AUTH", "none"), ("ATHENA_ALLOW_NO_AUTH", "true")]).is_ok());
        assert!(config(&[("ATHENA_AUTH", "basic")]).is_err());
    }

    #[test]
    fn budgets_and_the_stream_cap_default_and_switch_off_with_zero() {
        let c = config(&[]).ok();
        assert_eq!(c.as_ref().map(|c| c.token_budget_day), Some(DEFAULT_TOKEN_BUDGET_DAY));
        assert_eq!(c.as_ref().map(|c| c.max_concurrent_streams), Some(3));
        let off = config(&[
            ("ATHENA_TOKEN_BUDGET_DAY", "0"),
            ("ATHENA_TOKEN_BUDGET_MONTH", "0"),
            ("ATHENA_MAX_CONCURRENT_STREAMS", "0"),
        ])
        .ok();
        assert_eq!(
            off.map(|c| (c.token_budget_day, c.token_budget_month, c.max_concurrent_streams)),
            Some((0, 0, 0))
        );
        assert!(config(&[("ATHENA_TOKEN_BUDGET_DAY", "-1")]).is_err());
        assert!(config(&[("ATHENA_AUDIT_RETENTION_DAYS", "0")]).is_err());
    }

    #[test]
    fn limits_and_origins_are_parsed_strictly() {
        assert!(config(&[("ATHENA_MAX_MESSAGE_CHARS", "ten")]).is_err());
        assert!(config(&[("ATHENA_MAX_MESSAGE_CHARS", "0")]).is_err());
        let c = config(&[("ATHENA_CORS_ORIGINS", "https://a.example, https://b.example/")]).map(|c| c.cors);
        assert_eq!(
            c.ok(),
            Some(Cors::Origins(vec![
                "https://a.example".to_owned(),
                "https://b.example".to_owned()
            ]))
        );
    }
}

//! Reading the environment: every variable Athena reads is in [`VARIABLES`] (name, default,
//! meaning; `docs/configuration.md` renders the same table and a test checks that every
//! `ATHENA_*` name in the source is listed there), and every kind of value has one parser here.
//! Nothing else in the crate calls `std::env::var`.

use std::time::Duration;

use super::ConfigError;

/// Where values come from: a name in, the raw value out.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// One configuration variable.
#[derive(Clone, Copy, Debug)]
pub struct Variable {
    /// Its name.
    pub name: &'static str,
    /// Its default, as text (`unset` when there is none).
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

macro_rules! variables {
    ($($name:literal, $default:literal, $meaning:literal;)*) => {
        /// Every variable Athena reads, in the order of `docs/configuration.md`.
        pub const VARIABLES: &[Variable] = &[$(Variable { name: $name, default: $default, meaning: $meaning }),*];
    };
}

variables! {
    "ATHENA_AUTH", "`none` locally, `apigw` in Lambda", "`none` (one local user), `apigw` (API Gateway authorizer claims), `jwt` (verify bearer tokens here)";
    "ATHENA_JWT_ISSUER", "unset", "required `iss` for `ATHENA_AUTH=jwt`";
    "ATHENA_JWT_AUDIENCE", "unset", "required `aud` for `ATHENA_AUTH=jwt`";
    "ATHENA_JWT_SECRET", "unset", "HS256 secret (at least 32 bytes) for `jwt`; never logged";
    "ATHENA_JWKS_URL", "unset", "the issuer's JWKS URL (https, or loopback http) for `jwt`";
    "ATHENA_LOCAL_USER", "`local-user`", "the single user of `ATHENA_AUTH=none`";
    "ATHENA_ALLOW_NO_AUTH", "`false`", "`true` allows `ATHENA_AUTH=none` inside Lambda";
    "ATHENA_ADMINS", "none", "comma-separated user ids allowed to read analytics and anyone's audit log (also: an `admin` group claim)";
    "ATHENA_CORS_ORIGINS", "none (no CORS headers)", "comma-separated allowed browser origins, or `*`";
    "ATHENA_MODELS", "the whole catalog", "comma-separated allowed model ids";
    "ATHENA_DEFAULT_MODEL", "the first allowed", "default model id";
    "ATHENA_MAX_MESSAGE_CHARS", "10000", "longest user or system message, characters";
    "ATHENA_MAX_REPLY_CHARS", "200000", "longest assistant or tool message posted through the messages API, characters";
    "ATHENA_MAX_BODY_BYTES", "1048576", "largest request body, bytes";
    "ATHENA_MAX_IMPORT_BYTES", "5242880", "largest body of `POST /api/import` (an export sent directly; Lambda takes at most 6 MB), bytes";
    "ATHENA_RATE_LIMIT_PER_MINUTE", "100", "requests per user per minute, all instances together (0: off)";
    "ATHENA_TOKEN_BUDGET_DAY", "1000000", "tokens (input + output) per user per UTC day (0: off)";
    "ATHENA_TOKEN_BUDGET_MONTH", "20000000", "tokens per user per UTC calendar month (0: off)";
    "ATHENA_MAX_CONCURRENT_STREAMS", "3", "chat streams a user may have open at once (0: off)";
    "ATHENA_PLANS", "unset (one plan, `default`, of the values above)", "named plans, a JSON object of name to `{tokensPerDay, tokensPerMonth, usdPerMonth, requestsPerMinute, concurrentStreams, models, maxOutputTokens, webSearch, tools, attachments}` (each optional, inheriting the deployment-wide value): see `docs/security.md`";
    "ATHENA_DEFAULT_PLAN", "the first plan by name", "the plan of a user with no override and no plan claim";
    "ATHENA_PLAN_CLAIM", "`plan`", "the JWT claim a user's plan is read from (a string, or a list of groups such as `cognito:groups`: the first that names a plan)";
    "ATHENA_SPEND_CAP_USD", "0", "deployment-wide spend per UTC month in US dollars (0: off); new turns get 503 SPEND_CAP once it is reached";
    "ATHENA_CHAT_ENABLED", "`true`", "the chat kill switch: `false` refuses every chat turn with 503 CHAT_DISABLED while the other routes keep working (per function)";
    "ATHENA_AUDIT_RETENTION_DAYS", "365", "days audit entries are kept (TTL)";
    "ATHENA_RETENTION_DAYS", "0 (off)", "days a conversation may stay untouched (and not pinned) before it goes to the trash (purged 30 days later); applied hourly by the `housekeeping` function and `athena-local`";
    "ATHENA_SOLUTION", "unset (every chat route)", "the one chat a chat function serves: `general` or a solution name";
    "ATHENA_FALLBACK_MODELS", "none", "comma-separated models tried in order when the chosen one is throttled or unavailable before any output";
    "ATHENA_FIRST_TOKEN_TIMEOUT_MS", "20000", "how long a turn waits for the model's first token, ms";
    "ATHENA_TOTAL_TIMEOUT_MS", "240000", "how long a whole reply may take, ms";
    "ATHENA_RESUMABLE_STREAMS", "`true`", "a chat turn runs to its end when its client disconnects, and `GET /api/chat[/solution]/{id}/stream` resumes its stream; `false`: a disconnect stops the turn (stop with `POST /api/chat[/solution]/{id}/stop` either way)";
    "ATHENA_CHECKPOINT_MS", "1000", "how often a streaming turn checkpoints its new events to the store (also written every 16 KB), and how often a resumed stream or a stop is noticed, ms";
    "ATHENA_MAX_OUTPUT_TOKENS", "4096", "most output tokens per reply (capped by the model's own limit)";
    "ATHENA_TITLE_MODEL", "unset (titles from the first message only)", "a small model (catalog id or alias, e.g. `claude-haiku`) that writes a short title for a new conversation while its first reply streams; the title is stored with the reply";
    "ATHENA_SEARCH_URL", "unset (no web search)", "the web search API (`POST {query, max_results}`), http(s)";
    "ATHENA_SEARCH_API_KEY", "unset", "its bearer key; never logged";
    "ATHENA_MCP_SERVERS", "unset (no MCP tools)", "the deployment's MCP tool servers, a JSON array (name, url, solutions, headers, bearer, forwardUser, forwardToken, timeoutMs, listTtlSecs, maxOutputChars, tools, actions, readOnly, allowHttp): see `docs/mcp.md`";
    "ATHENA_SHARED_PROMPTS", "unset (none)", "the deployment's shared, read-only saved prompts, a JSON array of `{id, title, text, tags?}` (same bounds as a user's prompts), listed beside every user's own by `GET /api/prompts`";
    "ATHENA_MAX_TOOL_CALLS", "8", "most tool calls in one chat turn (a turn continued after approvals included); calls past it get a tool error";
    "ATHENA_PROVIDER", "`bedrock`", "model provider: `bedrock`, `openai` (any OpenAI-compatible API) or `scripted` (offline demo model)";
    "ATHENA_OPENAI_BASE_URL", "`https://openrouter.ai/api/v1`", "base URL of the OpenAI-compatible API";
    "ATHENA_OPENAI_API_KEY", "unset", "its bearer key; never logged";
    "ATHENA_OPENAI_MODEL", "unset (the catalog id)", "a model name that replaces the catalog id in every request";
    "ATHENA_FILES_BUCKET", "unset (athena-local: files on disk; Lambda: no attachments)", "the S3 bucket of attached files (the template creates it); `AWS_ENDPOINT_URL_S3` points at a local S3-API server";
    "ATHENA_FILES_DIR", "`files/` beside `ATHENA_DB`", "where `athena-local` keeps attached files when no bucket is set";
    "ATHENA_FILE_QUOTA_BYTES", "1073741824", "bytes of attached files a user may keep (pending uploads count at their declared size)";
    "ATHENA_MAX_FILES_PER_MESSAGE", "5", "most files attached to one message (at most 100)";
    "ATHENA_UPLOAD_TTL_SECS", "300", "how long an upload form (`POST /api/files`) is valid, seconds (at most 3600)";
    "ATHENA_MAX_IMPORT_UPLOAD_BYTES", "268435456", "largest export file an import job takes (`POST /api/imports`: uploaded to the files bucket, imported by a worker), bytes";
    "ATHENA_IMPORT_WORKER", "`false`", "`true`: the conversations binary runs as the import jobs' worker (the bucket's S3 `ObjectCreated` events on `imports/`) instead of serving HTTP (the template's `ImportWorkerFunction`)";
    "ATHENA_TABLE", "unset (embedded store)", "the DynamoDB conversations table; setting it selects DynamoDB";
    "ATHENA_EVENTS_TABLE", "`<ATHENA_TABLE>-events`", "the DynamoDB analytics events table";
    "ATHENA_CREATE_TABLES", "`false`", "`true` creates missing DynamoDB tables at start (local DynamoDB-API servers only)";
    "ATHENA_DB", "`.athena/athena.db`", "the embedded store's SQLite file";
    "ATHENA_EVENT_TTL_DAYS", "90", "days analytics events are kept (TTL)";
    "ATHENA_WARM_CONNECTIONS", "`true`", "`false`: no DynamoDB connection warm-up at Lambda init";
    "ATHENA_EMF", "`true` in Lambda, else `false`", "write CloudWatch Embedded Metric Format lines (chat turns, API responses, refusals, the hourly cost growth)";
    "ATHENA_ADDR", "`127.0.0.1:3000`", "the address `athena-local` listens on";
    "ATHENA_MAX_CONNECTIONS", "10000", "connections `athena-local` serves at once; more wait to be accepted";
    "ATHENA_LOG_FORMAT", "`json`", "`text` for human-readable log lines (local work)";
    "RUST_LOG", "`info` (the AWS SDK, hyper and rmcp at `warn`)", "log levels: comma-separated `level` and `target=level` directives (no regular expressions)";
    "AWS_LAMBDA_FUNCTION_NAME", "set by Lambda", "tells Athena it runs inside Lambda (stricter defaults: `apigw` auth, no embedded store, EMF on)";
}

/// Looks a name up in [`VARIABLES`].
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// A source of variables: the process environment, or a map in tests. Every read goes through
/// one of its typed parsers, each with one error wording.
pub struct Env<'a> {
    get: Lookup<'a>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl<'a> Env<'a> {
    /// The process environment.
    pub fn process() -> Env<'static> {
        Env {
            get: Box::new(|name| std::env::var(name).ok()),
        }
    }

    /// Variables from a lookup function (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self { get: Box::new(get) }
    }

    /// The raw value. Names outside [`VARIABLES`] are a bug (debug builds panic).
    pub fn raw(&self, name: &str) -> Option<String> {
        debug_assert!(variable(name).is_some(), "{name} is not in config::env::VARIABLES");
        (self.get)(name)
    }

    /// A variable the configuration itself names (an MCP server's `{"env": NAME}` header value),
    /// so not in [`VARIABLES`]: raw, empty is `None`; a secret, never put in an error message.
    pub fn referenced(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.is_empty())
    }

    /// Whether the variable is set at all (even empty).
    pub fn is_set(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }

    /// Trimmed text; unset or blank is `None`.
    pub fn text(&self, name: &str) -> Option<String> {
        self.raw(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// `true`/`false` (also `1`/`0`, any case); unset or blank is `default`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.text(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ConfigError(format!("{name} must be true or false, not {other:?}"))),
        }
    }

    /// A positive integer; unset is `default`.
    pub fn positive(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError(format!("{name} must be a positive integer, not {raw:?}"))),
        }
    }

    /// A non-negative integer where 0 switches something off; unset is `default`.
    pub fn count(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .map_err(|_| ConfigError(format!("{name} must be a non-negative integer (0: off), not {raw:?}"))),
        }
    }

    /// A positive number of milliseconds; unset is `default`.
    pub fn millis(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| ConfigError(format!("{name} must be a positive number of milliseconds, not {raw:?}"))),
        }
    }

    /// An http(s) URL; unset or blank is `None`.
    pub fn url(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.text(name) {
            None => Ok(None),
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => Ok(Some(url)),
            Some(other) => Err(ConfigError(format!("{name} must be an http(s) URL, not {other:?}"))),
        }
    }

    /// A comma-separated list, items trimmed, blanks dropped; unset is empty.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.raw(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A secret: raw (not trimmed), empty is `None`. Never put it in an error message.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn env(pairs: &[(&str, &str)]) -> Env<'static> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Env::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn each_kind_of_value_has_one_strict_parser() {
        let e = env(&[
            ("ATHENA_EMF", "TRUE"),
            ("ATHENA_CREATE_TABLES", "yes"),
            ("ATHENA_MAX_BODY_BYTES", "0"),
            ("ATHENA_TOKEN_BUDGET_DAY", "0"),
            ("ATHENA_TOTAL_TIMEOUT_MS", "1500"),
            ("ATHENA_SEARCH_URL", "ftp://x"),
            ("ATHENA_MODELS", " a, ,b "),
        ]);
        assert_eq!(e.flag("ATHENA_EMF", false).ok(), Some(true));
        assert!(e.flag("ATHENA_CREATE_TABLES", false).is_err());
        assert_eq!(e.flag("ATHENA_WARM_CONNECTIONS", true).ok(), Some(true));
        assert!(e.positive("ATHENA_MAX_BODY_BYTES", 1).is_err());
        assert_eq!(e.count("ATHENA_TOKEN_BUDGET_DAY", 5).ok(), Some(0));
        assert_eq!(
            e.millis("ATHENA_TOTAL_TIMEOUT_MS", Duration::ZERO).ok(),
            Some(Duration::from_millis(1500))
        );
        assert!(e.url("ATHENA_SEARCH_URL").is_err());
        assert_eq!(e.list("ATHENA_MODELS"), ["a", "b"]);
    }

    /// Every `ATHENA_*` name written anywhere in the crate's source or the functions is in the
    /// table, the table has no duplicates, and `docs/configuration.md` documents every entry.
    #[test]
    fn every_variable_read_anywhere_is_in_the_table_and_the_docs() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut names = HashSet::new();
        let mut files = Vec::new();
        for dir in ["shared/src", "functions"] {
            collect_rs(&root.join(dir), &mut files);
        }
        assert!(
            files.len() > 20,
            "the source files were not found under {}",
            root.display()
        );
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut rest = text.as_str();
            while let Some(at) = rest.find("\"ATHENA_") {
                let tail = &rest[at + 1..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(tail.len());
                if end > "ATHENA_".len() {
                    names.insert((tail[..end].to_owned(), file.display().to_string()));
                }
                rest = &tail[end..];
            }
            if !file.ends_with("config/env.rs") {
                assert!(
                    !text.contains(concat!("std::env::", "var")),
                    "{} reads the environment itself; read it through config::env",
                    file.display()
                );
            }
        }
        for (name, file) in &names {
            assert!(
                variable(name).is_some(),
                "{name} (in {file}) is not in config::env::VARIABLES"
            );
        }
        let unique: HashSet<&str> = VARIABLES.iter().map(|v| v.name).collect();
        assert_eq!(unique.len(), VARIABLES.len(), "a variable is listed twice");
        let doc = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap_or_default();
        for v in VARIABLES {
            assert!(
                doc.contains(&format!("`{}`", v.name)),
                "docs/configuration.md does not document {}",
                v.name
            );
        }
    }

    fn collect_rs(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect_rs(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
}

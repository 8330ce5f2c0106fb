//! The deployment's MCP tool servers (`ATHENA_MCP_SERVERS`): which servers, for which chats,
//! with which headers, timeouts and tools, and which of their tools are actions that wait for the
//! user's approval. Only the deployment configures servers; end users never name one.
//!
//! `ATHENA_MCP_SERVERS` is a JSON array; each server:
//!
//! ```json
//! {"name": "mes", "url": "https://mes.example.com/mcp",
//!  "solutions": ["manufacturing", "maintenance"],
//!  "headers": {"x-api-key": {"env": "MES_API_KEY"}},
//!  "bearer": {"env": "MES_TOKEN"},
//!  "forwardUser": "x-athena-user", "forwardToken": false,
//!  "timeoutMs": 15000, "listTtlSecs": 300, "maxOutputChars": 16384,
//!  "tools": ["machine_status", "create_work_order"],
//!  "actions": ["create_work_order"], "readOnly": []}
//! ```
//!
//! A header value (and `bearer`) is a string, `{"env": "NAME"}` (the value of another environment
//! variable, read once at start), or `{"secret": "<Secrets Manager secret ARN or name>", "key":
//! "<JSON field>"}` (read at run time through Secrets Manager when the server is first used, and
//! again after `listTtlSecs`, so a rotated secret is picked up; `key` picks one field of a JSON
//! secret, else the whole secret string is the value). Values are never logged.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Env};
use crate::domain::Solution;

/// Longest tool output kept in the context by default, characters of its JSON.
pub const DEFAULT_MAX_OUTPUT_CHARS: usize = 16 * 1024;
/// How long one MCP call may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a server's tool list is reused by default.
pub const DEFAULT_LIST_TTL: Duration = Duration::from_secs(300);

/// One MCP server of the deployment.
#[derive(Clone)]
pub struct McpServerConfig {
    /// Its short name: the prefix of its tools' names as the model sees them (`mes_machine_status`).
    pub name: String,
    /// The streamable HTTP endpoint.
    pub url: String,
    /// The chats it serves (`None`: every chat); `Some(None)` in the list is the general chat.
    pub solutions: Option<Vec<Option<Solution>>>,
    /// Headers sent with every request (values may be secrets: never logged).
    pub headers: Vec<(String, Secret)>,
    /// A bearer token sent as `authorization` (a secret).
    pub bearer: Option<Secret>,
    /// A header that carries the caller's user id.
    pub forward_user: Option<String>,
    /// Pass the caller's own bearer token as `authorization` (when no `bearer` is configured).
    pub forward_token: bool,
    /// Longest one call (or listing) may take; the turn's own deadline also applies.
    pub timeout: Duration,
    /// How long its tool list is reused.
    pub list_ttl: Duration,
    /// Longest output kept, characters of its JSON (longer outputs are cut and marked).
    pub max_output_chars: usize,
    /// The tools offered (`None`: all the server lists).
    pub tools: Option<Vec<String>>,
    /// Tools that always wait for approval.
    pub actions: Vec<String>,
    /// Tools that never wait for approval (overrides the server's annotations).
    pub read_only: Vec<String>,
}

/// A configured value that may be a secret: given (inline or from another variable), or kept in
/// Secrets Manager and read when needed.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The value itself.
    Value(String),
    /// A Secrets Manager secret: its ARN or name, and the field of its JSON to use (`None`: the
    /// whole secret string).
    Stored {
        /// The secret's ARN or name.
        id: String,
        /// The JSON field.
        key: Option<String>,
    },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret::Value(..)"),
            Secret::Stored { id, key } => write!(f, "Secret::Stored({id}, {key:?})"),
        }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::Value(value.to_owned())
    }
}

impl std::fmt::Debug for McpServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("solutions", &self.solutions)
            .field("headers", &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("bearer", &self.bearer.is_some())
            .field("forward_user", &self.forward_user)
            .field("forward_token", &self.forward_token)
            .field("timeout", &self.timeout)
            .field("tools", &self.tools)
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl McpServerConfig {
    /// A server with defaults (tests and the local demo).
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            solutions: None,
            headers: Vec::new(),
            bearer: None,
            forward_user: None,
            forward_token: false,
            timeout: DEFAULT_TIMEOUT,
            list_ttl: DEFAULT_LIST_TTL,
            max_output_chars: DEFAULT_MAX_OUTPUT_CHARS,
            tools: None,
            actions: Vec::new(),
            read_only: Vec::new(),
        }
    }

    /// Whether the server's tools are offered in `solution`'s chat.
    pub fn serves(&self, solution: Option<Solution>) -> bool {
        self.solutions.as_ref().is_none_or(|list| list.contains(&solution))
    }
}

/// A header value as configured.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireValue {
    Literal(String),
    Env {
        env: String,
    },
    Secret {
        secret: String,
        #[serde(default)]
        key: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireServer {
    name: String,
    url: String,
    solutions: Option<Vec<String>>,
    #[serde(default)]
    headers: BTreeMap<String, WireValue>,
    bearer: Option<WireValue>,
    forward_user: Option<String>,
    #[serde(default)]
    forward_token: bool,
    timeout_ms: Option<u64>,
    list_ttl_secs: Option<u64>,
    max_output_chars: Option<usize>,
    tools: Option<Vec<String>>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    read_only: Vec<String>,
    /// Plain http to a host that is not loopback (a private network's server).
    #[serde(default)]
    allow_http: bool,
}

/// Reads `ATHENA_MCP_SERVERS` (unset or blank: no servers).
pub fn read(env: &Env<'_>) -> Result<Vec<McpServerConfig>, ConfigError> {
    let Some(raw) = env.text("ATHENA_MCP_SERVERS") else {
        return Ok(Vec::new());
    };
    parse(&raw, &|name| env.referenced(name))
}

/// Parses the JSON of `ATHENA_MCP_SERVERS`; `secret` reads `{"env": NAME}` values.
pub fn parse(raw: &str, secret: &dyn Fn(&str) -> Option<String>) -> Result<Vec<McpServerConfig>, ConfigError> {
    let bad = |what: String| ConfigError(format!("ATHENA_MCP_SERVERS: {what}"));
    let wire: Vec<WireServer> =
        serde_json::from_str(raw).map_err(|e| bad(format!("not a JSON array of servers ({e})")))?;
    let mut servers: Vec<McpServerConfig> = Vec::with_capacity(wire.len());
    for w in wire {
        let name = w.name.trim().to_owned();
        if name.is_empty()
            || name.len() > 20
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || servers.iter().any(|s| s.name == name)
        {
            return Err(bad(format!(
                "server name {name:?} must be unique, 1 to 20 letters, digits or '-'"
            )));
        }
        check_url(&w.url, w.allow_http).map_err(|e| bad(format!("server {name}: {e}")))?;
        let value = |v: WireValue, what: &str| match v {
            WireValue::Literal(s) => Ok(Secret::Value(s)),
            WireValue::Env { env } => secret(&env)
                .map(Secret::Value)
                .ok_or_else(|| bad(format!("server {name}: {what} names {env}, which is not set"))),
            WireValue::Secret { secret, key } if !secret.trim().is_empty() && secret.len() <= 2048 => {
                Ok(Secret::Stored { id: secret, key })
            }
            WireValue::Secret { .. } => Err(bad(format!("server {name}: {what} names an empty secret"))),
        };
        let mut headers = Vec::new();
        for (header, v) in w.headers {
            let lower = header.to_ascii_lowercase();
            if http::HeaderName::from_bytes(lower.as_bytes()).is_err() || is_reserved_header(&lower) {
                return Err(bad(format!("server {name}: header {header:?} cannot be configured")));
            }
            let v = value(v, &format!("header {header}"))?;
            if let Secret::Value(text) = &v {
                if http::HeaderValue::from_str(text).is_err() {
                    return Err(bad(format!(
                        "server {name}: header {header} has a value that is not a valid header value"
                    )));
                }
            }
            headers.push((lower, v));
        }
        let bearer = w.bearer.map(|b| value(b, "bearer")).transpose()?;
        if let Some(h) = &w.forward_user {
            let lower = h.to_ascii_lowercase();
            if http::HeaderName::from_bytes(lower.as_bytes()).is_err() || is_reserved_header(&lower) {
                return Err(bad(format!(
                    "server {name}: forwardUser {h:?} is not a usable header name"
                )));
            }
        }
        let solutions = w
            .solutions
            .map(|list| {
                list.iter()
                    .map(|s| match s.as_str() {
                        "general" => Ok(None),
                        other => other
                            .parse::<Solution>()
                            .map(Some)
                            .map_err(|_| bad(format!("server {name}: unknown solution {other:?}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let millis = |v: Option<u64>, default: Duration, what: &str| match v {
            None => Ok(default),
            Some(0) => Err(bad(format!("server {name}: {what} must be positive"))),
            Some(n) => Ok(Duration::from_millis(n)),
        };
        servers.push(McpServerConfig {
            timeout: millis(w.timeout_ms, DEFAULT_TIMEOUT, "timeoutMs")?,
            list_ttl: w.list_ttl_secs.map_or(DEFAULT_LIST_TTL, Duration::from_secs),
            max_output_chars: match w.max_output_chars {
                Some(0) => return Err(bad(format!("server {name}: maxOutputChars must be positive"))),
                Some(n) => n.min(256 * 1024),
                None => DEFAULT_MAX_OUTPUT_CHARS,
            },
            forward_user: w.forward_user.map(|h| h.to_ascii_lowercase()),
            forward_token: w.forward_token,
            tools: w.tools,
            actions: w.actions,
            read_only: w.read_only,
            solutions,
            headers,
            bearer,
            url: w.url,
            name,
        });
    }
    Ok(servers)
}

/// Headers the transport owns (or that would let a configuration smuggle a second identity).
fn is_reserved_header(lower: &str) -> bool {
    matches!(
        lower,
        "host"
            | "content-length"
            | "content-type"
            | "accept"
            | "connection"
            | "transfer-encoding"
            | "authorization"
            | "mcp-session-id"
            | "mcp-protocol-version"
            | "last-event-id"
    )
}

/// Checks an MCP server URL: http(s) with a host; never a link-local or cloud metadata address;
/// plain http only to loopback unless `allow_http`. Names are checked again when they resolve
/// (`crate::mcp`), so a name that points at a forbidden address is refused at connection time.
pub fn check_url(url: &str, allow_http: bool) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("the URL must start with http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("the URL must not carry credentials (configure a header)".to_owned());
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    let lower = host.to_ascii_lowercase();
    if forbidden_name(&lower) {
        return Err(format!("{host} is a metadata endpoint"));
    }
    let loopback = match lower.parse::<IpAddr>() {
        Ok(ip) => {
            if forbidden_ip(ip) {
                return Err(format!("{host} is a link-local, metadata or unspecified address"));
            }
            ip.is_loopback()
        }
        Err(_) => lower == "localhost",
    };
    match scheme {
        "https" => Ok(()),
        "http" if loopback || allow_http => Ok(()),
        "http" => Err("plain http is allowed only to loopback (set allowHttp for a private network)".to_owned()),
        _ => Err("the URL must start with http:// or https://".to_owned()),
    }
}

/// Host names of cloud metadata services.
fn forbidden_name(lower: &str) -> bool {
    matches!(
        lower.trim_end_matches('.'),
        "metadata" | "metadata.google.internal" | "instance-data" | "instance-data.ec2.internal"
    )
}

/// Addresses no MCP server may have: unspecified, link-local (169.254.0.0/16, fe80::/10, which
/// hold the EC2/ECS/Lambda metadata and credentials endpoints), the IPv6 metadata address
/// (fd00:ec2::254), broadcast and multicast; IPv4-mapped IPv6 addresses are judged as IPv4.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                // Alibaba's and Oracle's metadata addresses.
                || v4.octets() == [100, 100, 100, 200]
                || v4.octets() == [192, 0, 0, 192]
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4));
            }
            v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.segments() == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_secrets(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_full_server_parses_and_secrets_come_from_the_environment() {
        let raw = r#"[{"name": "mes", "url": "https://mes.example.com/mcp", "solutions": ["manufacturing", "general"],
            "headers": {"X-Api-Key": {"env": "MES_KEY"}, "x-plant": "north", "x-tenant": {"secret": "arn:aws:secretsmanager:eu-west-1:1:secret:mes", "key": "tenant"}},
            "bearer": {"env": "MES_TOKEN"},
            "forwardUser": "X-Athena-User", "timeoutMs": 5000, "tools": ["a", "b"], "actions": ["b"]}]"#;
        let secret = |name: &str| match name {
            "MES_KEY" => Some("k-123".to_owned()),
            "MES_TOKEN" => Some("t-456".to_owned()),
            _ => None,
        };
        let servers = parse(raw, &secret).unwrap_or_else(|e| panic!("{e}"));
        let s = &servers[0];
        assert_eq!(
            s.headers,
            vec![
                ("x-api-key".to_owned(), Secret::from("k-123")),
                ("x-plant".to_owned(), Secret::from("north")),
                (
                    "x-tenant".to_owned(),
                    Secret::Stored {
                        id: "arn:aws:secretsmanager:eu-west-1:1:secret:mes".to_owned(),
                        key: Some("tenant".to_owned())
                    }
                ),
            ]
        );
        assert_eq!(s.bearer, Some(Secret::from("t-456")));
        assert_eq!(s.forward_user.as_deref(), Some("x-athena-user"));
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert!(s.serves(Some(Solution::Manufacturing)) && s.serves(None) && !s.serves(Some(Solution::Support)));
        // Secrets never reach the debug form (logs).
        let debug = format!("{s:?}");
        assert!(!debug.contains("k-123") && !debug.contains("t-456"), "{debug}");
    }

    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        let cases = [
            (r#"{"name": "x"}"#, "not a JSON array"),
            (r#"[{"name": "", "url": "https://a/mcp"}]"#, "server name"),
            (
                r#"[{"name": "a", "url": "https://a/mcp"}, {"name": "a", "url": "https://b/mcp"}]"#,
                "unique",
            ),
            (
                r#"[{"name": "a", "url": "http://169.254.169.254/latest"}]"#,
                "link-local",
            ),
            (r#"[{"name": "a", "url": "http://[fd00:ec2::254]/"}]"#, "link-local"),
            (
                r#"[{"name": "a", "url": "http://[::ffff:169.254.169.254]/"}]"#,
                "link-local",
            ),
            (
                r#"[{"name": "a", "url": "http://metadata.google.internal/"}]"#,
                "metadata",
            ),
            (r#"[{"name": "a", "url": "http://mes.internal/mcp"}]"#, "plain http"),
            (r#"[{"name": "a", "url": "ftp://x/"}]"#, "http"),
            (r#"[{"name": "a", "url": "https://user:pw@x/"}]"#, "credentials"),
            (
                r#"[{"name": "a", "url": "https://x/", "headers": {"authorization": "x"}}]"#,
                "cannot be configured",
            ),
            (
                r#"[{"name": "a", "url": "https://x/", "headers": {"k": {"env": "NOPE"}}}]"#,
                "not set",
            ),
            (
                r#"[{"name": "a", "url": "https://x/", "solutions": ["nope"]}]"#,
                "unknown solution",
            ),
            (
                r#"[{"name": "a", "url": "https://x/", "surprise": 1}]"#,
                "unknown field",
            ),
        ];
        for (raw, expected) in cases {
            match parse(raw, &no_secrets) {
                Ok(_) => panic!("{raw} was accepted"),
                Err(e) => assert!(e.0.contains(expected), "{raw}: {}", e.0),
            }
        }
        assert!(parse(r#"[{"name": "a", "url": "http://127.0.0.1:3100/mcp"}]"#, &no_secrets).is_ok());
        assert!(parse(
            r#"[{"name": "a", "url": "http://10.0.0.5/mcp", "allowHttp": true}]"#,
            &no_secrets
        )
        .is_ok());
    }
}

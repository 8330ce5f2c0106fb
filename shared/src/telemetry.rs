//! Logging: JSON lines through `tracing`, one per event, carrying the fields of the current span
//! (so every line inside a request has its `request_id`). `RUST_LOG` sets the level (default
//! `info`); `ATHENA_LOG_FORMAT=text` switches to human-readable lines for local work.
//! Never log request bodies, prompts, message contents, tokens or secrets.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// What is logged without `RUST_LOG`: `info`, the AWS SDK's and the HTTP and MCP stacks' own
/// lines from `warn` up.
const DEFAULT_LEVELS: &str = "info,aws_config=warn,aws_smithy_runtime=warn,hyper=warn,rmcp=warn";

/// Installs the global subscriber (once; later calls do nothing). `RUST_LOG` is a comma-separated
/// list of `level` and `target=level` directives (`tracing_subscriber`'s `Targets`: no regular
/// expressions, which keeps the regex engine out of the binaries); one that does not parse falls
/// back to the default.
pub fn init() {
    let env = crate::config::Env::process();
    let targets: Targets = env
        .raw("RUST_LOG")
        .and_then(|raw| raw.parse().ok())
        .unwrap_or_else(|| DEFAULT_LEVELS.parse().unwrap_or_default());
    let text = crate::config::RuntimeConfig::text_logs(&env);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if text {
        tracing_subscriber::registry().with(layer).with(targets).try_init()
    } else {
        let json = layer
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true);
        tracing_subscriber::registry().with(json).with(targets).try_init()
    };
    // A subscriber already installed (tests) is fine.
    drop(result);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_levels_parse() {
        let targets: Result<tracing_subscriber::filter::Targets, _> = super::DEFAULT_LEVELS.parse();
        assert!(targets.is_ok());
    }
}

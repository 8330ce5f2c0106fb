//! Logging: JSON lines through `tracing`, one per event, carrying the fields of the current span
//! (so every line inside a request has its `request_id`). `RUST_LOG` sets the level (default
//! `info`); `ATHENA_LOG_FORMAT=text` switches to human-readable lines for local work.
//! Never log request bodies, prompts, message contents, tokens or secrets.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,hyper=warn,rmcp=warn"));
    let text = crate::config::RuntimeConfig::text_logs(&crate::config::Env::process());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if text {
        builder.with_target(false).try_init()
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .with_target(false)
            .try_init()
    };
    // A subscriber already installed (tests) is fine.
    drop(result);
}

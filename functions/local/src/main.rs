//! `athena-local`: every Athena route in one process, with the embedded store unless
//! `ATHENA_TABLE` names a DynamoDB table. Listens on `ATHENA_ADDR` (default 127.0.0.1:3000).
//! `athena-local --seed-sample-events` instead stores the conversation the sample events in
//! `events/` target, in the same store, and exits.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    if std::env::args().nth(1).as_deref() == Some("--seed-sample-events") {
        return match shared::local::seed_sample_events_from_env().await {
            Ok(created) => {
                let what = if created { "stored" } else { "already there" };
                eprintln!(
                    "athena-local: sample conversation {} of {}: {what}",
                    shared::local::SAMPLE_CONVERSATION,
                    shared::local::SAMPLE_USER
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("athena-local: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match shared::local::run_from_env().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("athena-local: {e}");
            ExitCode::FAILURE
        }
    }
}

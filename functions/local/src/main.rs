//! `athena-local`: every Athena route in one process, with the embedded store unless
//! `ATHENA_TABLE` names a DynamoDB table. Listens on `ATHENA_ADDR` (default 127.0.0.1:3000).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    match shared::local::run_from_env().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("athena-local: {e}");
            ExitCode::FAILURE
        }
    }
}

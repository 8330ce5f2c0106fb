//! `athena-local`: every Athena route in one process, with the embedded store unless
//! `ATHENA_TABLE` names a DynamoDB table. Listens on `ATHENA_ADDR` (default 127.0.0.1:3000).
//! `athena-local --seed-sample-events` instead stores the conversation the sample events in
//! `events/` target, in the same store, and exits. With the offline demo model
//! (`ATHENA_PROVIDER=scripted`) and no `ATHENA_MCP_SERVERS`, the sample MES server
//! (`examples/mes`) runs in the same process as the manufacturing and maintenance chats' tools.

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
    // The sample MES server (examples/mes), in-process on a loopback port: the offline demo's
    // tool server (used only with the scripted model and no MCP server configured).
    let mes = athena_mes::serve(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        athena_mes::Plant::sample(),
        athena_mes::Options::default(),
    )
    .await;
    let demo = match &mes {
        Ok(server) => Some(server.url()),
        Err(e) => {
            eprintln!("athena-local: the sample MES server did not start ({e}); no demo tools");
            None
        }
    };
    match shared::local::run_from_env_with_demo_tools(demo).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("athena-local: {e}");
            ExitCode::FAILURE
        }
    }
}

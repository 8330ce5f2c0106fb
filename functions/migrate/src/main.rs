//! `athena-migrate --from sqlite:PATH|postgres://... [--owner USER] [--dry-run] [--json]`: the
//! original Athena's Prisma database into the store `athena-local` would open (`ATHENA_DB` for
//! the embedded store; `ATHENA_TABLE` / `ATHENA_EVENTS_TABLE` and the `AWS_*` variables for
//! DynamoDB). See `docs/migrate.md`.
//!
//! `athena-migrate reindex ...`: the search index's backfill ([`athena_migrate::reindex`],
//! `docs/search.md`).

use std::io::IsTerminal;
use std::process::ExitCode;

use athena_migrate::{migrate_all, ArgReader, From, Options, Report, Source};
use shared::config::{AuthMode, Config};
use shared::domain::UserId;

const USAGE: &str =
    "usage: athena-migrate --from sqlite:PATH|postgres://USER@HOST:PORT/DB [--owner USER] [--dry-run] [--json]

  --from     the original's database: its SQLite file (prisma/dev.db) or its DATABASE_URL
  --owner    the Athena user who gets the conversations (default: the user athena-local serves,
             ATHENA_LOCAL_USER or local-user; required with ATHENA_AUTH=jwt/apigw)
  --dry-run  read and validate everything, write nothing, print the report
  --json     print the report as JSON on stdout

The target is the store athena-local opens: ATHENA_DB (embedded) or ATHENA_TABLE/ATHENA_EVENTS_TABLE (DynamoDB).

       athena-migrate reindex [--table NAME | --db PATH] [--segments N] [--user USER] [--checkpoint FILE] [--json]
  rebuilds the search index from the stored conversations and messages (athena-migrate reindex --help).";

struct Args {
    from: From,
    owner: Option<String>,
    dry_run: bool,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut from = None;
    let mut owner = None;
    let (mut dry_run, mut json) = (false, false);
    let mut it = ArgReader::new(std::env::args().skip(1));
    while let Some(name) = it.next_name() {
        match name.as_str() {
            "--from" => from = Some(it.value("--from")?),
            "--owner" => owner = Some(it.value("--owner")?),
            "--dry-run" => dry_run = true,
            "--json" => json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        from: From::parse(&from.ok_or("--from is required")?).map_err(|e| e.to_string())?,
        owner,
        dry_run,
        json,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().map(String::as_str) == Some("reindex") {
        return ExitCode::from(athena_migrate::reindex::command(&all[1..], None).await);
    }
    let args = match args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("athena-migrate: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(report) => {
            let refused = report.conversations.refused + report.messages.refused;
            if refused > 0 {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("athena-migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<Report, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let owner = match (&args.owner, &config.auth) {
        (Some(raw), _) => UserId::parse(raw).map_err(|e| format!("--owner: {e}"))?,
        (None, AuthMode::None { user }) => user.clone(),
        (None, _) => return Err("--owner is required when ATHENA_AUTH is jwt or apigw".to_owned()),
    };
    // The source first: a bad database is reported before the store is touched.
    let source = Source::open(&args.from).await.map_err(|e| e.to_string())?;
    let total = source.count().await.map_err(|e| e.to_string())?;
    if !source.has_solution() {
        eprintln!(
            "athena-migrate: no solutionType column (a database from before seed 001): every conversation is general"
        );
    }
    let store = shared::store::open(&config.store).await.map_err(|e| e.to_string())?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} conversations {msg} [{elapsed_precise}, eta {eta}]",
        ) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let tick = |report: &Report| {
        if let Some(bar) = &bar {
            bar.set_position(report.conversations.read);
            bar.set_message(format!("({} messages)", report.messages.read));
        }
    };
    let options = Options { dry_run: args.dry_run };
    drop(source);
    let outcome = migrate_all(
        &args.from,
        store.as_ref(),
        &owner,
        &config.catalog,
        options,
        config.store.event_ttl,
        shared::domain::now(),
        &tick,
    )
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = outcome.map_err(|e| e.to_string())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", report.render());
    }
    Ok(report)
}

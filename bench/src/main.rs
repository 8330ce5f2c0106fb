//! `athena-bench`: Athena's benchmark suite (issue #8). `scripts/bench.sh` builds everything and
//! runs `athena-bench suite`, which measures every target side by side in one run and rewrites
//! the results table of `docs/performance.md`. Nothing here asserts a timing; it reports.
//!
//! Subcommands (each prints its rows; `suite` runs them all and writes the document):
//! `coldstart`, `roundtrips`, `relay`, `load`, `footprint`, `mcp`, `search`, `suite`.

mod coldstart;
mod load;
mod mcp;
mod report;
mod search;
mod turns;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use report::Row;

/// Options shared by every benchmark.
#[derive(Clone, Debug)]
pub struct Options {
    /// The workspace root (binaries under `target/release`, the document under `docs/`).
    pub root: PathBuf,
    /// Cold-start runs per binary.
    pub cold_runs: usize,
    /// Chat turns for the round-trip and time-to-first-byte figures.
    pub turns: usize,
    /// Seconds per load-test point.
    pub load_secs: u64,
    /// Skip the DynamoDB (moto) figures.
    pub no_moto: bool,
    /// `search`: dynalite's script (`bench/dynalite.sh` installs it): the moto table is copied
    /// into it and searched again.
    pub dynalite: Option<PathBuf>,
    /// `search --dynalite`: keep dynalite's table in this directory; when it already holds one
    /// (built by an earlier run), moto is not started and only the embedded store and dynalite
    /// are measured (for iterating on the read path).
    pub dynalite_data: Option<PathBuf>,
    /// Where the host binaries are (`target/release`, or `target/<profile>` to compare profiles).
    pub bin_dir: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().cloned().unwrap_or_else(|| "help".to_owned());
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let root = flag("--root").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let options = Options {
        root: root.clone(),
        cold_runs: flag("--cold-runs").and_then(|v| v.parse().ok()).unwrap_or(20),
        turns: flag("--turns").and_then(|v| v.parse().ok()).unwrap_or(2000),
        load_secs: flag("--load-secs").and_then(|v| v.parse().ok()).unwrap_or(10),
        no_moto: args.iter().any(|a| a == "--no-moto"),
        dynalite: flag("--dynalite").map(PathBuf::from),
        dynalite_data: flag("--dynalite-data").map(PathBuf::from),
        bin_dir: flag("--bin-dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("athena-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: Result<Vec<Row>, String> = match command.as_str() {
        "coldstart" => runtime.block_on(run_coldstart(&options)),
        "roundtrips" => runtime.block_on(turns::roundtrips(&options)),
        "relay" => turns::relay(&options),
        "load" => runtime.block_on(load::load(&options)),
        "footprint" => Ok(report::footprint(&options)),
        "mcp" => runtime.block_on(mcp::mcp(&options)),
        "search" => runtime.block_on(search::search_bench(&options)),
        "suite" => runtime.block_on(suite(&options)),
        _ => {
            eprintln!(
                "usage: athena-bench <coldstart|roundtrips|relay|load|footprint|mcp|search|suite> [--root DIR] \
                 [--cold-runs N] [--turns N] [--load-secs S] [--no-moto] [--bin-dir target/release] \
                 [--dynalite CLI.JS [--dynalite-data DIR]] [--doc docs/performance.md]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(rows) => {
            println!("{}", report::table(&rows));
            if let Some(doc) = flag("--doc") {
                if let Err(e) = report::rewrite(Path::new(&doc), &rows) {
                    eprintln!("athena-bench: {e}");
                    return std::process::ExitCode::FAILURE;
                }
                eprintln!("athena-bench: rewrote the results table in {doc}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("athena-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn suite(options: &Options) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut facts = report::Facts::default();
    eprintln!("== cold start");
    let cold = run_coldstart(options).await?;
    facts.absorb(&cold);
    rows.extend(cold);
    eprintln!("== round trips and time to first byte");
    let trips = turns::roundtrips(options).await?;
    facts.absorb(&trips);
    rows.extend(trips);
    eprintln!("== streaming relay");
    let relay = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || turns::relay(&options))
            .await
            .map_err(|e| e.to_string())??
    };
    facts.absorb(&relay);
    rows.extend(relay);
    eprintln!("== footprint");
    rows.extend(report::footprint(options));
    eprintln!("== local gateway under load");
    let loaded = load::load(options).await?;
    facts.absorb(&loaded);
    rows.extend(loaded);
    rows.extend(report::cost(&facts));
    eprintln!("== MCP tool calls");
    rows.extend(mcp::mcp(options).await?);
    eprintln!("== full-text search");
    rows.extend(search::search_bench(options).await?);
    Ok(rows)
}

async fn run_coldstart(options: &Options) -> Result<Vec<Row>, String> {
    let release = options.bin_dir.clone();
    let moto = if options.no_moto {
        None
    } else {
        Some(load::Moto::start(&options.root).await?)
    };
    let harness = coldstart::Harness::start().await.map_err(|e| e.to_string())?;
    let base_env = |name: &str, table: Option<&str>, create: bool| -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("AWS_LAMBDA_FUNCTION_NAME", name),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("ATHENA_AUTH", "none"),
            ("ATHENA_ALLOW_NO_AUTH", "true"),
            ("ATHENA_PROVIDER", "scripted"),
            ("ATHENA_RATE_LIMIT_PER_MINUTE", "0"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if let (Some(table), Some(moto)) = (table, &moto) {
            env.push(("ATHENA_TABLE".to_owned(), table.to_owned()));
            env.push(("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), moto.url()));
            if create {
                env.push(("ATHENA_CREATE_TABLES".to_owned(), "true".to_owned()));
            }
        }
        env
    };
    let chat_body = r##"{"messages":[{"id":"m1","role":"user","parts":[{"type":"text","text":"What should we check first when the press trips its pressure alarm? #deltas:400"}]}]}"##;
    let targets: Vec<(&str, PathBuf, Vec<u8>)> = vec![
        (
            "hello-lambda",
            release.join("hello-lambda"),
            coldstart::http_event("GET", "/", None),
        ),
        (
            "hello-sdk",
            release.join("hello-sdk"),
            coldstart::http_event("GET", "/", None),
        ),
        (
            "conversations",
            release.join("conversations"),
            coldstart::http_event("GET", "/api/conversations", None),
        ),
        (
            "conversations (no warm-up)",
            release.join("conversations"),
            coldstart::http_event("GET", "/api/conversations", None),
        ),
        (
            "messages",
            release.join("messages"),
            coldstart::http_event("GET", "/api/conversations/bench-missing/messages", None),
        ),
        (
            "chat",
            release.join("chat"),
            coldstart::http_event("POST", "/api/chat", Some(chat_body)),
        ),
        (
            // As deployed behind a function URL: bearer JWTs checked against the issuer's JWKS
            // (the client for it is built at init). The event carries no token: a 401, no fetch.
            "chat (jwt, JWKS)",
            release.join("chat"),
            coldstart::http_event("POST", "/api/chat", Some(chat_body)),
        ),
        (
            "analytics",
            release.join("analytics"),
            coldstart::http_event("GET", "/api/analytics/summary", None),
        ),
    ];
    // Binaries not built (e.g. a profile built for one function only) are skipped.
    let mut targets: Vec<_> = targets.into_iter().filter(|t| t.1.exists()).collect();
    let node = options.root.join("bench/node/hello-node.cjs");
    if Path::new("/usr/bin/node").exists() && node.exists() {
        targets.insert(2, ("hello-node", node, coldstart::http_event("GET", "/", None)));
    }
    if moto.is_some() {
        // Create the tables once (not timed).
        let Some((_, binary, event)) = targets.iter().find(|t| !t.0.starts_with("hello-")) else {
            return Err("no function binary to create the tables with".to_owned());
        };
        let function = if binary.ends_with("chat") {
            "chat"
        } else {
            "conversations"
        };
        harness
            .measure(binary, &base_env(function, Some("bench-cold"), true), event)
            .await
            .map_err(|e| format!("creating the tables: {e}"))?;
    }
    let mut rows = Vec::new();
    let mut hello_init = None;
    // Interleave the binaries run by run, so drift on the machine hits every binary alike.
    let mut samples: Vec<Vec<coldstart::Sample>> = targets.iter().map(|_| Vec::new()).collect();
    for run in 0..=options.cold_runs {
        for (i, (name, binary, event)) in targets.iter().enumerate() {
            let function = name.split(' ').next().unwrap_or(name);
            let mut env = base_env(function, Some("bench-cold"), false);
            if name.ends_with("(no warm-up)") {
                env.push(("ATHENA_WARM_CONNECTIONS".to_owned(), "false".to_owned()));
            }
            if name.ends_with("(jwt, JWKS)") {
                for (k, v) in [
                    ("ATHENA_AUTH", "jwt"),
                    ("ATHENA_JWT_ISSUER", "https://auth.athena.example.com"),
                    ("ATHENA_JWT_AUDIENCE", "athena-web"),
                    ("ATHENA_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json"),
                ] {
                    env.push((k.to_owned(), v.to_owned()));
                }
            }
            let sample = harness.measure(binary, &env, event).await?;
            if run == 0 {
                // Warm-up: page cache, moto's first request. Not counted.
                eprintln!("  {name}: {}", sample.response_head);
                continue;
            }
            samples[i].push(sample);
        }
    }
    for ((name, _, _), samples) in targets.iter().zip(samples) {
        let init: Vec<f64> = samples.iter().map(|s| s.init.as_secs_f64() * 1e3).collect();
        let first: Vec<f64> = samples.iter().map(|s| s.first_response.as_secs_f64() * 1e3).collect();
        let rss = samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
        let (init_p50, init_p90) = (report::percentile(&init, 50.0), report::percentile(&init, 90.0));
        let (first_p50, first_p90) = (report::percentile(&first, 50.0), report::percentile(&first, 90.0));
        if *name == "hello-lambda" {
            hello_init = Some(init_p50);
        }
        let baseline = name.starts_with("hello-");
        let ratio = hello_init.map(|h| init_p50 / h);
        let command = format!("athena-bench coldstart --cold-runs {}", options.cold_runs);
        rows.push(Row {
            area: "1 cold start",
            metric: format!("{name}: init (spawn -> first /next), p50 / p90"),
            measured: format!("{init_p50:.2} / {init_p90:.2} ms"),
            target: if baseline {
                "baseline".to_owned()
            } else {
                "≤ 1.3× hello-lambda".to_owned()
            },
            ratio: ratio.map(|r| format!("{r:.2}×")).unwrap_or_default(),
            met: if baseline { None } else { ratio.map(|r| r <= 1.3) },
            command: command.clone(),
            key: Some(format!("init_ms.{name}")),
            value: init_p50,
        });
        rows.push(Row {
            area: "1 cold start",
            metric: format!("{name}: spawn -> first response posted, p50 / p90"),
            measured: format!("{first_p50:.2} / {first_p90:.2} ms"),
            target: String::new(),
            ratio: String::new(),
            met: None,
            command: command.clone(),
            key: Some(format!("first_response_ms.{name}")),
            value: first_p50,
        });
        rows.push(Row {
            area: "4 footprint",
            metric: format!("{name}: peak RSS over cold start + first invocation (max of runs)"),
            measured: format!("{:.1} MiB", rss as f64 / 1024.0),
            target: if baseline {
                String::new()
            } else {
                "≤ 32 MiB".to_owned()
            },
            ratio: if baseline {
                String::new()
            } else {
                format!("{:.2}×", rss as f64 / 1024.0 / 32.0)
            },
            met: if baseline { None } else { Some(rss <= 32 * 1024) },
            command,
            key: Some(format!("peak_rss_kib.{name}")),
            value: rss as f64,
        });
    }
    drop(moto);
    Ok(rows)
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time (user + system) a process has used so far.
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis((utime + stime) * 10))
}

//! `athena-migrate reindex`: the search index rebuilt from what the store holds (see
//! `docs/search.md`, "Backfill").
//!
//! - **DynamoDB** (`--table NAME`, or `ATHENA_TABLE`): the postings of every conversation title
//!   and message, computed by the stream consumer's own code (`DynamoStore::backfill_scan_page`:
//!   a parallel `Scan` in `--segments`, each page's postings put before the next page is read),
//!   or of one user's (`--user`: the owner index, then a `Query` per conversation). Idempotent;
//!   resumable with `--checkpoint FILE` (each segment's `LastEvaluatedKey` after each page).
//! - **Embedded** (`--db PATH`, or `ATHENA_DB`): `EmbeddedStore::rebuild_search_index` (the
//!   index derived again from the tables, FTS5's `rebuild`), one transaction.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aws_sdk_dynamodb::Client;
use serde::Serialize;
use shared::config::{Config, StoreKind};
use shared::domain::UserId;
use shared::error::StoreError;
use shared::store::dynamo::{Backfilled, DynamoStore, ScanPosition, Tables};
use shared::store::embedded::EmbeddedStore;

/// The subcommand's usage.
pub const USAGE: &str =
    "usage: athena-migrate reindex [--table NAME | --db PATH] [--segments N] [--user USER] [--checkpoint FILE] [--json]

  --table       the DynamoDB conversations table (default: ATHENA_TABLE; AWS_* variables as usual)
  --db          an embedded store's SQLite file (default: ATHENA_DB when ATHENA_TABLE is unset)
  --segments    DynamoDB: parallel Scan segments, 1-64 (default 4)
  --user        DynamoDB: only this user's conversations (a Query per conversation, no Scan)
  --checkpoint  DynamoDB, whole table: record each segment's position in FILE after every page,
                and continue from it when FILE exists (a rerun without it starts over, harmlessly)
  --page-size   DynamoDB: most items a Scan page evaluates (default: DynamoDB's 1 MB pages)
  --json        print the summary as JSON on stdout";

/// Most Scan segments (`--segments`).
pub const MAX_SEGMENTS: u32 = 64;
/// Default Scan segments.
pub const DEFAULT_SEGMENTS: u32 = 4;

/// Which store's index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A DynamoDB conversations table.
    Table(String),
    /// An embedded store's file.
    Db(PathBuf),
    /// The store athena-local would open (`ATHENA_TABLE`, else `ATHENA_DB`).
    FromEnv,
}

/// The subcommand's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// The store.
    pub target: Target,
    /// Scan segments.
    pub segments: u32,
    /// One user only.
    pub user: Option<UserId>,
    /// The checkpoint file.
    pub checkpoint: Option<PathBuf>,
    /// Items evaluated per Scan page.
    pub page_size: Option<i32>,
    /// JSON summary.
    pub json: bool,
}

/// Why a reindex did not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    /// Bad arguments (exit status 2); empty for `--help`.
    #[error("{0}")]
    Usage(String),
    /// The checkpoint file cannot be used.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The store failed (rerun, with the same `--checkpoint`, to resume).
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The configuration could not be read.
    #[error("{0}")]
    Config(String),
}

/// Parses the arguments that follow `reindex`.
pub fn parse_args(args: &[String]) -> Result<Args, ReindexError> {
    let usage = |m: String| ReindexError::Usage(m);
    let (mut table, mut db, mut user, mut checkpoint, mut segments, mut page_size) =
        (None, None, None, None, None, None);
    let mut json = false;
    let mut it = crate::ArgReader::new(args.iter().cloned());
    while let Some(name) = it.next_name() {
        let mut value = |what: &str| it.value(what).map_err(usage);
        match name.as_str() {
            "--table" => table = Some(value("--table")?),
            "--db" => db = Some(value("--db")?),
            "--user" => user = Some(value("--user")?),
            "--checkpoint" => checkpoint = Some(PathBuf::from(value("--checkpoint")?)),
            "--segments" => segments = Some(value("--segments")?),
            "--page-size" => page_size = Some(value("--page-size")?),
            "--json" => json = true,
            "-h" | "--help" => return Err(usage(String::new())),
            other => return Err(usage(format!("unknown argument {other:?}"))),
        }
    }
    let target = match (table, db) {
        (Some(_), Some(_)) => return Err(usage("--table and --db name two stores: give one".to_owned())),
        (Some(t), None) if t.is_empty() => return Err(usage("--table needs a table name".to_owned())),
        (Some(t), None) => Target::Table(t),
        (None, Some(d)) => Target::Db(PathBuf::from(d)),
        (None, None) => Target::FromEnv,
    };
    let segments = match segments {
        None => DEFAULT_SEGMENTS,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_SEGMENTS).contains(n))
            .ok_or_else(|| usage(format!("--segments must be 1 to {MAX_SEGMENTS}, not {raw:?}")))?,
    };
    let page_size = match page_size {
        None => None,
        Some(raw) => Some(
            raw.parse::<i32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| usage(format!("--page-size must be a positive number, not {raw:?}")))?,
        ),
    };
    let user = user
        .map(|u| UserId::parse(&u).map_err(|e| usage(format!("--user: {e}"))))
        .transpose()?;
    if user.is_some() && checkpoint.is_some() {
        return Err(usage(
            "--checkpoint is for a whole table: a --user reindex is resumed by running it again".to_owned(),
        ));
    }
    Ok(Args {
        target,
        segments,
        user,
        checkpoint,
        page_size,
        json,
    })
}

/// What a reindex did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `dynamodb` or `embedded`.
    pub store: &'static str,
    /// The table or file.
    pub target: String,
    /// DynamoDB: the Scan's segments (0 for `--user`).
    pub segments: u32,
    /// Segments skipped because the checkpoint had them done.
    pub segments_already_done: u32,
    /// What was read and written (embedded: `documents` only).
    #[serde(flatten)]
    pub done: Backfilled,
    /// Write units: one per posting (each under 1 KB); 0 on the embedded store.
    pub write_units: u64,
}

impl Summary {
    /// The summary for people.
    pub fn render(&self) -> String {
        if self.store == "embedded" {
            return format!(
                "reindexed {} (embedded): {} documents (titles and messages) indexed\n",
                self.target, self.done.documents
            );
        }
        let scope = if self.segments == 0 {
            "one user".to_owned()
        } else {
            format!(
                "{} segments, {} already done",
                self.segments, self.segments_already_done
            )
        };
        format!(
            "reindexed {} (DynamoDB, {scope})\nitems read {}  documents {}  postings written {}  write units {}  read units {:.1}\n",
            self.target,
            self.done.items_read,
            self.done.documents,
            self.done.postings,
            self.write_units,
            self.done.read_units
        )
    }
}

/// Where each segment stands, from a checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SegmentState {
    Start,
    At(ScanPosition),
    Done,
}

const CHECKPOINT_HEADER: &str = "# athena-migrate reindex checkpoint";

fn checkpoint_error(path: &Path, reason: impl Into<String>) -> ReindexError {
    ReindexError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads a checkpoint file (the last line of a segment wins); a missing file is a fresh start.
fn read_checkpoint(path: &Path, table: &str, segments: u32) -> Result<Vec<SegmentState>, ReindexError> {
    let mut states = vec![SegmentState::Start; segments as usize];
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(states),
        Err(e) => return Err(checkpoint_error(path, e.to_string())),
    };
    let mut lines = text.lines();
    if lines.next() != Some(CHECKPOINT_HEADER) {
        return Err(checkpoint_error(path, "not a reindex checkpoint"));
    }
    let expected = format!("table {table} segments {segments}");
    match lines.next() {
        Some(line) if line == expected => {}
        Some(line) => {
            return Err(checkpoint_error(
                path,
                format!(
                    "written for \"{line}\", not \"{expected}\": use the same --table and --segments, or another file"
                ),
            ))
        }
        None => return Err(checkpoint_error(path, "no table line")),
    }
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let bad = || checkpoint_error(path, format!("unreadable line {line:?}"));
        let (segment, state) = line.split_once(' ').ok_or_else(bad)?;
        let segment: usize = segment.parse().map_err(|_| bad())?;
        let slot = states.get_mut(segment).ok_or_else(bad)?;
        *slot = if state == "done" {
            SegmentState::Done
        } else {
            SegmentState::At(serde_json::from_str(state).map_err(|_| bad())?)
        };
    }
    Ok(states)
}

/// The checkpoint file being appended to.
struct Checkpoint {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Checkpoint {
    fn open(path: &Path, table: &str, segments: u32) -> Result<Self, ReindexError> {
        let fresh = !path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| checkpoint_error(path, e.to_string()))?;
        if fresh {
            writeln!(file, "{CHECKPOINT_HEADER}\ntable {table} segments {segments}")
                .map_err(|e| checkpoint_error(path, e.to_string()))?;
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    fn record(&self, segment: u32, next: Option<&ScanPosition>) -> Result<(), ReindexError> {
        let state = match next {
            Some(position) => {
                serde_json::to_string(position).map_err(|e| checkpoint_error(&self.path, e.to_string()))?
            }
            None => "done".to_owned(),
        };
        let mut file = match self.file.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        writeln!(file, "{segment} {state}")
            .and_then(|()| file.flush())
            .map_err(|e| checkpoint_error(&self.path, e.to_string()))
    }
}

/// Reindexes a DynamoDB table (all of it, or one user's conversations), reporting progress
/// through `progress` (one line per page).
pub async fn reindex_dynamo(
    store: &DynamoStore,
    args: &Args,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Summary, ReindexError> {
    let table = store.tables().conversations.clone();
    let mut summary = Summary {
        store: "dynamodb",
        target: table.clone(),
        ..Summary::default()
    };
    if let Some(user) = &args.user {
        summary.done = store.backfill_owner(user).await?;
        summary.write_units = summary.done.postings;
        return Ok(summary);
    }
    summary.segments = args.segments;
    let states = match &args.checkpoint {
        Some(path) => read_checkpoint(path, &table, args.segments)?,
        None => vec![SegmentState::Start; args.segments as usize],
    };
    let checkpoint = args
        .checkpoint
        .as_deref()
        .map(|path| Checkpoint::open(path, &table, args.segments))
        .transpose()?;
    let total = Mutex::new(Backfilled::default());
    let segments = states.into_iter().zip(0u32..).map(|(state, segment)| {
        let (checkpoint, total) = (checkpoint.as_ref(), &total);
        async move {
            let mut at = match state {
                SegmentState::Done => return Ok(1u32),
                SegmentState::Start => None,
                SegmentState::At(position) => Some(position),
            };
            loop {
                let page = store
                    .backfill_scan_page(segment, args.segments, at.as_ref(), args.page_size)
                    .await?;
                if let Some(checkpoint) = checkpoint {
                    checkpoint.record(segment, page.next.as_ref())?;
                }
                let sum = {
                    let mut total = match total.lock() {
                        Ok(t) => t,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    total.add(&page.done);
                    *total
                };
                let position = match &page.next {
                    Some(next) => serde_json::to_string(next).unwrap_or_default(),
                    None => "done".to_owned(),
                };
                progress(&format!(
                    "segment {segment}/{} at {position} -- total: {} items read, {} postings written",
                    args.segments, sum.items_read, sum.postings
                ));
                match page.next {
                    Some(next) => at = Some(next),
                    None => return Ok::<u32, ReindexError>(0),
                }
            }
        }
    });
    let skipped = futures::future::try_join_all(segments).await?;
    summary.segments_already_done = skipped.into_iter().sum();
    summary.done = match total.into_inner() {
        Ok(t) => t,
        Err(poisoned) => poisoned.into_inner(),
    };
    summary.write_units = summary.done.postings;
    Ok(summary)
}

/// Rebuilds an embedded store's index.
pub async fn reindex_embedded(path: &Path, args: &Args) -> Result<Summary, ReindexError> {
    if args.user.is_some() || args.checkpoint.is_some() {
        return Err(ReindexError::Usage(
            "--user and --checkpoint are for DynamoDB: the embedded store's index is rebuilt whole, in one transaction"
                .to_owned(),
        ));
    }
    let store = EmbeddedStore::open(path)?;
    let documents = store.rebuild_search_index().await?;
    Ok(Summary {
        store: "embedded",
        target: path.display().to_string(),
        done: Backfilled {
            documents,
            ..Backfilled::default()
        },
        ..Summary::default()
    })
}

/// Runs the subcommand: `client` is the DynamoDB client to use (`None`: built from the
/// environment, as the binary does).
pub async fn run(args: &Args, client: Option<Client>) -> Result<Summary, ReindexError> {
    let target = match &args.target {
        Target::FromEnv => match Config::from_env()
            .map_err(|e| ReindexError::Config(e.to_string()))?
            .store
            .kind
        {
            StoreKind::Dynamo {
                conversations_table, ..
            } => Target::Table(conversations_table),
            StoreKind::Embedded { path } => Target::Db(PathBuf::from(path)),
            other => return Err(ReindexError::Config(format!("no store to reindex: {other:?}"))),
        },
        other => other.clone(),
    };
    match target {
        Target::Table(table) => {
            let client = match client {
                Some(c) => c,
                None => shared::store::dynamo::client_from_env().await,
            };
            let store = DynamoStore::new(
                client,
                Tables {
                    conversations: table,
                    events: String::new(),
                },
            );
            reindex_dynamo(&store, args, &|line| eprintln!("{line}")).await
        }
        Target::Db(path) => reindex_embedded(&path, args).await,
        Target::FromEnv => Err(ReindexError::Config("no store to reindex".to_owned())),
    }
}

/// `athena-migrate reindex ARGS...`: parses, runs, prints the summary; returns the exit status
/// (0 done, 1 stopped: rerun to resume, 2 bad arguments).
pub async fn command(args: &[String], client: Option<Client>) -> u8 {
    let parsed = match parse_args(args) {
        Ok(a) => a,
        Err(ReindexError::Usage(m)) if m.is_empty() => {
            println!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("athena-migrate reindex: {e}\n\n{USAGE}");
            return 2;
        }
    };
    match run(&parsed, client).await {
        Ok(summary) => {
            if parsed.json {
                match serde_json::to_string_pretty(&summary) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("athena-migrate reindex: {e}");
                        return 1;
                    }
                }
            } else {
                print!("{}", summary.render());
            }
            0
        }
        Err(e @ (ReindexError::Usage(_) | ReindexError::Checkpoint { .. } | ReindexError::Config(_))) => {
            eprintln!("athena-migrate reindex: {e}");
            2
        }
        Err(e) => {
            eprintln!("athena-migrate reindex: {e} (stopped: run it again to resume)");
            1
        }
    }
}

//! `athena-migrate` (issue 21): the original Athena's Prisma database, on SQLite (built here with
//! the DDL Prisma lays out for seed 000's and seed 001's models, `tests/fixtures/prisma/`) and on
//! a real PostgreSQL server the tests start (`athena_tests::postgres`), migrated into both stores
//! and read back through the routes: conversations, pinned-first order, flags, solution, model,
//! titles, message order and contents, timestamps to the millisecond. A rerun writes nothing; a
//! dry run writes nothing; an interrupted run resumes; an id another user holds is refused; bad
//! rows are refused whole (nothing half-written) and a database that is not Prisma's is refused
//! before anything is written.

use std::path::PathBuf;
use std::sync::Arc;

use athena_migrate::source::{Item, SourceError};
use athena_migrate::{migrate, migrate_all, From, MigrateError, Options, Report, Source};
use athena_tests::tokens::{self, as_user};
use athena_tests::{on_both_stores, spawn_app, unique, workspace_root};
use chrono::SecondsFormat;
use serde_json::Value;
use shared::catalog::Catalog;
use shared::domain::{user_hash, UserId};
use shared::store::Store;

const ALICE: &str = "alice-0001";
const BOB: &str = "bob-0002";
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
/// 2025-10-09T08:53:20.000Z
const T: i64 = 1_760_000_000_000;

/// A conversation row: id, title, isPinned, isShared, model, solutionType, createdAt, updatedAt.
type Conv = (
    &'static str,
    &'static str,
    bool,
    bool,
    &'static str,
    Option<&'static str>,
    i64,
    i64,
);
/// A message row: id, conversationId, role, content, createdAt.
type Msg = (&'static str, &'static str, &'static str, &'static str, i64);

const CONVERSATIONS: [Conv; 4] = [
    (
        "cm1press0001",
        "Press 2 maintenance",
        false,
        false,
        SONNET,
        Some("manufacturing"),
        T,
        T + 60_000,
    ),
    (
        "cm2shift0002",
        "Shift plan",
        true,
        true,
        SONNET,
        None,
        T + 1_000,
        T + 10_000,
    ),
    // A model the catalog does not have (kept as stored, flagged).
    (
        "cm3legacy003",
        "Old model chat",
        false,
        false,
        "anthropic.claude-v2",
        Some("maintenance"),
        T + 2_000,
        T + 120_000,
    ),
    (
        "cm4empty0004",
        "Empty",
        false,
        false,
        SONNET,
        None,
        T + 3_000,
        T + 3_000,
    ),
];

/// In no particular order (the source's row order is not the conversation's).
const MESSAGES: [Msg; 7] = [
    (
        "cmm0z",
        "cm1press0001",
        "assistant",
        "Not safely: the interval is 60 days.",
        T + 60_000,
    ),
    ("cmm2b", "cm2shift0002", "assistant", "Here is the plan.", T + 10_000),
    ("cmm1b", "cm1press0001", "user", "Can we push it to April?", T + 2_123),
    ("cmm1c", "cm1press0001", "user", "When is press 2 due?", T + 1_000),
    // Same createdAt as cmm1b: the tie goes by id (cmm1a first).
    ("cmm1a", "cm1press0001", "assistant", "On 15 March.", T + 2_123),
    (
        "cmm2a",
        "cm2shift0002",
        "user",
        "Ünïcødé shift plan ✓\nline two",
        T + 1_500,
    ),
    ("cmm3a", "cm3legacy003", "user", "Hi", T + 120_000),
];

/// An analytics event row: id, eventType, solutionType, conversationId, model, metadata, timestamp.
type Ev = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    Option<&'static str>,
    i64,
);

const DAY: i64 = 86_400_000;

const EVENTS: [Ev; 6] = [
    (
        "ev1",
        "conversation_created",
        Some("manufacturing"),
        "cm1press0001",
        SONNET,
        None,
        T,
    ),
    (
        "ev2",
        "message_sent",
        Some("manufacturing"),
        "cm1press0001",
        SONNET,
        Some("{}"),
        T + 1_000,
    ),
    (
        "ev3",
        "api_call",
        Some("manufacturing"),
        "cm1press0001",
        SONNET,
        Some(r#"{"inputTokens":100,"outputTokens":40,"latencyMs":1200}"#),
        T + 2_000,
    ),
    (
        "ev4",
        "api_call",
        None,
        "cm2shift0002",
        SONNET,
        Some(r#"{"inputTokens":7,"outputTokens":3}"#),
        T + DAY,
    ),
    (
        "ev5",
        "error",
        None,
        "cm2shift0002",
        SONNET,
        Some("not json"),
        T + DAY + 5,
    ),
    (
        "ev6",
        "conversation_created",
        Some("maintenance"),
        "cm3legacy003",
        "anthropic.claude-v2",
        None,
        T + 2_000,
    ),
];

/// The events of the test: [`EVENTS`] (past the 90-day event retention today: they go into the
/// daily counters only) and two of yesterday (recorded as Athena's events too).
fn events() -> Vec<Ev> {
    let yesterday = shared::domain::now().timestamp_millis() - DAY;
    let mut all = EVENTS.to_vec();
    all.push((
        "evr1",
        "message_sent",
        Some("support"),
        "cm1press0001",
        SONNET,
        None,
        yesterday,
    ));
    all.push((
        "evr2",
        "api_call",
        Some("support"),
        "cm1press0001",
        SONNET,
        Some(r#"{"inputTokens":5}"#),
        yesterday + 1,
    ));
    all
}

/// The listing order the API must show: pinned first, then newest `updatedAt`.
const LISTED: [&str; 4] = ["cm2shift0002", "cm3legacy003", "cm1press0001", "cm4empty0004"];

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn fixture(name: &str) -> String {
    let path = workspace_root().join("tests/fixtures/prisma").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(unique(name))
}

/// A SQLite database with Prisma's DDL (`schema`: `000` or `001`) holding these rows. One
/// message's time is ISO-8601 text (Prisma's SQLite connector writes integers; text is read too).
fn sqlite_db(schema: &str, conversations: &[Conv], messages: &[Msg], events: &[Ev]) -> PathBuf {
    let path = temp("prisma-dev").with_extension("db");
    let conn = rusqlite::Connection::open(&path).expect("a SQLite file");
    conn.execute_batch(&fixture(&format!("sqlite-{schema}.sql")))
        .expect("Prisma's DDL");
    for &(id, title, pinned, shared, model, solution, created, updated) in conversations {
        if schema == "000" {
            conn.execute(
                "INSERT INTO conversations (id, title, \"isPinned\", \"isShared\", model, \"createdAt\", \"updatedAt\") \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![id, title, pinned, shared, model, created, updated],
            )
        } else {
            conn.execute(
                "INSERT INTO conversations (id, title, \"isPinned\", \"isShared\", model, \"solutionType\", \"createdAt\", \"updatedAt\") \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![id, title, pinned, shared, model, solution, created, updated],
            )
        }
        .expect("a conversation row");
    }
    for (i, &(id, conversation, role, content, created)) in messages.iter().enumerate() {
        let created: rusqlite::types::Value = if i == 1 {
            rusqlite::types::Value::Text(iso(created))
        } else {
            rusqlite::types::Value::Integer(created)
        };
        conn.execute(
            "INSERT INTO messages (id, \"conversationId\", role, content, \"createdAt\") VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![id, conversation, role, content, created],
        )
        .expect("a message row");
    }
    for &(id, kind, solution, conversation, model, metadata, at) in events {
        conn.execute(
            "INSERT INTO analytics_events (id, \"eventType\", \"solutionType\", \"conversationId\", model, metadata, timestamp) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![id, kind, solution, conversation, model, metadata, at],
        )
        .expect("an event row");
    }
    path
}

/// A PostgreSQL database with Prisma's DDL (seed 001) holding these rows.
async fn postgres_db(conversations: &[Conv], messages: &[Msg], events: &[Ev]) -> String {
    let url = athena_tests::postgres::postgres_database().await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&fixture("postgresql-001.sql"))
        .await
        .expect("Prisma's DDL");
    let ts = |n: usize| format!("(to_timestamp(${n}::bigint / 1000.0) AT TIME ZONE 'UTC')");
    for &(id, title, pinned, shared, model, solution, created, updated) in conversations {
        client
            .execute(
                &format!(
                    "INSERT INTO conversations (id, title, \"isPinned\", \"isShared\", model, \"solutionType\", \"createdAt\", \"updatedAt\") \
                     VALUES ($1, $2, $3, $4, $5, $6, {}, {})",
                    ts(7),
                    ts(8)
                ),
                &[&id, &title, &pinned, &shared, &model, &solution, &created, &updated],
            )
            .await
            .expect("a conversation row");
    }
    for &(id, conversation, role, content, created) in messages {
        client
            .execute(
                &format!(
                    "INSERT INTO messages (id, \"conversationId\", role, content, \"createdAt\") VALUES ($1, $2, $3, $4, {})",
                    ts(5)
                ),
                &[&id, &conversation, &role, &content, &created],
            )
            .await
            .expect("a message row");
    }
    for &(id, kind, solution, conversation, model, metadata, at) in events {
        client
            .execute(
                &format!(
                    "INSERT INTO analytics_events (id, \"eventType\", \"solutionType\", \"conversationId\", model, metadata, timestamp) \
                     VALUES ($1, $2, $3, $4, $5, $6, {})",
                    ts(7)
                ),
                &[&id, &kind, &solution, &conversation, &model, &metadata, &at],
            )
            .await
            .expect("an event row");
    }
    url
}

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("a user id")
}

async fn run(store: &Arc<dyn Store>, from: &From, owner: &str, dry_run: bool) -> Result<Report, MigrateError> {
    migrate_all(
        from,
        store.as_ref(),
        &user(owner),
        &Catalog::all(),
        Options { dry_run },
        std::time::Duration::from_secs(90 * 86_400),
        shared::domain::now(),
        &|_| {},
    )
    .await
}

/// The gateway on `store`, ALICE an admin (the analytics summary).
async fn app_on(store: &Arc<dyn Store>) -> athena_tests::TestApp {
    let mut config = tokens::jwt_config(tokens::verifier());
    config.admins = vec![user(ALICE)];
    spawn_app(Arc::clone(store), config).await
}

/// The dashboard shows the original's history: the daily counters rebuilt from its events,
/// each counted once; the events are Athena's, under their day.
async fn history_arrived(app: &athena_tests::TestApp) {
    let summary = as_user(
        app,
        ALICE,
        "GET",
        "/api/analytics/summary?from=2025-10-09&to=2025-10-10",
        None,
    )
    .await;
    assert_eq!(summary.status, 200, "{}", summary.text);
    let totals = &summary.json["totals"];
    assert_eq!(
        (&totals["requests"], &totals["errors"], &totals["conversations"]),
        (&Value::from(2), &Value::from(1), &Value::from(2)),
        "{}",
        summary.text
    );
    let manufacturing = summary.json["bySolution"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == "manufacturing"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(manufacturing["inputTokens"], 100, "{}", summary.text);
    assert_eq!(manufacturing["outputTokens"], 40);
    // Past the retention: not recorded (they would expire at once); yesterday's are, as the
    // owner's.
    assert!(app.store.events_of_day("2025-10-09").await.expect("events").is_empty());
    let yesterday = (shared::domain::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let recent = app.store.events_of_day(&yesterday).await.expect("events");
    let mut ids: Vec<&str> = recent.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["evr1", "evr2"]);
    let owner = user_hash(&user(ALICE));
    assert!(recent.iter().all(|e| e.user_id.as_deref() == Some(owner.as_str())));
}

/// As [`run`], stopped after `n` conversations (an interrupted run: the reader is dropped).
async fn run_first(store: &Arc<dyn Store>, from: &From, owner: &str, n: usize) -> Report {
    let source = Source::open(from).await.expect("source");
    let mut all = source.stream();
    let (tx, rx) = athena_migrate::source::channel();
    tokio::spawn(async move {
        let mut sent = 0;
        while let Some(item) = all.recv().await {
            if matches!(item, Ok(Item::Conversation(_))) {
                sent += 1;
            }
            if sent > n || tx.send(item).await.is_err() {
                break;
            }
        }
    });
    migrate(
        rx,
        store.as_ref(),
        &user(owner),
        &Catalog::all(),
        Options::default(),
        &|_| {},
    )
    .await
    .expect("the first part")
}

/// Every conversation and message arrived as the source holds them, through the routes.
async fn arrived(app: &athena_tests::TestApp, owner: &str, with_solution: bool) {
    let listed = as_user(app, owner, "GET", "/api/conversations", None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let items = listed.json.as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = items.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, LISTED, "pinned first, then newest updatedAt");
    for item in &items {
        let id = item["id"].as_str().unwrap_or_default();
        let &(_, title, pinned, shared, model, solution, created, updated) =
            CONVERSATIONS.iter().find(|c| c.0 == id).expect("a source conversation");
        let mine: Vec<&Msg> = {
            let mut m: Vec<&Msg> = MESSAGES.iter().filter(|m| m.1 == id).collect();
            m.sort_by(|a, b| a.4.cmp(&b.4).then(a.0.cmp(b.0)));
            m
        };
        assert_eq!(item["title"], title);
        assert_eq!(item["isPinned"], pinned, "{id}");
        assert_eq!(item["isShared"], shared, "{id}");
        assert_eq!(item["model"], model, "{id}: kept as stored");
        let solution = if with_solution { solution } else { None };
        assert_eq!(item["solutionType"].as_str(), solution, "{id}");
        assert_eq!(item["createdAt"], iso(created), "{id}");
        assert_eq!(item["updatedAt"], iso(updated), "{id}");
        assert_eq!(item["messageCount"], mine.len(), "{id}");
        assert_eq!(item["lastMessage"].as_str(), mine.last().map(|m| m.3), "{id}");
        let doc = as_user(app, owner, "GET", &format!("/api/conversations/{id}/export"), None).await;
        assert_eq!(doc.status, 200, "{}", doc.text);
        let got: Vec<(String, String, String, String)> = doc.json["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                let original = s("id").rsplit('-').next().unwrap_or_default().to_owned();
                (original, s("role"), s("content"), s("createdAt"))
            })
            .collect();
        let want: Vec<(String, String, String, String)> = mine
            .iter()
            .map(|m| (m.0.to_owned(), m.2.to_owned(), m.3.to_owned(), iso(m.4)))
            .collect();
        assert_eq!(got, want, "{id}: every message, in order, ids ending in the original's");
    }
}

fn counts(report: &Report) -> [(u64, u64, u64, u64); 3] {
    [report.conversations, report.messages, report.events].map(|c| (c.read, c.written, c.skipped, c.refused))
}

async fn a_prisma_sqlite_database_arrives_whole_and_a_rerun_writes_nothing(store: Arc<dyn Store>) {
    let app = app_on(&store).await;
    let from = From::Sqlite(
        sqlite_db("001", &CONVERSATIONS, &MESSAGES, &events())
            .display()
            .to_string(),
    );
    // A dry run reads and validates everything and writes nothing.
    let dry = run(&store, &from, ALICE, true).await.expect("dry run");
    assert_eq!(
        counts(&dry),
        [(4, 4, 0, 0), (7, 7, 0, 0), (8, 2, 6, 0)],
        "{}",
        dry.render()
    );
    let listed = as_user(&app, ALICE, "GET", "/api/conversations", None).await;
    assert_eq!(listed.json, Value::Array(Vec::new()), "the dry run wrote nothing");
    assert!(store.events_of_day("2025-10-09").await.expect("events").is_empty());
    assert!(store
        .stats_between("2025-10-09", "2025-10-10")
        .await
        .expect("stats")
        .is_empty());
    // The run.
    let report = run(&store, &from, ALICE, false).await.expect("run");
    assert_eq!(
        counts(&report),
        [(4, 4, 0, 0), (7, 7, 0, 0), (8, 2, 6, 0)],
        "{}",
        report.render()
    );
    assert_eq!(report.flags.len(), 2, "{:?}", report.flags);
    assert!(
        report.flags[1]
            .note
            .starts_with("6 event(s) older than the event retention"),
        "{:?}",
        report.flags
    );
    assert_eq!(report.flags[0].conversation_id, "cm3legacy003");
    assert!(
        report.flags[0].note.contains("anthropic.claude-v2"),
        "{:?}",
        report.flags
    );
    arrived(&app, ALICE, true).await;
    history_arrived(&app).await;
    // A rerun writes nothing (the counters are not added twice); a dry run finds everything there.
    let again = run(&store, &from, ALICE, false).await.expect("rerun");
    assert_eq!(
        counts(&again),
        [(4, 0, 4, 0), (7, 0, 7, 0), (8, 0, 8, 0)],
        "{}",
        again.render()
    );
    let dry = run(&store, &from, ALICE, true).await.expect("dry run");
    assert_eq!(counts(&dry), [(4, 0, 4, 0), (7, 0, 7, 0), (8, 0, 8, 0)]);
    arrived(&app, ALICE, true).await;
    history_arrived(&app).await;
    // Bob sees none of it.
    let bobs = as_user(&app, BOB, "GET", "/api/conversations", None).await;
    assert_eq!(bobs.json, Value::Array(Vec::new()));
    let peek = as_user(&app, BOB, "GET", "/api/conversations/cm1press0001", None).await;
    assert_eq!(peek.status, 404);
}

async fn a_database_from_before_seed_001_migrates_as_general_chats(store: Arc<dyn Store>) {
    let app = app_on(&store).await;
    let from = From::Sqlite(sqlite_db("000", &CONVERSATIONS, &MESSAGES, &[]).display().to_string());
    let source = Source::open(&from).await.expect("source");
    assert!(!source.has_solution());
    assert!(!source.has_events());
    let report = run(&store, &from, ALICE, false).await.expect("run");
    assert_eq!(
        counts(&report),
        [(4, 4, 0, 0), (7, 7, 0, 0), (0, 0, 0, 0)],
        "{}",
        report.render()
    );
    arrived(&app, ALICE, false).await;
}

async fn a_postgresql_database_arrives_as_the_sqlite_one_does(store: Arc<dyn Store>) {
    let app = app_on(&store).await;
    let from = From::Postgres(postgres_db(&CONVERSATIONS, &MESSAGES, &events()).await);
    let dry = run(&store, &from, ALICE, true).await.expect("dry run");
    assert_eq!(
        counts(&dry),
        [(4, 4, 0, 0), (7, 7, 0, 0), (8, 2, 6, 0)],
        "{}",
        dry.render()
    );
    assert_eq!(
        as_user(&app, ALICE, "GET", "/api/conversations", None).await.json,
        Value::Array(Vec::new())
    );
    let report = run(&store, &from, ALICE, false).await.expect("run");
    assert_eq!(
        counts(&report),
        [(4, 4, 0, 0), (7, 7, 0, 0), (8, 2, 6, 0)],
        "{}",
        report.render()
    );
    arrived(&app, ALICE, true).await;
    history_arrived(&app).await;
    let again = run(&store, &from, ALICE, false).await.expect("rerun");
    assert_eq!(counts(&again), [(4, 0, 4, 0), (7, 0, 7, 0), (8, 0, 8, 0)]);
    history_arrived(&app).await;
}

async fn an_id_another_user_holds_is_refused_not_merged(store: Arc<dyn Store>) {
    let app = app_on(&store).await;
    let from = From::Sqlite(
        sqlite_db("001", &CONVERSATIONS, &MESSAGES, &events())
            .display()
            .to_string(),
    );
    run(&store, &from, ALICE, false).await.expect("alice's");
    // The dry run reports what the run then does: every conversation refused.
    let dry = run(&store, &from, BOB, true).await.expect("bob's dry run ends");
    assert_eq!(counts(&dry)[0], (4, 0, 0, 4), "{}", dry.render());
    assert!(
        dry.refusals.iter().all(|r| r.code == "OTHER_OWNER"),
        "{:?}",
        dry.refusals
    );
    let bobs = run(&store, &from, BOB, false).await.expect("bob's run ends");
    assert_eq!(
        counts(&bobs),
        [(4, 0, 0, 4), (7, 0, 0, 7), (8, 0, 8, 0)],
        "{}: the history is the same database's, counted once",
        bobs.render()
    );
    assert!(
        bobs.refusals.iter().all(|r| r.code == "OTHER_OWNER"),
        "{:?}",
        bobs.refusals
    );
    let listed = as_user(&app, BOB, "GET", "/api/conversations", None).await;
    assert_eq!(listed.json, Value::Array(Vec::new()), "nothing of alice's is bob's");
    arrived(&app, ALICE, true).await;
    history_arrived(&app).await;
}

async fn an_interrupted_run_resumes_where_it_stopped(store: Arc<dyn Store>) {
    let app = app_on(&store).await;
    // A large conversation too (on DynamoDB: more than one transaction, written hidden first).
    let mut messages: Vec<Msg> = MESSAGES.to_vec();
    const BIG: usize = 130;
    let ids: Vec<&'static str> = (0..BIG)
        .map(|i| &*Box::leak(format!("cmmbig{i:04}").into_boxed_str()))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push((id, "cm0big000000", role, "a line of a long conversation", T + i as i64));
    }
    let mut conversations = CONVERSATIONS.to_vec();
    conversations.push(("cm0big000000", "Long", false, false, SONNET, None, T, T + 500));
    let from = From::Sqlite(
        sqlite_db("001", &conversations, &messages, &events())
            .display()
            .to_string(),
    );
    let first = run_first(&store, &from, ALICE, 2).await;
    assert_eq!(first.conversations.written, 2, "{}", first.render());
    let rest = run(&store, &from, ALICE, false).await.expect("resumed");
    assert_eq!(
        counts(&rest),
        [
            (5, 3, 2, 0),
            (137, 137 - first.messages.written, first.messages.written, 0),
            (8, 2, 6, 0)
        ]
    );
    let big = as_user(&app, ALICE, "GET", "/api/conversations/cm0big000000/export", None).await;
    assert_eq!(big.json["messages"].as_array().map(Vec::len), Some(BIG), "{}", big.text);
    let listed = as_user(&app, ALICE, "GET", "/api/conversations", None).await;
    assert_eq!(listed.json.as_array().map(Vec::len), Some(5));
}

async fn bad_rows_are_refused_whole_and_the_rest_arrives(store: Arc<dyn Store>) {
    let app = app_on(&store).await;
    let conversations: [Conv; 4] = [
        ("cmbadrole001", "Bad role", false, false, SONNET, None, T, T),
        ("cmbadtime002", "Bad time", false, false, SONNET, None, T, T),
        (
            "cmbadsol0003",
            "Bad solution",
            false,
            false,
            SONNET,
            Some("astrology"),
            T,
            T,
        ),
        ("cmgood000004", "Good", false, false, SONNET, None, T, T + 5),
    ];
    let messages: [Msg; 6] = [
        ("m1", "cmbadrole001", "user", "fine", T),
        ("m2", "cmbadrole001", "robot", "not a role", T + 1),
        ("m3", "cmbadtime002", "user", "fine", T),
        ("m4", "cmbadsol0003", "user", "fine", T),
        ("m5", "cmgood000004", "user", "kept", T + 5),
        ("m6", "cmgood000004", "assistant", "kept too", T + 6),
    ];
    // An event with a solution that does not exist, one with an unparsable time (below), a good one.
    let events: [Ev; 3] = [
        (
            "evbadsol",
            "api_call",
            Some("astrology"),
            "cmgood000004",
            SONNET,
            None,
            T,
        ),
        ("evbadtime", "api_call", None, "cmgood000004", SONNET, None, T),
        ("evgood", "message_sent", None, "cmgood000004", SONNET, None, T + 5),
    ];
    let path = sqlite_db("001", &conversations, &messages, &events);
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA foreign_keys = OFF").expect("pragma");
        // An unparsable time, and messages whose conversation is gone (foreign keys off, as a
        // damaged or hand-edited database may have them).
        conn.execute("UPDATE messages SET \"createdAt\" = 'yesterday' WHERE id = 'm3'", [])
            .expect("update");
        conn.execute(
            "UPDATE analytics_events SET timestamp = 'soon' WHERE id = 'evbadtime'",
            [],
        )
        .expect("update");
        conn.execute(
            "INSERT INTO messages (id, \"conversationId\", role, content, \"createdAt\") VALUES \
             ('o1', 'cmgone000009', 'user', 'orphan', 1), ('o2', 'cmgone000009', 'user', 'orphan', 2), \
             ('o3', 'cm0aaaa', 'user', 'orphan', 3)",
            [],
        )
        .expect("orphans");
    }
    let from = From::Sqlite(path.display().to_string());
    let report = run(&store, &from, ALICE, false).await.expect("run");
    assert_eq!(
        counts(&report),
        [(4, 1, 0, 3), (9, 2, 0, 7), (3, 0, 1, 2)],
        "{}",
        report.render()
    );
    let reason = |id: &str| {
        report
            .refusals
            .iter()
            .find(|r| r.conversation_id == id)
            .map(|r| (r.code, r.reason.clone()))
            .unwrap_or_else(|| panic!("{id} refused: {:?}", report.refusals))
    };
    let (code, why) = reason("(event evbadsol)");
    assert_eq!(code, "INVALID_EVENT");
    assert!(why.contains("astrology"), "{why}");
    let (_, why) = reason("(event evbadtime)");
    assert!(why.contains("soon"), "{why}");
    let (code, why) = reason("cmbadrole001");
    assert_eq!(code, "INVALID_ROW");
    assert!(why.contains("\"m2\"") && why.contains("robot"), "{why}");
    let (_, why) = reason("cmbadtime002");
    assert!(why.contains("\"m3\"") && why.contains("yesterday"), "{why}");
    let (_, why) = reason("cmbadsol0003");
    assert!(why.contains("astrology"), "{why}");
    let (code, why) = reason("cmgone000009");
    assert_eq!(code, "ORPHAN_MESSAGES");
    assert!(why.starts_with("2 message(s)"), "{why}");
    assert_eq!(reason("cm0aaaa").0, "ORPHAN_MESSAGES");
    // Nothing of a refused conversation was written; the good one is whole.
    for id in ["cmbadrole001", "cmbadtime002", "cmbadsol0003"] {
        let r = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}"), None).await;
        assert_eq!(r.status, 404, "{id}: {}", r.text);
    }
    let good = as_user(&app, ALICE, "GET", "/api/conversations/cmgood000004/export", None).await;
    assert_eq!(good.json["messages"].as_array().map(Vec::len), Some(2), "{}", good.text);
}

on_both_stores!([
    a_prisma_sqlite_database_arrives_whole_and_a_rerun_writes_nothing,
    a_database_from_before_seed_001_migrates_as_general_chats,
    a_postgresql_database_arrives_as_the_sqlite_one_does,
    an_id_another_user_holds_is_refused_not_merged,
    an_interrupted_run_resumes_where_it_stopped,
    bad_rows_are_refused_whole_and_the_rest_arrives,
]);

/// A database that is not the original's is refused with a clear error before the store is
/// touched: no file, not SQLite, no `conversations` table, a missing column; on PostgreSQL, an
/// empty database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_not_prismas_is_refused_before_anything_is_written() {
    let open = |path: PathBuf| async move { Source::open(&From::Sqlite(path.display().to_string())).await.err() };
    let missing = open(temp("nowhere")).await;
    assert!(matches!(missing, Some(SourceError::Open { .. })), "{missing:?}");
    let text = temp("notes").with_extension("db");
    std::fs::write(
        &text,
        "these are my notes, not a database, and they are long enough to be read as a header",
    )
    .expect("write");
    let not_sqlite = open(text).await;
    assert!(
        matches!(not_sqlite, Some(SourceError::NotADatabase(_))),
        "{not_sqlite:?}"
    );
    let other = temp("other").with_extension("db");
    rusqlite::Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE todos (id TEXT PRIMARY KEY, done INTEGER)"))
        .expect("another app's database");
    let not_prisma = open(other).await;
    assert!(
        matches!(not_prisma, Some(SourceError::MissingTable { table: "conversations" })),
        "{not_prisma:?}"
    );
    let message = not_prisma.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("not the original Athena's Prisma database"),
        "{message}"
    );
    let no_role = sqlite_db("001", &[], &[], &[]);
    rusqlite::Connection::open(&no_role)
        .and_then(|c| c.execute_batch("ALTER TABLE messages DROP COLUMN role"))
        .expect("drop a column");
    let column = open(no_role).await;
    assert!(
        matches!(
            column,
            Some(SourceError::MissingColumn {
                table: "messages",
                column: "role"
            })
        ),
        "{column:?}"
    );
    let empty = athena_tests::postgres::postgres_database().await;
    let pg = Source::open(&From::Postgres(empty)).await.err();
    assert!(matches!(pg, Some(SourceError::MissingTable { .. })), "{pg:?}");
    assert!(matches!(From::parse("mysql://x"), Err(SourceError::BadSpec(_))));
}

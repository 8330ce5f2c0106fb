//! Full-text search (issue 18, item 2): a user with 10,000 stored messages (200 conversations of
//! 50), searched for a word found only in the 9,000th message and for common words, on the
//! embedded store (SQLite FTS5) and on DynamoDB (moto; the index written by the stream consumer
//! from moto's real stream records, as the `streams` function writes it). Reported: p50 / p95 of
//! one search page (the service: index, conversation checks, message texts, snippets), the
//! index's extra write units per stored message (DynamoDB: one posting put per distinct word,
//! each under 1 KB) and the read units of one search (estimated from the sizes of the items it
//! reads, as DynamoDB bills them). With `--dynalite BIN` (`bench/dynalite.sh`), the moto table is
//! copied into dynalite (a DynamoDB-API server in Node.js on LevelDB) and searched there too: a
//! second engine's latencies, an emulator's, not DynamoDB's.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::domain::{text, Conversation, IdGenerator, Message, Role, UserId};
use shared::reactions::StreamPoller;
use shared::search::{search, SearchRequest};
use shared::store::dynamo::{DynamoStore, Tables, SEARCH_FIRST_PAGE, SEARCH_MAX_CANDIDATES};
use shared::store::embedded::EmbeddedStore;
use shared::store::{schema, Conversations, Store};

use crate::report::{percentile, Row};
use crate::Options;

const COMMAND: &str = "cargo run --release -p athena-bench -- search";
/// Messages of the user.
const MESSAGES: usize = 10_000;
/// Messages per conversation (one create writes a conversation with its messages).
const PER_CONVERSATION: usize = 50;
/// The message holding the rare word (1-based).
const NEEDLE_AT: usize = 9_000;
const NEEDLE: &str = "zephyrine";
/// The p95 target of one search.
const TARGET_MS: f64 = 300.0;

/// Words of the synthetic messages: a maintenance vocabulary and generated rarer words, drawn
/// with a skew (a few words in most messages, most words in few).
const WORDS: &[&str] = &[
    "the",
    "valve",
    "pressure",
    "press",
    "line",
    "pump",
    "motor",
    "bearing",
    "oil",
    "temperature",
    "sensor",
    "alarm",
    "shift",
    "operator",
    "maintenance",
    "check",
    "replace",
    "leak",
    "noise",
    "vibration",
    "filter",
    "hydraulic",
    "spindle",
    "conveyor",
    "belt",
    "gearbox",
    "torque",
    "cycle",
    "downtime",
    "order",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn word(&mut self) -> String {
        let r = (self.next() % 10_000) as f64 / 10_000.0;
        if r < 0.6 {
            WORDS[(r * r * WORDS.len() as f64 / 0.36) as usize % WORDS.len()].to_owned()
        } else {
            format!("term{}", self.next() % 3_000)
        }
    }
}

/// The user's conversations with their messages; the needle in message [`NEEDLE_AT`].
fn corpus(owner: &UserId) -> Vec<(Conversation, Vec<Message>)> {
    let ids = IdGenerator::new();
    let mut rng = Rng(42);
    let start = shared::domain::now() - chrono::Duration::days(30);
    let mut out = Vec::new();
    let mut n = 0usize;
    for c in 0..MESSAGES / PER_CONVERSATION {
        let at = start + chrono::Duration::minutes(c as i64 * 60);
        let conversation = Conversation::new(
            ids.conversation_id(),
            owner.clone(),
            format!("Shift report {c} {}", rng.word()),
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            None,
            at,
        );
        let mut messages = Vec::with_capacity(PER_CONVERSATION);
        for i in 0..PER_CONVERSATION {
            n += 1;
            let mut words: Vec<String> = (0..24).map(|_| rng.word()).collect();
            words.insert(0, "the".to_owned());
            if n == NEEDLE_AT {
                words.insert(5, NEEDLE.to_owned());
            }
            let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
            let at = at + chrono::Duration::seconds(i as i64);
            messages.push(Message::text(
                ids.message_id(),
                conversation.id.clone(),
                role,
                words.join(" "),
                at,
            ));
        }
        out.push((conversation, messages));
    }
    out
}

/// The measured queries: the needle, a common word, the most common word, two words.
const QUERIES: &[(&str, &str)] = &[
    (NEEDLE, "the word of the 9,000th message only"),
    ("valve", "a common word"),
    ("the", "a word of every message"),
    ("pressure valve", "two common words"),
    ("the zephyrine", "the rare word and a word of every message"),
];

struct Measured {
    store: &'static str,
    query: &'static str,
    what: &'static str,
    p50: f64,
    p95: f64,
    hits: usize,
}

async fn measure(store: &dyn Store, owner: &UserId, label: &'static str, runs: usize) -> Result<Vec<Measured>, String> {
    let mut out = Vec::new();
    for (q, what) in QUERIES {
        let request = SearchRequest {
            terms: text::query_terms(q).map_err(|e| e.to_string())?,
            ..SearchRequest::default()
        };
        let mut times = Vec::with_capacity(runs);
        let mut hits = 0;
        for _ in 0..runs {
            let start = Instant::now();
            let page = search(store, owner, &request)
                .await
                .map_err(|e| format!("{label} search {q}: {e}"))?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            hits = page.items.len();
            if q.contains(NEEDLE) {
                let found = page.items.first().map(|h| h.snippet.text.contains(NEEDLE));
                if page.items.len() != 1 || found != Some(true) {
                    return Err(format!("{label}: the 9,000th message's word was not found alone"));
                }
            }
        }
        out.push(Measured {
            store: label,
            query: q,
            what,
            p50: percentile(&times, 50.0),
            p95: percentile(&times, 95.0),
            hits,
        });
    }
    Ok(out)
}

/// Writes `messages` as the store's message items (`BatchWriteItem` of 25): what
/// `create_conversation` writes in one transaction, which moto's server applies by copying its
/// whole table (quadratic over 10,000 messages); the stream records are the same.
async fn put_messages(store: &DynamoStore, owner: &str, messages: &[Message]) -> Result<(), String> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in messages.chunks(25) {
        let mut requests = Vec::with_capacity(chunk.len());
        for m in chunk {
            let s = |v: &str| AttributeValue::S(v.to_owned());
            let item = std::collections::HashMap::from([
                (
                    "pk".to_owned(),
                    s(&schema::conversation_pk(owner, m.conversation_id.as_str())),
                ),
                ("sk".to_owned(), s(&schema::message_sk(m.id.as_str()))),
                ("id".to_owned(), s(m.id.as_str())),
                ("conversationId".to_owned(), s(m.conversation_id.as_str())),
                ("role".to_owned(), s(m.role.as_str())),
                ("content".to_owned(), s(&m.content)),
                ("createdAt".to_owned(), s(&shared::domain::ts::format(&m.created_at))),
            ]);
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| e.to_string())?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let out = store
            .client()
            .batch_write_item()
            .request_items(&store.tables().conversations, requests)
            .send()
            .await
            .map_err(|e| format!("writing messages: {e}"))?;
        if out.unprocessed_items.is_some_and(|u| !u.is_empty()) {
            return Err("moto left messages unprocessed".to_owned());
        }
    }
    Ok(())
}

/// DynamoDB's size of an item (attribute names and values), as capacity units are computed.
fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
                    other => format!("{other:?}").len(),
                }
        })
        .sum()
}

/// One page of a word's postings, whole (as DynamoDB bills a read): the items' sort keys, the
/// page's read units (eventually consistent: 0.5 per 4 KB, rounded up per page) and where the
/// next page starts.
async fn postings_page(
    store: &DynamoStore,
    owner: &UserId,
    term: &str,
    start: Option<std::collections::HashMap<String, AttributeValue>>,
    limit: Option<usize>,
) -> Result<
    (
        Vec<String>,
        f64,
        Option<std::collections::HashMap<String, AttributeValue>>,
    ),
    String,
> {
    let page = store
        .client()
        .query()
        .table_name(&store.tables().conversations)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(schema::search_pk(owner.as_str(), term)))
        .scan_index_forward(false)
        .set_limit(limit.and_then(|l| i32::try_from(l).ok()))
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| format!("reading postings: {e}"))?;
    let items = page.items.unwrap_or_default();
    let bytes: usize = items.iter().map(item_size).sum();
    let sks = items
        .iter()
        .filter_map(|i| match i.get("sk") {
            Some(AttributeValue::S(sk)) => Some(sk.clone()),
            _ => None,
        })
        .collect();
    Ok((
        sks,
        0.5 * bytes.div_ceil(4096).max(1) as f64,
        page.last_evaluated_key.filter(|k| !k.is_empty()),
    ))
}

/// Read units of one search page on DynamoDB, following the search's reads
/// (`shared::store::dynamo` search): each word's first round (a `Query` of
/// [`SEARCH_FIRST_PAGE`] postings); then either the other words' postings of the candidate
/// documents (`BatchGetItem`, 0.5 each) or the rest of every word's partition; then the page's
/// messages (`BatchGetItem`, 0.5 each under 4 KB) and its conversations (consistent `GetItem`, 1
/// each).
async fn read_units(store: &DynamoStore, owner: &UserId, q: &str) -> Result<f64, String> {
    use std::collections::HashSet;
    let request = SearchRequest {
        terms: text::query_terms(q).map_err(|e| e.to_string())?,
        ..SearchRequest::default()
    };
    let mut units = 0.0;
    let mut firsts = Vec::new();
    for term in &request.terms {
        let (sks, u, next) = postings_page(store, owner, term, None, Some(SEARCH_FIRST_PAGE)).await?;
        units += u;
        firsts.push((term.clone(), sks, next));
    }
    let mut whole = firsts.iter().filter(|(_, _, next)| next.is_none());
    let candidates: Option<HashSet<&String>> = match whole.next() {
        Some(first) if firsts.iter().any(|(_, _, next)| next.is_some()) => {
            let mut docs: HashSet<&String> = first.1.iter().collect();
            for (_, sks, _) in whole {
                docs.retain(|d| sks.contains(d));
            }
            (docs.len() <= SEARCH_MAX_CANDIDATES).then_some(docs)
        }
        _ => None,
    };
    for (term, sks, next) in &firsts {
        let Some(next) = next else { continue };
        match &candidates {
            Some(docs) => units += 0.5 * docs.iter().filter(|d| !sks.contains(d)).count() as f64,
            None => {
                let mut start = Some(next.clone());
                while let Some(from) = start.take() {
                    let (_, u, next) = postings_page(store, owner, term, Some(from), None).await?;
                    units += u;
                    start = next;
                }
            }
        }
    }
    let page = search(store, owner, &request).await.map_err(|e| e.to_string())?;
    let messages = page.items.iter().filter(|h| h.message_id.is_some()).count();
    let mut conversations: Vec<_> = page.items.iter().map(|h| h.conversation.id.clone()).collect();
    conversations.sort();
    conversations.dedup();
    Ok(units + 0.5 * messages as f64 + conversations.len() as f64)
}

fn rows_of(measured: &[Measured]) -> Vec<Row> {
    measured
        .iter()
        .map(|m| Row {
            area: "9 search",
            metric: format!(
                "one search page, {} (`{}`, {} hits), 10,000 messages, {}: p50 / p95",
                m.what, m.query, m.hits, m.store
            ),
            measured: format!("{:.1} / {:.1} ms", m.p50, m.p95),
            target: format!("p95 ≤ {TARGET_MS:.0} ms"),
            ratio: format!("{:.2}", m.p95 / TARGET_MS),
            met: Some(m.p95 <= TARGET_MS),
            command: COMMAND.to_owned(),
            key: None,
            value: m.p95,
        })
        .collect()
}

pub async fn search_bench(options: &Options) -> Result<Vec<Row>, String> {
    let owner = UserId::parse("bench-search-user").map_err(|e| e.to_string())?;
    let corpus = corpus(&owner);
    let mut rows = Vec::new();

    eprintln!("search: embedded store, writing {MESSAGES} messages");
    let dir = std::env::temp_dir().join(format!("athena-bench-search-{}", std::process::id()));
    let embedded = EmbeddedStore::open(dir.join("athena.db")).map_err(|e| e.to_string())?;
    let started = Instant::now();
    for (c, messages) in &corpus {
        embedded
            .create_conversation(c, messages)
            .await
            .map_err(|e| e.to_string())?;
    }
    let embedded_write = started.elapsed().as_secs_f64();
    let embedded: Arc<dyn Store> = Arc::new(embedded);
    rows.extend(rows_of(
        &measure(embedded.as_ref(), &owner, "embedded (SQLite FTS5)", 100).await?,
    ));
    let _ = std::fs::remove_dir_all(&dir);
    rows.push(Row {
        area: "9 search",
        metric: "writing 10,000 messages with their index in the same transactions, embedded (200 creates of 50)"
            .to_owned(),
        measured: format!("{embedded_write:.1} s"),
        target: "none".to_owned(),
        ratio: String::new(),
        met: None,
        command: COMMAND.to_owned(),
        key: None,
        value: embedded_write,
    });

    if options.no_moto {
        return Ok(rows);
    }
    if let (Some(bin), Some(data)) = (&options.dynalite, &options.dynalite_data) {
        if data.join(READY).exists() {
            eprintln!(
                "search: dynalite's table in {} is reused; moto is not started",
                data.display()
            );
            let server = crate::load::Dynalite::start(bin, data).await?;
            let store = dynalite_store(&server, &tables());
            rows.extend(rows_of(&measure_on_dynalite(&store, &owner).await?));
            rows.extend(projection_rows(&store, &owner, "dynalite").await?);
            rows.extend(read_unit_rows(&store, &owner, "dynalite").await?);
            return Ok(rows);
        }
    }
    let moto = crate::load::Moto::start(&options.root).await?;
    let credentials = aws_sdk_dynamodb::config::Credentials::new("bench", "bench", None, None, "athena-bench");
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(credentials.clone())
        .endpoint_url(moto.url())
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), tables());
    store.create_tables().await.map_err(|e| e.to_string())?;
    let streams = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(moto.url())
        .build();
    let mut poller = StreamPoller::new(&store, aws_sdk_dynamodbstreams::Client::from_conf(streams))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("search: DynamoDB (moto), writing {MESSAGES} messages");
    for (c, messages) in &corpus {
        store.create_conversation(c, &[]).await.map_err(|e| e.to_string())?;
        put_messages(&store, owner.as_str(), messages).await?;
    }
    eprintln!("search: DynamoDB (moto), indexing from the stream");
    let started = Instant::now();
    let applied = poller.drain(&store).await.map_err(|e| e.to_string())?;
    let indexing = started.elapsed().as_secs_f64();
    // dynalite first: moto's own searches take minutes.
    if let Some(bin) = &options.dynalite {
        rows.extend(on_dynalite(bin, options.dynalite_data.as_deref(), &store, &owner).await?);
    }
    // With `--dynalite-data` (iterating on the read path) moto's own searches, which take
    // minutes, are left out.
    if options.dynalite_data.is_none() {
        rows.extend(rows_of(&measure(&store, &owner, "DynamoDB (moto)", 30).await?));
    }
    let per_message = applied.index.puts as f64 / MESSAGES as f64;
    rows.push(Row {
        area: "9 search",
        metric: format!(
            "the index's extra write units per stored message, DynamoDB (postings put by the stream consumer: {} for {MESSAGES} messages of 25 words and {} titles; each posting under 1 KB = 1 WCU)",
            applied.index.puts,
            corpus.len()
        ),
        measured: format!("{per_message:.1} WCU"),
        target: "low (none set)".to_owned(),
        ratio: String::new(),
        met: None,
        command: COMMAND.to_owned(),
        key: Some("search_wcu_per_message".to_owned()),
        value: per_message,
    });
    rows.push(Row {
        area: "9 search",
        metric: format!(
            "indexing 10,000 messages from the stream on moto ({} records, in-process consumer)",
            applied.records
        ),
        measured: format!("{indexing:.1} s"),
        target: "none (AWS: within seconds of each write)".to_owned(),
        ratio: String::new(),
        met: None,
        command: COMMAND.to_owned(),
        key: None,
        value: indexing,
    });
    rows.extend(read_unit_rows(&store, &owner, "moto").await?);
    Ok(rows)
}

/// The search tables of the benchmark.
fn tables() -> Tables {
    Tables {
        conversations: "bench-search".to_owned(),
        events: "bench-search-events".to_owned(),
    }
}

/// The marker of a dynalite directory holding the benchmark's whole table (`--dynalite-data`).
const READY: &str = "athena-bench-search.ready";

/// A store on `server`.
fn dynalite_store(server: &crate::load::Dynalite, tables: &Tables) -> DynamoStore {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "bench",
            "bench",
            None,
            None,
            "athena-bench",
        ))
        .endpoint_url(server.url())
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), tables.clone())
}

/// Reading every posting of `the` (10,000, about 1.5 MB) with the items whole and with the
/// projection a search uses (no partition key: `sk, tf, len, role, at`), alternating, in one
/// run: what leaving the key out of the read saves.
async fn projection_rows(store: &DynamoStore, owner: &UserId, engine: &str) -> Result<Vec<Row>, String> {
    const RUNS: usize = 30;
    let pk = schema::search_pk(owner.as_str(), "the");
    let read_all = |projected: bool| {
        let pk = pk.clone();
        async move {
            let started = Instant::now();
            let mut start = None;
            let mut read = 0usize;
            loop {
                let mut query = store
                    .client()
                    .query()
                    .table_name(&store.tables().conversations)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", "pk")
                    .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                    .scan_index_forward(false)
                    .set_exclusive_start_key(start.take());
                if projected {
                    query = query
                        .projection_expression("#a0, #a1, #a2, #a3, #a4")
                        .expression_attribute_names("#a0", "sk")
                        .expression_attribute_names("#a1", "tf")
                        .expression_attribute_names("#a2", "len")
                        .expression_attribute_names("#a3", "role")
                        .expression_attribute_names("#a4", "at");
                }
                let page = query.send().await.map_err(|e| format!("reading postings: {e}"))?;
                read += page.items.map_or(0, |i| i.len());
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
            Ok::<_, String>((started.elapsed().as_secs_f64() * 1000.0, read))
        }
    };
    let (mut whole, mut projected) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..RUNS {
        let (ms, n) = read_all(false).await?;
        whole.push(ms);
        let (ms, m) = read_all(true).await?;
        projected.push(ms);
        if n != m || n == 0 {
            return Err(format!("the postings of `the`: {n} whole, {m} projected"));
        }
    }
    let ratio = percentile(&projected, 50.0) / percentile(&whole, 50.0);
    eprintln!(
        "search: {engine}: postings of `the`, whole {:.1} / {:.1} ms, projected {:.1} / {:.1} ms",
        percentile(&whole, 50.0),
        percentile(&whole, 95.0),
        percentile(&projected, 50.0),
        percentile(&projected, 95.0)
    );
    Ok(vec![Row {
        area: "9 search",
        metric: format!(
            "reading the 10,000 postings of `the` ({engine}), whole items vs without the partition key (the search's projection), alternating, {RUNS} each: p50 / p95"
        ),
        measured: format!(
            "{:.1} / {:.1} ms vs {:.1} / {:.1} ms",
            percentile(&whole, 50.0),
            percentile(&whole, 95.0),
            percentile(&projected, 50.0),
            percentile(&projected, 95.0)
        ),
        target: "none (lower is better)".to_owned(),
        ratio: format!("{ratio:.2}"),
        met: None,
        command: COMMAND.to_owned(),
        key: None,
        value: ratio,
    }])
}

/// The searches on dynalite, printed as they are measured.
async fn measure_on_dynalite(store: &DynamoStore, owner: &UserId) -> Result<Vec<Measured>, String> {
    let measured = measure(store, owner, "DynamoDB API (dynalite, Node.js/LevelDB)", 30).await?;
    for m in &measured {
        eprintln!(
            "search: dynalite `{}`: p50 {:.1} ms, p95 {:.1} ms, {} hits",
            m.query, m.p50, m.p95, m.hits
        );
    }
    Ok(measured)
}

/// The read units of one search page of each query, computed from the items `store` holds.
async fn read_unit_rows(store: &DynamoStore, owner: &UserId, engine: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (q, what) in QUERIES {
        let units = read_units(store, owner, q).await?;
        rows.push(Row {
            area: "9 search",
            metric: format!("read units of one search page, {what} (`{q}`), DynamoDB (postings Query + BatchGetItem + GetItem per conversation; item sizes read on {engine})"),
            measured: format!("{units:.1} RCU"),
            target: "none".to_owned(),
            ratio: String::new(),
            met: None,
            command: COMMAND.to_owned(),
            key: None,
            value: units,
        });
    }
    Ok(rows)
}

/// Copies the moto table (every item: conversations, messages, postings; `Scan` pages, then
/// `BatchWriteItem`s of 25, 8 at a time, unprocessed items retried) into a table of the same
/// definition on dynalite, and measures the same searches there through the same `DynamoStore`.
async fn on_dynalite(
    bin: &std::path::Path,
    data: Option<&std::path::Path>,
    source: &DynamoStore,
    owner: &UserId,
) -> Result<Vec<Row>, String> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use futures::StreamExt;
    let dir = match data {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("athena-bench-dynalite-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let server = crate::load::Dynalite::start(bin, &dir).await?;
    let target = dynalite_store(&server, source.tables());
    // dynalite has no UpdateTimeToLive (the TTL is irrelevant to a search): the table is
    // created, then its TTL fails; only the conversations table is used.
    if let Err(e) = target.create_tables().await {
        eprintln!("search: dynalite: {e} (no TTL on dynalite; the table itself is created)");
    }
    let mut active = false;
    for _ in 0..100 {
        let described = target
            .client()
            .describe_table()
            .table_name(&source.tables().conversations)
            .send()
            .await;
        if described
            .is_ok_and(|d| d.table.and_then(|t| t.table_status) == Some(aws_sdk_dynamodb::types::TableStatus::Active))
        {
            active = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !active {
        return Err("dynalite: the conversations table did not become active".to_owned());
    }
    eprintln!("search: copying the moto table into dynalite");
    let table = source.tables().conversations.clone();
    let started = Instant::now();
    let mut copied = 0usize;
    let mut start = None;
    loop {
        let page = source
            .client()
            .scan()
            .table_name(&table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| format!("scanning moto: {e}"))?;
        let items = page.items.unwrap_or_default();
        copied += items.len();
        let batches = items
            .chunks(25)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|item| {
                        PutRequest::builder()
                            .set_item(Some(item.clone()))
                            .build()
                            .map(|put| WriteRequest::builder().put_request(put).build())
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .collect::<Result<Vec<_>, String>>()?;
        let writes = futures::stream::iter(batches.into_iter().map(|mut batch| {
            let (client, table) = (target.client().clone(), table.clone());
            async move {
                for _ in 0..8 {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, batch)
                        .send()
                        .await
                        .map_err(|e| format!("writing to dynalite: {e}"))?;
                    batch = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&table))
                        .unwrap_or_default();
                    if batch.is_empty() {
                        return Ok(());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err("dynalite left items unprocessed".to_owned())
            }
        }))
        .buffer_unordered(8)
        .collect::<Vec<Result<(), String>>>()
        .await;
        writes.into_iter().collect::<Result<Vec<()>, String>>()?;
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            break;
        }
    }
    let copy_secs = started.elapsed().as_secs_f64();
    eprintln!("search: {copied} items copied in {copy_secs:.0} s; searching on dynalite");
    if data.is_some() {
        std::fs::write(dir.join(READY), format!("{copied} items\n")).map_err(|e| e.to_string())?;
    }
    let measured = measure_on_dynalite(&target, owner).await?;
    let projection = projection_rows(&target, owner, "dynalite").await?;
    let mut rows = rows_of(&measured);
    rows.push(Row {
        area: "9 search",
        metric: format!(
            "copying the moto table ({copied} items) into dynalite (Scan pages, BatchWriteItem of 25, 8 at a time)"
        ),
        measured: format!("{copy_secs:.0} s"),
        target: "none".to_owned(),
        ratio: String::new(),
        met: None,
        command: format!("{COMMAND} --dynalite <dir>/node_modules/dynalite/cli.js"),
        key: None,
        value: copy_secs,
    });
    rows.extend(projection);
    drop(server);
    if data.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(rows)
}

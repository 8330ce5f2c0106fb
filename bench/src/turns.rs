//! Chat turns driven through the real handler (`shared::api::handle`) with the scripted model at
//! zero latency: store round trips before the first token and in total, time to first byte added
//! by Athena, and the streaming relay (encoder alone, handler in process, HTTP through the local
//! gateway with its memory growth).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use shared::api::routes::Scope;
use shared::api::{self, ApiRequest, AppState};
use shared::chat::ChatConfig;
use shared::config::{AuthMode, Config};
use shared::llm::scripted::ScriptedModel;
use shared::store::embedded::EmbeddedStore;
use shared::store::Store;
use shared::stream::{Encoder, Protocol};

use crate::report::{percentile, Row};
use crate::Options;
use shared::store::counting::CountingStore;

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("athena-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn user_message(id: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "role": "user", "parts": [{"type": "text", "text": text}]})
}

fn chat_request(user: &str, body: serde_json::Value) -> ApiRequest {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("text/event-stream"),
    );
    let mut claims = serde_json::Map::new();
    claims.insert("sub".to_owned(), serde_json::Value::String(user.to_owned()));
    ApiRequest {
        method: http::Method::POST,
        path: "/api/chat".to_owned(),
        query: Vec::new(),
        headers,
        body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        request_id: format!("bench-{user}"),
        claims: Some(claims),
        any_content_type: false,
    }
}

/// What one turn showed.
struct Turn {
    status: u16,
    calls_before_first_byte: usize,
    calls_before_first_token: usize,
    calls: Vec<&'static str>,
    first_byte: Duration,
    first_token: Duration,
    whole: Duration,
    bytes: usize,
}

/// Reads a turn makes in parallel with the history's (the budget levels for the soft limit, the
/// month's spend under a spend cap, the caller's grant on the conversation in case it is shared
/// with them): a store call each, but no round trip of their own.
const PARALLEL: [&str; 3] = ["budget_levels", "month_spend", "grant_for"];

/// The sequential store round trips among `calls` (the parallel reads left out).
fn round_trips(calls: &[&'static str]) -> usize {
    calls.iter().filter(|c| !PARALLEL.contains(c)).count()
}

async fn drive(state: &Arc<AppState>, store: &CountingStore, request: ApiRequest, settle: bool) -> Turn {
    let started = Instant::now();
    let response = api::handle(state, Scope::All, request).await;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let (mut first_byte, mut first_token) = (None, None);
    let (mut before_byte, mut before_token) = (0, 0);
    let mut bytes = 0;
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else { continue };
        bytes += data.len();
        if first_byte.is_none() {
            first_byte = Some(started.elapsed());
            before_byte = round_trips(&store.snapshot());
        }
        if first_token.is_none() && data.windows(12).any(|w| w == b"\"text-delta\"") {
            first_token = Some(started.elapsed());
            before_token = round_trips(&store.snapshot());
        }
    }
    let whole = started.elapsed();
    if settle {
        // Writes the turn makes after the body ended (none expected, but count them): wait until
        // the count is stable. Only for counting; no timing is taken after this point.
        let mut last = store.count();
        let mut stable = 0;
        while stable < 3 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let now = store.count();
            if now == last {
                stable += 1;
            } else {
                stable = 0;
                last = now;
            }
        }
    }
    Turn {
        status,
        calls_before_first_byte: before_byte,
        calls_before_first_token: before_token,
        calls: store.take(),
        first_byte: first_byte.unwrap_or(whole),
        first_token: first_token.unwrap_or(whole),
        whole,
        bytes,
    }
}

fn bench_state(store: Arc<dyn Store>, rate_limit: u64, auth: AuthMode) -> Arc<AppState> {
    let mut config = Config::local();
    config.auth = auth;
    config.rate_limit_per_minute = rate_limit;
    config.limits.max_reply_chars = 8 * 1024 * 1024;
    let chat = ChatConfig {
        max_output_tokens: u32::MAX,
        ..ChatConfig::default()
    };
    Arc::new(AppState::new(config, store).with_chat(Arc::new(ScriptedModel), chat))
}

/// DynamoDB request units of one call (items ≤ 1 KB, reads strongly consistent): an estimate
/// from each access pattern's documented shape (`docs/data-model.md`).
fn request_units(call: &str) -> (f64, f64) {
    match call {
        "get_conversation" | "find_by_client_id" => (1.0, 0.0),
        "get_conversation_with_messages" | "list_messages" | "list_conversations" => (1.0, 0.0),
        // Transactions cost 2 WRU per item-KB: message + conversation (+ counters).
        "append_message" => (0.0, 4.0),
        "create_conversation" => (0.0, 6.0),
        // begin_turn: one TransactWriteItems over rate counter, budget, stream lease, message,
        // conversation and live-turn marker (6 items); finish_turn: receipt, reply,
        // conversation, budget, lease, stats and the final checkpoint (7 items).
        "begin_turn" => (0.0, 12.0),
        "finish_turn" => (0.0, 14.0),
        // A checkpoint: a put of at most 16 KB (a second of a Claude reply is ~1 KB) and a
        // condition check on the live-turn marker, transactional: 2 × 2 units.
        "checkpoint" => (0.0, 4.0),
        // Asked while the turn has nothing to checkpoint (one strongly consistent GetItem).
        "stop_requested" => (1.0, 0.0),
        "increment_counter" | "add_stats" | "delete_message" => (0.0, 1.0),
        // Batch writes: one event + one audit entry.
        "record_events" => (0.0, 1.0),
        "record_activity" => (0.0, 2.0),
        _ => (0.0, 0.0),
    }
}

/// Store round trips per chat turn and the time to first byte Athena adds.
pub async fn roundtrips(options: &Options) -> Result<Vec<Row>, String> {
    let inner = EmbeddedStore::open(temp_db("roundtrips.db")).map_err(|e| e.to_string())?;
    let store = Arc::new(CountingStore::new(Arc::new(inner)));
    // Production settings: authenticated callers (API Gateway claims), the default rate limit.
    let state = bench_state(
        Arc::clone(&store) as Arc<dyn Store>,
        Config::local().rate_limit_per_minute,
        AuthMode::ApiGateway,
    );
    let turns = options.turns.max(10);
    let mut created = Vec::new();
    let mut followed = Vec::new();
    for i in 0..turns {
        // One user per conversation: the per-user rate limit stays out of the way.
        let user = format!("bench-user-{i}");
        let conversation = format!("bench-conv-{i}");
        let first = user_message(&format!("u1-{i}"), "How do I reset the press line alarm? #deltas:40");
        let turn = drive(
            &state,
            &store,
            chat_request(
                &user,
                serde_json::json!({"id": conversation, "messages": [first.clone()]}),
            ),
            true,
        )
        .await;
        if turn.status != 200 {
            return Err(format!("the first turn answered {}", turn.status));
        }
        created.push(turn);
        let reply = serde_json::json!({"id": format!("a1-{i}"), "role": "assistant", "parts": [{"type": "text", "text": "w0 w1 w2"}]});
        let second = user_message(&format!("u2-{i}"), "And if it trips again? #deltas:40");
        let turn = drive(
            &state,
            &store,
            chat_request(
                &user,
                serde_json::json!({"id": conversation, "messages": [first, reply, second]}),
            ),
            true,
        )
        .await;
        if turn.status != 200 {
            return Err(format!("the follow-up turn answered {}", turn.status));
        }
        followed.push(turn);
    }
    let command = format!("athena-bench roundtrips --turns {turns}");
    let mut rows = Vec::new();
    // A reply streamed over 5 seconds (100 deltas, 50 ms apart): the checkpoints it writes
    // (one per second, off the hot path), and what it costs.
    let long = drive(
        &state,
        &store,
        chat_request(
            "bench-user-long",
            serde_json::json!({"id": "bench-conv-long", "messages": [user_message("u-long", "Walk me through it #deltas:100 #delay:50")]}),
        ),
        true,
    )
    .await;
    if long.status != 200 {
        return Err(format!("the 5 s turn answered {}", long.status));
    }
    let checkpoints = long.calls.iter().filter(|c| **c == "checkpoint").count();
    let polls = long.calls.iter().filter(|c| **c == "stop_requested").count();
    let (rru, wru) = long
        .calls
        .iter()
        .map(|c| request_units(c))
        .fold((0.0, 0.0), |(r, w), (a, b)| (r + a, w + b));
    rows.push(Row {
        area: "2 round trips",
        metric: format!(
            "a reply streamed over {:.1} s: store calls before the first byte / checkpoint writes while streaming / stop polls (idle ticks) / all calls ({} bytes)",
            long.whole.as_secs_f64(),
            long.bytes
        ),
        measured: format!(
            "{} / {checkpoints} / {polls} / {}",
            long.calls_before_first_byte,
            long.calls.len()
        ),
        target: "≤ 2 before the first byte; ≤ 1 checkpoint per second".to_owned(),
        ratio: format!("{:.2}×", checkpoints as f64 / long.whole.as_secs_f64().max(1.0)),
        met: Some(long.calls_before_first_byte <= 2 && checkpoints as f64 <= long.whole.as_secs_f64().ceil() + 1.0),
        command: command.clone(),
        key: Some("checkpoints_per_5s_turn".to_owned()),
        value: checkpoints as f64,
    });
    rows.push(Row {
        area: "6 cost",
        metric: format!(
            "the {:.1} s turn: DynamoDB request units with its checkpoints (estimate per call shape)",
            long.whole.as_secs_f64()
        ),
        measured: format!("{rru:.1} RRU + {wru:.1} WRU"),
        target: String::new(),
        ratio: String::new(),
        met: None,
        command: command.clone(),
        key: Some("wru_per_5s_turn".to_owned()),
        value: wru,
    });
    for (label, set) in [("new conversation", &created), ("follow-up", &followed)] {
        let before = set.iter().map(|t| t.calls_before_first_token).max().unwrap_or(0);
        let before_byte = set.iter().map(|t| t.calls_before_first_byte).max().unwrap_or(0);
        let total = set.iter().map(|t| round_trips(&t.calls)).max().unwrap_or(0);
        let sequence = set
            .first()
            .map(|t| {
                let sequential: Vec<&str> = t.calls.iter().copied().filter(|c| !PARALLEL.contains(c)).collect();
                let parallel: Vec<&str> = t.calls.iter().copied().filter(|c| PARALLEL.contains(c)).collect();
                if parallel.is_empty() {
                    sequential.join(" → ")
                } else {
                    format!(
                        "{}; in parallel with the first: {}",
                        sequential.join(" → "),
                        parallel.join(", ")
                    )
                }
            })
            .unwrap_or_default();
        rows.push(Row {
            area: "2 round trips",
            metric: format!("{label}: store calls before the first token (first byte: {before_byte})"),
            measured: before.to_string(),
            target: "≤ 2".to_owned(),
            ratio: format!("{:.2}×", before as f64 / 2.0),
            met: Some(before <= 2),
            command: command.clone(),
            key: None,
            value: before as f64,
        });
        rows.push(Row {
            area: "2 round trips",
            metric: format!("{label}: store calls per turn ({sequence})"),
            measured: total.to_string(),
            target: "≤ 4".to_owned(),
            ratio: format!("{:.2}×", total as f64 / 4.0),
            met: Some(total <= 4),
            command: command.clone(),
            key: None,
            value: total as f64,
        });
        let first_token: Vec<f64> = set.iter().map(|t| t.first_token.as_secs_f64() * 1e3).collect();
        let whole: Vec<f64> = set.iter().map(|t| t.whole.as_secs_f64() * 1e3).collect();
        rows.push(Row {
            area: "2 round trips",
            metric: format!(
                "{label}: time to first token added by Athena (model at zero latency, embedded store), p50 / p99"
            ),
            measured: format!(
                "{:.3} / {:.3} ms",
                percentile(&first_token, 50.0),
                percentile(&first_token, 99.0)
            ),
            target: "report".to_owned(),
            ratio: String::new(),
            met: None,
            command: command.clone(),
            key: None,
            value: percentile(&first_token, 50.0),
        });
        rows.push(Row {
            area: "2 round trips",
            metric: format!("{label}: whole turn (40 deltas), p50 / p99"),
            measured: format!("{:.3} / {:.3} ms", percentile(&whole, 50.0), percentile(&whole, 99.0)),
            target: "report".to_owned(),
            ratio: String::new(),
            met: None,
            command: command.clone(),
            key: (label == "follow-up").then(|| "turn_ms.p50".to_owned()),
            value: percentile(&whole, 50.0),
        });
        if label == "follow-up" {
            let first_byte: Vec<f64> = set.iter().map(|t| t.first_byte.as_secs_f64() * 1e3).collect();
            rows.push(Row {
                area: "2 round trips",
                metric: format!("{label}: time to first SSE byte, p50 / p99"),
                measured: format!(
                    "{:.3} / {:.3} ms",
                    percentile(&first_byte, 50.0),
                    percentile(&first_byte, 99.0)
                ),
                target: "report".to_owned(),
                ratio: String::new(),
                met: None,
                command: command.clone(),
                key: None,
                value: percentile(&first_byte, 50.0),
            });
            let (rru, wru) = set
                .first()
                .map(|t| {
                    t.calls
                        .iter()
                        .map(|c| request_units(c))
                        .fold((0.0, 0.0), |(r, w), (a, b)| (r + a, w + b))
                })
                .unwrap_or_default();
            rows.push(Row {
                area: "6 cost",
                metric: "follow-up turn: DynamoDB request units (estimate per call shape)".to_owned(),
                measured: format!("{rru:.1} RRU + {wru:.1} WRU"),
                target: String::new(),
                ratio: String::new(),
                met: None,
                command: command.clone(),
                key: Some("rru_per_turn".to_owned()),
                value: rru,
            });
            rows.push(Row {
                area: "6 cost",
                metric: "follow-up turn: write request units".to_owned(),
                measured: format!("{wru:.1} WRU"),
                target: String::new(),
                ratio: String::new(),
                met: None,
                command: command.clone(),
                key: Some("wru_per_turn".to_owned()),
                value: wru,
            });
        }
    }
    Ok(rows)
}

fn delta_text(i: usize) -> String {
    format!("w{i} ")
}

/// How many scripted deltas (`w0 `, `w1 `, …) make a reply of at least `bytes` bytes.
fn deltas_for(bytes: usize) -> usize {
    let (mut n, mut total) = (0, 0);
    while total < bytes {
        total += delta_text(n).len();
        n += 1;
    }
    n
}

/// Deltas per second per core: the encoder alone, the handler in process on one thread, and
/// over HTTP through `athena-local` (deltas per CPU-second of the gateway); the gateway's peak
/// RSS growth while relaying a 1 MiB reply.
pub fn relay(options: &Options) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    // 1. The encoder alone.
    let n = 2_000_000;
    let words: Vec<String> = (0..1000).map(delta_text).collect();
    let mut encoder = Encoder::new(Protocol::UiMessage);
    let started = Instant::now();
    let mut bytes = 0usize;
    for i in 0..n {
        for b in encoder.text(&words[i % words.len()]) {
            bytes += b.len();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = n as f64 / secs;
    rows.push(Row {
        area: "3 relay",
        metric: format!("encoder alone (UI message stream), {n} deltas, one thread ({bytes} bytes out)"),
        measured: format!("{:.0} deltas/s", rate),
        target: "≥ 100,000 deltas/s/core".to_owned(),
        ratio: format!("{:.1}×", rate / 100_000.0),
        met: Some(rate >= 100_000.0),
        command: "athena-bench relay".to_owned(),
        key: None,
        value: rate,
    });
    // 2. The real handler in process, on a single-threaded runtime (one core).
    let one_mib = deltas_for(1024 * 1024);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (turn, secs) = runtime.block_on(async {
        let inner = EmbeddedStore::open(temp_db("relay.db")).map_err(|e| e.to_string())?;
        let store = Arc::new(CountingStore::new(Arc::new(inner)));
        let state = bench_state(Arc::clone(&store) as Arc<dyn Store>, 0, Config::local().auth);
        let text = format!("Write a long reply #deltas:{one_mib}");
        // Warm-up turn (table pages, allocator).
        let warm = chat_request(
            "bench-relay",
            serde_json::json!({"messages": [user_message("w", "warm #deltas:100")]}),
        );
        drive(&state, &store, warm, false).await;
        let request = chat_request(
            "bench-relay",
            serde_json::json!({"messages": [user_message("r", &text)]}),
        );
        let started = Instant::now();
        let turn = drive(&state, &store, request, false).await;
        Ok::<_, String>((turn, started.elapsed().as_secs_f64()))
    })?;
    drop(runtime);
    if turn.status != 200 {
        return Err(format!("the relay turn answered {}", turn.status));
    }
    let rate = one_mib as f64 / secs;
    rows.push(Row {
        area: "3 relay",
        metric: format!(
            "model stream → encoder → HTTP body, in process (api::handle, one thread), 1 MiB reply = {one_mib} deltas, {} bytes of SSE",
            turn.bytes
        ),
        measured: format!("{:.0} deltas/s", rate),
        target: "≥ 100,000 deltas/s/core".to_owned(),
        ratio: format!("{:.1}×", rate / 100_000.0),
        met: Some(rate >= 100_000.0),
        command: "athena-bench relay".to_owned(),
        key: Some("relay_inproc".to_owned()),
        value: rate,
    });
    // 3. Over HTTP through the local gateway (a child process): CPU time and memory of the gateway.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let http_rows = runtime.block_on(async {
        let gateway = crate::load::Gateway::start(options, &[], "relay").await?;
        // Warm-up turns: the gateway's steady state before the measured reply.
        for i in 0..3 {
            crate::load::chat(gateway.addr, &format!("warm up {i} #deltas:2000")).await?;
        }
        let pid = gateway.pid();
        // Reset the peak (VmHWM) to the current RSS: `echo 5 > /proc/PID/clear_refs`.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").map_err(|e| format!("clear_refs: {e}"))?;
        let rss_before = crate::proc_status_kib(pid, "VmRSS").unwrap_or(0);
        let cpu_before = crate::proc_cpu(pid).unwrap_or_default();
        let started = Instant::now();
        let (status, bytes) = crate::load::chat(gateway.addr, &format!("Write a long reply #deltas:{one_mib}")).await?;
        let wall = started.elapsed().as_secs_f64();
        let cpu = (crate::proc_cpu(pid).unwrap_or_default() - cpu_before).as_secs_f64();
        let peak = crate::proc_status_kib(pid, "VmHWM").unwrap_or(0);
        if !status.contains("200") {
            return Err(format!("the relay request answered {status}"));
        }
        let per_core = one_mib as f64 / cpu.max(0.01);
        let growth_kib = peak.saturating_sub(rss_before);
        Ok::<_, String>(vec![
            Row {
                area: "3 relay",
                metric: format!(
                    "over HTTP through athena-local (embedded store), 1 MiB reply = {one_mib} deltas, {bytes} bytes on the wire; per CPU-second of the gateway (wall {:.0} ms, CPU {:.0} ms)",
                    wall * 1e3,
                    cpu * 1e3
                ),
                measured: format!("{per_core:.0} deltas/s/core"),
                target: "≥ 100,000 deltas/s/core".to_owned(),
                ratio: format!("{:.1}×", per_core / 100_000.0),
                met: Some(per_core >= 100_000.0),
                command: "athena-bench relay".to_owned(),
                key: None,
                value: per_core,
            },
            Row {
                area: "3 relay",
                metric: format!(
                    "peak RSS growth of athena-local while relaying a 1 MiB reply (VmHWM after − VmRSS before = {peak} − {rss_before} KiB)"
                ),
                measured: format!("{:.2} MiB", growth_kib as f64 / 1024.0),
                target: "≤ 1 MiB".to_owned(),
                ratio: format!("{:.2}×", growth_kib as f64 / 1024.0),
                met: Some(growth_kib <= 1024),
                command: "athena-bench relay".to_owned(),
                key: None,
                value: growth_kib as f64,
            },
        ])
    })?;
    rows.extend(http_rows);
    Ok(rows)
}

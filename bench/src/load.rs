//! The local gateway under load: `wrk` (Debian's package) on loopback, bounded in time, listing
//! conversations and streaming chat turns at 1, 50 and 200 connections, on the embedded store
//! and on DynamoDB (moto). Also the child processes the other benchmarks use.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::report::Row;
use crate::Options;

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

async fn wait_for(addr: SocketAddr, child: &mut Child, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited with {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on {addr} within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// moto's DynamoDB server (serialized, `tests/moto_serial.py`), killed on drop.
pub struct Moto {
    _child: Child,
    addr: SocketAddr,
}

impl Moto {
    /// Starts it with the workspace's virtualenv on a free port.
    pub async fn start(root: &Path) -> Result<Self, String> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tests/moto_serial.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting moto (.venv/bin/python tests/moto_serial.py): {e}"))?;
        wait_for(addr, &mut child, "moto").await?;
        Ok(Self { _child: child, addr })
    }

    /// Its endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// dynalite (a DynamoDB-API server in Node.js on LevelDB, installed by `bench/dynalite.sh`) on
/// a free port, its LevelDB in `dir`, killed on drop.
pub struct Dynalite {
    _child: Child,
    addr: SocketAddr,
}

impl Dynalite {
    /// Starts `node BIN --port P --path DIR`.
    pub async fn start(bin: &Path, dir: &Path) -> Result<Self, String> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = Command::new("node")
            .arg(bin)
            .args(["--port", &port.to_string(), "--path"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting dynalite (node {}): {e}", bin.display()))?;
        wait_for(addr, &mut child, "dynalite").await?;
        Ok(Self { _child: child, addr })
    }

    /// Its endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// `athena-local` (release) on a free port, killed on drop.
pub struct Gateway {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Gateway {
    /// Starts `target/release/athena-local` with the scripted model, no auth (its default), the
    /// rate limit off (`ATHENA_RATE_LIMIT_PER_MINUTE=0`), an embedded store in a fresh file
    /// unless `env` names a DynamoDB table, and `env` on top.
    pub async fn start(options: &Options, env: &[(String, String)], name: &str) -> Result<Self, String> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!("athena-bench-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let db = dir.join(format!("{name}.db"));
        let _ = std::fs::remove_file(&db);
        let mut child = Command::new(options.bin_dir.join("athena-local"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("ATHENA_ADDR", addr.to_string())
            .env("ATHENA_DB", &db)
            .env("ATHENA_PROVIDER", "scripted")
            .env("ATHENA_RATE_LIMIT_PER_MINUTE", "0")
            .env("ATHENA_MAX_REPLY_CHARS", "8000000")
            .env("ATHENA_MAX_OUTPUT_TOKENS", "1000000")
            // One local user stands for every client: switch the per-user token budgets and
            // the concurrent-stream cap off too (0 = off), or they would refuse the load.
            .env("ATHENA_TOKEN_BUDGET_DAY", "0")
            .env("ATHENA_TOKEN_BUDGET_MONTH", "0")
            .env("ATHENA_MAX_CONCURRENT_STREAMS", "0")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}/athena-local: {e}", options.bin_dir.display()))?;
        wait_for(addr, &mut child, "athena-local").await?;
        Ok(Self { child, addr })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// One chat turn over plain HTTP/1.1 (`Connection: close`), read to the end. Returns the status
/// line and the bytes received.
pub async fn chat(addr: SocketAddr, text: &str) -> Result<(String, usize), String> {
    let body =
        serde_json::json!({"messages": [{"id": "bench-u", "role": "user", "parts": [{"type": "text", "text": text}]}]})
            .to_string();
    request(addr, "POST", "/api/chat", Some(&body)).await
}

async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Result<(String, usize), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    stream.write_all(body.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    let mut status = String::new();
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        if status.is_empty() {
            status = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
        }
        total += n;
    }
    Ok((status, total))
}

/// Waits until the gateway answers a listing within 1 s again (a slow backend, moto, may still
/// be working through the previous point's backlog), at most 60 s.
async fn drain(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let started = Instant::now();
        let answered =
            tokio::time::timeout(Duration::from_secs(5), request(addr, "GET", "/api/conversations", None)).await;
        if matches!(&answered, Ok(Ok((status, _))) if status.contains("200"))
            && started.elapsed() < Duration::from_secs(1)
        {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What `wrk --latency` printed.
struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: String,
}

fn parse_duration_ms(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    let (number, scale) = if let Some(v) = raw.strip_suffix("us") {
        (v, 1e-3)
    } else if let Some(v) = raw.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = raw.strip_suffix('m') {
        (v, 60_000.0)
    } else if let Some(v) = raw.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (raw, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(out: &str) -> Option<WrkResult> {
    let mut result = WrkResult {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        requests: 0,
        non_2xx: 0,
        socket_errors: String::new(),
    };
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("50%") {
            result.p50_ms = parse_duration_ms(v)?;
        } else if let Some(v) = t.strip_prefix("99%") {
            result.p99_ms = parse_duration_ms(v)?;
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            result.rps = v.trim().parse().ok()?;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            result.socket_errors = v.trim().to_owned();
        } else if t.contains("requests in") {
            result.requests = t.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        }
    }
    Some(result)
}

async fn wrk(url: &str, connections: usize, secs: u64, script: Option<&Path>) -> Result<WrkResult, String> {
    let mut command = Command::new("wrk");
    command
        .arg("-t")
        .arg(connections.min(2).to_string())
        .arg("-c")
        .arg(connections.to_string())
        .arg("-d")
        .arg(format!("{secs}s"))
        .args(["--timeout", "10s", "--latency"]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let out = command
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("running wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))
}

/// Requests/s and p50/p99 at 1, 50 and 200 connections for listing and for streamed chat turns.
pub async fn load(options: &Options) -> Result<Vec<Row>, String> {
    let dir = std::env::temp_dir().join(format!("athena-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let script = dir.join("chat.lua");
    let body = serde_json::json!({"messages": [{"id": "bench-u", "role": "user", "parts": [{"type": "text", "text": "Summarise the maintenance plan #deltas:50"}]}]})
        .to_string();
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Accept\"] = \"text/event-stream\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let moto = if options.no_moto {
        None
    } else {
        Some(Moto::start(&options.root).await?)
    };
    let mut stores: Vec<(&str, Vec<(String, String)>)> = vec![("embedded", Vec::new())];
    if let Some(moto) = &moto {
        stores.push((
            "DynamoDB (moto)",
            vec![
                ("ATHENA_TABLE".to_owned(), "bench-load".to_owned()),
                ("ATHENA_CREATE_TABLES".to_owned(), "true".to_owned()),
                ("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), moto.url()),
                ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
                ("AWS_ACCESS_KEY_ID".to_owned(), "bench".to_owned()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), "bench".to_owned()),
            ],
        ));
    }
    let mut rows = Vec::new();
    for (store, env) in stores {
        let gateway = Gateway::start(options, &env, "load").await?;
        // 20 conversations to list.
        for i in 0..20 {
            let (status, _) = chat(gateway.addr, &format!("Seed conversation {i}")).await?;
            if !status.contains("200") {
                return Err(format!("seeding the {store} store answered {status}"));
            }
        }
        let base = format!("http://{}", gateway.addr);
        for (scenario, path, script) in [
            ("GET /api/conversations", "/api/conversations", None),
            (
                "POST /api/chat (50 deltas, streamed)",
                "/api/chat",
                Some(script.as_path()),
            ),
        ] {
            for connections in [1, 50, 200] {
                drain(gateway.addr).await;
                eprintln!("  {store}: {scenario} × {connections}");
                let r = wrk(&format!("{base}{path}"), connections, options.load_secs, script).await?;
                let errors = if r.non_2xx > 0 || !r.socket_errors.is_empty() {
                    format!(" ({} non-2xx; socket errors: {})", r.non_2xx, r.socket_errors)
                } else {
                    String::new()
                };
                let is_target = store == "embedded" && path == "/api/conversations" && connections == 200;
                rows.push(Row {
                    area: "5 load",
                    metric: format!(
                        "{store}: {scenario}, {connections} connections, {} s",
                        options.load_secs
                    ),
                    measured: format!(
                        "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} requests{errors}",
                        r.rps, r.p50_ms, r.p99_ms, r.requests
                    ),
                    target: if is_target {
                        "p99 ≤ 5 ms".to_owned()
                    } else {
                        String::new()
                    },
                    ratio: if is_target {
                        format!("{:.2}×", r.p99_ms / 5.0)
                    } else {
                        String::new()
                    },
                    met: is_target.then_some(r.p99_ms <= 5.0 && r.non_2xx == 0),
                    command: format!(
                        "wrk -t{} -c{connections} -d{}s --latency{} {path}",
                        connections.min(2),
                        options.load_secs,
                        if script.is_some() { " -s chat.lua" } else { "" }
                    ),
                    key: None,
                    value: r.p99_ms,
                });
            }
        }
    }
    drop(moto);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 10s test @ http://127.0.0.1:3000/api/conversations\n  2 threads and 200 connections\n  Latency Distribution\n     50%   34.49ms\n     75%   40.00ms\n     90%   80.00ms\n     99%  144.24ms\n  70593 requests in 10.02s, 1.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:   7048.12\n";
        let r = parse_wrk(out).expect("parsed");
        assert_eq!(r.requests, 70593);
        assert_eq!(r.non_2xx, 3);
        assert!((r.p50_ms - 34.49).abs() < 1e-9);
        assert!((r.p99_ms - 144.24).abs() < 1e-9);
        assert!((r.rps - 7048.12).abs() < 1e-9);
        assert_eq!(parse_duration_ms("250.00us"), Some(0.25));
        assert_eq!(parse_duration_ms("2.00s"), Some(2000.0));
    }
}

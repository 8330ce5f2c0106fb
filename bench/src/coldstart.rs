//! A minimal Lambda Runtime API (the 2018-06-01 interface `lambda_runtime` speaks): it hands one
//! event to a freshly spawned `bootstrap` and times process start -> first `GET .../next` (init)
//! and -> the response fully posted (first response). Streaming responses (`chat`) are read to
//! their end like any other.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// What one run observed.
#[derive(Default)]
struct Run {
    event: Bytes,
    fetched: Option<Instant>,
    responded: Option<Instant>,
    response_head: String,
    error: Option<String>,
}

#[derive(Default)]
struct Emulator {
    run: Mutex<Run>,
    done: Notify,
}

/// One measured cold start.
pub struct Sample {
    /// Process start -> first invocation fetched.
    pub init: Duration,
    /// Process start -> first response posted in full.
    pub first_response: Duration,
    /// Peak RSS of the process (VmHWM) after the first response, in KiB.
    pub peak_rss_kib: u64,
    /// The start of the response the function posted (status line for HTTP functions).
    pub response_head: String,
}

async fn serve(emu: Arc<Emulator>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if method == hyper::Method::GET && path.ends_with("/invocation/next") {
        let event = {
            let mut run = emu.run.lock().unwrap_or_else(PoisonError::into_inner);
            if run.fetched.is_some() {
                None
            } else {
                run.fetched = Some(Instant::now());
                Some(run.event.clone())
            }
        };
        let Some(event) = event else {
            // The function is waiting for its second invocation: there is none; it gets killed.
            match std::future::pending::<Infallible>().await {}
        };
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + 30_000;
        let response = Response::builder()
            .header("lambda-runtime-aws-request-id", "bench-request-1")
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            )
            .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
            .header("content-type", "application/json")
            .body(Full::new(event))
            .unwrap_or_default();
        return Ok(response);
    }
    let is_error = path.ends_with("/error");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    {
        let mut run = emu.run.lock().unwrap_or_else(PoisonError::into_inner);
        run.responded = Some(Instant::now());
        if is_error {
            run.error = Some(format!("{path}: {}", String::from_utf8_lossy(&body)));
        } else {
            let text = String::from_utf8_lossy(&body);
            run.response_head = text.chars().take(160).collect();
        }
    }
    emu.done.notify_one();
    Ok(Response::builder()
        .status(202)
        .body(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")))
        .unwrap_or_default())
}

/// A running emulator.
pub struct Harness {
    emu: Arc<Emulator>,
    addr: SocketAddr,
}

impl Harness {
    /// Starts the Runtime API on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let emu = Arc::new(Emulator::default());
        let server = Arc::clone(&emu);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let emu = Arc::clone(&server);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| serve(Arc::clone(&emu), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { emu, addr })
    }

    /// Spawns `binary` with `env`, hands it `event`, and measures its cold start.
    pub async fn measure(&self, binary: &Path, env: &[(String, String)], event: &[u8]) -> Result<Sample, String> {
        *self.emu.run.lock().unwrap_or_else(PoisonError::into_inner) = Run {
            event: Bytes::copy_from_slice(event),
            ..Run::default()
        };
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            // Where the system's root certificates are (the SDK loads them at client build):
            // passed through so a run can mimic Lambda's layout (one bundle) on any host.
            .envs(
                ["SSL_CERT_FILE", "SSL_CERT_DIR"]
                    .into_iter()
                    .filter_map(|k| std::env::var(k).ok().map(|v| (k, v))),
            )
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", binary.display()))?;
        let pid = child.id().unwrap_or(0);
        let waited = tokio::time::timeout(Duration::from_secs(30), self.emu.done.notified()).await;
        let peak_rss_kib = crate::proc_status_kib(pid, "VmHWM").unwrap_or(0);
        let _ = child.start_kill();
        let _ = child.wait().await;
        if waited.is_err() {
            return Err(format!("{} did not respond within 30 s", binary.display()));
        }
        let run = std::mem::take(&mut *self.emu.run.lock().unwrap_or_else(PoisonError::into_inner));
        if let Some(error) = run.error {
            return Err(format!("{} reported an error: {error}", binary.display()));
        }
        let (Some(fetched), Some(responded)) = (run.fetched, run.responded) else {
            return Err(format!("{} responded without fetching an event", binary.display()));
        };
        Ok(Sample {
            init: fetched - started,
            first_response: responded - started,
            peak_rss_kib,
            response_head: run.response_head,
        })
    }
}

/// An API Gateway HTTP API (v2) event.
pub fn http_event(method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            "host": "bench.lambda-url.us-east-1.on.aws",
            "user-agent": "athena-bench"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.lambda-url.us-east-1.on.aws",
            "domainPrefix": "bench",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "athena-bench"
            },
            "requestId": "bench-request-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1_795_392_000_000_u64
        },
        "isBase64Encoded": false,
        "body": body
    }))
    .unwrap_or_default()
}

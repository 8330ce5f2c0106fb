//! The local gateway holds up against clients that hold connections: a head or a body that
//! never finishes, idle keep-alive connections, many idle connections at once, and oversized
//! request targets and headers (answered in the usual JSON error shape). Timeouts are short here
//! (`ServeOptions`), and "closed before" bounds are generous: the machine is shared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use athena_tests::{embedded_store, spawn_state_with, TestApp};
use serde_json::Value;
use shared::api::AppState;
use shared::config::Config;
use shared::local::ServeOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous upper bound for "closed within the timeout" (the timeouts here are 1 s).
const CLOSED_WITHIN: Duration = Duration::from_secs(15);

fn short() -> ServeOptions {
    ServeOptions {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    }
}

async fn gateway(config: Config, options: ServeOptions) -> TestApp {
    let store: Arc<dyn shared::store::Store> = Arc::new(embedded_store());
    spawn_state_with(AppState::new(config, Arc::clone(&store)), store, options).await
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (end of stream or reset); returns what it sent.
/// Panics if it is still open after `bound`.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> String {
    let deadline = Instant::now() + bound;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the connection was still open after {bound:?}; received: {}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
}

/// The JSON body of a raw HTTP/1.1 response (sent with a content length).
fn body_of(raw: &str) -> Value {
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Whether a raw response carries a header (name lowercase, as hyper writes it).
fn has_header(raw: &str, line: &str) -> bool {
    raw.split_once("\r\n\r\n")
        .map_or(raw, |(head, _)| head)
        .lines()
        .any(|l| l.eq_ignore_ascii_case(line))
}

fn assert_error_shape(json: &Value, code: &str) {
    assert_eq!(json["error"]["code"], code, "{json}");
    assert!(
        json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    assert!(
        json["error"]["requestId"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_half_a_header_or_nothing_is_disconnected() {
    let app = gateway(Config::local(), short()).await;
    let mut silent = TcpStream::connect(addr(&app)).await.expect("connect");
    let mut half = TcpStream::connect(addr(&app)).await.expect("connect");
    half.write_all(b"GET /api/health HTTP/1.1\r\nHost: loc")
        .await
        .expect("write");
    // A trickle: one byte now and then, never finishing the head.
    let mut trickle = TcpStream::connect(addr(&app)).await.expect("connect");
    let trickling = tokio::spawn(async move {
        for byte in b"GET /api/health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        read_until_closed(&mut trickle, CLOSED_WITHIN).await;
        true
    });
    // hyper closes such connections without an answer.
    read_until_closed(&mut silent, CLOSED_WITHIN).await;
    read_until_closed(&mut half, CLOSED_WITHIN).await;
    assert!(
        trickling.await.expect("trickle task"),
        "the trickling client was cut off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_its_answer() {
    let app = gateway(Config::local(), short()).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    stream
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let raw = read_until_closed(&mut stream, CLOSED_WITHIN).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        !has_header(&raw, "connection: close"),
        "kept alive, then closed as idle: {raw}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_408_and_the_connection_closed() {
    let app = gateway(Config::local(), short()).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    stream
        .write_all(
            b"POST /api/conversations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              X-Request-Id: slow-body-1\r\nContent-Length: 100\r\n\r\n{\"ti",
        )
        .await
        .expect("write");
    let raw = read_until_closed(&mut stream, CLOSED_WITHIN).await;
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert_error_shape(&body_of(&raw), "REQUEST_TIMEOUT");
    assert_eq!(body_of(&raw)["error"]["requestId"], "slow-body-1");
    assert!(has_header(&raw, "x-content-type-options: nosniff"), "{raw}");
    assert!(has_header(&raw, "x-request-id: slow-body-1"), "{raw}");
    assert!(has_header(&raw, "connection: close"), "{raw}");
    // Nothing was created.
    let listed = app.call("GET", "/api/conversations", None).await;
    assert_eq!(listed.json.as_array().map(Vec::len), Some(0), "{}", listed.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uris_headers_and_bodies_are_answered_in_the_json_error_shape() {
    let mut config = Config::local();
    config.limits.max_body_bytes = 1000;
    let app = gateway(config, ServeOptions::default()).await;
    let security = |r: &reqwest::Response| {
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h.contains_key("content-security-policy"));
        assert_eq!(h["content-type"], "application/json");
    };
    let long = "a".repeat(20_000);
    let r = app
        .client
        .get(format!("{}/api/health?x={long}", app.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 414);
    security(&r);
    assert_error_shape(&r.json().await.expect("json"), "URI_TOO_LONG");

    let mut req = app.client.get(format!("{}/api/health", app.base));
    for i in 0..10 {
        req = req.header(format!("x-big-{i}"), "b".repeat(4000));
    }
    let r = req.send().await.expect("send");
    assert_eq!(r.status(), 431);
    security(&r);
    assert_error_shape(&r.json().await.expect("json"), "HEADERS_TOO_LARGE");

    let r = app
        .client
        .post(format!("{}/api/conversations", app.base))
        .header("content-type", "application/json")
        .body(format!("{{\"title\": \"{}\"}}", "t".repeat(5000)))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    security(&r);
    assert_error_shape(&r.json().await.expect("json"), "PAYLOAD_TOO_LARGE");

    // Past hyper's own limits (over 100 header lines), hyper answers by itself, before the
    // service runs: the status is right, the body is empty (documented on `ServeOptions`).
    let mut req = app.client.get(format!("{}/api/health", app.base));
    for i in 0..120 {
        req = req.header(format!("x-many-{i}"), "v");
    }
    let r = req.send().await.expect("send");
    assert_eq!(r.status(), 431);

    // The gateway still answers normally.
    assert_eq!(app.call("GET", "/api/health", None).await.status, 200);
}

/// Opens `n` connections that send nothing.
async fn idle_connections(app: &TestApp, n: usize) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(addr(app)).await.expect("connect"));
    }
    idle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_connections_do_not_take_health_down() {
    // Under the connection limit: health is served alongside 200 idle connections, well before
    // they time out.
    let app = gateway(
        Config::local(),
        ServeOptions {
            header_read_timeout: Duration::from_secs(60),
            ..ServeOptions::default()
        },
    )
    .await;
    let idle = idle_connections(&app, 200).await;
    let r = app
        .client
        .get(format!("{}/api/health", app.base))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("health answered while 200 connections sit idle");
    assert_eq!(r.status(), 200);
    drop(idle);

    // At the connection limit: idle connections time out and free their slots, so health is
    // answered once it is accepted.
    let app = gateway(
        Config::local(),
        ServeOptions {
            max_connections: 50,
            ..short()
        },
    )
    .await;
    let mut idle = idle_connections(&app, 200).await;
    let r = app
        .client
        .get(format!("{}/api/health", app.base))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("health answered behind 200 idle connections and a limit of 50");
    assert_eq!(r.status(), 200);
    // The idle ones were closed by the gateway, not left open.
    let first = idle.first_mut().expect("one");
    read_until_closed(first, CLOSED_WITHIN).await;
}

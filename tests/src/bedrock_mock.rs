//! A local Bedrock Runtime endpoint speaking `ConverseStream` with the real AWS event-stream
//! framing (frames written by `aws-smithy-eventstream`), so the real `aws-sdk-bedrockruntime` (and
//! boto3) can be pointed at it.
//!
//! Each request to `POST /model/{modelId}/converse-stream` is recorded (raw path, decoded model id,
//! JSON body) and answered with the next scripted [`MockReply`] of the queue. Event payloads carry
//! Bedrock's random padding field `"p"`; text blocks come without `contentBlockStart` unless the
//! script says otherwise; the script decides the order (Bedrock sends `metadata` after
//! `messageStop`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// One event of a scripted stream.
#[derive(Clone, Debug, PartialEq)]
pub enum MockEvent {
    /// `messageStart {role: assistant}`
    MessageStart,
    /// `contentBlockDelta {delta: {text}}` (no `contentBlockStart` for text, as Bedrock does).
    Text {
        /// Content block index.
        index: i32,
        /// The text.
        text: String,
    },
    /// `contentBlockStart {start: {toolUse: {toolUseId, name}}}`
    ToolStart {
        /// Content block index.
        index: i32,
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// `contentBlockDelta {delta: {toolUse: {input: "<fragment>"}}}`
    ToolDelta {
        /// Content block index.
        index: i32,
        /// A fragment of the tool input JSON.
        input: String,
    },
    /// `contentBlockStop`
    BlockStop {
        /// Content block index.
        index: i32,
    },
    /// `messageStop {stopReason}`
    MessageStop {
        /// `end_turn`, `tool_use`, `max_tokens`, ...
        reason: String,
    },
    /// `metadata {usage, metrics}`
    Metadata {
        /// Input tokens.
        input: u64,
        /// Output tokens.
        output: u64,
        /// Cache-read input tokens (sent only when non-zero).
        cache_read: u64,
        /// Cache-write input tokens (sent only when non-zero).
        cache_write: u64,
    },
    /// An exception frame: `:message-type: exception`, `:exception-type` (`throttlingException`,
    /// `modelStreamErrorException`, ...), payload `{"message"}`.
    Exception {
        /// The `:exception-type` header.
        exception_type: String,
        /// The message.
        message: String,
    },
    /// Any event, as is (no padding added).
    Raw {
        /// The `:event-type` header.
        event_type: String,
        /// The payload.
        payload: Value,
    },
    /// Not a frame: the stream stops here until [`MockBedrock::release`] is called.
    Gate,
}

impl MockEvent {
    /// A text delta.
    pub fn text(index: i32, text: &str) -> Self {
        MockEvent::Text {
            index,
            text: text.to_owned(),
        }
    }

    /// The start of a tool-use block.
    pub fn tool_start(index: i32, id: &str, name: &str) -> Self {
        MockEvent::ToolStart {
            index,
            id: id.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A tool input fragment.
    pub fn tool_delta(index: i32, input: &str) -> Self {
        MockEvent::ToolDelta {
            index,
            input: input.to_owned(),
        }
    }

    /// `messageStop` with a stop reason.
    pub fn stop(reason: &str) -> Self {
        MockEvent::MessageStop {
            reason: reason.to_owned(),
        }
    }

    /// `metadata` with usage.
    pub fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Self {
        MockEvent::Metadata {
            input,
            output,
            cache_read,
            cache_write,
        }
    }

    /// An exception frame.
    pub fn exception(exception_type: &str, message: &str) -> Self {
        MockEvent::Exception {
            exception_type: exception_type.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum MockReply {
    /// `200` with an event stream of these events, `delay` before each frame.
    Frames {
        /// The events.
        events: Vec<MockEvent>,
        /// Pause before each frame.
        delay: Option<Duration>,
    },
    /// An error before streaming: plain JSON `{"message"}` with `x-amzn-errortype`.
    HttpError {
        /// HTTP status (429 for throttling).
        status: u16,
        /// `ThrottlingException`, `ValidationException`, ...
        error_type: String,
    },
}

impl MockReply {
    /// Frames without delay.
    pub fn frames(events: Vec<MockEvent>) -> Self {
        MockReply::Frames { events, delay: None }
    }

    /// Frames with a pause before each.
    pub fn frames_with_delay(events: Vec<MockEvent>, delay: Duration) -> Self {
        MockReply::Frames {
            events,
            delay: Some(delay),
        }
    }

    /// An HTTP error before streaming.
    pub fn http_error(status: u16, error_type: &str) -> Self {
        MockReply::HttpError {
            status,
            error_type: error_type.to_owned(),
        }
    }
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// The path as sent (the model id percent-encoded).
    pub raw_path: String,
    /// The model id, percent-decoded (empty when the path is not a converse-stream path).
    pub model_id: String,
    /// The body as JSON (`Null` when not JSON).
    pub body: Value,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    replies: Mutex<VecDeque<MockReply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    frames_sent: AtomicUsize,
    gate: Notify,
    padding: AtomicUsize,
}

/// A running mock; stops when dropped.
pub struct MockBedrock {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockBedrock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockBedrock {
    /// Starts a mock on a free loopback port, answering with `replies` in order.
    pub async fn start(replies: Vec<MockReply>) -> MockBedrock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let shared = Arc::new(Shared {
            replies: Mutex::new(replies.into()),
            requests: Mutex::new(Vec::new()),
            frames_sent: AtomicUsize::new(0),
            gate: Notify::new(),
            padding: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&accept_shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        MockBedrock { url, shared, task }
    }

    /// Queues another reply.
    pub fn push(&self, reply: MockReply) {
        self.shared.replies.lock().expect("replies").push_back(reply);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().expect("requests").clone()
    }

    /// How many frames were handed to the connection so far (all streams).
    pub fn frames_sent(&self) -> usize {
        self.shared.frames_sent.load(Ordering::SeqCst)
    }

    /// Lets a stream stopped at a [`MockEvent::Gate`] go on.
    pub fn release(&self) {
        self.shared.gate.notify_one();
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(status: u16, error_type: Option<&str>, body: Value) -> Response<Body> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-requestid", ulid::Ulid::new().to_string());
    if let Some(error_type) = error_type {
        // Real AWS appends a namespace URL after a colon; the SDKs strip it.
        builder = builder.header(
            "x-amzn-errortype",
            format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        );
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .expect("response")
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().as_str().to_owned();
    let raw_path = req.uri().path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model_id = raw_path
        .strip_prefix("/model/")
        .and_then(|rest| rest.strip_suffix("/converse-stream"))
        .map(percent_decode);
    shared.requests.lock().expect("requests").push(RecordedRequest {
        method: method.clone(),
        raw_path,
        model_id: model_id.clone().unwrap_or_default(),
        body,
        headers,
    });
    if method != "POST" || model_id.is_none() {
        return Ok(json_response(
            404,
            Some("UnknownOperationException"),
            json!({"message": "the mock only answers POST /model/{modelId}/converse-stream"}),
        ));
    }
    let reply = shared.replies.lock().expect("replies").pop_front();
    Ok(match reply {
        None => json_response(
            500,
            Some("InternalServerException"),
            json!({"message": "the mock has no scripted reply left"}),
        ),
        Some(MockReply::HttpError { status, error_type }) => json_response(
            status,
            Some(&error_type),
            json!({"message": format!("{error_type} (scripted by the mock)")}),
        ),
        Some(MockReply::Frames { events, delay }) => {
            let stream =
                futures::stream::unfold((events.into_iter(), shared), move |(mut events, shared)| async move {
                    loop {
                        let event = events.next()?;
                        if event == MockEvent::Gate {
                            shared.gate.notified().await;
                            continue;
                        }
                        if let Some(delay) = delay {
                            tokio::time::sleep(delay).await;
                        }
                        let padding = padding(shared.padding.fetch_add(1, Ordering::SeqCst));
                        let frame = encode(&event_message(&event, &padding));
                        shared.frames_sent.fetch_add(1, Ordering::SeqCst);
                        return Some((Ok::<_, Infallible>(Frame::data(frame)), (events, shared)));
                    }
                });
            Response::builder()
                .status(200)
                .header("content-type", "application/vnd.amazon.eventstream")
                .header("x-amzn-requestid", ulid::Ulid::new().to_string())
                .body(StreamBody::new(stream).boxed_unsync())
                .expect("response")
        }
    })
}

/// Bedrock-like padding: letters of varying length.
fn padding(n: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = 1 + (n * 7) % 23;
    (0..len)
        .map(|i| LETTERS[(n * 31 + i * 17) % LETTERS.len()] as char)
        .collect()
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

/// An event frame: `:event-type`, `:content-type: application/json`, `:message-type: event`.
pub fn event_frame(event_type: &str, payload: &Value) -> Message {
    Message::new(Bytes::from(payload.to_string()))
        .add_header(string_header(":event-type", event_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "event"))
}

/// An exception frame: `:exception-type`, `:content-type: application/json`,
/// `:message-type: exception`.
pub fn exception_frame(exception_type: &str, message: &str) -> Message {
    Message::new(Bytes::from(json!({ "message": message }).to_string()))
        .add_header(string_header(":exception-type", exception_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "exception"))
}

/// The frame of a scripted event, padded with `"p"`.
pub fn event_message(event: &MockEvent, padding: &str) -> Message {
    let (event_type, mut payload) = match event {
        MockEvent::MessageStart => ("messageStart", json!({"role": "assistant"})),
        MockEvent::Text { index, text } => (
            "contentBlockDelta",
            json!({"contentBlockIndex": index, "delta": {"text": text}}),
        ),
        MockEvent::ToolStart { index, id, name } => (
            "contentBlockStart",
            json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": id, "name": name}}}),
        ),
        MockEvent::ToolDelta { index, input } => (
            "contentBlockDelta",
            json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": input}}}),
        ),
        MockEvent::BlockStop { index } => ("contentBlockStop", json!({ "contentBlockIndex": index })),
        MockEvent::MessageStop { reason } => ("messageStop", json!({ "stopReason": reason })),
        MockEvent::Metadata {
            input,
            output,
            cache_read,
            cache_write,
        } => {
            let mut usage = json!({"inputTokens": input, "outputTokens": output, "totalTokens": input + output});
            if *cache_read > 0 {
                usage["cacheReadInputTokens"] = json!(cache_read);
            }
            if *cache_write > 0 {
                usage["cacheWriteInputTokens"] = json!(cache_write);
            }
            ("metadata", json!({"usage": usage, "metrics": {"latencyMs": 321}}))
        }
        MockEvent::Exception {
            exception_type,
            message,
        } => return exception_frame(exception_type, message),
        MockEvent::Raw { event_type, payload } => return event_frame(event_type, payload),
        MockEvent::Gate => unreachable!("a gate is not a frame"),
    };
    payload["p"] = Value::String(padding.to_owned());
    event_frame(event_type, &payload)
}

/// The wire bytes of a message.
pub fn encode(message: &Message) -> Bytes {
    let mut buffer = Vec::new();
    write_message_to(message, &mut buffer).expect("writing an event-stream frame");
    Bytes::from(buffer)
}

/// Collects a model stream, errors included.
pub async fn collect(
    mut stream: shared::llm::ModelStream,
) -> Vec<Result<shared::llm::ModelEvent, shared::llm::ProviderError>> {
    use futures::StreamExt;
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_writer_matches_the_known_vector() {
        let bytes = encode(&Message::new(Bytes::from_static(br#"{"foo": "bar"}"#)));
        let expected: [u8; 30] = [
            0x00, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x00, 0x00, 0xba, 0xf2, 0xf6, 0x8a, 0x7b, 0x22, 0x66, 0x6f, 0x6f, 0x22,
            0x3a, 0x20, 0x22, 0x62, 0x61, 0x72, 0x22, 0x7d, 0xae, 0x72, 0x58, 0xe4,
        ];
        assert_eq!(&bytes[..], &expected[..]);
    }

    #[test]
    fn model_ids_are_percent_decoded() {
        assert_eq!(
            percent_decode("us.anthropic.claude-sonnet-4-5-20250929-v1%3A0"),
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(percent_decode("a%3"), "a%3");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn event_payloads_carry_padding() {
        let message = event_message(&MockEvent::text(0, "hi"), "xyz");
        let payload: Value = serde_json::from_slice(message.payload()).expect("json");
        assert_eq!(
            payload,
            json!({"contentBlockIndex": 0, "delta": {"text": "hi"}, "p": "xyz"})
        );
    }
}

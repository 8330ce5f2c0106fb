//! Wire encoders for a streamed reply.
//!
//! - The AI SDK UI message stream (v5+, what `useChat` / `DefaultChatTransport` read): Server-Sent
//!   Events, one JSON chunk per event, ending with `data: [DONE]`. Only fields every `ai` 5.x/6.x
//!   version accepts are sent (their chunk schemas are strict): `finish` carries
//!   `messageMetadata`, never `finishReason`; `abort` carries no `reason`.
//! - Plain text (`TextStreamChatTransport`): the raw text deltas.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

/// Which encoding the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// AI SDK UI message stream over SSE (default).
    UiMessage,
    /// Plain text deltas.
    Text,
}

impl Protocol {
    /// `?protocol=text` (or `ui-message`) decides; without it, `Accept: text/plain` (without
    /// `text/event-stream`) selects plain text. Any other `protocol` value is refused: `Err`
    /// carries it back.
    pub fn negotiate<'a>(query: Option<&'a str>, accept: Option<&str>) -> Result<Self, &'a str> {
        match query {
            Some("text") => return Ok(Protocol::Text),
            Some("ui-message") => return Ok(Protocol::UiMessage),
            Some(other) => return Err(other),
            None => {}
        }
        Ok(match accept {
            Some(a) if a.contains("text/plain") && !a.contains("text/event-stream") => Protocol::Text,
            _ => Protocol::UiMessage,
        })
    }

    /// The response headers of this encoding.
    pub fn headers(self) -> HeaderMap {
        let mut h = HeaderMap::new();
        match self {
            Protocol::UiMessage => {
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                h.insert("x-vercel-ai-ui-message-stream", HeaderValue::from_static("v1"));
            }
            Protocol::Text => {
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
            }
        }
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        h
    }
}

/// Encodes the events of one reply. Keeps the open text part so `text-delta` always follows
/// its `text-start` (the client enforces it).
#[derive(Debug)]
pub struct Encoder {
    protocol: Protocol,
    text_part: u32,
    text_open: bool,
}

fn sse(value: &Value) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"data: ");
    // Serializing a `Value` cannot fail.
    out.extend_from_slice(&serde_json::to_vec(value).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl Encoder {
    /// A new encoder.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            text_part: 0,
            text_open: false,
        }
    }

    fn ui(&self, value: Value) -> Option<Bytes> {
        (self.protocol == Protocol::UiMessage).then(|| sse(&value))
    }

    /// `start` with the assistant message id and metadata.
    pub fn start(&self, message_id: &str, metadata: Value) -> Option<Bytes> {
        self.ui(json!({"type": "start", "messageId": message_id, "messageMetadata": metadata}))
    }

    /// `start-step`.
    pub fn start_step(&self) -> Option<Bytes> {
        self.ui(json!({"type": "start-step"}))
    }

    /// `finish-step`, closing an open text part first.
    pub fn finish_step(&mut self) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self.end_text().into_iter().collect();
        out.extend(self.ui(json!({"type": "finish-step"})));
        out
    }

    /// A text delta (opening a text part when needed).
    pub fn text(&mut self, delta: &str) -> Vec<Bytes> {
        match self.protocol {
            Protocol::Text => vec![Bytes::copy_from_slice(delta.as_bytes())],
            Protocol::UiMessage => {
                let mut out = Vec::with_capacity(2);
                let id = format!("t{}", self.text_part);
                if !self.text_open {
                    self.text_open = true;
                    out.push(sse(&json!({"type": "text-start", "id": id})));
                }
                out.push(sse(&json!({"type": "text-delta", "id": id, "delta": delta})));
                out
            }
        }
    }

    /// Closes the open text part, if any.
    pub fn end_text(&mut self) -> Option<Bytes> {
        if !self.text_open {
            return None;
        }
        self.text_open = false;
        let id = format!("t{}", self.text_part);
        self.text_part += 1;
        self.ui(json!({"type": "text-end", "id": id}))
    }

    /// A complete tool call.
    pub fn tool_call(&mut self, id: &str, name: &str, input: &Value) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self.end_text().into_iter().collect();
        out.extend(self.ui(json!({"type": "tool-input-start", "toolCallId": id, "toolName": name})));
        out.extend(
            self.ui(json!({"type": "tool-input-available", "toolCallId": id, "toolName": name, "input": input})),
        );
        out
    }

    /// A tool's result.
    pub fn tool_result(&self, id: &str, output: &Value, is_error: bool) -> Option<Bytes> {
        if is_error {
            let text = output.as_str().map_or_else(|| output.to_string(), str::to_owned);
            self.ui(json!({"type": "tool-output-error", "toolCallId": id, "errorText": text}))
        } else {
            self.ui(json!({"type": "tool-output-available", "toolCallId": id, "output": output}))
        }
    }

    /// A tool call waits for the user's approval (exactly these two fields: `ai` 6.0.48's schema
    /// is strict).
    pub fn tool_approval_request(&mut self, approval_id: &str, tool_call_id: &str) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self.end_text().into_iter().collect();
        out.extend(
            self.ui(json!({"type": "tool-approval-request", "approvalId": approval_id, "toolCallId": tool_call_id})),
        );
        out
    }

    /// The user denied a tool call.
    pub fn tool_output_denied(&mut self, tool_call_id: &str) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self.end_text().into_iter().collect();
        out.extend(self.ui(json!({"type": "tool-output-denied", "toolCallId": tool_call_id})));
        out
    }

    /// An error chunk (the client shows it and enters its error state).
    pub fn error(&mut self, text: &str) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self.end_text().into_iter().collect();
        out.extend(self.ui(json!({"type": "error", "errorText": text})));
        out
    }

    /// `finish` with metadata (usage, model, latency, finish reason), then `[DONE]`.
    pub fn finish(&mut self, metadata: Value) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self.end_text().into_iter().collect();
        out.extend(self.ui(json!({"type": "finish", "messageMetadata": metadata})));
        out.extend(self.done());
        out
    }

    /// `data: [DONE]`.
    pub fn done(&self) -> Option<Bytes> {
        (self.protocol == Protocol::UiMessage).then(|| Bytes::from_static(b"data: [DONE]\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(chunks: &[Bytes]) -> String {
        chunks.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    #[test]
    fn a_reply_is_framed_as_the_ai_sdk_expects() {
        let mut e = Encoder::new(Protocol::UiMessage);
        let mut out = Vec::new();
        out.extend(e.start("m1", json!({})));
        out.extend(e.start_step());
        out.extend(e.text("Hel"));
        out.extend(e.text("lo \"x\"\n"));
        out.extend(e.finish_step());
        out.extend(e.finish(json!({"model": "m"})));
        let wire = text(&out);
        let events: Vec<&str> = wire.split("\n\n").filter(|s| !s.is_empty()).collect();
        assert_eq!(
            events,
            [
                r#"data: {"messageId":"m1","messageMetadata":{},"type":"start"}"#,
                r#"data: {"type":"start-step"}"#,
                r#"data: {"id":"t0","type":"text-start"}"#,
                r#"data: {"delta":"Hel","id":"t0","type":"text-delta"}"#,
                r#"data: {"delta":"lo \"x\"\n","id":"t0","type":"text-delta"}"#,
                r#"data: {"id":"t0","type":"text-end"}"#,
                r#"data: {"type":"finish-step"}"#,
                r#"data: {"messageMetadata":{"model":"m"},"type":"finish"}"#,
                "data: [DONE]",
            ]
        );
    }

    #[test]
    fn plain_text_is_only_the_deltas() {
        let mut e = Encoder::new(Protocol::Text);
        let mut out = Vec::new();
        out.extend(e.start("m1", json!({})));
        out.extend(e.text("a"));
        out.extend(e.text("b"));
        out.extend(e.finish(json!({})));
        assert_eq!(text(&out), "ab");
    }

    #[test]
    fn the_protocol_is_negotiated_from_query_or_accept() {
        assert_eq!(Protocol::negotiate(Some("text"), None), Ok(Protocol::Text));
        assert_eq!(Protocol::negotiate(None, Some("text/plain")), Ok(Protocol::Text));
        assert_eq!(
            Protocol::negotiate(None, Some("text/event-stream, text/plain")),
            Ok(Protocol::UiMessage)
        );
        assert_eq!(Protocol::negotiate(None, None), Ok(Protocol::UiMessage));
        assert_eq!(
            Protocol::negotiate(Some("ui-message"), Some("text/plain")),
            Ok(Protocol::UiMessage)
        );
        assert_eq!(Protocol::negotiate(Some("AAA"), None), Err("AAA"));
    }
}

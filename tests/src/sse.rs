//! The chat stream: posting a turn and reading the UI-message stream (server-sent events) back.

use serde_json::Value;

use crate::TestApp;

/// Posts a chat body to `path` (e.g. `/api/chat`, `/api/chat/maintenance?protocol=text`); returns
/// the status, the headers and the whole body. Checked against the contract like every response
/// ([`TestApp::send`]): an event stream event by event.
pub async fn post_chat(app: &TestApp, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, String) {
    let reply = app
        .send(app.client.post(format!("{}{path}", app.base)).json(&body))
        .await;
    (reply.status, reply.headers, reply.text)
}

/// Parses an SSE body into its JSON chunks (and `[DONE]` as a string).
pub fn parse_sse(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or(Value::String(data.to_owned())))
        .collect()
}

/// The chunks' `type`s, in order (`[DONE]` as itself, `?` for anything else without a type).
pub fn chunk_types(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .map(|c| {
            c["type"]
                .as_str()
                .map_or_else(|| c.as_str().unwrap_or("?").to_owned(), str::to_owned)
        })
        .collect()
}

/// The text the `text-delta` chunks carry, joined.
pub fn text_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter(|c| c["type"] == "text-delta")
        .filter_map(|c| c["delta"].as_str())
        .collect()
}

/// Posts a chat body to `path` and returns the open event stream once it answered 200 (the
/// caller reads it, or drops it to go away).
pub async fn open_chat(
    app: &TestApp,
    path: &str,
    body: Value,
) -> impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> {
    let res = app
        .client
        .post(format!("{}{path}", app.base))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200, "{path}");
    res.bytes_stream()
}

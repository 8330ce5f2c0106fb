//! Bedrock `ConverseStream` through `aws-sdk-bedrockruntime`: the system prompt as a system
//! block, inference config, tool use. `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` points the SDK at another
//! endpoint (tests use a local one speaking the real event-stream framing).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseStreamOutput, DocumentBlock,
    DocumentFormat, DocumentSource, ImageBlock, ImageFormat, ImageSource, InferenceConfiguration, Message,
    StopReason as BedrockStop, SystemContentBlock, Tool, ToolConfiguration, ToolInputSchema, ToolResultBlock,
    ToolResultContentBlock, ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_sdk_bedrockruntime::Client;
use aws_smithy_types::{Document, Number};
use futures::StreamExt;
use serde_json::Value;

use super::{ChatModel, ModelContent, ModelEvent, ModelRequest, ModelRole, ModelStream, ProviderError, StopReason};
use crate::domain::FileFormat;
use crate::domain::Usage;

/// The Bedrock provider.
#[derive(Clone, Debug)]
pub struct BedrockModel {
    client: Client,
}

impl BedrockModel {
    /// A provider on an existing client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A client from the environment (region, credentials, endpoint override), with standard
    /// retries (3 attempts: throttling before the stream starts is retried by the SDK first) and a
    /// connect timeout. Read timeouts are the chat service's business (first-token and total).
    pub async fn from_env() -> Self {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            // Compiled-in roots: building the client reads no certificate files (crate::http).
            .http_client(crate::http::sdk_http_client())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).build())
            .load()
            .await;
        Self::new(Client::new(&config))
    }
}

/// serde_json -> Smithy document.
pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Document::Number(Number::PosInt(u))
            } else if let Some(i) = n.as_i64() {
                Document::Number(Number::NegInt(i))
            } else {
                Document::Number(Number::Float(n.as_f64().unwrap_or(0.0)))
            }
        }
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect()),
    }
}

/// Smithy document -> serde_json.
pub fn from_document(doc: &Document) -> Value {
    match doc {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(from_document).collect()),
        Document::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), from_document(v))).collect()),
    }
}

/// A file as a Converse image or document block. Document names are unique within a request
/// (Bedrock refuses two documents of one name): a repeated name gets a ` (n)` suffix.
fn file_block(
    format: FileFormat,
    filename: &str,
    bytes: &bytes::Bytes,
    names: &mut Vec<String>,
) -> Result<ContentBlock, ProviderError> {
    let blob = Blob::new(bytes.to_vec());
    let refused = |e: aws_sdk_bedrockruntime::error::BuildError| ProviderError::Refused(format!("file block: {e}"));
    let image = |f: ImageFormat| {
        ImageBlock::builder()
            .format(f)
            .source(ImageSource::Bytes(blob.clone()))
            .build()
            .map(ContentBlock::Image)
            .map_err(refused)
    };
    let document_format = match format {
        FileFormat::Png => return image(ImageFormat::Png),
        FileFormat::Jpeg => return image(ImageFormat::Jpeg),
        FileFormat::Gif => return image(ImageFormat::Gif),
        FileFormat::Webp => return image(ImageFormat::Webp),
        FileFormat::Pdf => DocumentFormat::Pdf,
        FileFormat::Txt => DocumentFormat::Txt,
        FileFormat::Md => DocumentFormat::Md,
        FileFormat::Csv => DocumentFormat::Csv,
        FileFormat::Docx => DocumentFormat::Docx,
    };
    let base = crate::domain::file::document_name(filename);
    let mut name = base.clone();
    let mut n = 1;
    while names.contains(&name) {
        n += 1;
        name = format!("{base} ({n})");
    }
    names.push(name.clone());
    DocumentBlock::builder()
        .format(document_format)
        .name(name)
        .source(DocumentSource::Bytes(blob))
        .build()
        .map(ContentBlock::Document)
        .map_err(refused)
}

fn build_message(m: &super::ModelMessage, names: &mut Vec<String>) -> Result<Message, ProviderError> {
    let role = match m.role {
        ModelRole::User => ConversationRole::User,
        ModelRole::Assistant => ConversationRole::Assistant,
    };
    let mut builder = Message::builder().role(role);
    for c in &m.content {
        let block = match c {
            ModelContent::Text(t) => ContentBlock::Text(t.clone()),
            ModelContent::File {
                format,
                filename,
                bytes,
            } => file_block(*format, filename, bytes, names)?,
            // Never left in a request by the turn; said plainly if it were.
            ModelContent::FileRef { filename, .. } => {
                ContentBlock::Text(format!("[The attached file {filename} could not be read.]"))
            }
            ModelContent::ToolUse { id, name, input } => ContentBlock::ToolUse(
                ToolUseBlock::builder()
                    .tool_use_id(id)
                    .name(name)
                    .input(to_document(input))
                    .build()
                    .map_err(|e| ProviderError::Refused(format!("tool use block: {e}")))?,
            ),
            ModelContent::ToolResult { id, content, is_error } => ContentBlock::ToolResult(
                ToolResultBlock::builder()
                    .tool_use_id(id)
                    // Bedrock wants a JSON object here: wrap anything else.
                    .content(ToolResultContentBlock::Json(to_document(&match content {
                        Value::Object(_) => content.clone(),
                        other => serde_json::json!({ "result": other }),
                    })))
                    .status(if *is_error {
                        ToolResultStatus::Error
                    } else {
                        ToolResultStatus::Success
                    })
                    .build()
                    .map_err(|e| ProviderError::Refused(format!("tool result block: {e}")))?,
            ),
        };
        builder = builder.content(block);
    }
    builder
        .build()
        .map_err(|e| ProviderError::Refused(format!("message: {e}")))
}

fn classify_code(code: Option<&str>, message: String) -> ProviderError {
    match code {
        Some("ThrottlingException" | "throttlingException" | "ServiceQuotaExceededException") => {
            ProviderError::Throttled(message)
        }
        Some(
            "ServiceUnavailableException"
            | "serviceUnavailableException"
            | "InternalServerException"
            | "internalServerException"
            | "ModelNotReadyException",
        ) => ProviderError::Unavailable(message),
        Some("ModelTimeoutException" | "modelTimeoutException") => ProviderError::Timeout(message),
        Some("ModelStreamErrorException" | "modelStreamErrorException") => ProviderError::Stream(message),
        _ => ProviderError::Refused(message),
    }
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(err: &SdkError<E, R>) -> ProviderError {
    match err {
        SdkError::TimeoutError(_) => ProviderError::Timeout("Bedrock did not answer in time".to_owned()),
        SdkError::DispatchFailure(e) => ProviderError::Unavailable(format!("dispatch failure: {e:?}")),
        SdkError::ResponseError(e) => ProviderError::Unavailable(format!("unreadable response: {e:?}")),
        SdkError::ServiceError(se) => {
            let e = se.err();
            classify_code(
                e.code(),
                format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or("")),
            )
        }
        other => ProviderError::Unavailable(format!("{other:?}")),
    }
}

/// An exception frame inside the stream. Its kind is the `:exception-type` header, which the SDK
/// turns into the variant; `code()` is NOT set from that header (the SDK parses the error metadata
/// from the payload alone, and Bedrock's exception payloads are just `{"message"}`), so match on
/// the variant and fall back to the code only for exceptions the SDK does not model.
fn classify_stream_exception(e: &ConverseStreamOutputError) -> ProviderError {
    let kind = match e {
        ConverseStreamOutputError::ThrottlingException(_) => "throttlingException",
        ConverseStreamOutputError::ModelStreamErrorException(_) => "modelStreamErrorException",
        ConverseStreamOutputError::ServiceUnavailableException(_) => "serviceUnavailableException",
        ConverseStreamOutputError::InternalServerException(_) => "internalServerException",
        ConverseStreamOutputError::ValidationException(_) => "validationException",
        other => other.code().unwrap_or("?"),
    };
    classify_code(Some(kind), format!("{kind}: {}", e.message().unwrap_or("")))
}

struct StreamState {
    receiver: EventReceiver<ConverseStreamOutput, ConverseStreamOutputError>,
    tools: HashMap<i32, (String, String, String)>,
    done: bool,
}

fn stop_reason(r: &BedrockStop) -> StopReason {
    match r {
        BedrockStop::EndTurn => StopReason::EndTurn,
        BedrockStop::StopSequence => StopReason::StopSequence,
        BedrockStop::MaxTokens => StopReason::MaxTokens,
        BedrockStop::ToolUse => StopReason::ToolUse,
        BedrockStop::ContentFiltered | BedrockStop::GuardrailIntervened => StopReason::ContentFiltered,
        other => StopReason::Other(other.as_str().to_owned()),
    }
}

/// Turns one Bedrock event into zero or one model event.
fn translate(state: &mut StreamState, event: ConverseStreamOutput) -> Result<Option<ModelEvent>, ProviderError> {
    Ok(match event {
        ConverseStreamOutput::ContentBlockStart(start) => {
            if let Some(ContentBlockStart::ToolUse(tool)) = start.start() {
                state.tools.insert(
                    start.content_block_index(),
                    (tool.tool_use_id().to_owned(), tool.name().to_owned(), String::new()),
                );
            }
            None
        }
        ConverseStreamOutput::ContentBlockDelta(delta) => match delta.delta() {
            Some(ContentBlockDelta::Text(text)) if !text.is_empty() => Some(ModelEvent::TextDelta(text.clone())),
            Some(ContentBlockDelta::ToolUse(tool)) => {
                if let Some(entry) = state.tools.get_mut(&delta.content_block_index()) {
                    entry.2.push_str(tool.input());
                }
                None
            }
            _ => None,
        },
        ConverseStreamOutput::ContentBlockStop(stop) => match state.tools.remove(&stop.content_block_index()) {
            Some((id, name, json)) => {
                let input = if json.trim().is_empty() {
                    Value::Object(serde_json::Map::new())
                } else {
                    serde_json::from_str(&json)
                        .map_err(|e| ProviderError::Stream(format!("tool input is not JSON: {e}")))?
                };
                Some(ModelEvent::ToolUse { id, name, input })
            }
            None => None,
        },
        ConverseStreamOutput::MessageStop(stop) => Some(ModelEvent::Stop(stop_reason(stop.stop_reason()))),
        ConverseStreamOutput::Metadata(meta) => meta.usage().map(|u| {
            ModelEvent::Usage(Usage {
                input_tokens: u.input_tokens().max(0) as u64,
                output_tokens: u.output_tokens().max(0) as u64,
                cache_read_tokens: u.cache_read_input_tokens().unwrap_or(0).max(0) as u64,
                cache_write_tokens: u.cache_write_input_tokens().unwrap_or(0).max(0) as u64,
            })
        }),
        _ => None,
    })
}

#[async_trait]
impl ChatModel for BedrockModel {
    fn provider(&self) -> &'static str {
        "bedrock"
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ProviderError> {
        let mut names = Vec::new();
        let messages = request
            .messages
            .iter()
            .map(|m| build_message(m, &mut names))
            .collect::<Result<Vec<_>, _>>()?;
        let mut call = self
            .client
            .converse_stream()
            .model_id(&request.model)
            .system(SystemContentBlock::Text(request.system.clone()))
            .set_messages(Some(messages))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
                    .build(),
            );
        if !request.tools.is_empty() {
            let mut config = ToolConfiguration::builder();
            for tool in &request.tools {
                let spec = ToolSpecification::builder()
                    .name(&tool.name)
                    .description(&tool.description)
                    .input_schema(ToolInputSchema::Json(to_document(&tool.input_schema)))
                    .build()
                    .map_err(|e| ProviderError::Refused(format!("tool spec: {e}")))?;
                config = config.tools(Tool::ToolSpec(spec));
            }
            call = call.tool_config(
                config
                    .build()
                    .map_err(|e| ProviderError::Refused(format!("tool config: {e}")))?,
            );
        }
        let output = call.send().await.map_err(|e| classify(&e))?;
        let state = StreamState {
            receiver: output.stream,
            tools: HashMap::new(),
            done: false,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            loop {
                if state.done {
                    return None;
                }
                match state.receiver.recv().await {
                    Ok(Some(event)) => match translate(&mut state, event) {
                        Ok(Some(e)) => return Some((Ok(e), state)),
                        Ok(None) => continue,
                        Err(e) => {
                            state.done = true;
                            return Some((Err(e), state));
                        }
                    },
                    Ok(None) => return None,
                    Err(err) => {
                        state.done = true;
                        let error = match &err {
                            SdkError::ServiceError(se) => classify_stream_exception(se.err()),
                            other => ProviderError::Stream(format!("{other:?}")),
                        };
                        return Some((Err(error), state));
                    }
                }
            }
        });
        Ok(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_documents_convert_both_ways() {
        let value = serde_json::json!({"a": [1, -2, 2.5, "x", null, true], "b": {"c": "d"}});
        assert_eq!(from_document(&to_document(&value)), value);
    }
}

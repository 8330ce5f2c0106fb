//! The Bedrock provider through the real `aws-sdk-bedrockruntime` against a local endpoint that
//! speaks `ConverseStream` with the AWS event-stream framing (`athena_tests::bedrock_mock`): what
//! the SDK sends, how frames become model events, how errors are classified, that deltas are not
//! buffered. The framing itself is cross-checked with boto3.

use std::time::Duration;

use athena_tests::bedrock_mock::{collect, MockBedrock, MockEvent, MockReply};
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use futures::StreamExt;
use serde_json::{json, Value};
use shared::domain::Usage;
use shared::llm::bedrock::BedrockModel;
use shared::llm::{
    ChatModel, ModelContent, ModelEvent, ModelMessage, ModelRequest, ModelRole, ProviderError, StopReason, ToolSpec,
};

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// A provider on an SDK client pointed at the mock, with a single attempt (no SDK retries), so
/// that errors surface as they are.
fn model(mock: &MockBedrock) -> BedrockModel {
    let config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "t"))
        .endpoint_url(&mock.url)
        .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    BedrockModel::new(aws_sdk_bedrockruntime::Client::from_conf(config))
}

fn user(text: &str) -> ModelMessage {
    ModelMessage {
        role: ModelRole::User,
        content: vec![ModelContent::Text(text.to_owned())],
    }
}

fn request(messages: Vec<ModelMessage>) -> ModelRequest {
    ModelRequest {
        model: SONNET.to_owned(),
        system: "You are Athena.".to_owned(),
        messages,
        max_tokens: 1024,
        tools: Vec::new(),
    }
}

async fn run(mock: &MockBedrock) -> Vec<Result<ModelEvent, ProviderError>> {
    let stream = model(mock)
        .stream(request(vec![user("Hi")]))
        .await
        .expect("the stream should start");
    collect(stream).await
}

fn text(t: &str) -> Result<ModelEvent, ProviderError> {
    Ok(ModelEvent::TextDelta(t.to_owned()))
}

#[tokio::test]
async fn text_deltas_arrive_in_order_and_usage_is_reported() {
    let mock = MockBedrock::start(vec![MockReply::frames(vec![
        MockEvent::MessageStart,
        MockEvent::text(0, "Hel"),
        MockEvent::text(0, "lo"),
        MockEvent::text(0, ", world"),
        MockEvent::BlockStop { index: 0 },
        MockEvent::stop("end_turn"),
        MockEvent::usage(12, 3, 100, 7),
    ])])
    .await;
    let items = run(&mock).await;
    assert_eq!(
        items,
        vec![
            text("Hel"),
            text("lo"),
            text(", world"),
            Ok(ModelEvent::Stop(StopReason::EndTurn)),
            Ok(ModelEvent::Usage(Usage {
                input_tokens: 12,
                output_tokens: 3,
                cache_read_tokens: 100,
                cache_write_tokens: 7,
            })),
        ]
    );
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn the_request_carries_the_system_block_the_messages_in_order_max_tokens_and_tools() {
    let mock = MockBedrock::start(vec![
        MockReply::frames(vec![MockEvent::stop("end_turn")]),
        MockReply::frames(vec![MockEvent::stop("end_turn")]),
    ])
    .await;
    let schema = json!({
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
        "required": ["query"],
    });
    let mut req = request(vec![
        user("Find news about Rust."),
        ModelMessage {
            role: ModelRole::Assistant,
            content: vec![
                ModelContent::Text("Searching.".to_owned()),
                ModelContent::ToolUse {
                    id: "tooluse_1".to_owned(),
                    name: "web_search".to_owned(),
                    input: json!({"query": "rust news", "limit": 3}),
                },
            ],
        },
        ModelMessage {
            role: ModelRole::User,
            content: vec![ModelContent::ToolResult {
                id: "tooluse_1".to_owned(),
                content: json!({"results": [{"title": "Rust 2024", "score": 0.5}]}),
                is_error: false,
            }],
        },
    ]);
    req.max_tokens = 2048;
    req.tools = vec![ToolSpec {
        name: "web_search".to_owned(),
        description: "Searches the web.".to_owned(),
        input_schema: schema.clone(),
    }];
    let model = model(&mock);
    collect(model.stream(req).await.expect("stream")).await;
    collect(model.stream(request(vec![user("No tools")])).await.expect("stream")).await;

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(
        first.raw_path, "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
        "the model id is a percent-encoded path label"
    );
    assert_eq!(first.model_id, SONNET);
    assert!(
        first.header("authorization").is_some_and(
            |a| a.starts_with("AWS4-HMAC-SHA256 Credential=test/") && a.contains("/us-east-1/bedrock/aws4_request")
        ),
        "SigV4-signed for bedrock in us-east-1: {:?}",
        first.header("authorization")
    );
    let body = &first.body;
    assert_eq!(body["system"], json!([{"text": "You are Athena."}]));
    assert_eq!(body["inferenceConfig"], json!({"maxTokens": 2048}));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"text": "Find news about Rust."}]},
            {"role": "assistant", "content": [
                {"text": "Searching."},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "web_search", "input": {"query": "rust news", "limit": 3}}},
            ]},
            {"role": "user", "content": [
                {"toolResult": {
                    "toolUseId": "tooluse_1",
                    "content": [{"json": {"results": [{"title": "Rust 2024", "score": 0.5}]}}],
                    "status": "success",
                }},
            ]},
        ])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"tools": [{"toolSpec": {
            "name": "web_search",
            "description": "Searches the web.",
            "inputSchema": {"json": schema},
        }}]})
    );

    let second = &requests[1].body;
    assert_eq!(
        second["messages"],
        json!([{"role": "user", "content": [{"text": "No tools"}]}])
    );
    assert_eq!(second["inferenceConfig"], json!({"maxTokens": 1024}));
    assert!(
        second.get("toolConfig").is_none(),
        "no toolConfig without tools: {second}"
    );
}

#[tokio::test]
async fn tool_use_fragments_are_joined_into_one_tool_use_event_with_parsed_json_input() {
    let mock = MockBedrock::start(vec![MockReply::frames(vec![
        MockEvent::MessageStart,
        MockEvent::text(0, "Let me look that up."),
        MockEvent::BlockStop { index: 0 },
        MockEvent::tool_start(1, "tooluse_abc", "web_search"),
        MockEvent::tool_delta(1, "{\"query\""),
        MockEvent::tool_delta(1, ": \"rust as"),
        MockEvent::tool_delta(1, "ync\", \"limit\": 3, \"opts\": {\"safe\": tr"),
        MockEvent::tool_delta(1, "ue}}"),
        MockEvent::BlockStop { index: 1 },
        MockEvent::tool_start(2, "tooluse_def", "clock"),
        MockEvent::BlockStop { index: 2 },
        MockEvent::stop("tool_use"),
        MockEvent::usage(40, 25, 0, 0),
    ])])
    .await;
    let items = run(&mock).await;
    assert_eq!(
        items,
        vec![
            text("Let me look that up."),
            Ok(ModelEvent::ToolUse {
                id: "tooluse_abc".to_owned(),
                name: "web_search".to_owned(),
                input: json!({"query": "rust async", "limit": 3, "opts": {"safe": true}}),
            }),
            Ok(ModelEvent::ToolUse {
                id: "tooluse_def".to_owned(),
                name: "clock".to_owned(),
                input: json!({}),
            }),
            Ok(ModelEvent::Stop(StopReason::ToolUse)),
            Ok(ModelEvent::Usage(Usage {
                input_tokens: 40,
                output_tokens: 25,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            })),
        ]
    );
}

#[tokio::test]
async fn tool_input_that_is_not_json_ends_the_stream_with_a_stream_error() {
    let mock = MockBedrock::start(vec![MockReply::frames(vec![
        MockEvent::MessageStart,
        MockEvent::tool_start(0, "tooluse_x", "web_search"),
        MockEvent::tool_delta(0, "{\"query\": "),
        MockEvent::BlockStop { index: 0 },
        MockEvent::stop("tool_use"),
    ])])
    .await;
    let items = run(&mock).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(&items[0], Err(ProviderError::Stream(_))), "{items:?}");
}

#[tokio::test]
async fn stop_reasons_map_to_model_stop_reasons() {
    let cases = [
        ("end_turn", StopReason::EndTurn),
        ("stop_sequence", StopReason::StopSequence),
        ("max_tokens", StopReason::MaxTokens),
        ("tool_use", StopReason::ToolUse),
        ("guardrail_intervened", StopReason::ContentFiltered),
        ("content_filtered", StopReason::ContentFiltered),
        ("something_new", StopReason::Other("something_new".to_owned())),
    ];
    let mock = MockBedrock::start(Vec::new()).await;
    for (reason, _) in &cases {
        mock.push(MockReply::frames(vec![
            MockEvent::MessageStart,
            MockEvent::text(0, "x"),
            MockEvent::stop(reason),
            MockEvent::usage(1, 1, 0, 0),
        ]));
    }
    for (reason, expected) in cases {
        let stops: Vec<StopReason> = run(&mock)
            .await
            .into_iter()
            .filter_map(|item| match item {
                Ok(ModelEvent::Stop(stop)) => Some(stop),
                _ => None,
            })
            .collect();
        assert_eq!(stops, vec![expected], "stopReason {reason}");
    }
}

#[tokio::test]
async fn a_throttling_http_error_before_streaming_is_a_fallback_worthy_err_from_stream() {
    let mock = MockBedrock::start(vec![MockReply::http_error(429, "ThrottlingException")]).await;
    let err = model(&mock)
        .stream(request(vec![user("Hi")]))
        .await
        .err()
        .expect("stream() should fail");
    assert!(matches!(err, ProviderError::Throttled(_)), "{err:?}");
    assert!(err.is_fallback_worthy());
    assert_eq!(mock.requests().len(), 1, "one attempt, no SDK retries");
}

#[tokio::test]
async fn other_http_errors_before_streaming_are_classified() {
    let cases = [
        (503, "ServiceUnavailableException", "PROVIDER_UNAVAILABLE", true),
        (500, "InternalServerException", "PROVIDER_UNAVAILABLE", true),
        (408, "ModelTimeoutException", "PROVIDER_TIMEOUT", true),
        (400, "ValidationException", "PROVIDER_REFUSED", false),
        (403, "AccessDeniedException", "PROVIDER_REFUSED", false),
    ];
    for (status, error_type, code, fallback) in cases {
        let mock = MockBedrock::start(vec![MockReply::http_error(status, error_type)]).await;
        let err = model(&mock)
            .stream(request(vec![user("Hi")]))
            .await
            .err()
            .expect("stream() should fail");
        assert_eq!(err.code(), code, "{error_type}: {err:?}");
        assert_eq!(err.is_fallback_worthy(), fallback, "{error_type}: {err:?}");
    }
}

#[tokio::test]
async fn a_throttling_exception_frame_as_the_first_event_surfaces_as_an_err_throttled_item() {
    let mock = MockBedrock::start(vec![MockReply::frames(vec![MockEvent::exception(
        "throttlingException",
        "Too many tokens, please wait before trying again.",
    )])])
    .await;
    let items = run(&mock).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(&items[0], Err(ProviderError::Throttled(_))), "{items:?}");
}

#[tokio::test]
async fn a_model_stream_error_mid_stream_yields_the_text_then_err_stream() {
    let mock = MockBedrock::start(vec![MockReply::frames(vec![
        MockEvent::MessageStart,
        MockEvent::text(0, "partial "),
        MockEvent::text(0, "answer"),
        MockEvent::exception("modelStreamErrorException", "The model stream failed."),
        MockEvent::text(0, "never seen"),
        MockEvent::stop("end_turn"),
    ])])
    .await;
    let items = run(&mock).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[..2], [text("partial "), text("answer")]);
    assert!(matches!(&items[2], Err(ProviderError::Stream(_))), "{items:?}");
    assert!(!items[2].as_ref().unwrap_err().is_fallback_worthy());
}

#[tokio::test]
async fn other_exception_frames_are_classified() {
    let cases = [
        ("serviceUnavailableException", "PROVIDER_UNAVAILABLE"),
        ("internalServerException", "PROVIDER_UNAVAILABLE"),
        ("validationException", "PROVIDER_REFUSED"),
    ];
    for (exception_type, code) in cases {
        let mock = MockBedrock::start(vec![MockReply::frames(vec![
            MockEvent::MessageStart,
            MockEvent::text(0, "a"),
            MockEvent::exception(exception_type, "scripted"),
        ])])
        .await;
        let items = run(&mock).await;
        assert_eq!(items.len(), 2, "{exception_type}: {items:?}");
        assert_eq!(
            items[1].as_ref().err().map(ProviderError::code),
            Some(code),
            "{exception_type}: {items:?}"
        );
    }
}

#[tokio::test]
async fn deltas_are_delivered_as_they_arrive_not_buffered() {
    // The mock stops after the first delta until released: if the SDK or the provider buffered,
    // the first delta could not arrive (the timeout only turns a hang into a failure).
    let mock = MockBedrock::start(vec![MockReply::frames_with_delay(
        vec![
            MockEvent::MessageStart,
            MockEvent::text(0, "first"),
            MockEvent::Gate,
            MockEvent::text(0, " second"),
            MockEvent::stop("end_turn"),
            MockEvent::usage(5, 2, 0, 0),
        ],
        Duration::from_millis(300),
    )])
    .await;
    let mut stream = model(&mock).stream(request(vec![user("Hi")])).await.expect("stream");
    let first = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("the first delta should arrive while the mock holds back the rest");
    assert_eq!(first, Some(text("first")));
    assert_eq!(
        mock.frames_sent(),
        2,
        "the mock has sent only messageStart and the first delta"
    );
    mock.release();
    let rest = collect(stream).await;
    assert_eq!(
        rest,
        vec![
            text(" second"),
            Ok(ModelEvent::Stop(StopReason::EndTurn)),
            Ok(ModelEvent::Usage(Usage {
                input_tokens: 5,
                output_tokens: 2,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            })),
        ]
    );
    assert_eq!(mock.frames_sent(), 5);
}

#[tokio::test]
async fn unknown_fields_and_unknown_events_are_ignored() {
    // Every scripted payload carries the padding field "p"; these add more unknown keys at several
    // levels and an event type the SDK does not know.
    let mock = MockBedrock::start(vec![MockReply::frames(vec![
        MockEvent::Raw {
            event_type: "messageStart".to_owned(),
            payload: json!({"role": "assistant", "p": "abcdefghij", "future": {"a": [1, 2]}}),
        },
        MockEvent::Raw {
            event_type: "contentBlockDelta".to_owned(),
            payload: json!({"contentBlockIndex": 0, "delta": {"text": "ok"}, "p": "xyz", "extra": null}),
        },
        MockEvent::Raw {
            event_type: "somethingNew".to_owned(),
            payload: json!({"whatever": true, "p": "q"}),
        },
        MockEvent::stop("end_turn"),
        MockEvent::Raw {
            event_type: "metadata".to_owned(),
            payload: json!({
                "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4, "futureTokens": 9},
                "metrics": {"latencyMs": 10, "other": 1},
                "trace": {"unknown": {}},
                "p": "abc",
            }),
        },
    ])])
    .await;
    let items = run(&mock).await;
    assert_eq!(
        items,
        vec![
            text("ok"),
            Ok(ModelEvent::Stop(StopReason::EndTurn)),
            Ok(ModelEvent::Usage(Usage {
                input_tokens: 3,
                output_tokens: 1,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            })),
        ]
    );
}

/// The scenario boto3 parses: padded payloads, a text block without `contentBlockStart`, tool input
/// in fragments, `metadata` after `messageStop`.
fn boto3_scenario() -> Vec<MockEvent> {
    vec![
        MockEvent::MessageStart,
        MockEvent::text(0, "Checking "),
        MockEvent::text(0, "the weather."),
        MockEvent::BlockStop { index: 0 },
        MockEvent::tool_start(1, "tooluse_w1", "get_weather"),
        MockEvent::tool_delta(1, "{\"city\": "),
        MockEvent::tool_delta(1, "\"Paris\", \"unit\""),
        MockEvent::tool_delta(1, ": \"celsius\"}"),
        MockEvent::BlockStop { index: 1 },
        MockEvent::stop("tool_use"),
        MockEvent::usage(120, 48, 64, 16),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_parses_the_mock_frames_exactly_as_scripted() {
    let root = athena_tests::workspace_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: create the venv with tests/requirements.txt",
        python.display()
    );
    let mock = MockBedrock::start(vec![
        MockReply::frames(boto3_scenario()),
        MockReply::frames(vec![
            MockEvent::MessageStart,
            MockEvent::text(0, "half"),
            MockEvent::exception("modelStreamErrorException", "The model stream failed."),
        ]),
    ])
    .await;
    let run_boto3 = |url: String| {
        let python = python.clone();
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(python)
                .arg(root.join("tests/bedrock_boto3_check.py"))
                .arg(url)
                .current_dir(&root)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_CONFIG_FILE", "/nonexistent/athena-tests/config")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/athena-tests/credentials")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_ENDPOINT_URL")
                .output()
                .expect("running the boto3 check");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "boto3 check failed: {}\nstdout: {stdout}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
                .collect::<Vec<Value>>()
        })
    };

    let events = run_boto3(mock.url.clone()).await.expect("boto3 task");
    assert_eq!(
        events,
        vec![
            json!({"messageStart": {"role": "assistant"}}),
            json!({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Checking "}}}),
            json!({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "the weather."}}}),
            json!({"contentBlockStop": {"contentBlockIndex": 0}}),
            json!({"contentBlockStart": {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_w1", "name": "get_weather"}}}}),
            json!({"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\": "}}}}),
            json!({"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\", \"unit\""}}}}),
            json!({"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ": \"celsius\"}"}}}}),
            json!({"contentBlockStop": {"contentBlockIndex": 1}}),
            json!({"messageStop": {"stopReason": "tool_use"}}),
            json!({"metadata": {
                "usage": {"inputTokens": 120, "outputTokens": 48, "totalTokens": 168, "cacheReadInputTokens": 64, "cacheWriteInputTokens": 16},
                "metrics": {"latencyMs": 321},
            }}),
        ],
        "boto3 must see exactly the scripted events, padding dropped"
    );

    let events = run_boto3(mock.url.clone()).await.expect("boto3 task");
    assert_eq!(
        events,
        vec![
            json!({"messageStart": {"role": "assistant"}}),
            json!({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "half"}}}),
            json!({"error": {"code": "modelStreamErrorException", "message": "The model stream failed."}}),
        ]
    );

    // boto3 and the Rust SDK send the same request shape to the same path.
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].raw_path,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    );
    assert_eq!(requests[0].model_id, SONNET);
    assert_eq!(requests[0].body["system"], json!([{"text": "You are Athena."}]));
    assert_eq!(requests[0].body["inferenceConfig"], json!({"maxTokens": 256}));

    // And the Rust provider reads the very same frames into the expected model events.
    mock.push(MockReply::frames(boto3_scenario()));
    let items = run(&mock).await;
    assert_eq!(
        items,
        vec![
            text("Checking "),
            text("the weather."),
            Ok(ModelEvent::ToolUse {
                id: "tooluse_w1".to_owned(),
                name: "get_weather".to_owned(),
                input: json!({"city": "Paris", "unit": "celsius"}),
            }),
            Ok(ModelEvent::Stop(StopReason::ToolUse)),
            Ok(ModelEvent::Usage(Usage {
                input_tokens: 120,
                output_tokens: 48,
                cache_read_tokens: 64,
                cache_write_tokens: 16,
            })),
        ]
    );
}

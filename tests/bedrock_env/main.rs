//! `BedrockModel::from_env()` honours `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (with region and
//! credentials from the environment) and retries pre-stream throttling; both SDK clients build
//! and work with no system certificate to read (`SSL_CERT_FILE`/`SSL_CERT_DIR` pointing nowhere:
//! their trust store is compiled in, `shared::http::sdk_http_client`). Alone in its test binary:
//! it sets process environment variables.
//!
//! What the certificate part proves: building the clients reads no certificate (the SDK's
//! default client, which loads the system's roots, stops a debug build here: "TrustStore
//! configured to enable native roots but no valid root certificates parsed"). It does not prove a
//! TLS handshake with AWS: the mock and moto speak plain HTTP, and this machine has no AWS access
//! (the roots are checked against Amazon's published keys by `shared::http`'s unit tests).

use athena_tests::bedrock_mock::{collect, MockBedrock, MockEvent, MockReply};
use shared::domain::Usage;
use shared::llm::bedrock::BedrockModel;
use shared::llm::{ChatModel, ModelContent, ModelEvent, ModelMessage, ModelRequest, ModelRole, StopReason};

#[tokio::test]
async fn from_env_points_the_sdk_at_aws_endpoint_url_bedrock_runtime_and_retries_throttling_with_no_certificate_files()
{
    let mock = MockBedrock::start(vec![
        MockReply::http_error(429, "ThrottlingException"),
        MockReply::frames(vec![
            MockEvent::MessageStart,
            MockEvent::text(0, "from "),
            MockEvent::text(0, "the environment"),
            MockEvent::stop("end_turn"),
            MockEvent::usage(9, 4, 0, 0),
        ]),
    ])
    .await;
    // The only test of this binary, on a current-thread runtime: nothing reads the environment
    // concurrently.
    std::env::set_var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &mock.url);
    std::env::set_var("AWS_REGION", "us-west-2");
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDENVTEST");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/athena-tests/config");
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/athena-tests/credentials");
    // Where rustls-native-certs would look for the system's roots instead of /etc/ssl/certs.
    std::env::set_var("SSL_CERT_FILE", "/nonexistent/athena-tests/cert.pem");
    std::env::set_var("SSL_CERT_DIR", "/nonexistent/athena-tests/certs");
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_DEFAULT_REGION",
    ] {
        std::env::remove_var(var);
    }

    let model = BedrockModel::from_env().await;
    let stream = model
        .stream(ModelRequest {
            model: "us.anthropic.claude-haiku-4-5-20251001-v1:0".to_owned(),
            system: "You are Athena.".to_owned(),
            messages: vec![ModelMessage {
                role: ModelRole::User,
                content: vec![ModelContent::Text("Hi".to_owned())],
            }],
            max_tokens: 64,
            tools: Vec::new(),
        })
        .await
        .expect("the SDK retries the throttled attempt and the stream starts");
    let items = collect(stream).await;
    assert_eq!(
        items,
        vec![
            Ok(ModelEvent::TextDelta("from ".to_owned())),
            Ok(ModelEvent::TextDelta("the environment".to_owned())),
            Ok(ModelEvent::Stop(StopReason::EndTurn)),
            Ok(ModelEvent::Usage(Usage {
                input_tokens: 9,
                output_tokens: 4,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
            })),
        ]
    );

    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "one throttled attempt, one retry");
    for request in &requests {
        assert_eq!(request.model_id, "us.anthropic.claude-haiku-4-5-20251001-v1:0");
        let auth = request.header("authorization").unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDENVTEST/")
                && auth.contains("/us-west-2/bedrock/aws4_request"),
            "signed with the environment's credentials and region: {auth}"
        );
        assert_eq!(request.body["inferenceConfig"]["maxTokens"], 64);
    }

    // The DynamoDB client the functions build (same environment, no certificate files) on moto.
    std::env::set_var("AWS_ENDPOINT_URL_DYNAMODB", athena_tests::moto_endpoint());
    let dynamo = shared::store::dynamo::client_from_env().await;
    dynamo
        .list_tables()
        .send()
        .await
        .expect("the DynamoDB client from the environment reaches moto");
}

//! File attachments on both stores, with real parts: the embedded store with its directory of
//! files (uploads posted to the gateway's own `/local/uploads`), DynamoDB with S3 on moto's
//! server (uploads posted to the bucket as an S3 presigned POST); chat through the real
//! `aws-sdk-bedrockruntime` against the local event-stream endpoint, whose recorded request must
//! carry the files as image and document blocks, byte for byte.

use std::sync::Arc;

use athena_tests::bedrock_mock::{MockBedrock, MockEvent, MockReply};
use athena_tests::{local_user, moto_endpoint, on_both_stores, spawn_state, unique, TestApp};
use base64::Engine as _;
use serde_json::{json, Value};
use shared::blobs::Blobs;
use shared::config::Config;
use shared::domain::{ManualClock, StoredFile};
use shared::state::AppState;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;
use shared::store::Store;

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// A tiny but real PDF.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n";

/// A PNG header (16 x 8 px) and an IEND chunk: enough for the magic bytes and the dimensions.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x10, 0x00, 0x00, 0x00, 0x08, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x00, 0x49,
    0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Where a store's files live in these tests.
pub(crate) trait Backend: Store + Sized {
    async fn blobs(&self) -> Arc<dyn Blobs>;
}

impl Backend for EmbeddedStore {
    async fn blobs(&self) -> Arc<dyn Blobs> {
        let dir = std::env::temp_dir().join(unique("athena-files"));
        Arc::new(shared::blobs::disk::DiskBlobs::open(&dir.to_string_lossy()).expect("a files directory"))
    }
}

impl Backend for DynamoStore {
    async fn blobs(&self) -> Arc<dyn Blobs> {
        let (client, credentials) = athena_tests::moto_s3_client();
        let bucket = unique("files");
        client
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("creating a bucket on moto");
        Arc::new(shared::blobs::s3::S3Blobs::new(
            client,
            bucket,
            "us-east-1".to_owned(),
            Some(moto_endpoint().to_owned()),
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        ))
    }
}

/// A gateway on `store` with its files, a clock the test moves, and Bedrock at a mock.
struct Files {
    app: TestApp,
    blobs: Arc<dyn Blobs>,
    bedrock: MockBedrock,
    clock: Arc<ManualClock>,
}

async fn files_app<S: Backend>(store: S, config: Config) -> Files {
    let blobs = store.blobs().await;
    let bedrock = MockBedrock::start(Vec::new()).await;
    let client = aws_sdk_bedrockruntime::Client::from_conf(
        aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
            .region(aws_sdk_bedrockruntime::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_bedrockruntime::config::Credentials::new(
                "t", "t", None, None, "t",
            ))
            .endpoint_url(&bedrock.url)
            .build(),
    );
    let model = Arc::new(shared::llm::bedrock::BedrockModel::new(client));
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let store: Arc<dyn Store> = Arc::new(store);
    let state = AppState::new(config, Arc::clone(&store))
        .with_chat(model, shared::chat::ChatConfig::default())
        .with_blobs(Arc::clone(&blobs))
        .with_clock(clock.clone());
    Files {
        app: spawn_state(state, store).await,
        blobs,
        bedrock,
        clock,
    }
}

fn reply_frames(text: &str) -> MockReply {
    MockReply::frames(vec![
        MockEvent::MessageStart,
        MockEvent::text(0, text),
        MockEvent::BlockStop { index: 0 },
        MockEvent::stop("end_turn"),
        MockEvent::usage(20, 5, 0, 0),
    ])
}

/// Posts an upload form the way a browser does: `multipart/form-data`, the fields, then `file`.
pub(crate) async fn post_form(app: &TestApp, upload: &Value, media_type: &str, bytes: &[u8]) -> reqwest::Response {
    let boundary = format!("----athena{}", ulid::Ulid::new());
    let mut body = Vec::new();
    for (name, value) in upload["fields"].as_object().expect("fields") {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{}\r\n",
                value.as_str().unwrap_or_default()
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: {media_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    app.client
        .post(upload["url"].as_str().expect("url"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("posting the upload form")
}

/// Creates, uploads and completes a file; its id.
async fn upload(f: &Files, filename: &str, media_type: &str, bytes: &[u8]) -> String {
    let created = f
        .app
        .call(
            "POST",
            "/api/files",
            Some(json!({"filename": filename, "mediaType": media_type, "size": bytes.len()})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let posted = post_form(&f.app, &created.json["upload"], media_type, bytes).await;
    assert!(posted.status().is_success(), "upload: {}", posted.status());
    let id = created.json["file"]["id"].as_str().expect("id").to_owned();
    let done = f.app.call("POST", &format!("/api/files/{id}/complete"), None).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.json["status"], "ready");
    assert_eq!(done.json["size"], bytes.len());
    id
}

fn file_part(id: &str, media_type: &str, filename: &str) -> Value {
    json!({"type": "file", "mediaType": media_type, "url": format!("/api/files/{id}"), "filename": filename})
}

fn chat_body(conversation: &str, text: &str, files: Vec<Value>) -> Value {
    let mut parts = files;
    parts.push(json!({"type": "text", "text": text}));
    json!({
        "id": conversation,
        "trigger": "submit-message",
        "model": SONNET,
        "messages": [{"id": unique("m"), "role": "user", "parts": parts}],
    })
}

/// The conversation a file is attached to.
async fn shown_conversation_of(f: &Files, id: &str) -> String {
    let shown = f.app.call("GET", &format!("/api/files/{id}"), None).await;
    shown.json["conversationId"].as_str().expect("attached").to_owned()
}

fn key_of(id: &str) -> String {
    StoredFile::key_of(&local_user(), &shared::domain::FileId::parse(id).expect("id"))
}

on_both_stores!(
    |store| files_app(store, Config::local()).await,
    [
        a_pdf_and_a_png_reach_bedrock_as_document_and_image_blocks_and_go_with_their_conversation,
        uploads_that_lie_are_too_large_or_missing_are_refused_and_nothing_stays,
        a_used_or_expired_upload_form_changes_nothing,
        attachments_must_be_the_callers_ready_files_of_this_conversation,
        the_ai_sdk_client_attaches_a_pdf_and_a_png_to_a_maintenance_question,
    ]
);

/// The done-when of issue 17, through the real AI SDK client (every installed version): the
/// browser's upload (FormData to the form's URL: the bucket on moto, or athena-local's own), then
/// `chat.sendMessage({text, files})`; Bedrock's request carries the document and the image.
async fn the_ai_sdk_client_attaches_a_pdf_and_a_png_to_a_maintenance_question(f: Files) {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    for package in crate::ai_sdk::VERSIONS {
        f.bedrock.push(reply_frames("Check the seal first."));
        let chat_id = unique("sdk-files");
        let answer = crate::ai_sdk::sdk_flow(
            &f.app,
            package,
            "files",
            json!({
                "chatId": chat_id,
                "path": "/api/chat/maintenance",
                "text": "The pump in the photo leaks; what does the manual say?",
                "files": [
                    {"filename": "manual.pdf", "mediaType": "application/pdf", "base64": b64(PDF)},
                    {"filename": "pump.png", "mediaType": "image/png", "base64": b64(PNG)},
                ],
            }),
        )
        .await;
        assert_eq!(answer["status"], "ready", "{package}: {answer}");
        for upload in answer["uploads"].as_array().expect("uploads") {
            assert!(
                upload["posted"].as_u64().is_some_and(|s| (200..300).contains(&s)),
                "{package}: {upload}"
            );
            assert_eq!(upload["completed"], 200, "{package}: {upload}");
        }
        let messages = answer["messages"].as_array().expect("messages");
        let reply: String = messages[1]["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect();
        assert_eq!(reply, "Check the seal first.", "{package}: {answer}");
        let posted = &answer["requests"][0]["messages"][0]["parts"];
        assert_eq!(
            posted.as_array().map(Vec::len),
            Some(3),
            "{package}: the SDK posts both file parts: {posted}"
        );

        let request = f.bedrock.requests().last().expect("a Bedrock request").body.clone();
        let content = &request["messages"][0]["content"];
        assert_eq!(content[0]["document"]["format"], "pdf", "{package}: {content}");
        assert_eq!(content[0]["document"]["source"]["bytes"], b64(PDF), "{package}");
        assert_eq!(content[1]["image"]["format"], "png", "{package}: {content}");
        assert_eq!(content[1]["image"]["source"]["bytes"], b64(PNG), "{package}");
        assert!(
            request["system"][0]["text"]
                .as_str()
                .is_some_and(|s| s.contains("maintenance")),
            "{package}"
        );

        let shown = f.app.call("GET", &format!("/api/conversations/{chat_id}"), None).await;
        let kinds: Vec<&str> = shown.json["messages"][0]["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .filter_map(|p| p["type"].as_str())
            .collect();
        assert_eq!(
            kinds,
            ["file", "file", "text"],
            "{package}: the parts in the order the SDK sent them: {}",
            shown.text
        );
        // A reloaded page shows the question exactly as the client holds it.
        assert_eq!(
            shown.json["messages"][0]["parts"], messages[0]["parts"],
            "{package}: stored and client parts"
        );
        // Deleted for good (a conversation in the trash keeps its files until it is purged).
        let deleted = f
            .app
            .call("DELETE", &format!("/api/conversations/{chat_id}?permanent=true"), None)
            .await;
        assert_eq!(deleted.status, 200);
        for upload in answer["uploads"].as_array().expect("uploads") {
            let id = upload["file"]["id"].as_str().expect("id");
            assert_eq!(
                f.blobs.head(&key_of(id)).await.expect("head"),
                None,
                "{package}: {id} left behind"
            );
        }
    }
}

async fn a_pdf_and_a_png_reach_bedrock_as_document_and_image_blocks_and_go_with_their_conversation(f: Files) {
    let pdf = upload(&f, "Pump manual.pdf", "application/pdf", PDF).await;
    let png = upload(&f, "valve.png", "image/png", PNG).await;
    f.bedrock.push(reply_frames("Replace the seal."));
    let conversation = unique("c");
    let body = chat_body(
        &conversation,
        "Why does this pump leak?",
        vec![
            file_part(&pdf, "application/pdf", "Pump manual.pdf"),
            file_part(&png, "image/png", "valve.png"),
        ],
    );
    let (status, _, text) = athena_tests::sse::post_chat(&f.app, "/api/chat/maintenance", body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Replace the seal."), "{text}");

    // The request the SDK sent: the document and the image, byte for byte, then the text.
    let requests = f.bedrock.requests();
    let content = &requests.last().expect("a Bedrock request").body["messages"][0]["content"];
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 bytes"))
            .expect("valid base64")
    };
    assert_eq!(content[0]["document"]["format"], "pdf", "{content}");
    assert_eq!(content[0]["document"]["name"], "Pump manual");
    assert_eq!(b64(&content[0]["document"]["source"]["bytes"]), PDF);
    assert_eq!(content[1]["image"]["format"], "png", "{content}");
    assert_eq!(b64(&content[1]["image"]["source"]["bytes"]), PNG);
    assert_eq!(content[2]["text"], "Why does this pump leak?");

    // The stored message lists them, as the AI SDK's file parts.
    let shown = f
        .app
        .call("GET", &format!("/api/conversations/{conversation}"), None)
        .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    let parts = &shown.json["messages"][0]["parts"];
    assert_eq!(
        parts[0],
        file_part(&pdf, "application/pdf", "Pump manual.pdf"),
        "{parts}"
    );
    assert_eq!(parts[1], file_part(&png, "image/png", "valve.png"), "{parts}");
    assert_eq!(
        parts[2],
        json!({"type": "text", "text": "Why does this pump leak?"}),
        "{parts}"
    );
    let listed = f
        .app
        .call("GET", &format!("/api/files?conversationId={conversation}"), None)
        .await;
    assert_eq!(listed.json.as_array().map(Vec::len), Some(2), "{}", listed.text);

    // Clearing the messages takes their files; deleting the conversation takes the rest.
    let kept = upload(&f, "kept.png", "image/png", PNG).await;
    f.bedrock.push(reply_frames("Seen."));
    let (status, _, text) = athena_tests::sse::post_chat(
        &f.app,
        "/api/chat/maintenance",
        chat_body(&unique("c"), "look", vec![file_part(&kept, "image/png", "kept.png")]),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let other = shown_conversation_of(&f, &kept).await;
    let cleared = f
        .app
        .call("DELETE", &format!("/api/conversations/{other}/messages"), None)
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(f.app.call("GET", &format!("/api/files/{kept}"), None).await.status, 404);
    assert_eq!(f.blobs.head(&key_of(&kept)).await.expect("head"), None);

    // In the trash, the conversation keeps its files (it may be restored)...
    let trashed = f
        .app
        .call("DELETE", &format!("/api/conversations/{conversation}"), None)
        .await;
    assert_eq!(trashed.status, 200, "{}", trashed.text);
    for id in [&pdf, &png] {
        assert!(
            f.blobs.head(&key_of(id)).await.expect("head").is_some(),
            "{id} kept in the trash"
        );
    }
    // ... and deleting it for good deletes them: records and objects.
    let deleted = f.app.call("DELETE", &format!("/api/trash/{conversation}"), None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    for id in [&pdf, &png] {
        assert_eq!(f.app.call("GET", &format!("/api/files/{id}"), None).await.status, 404);
        assert_eq!(
            f.blobs.head(&key_of(id)).await.expect("head"),
            None,
            "object of {id} left behind"
        );
    }
    // And a message naming them now is refused, storing nothing.
    let again = chat_body(&unique("c"), "again", vec![file_part(&pdf, "application/pdf", "x.pdf")]);
    let (status, _, text) = athena_tests::sse::post_chat(&f.app, "/api/chat/maintenance", again).await;
    assert_eq!(status, 404, "{text}");
}

async fn uploads_that_lie_are_too_large_or_missing_are_refused_and_nothing_stays(f: Files) {
    let create = |name: &str, media: &str, size: usize| {
        f.app.call(
            "POST",
            "/api/files",
            Some(json!({"filename": name, "mediaType": media, "size": size})),
        )
    };
    let zip = create("a.zip", "application/zip", 10).await;
    assert_eq!((zip.status, zip.code()), (415, "FILE_TYPE"), "{}", zip.text);
    let big = create("big.png", "image/png", 3_750_001).await;
    assert_eq!((big.status, big.code()), (413, "FILE_TOO_LARGE"), "{}", big.text);
    let empty = create("e.txt", "text/plain", 0).await;
    assert_eq!(empty.status, 400, "{}", empty.text);

    // Completing before uploading: nothing there yet (and it can still be uploaded later).
    let early = create("later.pdf", "application/pdf", PDF.len()).await;
    let early_id = early.json["file"]["id"].as_str().expect("id").to_owned();
    let done = f
        .app
        .call("POST", &format!("/api/files/{early_id}/complete"), None)
        .await;
    assert_eq!((done.status, done.code()), (409, "FILE_NOT_UPLOADED"), "{}", done.text);

    // A PDF declared as a PNG: refused by its magic bytes, and nothing is kept.
    let liar = create("photo.png", "image/png", PDF.len()).await;
    let liar_id = liar.json["file"]["id"].as_str().expect("id").to_owned();
    let posted = post_form(&f.app, &liar.json["upload"], "image/png", PDF).await;
    assert!(posted.status().is_success(), "{}", posted.status());
    let done = f
        .app
        .call("POST", &format!("/api/files/{liar_id}/complete"), None)
        .await;
    assert_eq!((done.status, done.code()), (422, "FILE_TYPE_MISMATCH"), "{}", done.text);
    assert!(done.text.contains("application/pdf"), "{}", done.text);
    assert_eq!(
        f.app.call("GET", &format!("/api/files/{liar_id}"), None).await.status,
        404
    );
    assert_eq!(f.blobs.head(&key_of(&liar_id)).await.expect("head"), None);

    // An image wider than Bedrock takes (a PNG header claiming 9000 x 10 px).
    let mut wide = PNG.to_vec();
    wide[16..20].copy_from_slice(&9_000u32.to_be_bytes());
    let huge = create("wide.png", "image/png", wide.len()).await;
    let huge_id = huge.json["file"]["id"].as_str().expect("id").to_owned();
    assert!(post_form(&f.app, &huge.json["upload"], "image/png", &wide)
        .await
        .status()
        .is_success());
    let done = f
        .app
        .call("POST", &format!("/api/files/{huge_id}/complete"), None)
        .await;
    assert_eq!((done.status, done.code()), (413, "FILE_TOO_LARGE"), "{}", done.text);
    assert!(done.text.contains("9000 x 8 px"), "{}", done.text);

    // More bytes than declared: S3 enforces the form's size range, and Athena checks it again.
    let small = create("small.pdf", "application/pdf", 10).await;
    let small_id = small.json["file"]["id"].as_str().expect("id").to_owned();
    let posted = post_form(&f.app, &small.json["upload"], "application/pdf", PDF).await;
    if posted.status().is_success() {
        let done = f
            .app
            .call("POST", &format!("/api/files/{small_id}/complete"), None)
            .await;
        assert_eq!((done.status, done.code()), (413, "FILE_TOO_LARGE"), "{}", done.text);
    }
    let shown = f.app.call("GET", &format!("/api/files/{small_id}"), None).await;
    assert_ne!(shown.json["status"], "ready", "{}", shown.text);
}

async fn a_used_or_expired_upload_form_changes_nothing(f: Files) {
    // Used twice: the second post is refused (athena-local) or lands where nothing reads it
    // (S3: the verified file was moved out of the form's reach); the file stays as verified.
    let created = f
        .app
        .call(
            "POST",
            "/api/files",
            Some(json!({"filename": "a.txt", "mediaType": "text/plain", "size": 64})),
        )
        .await;
    let id = created.json["file"]["id"].as_str().expect("id").to_owned();
    let form = created.json["upload"].clone();
    assert!(post_form(&f.app, &form, "text/plain", b"the first text")
        .await
        .status()
        .is_success());
    let done = f.app.call("POST", &format!("/api/files/{id}/complete"), None).await;
    assert_eq!(done.status, 200, "{}", done.text);
    let second = post_form(&f.app, &form, "text/plain", b"something else entirely").await;
    let again = f.app.call("POST", &format!("/api/files/{id}/complete"), None).await;
    assert_eq!((again.status, again.code()), (409, "FILE_STATE"), "{}", again.text);
    let kept = f
        .blobs
        .read(&key_of(&id), 1_000)
        .await
        .expect("read")
        .expect("the verified file");
    assert_eq!(
        &kept[..],
        b"the first text",
        "a second upload ({}) changed the file",
        second.status()
    );

    // Expired: a form issued an hour ago. athena-local refuses the post; on S3 the upload is
    // later than the form allowed and its verification refuses it.
    let now = chrono::Utc::now();
    f.clock.set(now - chrono::Duration::hours(1));
    let old = f
        .app
        .call(
            "POST",
            "/api/files",
            Some(json!({"filename": "old.txt", "mediaType": "text/plain", "size": 64})),
        )
        .await;
    let old_id = old.json["file"]["id"].as_str().expect("id").to_owned();
    f.clock.set(now);
    let posted = post_form(&f.app, &old.json["upload"], "text/plain", b"late").await;
    let done = f.app.call("POST", &format!("/api/files/{old_id}/complete"), None).await;
    assert_eq!(
        (done.status, done.code()),
        (410, "UPLOAD_EXPIRED"),
        "post {}: {}",
        posted.status(),
        done.text
    );
    assert_eq!(
        f.app.call("GET", &format!("/api/files/{old_id}"), None).await.status,
        404
    );

    // A form never used: once abandoned, the next upload form purges its record.
    f.clock.set(now - chrono::Duration::hours(1));
    let unused = f
        .app
        .call(
            "POST",
            "/api/files",
            Some(json!({"filename": "u.txt", "mediaType": "text/plain", "size": 8})),
        )
        .await;
    let unused_id = unused.json["file"]["id"].as_str().expect("id").to_owned();
    f.clock.set(now);
    let listed = f.app.call("GET", "/api/files", None).await;
    assert!(
        !listed.text.contains(&unused_id),
        "an abandoned upload is not listed: {}",
        listed.text
    );
    f.app
        .call(
            "POST",
            "/api/files",
            Some(json!({"filename": "n.txt", "mediaType": "text/plain", "size": 8})),
        )
        .await;
    let gone = f
        .app
        .store
        .get_file(&local_user(), &shared::domain::FileId::parse(&unused_id).expect("id"))
        .await;
    assert!(gone.is_err(), "the abandoned record was purged: {gone:?}");
}

async fn attachments_must_be_the_callers_ready_files_of_this_conversation(f: Files) {
    let txt = upload(&f, "notes.md", "text/markdown", b"# Notes\nshift B").await;
    let chat = |body: Value| athena_tests::sse::post_chat(&f.app, "/api/chat", body);

    // Another user's file (stored directly under another owner): not found.
    let other = shared::domain::UserId::parse("someone-else").expect("user");
    let mut theirs = f
        .app
        .store
        .get_file(&local_user(), &shared::domain::FileId::parse(&txt).expect("id"))
        .await
        .expect("file");
    theirs.owner = other;
    theirs.id = shared::domain::FileId::parse(&ulid::Ulid::new().to_string()).expect("id");
    theirs.conversation_id = None;
    f.app.store.put_file(&theirs).await.expect("their file");
    let conversation = unique("c");
    let (status, _, text) = chat(chat_body(
        &conversation,
        "read it",
        vec![file_part(theirs.id.as_str(), "text/markdown", "n.md")],
    ))
    .await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(
        f.app
            .call("GET", &format!("/api/conversations/{conversation}"), None)
            .await
            .status,
        404
    );

    // A data URL, or too many files in one message: validation errors naming the part.
    let inline = json!({"type": "file", "mediaType": "text/plain", "url": "data:text/plain;base64,aGk="});
    let (status, _, text) = chat(chat_body(&conversation, "x", vec![inline])).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("/api/files"), "{text}");
    let distinct: Vec<Value> = (0..6)
        .map(|i| file_part(&format!("{}{i}", &txt[..25]), "text/markdown", "n.md"))
        .collect();
    let (status, _, text) = chat(chat_body(&conversation, "x", distinct)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("at most 5 files"), "{text}");

    // A file bound by a turn that never created its conversation (refused here: its message
    // also names another user's file) moves to the next chat that attaches it.
    let never = unique("c");
    let both = vec![
        file_part(&txt, "text/markdown", "notes.md"),
        file_part(theirs.id.as_str(), "text/markdown", "n.md"),
    ];
    let (status, _, text) = chat(chat_body(&never, "x", both)).await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(
        f.app
            .call("GET", &format!("/api/conversations/{never}"), None)
            .await
            .status,
        404
    );

    // A pending file cannot be attached.
    let pending = f
        .app
        .call(
            "POST",
            "/api/files",
            Some(json!({"filename": "p.txt", "mediaType": "text/plain", "size": 5})),
        )
        .await;
    let pending_id = pending.json["file"]["id"].as_str().expect("id").to_owned();
    let (status, _, text) = chat(chat_body(
        &conversation,
        "x",
        vec![file_part(&pending_id, "text/plain", "p.txt")],
    ))
    .await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("FILE_STATE"), "{text}");

    // Attached once, the file belongs to that conversation: another one cannot take it, and
    // it cannot be deleted on its own.
    f.bedrock.push(reply_frames("Noted."));
    let (status, _, text) = chat(chat_body(
        &conversation,
        "remember these",
        vec![file_part(&txt, "text/markdown", "notes.md")],
    ))
    .await;
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = chat(chat_body(
        &unique("c"),
        "x",
        vec![file_part(&txt, "text/markdown", "notes.md")],
    ))
    .await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("FILE_IN_USE"), "{text}");
    let delete = f.app.call("DELETE", &format!("/api/files/{txt}"), None).await;
    assert_eq!((delete.status, delete.code()), (409, "FILE_STATE"), "{}", delete.text);
    // A file never attached can be deleted.
    assert_eq!(
        f.app
            .call("DELETE", &format!("/api/files/{pending_id}"), None)
            .await
            .status,
        204
    );
}

/// The per-user quota counts pending uploads at their declared size.
#[tokio::test]
async fn the_quota_counts_every_file_a_user_holds() {
    let mut config = Config::local();
    config.files.quota_bytes = 2_000;
    let f = files_app(athena_tests::embedded_store(), config).await;
    let create = |size: usize| {
        f.app.call(
            "POST",
            "/api/files",
            Some(json!({"filename": "q.pdf", "mediaType": "application/pdf", "size": size})),
        )
    };
    assert_eq!(create(1_500).await.status, 201);
    let over = create(600).await;
    assert_eq!((over.status, over.code()), (413, "FILE_QUOTA"), "{}", over.text);
    assert_eq!(create(500).await.status, 201);
}

/// A provider that cannot read PDFs refuses them before the turn starts.
#[tokio::test]
async fn a_provider_that_cannot_read_a_type_refuses_it_up_front() {
    let store: Arc<dyn Store> = Arc::new(athena_tests::embedded_store());
    let dir = std::env::temp_dir().join(unique("athena-files"));
    let blobs: Arc<dyn Blobs> =
        Arc::new(shared::blobs::disk::DiskBlobs::open(&dir.to_string_lossy()).expect("a files directory"));
    let openai = Arc::new(shared::llm::openai::OpenAiModel::new(
        "http://127.0.0.1:9".to_owned(),
        None,
        None,
    ));
    let state = AppState::new(Config::local(), Arc::clone(&store))
        .with_chat(openai, shared::chat::ChatConfig::default())
        .with_blobs(Arc::clone(&blobs));
    let f = Files {
        app: spawn_state(state, store).await,
        blobs,
        bedrock: MockBedrock::start(Vec::new()).await,
        clock: Arc::new(ManualClock::new(chrono::Utc::now())),
    };
    let pdf = upload(&f, "m.pdf", "application/pdf", PDF).await;
    let (status, _, text) = athena_tests::sse::post_chat(
        &f.app,
        "/api/chat",
        chat_body(&unique("c"), "x", vec![file_part(&pdf, "application/pdf", "m.pdf")]),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("ATTACHMENT_UNSUPPORTED"), "{text}");
}

/// Bedrock takes at most 5 documents per request: over a conversation, the newest are sent and
/// each older one is replaced by a line saying so.
#[tokio::test]
async fn the_newest_documents_are_sent_within_bedrocks_per_request_limit() {
    let f = files_app(athena_tests::embedded_store(), Config::local()).await;
    let conversation = unique("c");
    for turn in 0..2 {
        let mut parts = Vec::new();
        for i in 0..3 {
            let name = format!("doc-{turn}-{i}.pdf");
            let id = upload(&f, &name, "application/pdf", PDF).await;
            parts.push(file_part(&id, "application/pdf", &name));
        }
        f.bedrock.push(reply_frames("Read."));
        let (status, _, text) = athena_tests::sse::post_chat(
            &f.app,
            "/api/chat",
            chat_body(&conversation, &format!("turn {turn}"), parts),
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
    let request = f.bedrock.requests().last().expect("a request").body.clone();
    let blocks: Vec<&Value> = request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["content"].as_array().expect("content").iter())
        .collect();
    let documents: Vec<&str> = blocks.iter().filter_map(|b| b["document"]["name"].as_str()).collect();
    assert_eq!(
        documents,
        ["doc-0-1", "doc-0-2", "doc-1-0", "doc-1-1", "doc-1-2"],
        "{request}"
    );
    let notes: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .filter(|t| t.contains("doc-0-0.pdf is not repeated"))
        .collect();
    assert_eq!(notes.len(), 1, "{request}");
}

/// A retried create with the same `Idempotency-Key` gets the first answer and creates nothing
/// more: upload forms, projects and saved prompts alike.
#[tokio::test]
async fn retried_creates_with_an_idempotency_key_create_once() {
    let f = files_app(athena_tests::embedded_store(), Config::local()).await;
    for (path, body) in [
        (
            "/api/files",
            json!({"filename": "a.pdf", "mediaType": "application/pdf", "size": 100}),
        ),
        ("/api/projects", json!({"name": "Line 3"})),
        (
            "/api/prompts",
            json!({"title": "Shift report", "text": "Summarise {{shift}}"}),
        ),
    ] {
        let key = unique("key");
        let send = || {
            f.app.send(
                f.app
                    .client
                    .post(format!("{}{path}", f.app.base))
                    .header("idempotency-key", &key)
                    .json(&body),
            )
        };
        let (first, second) = (send().await, send().await);
        assert_eq!(
            (first.status, second.status),
            (201, 201),
            "{path}: {} / {}",
            first.text,
            second.text
        );
        assert_eq!(first.json, second.json, "{path}: the same answer");
        assert_eq!(second.header("idempotent-replayed"), Some("true"), "{path}");
        let listed = f.app.call("GET", path, None).await;
        let count = listed.json.as_array().map(Vec::len).unwrap_or_default();
        assert_eq!(count, 1, "{path}: created once: {}", listed.text);
        let other = f
            .app
            .send(
                f.app
                    .client
                    .post(format!("{}{path}", f.app.base))
                    .header("idempotency-key", &key)
                    .json(&json!({"filename": "other"})),
            )
            .await;
        assert_eq!((other.status, other.code()), (422, "IDEMPOTENCY_KEY_REUSED"), "{path}");
    }
}

/// The S3 presigned POST is signed as botocore signs one (`generate_presigned_post`): the same
/// credential scope and signature for the policy, and every form field pinned by the policy.
/// moto does not check the signature, so this is checked against botocore's own signer.
#[tokio::test]
async fn the_s3_upload_form_is_signed_as_botocore_signs_one() {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let python = std::env::var("MOTO_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| athena_tests::workspace_root().join(".venv/bin/python"));
    for token in [None, Some("session-token/with+chars=")] {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_owned),
            None,
            "t",
        );
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                .credentials_provider(credentials.clone())
                .build(),
        );
        let blobs = shared::blobs::s3::S3Blobs::new(
            client,
            "athena-files-123".to_owned(),
            "eu-west-1".to_owned(),
            None,
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        );
        let form = blobs
            .upload_form(
                "uploads/abc/01JD0000000000000000000000",
                "application/pdf",
                4_500_000,
                chrono::Utc::now() + chrono::Duration::minutes(5),
                "http://unused",
            )
            .await
            .expect("a form");
        assert_eq!(form.url, "https://athena-files-123.s3.eu-west-1.amazonaws.com");
        let input = json!({"url": form.url, "fields": form.fields}).to_string();
        let out = tokio::task::spawn_blocking({
            let python = python.clone();
            move || {
                use std::io::Write;
                let mut child = std::process::Command::new(python)
                    .arg(athena_tests::workspace_root().join("tests/s3_post_check.py"))
                    .args([
                        "AKIDEXAMPLE",
                        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                        token.unwrap_or(""),
                        "eu-west-1",
                    ])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("running the botocore check");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(input.as_bytes())
                    .expect("write");
                child.wait_with_output().expect("output")
            }
        })
        .await
        .expect("join");
        let answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        assert_eq!(answer["ok"], true, "token {token:?}: {answer}");
    }
}

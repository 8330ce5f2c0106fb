//! Adversarial tests of identity and isolation over real HTTP: two users attacking each other's
//! ids on every route (chat included), and forged, expired, not-yet-valid, wrong-issuer,
//! wrong-audience, unsigned and malformed tokens; RS256 through a JWKS with key rotation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use athena_tests::tokens::{self, claims, hs256, unix_now, AUDIENCE, ISSUER, SECRET};
use athena_tests::{
    embedded_store, mid_minute, spawn_chat_app, spawn_state, stub_server, with_bearer, workspace_root, Reply, TestApp,
};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use shared::api::AppState;
use shared::auth::JwtVerifier;
use shared::chat::ChatConfig;
use shared::config::Config;
use shared::domain::ManualClock;
use shared::store::Store;

async fn jwt_app(verifier: JwtVerifier, store: Arc<dyn Store>) -> TestApp {
    spawn_chat_app(store, tokens::jwt_config(verifier), ChatConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_cannot_touch_each_others_conversations_on_any_route() {
    let app = jwt_app(tokens::verifier(), Arc::new(embedded_store())).await;
    let alice = hs256(&claims("alice-0001"), SECRET);
    let bob = hs256(&claims("bob-0002"), SECRET);
    let created = with_bearer(
        &app,
        &alice,
        "POST",
        "/api/conversations",
        Some(json!({"title": "Alice's"})),
    )
    .await;
    assert_eq!(created.status, 201);
    let id = created.json["id"].as_str().expect("id").to_owned();
    let added = with_bearer(
        &app,
        &alice,
        "POST",
        &format!("/api/conversations/{id}/messages"),
        Some(json!({"role": "user", "content": "private"})),
    )
    .await;
    assert_eq!(added.status, 201);
    let conversation = format!("/api/conversations/{id}");
    let messages = format!("{conversation}/messages");
    let shares = format!("{conversation}/shares");
    let unshare = format!("{shares}?userId=bob-0002");
    let leave = format!("/api/shared/{id}");
    let attacks: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", &conversation, None),
        ("PATCH", &conversation, Some(json!({"title": "pwned"}))),
        ("DELETE", &conversation, None),
        ("GET", &messages, None),
        ("POST", &messages, Some(json!({"role": "user", "content": "injected"}))),
        ("DELETE", &messages, None),
        // Sharing someone else's conversation with oneself, reading or revoking its shares.
        ("GET", &shares, None),
        (
            "PUT",
            &shares,
            Some(json!({"userId": "carol-0003", "role": "collaborator"})),
        ),
        ("DELETE", &unshare, None),
        ("DELETE", &leave, None),
    ];
    for (method, path, body) in attacks {
        let r = with_bearer(&app, &bob, method, path, body.clone()).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "bob {method} {path}");
        // Exactly like a conversation that does not exist.
        let missing = path.replace(&id, "01JDNOSUCHCONVERSATION0000");
        let m = with_bearer(&app, &bob, method, &missing, body).await;
        assert_eq!(m.status, r.status);
        assert_eq!(m.json["error"]["message"], r.json["error"]["message"]);
    }
    // Granting himself her conversation: refused as sharing with oneself, exactly as for a
    // conversation that does not exist, and nothing is granted.
    let me = json!({"userId": "bob-0002", "role": "collaborator"});
    let r = with_bearer(&app, &bob, "PUT", &shares, Some(me.clone())).await;
    let m = with_bearer(
        &app,
        &bob,
        "PUT",
        &shares.replace(&id, "01JDNOSUCHCONVERSATION0000"),
        Some(me),
    )
    .await;
    assert_eq!((r.status, &r.text[..40]), (m.status, &m.text[..40]), "{}", r.text);
    assert_eq!(with_bearer(&app, &bob, "GET", &conversation, None).await.status, 404);
    let regenerate = with_bearer(
        &app,
        &bob,
        "POST",
        "/api/chat",
        Some(
            json!({"id": id, "trigger": "regenerate-message", "messages": [{"role": "user", "content": "let me in"}]}),
        ),
    )
    .await;
    assert_eq!(regenerate.status, 404, "chat regenerate");
    let bobs_list = with_bearer(&app, &bob, "GET", "/api/conversations", None).await;
    assert_eq!(bobs_list.json, json!([]));
    // Ids are scoped to their owner: Bob creating Alice's id, or chatting with it, makes his own
    // conversation of that id (a 409 would tell him hers exists); hers is never reached.
    let his = with_bearer(&app, &bob, "POST", "/api/conversations", Some(json!({"id": id}))).await;
    assert_eq!(his.status, 201, "{}", his.text);
    let submit = with_bearer(
        &app,
        &bob,
        "POST",
        "/api/chat",
        Some(json!({"id": id, "trigger": "submit-message", "messages": [{"role": "user", "content": "let me in"}]})),
    )
    .await;
    assert_eq!(submit.status, 200, "chat submit: {}", submit.text);
    let bobs = with_bearer(&app, &bob, "GET", &conversation, None).await;
    assert_eq!(bobs.json["messages"][0]["content"], "let me in");
    assert_eq!(bobs.json["messages"].as_array().map(Vec::len), Some(2));
    let alices = with_bearer(&app, &alice, "GET", &conversation, None).await;
    assert_eq!(alices.json["title"], "Alice's");
    assert_eq!(alices.json["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(alices.json["messages"][0]["content"], "private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_401_and_a_reason() {
    let app = jwt_app(tokens::verifier(), Arc::new(embedded_store())).await;
    let mut cases: Vec<(String, &str)> = Vec::new();
    cases.push((
        hs256(&claims("u"), b"a-different-secret-a-different-secret"),
        "signature",
    ));
    let mut c = claims("u");
    c["exp"] = json!(unix_now() - 3600);
    cases.push((hs256(&c, SECRET), "expired"));
    let mut c = claims("u");
    c["nbf"] = json!(unix_now() + 3600);
    cases.push((hs256(&c, SECRET), "not valid yet"));
    let mut c = claims("u");
    c["iat"] = json!(unix_now() + 3600);
    cases.push((hs256(&c, SECRET), "issued in the future"));
    let mut c = claims("u");
    c["iss"] = json!("https://evil.test");
    cases.push((hs256(&c, SECRET), "issuer"));
    let mut c = claims("u");
    c["aud"] = json!("someone-else");
    cases.push((hs256(&c, SECRET), "audience"));
    let mut c = claims("u");
    c.as_object_mut().map(|o| o.remove("sub"));
    cases.push((hs256(&c, SECRET), "subject"));
    let mut c = claims("u");
    c["sub"] = json!("../../admin");
    cases.push((hs256(&c, SECRET), "subject"));
    {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims("u").to_string());
        cases.push((format!("{header}.{body}."), "malformed"));
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        cases.push((format!("{header}.{body}.c2ln"), "algorithm"));
    }
    cases.push(("garbage".to_owned(), "malformed"));
    for (token, reason) in cases {
        let r = with_bearer(&app, &token, "GET", "/api/conversations", None).await;
        assert_eq!((r.status, r.code()), (401, "AUTH"), "{reason}");
        assert!(
            r.json["error"]["message"].as_str().is_some_and(|m| m.contains(reason)),
            "{reason}: {}",
            r.text
        );
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let none = app.call("GET", "/api/conversations", None).await;
    assert_eq!((none.status, none.code()), (401, "AUTH"));
    let basic = app
        .send(
            app.client
                .get(format!("{}/api/conversations", app.base))
                .header("authorization", "Basic YTpi"),
        )
        .await;
    assert_eq!(basic.status, 401);
    let good = with_bearer(&app, &hs256(&claims("u"), SECRET), "GET", "/api/conversations", None).await;
    assert_eq!(good.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_issued_a_little_ahead_of_our_clock_is_accepted() {
    let app = jwt_app(tokens::verifier(), Arc::new(embedded_store())).await;
    // The issuer's clock may run ahead of ours by less than the leeway (30 s).
    let mut c = claims("u");
    c["iat"] = json!(unix_now() + 10);
    let r = with_bearer(&app, &hs256(&c, SECRET), "GET", "/api/conversations", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_authorization_headers_are_refused_before_any_token_is_checked() {
    let app = jwt_app(tokens::verifier(), Arc::new(embedded_store())).await;
    let alice = format!("Bearer {}", hs256(&claims("alice-0001"), SECRET));
    let bob = format!("Bearer {}", hs256(&claims("bob-0002"), SECRET));
    let cases = [
        (alice.clone(), bob.clone()),
        (alice.clone(), alice.clone()),
        (alice.clone(), "Bearer garbage".to_owned()),
        ("Bearer garbage".to_owned(), alice.clone()),
        ("Basic YTpi".to_owned(), alice.clone()),
    ];
    for (first, second) in cases {
        let r = app
            .send(
                app.client
                    .get(format!("{}/api/conversations", app.base))
                    .header("authorization", first.as_str())
                    .header("authorization", second.as_str()),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{}", r.text);
        assert_eq!(r.json["error"]["details"][0]["field"], "Authorization", "{}", r.text);
        assert!(
            r.json["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Authorization")),
            "{}",
            r.text
        );
    }
    // Chat too: refused before the body or any token is looked at.
    let r = app
        .send(
            app.client
                .post(format!("{}/api/chat", app.base))
                .header("authorization", alice.as_str())
                .header("authorization", bob.as_str())
                .json(&json!({"messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{}", r.text);
    // One header is fine.
    let r = app
        .send(
            app.client
                .get(format!("{}/api/conversations", app.base))
                .header("authorization", alice.as_str()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A JWKS endpoint whose key set can be switched (key rotation); counts fetches.
async fn jwks_server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let which = Arc::new(AtomicUsize::new(0));
    let fetches = Arc::new(AtomicUsize::new(0));
    let sets: Vec<String> = ["a", "b"]
        .iter()
        .map(|k| std::fs::read_to_string(workspace_root().join(format!("tests/fixtures/jwks-{k}.json"))).expect("jwks"))
        .collect();
    let (w, f) = (Arc::clone(&which), Arc::clone(&fetches));
    let url = stub_server("/.well-known/jwks.json", move |_| {
        f.fetch_add(1, Ordering::SeqCst);
        sets[w.load(Ordering::SeqCst)].clone()
    })
    .await;
    (url, which, fetches)
}

fn rs256(claims: &Value, key: &str) -> String {
    let pem = std::fs::read(workspace_root().join(format!("tests/fixtures/rsa-{key}.pem"))).expect("pem");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(format!("test-key-{key}"));
    encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).expect("rsa key")).expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_verify_through_the_jwks_and_rotation_needs_no_restart() {
    let (url, which, fetches) = jwks_server().await;
    let app = jwt_app(
        JwtVerifier::jwks(url.clone(), ISSUER, AUDIENCE),
        Arc::new(embedded_store()),
    )
    .await;
    let ok = with_bearer(&app, &rs256(&claims("alice"), "a"), "GET", "/api/conversations", None).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // Cached: a second request does not fetch the keys again.
    let again = with_bearer(&app, &rs256(&claims("alice"), "a"), "GET", "/api/conversations", None).await;
    assert_eq!(again.status, 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // A token signed with an HS256 secret where RS256 keys are expected is refused.
    let confused = with_bearer(
        &app,
        &hs256(&claims("alice"), SECRET),
        "GET",
        "/api/conversations",
        None,
    )
    .await;
    assert_eq!(confused.status, 401);
    // Key b is not published: refused, and the unknown kid does not hammer the issuer.
    for _ in 0..5 {
        let early = with_bearer(&app, &rs256(&claims("alice"), "b"), "GET", "/api/conversations", None).await;
        assert_eq!(early.status, 401);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "refetches are rate-limited");

    // Rotation: the issuer now publishes key b only. With refetching allowed, a token with the
    // new kid triggers one refetch and is accepted; the retired key is refused from then on.
    let rotating = jwt_app(
        JwtVerifier::jwks_with_refresh(url, ISSUER, AUDIENCE, std::time::Duration::ZERO),
        Arc::new(embedded_store()),
    )
    .await;
    let before = with_bearer(
        &rotating,
        &rs256(&claims("alice"), "a"),
        "GET",
        "/api/conversations",
        None,
    )
    .await;
    assert_eq!(before.status, 200);
    which.store(1, Ordering::SeqCst);
    let after = with_bearer(
        &rotating,
        &rs256(&claims("alice"), "b"),
        "GET",
        "/api/conversations",
        None,
    )
    .await;
    assert_eq!(after.status, 200, "{}", after.text);
    let retired = with_bearer(
        &rotating,
        &rs256(&claims("alice"), "a"),
        "GET",
        "/api/conversations",
        None,
    )
    .await;
    assert_eq!(retired.status, 401);
}

async fn the_rate_limit_is_counted_exactly_under_concurrency(store: Arc<dyn Store>) {
    // The gateway's clock stands still 15 s into a minute: all requests fall into one window.
    let mut config = Config::local();
    config.rate_limit_per_minute = 10;
    let state = AppState::new(config, Arc::clone(&store)).with_clock(Arc::new(ManualClock::new(mid_minute())));
    let app = spawn_state(state, store).await;
    let replies = futures::future::join_all((0..30).map(|_| app.call("GET", "/api/conversations", None))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!((ok, limited.len()), (10, 20));
    for r in limited {
        assert_eq!(r.code(), "RATE_LIMIT");
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("retry-after");
        assert!((1..=60).contains(&retry));
    }
}

athena_tests::on_both_stores!([the_rate_limit_is_counted_exactly_under_concurrency]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigv4_signed_caller_sends_the_users_token_in_x_user_authorization() {
    // A server calling a chat function URL (AuthType AWS_IAM) signs the request: Authorization
    // holds the signature, which Lambda verified, and the user's own token rides in
    // x-user-authorization, verified here like any bearer token.
    let app = jwt_app(tokens::verifier(), Arc::new(embedded_store())).await;
    let signature = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/us-east-1/lambda/aws4_request, \
                     SignedHeaders=host;x-amz-date, Signature=0123abcd";
    let alice = format!("Bearer {}", hs256(&claims("alice-0001"), SECRET));
    let send = |user: Option<String>, path: &'static str| {
        let mut request = app
            .client
            .get(format!("{}{path}", app.base))
            .header("authorization", signature);
        if let Some(user) = user {
            request = request.header("x-user-authorization", user);
        }
        app.send(request)
    };
    let r = send(Some(alice.clone()), "/api/conversations").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(Some(alice), "/api/chat").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // No user token, or a forged one: refused as usual.
    let r = send(None, "/api/conversations").await;
    assert_eq!((r.status, r.code()), (401, "AUTH"), "{}", r.text);
    let r = send(Some("Bearer garbage".to_owned()), "/api/conversations").await;
    assert_eq!((r.status, r.code()), (401, "AUTH"), "{}", r.text);
    // Without a signature the header means nothing: Authorization is the token.
    let r = app
        .send(app.client.get(format!("{}/api/conversations", app.base)).header(
            "x-user-authorization",
            format!("Bearer {}", hs256(&claims("alice-0001"), SECRET)),
        ))
        .await;
    assert_eq!((r.status, r.code()), (401, "AUTH"), "{}", r.text);
    // Twice: refused before any token is looked at.
    let r = app
        .send(
            app.client
                .get(format!("{}/api/conversations", app.base))
                .header("authorization", signature)
                .header("x-user-authorization", "Bearer a")
                .header("x-user-authorization", "Bearer b"),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{}", r.text);
}
